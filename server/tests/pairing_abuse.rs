//! Pairing under abuse: guesses from many addresses cannot lock out a device holding a
//! valid code, yet each code only survives a bounded number of wrong guesses; codes are
//! stored under a keyed hash that a copy of the database cannot brute-force; the data dir
//! and database files are private; `/pair` takes only a small body; minting codes is rate
//! limited and can be reserved to the admin CLI, like revoking; device names and kinds
//! must be printable.

mod common;

use common::{DEADLINE, TestServer, eventually};
use reqwest::header::RETRY_AFTER;
use savesync_core::ErrorCode;
use savesync_core::wire::ErrorBody;
use savesync_server::{App, Config, launch};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::time::Duration;

crate::backend_matrix! {

/// One `POST /pair` claiming to come from `from` (through a trusted proxy); the status and
/// the error code, if any.
async fn pair_from(
    server: &TestServer,
    from: &str,
    code: &str,
    name: &str,
    kind: &str,
) -> (u16, Option<ErrorCode>) {
    let body = serde_json::json!({ "code": code, "device_name": name, "device_kind": kind });
    let response = reqwest::Client::new()
        .post(server.api("pair"))
        .header("x-forwarded-for", from)
        .json(&body)
        .timeout(DEADLINE)
        .send()
        .await
        .expect("request sent");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (status, serde_json::from_str::<ErrorBody>(&text).ok().map(|b| b.code))
}

#[tokio::test]
async fn wrong_guesses_from_thirty_addresses_do_not_lock_out_a_valid_code() {
    let server = TestServer::start_with(|c| c.trust_forwarded_for = true).await;
    let code = server.app.issue_pairing_code("alice").unwrap();
    for n in 0..30 {
        let from = format!("198.51.100.{n}");
        for _ in 0..10 {
            let answer = pair_from(&server, &from, "AAAA-AAAA", "guesser", "x").await;
            assert_eq!(answer, (403, Some(ErrorCode::PairingCodeInvalid)), "from {from}");
        }
    }
    // Each guessing address is throttled on its own...
    let answer = pair_from(&server, "198.51.100.0", "AAAA-AAAA", "guesser", "x").await;
    assert_eq!(answer, (429, Some(ErrorCode::RateLimited)));
    // ...but the device holding the valid code pairs.
    let answer = pair_from(&server, "203.0.113.9", &code.code, "deck", "steamdeck").await;
    assert_eq!(answer, (200, None));
}

#[tokio::test]
async fn a_code_stops_working_after_its_budget_of_wrong_guesses() {
    let server = TestServer::start_with(|c| {
        c.trust_forwarded_for = true;
        c.pairing_max_wrong_guesses = 5;
    })
    .await;
    let guessed = server.app.issue_pairing_code("alice").unwrap();
    for n in 0..5 {
        let from = format!("198.51.100.{n}");
        let answer = pair_from(&server, &from, "AAAA-AAAA", "guesser", "x").await;
        assert_eq!(answer, (403, Some(ErrorCode::PairingCodeInvalid)));
    }
    let answer = pair_from(&server, "203.0.113.9", &guessed.code, "deck", "steamdeck").await;
    assert_eq!(answer, (403, Some(ErrorCode::PairingCodeInvalid)), "the code outlived its budget");
    // A code issued after the guesses has its whole budget.
    let fresh = server.app.issue_pairing_code("alice").unwrap();
    let answer = pair_from(&server, "203.0.113.9", &fresh.code, "deck", "steamdeck").await;
    assert_eq!(answer, (200, None));
}

/// A server on `config` (its own data dir); stop it by sending on the returned channel.
async fn serve(
    config: Config,
) -> (App, String, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<anyhow::Result<()>>) {
    let app = App::open(config).expect("open app");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(launch(app.clone(), listener, async move {
        let _ = rx.await;
    }));
    (app, base_url, tx, task)
}

fn anonymous(base_url: &str) -> savesync_client::Client {
    savesync_client::Client::new(base_url, None)
        .unwrap()
        .with_retry(savesync_client::RetryPolicy::none())
        .with_timeout(DEADLINE)
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[sqlite_dir_only]
#[tokio::test]
async fn pairing_codes_are_stored_keyed_and_still_pair_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::with_data_dir(dir.path());
    let (app, _, stop, task) = serve(config.clone()).await;
    let code = app.issue_pairing_code("alice").unwrap();
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
    drop(app);

    let plain = hex::encode(Sha256::digest(code.code.replace('-', "").as_bytes()));
    let db = rusqlite::Connection::open(config.db_path()).unwrap();
    let stored: Vec<String> = db
        .prepare("SELECT code_hash FROM pairing_codes")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    drop(db);
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0], plain, "the database holds a plain SHA-256 of the code");
    assert!(!stored[0].contains(&code.code.replace('-', "")));

    let (_app, base_url, _stop, _task) = serve(config).await;
    let paired = anonymous(&base_url).pair(&code.code, "deck", "steamdeck").await.unwrap();
    assert_eq!(paired.user, "alice");
}

