//! RetroArch's Cloud Sync against the server's WebDAV face (`/dav/`), replayed request by
//! request by [`RetroArch`] (the sequence of `tasks/task_cloudsync.c` and
//! `network/cloud_sync/webdav.c`), on a real server on loopback. What reached the server is
//! checked through the API ([`RemoteView`]), as a mount would see it.

use savesync_core::wire::VersionKind;
use savesync_tests::{RemoteView, RetroArch, TestServer, md5_hex, parse_manifest};
use std::io::{Read, Write};
use std::net::TcpStream;

const SRM: &str = "saves/snes9x/Super Mario World (USA).srm";
const STATE: &str = "states/mGBA/Pokémon - Emerald.state1";

fn lib(key: &str) -> String {
    format!("retroarch/{key}")
}

fn setup() -> (TestServer, RemoteView) {
    let server = TestServer::start_blocking();
    let view = RemoteView::new(&server, "alice");
    (server, view)
}

fn device(server: &TestServer, name: &str) -> RetroArch {
    RetroArch::new(&server.url(), &server.retroarch_device("alice", name, "retroarch/"))
}

/// Request log lines without the status, for sequence checks.
fn methods(log: &[String]) -> Vec<String> {
    log.iter().map(|l| l.rsplit_once(' ').map_or(l.clone(), |(m, _)| m.to_owned())).collect()
}

#[test]
fn first_sync_uploads_every_save_with_retroarchs_exact_requests() {
    let (server, view) = setup();
    let deck = device(&server, "deck");
    deck.write(SRM, b"sram v1");
    deck.write(STATE, b"state v1");
    let outcome = deck.sync();
    assert!(outcome.began && !outcome.failures && !outcome.conflicts, "{outcome:?}");
    assert_eq!(
        deck.take_log(),
        vec![
            "OPTIONS /dav/ 200",
            "GET /dav/manifest.server 200",
            "MKCOL /dav/saves 405",
            "MKCOL /dav/saves/snes9x 201",
            "PUT /dav/saves/snes9x/Super%20Mario%20World%20%28USA%29.srm 201",
            "MKCOL /dav/states 405",
            "MKCOL /dav/states/mGBA 201",
            "PUT /dav/states/mGBA/Pok%C3%A9mon%20-%20Emerald.state1 201",
            "PUT /dav/manifest.server 204",
        ]
    );
    assert!(view.has(&lib(SRM), b"sram v1"));
    assert!(view.has(&lib(STATE), b"state v1"));

    // The manifest is generated from the database: lowercase MD5 hex, path and hash only.
    let manifest = deck.request("GET", "manifest.server", None, None);
    let json: serde_json::Value = serde_json::from_slice(&manifest.body).unwrap();
    assert_eq!(
        json,
        serde_json::json!([
            {"path": SRM, "hash": md5_hex(b"sram v1")},
            {"path": STATE, "hash": md5_hex(b"state v1")},
        ])
    );

    // A folder is never deleted with saves in it.
    assert_eq!(deck.request("DELETE", "saves/snes9x/", None, None).status, 403);
    assert!(view.has(&lib(SRM), b"sram v1"));

    // Nothing changed: the next sync transfers nothing and uploads no manifest.
    deck.take_log();
    let outcome = deck.sync();
    assert!(!outcome.failures && !outcome.conflicts);
    assert_eq!(methods(&deck.take_log()), vec!["OPTIONS /dav/", "GET /dav/manifest.server"]);
}

#[test]
fn a_local_change_is_committed_on_the_rev_the_device_saw() {
    let (server, view) = setup();
    let deck = device(&server, "deck");
    deck.write(SRM, b"sram v1");
    deck.sync();
    deck.write(SRM, b"sram v2, after the boss");
    deck.take_log();
    let outcome = deck.sync();
    assert!(!outcome.failures && !outcome.conflicts, "{outcome:?}");
    assert_eq!(
        methods(&deck.take_log()),
        vec![
            "OPTIONS /dav/",
            "GET /dav/manifest.server",
            "MKCOL /dav/saves",
            "MKCOL /dav/saves/snes9x",
            "PUT /dav/saves/snes9x/Super%20Mario%20World%20%28USA%29.srm",
            "PUT /dav/manifest.server",
        ]
    );
    assert!(view.has(&lib(SRM), b"sram v2, after the boss"));
    let history = view.history(&lib(SRM));
    let kinds: Vec<_> = history.versions.iter().map(|v| (v.kind, v.rev.0)).collect();
    assert_eq!(kinds, vec![(VersionKind::Commit, 2), (VersionKind::Commit, 1)]);
}

