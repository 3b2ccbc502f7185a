//! [`FoldIndex`]: one directory's names by their canonical caseless key
//! ([`savesync_core::fold_key`]), so the mount knows without scanning the directory that a
//! new name has no sibling it would merge with on a case-insensitive re-export.
//!
//! Memory matters here: the index has an entry for every name of the mount (100,000 saves
//! are loaded at start), so it keeps no names at all, only a sorted list of 32-bit hashes
//! of the names' fold keys, one per name: 4 bytes a name. A name whose hash is absent, or
//! present once while the name itself is in the directory, has no sibling, which is the
//! answer for almost every name. Otherwise the directory may hold a sibling (or a hash
//! collision), and the caller compares the fold keys of its entries ([`same_fold`]).

use savesync_core::fold_key;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};

/// The fold-key hashes of one directory's names, sorted, one per name.
#[derive(Debug, Default, Clone)]
pub struct FoldIndex {
    hashes: Vec<u32>,
}

/// The 32-bit hash of `name`'s fold key. The hasher has fixed keys, so a hash is the same
/// in every run (nothing depends on that, but it keeps collisions reproducible).
fn fold_hash(name: &str) -> u32 {
    let wide = BuildHasherDefault::<DefaultHasher>::default().hash_one(fold_key(name));
    (wide >> 32) as u32
}

/// The entries (in name order) other than `name` whose fold key is `name`'s, in name order
/// (the first is the one a refusal names).
pub fn same_fold<'a>(
    name: &str,
    entries: impl Iterator<Item = (&'a str, u64)>,
) -> Vec<(&'a str, u64)> {
    let fold = fold_key(name);
    entries.filter(|(n, _)| *n != name && fold_key(n) == fold).collect()
}

impl FoldIndex {
    /// Count a name newly entered in the directory.
    pub fn insert(&mut self, name: &str) {
        let hash = fold_hash(name);
        let at = self.hashes.partition_point(|h| *h < hash);
        self.hashes.insert(at, hash);
    }

    /// Uncount a name removed from the directory.
    pub fn remove(&mut self, name: &str) {
        let hash = fold_hash(name);
        if let Ok(at) = self.hashes.binary_search(&hash) {
            self.hashes.remove(at);
        }
    }

    /// False when the directory surely has no name other than `name` with `name`'s fold
    /// key (`present`: `name` itself is in the directory); true when it may have one.
    #[must_use]
    pub fn may_have_siblings(&self, name: &str, present: bool) -> bool {
        let hash = fold_hash(name);
        let from = self.hashes.partition_point(|h| *h < hash);
        let count = self.hashes[from..].iter().take_while(|h| **h == hash).count();
        count > usize::from(present)
    }

    /// Give back the room the list grew into beyond its names.
    pub fn shrink_to_fit(&mut self) {
        self.hashes.shrink_to_fit();
    }

    /// Number of names counted (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.hashes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A directory's names, as the inode table keeps them, with their index.
    #[derive(Default)]
    struct Dir {
        entries: BTreeMap<String, u64>,
        index: FoldIndex,
    }

    impl Dir {
        fn add(&mut self, name: &str) {
            let ino = self.entries.len() as u64 + 10;
            if self.entries.insert(name.to_owned(), ino).is_none() {
                self.index.insert(name);
            }
        }

        fn drop(&mut self, name: &str) {
            if self.entries.remove(name).is_some() {
                self.index.remove(name);
            }
        }

        fn siblings(&self, name: &str) -> Vec<&str> {
            if !self.index.may_have_siblings(name, self.entries.contains_key(name)) {
                return Vec::new();
            }
            let dir = self.entries.iter().map(|(n, ino)| (n.as_str(), *ino));
            same_fold(name, dir).into_iter().map(|(n, _)| n).collect()
        }
    }

    #[test]
    fn siblings_are_the_other_names_with_the_same_fold_key() {
        let mut dir = Dir::default();
        for name in ["Zelda.srm", "ZELDA.srm", "zelda.SRM", "Mario.srm", "Pok\u{e9}mon.sav"] {
            dir.add(name);
        }
        // Entering a name twice counts it once.
        dir.add("Zelda.srm");
        let cases: &[(&str, &[&str])] = &[
            ("zelda.srm", &["ZELDA.srm", "Zelda.srm", "zelda.SRM"]),
            ("Zelda.srm", &["ZELDA.srm", "zelda.SRM"]),
            ("mario.srm", &["Mario.srm"]),
            ("Mario.srm", &[]),
            ("POK\u{c9}MON.sav", &["Pok\u{e9}mon.sav"]),
            ("Luigi.srm", &[]),
        ];
        for (name, want) in cases {
            assert_eq!(dir.siblings(name), *want, "siblings of {name}");
        }
        assert_eq!(dir.index.len(), 5);
    }

    #[test]
    fn removing_names_uncounts_them() {
        let mut dir = Dir::default();
        dir.add("a.srm");
        dir.add("A.srm");
        dir.add("b.srm");
        dir.drop("a.srm");
        assert_eq!(dir.siblings("x"), Vec::<&str>::new());
        assert_eq!(dir.siblings("a.SRM"), vec!["A.srm"]);
        assert_eq!(dir.siblings("A.srm"), Vec::<&str>::new());
        // Removing a name that is not there changes nothing.
        dir.drop("c.srm");
        assert_eq!(dir.siblings("a.srm"), vec!["A.srm"]);
        dir.drop("A.srm");
        dir.drop("b.srm");
        assert_eq!(dir.index.len(), 0);
    }

    #[test]
    fn a_hash_collision_never_makes_unrelated_names_siblings() {
        // Count a.srm's hash twice for two unrelated names, as a collision would.
        let mut dir = Dir::default();
        dir.add("a.srm");
        dir.entries.insert("other.srm".to_owned(), 99);
        dir.index.insert("a.srm");
        assert_eq!(dir.siblings("A.srm"), vec!["a.srm"]);
        assert_eq!(dir.siblings("a.srm"), Vec::<&str>::new());
    }
}
