//! Case-insensitive name collisions on Postgres, checked inside the commit transaction:
//! the rules and the algorithm of `sqlite::names` (a new name that case-folds onto a live
//! sibling, file or directory, is refused), on the indexed `fold` column.

use super::saves::head;
use crate::meta::{MetaError, UserId};
use savesync_core::wire::SaveMeta;
use savesync_core::{SavePath, fold_key};
use sqlx::PgConnection;

/// Whether a live save exists at `prefix` or below it.
async fn live_at_or_below(
    conn: &mut PgConnection,
    user: UserId,
    prefix: &str,
) -> Result<bool, MetaError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM saves WHERE user_id = $1 AND path = $2 AND NOT deleted)
             OR EXISTS (SELECT 1 FROM saves WHERE user_id = $1 AND path >= $3 AND path < $4
                                             AND NOT deleted)",
    )
    .bind(user)
    .bind(prefix)
    .bind(format!("{prefix}/"))
    .bind(format!("{prefix}0"))
    .fetch_one(conn)
    .await?)
}

/// The head of a live save whose path, at the depth of `key`, folds to `key`.
async fn live_with_fold(
    conn: &mut PgConnection,
    user: UserId,
    key: &str,
) -> Result<Option<SaveMeta>, MetaError> {
    let path: Option<String> = sqlx::query_scalar(
        "SELECT path FROM saves
         WHERE user_id = $1 AND NOT deleted AND (fold = $2 OR (fold >= $3 AND fold < $4))
         LIMIT 1",
    )
    .bind(user)
    .bind(key)
    .bind(format!("{key}/"))
    .bind(format!("{key}0"))
    .fetch_optional(&mut *conn)
    .await?;
    let Some(path) = path else { return Ok(None) };
    let path =
        SavePath::from_stored(&path).map_err(|e| MetaError::Corrupt(format!("{path:?}: {e}")))?;
    head(conn, user, &path).await
}

/// The head of the existing live save a commit of `path` would collide with, if any: found
/// at the first component of `path` that does not exist yet (the new name it adds).
pub async fn collision(
    conn: &mut PgConnection,
    user: UserId,
    path: &SavePath,
) -> Result<Option<SaveMeta>, MetaError> {
    let mut prefix = String::with_capacity(path.as_str().len());
    for component in path.components() {
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(component);
        if !live_at_or_below(conn, user, &prefix).await? {
            // `prefix` is a new name in its directory: below it everything is new too.
            return live_with_fold(conn, user, &fold_key(&prefix)).await;
        }
    }
    Ok(None)
}
