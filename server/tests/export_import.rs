//! `savesync-server export` / `import` through the real binary: an install on SQLite + a
//! blob directory moves to Postgres + an S3-compatible bucket and back. After each import the counts and every blob
//! hash match (the import checks them itself; the test re-checks by comparing the exports
//! of both sides), and the moved server serves the same saves, history and device tokens.
//! Also: a second import into a non-empty target and an export into a used directory are
//! refused with a clear error and change nothing.

use savesync_client::{Client, RetryPolicy};
use savesync_core::{Rev, SavePath};
use savesync_server::{App, Config, launch};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn sp(s: &str) -> SavePath {
    SavePath::parse(s).unwrap()
}

/// A server on `config` until dropped.
struct Running {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    app: App,
}

impl Running {
    async fn start(config: Config) -> Running {
        let app = App::connect(config).await.expect("open the stores");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(launch(app.clone(), listener, async move {
            let _ = rx.await;
        }));
        Running { url, stop: Some(tx), task, app }
    }

    fn client(&self, token: &str) -> Client {
        Client::new(&self.url, Some(token.to_owned()))
            .unwrap()
            .with_retry(RetryPolicy::none())
            .with_timeout(Duration::from_secs(10))
    }

    async fn pair(&self, user: &str, device: &str) -> String {
        let code = self.app.pairing_code(user).await.unwrap();
        let anon = Client::new(&self.url, None).unwrap().with_retry(RetryPolicy::none());
        anon.pair(&code.code, device, "test").await.unwrap().token
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("server stops")
            .expect("no panic")
            .expect("clean exit");
    }
}

/// Every save of the user behind `client`: path -> (bytes, the hashes of its history).
async fn snapshot(client: &Client) -> BTreeMap<String, (Vec<u8>, Vec<String>)> {
    let mut out = BTreeMap::new();
    for save in client.list(None, false).await.unwrap().saves {
        let bytes = client.download(&save.path, None).await.unwrap().bytes.to_vec();
        let history = client.history(&save.path).await.unwrap();
        let hashes = history
            .versions
            .iter()
            .map(|v| format!("{:?} {} {:?}", v.kind, v.rev, v.hash.map(|h| h.to_hex())))
            .collect();
        out.insert(save.path.as_str().to_owned(), (bytes, hashes));
    }
    out
}

fn server_bin() -> &'static str {
    env!("CARGO_BIN_EXE_savesync-server")
}

/// Run `savesync-server` with `args` on the install `config_file` describes.
fn cli(config_file: &Path, args: &[&str]) -> std::process::Output {
    Command::new(server_bin())
        .arg("--config")
        .arg(config_file)
        .args(args)
        .env_remove("SAVESYNC_DATABASE_URL")
        .env_remove("SAVESYNC_DATA_DIR")
        .output()
        .expect("run savesync-server")
}

fn ok(out: &std::process::Output, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{what} failed: {}\nstdout: {}\nstderr: {stderr}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    format!("{}{stderr}", String::from_utf8_lossy(&out.stdout))
}

/// A config file for an install in `dir`, on Postgres at `database_url` and in `bucket`
/// if given.
fn install(
    dir: &Path,
    database_url: Option<&str>,
    bucket: Option<&savesync_testenv::s3::Bucket>,
) -> (PathBuf, Config) {
    use savesync_testenv::s3;
    std::fs::create_dir_all(dir).unwrap();
    let data = dir.join("data");
    let mut toml = format!("data_dir = {:?}\n", data.to_str().unwrap());
    if let Some(url) = database_url {
        toml.push_str(&format!("database_url = {url:?}\n"));
    }
    if let Some(b) = bucket {
        toml.push_str(&format!(
            "blob_url = {:?}\n[s3]\nendpoint = {:?}\nregion = {:?}\naccess_key_id = {:?}\nsecret_access_key = {:?}\n",
            b.url("moved"),
            b.endpoint,
            s3::REGION,
            s3::ACCESS_KEY_ID,
            s3::SECRET_ACCESS_KEY
        ));
    }
    let file = dir.join("savesync.toml");
    std::fs::write(&file, toml).unwrap();
    let config = Config::load(Some(&file)).unwrap();
    (file, config)
}