#[test]
fn a_change_made_elsewhere_is_fetched_into_place() {
    let (server, view) = setup();
    let deck = device(&server, "deck");
    deck.write(SRM, b"sram v1");
    deck.sync();
    // Another device (the API, as a mount uses it) commits a newer version.
    let head = view.head(&lib(SRM)).unwrap();
    let path = savesync_core::SavePath::parse(&lib(SRM)).unwrap();
    view.block_on(view.client().upload(&path, head.rev, bytes::Bytes::from_static(b"from the pc")))
        .unwrap();
    deck.take_log();
    let outcome = deck.sync();
    assert!(!outcome.failures && !outcome.conflicts, "{outcome:?}");
    assert_eq!(
        methods(&deck.take_log()),
        vec![
            "OPTIONS /dav/",
            "GET /dav/manifest.server",
            "GET /dav/saves/snes9x/Super%20Mario%20World%20%28USA%29.srm",
        ]
    );
    assert_eq!(deck.read(SRM).as_deref(), Some(&b"from the pc"[..]));
}

#[test]
fn a_destructive_delete_is_a_tombstone_every_device_then_applies() {
    let (server, view) = setup();
    let mut deck = device(&server, "deck");
    let mut laptop = device(&server, "laptop");
    deck.destructive = true;
    laptop.destructive = true;
    deck.write(SRM, b"sram v1");
    deck.sync();
    laptop.sync();
    assert_eq!(laptop.read(SRM).as_deref(), Some(&b"sram v1"[..]));

    deck.remove(SRM);
    deck.take_log();
    let outcome = deck.sync();
    assert!(!outcome.failures, "{outcome:?}");
    assert_eq!(
        methods(&deck.take_log()),
        vec![
            "OPTIONS /dav/",
            "GET /dav/manifest.server",
            "DELETE /dav/saves/snes9x/Super%20Mario%20World%20%28USA%29.srm",
            "PUT /dav/manifest.server",
        ]
    );
    assert!(view.head(&lib(SRM)).unwrap().deleted);
    assert!(view.history_has(&lib(SRM), b"sram v1"), "the bytes stay in history");
    // The deleted save stays in the manifest with an empty hash...
    let entries = parse_manifest(&deck.request("GET", "manifest.server", None, None).body);
    assert_eq!(entries.len(), 1);
    assert_eq!((entries[0].path.as_str(), entries[0].hash.as_str()), (SRM, ""));
    // ...so the other device deletes its copy instead of uploading it again.
    laptop.take_log();
    laptop.sync();
    assert_eq!(laptop.read(SRM), None);
    assert!(!methods(&laptop.take_log()).iter().any(|l| l.starts_with("PUT")));
    assert!(view.head(&lib(SRM)).unwrap().deleted);
}

#[test]
fn a_non_destructive_delete_moves_into_deleted_and_keeps_the_bytes_in_history() {
    let (server, view) = setup();
    let deck = device(&server, "deck");
    assert!(!deck.destructive, "RetroArch's default");
    deck.write(SRM, b"sram v1");
    deck.sync();
    deck.remove(SRM);
    deck.take_log();
    let outcome = deck.sync();
    assert!(!outcome.failures, "{outcome:?}");
    let log = methods(&deck.take_log());
    assert_eq!(
        log[..5],
        [
            "OPTIONS /dav/",
            "GET /dav/manifest.server",
            "MKCOL /dav/deleted",
            "MKCOL /dav/deleted/saves",
            "MKCOL /dav/deleted/saves/snes9x",
        ]
    );
    assert_eq!(log[5], "MOVE /dav/saves/snes9x/Super%20Mario%20World%20%28USA%29.srm");
    assert_eq!(log[6], "PUT /dav/manifest.server");
    assert!(view.head(&lib(SRM)).unwrap().deleted);
    assert!(view.history_has(&lib(SRM), b"sram v1"));
    // No timestamped copy appears in the library.
    assert!(view.saves().keys().all(|p| !p.contains("deleted")), "{:?}", view.saves());
    let entries = parse_manifest(&deck.request("GET", "manifest.server", None, None).body);
    assert_eq!(entries.iter().map(|e| e.hash.as_str()).collect::<Vec<_>>(), vec![""]);
    // A MOVE anywhere but deleted/ is refused, without a body.
    deck.write(STATE, b"s");
    deck.sync();
    let dest = format!("{}states/elsewhere.state", deck.base_url());
    let reply = deck.request("MOVE", STATE, None, Some(&dest));
    assert_eq!((reply.status, reply.body.len()), (403, 0));
}

