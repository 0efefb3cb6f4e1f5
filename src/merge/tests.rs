use proptest::prelude::*;

use super::*;
use crate::lua::Number;

fn s(text: &str) -> LuaValue {
    LuaValue::str(text)
}

fn record(fields: &[(&str, LuaValue)]) -> LuaValue {
    LuaValue::Table(Table::from_entries(
        fields.iter().map(|(k, v)| (Key::str(k), v.clone())),
    ))
}

fn news(id: &str, stamp: &str, title: &str) -> LuaValue {
    record(&[
        ("id", s(id)),
        ("lastUpdated", s(stamp)),
        ("title", s(title)),
    ])
}

fn map(entries: Vec<(&str, LuaValue)>) -> Table {
    Table::from_entries(entries.into_iter().map(|(k, v)| (Key::str(k), v)))
}

#[test]
fn adds_replaces_and_keeps_by_stamp() {
    let target = map(vec![
        ("a", news("a", "20240101000000", "old a")),
        ("b", news("b", "20240301000000", "newer b")),
        ("c", news("c", "20240101000000", "same c")),
    ]);
    let incoming = map(vec![
        ("a", news("a", "20240201000000", "new a")),
        ("b", news("b", "20240201000000", "older b")),
        ("c", news("c", "20240101000000", "same c")),
        ("d", news("d", "20240101000000", "d")),
    ]);
    let m = merge_table(TableName::News, &incoming, Some(&target));
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
    let title = |k: &str| {
        m.table
            .get_str(k)
            .unwrap()
            .as_table()
            .unwrap()
            .get_str("title")
            .cloned()
    };
    assert_eq!(title("a"), Some(s("new a")));
    assert_eq!(title("b"), Some(s("newer b")));
    assert_eq!(title("d"), Some(s("d")));
    let keys: Vec<String> = m.table.iter().map(|(k, _)| k.to_string()).collect();
    assert_eq!(keys, ["a", "b", "c", "d"]);
}

#[test]
fn equal_stamps_break_ties_the_same_way_both_ways() {
    let x = news("x", "20240101000000", "zeta");
    let y = news("x", "20240101000000", "alpha");
    let ab = merge_table(
        TableName::News,
        &Table::array([x.clone()]),
        Some(&Table::array([y.clone()])),
    );
    let ba = merge_table(
        TableName::News,
        &Table::array([y]),
        Some(&Table::array([x])),
    );
    assert_eq!(ab.counts.conflicts, 1);
    assert_eq!(ba.counts.conflicts, 1);
    assert_eq!(ab.table, ba.table);
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
    );
    assert_eq!(m.table, Table::array([gone.clone()]));
    let older = news("x", "20231231000000", "older");
    let m = merge_table(
        TableName::News,
        &Table::array([older]),
        Some(&Table::array([gone.clone()])),
    );
    assert_eq!(m.table, Table::array([gone]));
    assert_eq!(m.counts.kept_newer, 1);
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
    );
    assert_eq!(m.counts.received, 3);
    assert_eq!(m.counts.skipped, 3);
    assert_eq!(m.table, target);
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
    );
    assert_eq!(m.counts.updated, 1);
    assert_eq!(m.table, Table::array([new]));
}

#[test]
fn result_takes_the_source_shape() {
    // Source is a map keyed by id, target an array: everything becomes keyed.
    let target = Table::array([
        news("a", "20240101000000", "a"),
        news("b", "20240101000000", "b"),
    ]);
    let incoming = map(vec![("c", news("c", "20240101000000", "c"))]);
    let m = merge_table(TableName::News, &incoming, Some(&target));
    assert_eq!(m.table.sequence_len(), 0);
    let keys: Vec<String> = m.table.iter().map(|(k, _)| k.to_string()).collect();
    assert_eq!(keys, ["a", "b", "c"]);

    // Source is an array, target a map: a sequence without number keys or holes.
    let m2 = merge_table(TableName::News, &target, Some(&m.table));
    assert_eq!(m2.table.sequence_len(), 3);
    assert_eq!(m2.table.len(), 3);
}

#[test]
fn metadata_mirrors_records() {
    let roster = map(vec![(
        "Heretanky-Velen",
        record(&[
            ("pt_name", s("Heretanky-Velen")),
            ("lastUpdated", s("20241231054417")),
            ("pt_guildName", s("Guild")),
            ("deleted", LuaValue::Bool(false)),
        ]),
    )]);
    let md = rebuild_metadata([(TableName::Roster, &roster)]);
    let row = md
        .get_str("roster")
        .and_then(|t| t.as_table())
        .and_then(|t| t.get_str("Heretanky-Velen"))
        .and_then(|t| t.as_table())
        .unwrap();
    assert_eq!(row.get_str("tableType"), Some(&s("roster")));
    assert_eq!(row.get_str("lastUpdated"), Some(&s("20241231054417")));
    assert_eq!(row.get_str("guildName"), Some(&s("Guild")));
    assert_eq!(row.get_str("id"), Some(&s("Heretanky-Velen")));
    assert_eq!(row.get_str("deleted"), Some(&LuaValue::Bool(false)));
}

