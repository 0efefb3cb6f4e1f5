//! The merge of the sample accounts, against results worked out by hand from GuildHelper's
//! merge rules (docs/PROTOCOL.md, "Merge rules and the canonical text"), not by running the code.
//!
//! For each table the expectation lists the counts and every entry of the result in order: where
//! it sits (array part or keyed by its id), its id, and which side's record it must be. Records
//! are then compared field by field with the record of that id in that side's input file:
//! exactly when it is already in the receiver's layout, and by the layout conversion rules
//! (written out again here) when it is not.

use std::path::Path;

use svsync::lua::{Key, LuaValue, Table, parse, parse_with};
use svsync::merge::layout::{LINKED_GUILD_GROUPS, SETUP_ID};
use svsync::merge::{Counts, SharedMerge, apply, identity, merge_shared, splice_merge};
use svsync::model::tables::{Part, TableName, entries};
use svsync::model::{SAVED_VARIABLES, Target, parse_options, shared_table};

use crate::support::{lua51_globals, testdata};

#[derive(Clone, Copy, PartialEq, Debug)]
enum Place {
    Array,
    Keyed,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Side {
    Source,
    Target,
}

use Place::{Array, Keyed};
use Side::{Source, Target as Tgt};

struct Want {
    table: TableName,
    /// received, added, updated, unchanged, kept_newer, conflicts, skipped
    counts: [u64; 7],
    entries: &'static [(Place, &'static str, Side)],
}

