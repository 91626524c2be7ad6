//! The restore's one-line progress display (bytes and transactions or tables, rate, ETA), on
//! stderr only when it is a terminal; the phase's summary line is printed by the caller either
//! way, so a log file gets one line per phase and a terminal a line that overwrites itself.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use crate::ui;

/// A one-line progress display on stderr, only when it is a terminal.
pub struct Progress {
    enabled: bool,
    /// What is being done (`applying`, `restoring base`).
    label: &'static str,
    /// What the count counts (`transactions`, `tables`).
    unit: &'static str,
    started: Instant,
    last: Instant,
    total: Option<u64>,
    /// Of the count, when it is known (tables of a directory base).
    count_total: Option<u64>,
    shown: bool,
}

impl Progress {
    /// The diff phase: bytes and transactions of the differentials.
    pub fn new(total: Option<u64>) -> Self {
        Progress::phase("applying", "transactions", total, None)
    }

    /// Any phase: `total` bytes (when known) and `count_total` units (when known).
    pub fn phase(
        label: &'static str,
        unit: &'static str,
        total: Option<u64>,
        count_total: Option<u64>,
    ) -> Self {
        let now = Instant::now();
        Progress {
            enabled: std::io::stderr().is_terminal(),
            label,
            unit,
            started: now,
            last: now,
            total,
            count_total,
            shown: false,
        }
    }

    /// Whether the line is shown (stderr is a terminal): callers skip work only it needs.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    pub fn tick(&mut self, bytes: u64, count: u64) {
        if !self.enabled || self.last.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.last = Instant::now();
        eprint!(
            "\r\x1b[K{}",
            self.line(bytes, count, self.started.elapsed())
        );
        self.shown = true;
    }

    /// The text of the line after `elapsed`.
    fn line(&self, bytes: u64, count: u64, elapsed: Duration) -> String {
        let secs = elapsed.as_secs_f64().max(0.001);
        let rate = bytes as f64 / secs;
        let eta = match self.total {
            Some(total) if rate > 0.0 && total > bytes => {
                format!(
                    ", ETA {}",
                    ui::duration_text(Duration::from_secs_f64((total - bytes) as f64 / rate))
                )
            }
            _ => String::new(),
        };
        let of = self
            .total
            .map(|t| format!(" of {}", ui::size(t)))
            .unwrap_or_default();
        let count_of = self
            .count_total
            .map(|t| format!(" of {}", ui::thousands(t)))
            .unwrap_or_default();
        // Tables finish too unevenly for a rate of them to mean anything.
        let count_rate = if self.count_total.is_some() {
            String::new()
        } else {
            format!(
                " ({} {}/s)",
                ui::thousands((count as f64 / secs) as u64),
                short_unit(self.unit)
            )
        };
        format!(
            "  {}: {}{of}, {}{count_of} {}, {}/s{count_rate}{eta}",
            self.label,
            ui::size(bytes),
            ui::thousands(count),
            self.unit,
            ui::size(rate as u64),
        )
    }

    pub fn clear(&mut self) {
        if self.shown {
            eprint!("\r\x1b[K");
            self.shown = false;
        }
    }
}

fn short_unit(unit: &str) -> &str {
    match unit {
        "transactions" => "txn",
        other => other,
    }
}

/// The summary of a finished phase: `3.4 GB in 1m 2s (56 MB/s)`.
pub fn summary(bytes: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(0.001);
    format!(
        "{} in {} ({}/s)",
        ui::size(bytes),
        ui::duration_text(elapsed),
        ui::size((bytes as f64 / secs) as u64)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_says_how_far_how_fast_and_how_long() {
        let p = Progress::phase("restoring base", "tables", Some(4 << 30), Some(12));
        let line = p.line(1 << 30, 3, Duration::from_secs(10));
        assert!(line.starts_with("  restoring base: 1"), "{line}");
        assert!(line.contains(" of 4"), "{line}");
        assert!(line.contains("3 of 12 tables"), "{line}");
        assert!(line.contains("ETA 30.0s"), "{line}");
        let d = Progress::new(None);
        let line = d.line(1000, 2000, Duration::from_secs(1));
        assert!(line.contains("2,000 transactions"), "{line}");
        assert!(line.contains("(2,000 txn/s)"), "{line}");
        assert!(!line.contains("ETA"), "{line}");
        assert!(summary(3 << 20, Duration::from_secs(3)).contains(" in 3.0s ("));
    }
}
