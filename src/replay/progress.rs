//! The restore's one-line progress display (bytes, transactions, rate, ETA), on stderr only
//! when it is a terminal.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use crate::ui;

/// A one-line progress display on stderr, only when it is a terminal.
pub struct Progress {
    enabled: bool,
    started: Instant,
    last: Instant,
    total: Option<u64>,
    shown: bool,
}

impl Progress {
    pub fn new(total: Option<u64>) -> Self {
        let now = Instant::now();
        Progress {
            enabled: std::io::stderr().is_terminal(),
            started: now,
            last: now,
            total,
            shown: false,
        }
    }

    pub fn tick(&mut self, bytes: u64, txns: u64) {
        if !self.enabled || self.last.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.last = Instant::now();
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = bytes as f64 / secs;
        let eta = match self.total {
            Some(total) if rate > 0.0 && total > bytes => {
                format!(
                    ", ETA {}",
                    crate::ui::duration_text(Duration::from_secs_f64(
                        (total - bytes) as f64 / rate
                    ))
                )
            }
            _ => String::new(),
        };
        let of = self
            .total
            .map(|t| format!(" of {}", ui::size(t)))
            .unwrap_or_default();
        eprint!(
            "\r\x1b[K  applying: {}{of}, {txns} transactions, {}/s ({:.0} txn/s){eta}",
            ui::size(bytes),
            ui::size(rate as u64),
            txns as f64 / secs
        );
        self.shown = true;
    }

    pub fn clear(&mut self) {
        if self.shown {
            eprint!("\r\x1b[K");
            self.shown = false;
        }
    }
}
