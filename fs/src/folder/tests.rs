//! Tests of the folder's store, scan, resolution and front loop together, on a real
//! directory and a real state DB (no server: the engine's part is the `ChangeSink`).

use super::front::{ChangeSink, apply_batch, catch_up};
use super::store::{FolderConfig, FolderStore};
use super::watch::Batch;
use crate::local::{EntryKind, Installed, LocalError, LocalStore};
use crate::state::{ConflictRow, StateDb};
use savesync_core::{ContentHash, Rev, SavePath, Version};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug, Default)]
struct Recorder(Mutex<Vec<SavePath>>);

impl ChangeSink for Recorder {
    fn changed(&self, paths: &[SavePath]) -> Result<(), LocalError> {
        self.0.lock().unwrap().extend_from_slice(paths);
        Ok(())
    }
}

impl Recorder {
    fn take(&self) -> Vec<String> {
        let mut v: Vec<String> =
            self.0.lock().unwrap().drain(..).map(|p| p.as_str().to_owned()).collect();
        v.sort();
        v.dedup();
        v
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    data: std::path::PathBuf,
    store: FolderStore,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::canonicalize(dir.path()).unwrap();
    let root = base.join("folder");
    let data = base.join("data");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&data).unwrap();
    let store = open(&root, &data);
    Fixture { _dir: dir, root, data, store }
}

fn open(root: &Path, data: &Path) -> FolderStore {
    let db = StateDb::open(&data.join("state.db")).unwrap();
    let cfg = FolderConfig {
        root: root.to_path_buf(),
        data_dir: data.to_path_buf(),
        debounce: Duration::ZERO,
    };
    FolderStore::open(&cfg, db).unwrap()
}

fn p(s: &str) -> SavePath {
    SavePath::parse(s).unwrap()
}

fn download(store: &FolderStore, path: &SavePath, bytes: &[u8]) -> std::path::PathBuf {
    let tmp = store.download_tmp(path);
    std::fs::write(&tmp, bytes).unwrap();
    tmp
}

#[test]
fn install_is_atomic_and_refused_when_the_file_changed_since_the_decision() {
    let f = fixture();
    let s = &f.store;
    let path = p("snes/Zelda.srm");
    let seen = s.entry(&path).unwrap();
    assert_eq!(seen.kind, EntryKind::Absent);
    let v1 = Version::live(1, ContentHash::of(b"one"));
    let tmp = download(s, &path, b"one");
    assert_eq!(s.install(&path, tmp, v1, 3, &seen).unwrap(), Installed::Done);
    assert_eq!(std::fs::read(f.root.join("snes/Zelda.srm")).unwrap(), b"one");
    assert_eq!(s.db().record(&path).unwrap().base, Some(v1));
    // The hash of an installed file is known without reading it.
    let read = s.save_bytes_read();
    assert_eq!(s.hash(&path).unwrap(), Some(ContentHash::of(b"one")));
    assert_eq!(s.save_bytes_read(), read, "the install cached the hash");

    // The emulator writes between the decision and the install: refused, nothing lost.
    let seen = s.entry(&path).unwrap();
    std::fs::write(f.root.join("snes/Zelda.srm"), b"mine, newer").unwrap();
    let v2 = Version::live(2, ContentHash::of(b"two"));
    let tmp = download(s, &path, b"two");
    assert_eq!(s.install(&path, tmp.clone(), v2, 3, &seen).unwrap(), Installed::Changed);
    assert_eq!(std::fs::read(f.root.join("snes/Zelda.srm")).unwrap(), b"mine, newer");
    assert!(!tmp.exists(), "the refused download's temp file is gone");
    assert_eq!(s.db().record(&path).unwrap().base, Some(v1));

    // A file that appears where the engine saw none is not replaced either.
    let other = p("snes/new.srm");
    let seen = s.entry(&other).unwrap();
    std::fs::write(f.root.join("snes/new.srm"), b"local").unwrap();
    let tmp = download(s, &other, b"remote");
    assert_eq!(s.install(&other, tmp, v2, 6, &seen).unwrap(), Installed::Changed);
    assert_eq!(std::fs::read(f.root.join("snes/new.srm")).unwrap(), b"local");
    let names: Vec<_> = std::fs::read_dir(f.root.join("snes")).unwrap().flatten().collect();
    assert_eq!(names.len(), 2, "no temp file left: {names:?}");
}

