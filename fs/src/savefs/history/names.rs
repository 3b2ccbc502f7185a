//! How a version of a save is named inside `.history/<save path>/`: a pure function of
//! the server's history entry and the save's own file name, so it is table-tested and the
//! same on every device.
//!
//! `2026-11-30T18-04-22 deck r12.srm`: the version's time in UTC (colons become dashes,
//! which Windows and Samba clients cannot show), the device that made it, `r<rev>` for a
//! commit or `c<history id>` for a conflict version (the labels `savesync history` and
//! `--version` use), then the save's extension, last, so emulators and file managers
//! recognise the file. A deletion has no bytes and gets no file.

use savesync_core::wire::{HistoryEntry, VersionKind};
use std::time::{Duration, SystemTime};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// Longest file name the mount hands out (Linux NAME_MAX).
const NAME_MAX: usize = 255;

/// Longest extension kept; anything longer is not what a file manager calls a type.
const MAX_EXT_BYTES: usize = 16;

/// The version's time in UTC from the server's RFC 3339 `created_at` (None when
/// unreadable).
#[must_use]
pub fn version_time(created_at: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(created_at, &Rfc3339).ok().map(|t| t.to_offset(UtcOffset::UTC))
}

/// The version's time as a `SystemTime` (the file's mtime); the epoch when unreadable.
#[must_use]
pub fn version_mtime(created_at: &str) -> SystemTime {
    let secs = version_time(created_at).map_or(0, OffsetDateTime::unix_timestamp);
    match u64::try_from(secs) {
        Ok(s) => SystemTime::UNIX_EPOCH + Duration::from_secs(s),
        Err(_) => SystemTime::UNIX_EPOCH,
    }
}

/// `.srm` for `Chrono Trigger.srm`; empty for `SAVE`, `.hidden` or an over-long suffix.
#[must_use]
pub fn extension(save_name: &str) -> &str {
    match save_name.rfind('.') {
        Some(0) | None => "",
        Some(i) => {
            let ext = &save_name[i..];
            let plain = ext[1..].chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-');
            if ext.len() > 1 && ext.len() <= MAX_EXT_BYTES && plain { ext } else { "" }
        }
    }
}

/// A device name made safe for one path component: no `/`, NUL or control characters,
/// never empty.
fn device_part(device: Option<&str>) -> String {
    let cleaned: String = device
        .unwrap_or("")
        .chars()
        .map(|c| if c == '/' || c == '\\' || c.is_control() { '_' } else { c })
        .collect();
    let cleaned = cleaned.trim();
    if cleaned.is_empty() { "unknown".into() } else { cleaned.to_owned() }
}

/// `r12` for a commit, `c17` for a conflict version.
#[must_use]
pub fn label(entry: &HistoryEntry) -> String {
    match entry.kind {
        VersionKind::Commit => format!("r{}", entry.rev.0),
        VersionKind::Conflict => format!("c{}", entry.version_id),
    }
}

/// The file name of `entry` in the history directory of the save named `save_name`, or
/// None for a deletion (nothing to read).
#[must_use]
pub fn version_file_name(entry: &HistoryEntry, save_name: &str) -> Option<String> {
    if entry.kind == VersionKind::Commit && entry.hash.is_none() {
        return None;
    }
    let when = version_time(&entry.created_at).map_or_else(
        || "0000-00-00T00-00-00".to_owned(),
        |t| {
            format!(
                "{:04}-{:02}-{:02}T{:02}-{:02}-{:02}",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        },
    );
    let (label, ext) = (label(entry), extension(save_name));
    let mut device = device_part(entry.device.as_deref());
    // Only the device part gives way to the length limit (on a character boundary).
    let fixed = when.len() + label.len() + ext.len() + 2;
    while fixed + device.len() > NAME_MAX {
        device.pop();
    }
    Some(format!("{when} {device} {label}{ext}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use savesync_core::{ContentHash, Rev};

    fn entry(kind: VersionKind, rev: u64, id: i64, at: &str, dev: Option<&str>) -> HistoryEntry {
        HistoryEntry {
            version_id: id,
            kind,
            rev: Rev(rev),
            hash: Some(ContentHash::of(b"x")),
            size: 1,
            created_at: at.into(),
            device: dev.map(str::to_owned),
        }
    }

    #[test]
    fn versions_are_named_by_time_device_label_then_extension() {
        use VersionKind::{Commit, Conflict};
        let at = "2026-11-30T18:04:22Z";
        let long = "d".repeat(300);
        let table: Vec<(HistoryEntry, &str, Option<String>)> = vec![
            (
                entry(Commit, 12, 40, at, Some("deck")),
                "Chrono Trigger.srm",
                Some("2026-11-30T18-04-22 deck r12.srm".into()),
            ),
            (
                entry(Conflict, 11, 17, at, Some("deck")),
                "Chrono Trigger.srm",
                Some("2026-11-30T18-04-22 deck c17.srm".into()),
            ),
            // Another offset is shown in UTC.
            (
                entry(Commit, 3, 3, "2026-12-01T01:00:05+02:00", Some("pc")),
                "a.sav",
                Some("2026-11-30T23-00-05 pc r3.sav".into()),
            ),
            (entry(Commit, 1, 1, at, None), "SAVE", Some("2026-11-30T18-04-22 unknown r1".into())),
            (
                entry(Commit, 2, 2, at, Some("a/b\u{7}c")),
                ".hidden",
                Some("2026-11-30T18-04-22 a_b_c r2".into()),
            ),
            (
                entry(Commit, 2, 2, at, Some("x")),
                "pokemon.state.auto",
                Some("2026-11-30T18-04-22 x r2.auto".into()),
            ),
            (
                entry(Commit, 2, 2, at, Some("x")),
                "weird.a b",
                Some("2026-11-30T18-04-22 x r2".into()),
            ),
            (
                entry(Commit, 5, 5, "yesterday", Some("x")),
                "a.srm",
                Some("0000-00-00T00-00-00 x r5.srm".into()),
            ),
            (
                entry(Commit, 9, 9, at, Some(&long)),
                "a.srm",
                Some(format!("2026-11-30T18-04-22 {} r9.srm", "d".repeat(255 - 27))),
            ),
        ];
        for (e, save, want) in table {
            let got = version_file_name(&e, save);
            assert_eq!(got, want, "{e:?} of {save:?}");
            assert!(got.is_none_or(|n| n.len() <= NAME_MAX && !n.contains('/')));
        }
        let mut deletion = entry(Commit, 4, 4, at, Some("deck"));
        deletion.hash = None;
        assert_eq!(version_file_name(&deletion, "a.srm"), None, "a deletion has no file");
    }

    #[test]
    fn mtimes_are_the_version_times() {
        let t = version_mtime("2026-11-30T18:04:22Z");
        let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(secs, 1_796_061_862);
        assert_eq!(version_mtime("nonsense"), SystemTime::UNIX_EPOCH);
        assert_eq!(version_mtime("1969-12-31T23:59:59Z"), SystemTime::UNIX_EPOCH);
    }
}
