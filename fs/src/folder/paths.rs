//! Names in a synced folder: which files are saves (and under which [`SavePath`]), which
//! are `NAME.conflict` copies, and which stay local (temp and metadata names, names the
//! library cannot hold). Also the names of the folder's own temp files.
//!
//! A file is a save only if its relative path *is* a valid save path byte for byte: a
//! name that [`SavePath::parse`] would change (not in Unicode NFC) or refuse is left
//! alone, so every save maps to exactly one file and back.

use savesync_core::{CONFLICT_SUFFIX, SavePath, is_local_only_name};
use std::path::{Component, Path, PathBuf};

/// Marker inside the names of the folder's own temp files (`.NAME.savesync-XXXXXXXX.tmp`).
const TMP_MARKER: &str = ".savesync-";
/// Longest part of a save's name kept in its temp file's name (a name may be up to 255
/// bytes; the temp name adds a dot and a 23-byte tail).
const TMP_STEM_MAX: usize = 200;

/// What a path relative to the folder's root is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Name {
    /// A save.
    Save(SavePath),
    /// The `NAME.conflict` copy of this save.
    ConflictCopy(SavePath),
    /// Never synced: a temp or metadata name somewhere in the path, or a name that is no
    /// save path.
    Ignored,
}

/// Classify a path relative to the folder root (`/`-separated).
#[must_use]
pub fn classify(rel: &str) -> Name {
    if rel.is_empty() || rel.split('/').any(is_local_only_name) {
        return Name::Ignored;
    }
    if let Some(save) = rel.strip_suffix(CONFLICT_SUFFIX) {
        return match SavePath::parse(save) {
            Ok(p) if p.as_str() == save => Name::ConflictCopy(p),
            _ => Name::Ignored,
        };
    }
    match SavePath::parse(rel) {
        Ok(p) if p.as_str() == rel => Name::Save(p),
        _ => Name::Ignored,
    }
}

/// True for a temp file this program writes (a download or conflict copy in progress).
#[must_use]
pub fn is_own_temp(name: &str) -> bool {
    name.starts_with('.') && name.contains(TMP_MARKER) && name.ends_with(".tmp")
}

/// The folder's root and the mapping between save paths and files in it.
#[derive(Debug, Clone)]
pub struct FolderPaths {
    root: PathBuf,
}

impl FolderPaths {
    /// `root` must be absolute (canonical: the watcher reports paths below it as given).
    #[must_use]
    pub fn new(root: PathBuf) -> FolderPaths {
        FolderPaths { root }
    }

    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file of a save.
    #[must_use]
    pub fn file(&self, path: &SavePath) -> PathBuf {
        self.root.join(path.as_str())
    }

    /// The `NAME.conflict` copy of a save.
    #[must_use]
    pub fn conflict_copy(&self, path: &SavePath) -> PathBuf {
        self.root.join(format!("{}{CONFLICT_SUFFIX}", path.as_str()))
    }

    /// A fresh temp file name beside the save (local-only by its `.tmp` suffix).
    #[must_use]
    pub fn temp_beside(&self, path: &SavePath) -> PathBuf {
        let name = path.file_name();
        let mut cut = name.len().min(TMP_STEM_MAX);
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        let tag: u32 = rand::random();
        let file = format!(".{}{TMP_MARKER}{tag:08x}.tmp", &name[..cut]);
        match path.parent() {
            Some(p) => self.root.join(p.as_str()).join(file),
            None => self.root.join(file),
        }
    }

    /// The path relative to the root, `/`-separated, if `abs` lies strictly below the
    /// root and is valid UTF-8 with only normal components.
    #[must_use]
    pub fn relative(&self, abs: &Path) -> Option<String> {
        let rel = abs.strip_prefix(&self.root).ok()?;
        let mut parts = Vec::new();
        for c in rel.components() {
            match c {
                Component::Normal(s) => parts.push(s.to_str()?),
                _ => return None,
            }
        }
        (!parts.is_empty()).then(|| parts.join("/"))
    }
}

#[cfg(test)]
mod tests {
    use super::{FolderPaths, Name, classify, is_own_temp};
    use savesync_core::SavePath;
    use std::path::Path;

    #[test]
    fn names_are_classified_as_saves_conflict_copies_or_local() {
        let save = |s: &str| Name::Save(SavePath::parse(s).unwrap());
        let copy = |s: &str| Name::ConflictCopy(SavePath::parse(s).unwrap());
        let table: &[(&str, Name)] = &[
            ("snes/Zelda.srm", save("snes/Zelda.srm")),
            ("card1.mcd", save("card1.mcd")),
            ("snes/Zelda.srm.conflict", copy("snes/Zelda.srm")),
            ("snes/Zelda.srm.tmp", Name::Ignored),
            ("snes/.Zelda.srm.savesync-0badf00d.tmp", Name::Ignored),
            (".DS_Store", Name::Ignored),
            ("._x/a.srm", Name::Ignored),
            ("a.CONFLICT", Name::Ignored),
            ("x.conflict.conflict", Name::Ignored),
            ("Pok\u{65}\u{301}mon.sav", Name::Ignored), // NFD: not byte-identical to NFC
            ("Pok\u{e9}mon.sav", save("Pok\u{e9}mon.sav")),
            ("bad\u{7}.srm", Name::Ignored),
            ("", Name::Ignored),
        ];
        for (rel, want) in table {
            assert_eq!(&classify(rel), want, "{rel:?}");
        }
    }

    #[test]
    fn temp_names_are_beside_the_save_local_only_and_bounded() {
        let f = FolderPaths::new("/saves".into());
        let p = SavePath::parse("snes/Zelda.srm").unwrap();
        let t = f.temp_beside(&p);
        assert_eq!(t.parent(), Some(Path::new("/saves/snes")));
        let name = t.file_name().unwrap().to_str().unwrap();
        assert!(is_own_temp(name), "{name}");
        assert_eq!(classify(&format!("snes/{name}")), Name::Ignored);
        let long = SavePath::parse(&"é".repeat(120)).unwrap();
        assert!(f.temp_beside(&long).file_name().unwrap().len() <= 255);
        assert!(!is_own_temp("Zelda.srm"));
        assert_eq!(f.relative(Path::new("/saves/snes/a.srm")).as_deref(), Some("snes/a.srm"));
        assert_eq!(f.relative(Path::new("/saves")), None);
        assert_eq!(f.relative(Path::new("/other/a.srm")), None);
        assert_eq!(f.conflict_copy(&p), Path::new("/saves/snes/Zelda.srm.conflict"));
    }
}
