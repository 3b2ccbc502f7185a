//! placeholder until the engine lands
use crate::cli::SyncArgs;
pub(crate) const FOLDER_ROOT_KEY: &str = "folder_root";
pub fn run(args: &SyncArgs) -> anyhow::Result<()> {
    let profile = crate::profile::Profile::load(&args.profile)?;
    super::sync_plan::run(args, &profile)
}
pub(crate) fn folder_of(db: &crate::state::StateDb) -> Option<std::path::PathBuf> {
    db.get_kv(FOLDER_ROOT_KEY).ok().flatten().map(std::path::PathBuf::from)
}