/// The key of a metadata row: a string key, or the index of an array item (the addon builds
/// rows with `pairs`, so an array's rows are keyed 1..n).
#[derive(Clone, Copy, Debug)]
enum MetaKey {
    S(&'static str),
    I(i64),
}

/// (table, key, deleted, lastUpdated, guildName, id); `None`: the field is absent.
type MetaRow = (
    TableName,
    MetaKey,
    Option<bool>,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
);

fn account(name: &str) -> Vec<u8> {
    std::fs::read(testdata().join(format!("WTF/Account/{name}/SavedVariables/GuildHelper.lua")))
        .unwrap()
}

fn table_of(src: &[u8], key: &str) -> Option<Table> {
    let doc = parse_with(src, &parse_options()).unwrap();
    shared_table(&doc, key).unwrap()
}

fn counts(c: [u64; 7]) -> Counts {
    Counts {
        received: c[0],
        added: c[1],
        updated: c[2],
        unchanged: c[3],
        kept_newer: c[4],
        conflicts: c[5],
        skipped: c[6],
    }
}

fn record_by_id(table: TableName, container: &Table, id: &str) -> LuaValue {
    entries(container)
        .into_iter()
        .find(|e| identity(table, e).as_deref() == Some(id.as_bytes()))
        .unwrap_or_else(|| panic!("{table}: no input entry {id}"))
        .value
}

fn compare_fields(ctx: &str, got: &LuaValue, want: &LuaValue) {
    let (Some(got), Some(want)) = (got.as_table(), want.as_table()) else {
        assert_eq!(got, want, "{ctx}");
        return;
    };
    for (k, v) in want.iter() {
        assert_eq!(got.get(k), Some(v), "{ctx}: field {k}");
    }
    for (k, _) in got.iter() {
        assert!(want.get(k).is_some(), "{ctx}: unexpected field {k}");
    }
}

fn is_envelope(v: &LuaValue) -> bool {
    v.as_table()
        .is_some_and(|t| matches!(t.get_str("data"), Some(LuaValue::Table(_))))
}

/// `got` is `input` converted to the other layout, by the layout conversion rules.
fn compare_converted(ctx: &str, table: TableName, got: &LuaValue, input: &LuaValue, key: &str) {
    let (got_t, in_t) = (got.as_table().unwrap(), input.as_table().unwrap());
    let roster = table == TableName::Roster;
    if is_envelope(input) {
        // Envelope -> flat: data fields to the top (pt_/gb_ for the roster), guildName ->
        // pt_guildName for the roster, every other top field kept.
        assert!(!is_envelope(got), "{ctx}: still an envelope");
        let mut expected = 0;
        for (k, v) in in_t.iter() {
            let name = String::from_utf8(k.as_str().unwrap().to_vec()).unwrap();
            match name.as_str() {
                "data" => {
                    for (dk, dv) in v.as_table().unwrap().iter() {
                        let d = String::from_utf8(dk.as_str().unwrap().to_vec()).unwrap();
                        let to = match (roster, d.as_str()) {
                            (true, "mainCharacter" | "birthdate" | "battletag") => {
                                format!("gb_{d}")
                            }
                            (true, _) => format!("pt_{d}"),
                            (false, _) => d,
                        };
                        assert_eq!(got_t.get_str(&to), Some(dv), "{ctx}: {to}");
                        expected += 1;
                    }
                }
                "guildName" if roster => {
                    assert_eq!(
                        got_t.get_str("pt_guildName"),
                        Some(v),
                        "{ctx}: pt_guildName"
                    );
                    expected += 1;
                }
                other => {
                    assert_eq!(got_t.get_str(other), Some(v), "{ctx}: {other}");
                    expected += 1;
                }
            }
        }
        assert_eq!(got_t.len(), expected, "{ctx}: unexpected fields");
    } else {
        // Flat -> envelope: pt_x/gb_x -> data.x, pt_guildName -> guildName for the roster;
        // id, tableType, guildName, lastUpdated and deleted at the top; everything else in
        // data; id = the key, tableType = the table; a post's lastUpdated from its date and
        // deleted = false when it has none.
        assert!(is_envelope(got), "{ctx}: not an envelope");
        let data = got_t.get_str("data").unwrap().as_table().unwrap();
        let top = ["id", "tableType", "guildName", "lastUpdated", "deleted"];
        for (k, v) in in_t.iter() {
            let name = String::from_utf8(k.as_str().unwrap().to_vec()).unwrap();
            if top.contains(&name.as_str()) {
                assert_eq!(got_t.get_str(&name), Some(v), "{ctx}: {name}");
            } else if roster && name == "pt_guildName" {
                assert_eq!(got_t.get_str("guildName"), Some(v), "{ctx}: guildName");
            } else if roster && (name.starts_with("pt_") || name.starts_with("gb_")) {
                assert_eq!(
                    data.get_str(&name[3..]),
                    Some(v),
                    "{ctx}: data.{}",
                    &name[3..]
                );
            } else {
                assert_eq!(data.get_str(&name), Some(v), "{ctx}: data.{name}");
            }
        }
        assert_eq!(got_t.get_str("id"), Some(&LuaValue::str(key)), "{ctx}: id");
        assert_eq!(
            got_t.get_str("tableType"),
            Some(&LuaValue::str(table.as_str())),
            "{ctx}: tableType"
        );
    }
}

fn check(
    merge: &SharedMerge,
    source: &Table,
    target: Option<&Table>,
    wants: &[Want],
    meta: Option<&[MetaRow]>,
) {
    let names: Vec<TableName> = merge.tables.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, TableName::ALL, "tables in sync order");
    for want in wants {
        let (_, merged) = merge.tables.iter().find(|(n, _)| *n == want.table).unwrap();
        assert_eq!(merged.counts, counts(want.counts), "{} counts", want.table);
        let got = entries(&merged.table);
        let got_ids: Vec<(Place, String)> = got
            .iter()
            .map(|e| {
                let place = match e.part {
                    Part::Array => Array,
                    Part::Keyed(_) => Keyed,
                };
                let id = identity(want.table, e).unwrap();
                (place, String::from_utf8(id).unwrap())
            })
            .collect();
        let want_ids: Vec<(Place, String)> = want
            .entries
            .iter()
            .map(|(p, id, _)| (*p, id.to_string()))
            .collect();
        assert_eq!(got_ids, want_ids, "{} entries", want.table);
        for (e, (_, id, side)) in got.iter().zip(want.entries) {
            if let Part::Keyed(k) = &e.part {
                assert_eq!(*k, Key::str(id), "{}: key of {id}", want.table);
            }
            let input = match side {
                Source => source,
                Tgt => target.unwrap(),
            };
            let container = input
                .get_str(want.table.as_str())
                .and_then(LuaValue::as_table)
                .unwrap();
            // The input's identity of a converted setup record is its other key.
            let input_id = match (want.table, *id) {
                (TableName::Setup, LINKED_GUILD_GROUPS) if container.get_str(id).is_none() => {
                    SETUP_ID
                }
                (TableName::Setup, SETUP_ID) if container.get_str(id).is_none() => {
                    LINKED_GUILD_GROUPS
                }
                _ => id,
            };
            let expected = record_by_id(want.table, container, input_id);
            let ctx = format!("{}.{id}", want.table);
            if is_envelope(&expected) == is_envelope(&e.value) {
                compare_fields(&ctx, &e.value, &expected);
            } else {
                compare_converted(&ctx, want.table, &e.value, &expected, id);
            }
        }
        // Arrays are proper sequences: number keys are exactly 1..n.
        let number_keys = merged
            .table
            .iter()
            .filter(|(k, _)| matches!(k, Key::Num(_)))
            .count();
        assert_eq!(number_keys, merged.table.sequence_len());
    }
    match meta {
        None => assert!(merge.metadata.is_none()),
        Some(rows) => {
            let md = merge.metadata.as_ref().expect("metadata rebuilt");
            let mut n = 0;
            for (table, key, deleted, stamp, guild, id) in rows {
                let k = match key {
                    MetaKey::S(s) => Key::str(s),
                    MetaKey::I(i) => Key::int(*i),
                };
                let ctx = format!("metadata.{table}.{key:?}");
                let row = md
                    .get_str(table.as_str())
                    .and_then(LuaValue::as_table)
                    .and_then(|t| t.get(&k))
                    .and_then(LuaValue::as_table)
                    .unwrap_or_else(|| panic!("{ctx} is missing"));
                assert_eq!(
                    row.get_str("deleted"),
                    deleted.map(LuaValue::Bool).as_ref(),
                    "{ctx}"
                );
                assert_eq!(
                    row.get_str("lastUpdated"),
                    stamp.map(LuaValue::str).as_ref(),
                    "{ctx}"
                );
                assert_eq!(
                    row.get_str("tableType"),
                    Some(&LuaValue::str(table.as_str())),
                    "{ctx}"
                );
                assert_eq!(row.get_str("id"), id.map(LuaValue::str).as_ref(), "{ctx}");
                assert_eq!(
                    row.get_str("guildName"),
                    guild.map(LuaValue::str).as_ref(),
                    "{ctx}"
                );
                let fields = [
                    deleted.is_some(),
                    stamp.is_some(),
                    guild.is_some(),
                    id.is_some(),
                ]
                .iter()
                .filter(|x| **x)
                .count()
                    + 1;
                assert_eq!(row.len(), fields, "{ctx}: nothing invented");
                n += 1;
            }
            let total: usize = md
                .iter()
                .map(|(_, t)| t.as_table().map_or(0, Table::len))
                .sum();
            assert_eq!(total, n, "metadata has exactly the expected rows");
        }
    }
}