/// The rows of each table of an export, order-free, and its blob files with their bytes.
fn export_contents(dir: &Path) -> (BTreeMap<String, BTreeSet<String>>, BTreeMap<String, Vec<u8>>) {
    let mut tables = BTreeMap::new();
    for entry in std::fs::read_dir(dir.join("tables")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        tables.insert(name, text.lines().map(str::to_owned).collect());
    }
    let mut blobs = BTreeMap::new();
    for entry in std::fs::read_dir(dir.join("blobs")).unwrap() {
        let path = entry.unwrap().path();
        blobs.insert(
            path.file_name().unwrap().to_str().unwrap().to_owned(),
            std::fs::read(&path).unwrap(),
        );
    }
    (tables, blobs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_install_moves_from_sqlite_and_a_dir_to_postgres_and_s3_and_back_with_every_count_and_hash()
 {
    let Some(pg_url) = savesync_testenv::postgres::fresh_database() else {
        println!("SKIPPED: {}", savesync_testenv::postgres::MISSING);
        return;
    };
    let Some(bucket) = savesync_testenv::s3::bucket() else {
        println!("SKIPPED: moto_server (S3) is not installed");
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let (a_file, a_config) = install(&root.path().join("a"), None, None);

    // Two users with history, a conflict version, a tombstone and binary content.
    let a = Running::start(a_config.clone()).await;
    let ann = a.pair("ann", "deck").await;
    let bob = a.pair("bob", "phone").await;
    let ann_c = a.client(&ann);
    let bob_c = a.client(&bob);
    let v1 =
        ann_c.upload(&sp("snes/zelda.srm"), Rev::NONE, vec![1u8; 70_000].into()).await.unwrap();
    let v2 = ann_c.upload(&sp("snes/zelda.srm"), v1.rev, vec![2u8; 5].into()).await.unwrap();
    let stale = ann_c.upload(&sp("snes/zelda.srm"), v1.rev, b"lost race".to_vec().into()).await;
    assert!(stale.unwrap_err().is_conflict(), "a stale base is kept as a conflict version");
    let gone = ann_c.upload(&sp("gb/old.sav"), Rev::NONE, b"old".to_vec().into()).await.unwrap();
    ann_c.delete(&sp("gb/old.sav"), gone.rev).await.unwrap();
    let binary: Vec<u8> = (0..=255u8).cycle().take(3 * 1024 * 1024).collect();
    bob_c.upload(&sp("psx/ff7 slot 1.mcr"), Rev::NONE, binary.clone().into()).await.unwrap();
    let _ = v2;
    let before_ann = snapshot(&ann_c).await;
    let before_bob = snapshot(&bob_c).await;
    a.stop().await;

    // Export SQLite + dir, import into Postgres.
    let dump1 = root.path().join("dump1");
    let out = ok(&cli(&a_file, &["export", dump1.to_str().unwrap()]), "export from SQLite");
    assert!(out.contains("table versions:"), "progress names each table: {out}");
    let (b_file, b_config) = install(&root.path().join("b"), Some(&pg_url), Some(&bucket));
    let out = ok(&cli(&b_file, &["import", dump1.to_str().unwrap()]), "import into Postgres + S3");
    assert!(out.contains("counts and hashes match"), "{out}");

    // The Postgres + S3 server serves the same saves, history and tokens, and the blobs are
    // in the bucket, not in its data directory.
    assert!(
        !root
            .path()
            .join("b/data/blobs")
            .read_dir()
            .is_ok_and(|mut d| d.any(|e| e.is_ok_and(|e| e.file_name().len() == 2))),
        "no blob in b's directory"
    );
    let b = Running::start(b_config).await;
    assert_eq!(snapshot(&b.client(&ann)).await, before_ann);
    assert_eq!(snapshot(&b.client(&bob)).await, before_bob);
    // New writes get fresh ids (the identity sequences moved past the imported rows).
    let head = b.client(&ann).list(None, false).await.unwrap().saves[0].clone();
    b.client(&ann).upload(&head.path, head.rev, b"after the move".to_vec().into()).await.unwrap();
    let after_ann = snapshot(&b.client(&ann)).await;
    b.stop().await;

    // A second import into the now non-empty database is refused and changes nothing.
    let out = cli(&b_file, &["import", dump1.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already holds data"), "{err}");
    // An export into a used directory is refused too.
    let out = cli(&b_file, &["export", dump1.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not empty"));

    // And back: export Postgres, import into a fresh SQLite + dir.
    let dump2 = root.path().join("dump2");
    ok(&cli(&b_file, &["export", dump2.to_str().unwrap()]), "export from Postgres + S3");
    let (c_file, c_config) = install(&root.path().join("c"), None, None);
    ok(&cli(&c_file, &["import", dump2.to_str().unwrap()]), "import into SQLite");
    let c = Running::start(c_config).await;
    assert_eq!(snapshot(&c.client(&ann)).await, after_ann);
    assert_eq!(snapshot(&c.client(&bob)).await, before_bob);
    c.stop().await;

    // Both backends export the same tables; the second export holds the first's rows plus
    // the one write made after the move.
    let (t1, b1) = export_contents(&dump1);
    let (t2, b2) = export_contents(&dump2);
    assert_eq!(t1.keys().collect::<Vec<_>>(), t2.keys().collect::<Vec<_>>());
    assert!(b1.iter().all(|(hash, bytes)| b2.get(hash) == Some(bytes)), "every blob survives");
    assert_eq!(b2.len(), b1.len() + 1, "plus the one written after the move");
    for (hash, bytes) in &b2 {
        assert_eq!(&savesync_core::ContentHash::of(bytes).to_hex(), hash, "blob {hash}");
    }
    assert!(t1["versions"].is_subset(&t2["versions"]), "every version row survives verbatim");
    assert_eq!(t2["versions"].len(), t1["versions"].len() + 1);
    assert_eq!(t1["pairing_codes"], t2["pairing_codes"], "untouched tables are identical");
    assert_eq!(t1["users"].len(), t2["users"].len());
    assert_eq!(t1["devices"].len(), t2["devices"].len());
}

#[test]
fn export_and_import_explain_themselves() {
    for cmd in ["export", "import"] {
        let out = Command::new(server_bin()).args([cmd, "--help"]).output().unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{cmd} --help");
        assert!(help.contains("Usage:") && help.contains("<DIR>"), "{help}");
        assert!(help.contains("empty"), "{cmd} --help says the target must be new: {help}");
    }
    let out = Command::new(server_bin()).args(["import", "/nonexistent/dump"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not an export"), "{err}");
}
