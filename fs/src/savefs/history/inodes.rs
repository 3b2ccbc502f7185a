//! The virtual inode space of `.history`: numbers from [`VIRTUAL_BASE`] up, which the
//! tree's allocator can never reach (it counts up from 2, one per created entry, and
//! never reuses a number), so a virtual inode never collides with a real one and never
//! gets into the state DB.
//!
//! A node's number is a hash of what it is (a directory's path, or a save path and a
//! version label), so the same node keeps its number while it is known. The registry maps
//! numbers back to nodes and stays bounded: an entry lives while the kernel holds it (its
//! lookup count, lowered by FORGET) or an open directory listing shows it, and the whole
//! table is capped at [`MAX_NODES`] (beyond that, new entries are refused with ENFILE).

use savesync_core::wire::VersionKind;
use savesync_core::{ContentHash, Rev, SavePath};
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::SystemTime;

/// First virtual inode number (2^62): `.history` itself.
pub const VIRTUAL_BASE: u64 = 1 << 62;

/// Most nodes held at once.
pub const MAX_NODES: usize = 100_000;

/// True for an inode number of the `.history` tree.
#[must_use]
pub fn is_virtual(ino: u64) -> bool {
    ino >= VIRTUAL_BASE
}

/// One version of a save, as shown in its history directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionNode {
    pub save: SavePath,
    pub kind: VersionKind,
    pub rev: Rev,
    pub version_id: i64,
    pub hash: Option<ContentHash>,
    pub size: u64,
    pub mtime: SystemTime,
}

/// What a virtual inode is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// `.history` itself.
    Root,
    /// `.history/<path>`: a directory of the library, a save (listing its versions), or
    /// both.
    Dir(String),
    /// One version file.
    Version(VersionNode),
}

impl Node {
    /// What the number is derived from.
    fn key(&self) -> String {
        match self {
            Node::Root => String::new(),
            Node::Dir(p) => format!("d\0{p}"),
            Node::Version(v) => format!("v\0{}\0{:?}{}\0{}", v.save, v.kind, v.rev.0, v.version_id),
        }
    }
}

#[derive(Debug)]
struct Slot {
    node: Node,
    /// Kernel references (LOOKUP and READDIRPLUS replies minus FORGETs).
    lookups: u64,
    /// Open directory listings that show this node.
    pins: u64,
}

/// Virtual inode number <-> node.
#[derive(Debug, Default)]
pub struct Registry {
    slots: HashMap<u64, Slot>,
}

fn hashed(key: &str) -> u64 {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    // 1..2^62-1 above the base; 0 above it is the root.
    VIRTUAL_BASE + 1 + h.finish() % (VIRTUAL_BASE - 2)
}

impl Registry {
    /// The number of `node`, registering it; `Err` when the table is full.
    pub fn intern(&mut self, node: Node) -> Result<u64, usize> {
        if node == Node::Root {
            return Ok(VIRTUAL_BASE);
        }
        let key = node.key();
        let mut ino = hashed(&key);
        loop {
            match self.slots.get(&ino) {
                Some(s) if s.node == node => return Ok(ino),
                // Two keys on one number (never seen in practice): the next free one.
                Some(_) => ino = if ino == u64::MAX { VIRTUAL_BASE + 1 } else { ino + 1 },
                None => break,
            }
        }
        if self.slots.len() >= MAX_NODES {
            return Err(MAX_NODES);
        }
        self.slots.insert(ino, Slot { node, lookups: 0, pins: 0 });
        Ok(ino)
    }

    /// The node behind `ino`.
    #[must_use]
    pub fn get(&self, ino: u64) -> Option<Node> {
        if ino == VIRTUAL_BASE {
            return Some(Node::Root);
        }
        self.slots.get(&ino).map(|s| s.node.clone())
    }

    /// The kernel now holds one more reference to `ino`.
    pub fn looked_up(&mut self, ino: u64) {
        if let Some(s) = self.slots.get_mut(&ino) {
            s.lookups += 1;
        }
    }

    /// The kernel dropped `n` references to `ino`.
    pub fn forget(&mut self, ino: u64, n: u64) {
        if let Some(s) = self.slots.get_mut(&ino) {
            s.lookups = s.lookups.saturating_sub(n);
        }
        self.drop_if_unused(ino);
    }

    /// A listing showing `ino` was opened.
    pub fn pin(&mut self, ino: u64) {
        if let Some(s) = self.slots.get_mut(&ino) {
            s.pins += 1;
        }
    }

    /// A listing showing `ino` was closed.
    pub fn unpin(&mut self, ino: u64) {
        if let Some(s) = self.slots.get_mut(&ino) {
            s.pins = s.pins.saturating_sub(1);
        }
        self.drop_if_unused(ino);
    }

    fn drop_if_unused(&mut self, ino: u64) {
        if self.slots.get(&ino).is_some_and(|s| s.lookups == 0 && s.pins == 0) {
            self.slots.remove(&ino);
        }
    }

    /// Nodes held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_stable_virtual_and_dropped_once_unused() {
        let mut r = Registry::default();
        let snes = r.intern(Node::Dir("snes".into())).unwrap();
        assert!(is_virtual(snes) && snes != VIRTUAL_BASE);
        assert_eq!(r.intern(Node::Dir("snes".into())), Ok(snes), "same node, same number");
        let gba = r.intern(Node::Dir("gba".into())).unwrap();
        assert_ne!(snes, gba);
        assert_eq!(r.intern(Node::Root), Ok(VIRTUAL_BASE));
        assert_eq!(r.get(VIRTUAL_BASE), Some(Node::Root));
        assert!(!is_virtual(u64::from(u32::MAX) * 1000), "the tree's numbers stay below");

        r.looked_up(snes);
        r.looked_up(snes);
        r.pin(snes);
        r.forget(snes, 2);
        assert_eq!(r.get(snes), Some(Node::Dir("snes".into())), "still pinned by a listing");
        r.unpin(snes);
        assert_eq!(r.get(snes), None, "gone once neither the kernel nor a listing holds it");
        r.pin(gba);
        r.unpin(gba);
        assert!(r.is_empty());
    }

    #[test]
    fn the_table_is_bounded() {
        let mut r = Registry::default();
        for i in 0..MAX_NODES {
            let ino = r.intern(Node::Dir(format!("d{i}"))).unwrap();
            r.looked_up(ino);
        }
        assert_eq!(r.intern(Node::Dir("one more".into())), Err(MAX_NODES));
        assert!(r.intern(Node::Dir("d7".into())).is_ok(), "known nodes are still found");
        assert_eq!(r.len(), MAX_NODES);
    }
}
