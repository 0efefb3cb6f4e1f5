//! The receiver's file during a sync: read and parsed once, each incoming table merged once as
//! it arrives (in the receiver's layout), and the result spliced from those same merges, so the
//! counts a receiver confirms are the counts of the bytes it writes.

use std::collections::BTreeMap;

use crate::lua::{
    Document, Key, KeyPath, Kind, LuaValue, Node, ParsedFile, PlacedError, SpliceError, Splicer,
    Table,
};
use crate::model::tables::TableName;
use crate::model::{ModelError, SAVED_VARIABLES, SHARED_DATA, Target, parse_options};

use super::layout::{Layout, decide, layout_of};
use super::{Counts, Merged, merge_owned, rebuild_metadata};

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
    merged: BTreeMap<TableName, Merged>,
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
        let file = ParsedFile::parse(bytes, &parse_options())?;
        let doc = file.doc();
        // The same checks as reading the whole target table, without keeping it.
        check_shared_table(doc, target.key())?;
        let mut own = [None; 5];
        let own_key = match target {
            Target::SharedData => target.key(),
            Target::SharedDataRemote if doc_has(doc, SHARED_DATA) => SHARED_DATA,
            Target::SharedDataRemote => target.key(),
        };
        for name in TableName::ALL {
            own[position(name)] = sub_table(doc, own_key, name.as_str())?
                .as_ref()
                .and_then(|t| layout_of(name, t));
        }
        Ok(TargetFile {
            file,
            target,
            own,
            merged: BTreeMap::new(),
        })
    }

    pub fn bytes(&self) -> &[u8] {
        self.file.bytes()
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
        let current = self.current(name.as_str());
        let layout = self.own[position(name)]
            .unwrap_or_else(|| decide(name, None, current.as_ref(), Some(&incoming)));
        let mut merged = merge_owned(name, incoming, current, layout);
        let doc = self.file.doc();
        merged.changed = !node_at(doc, self.target, &[name.as_str()])
            .is_some_and(|node| doc.table_matches(node, &merged.table));
        let counts = merged.counts;
        self.merged.insert(name, merged);
        counts
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
        let tables = TableName::ALL.into_iter().filter_map(|name| {
            self.merged
                .get(&name)
                .map(|m| &m.table)
                .or_else(|| others.iter().find(|(n, _)| *n == name).map(|(_, t)| t))
                .map(|t| (name, t))
        });
        let rebuilt = rebuild_metadata(existing.as_ref(), tables);
        let changed = existing.as_ref() != Some(&rebuilt);
        Some((rebuilt, changed))
    }

    /// The merged file, or `None` when the merge changes nothing. `metadata`: the source has a
    /// `metadata` table (the target's is rebuilt as the addon does; it is also rebuilt when the
    /// target has one). Uses up the merges: a receiver finishes a file once.
    pub fn finish(&mut self, metadata: bool) -> Result<Option<Vec<u8>>, FinishError> {
        let metadata = self.metadata(metadata);
        let merged = std::mem::take(&mut self.merged);
        let doc = self.file.doc();
        let exists = node_at(doc, self.target, &[]).is_some();
        let metadata_changed = metadata.as_ref().is_some_and(|(_, changed)| *changed);
        if exists && !metadata_changed && !merged.values().any(|m| m.changed) {
            return Ok(None);
        }
        // What is written, by key of the target table.
        let mut written: Vec<(&str, LuaValue)> = merged
            .into_iter()
            .filter(|(_, m)| m.changed || !exists)
            .map(|(name, m)| (name.as_str(), LuaValue::Table(m.table)))
            .collect();
        if let Some((table, changed)) = metadata
            && (changed || !exists)
        {
            written.push(("metadata", LuaValue::Table(table)));
        }
        let layout = crate::lua::Layout::detect(doc.src());
        let mut splicer = Splicer::new(doc, layout);
        if exists {
            for (key, value) in &written {
                splicer.set(
                    KeyPath {
                        global: SAVED_VARIABLES,
                        keys: &[self.target.key(), key],
                    },
                    value,
                )?;
            }
        } else {
            let whole = LuaValue::Table(Table::from_entries(
                written.into_iter().map(|(k, v)| (Key::str(k), v)),
            ));
            splicer.set(
                KeyPath {
                    global: SAVED_VARIABLES,
                    keys: &[self.target.key()],
                },
                &whole,
            )?;
            written = match whole {
                LuaValue::Table(t) => t
                    .into_entries()
                    .into_iter()
                    .filter_map(|(k, v)| {
                        let key = TableName::ALL
                            .into_iter()
                            .map(TableName::as_str)
                            .chain(["metadata"])
                            .find(|n| k.as_str() == Some(n.as_bytes()))?;
                        Some((key, v))
                    })
                    .collect(),
                _ => Vec::new(),
            };
        }
        let out = splicer.finish()?;
        // The written bytes must load (Lua's limits included) and hold what was merged.
        let check = ParsedFile::parse(out, &parse_options())
            .map_err(|e| FinishError::Verify(e.to_string()))?;
        let back = check.doc();
        for (key, value) in &written {
            let held =
                node_at(back, self.target, &[key]).is_some_and(|node| back.matches(node, value));
            if !held {
                return Err(FinishError::Verify(format!("`{key}` differs")));
            }
        }
        Ok(Some(check.into_owner()))
    }
}

/// Whether `GuildHelper_SavedVariables[key]` exists.
fn doc_has(doc: &Document<'_>, key: &str) -> bool {
    doc.global(SAVED_VARIABLES)
        .is_some_and(|g| doc.get(g.value, key.as_bytes()).is_some())
}

/// `shared_table`'s checks: the saved variables are a table, and `key` (if present) is a kept
/// table.
fn check_shared_table(doc: &Document<'_>, key: &str) -> Result<(), ModelError> {
    let global = doc
        .global(SAVED_VARIABLES)
        .ok_or(ModelError::NoSavedVariables)?;
    if !doc.is_table(global.value) {
        return Err(ModelError::NotATable(SAVED_VARIABLES.to_string()));
    }
    let Some(field) = doc.get(global.value, key.as_bytes()) else {
        return Ok(());
    };
    let path = format!("{SAVED_VARIABLES}.{key}");
    match field.value.kind {
        Kind::Table { .. } | Kind::Nil => Ok(()),
        Kind::Skipped => Err(ModelError::NotKept(path)),
        _ => Err(ModelError::NotATable(path)),
    }
}

/// `GuildHelper_SavedVariables[key][name]` as a value, when it is a table.
fn sub_table(doc: &Document<'_>, key: &str, name: &str) -> Result<Option<Table>, ModelError> {
    check_shared_table(doc, key)?;
    let Some(global) = doc.global(SAVED_VARIABLES) else {
        return Ok(None);
    };
    let Some(shared) = doc.get(global.value, key.as_bytes()) else {
        return Ok(None);
    };
    let Some(field) = doc.get(shared.value, name.as_bytes()) else {
        return Ok(None);
    };
    match doc.value(field.value) {
        Ok(Some(LuaValue::Table(t))) => Ok(Some(t)),
        _ => Ok(None),
    }
}
