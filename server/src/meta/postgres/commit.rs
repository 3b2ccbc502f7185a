//! The compare-and-swap on a save's head on Postgres, and the retention it triggers (the
//! rules of `sqlite::commit`).
//!
//! The transaction first locks the user's row (`SELECT ... FOR UPDATE`). That one lock
//! covers what SQLite's single writer gave for free, across every server process on the
//! database: two commits to one save (even one that does not exist yet, which has no row
//! to lock) run one after the other, so exactly one wins a race on the same base; the
//! user's `seq` is handed out in commit order; and the quota triggers, conflict thinning and
//! name checks of that user never interleave.

use super::accounts::ensure_not_revoked;
use super::activity::{append_audit, record_synced};
use super::conflict_versions::{self, OPEN};
use super::rows::sql_u64;
use super::saves::head;
use crate::meta::{CommitOutcome, CommitRequest, MetaError, NewContent, Retention};
use savesync_core::Rev;
use sqlx::{AssertSqlSafe, PgConnection};

pub async fn commit(
    conn: &mut PgConnection,
    req: &CommitRequest,
    retention: Retention,
) -> Result<CommitOutcome, MetaError> {
    let user = req.actor.user_id;
    let device = req.actor.device_id;
    let locked: Option<i64> = sqlx::query_scalar("SELECT id FROM users WHERE id = $1 FOR UPDATE")
        .bind(user)
        .fetch_optional(&mut *conn)
        .await?;
    if locked.is_none() {
        return Err(MetaError::NotFound);
    }
    if let Some(id) = device {
        // An upload authenticated before its device was revoked must not commit after.
        ensure_not_revoked(conn, id).await?;
    }
    let path = req.path.as_str();
    let current = head(conn, user, &req.path).await?;
    let new_hash = req.content.hash();

    match &current {
        None if req.content == NewContent::Tombstone => return Ok(CommitOutcome::NotFound),
        // Same content as the head: a retried request, or two devices converging.
        Some(h) if h.hash == new_hash => {
            record_synced(conn, req.actor, &req.path, h.rev).await?;
            return Ok(CommitOutcome::Unchanged(h.clone()));
        }
        _ => {}
    }

    let head_rev = current.as_ref().map_or(Rev::NONE, |h| h.rev);
    if head_rev != req.base_rev {
        // Keep the losing upload (see `sqlite::commit` for why only over an existing save).
        if let (Some(_), NewContent::Bytes { hash, size }, "upload") =
            (&current, req.content, req.operation)
        {
            conflict_versions::keep(
                conn,
                req,
                hash,
                size,
                head_rev,
                retention.max_conflict_versions,
            )
            .await?;
        }
        return Ok(CommitOutcome::Conflict(current));
    }

    if current.as_ref().is_none_or(|h| h.deleted)
        && let Some(existing) = super::names::collision(conn, user, &req.path).await?
    {
        return Ok(CommitOutcome::NameCollision(existing));
    }

    let seq: i64 = sqlx::query_scalar("UPDATE users SET seq = seq + 1 WHERE id = $1 RETURNING seq")
        .bind(user)
        .fetch_one(&mut *conn)
        .await?;
    let rev = sql_u64(head_rev.next().0);
    let (hash_hex, size) = match req.content {
        NewContent::Bytes { hash, size } => (Some(hash.to_hex()), sql_u64(size)),
        NewContent::Tombstone => (None, 0),
    };
    let deleted = hash_hex.is_none();
    sqlx::query(
        "INSERT INTO saves (user_id, path, rev, seq, hash, size, deleted, committed_at, device_id,
                            fold)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (user_id, path) DO UPDATE SET
           rev = excluded.rev, seq = excluded.seq, hash = excluded.hash, size = excluded.size,
           deleted = excluded.deleted, committed_at = excluded.committed_at,
           device_id = excluded.device_id",
    )
    .bind(user)
    .bind(path)
    .bind(rev)
    .bind(seq)
    .bind(&hash_hex)
    .bind(size)
    .bind(deleted)
    .bind(req.now)
    .bind(device)
    .bind(savesync_core::fold_key(path))
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO versions (user_id, path, kind, rev, seq, hash, size, device_id, created_at)
         VALUES ($1, $2, 'commit', $3, $4, $5, $6, $7, $8)",
    )
    .bind(user)
    .bind(path)
    .bind(rev)
    .bind(seq)
    .bind(&hash_hex)
    .bind(size)
    .bind(device)
    .bind(req.now)
    .execute(&mut *conn)
    .await?;
    let committed = head(conn, user, &req.path)
        .await?
        .ok_or_else(|| MetaError::Corrupt(format!("save {path:?} vanished inside its commit")))?;
    record_synced(conn, req.actor, &req.path, committed.rev).await?;
    append_audit(conn, user, device, req.now, req.operation, Some(path), &format!("rev {rev}"))
        .await?;
    prune(conn, req, committed.rev, retention).await?;
    Ok(CommitOutcome::Committed(committed))
}

/// Drop versions that are neither among the newest `keep_versions` of this save nor younger
/// than the age limit; the head's own version and open conflict versions always stay.
async fn prune(
    conn: &mut PgConnection,
    req: &CommitRequest,
    head_rev: Rev,
    retention: Retention,
) -> Result<u64, MetaError> {
    let cutoff = req.now.saturating_sub(retention.keep_seconds);
    let sql = format!(
        "DELETE FROM versions
         WHERE user_id = $1 AND path = $2 AND created_at < $3
           AND NOT (kind = 'commit' AND rev = $4) AND NOT {OPEN}
           AND id NOT IN (SELECT id FROM versions WHERE user_id = $1 AND path = $2
                          AND NOT {OPEN} ORDER BY id DESC LIMIT $5)"
    );
    Ok(sqlx::query(AssertSqlSafe(sql))
        .bind(req.actor.user_id)
        .bind(req.path.as_str())
        .bind(cutoff)
        .bind(sql_u64(head_rev.0))
        .bind(i64::from(retention.keep_versions))
        .execute(conn)
        .await?
        .rows_affected())
}
