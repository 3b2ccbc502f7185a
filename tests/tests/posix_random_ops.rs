//! fsx-style data integrity: a long, seeded sequence of random writes (pwrite anywhere,
//! including past the end), O_APPEND writes, truncates up and down, reads, mmap reads and
//! writes, fsyncs and close/reopen cycles on ONE file, each checked against an in-memory
//! model of what the file must contain.
//!
//! The same sequence runs on a plain local directory (the control: if that fails, the test
//! itself is wrong) and on a savesync mount, where the file's final bytes must also reach
//! the server. The seed is fixed and the length bounded so CI is reproducible and fast; set
//! `SAVESYNC_FSX_SEED` / `SAVESYNC_FSX_OPS` to explore other sequences by hand.
//!
//! Assumes a FUSE mount serves shared writable mmap through the page cache (no direct_io);
//! a mount that refuses mmap with ENODEV is reported, not silently skipped.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use savesync_core::{ContentHash, SavePath};
use savesync_tests::{Device, TestServer, require_fuse, runtime, wait_until};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::time::Duration;

/// Seed used in CI; any u64 reproduces its own sequence.
const DEFAULT_SEED: u64 = 0x5a7e_5a7e_0000_0001;
/// Operations per run in CI: enough to cross every boundary many times, a few seconds long.
const DEFAULT_OPS: usize = 1500;
/// The file never grows past this: big enough for several pages and a multi-MiB save state
/// is not needed to find offset bugs.
const MAX_FILE_LEN: u64 = 256 * 1024;
/// Largest single write or read.
const MAX_IO_LEN: u64 = 48 * 1024;
/// How many recent operations to print when the file and the model disagree.
const HISTORY_SHOWN: usize = 25;

#[test]
fn random_ops_on_a_plain_directory_match_the_model() {
    let dir = tempfile::tempdir().expect("temp dir for the control run");
    let file = dir.path().join("control.sav");
    let report = run_random_ops(&file, seed(), op_count());
    println!("plain directory: {report}");
}

#[test]
fn random_ops_on_the_mount_match_the_model_and_reach_the_server() {
    if !require_fuse() {
        return;
    }
    let server = TestServer::start_blocking();
    let mut device = Device::pair(&server, "alice", "fsx-device");
    device.mount();
    std::fs::create_dir_all(device.path("fsx")).expect("mkdir fsx on the mount");
    let file = device.path("fsx/random.sav");

    let report = run_random_ops(&file, seed(), op_count());
    println!("savesync mount: {report}");

    // The last close flushed the final bytes; they must now reach the server unchanged.
    let expected = ContentHash::of(&report.final_bytes);
    let rt = runtime();
    let client = rt.block_on(server.client_for("alice", "fsx-checker"));
    let path = SavePath::parse("fsx/random.sav").expect("valid save path");
    wait_until(Duration::from_secs(20), "the final bytes of fsx/random.sav on the server", || {
        let list = rt.block_on(client.list(None, false)).ok()?;
        let head = list.saves.into_iter().find(|s| s.path == path)?;
        (head.hash == Some(expected)).then_some(())
    });
    device.unmount();
}

fn seed() -> u64 {
    std::env::var("SAVESYNC_FSX_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(DEFAULT_SEED)
}

fn op_count() -> usize {
    std::env::var("SAVESYNC_FSX_OPS").ok().and_then(|s| s.parse().ok()).unwrap_or(DEFAULT_OPS)
}

/// One step of the sequence; `Display` is the line printed in a failure report.
#[derive(Debug, Clone)]
enum Op {
    Write {
        offset: u64,
        len: u64,
    },
    Append {
        len: u64,
    },
    Truncate {
        len: u64,
    },
    Read {
        offset: u64,
        len: u64,
    },
    MapRead {
        offset: u64,
        len: u64,
    },
    MapWrite {
        offset: u64,
        len: u64,
    },
    Fsync,
    /// Close the file (FUSE flush: the mount queues an upload) and open it again.
    Reopen,
}

/// What a run did, for the test output.
struct Report {
    ops: usize,
    seed: u64,
    counts: [usize; 8],
    mmap_supported: bool,
    final_bytes: Vec<u8>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [w, a, t, r, mr, mw, s, o] = self.counts;
        write!(
            f,
            "{} ops (seed {:#x}): {w} writes, {a} appends, {t} truncates, {r} reads, {mr} mmap \
             reads, {mw} mmap writes, {s} fsyncs, {o} reopens; mmap {}; final size {}",
            self.ops,
            self.seed,
            if self.mmap_supported { "supported" } else { "NOT supported (ENODEV)" },
            self.final_bytes.len()
        )
    }
}

