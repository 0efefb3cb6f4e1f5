use std::collections::{HashMap, HashSet};

use proptest::prelude::*;

use super::*;
use crate::lua::Number;
use crate::model::tables::entries;

fn s(text: &str) -> LuaValue {
    LuaValue::str(text)
}

fn record(fields: &[(&str, LuaValue)]) -> LuaValue {
    LuaValue::Table(Table::from_entries(
        fields.iter().map(|(k, v)| (Key::str(k), v.clone())),
    ))
}

/// An older-layout post.
fn news(id: &str, stamp: &str, title: &str) -> LuaValue {
    record(&[
        ("id", s(id)),
        ("lastUpdated", s(stamp)),
        ("title", s(title)),
    ])
}

/// A current-layout post.
fn envelope(id: &str, stamp: &str, title: &str) -> LuaValue {
    record(&[
        ("id", s(id)),
        ("tableType", s("news")),
        ("lastUpdated", s(stamp)),
        ("deleted", LuaValue::Bool(false)),
        ("data", record(&[("title", s(title))])),
    ])
}

fn map(entries: Vec<(&str, LuaValue)>) -> Table {
    Table::from_entries(entries.into_iter().map(|(k, v)| (Key::str(k), v)))
}

fn title(t: &Table, k: &str) -> Option<LuaValue> {
    t.get_str(k)?
        .as_table()?
        .get_str("data")?
        .as_table()?
        .get_str("title")
        .cloned()
}

#[test]
fn adds_replaces_and_keeps_by_stamp() {
    let target = map(vec![
        ("a", envelope("a", "20240101000000", "old a")),
        ("b", envelope("b", "20240301000000", "newer b")),
        ("c", envelope("c", "20240101000000", "same c")),
    ]);
    let incoming = map(vec![
        ("a", envelope("a", "20240201000000", "new a")),
        ("b", envelope("b", "20240201000000", "older b")),
        ("c", envelope("c", "20240101000000", "same c")),
        ("d", envelope("d", "20240101000000", "d")),
    ]);
    let m = merge_table(TableName::News, &incoming, Some(&target), Layout::Current);
    assert_eq!(
        m.counts,
        Counts {
            received: 4,
            added: 1,
            updated: 1,
            unchanged: 1,
            kept_newer: 1,
            conflicts: 0,
            skipped: 0
        }
    );
    assert_eq!(title(&m.table, "a"), Some(s("new a")));
    assert_eq!(title(&m.table, "b"), Some(s("newer b")));
    assert_eq!(title(&m.table, "d"), Some(s("d")));
    let keys: Vec<String> = m.table.iter().map(|(k, _)| k.to_string()).collect();
    assert_eq!(keys, ["a", "b", "c", "d"]);
}

#[test]
fn equal_stamps_break_ties_the_same_way_both_ways_and_in_both_layouts() {
    let x = news("x", "20240101000000", "zeta");
    let y = news("x", "20240101000000", "alpha");
    let ab = merge_table(
        TableName::News,
        &Table::array([x.clone()]),
        Some(&Table::array([y.clone()])),
        Layout::Older,
    );
    let ba = merge_table(
        TableName::News,
        &Table::array([y.clone()]),
        Some(&Table::array([x.clone()])),
        Layout::Older,
    );
    assert_eq!(ab.counts.conflicts, 1);
    assert_eq!(ba.counts.conflicts, 1);
    assert_eq!(ab.table, ba.table);
    // The winner is the same when the two copies arrive in different layouts.
    let xe = envelope("x", "20240101000000", "zeta");
    let cross = merge_table(
        TableName::News,
        &map(vec![("x", xe)]),
        Some(&Table::array([y])),
        Layout::Older,
    );
    let winner = |t: &Table| {
        t.get(&Key::int(1))
            .and_then(LuaValue::as_table)
            .and_then(|r| r.get_str("title"))
            .cloned()
    };
    assert_eq!(winner(&cross.table), Some(s("zeta")));
    assert_eq!(winner(&ab.table), Some(s("zeta")));
}

