//! The receiver's file during a sync: read and parsed once, each incoming table merged once as
//! it arrives (in the receiver's layout), and the result spliced from those same merges, so the
//! counts a receiver confirms are the counts of the bytes it writes.

use std::collections::BTreeMap;

use crate::lua::{
    Document, FieldKey, Item, Key, KeyPath, Kind, LuaValue, Node, ParsedFile, PlacedError, Spill,
    SpliceError, Splicer, Table, WriteError, WriteFn, write_items_spilling, write_tables_spilling,
};
use crate::model::tables::TableName;
use crate::model::{ModelError, SAVED_VARIABLES, SHARED_DATA, Target, parse_options, shared_node};

use super::layout::{Layout, decide, layout_of_values};
use super::{
    Counts, FileMerged, Held, InFile, Prepared, RECORD_DEPTH, Records, merge_into_file,
    merge_into_file_with, prepare, rebuild_metadata,
};
use crate::model::json::{JsonError, for_each_entry, table_from_json_bytes};

/// Why a receiver's file cannot be merged into.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Parse(#[from] PlacedError),
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// Why a merged file could not be produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FinishError {
    #[error(transparent)]
    Splice(#[from] SpliceError),
    /// svsync's own bug: the spliced file does not read back as the merged table.
    #[error("the merged file does not read back as the merged table ({0})")]
    Verify(String),
}

/// A receiver's file and the tables merged into it so far.
///
/// Only the file's bytes and their syntax tree are kept; a target table becomes a value only
/// while its merge runs, and its records then move into the result. Whether a merge changed a
/// table, and whether the written file holds what was merged, are decided against the tree.
#[derive(Debug)]
pub struct TargetFile {
    file: ParsedFile,
    target: Target,
    /// The layout of each table of the receiver's own `sharedData` (what its addon reads).
    own: [Option<Layout>; 5],
    /// The file's layout, which merged records are written in.
    write: crate::lua::Layout,
    /// Tables read for their merges, until they are merged.
    prepared: [Option<Prepared>; 5],
    merged: BTreeMap<TableName, FileMerged>,
}

fn position(name: TableName) -> usize {
    TableName::ALL.iter().position(|&t| t == name).unwrap_or(0)
}

/// The node of `GuildHelper_SavedVariables[target][keys...]`, when every step is a kept table.
fn node_at(doc: &Document<'_>, target: Target, keys: &[&str]) -> Option<Node> {
    let mut node = doc.global(SAVED_VARIABLES)?.value;
    for key in std::iter::once(&target.key()).chain(keys) {
        if !matches!(node.kind, Kind::Table { .. }) {
            return None;
        }
        node = doc.get(node, key.as_bytes())?.value;
    }
    matches!(node.kind, Kind::Table { .. }).then_some(node)
}

impl TargetFile {
    /// Parses the receiver's file and checks its target table.
    pub fn open(bytes: Vec<u8>, target: Target) -> Result<TargetFile, OpenError> {
        let mut file = ParsedFile::parse(bytes, &parse_options())?;
        let doc = file.doc();
        // The same checks as reading the whole target table, without keeping it.
        let target_node = shared_node(doc, target.key())?;
        let mut own = [None; 5];
        // The receiver's own sharedData decides the layouts; without one, the target's.
        let own_node = match target {
            Target::SharedDataRemote => shared_node(doc, SHARED_DATA)?.or(target_node),
            Target::SharedData => target_node,
        };
        for name in TableName::ALL {
            // Records are built one at a time, until the first envelope.
            let Some(node) = own_node
                .and_then(|n| doc.get(n, name.as_str().as_bytes()))
                .map(|f| f.value)
                .filter(|n| matches!(n.kind, Kind::Table { .. }))
            else {
                continue;
            };
            let values = doc
                .entries_of(node)
                .into_iter()
                .filter_map(|(_, record)| doc.value(record).ok().flatten())
                .map(std::borrow::Cow::Owned);
            own[position(name)] = layout_of_values(name, values);
        }
        // The tables whose layout is known are read for their merges now; then only their
        // records' spans are kept (a record costs one node instead of one per field).
        let write = crate::lua::Layout::detect(file.bytes());
        let mut prepared: [Option<Prepared>; 5] = Default::default();
        let mut records = Vec::new();
        for name in TableName::ALL {
            let (Some(layout), Some(node)) =
                (own[position(name)], node_at(doc, target, &[name.as_str()]))
            else {
                continue;
            };
            let file = InFile {
                doc,
                node: Some(node),
                write: Some(write),
            };
            prepared[position(name)] = Some(prepare(file, name, layout));
            let tables = doc.fields(node).iter().map(|f| f.value);
            records.extend(tables.filter(|n| matches!(n.kind, Kind::Table { .. })));
        }
        file.defer(&records);
        for p in prepared.iter_mut().flatten() {
            p.records_deferred();
        }
        Ok(TargetFile {
            file,
            target,
            own,
            write,
            prepared,
            merged: BTreeMap::new(),
        })
    }

