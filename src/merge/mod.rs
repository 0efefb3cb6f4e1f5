//! GuildHelper's merge rules: one incoming table into the target table, in the receiver's
//! layout.
//!
//! For every incoming entry, matched with the target's entry of the same identity: add it when
//! the target has none; replace the target's when the incoming stamp is newer; keep the target's
//! when it is newer; with equal stamps, identical content is unchanged and different content is a
//! conflict that every machine resolves the same way (`deleted = true` wins, then the greater
//! canonical text of the two records in the current layout, see [`canonical`]). When only one
//! side has a stamp, the stamped one wins; when neither has, the target's is kept and the entry
//! counted as skipped. Nothing is ever removed.
//!
//! The result is in the receiver's layout ([`layout::decide`]): incoming records in the other
//! layout, and target records that are, are converted first ([`layout::convert`]), so the
//! addon that loads the file can read every record, and the result never flips with the sender.
//! A merge that changes no record changes nothing (tables compare as Lua values).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

pub mod canonical;
mod index;
pub mod layout;
mod target;
pub use target::{
    Checker, Concluded, FinishError, Finished, MergedFile, OpenError, OutputError, TargetFile,
};

use crate::lua::{Document, Key, KeyPath, Kind, LuaValue, Node, SpliceError, Splicer, Table};
use crate::model::tables::{
    Entry, NodeFields, Part, Record, TableName, assemble, assemble_parts, id_of, into_entries,
    key_identity, shape_of, split_parts, stamp_of,
};
use crate::model::{SAVED_VARIABLES, Target};

use index::Index;
use layout::{Layout, SETUP_ID, convert, decide};

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
    /// Whether the result differs from the target table (as Lua values).
    pub changed: bool,
    /// The layout the result is in.
    pub layout: Layout,
    /// Records of the target that repeated an id already there: one copy of each id is kept
    /// (the one the rules prefer), the others are dropped.
    pub duplicates: u32,
}

/// The writer's depth of a synced table's records in a SavedVariables file
/// (`GuildHelper_SavedVariables[target][table][key] = record`): the depth a merge into a file
/// writes its changed records at.
pub const RECORD_DEPTH: usize = 3;

/// Where a merged record is.
#[derive(Debug, Clone, PartialEq)]
pub enum Held {
    /// The receiver file's own record at this node, unchanged: its text stays as it is.
    Kept(Node),
    /// A record to write.
    Value(LuaValue),
    /// A record to write, written already (in the file's layout, at [`RECORD_DEPTH`]): a merge
    /// into a file lets each value go as soon as it is placed, since the text takes a fraction
    /// of the memory of the value's many small allocations.
    Text(Box<[u8]>),
}

/// The receiver's file a table is merged into.
#[derive(Debug, Clone, Copy)]
pub struct InFile<'d, 'a> {
    pub doc: &'d Document<'a>,
    /// The table's node; `None`: the file has none.
    pub node: Option<Node>,
    /// The file's layout: records that change are held as their text ([`Held::Text`]).
    pub write: Option<crate::lua::Layout>,
}

/// A table of the receiver's file read for a merge: its records placed, converted to the
/// layout and indexed, owning what it holds. The incoming records are merged into it later
/// ([`merge_into_file_with`]), so the file's tree need not keep the records' fields meanwhile.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    layout: Layout,
    slots: Vec<(Part, Held)>,
    stamps: Vec<Option<u64>>,
    index: Index,
    duplicates: u32,
    /// Whether a record of the file does not stay as it is, where it is.
    moved: bool,
}

impl Prepared {
    /// The kept records are deferred in the file's tree now (every record of the table was,
    /// see [`Document::defer`]).
    pub fn records_deferred(&mut self) {
        for (_, held) in &mut self.slots {
            if let Held::Kept(node) = held
                && matches!(node.kind, Kind::Table { .. })
            {
                node.kind = Kind::Deferred;
            }
        }
    }
}

