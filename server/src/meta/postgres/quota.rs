//! The byte count behind the per-user quota on Postgres: the running totals the
//! `user_usage` triggers keep (see the migration and `sqlite::quota`).

use super::rows::{get, u64_at};
use crate::meta::{MetaError, StoredBytes, UserId};
use savesync_core::ContentHash;
use sqlx::PgConnection;

pub async fn stored_bytes(
    conn: &mut PgConnection,
    user: UserId,
    content: &ContentHash,
) -> Result<StoredBytes, MetaError> {
    let row = sqlx::query(
        "SELECT COALESCE((SELECT bytes FROM user_usage WHERE user_id = $1), 0),
                EXISTS (SELECT 1 FROM versions WHERE user_id = $1 AND hash = $2),
                COALESCE((SELECT versions FROM user_usage WHERE user_id = $1), 0)",
    )
    .bind(user)
    .bind(content.to_hex())
    .fetch_one(conn)
    .await?;
    Ok(StoredBytes {
        used: u64_at(&row, 0)?,
        has_content: get(&row, 1)?,
        versions: u64_at(&row, 2)?,
    })
}
