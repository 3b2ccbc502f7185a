//! Random edits through outages lose no settled version. Two real mounts (A and B) edit
//! three saves at random (seeded, each edit a write + fsync + close) while the server is
//! stopped and started at random. At random points the devices are left alone for 2 s with
//! the server up; every version a device had closed by then must end up as the server head,
//! in the server's history (any kind), or as a `.conflict` copy on some device. That holds
//! only if a device in conflict keeps backing its new versions up. Finally the user deletes
//! every `.conflict` copy, and both devices and the server converge on the same bytes.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use savesync_core::ContentHash;
use savesync_tests::{
    Device, DevicePair, RemoteView, TestServer, save_bytes, wait_for_bytes, wait_until,
};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

const USER: &str = "frank";
const SAVES: [&str; 3] = ["snes/one.srm", "snes/two.srm", "gba/three.sav"];
const EDITS: u64 = 105;
const SEED: u64 = 0x5eed_c0f1;
/// Chance per edit that the server is stopped (or started again) right after it.
const TOGGLE: f64 = 0.12;
/// Chance per edit that the devices are then left alone with the server up.
const SETTLE: f64 = 0.15;
/// How long a settled version is left alone (the scenario of the issue, not a wait for a
/// condition: the conditions are polled before it).
const LEFT_ALONE: Duration = Duration::from_secs(2);
/// Deadline for queues to drain and devices to converge (reconnects may back off).
const DEADLINE: Duration = Duration::from_secs(30);

/// Write, fsync and close, as an emulator saving.
fn save(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(bytes).unwrap();
    f.sync_all().unwrap();
}

fn conflict_path(dev: &Device, save: &str) -> std::path::PathBuf {
    dev.path(&format!("{save}.conflict"))
}

/// Both queues are empty at once (everything closed so far was dealt with).
fn wait_drained(devices: &[&Device; 2]) {
    wait_until(DEADLINE, "both devices' queues drained", || {
        devices.iter().all(|d| d.status_json()["pending"] == 0).then_some(())
    });
}

struct Run {
    server: TestServer,
    view: RemoteView,
    a: Device,
    b: Device,
    /// The last version each device closed of each save: (device, save) -> bytes.
    last: BTreeMap<(usize, usize), Vec<u8>>,
    /// Versions that were left alone with the server up: hash -> (device, save, edit).
    settled: BTreeMap<ContentHash, (usize, usize, u64)>,
    edit_of: BTreeMap<ContentHash, u64>,
    outages: u32,
    settles: u32,
    conflicts_seen: usize,
}

impl Run {
    fn devices(&self) -> [&Device; 2] {
        [&self.a, &self.b]
    }

    /// Server up, both queues drained, then 2 s left alone: every last version counts.
    fn settle(&mut self) {
        if !self.server.is_running() {
            self.server.restart_blocking();
        }
        wait_drained(&self.devices());
        std::thread::sleep(LEFT_ALONE);
        self.settles += 1;
        for ((dev, s), bytes) in &self.last {
            let hash = ContentHash::of(bytes);
            self.settled.insert(hash, (*dev, *s, self.edit_of[&hash]));
        }
        let copies = self
            .devices()
            .iter()
            .flat_map(|d| SAVES.iter().map(move |s| conflict_path(d, s)))
            .filter(|p| p.exists())
            .count();
        self.conflicts_seen += copies;
    }

    /// Every settled version is the head, in history, or a `.conflict` copy somewhere.
    fn lost_versions(&self) -> Vec<String> {
        let mut found: Vec<ContentHash> = Vec::new();
        for save in SAVES {
            found.extend(self.view.head(save).and_then(|h| h.hash));
            found.extend(self.view.history(save).versions.iter().filter_map(|v| v.hash));
            for dev in self.devices() {
                if let Ok(bytes) = std::fs::read(conflict_path(dev, save)) {
                    found.push(ContentHash::of(&bytes));
                }
            }
        }
        self.settled
            .iter()
            .filter(|(hash, _)| !found.contains(hash))
            .map(|(_, (dev, s, edit))| format!("edit {edit}: device {dev}, {}", SAVES[*s]))
            .collect()
    }

    /// The user deletes every `.conflict` copy (keep mine) as soon as it shows; true once
    /// both devices hold the same bytes of every save and the server's head is those bytes.
    fn resolved_and_converged(&self) -> bool {
        let mut copies = false;
        for dev in self.devices() {
            for save in SAVES {
                if std::fs::remove_file(conflict_path(dev, save)).is_ok() {
                    copies = true;
                }
            }
        }
        if copies {
            return false;
        }
        let Some(heads) = self.view.try_saves() else { return false };
        SAVES.iter().all(|save| {
            let (Ok(a), Ok(b)) =
                (std::fs::read(self.a.path(save)), std::fs::read(self.b.path(save)))
            else {
                return false;
            };
            a == b && heads.get(*save) == Some(&ContentHash::of(&a))
        })
    }
}

#[test]
fn random_edits_through_outages_lose_no_settled_version_and_converge_once_resolved() {
    let started = Instant::now();
    let Some(DevicePair { a, b, view, server }) = DevicePair::start(USER) else {
        return;
    };
    let mut run = Run {
        server,
        view,
        a,
        b,
        last: BTreeMap::new(),
        settled: BTreeMap::new(),
        edit_of: BTreeMap::new(),
        outages: 0,
        settles: 0,
        conflicts_seen: 0,
    };
    for dir in ["snes", "gba"] {
        std::fs::create_dir_all(run.a.path(dir)).unwrap();
    }
    // A creates the saves; B has them before the random edits start.
    for (s, save_path) in SAVES.iter().enumerate() {
        let bytes = save_bytes(SEED + s as u64, 1024);
        save(&run.a.path(save_path), &bytes);
        wait_for_bytes(&run.b.path(save_path), &bytes, DEADLINE);
        run.edit_of.insert(ContentHash::of(&bytes), 0);
        run.last.insert((0, s), bytes);
    }
    let mut rng = StdRng::seed_from_u64(SEED);
    for edit in 1..=EDITS {
        let (dev, s) = (rng.random_range(0..2), rng.random_range(0..SAVES.len()));
        let bytes = save_bytes(SEED ^ (edit << 8), rng.random_range(256..6000));
        save(&run.devices()[dev].path(SAVES[s]), &bytes);
        run.edit_of.insert(ContentHash::of(&bytes), edit);
        run.last.insert((dev, s), bytes);
        let roll: f64 = rng.random();
        if roll < TOGGLE {
            if run.server.is_running() {
                run.server.stop_blocking();
                run.outages += 1;
            } else {
                run.server.restart_blocking();
            }
        } else if roll < TOGGLE + SETTLE {
            run.settle();
        } else {
            // Scenario pacing only: edits come a few milliseconds to a tenth of a second apart.
            std::thread::sleep(Duration::from_millis(rng.random_range(0..100)));
        }
    }
    run.settle();
    let lost = run.lost_versions();
    eprintln!(
        "{EDITS} edits, {} outages, {} settles, {} versions settled, {} conflict copies seen, \
         {:?} until checked",
        run.outages,
        run.settles,
        run.settled.len(),
        run.conflicts_seen,
        started.elapsed()
    );
    assert!(run.outages > 0 && run.conflicts_seen > 0, "the seed must produce conflicts");
    assert!(lost.is_empty(), "settled versions lost: {lost:#?}");

    wait_until(DEADLINE, "devices converge once every .conflict copy is deleted", || {
        run.resolved_and_converged().then_some(())
    });
    eprintln!("converged after {:?}", started.elapsed());
}
