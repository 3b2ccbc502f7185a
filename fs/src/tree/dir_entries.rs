//! [`DirEntries`]: the names of one directory of the inode table, in name order, with
//! their caseless index ([`FoldIndex`]).
//!
//! Every name of the mount is here (100,000 saves are loaded at start), so a directory keeps
//! its names' bytes in one buffer and a sorted vector of 16-byte entries pointing into it,
//! found by binary search: about 16 bytes a name plus the name. A B-tree map of boxed
//! names took about 48 bytes a name plus a separate allocation of it, its nodes filled
//! about half by names entered in order. A
//! new name shifts the entries after it, which for a directory of 1,000 saves is a copy of
//! 8 KiB. A removed name's bytes stay in the buffer until they are half of it, then the
//! buffer is rewritten without them.

use super::fold_index::{FoldIndex, same_fold};

/// One name: where its bytes are in the buffer, whether it is a directory, and its inode.
#[derive(Debug, Clone, Copy)]
struct Entry {
    start: u32,
    /// A name is at most 255 bytes (a conflict copy's), so 16 bits hold it.
    len: u16,
    is_dir: bool,
    ino: u64,
}

/// One directory's entries.
#[derive(Debug, Default, Clone)]
pub struct DirEntries {
    /// The names' bytes, in the order they were entered (and removed ones not yet dropped).
    names: String,
    /// Sorted by name, names unique.
    entries: Vec<Entry>,
    /// Bytes of `names` that no entry points at any more.
    dropped: usize,
    /// Entries that are directories (the directory's link count is 2 plus this).
    subdirs: u32,
    folds: FoldIndex,
}

impl DirEntries {
    fn name(&self, e: Entry) -> &str {
        &self.names[e.start as usize..e.start as usize + usize::from(e.len)]
    }

    fn position(&self, name: &str) -> Result<usize, usize> {
        self.entries.binary_search_by(|e| self.name(*e).cmp(name))
    }