#[test]
fn deleted_wins_a_tie_and_an_older_entry_does_not_resurrect_it() {
    let mut gone = news("x", "20240101000000", "t");
    gone.as_table_mut()
        .unwrap()
        .insert(Key::str("deleted"), LuaValue::Bool(true));
    let alive = news("x", "20240101000000", "u");
    let m = merge_table(
        TableName::News,
        &Table::array([alive]),
        Some(&Table::array([gone.clone()])),
        Layout::Older,
    );
    assert_eq!(m.table, Table::array([gone.clone()]));
    let older = news("x", "20231231000000", "older");
    let m = merge_table(
        TableName::News,
        &Table::array([older]),
        Some(&Table::array([gone.clone()])),
        Layout::Older,
    );
    assert_eq!(m.table, Table::array([gone]));
    assert_eq!(m.counts.kept_newer, 1);
    assert!(!m.changed);
}

#[test]
fn unmatched_and_unstamped_entries_are_skipped() {
    let no_id = record(&[("title", s("no id")), ("date", s("2024-01-01 00:00:00"))]);
    let unstamped = record(&[("id", s("u")), ("title", s("incoming"))]);
    let target = Table::array([
        record(&[("id", s("u")), ("title", s("target"))]),
        no_id.clone(),
    ]);
    let m = merge_table(
        TableName::News,
        &Table::array([no_id, unstamped, s("not a record")]),
        Some(&target),
        Layout::Older,
    );
    assert_eq!(m.counts.received, 3);
    assert_eq!(m.counts.skipped, 3);
    assert_eq!(m.table, target);
    assert!(!m.changed);
}

#[test]
fn date_is_the_stamp_of_older_records() {
    let old = record(&[
        ("id", s("n")),
        ("date", s("2024-11-30 19:50:37")),
        ("v", s("old")),
    ]);
    let new = record(&[
        ("id", s("n")),
        ("date", s("2024-12-02 10:00:00")),
        ("v", s("new")),
    ]);
    let m = merge_table(
        TableName::GuildInfo,
        &Table::array([new.clone()]),
        Some(&Table::array([old])),
        Layout::Older,
    );
    assert_eq!(m.counts.updated, 1);
    assert_eq!(m.table, Table::array([new]));
}

#[test]
fn the_result_takes_the_receivers_layout_whoever_sends() {
    let older = Table::array([
        news("a", "20240101000000", "a"),
        news("b", "20240101000000", "b"),
    ]);
    let current = map(vec![("c", envelope("c", "20240101000000", "c"))]);
    // Into an older receiver: an array of flat posts, the incoming envelope converted.
    let m = merge_table(TableName::News, &current, Some(&older), Layout::Older);
    assert_eq!(m.table.sequence_len(), 3);
    assert_eq!(m.table.len(), 3);
    assert!(
        m.table
            .iter()
            .all(|(_, v)| v.as_table().unwrap().get_str("data").is_none())
    );
    // Into a current receiver: a map of envelopes keyed by id.
    let m2 = merge_table(TableName::News, &older, Some(&current), Layout::Current);
    assert_eq!(m2.table.sequence_len(), 0);
    let keys: Vec<String> = m2.table.iter().map(|(k, _)| k.to_string()).collect();
    assert_eq!(keys, ["c", "a", "b"]);
    assert!(
        m2.table
            .iter()
            .all(|(_, v)| v.as_table().unwrap().get_str("data").is_some())
    );
    // And again: nothing changes, whichever side sends.
    assert!(!merge_table(TableName::News, &current, Some(&m.table), Layout::Older).changed);
    assert!(!merge_table(TableName::News, &older, Some(&m2.table), Layout::Current).changed);
}

#[test]
fn a_duplicated_id_in_the_target_is_kept_once() {
    let target = Table::array([
        news("x", "20240101000000", "first"),
        news("x", "20240301000000", "newer copy"),
    ]);
    let m = merge_table(TableName::News, &Table::new(), Some(&target), Layout::Older);
    assert_eq!(
        m.table,
        Table::array([news("x", "20240301000000", "newer copy")])
    );
    assert!(m.changed);
}