#[sqlite_dir_only]
#[cfg(unix)]
#[tokio::test]
async fn the_data_dir_is_0700_and_the_database_files_and_key_0600() {
    let parent = tempfile::tempdir().unwrap();
    let data = parent.path().join("data");
    let (app, base_url, _stop, _task) = serve(Config::with_data_dir(&data)).await;
    // A commit so the WAL and shared-memory files exist.
    let code = app.issue_pairing_code("alice").unwrap();
    let paired = anonymous(&base_url).pair(&code.code, "deck", "steamdeck").await.unwrap();
    let device = anonymous(&base_url).with_token(&paired.token).unwrap();
    let path = savesync_core::SavePath::parse("snes/a.srm").unwrap();
    device.upload(&path, savesync_core::Rev::NONE, bytes::Bytes::from_static(b"x")).await.unwrap();

    assert_eq!(mode(&data), 0o700, "data dir");
    for file in ["savesync.db", "savesync.db-wal", "savesync.db-shm", "pairing.key"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
}

#[tokio::test]
async fn a_pair_body_over_4_kib_is_refused_with_413() {
    let server = TestServer::start().await;
    let body = serde_json::json!({
        "code": "AAAA-AAAA",
        "device_name": "deck",
        "device_kind": "x",
        "padding": "p".repeat(64 * 1024),
    });
    let response = reqwest::Client::new()
        .post(server.api("pair"))
        .json(&body)
        .timeout(DEADLINE)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let body: ErrorBody = response.json().await.unwrap();
    assert_eq!(body.code, ErrorCode::BodyTooLarge);
    // An ordinary pairing still fits.
    server.pair("alice", "deck").await;
}

#[tokio::test]
async fn minting_codes_is_rate_limited_per_device() {
    let server = TestServer::start_with(|c| {
        c.pairing_mint_burst = 2;
        c.pairing_mint_interval = Duration::from_secs(2);
    })
    .await;
    let deck = server.pair("alice", "deck").await;
    let laptop = server.pair("alice", "laptop").await;
    deck.client.create_pairing_code().await.unwrap();
    deck.client.create_pairing_code().await.unwrap();
    let err = deck.client.create_pairing_code().await.unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(429), Some(ErrorCode::RateLimited)), "{err}");
    let response = reqwest::Client::new()
        .post(server.api("pairing-codes"))
        .bearer_auth(&deck.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()[RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "retry-after {retry_after}");
    // Another device has its own allowance.
    laptop.client.create_pairing_code().await.unwrap();
    // After an interval the device may mint again, one code per interval, not a new burst.
    eventually("minting to be allowed again", || async {
        deck.client.create_pairing_code().await.ok()
    })
    .await;
    let err = deck.client.create_pairing_code().await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::RateLimited), "{err}");
}

#[tokio::test]
async fn admin_cli_only_refuses_minting_and_revoking_over_the_api() {
    let server = TestServer::start_with(|c| c.admin_cli_only = true).await;
    let deck = server.pair("alice", "deck").await;
    let laptop = server.pair("alice", "laptop").await;
    let err = deck.client.create_pairing_code().await.unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(403), Some(ErrorCode::AdminOnly)), "{err}");
    let err = deck.client.revoke_device(laptop.id).await.unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(403), Some(ErrorCode::AdminOnly)), "{err}");
    laptop.client.list(None, false).await.expect("the laptop was not revoked");
    // The admin's own path (the CLI's `pair`) still works.
    server.pair("alice", "phone").await;
}

#[tokio::test]
async fn device_names_and_kinds_must_be_printable() {
    let server = TestServer::start_with(|c| c.trust_forwarded_for = true).await;
    let code = server.app.issue_pairing_code("alice").unwrap();
    let refused = [
        ("deck\n2026-01-01T00:00:00Z  INFO forged: admin logged in", "handheld"),
        ("evil\u{202E}gpj.exe", "handheld"),
        ("zero\u{200B}width", "handheld"),
        ("deck", "hand\nheld"),
        ("deck", "hand\u{1b}[2Jheld"),
        ("deck", "\u{2066}desktop\u{2069}"),
        ("deck", &"k".repeat(65)),
    ];
    for (name, kind) in refused {
        let answer = pair_from(&server, "203.0.113.9", &code.code, name, kind).await;
        assert_eq!(answer, (400, Some(ErrorCode::BadRequest)), "{name:?} / {kind:?}");
    }
    // Refused labels neither use up the code nor count as guesses.
    let answer = pair_from(&server, "203.0.113.9", &code.code, "Pokémon deck", "handheld").await;
    assert_eq!(answer, (200, None));
}
}