// ---- properties ----

fn stamp_value() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        4 => (2020u32..2026, 1u32..13, 1u32..29, 0u32..3).prop_map(|(y, m, d, h)| Some(format!("{y:04}{m:02}{d:02}{h:02}0000"))),
        1 => Just(None),
    ]
}

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
    )
        .prop_map(move |(stamp, deleted, content, unknown)| {
            let mut t = Table::new();
            t.insert(Key::str("id"), LuaValue::str(&id));
            if let Some(stamp) = stamp {
                t.insert(Key::str("lastUpdated"), LuaValue::str(stamp));
            }
            t.insert(Key::str("deleted"), LuaValue::Bool(deleted));
            t.insert(Key::str("content"), LuaValue::str(content));
            if let Some(u) = unknown {
                t.insert(Key::str("someFutureField"), u);
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
                    (Key::Str(id), v)
                }))
            } else {
                Table::array(values)
            }
        })
}

fn by_id(t: &Table) -> HashMap<Vec<u8>, LuaValue> {
    entries(t)
        .into_iter()
        .map(|e| (identity(TableName::News, &e).unwrap(), e.value))
        .collect()
}

/// Whether both sides have a stamp or only one: merges of two unstamped, different entries keep
/// each side's own, so only stamped data converges.
fn comparable(a: &Table, b: &Table) -> bool {
    let (a, b) = (by_id(a), by_id(b));
    a.iter().all(|(id, va)| match b.get(id) {
        Some(vb) => {
            stamp(TableName::News, va).is_some() || stamp(TableName::News, vb).is_some() || va == vb
        }
        None => true,
    })
}

proptest! {
    #[test]
    fn merging_twice_changes_nothing(incoming in container(), target in container()) {
        let once = merge_table(TableName::News, &incoming, Some(&target));
        let twice = merge_table(TableName::News, &incoming, Some(&once.table));
        prop_assert_eq!(&twice.table, &once.table);
        prop_assert!(!twice.changed);
        prop_assert_eq!(twice.counts.added + twice.counts.updated, 0);
    }

    #[test]
    fn each_id_appears_once(incoming in container(), target in container()) {
        let m = merge_table(TableName::News, &incoming, Some(&target));
        let ids: Vec<Vec<u8>> = entries(&m.table).iter().map(|e| identity(TableName::News, e).unwrap()).collect();
        let unique: HashSet<&Vec<u8>> = ids.iter().collect();
        prop_assert_eq!(unique.len(), ids.len());
        let expected: HashSet<Vec<u8>> = by_id(&incoming).into_keys().chain(by_id(&target).into_keys()).collect();
        prop_assert_eq!(unique.len(), expected.len());
        // Number keys are exactly the sequence 1..n: no holes, no stray indices.
        let number_keys = m.table.iter().filter(|(k, _)| matches!(k, Key::Num(_))).count();
        prop_assert_eq!(number_keys, m.table.sequence_len());
    }

    #[test]
    fn order_of_incoming_entries_does_not_matter(incoming in container(), target in container(), seed in any::<u64>()) {
        let mut shuffled: Vec<(Key, LuaValue)> = incoming.entries().to_vec();
        // A deterministic shuffle of the entries (values keep their keys).
        let n = shuffled.len();
        for i in (1..n).rev() {
            let j = (seed.wrapping_mul(i as u64 + 7) % (i as u64 + 1)) as usize;
            shuffled.swap(i, j);
        }
        let reordered = if Container::of(&incoming).array {
            Table::array(shuffled.into_iter().map(|(_, v)| v))
        } else {
            Table::from_entries(shuffled)
        };
        let a = merge_table(TableName::News, &incoming, Some(&target));
        let b = merge_table(TableName::News, &reordered, Some(&target));
        prop_assert_eq!(by_id(&a.table), by_id(&b.table));
        prop_assert_eq!(a.counts, b.counts);
    }

    #[test]
    fn both_ways_converge(a in container(), b in container()) {
        prop_assume!(comparable(&a, &b));
        let b2 = merge_table(TableName::News, &a, Some(&b)).table;
        let a2 = merge_table(TableName::News, &b2, Some(&a)).table;
        prop_assert_eq!(by_id(&a2), by_id(&b2));
        prop_assert_eq!(Container::of(&a2), Container::of(&b2));
    }

    #[test]
    fn older_entries_never_resurrect_deleted_ones(target in container(), incoming in container()) {
        let m = merge_table(TableName::News, &incoming, Some(&target));
        let before = by_id(&target);
        let incoming = by_id(&incoming);
        for (id, v) in by_id(&m.table) {
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
    fn unknown_fields_survive(incoming in container(), target in container()) {
        let m = merge_table(TableName::News, &incoming, Some(&target));
        let inc = by_id(&incoming);
        let tgt = by_id(&target);
        for (id, v) in by_id(&m.table) {
            // Every result entry is exactly one of the two sides' entries, unknown fields and all.
            prop_assert!(inc.get(&id) == Some(&v) || tgt.get(&id) == Some(&v));
        }
    }
}
