//! Two replicas (`savesync-server serve` processes) on one Postgres database and one S3
//! bucket (moto on loopback) behave as one server: device A mounted against replica 1, device B against
//! replica 2, both through the real CLI and real FUSE mounts.
//!
//! - a save written on A is readable on B within a second (the feed crosses replicas);
//! - A and B uploading the same save at once through different replicas: one winner, the
//!   other a conflict version, nothing lost;
//! - kill -9 of replica 1 in the middle of A's upload: replica 2 keeps serving, A (behind a
//!   proxy that fails over) retries and the save arrives, and every stored blob is whole.

use savesync_client::{Client, RetryPolicy};
use savesync_core::wire::VersionKind;
use savesync_core::{ContentHash, SavePath};
use savesync_server::blob::BlobStore;
use savesync_tests::{
    Device, Replicas, SwitchProxy, poll_until, require_fuse, runtime, save_bytes, wait_for_bytes,
};
use std::time::{Duration, Instant};

const USER: &str = "alice";
/// Generous for a loaded 2-core machine; the target (and the median asserted) is 1 s.
const DEADLINE: Duration = Duration::from_secs(20);
const TARGET: Duration = Duration::from_secs(1);
const ROUNDS: u64 = 8;

/// Two replicas and the devices' setup, or `None` when FUSE or Postgres is missing.
fn replicas() -> Option<Replicas> {
    if !require_fuse() {
        return None;
    }
    Replicas::start(2)
}

/// A device paired through `url` with a code minted by the admin CLI.
fn device(replicas: &Replicas, url: &str, name: &str) -> Device {
    let mut device = Device::pair_with_code(url, &replicas.pairing_code(USER), name);
    device.mount();
    device
}

/// An API client of the user on `url` (a third device, paired there).
fn checker(replicas: &Replicas, url: &str, rt: &tokio::runtime::Runtime) -> Client {
    let code = replicas.pairing_code(USER);
    let anonymous = Client::new(url, None).unwrap().with_retry(RetryPolicy::none());
    let paired = rt.block_on(anonymous.pair(&code, "checker", "test")).expect("pair the checker");
    Client::new(url, Some(paired.token)).unwrap().with_retry(RetryPolicy::none())
}

fn sp(path: &str) -> SavePath {
    SavePath::parse(path).unwrap()
}

#[test]
fn a_save_written_on_a_through_replica_1_is_readable_on_b_through_replica_2() {
    let Some(replicas) = replicas() else { return };
    let a = device(&replicas, replicas.url(0), "handheld-a");
    let b = device(&replicas, replicas.url(1), "desktop-b");
    std::fs::create_dir_all(a.path("gba")).unwrap();
    let mut times: Vec<Duration> = (0..ROUNDS)
        .map(|round| {
            let bytes = save_bytes(round, 8 * 1024);
            let closed = Instant::now();
            std::fs::write(a.path("gba/emerald.sav"), &bytes).unwrap();
            wait_for_bytes(&b.path("gba/emerald.sav"), &bytes, DEADLINE);
            closed.elapsed()
        })
        .collect();
    times.sort();
    let (median, max) = (times[times.len() / 2], times[times.len() - 1]);
    println!(
        "PROPAGATION ACROSS REPLICAS (close on A via replica 1 to bytes read on B via replica \
         2): p50 {} ms, max {} ms over {ROUNDS} rounds (target 1000)",
        median.as_millis(),
        max.as_millis()
    );
    assert!(median < TARGET, "median propagation {median:?} is over the 1 s target");
}

#[test]
fn concurrent_uploads_to_one_save_through_both_replicas_give_exactly_one_winner() {
    let Some(replicas) = replicas() else { return };
    let rt = runtime();
    let a = device(&replicas, replicas.url(0), "handheld-a");
    let b = device(&replicas, replicas.url(1), "desktop-b");
    let check = checker(&replicas, replicas.url(1), &rt);
    std::fs::create_dir_all(a.path("snes")).unwrap();
    let first = save_bytes(1, 4096);
    std::fs::write(a.path("snes/mana.srm"), &first).unwrap();
    wait_for_bytes(&b.path("snes/mana.srm"), &first, DEADLINE);

    // Both devices change the save at the same moment, each based on rev 1.
    let (from_a, from_b) = (save_bytes(2, 64 * 1024), save_bytes(3, 64 * 1024));
    let barrier = std::sync::Barrier::new(2);
    std::thread::scope(|s| {
        s.spawn(|| {
            barrier.wait();
            std::fs::write(a.path("snes/mana.srm"), &from_a).unwrap();
        });
        s.spawn(|| {
            barrier.wait();
            std::fs::write(b.path("snes/mana.srm"), &from_b).unwrap();
        });
    });
    let (hash_a, hash_b) = (ContentHash::of(&from_a), ContentHash::of(&from_b));
    // Wait until the server holds both: one as the head, the other as a conflict version.
    let (history, _) = poll_until(DEADLINE, || {
        let history = rt.block_on(check.history(&sp("snes/mana.srm"))).ok()?;
        let hashes: Vec<_> = history.versions.iter().filter_map(|v| v.hash).collect();
        (hashes.contains(&hash_a) && hashes.contains(&hash_b)).then_some(history)
    })
    .expect("both uploads on the server (head or conflict version)");
    let head = rt.block_on(check.download(&sp("snes/mana.srm"), None)).unwrap();
    let winner = ContentHash::of(&head.bytes);
    assert!(winner == hash_a || winner == hash_b, "the head is neither upload");
    assert_eq!(head.rev.0, 2, "exactly one commit on rev 1 won (rev 2), not both");
    let loser = if winner == hash_a { hash_b } else { hash_a };
    let loser_kinds: Vec<VersionKind> =
        history.versions.iter().filter(|v| v.hash == Some(loser)).map(|v| v.kind).collect();
    assert!(
        loser_kinds.iter().all(|k| *k == VersionKind::Conflict),
        "the losing upload is kept as a conflict version only: {history:?}"
    );
    let winners = history.versions.iter().filter(|v| v.rev.0 == 2).count();
    assert_eq!(winners, 1, "one version at rev 2: {history:?}");
    println!(
        "CONCURRENT UPLOADS ACROSS REPLICAS: winner {}, loser kept as a conflict version",
        if winner == hash_a { "A (replica 1)" } else { "B (replica 2)" }
    );
}

