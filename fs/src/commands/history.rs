//! `savesync history PATH`, `savesync cat PATH --version V`, `savesync restore PATH
//! --version V`: see, read and bring back old versions of one save. They talk to the
//! server only (the profile's URL and token), so they work with or without a mount; a live
//! mount gets a restored head through its normal change feed, like any other commit.
//!
//! A version is named by its revision (`3`) when it is a commit. A conflict version (an
//! upload that lost a compare-and-swap) carries the revision it was based on, which is
//! also a commit's, so it is named by its history id instead (`c17`). PATH is a save path
//! in the library or a file path inside the profile's live mount: [`save_path_of`]
//! decides, as a pure function.

use crate::cli::{HistoryArgs, RestoreArgs, VersionArgs, VersionSpec};
use crate::profile::Profile;
use anyhow::{Context, bail};
use savesync_client::{Client, ClientError};
use savesync_core::SavePath;
use savesync_core::wire::{HistoryEntry, RestoreRequest, VersionKind};
use serde_json::json;
use std::path::{Component, Path, PathBuf};

/// How `history` names an entry (what `--version` accepts).
#[must_use]
pub fn label(entry: &HistoryEntry) -> String {
    match entry.kind {
        VersionKind::Commit => entry.rev.0.to_string(),
        VersionKind::Conflict => format!("c{}", entry.version_id),
    }
}

/// The entry `spec` names, or why there is none.
pub fn pick(versions: &[HistoryEntry], spec: VersionSpec) -> Result<&HistoryEntry, String> {
    let found = versions.iter().find(|v| match spec {
        VersionSpec::Rev(rev) => v.kind == VersionKind::Commit && v.rev.0 == rev,
        VersionSpec::Conflict(id) => v.kind == VersionKind::Conflict && v.version_id == id,
    });
    found.ok_or_else(|| {
        let shown = match spec {
            VersionSpec::Rev(rev) => rev.to_string(),
            VersionSpec::Conflict(id) => format!("c{id}"),
        };
        let known: Vec<String> = versions.iter().map(label).collect();
        format!("no version {shown} (kept versions: {})", known.join(", "))
    })
}

/// The revision of the current head: the newest commit.
fn head_rev(versions: &[HistoryEntry]) -> Option<u64> {
    versions.iter().filter(|v| v.kind == VersionKind::Commit).map(|v| v.rev.0).max()
}

/// `a/./b/../c` -> `a/c`, without touching the file system (the file may not exist).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The save `arg` names. A path that, made absolute against `cwd`, lies inside the live
/// `mountpoint` is taken relative to it; any other absolute path is an error (it is not in
/// the library); any other relative path is a save path in the library.
pub fn save_path_of(arg: &str, cwd: &Path, mountpoint: Option<&Path>) -> Result<SavePath, String> {
    let given = Path::new(arg);
    let absolute = normalize(&cwd.join(given));
    if let Some(mp) = mountpoint
        && let Ok(rel) = absolute.strip_prefix(mp)
    {
        let rel = rel.to_str().ok_or_else(|| format!("{arg:?} is not valid UTF-8"))?;
        if rel.is_empty() {
            return Err(format!("{arg:?} is the mount's root, not a save"));
        }
        return SavePath::parse(rel).map_err(|e| format!("{arg:?} is not a save path: {e}"));
    }
    if given.is_absolute() {
        return Err(match mountpoint {
            Some(mp) => format!(
                "{arg:?} is not inside the mount at {}; give a file in the mount or a save path \
                 in the library, e.g. \"snes/Chrono Trigger.srm\"",
                mp.display()
            ),
            None => format!(
                "{arg:?} is a file path but no mount of this profile is live; give the save \
                 path in the library, e.g. \"snes/Chrono Trigger.srm\""
            ),
        });
    }
    SavePath::parse(arg).map_err(|e| format!("{arg:?} is not a save path: {e}"))
}

