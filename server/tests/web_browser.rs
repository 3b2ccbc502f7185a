//! The dashboard in a real headless Chromium (see `browser/`), against a real server on
//! 127.0.0.1:0 and real devices (`savesync-client`): signing in (and a wrong password),
//! pairing a device from the page's code and QR code, a device's upload appearing live
//! without a reload, restoring an old version that the device then receives, a form posted
//! without its CSRF token, and another user's save by URL. Screenshots are taken on the
//! way (see `browser::Browser::screenshot`).

mod browser;
mod common;
mod web;

use browser::Browser;
use common::{DEADLINE, Device, TestServer, put, sp};
use savesync_core::{Rev, Seq};
use std::time::{Duration, Instant};
use web::{PASSWORD, set_password};

crate::backend_matrix! {

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_signs_in_pairs_a_device_and_sees_its_upload_appear_live() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "steamdeck").await;
    set_password(&server, "alice").await;
    put(&deck, "gba/Pokemon Emerald.sav", Rev::NONE, &[7; 131_072]).await;
    put(&deck, "psx/Final Fantasy VII.mcr", Rev::NONE, &[1; 131_072]).await;
    let Some(browser) = Browser::start(&server.base_url, "dashboard_live").await else { return };

    // A wrong password: refused with a message, still on the login page.
    browser.sign_in("alice", "not the password").await;
    browser.wait_for("p.error").await;
    assert!(browser.text().await.contains("Wrong user name or password."));
    assert_eq!(browser.path().await, "/web/login");
    browser.screenshot("login-refused").await;

    browser.sign_in("alice", PASSWORD).await;
    browser.wait_for("details[data-platform=gba]").await;
    assert_eq!(browser.path().await, "/web/saves");

    // Pair a device: the page shows a code and its QR code image.
    browser.goto("/web/pair").await;
    browser.wait_for("#new-code").await.click().await.unwrap();
    let code = browser.wait_for("#pairing-code").await.text().await.unwrap();
    browser
        .wait_until_js(
            "the QR code image to load",
            "document.getElementById('pairing-qr').complete && \
             document.getElementById('pairing-qr').naturalWidth > 100",
        )
        .await;
    browser.screenshot("pair").await;
    let paired = server.anonymous().pair(code.trim(), "retroid", "handheld").await.unwrap();
    assert_eq!(paired.user, "alice");
    let handheld = server.client_with_token(&paired.token);

    // The new device is listed (and online while it holds an event stream).
    let mut events = Box::pin(handheld.events().await.unwrap());
    let first = tokio::time::timeout(DEADLINE, futures::StreamExt::next(&mut events)).await;
    assert!(matches!(first, Ok(Some(Ok(_)))), "the handheld's event stream is open");
    browser.goto("/web/devices").await;
    browser.wait_for(&format!("tr[data-device='{}'] .badge.online", paired.device_id)).await;
    browser.screenshot("devices").await;

    // Live: an upload from the handheld appears on the open Saves page without a reload.
    browser.goto("/web/saves").await;
    browser
        .wait_until_js(
            "live updates to connect",
            "document.getElementById('live').dataset.state === 'on'",
        )
        .await;
    browser.client.execute("window.__notReloaded = true; return true;", vec![]).await.unwrap();
    handheld
        .upload(&sp("snes/Chrono Trigger.srm"), Rev::NONE, bytes::Bytes::from_static(&[3; 8192]))
        .await
        .unwrap();
    browser.wait_for("tr[data-path='snes/Chrono Trigger.srm']").await;
    let same_page = browser.client.execute("return window.__notReloaded === true;", vec![]).await;
    assert_eq!(same_page.unwrap().as_bool(), Some(true), "the row arrived without a reload");
    browser.screenshot("saves").await;

    // The same page on a phone-sized screen.
    browser.client.set_window_size(400, 820).await.unwrap();
    browser.goto("/web/saves").await;
    browser.wait_for("tr[data-path='snes/Chrono Trigger.srm']").await;
    let overflow = browser
        .client
        .execute("return document.documentElement.scrollWidth <= window.innerWidth + 1;", vec![])
        .await
        .unwrap();
    assert_eq!(overflow.as_bool(), Some(true), "no sideways scrolling on a phone");
    browser.screenshot("saves-phone").await;
    browser.close().await;
}