#[test]
fn two_devices_racing_on_one_save_lose_no_version() {
    let (server, view) = setup();
    let deck = device(&server, "deck");
    let laptop = device(&server, "laptop");
    deck.write(SRM, b"v1");
    deck.sync();
    laptop.sync();

    // Both read the manifest, then both upload: the second one's head moved under it.
    deck.write(SRM, b"deck progress");
    laptop.write(SRM, b"laptop progress");
    assert!(deck.begin() && laptop.begin());
    assert!(deck.fetch_manifest().is_some() && laptop.fetch_manifest().is_some());
    assert!(deck.upload(SRM));
    let raced = laptop.request("PUT", SRM, Some(b"laptop progress".to_vec()), None);
    assert_eq!((raced.status, raced.body.len()), (409, 0));
    assert!(view.has(&lib(SRM), b"deck progress"), "the first upload is the head");
    let history = view.history(&lib(SRM));
    let conflict = history
        .versions
        .iter()
        .find(|v| v.kind == VersionKind::Conflict)
        .expect("the losing upload is kept as a conflict version");
    assert_eq!(conflict.hash, Some(savesync_core::ContentHash::of(b"laptop progress")));
    let audit = view.block_on(view.client().audit(50)).unwrap();
    assert!(
        audit.entries.iter().any(|e| e.operation == "conflict"
            && e.path.as_deref() == Some(lib(SRM).as_str())
            && e.device.as_deref() == Some("laptop")),
        "{audit:?}"
    );
    // The laptop's next sync sees both sides changed: a conflict, its file left alone.
    let outcome = laptop.sync();
    assert!(outcome.conflicts, "{outcome:?}");
    assert_eq!(laptop.read(SRM).as_deref(), Some(&b"laptop progress"[..]));
    assert!(view.has(&lib(SRM), b"deck progress"));
}

#[test]
fn concurrent_syncs_of_racing_devices_lose_no_uploaded_version() {
    let (server, view) = setup();
    let devices: Vec<RetroArch> =
        ["a", "b", "c"].iter().map(|n| device(&server, &format!("handheld-{n}"))).collect();
    devices[0].write(SRM, b"start");
    devices[0].sync();
    for d in &devices[1..] {
        d.sync();
    }
    let put_line = "PUT /dav/saves/snes9x/Super%20Mario%20World%20%28USA%29.srm";
    let (mut committed, mut refused, mut kept_local) = (0, 0, 0);
    for round in 0..4 {
        let written: Vec<Vec<u8>> =
            (0..devices.len()).map(|i| format!("round {round} device {i}").into_bytes()).collect();
        for (d, bytes) in devices.iter().zip(&written) {
            d.write(SRM, bytes);
            d.take_log();
        }
        std::thread::scope(|s| {
            for d in &devices {
                s.spawn(|| d.sync());
            }
        });
        // Each version a device offered is on the server (head, commit or conflict version);
        // one it did not offer (RetroArch saw both sides change) is still on its disk.
        let history = view.history(&lib(SRM));
        for (d, bytes) in devices.iter().zip(&written) {
            let log = d.take_log();
            let put = log.iter().find(|l| l.starts_with(put_line));
            let hash = savesync_core::ContentHash::of(bytes);
            let on_server = history.versions.iter().find(|v| v.hash == Some(hash));
            match put {
                Some(line) => {
                    let v = on_server.unwrap_or_else(|| panic!("{line}: version lost"));
                    if line.ends_with(" 409") {
                        assert_eq!(v.kind, VersionKind::Conflict, "{line}");
                        refused += 1;
                    } else {
                        assert!(line.ends_with(" 204"), "{line}");
                        committed += 1;
                    }
                }
                None => {
                    assert_eq!(d.read(SRM).as_deref(), Some(bytes.as_slice()), "{log:?}");
                    kept_local += 1;
                }
            }
        }
    }
    println!(
        "racing uploads: {committed} committed, {refused} kept as conflicts, {kept_local} held back by RetroArch"
    );
    assert!(committed >= 1);
}