#[test]
fn remove_and_conflict_copies_are_real_files_and_follow_the_rules() {
    let f = fixture();
    let s = &f.store;
    let path = p("a.srm");
    std::fs::write(f.root.join("a.srm"), b"mine").unwrap();
    let seen = s.entry(&path).unwrap();
    let theirs = Version::live(5, ContentHash::of(b"theirs"));
    let row = ConflictRow {
        path: path.clone(),
        ino: 0,
        rev: theirs.rev,
        hash: theirs.hash.unwrap(),
        size: 6,
        backed_up: None,
    };
    let tmp = download(s, &path, b"theirs");
    s.put_conflict(&path, tmp, &row).unwrap();
    let copy = f.root.join("a.srm.conflict");
    assert_eq!(std::fs::read(&copy).unwrap(), b"theirs");
    assert!(std::fs::metadata(&copy).unwrap().permissions().readonly());
    assert_eq!(s.db().conflict(&path).unwrap().map(|r| r.rev), Some(Rev(5)));
    assert_eq!(std::fs::read(f.root.join("a.srm")).unwrap(), b"mine", "mine is kept");
    s.drop_conflict(&path, &row).unwrap();
    assert!(!copy.exists());
    assert_eq!(s.db().conflict(&path).unwrap(), None);

    // A remote delete removes an unchanged file, not a changed one.
    std::fs::write(f.root.join("a.srm"), b"edited").unwrap();
    assert_eq!(s.remove(&path, Version::tombstone(6), &seen).unwrap(), Installed::Changed);
    assert!(f.root.join("a.srm").exists());
    let seen = s.entry(&path).unwrap();
    assert_eq!(s.remove(&path, Version::tombstone(6), &seen).unwrap(), Installed::Done);
    assert!(!f.root.join("a.srm").exists());
    assert_eq!(s.db().record(&path).unwrap().base, Some(Version::tombstone(6)));
}

#[test]
fn a_symlinked_directory_never_lets_a_download_out_of_the_folder() {
    let f = fixture();
    let outside = f.data.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, f.root.join("link")).unwrap();
    let path = p("link/x.srm");
    let seen = f.store.entry(&path).unwrap();
    assert_eq!(seen.kind, EntryKind::Other);
    assert!(f.store.saves().unwrap().is_empty());
}

#[test]
fn start_up_catch_up_finds_offline_edits_deletes_and_resolutions_reading_only_changed_files() {
    let f = fixture();
    let rec = Recorder::default();
    for (name, bytes) in [("a.srm", b"a1"), ("b.srm", b"b1"), ("c.srm", b"c1")] {
        std::fs::write(f.root.join(name), bytes).unwrap();
    }
    assert_eq!(catch_up(&f.store, &rec).unwrap().files, 3);
    assert_eq!(rec.take(), ["a.srm", "b.srm", "c.srm"], "never synced: all reported");
    // The engine agreed on all three (as after uploads).
    for (name, bytes) in [("a.srm", b"a1"), ("b.srm", b"b1"), ("c.srm", b"c1")] {
        f.store.db().agree(&p(name), Version::live(1, ContentHash::of(bytes)), 2).unwrap();
    }
    // A conflict on c, shown as a copy.
    let theirs = Version::live(2, ContentHash::of(b"c-theirs"));
    let row = ConflictRow {
        path: p("c.srm"),
        ino: 0,
        rev: theirs.rev,
        hash: theirs.hash.unwrap(),
        size: 8,
        backed_up: None,
    };
    f.store.put_conflict(&p("c.srm"), download(&f.store, &p("c.srm"), b"c-theirs"), &row).unwrap();
    drop(f.store);

    // While the daemon is not running: a is edited, b deleted, c's copy renamed over c,
    // and a crash left a download's temp file.
    std::fs::write(f.root.join("a.srm"), b"a2, longer").unwrap();
    std::fs::remove_file(f.root.join("b.srm")).unwrap();
    std::fs::rename(f.root.join("c.srm.conflict"), f.root.join("c.srm")).unwrap();
    std::fs::write(f.root.join(".d.srm.savesync-00000001.tmp"), b"partial").unwrap();
    let store = open(&f.root, &f.data);
    let before = store.save_bytes_read();
    let report = catch_up(&store, &rec).unwrap();
    assert_eq!(rec.take(), ["a.srm", "b.srm", "c.srm"]);
    assert_eq!(report.vanished, vec![p("b.srm")]);
    // Only the two changed files are read (c while resolving, a while scanning).
    assert_eq!(store.save_bytes_read() - before, 10 + 8);
    assert_eq!(report.hashed, 1);
    assert!(!f.root.join(".d.srm.savesync-00000001.tmp").exists());
    // c: taken from the copy: agreed on theirs, writable again, no conflict row.
    assert_eq!(store.db().record(&p("c.srm")).unwrap().base, Some(theirs));
    assert_eq!(store.db().conflict(&p("c.srm")).unwrap(), None);
    assert!(!std::fs::metadata(f.root.join("c.srm")).unwrap().permissions().readonly());
    // Unchanged since: nothing reported, nothing read.
    let before = store.save_bytes_read();
    let report = catch_up(&store, &rec).unwrap();
    assert_eq!(report.hashed, 0);
    assert_eq!(store.save_bytes_read(), before);
    assert_eq!(rec.take(), ["a.srm", "b.srm"], "still differ from their bases");
}