#[test]
fn charlie_into_bravo() {
    let source = table_of(&account("CHARLIE"), "sharedData").unwrap();
    let target = table_of(&account("BRAVO"), "sharedDataRemote").unwrap();
    let own = table_of(&account("BRAVO"), "sharedData");
    let merge = merge_shared(&source, Some(&target), own.as_ref());
    let wants = [
        // CHARLIE's linkedGuildGroups (20241202090000) is newer than BRAVO's (20241130194258).
        Want {
            table: TableName::Setup,
            counts: [1, 0, 1, 0, 0, 0, 0],
            entries: &[(Keyed, "linkedGuildGroups", Source)],
        },
        // ...2656 is identical on both sides; ...1111 is new.
        Want {
            table: TableName::News,
            counts: [2, 1, 0, 1, 0, 0, 0],
            entries: &[
                (Array, "202411301924102656", Tgt),
                (Array, "202412051200001111", Source),
            ],
        },
        // Stamp from `date`: 2024-12-02 10:00:00 beats 2024-11-30 19:50:37.
        Want {
            table: TableName::GuildInfo,
            counts: [1, 0, 1, 0, 0, 0, 0],
            entries: &[(Array, "202411301949531535", Source)],
        },
        // CHARLIE's "old copy" (2024-11-30 10:00:00) is older than BRAVO's (2024-12-01 04:28:07).
        Want {
            table: TableName::Calendar,
            counts: [2, 1, 0, 0, 1, 0, 0],
            entries: &[
                (Array, "202411301950388623", Tgt),
                (Array, "202412031800005555", Source),
            ],
        },
        // Sakarra: 20241205120000 > 20241130192941; Heretanky: 20241231054417 < 20241231060000.
        Want {
            table: TableName::Roster,
            counts: [4, 2, 1, 0, 1, 0, 0],
            entries: &[
                (Keyed, "Sakarra-Skywall", Source),
                (Keyed, "Heretanky-Velen", Tgt),
                (Keyed, "Newbie-Eonar", Source),
                (Keyed, "Gone-Eonar", Source),
            ],
        },
    ];
    // Neither side has a metadata table.
    check(&merge, &source, Some(&target), &wants, None);
}