#[test]
fn five_transfers_at_once_all_succeed() {
    let (server, view) = setup();
    let deck = device(&server, "deck");
    let keys: Vec<String> = (0..5).map(|i| format!("saves/core/game {i}.srm")).collect();
    std::thread::scope(|s| {
        for (i, key) in keys.iter().enumerate() {
            let deck = &deck;
            s.spawn(move || {
                let body = vec![u8::try_from(i).unwrap(); 256 * 1024];
                let reply = deck.request("PUT", key, Some(body), None);
                assert_eq!(reply.status, 201, "{key}");
            });
        }
    });
    std::thread::scope(|s| {
        for (i, key) in keys.iter().enumerate() {
            let deck = &deck;
            s.spawn(move || {
                let reply = deck.request("GET", key, None, None);
                assert_eq!(reply.status, 200);
                assert_eq!(reply.body, vec![u8::try_from(i).unwrap(); 256 * 1024]);
            });
        }
    });
    assert_eq!(view.saves().len(), 5);
}

/// One raw HTTP/1.1 exchange (no client normalising the path): status, headers, body.
fn raw(server: &TestServer, request: &str) -> (u16, String, Vec<u8>) {
    let addr = server.url().trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).unwrap();
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").expect("end of headers");
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), out[split + 4..].to_vec())
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}

#[test]
fn hostile_paths_bad_credentials_and_malformed_requests_get_bodiless_errors() {
    let (server, view) = setup();
    let creds = server.retroarch_device("alice", "deck", "retroarch");
    let auth = basic(&creds.username, &creds.password);
    let req = |method: &str, path: &str, extra: &str| {
        format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\n{extra}Content-Length: 0\r\n\r\n"
        )
    };
    let cases = [
        ("PUT", "/dav/saves/../../etc/passwd", 400),
        ("GET", "/dav/saves/..%2F..%2F..%2Fetc%2Fpasswd", 400),
        ("PUT", "/dav/saves/%2e%2e/x.srm", 400),
        ("PUT", "/dav/saves/%FF%FE.srm", 400),
        ("PUT", "/dav/saves/bad%zzescape.srm", 400),
        ("PUT", "/dav/saves/a%00b.srm", 400),
        ("PUT", "/dav/saves/x.srm.conflict", 400),
        ("PUT", "/dav//etc/passwd", 400),
        ("PUT", "/dav/elsewhere/x.srm", 403),
        ("DELETE", "/dav/saves", 403),
        ("DELETE", "/dav/saves/snes9x/", 204),
        ("GET", "/dav/saves/snes9x/missing.srm", 404),
        ("MOVE", "/dav/saves/missing.srm", 400),
        ("PROPFIND", "/dav/", 405),
        ("LOCK", "/dav/saves/x.srm", 405),
    ];
    for (method, path, want) in cases {
        let (status, head, body) = raw(&server, &req(method, path, ""));
        assert_eq!(status, want, "{method} {path}");
        assert!(body.is_empty(), "{method} {path}: body {body:?}");
        // A 204 is bodiless by definition (hyper sends no length); errors say 0.
        assert!(want == 204 || head.contains("content-length: 0"), "{method} {path}: {head}");
        assert!(head.contains("connection: close"), "{method} {path}: {head}");
    }
    // A MKCOL with a body it cannot understand.
    let mkcol = format!(
        "MKCOL /dav/saves/new HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\nContent-Length: 3\r\n\r\nabc"
    );
    assert_eq!(raw(&server, &mkcol).0, 415);

    // Credentials: none, wrong password, token under another name, a mount device's token.
    let unauthorized = |auth_header: &str| {
        let request =
            format!("OPTIONS /dav/ HTTP/1.1\r\nHost: x\r\n{auth_header}Content-Length: 0\r\n\r\n");
        let (status, head, body) = raw(&server, &request);
        assert_eq!(status, 401, "{auth_header}");
        assert!(body.is_empty());
        assert!(head.contains("www-authenticate: basic realm=\"savesync\""), "{head}");
    };
    unauthorized("");
    unauthorized(&format!("Authorization: Basic {}\r\n", basic("deck", "ss_wrong")));
    unauthorized(&format!("Authorization: Basic {}\r\n", basic("laptop", &creds.password)));
    unauthorized("Authorization: Basic !!notbase64\r\n");
    unauthorized(&format!("Authorization: Bearer {}\r\n", creds.password));
    let (status, _, _) = raw(&server, &req("OPTIONS", "/dav/", ""));
    assert_eq!(status, 200);

    // Nothing reached the library, and ../ wrote nothing anywhere.
    assert!(view.saves().is_empty(), "{:?}", view.saves());
    assert!(!server.data_dir().join("etc").exists());

    // A revoked device is refused at once.
    view.block_on(view.client().revoke_device(creds.device_id)).unwrap();
    let (status, head, body) = raw(&server, &req("OPTIONS", "/dav/", ""));
    assert_eq!((status, body.len()), (401, 0));
    assert!(head.contains("www-authenticate"));
}

