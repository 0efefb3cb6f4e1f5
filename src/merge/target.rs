//! The receiver's file during a sync: read and parsed once, each incoming table merged once as
//! it arrives, and the result spliced from those same merges, so the counts a receiver
//! confirms are the counts of the bytes it writes.

use std::collections::BTreeMap;

use crate::lua::{ParsedFile, PlacedError, SpliceError, Table};
use crate::model::tables::TableName;
use crate::model::{ModelError, Target, parse_options, shared_table};

use super::{Counts, Merged, SharedMerge, apply, merge_table, splice_merge};

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
    merged: BTreeMap<TableName, Merged>,
}

impl TargetFile {
    /// Parses the receiver's file and takes its target table.
    pub fn open(bytes: Vec<u8>, target: Target) -> Result<TargetFile, OpenError> {
        let file = ParsedFile::parse(bytes, &parse_options())?;
        let current = shared_table(file.doc(), target.key())?;
        Ok(TargetFile {
            file,
            target,
            current,
            merged: BTreeMap::new(),
        })
    }

    pub fn bytes(&self) -> &[u8] {
        self.file.bytes()
    }

    pub fn target(&self) -> Target {
        self.target
    }

    /// Merges one incoming table (replacing an earlier merge of the same table) and returns
    /// its counts.
    pub fn merge(&mut self, name: TableName, incoming: &Table) -> Counts {
        let current = self
            .current
            .as_ref()
            .and_then(|t| t.get_str(name.as_str()))
            .and_then(crate::lua::LuaValue::as_table);
        let merged = merge_table(name, incoming, current);
        let counts = merged.counts;
        self.merged.insert(name, merged);
        counts
    }

    /// Forgets the merge of a table (its staged copy was dropped).
    pub fn forget(&mut self, name: TableName) {
        self.merged.remove(&name);
    }

    fn shared_merge(&self, metadata: bool) -> SharedMerge {
        let tables: Vec<(TableName, Merged)> =
            self.merged.iter().map(|(n, m)| (*n, m.clone())).collect();
        let metadata = metadata.then(|| {
            super::rebuild_metadata(TableName::ALL.into_iter().filter_map(|name| {
                self.merged
                    .get(&name)
                    .map(|m| &m.table)
                    .or_else(|| {
                        self.current
                            .as_ref()
                            .and_then(|t| t.get_str(name.as_str()))
                            .and_then(crate::lua::LuaValue::as_table)
                    })
                    .map(|t| (name, t))
            }))
        });
        SharedMerge { tables, metadata }
    }

    /// The merged file, or `None` when the merge changes nothing. `metadata`: rebuild the
    /// target's `metadata` (the source has one).
    pub fn finish(&self, metadata: bool) -> Result<Option<Vec<u8>>, FinishError> {
        let merge = self.shared_merge(metadata);
        let expected = apply(self.current.as_ref(), &merge);
        let changed =
            self.current.as_ref() != Some(&expected) || merge.tables.iter().any(|(_, m)| m.changed);
        if !changed {
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
