//! GuildHelper's merge rules: one incoming table into the target table.
//!
//! For every incoming entry, matched with the target's entry of the same identity: add it when
//! the target has none; replace the target's when the incoming stamp is newer; keep the target's
//! when it is newer; with equal stamps, identical content is unchanged and different content is a
//! conflict that every machine resolves the same way (`deleted = true` wins, then the greater
//! canonical serialization). When only one side has a stamp, the stamped one wins; when neither
//! has, the target's is kept and the entry counted as skipped. Nothing is ever removed.
//!
//! The result takes the container shape of the incoming (source) table; see [`merge_table`].

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

mod target;
pub use target::{FinishError, OpenError, TargetFile};

use crate::lua::{Document, Key, KeyPath, Layout, LuaValue, SpliceError, Splicer, Table};
use crate::model::json::canonical;
use crate::model::tables::{
    Container, Entry, Part, Record, TableName, assemble, entries, key_identity,
};
use crate::model::{SAVED_VARIABLES, Target};

/// What happened to one incoming table's entries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Entries in the incoming table.
    pub received: u64,
    /// New to the target.
    pub added: u64,
    /// Replaced by a newer incoming entry.
    pub updated: u64,
    /// Same stamp, same content.
    pub unchanged: u64,
    /// The target's entry was newer and was kept.
    pub kept_newer: u64,
    /// Same stamp, different content: resolved by the tie-break.
    pub conflicts: u64,
    /// Could not be matched (no id, not a record) or compared (no stamp on either side).
    pub skipped: u64,
}

/// A merged table.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    pub table: Table,
    pub counts: Counts,
    /// Whether the result differs from the target table (content or shape).
    pub changed: bool,
}

struct Slot {
    part: Part,
    value: LuaValue,
    id: Option<Vec<u8>>,
    /// The place the source gives this entry, if the source has it.
    source_part: Option<Part>,
}

/// The identity of an entry: its key when keyed, its `id` (or name) when in the array part.
pub fn identity(table: TableName, entry: &Entry) -> Option<Vec<u8>> {
    match &entry.part {
        Part::Keyed(k) => key_identity(k),
        Part::Array => entry
            .value
            .as_table()
            .and_then(|t| Record::new(table, t).id_field()),
    }
}

fn stamp(table: TableName, value: &LuaValue) -> Option<u64> {
    value.as_table().and_then(|t| Record::new(table, t).stamp())
}

fn deleted(table: TableName, value: &LuaValue) -> bool {
    value
        .as_table()
        .is_some_and(|t| Record::new(table, t).deleted())
}

/// Outcome of comparing an incoming entry with the target's.
enum Verdict {
    Replace,
    KeepNewer,
    Unchanged,
    Conflict { incoming_wins: bool },
    Skip,
}

fn judge(table: TableName, target: &LuaValue, incoming: &LuaValue) -> Verdict {
    match (stamp(table, target), stamp(table, incoming)) {
        (Some(t), Some(i)) if i > t => Verdict::Replace,
        (Some(t), Some(i)) if i < t => Verdict::KeepNewer,
        (Some(_), Some(_)) => {
            if target == incoming {
                Verdict::Unchanged
            } else {
                Verdict::Conflict {
                    incoming_wins: tie_break(table, incoming, target),
                }
            }
        }
        (None, Some(_)) => Verdict::Replace,
        (Some(_), None) => Verdict::KeepNewer,
        (None, None) => {
            if target == incoming {
                Verdict::Unchanged
            } else {
                Verdict::Skip
            }
        }
    }
}

/// Whether `a` beats `b` when their stamps are equal: `deleted = true` wins, then the greater
/// canonical serialization.
pub fn tie_break(table: TableName, a: &LuaValue, b: &LuaValue) -> bool {
    match (deleted(table, a), deleted(table, b)) {
        (true, false) => true,
        (false, true) => false,
        _ => match (canonical(a), canonical(b)) {
            (Ok(ca), Ok(cb)) => ca > cb,
            // A value that cannot be serialized (a NaN made in memory) never wins.
            (Ok(_), Err(_)) => true,
            _ => false,
        },
    }
}

