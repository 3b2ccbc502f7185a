//! `GET manifest.server`, generated from the database on every request: one entry per
//! save below the device's root in a synced folder, `{"path", "hash"}` only, the hash in
//! lowercase MD5 hex, and `"hash": ""` for a deleted save. Deleted saves must stay listed:
//! RetroArch uploads again any file it synced before that vanishes from the manifest.
//!
//! Serving the manifest is also what tells the server which head each save was when the
//! device looked: every listed rev is recorded as the one this device last saw, and that is
//! the base its next `PUT` or `DELETE` of the save commits on (see `files`). RetroArch only
//! uploads a file whose manifest hash is the one it synced last, so anything committed
//! after this GET makes its upload a conflict instead of an overwrite.
//!
//! RetroArch's own `PUT manifest.server` is answered and thrown away: the server's manifest
//! is the database, so two devices can never overwrite each other's.

use super::auth::DavDevice;
use super::paths::retroarch_name;
use crate::app::App;
use crate::meta::MetaError;
use md5::{Digest, Md5};
use savesync_core::{ContentHash, Rev, SavePath};
use serde::Serialize;
use tokio::io::AsyncReadExt;

/// One manifest line, exactly the two fields RetroArch reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub path: String,
    pub hash: String,
}

/// The manifest for `device`, recording what it was shown.
pub async fn build(app: &App, device: &DavDevice) -> Result<Vec<Entry>, MetaError> {
    let meta = app.meta();
    let (heads, _cursor) = meta.list_saves(device.user_id, Some(&device.root), true).await?;
    let listed: Vec<_> =
        heads.into_iter().filter(|h| retroarch_name(&h.path, &device.root).is_some()).collect();
    let live: Vec<ContentHash> = listed.iter().filter_map(|h| h.hash).collect();
    let mut md5s = meta.content_md5s(&live).await?;
    let mut entries = Vec::with_capacity(listed.len());
    let mut seen: Vec<(SavePath, Rev)> = Vec::with_capacity(listed.len());
    for head in &listed {
        let Some(name) = retroarch_name(&head.path, &device.root) else { continue };
        let hash = match head.hash {
            None => String::new(),
            Some(content) => {
                if let std::collections::hash_map::Entry::Vacant(slot) = md5s.entry(content) {
                    match md5_of_blob(app, &content).await {
                        Some(md5) => {
                            meta.record_content_md5(&content, &md5).await?;
                            slot.insert(md5);
                        }
                        None => continue, // logged; a save without bytes cannot be offered
                    }
                }
                md5s.get(&content).map(hex::encode).unwrap_or_default()
            }
        };
        entries.push(Entry { path: name.to_owned(), hash });
        seen.push((head.path.clone(), head.rev));
    }
    meta.record_synced_many(device.actor(), &seen).await?;
    Ok(entries)
}

/// The MD5 of a stored blob, for content stored before MD5s were kept (or by a store that
/// does not compute them while staging). Computed once, then remembered.
async fn md5_of_blob(app: &App, content: &ContentHash) -> Option<[u8; 16]> {
    let (mut reader, _size) = match app.blobs().get(content).await {
        Ok(found) => found,
        Err(e) => {
            tracing::error!(hash = %content, error = %e, "blob of a head is unreadable");
            return None;
        }
    };
    let mut md5 = Md5::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) => return Some(md5.finalize().into()),
            Ok(n) => md5.update(&buf[..n]),
            Err(e) => {
                tracing::error!(hash = %content, error = %e, "reading a blob for its MD5 failed");
                return None;
            }
        }
    }
}

/// The JSON RetroArch parses.
pub fn to_json(entries: &[Entry]) -> Vec<u8> {
    serde_json::to_vec_pretty(entries).unwrap_or_else(|_| b"[]".to_vec())
}

#[cfg(test)]
mod tests {
    use super::{Entry, build, to_json};
    use crate::app::App;
    use crate::blob::body_of;
    use crate::config::Config;
    use crate::dav::auth::DavDevice;
    use crate::meta::{Actor, CommitRequest, NewContent};
    use savesync_core::{ContentHash, Rev, SavePath};

    #[tokio::test]
    async fn an_md5_missing_for_stored_content_is_computed_from_the_blob_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let app = App::open(Config::with_data_dir(dir.path())).unwrap();
        let creds = crate::dav::create_device(&app, "alice", "deck", "retroarch").await.unwrap();
        // Content stored the way older servers stored it: no MD5 recorded.
        let bytes = b"sram from before MD5s were kept".to_vec();
        let hash = ContentHash::of(&bytes);
        app.blobs().put(&hash, body_of(bytes.clone()), 1 << 20).await.unwrap();
        let user_id = app.meta().ensure_user("alice", 0).await.unwrap();
        let actor = Actor { user_id, device_id: None };
        for (name, content) in [
            ("retroarch/saves/a.srm", NewContent::Bytes { hash, size: bytes.len() as u64 }),
            ("retroarch/notes.txt", NewContent::Bytes { hash, size: bytes.len() as u64 }),
        ] {
            let request = CommitRequest {
                actor,
                path: SavePath::parse(name).unwrap(),
                base_rev: Rev::NONE,
                content,
                operation: "upload",
                now: 1,
            };
            app.meta().commit(&request, app.retention()).await.unwrap();
        }
        assert!(app.meta().content_md5s(&[hash]).await.unwrap().is_empty());
        let device = DavDevice { user_id, device_id: creds.device_id, root: creds.root };
        let entries = build(&app, &device).await.unwrap();
        use md5::{Digest, Md5};
        let md5: [u8; 16] = Md5::digest(&bytes).into();
        // Only the synced folders are listed (notes.txt is not RetroArch's).
        assert_eq!(entries, vec![Entry { path: "saves/a.srm".into(), hash: hex::encode(md5) }]);
        assert_eq!(app.meta().content_md5s(&[hash]).await.unwrap()[&hash], md5);
        // What the device was shown is what its next write is based on.
        let listed = SavePath::parse("retroarch/saves/a.srm").unwrap();
        let seen = app.meta().last_synced_rev(creds.device_id, &listed).await.unwrap();
        assert_eq!(seen, Some(Rev(1)));
    }

    #[test]
    fn the_manifest_is_an_array_of_path_and_hash_only() {
        let json = to_json(&[
            Entry { path: "saves/a.srm".into(), hash: "0123456789abcdef0123456789abcdef".into() },
            Entry { path: "saves/gone.srm".into(), hash: String::new() },
        ]);
        let parsed: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!([
                {"path": "saves/a.srm", "hash": "0123456789abcdef0123456789abcdef"},
                {"path": "saves/gone.srm", "hash": ""}
            ])
        );
        assert_eq!(to_json(&[]), b"[]");
    }
}