#[test]
fn kill_9_of_a_replica_mid_upload_the_other_keeps_serving_and_the_save_arrives_whole() {
    let Some(mut replicas) = replicas() else { return };
    let rt = runtime();
    // A reaches the replicas through a reverse proxy (first replica 1); B uses replica 2.
    let proxy = SwitchProxy::start(replicas.url(0));
    let a = device(&replicas, &proxy.url(), "handheld-a");
    let b = device(&replicas, replicas.url(1), "desktop-b");
    let check = checker(&replicas, replicas.url(1), &rt);
    std::fs::create_dir_all(a.path("psx")).unwrap();
    let warm = save_bytes(7, 1024);
    std::fs::write(a.path("psx/warm.mcd"), &warm).unwrap();
    wait_for_bytes(&b.path("psx/warm.mcd"), &warm, DEADLINE);

    // An 8 MiB memory card at 1 MiB/s through the proxy: caught half-way for sure.
    proxy.throttle_uploads(1 << 20);
    let card = save_bytes(8, 8 << 20);
    let before = proxy.bytes_up();
    std::fs::write(a.path("psx/card1.mcd"), &card).unwrap();
    poll_until(DEADLINE, || (proxy.bytes_up() - before >= 1 << 20).then_some(()))
        .expect("A uploading the card to replica 1");
    replicas.kill9(0);
    proxy.switch_to(replicas.url(1));
    let killed = Instant::now();
    let sent = proxy.bytes_up() - before;
    assert!(sent < card.len() as u64, "the upload had finished already ({sent} bytes sent)");

    // Replica 2 keeps serving: B's writes reach the server at once.
    let during = save_bytes(9, 2048);
    std::fs::create_dir_all(b.path("gb")).unwrap();
    std::fs::write(b.path("gb/red.sav"), &during).unwrap();
    wait_for_bytes(&a.path("gb/red.sav"), &during, DEADLINE);
    rt.block_on(check.health()).expect("replica 2 healthy");

    // A retries (now through replica 2) and the card arrives whole.
    proxy.throttle_uploads(0);
    wait_for_bytes(&b.path("psx/card1.mcd"), &card, Duration::from_secs(60));
    println!(
        "FAILOVER: the card reached B {} ms after replica 1 was killed mid-upload",
        killed.elapsed().as_millis()
    );
    let head = rt.block_on(check.download(&sp("psx/card1.mcd"), None)).unwrap();
    assert_eq!(ContentHash::of(&head.bytes), ContentHash::of(&card));
    // Every stored blob is whole: its bytes hash to its name. The half-sent body is at
    // most a staging object or an aborted multipart upload, never under a hash key.
    let blobs = rt.block_on(replicas.blob_store());
    let stored = rt.block_on(blobs.list()).expect("list the bucket");
    for blob in &stored {
        let bytes = rt.block_on(read_blob(blobs.as_ref(), &blob.hash));
        assert_eq!(ContentHash::of(&bytes), blob.hash, "blob {} is corrupt", blob.hash.to_hex());
    }
    assert!(stored.len() >= 3, "only {} blobs stored", stored.len());
    let saves = rt.block_on(check.list(None, false)).unwrap().saves;
    for save in &saves {
        let got = rt.block_on(check.download(&save.path, None)).unwrap();
        assert_eq!(Some(ContentHash::of(&got.bytes)), save.hash, "{} corrupt", save.path);
    }
    assert_eq!(saves.len(), 3, "{saves:?}");
}

/// The whole content of the blob `hash`.
async fn read_blob(blobs: &dyn BlobStore, hash: &ContentHash) -> Vec<u8> {
    let (mut reader, size) = blobs.get(hash).await.expect("read a stored blob");
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut bytes).await.expect("read the blob");
    bytes
}