const EONAR_S: &str = "No Rest For The Wicked-Eonar";

/// ALPHA (current layout) into BRAVO, whose own data is in the older layout: the result is in
/// BRAVO's layout, ALPHA's records converted.
#[test]
fn alpha_into_bravo_takes_bravos_layout() {
    let source = table_of(&account("ALPHA"), "sharedData").unwrap();
    let target = table_of(&account("BRAVO"), "sharedDataRemote").unwrap();
    let own = table_of(&account("BRAVO"), "sharedData");
    let merge = merge_shared(&source, Some(&target), own.as_ref());
    let wants = [
        // ALPHA's group (under 199901010000001234, 20241230145255) is BRAVO's linkedGuildGroups
        // (20241130194258), newer.
        Want {
            table: TableName::Setup,
            counts: [1, 0, 1, 0, 0, 0, 0],
            entries: &[(Keyed, "linkedGuildGroups", Source)],
        },
        // BRAVO's arrays stay arrays; ALPHA's posts join them as flat posts, in source order.
        Want {
            table: TableName::News,
            counts: [2, 2, 0, 0, 0, 0, 0],
            entries: &[
                (Array, "202411301924102656", Tgt),
                (Array, "202501051930127731", Source),
                (Array, "199901010000001234", Source),
            ],
        },
        Want {
            table: TableName::GuildInfo,
            counts: [2, 2, 0, 0, 0, 0, 0],
            entries: &[
                (Array, "202411301949531535", Tgt),
                (Array, "202412311002451187", Source),
                (Array, "199901010000001234", Source),
            ],
        },
        Want {
            table: TableName::Calendar,
            counts: [2, 2, 0, 0, 0, 0, 0],
            entries: &[
                (Array, "202411301950388623", Tgt),
                (Array, "202501081215309921", Source),
                (Array, "199901010000001234", Source),
            ],
        },
        // Sakarra: ALPHA's deleted entry has the never-edited stamp 19990101000000, older than
        // BRAVO's; Heretanky: 20241231054417 < 20241231060000.
        Want {
            table: TableName::Roster,
            counts: [4, 2, 0, 0, 2, 0, 0],
            entries: &[
                (Keyed, "Sakarra-Skywall", Tgt),
                (Keyed, "Heretanky-Velen", Tgt),
                (Keyed, "Fatherrahl-Velen", Source),
                (Keyed, "Beta-Eonar", Source),
            ],
        },
    ];
    // ALPHA has metadata, so BRAVO's target gets one, built as the addon builds it: rows
    // copied from the records as they are (flat roster records have no guildName; BRAVO's own
    // flat records no id), arrays keyed 1..n, setup only under 199901010000001234 (none here).
    use MetaKey::{I, S};
    let g = Some(EONAR_S);
    let meta: &[MetaRow] = &[
        (
            TableName::Roster,
            S("Sakarra-Skywall"),
            Some(false),
            Some("20241130192941"),
            None,
            None,
        ),
        (
            TableName::Roster,
            S("Heretanky-Velen"),
            Some(false),
            Some("20241231060000"),
            None,
            None,
        ),
        (
            TableName::Roster,
            S("Fatherrahl-Velen"),
            Some(false),
            Some("20241230173329"),
            None,
            Some("Fatherrahl-Velen"),
        ),
        (
            TableName::Roster,
            S("Beta-Eonar"),
            Some(false),
            Some("19990101000000"),
            None,
            Some("Beta-Eonar"),
        ),
        (
            TableName::News,
            I(1),
            None,
            None,
            g,
            Some("202411301924102656"),
        ),
        (
            TableName::News,
            I(2),
            Some(false),
            Some("20250105193012"),
            g,
            Some("202501051930127731"),
        ),
        (
            TableName::News,
            I(3),
            Some(false),
            Some("19990101000000"),
            g,
            Some("199901010000001234"),
        ),
        (
            TableName::GuildInfo,
            I(1),
            None,
            None,
            g,
            Some("202411301949531535"),
        ),
        (
            TableName::GuildInfo,
            I(2),
            Some(false),
            Some("20241231100245"),
            g,
            Some("202412311002451187"),
        ),
        (
            TableName::GuildInfo,
            I(3),
            Some(false),
            Some("20241230175946"),
            g,
            Some("199901010000001234"),
        ),
        (
            TableName::Calendar,
            I(1),
            None,
            None,
            g,
            Some("202411301950388623"),
        ),
        (
            TableName::Calendar,
            I(2),
            Some(false),
            Some("20250108121530"),
            g,
            Some("202501081215309921"),
        ),
        (
            TableName::Calendar,
            I(3),
            Some(false),
            Some("19990101000000"),
            g,
            Some("199901010000001234"),
        ),
    ];
    check(&merge, &source, Some(&target), &wants, Some(meta));
}