/// Merges `incoming` into `target` (absent: an empty table) by the rules above.
///
/// The result takes the incoming table's structure: every entry the source has sits where the
/// source puts it (array part, or under its key); entries only the target has go where the
/// source's container would put them (an array when the source is only an array, a map keyed by
/// identity when it is only a map) and otherwise stay in their part. The array part is a proper
/// sequence: the target's entries in their order (replaced in place), then new entries in source
/// order.
pub fn merge_table(table: TableName, incoming: &Table, target: Option<&Table>) -> Merged {
    let mut counts = Counts::default();
    let mut slots: Vec<Slot> = target
        .map(entries)
        .unwrap_or_default()
        .into_iter()
        .map(|e| Slot {
            id: identity(table, &e),
            part: e.part,
            value: e.value,
            source_part: None,
        })
        .collect();
    let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
    for (at, slot) in slots.iter().enumerate() {
        if let Some(id) = &slot.id {
            index.entry(id.clone()).or_insert(at);
        }
    }

    for entry in entries(incoming) {
        counts.received += 1;
        let id = match (&entry.value, identity(table, &entry)) {
            (LuaValue::Table(_), Some(id)) => id,
            _ => {
                counts.skipped += 1;
                continue;
            }
        };
        let Some(&at) = index.get(&id) else {
            counts.added += 1;
            index.insert(id.clone(), slots.len());
            slots.push(Slot {
                part: entry.part.clone(),
                source_part: Some(entry.part),
                value: entry.value,
                id: Some(id),
            });
            continue;
        };
        let slot = &mut slots[at];
        slot.source_part = Some(entry.part.clone());
        match judge(table, &slot.value, &entry.value) {
            Verdict::Replace => {
                counts.updated += 1;
                slot.value = entry.value;
            }
            Verdict::KeepNewer => counts.kept_newer += 1,
            Verdict::Unchanged => counts.unchanged += 1,
            Verdict::Conflict { incoming_wins } => {
                counts.conflicts += 1;
                if incoming_wins {
                    slot.value = entry.value;
                }
            }
            Verdict::Skip => counts.skipped += 1,
        }
    }

    let source = Container::of(incoming);
    let mut used_keys: HashSet<Key> = HashSet::new();
    let mut placed = Vec::with_capacity(slots.len());
    for slot in slots {
        let wanted = match (slot.source_part, &slot.id) {
            (Some(part), _) => part,
            // Only in the target: follow the source's container when it has one shape.
            (None, Some(id)) if source.keyed && !source.array => Part::Keyed(Key::Str(id.clone())),
            (None, _) if source.array && !source.keyed => Part::Array,
            (None, _) => slot.part,
        };
        // Two entries can never share a key: a clash (duplicates in the target) keeps the
        // later one in the array part.
        let part = match wanted {
            Part::Keyed(k) if used_keys.contains(&k) || k.as_index().is_some() => Part::Array,
            Part::Keyed(k) => {
                used_keys.insert(k.clone());
                Part::Keyed(k)
            }
            Part::Array => Part::Array,
        };
        placed.push(Entry {
            part,
            value: slot.value,
        });
    }
    let merged = assemble(placed);
    let changed = match target {
        Some(t) => !same_layout(t, &merged),
        None => true,
    };
    Merged {
        table: merged,
        counts,
        changed,
    }
}

/// Equal as Lua tables and with the same entry order (a reorder is a change worth writing).
fn same_layout(a: &Table, b: &Table) -> bool {
    a == b && a.entries().iter().zip(b.entries()).all(|(x, y)| x.0 == y.0)
}

/// `sharedData.metadata` rebuilt from the merged tables: for each table, each record's
/// `{deleted, tableType, lastUpdated, guildName, id}` keyed by its identity.
pub fn rebuild_metadata<'a>(tables: impl IntoIterator<Item = (TableName, &'a Table)>) -> Table {
    let mut metadata = Table::new();
    for (name, table) in tables {
        let mut rows = Table::new();
        for entry in entries(table) {
            let (Some(id), Some(fields)) = (identity(name, &entry), entry.value.as_table()) else {
                continue;
            };
            let record = Record::new(name, fields);
            let mut row = Table::new();
            row.insert(Key::str("deleted"), LuaValue::Bool(record.deleted()));
            row.insert(
                Key::str("tableType"),
                record
                    .table_type()
                    .cloned()
                    .unwrap_or_else(|| LuaValue::str(name.as_str())),
            );
            if let Some(v) = record
                .last_updated()
                .cloned()
                .or_else(|| record.stamp().map(|s| LuaValue::str(s.to_string())))
            {
                row.insert(Key::str("lastUpdated"), v);
            }
            if let Some(v) = record.guild_name() {
                row.insert(Key::str("guildName"), v.clone());
            }
            row.insert(Key::str("id"), LuaValue::Str(id.clone()));
            rows.insert(Key::Str(id), LuaValue::Table(row));
        }
        metadata.insert(Key::str(name.as_str()), LuaValue::Table(rows));
    }
    metadata
}

