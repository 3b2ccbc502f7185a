//! Harness for engine tests: a device is a `SaveFs` plus a running sync engine against a
//! shared `FakeRemote`, driven through the filesystem layer's plain methods (no FUSE).

#![allow(dead_code)]

use savesync_fs::fake_remote::FakeRemote;
use savesync_fs::savefs::{Attr, CacheCheckRun};
use savesync_fs::state::InodeKind;
use savesync_fs::sync::EngineTasks;
use savesync_fs::tree::ROOT_INO;
use savesync_fs::{FsConfig, FsResult, SaveFs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One device under test.
pub struct Device {
    pub fs: Arc<SaveFs>,
    pub data_dir: PathBuf,
    engine: Option<EngineTasks>,
    check: Option<CacheCheckRun>,
    rt: Option<tokio::runtime::Runtime>,
}

impl Device {
    /// A device with its own data dir inside `dir`, synced with `remote`.
    pub fn start(remote: &FakeRemote, data_dir: &Path) -> Device {
        Device::start_with(remote, data_dir, |_| {})
    }

    pub fn start_with(
        remote: &FakeRemote,
        data_dir: &Path,
        tweak: impl FnOnce(&mut FsConfig),
    ) -> Device {
        let mut dev = Device::start_unchecked(remote, data_dir, tweak);
        dev.check = dev.fs.start_cache_check().unwrap();
        dev
    }

    /// Like [`Device::start_with`], without starting the check of the cache a mount
    /// starts after an unclean stop (`SaveFs::start_cache_check`).
    pub fn start_unchecked(
        remote: &FakeRemote,
        data_dir: &Path,
        tweak: impl FnOnce(&mut FsConfig),
    ) -> Device {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut cfg = FsConfig::new(data_dir);
        cfg.debounce = Duration::from_millis(10);
        // A returning server is found within half a second.
        cfg.offline_backoff_max = Duration::from_millis(500);
        tweak(&mut cfg);
        let fs = SaveFs::load(cfg, Arc::new(remote.clone()), rt.handle().clone()).unwrap();
        let engine = rt.block_on(async { fs.engine().start() });
        Device {
            fs,
            data_dir: data_dir.to_path_buf(),
            engine: Some(engine),
            check: None,
            rt: Some(rt),
        }
    }

    /// Stop the engine and drop the runtime (like the daemon exiting).
    pub fn stop(mut self) {
        if let Some(c) = self.check.take() {
            c.stop();
        }
        if let Some(e) = self.engine.take() {
            e.stop();
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }

    /// Inode of the directory holding `path`, creating directories as needed.
    pub fn mkdirs(&self, path: &str) -> u64 {
        let mut cur = ROOT_INO;
        let parts: Vec<&str> = path.split('/').collect();
        for dir in &parts[..parts.len() - 1] {
            cur = match self.fs.lookup(cur, dir) {
                Ok(a) => a.ino,
                Err(_) => self.fs.mkdir(cur, dir, 0o755, 0, 0).unwrap().ino,
            };
        }
        cur
    }

    fn name(path: &str) -> &str {
        path.rsplit('/').next().unwrap()
    }

    pub fn lookup(&self, path: &str) -> FsResult<Attr> {
        let mut attr = self.fs.getattr(ROOT_INO)?;
        for comp in path.split('/') {
            attr = self.fs.lookup(attr.ino, comp)?;
        }
        Ok(attr)
    }

    /// Write a whole file like `cp` (create or O_TRUNC, write, close).
    pub fn write_file(&self, path: &str, bytes: &[u8]) {
        let parent = self.mkdirs(path);
        let fh = match self.fs.lookup(parent, Self::name(path)) {
            Ok(a) => {
                let fh = self.fs.open(a.ino, libc::O_WRONLY).unwrap();
                self.fs
                    .setattr(
                        a.ino,
                        savesync_fs::savefs::SetAttr { size: Some(0), ..Default::default() },
                        Some(fh),
                    )
                    .unwrap();
                fh
            }
            Err(_) => {
                self.fs.create(parent, Self::name(path), 0o644, libc::O_WRONLY, 0, 0).unwrap().1
            }
        };
        self.fs.write(fh, 0, bytes).unwrap();
        self.fs.flush(fh).unwrap();
        self.fs.release(fh).unwrap();
    }

    /// Read a whole file like `cat`.
    pub fn read_file(&self, path: &str) -> FsResult<Vec<u8>> {
        let attr = self.lookup(path)?;
        let fh = self.fs.open(attr.ino, libc::O_RDONLY)?;
        let mut out = Vec::new();
        loop {
            let chunk = self.fs.read(fh, out.len() as u64, 65536)?;
            if chunk.is_empty() {
                break;
            }
            out.extend(chunk);
        }
        self.fs.release(fh)?;
        Ok(out)
    }

    pub fn unlink(&self, path: &str) -> FsResult<()> {
        let parent = self.lookup_parent(path);
        self.fs.unlink(parent, Self::name(path))
    }

    pub fn lookup_parent(&self, path: &str) -> u64 {
        match path.rsplit_once('/') {
            Some((dir, _)) => self.lookup(dir).unwrap().ino,
            None => ROOT_INO,
        }
    }

    pub fn exists(&self, path: &str) -> bool {
        self.lookup(path).is_ok()
    }

    pub fn is_conflict_copy(&self, path: &str) -> bool {
        self.lookup(path).is_ok_and(|a| a.kind == InodeKind::Conflict)
    }

    pub fn pending(&self) -> u64 {
        self.fs.state().pending_count().unwrap()
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        if let Some(c) = self.check.take() {
            c.stop();
        }
        if let Some(e) = self.engine.take() {
            e.stop();
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// Poll `f` until it returns Some, at most `timeout`; panic naming `what` otherwise.
pub fn wait_until<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub const DEADLINE: Duration = Duration::from_secs(5);
