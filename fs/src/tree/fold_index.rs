//! [`FoldIndex`]: each directory's names grouped by their canonical caseless key
//! ([`savesync_core::fold_key`]), so the mount finds the siblings a new name would merge with
//! on a case-insensitive re-export without scanning the directory.
//!
//! Memory matters here: the index holds an entry for every name of the mount (100,000 saves
//! are loaded at start). A group is keyed by a 64-bit hash of its fold key, not by the key
//! itself, and almost every group has one name, which is stored inline. A hash collision
//! only puts two unrelated names in one group; every lookup compares the fold keys again,
//! so it never shows as a sibling.

use savesync_core::fold_key;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};

/// The names of one group: one inline (the usual case) or several.
#[derive(Debug, Clone)]
enum Names {
    One(Box<str>),
    Many(Vec<Box<str>>),
}

impl Names {
    fn as_slice(&self) -> &[Box<str>] {
        match self {
            Names::One(name) => std::slice::from_ref(name),
            Names::Many(names) => names,
        }
    }
}

/// Names by `(directory, hash of fold key)`.
#[derive(Debug, Default)]
pub struct FoldIndex {
    groups: HashMap<(u64, u64), Names>,
}

/// The group key of `fold` (a fold key). The hasher has fixed keys, so a key is the same in
/// every run (nothing depends on that, but it keeps collisions reproducible).
fn key_hash(fold: &str) -> u64 {
    BuildHasherDefault::<DefaultHasher>::default().hash_one(fold)
}

impl FoldIndex {
    /// Index `name` in directory `parent` (a name already there is not added twice).
    pub fn insert(&mut self, parent: u64, name: &str) {
        let key = (parent, key_hash(&fold_key(name)));
        match self.groups.get_mut(&key) {
            None => {
                self.groups.insert(key, Names::One(name.into()));
            }
            Some(group) if group.as_slice().iter().any(|n| &**n == name) => {}
            Some(group) => {
                let mut names = match std::mem::replace(group, Names::Many(Vec::new())) {
                    Names::One(first) => vec![first],
                    Names::Many(names) => names,
                };
                names.push(name.into());
                *group = Names::Many(names);
            }
        }
    }

    /// Drop `name` from directory `parent`'s index.
    pub fn remove(&mut self, parent: u64, name: &str) {
        let key = (parent, key_hash(&fold_key(name)));
        let Some(group) = self.groups.get_mut(&key) else { return };
        let empty = match group {
            Names::One(n) => &**n == name,
            Names::Many(names) => {
                names.retain(|n| &**n != name);
                names.is_empty()
            }
        };
        if empty {
            self.groups.remove(&key);
        }
    }

    /// The names in `parent` other than `name` whose fold key is `name`'s, in name order
    /// (the first is the one a refusal names).
    pub fn siblings(&self, parent: u64, name: &str) -> Vec<&str> {
        let fold = fold_key(name);
        let Some(group) = self.groups.get(&(parent, key_hash(&fold))) else { return Vec::new() };
        let mut found: Vec<&str> = group
            .as_slice()
            .iter()
            .map(|n| &**n)
            .filter(|n| *n != name && fold_key(n) == fold)
            .collect();
        found.sort_unstable();
        found
    }

    /// Number of groups (for tests).
    #[cfg(test)]
    fn group_count(&self) -> usize {
        self.groups.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siblings_are_the_other_names_with_the_same_fold_key_in_the_same_directory() {
        let mut index = FoldIndex::default();
        for (parent, name) in [
            (1, "Zelda.srm"),
            (1, "ZELDA.srm"),
            (1, "zelda.SRM"),
            (1, "Mario.srm"),
            (2, "zelda.srm"),
            (1, "Pok\u{e9}mon.sav"),
        ] {
            index.insert(parent, name);
        }
        // Inserting a name twice keeps one copy.
        index.insert(1, "Zelda.srm");
        let cases: &[(u64, &str, &[&str])] = &[
            (1, "zelda.srm", &["ZELDA.srm", "Zelda.srm", "zelda.SRM"]),
            (1, "Zelda.srm", &["ZELDA.srm", "zelda.SRM"]),
            (2, "ZELDA.SRM", &["zelda.srm"]),
            (2, "zelda.srm", &[]),
            (1, "mario.srm", &["Mario.srm"]),
            (1, "POK\u{c9}MON.sav", &["Pok\u{e9}mon.sav"]),
            (3, "zelda.srm", &[]),
            (1, "Luigi.srm", &[]),
        ];
        for (parent, name, want) in cases {
            assert_eq!(index.siblings(*parent, name), *want, "siblings of {name} in {parent}");
        }
    }

    #[test]
    fn removing_names_shrinks_and_then_drops_their_group() {
        let mut index = FoldIndex::default();
        index.insert(1, "a.srm");
        index.insert(1, "A.srm");
        index.insert(1, "b.srm");
        assert_eq!(index.group_count(), 2);
        index.remove(1, "a.srm");
        assert_eq!(index.siblings(1, "x"), Vec::<&str>::new());
        assert_eq!(index.siblings(1, "a.SRM"), vec!["A.srm"]);
        // Removing a name that is not there, or from another directory, changes nothing.
        index.remove(2, "A.srm");
        index.remove(1, "c.srm");
        assert_eq!(index.siblings(1, "a.srm"), vec!["A.srm"]);
        index.remove(1, "A.srm");
        index.remove(1, "b.srm");
        assert_eq!(index.group_count(), 0);
    }

    #[test]
    fn a_hash_collision_never_makes_unrelated_names_siblings() {
        // Force two different fold keys into one group, as a collision would.
        let mut index = FoldIndex::default();
        index.insert(1, "a.srm");
        let key = (1, key_hash(&fold_key("a.srm")));
        if let Some(Names::One(first)) = index.groups.remove(&key) {
            index.groups.insert(key, Names::Many(vec![first, "other.srm".into()]));
        }
        assert_eq!(index.siblings(1, "A.srm"), vec!["a.srm"]);
    }
}
