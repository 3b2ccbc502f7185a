//! Where a WebDAV request points: the URL path RetroArch sent (percent-encoded byte by
//! byte, as its `net_http_urlencode_full` does) decoded and sorted into a [`Target`], with
//! every save path built through [`SavePath`]'s rules below the device's library root.
//!
//! Pure functions, so the whole policy is a table test. What RetroArch can address:
//! its base URL, `manifest.server`, the three folders its cloud sync maps (`saves/`,
//! `states/`, `config/`) and `deleted/` (where its non-destructive mode moves files).
//! Everything else is [`Target::Outside`]. `..`, `.`, empty segments, `%` escapes that do
//! not decode, and bytes that are not UTF-8 are refused, never normalised away.

use savesync_core::SavePath;

/// Where the WebDAV face is mounted in the server's URL space.
pub const MOUNT: &str = "/dav";

/// The folders RetroArch's cloud sync keeps (`task_cloud_sync_directory_map`).
pub const SYNCED_FOLDERS: [&str; 3] = ["saves", "states", "config"];

/// The folder RetroArch's non-destructive mode moves deleted files into.
pub const DELETED_FOLDER: &str = "deleted";

/// The name of RetroArch's manifest on the server.
pub const MANIFEST: &str = "manifest.server";

/// What a decoded request path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The base URL itself.
    Root,
    /// `manifest.server`, generated from the database.
    Manifest,
    /// Something in a synced folder: a save, or a folder on the way to one. `path` is the
    /// library path (root + RetroArch's path); `top` is true for the synced folder itself.
    Library { path: SavePath, top: bool },
    /// `deleted/` or anything below it (`rest`, possibly empty).
    Deleted { rest: String },
    /// A path RetroArch never uses.
    Outside,
}

/// Why a path was refused (always a 400 without a body).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadPath {
    #[error("the path is not below {MOUNT}/")]
    NotMounted,
    #[error("a % escape is not two hex digits")]
    BadEscape,
    #[error("the decoded path is not UTF-8")]
    NotUtf8,
    #[error("empty, `.` or `..` segment")]
    BadSegment,
    #[error("not a valid save path: {0}")]
    Invalid(String),
}

/// Decode `%XX` escapes byte by byte; anything else stays as it is.
pub fn percent_decode(raw: &str) -> Result<String, BadPath> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(BadPath::BadEscape)?;
            let hex = std::str::from_utf8(hex).map_err(|_| BadPath::BadEscape)?;
            let byte = u8::from_str_radix(hex, 16).map_err(|_| BadPath::BadEscape)?;
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| BadPath::NotUtf8)
}

/// Classify the raw (still encoded) request path `uri_path` for a device rooted at `root`.
pub fn classify(uri_path: &str, root: &SavePath) -> Result<Target, BadPath> {
    let below = match uri_path.strip_prefix(MOUNT) {
        Some("") => "",
        Some(rest) => rest.strip_prefix('/').ok_or(BadPath::NotMounted)?,
        None => return Err(BadPath::NotMounted),
    };
    let decoded = percent_decode(below)?;
    // One trailing slash marks a folder (MKCOL sends both forms); it names the same thing.
    let trimmed = decoded.strip_suffix('/').unwrap_or(&decoded);
    if trimmed.is_empty() {
        return Ok(Target::Root);
    }
    let segments: Vec<&str> = trimmed.split('/').collect();
    if segments.iter().any(|s| s.is_empty() || *s == "." || *s == "..") {
        return Err(BadPath::BadSegment);
    }
    match segments[0] {
        MANIFEST if segments.len() == 1 => Ok(Target::Manifest),
        DELETED_FOLDER => Ok(Target::Deleted { rest: segments[1..].join("/") }),
        top if SYNCED_FOLDERS.contains(&top) => {
            let path = SavePath::parse(&format!("{}/{trimmed}", root.as_str()))
                .map_err(|e| BadPath::Invalid(e.to_string()))?;
            Ok(Target::Library { path, top: segments.len() == 1 })
        }
        _ => Ok(Target::Outside),
    }
}

/// The request path in a `Destination` header: an absolute URL (RetroArch sends
/// `http://host:port/dav/...`, percent-encoded like the request line) or an absolute
/// path. The authority is not compared: behind a proxy it is not ours to know.
pub fn destination_path(header: &str) -> Option<&str> {
    let header = header.trim();
    let path = match header.find("://") {
        Some(scheme_end) => {
            let after = &header[scheme_end + 3..];
            &after[after.find('/')?..]
        }
        None if header.starts_with('/') => header,
        None => return None,
    };
    Some(path.split(['?', '#']).next().unwrap_or(path))
}