#[test]
fn metadata_is_rebuilt_as_the_addon_does() {
    let roster = map(vec![(
        "Heretanky-Velen",
        record(&[
            ("id", s("Heretanky-Velen")),
            ("lastUpdated", s("20241231054417")),
            ("guildName", s("Guild")),
            ("deleted", LuaValue::Bool(false)),
            ("data", record(&[])),
        ]),
    )]);
    let setup = map(vec![
        (
            layout::SETUP_ID,
            record(&[
                ("id", s(layout::SETUP_ID)),
                ("lastUpdated", s("20241230145255")),
            ]),
        ),
        ("other", record(&[("id", s("other"))])),
    ]);
    let existing = map(vec![(
        "roster",
        LuaValue::Table(map(vec![(
            "Gone-Eonar",
            record(&[("id", s("Gone-Eonar"))]),
        )])),
    )]);
    let md = rebuild_metadata(
        Some(&existing),
        [
            (TableName::Roster, Records::Table(&roster)),
            (TableName::Setup, Records::Table(&setup)),
        ],
    );
    let rows = |t: &str| md.get_str(t).and_then(LuaValue::as_table).unwrap().clone();
    let row = rows("roster")
        .get_str("Heretanky-Velen")
        .unwrap()
        .as_table()
        .unwrap()
        .clone();
    assert_eq!(row.get_str("tableType"), Some(&s("roster")));
    assert_eq!(row.get_str("lastUpdated"), Some(&s("20241231054417")));
    assert_eq!(row.get_str("guildName"), Some(&s("Guild")));
    assert_eq!(row.get_str("id"), Some(&s("Heretanky-Velen")));
    assert_eq!(row.get_str("deleted"), Some(&LuaValue::Bool(false)));
    // Rows are added or overwritten, never removed.
    assert!(rows("roster").get_str("Gone-Eonar").is_some());
    // Setup: only the linked-guild group.
    let setup_rows = rows("setup");
    assert_eq!(setup_rows.len(), 1);
    let srow = setup_rows
        .get_str(layout::SETUP_ID)
        .unwrap()
        .as_table()
        .unwrap();
    // Absent fields stay absent.
    assert!(srow.get_str("guildName").is_none());
    assert!(srow.get_str("deleted").is_none());
    for t in ["news", "guildInfo", "calendar"] {
        assert!(rows(t).is_empty());
    }
}

// ---- properties ----

fn stamp_value() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        4 => (2020u32..2026, 1u32..13, 1u32..29, 0u32..3).prop_map(|(y, m, d, h)| Some(format!("{y:04}{m:02}{d:02}{h:02}0000"))),
        1 => Just(None),
    ]
}

/// A post in either layout, with unknown fields.
fn entry_value(id: String) -> impl Strategy<Value = LuaValue> {
    (
        stamp_value(),
        any::<bool>(),
        prop::sample::select(vec!["x", "y", "z"]),
        prop::option::of(prop_oneof![
            (0u32..100)
                .prop_map(|n| LuaValue::Number(Number::with_text(f64::from(n), n.to_string()))),
            "[a-z0-9]{0,3}".prop_map(LuaValue::str),
        ]),
        any::<bool>(),
    )
        .prop_map(move |(stamp, deleted, content, unknown, envelope)| {
            let mut t = Table::new();
            t.insert(Key::str("id"), LuaValue::str(&id));
            if let Some(stamp) = stamp {
                t.insert(Key::str("lastUpdated"), LuaValue::str(stamp));
            }
            t.insert(Key::str("deleted"), LuaValue::Bool(deleted));
            let mut data = Table::new();
            data.insert(Key::str("content"), LuaValue::str(content));
            if let Some(u) = unknown {
                data.insert(Key::str("someFutureField"), u);
            }
            if envelope {
                t.insert(Key::str("tableType"), LuaValue::str("news"));
                t.insert(Key::str("data"), LuaValue::Table(data));
            } else {
                for (k, v) in data.into_entries() {
                    t.insert(k, v);
                }
            }
            LuaValue::Table(t)
        })
}