    pub fn bytes(&self) -> &[u8] {
        self.file.bytes()
    }

    /// The file, for a merge of table `name`.
    fn in_file(&self, name: TableName) -> InFile<'_, '_> {
        let doc = self.file.doc();
        InFile {
            doc,
            node: node_at(doc, self.target, &[name.as_str()]),
            write: Some(self.write),
        }
    }

    pub fn target(&self) -> Target {
        self.target
    }

    /// A table of the target table, as a value (built for the moment it is needed).
    fn current(&self, key: &str) -> Option<Table> {
        let doc = self.file.doc();
        let node = node_at(doc, self.target, &[key])?;
        match doc.value(node) {
            Ok(Some(LuaValue::Table(t))) => Some(t),
            _ => None,
        }
    }

    /// Merges one incoming table (replacing an earlier merge of the same table) and returns
    /// its counts.
    pub fn merge(&mut self, name: TableName, incoming: Table) -> Counts {
        let layout = self.own[position(name)].unwrap_or_else(|| {
            decide(
                name,
                None,
                self.current(name.as_str()).as_ref(),
                Some(&incoming),
            )
        });
        let prepared = self.prepared[position(name)].take();
        let merged = merge_into_file(self.in_file(name), name, incoming, layout, prepared);
        let counts = merged.counts;
        self.merged.insert(name, merged);
        counts
    }

    /// Merges one incoming table from its JSON payload, decoding it entry by entry when it can
    /// (the whole table is then never in memory).
    pub fn merge_json(&mut self, name: TableName, payload: &[u8]) -> Result<Counts, JsonError> {
        if let Some(layout) = self.own[position(name)] {
            let mut whole = false;
            let prepared = self.prepared[position(name)].take();
            let merged = merge_into_file_with(self.in_file(name), name, layout, prepared, |add| {
                whole = !for_each_entry(payload, add)?;
                Ok::<_, JsonError>(())
            })?;
            if !whole {
                let counts = merged.counts;
                self.merged.insert(name, merged);
                return Ok(counts);
            }
        }
        Ok(self.merge(name, table_from_json_bytes(payload)?))
    }

    /// Per table merged so far, how many repeated-id records of the target were dropped.
    pub fn duplicates(&self) -> Vec<(TableName, u32)> {
        self.merged
            .iter()
            .filter(|(_, m)| m.duplicates > 0)
            .map(|(n, m)| (*n, m.duplicates))
            .collect()
    }

    /// Forgets the merge of a table (its staged copy was dropped).
    pub fn forget(&mut self, name: TableName) {
        self.merged.remove(&name);
    }