/// The result of merging a whole `sharedData` into a target table.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedMerge {
    /// Each synced table the source has, merged, in sync order.
    pub tables: Vec<(TableName, Merged)>,
    /// The rebuilt `metadata`, when the source has one.
    pub metadata: Option<Table>,
}

/// Merges every synced table of `source` (a `sharedData`) into `target` (the target table, if
/// it exists). A synced table the source lacks leaves the target's as it is.
pub fn merge_shared(source: &Table, target: Option<&Table>) -> SharedMerge {
    let mut tables = Vec::new();
    for name in TableName::ALL {
        let Some(incoming) = source.get_str(name.as_str()).and_then(LuaValue::as_table) else {
            continue;
        };
        let current = target
            .and_then(|t| t.get_str(name.as_str()))
            .and_then(LuaValue::as_table);
        tables.push((name, merge_table(name, incoming, current)));
    }
    let metadata = source.get_str("metadata").map(|_| {
        let merged: HashMap<TableName, &Table> =
            tables.iter().map(|(n, m)| (*n, &m.table)).collect();
        rebuild_metadata(TableName::ALL.into_iter().filter_map(|name| {
            merged
                .get(&name)
                .copied()
                .or_else(|| {
                    target
                        .and_then(|t| t.get_str(name.as_str()))
                        .and_then(LuaValue::as_table)
                })
                .map(|t| (name, t))
        }))
    });
    SharedMerge { tables, metadata }
}

/// Applies a merge to a target table in memory: the merged tables and metadata replace the
/// target's, every other key stays.
pub fn apply(target: Option<&Table>, merge: &SharedMerge) -> Table {
    let mut out = target.cloned().unwrap_or_default();
    for (name, merged) in &merge.tables {
        out.insert(
            Key::str(name.as_str()),
            LuaValue::Table(merged.table.clone()),
        );
    }
    if let Some(metadata) = &merge.metadata {
        out.insert(Key::str("metadata"), LuaValue::Table(metadata.clone()));
    }
    out
}

/// Writes a merge into the receiver's file: each merged table (and the metadata) replaces its
/// value under `GuildHelper_SavedVariables.<target>`, every other byte stays as it was. When
/// the target table does not exist yet, it is added whole. Only tables that changed are
/// rewritten.
pub fn splice_merge(
    doc: &Document<'_>,
    target: Target,
    current: Option<&Table>,
    merge: &SharedMerge,
) -> Result<Vec<u8>, SpliceError> {
    let layout = Layout::detect(doc.src());
    let mut splicer = Splicer::new(doc, layout);
    let Some(current) = current else {
        let whole = LuaValue::Table(apply(None, merge));
        splicer.set(
            KeyPath {
                global: SAVED_VARIABLES,
                keys: &[target.key()],
            },
            &whole,
        )?;
        return splicer.finish();
    };
    for (name, merged) in &merge.tables {
        if merged.changed {
            splicer.set(
                KeyPath {
                    global: SAVED_VARIABLES,
                    keys: &[target.key(), name.as_str()],
                },
                &LuaValue::Table(merged.table.clone()),
            )?;
        }
    }
    if let Some(metadata) = &merge.metadata {
        let unchanged = current
            .get_str("metadata")
            .and_then(LuaValue::as_table)
            .is_some_and(|old| same_layout(old, metadata));
        if !unchanged {
            splicer.set(
                KeyPath {
                    global: SAVED_VARIABLES,
                    keys: &[target.key(), "metadata"],
                },
                &LuaValue::Table(metadata.clone()),
            )?;
        }
    }
    splicer.finish()
}

#[cfg(test)]
mod tests;