/// Reads the table at `file.node` for a merge in `layout` (see [`Prepared`]).
pub fn prepare(file: InFile<'_, '_>, table: TableName, layout: Layout) -> Prepared {
    let InFile { doc, node, .. } = file;
    let original = node.map(|n| doc.entries_of(n)).unwrap_or_default();
    let mut m = Merging::new(table, layout, Some(file));
    // Room for the file's records at once: growing would leave their old places behind.
    m.slots.reserve_exact(original.len());
    m.stamps.reserve_exact(original.len());
    m.index.reserve(original.len());
    let mut moved = false;
    for (part, record) in split_parts(original) {
        let part = match m.target_in_place(part, record) {
            Ok(stays) => {
                moved |= !stays;
                continue;
            }
            Err(part) => part,
        };
        match doc.value(record) {
            Ok(Some(value)) => moved |= !m.target(part, value, Some(record)),
            _ => moved = true,
        }
    }
    Prepared {
        layout,
        slots: m.slots,
        stamps: m.stamps,
        index: m.index,
        duplicates: m.duplicates,
        moved,
    }
}

/// A record's value from its text (as [`Held::Text`] holds it).
fn value_of_text(text: &[u8]) -> Option<LuaValue> {
    let (file, node) = crate::lua::ParsedFile::table(text)?;
    file.doc().value(node).ok().flatten()
}

/// A table merged into the receiver's file: its entries in table order, each record either
/// kept as the file has it or a value to write.
#[derive(Debug, Clone, PartialEq)]
pub struct FileMerged {
    pub entries: Vec<(Key, Held)>,
    pub counts: Counts,
    /// Whether the result differs from the file's table.
    pub changed: bool,
    pub layout: Layout,
    /// As [`Merged::duplicates`].
    pub duplicates: u32,
}

/// One table being merged: the target's records first, then the incoming ones.
struct Merging<'d, 'a> {
    table: TableName,
    layout: Layout,
    /// Where kept records are read from.
    doc: Option<&'d Document<'a>>,
    /// The file's layout: records that change are held as their text (see [`Held::Text`]).
    write: Option<crate::lua::Layout>,
    scratch: Vec<u8>,
    slots: Vec<(Part, Held)>,
    /// The stamp of each slot's record (most verdicts need nothing else of a kept record).
    stamps: Vec<Option<u64>>,
    index: Index,
    counts: Counts,
    duplicates: u32,
}

impl<'d, 'a> Merging<'d, 'a> {
    fn new(table: TableName, layout: Layout, file: Option<InFile<'d, 'a>>) -> Self {
        Merging {
            table,
            layout,
            doc: file.map(|f| f.doc),
            write: file.and_then(|f| f.write),
            scratch: Vec::new(),
            slots: Vec::new(),
            stamps: Vec::new(),
            index: Index::default(),
            counts: Counts::default(),
            duplicates: 0,
        }
    }