/// ALPHA into CHARLIE's own sharedData (older layout).
#[test]
fn alpha_into_charlie_shared_data() {
    let source = table_of(&account("ALPHA"), "sharedData").unwrap();
    let target = table_of(&account("CHARLIE"), "sharedData").unwrap();
    let merge = merge_shared(&source, Some(&target), None);
    let wants = [
        // 20241230145255 (ALPHA) > 20241202090000 (CHARLIE).
        Want {
            table: TableName::Setup,
            counts: [1, 0, 1, 0, 0, 0, 0],
            entries: &[(Keyed, "linkedGuildGroups", Source)],
        },
        Want {
            table: TableName::News,
            counts: [2, 2, 0, 0, 0, 0, 0],
            entries: &[
                (Array, "202411301924102656", Tgt),
                (Array, "202412051200001111", Tgt),
                (Array, "202501051930127731", Source),
                (Array, "199901010000001234", Source),
            ],
        },
        Want {
            table: TableName::GuildInfo,
            counts: [2, 2, 0, 0, 0, 0, 0],
            entries: &[
                (Array, "202411301949531535", Tgt),
                (Array, "202412311002451187", Source),
                (Array, "199901010000001234", Source),
            ],
        },
        Want {
            table: TableName::Calendar,
            counts: [2, 2, 0, 0, 0, 0, 0],
            entries: &[
                (Array, "202411301950388623", Tgt),
                (Array, "202412031800005555", Tgt),
                (Array, "202501081215309921", Source),
                (Array, "199901010000001234", Source),
            ],
        },
        // Heretanky: equal stamps (20241231054417), different content: a conflict, broken by the
        // canonical text of both records in the current layout. Neither is deleted; both start
        // `{"data":{"battletag":"`, then ALPHA's has `FatherRahl#1596` and CHARLIE's `NA`:
        // `N` > `F`, so CHARLIE's is greater and stays.
        Want {
            table: TableName::Roster,
            counts: [4, 2, 0, 0, 1, 1, 0],
            entries: &[
                (Keyed, "Sakarra-Skywall", Tgt),
                (Keyed, "Heretanky-Velen", Tgt),
                (Keyed, "Newbie-Eonar", Tgt),
                (Keyed, "Gone-Eonar", Tgt),
                (Keyed, "Fatherrahl-Velen", Source),
                (Keyed, "Beta-Eonar", Source),
            ],
        },
    ];
    use MetaKey::{I, S};
    let g = Some(EONAR_S);
    let meta: &[MetaRow] = &[
        (
            TableName::Roster,
            S("Sakarra-Skywall"),
            Some(false),
            Some("20241205120000"),
            None,
            None,
        ),
        (
            TableName::Roster,
            S("Heretanky-Velen"),
            Some(false),
            Some("20241231054417"),
            None,
            None,
        ),
        (
            TableName::Roster,
            S("Newbie-Eonar"),
            Some(false),
            Some("20241203080000"),
            None,
            None,
        ),
        (
            TableName::Roster,
            S("Gone-Eonar"),
            Some(true),
            Some("20241204090000"),
            None,
            None,
        ),
        (
            TableName::Roster,
            S("Fatherrahl-Velen"),
            Some(false),
            Some("20241230173329"),
            None,
            Some("Fatherrahl-Velen"),
        ),
        (
            TableName::Roster,
            S("Beta-Eonar"),
            Some(false),
            Some("19990101000000"),
            None,
            Some("Beta-Eonar"),
        ),
        (
            TableName::News,
            I(1),
            None,
            None,
            g,
            Some("202411301924102656"),
        ),
        (
            TableName::News,
            I(2),
            None,
            None,
            g,
            Some("202412051200001111"),
        ),
        (
            TableName::News,
            I(3),
            Some(false),
            Some("20250105193012"),
            g,
            Some("202501051930127731"),
        ),
        (
            TableName::News,
            I(4),
            Some(false),
            Some("19990101000000"),
            g,
            Some("199901010000001234"),
        ),
        (
            TableName::GuildInfo,
            I(1),
            None,
            None,
            g,
            Some("202411301949531535"),
        ),
        (
            TableName::GuildInfo,
            I(2),
            Some(false),
            Some("20241231100245"),
            g,
            Some("202412311002451187"),
        ),
        (
            TableName::GuildInfo,
            I(3),
            Some(false),
            Some("20241230175946"),
            g,
            Some("199901010000001234"),
        ),
        (
            TableName::Calendar,
            I(1),
            None,
            None,
            g,
            Some("202411301950388623"),
        ),
        (
            TableName::Calendar,
            I(2),
            None,
            None,
            g,
            Some("202412031800005555"),
        ),
        (
            TableName::Calendar,
            I(3),
            Some(false),
            Some("20250108121530"),
            g,
            Some("202501081215309921"),
        ),
        (
            TableName::Calendar,
            I(4),
            Some(false),
            Some("19990101000000"),
            g,
            Some("199901010000001234"),
        ),
    ];
    check(&merge, &source, Some(&target), &wants, Some(meta));
}

