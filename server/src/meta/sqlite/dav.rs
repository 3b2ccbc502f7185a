//! The WebDAV face's rows (see `crate::dav`): creating a RetroArch device with its library
//! root in one transaction, reading that root, the rev each device last saw of a save (in
//! `device_saves.last_synced_rev`, shared with the mount's bookkeeping), and the MD5 of
//! each stored content (`content_md5`), which RetroArch's manifest speaks.

use super::accounts::ensure_user;
use super::activity::{append_audit, record_synced};
use crate::meta::{Actor, DeviceId, MetaError, NewDavDevice, NewDevice};
use rusqlite::{Connection, OptionalExtension, params};
use savesync_core::{ContentHash, Rev, SavePath};
use std::collections::HashMap;

pub fn create_dav_device(conn: &Connection, d: &NewDavDevice<'_>) -> Result<NewDevice, MetaError> {
    let user = ensure_user(conn, d.user, d.now)?;
    conn.execute(
        "INSERT INTO devices (user_id, name, kind, token_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![user, d.name, d.kind, d.token_hash, d.now],
    )?;
    let device_id = conn.last_insert_rowid();
    conn.execute(
        "INSERT INTO dav_roots (device_id, prefix) VALUES (?1, ?2)",
        params![device_id, d.prefix.as_str()],
    )?;
    let detail = format!("paired {:?} for WebDAV under {:?}", d.name, d.prefix.as_str());
    append_audit(conn, user, Some(device_id), d.now, "pair", None, &detail)?;
    let user_name = conn.query_row("SELECT name FROM users WHERE id = ?1", [user], |r| r.get(0))?;
    Ok(NewDevice { device_id, user_name })
}

pub fn dav_root(conn: &Connection, device: DeviceId) -> Result<Option<SavePath>, MetaError> {
    let stored: Option<String> = conn
        .prepare_cached("SELECT prefix FROM dav_roots WHERE device_id = ?1")?
        .query_row([device], |r| r.get(0))
        .optional()?;
    stored
        .map(|p| {
            SavePath::from_stored(&p)
                .map_err(|e| MetaError::Corrupt(format!("WebDAV root {p:?}: {e}")))
        })
        .transpose()
}

pub fn last_synced_rev(
    conn: &Connection,
    device: DeviceId,
    path: &SavePath,
) -> Result<Option<Rev>, MetaError> {
    let rev: Option<Option<i64>> = conn
        .prepare_cached(
            "SELECT last_synced_rev FROM device_saves WHERE device_id = ?1 AND path = ?2",
        )?
        .query_row(params![device, path.as_str()], |r| r.get(0))
        .optional()?;
    Ok(rev.flatten().map(|r| Rev(u64::try_from(r).unwrap_or(0))))
}

pub fn record_synced_many(
    conn: &Connection,
    actor: Actor,
    entries: &[(SavePath, Rev)],
) -> Result<(), MetaError> {
    for (path, rev) in entries {
        record_synced(conn, actor, path, *rev)?;
    }
    Ok(())
}

pub fn content_md5s(
    conn: &Connection,
    hashes: &[ContentHash],
) -> Result<HashMap<ContentHash, [u8; 16]>, MetaError> {
    let mut stmt = conn.prepare_cached("SELECT md5 FROM content_md5 WHERE hash = ?1")?;
    let mut out = HashMap::with_capacity(hashes.len());
    for hash in hashes {
        let md5: Option<String> = stmt.query_row([hash.to_hex()], |r| r.get(0)).optional()?;
        if let Some(md5) = md5 {
            let mut bytes = [0u8; 16];
            hex::decode_to_slice(&md5, &mut bytes)
                .map_err(|e| MetaError::Corrupt(format!("MD5 of {hash}: {e}")))?;
            out.insert(*hash, bytes);
        }
    }
    Ok(out)
}

pub fn record_content_md5(
    conn: &Connection,
    hash: &ContentHash,
    md5: &[u8; 16],
) -> Result<(), MetaError> {
    conn.prepare_cached(
        "INSERT INTO content_md5 (hash, md5) VALUES (?1, ?2) ON CONFLICT(hash) DO NOTHING",
    )?
    .execute(params![hash.to_hex(), hex::encode(md5)])?;
    Ok(())
}

/// Drop the MD5 of contents no version references any more (garbage collection runs this
/// under its exclusive lock, so an upload between recording and committing is never seen).
pub fn prune_content_md5(conn: &Connection) -> Result<u64, MetaError> {
    let removed = conn.execute(
        "DELETE FROM content_md5 WHERE NOT EXISTS (
             SELECT 1 FROM versions WHERE versions.hash = content_md5.hash)",
        [],
    )?;
    Ok(u64::try_from(removed).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use crate::meta::sqlite::SqliteDb;
    use crate::meta::{Actor, CommitRequest, NewContent, NewDavDevice, Retention};
    use savesync_core::{ContentHash, Rev, SavePath};

    const KEEP_ALL: Retention =
        Retention { keep_versions: 1000, keep_seconds: i64::MAX, max_conflict_versions: 1000 };

    #[test]
    fn a_dav_device_has_its_root_and_md5_rows_outlive_only_referenced_content() {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteDb::open(dir.path().join("t.db")).unwrap();
        let prefix = SavePath::parse("retroarch").unwrap();
        let device = db
            .create_dav_device(&NewDavDevice {
                user: "alice",
                name: "deck",
                kind: "retroarch",
                token_hash: "abc",
                prefix: &prefix,
                now: 1,
            })
            .unwrap();
        assert_eq!(db.dav_root(device.device_id).unwrap(), Some(prefix));
        assert_eq!(db.dav_root(device.device_id + 1).unwrap(), None);

        let kept = ContentHash::of(b"kept");
        let orphan = ContentHash::of(b"orphan");
        db.record_content_md5(&kept, &[1; 16]).unwrap();
        db.record_content_md5(&orphan, &[2; 16]).unwrap();
        let user_id = db.ensure_user("alice", 1).unwrap();
        let path = SavePath::parse("retroarch/saves/a.srm").unwrap();
        let actor = Actor { user_id, device_id: Some(device.device_id) };
        let request = CommitRequest {
            actor,
            path: path.clone(),
            base_rev: Rev::NONE,
            content: NewContent::Bytes { hash: kept, size: 4 },
            operation: "upload",
            now: 2,
        };
        db.commit(&request, KEEP_ALL).unwrap();
        assert_eq!(db.last_synced_rev(device.device_id, &path).unwrap(), Some(Rev(1)));
        assert_eq!(db.prune_content_md5().unwrap(), 1);
        let left = db.content_md5s(&[kept, orphan]).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[&kept], [1; 16]);
    }
}
