//! `--verify`: proves, offline, that every chain (or the one `--chain-id` names) is whole — see
//! `crate::storage::verify` for the checks and doc/file-handling.md for what they cover. Prints a
//! report (text, or one JSON object with `--json`), stores each chain's result in its
//! `verify.json` for `--status`, and exits 0 when all is intact, 4 when not.

use std::io::Write;

use serde::Serialize;

use crate::cli::Invocation;
use crate::error::{Error, Result};
use crate::storage::backup_dir::BackupDir;
use crate::storage::verify::{self, ChainReport, Scope};
use crate::ui;

use super::Outcome;

#[derive(Serialize)]
struct JsonReport<'a> {
    format: u32,
    status: &'static str,
    exit_code: u8,
    backup_dir: String,
    chains: &'a [ChainReport],
}

pub async fn run(inv: &Invocation) -> Result<Outcome> {
    let root = inv
        .backup_dir
        .as_deref()
        .expect("cli requires --backup-dir for --verify");
    if !root.is_dir() {
        return Err(Error::backup(format!(
            "backup directory \"{}\" does not exist",
            root.display()
        )));
    }
    let dir = BackupDir::new(root);
    let chains: Vec<_> = match inv.chain_id {
        Some(id) => {
            let c = dir.chain(id);
            if !c.dir.is_dir() {
                return Err(Error::backup(format!(
                    "chain {id} not found in \"{}\"",
                    root.display()
                )));
            }
            if !c.is_complete() {
                return Err(Error::backup(format!(
                    "chain {id} is incomplete (it has no COMPLETE marker): there is nothing to verify"
                ))
                .with_hint("A chain whose base backup did not finish is never restored; --status lists it."));
            }
            vec![(c, true)]
        }
        None => dir
            .chains()?
            .into_iter()
            .map(|c| (c.chain, c.complete))
            .collect(),
    };
    if chains.is_empty() {
        return Err(Error::backup(format!(
            "no chain in \"{}\" to verify",
            root.display()
        )));
    }
    let scope = Scope {
        stop: None,
        read_active: true,
    };
    let mut reports = Vec::new();
    for (chain, complete) in &chains {
        if !complete {
            // Being created (or abandoned): --status reports it; it is never restored.
            if !inv.json {
                ui::say(&format!(
                    "Chain {}: skipped (incomplete: no COMPLETE marker)",
                    chain.id
                ));
            }
            continue;
        }
        let report = verify::verify_chain(chain, scope).await;
        if let Err(e) = report.save(chain) {
            ui::warning(&format!("could not store the verification result: {e}"));
        }
        if !inv.json {
            print_text(&report);
        }
        reports.push(report);
    }
    let intact = reports.iter().all(|r| r.intact);
    let outcome = if intact {
        Outcome::Success
    } else {
        Outcome::Damaged
    };
    if inv.json {
        let doc = JsonReport {
            format: 1,
            status: if intact { "intact" } else { "damaged" },
            exit_code: outcome.exit_code(),
            backup_dir: inv
                .remote_url
                .clone()
                .unwrap_or_else(|| root.display().to_string()),
            chains: &reports,
        };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&doc).expect("reports always serialize")
        );
    }
    for r in reports.iter().filter(|r| !r.intact) {
        for p in &r.problems {
            ui::error(&Error::backup(format!(
                "chain {}: {}: {}",
                r.chain_id, p.file, p.problem
            )));
        }
    }
    Ok(outcome)
}

fn print_text(r: &ChainReport) {
    let mut out = std::io::stdout().lock();
    let state = if r.intact { "intact" } else { "DAMAGED" };
    let last = r
        .last
        .as_ref()
        .map(|t| format!(", last committed {}", t.commit_time))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "Chain {}: {state} ({} sealed differential(s), {} transaction(s){last})",
        r.chain_id,
        r.files.len(),
        ui::thousands(r.txns)
    );
    if let Some(a) = &r.active {
        let _ = writeln!(
            out,
            "  active.sql: {} committed transaction(s){}",
            ui::thousands(a.txns),
            if a.unfinished_bytes > 0 {
                format!(", then {} bytes of an unfinished one", a.unfinished_bytes)
            } else {
                String::new()
            }
        );
    }
    if r.markers > 0 {
        let first = r
            .first_marker
            .as_ref()
            .map(|m| {
                format!(
                    "; first in {} (xid {}): {}",
                    m.file, m.marker.xid, m.marker.message
                )
            })
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  unreplayable markers: {} (a restore stops at the first){first}",
            r.markers
        );
    }
    for p in &r.problems {
        let _ = writeln!(out, "  problem: {}: {}", p.file, p.problem);
    }
    for w in &r.warnings {
        let _ = writeln!(out, "  warning: {}: {}", w.file, w.problem);
    }
}
