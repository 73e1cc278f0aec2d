//! `tessera db copy`: copies every table of one database into another (SQLite to
//! PostgreSQL, the move to a cluster; the other directions work too), with progress
//! on stderr and a final count check. The copying itself is
//! [`tessera_store::copy_database`].

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Subcommand;
use serde_json::json;
use tessera_store::{CopyOptions, CopyProgress, CopyReport, StoreError, redact_url};

use crate::config::Config;
use crate::exit::{self, UsageError};

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Copy every table of one database into another (e.g. SQLite to PostgreSQL).
    ///
    /// Both are migrated first. Ids, digests, audit ids and change sequence numbers
    /// are kept, so tokens keep verifying with the same pepper file. Stop every
    /// `tessera serve` using the source first. Refuses a target that holds anything
    /// (exit 4) unless --force.
    Copy {
        /// The database to copy, e.g. sqlite://./tessera-data/tessera.db
        #[arg(long, value_name = "URL")]
        from: String,
        /// The database to fill, e.g. postgres://tessera@db:5432/tessera
        #[arg(long, value_name = "URL")]
        to: String,
        /// Delete everything in a non-empty target first.
        #[arg(long)]
        force: bool,
    },
}

/// Runs `tessera db …`.
pub async fn run(config: &Config, command: DbCommand, json: bool) -> Result<u8> {
    let DbCommand::Copy { from, to, force } = command;
    if from == to {
        return Err(UsageError("--from and --to name the same database".into()).into());
    }
    for (flag, url) in [("--from", &from), ("--to", &to)] {
        crate::config::check_database_url(url)
            .map_err(|error| UsageError(format!("{flag}: {error}")))?;
    }
    let (shown_from, shown_to) = (redact_url(&from), redact_url(&to));
    eprintln!("copying {shown_from} -> {shown_to}");
    let mut display = Progress::new(std::io::stderr().is_terminal());
    let options = CopyOptions {
        force,
        ..CopyOptions::default()
    };
    let outcome =
        tessera_store::copy_database(&from, &to, options, &mut |event| display.show(event)).await;
    display.finish_line();
    let report = match outcome {
        Ok(report) => report,
        Err(error) => return Ok(refused(&error, &shown_from)),
    };
    let mismatches = report.mismatches();
    if json {
        crate::commands::print_json(&report_json(&report))?;
    }
    if !mismatches.is_empty() {
        for count in &mismatches {
            eprintln!(
                "error: row counts differ for table {}: source {}, target {} ({} copied)",
                count.table, count.source, count.target, count.copied
            );
        }
        eprintln!(
            "error: the copy is incomplete (was the source written to meanwhile? stop every \
             server using it and run the copy again with --force)"
        );
        return Ok(exit::INTERNAL);
    }
    eprintln!(
        "count check passed: {} rows in {} tables, the same in source and target",
        report.total_rows(),
        report.tables.len()
    );
    pepper_reminder(config);
    Ok(exit::OK)
}

/// Prints why the copy failed and returns the exit code.
fn refused(error: &StoreError, shown_from: &str) -> u8 {
    match error {
        StoreError::Conflict { what } => {
            eprintln!("error: {what}");
            exit::CONFLICT
        }
        StoreError::NotFound => {
            eprintln!("error: the source database {shown_from} does not exist");
            exit::NOT_FOUND
        }
        StoreError::Unavailable(_) => {
            eprintln!("error: {error}");
            exit::UNAVAILABLE
        }
        StoreError::Stale | StoreError::Backend(_) => {
            eprintln!("error: {error}");
            eprintln!(
                "error: tables copied before the failure stay in the target; fix the cause \
                 and run the copy again with --force"
            );
            exit::INTERNAL
        }
    }
}

/// Secrets are stored as HMAC digests keyed by the pepper: the copied digests verify
/// only where the same pepper file is.
fn pepper_reminder(config: &Config) {
    let path = config.pepper_path();
    let path = std::fs::canonicalize(&path).unwrap_or(path);
    if path.exists() {
        eprintln!(
            "reminder: tokens verify only with the pepper they were created with. It is at {}; \
             copy that file (same contents, readable by its owner only) into the data dir of \
             every node that uses the new database (or to where their pepper_file / \
             TESSERA_PEPPER_FILE points); a node with another pepper refuses to start.",
            path.display()
        );
    } else {
        eprintln!(
            "reminder: tokens verify only with the pepper they were created with, and there is \
             no pepper file at {} (see --data-dir and --pepper-file). Copy the source \
             installation's pepper file into the data dir of every node that uses the new \
             database (or to where their pepper_file / TESSERA_PEPPER_FILE points).",
            path.display()
        );
    }
}