#[test]
fn options_says_dav_and_every_body_is_framed() {
    let (server, _view) = setup();
    let creds = server.retroarch_device("alice", "deck", "retroarch");
    let auth = basic(&creds.username, &creds.password);
    let (status, head, _) = raw(
        &server,
        &format!("OPTIONS /dav/ HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\n\r\n"),
    );
    assert_eq!(status, 200);
    assert!(head.contains("\r\ndav: 1"), "{head}");
    let (status, head, body) = raw(
        &server,
        &format!(
            "GET /dav/manifest.server HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\n\r\n"
        ),
    );
    assert_eq!(status, 200);
    assert_eq!(body, b"[]");
    assert!(head.contains("content-length: 2"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    // PUT manifest.server is accepted and thrown away.
    let manifest = br#"[{"path":"saves/x.srm","hash":"00"}]"#;
    let put = format!(
        "PUT /dav/manifest.server HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\nContent-Length: {}\r\n\r\n{}",
        manifest.len(),
        String::from_utf8_lossy(manifest)
    );
    assert_eq!(raw(&server, &put).0, 204);
    let (_, _, body) = raw(
        &server,
        &format!(
            "GET /dav/manifest.server HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\n\r\n"
        ),
    );
    assert_eq!(body, b"[]");
}

#[test]
fn mkcol_with_or_without_a_trailing_slash_is_201_when_new_and_405_when_there() {
    let (server, _view) = setup();
    let deck = device(&server, "deck");
    for folder in ["saves/new core", "saves/new core/"] {
        assert_eq!(deck.request("MKCOL", folder, None, None).status, 201, "{folder}");
    }
    deck.write(SRM, b"x");
    assert!(deck.upload(SRM));
    for folder in ["saves", "saves/", "saves/snes9x", "saves/snes9x/", "deleted", "deleted/", SRM] {
        let reply = deck.request("MKCOL", folder, None, None);
        assert_eq!((reply.status, reply.body.len()), (405, 0), "{folder}");
    }
    assert_eq!(deck.request("MKCOL", "deleted/saves/snes9x", None, None).status, 201);
    assert_eq!(deck.request("MKCOL", "elsewhere", None, None).status, 403);
}

#[test]
fn an_oversized_put_is_refused_without_a_body_and_stores_nothing() {
    let server = TestServer::start_with_config(|c| c.max_body_bytes = 4096);
    let view = RemoteView::new(&server, "alice");
    let deck = device(&server, "deck");
    let reply = deck.request("PUT", SRM, Some(vec![7; 8192]), None);
    assert_eq!((reply.status, reply.body.len()), (413, 0));
    let reply = deck.request("PUT", SRM, Some(vec![7; 4096]), None);
    assert_eq!(reply.status, 201);
    assert_eq!(view.saves().len(), 1);
}
