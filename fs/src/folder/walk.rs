//! Walking a synced folder: every save file below the root (or below one save path),
//! without following symlinks, pruning local-only names, bounded in depth; and finding
//! the temp files this program leaves behind when it is killed mid-download.

use super::paths::{FolderPaths, Name, classify, is_own_temp};
use savesync_core::{MAX_PATH_COMPONENTS, SavePath, is_local_only_name};

/// Every save file below `under` (the whole folder for `None`) with its stat.
#[must_use]
pub fn saves(paths: &FolderPaths, under: Option<&SavePath>) -> Vec<(SavePath, std::fs::Metadata)> {
    let start = match under {
        Some(p) => paths.file(p),
        None => paths.root().to_path_buf(),
    };
    let mut out = Vec::new();
    let walker = walkdir::WalkDir::new(&start)
        .follow_links(false)
        .max_depth(MAX_PATH_COMPONENTS)
        .into_iter()
        .filter_entry(|e| {
            e.depth() == 0 || e.file_name().to_str().is_some_and(|n| !is_local_only_name(n))
        });
    for e in walker {
        let e = match e {
            Ok(e) => e,
            Err(err) => {
                // Gone while walking, or unreadable: nothing to report from there.
                tracing::debug!("walking {}: {err}", start.display());
                continue;
            }
        };
        if !e.file_type().is_file() {
            continue;
        }
        let Some(rel) = paths.relative(e.path()) else { continue };
        let Name::Save(path) = classify(&rel) else { continue };
        if let Ok(meta) = e.metadata() {
            out.push((path, meta));
        }
    }
    out
}

/// Remove the temp files of downloads and conflict copies a killed run left; returns how
/// many. Only safe while nothing downloads into the folder (at start, under the lock).
pub fn remove_own_temps(paths: &FolderPaths) -> usize {
    let mut removed = 0;
    for e in walkdir::WalkDir::new(paths.root())
        .follow_links(false)
        .max_depth(MAX_PATH_COMPONENTS)
        .into_iter()
        .flatten()
    {
        let own = e.file_name().to_str().is_some_and(is_own_temp);
        if own && e.file_type().is_file() && std::fs::remove_file(e.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::{remove_own_temps, saves};
    use crate::folder::paths::FolderPaths;

    #[test]
    fn the_walk_finds_saves_only_and_temps_are_cleaned() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        for f in ["a.srm", "snes/b.srm", "snes/b.srm.conflict", "x.tmp", ".DS_Store"] {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"x").unwrap();
        }
        std::os::unix::fs::symlink("/etc", root.join("link")).unwrap();
        let paths = FolderPaths::new(root.clone());
        let t = paths.temp_beside(&savesync_core::SavePath::parse("snes/b.srm").unwrap());
        std::fs::write(&t, b"partial").unwrap();
        let mut found: Vec<String> =
            saves(&paths, None).into_iter().map(|(p, _)| p.as_str().to_owned()).collect();
        found.sort();
        assert_eq!(found, ["a.srm", "snes/b.srm"]);
        assert_eq!(remove_own_temps(&paths), 1);
        assert!(!t.exists());
        assert!(root.join("x.tmp").exists(), "other temp names are the user's");
    }
}
