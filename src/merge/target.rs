//! The receiver's file during a sync: read and parsed once, each incoming table merged once as
//! it arrives (in the receiver's layout), and the result spliced from those same merges, so the
//! counts a receiver confirms are the counts of the bytes it writes.

use std::collections::BTreeMap;

use crate::lua::{LuaValue, ParsedFile, PlacedError, SpliceError, Table};
use crate::model::tables::TableName;
use crate::model::{ModelError, SHARED_DATA, Target, parse_options, shared_table};

use super::layout::{Layout, decide, layout_of};
use super::{Counts, Merged, SharedMerge, apply, merge_table, rebuild_metadata, splice_merge};

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
#[derive(Debug)]
pub struct TargetFile {
    file: ParsedFile,
    target: Target,
    current: Option<Table>,
    /// The layout of each table of the receiver's own `sharedData` (what its addon reads).
    own: [Option<Layout>; 5],
    merged: BTreeMap<TableName, Merged>,
}

fn position(name: TableName) -> usize {
    TableName::ALL.iter().position(|&t| t == name).unwrap_or(0)
}

impl TargetFile {
    /// Parses the receiver's file and takes its target table.
    pub fn open(bytes: Vec<u8>, target: Target) -> Result<TargetFile, OpenError> {
        let file = ParsedFile::parse(bytes, &parse_options())?;
        let current = shared_table(file.doc(), target.key())?;
        let own_table = match target {
            Target::SharedData => None,
            Target::SharedDataRemote => shared_table(file.doc(), SHARED_DATA)?,
        };
        let own_table = own_table.as_ref().or(current.as_ref());
        let mut own = [None; 5];
        for name in TableName::ALL {
            own[position(name)] = own_table
                .and_then(|t| t.get_str(name.as_str()))
                .and_then(LuaValue::as_table)
                .and_then(|t| layout_of(name, t));
        }
        Ok(TargetFile {
            file,
            target,
            current,
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

    fn current_table(&self, name: TableName) -> Option<&Table> {
        self.current
            .as_ref()
            .and_then(|t| t.get_str(name.as_str()))
            .and_then(LuaValue::as_table)
    }

    /// Merges one incoming table (replacing an earlier merge of the same table) and returns
    /// its counts.
    pub fn merge(&mut self, name: TableName, incoming: &Table) -> Counts {
        let current = self.current_table(name);
        let layout =
            self.own[position(name)].unwrap_or_else(|| decide(name, None, current, Some(incoming)));
        let merged = merge_table(name, incoming, current, layout);
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

    fn shared_merge(&self, metadata: bool) -> SharedMerge {
        let tables: Vec<(TableName, Merged)> =
            self.merged.iter().map(|(n, m)| (*n, m.clone())).collect();
        let existing = self
            .current
            .as_ref()
            .and_then(|t| t.get_str("metadata"))
            .and_then(LuaValue::as_table);
        let metadata = (metadata || existing.is_some()).then(|| {
            rebuild_metadata(
                existing,
                TableName::ALL.into_iter().filter_map(|name| {
                    self.merged
                        .get(&name)
                        .map(|m| &m.table)
                        .or_else(|| self.current_table(name))
                        .map(|t| (name, t))
                }),
            )
        });
        SharedMerge { tables, metadata }
    }

    /// The merged file, or `None` when the merge changes nothing. `metadata`: the source has a
    /// `metadata` table (the target's is rebuilt as the addon does; it is also rebuilt when the
    /// target has one).
    pub fn finish(&self, metadata: bool) -> Result<Option<Vec<u8>>, FinishError> {
        let merge = self.shared_merge(metadata);
        let expected = apply(self.current.as_ref(), &merge);
        if self.current.as_ref() == Some(&expected) {
            return Ok(None);
        }
        let out = splice_merge(self.file.doc(), self.target, self.current.as_ref(), &merge)?;
        // The written bytes must read back as the intended table.
        let check = ParsedFile::parse(out, &parse_options())
            .map_err(|e| FinishError::Verify(e.to_string()))?;
        let back = shared_table(check.doc(), self.target.key())
            .map_err(|e| FinishError::Verify(e.to_string()))?;
        if back.as_ref() != Some(&expected) {
            return Err(FinishError::Verify("the tables differ".into()));
        }
        Ok(Some(check.into_owner()))
    }
}