fn report_json(report: &CopyReport) -> serde_json::Value {
    let tables: Vec<serde_json::Value> = report
        .tables
        .iter()
        .map(|count| {
            json!({
                "table": count.table,
                "copied": count.copied,
                "source": count.source,
                "target": count.target,
                "matches": count.matches(),
            })
        })
        .collect();
    json!({
        "source_backend": report.source_backend,
        "target_backend": report.target_backend,
        "rows": report.total_rows(),
        "complete": report.mismatches().is_empty(),
        "tables": tables,
    })
}

/// Tables with at least this many rows get a progress bar (terminal) or percentage
/// lines (not a terminal).
const LARGE_TABLE: u64 = 10_000;
/// How often a terminal's progress bar is redrawn at most.
const REDRAW: Duration = Duration::from_millis(100);
const BAR_WIDTH: u64 = 30;

/// Renders [`CopyProgress`] on stderr: a redrawn bar on a terminal, plain lines
/// otherwise (a log file, CI).
struct Progress {
    terminal: bool,
    /// A bar is on screen, without its newline yet.
    bar_shown: bool,
    last_draw: Option<Instant>,
    /// The last percentage printed as a plain line (by tens).
    last_tenth: u64,
}

impl Progress {
    fn new(terminal: bool) -> Self {
        Self {
            terminal,
            bar_shown: false,
            last_draw: None,
            last_tenth: 0,
        }
    }

    fn show(&mut self, event: CopyProgress) {
        match event {
            CopyProgress::TargetCleared { rows } => {
                self.line(&format!(
                    "--force: deleted the target's previous contents ({rows} rows)"
                ));
            }
            CopyProgress::TableStarted { .. } => {
                self.last_draw = None;
                self.last_tenth = 0;
            }
            CopyProgress::Rows { table, done, total } if total >= LARGE_TABLE => {
                if self.terminal {
                    let due = self.last_draw.is_none_or(|at| at.elapsed() >= REDRAW);
                    if due || done == total {
                        self.draw_bar(table, done, total);
                    }
                } else {
                    let tenth = done.saturating_mul(10) / total.max(1);
                    if tenth > self.last_tenth && done < total {
                        self.last_tenth = tenth;
                        self.line(&format!(
                            "{table:<12} {done:>9} of {total} rows ({}%)",
                            tenth * 10
                        ));
                    }
                }
            }
            CopyProgress::Rows { .. } => {}
            CopyProgress::TableFinished { table, rows } => {
                let noun = if rows == 1 { "row" } else { "rows" };
                self.line(&format!("{table:<12} {rows:>9} {noun} copied"));
            }
            CopyProgress::Checking => {
                self.line("checking row counts in source and target …");
            }
            _ => {}
        }
    }

    fn draw_bar(&mut self, table: &str, done: u64, total: u64) {
        let total = total.max(1);
        let filled = (done.min(total) * BAR_WIDTH / total) as usize;
        let bar = format!(
            "{}{}",
            "#".repeat(filled),
            "-".repeat(BAR_WIDTH as usize - filled)
        );
        let percent = done.min(total) * 100 / total;
        let mut stderr = std::io::stderr().lock();
        let _ = write!(
            stderr,
            "\r{table:<12} [{bar}] {percent:>3}%  {done}/{total}\x1b[K"
        );
        let _ = stderr.flush();
        self.bar_shown = true;
        self.last_draw = Some(Instant::now());
    }

    /// Prints a whole line, replacing a bar on screen.
    fn line(&mut self, text: &str) {
        let mut stderr = std::io::stderr().lock();
        if self.bar_shown {
            let _ = write!(stderr, "\r\x1b[K");
            self.bar_shown = false;
        }
        let _ = writeln!(stderr, "{text}");
    }

    /// Ends a bar left on screen (the copy failed part way).
    fn finish_line(&mut self) {
        if self.bar_shown {
            let _ = writeln!(std::io::stderr());
            self.bar_shown = false;
        }
    }
}
