//! `savesync sync DIR --dry-run`: what the first sync of a folder would do, printed, with
//! nothing changed: no folder, state DB, lock file or hash cache is created, and the folder
//! is only read. The plan itself is `folder::first_sync` (pure); this gathers its inputs:
//! the folder's files and their hashes, the bases this device already agreed on (if the
//! profile synced before), and the server's heads (tombstones included).

use crate::cli::SyncArgs;
use crate::folder::first_sync::{plan, render};
use crate::folder::paths::FolderPaths;
use crate::profile::Profile;
use crate::state::StateDb;
use anyhow::Context;
use savesync_core::{SavePath, Version};
use std::collections::BTreeMap;

pub(crate) fn run(args: &SyncArgs, profile: &Profile) -> anyhow::Result<()> {
    let mut local = BTreeMap::new();
    if args.dir.exists() {
        let root = std::fs::canonicalize(&args.dir)
            .with_context(|| format!("reading {}", args.dir.display()))?;
        let paths = FolderPaths::new(root);
        for (path, _) in crate::folder::walk::saves(&paths, None) {
            let hash = crate::file_hash::hash_file(&paths.file(&path), |_| {})
                .with_context(|| format!("reading {}", paths.file(&path).display()))?;
            local.insert(path, hash);
        }
    }
    let bases: BTreeMap<SavePath, Version> = match profile.data_dir.join("state.db") {
        db if db.exists() => StateDb::open_existing(&db)?
            .all_records()?
            .into_iter()
            .filter_map(|(p, r)| r.base.map(|b| (p, b)))
            .collect(),
        _ => BTreeMap::new(),
    };
    let client = savesync_client::Client::new(&profile.server_url, Some(profile.token.clone()))
        .context("bad server URL in profile")?;
    let list = super::small_runtime()?
        .block_on(client.list(None, true))
        .with_context(|| format!("listing the saves on {}", profile.server_url))?;
    let remote: BTreeMap<SavePath, Version> =
        list.saves.into_iter().map(|s| (s.path.clone(), s.version())).collect();
    print!("{}", render(&plan(&local, &bases, &remote)));
    Ok(())
}
