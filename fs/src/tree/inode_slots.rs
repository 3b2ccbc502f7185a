//! [`InodeSlots`]: the inodes of the table by number, stored densely.
//!
//! The mount keeps every inode in memory (100,000 saves are loaded at start), so how they
//! are stored is most of its resident size. A hash map of whole inodes keeps a power of two
//! of buckets, up to twice the inodes, and touches every one of them as entries scatter.
//! Here the inodes sit side by side in a [`Slab`] whose unused tail is never touched (so
//! never resident), and a small map finds an inode's slot from its number. Freed slots are
//! reused, so the store is bounded by the most inodes alive at once, although inode numbers
//! are never reused.

use super::inode_table::Inode;
use slab::Slab;
use std::collections::HashMap;

/// Inodes by number.
#[derive(Debug, Default)]
pub struct InodeSlots {
    inodes: Slab<Inode>,
    slot_of: HashMap<u64, usize>,
}

impl InodeSlots {
    #[must_use]
    pub fn get(&self, ino: u64) -> Option<&Inode> {
        self.slot_of.get(&ino).map(|&slot| &self.inodes[slot])
    }

    pub fn get_mut(&mut self, ino: u64) -> Option<&mut Inode> {
        self.slot_of.get(&ino).map(|&slot| &mut self.inodes[slot])
    }

    /// Store `inode` under `ino`, replacing any inode stored there.
    pub fn insert(&mut self, ino: u64, inode: Inode) {
        match self.slot_of.get(&ino) {
            Some(&slot) => self.inodes[slot] = inode,
            None => {
                let slot = self.inodes.insert(inode);
                self.slot_of.insert(ino, slot);
            }
        }
    }

    /// Take the inode `ino` out, freeing its slot.
    pub fn remove(&mut self, ino: u64) -> Option<Inode> {
        self.slot_of.remove(&ino).map(|slot| self.inodes.remove(slot))
    }

    /// Every inode, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &Inode> {
        self.inodes.iter().map(|(_, inode)| inode)
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.slot_of.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.slot_of.is_empty()
    }
}
