//! The benchmark's output: one row per workload with the plain-directory time, the mount's
//! time and their ratio, plus rows that only have an absolute figure. Printed as a
//! Markdown table so it can be pasted into docs/performance.md as is.

use crate::measure::fmt_duration;
use std::time::Duration;

/// One line of the result table.
pub enum Row {
    /// The same workload on a plain directory and on the mount.
    Compared { workload: String, plain: Duration, mount: Duration, target: Option<f64> },
    /// A figure that has no plain-directory counterpart (server commit, propagation, RSS).
    Absolute { workload: String, value: String, target: Option<String> },
}

#[derive(Default)]
pub struct Report {
    rows: Vec<Row>,
}

impl Report {
    pub fn compared(
        &mut self,
        workload: &str,
        plain: Duration,
        mount: Duration,
        target: Option<f64>,
    ) {
        let row = Row::Compared { workload: workload.to_owned(), plain, mount, target };
        eprintln!("  {}", render(&row));
        self.rows.push(row);
    }

    pub fn absolute(&mut self, workload: &str, value: String, target: Option<&str>) {
        let row = Row::Absolute {
            workload: workload.to_owned(),
            value,
            target: target.map(str::to_owned),
        };
        eprintln!("  {}", render(&row));
        self.rows.push(row);
    }

    pub fn print_markdown(&self) {
        println!("| workload | plain dir | savesync mount | mount / plain | target |");
        println!("|---|---:|---:|---:|---|");
        for row in &self.rows {
            println!("{}", render(row));
        }
    }
}

fn render(row: &Row) -> String {
    match row {
        Row::Compared { workload, plain, mount, target } => {
            let ratio = mount.as_secs_f64() / plain.as_secs_f64().max(1e-9);
            let verdict = target.map_or_else(String::new, |t| {
                format!("≤ {t}x {}", if ratio <= t { "met" } else { "NOT met" })
            });
            format!(
                "| {workload} | {} | {} | {ratio:.2}x | {verdict} |",
                fmt_duration(*plain),
                fmt_duration(*mount)
            )
        }
        Row::Absolute { workload, value, target } => {
            format!("| {workload} | - | {value} | - | {} |", target.as_deref().unwrap_or(""))
        }
    }
}