/// Runs `ops` random operations on `path` (created empty) and checks each read, and the
/// whole file after every reopen and at the end, against the model. Panics with the recent
/// operations on the first difference.
fn run_random_ops(path: &Path, seed: u64, ops: usize) -> Report {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut model: Vec<u8> = Vec::new();
    let mut file = open_rw(path, true);
    let mut history: Vec<String> = Vec::new();
    let mut report =
        Report { ops, seed, counts: [0; 8], mmap_supported: true, final_bytes: Vec::new() };

    for step in 0..ops {
        let op = next_op(&mut rng, model.len() as u64);
        history.push(format!("#{step}: {op:?} (size before {})", model.len()));
        let fail = |what: String| -> ! {
            let from = history.len().saturating_sub(HISTORY_SHOWN);
            panic!(
                "{what}\nfile {}, seed {seed:#x}; last operations:\n{}",
                path.display(),
                history[from..].join("\n")
            )
        };
        match op {
            Op::Write { offset, len } => {
                report.counts[0] += 1;
                let data = random_bytes(&mut rng, len);
                file.write_all_at(&data, offset).unwrap_or_else(|e| fail(format!("pwrite: {e}")));
                model_write(&mut model, offset, &data);
            }
            Op::Append { len } => {
                report.counts[1] += 1;
                let data = random_bytes(&mut rng, len);
                let mut appender = OpenOptions::new()
                    .append(true)
                    .open(path)
                    .unwrap_or_else(|e| fail(format!("open O_APPEND: {e}")));
                appender.write_all(&data).unwrap_or_else(|e| fail(format!("append: {e}")));
                drop(appender);
                let end = model.len() as u64;
                model_write(&mut model, end, &data);
            }
            Op::Truncate { len } => {
                report.counts[2] += 1;
                file.set_len(len).unwrap_or_else(|e| fail(format!("ftruncate: {e}")));
                model.resize(usize::try_from(len).expect("len fits usize"), 0);
            }
            Op::Read { offset, len } => {
                report.counts[3] += 1;
                let got =
                    read_at(&file, offset, len).unwrap_or_else(|e| fail(format!("pread: {e}")));
                let want = model_slice(&model, offset, len);
                if got != want {
                    fail(describe_difference("pread", offset, &want, &got));
                }
            }
            Op::MapRead { offset, len } => {
                report.counts[4] += 1;
                match mapped::read(&file, offset, len) {
                    Ok(got) => {
                        let want = model_slice(&model, offset, len);
                        if got != want {
                            fail(describe_difference("mmap read", offset, &want, &got));
                        }
                    }
                    Err(e) if e.raw_os_error() == Some(libc::ENODEV) => {
                        report.mmap_supported = false
                    }
                    Err(e) => fail(format!("mmap read: {e}")),
                }
            }
            Op::MapWrite { offset, len } => {
                report.counts[5] += 1;
                let data = random_bytes(&mut rng, len);
                match mapped::write(&file, offset, &data) {
                    Ok(()) => model_write(&mut model, offset, &data),
                    Err(e) if e.raw_os_error() == Some(libc::ENODEV) => {
                        report.mmap_supported = false
                    }
                    Err(e) => fail(format!("mmap write: {e}")),
                }
            }
            Op::Fsync => {
                report.counts[6] += 1;
                file.sync_all().unwrap_or_else(|e| fail(format!("fsync: {e}")));
            }
            Op::Reopen => {
                report.counts[7] += 1;
                drop(file);
                file = open_rw(path, false);
                let whole = read_whole(&mut file).unwrap_or_else(|e| fail(format!("read: {e}")));
                if whole != model {
                    fail(describe_difference("whole file after reopen", 0, &model, &whole));
                }
            }
        }
    }
    file.sync_all().expect("final fsync");
    drop(file);
    let mut file = open_rw(path, false);
    let whole = read_whole(&mut file).expect("read the final file");
    assert!(whole == model, "{}", describe_difference("final contents", 0, &model, &whole));
    report.final_bytes = model;
    report
}

/// Picks the next operation. Offsets reach a little past the end so writes leave holes and
/// reads cross EOF; sizes stay under [`MAX_FILE_LEN`].
fn next_op(rng: &mut StdRng, size: u64) -> Op {
    let room = MAX_FILE_LEN - size.min(MAX_FILE_LEN);
    let any_offset =
        |rng: &mut StdRng| rng.random_range(0..=size + size / 4 + 1).min(MAX_FILE_LEN - 1);
    match rng.random_range(0..100u32) {
        0..=29 => {
            let offset = any_offset(rng);
            Op::Write { offset, len: rng.random_range(1..=MAX_IO_LEN.min(MAX_FILE_LEN - offset)) }
        }
        30..=37 if room > 0 => Op::Append { len: rng.random_range(1..=MAX_IO_LEN.min(room)) },
        38..=47 => {
            Op::Truncate { len: rng.random_range(0..=(size + MAX_IO_LEN).min(MAX_FILE_LEN)) }
        }
        48..=67 => Op::Read { offset: any_offset(rng), len: rng.random_range(1..=MAX_IO_LEN) },
        68..=77 if size > 0 => {
            let offset = rng.random_range(0..size);
            Op::MapRead { offset, len: rng.random_range(1..=(size - offset).min(MAX_IO_LEN)) }
        }
        78..=87 if size > 0 => {
            // A shared mapping cannot grow the file: writes stay inside it.
            let offset = rng.random_range(0..size);
            Op::MapWrite { offset, len: rng.random_range(1..=(size - offset).min(MAX_IO_LEN)) }
        }
        88..=93 => Op::Fsync,
        94..=99 => Op::Reopen,
        _ => Op::Read { offset: 0, len: size.max(1) },
    }
}