/// Follow the device's changes feed until `path` has a head newer than `after`.
async fn next_head(
    device: &Device,
    path: &str,
    mut since: Seq,
    after: Rev,
) -> savesync_core::wire::SaveMeta {
    let deadline = Instant::now() + DEADLINE;
    loop {
        assert!(Instant::now() < deadline, "the device never saw a new head of {path}");
        let page = device.client.changes(since, Duration::from_secs(2), None).await.unwrap();
        since = page.cursor;
        if let Some(head) =
            page.changes.into_iter().rev().find(|c| c.path.as_str() == path && c.rev > after)
        {
            return head;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restoring_an_old_version_in_the_browser_reaches_the_device() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "steamdeck").await;
    let laptop = server.pair("alice", "laptop").await;
    set_password(&server, "alice").await;
    let path = "snes/Chrono Trigger.srm";
    put(&deck, path, Rev::NONE, b"before the boss fight").await;
    put(&deck, path, Rev(1), b"after the boss fight, party wiped").await;
    // A stale upload from the laptop leaves an open conflict to look at.
    let _ = laptop.client.upload(&sp(path), Rev(1), bytes::Bytes::from_static(b"laptop run")).await;
    put(&deck, "gba/Pokemon Emerald.sav", Rev::NONE, b"badges: 3").await;
    let cursor = deck.client.list(None, false).await.unwrap().cursor;
    let Some(browser) = Browser::start(&server.base_url, "dashboard_restore").await else { return };
    browser.sign_in("alice", PASSWORD).await;
    browser.wait_for("details[data-platform=snes]").await;

    browser.goto("/web/conflicts").await;
    browser.wait_for("[data-conflict]").await;
    assert!(browser.text().await.contains("Conflict version from laptop"));
    browser.screenshot("conflicts").await;

    browser.goto(&format!("/web/history?path={}", "snes%2FChrono%20Trigger.srm")).await;
    browser.wait_for("#versions tr[data-kind=conflict]").await;
    browser.screenshot("history").await;
    let rev1 = deck.client.history(&sp(path)).await.unwrap().versions;
    // The commit at rev 1 (the laptop's conflict version was also made on rev 1).
    let rev1 = rev1
        .iter()
        .find(|v| v.rev == Rev(1) && v.kind == savesync_core::wire::VersionKind::Commit)
        .unwrap()
        .version_id;
    browser
        .wait_for(&format!("tr[data-version='{rev1}'] button.restore"))
        .await
        .click()
        .await
        .unwrap();
    browser.wait_for("p.notice.ok").await;
    assert!(browser.text().await.contains("Restored"));
    browser.screenshot("restored").await;

    // The device learns of the new head from its feed and downloads the old bytes.
    let head = next_head(&deck, path, cursor, Rev(2)).await;
    let got = deck.client.download(&sp(path), None).await.unwrap();
    assert_eq!((&got.bytes[..], got.rev), (&b"before the boss fight"[..], head.rev));

    browser.goto("/web/activity").await;
    browser.wait_for("#audit").await;
    assert!(browser.text().await.contains("restore"));
    browser.screenshot("activity").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_cannot_post_without_a_csrf_token_nor_open_another_users_save() {
    let server = TestServer::start().await;
    let alice = server.pair("alice", "deck").await;
    server.pair("bob", "laptop").await;
    set_password(&server, "bob").await;
    put(&alice, "gba/alice-only.sav", Rev::NONE, b"alice's").await;
    let Some(browser) = Browser::start(&server.base_url, "dashboard_refusals").await else {
        return;
    };
    browser.sign_in("bob", PASSWORD).await;
    browser.wait_for("#no-saves").await;

    // Another user's save by URL: a 404 page, nothing of it shown.
    browser.goto("/web/history?path=gba%2Falice-only.sav").await;
    browser.wait_for("p.error").await;
    let text = browser.text().await;
    assert!(text.contains("Not Found") && !text.contains("alice-only"), "{text}");

    // A same-origin form posted without the CSRF token: refused, no code minted.
    browser.goto("/web/pair").await;
    browser.wait_for("#new-code").await;
    browser
        .client
        .execute(
            "const f = document.querySelector('form[action=\"/web/pair\"]'); \
             f.querySelector('input[name=csrf]').remove(); f.submit(); return true;",
            vec![],
        )
        .await
        .unwrap();
    browser.wait_for("p.error").await;
    assert!(browser.text().await.contains("security token"));
    browser.goto("/web/pair").await;
    browser.wait_for("#new-code").await;
    assert!(browser.client.find(fantoccini::Locator::Css("#pairing-code")).await.is_err());
    browser.close().await;
}
}