/// What the commands share: the profile, its client, the save and the live mountpoint.
struct Target {
    profile: Profile,
    client: Client,
    path: SavePath,
    mountpoint: Option<PathBuf>,
}

fn target(profile_name: &str, arg: &str) -> anyhow::Result<Target> {
    let profile = Profile::load(profile_name)?;
    let mountpoint = super::status::open_db(&profile)?
        .and_then(|db| super::status::live_mountpoint(&db))
        .map(|mp| std::fs::canonicalize(&mp).unwrap_or_else(|_| PathBuf::from(mp)));
    let expanded = match (arg.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest).to_string_lossy().into_owned(),
        _ => arg.to_owned(),
    };
    // Resolve symlinks when the file exists, so `~/Saves` linking to the mount still works.
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let resolved = std::fs::canonicalize(cwd.join(&expanded))
        .ok()
        .filter(|p| mountpoint.as_ref().is_some_and(|mp| p.starts_with(mp)))
        .map_or(expanded, |p| p.to_string_lossy().into_owned());
    let path = save_path_of(&resolved, &cwd, mountpoint.as_deref()).map_err(anyhow::Error::msg)?;
    let client = Client::new(&profile.server_url, Some(profile.token.clone()))
        .context("bad server URL in profile")?;
    Ok(Target { profile, client, path, mountpoint })
}

/// The save's history, with "no such save" said plainly.
async fn history_of(t: &Target) -> anyhow::Result<Vec<HistoryEntry>> {
    match t.client.history(&t.path).await {
        Ok(h) => Ok(h.versions),
        Err(e) if e.status() == Some(404) => {
            bail!("the server has no save {} (see the library's files for its path)", t.path)
        }
        Err(e) => Err(e).with_context(|| format!("asking the server at {}", t.profile.server_url)),
    }
}

fn pick_or_fail<'a>(
    t: &Target,
    versions: &'a [HistoryEntry],
    spec: VersionSpec,
) -> anyhow::Result<&'a HistoryEntry> {
    pick(versions, spec).map_err(|e| {
        anyhow::anyhow!("{}: {e}; `savesync history {}` lists them", t.path, quoted(&t.path))
    })
}

fn quoted(path: &SavePath) -> String {
    if path.as_str().contains(' ') { format!("\"{path}\"") } else { path.to_string() }
}

fn kind_name(entry: &HistoryEntry) -> &'static str {
    match (entry.kind, entry.hash) {
        (VersionKind::Conflict, _) => "conflict",
        (VersionKind::Commit, None) => "deleted",
        (VersionKind::Commit, Some(_)) => "commit",
    }
}

