//! The benchmark's output: one row per figure with a column per peer (plain dir, bindfs,
//! rclone mount, savesync), savesync's ratio to the row's reference, and the target
//! with "met" / "NOT met". Printed as a Markdown table so it can be pasted into
//! docs/performance.md as is; every row is also printed to stderr as it is measured.

use crate::measure::fmt_duration;
use std::time::Duration;

/// The columns, in order.
pub const PEERS: [&str; 4] = ["plain dir", "bindfs", "rclone mount", "savesync"];
pub const PLAIN: usize = 0;
pub const BINDFS: usize = 1;
pub const RCLONE: usize = 2;
pub const SAVESYNC: usize = 3;

/// What a row's savesync figure is held to.
pub enum Target {
    /// At most this many times the reference column.
    Ratio(f64),
    /// At most this long.
    Within(Duration),
    /// At most this long and at least `faster`x quicker than the reference column.
    WithinAndFaster(Duration, f64),
}

struct Row {
    workload: String,
    cells: [String; 4],
    ratio: String,
    target: String,
}

#[derive(Default)]
pub struct Report {
    rows: Vec<Row>,
}

impl Report {
    /// A timed figure: `times[i]` for peer column `i` (None: not measured / not installed),
    /// the ratio savesync / `times[reference]`, and the target's verdict.
    pub fn times(
        &mut self,
        workload: &str,
        times: [Option<Duration>; 4],
        reference: Option<usize>,
        target: Option<Target>,
    ) {
        let cells = times.map(|t| t.map_or_else(|| "-".to_owned(), fmt_duration));
        let savesync = times[SAVESYNC];
        let against = reference.and_then(|r| times[r].map(|t| (r, t)));
        let ratio = match (savesync, against) {
            (Some(s), Some((r, t))) => Some((ratio(s, t), r)),
            _ => None,
        };
        let ratio_text =
            ratio.map_or_else(|| "-".to_owned(), |(x, r)| format!("{x:.2}x {}", short(r)));
        let target_text = match (&target, savesync) {
            (None, _) => String::new(),
            (Some(t), s) => {
                let met = match (t, s, ratio) {
                    (Target::Ratio(max), _, Some((x, _))) => Some(x <= *max),
                    (Target::Within(max), Some(s), _) => Some(s <= *max),
                    (Target::WithinAndFaster(max, faster), Some(s), Some((x, _))) => {
                        Some(s <= *max && x > 0.0 && 1.0 / x >= *faster)
                    }
                    _ => None,
                };
                verdict(&describe(t, reference), met)
            }
        };
        self.push(Row {
            workload: workload.to_owned(),
            cells,
            ratio: ratio_text,
            target: target_text,
        });
    }

    /// A figure with text cells (memory) or a ratio computed by the caller (e.g. to
    /// savesync's own write time): `ratio` and `target` are printed as given.
    pub fn text(&mut self, workload: &str, cells: [Option<String>; 4], ratio: &str, target: &str) {
        self.push(Row {
            workload: workload.to_owned(),
            cells: cells.map(|c| c.unwrap_or_else(|| "-".to_owned())),
            ratio: ratio.to_owned(),
            target: target.to_owned(),
        });
    }

    fn push(&mut self, row: Row) {
        eprintln!("  {}", render(&row));
        self.rows.push(row);
    }

    pub fn print_markdown(&self) {
        println!("| workload | {} | savesync / ref | target |", PEERS.join(" | "));
        println!("|---|---:|---:|---:|---:|---:|---|");
        for row in &self.rows {
            println!("{}", render(row));
        }
    }
}

/// `a / b`, guarded against a zero reference.
pub fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-9)
}

/// `"≤ 1.3x the write time met"` and the like.
pub fn verdict(target: &str, met: Option<bool>) -> String {
    match met {
        Some(true) => format!("{target}: met"),
        Some(false) => format!("{target}: NOT met"),
        None => format!("{target}: not measured"),
    }
}

fn describe(target: &Target, reference: Option<usize>) -> String {
    let against = reference.map_or("", short);
    match target {
        Target::Ratio(max) => format!("≤ {max}x {against}"),
        Target::Within(max) => format!("≤ {}", fmt_duration(*max)),
        Target::WithinAndFaster(max, faster) => {
            format!("≤ {}, ≥ {faster}x faster than {against}", fmt_duration(*max))
        }
    }
}

fn short(column: usize) -> &'static str {
    ["plain", "bindfs", "rclone", "savesync"][column]
}

fn render(row: &Row) -> String {
    format!("| {} | {} | {} | {} |", row.workload, row.cells.join(" | "), row.ratio, row.target)
}
