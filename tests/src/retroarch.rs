//! [`RetroArch`]: a test client that behaves like RetroArch's Cloud Sync over WebDAV
//! (`tasks/task_cloudsync.c` and `network/cloud_sync/webdav.c` in libretro/RetroArch,
//! re-expressed, not copied): the same requests in the same order, built the same way.
//!
//! One sync: `OPTIONS` on the base URL with Basic auth; `GET manifest.server` (a 404 means
//! none); a three-way diff of the server manifest, `manifest.local` (what the last sync
//! left) and the files on disk, all sorted case-insensitively; per file, one at a time:
//! `GET`, or `MKCOL` of each parent level (405 = exists) then `PUT`, or `DELETE` (the
//! destructive mode) or `MKCOL deleted/<dir>` levels then `MOVE` to
//! `deleted/<path>-yymmdd-HHMMSS` (the default mode); then `manifest.local` is rewritten
//! and, if anything was uploaded or deleted, `PUT manifest.server`. URLs are percent-encoded
//! byte by byte (`A-Z a-z 0-9 * - . _ /` left alone), the `Destination` is absolute.
//!
//! Every request is logged as `METHOD /path STATUS` so tests can assert the sequence.

use savesync_server::dav::DavCredentials;
use std::cmp::Ordering;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tokio::runtime::Runtime;

/// What a sync ended with (RetroArch's "Cloud Sync finished with failures/conflicts").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SyncOutcome {
    /// The `OPTIONS` check passed.
    pub began: bool,
    pub failures: bool,
    pub conflicts: bool,
}

/// One manifest line: a path and its MD5 hex (`""` once deleted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry {
    pub path: String,
    pub hash: String,
}

/// A RetroArch install: its saves/states directories, its `manifest.local`, its settings.
#[derive(Debug)]
pub struct RetroArch {
    runtime: Runtime,
    http: reqwest::Client,
    /// The Cloud Sync URL, ending in `/`.
    base: String,
    username: String,
    password: String,
    dir: tempfile::TempDir,
    /// `cloud_sync_destructive` (RetroArch's default is false).
    pub destructive: bool,
    log: Mutex<Vec<String>>,
}

/// A response as RetroArch's HTTP task sees it.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// The folders RetroArch's cloud sync maps (saves and states; configs not enabled here).
const FOLDERS: [&str; 2] = ["saves", "states"];

impl RetroArch {
    /// A fresh install pointed at `server_url`'s WebDAV face with these credentials.
    #[must_use]
    pub fn new(server_url: &str, creds: &DavCredentials) -> RetroArch {
        RetroArch::with_password(server_url, &creds.username, &creds.password)
    }

    /// The same with any user name and password (wrong ones included).
    #[must_use]
    pub fn with_password(server_url: &str, username: &str, password: &str) -> RetroArch {
        let settings = savesync_server::dav::retroarch_settings(server_url, username);
        RetroArch::at(&settings.url, username, password)
    }

    /// An install configured with exactly these three settings (as typed into RetroArch).
    #[must_use]
    pub fn at(cloud_sync_url: &str, username: &str, password: &str) -> RetroArch {
        let dir = tempfile::tempdir().expect("temp dir");
        for folder in FOLDERS {
            std::fs::create_dir_all(dir.path().join(folder)).expect("mkdir");
        }
        std::fs::create_dir_all(dir.path().join("core_assets")).expect("mkdir");
        RetroArch {
            runtime: crate::runtime(),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .expect("http client"),
            base: cloud_sync_url.to_owned(),
            username: username.to_owned(),
            password: password.to_owned(),
            dir,
            destructive: false,
            log: Mutex::new(Vec::new()),
        }
    }

    /// RetroArch's directory (`saves/`, `states/`, `core_assets/`).
    #[must_use]
    pub fn base_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The Cloud Sync URL.
    #[must_use]
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn file(&self, key: &str) -> PathBuf {
        self.dir.path().join(key)
    }