/// BRAVO (older layout) into ALPHA, whose own data is in the current layout and which has no
/// target table yet: every record arrives as an envelope, posts keyed by id.
#[test]
fn bravo_into_alpha_takes_alphas_current_layout() {
    let source = table_of(&account("BRAVO"), "sharedData").unwrap();
    assert!(table_of(&account("ALPHA"), "sharedDataRemote").is_none());
    let own = table_of(&account("ALPHA"), "sharedData");
    let merge = merge_shared(&source, None, own.as_ref());
    let wants = [
        Want {
            table: TableName::Setup,
            counts: [1, 1, 0, 0, 0, 0, 0],
            entries: &[(Keyed, "199901010000001234", Source)],
        },
        Want {
            table: TableName::News,
            counts: [1, 1, 0, 0, 0, 0, 0],
            entries: &[(Keyed, "202411301924102656", Source)],
        },
        Want {
            table: TableName::GuildInfo,
            counts: [1, 1, 0, 0, 0, 0, 0],
            entries: &[(Keyed, "202411301949531535", Source)],
        },
        Want {
            table: TableName::Calendar,
            counts: [1, 1, 0, 0, 0, 0, 0],
            entries: &[(Keyed, "202411301950388623", Source)],
        },
        Want {
            table: TableName::Roster,
            counts: [3, 3, 0, 0, 0, 0, 0],
            entries: &[
                (Keyed, "Sakarra-Skywall", Source),
                (Keyed, "Oldmain-Eonar", Source),
                (Keyed, "Heretanky-Velen", Source),
            ],
        },
    ];
    check(&merge, &source, None, &wants, None);
    // The converted posts carry the stamp the current addon needs (from `date`).
    let (_, news) = &merge.tables[1];
    let post = news
        .table
        .get_str("202411301924102656")
        .unwrap()
        .as_table()
        .unwrap();
    assert_eq!(
        post.get_str("lastUpdated"),
        Some(&LuaValue::str("20241201050922"))
    );
    assert_eq!(post.get_str("deleted"), Some(&LuaValue::Bool(false)));
}