/// RetroArch's name for a library path below `root` (the reverse of [`classify`]), if it
/// lies in one of the synced folders.
pub fn retroarch_name<'a>(library: &'a SavePath, root: &SavePath) -> Option<&'a str> {
    let rest = library.as_str().strip_prefix(root.as_str())?.strip_prefix('/')?;
    let top = rest.split('/').next()?;
    (SYNCED_FOLDERS.contains(&top) && rest.len() > top.len()).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lib(p: &str) -> Target {
        let top = !p.trim_start_matches("retroarch/").contains('/');
        Target::Library { path: SavePath::parse(p).unwrap(), top }
    }

    #[test]
    fn request_paths_are_classified_as_retroarch_uses_them() {
        let root = SavePath::parse("retroarch").unwrap();
        let deleted = |r: &str| Ok(Target::Deleted { rest: r.to_owned() });
        let table: Vec<(&str, Result<Target, BadPath>)> = vec![
            ("/dav", Ok(Target::Root)),
            ("/dav/", Ok(Target::Root)),
            ("/dav/manifest.server", Ok(Target::Manifest)),
            ("/dav/saves", Ok(lib("retroarch/saves"))),
            ("/dav/saves/", Ok(lib("retroarch/saves"))),
            ("/dav/saves/snes9x", Ok(lib("retroarch/saves/snes9x"))),
            ("/dav/saves/snes9x/", Ok(lib("retroarch/saves/snes9x"))),
            (
                "/dav/saves/snes9x/Super%20Mario%20World%20%28USA%29.srm",
                Ok(lib("retroarch/saves/snes9x/Super Mario World (USA).srm")),
            ),
            (
                "/dav/states/mgba/Pok%C3%A9mon.state1",
                Ok(lib("retroarch/states/mgba/Pokémon.state1")),
            ),
            (
                "/dav/config/retroarch-core-options.cfg",
                Ok(lib("retroarch/config/retroarch-core-options.cfg")),
            ),
            ("/dav/deleted", deleted("")),
            ("/dav/deleted/saves/snes9x/", deleted("saves/snes9x")),
            ("/dav/deleted/saves/a.srm-251130-170102", deleted("saves/a.srm-251130-170102")),
            ("/dav/other/x", Ok(Target::Outside)),
            ("/dav/manifest.server/x", Ok(Target::Outside)),
            ("/dav/saves/../../etc/passwd", Err(BadPath::BadSegment)),
            ("/dav/saves/%2E%2E/%2E%2E/etc", Err(BadPath::BadSegment)),
            ("/dav/saves/a%2F..%2F..%2Fb", Err(BadPath::BadSegment)),
            ("/dav/saves//a.srm", Err(BadPath::BadSegment)),
            ("/dav/saves/./a.srm", Err(BadPath::BadSegment)),
            ("/dav//etc/passwd", Err(BadPath::BadSegment)),
            ("/dav/saves/%FF%FE.srm", Err(BadPath::NotUtf8)),
            ("/dav/saves/%C3.srm", Err(BadPath::NotUtf8)),
            ("/dav/saves/100%.srm", Err(BadPath::BadEscape)),
            ("/dav/saves/%G1.srm", Err(BadPath::BadEscape)),
            ("/dav/saves/%", Err(BadPath::BadEscape)),
            ("/davx/saves", Err(BadPath::NotMounted)),
            ("/api/v1/saves", Err(BadPath::NotMounted)),
        ];
        for (raw, want) in table {
            assert_eq!(classify(raw, &root), want, "{raw}");
        }
        for refused in [
            "/dav/saves/a%00b",
            "/dav/saves/a%0Ab",
            "/dav/saves/a%5Cb",
            "/dav/saves/x.srm.conflict",
        ] {
            assert!(matches!(classify(refused, &root), Err(BadPath::Invalid(_))), "{refused}");
        }
    }

    #[test]
    fn destinations_are_absolute_urls_or_paths() {
        let table = [
            (
                "http://127.0.0.1:7878/dav/deleted/saves/a.srm-251130-170102",
                Some("/dav/deleted/saves/a.srm-251130-170102"),
            ),
            ("https://nas.example/dav/deleted/x", Some("/dav/deleted/x")),
            ("/dav/deleted/x", Some("/dav/deleted/x")),
            ("http://host/dav/a?b=c", Some("/dav/a")),
            ("http://host", None),
            ("deleted/x", None),
        ];
        for (header, want) in table {
            assert_eq!(destination_path(header), want, "{header}");
        }
    }

    #[test]
    fn library_paths_map_back_to_retroarch_names_only_in_synced_folders() {
        let root = SavePath::parse("retroarch").unwrap();
        let name = |p: &str| retroarch_name(&SavePath::parse(p).unwrap(), &root).map(str::to_owned);
        assert_eq!(name("retroarch/saves/snes9x/a.srm").as_deref(), Some("saves/snes9x/a.srm"));
        assert_eq!(name("retroarch/states/a.state").as_deref(), Some("states/a.state"));
        assert_eq!(name("retroarch/notes.txt"), None);
        assert_eq!(name("retroarchive/saves/a.srm"), None);
        assert_eq!(name("snes/a.srm"), None);
    }
}
