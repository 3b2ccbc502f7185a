//! Property test: three devices make random edits, deletes, go offline and reconnect, all
//! syncing through `decide` against a model server with compare-and-swap commits. Whatever
//! the interleaving, once everyone is online and has resolved its conflicts, every device
//! holds exactly the server's heads, and every version a device ever offered for sync is
//! on the server (as a head, in history, or as a kept conflict upload).
//!
//! Syncing is split in two steps, `Plan` (read the server heads, as negotiate does) and
//! `Apply` (commit with CAS against the *live* server), so other devices can commit in
//! between and the 409 paths are exercised.

use proptest::prelude::*;
use savesync_core::{ContentHash, Decision, Rev, Version, decide};
use std::collections::{BTreeMap, BTreeSet, HashSet};

const DEVICES: usize = 3;
const PATHS: [&str; 3] = ["snes/ct.srm", "psx/card1.mcd", "gba/emerald.sav"];

/// The server: heads with CAS, and every hash it ever stored (commits and kept conflicts).
#[derive(Default)]
struct ModelServer {
    heads: BTreeMap<&'static str, Version>,
    stored: HashSet<ContentHash>,
}

impl ModelServer {
    fn head(&self, path: &str) -> Option<Version> {
        self.heads.get(path).copied()
    }

    /// Upload with base revision; a rejected upload is kept (never the head).
    fn upload(
        &mut self,
        path: &'static str,
        expected: Rev,
        hash: ContentHash,
    ) -> Result<Version, Option<Version>> {
        let head = self.head(path);
        if head.and_then(|h| h.hash) == Some(hash) {
            return Ok(head.unwrap());
        }
        self.stored.insert(hash);
        let current = head.map_or(Rev::NONE, |h| h.rev);
        if current != expected {
            return Err(head);
        }
        let v = Version { rev: current.next(), hash: Some(hash) };
        self.heads.insert(path, v);
        Ok(v)
    }

    fn delete(&mut self, path: &'static str, expected: Rev) -> Result<Version, Option<Version>> {
        let head = self.head(path);
        match head {
            Some(h) if h.is_tombstone() => Ok(h),
            Some(h) if h.rev == expected => {
                let v = Version { rev: h.rev.next(), hash: None };
                self.heads.insert(path, v);
                Ok(v)
            }
            other => Err(other),
        }
    }
}

#[derive(Default, Clone)]
struct Device {
    files: BTreeMap<&'static str, ContentHash>,
    base: BTreeMap<&'static str, Version>,
    conflicts: BTreeMap<&'static str, Version>,
    plan: Vec<(&'static str, Decision)>,
    online: bool,
}

#[derive(Debug, Clone)]
enum Op {
    Write { dev: usize, path: usize },
    Delete { dev: usize, path: usize },
    Plan { dev: usize },
    Apply { dev: usize },
    SetOnline { dev: usize, online: bool },
    Resolve { dev: usize, path: usize, keep_mine: bool },
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let dev = 0..DEVICES;
    let path = 0..PATHS.len();
    prop_oneof![
        4 => (dev.clone(), path.clone()).prop_map(|(dev, path)| Op::Write { dev, path }),
        1 => (dev.clone(), path.clone()).prop_map(|(dev, path)| Op::Delete { dev, path }),
        3 => dev.clone().prop_map(|dev| Op::Plan { dev }),
        3 => dev.clone().prop_map(|dev| Op::Apply { dev }),
        1 => (dev.clone(), any::<bool>()).prop_map(|(dev, online)| Op::SetOnline { dev, online }),
        1 => (dev, path, any::<bool>())
            .prop_map(|(dev, path, keep_mine)| Op::Resolve { dev, path, keep_mine }),
    ]
}

struct World {
    server: ModelServer,
    devices: Vec<Device>,
    /// Every local version the sync took responsibility for (it decided to upload it or to
    /// keep it beside a conflict), plus every device's final content.
    offered: BTreeSet<ContentHash>,
    next_content: u64,
}

impl World {
    fn new() -> World {
        World {
            server: ModelServer::default(),
            devices: vec![Device { online: true, ..Device::default() }; DEVICES],
            offered: BTreeSet::new(),
            next_content: 0,
        }
    }

    fn run(&mut self, op: &Op) {
        match *op {
            Op::Write { dev, path } => {
                self.next_content += 1;
                let hash =
                    ContentHash::of(format!("dev{dev} write {}", self.next_content).as_bytes());
                self.devices[dev].files.insert(PATHS[path], hash);
            }
            Op::Delete { dev, path } => {
                self.devices[dev].files.remove(PATHS[path]);
            }
            Op::Plan { dev } => self.plan(dev),
            Op::Apply { dev } => self.apply(dev),
            Op::SetOnline { dev, online } => self.devices[dev].online = online,
            Op::Resolve { dev, path, keep_mine } => {
                resolve(&mut self.devices[dev], PATHS[path], keep_mine)
            }
        }
    }

    /// Negotiate: decide every known path against the heads as they are now.
    fn plan(&mut self, dev: usize) {
        if !self.devices[dev].online {
            return;
        }
        let d = &self.devices[dev];
        let paths: BTreeSet<&'static str> =
            d.files.keys().chain(d.base.keys()).chain(self.server.heads.keys()).copied().collect();
        let plan = paths
            .into_iter()
            .map(|p| {
                (p, decide(d.files.get(p).copied(), d.base.get(p).copied(), self.server.head(p)))
            })
            .collect();
        self.devices[dev].plan = plan;
    }