fn open_rw(path: &Path, create: bool) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(create)
        .mode(0o644)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

fn random_bytes(rng: &mut StdRng, len: u64) -> Vec<u8> {
    let mut data = vec![0u8; usize::try_from(len).expect("len fits usize")];
    rng.fill(&mut data[..]);
    data
}

fn model_write(model: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let start = usize::try_from(offset).expect("offset fits usize");
    let end = start + data.len();
    if model.len() < end {
        model.resize(end, 0);
    }
    model[start..end].copy_from_slice(data);
}

/// What a read of `len` bytes at `offset` must return: short at EOF, empty past it.
fn model_slice(model: &[u8], offset: u64, len: u64) -> Vec<u8> {
    let start = usize::try_from(offset).expect("offset fits usize").min(model.len());
    let end = (start + usize::try_from(len).expect("len fits usize")).min(model.len());
    model[start..end].to_vec()
}

/// pread until `len` bytes or EOF (a FUSE read may legally return fewer bytes).
fn read_at(file: &File, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
    let mut out = vec![0u8; usize::try_from(len).expect("len fits usize")];
    let mut filled = 0;
    while filled < out.len() {
        let n = file.read_at(&mut out[filled..], offset + filled as u64)?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    out.truncate(filled);
    Ok(out)
}

fn read_whole(file: &mut File) -> std::io::Result<Vec<u8>> {
    file.seek(SeekFrom::Start(0))?;
    let mut out = Vec::new();
    file.read_to_end(&mut out)?;
    Ok(out)
}

fn describe_difference(what: &str, offset: u64, want: &[u8], got: &[u8]) -> String {
    let first = want.iter().zip(got).position(|(a, b)| a != b);
    match first {
        Some(i) => format!(
            "{what} at offset {offset}: first differing byte at +{i} (file offset {}): \
             expected {:#04x}, got {:#04x}; expected {} bytes, got {}",
            offset + i as u64,
            want[i],
            got[i],
            want.len(),
            got.len()
        ),
        None => format!(
            "{what} at offset {offset}: length differs: expected {} bytes, got {}",
            want.len(),
            got.len()
        ),
    }
}

/// Shared-mapping reads and writes, each mapping made and dropped within one operation (as
/// fsx does), so a later truncate never leaves a mapping pointing past EOF (SIGBUS).
#[allow(unsafe_code)] // mmap has no safe std API; the mapping never outlives one call.
mod mapped {
    use std::fs::File;
    use std::io;
    use std::os::fd::AsRawFd;

    /// Maps `[offset, offset+len)` of `file` (rounded out to pages), runs `f` on the range.
    fn with_mapping<T>(
        file: &File,
        offset: u64,
        len: u64,
        writable: bool,
        f: impl FnOnce(&mut [u8]) -> T,
    ) -> io::Result<T> {
        // SAFETY: sysconf has no preconditions.
        let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        let map_start = offset / page * page;
        let skip = usize::try_from(offset - map_start).expect("fits usize");
        let map_len = skip + usize::try_from(len).expect("fits usize");
        let prot = if writable { libc::PROT_READ | libc::PROT_WRITE } else { libc::PROT_READ };
        let map_offset = libc::off_t::try_from(map_start).expect("offset fits off_t");
        // SAFETY: a fresh shared mapping of our own fd; the caller keeps the range inside
        // the file's current size, and nothing else truncates the file while it is mapped.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                prot,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                map_offset,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `addr` is a live mapping of `map_len` bytes until munmap below.
        let bytes = unsafe { std::slice::from_raw_parts_mut(addr.cast::<u8>(), map_len) };
        let result = f(&mut bytes[skip..]);
        let synced = if writable {
            // SAFETY: same live mapping; MS_SYNC writes the dirty pages back through the
            // file system, which is what an emulator relying on msync expects.
            unsafe { libc::msync(addr, map_len, libc::MS_SYNC) }
        } else {
            0
        };
        let sync_error = (synced != 0).then(io::Error::last_os_error);
        // SAFETY: unmapping exactly what was mapped; `bytes` is not used after this.
        let unmapped = unsafe { libc::munmap(addr, map_len) };
        if let Some(e) = sync_error {
            return Err(e);
        }
        if unmapped != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(result)
    }

    pub fn read(file: &File, offset: u64, len: u64) -> io::Result<Vec<u8>> {
        with_mapping(file, offset, len, false, |bytes| bytes.to_vec())
    }

    pub fn write(file: &File, offset: u64, data: &[u8]) -> io::Result<()> {
        with_mapping(file, offset, data.len() as u64, true, |bytes| bytes.copy_from_slice(data))
    }
}