/// The merge written into each receiver file: bytes outside the target table are unchanged,
/// Lua 5.1 loads the file and holds exactly the merged table, and merging again changes nothing.
#[test]
fn merged_files_load_in_lua51_and_touch_only_the_target() {
    for (from, to, target) in [
        ("CHARLIE", "BRAVO", Target::SharedDataRemote),
        ("ALPHA", "BRAVO", Target::SharedDataRemote),
        ("ALPHA", "CHARLIE", Target::SharedData),
        ("BRAVO", "CHARLIE", Target::SharedDataRemote),
        ("CHARLIE", "ALPHA", Target::SharedDataRemote),
    ] {
        let ctx = format!("{from} -> {to} ({target})");
        let source = table_of(&account(from), "sharedData").unwrap();
        let before = account(to);
        let doc = parse_with(&before, &parse_options()).unwrap();
        let current = shared_table(&doc, target.key()).unwrap();
        let own = shared_table(&doc, "sharedData").unwrap();
        let merge = merge_shared(&source, current.as_ref(), own.as_ref());
        let after = splice_merge(&doc, target, current.as_ref(), &merge).unwrap();
        let expected = apply(current.as_ref(), &merge);

        // Lua 5.1 sees the merged table, and everything else as before.
        let lua_before = lua51_globals(&before).unwrap();
        let lua_after = lua51_globals(&after).unwrap();
        let root_before = lua_before[SAVED_VARIABLES.as_bytes()].as_table().unwrap();
        let root_after = lua_after[SAVED_VARIABLES.as_bytes()].as_table().unwrap();
        assert_eq!(
            root_after.get_str(target.key()),
            Some(&LuaValue::Table(expected.clone())),
            "{ctx}"
        );
        for (k, v) in root_before.iter() {
            if *k != Key::str(target.key()) {
                assert_eq!(root_after.get(k), Some(v), "{ctx}: {k} changed");
            }
        }

        // Bytes before and after the target's value are identical.
        let span = |src: &[u8]| {
            let d = parse(src).unwrap();
            let root = d.global(SAVED_VARIABLES).unwrap().value;
            d.get(root, target.key().as_bytes()).map(|f| f.value.span)
        };
        if let (Some(a), Some(b)) = (span(&before), span(&after)) {
            assert_eq!(
                before[..a.start as usize],
                after[..b.start as usize],
                "{ctx}"
            );
            assert_eq!(before[a.end as usize..], after[b.end as usize..], "{ctx}");
        }

        // Idempotent on disk: merging the same source again writes the same bytes.
        let doc2 = parse_with(&after, &parse_options()).unwrap();
        let current2 = shared_table(&doc2, target.key()).unwrap();
        let own2 = shared_table(&doc2, "sharedData").unwrap();
        let merge2 = merge_shared(&source, current2.as_ref(), own2.as_ref());
        assert!(merge2.tables.iter().all(|(_, m)| !m.changed), "{ctx}");
        let again = splice_merge(&doc2, target, current2.as_ref(), &merge2).unwrap();
        assert_eq!(again, after, "{ctx}: second merge changed the file");
    }
}