    /// Write a local save (`saves/<core>/<game>.srm`), as the emulator would.
    pub fn write(&self, key: &str, bytes: &[u8]) {
        let path = self.file(key);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, bytes).expect("write save");
    }

    /// A local save's bytes.
    #[must_use]
    pub fn read(&self, key: &str) -> Option<Vec<u8>> {
        std::fs::read(self.file(key)).ok()
    }

    /// Delete a local save.
    pub fn remove(&self, key: &str) {
        std::fs::remove_file(self.file(key)).expect("remove save");
    }

    /// Files moved aside by the non-destructive mode (`cloud_backups/`).
    #[must_use]
    pub fn backups(&self) -> Vec<String> {
        let mut out = Vec::new();
        walk(&self.dir.path().join("core_assets/cloud_backups"), "", &mut out);
        out.sort();
        out
    }

    /// The requests made so far (`METHOD /path STATUS`), emptied.
    pub fn take_log(&self) -> Vec<String> {
        std::mem::take(&mut *self.log.lock().expect("log"))
    }

    /// One request, as RetroArch's HTTP task makes it: Basic auth up front.
    pub fn request(
        &self,
        method: &str,
        key: &str,
        body: Option<Vec<u8>>,
        destination: Option<&str>,
    ) -> Reply {
        let url = encode_url(&format!("{}{key}", self.base));
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self
            .http
            .request(method.clone(), &url)
            .basic_auth(&self.username, Some(&self.password));
        if let Some(destination) = destination {
            request = request.header("Destination", destination);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let reply = self.runtime.block_on(async {
            match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let headers = response.headers().clone();
                    let body = response.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
                    Reply { status, headers, body }
                }
                Err(_) => Reply { status: 0, headers: Default::default(), body: Vec::new() },
            }
        });
        let path = url.splitn(4, '/').nth(3).unwrap_or_default();
        self.log.lock().expect("log").push(format!("{method} /{path} {}", reply.status));
        reply
    }

    /// `OPTIONS` on the base URL: RetroArch's credentials check.
    pub fn begin(&self) -> bool {
        self.request("OPTIONS", "", None, None).ok()
    }

    /// `GET manifest.server`: `Some(entries)` (empty when there is none), `None` on failure.
    pub fn fetch_manifest(&self) -> Option<Vec<ManifestEntry>> {
        let reply = self.request("GET", "manifest.server", None, None);
        match reply.status {
            404 => Some(Vec::new()),
            s if (200..300).contains(&s) => Some(parse_manifest(&reply.body)),
            _ => None,
        }
    }

    /// `MKCOL` each level of `dir` (ending in `/`); a 405 means it exists.
    fn ensure_dir(&self, dir: &str) -> bool {
        let mut upto = String::new();
        for level in dir.trim_end_matches('/').split('/') {
            if !upto.is_empty() {
                upto.push('/');
            }
            upto.push_str(level);
            let status = self.request("MKCOL", &upto, None, None).status;
            if status < 200 || (status >= 400 && status != 405) {
                return false;
            }
        }
        true
    }

    /// Upload one local file: parents, then `PUT`.
    pub fn upload(&self, key: &str) -> bool {
        let Some(bytes) = self.read(key) else { return false };
        if let Some((dir, _)) = key.rsplit_once('/')
            && !self.ensure_dir(&format!("{dir}/"))
        {
            return false;
        }
        self.request("PUT", key, Some(bytes), None).ok()
    }

    /// Delete on the server, as the configured mode does it.
    pub fn delete_remote(&self, key: &str) -> bool {
        if self.destructive {
            return self.request("DELETE", key, None, None).ok();
        }
        let dir = key.rsplit_once('/').map_or(String::new(), |(d, _)| format!("{d}/"));
        if !self.ensure_dir(&format!("deleted/{dir}")) {
            return false;
        }
        let destination = encode_url(&format!("{}deleted/{key}-{}", self.base, stamp()));
        self.request("MOVE", key, None, Some(&destination)).ok()
    }

    /// Fetch one file into place (a 404 counts as success, as in RetroArch).
    fn fetch(&self, key: &str) -> Option<String> {
        let reply = self.request("GET", key, None, None);
        if !(reply.ok() || reply.status == 404) {
            return None;
        }
        let path = self.file(key);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, &reply.body).expect("write fetched save");
        Some(md5_hex(&reply.body))
    }

    fn backup(&self, key: &str) {
        let target =
            self.dir.path().join("core_assets/cloud_backups").join(format!("{key}-{}", stamp()));
        std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
        std::fs::rename(self.file(key), target).expect("back up");
    }

    fn local_manifest_path(&self) -> PathBuf {
        self.dir.path().join("core_assets/manifest.local")
    }

    /// The files on disk, as manifest entries (hashes computed).
    fn current(&self) -> Vec<ManifestEntry> {
        let mut keys = Vec::new();
        for folder in FOLDERS {
            walk(&self.dir.path().join(folder), folder, &mut keys);
        }
        let mut entries: Vec<ManifestEntry> = keys
            .into_iter()
            .map(|k| {
                let hash = md5_hex(&self.read(&k).unwrap_or_default());
                ManifestEntry { path: k, hash }
            })
            .collect();
        entries.sort_by(|a, b| key_cmp(Some(&a.path), Some(&b.path)));
        entries
    }

    /// One full Cloud Sync run.
    pub fn sync(&self) -> SyncOutcome {
        let mut out = SyncOutcome::default();
        if !self.begin() {
            return out;
        }
        out.began = true;
        let Some(mut server) = self.fetch_manifest() else {
            out.failures = true;
            return out;
        };
        server.sort_by(|a, b| key_cmp(Some(&a.path), Some(&b.path)));
        let mut local = std::fs::read(self.local_manifest_path())
            .map(|b| parse_manifest(&b))
            .unwrap_or_default();
        local.sort_by(|a, b| key_cmp(Some(&a.path), Some(&b.path)));
        let current = self.current();
        let mut run = Run {
            ra: self,
            out,
            new_server: Vec::new(),
            new_local: Vec::new(),
            upload_manifest: false,
            old_local: &local,
        };
        let (mut s, mut l, mut c) = (0, 0, 0);
        loop {
            let (sf, lf, cf) = (server.get(s), local.get(l), current.get(c));
            if sf.is_none() && lf.is_none() && cf.is_none() {
                break;
            }
            let key = |e: Option<&ManifestEntry>| e.map(|e| e.path.clone());
            match key_cmp(key(sf).as_deref(), key(lf).as_deref()) {
                Ordering::Less => match key_cmp(key(sf).as_deref(), key(cf).as_deref()) {
                    Ordering::Less => {
                        let sf = sf.expect("server entry");
                        if sf.hash.is_empty() {
                            run.mark_deleted(&sf.path);
                        } else {
                            run.fetch(sf);
                        }
                        s += 1;
                    }
                    Ordering::Equal => {
                        run.check(sf.expect("server entry"), None, cf.expect("current entry"));
                        s += 1;
                        c += 1;
                    }
                    Ordering::Greater => {
                        run.upload(cf.expect("current entry"));
                        c += 1;
                    }
                },
                Ordering::Equal => match key_cmp(key(cf).as_deref(), key(lf).as_deref()) {
                    Ordering::Less => {
                        run.upload(cf.expect("current entry"));
                        c += 1;
                    }
                    Ordering::Equal => {
                        run.check(sf.expect("server entry"), lf, cf.expect("current entry"));
                        c += 1;
                        l += 1;
                        s += 1;
                    }
                    Ordering::Greater => {
                        let sf = sf.expect("server entry");
                        if sf.hash.is_empty() {
                            run.mark_deleted(&sf.path);
                        } else {
                            run.delete_remote(sf);
                        }
                        l += 1;
                        s += 1;
                    }
                },
                Ordering::Greater => match key_cmp(key(cf).as_deref(), key(lf).as_deref()) {
                    Ordering::Less => {
                        run.upload(cf.expect("current entry"));
                        c += 1;
                    }
                    Ordering::Equal => {
                        run.upload(cf.expect("current entry"));
                        c += 1;
                        l += 1;
                    }
                    Ordering::Greater => l += 1,
                },
            }
        }
        let Run { mut out, new_server, new_local, upload_manifest, .. } = run;
        std::fs::write(self.local_manifest_path(), manifest_json(&new_local))
            .expect("write manifest.local");
        if upload_manifest
            && !self.request("PUT", "manifest.server", Some(manifest_json(&new_server)), None).ok()
        {
            out.failures = true;
        }
        out
    }
}