    /// A record's value: a kept record is read from the file again (it was read before).
    fn load<'h>(&self, held: &'h Held) -> Cow<'h, LuaValue> {
        match held {
            Held::Value(v) => Cow::Borrowed(v),
            Held::Kept(node) => Cow::Owned(
                self.doc
                    .and_then(|doc| doc.value(*node).ok().flatten())
                    .unwrap_or_else(|| LuaValue::Table(Table::new())),
            ),
            Held::Text(text) => {
                Cow::Owned(value_of_text(text).unwrap_or_else(|| LuaValue::Table(Table::new())))
            }
        }
    }

    /// A record to write, held as its text when merging into a file. A value the writer
    /// refuses stays a value, so that finishing reports why.
    fn hold(&mut self, value: LuaValue) -> Held {
        let Some(layout) = self.write else {
            return Held::Value(value);
        };
        self.scratch.clear();
        match crate::lua::write_value(&mut self.scratch, &value, layout, RECORD_DEPTH) {
            Ok(()) => Held::Text(self.scratch.as_slice().into()),
            Err(_) => Held::Value(value),
        }
    }

    /// One of the target's records; `node`: where it is in the receiver's file, when it can
    /// stay as written there. Returns whether the record stays as it is, in its place.
    fn target(&mut self, part: Part, value: LuaValue, node: Option<Node>) -> bool {
        let keep = node.filter(|_| !layout::converts(self.table, &value, self.layout));
        let was = part.clone();
        let e = convert(self.table, Entry { part, value }, self.layout);
        let stays = keep.is_some() && e.part == was;
        let id = identity(self.table, &e).filter(|_| matches!(e.value, LuaValue::Table(_)));
        let stamp = stamp(self.table, &e.value);
        let held = match keep {
            Some(node) => Held::Kept(node),
            None => self.hold(e.value),
        };
        self.place_target(e.part, held, id, stamp) && stays
    }

    /// A record of the file that is already in the layout, in its place: its identity and
    /// stamp are read from the tree (a deferred record's from its text) and it stays a span
    /// (no value is built). `Err` gives the part back when the record must go through
    /// [`Merging::target`].
    fn target_in_place(&mut self, part: Part, node: Node) -> Result<bool, Part> {
        let Some(doc) = self.doc else {
            return Err(part);
        };
        let deferred;
        let fields = match node.kind {
            Kind::Table { .. } => NodeFields { doc, node },
            Kind::Deferred => {
                deferred = crate::lua::ParsedFile::table(doc.text(node.span));
                let Some((file, inner)) = &deferred else {
                    return Err(part);
                };
                NodeFields {
                    doc: file.doc(),
                    node: *inner,
                }
            }
            _ => return Err(part),
        };
        if !layout::stays_in_place(self.table, &part, shape_of(fields), self.layout) {
            return Err(part);
        }
        let id = match &part {
            Part::Keyed(k) => key_identity(k),
            Part::Array => id_of(self.table, fields),
        };
        Ok(self.place_target(part, Held::Kept(node), id, stamp_of(fields)))
    }

    /// Places a target record; a second record with an id already placed is a duplicate: the
    /// copy the rules prefer stays. Returns false for a dropped duplicate.
    fn place_target(
        &mut self,
        part: Part,
        held: Held,
        id: Option<Vec<u8>>,
        stamp: Option<u64>,
    ) -> bool {
        if let Some(id) = &id
            && let Some(at) = self.index.get(id)
        {
            self.duplicates += 1;
            let verdict = judge_by(
                self.table,
                self.stamps[at],
                || self.load(&self.slots[at].1),
                &self.load(&held),
                stamp,
            );
            let wins = match verdict {
                Verdict::Replace => true,
                Verdict::Conflict { incoming_wins } => incoming_wins,
                _ => false,
            };
            if wins {
                self.stamps[at] = stamp;
                self.slots[at].1 = held;
            }
            return false;
        }
        self.index.push(id.as_deref());
        self.stamps.push(stamp);
        self.slots.push((part, held));
        true
    }

    fn incoming(&mut self, e: Entry) {
        self.counts.received += 1;
        let e = convert(self.table, e, self.layout);
        let id = match (&e.value, identity(self.table, &e)) {
            (LuaValue::Table(_), Some(id)) => id,
            _ => {
                self.counts.skipped += 1;
                return;
            }
        };
        let incoming_stamp = stamp(self.table, &e.value);
        let Some(at) = self.index.get(&id) else {
            self.counts.added += 1;
            self.index.push(Some(&id));
            self.stamps.push(incoming_stamp);
            let held = self.hold(e.value);
            self.slots.push((e.part, held));
            return;
        };
        let verdict = judge_by(
            self.table,
            self.stamps[at],
            || self.load(&self.slots[at].1),
            &e.value,
            incoming_stamp,
        );
        let counts = &mut self.counts;
        let wins = match verdict {
            Verdict::Replace => {
                counts.updated += 1;
                true
            }
            Verdict::KeepNewer => {
                counts.kept_newer += 1;
                false
            }
            Verdict::Unchanged => {
                counts.unchanged += 1;
                false
            }
            Verdict::Conflict { incoming_wins } => {
                counts.conflicts += 1;
                incoming_wins
            }
            Verdict::Skip => {
                counts.skipped += 1;
                false
            }
        };
        if wins {
            self.stamps[at] = incoming_stamp;
            self.slots[at].1 = self.hold(e.value);
        }
    }
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