#[test]
fn mixed_shapes_sample_merges_and_loads() {
    let path = Path::new(&testdata()).join("GuildHelper.mixed-shapes.lua");
    let src = std::fs::read(path).unwrap();
    let source = table_of(&account("ALPHA"), "sharedData").unwrap();
    let doc = parse_with(&src, &parse_options()).unwrap();
    let current = shared_table(&doc, "sharedData").unwrap();
    let merge = merge_shared(&source, current.as_ref(), None);
    let after = splice_merge(&doc, Target::SharedData, current.as_ref(), &merge).unwrap();
    lua51_globals(&after).unwrap();
}

/// The receiver's merge (records that stay as they are keep their text; only what changes is
/// written from values) writes byte for byte what merging whole values and splicing them
/// writes, for every ordered pair of accounts, generated guild files in both layouts and both
/// targets, with and without a target table; and a second merge writes nothing.
#[test]
fn merging_into_the_file_writes_what_merging_values_writes() {
    use svsync::lua::{Indent, Layout, LineEnding};
    use svsync::merge::TargetFile;
    use svsync::synthetic::Spec;
    let flat = Layout {
        indent: Indent::Flat,
        line_ending: LineEnding::CrLf,
    };
    let mut files: Vec<(String, Vec<u8>)> = ["ALPHA", "BRAVO", "CHARLIE"]
        .iter()
        .map(|a| (a.to_string(), account(a)))
        .collect();
    files.push((
        "mixed".into(),
        std::fs::read(Path::new(&testdata()).join("GuildHelper.mixed-shapes.lua")).unwrap(),
    ));
    for (name, spec) in [
        (
            "gen-tabs",
            Spec {
                members: 60,
                entries: 12,
                remote_members: 40,
                array_news: 5,
                array_news_share_id: true,
                seed: 1,
                ..Spec::new(60_000, Layout::default())
            },
        ),
        (
            "gen-flat",
            Spec {
                members: 50,
                entries: 9,
                array_news: 4,
                seed: 2,
                ..Spec::new(40_000, flat)
            },
        ),
    ] {
        files.push((name.into(), spec.generate()));
    }
    let mut compared = 0;
    for (from, from_bytes) in &files {
        let Some(source) = table_of(from_bytes, "sharedData") else {
            continue;
        };
        for (to, to_bytes) in &files {
            if from == to {
                continue;
            }
            for target in [Target::SharedDataRemote, Target::SharedData] {
                let ctx = format!("{from} -> {to} ({target})");
                // Whole values, merged and spliced.
                let doc = parse_with(to_bytes, &parse_options()).unwrap();
                let current = shared_table(&doc, target.key()).unwrap();
                let own = shared_table(&doc, "sharedData").unwrap();
                let own = match target {
                    Target::SharedData => None,
                    Target::SharedDataRemote => own,
                };
                let merge = merge_shared(&source, current.as_ref(), own.as_ref());
                let want = (current.as_ref() != Some(&apply(current.as_ref(), &merge)))
                    .then(|| splice_merge(&doc, target, current.as_ref(), &merge).unwrap());
                // The receiver's way.
                // The receiver's way, from tables and from their payloads (read entry by
                // entry where possible).
                let merge_into = |bytes: &[u8], json: bool| {
                    let mut file = TargetFile::open(bytes.to_vec(), target).unwrap();
                    for name in TableName::ALL {
                        if let Some(t) = source.get_str(name.as_str()).and_then(LuaValue::as_table)
                        {
                            if json {
                                let payload = svsync::model::json::table_to_json_bytes(t).unwrap();
                                file.merge_json(name, &payload).unwrap();
                            } else {
                                file.merge(name, t.clone());
                            }
                        }
                    }
                    file.finish(source.get_str("metadata").is_some())
                        .unwrap()
                        .merged
                };
                assert_eq!(
                    merge_into(to_bytes, true),
                    merge_into(to_bytes, false),
                    "{ctx}"
                );
                let got = merge_into(to_bytes, true);
                assert_eq!(
                    got.as_deref().map(String::from_utf8_lossy),
                    want.as_deref().map(String::from_utf8_lossy),
                    "{ctx}"
                );
                if let Some(after) = &got {
                    assert_eq!(
                        merge_into(after, true),
                        None,
                        "{ctx}: a second merge writes"
                    );
                    compared += 1;
                }
            }
        }
    }
    assert!(compared >= 20, "{compared}");
}