/// `savesync history PATH [--json]`.
pub fn history(args: &HistoryArgs) -> anyhow::Result<()> {
    let t = target(&args.profile, &args.path)?;
    let versions = super::small_runtime()?.block_on(history_of(&t))?;
    let head = head_rev(&versions);
    if args.json {
        let list: Vec<_> = versions
            .iter()
            .map(|v| {
                json!({
                    "version": label(v),
                    "version_id": v.version_id,
                    "rev": v.rev.0,
                    "kind": match v.kind { VersionKind::Commit => "commit", VersionKind::Conflict => "conflict" },
                    "deleted": v.kind == VersionKind::Commit && v.hash.is_none(),
                    "head": v.kind == VersionKind::Commit && Some(v.rev.0) == head,
                    "time": v.created_at,
                    "device": v.device,
                    "size": v.size,
                    "hash": v.hash.map(|h| h.to_hex()),
                })
            })
            .collect();
        let out = json!({ "path": t.path.as_str(), "versions": list });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("History of {} (newest first):", t.path);
    let rows: Vec<[String; 5]> = versions
        .iter()
        .map(|v| {
            let mut kind = kind_name(v).to_owned();
            if v.kind == VersionKind::Conflict {
                kind.push_str(&format!(" (based on rev {})", v.rev));
            } else if Some(v.rev.0) == head {
                kind.push_str(" (head)");
            }
            [
                label(v),
                v.created_at.replace('T', " "),
                v.device.clone().unwrap_or_else(|| "-".into()),
                v.size.to_string(),
                kind,
            ]
        })
        .collect();
    let header = ["VERSION", "TIME", "DEVICE", "BYTES", "KIND"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 5]| {
        let [a, b, c, d, e] = cells;
        let [wa, wb, wc, wd, _] = widths;
        println!("{a:<wa$}  {b:<wb$}  {c:<wc$}  {d:>wd$}  {e}");
    };
    line(header);
    for r in &rows {
        line([&r[0], &r[1], &r[2], &r[3], &r[4]]);
    }
    println!(
        "Get one with `savesync cat {0} --version N > FILE`, or make it the head with \
         `savesync restore {0} --version N`.",
        quoted(&t.path)
    );
    Ok(())
}

/// `savesync cat PATH --version V`: the version's bytes to stdout, streamed.
pub fn cat(args: &VersionArgs) -> anyhow::Result<()> {
    let t = target(&args.profile, &args.path)?;
    super::small_runtime()?.block_on(async {
        let versions = history_of(&t).await?;
        let entry = pick_or_fail(&t, &versions, args.version)?;
        if entry.kind == VersionKind::Conflict {
            // Conflict versions are served by their history id, verified, whole.
            let got = t
                .client
                .download_version(&t.path, entry.version_id)
                .await
                .with_context(|| format!("downloading from {}", t.profile.server_url))?;
            let mut out = tokio::io::stdout();
            tokio::io::AsyncWriteExt::write_all(&mut out, &got.bytes).await?;
            tokio::io::AsyncWriteExt::flush(&mut out).await?;
            return Ok(());
        }
        if entry.hash.is_none() {
            bail!("version {} of {} is a deletion: it has no bytes", label(entry), t.path);
        }
        let mut out = tokio::io::stdout();
        match t
            .client
            .download_to_writer(&t.path, Some(entry.rev), &mut out, Path::new("<stdout>"))
            .await
        {
            Ok(_) => Ok(()),
            Err(e @ ClientError::HashMismatch { .. }) => Err(anyhow::Error::new(e)
                .context("the bytes written to stdout are damaged: discard them")),
            Err(e) if e.status() == Some(404) => {
                bail!("version {} of {} is no longer kept on the server", label(entry), t.path)
            }
            Err(e) => Err(e).with_context(|| format!("downloading from {}", t.profile.server_url)),
        }
    })
}

/// `savesync restore PATH --version V`: that version's bytes become a new head.
pub fn restore(restore: &RestoreArgs) -> anyhow::Result<()> {
    let args = &restore.version;
    let t = target(&args.profile, &args.path)?;
    let rt = super::small_runtime()?;
    let versions = rt.block_on(history_of(&t))?;
    let entry = pick_or_fail(&t, &versions, args.version)?;
    let head = match restore.if_head {
        Some(rev) => rev,
        None => head_rev(&versions).context("the save has no commit to restore over")?,
    };
    if entry.kind == VersionKind::Commit && entry.rev.0 == head {
        println!("{}: version {} is already the head; nothing to do.", t.path, label(entry));
        return Ok(());
    }
    let req = RestoreRequest {
        path: t.path.clone(),
        version_id: entry.version_id,
        base_rev: savesync_core::Rev(head),
    };
    let meta = match rt.block_on(t.client.restore(&req)) {
        Ok(meta) => meta,
        Err(e) if e.is_conflict() => {
            let now = e.conflict_head().map_or_else(String::new, |h| {
                format!(
                    " (it is now rev {}{})",
                    h.rev,
                    h.device.as_ref().map_or_else(String::new, |d| format!(" from {d}"))
                )
            });
            bail!(
                "{} changed on the server while restoring{now}: nothing was restored. \
                 Check `savesync history {}` and run the restore again if you still want it.",
                t.path,
                quoted(&t.path)
            );
        }
        Err(e) => {
            return Err(e).with_context(|| format!("restoring on {}", t.profile.server_url));
        }
    };
    let what = if meta.deleted { "a deletion".to_owned() } else { format!("{} bytes", meta.size) };
    println!(
        "Restored {}: version {} ({what}, from {}) is now the head as rev {}.",
        t.path,
        label(entry),
        entry.created_at,
        meta.rev
    );
    match &t.mountpoint {
        Some(mp) => {
            println!("The mount at {} gets it from the server's change feed.", mp.display())
        }
        None => println!("Every device gets it at its next sync."),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use savesync_core::Rev;

    fn entry(version_id: i64, kind: VersionKind, rev: u64) -> HistoryEntry {
        HistoryEntry {
            version_id,
            kind,
            rev: Rev(rev),
            hash: None,
            size: 0,
            created_at: String::new(),
            device: None,
        }
    }

    #[test]
    fn versions_parse_as_revs_or_conflict_ids() {
        let table = [
            ("3", Ok(VersionSpec::Rev(3))),
            ("c17", Ok(VersionSpec::Conflict(17))),
            ("C2", Ok(VersionSpec::Conflict(2))),
            ("", Err(())),
            ("c", Err(())),
            ("-1", Err(())),
            ("r3", Err(())),
        ];
        for (text, want) in table {
            assert_eq!(text.parse::<VersionSpec>().map_err(|_| ()), want, "{text:?}");
        }
    }

    #[test]
    fn a_spec_picks_the_commit_or_the_conflict_it_names() {
        // Newest first: a conflict based on rev 2 sits between commits 3 and 2.
        let versions = [
            entry(9, VersionKind::Commit, 3),
            entry(8, VersionKind::Conflict, 2),
            entry(5, VersionKind::Commit, 2),
            entry(1, VersionKind::Commit, 1),
        ];
        let table = [
            (VersionSpec::Rev(2), Some(5)),
            (VersionSpec::Conflict(8), Some(8)),
            (VersionSpec::Rev(1), Some(1)),
            (VersionSpec::Rev(4), None),
            (VersionSpec::Conflict(5), None),
        ];
        for (spec, want) in table {
            assert_eq!(pick(&versions, spec).ok().map(|v| v.version_id), want, "{spec:?}");
        }
        let err = pick(&versions, VersionSpec::Rev(7)).unwrap_err();
        assert!(err.contains("no version 7") && err.contains("3, c8, 2, 1"), "{err}");
        assert_eq!(head_rev(&versions), Some(3));
    }

    #[test]
    fn paths_resolve_against_the_live_mount_or_the_library() {
        let mp = Some(Path::new("/home/u/Saves"));
        let cwd = Path::new("/home/u");
        let table: [(&str, &Path, Option<&Path>, Option<&str>); 9] = [
            ("snes/Chrono Trigger.srm", cwd, mp, Some("snes/Chrono Trigger.srm")),
            ("/home/u/Saves/snes/A.srm", cwd, mp, Some("snes/A.srm")),
            ("Saves/snes/A.srm", cwd, mp, Some("snes/A.srm")),
            ("A.srm", Path::new("/home/u/Saves/snes"), mp, Some("snes/A.srm")),
            ("../snes/A.srm", Path::new("/home/u/Saves/gba"), mp, Some("snes/A.srm")),
            ("/home/u/Saves", cwd, mp, None),
            ("/etc/passwd", cwd, mp, None),
            ("/home/u/Saves/snes/A.srm", cwd, None, None),
            ("../x.srm", cwd, None, None),
        ];
        for (arg, cwd, mp, want) in table {
            let got = save_path_of(arg, cwd, mp);
            assert_eq!(
                got.as_ref().ok().map(SavePath::as_str),
                want,
                "{arg:?} in {cwd:?}: {got:?}"
            );
        }
    }
}