    /// Carry out the last plan against the live server, as the mount's engine does.
    fn apply(&mut self, dev: usize) {
        if !self.devices[dev].online {
            return;
        }
        let plan = std::mem::take(&mut self.devices[dev].plan);
        for (path, planned) in plan {
            let d = &mut self.devices[dev];
            // The device may have changed the file since planning: re-decide locally
            // against the head the plan saw, as the engine re-checks before acting.
            let local = d.files.get(path).copied();
            match planned {
                Decision::NoOp => {}
                Decision::RecordBase(v) => set_base(d, path, v),
                Decision::Upload { expected } => {
                    let Some(hash) = local else { continue };
                    self.offered.insert(hash);
                    match self.server.upload(path, expected, hash) {
                        Ok(v) => set_base(d, path, Some(v)),
                        Err(Some(head)) if head.hash.is_some() => {
                            d.conflicts.insert(path, head);
                        }
                        Err(_) => {} // re-decided on the next plan
                    }
                }
                Decision::DeleteRemote { expected } => {
                    if local.is_none()
                        && let Ok(v) = self.server.delete(path, expected)
                    {
                        set_base(d, path, Some(v));
                    }
                }
                Decision::Download(v) => {
                    // Only if the local file is still what the plan saw.
                    if local == d.base.get(path).and_then(|b| b.hash) || local.is_none() {
                        d.files.insert(path, v.hash.expect("download of a live version"));
                        set_base(d, path, Some(v));
                        d.conflicts.remove(path);
                    }
                }
                Decision::DeleteLocal(v) => {
                    if local == d.base.get(path).and_then(|b| b.hash) {
                        d.files.remove(path);
                        set_base(d, path, Some(v));
                    }
                }
                Decision::Conflict(v) => {
                    // Offer our bytes so the server keeps them, then show theirs beside ours.
                    if let Some(hash) = local {
                        self.offered.insert(hash);
                        let expected = d.base.get(path).map_or(Rev::NONE, |b| b.rev);
                        if let Ok(committed) = self.server.upload(path, expected, hash) {
                            set_base(d, path, Some(committed));
                            continue;
                        }
                    }
                    d.conflicts.insert(path, v);
                }
            }
        }
    }

    fn settled(&self) -> bool {
        self.devices.iter().all(|d| {
            d.conflicts.is_empty()
                && PATHS.iter().all(|p| {
                    matches!(
                        decide(
                            d.files.get(p).copied(),
                            d.base.get(p).copied(),
                            self.server.head(p)
                        ),
                        Decision::NoOp
                    )
                })
        })
    }
}

fn set_base(d: &mut Device, path: &'static str, v: Option<Version>) {
    match v {
        Some(v) => d.base.insert(path, v),
        None => d.base.remove(path),
    };
}

/// The user deletes `NAME.conflict` (keep mine) or renames it over `NAME` (take theirs).
fn resolve(d: &mut Device, path: &'static str, keep_mine: bool) {
    let Some(theirs) = d.conflicts.remove(path) else { return };
    d.base.insert(path, theirs);
    if !keep_mine {
        d.files.insert(path, theirs.hash.expect("a conflict copy is a live version"));
    }
}

fn check(ops: &[Op], keep_mine_at_end: [bool; DEVICES]) -> Result<(), TestCaseError> {
    let mut world = World::new();
    for op in ops {
        world.run(op);
    }
    // Everyone comes online and syncs until quiet, resolving conflicts as they appear.
    for d in &mut world.devices {
        d.online = true;
    }
    let mut rounds = 0;
    while !world.settled() {
        rounds += 1;
        prop_assert!(rounds <= 30, "devices did not converge within 30 rounds");
        for (dev, keep_mine) in keep_mine_at_end.into_iter().enumerate() {
            let paths: Vec<_> = world.devices[dev].conflicts.keys().copied().collect();
            for p in paths {
                resolve(&mut world.devices[dev], p, keep_mine);
            }
            world.plan(dev);
            world.apply(dev);
        }
    }
    // Convergence: every device holds exactly the live heads.
    let live: BTreeMap<_, _> =
        world.server.heads.iter().filter_map(|(p, v)| v.hash.map(|h| (*p, h))).collect();
    for (i, d) in world.devices.iter().enumerate() {
        prop_assert_eq!(&d.files, &live, "device {} diverged", i);
    }
    // Nothing the sync took responsibility for was lost.
    for d in &world.devices {
        world.offered.extend(d.files.values().copied());
    }
    for hash in &world.offered {
        prop_assert!(world.server.stored.contains(hash), "closed version {:?} was lost", hash);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn three_devices_converge_and_lose_nothing(
        ops in prop::collection::vec(op_strategy(), 0..80),
        keep_mine in prop::array::uniform3(any::<bool>()),
    ) {
        check(&ops, keep_mine)?;
    }
}

#[test]
fn concurrent_edits_from_a_shared_base_keep_both_versions() {
    use Op::*;
    let ops = [
        Write { dev: 0, path: 0 },
        Plan { dev: 0 },
        Apply { dev: 0 },
        Plan { dev: 1 },
        Apply { dev: 1 },
        Write { dev: 0, path: 0 },
        Write { dev: 1, path: 0 },
        Plan { dev: 0 },
        Plan { dev: 1 },
        Apply { dev: 0 },
        Apply { dev: 1 },
    ];
    check(&ops, [false, true, false]).unwrap();
}
