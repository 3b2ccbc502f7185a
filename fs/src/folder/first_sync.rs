//! What syncing a folder would do, for `savesync sync DIR --dry-run`: every save in the
//! folder or on the server, with the action the engine would take, by the same
//! [`decide`] rule and the bases this device already agreed on (none on a first sync).
//! On a populated folder that means: files the server lacks are uploaded, server saves
//! the folder lacks are downloaded, equal files are left alone, and files that differ
//! become conflicts (the folder's file is kept, the server's version appears beside it as
//! `NAME.conflict`): nothing is ever overwritten.

use savesync_core::{ContentHash, Decision, SavePath, Version, decide};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// What the first sync does with one save.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    Upload,
    Download,
    Conflict,
    /// Delete here (the server deleted it since this device last agreed).
    DeleteHere,
    /// Delete on the server (deleted here since this device last agreed).
    DeleteOnServer,
    /// Already the same on both sides.
    Same,
}

impl Step {
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Step::Upload => "upload",
            Step::Download => "download",
            Step::Conflict => "conflict",
            Step::DeleteHere => "delete here",
            Step::DeleteOnServer => "delete on server",
            Step::Same => "same",
        }
    }

    fn of(d: Decision) -> Step {
        match d {
            Decision::NoOp | Decision::RecordBase(_) => Step::Same,
            Decision::Upload { .. } => Step::Upload,
            Decision::DeleteRemote { .. } => Step::DeleteOnServer,
            Decision::Download(_) => Step::Download,
            Decision::DeleteLocal(_) => Step::DeleteHere,
            Decision::Conflict(_) => Step::Conflict,
        }
    }
}

/// The plan: one step per save that is on either side, by path.
#[must_use]
pub fn plan(
    local: &BTreeMap<SavePath, ContentHash>,
    bases: &BTreeMap<SavePath, Version>,
    remote: &BTreeMap<SavePath, Version>,
) -> BTreeMap<SavePath, Step> {
    let paths: BTreeSet<&SavePath> = local.keys().chain(remote.keys()).collect();
    paths
        .into_iter()
        .map(|p| {
            let d = decide(local.get(p).copied(), bases.get(p).copied(), remote.get(p).copied());
            (p.clone(), Step::of(d))
        })
        .filter(|(p, s)| *s != Step::Same || local.contains_key(p))
        .collect()
}

/// The plan as text: counts first, then every save that would change.
#[must_use]
pub fn render(plan: &BTreeMap<SavePath, Step>) -> String {
    let mut counts: BTreeMap<Step, usize> = BTreeMap::new();
    for s in plan.values() {
        *counts.entry(*s).or_default() += 1;
    }
    let mut out = String::from("Dry run: nothing was changed. The first sync would:\n");
    for step in [
        Step::Upload,
        Step::Download,
        Step::Conflict,
        Step::DeleteHere,
        Step::DeleteOnServer,
        Step::Same,
    ] {
        let _ = writeln!(out, "  {:<17} {}", step.label(), counts.get(&step).copied().unwrap_or(0));
    }
    if counts.get(&Step::Conflict).is_some_and(|n| *n > 0) {
        out.push_str(
            "Conflicts keep the file here; the server's version appears beside it as \
             NAME.conflict.\n",
        );
    }
    for (path, step) in plan.iter().filter(|(_, s)| **s != Step::Same) {
        let _ = writeln!(out, "{:<17} {path}", step.label());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{Step, plan, render};
    use savesync_core::{ContentHash, SavePath, Version};
    use std::collections::BTreeMap;

    fn p(s: &str) -> SavePath {
        SavePath::parse(s).unwrap()
    }

    #[test]
    fn a_populated_folder_plan_table() {
        let h = ContentHash::of;
        let local: BTreeMap<_, _> = [
            (p("same.srm"), h(b"s")),
            (p("differs.srm"), h(b"mine")),
            (p("only-here.srm"), h(b"new")),
            (p("changed-since-base.srm"), h(b"edited")),
        ]
        .into();
        let remote: BTreeMap<_, _> = [
            (p("same.srm"), Version::live(1, h(b"s"))),
            (p("differs.srm"), Version::live(2, h(b"theirs"))),
            (p("only-there.srm"), Version::live(1, h(b"t"))),
            (p("deleted-there.srm"), Version::tombstone(3)),
            (p("changed-since-base.srm"), Version::live(4, h(b"base"))),
        ]
        .into();
        let bases: BTreeMap<_, _> =
            [(p("changed-since-base.srm"), Version::live(4, h(b"base")))].into();
        let got = plan(&local, &bases, &remote);
        let want: BTreeMap<_, _> = [
            (p("same.srm"), Step::Same),
            (p("differs.srm"), Step::Conflict),
            (p("only-here.srm"), Step::Upload),
            (p("only-there.srm"), Step::Download),
            (p("changed-since-base.srm"), Step::Upload),
        ]
        .into();
        assert_eq!(got, want);
        let text = render(&got);
        assert!(text.contains("  upload            2\n"), "{text}");
        assert!(text.contains("  conflict          1\n"), "{text}");
        assert!(text.contains("  same              1\n"), "{text}");
        assert!(text.contains("conflict          differs.srm\n"), "{text}");
        assert!(!text.contains("same.srm\n"), "{text}");
    }
}
