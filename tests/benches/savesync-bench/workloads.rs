//! The file workloads, written against a plain `Path` so exactly the same code runs on a
//! plain local directory and on the mount. Every save is written the way an emulator
//! does it: create/truncate, write, fsync, close.

use savesync_core::ContentHash;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::measure::timed;

/// Name of save `i` inside a workload directory.
pub fn save_name(i: usize) -> String {
    format!("save-{i:05}.srm")
}

/// Distinct, cheap bytes for save `i` (its index up front so hashes differ).
pub fn save_bytes(i: usize, len: usize) -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..len).map(|j| (j.wrapping_mul(31) ^ i) as u8).collect();
    let tag = (i as u64).to_le_bytes();
    let n = tag.len().min(len);
    bytes[..n].copy_from_slice(&tag[..n]);
    bytes
}

/// `rel_dir/save-NNNNN.srm` -> hash, for every save the workload writes.
pub fn expected_hashes(rel_dir: &str, count: usize, len: usize) -> BTreeMap<String, ContentHash> {
    (0..count)
        .map(|i| (format!("{rel_dir}/{}", save_name(i)), ContentHash::of(&save_bytes(i, len))))
        .collect()
}

/// Writes `count` saves of `len` bytes into `dir` (created), each with fsync + close.
/// Returns when the first write started and how long all of them took.
pub fn write_saves(dir: &Path, count: usize, len: usize) -> (Instant, Duration) {
    std::fs::create_dir_all(dir).expect("create the workload dir");
    let payloads: Vec<Vec<u8>> = (0..count).map(|i| save_bytes(i, len)).collect();
    let started = Instant::now();
    for (i, bytes) in payloads.iter().enumerate() {
        write_one(&dir.join(save_name(i)), bytes);
    }
    (started, started.elapsed())
}

/// Polls `dir` until it holds saves `0..count` of `len` bytes with the right bytes (in
/// order: each poll waits for the first one not seen yet). Returns when the last one was
/// read, or None after `deadline`.
pub fn wait_for_bytes(dir: &Path, count: usize, len: usize, deadline: Duration) -> Option<Instant> {
    let start = Instant::now();
    for i in 0..count {
        let path = dir.join(save_name(i));
        let expected = save_bytes(i, len);
        while !std::fs::read(&path).is_ok_and(|got| got == expected) {
            if start.elapsed() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    Some(Instant::now())
}

/// create/truncate + write + fsync + close of one file.
pub fn write_one(path: &Path, bytes: &[u8]) {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    file.write_all(bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    file.sync_all().unwrap_or_else(|e| panic!("fsync {}: {e}", path.display()));
}

/// Reads every save back in full and checks its length and tag; returns the time taken.
pub fn read_saves(dir: &Path, count: usize, len: usize) -> Duration {
    let mut buf = Vec::with_capacity(len);
    timed(|| {
        for i in 0..count {
            let path = dir.join(save_name(i));
            buf.clear();
            File::open(&path)
                .and_then(|mut f| f.read_to_end(&mut buf))
                .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            assert_eq!(buf.len(), len, "length of {}", path.display());
            let tag = (i as u64).to_le_bytes();
            assert_eq!(
                buf[..tag.len().min(len)],
                tag[..tag.len().min(len)],
                "bytes of {}",
                path.display()
            );
        }
    })
    .1
}

/// readdir of `dir` and a stat of every entry; returns (entries, time).
pub fn stat_all(dir: &Path) -> (usize, Duration) {
    timed(|| {
        let mut n = 0;
        for entry in std::fs::read_dir(dir).expect("readdir") {
            let entry = entry.expect("dir entry");
            std::fs::metadata(entry.path()).expect("stat");
            n += 1;
        }
        n
    })
}

/// One save of `len` bytes written in 1 MiB chunks, then fsync + close.
pub fn write_big(path: &Path, bytes: &[u8]) -> Duration {
    timed(|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        for chunk in bytes.chunks(1024 * 1024) {
            file.write_all(chunk).expect("write a chunk of the big save");
        }
        file.sync_all().expect("fsync the big save");
    })
    .1
}
