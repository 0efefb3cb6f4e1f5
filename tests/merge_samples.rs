//! The merge of the sample accounts, against results worked out by hand from the rules in
//! `guildhelper.md` (not by running the code).
//!
//! For each table the expectation lists the counts and every entry of the result in order: where
//! it sits (array part or keyed by its id), its id, and which side's record it must be (the
//! source's or the target's, copied exactly). Records are then compared field by field with the
//! record of that id in that side's input file.

use std::path::Path;

use svsync::lua::{Key, LuaValue, Table, parse, parse_with};
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

/// (table, id, deleted, lastUpdated, guildName)
type MetaRow = (
    TableName,
    &'static str,
    bool,
    &'static str,
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
            let expected = record_by_id(want.table, container, id);
            compare_fields(&format!("{}.{id}", want.table), &e.value, &expected);
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
            for (table, id, deleted, stamp, guild) in rows {
                let row = md
                    .get_str(table.as_str())
                    .and_then(LuaValue::as_table)
                    .and_then(|t| t.get_str(id))
                    .and_then(LuaValue::as_table)
                    .unwrap_or_else(|| panic!("metadata.{table}.{id}"));
                let ctx = format!("metadata.{table}.{id}");
                assert_eq!(
                    row.get_str("deleted"),
                    Some(&LuaValue::Bool(*deleted)),
                    "{ctx}"
                );
                assert_eq!(
                    row.get_str("lastUpdated"),
                    Some(&LuaValue::str(stamp)),
                    "{ctx}"
                );
                assert_eq!(
                    row.get_str("tableType"),
                    Some(&LuaValue::str(table.as_str())),
                    "{ctx}"
                );
                assert_eq!(row.get_str("id"), Some(&LuaValue::str(id)), "{ctx}");
                assert_eq!(
                    row.get_str("guildName"),
                    guild.map(LuaValue::str).as_ref(),
                    "{ctx}"
                );
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

const EONAR: Option<&str> = Some("No Rest For The Wicked-Eonar");

#[test]
fn charlie_into_bravo() {
    let source = table_of(&account("CHARLIE"), "sharedData").unwrap();
    let target = table_of(&account("BRAVO"), "sharedDataRemote").unwrap();
    let merge = merge_shared(&source, Some(&target));
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
    check(&merge, &source, Some(&target), &wants, None);
}

#[test]
fn alpha_into_bravo_converts_the_shape() {
    let source = table_of(&account("ALPHA"), "sharedData").unwrap();
    let target = table_of(&account("BRAVO"), "sharedDataRemote").unwrap();
    let merge = merge_shared(&source, Some(&target));
    let wants = [
        Want {
            table: TableName::Setup,
            counts: [1, 1, 0, 0, 0, 0, 0],
            entries: &[
                (Keyed, "linkedGuildGroups", Tgt),
                (Keyed, "199901010000001234", Source),
            ],
        },
        // ALPHA's tables are maps keyed by id: BRAVO's array items move under their ids.
        Want {
            table: TableName::News,
            counts: [2, 2, 0, 0, 0, 0, 0],
            entries: &[
                (Keyed, "202411301924102656", Tgt),
                (Keyed, "202501051930127731", Source),
                (Keyed, "199901010000001234", Source),
            ],
        },
        Want {
            table: TableName::GuildInfo,
            counts: [2, 2, 0, 0, 0, 0, 0],
            entries: &[
                (Keyed, "202411301949531535", Tgt),
                (Keyed, "202412311002451187", Source),
                (Keyed, "199901010000001234", Source),
            ],
        },
        Want {
            table: TableName::Calendar,
            counts: [2, 2, 0, 0, 0, 0, 0],
            entries: &[
                (Keyed, "202411301950388623", Tgt),
                (Keyed, "202501081215309921", Source),
                (Keyed, "199901010000001234", Source),
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
    let meta: &[MetaRow] = &[
        (
            TableName::Setup,
            "linkedGuildGroups",
            false,
            "20241130194258",
            None,
        ),
        (
            TableName::Setup,
            "199901010000001234",
            false,
            "20241230145255",
            EONAR,
        ),
        (
            TableName::News,
            "202411301924102656",
            false,
            "20241201050922",
            EONAR,
        ),
        (
            TableName::News,
            "202501051930127731",
            false,
            "20250105193012",
            EONAR,
        ),
        (
            TableName::News,
            "199901010000001234",
            false,
            "19990101000000",
            EONAR,
        ),
        (
            TableName::GuildInfo,
            "202411301949531535",
            false,
            "20241130195037",
            EONAR,
        ),
        (
            TableName::GuildInfo,
            "202412311002451187",
            false,
            "20241231100245",
            EONAR,
        ),
        (
            TableName::GuildInfo,
            "199901010000001234",
            false,
            "20241230175946",
            EONAR,
        ),
        (
            TableName::Calendar,
            "202411301950388623",
            false,
            "20241201042807",
            EONAR,
        ),
        (
            TableName::Calendar,
            "202501081215309921",
            false,
            "20250108121530",
            EONAR,
        ),
        (
            TableName::Calendar,
            "199901010000001234",
            false,
            "19990101000000",
            EONAR,
        ),
        (
            TableName::Roster,
            "Sakarra-Skywall",
            false,
            "20241130192941",
            EONAR,
        ),
        (
            TableName::Roster,
            "Heretanky-Velen",
            false,
            "20241231060000",
            EONAR,
        ),
        (
            TableName::Roster,
            "Fatherrahl-Velen",
            false,
            "20241230173329",
            Some("No Reset For The Wicked-Eonar"),
        ),
        (
            TableName::Roster,
            "Beta-Eonar",
            false,
            "19990101000000",
            EONAR,
        ),
    ];
    check(&merge, &source, Some(&target), &wants, Some(meta));
}

#[test]
fn alpha_into_charlie_shared_data() {
    let source = table_of(&account("ALPHA"), "sharedData").unwrap();
    let target = table_of(&account("CHARLIE"), "sharedData").unwrap();
    let merge = merge_shared(&source, Some(&target));
    let wants = [
        Want {
            table: TableName::Setup,
            counts: [1, 1, 0, 0, 0, 0, 0],
            entries: &[
                (Keyed, "linkedGuildGroups", Tgt),
                (Keyed, "199901010000001234", Source),
            ],
        },
        Want {
            table: TableName::News,
            counts: [2, 2, 0, 0, 0, 0, 0],
            entries: &[
                (Keyed, "202411301924102656", Tgt),
                (Keyed, "202412051200001111", Tgt),
                (Keyed, "202501051930127731", Source),
                (Keyed, "199901010000001234", Source),
            ],
        },
        Want {
            table: TableName::GuildInfo,
            counts: [2, 2, 0, 0, 0, 0, 0],
            entries: &[
                (Keyed, "202411301949531535", Tgt),
                (Keyed, "202412311002451187", Source),
                (Keyed, "199901010000001234", Source),
            ],
        },
        Want {
            table: TableName::Calendar,
            counts: [2, 2, 0, 0, 0, 0, 0],
            entries: &[
                (Keyed, "202411301950388623", Tgt),
                (Keyed, "202412031800005555", Tgt),
                (Keyed, "202501081215309921", Source),
                (Keyed, "199901010000001234", Source),
            ],
        },
        // Heretanky: equal stamps (20241231054417), different content (envelope vs flat): a
        // conflict. Neither is deleted; canonical JSON of ALPHA's starts `{"data"`, CHARLIE's
        // `{"deleted"`, so CHARLIE's is greater and stays.
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
    let meta: &[MetaRow] = &[
        (
            TableName::Setup,
            "linkedGuildGroups",
            false,
            "20241202090000",
            None,
        ),
        (
            TableName::Setup,
            "199901010000001234",
            false,
            "20241230145255",
            EONAR,
        ),
        (
            TableName::News,
            "202411301924102656",
            false,
            "20241201050922",
            EONAR,
        ),
        (
            TableName::News,
            "202412051200001111",
            false,
            "20241205120000",
            EONAR,
        ),
        (
            TableName::News,
            "202501051930127731",
            false,
            "20250105193012",
            EONAR,
        ),
        (
            TableName::News,
            "199901010000001234",
            false,
            "19990101000000",
            EONAR,
        ),
        (
            TableName::GuildInfo,
            "202411301949531535",
            false,
            "20241202100000",
            EONAR,
        ),
        (
            TableName::GuildInfo,
            "202412311002451187",
            false,
            "20241231100245",
            EONAR,
        ),
        (
            TableName::GuildInfo,
            "199901010000001234",
            false,
            "20241230175946",
            EONAR,
        ),
        (
            TableName::Calendar,
            "202411301950388623",
            false,
            "20241130100000",
            EONAR,
        ),
        (
            TableName::Calendar,
            "202412031800005555",
            false,
            "20241203180000",
            EONAR,
        ),
        (
            TableName::Calendar,
            "202501081215309921",
            false,
            "20250108121530",
            EONAR,
        ),
        (
            TableName::Calendar,
            "199901010000001234",
            false,
            "19990101000000",
            EONAR,
        ),
        (
            TableName::Roster,
            "Sakarra-Skywall",
            false,
            "20241205120000",
            EONAR,
        ),
        (
            TableName::Roster,
            "Heretanky-Velen",
            false,
            "20241231054417",
            EONAR,
        ),
        (
            TableName::Roster,
            "Newbie-Eonar",
            false,
            "20241203080000",
            EONAR,
        ),
        (
            TableName::Roster,
            "Gone-Eonar",
            true,
            "20241204090000",
            EONAR,
        ),
        (
            TableName::Roster,
            "Fatherrahl-Velen",
            false,
            "20241230173329",
            Some("No Reset For The Wicked-Eonar"),
        ),
        (
            TableName::Roster,
            "Beta-Eonar",
            false,
            "19990101000000",
            EONAR,
        ),
    ];
    check(&merge, &source, Some(&target), &wants, Some(meta));
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
        let merge = merge_shared(&source, current.as_ref());
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
        let merge2 = merge_shared(&source, current2.as_ref());
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
    let merge = merge_shared(&source, current.as_ref());
    let after = splice_merge(&doc, Target::SharedData, current.as_ref(), &merge).unwrap();
    lua51_globals(&after).unwrap();
}
