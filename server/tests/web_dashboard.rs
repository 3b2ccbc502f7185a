//! The web dashboard over plain HTTP against a real server on 127.0.0.1:0: signing in
//! (password, login link, rate limit, sign-out), CSRF refusals, per-user scoping (another
//! user's save is a 404), restore as compare-and-swap, pairing with its QR code, version
//! downloads, and the admin CLI (`users passwd`, `login-link`).

mod common;
mod web;

use common::{TestServer, eventually, put, sp};
use reqwest::StatusCode;
use savesync_core::Rev;
use savesync_core::wire::VersionKind;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;
use web::{PASSWORD, WebClient, csrf_in, location, set_password};

crate::backend_matrix! {

#[sqlite_dir_only]
#[tokio::test]
async fn a_password_sign_in_sets_an_http_only_strict_session_cookie() {
    let server = TestServer::start().await;
    server.pair("alice", "deck").await;
    set_password(&server, "alice").await;
    let mut web = WebClient::new(&server);
    let response = web.try_sign_in("alice", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("savesync_session="))
        .expect("session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/web"] {
        assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
    }
    let saves = web.page("/web/saves").await;
    assert!(saves.contains("alice"), "the page names the signed-in user");
    // The stored session is a hash, never the cookie's value.
    let id = web.cookie("savesync_session").unwrap();
    let db = std::fs::read(server.app.config().db_path()).unwrap();
    let wal =
        std::fs::read(server.app.config().data_dir.join("savesync.db-wal")).unwrap_or_default();
    let needle = id.as_bytes();
    for file in [&db, &wal] {
        assert!(!file.windows(needle.len()).any(|w| w == needle), "session id stored in clear");
    }
}

#[tokio::test]
async fn a_wrong_password_or_unknown_user_is_refused_alike_and_no_session_is_made() {
    let server = TestServer::start().await;
    server.pair("alice", "deck").await;
    set_password(&server, "alice").await;
    for (name, password) in [("alice", "wrong password"), ("mallory", PASSWORD), ("alice", "")] {
        let mut web = WebClient::new(&server);
        let response = web.try_sign_in(name, password).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{name}/{password}");
        assert!(web.cookie("savesync_session").is_none());
        let body = response.text().await.unwrap();
        assert!(body.contains("Wrong user name or password."), "{body}");
        assert_eq!(location(&web.get("/web/saves").await), "/web/login", "still signed out");
    }
}

#[tokio::test]
async fn sign_in_attempts_are_rate_limited_per_address_even_with_the_right_password() {
    let server = TestServer::start_with(|c| {
        c.web.login_burst = 3;
        c.web.login_interval = Duration::from_secs(3600);
    })
    .await;
    server.pair("alice", "deck").await;
    set_password(&server, "alice").await;
    let mut web = WebClient::new(&server);
    for _ in 0..3 {
        assert_eq!(web.try_sign_in("alice", "nope nope").await.status(), StatusCode::UNAUTHORIZED);
    }
    let response = web.try_sign_in("alice", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
    assert!(web.cookie("savesync_session").is_none());
}

#[tokio::test]
async fn posts_without_the_csrf_token_or_from_another_origin_are_refused() {
    let server = TestServer::start().await;
    let device = server.pair("alice", "deck").await;
    set_password(&server, "alice").await;
    let mut web = WebClient::signed_in(&server, "alice", PASSWORD).await;
    let token = csrf_in(&web.page("/web/devices").await).unwrap();
    let own = web.base.clone();
    let revoke = format!("/web/devices/{}/revoke", device.id);
    type Fields<'a> = &'a [(&'a str, &'a str)];
    let refused: [(Fields<'_>, Option<&str>); 5] = [
        (&[], Some(&own)),
        (&[("csrf", "0000")], Some(&own)),
        (&[("csrf", &token)], Some("http://evil.example")),
        (&[("csrf", &token)], None),
        (&[("csrf", &token)], Some("null")),
    ];
    for (fields, origin) in refused {
        let response = web.post_raw(&revoke, fields, origin).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{fields:?} from {origin:?}");
        assert!(!device.client.devices().await.unwrap().devices[0].revoked);
    }
    // A token from another session does not work in this one.
    let mut other = WebClient::signed_in(&server, "alice", PASSWORD).await;
    let foreign = csrf_in(&other.page("/web/devices").await).unwrap();
    assert_ne!(foreign, token);
    let response = web.post_raw(&revoke, &[("csrf", &foreign)], Some(&own)).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    // The login form is protected too (its token comes from the pre-login cookie).
    let mut fresh = WebClient::new(&server);
    fresh.page("/web/login").await;
    let response = fresh
        .post_raw("/web/login", &[("name", "alice"), ("password", PASSWORD)], Some(&own))
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    // With both, the revocation goes through.
    let response = web.post_raw(&revoke, &[("csrf", &token)], Some(&own)).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        device.client.devices().await.unwrap_err().code(),
        Some(savesync_core::ErrorCode::DeviceRevoked)
    );
}

#[tokio::test]
async fn another_users_save_version_and_device_are_not_found() {
    let server = TestServer::start().await;
    let alice = server.pair("alice", "deck").await;
    let bob = server.pair("bob", "laptop").await;
    set_password(&server, "bob").await;
    put(&alice, "snes/secret.srm", Rev::NONE, b"alice v1").await;
    put(&alice, "snes/secret.srm", Rev(1), b"alice v2").await;
    put(&alice, "gba/only-alice.sav", Rev::NONE, b"alice").await;
    put(&bob, "snes/secret.srm", Rev::NONE, b"bob's own").await;
    let alice_history = alice.client.history(&sp("snes/secret.srm")).await.unwrap();
    let alice_v1 = alice_history.versions.iter().find(|v| v.rev == Rev(1)).unwrap().version_id;

    let mut web = WebClient::signed_in(&server, "bob", PASSWORD).await;
    let saves = web.page("/web/saves").await;
    assert!(!saves.contains("only-alice"), "bob's save list has none of alice's saves");
    let history = web.get("/web/history?path=gba%2Fonly-alice.sav").await;
    assert_eq!(history.status(), StatusCode::NOT_FOUND);
    assert!(history.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let version = web.get(&format!("/web/version?path=snes%2Fsecret.srm&id={alice_v1}")).await;
    assert_eq!(version.status(), StatusCode::NOT_FOUND, "alice's version id under bob's same path");
    let id = alice_v1.to_string();
    let restore = web
        .post(
            "/web/saves",
            "/web/restore",
            &[("path", "snes/secret.srm"), ("version_id", &id), ("base_rev", "1")],
        )
        .await;
    assert_eq!(restore.status(), StatusCode::NOT_FOUND);
    let revoke = web.post("/web/saves", &format!("/web/devices/{}/revoke", alice.id), &[]).await;
    assert_eq!(revoke.status(), StatusCode::NOT_FOUND);
    // Nothing of alice's changed.
    let head = alice.client.download(&sp("snes/secret.srm"), None).await.unwrap();
    assert_eq!((&head.bytes[..], head.rev), (&b"alice v2"[..], Rev(2)));
    assert!(!alice.client.devices().await.unwrap().devices[0].revoked);
    // The device API refuses the id too.
    let err = bob.client.download_version(&sp("snes/secret.srm"), alice_v1).await.unwrap_err();
    assert_eq!(err.status(), Some(404));
}

#[tokio::test]
async fn restore_is_compare_and_swap_on_the_head_the_page_showed() {
    let server = TestServer::start().await;
    let device = server.pair("alice", "deck").await;
    set_password(&server, "alice").await;
    put(&device, "snes/zelda.srm", Rev::NONE, b"before the boss").await;
    put(&device, "snes/zelda.srm", Rev(1), b"after the boss").await;
    let mut web = WebClient::signed_in(&server, "alice", PASSWORD).await;
    let page = web.page("/web/history?path=snes%2Fzelda.srm").await;
    let token = csrf_in(&page).unwrap();
    let v1 = device
        .client
        .history(&sp("snes/zelda.srm"))
        .await
        .unwrap()
        .versions
        .iter()
        .find(|v| v.rev == Rev(1))
        .unwrap()
        .version_id
        .to_string();
    assert!(page.contains("name=\"base_rev\" value=\"2\""), "the form carries the head it saw");
    // A device writes after the page was loaded: the restore must not clobber it.
    put(&device, "snes/zelda.srm", Rev(2), b"newer still").await;
    let own = web.base.clone();
    let fields = [
        ("csrf", token.as_str()),
        ("path", "snes/zelda.srm"),
        ("version_id", &v1),
        ("base_rev", "2"),
    ];
    let raced = web.post_raw("/web/restore", &fields, Some(&own)).await;
    assert_eq!(raced.status(), StatusCode::SEE_OTHER);
    assert!(location(&raced).ends_with("&notice=race"), "{}", location(&raced));
    let shown = web.page(&location(&raced)).await;
    assert!(shown.contains("Not restored: the save changed"), "a clear message on a race");
    let head = device.client.download(&sp("snes/zelda.srm"), None).await.unwrap();
    assert_eq!(&head.bytes[..], b"newer still");
    // Against the real head it commits, attributed to the dashboard.
    let fields = [
        ("csrf", token.as_str()),
        ("path", "snes/zelda.srm"),
        ("version_id", &v1),
        ("base_rev", "3"),
    ];
    let restored = web.post_raw("/web/restore", &fields, Some(&own)).await;
    assert!(location(&restored).ends_with("&notice=restored"), "{}", location(&restored));
    let head = device.client.download(&sp("snes/zelda.srm"), None).await.unwrap();
    assert_eq!((&head.bytes[..], head.rev), (&b"before the boss"[..], Rev(4)));
    let audit = device.client.audit(10).await.unwrap();
    assert!(audit.entries.iter().any(|a| a.operation == "restore" && a.device.is_none()));
}

#[tokio::test]
async fn every_kept_version_downloads_by_id_in_the_dashboard_and_the_device_api() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    let laptop = server.pair("alice", "laptop").await;
    set_password(&server, "alice").await;
    put(&deck, "gba/emerald.sav", Rev::NONE, b"deck's save").await;
    let lost = laptop
        .client
        .upload(&sp("gba/emerald.sav"), Rev::NONE, bytes::Bytes::from_static(b"laptop's save"))
        .await
        .unwrap_err();
    assert!(lost.is_conflict());
    let history = deck.client.history(&sp("gba/emerald.sav")).await.unwrap();
    let conflict = history.versions.iter().find(|v| v.kind == VersionKind::Conflict).unwrap();
    // Device API: the conflict version's bytes by id (what `savesync cat` needs).
    let got =
        deck.client.download_version(&sp("gba/emerald.sav"), conflict.version_id).await.unwrap();
    assert_eq!(&got.bytes[..], b"laptop's save");
    let url = format!(
        "{}?path=gba%2Femerald.sav&rev=1&version_id={}",
        server.api("saves/content"),
        conflict.version_id
    );
    let both = reqwest::Client::new().get(url).bearer_auth(&deck.token).send().await.unwrap();
    assert_eq!(both.status(), StatusCode::BAD_REQUEST, "rev and version_id together");
    // Dashboard: the same version as a named attachment.
    let mut web = WebClient::signed_in(&server, "alice", PASSWORD).await;
    let conflicts = web.page("/web/conflicts").await;
    assert!(conflicts.contains("gba/emerald.sav") && conflicts.contains("laptop"), "{conflicts}");
    let response =
        web.get(&format!("/web/version?path=gba%2Femerald.sav&id={}", conflict.version_id)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let disposition = response.headers()["content-disposition"].to_str().unwrap().to_owned();
    assert!(disposition.starts_with("attachment;") && disposition.contains("emerald.sav"));
    assert_eq!(&response.bytes().await.unwrap()[..], b"laptop's save");
    assert_eq!(web.get("/web/version?path=gba%2Femerald.sav&id=999999").await.status(), 404);
    assert_eq!(web.get("/web/version?path=..%2F..%2Fetc&id=1").await.status(), 404);
}

#[tokio::test]
async fn the_pair_page_mints_a_code_that_pairs_and_serves_its_qr_code_as_svg() {
    let server = TestServer::start().await;
    server.pair("alice", "deck").await;
    set_password(&server, "alice").await;
    let mut web = WebClient::signed_in(&server, "alice", PASSWORD).await;
    assert_eq!(web.get("/web/pair/qr.svg").await.status(), StatusCode::NOT_FOUND, "no code yet");
    let minted = web.post("/web/pair", "/web/pair", &[]).await;
    assert_eq!(location(&minted), "/web/pair");
    let page = web.page("/web/pair").await;
    let at = page.find("id=\"pairing-code\">").expect("code shown") + "id=\"pairing-code\">".len();
    let code = page[at..].split('<').next().unwrap().to_owned();
    assert!(!web.get("/web/pair").await.url().as_str().contains(&code), "not in any URL");
    let qr = web.get("/web/pair/qr.svg").await;
    assert_eq!(qr.headers()["content-type"], "image/svg+xml");
    assert!(qr.text().await.unwrap().contains("<svg"));
    let paired = server.anonymous().pair(&code, "handheld", "handheld").await.unwrap();
    assert_eq!(paired.user, "alice");
    let devices = web.page("/web/devices").await;
    assert!(devices.contains("handheld"));
}

#[tokio::test]
async fn a_login_link_signs_in_once_and_sign_out_ends_the_session() {
    let server = TestServer::start().await;
    server.pair("alice", "deck").await;
    let link = savesync_server::web::issue_login_link(&server.app, "alice", &server.base_url)
        .await
        .unwrap();
    let (page, token) = link.url.split_once('#').expect("the token is after '#'");
    assert_eq!(page, format!("{}/web/login/link", server.base_url));
    let mut web = WebClient::new(&server);
    let signed_in = web.post("/web/login/link", "/web/login/link", &[("token", token)]).await;
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    assert!(web.page("/web/saves").await.contains("alice"));
    let mut again = WebClient::new(&server);
    let reused = again.post("/web/login/link", "/web/login/link", &[("token", token)]).await;
    assert_eq!(reused.status(), StatusCode::UNAUTHORIZED, "a link works once");
    // Sign out: the old cookie no longer opens anything.
    let old = web.cookie("savesync_session").unwrap();
    let out = web.post("/web/saves", "/web/logout", &[]).await;
    assert_eq!(location(&out), "/web/login");
    let mut replay = WebClient::new(&server);
    replay.set_cookie("savesync_session", &old);
    assert_eq!(location(&replay.get("/web/saves").await), "/web/login");
    assert!(savesync_server::web::issue_login_link(&server.app, "nobody", "x").await.is_err());
}

#[tokio::test]
async fn the_saves_page_groups_by_platform_and_searches() {
    let server = TestServer::start().await;
    let device = server.pair("alice", "deck").await;
    set_password(&server, "alice").await;
    put(&device, "snes/Chrono Trigger.srm", Rev::NONE, &[1; 8192]).await;
    put(&device, "gba/Emerald.sav", Rev::NONE, b"x").await;
    let mut web = WebClient::signed_in(&server, "alice", PASSWORD).await;
    let all = web.page("/web/saves").await;
    for needle in ["data-platform=\"snes\"", "data-platform=\"gba\"", "8.0 KiB", "deck"] {
        assert!(all.contains(needle), "{needle}");
    }
    let found = web.page("/web/saves?q=chrono").await;
    assert!(found.contains("Chrono Trigger.srm") && !found.contains("Emerald"));
    let activity = web.page("/web/activity").await;
    assert!(activity.contains("upload") && activity.contains("snes/Chrono Trigger.srm"));
}

#[sqlite_dir_only]
/// The admin CLI, as a separate process on the running server's data directory.
#[tokio::test]
async fn users_passwd_reads_the_password_from_stdin_and_login_link_prints_a_link() {
    let server = TestServer::start().await;
    server.pair("alice", "deck").await;
    let bin = env!("CARGO_BIN_EXE_savesync-server");
    let dir = server.app.config().data_dir.clone();
    let run = move |args: &[&str], stdin: &str| {
        let mut child = Command::new(bin)
            .args(args)
            .arg("--data-dir")
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    let out = tokio::task::spawn_blocking(move || {
        (
            run(&["users", "passwd", "alice"], "a new password 1\n"),
            run(&["users", "passwd", "nobody"], "a new password 1\n"),
            run(&["users", "passwd", "alice"], "short\n"),
            run(&["login-link", "alice", "--public-url", "https://saves.example/"], ""),
        )
    })
    .await
    .unwrap();
    let (set, unknown, short, link) = out;
    assert!(set.status.success(), "{}", String::from_utf8_lossy(&set.stderr));
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no user"));
    assert!(!short.status.success());
    let link = String::from_utf8(link.stdout).unwrap();
    assert!(link.starts_with("https://saves.example/web/login/link#"), "{link}");
    let web = eventually("the new password to work", || {
        let server = &server;
        async move {
            let mut web = WebClient::new(server);
            let ok = web.try_sign_in("alice", "a new password 1").await.status()
                == StatusCode::SEE_OTHER;
            ok.then_some(web)
        }
    })
    .await;
    assert!(web.cookie("savesync_session").is_some());
}

#[tokio::test]
async fn the_pair_page_creates_a_retroarch_device_whose_password_opens_webdav_once_shown() {
    let server = TestServer::start().await;
    server.pair("alice", "deck").await;
    set_password(&server, "alice").await;
    let mut web = WebClient::signed_in(&server, "alice", PASSWORD).await;
    let pair = web.page("/web/pair").await;
    assert!(pair.contains(&format!("{}/dav/", server.base_url)), "the page shows the URL: {pair}");
    let created = web
        .post("/web/pair", "/web/pair/retroarch", &[("name", "retroid"), ("prefix", "ra")])
        .await;
    assert_eq!(created.status(), StatusCode::OK);
    let html = created.text().await.unwrap();
    let at = html.find("id=\"retroarch-password\">").unwrap() + "id=\"retroarch-password\">".len();
    let password = html[at..].split('<').next().unwrap().to_owned();
    let dav = format!("{}/dav/", server.base_url);
    let http = reqwest::Client::new();
    let ok = http
        .request(reqwest::Method::OPTIONS, &dav)
        .basic_auth("retroid", Some(&password))
        .send()
        .await
        .unwrap();
    assert!(ok.status().is_success(), "{}", ok.status());
    let wrong = http
        .request(reqwest::Method::OPTIONS, &dav)
        .basic_auth("retroid", Some("ss_wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(!web.page("/web/pair").await.contains(&password), "shown once, then never");
    assert!(web.page("/web/devices").await.contains("retroid"));
    let bad = web.post("/web/pair", "/web/pair/retroarch", &[("name", "a:b")]).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}
}