    /// The target's `metadata` rebuilt from the merged tables and the target's others, when
    /// the source or the target has one; and whether it differs from the target's.
    fn metadata(&self, metadata: bool) -> Option<(Table, bool)> {
        let existing = self.current("metadata");
        if !metadata && existing.is_none() {
            return None;
        }
        let others: Vec<(TableName, Table)> = TableName::ALL
            .into_iter()
            .filter(|name| !self.merged.contains_key(name))
            .filter_map(|name| self.current(name.as_str()).map(|t| (name, t)))
            .collect();
        let doc = self.file.doc();
        let tables = TableName::ALL.into_iter().filter_map(|name| {
            let records = match self.merged.get(&name) {
                Some(m) => Records::File(doc, &m.entries),
                None => Records::Table(others.iter().find(|(n, _)| *n == name).map(|(_, t)| t)?),
            };
            Some((name, records))
        });
        let rebuilt = rebuild_metadata(existing.as_ref(), tables);
        let changed = existing.as_ref() != Some(&rebuilt);
        Some((rebuilt, changed))
    }

    /// The merged file (`None` when the merge changes nothing) and the file as it was read.
    /// `metadata`: the source has a `metadata` table (the target's is rebuilt as the addon
    /// does; it is also rebuilt when the target has one).
    pub fn finish(self, metadata: bool) -> Result<Finished, FinishError> {
        match self.conclude(metadata)? {
            Concluded::Unchanged(original) => Ok(Finished {
                merged: None,
                original,
            }),
            Concluded::Merged(merged) => Ok(Finished {
                merged: Some(merged.to_vec()?),
                original: merged.into_original(),
            }),
        }
    }

    /// What the merge makes of the file: nothing, or a merged file to write. A record the
    /// writer refuses (nested too deep, say) is found here, before any file is touched.
    pub fn conclude(mut self, metadata: bool) -> Result<Concluded, FinishError> {
        let metadata = self.metadata(metadata);
        let merged = std::mem::take(&mut self.merged);
        let doc = self.file.doc();
        let exists = node_at(doc, self.target, &[]).is_some();
        let metadata_changed = metadata.as_ref().is_some_and(|(_, changed)| *changed);
        if exists && !metadata_changed && !merged.values().any(|m| m.changed) {
            return Ok(Concluded::Unchanged(self.file.into_owner()));
        }
        // What is written, by key of the target table: merged tables (their records kept as
        // the file has them, or text, or values) and the metadata.
        let mut written: Vec<Written> = merged
            .into_iter()
            .filter(|(_, m)| m.changed || !exists)
            .map(|(name, m)| (name.as_str(), m.entries))
            .collect();
        if let Some((table, changed)) = metadata
            && (changed || !exists)
        {
            let entries = table
                .into_entries()
                .into_iter()
                .map(|(k, v)| (k, Held::Value(v)))
                .collect();
            written.push(("metadata", entries));
        }
        // Only a record the writer refused stays a value (and the metadata's rows are values).
        let mut scratch = Vec::new();
        for (_, entries) in &written {
            for (_, held) in entries {
                if let Held::Value(value) = held {
                    scratch.clear();
                    crate::lua::write_value(&mut scratch, value, self.write, RECORD_DEPTH)
                        .map_err(|e| FinishError::Splice(SpliceError::Write(e)))?;
                }
            }
        }
        Ok(Concluded::Merged(MergedFile {
            file: self.file,
            target: self.target,
            layout: self.write,
            exists,
            written,
        }))
    }
}

/// What a receiver's merge makes of its file.
#[derive(Debug)]
pub enum Concluded {
    /// The merge changes nothing: the file as it was read.
    Unchanged(Vec<u8>),
    Merged(MergedFile),
}

/// Why a merged file could not be written out.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// Where it was going refused it.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Finish(#[from] FinishError),
}

/// A merged file, written out when asked ([`MergedFile::write_to`]): it never needs to be in
/// memory whole (the receiver writes it straight into its temporary file, then checks what
/// it wrote before it takes the file's place).
#[derive(Debug)]
pub struct MergedFile {
    file: ParsedFile,
    target: Target,
    layout: crate::lua::Layout,
    /// The target table exists in the file (else it is added whole).
    exists: bool,
    written: Vec<Written>,
}