/// The state of one diff pass (the updated manifests, the flags).
struct Run<'a> {
    ra: &'a RetroArch,
    out: SyncOutcome,
    new_server: Vec<ManifestEntry>,
    new_local: Vec<ManifestEntry>,
    upload_manifest: bool,
    old_local: &'a [ManifestEntry],
}

impl Run<'_> {
    fn note(&mut self, key: &str, hash: &str, server: bool, local: bool) {
        let entry = ManifestEntry { path: key.to_owned(), hash: hash.to_owned() };
        if server {
            self.new_server.push(entry.clone());
        }
        if local {
            self.new_local.push(entry);
        }
    }

    fn old_local_hash(&self, key: &str) -> Option<String> {
        self.old_local.iter().find(|e| e.path == key).map(|e| e.hash.clone())
    }

    fn mark_deleted(&mut self, key: &str) {
        self.note(key, "", true, true);
    }

    fn fetch(&mut self, server: &ManifestEntry) {
        self.note(&server.path, &server.hash, true, false);
        if !self.ra.destructive && self.ra.file(&server.path).exists() {
            self.ra.backup(&server.path);
        }
        match self.ra.fetch(&server.path) {
            Some(hash) => self.note(&server.path, &hash, false, true),
            None => self.out.failures = true,
        }
    }

    fn upload(&mut self, current: &ManifestEntry) {
        if self.ra.upload(&current.path) {
            self.note(&current.path, &current.hash, true, true);
            self.upload_manifest = true;
        } else {
            if let Some(old) = self.old_local_hash(&current.path) {
                self.note(&current.path, &old, false, true);
            }
            self.out.failures = true;
        }
    }

    fn delete_remote(&mut self, server: &ManifestEntry) {
        if self.ra.delete_remote(&server.path) {
            self.note(&server.path, "", true, true);
            self.upload_manifest = true;
        } else {
            if let Some(old) = self.old_local_hash(&server.path) {
                self.note(&server.path, &old, false, true);
            }
            self.out.failures = true;
        }
    }

    fn conflict(&mut self, server: &ManifestEntry) {
        self.note(&server.path, &server.hash, true, false);
        self.out.conflicts = true;
    }

    fn check(
        &mut self,
        server: &ManifestEntry,
        local: Option<&ManifestEntry>,
        current: &ManifestEntry,
    ) {
        if server.hash == current.hash {
            self.note(&current.path, &current.hash, true, true);
            return;
        }
        let Some(local) = local else {
            self.conflict(server);
            return;
        };
        let server_changed = local.hash != server.hash;
        let current_changed = local.hash != current.hash;
        if server_changed && current_changed {
            self.conflict(server);
        } else if current_changed {
            self.upload(current);
        } else if !server.hash.is_empty() {
            self.fetch(server);
        } else if self.ra.destructive {
            std::fs::remove_file(self.ra.file(&current.path)).expect("delete local save");
        } else {
            self.ra.backup(&current.path);
        }
    }
}