/// A container with unique ids drawn from a small pool (so the two sides overlap), as an array
/// or a map.
fn container() -> impl Strategy<Value = Table> {
    (prop::collection::btree_set(0u8..12, 0..8), any::<bool>())
        .prop_flat_map(|(ids, as_map)| {
            let values: Vec<_> = ids
                .into_iter()
                .map(|i| entry_value(format!("id{i}")))
                .collect();
            (values, Just(as_map))
        })
        .prop_map(|(values, as_map)| {
            if as_map {
                Table::from_entries(values.into_iter().map(|v| {
                    let id = v
                        .as_table()
                        .unwrap()
                        .get_str("id")
                        .unwrap()
                        .as_str()
                        .unwrap()
                        .to_vec();
                    (Key::Str(id.into()), v)
                }))
            } else {
                Table::array(values)
            }
        })
}

fn a_layout() -> impl Strategy<Value = Layout> {
    prop_oneof![Just(Layout::Older), Just(Layout::Current)]
}

/// Every entry by identity, converted to `layout`.
fn by_id(t: &Table, layout: Layout) -> HashMap<Vec<u8>, LuaValue> {
    entries(t)
        .into_iter()
        .map(|e| convert(TableName::News, e, layout))
        .map(|e| (identity(TableName::News, &e).unwrap(), e.value))
        .collect()
}

/// Whether both sides have a stamp or only one: merges of two unstamped, different entries keep
/// each side's own, so only stamped data converges.
fn comparable(a: &Table, b: &Table) -> bool {
    let (a, b) = (by_id(a, Layout::Current), by_id(b, Layout::Current));
    a.iter().all(|(id, va)| match b.get(id) {
        Some(vb) => {
            stamp(TableName::News, va).is_some() || stamp(TableName::News, vb).is_some() || va == vb
        }
        None => true,
    })
}

proptest! {
    #[test]
    fn merging_twice_changes_nothing(incoming in container(), target in container(), layout in a_layout()) {
        let once = merge_table(TableName::News, &incoming, Some(&target), layout);
        let twice = merge_table(TableName::News, &incoming, Some(&once.table), layout);
        prop_assert_eq!(&twice.table, &once.table);
        prop_assert!(!twice.changed);
        prop_assert_eq!(twice.counts.added + twice.counts.updated, 0);
    }

    #[test]
    fn every_record_of_the_result_is_in_the_receivers_layout(incoming in container(), target in container(), layout in a_layout()) {
        let m = merge_table(TableName::News, &incoming, Some(&target), layout);
        for (k, v) in m.table.iter() {
            let envelope = v.as_table().unwrap().get_str("data").is_some();
            prop_assert_eq!(envelope, layout == Layout::Current);
            // Current: keyed by id; older: a sequence.
            prop_assert_eq!(k.as_index().is_some(), layout == Layout::Older);
        }
    }

    #[test]
    fn each_id_appears_once(incoming in container(), target in container(), layout in a_layout()) {
        let m = merge_table(TableName::News, &incoming, Some(&target), layout);
        let ids: Vec<Vec<u8>> = entries(&m.table).iter().map(|e| identity(TableName::News, e).unwrap()).collect();
        let unique: HashSet<&Vec<u8>> = ids.iter().collect();
        prop_assert_eq!(unique.len(), ids.len());
        let expected: HashSet<Vec<u8>> = by_id(&incoming, layout).into_keys().chain(by_id(&target, layout).into_keys()).collect();
        prop_assert_eq!(unique.len(), expected.len());
        // Number keys are exactly the sequence 1..n: no holes, no stray indices.
        let number_keys = m.table.iter().filter(|(k, _)| matches!(k, Key::Num(_))).count();
        prop_assert_eq!(number_keys, m.table.sequence_len());
    }

    #[test]
    fn order_of_incoming_entries_does_not_matter(incoming in container(), target in container(), seed in any::<u64>(), layout in a_layout()) {
        let mut shuffled: Vec<(Key, LuaValue)> = incoming.entries().to_vec();
        // A deterministic shuffle of the entries (values keep their keys).
        let n = shuffled.len();
        for i in (1..n).rev() {
            let j = (seed.wrapping_mul(i as u64 + 7) % (i as u64 + 1)) as usize;
            shuffled.swap(i, j);
        }
        let reordered = if incoming.sequence_len() > 0 {
            Table::array(shuffled.into_iter().map(|(_, v)| v))
        } else {
            Table::from_entries(shuffled)
        };
        let a = merge_table(TableName::News, &incoming, Some(&target), layout);
        let b = merge_table(TableName::News, &reordered, Some(&target), layout);
        prop_assert_eq!(by_id(&a.table, layout), by_id(&b.table, layout));
        prop_assert_eq!(a.counts, b.counts);
    }

    /// A into B and B into A hold the same records, even when the two receivers are in
    /// different layouts.
    #[test]
    fn both_ways_converge_across_layouts(a in container(), b in container(), la in a_layout(), lb in a_layout()) {
        prop_assume!(comparable(&a, &b));
        let b2 = merge_table(TableName::News, &a, Some(&b), lb).table;
        let a2 = merge_table(TableName::News, &b2, Some(&a), la).table;
        prop_assert_eq!(by_id(&a2, Layout::Current), by_id(&b2, Layout::Current));
    }

    #[test]
    fn older_entries_never_resurrect_deleted_ones(target in container(), incoming in container(), layout in a_layout()) {
        let m = merge_table(TableName::News, &incoming, Some(&target), layout);
        let before = by_id(&target, layout);
        let incoming = by_id(&incoming, layout);
        for (id, v) in by_id(&m.table, layout) {
            if let Some(old) = before.get(&id)
                && deleted(TableName::News, old) && !deleted(TableName::News, &v) {
                    // Only a strictly newer (or the only stamped) incoming entry may do that.
                    let ts = stamp(TableName::News, old);
                    let is = incoming.get(&id).and_then(|i| stamp(TableName::News, i));
                    let newer = match (ts, is) {
                        (Some(t), Some(i)) => i > t,
                        (None, Some(_)) => true,
                        _ => false,
                    };
                    prop_assert!(newer);
                }
        }
    }

    #[test]
    fn unknown_fields_survive(incoming in container(), target in container(), layout in a_layout()) {
        let m = merge_table(TableName::News, &incoming, Some(&target), layout);
        let inc = by_id(&incoming, layout);
        let tgt = by_id(&target, layout);
        for (id, v) in by_id(&m.table, layout) {
            // Every result entry is exactly one of the two sides' entries (in the receiver's
            // layout), unknown fields and all.
            prop_assert!(inc.get(&id) == Some(&v) || tgt.get(&id) == Some(&v));
        }
    }
}