    /// The inode named `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<u64> {
        self.position(name).ok().map(|at| self.entries[at].ino)
    }

    /// Point `name` at `ino` (a directory when `is_dir`); returns the inode it pointed at
    /// before, if any.
    ///
    /// # Panics
    /// When a name passes 64 KiB or a directory's names 4 GiB (a name is at most 255
    /// bytes: [`savesync_core::MAX_COMPONENT_BYTES`] and a conflict copy's NAME_MAX).
    pub fn insert(&mut self, name: &str, ino: u64, is_dir: bool) -> Option<u64> {
        self.subdirs += u32::from(is_dir);
        match self.position(name) {
            Ok(at) => {
                let entry = &mut self.entries[at];
                self.subdirs -= u32::from(entry.is_dir);
                entry.is_dir = is_dir;
                Some(std::mem::replace(&mut entry.ino, ino))
            }
            Err(at) => {
                let start = u32::try_from(self.names.len()).expect("directory names under 4 GiB");
                let len = u16::try_from(name.len()).expect("a name under 64 KiB");
                self.names.push_str(name);
                self.entries.insert(at, Entry { start, len, is_dir, ino });
                self.folds.insert(name);
                None
            }
        }
    }

    /// Remove `name` if it points at `ino`; true when it did.
    pub fn remove_if(&mut self, name: &str, ino: u64) -> bool {
        match self.position(name) {
            Ok(at) if self.entries[at].ino == ino => {
                let gone = self.entries.remove(at);
                self.folds.remove(name);
                self.subdirs -= u32::from(gone.is_dir);
                self.dropped += usize::from(gone.len);
                if self.dropped * 2 > self.names.len() {
                    self.compact();
                }
                true
            }
            _ => false,
        }
    }

    /// Rewrite the buffer with only the names entries point at.
    fn compact(&mut self) {
        let mut names = String::with_capacity(self.names.len() - self.dropped);
        for e in &mut self.entries {
            let start = names.len() as u32;
            names.push_str(&self.names[e.start as usize..e.start as usize + usize::from(e.len)]);
            e.start = start;
        }
        self.names = names;
        self.dropped = 0;
    }

    /// Entries other than `name` whose names case-fold to `name`'s, in name order.
    #[must_use]
    pub fn fold_siblings(&self, name: &str) -> Vec<(&str, u64)> {
        if !self.folds.may_have_siblings(name, self.position(name).is_ok()) {
            return Vec::new();
        }
        same_fold(name, self.iter())
    }

    /// Number of entries that are directories.
    #[must_use]
    pub fn subdirs(&self) -> u32 {
        self.subdirs
    }

    /// `(name, ino)` in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> + Clone {
        self.entries.iter().map(|e| (self.name(*e), e.ino))
    }

    /// Give back the room the lists grew into beyond their entries (after a bulk load).
    pub fn shrink_to_fit(&mut self) {
        self.names.shrink_to_fit();
        self.entries.shrink_to_fit();
        self.folds.shrink_to_fit();
    }

    /// Number of entries (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_stay_in_name_order_through_inserts_replacements_and_removals() {
        let mut dir = DirEntries::default();
        for (name, ino) in [("b.srm", 2), ("a.srm", 1), ("c.srm", 3), ("B.srm", 4)] {
            assert_eq!(dir.insert(name, ino, false), None);
        }
        assert_eq!(dir.insert("a.srm", 10, false), Some(1), "a replacement returns the old inode");
        let names: Vec<(&str, u64)> = dir.iter().collect();
        assert_eq!(names, [("B.srm", 4), ("a.srm", 10), ("b.srm", 2), ("c.srm", 3)]);
        assert_eq!(dir.get("c.srm"), Some(3));
        assert_eq!(dir.get("d.srm"), None);
        assert!(!dir.remove_if("b.srm", 99), "a name pointing elsewhere stays");
        assert!(dir.remove_if("b.srm", 2));
        assert!(!dir.remove_if("b.srm", 2));
        assert_eq!(dir.len(), 3);
        assert_eq!(dir.fold_siblings("b.srm"), [("B.srm", 4)]);
        assert_eq!(dir.fold_siblings("B.srm"), []);
        assert_eq!(dir.fold_siblings("A.SRM"), [("a.srm", 10)]);
        assert!(dir.remove_if("B.srm", 4));
        assert_eq!(dir.fold_siblings("b.srm"), []);
    }

    #[test]
    fn removed_names_leave_the_buffer_once_they_are_half_of_it() {
        let mut dir = DirEntries::default();
        let names: Vec<String> = (0..100).map(|i| format!("save-{i:03}.srm")).collect();
        for (ino, name) in (1..).zip(&names) {
            dir.insert(name, ino, false);
        }
        let full = dir.names.len();
        for (ino, name) in (1..).zip(&names).take(50) {
            assert!(dir.remove_if(name, ino));
        }
        assert_eq!((dir.names.len(), dir.dropped), (full, full / 2), "half gone, buffer kept");
        assert!(dir.remove_if(&names[50], 51));
        assert_eq!(dir.names.len(), full / 2 - names[50].len(), "rewritten past half");
        assert_eq!(dir.dropped, 0);
        let left: Vec<(&str, u64)> = dir.iter().collect();
        let want: Vec<(&str, u64)> =
            (52..).zip(&names[51..]).map(|(i, n)| (n.as_str(), i)).collect();
        assert_eq!(left, want);
        assert_eq!(dir.get("save-099.srm"), Some(100));
        assert_eq!(
            dir.insert("save-000.srm", 7, false),
            None,
            "a name comes back after the rewrite"
        );
        assert_eq!(dir.get("save-000.srm"), Some(7));
    }

    #[test]
    fn the_directory_count_follows_every_insert_replacement_and_removal() {
        let mut dir = DirEntries::default();
        // (step, name, ino, is_dir: Some to insert / None to remove, directories after)
        let steps: &[(&str, u64, Option<bool>, u32)] = &[
            ("snes", 2, Some(true), 1),
            ("gba", 3, Some(true), 2),
            ("a.srm", 4, Some(false), 2),
            ("gba", 5, Some(false), 1), // a file replaces a directory's name
            ("a.srm", 6, Some(true), 2), // and a directory a file's
            ("snes", 99, None, 2),      // a removal of another inode changes nothing
            ("snes", 2, None, 1),
            ("a.srm", 6, None, 0),
            ("gba", 5, None, 0),
        ];
        for (name, ino, op, want) in steps {
            match op {
                Some(is_dir) => {
                    dir.insert(name, *ino, *is_dir);
                }
                None => {
                    dir.remove_if(name, *ino);
                }
            }
            let counted = dir.entries.iter().filter(|e| e.is_dir).count() as u32;
            assert_eq!((dir.subdirs(), counted), (*want, *want), "after {op:?} {name} -> {ino}");
        }
    }
}