/// The verdict on an incoming record (with its stamp) against the target's, whose stamp is
/// `target_stamp`; the target's value (`target`) is only needed, and made, when the stamps do
/// not decide.
fn judge_by<'t>(
    table: TableName,
    target_stamp: Option<u64>,
    target: impl FnOnce() -> Cow<'t, LuaValue>,
    incoming: &LuaValue,
    incoming_stamp: Option<u64>,
) -> Verdict {
    match (target_stamp, incoming_stamp) {
        (Some(t), Some(i)) if i > t => Verdict::Replace,
        (Some(t), Some(i)) if i < t => Verdict::KeepNewer,
        (Some(_), Some(_)) => {
            let target = target();
            let target = target.as_ref();
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
            if target().as_ref() == incoming {
                Verdict::Unchanged
            } else {
                Verdict::Skip
            }
        }
    }
}

/// The text a record is compared by: its canonical text in the current layout, whatever layout
/// it arrived or is stored in.
fn tie_text(table: TableName, v: &LuaValue) -> Vec<u8> {
    let e = convert(
        table,
        Entry {
            part: Part::Array,
            value: v.clone(),
        },
        Layout::Current,
    );
    canonical::canonical(&e.value)
}

/// Whether `a` beats `b` when their stamps are equal: `deleted = true` wins, then the greater
/// canonical text in the current layout.
pub fn tie_break(table: TableName, a: &LuaValue, b: &LuaValue) -> bool {
    match (deleted(table, a), deleted(table, b)) {
        (true, false) => true,
        (false, true) => false,
        _ => tie_text(table, a) > tie_text(table, b),
    }
}

/// Merges `incoming` into `target` (absent: an empty table), in `layout`.
///
/// Every entry (the target's and the incoming ones) is converted to `layout`; an entry the
/// target holds twice is kept once (the one the rules prefer). The array part is a proper
/// sequence: the target's entries in their order (replaced in place), then new entries in
/// source order.
pub fn merge_table(
    table: TableName,
    incoming: &Table,
    target: Option<&Table>,
    layout: Layout,
) -> Merged {
    let mut merged = merge_owned(table, incoming.clone(), target.cloned(), layout);
    merged.changed = target != Some(&merged.table);
    merged
}

/// [`merge_table`] on owned tables: every record moves into the result, none is copied.
/// `changed` is left `true`: the caller, who had the target, decides it.
pub fn merge_owned(
    table: TableName,
    incoming: Table,
    target: Option<Table>,
    layout: Layout,
) -> Merged {
    let mut m = Merging::new(table, layout, None);
    for e in target.map(into_entries).unwrap_or_default() {
        m.target(e.part, e.value, None);
    }
    for e in into_entries(incoming) {
        m.incoming(e);
    }
    // Without a file, every record is a value.
    let merged = assemble(m.slots.into_iter().filter_map(|(part, held)| match held {
        Held::Value(value) => Some(Entry { part, value }),
        Held::Kept(_) | Held::Text(_) => None,
    }));
    Merged {
        table: merged,
        counts: m.counts,
        changed: true,
        layout,
        duplicates: m.duplicates,
    }
}

/// Merges `incoming` into the table at `node` of the receiver's file (`None`: the file has
/// none), in `layout`, with the rules of [`merge_table`]. The file's records that stay as they
/// are stay as nodes: only what changes becomes a value, or with `write` (the file's layout)
/// the value's text ([`Held::Text`]).
pub fn merge_into_file(
    file: InFile<'_, '_>,
    table: TableName,
    incoming: Table,
    layout: Layout,
    prepared: Option<Prepared>,
) -> FileMerged {
    let Ok(merged) = merge_into_file_with(file, table, layout, prepared, |add| {
        into_entries(incoming).into_iter().for_each(add);
        Ok::<_, std::convert::Infallible>(())
    });
    merged
}