/// A merge into a file holds each record it writes as that record's text, written as the
/// splice will place it, and a later tie with such a record is judged on its value read back.
#[test]
fn a_merge_into_a_file_holds_changed_records_as_their_text() {
    let target = Table::array([
        news("a", "20240101000000", "old a"),
        news("b", "20240301000000", "kept b"),
    ]);
    // `c` twice with equal stamps: the second is judged against the first, held as text.
    let incoming = Table::array([
        news("a", "20240201000000", "new a"),
        news("c", "20240401000000", "c one"),
        news("c", "20240401000000", "c two"),
        news("d", "20240401000000", "d"),
    ]);
    let text_layout = crate::lua::Layout {
        indent: crate::lua::Indent::Tabs,
        line_ending: crate::lua::LineEnding::CrLf,
    };
    let shared = Table::from_entries([(
        Key::str("sharedData"),
        LuaValue::Table(map(vec![("news", LuaValue::Table(target.clone()))])),
    )]);
    let file = crate::lua::write_file(
        &[(SAVED_VARIABLES, Some(&LuaValue::Table(shared)))],
        text_layout,
    )
    .unwrap();
    let doc = crate::lua::parse(&file).unwrap();
    let sv = doc.global(SAVED_VARIABLES).unwrap().value;
    let node = doc.get(doc.get(sv, b"sharedData").unwrap().value, b"news");
    let want = merge_table(TableName::News, &incoming, Some(&target), Layout::Older);
    let file = InFile {
        doc: &doc,
        node: node.map(|f| f.value),
        write: Some(text_layout),
    };
    let got = merge_into_file(file, TableName::News, incoming, Layout::Older, None);
    assert_eq!(got.counts, want.counts);
    assert_eq!(got.counts.conflicts, 1);
    assert_eq!(got.entries.len(), want.table.len());
    for (key, held) in &got.entries {
        let value = want.table.get(key).unwrap();
        let mut text = Vec::new();
        crate::lua::write_value(&mut text, value, text_layout, RECORD_DEPTH).unwrap();
        match held {
            Held::Text(t) => assert_eq!(&t[..], &text[..], "{key:?}"),
            Held::Kept(n) => assert_eq!(doc.text(n.span), &text[..], "{key:?}"),
            Held::Value(_) => panic!("{key:?} is held as a value"),
        }
    }
    assert!(
        matches!(got.entries[1].1, Held::Kept(_)),
        "b stays as it is"
    );
}

