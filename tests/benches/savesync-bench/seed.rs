//! Seeding the server cheaply but for real: many tiny saves uploaded through the HTTP
//! client (`savesync_client::Client`), several at a time, as devices would.

use bytes::Bytes;
use futures::StreamExt;
use savesync_client::Client;
use savesync_core::wire::SaveMeta;
use savesync_core::{Rev, SavePath};
use std::time::Instant;

/// Uploads `count` tiny saves named by `path_of(i)`, `concurrency` at a time; returns their
/// heads. Prints the rate, since at 100,000 saves this takes minutes.
pub async fn upload_tiny(
    client: &Client,
    count: usize,
    concurrency: usize,
    path_of: impl Fn(usize) -> String,
) -> Vec<SaveMeta> {
    let started = Instant::now();
    let heads: Vec<SaveMeta> = futures::stream::iter(0..count)
        .map(|i| {
            let client = client.clone();
            let path = SavePath::parse(&path_of(i)).expect("seed path");
            async move {
                let body = Bytes::from(format!("tiny save {i}"));
                client.upload(&path, Rev::NONE, body).await.expect("seed upload")
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let took = started.elapsed().as_secs_f64();
    eprintln!("  seeded {count} tiny saves in {took:.1} s ({:.0}/s)", count as f64 / took);
    heads
}
