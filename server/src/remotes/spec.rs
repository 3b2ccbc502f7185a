//! What the admin types for a remote, parsed and checked before anything connects:
//! `--ssh USER@HOST[:PORT]` (IPv6 in brackets), `--map REMOTE_DIR=LIBRARY_PREFIX` (an
//! absolute device directory onto a library prefix; no two maps may overlap on either
//! side, or one file would have two homes) and `--every 15m`. Pure functions with table
//! tests.

use crate::meta::remotes::RemoteMap;
use savesync_core::SavePath;

/// The SSH default.
pub const DEFAULT_PORT: u16 = 22;
/// Shortest `--every` accepted.
pub const MIN_EVERY_SECS: u64 = 1;
/// Most `--map`s per remote.
pub const MAX_MAPS: usize = 32;

/// `USER@HOST[:PORT]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    pub user: String,
    pub host: String,
    pub port: u16,
}

/// Parse `--ssh`.
pub fn parse_target(raw: &str) -> Result<SshTarget, String> {
    let (user, rest) =
        raw.split_once('@').ok_or_else(|| format!("{raw:?}: expected USER@HOST[:PORT]"))?;
    if user.is_empty() || user.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!("{raw:?}: the user name is empty or has spaces"));
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (host, after) =
            v6.split_once(']').ok_or_else(|| format!("{raw:?}: unclosed '[' in the host"))?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':').ok_or_else(|| format!("{raw:?}: bad port"))?)),
        }
    } else {
        match rest.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        }
    };
    if host.is_empty() || host.chars().any(|c| c.is_control() || c.is_whitespace() || c == '/') {
        return Err(format!("{raw:?}: the host is empty or malformed"));
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return Err(format!("{raw:?}: the port must be 1-65535")),
            Ok(n) => n,
        },
    };
    Ok(SshTarget { user: user.to_owned(), host: host.to_owned(), port })
}

/// Parse one `--map REMOTE_DIR=LIBRARY_PREFIX`.
pub fn parse_map(raw: &str) -> Result<RemoteMap, String> {
    let (dir, prefix) = raw
        .split_once('=')
        .ok_or_else(|| format!("{raw:?}: expected REMOTE_DIR=LIBRARY_PREFIX"))?;
    if !dir.starts_with('/') {
        return Err(format!("{raw:?}: the device directory must be absolute"));
    }
    if dir.chars().any(char::is_control) {
        return Err(format!("{raw:?}: the device directory has a control character"));
    }
    let trimmed = dir.trim_end_matches('/');
    let remote_dir = if trimmed.is_empty() { "/" } else { trimmed };
    if remote_dir.split('/').any(|c| c == "." || c == "..") {
        return Err(format!("{raw:?}: the device directory has a '.' or '..' component"));
    }
    let prefix = SavePath::parse(prefix.trim_matches('/'))
        .map_err(|e| format!("{raw:?}: library prefix: {e}"))?;
    Ok(RemoteMap { remote_dir: remote_dir.to_owned(), prefix })
}

/// Whether `inner` is `outer` or below it, component-wise (`/a/b` is below `/a`, `/ab` is
/// not; everything is below `/`).
fn dir_within(inner: &str, outer: &str) -> bool {
    outer == "/"
        || inner == outer
        || inner.strip_prefix(outer).is_some_and(|rest| rest.starts_with('/'))
}

/// Parse every `--map` and refuse overlaps.
pub fn parse_maps(raw: &[String]) -> Result<Vec<RemoteMap>, String> {
    if raw.is_empty() {
        return Err("give at least one --map REMOTE_DIR=LIBRARY_PREFIX".to_owned());
    }
    if raw.len() > MAX_MAPS {
        return Err(format!("at most {MAX_MAPS} --map options"));
    }
    let maps: Vec<RemoteMap> = raw.iter().map(|m| parse_map(m)).collect::<Result<_, _>>()?;
    for (i, a) in maps.iter().enumerate() {
        for b in &maps[i + 1..] {
            if dir_within(&a.remote_dir, &b.remote_dir) || dir_within(&b.remote_dir, &a.remote_dir)
            {
                return Err(format!(
                    "device directories {} and {} overlap",
                    a.remote_dir, b.remote_dir
                ));
            }
            if a.prefix.starts_with(&b.prefix) || b.prefix.starts_with(&a.prefix) {
                return Err(format!("library prefixes {} and {} overlap", a.prefix, b.prefix));
            }
        }
    }
    Ok(maps)
}

/// Parse `--every`: a number with `s`, `m`, `h` or `d` (a bare number is seconds).
pub fn parse_every(raw: &str) -> Result<u64, String> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (digits, unit) = raw.split_at(split);
    let n: u64 = digits.parse().map_err(|_| format!("{raw:?}: expected e.g. 30s, 15m, 2h"))?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(format!("{raw:?}: the unit must be s, m, h or d")),
    };
    let secs = n.checked_mul(scale).ok_or_else(|| format!("{raw:?}: too long"))?;
    if secs < MIN_EVERY_SECS {
        return Err(format!("{raw:?}: the interval must be at least {MIN_EVERY_SECS}s"));
    }
    Ok(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_targets() {
        let ok = |user: &str, host: &str, port| {
            Ok(SshTarget { user: user.into(), host: host.into(), port })
        };
        let table: &[(&str, Result<SshTarget, ()>)] = &[
            ("root@192.168.1.20", ok("root", "192.168.1.20", 22)),
            ("root@muos.local:2222", ok("root", "muos.local", 2222)),
            ("ark@[fe80::1]:22", ok("ark", "fe80::1", 22)),
            ("ark@[::1]", ok("ark", "::1", 22)),
            ("muos.local", Err(())),
            ("@host", Err(())),
            ("root@", Err(())),
            ("root@host:0", Err(())),
            ("root@host:99999", Err(())),
            ("root@ho st", Err(())),
            ("root@[::1", Err(())),
        ];
        for (raw, want) in table {
            assert_eq!(parse_target(raw).map_err(drop), *want, "{raw}");
        }
    }

    #[test]
    fn maps() {
        let map = parse_map("/mnt/mmc/MUOS/save/file/=handheld/saves").unwrap();
        assert_eq!(map.remote_dir, "/mnt/mmc/MUOS/save/file");
        assert_eq!(map.prefix.as_str(), "handheld/saves");
        for bad in ["saves=x", "/a/../b=x", "/a=../x", "/a=", "/a", "/a=x.conflict"] {
            assert!(parse_map(bad).is_err(), "{bad}");
        }
        let maps =
            |raw: &[&str]| parse_maps(&raw.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
        assert!(maps(&["/saves=snes", "/states=snes-states"]).is_ok());
        assert!(maps(&["/saves=a", "/saves/x=b"]).is_err(), "nested device directories");
        assert!(maps(&["/saves=a", "/other=a/b"]).is_err(), "nested prefixes");
        assert!(maps(&["/saves=a", "/saves2=ab"]).is_ok(), "prefix of the name only");
        assert!(maps(&[]).is_err());
    }

    #[test]
    fn intervals() {
        let table: &[(&str, Option<u64>)] = &[
            ("15m", Some(900)),
            ("30s", Some(30)),
            ("2h", Some(7_200)),
            ("1d", Some(86_400)),
            ("45", Some(45)),
            ("0s", None),
            ("m", None),
            ("5w", None),
            ("-5m", None),
        ];
        for (raw, want) in table {
            assert_eq!(parse_every(raw).ok(), *want, "{raw}");
        }
    }
}