/// [`merge_into_file`] with the incoming entries given one at a time by `incoming` (which
/// calls its argument for each), as a payload is decoded; `prepared`: the file's table read
/// already (used when it was read in `layout`).
pub fn merge_into_file_with<E>(
    file: InFile<'_, '_>,
    table: TableName,
    layout: Layout,
    prepared: Option<Prepared>,
    incoming: impl FnOnce(&mut dyn FnMut(Entry)) -> Result<(), E>,
) -> Result<FileMerged, E> {
    let prepared = prepared
        .filter(|p| p.layout == layout)
        .unwrap_or_else(|| prepare(file, table, layout));
    let mut m = Merging::new(table, layout, Some(file));
    m.slots = prepared.slots;
    m.stamps = prepared.stamps;
    m.index = prepared.index;
    m.duplicates = prepared.duplicates;
    incoming(&mut |e| m.incoming(e))?;
    // The index goes before the entries are put in table order (next to the slots).
    let Merging {
        slots,
        counts,
        duplicates,
        index,
        stamps,
        ..
    } = m;
    drop((index, stamps));
    let entries = assemble_parts(slots);
    // Unchanged: every record kept as it is, in its place (the array part keeps its numbers
    // when no record of it moved or was dropped), and none added or replaced.
    let changed = file.node.is_none()
        || prepared.moved
        || entries
            .iter()
            .any(|(_, held)| !matches!(held, Held::Kept(_)));
    Ok(FileMerged {
        entries,
        counts,
        changed,
        layout,
        duplicates,
    })
}

