//! The data directory's privacy: the directory itself is created `0700`, the database and
//! its `-wal`/`-shm` companions and the pairing key file are `0600`, and the pairing key
//! (see [`PairingKey`]) is created once and then read on every start.
//!
//! SQLite creates `-wal` and `-shm` with the permissions of the main database file, so
//! creating that file `0600` before SQLite opens it is what keeps the others private. An
//! existing database with looser permissions (from an older version) is tightened.

use crate::secrets::PairingKey;
use anyhow::Context;
use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Mode of the data directory.
pub const DIR_MODE: u32 = 0o700;
/// Mode of every file holding secrets or metadata.
pub const FILE_MODE: u32 = 0o600;
/// The pairing key's file name inside the data directory.
pub const PAIRING_KEY_FILE: &str = "pairing.key";

/// Create `dir` (and missing parents) `0700`; create the database file `0600` if missing
/// and tighten the database files if they exist.
pub fn prepare(dir: &Path, db: &Path) -> anyhow::Result<()> {
    prepare_dir(dir)?;
    private_file(db).with_context(|| format!("creating database {}", db.display()))?;
    for suffix in ["-wal", "-shm"] {
        let mut companion = db.as_os_str().to_owned();
        companion.push(suffix);
        let companion = PathBuf::from(companion);
        if companion.exists() {
            tighten(&companion)
                .with_context(|| format!("restricting permissions of {}", companion.display()))?;
        }
    }
    Ok(())
}

/// Create `dir` (and missing parents) `0700`, or tighten it if it exists: what a data
/// directory without the SQLite file (metadata in Postgres) needs.
pub fn prepare_dir(dir: &Path) -> anyhow::Result<()> {
    let mut builder = DirBuilder::new();
    builder.recursive(true);
    set_dir_mode(&mut builder);
    builder.create(dir).with_context(|| format!("creating data dir {}", dir.display()))?;
    // A data dir made by an older version (or by hand) may be readable by others.
    tighten_to(dir, DIR_MODE)
        .with_context(|| format!("restricting permissions of {}", dir.display()))
}

/// The pairing key of the data directory, created on first use.
///
/// Creation is atomic (write a private temp file, then hard-link it into place), so a
/// `pair` command racing a starting `serve` never reads a half-written key.
pub fn pairing_key(dir: &Path) -> anyhow::Result<PairingKey> {
    let path = dir.join(PAIRING_KEY_FILE);
    if !path.exists() {
        let temp = dir.join(format!(".{PAIRING_KEY_FILE}.{}.tmp", std::process::id()));
        let mut file =
            new_private_file(&temp).with_context(|| format!("creating {}", temp.display()))?;
        file.write_all(format!("{}\n", PairingKey::generate().to_hex()).as_bytes())?;
        file.sync_all()?;
        drop(file);
        let linked = std::fs::hard_link(&temp, &path);
        let _ = std::fs::remove_file(&temp);
        match linked {
            Ok(()) => {}
            // Another process created it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
        }
    }
    tighten(&path).with_context(|| format!("restricting permissions of {}", path.display()))?;
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    PairingKey::from_hex(&text).with_context(|| {
        format!(
            "{} does not hold a {}-byte hex key",
            path.display(),
            crate::secrets::PAIRING_KEY_BYTES
        )
    })
}

/// Open `path`, creating it `0600` if missing, and make sure it is `0600`.
fn private_file(path: &Path) -> std::io::Result<()> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    set_file_mode(&mut options);
    drop(options.open(path)?);
    tighten(path)
}

/// Create `path`, which must not exist, `0600`.
fn new_private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let _ = std::fs::remove_file(path);
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    set_file_mode(&mut options);
    options.open(path)
}

#[cfg(unix)]
fn set_dir_mode(builder: &mut DirBuilder) {
    use std::os::unix::fs::DirBuilderExt;
    builder.mode(DIR_MODE);
}

#[cfg(not(unix))]
fn set_dir_mode(_builder: &mut DirBuilder) {}

#[cfg(unix)]
fn set_file_mode(options: &mut OpenOptions) {
    use std::os::unix::fs::OpenOptionsExt;
    options.mode(FILE_MODE);
}

#[cfg(not(unix))]
fn set_file_mode(_options: &mut OpenOptions) {}

/// Drop every group and other permission bit of an existing file.
fn tighten(path: &Path) -> std::io::Result<()> {
    tighten_to(path, FILE_MODE)
}

/// Keep at most the bits of `allowed` on an existing file or directory, if it has any
/// group or other bit.
#[cfg(unix)]
fn tighten_to(path: &Path, allowed: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & allowed))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn tighten_to(_path: &Path, _allowed: u32) -> std::io::Result<()> {
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_key_is_created_once_private_and_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = pairing_key(dir.path()).unwrap();
        assert_eq!(mode(&dir.path().join(PAIRING_KEY_FILE)), FILE_MODE);
        let again = pairing_key(dir.path()).unwrap();
        assert_eq!(first.to_hex(), again.to_hex());
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "only the key file remains");
    }

    #[test]
    fn loose_permissions_of_existing_files_are_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("savesync.db");
        let wal = dir.path().join("savesync.db-wal");
        for file in [&db, &wal] {
            std::fs::write(file, b"").unwrap();
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        prepare(dir.path(), &db).unwrap();
        assert_eq!((mode(&db), mode(&wal)), (FILE_MODE, FILE_MODE));
    }

    #[test]
    fn a_corrupt_key_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(PAIRING_KEY_FILE), "short").unwrap();
        let err = pairing_key(dir.path()).unwrap_err();
        assert!(format!("{err:#}").contains(PAIRING_KEY_FILE), "{err:#}");
    }

    #[test]
    fn an_existing_data_dir_open_to_others_is_tightened_at_start() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("data");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let db = dir.join("savesync.db");
        std::fs::write(&db, b"").unwrap();
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        prepare(&dir, &db).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&db), 0o600);
    }
}
