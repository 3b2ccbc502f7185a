//! The per-user byte quota (`config.user_quota_bytes`) and version-row cap
//! (`config.user_max_versions`): whether one more upload fits.
//!
//! What counts is [`StoredBytes::used`]: the distinct contents among the user's versions,
//! heads, history and conflict versions alike. Content the user already stores is free to
//! store again (the blob store keeps it once). An upload is checked before its body is
//! read when it announces its length (which is its exact size), else once its size is
//! known, before it is made visible; a refused upload stores nothing. Two uploads racing at the edge may both
//! pass, so a user can go over by at most the uploads in flight at that moment.

use crate::app::App;
use crate::error::ApiError;
use crate::meta::{StoredBytes, UserId};
use savesync_core::{ContentHash, ErrorCode};

/// True when storing `size` more bytes of this content keeps the user within `quota`
/// (0: no quota).
#[must_use]
pub fn fits(quota: u64, stored: StoredBytes, size: u64) -> bool {
    quota == 0 || stored.has_content || stored.used.saturating_add(size) <= quota
}

/// True when one more version row keeps the user within `max_versions` (0: no limit). Every
/// upload may add one, even of content the user already has, so this is checked apart
/// from the bytes.
#[must_use]
pub fn room_for_a_version(max_versions: u64, stored: StoredBytes) -> bool {
    max_versions == 0 || stored.versions < max_versions
}

/// Refuse with 507 `quota_exceeded` when storing `size` bytes of `content` for `user` would
/// go over the configured quota.
pub async fn enforce(
    app: &App,
    user: UserId,
    content: ContentHash,
    size: u64,
) -> Result<(), ApiError> {
    let quota = app.config().user_quota_bytes;
    let max_versions = app.config().user_max_versions;
    if quota == 0 && max_versions == 0 {
        return Ok(());
    }
    let stored = app.meta().stored_bytes(user, &content).await?;
    if !room_for_a_version(max_versions, stored) {
        return Err(ApiError::new(
            ErrorCode::QuotaExceeded,
            format!(
                "this user already has {} stored versions, the most the server keeps \
                 ({max_versions})",
                stored.versions
            ),
        ));
    }
    if fits(quota, stored, size) {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::QuotaExceeded,
            format!(
                "storing {size} more bytes would exceed this user's quota of {quota} bytes \
                 ({} in use)",
                stored.used
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_table() {
        let stored = |used, has_content| StoredBytes { used, has_content, versions: 0 };
        let table = [
            // (quota, used, already stored, size, fits)
            (0, u64::MAX, false, u64::MAX, true), // no quota
            (100, 0, false, 100, true),           // exactly full
            (100, 0, false, 101, false),
            (100, 60, false, 40, true),
            (100, 60, false, 41, false),
            (100, 100, true, 50, true), // same content again costs nothing
            (100, 150, false, 0, false), // already over (quota lowered): nothing new
            (100, u64::MAX, false, 1, false), // no overflow
        ];
        for (quota, used, has, size, expected) in table {
            assert_eq!(
                fits(quota, stored(used, has), size),
                expected,
                "quota {quota}, used {used}, stored {has}, size {size}"
            );
        }
    }

    #[test]
    fn room_for_a_version_table() {
        let with = |versions| StoredBytes { used: 0, has_content: true, versions };
        // (max versions, versions stored, room for one more)
        let table = [(0, u64::MAX, true), (10, 0, true), (10, 9, true), (10, 10, false)];
        for (max, versions, expected) in table {
            assert_eq!(room_for_a_version(max, with(versions)), expected, "{versions} of {max}");
        }
    }
}