/// The records of a table, for the metadata rebuild.
#[derive(Debug, Clone, Copy)]
pub enum Records<'r> {
    Table(&'r Table),
    /// A table merged into a file: kept records are read from the file one at a time.
    File(&'r Document<'r>, &'r [(Key, Held)]),
}

impl Records<'_> {
    fn each(&self, mut f: impl FnMut(&Key, &LuaValue)) {
        match self {
            Records::Table(t) => t.iter().for_each(|(k, v)| f(k, v)),
            Records::File(doc, entries) => {
                for (k, held) in entries.iter() {
                    match held {
                        Held::Value(v) => f(k, v),
                        Held::Kept(n) => {
                            if let Ok(Some(v)) = doc.value(*n) {
                                f(k, &v);
                            }
                        }
                        Held::Text(text) => {
                            if let Some(v) = value_of_text(text) {
                                f(k, &v);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The synced tables that have metadata rows, in the order the addon builds them.
const METADATA_TABLES: [TableName; 5] = [
    TableName::Roster,
    TableName::News,
    TableName::GuildInfo,
    TableName::Calendar,
    TableName::Setup,
];

/// `metadata` rebuilt as GuildHelper's own `Maintenance.lua` does it at login: the existing
/// rows stay, and for every key of roster, news, guildInfo and calendar (and, for setup, only
/// the key `199901010000001234`) the row `{id, tableType, guildName, lastUpdated, deleted}` is
/// added or overwritten, `tableType` the table's name and the rest copied from the record
/// (absent stays absent).
pub fn rebuild_metadata<'a>(
    existing: Option<&Table>,
    tables: impl IntoIterator<Item = (TableName, Records<'a>)>,
) -> Table {
    let mut metadata = existing.cloned().unwrap_or_default();
    for name in METADATA_TABLES {
        if metadata
            .get_str(name.as_str())
            .and_then(LuaValue::as_table)
            .is_none()
        {
            metadata.insert(Key::str(name.as_str()), LuaValue::Table(Table::new()));
        }
    }
    for (name, table) in tables {
        let mut rows = metadata
            .get_str(name.as_str())
            .and_then(LuaValue::as_table)
            .cloned()
            .unwrap_or_default();
        table.each(|key, value| {
            if name == TableName::Setup && key.as_str() != Some(SETUP_ID.as_bytes()) {
                return;
            }
            let Some(record) = value.as_table() else {
                return;
            };
            let mut row = Table::new();
            for (field, v) in [
                ("deleted", record.get_str("deleted").cloned()),
                ("tableType", Some(LuaValue::str(name.as_str()))),
                ("lastUpdated", record.get_str("lastUpdated").cloned()),
                ("guildName", record.get_str("guildName").cloned()),
                ("id", record.get_str("id").cloned()),
            ] {
                if let Some(v) = v {
                    row.insert(Key::str(field), v);
                }
            }
            rows.insert(key.clone(), LuaValue::Table(row));
        });
        metadata.insert(Key::str(name.as_str()), LuaValue::Table(rows));
    }
    metadata
}

/// The result of merging a whole `sharedData` into a target table.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedMerge {
    /// Each synced table the source has, merged, in sync order.
    pub tables: Vec<(TableName, Merged)>,
    /// The rebuilt `metadata`, when the source or the target has one.
    pub metadata: Option<Table>,
}

fn sub<'a>(t: Option<&'a Table>, name: &str) -> Option<&'a Table> {
    t.and_then(|t| t.get_str(name)).and_then(LuaValue::as_table)
}

/// The layout a receiver writes a table in: see [`layout::decide`].
pub fn layout_for(
    name: TableName,
    own: Option<&Table>,
    target: Option<&Table>,
    source: Option<&Table>,
) -> Layout {
    decide(
        name,
        sub(own, name.as_str()),
        sub(target, name.as_str()),
        sub(source, name.as_str()),
    )
}

/// Merges every synced table of `source` (a `sharedData`) into `target` (the target table, if
/// it exists), in the layout of `own` (the receiver's own `sharedData`). A synced table the
/// source lacks leaves the target's as it is.
pub fn merge_shared(source: &Table, target: Option<&Table>, own: Option<&Table>) -> SharedMerge {
    let mut tables = Vec::new();
    for name in TableName::ALL {
        let Some(incoming) = sub(Some(source), name.as_str()) else {
            continue;
        };
        let layout = layout_for(name, own, target, Some(source));
        tables.push((
            name,
            merge_table(name, incoming, sub(target, name.as_str()), layout),
        ));
    }
    let metadata = (source.get_str("metadata").is_some()
        || target.and_then(|t| t.get_str("metadata")).is_some())
    .then(|| metadata_of(target, &tables));
    SharedMerge { tables, metadata }
}

/// The target's metadata rebuilt from the merged tables (and the target's other tables).
fn metadata_of(target: Option<&Table>, merged: &[(TableName, Merged)]) -> Table {
    rebuild_metadata(
        sub(target, "metadata"),
        TableName::ALL.into_iter().filter_map(|name| {
            merged
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, m)| &m.table)
                .or_else(|| sub(target, name.as_str()))
                .map(|t| (name, Records::Table(t)))
        }),
    )
}

/// Whether merging `source` (a `sharedData`) into `target` would change the target: the
/// decision a receiver makes before it writes (a merge that changes nothing writes nothing).
pub fn changes(source: &Table, target: Option<&Table>, own: Option<&Table>) -> bool {
    let merge = merge_shared(source, target, own);
    target != Some(&apply(target, &merge))
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

/// Writes a merge into the receiver's file: each merged table (and the metadata) that differs
/// from the target's replaces its value under `GuildHelper_SavedVariables.<target>`; every
/// other byte stays as it was. When the target table does not exist yet, it is added whole.
pub fn splice_merge(
    doc: &Document<'_>,
    target: Target,
    current: Option<&Table>,
    merge: &SharedMerge,
) -> Result<Vec<u8>, SpliceError> {
    let layout = crate::lua::Layout::detect(doc.src());
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
    let changed = |name: &str, new: &Table| sub(Some(current), name) != Some(new);
    for (name, merged) in &merge.tables {
        if changed(name.as_str(), &merged.table) {
            splicer.set(
                KeyPath {
                    global: SAVED_VARIABLES,
                    keys: &[target.key(), name.as_str()],
                },
                &LuaValue::Table(merged.table.clone()),
            )?;
        }
    }
    if let Some(metadata) = &merge.metadata
        && changed("metadata", metadata)
    {
        splicer.set(
            KeyPath {
                global: SAVED_VARIABLES,
                keys: &[target.key(), "metadata"],
            },
            &LuaValue::Table(metadata.clone()),
        )?;
    }
    splicer.finish()
}

#[cfg(test)]
mod tests;