impl MergedFile {
    /// The file as it was read.
    pub fn original(&self) -> &[u8] {
        self.file.bytes()
    }

    pub fn into_original(self) -> Vec<u8> {
        self.file.into_owner()
    }

    /// The merged file in memory, checked.
    pub fn to_vec(&self) -> Result<Vec<u8>, FinishError> {
        let mut out = Vec::with_capacity(self.original().len());
        self.write_to(&mut out).map_err(|e| match e {
            OutputError::Finish(e) => e,
            // Writing to memory does not fail.
            OutputError::Io(e) => FinishError::Verify(e.to_string()),
        })?;
        let holds = cfg!(debug_assertions).then(|| (self.original(), &self.written[..]));
        check_written(out, self.target, holds)
    }

    /// What checking the written file needs, once it is written: release builds keep nothing
    /// of the merge (its records and the file read go before the written file is read back).
    pub fn into_checker(self) -> Checker {
        Checker {
            target: self.target,
            merged: cfg!(debug_assertions).then_some(self),
        }
    }

    /// Writes the merged file to `w`, block by block.
    pub fn write_to(&self, w: &mut dyn std::io::Write) -> Result<(), OutputError> {
        let doc = self.file.doc();
        let layout = self.layout;
        // Each table's items, then a writer for each: both outlive the splicer, which writes
        // the tables out as it finishes.
        let tables: Vec<(Key, Vec<(&Key, Item<'_>)>)> = self
            .written
            .iter()
            .map(|(key, entries)| (Key::str(key), items(doc, entries)))
            .collect();
        // What the writers hand on goes to `w` (through the same cell as the splicer's own
        // pieces, in order); an I/O error is kept here and reported as such.
        let out = std::cell::RefCell::new(w);
        let failed: std::cell::RefCell<Option<std::io::Error>> = Default::default();
        let put = |bytes: &[u8]| -> Result<(), WriteError> {
            out.borrow_mut().write_all(bytes).map_err(|e| {
                *failed.borrow_mut() = Some(e);
                WriteError::Spill
            })
        };
        // The splicer calls every writer while it writes out (a new field's value too), so
        // what a writer hands on falls in its place.
        let mut spill = |buf: &mut Vec<u8>| {
            put(buf)?;
            buf.clear();
            Ok(())
        };
        let spill = std::cell::RefCell::new(&mut spill as &mut Spill<'_>);
        type Writer<'w> = Box<WriteFn<'w>>;
        let target_key = self.target.key();
        let writers: Vec<(Vec<&str>, Writer<'_>)> = if self.exists {
            tables
                .iter()
                .zip(&self.written)
                .map(|((_, items), (key, _))| {
                    let spill = &spill;
                    let write: Writer<'_> = Box::new(move |buf, depth| {
                        let mut spill = spill.borrow_mut();
                        write_items_spilling(buf, items, layout, depth, *spill)
                    });
                    (vec![target_key, *key], write)
                })
                .collect()
        } else {
            // A new target table: nothing of it is in the file yet.
            let spill = &spill;
            let tables: Vec<(&Key, &[(&Key, Item<'_>)])> =
                tables.iter().map(|(k, items)| (k, &items[..])).collect();
            let write: Writer<'_> = Box::new(move |buf, depth| {
                let mut spill = spill.borrow_mut();
                write_tables_spilling(buf, &tables, layout, depth, *spill)
            });
            vec![(vec![target_key], write)]
        };
        let mut splicer = Splicer::new(doc, layout);
        let result = writers
            .iter()
            .try_for_each(|(keys, write)| {
                splicer.set_with(
                    KeyPath {
                        global: SAVED_VARIABLES,
                        keys,
                    },
                    write.as_ref(),
                )
            })
            .and_then(|()| splicer.finish_to(&mut |bytes| put(bytes).map_err(SpliceError::from)));
        let failed = failed.borrow_mut().take();
        match (result, failed) {
            (_, Some(io)) => Err(OutputError::Io(io)),
            (Err(e), None) => Err(OutputError::Finish(e.into())),
            (Ok(()), None) => Ok(()),
        }
    }
}

/// A merged table, by its key in the target table, with its entries.
type Written = (&'static str, Vec<(Key, Held)>);

/// Checks a merged file once it is written ([`MergedFile::into_checker`]).
#[derive(Debug)]
pub struct Checker {
    target: Target,
    /// The merge, kept by builds with debug assertions to compare.
    merged: Option<MergedFile>,
}

impl Checker {
    /// Checks the written bytes (and gives them back): see [`check_written`].
    pub fn check(&self, written: Vec<u8>) -> Result<Vec<u8>, FinishError> {
        let holds = self.merged.as_ref().map(|m| (m.original(), &m.written[..]));
        check_written(written, self.target, holds)
    }
}

/// The written bytes must load, Lua's limits included (the whole file is checked, with no
/// tree). With `holds` (builds with debug assertions: the file read and what was merged), the
/// file must also hold exactly what was merged, checked against a tree of the target table.
fn check_written(
    written: Vec<u8>,
    target: Target,
    holds: Option<(&[u8], &[Written])>,
) -> Result<Vec<u8>, FinishError> {
    let path: &[&str] = &[SAVED_VARIABLES, target.key()];
    let keep = match holds {
        Some(_) => crate::lua::Keep::Paths(&[path]),
        None => crate::lua::Keep::Nothing,
    };
    let options = crate::lua::ParseOptions {
        keep,
        ..parse_options()
    };
    let back =
        ParsedFile::parse(written, &options).map_err(|e| FinishError::Verify(e.to_string()))?;
    if let Some((original, entries)) = holds {
        let doc = back.doc();
        for (key, entries) in entries {
            let held = node_at(doc, target, &[key])
                .is_some_and(|node| self::holds(doc, node, original, entries));
            if !held {
                return Err(FinishError::Verify(format!("`{key}` differs")));
            }
        }
    }
    Ok(back.into_owner())
}

/// What finishing a receiver's file gives.
#[derive(Debug)]
pub struct Finished {
    /// The merged file; `None` when the merge changes nothing.
    pub merged: Option<Vec<u8>>,
    /// The file as it was read.
    pub original: Vec<u8>,
}

/// What to write for merged entries: a kept record's text as the file has it, or a value.
fn items<'e>(doc: &'e Document<'_>, entries: &'e [(Key, Held)]) -> Vec<(&'e Key, Item<'e>)> {
    entries
        .iter()
        .map(|(k, held)| {
            let item = match held {
                Held::Kept(node) => Item::Text(doc.text(node.span)),
                Held::Value(v) => Item::Value(v),
                Held::Text(text) => Item::Text(text),
            };
            (k, item)
        })
        .collect()
}

/// Whether the table at `node` of the written file holds exactly `entries`: every field in
/// the order written, under its key, a kept record with the text it had in `original`, a value
/// equal to what was merged.
fn holds(back: &Document<'_>, node: Node, original: &[u8], entries: &[(Key, Held)]) -> bool {
    let fields = back.fields(node);
    if fields.len() != entries.len() {
        return false;
    }
    let mut positional = 0;
    let mut by_key: std::collections::HashMap<&Key, &Held> =
        entries.iter().map(|(k, h)| (k, h)).collect();
    fields.iter().all(|field| {
        if field.key == FieldKey::Positional {
            positional += 1;
        }
        let Some(key) = back.field_key(field, positional) else {
            return false;
        };
        match by_key.remove(&key) {
            Some(Held::Kept(n)) => {
                original.get(n.span.range()) == Some(back.text(field.value.span))
            }
            Some(Held::Value(v)) => back.matches(field.value, v),
            Some(Held::Text(text)) => back.text(field.value.span) == &text[..],
            None => false,
        }
    })
}
