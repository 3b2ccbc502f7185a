//! [`InodeSlots`]: the inodes of the table by number, stored densely.
//!
//! The mount keeps every inode in memory (100,000 saves are loaded at start), so how they
//! are stored is most of its resident size. A hash map of whole inodes keeps a power of two
//! of buckets, up to twice the inodes, and touches every one of them as entries scatter.
//! Here the inodes sit side by side in a [`Slab`] whose unused tail is never touched (so
//! never resident), and a hash table of 4-byte slot numbers finds an inode from its number
//! (the number itself is read from the inode in the slot: a map of number to slot took
//! 16 bytes a bucket). Freed slots are reused, so the store is bounded by the most inodes
//! alive at once, although inode numbers are never reused.

use super::inode_table::Inode;
use hashbrown::HashTable;
use slab::Slab;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

/// Inodes by number (each inode's own `row.ino`).
#[derive(Debug, Default)]
pub struct InodeSlots {
    inodes: Slab<Inode>,
    slots: HashTable<u32>,
    hasher: RandomState,
}

impl InodeSlots {
    fn slot(&self, ino: u64) -> Option<usize> {
        let inodes = &self.inodes;
        let found =
            self.slots.find(self.hasher.hash_one(ino), |&s| inodes[s as usize].row.ino == ino);
        found.map(|&s| s as usize)
    }

    #[must_use]
    pub fn get(&self, ino: u64) -> Option<&Inode> {
        self.slot(ino).map(|slot| &self.inodes[slot])
    }

    pub fn get_mut(&mut self, ino: u64) -> Option<&mut Inode> {
        self.slot(ino).map(|slot| &mut self.inodes[slot])
    }

    /// Store `inode` under its number; the caller checked that none is stored there (an
    /// inode already stored is changed through [`InodeSlots::get_mut`]).
    ///
    /// # Panics
    /// Past 4 billion inodes in memory at once.
    pub fn insert_new(&mut self, inode: Inode) {
        debug_assert!(self.slot(inode.row.ino).is_none(), "inode {} stored twice", inode.row.ino);
        let hash = self.hasher.hash_one(inode.row.ino);
        let slot = u32::try_from(self.inodes.insert(inode)).expect("under 4 billion inodes");
        let (inodes, hasher) = (&self.inodes, &self.hasher);
        self.slots.insert_unique(hash, slot, |&s| hasher.hash_one(inodes[s as usize].row.ino));
    }

    /// Take the inode `ino` out, freeing its slot.
    pub fn remove(&mut self, ino: u64) -> Option<Inode> {
        let inodes = &self.inodes;
        let entry = self
            .slots
            .find_entry(self.hasher.hash_one(ino), |&s| inodes[s as usize].row.ino == ino)
            .ok()?;
        let (slot, _) = entry.remove();
        Some(self.inodes.remove(slot as usize))
    }

    /// Every inode, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &Inode> {
        self.inodes.iter().map(|(_, inode)| inode)
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.inodes.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.inodes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use crate::state::{InodeKind, InodeRow};
    use crate::tree::inode_table::InodeTable;
    use std::collections::BTreeSet;

    fn row(ino: u64, parent: u64, name: String, kind: InodeKind) -> InodeRow {
        InodeRow {
            ino,
            parent,
            name: name.into(),
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: ino,
            atime_ns: 0,
            mtime_ns: 0,
            ctime_ns: 0,
            cached: true,
            cache_size: 0,
            cache_mtime_ns: 0,
        }
    }

    /// Inodes come and go as saves are written through temp files and renamed: every
    /// number finds its own inode (in a slot another inode may have had), a removed one
    /// finds nothing.
    #[test]
    fn every_number_finds_its_inode_through_inserts_removals_and_reuse() {
        let mut table = InodeTable::with_root(row(1, 1, String::new(), InodeKind::Dir));
        // The live numbers; each inode's size is its number, so a wrong slot shows.
        let mut live: BTreeSet<u64> = BTreeSet::new();
        for round in 0..5_u64 {
            for _ in 0..2_000 {
                let ino = table.alloc_ino();
                table.insert(row(ino, 1, format!("s{ino}.srm"), InodeKind::File));
                live.insert(ino);
            }
            // Drop every third live inode (they are not open, so they leave the table).
            let gone: Vec<u64> = live.iter().copied().filter(|i| i % 3 == round % 3).collect();
            for ino in &gone {
                assert!(table.detach(*ino));
                live.remove(ino);
            }
            for ino in 2..table.alloc_ino() {
                let found = table.get(ino).map(|i| i.row.size);
                assert_eq!(
                    found,
                    live.contains(&ino).then_some(ino),
                    "inode {ino} after round {round}"
                );
            }
        }
        assert_eq!(table.len(), live.len() + 1);
    }
}