/// A generated pair (`members` each, `seed` and `seed + 1`): FROM's `sharedData` merged into
/// TO's `target` (`times` times each table, as payloads).
fn merged_pair(members: u64, seed: u64, target: Target, times: usize) -> TargetFile {
    use crate::synthetic::Spec;
    let layout = crate::lua::Layout::default();
    let from = Spec {
        members,
        entries: 6,
        seed,
        ..Spec::new(0, layout)
    }
    .generate();
    let to = Spec {
        members: 10,
        remote_members: members,
        entries: 6,
        seed: seed + 1,
        ..Spec::new(0, layout)
    }
    .generate();
    let doc = crate::lua::parse(&from).unwrap();
    let source = crate::model::shared_table(&doc, "sharedData")
        .unwrap()
        .unwrap();
    let mut file = TargetFile::open(to, target).unwrap();
    for name in TableName::ALL {
        if let Some(t) = source.get_str(name.as_str()).and_then(LuaValue::as_table) {
            let payload = crate::model::json::table_to_json_bytes(t).unwrap();
            for _ in 0..times {
                file.merge_json(name, &payload).unwrap();
            }
        }
    }
    file
}

/// A receiver's tables are read for their merges when the file is opened, and their records
/// deferred; a table merged a second time reads those records from their text, and the file
/// comes out as when each table is merged once.
#[test]
fn a_table_merged_again_after_its_records_were_deferred_writes_the_same() {
    for target in [Target::SharedDataRemote, Target::SharedData] {
        let once = merged_pair(40, 11, target, 1).finish(true).unwrap().merged;
        assert!(once.is_some(), "{target}: the merge changes the file");
        let twice = merged_pair(40, 11, target, 2).finish(true).unwrap().merged;
        assert!(
            twice == once,
            "{target}: merging a table again changes what is written"
        );
    }
}

/// A merged file written out block by block is the file made in memory; a writer that fails
/// halfway is an I/O error, and written bytes that do not load are refused by the check.
#[test]
fn a_merged_file_written_in_blocks_is_the_file_made_in_memory() {
    use std::io::Write;
    let file = merged_pair(600, 21, Target::SharedDataRemote, 1);
    let Ok(target::Concluded::Merged(merged)) = file.conclude(true) else {
        panic!("the merge changes the file");
    };
    let whole = merged.to_vec().unwrap();
    assert!(
        whole.len() > 4 << 16,
        "{}: large enough to be spilled",
        whole.len()
    );

    /// Takes at most 7 bytes a call, and fails once it holds `fail_at` bytes.
    struct Trickle {
        got: Vec<u8>,
        calls: usize,
        fail_at: usize,
    }
    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.got.len() >= self.fail_at {
                return Err(std::io::Error::other("disk full"));
            }
            let n = buf.len().min(7);
            self.got.extend_from_slice(&buf[..n]);
            self.calls += 1;
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut out = Trickle {
        got: Vec::new(),
        calls: 0,
        fail_at: usize::MAX,
    };
    merged.write_to(&mut out).unwrap();
    assert!(out.got == whole, "written in blocks, the file differs");

    let mut failing = Trickle {
        got: Vec::new(),
        calls: 0,
        fail_at: 100_000,
    };
    assert!(matches!(
        merged.write_to(&mut failing),
        Err(target::OutputError::Io(_))
    ));
    let checker = merged.into_checker();
    assert_eq!(checker.check(whole.clone()).unwrap(), whole);
    let cut = whole[..whole.len() / 2].to_vec();
    assert!(matches!(checker.check(cut), Err(FinishError::Verify(_))));
}