#[test]
fn watcher_batches_report_saves_resolutions_and_new_directories() {
    let f = fixture();
    let rec = Recorder::default();
    let s = &f.store;
    // Keep mine: the user deletes the copy.
    std::fs::write(f.root.join("k.srm"), b"mine").unwrap();
    let theirs = Version::live(3, ContentHash::of(b"theirs"));
    let row = ConflictRow {
        path: p("k.srm"),
        ino: 0,
        rev: theirs.rev,
        hash: theirs.hash.unwrap(),
        size: 6,
        backed_up: None,
    };
    s.put_conflict(&p("k.srm"), download(s, &p("k.srm"), b"theirs"), &row).unwrap();
    std::fs::remove_file(f.root.join("k.srm.conflict")).unwrap();
    // A directory moved in with saves inside, and a temp file.
    std::fs::create_dir_all(f.root.join("moved/deep")).unwrap();
    std::fs::write(f.root.join("moved/deep/x.srm"), b"x").unwrap();
    std::fs::write(f.root.join("scratch.tmp"), b"t").unwrap();
    let batch = Batch {
        rescan: false,
        paths: [f.root.join("k.srm.conflict"), f.root.join("moved"), f.root.join("scratch.tmp")]
            .into(),
        dirs: Default::default(),
    };
    apply_batch(s, &rec, &batch).unwrap();
    assert_eq!(rec.take(), ["k.srm", "moved/deep/x.srm"]);
    assert_eq!(s.db().record(&p("k.srm")).unwrap().base, Some(theirs), "keep mine: base = theirs");
    assert_eq!(s.db().conflict(&p("k.srm")).unwrap(), None);
    // A deleted directory reports the saves it held.
    s.db().agree(&p("moved/deep/x.srm"), Version::live(1, ContentHash::of(b"x")), 1).unwrap();
    std::fs::remove_dir_all(f.root.join("moved")).unwrap();
    let batch = Batch { paths: [f.root.join("moved")].into(), ..Batch::default() };
    apply_batch(s, &rec, &batch).unwrap();
    assert_eq!(rec.take(), ["moved", "moved/deep/x.srm"]);
}

#[test]
fn a_large_save_is_uploaded_from_one_private_copy_per_save() {
    let f = fixture();
    let path = p("ps2/card.ps2");
    std::fs::create_dir_all(f.root.join("ps2")).unwrap();
    let big: Vec<u8> = (0..65 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(f.root.join("ps2/card.ps2"), &big).unwrap();
    for _ in 0..2 {
        let (hash, bytes) = f.store.read(&path).unwrap();
        assert_eq!(hash, ContentHash::of(&big));
        let crate::local::LocalBytes::Large(copy) = bytes else { panic!("read into memory") };
        assert!(copy.starts_with(&f.data), "the copy is in the data dir, not the folder");
        assert_eq!(std::fs::read(&copy).unwrap().len(), big.len());
    }
    let copies = std::fs::read_dir(f.data.join("folder-upload")).unwrap().count();
    assert_eq!(copies, 1, "one private copy per save");
}