/// Case-insensitive order, a missing entry last (RetroArch's `strcasecmp` key compare).
fn key_cmp(a: Option<&str>, b: Option<&str>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(a), Some(b)) => a.to_ascii_lowercase().cmp(&b.to_ascii_lowercase()),
    }
}

/// Encode the path of a full URL byte by byte, as `net_http_urlencode_full` does.
#[must_use]
pub fn encode_url(url: &str) -> String {
    let mut parts = url.splitn(4, '/');
    let (scheme, empty, host) =
        (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = parts.next().unwrap_or("");
    let mut out = format!("{scheme}/{empty}/{host}/");
    for byte in path.bytes() {
        if byte.is_ascii_alphanumeric() || b"*-._/".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn stamp() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:02}{:02}{:02}-{:02}{:02}{:02}",
        now.year() % 100,
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

/// Lowercase MD5 hex, as RetroArch hashes files.
#[must_use]
pub fn md5_hex(bytes: &[u8]) -> String {
    use md5::{Digest, Md5};
    hex_lower(&Md5::digest(bytes))
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parse a manifest the way RetroArch's parser does: objects with `path` and `hash`.
#[must_use]
pub fn parse_manifest(bytes: &[u8]) -> Vec<ManifestEntry> {
    let Ok(serde_json::Value::Array(items)) = serde_json::from_slice(bytes) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let path = item.get("path")?.as_str()?.to_owned();
            let hash = item.get("hash").and_then(|h| h.as_str()).unwrap_or("").to_owned();
            Some(ManifestEntry { path, hash })
        })
        .collect()
}

fn manifest_json(entries: &[ManifestEntry]) -> Vec<u8> {
    let items: Vec<serde_json::Value> =
        entries.iter().map(|e| serde_json::json!({ "path": e.path, "hash": e.hash })).collect();
    serde_json::to_vec_pretty(&items).expect("manifest json")
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let key = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&entry.path(), &key, out);
        } else {
            out.push(key);
        }
    }
}
