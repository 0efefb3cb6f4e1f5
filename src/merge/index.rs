//! The records of a table being merged, by identity.
//!
//! A 100,000-member roster has 100,000 identities. A map from each identity (its own
//! allocation) to a slot took about 75 bytes a record; here the identities sit end to end in
//! one buffer and the table holds slot numbers only, about 30 bytes a record. Identities come
//! from files and messages, so they are hashed with a keyed hash (worst case stays linear).

use std::hash::{BuildHasher, RandomState};

use hashbrown::HashTable;

/// Slot numbers by identity; every slot is pushed in order, with or without an identity.
#[derive(Clone, Default)]
pub(super) struct Index {
    hasher: RandomState,
    table: HashTable<usize>,
    /// The identities of the slots, end to end.
    ids: Vec<u8>,
    /// Where each slot's identity ends in `ids` (it starts where the previous one ends); a
    /// slot without one has an empty identity and is not in `table`.
    ends: Vec<usize>,
}

impl Index {
    /// Room for `n` more slots.
    pub(super) fn reserve(&mut self, n: usize) {
        self.ends.reserve_exact(n);
        self.table
            .reserve(n, |&s| hash(&self.hasher, &self.ids, &self.ends, s));
    }

    /// The slot whose identity is `id`.
    pub(super) fn get(&self, id: &[u8]) -> Option<usize> {
        self.table
            .find(self.hasher.hash_one(id), |&s| {
                identity(&self.ids, &self.ends, s) == id
            })
            .copied()
    }

    /// Adds the next slot, with `id` when it has one (an identity not in the index: look it
    /// up first). Returns the slot's number.
    pub(super) fn push(&mut self, id: Option<&[u8]>) -> usize {
        let slot = self.ends.len();
        self.ids.extend_from_slice(id.unwrap_or_default());
        self.ends.push(self.ids.len());
        if let Some(id) = id {
            let Index {
                hasher,
                table,
                ids,
                ends,
            } = self;
            table.insert_unique(hasher.hash_one(id), slot, |&s| hash(hasher, ids, ends, s));
        }
        slot
    }
}

fn identity<'i>(ids: &'i [u8], ends: &[usize], slot: usize) -> &'i [u8] {
    let start = match slot.checked_sub(1) {
        Some(before) => ends.get(before).copied().unwrap_or(0),
        None => 0,
    };
    let end = ends.get(slot).copied().unwrap_or(0);
    ids.get(start..end).unwrap_or_default()
}

fn hash(hasher: &RandomState, ids: &[u8], ends: &[usize], slot: usize) -> u64 {
    hasher.hash_one(identity(ids, ends, slot))
}
impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("slots", &self.ends.len())
            .field("indexed", &self.table.len())
            .finish()
    }
}

/// Two indexes are equal when they hold the same identities for the same slots, and index
/// the same slots (an empty identity and none look alike in `ids`).
impl PartialEq for Index {
    fn eq(&self, other: &Index) -> bool {
        let indexed = |index: &Index, slot: usize| {
            let id = identity(&index.ids, &index.ends, slot);
            index.get(id) == Some(slot)
        };
        self.ends.len() == other.ends.len()
            && self.table.len() == other.table.len()
            && (0..self.ends.len()).all(|s| {
                identity(&self.ids, &self.ends, s) == identity(&other.ids, &other.ends, s)
                    && indexed(self, s) == indexed(other, s)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The index finds what a map from identity to slot finds.
        #[test]
        fn finds_what_a_map_finds(ids in prop::collection::vec(prop::option::of("[a-d]{0,3}"), 0..200)) {
            let mut index = Index::default();
            let mut map = std::collections::HashMap::new();
            for id in &ids {
                let id = id.as_ref().map(|s| s.as_bytes());
                let known = id.and_then(|id| index.get(id));
                prop_assert_eq!(known, id.and_then(|id| map.get(id).copied()));
                if known.is_some() {
                    // A repeated identity takes a slot of its own without one, as the merge
                    // does not place it.
                    continue;
                }
                let slot = index.push(id);
                if let Some(id) = id {
                    map.insert(id.to_vec(), slot);
                }
            }
            for id in ids.iter().flatten() {
                prop_assert_eq!(index.get(id.as_bytes()), map.get(id.as_bytes()).copied());
            }
            prop_assert_eq!(index.get(b"zz"), None);
            // An empty identity is not the same as none.
            if index.get(b"").is_none() {
                let (mut with, mut without) = (index.clone(), index.clone());
                with.push(Some(b""));
                without.push(None);
                prop_assert!(with.get(b"").is_some());
                prop_assert!(with != without);
                prop_assert!(with == with.clone());
            }
        }
    }
}
