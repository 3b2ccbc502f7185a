//! Pairing (one-time, expiring codes traded for a token shown once) and token checks:
//! missing, unknown and revoked tokens are refused with stable codes.

mod common;

use common::{TestServer, eventually, sp};
use savesync_core::ErrorCode;
use std::time::Duration;

crate::backend_matrix! {

#[tokio::test]
async fn pairing_code_works_exactly_once() {
    let server = TestServer::start().await;
    let code = server.app.issue_pairing_code("alice").unwrap();
    let anon = server.anonymous();
    let first = anon.pair(&code.code, "deck", "steamdeck").await.unwrap();
    assert_eq!(first.user, "alice");
    assert!(!first.token.is_empty());
    let again = anon.pair(&code.code, "thief", "desktop").await.unwrap_err();
    assert_eq!(again.code(), Some(ErrorCode::PairingCodeInvalid), "{again}");
    assert_eq!(again.status(), Some(403));
}

#[tokio::test]
async fn unknown_pairing_code_is_refused() {
    let server = TestServer::start().await;
    let err = server.anonymous().pair("ZZZZ-ZZZZ", "deck", "steamdeck").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::PairingCodeInvalid), "{err}");
}

#[tokio::test]
async fn expired_pairing_code_is_refused() {
    let server = TestServer::start_with(|c| c.pairing_ttl = Duration::ZERO).await;
    let code = server.app.issue_pairing_code("alice").unwrap();
    let expires = time::OffsetDateTime::parse(
        &code.expires_at,
        &time::format_description::well_known::Rfc3339,
    )
    .expect("expires_at is RFC 3339");
    // Wait (bounded) until the expiry is clearly in the past, even at 1 s resolution.
    eventually("the pairing code to expire", || async {
        (time::OffsetDateTime::now_utc() > expires + time::Duration::seconds(1)).then_some(())
    })
    .await;
    let err = server.anonymous().pair(&code.code, "late", "desktop").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::PairingCodeInvalid), "{err}");
}

#[tokio::test]
async fn paired_token_works_and_is_never_shown_again() {
    let server = TestServer::start().await;
    let device = server.pair("alice", "deck").await;
    let list = device.client.list(None, false).await.unwrap();
    assert!(list.saves.is_empty());
    let devices = device.client.devices().await.unwrap();
    let shown = serde_json::to_string(&devices).unwrap();
    assert!(!shown.contains(&device.token), "the device list leaks the token");
    let audit = serde_json::to_string(&device.client.audit(100).await.unwrap()).unwrap();
    assert!(!audit.contains(&device.token), "the audit log leaks the token");
}

#[tokio::test]
async fn paired_device_can_create_a_code_for_another_device_of_the_same_user() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    let code = deck.client.create_pairing_code().await.unwrap();
    let laptop = server.anonymous().pair(&code.code, "laptop", "desktop").await.unwrap();
    assert_eq!(laptop.user, "alice");
    let laptop = server.client_with_token(&laptop.token);
    let names: Vec<String> =
        laptop.devices().await.unwrap().devices.into_iter().map(|d| d.name).collect();
    assert!(names.contains(&"deck".to_owned()) && names.contains(&"laptop".to_owned()));
}

#[tokio::test]
async fn missing_token_is_unauthorized() {
    let server = TestServer::start().await;
    let err = server.anonymous().list(None, false).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Unauthorized), "{err}");
    assert_eq!(err.status(), Some(401));
}

#[tokio::test]
async fn unknown_token_is_unauthorized() {
    let server = TestServer::start().await;
    let bogus = format!("ss_{}", "0".repeat(64));
    let err = server.client_with_token(&bogus).list(None, false).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Unauthorized), "{err}");
}

#[tokio::test]
async fn malformed_authorization_header_is_unauthorized() {
    let server = TestServer::start().await;
    let response = reqwest::Client::new()
        .get(server.api("saves"))
        .header("authorization", "Basic dXNlcjpwYXNz")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: savesync_core::wire::ErrorBody = response.json().await.unwrap();
    assert_eq!(body.code, ErrorCode::Unauthorized);
}

#[tokio::test]
async fn health_and_metrics_need_no_token() {
    let server = TestServer::start().await;
    let anon = server.anonymous();
    assert_eq!(anon.health().await.unwrap().status, "ok");
    let device = server.pair("alice", "deck").await;
    common::put(&device, "snes/a.srm", savesync_core::Rev::NONE, b"x").await;
    let metrics = anon.metrics().await.unwrap();
    assert!(metrics.contains("# TYPE") || metrics.contains("savesync"), "{metrics}");
}

#[tokio::test]
async fn revoked_device_is_refused_at_once_with_device_revoked() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    let laptop = server.pair("alice", "laptop").await;
    laptop.client.list(None, false).await.unwrap();
    deck.client.revoke_device(laptop.id).await.unwrap();
    let err = laptop.client.list(None, false).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::DeviceRevoked), "{err}");
    assert_eq!(err.status(), Some(401));
    let err = laptop.client.download(&sp("snes/a.srm"), None).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::DeviceRevoked), "{err}");
    let devices = deck.client.devices().await.unwrap().devices;
    let revoked = devices.iter().find(|d| d.id == laptop.id).expect("revoked device listed");
    assert!(revoked.revoked);
    assert!(devices.iter().any(|d| d.id == deck.id && d.current && !d.revoked));
}

#[tokio::test]
async fn revoking_another_users_device_is_not_found() {
    let server = TestServer::start().await;
    let alice = server.pair("alice", "deck").await;
    let bob = server.pair("bob", "pc").await;
    let err = alice.client.revoke_device(bob.id).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotFound), "{err}");
    bob.client.list(None, false).await.expect("bob's token still works");
}
}
