//! `tessera token import`: many tokens from a file of JSON lines, in batches that are
//! each one transaction, with their secrets written out in input order as soon as their
//! batch is committed.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use tessera_api_types::CreateTokenRequest;
use tessera_app::import::ImportFailure;
use tessera_app::{Principal, Tessera};

use crate::exit::UsageError;

/// What `token import` was asked to do.
#[derive(Debug)]
pub struct Options {
    /// The JSON-lines file; `-` is stdin.
    pub file: PathBuf,
    /// Where the secrets go; stdout when `None`.
    pub out: Option<PathBuf>,
    pub batch_size: usize,
    /// Lines to skip first.
    pub skip: u64,
}

/// One line of the output: which input line, which token, and its secret.
#[derive(Debug, Serialize)]
struct Issued<'a> {
    line: u64,
    id: String,
    name: &'a str,
    external_id: Option<&'a str>,
    token: &'a str,
}

/// A batch read from the input: each request with its line number.
type Batch = Vec<(u64, CreateTokenRequest)>;

pub async fn run(app: &Tessera, principal: &Principal, options: Options) -> Result<()> {
    let from_stdin = options.file.as_os_str() == "-";
    let input: Box<dyn BufRead> = if from_stdin {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        Box::new(BufReader::new(File::open(&options.file).with_context(
            || format!("cannot read {}", options.file.display()),
        )?))
    };
    // Buffered (serde writes a line in many small pieces), flushed after each batch.
    let (mut out, shown_out): (Box<dyn Write>, String) = match &options.out {
        Some(path) => (
            Box::new(std::io::BufWriter::new(private_file(path)?)),
            path.display().to_string(),
        ),
        None => (
            Box::new(std::io::BufWriter::new(std::io::stdout())),
            "stdout".to_owned(),
        ),
    };
    let progress = progress_bar(&options, from_stdin)?;
    let mut lines = input.lines();
    let mut number = 0_u64;
    let mut imported = 0_u64;
    // Every way out of the batches, a stop or an I/O error included, refreshes the
    // statistics after whatever was imported.
    let outcome: Result<()> = async {
        loop {
            let batch_start = number + 1;
            let batch = match read_batch(&mut lines, &mut number, &options) {
                Ok(batch) => batch,
                Err(error) => {
                    progress.abandon();
                    eprintln!("{}", stopped(batch_start, imported, &shown_out));
                    return Err(error);
                }
            };
            let Some(&(first, _)) = batch.first() else {
                break;
            };
            let numbers: Vec<u64> = batch.iter().map(|(line, _)| *line).collect();
            let requests = batch.into_iter().map(|(_, request)| request).collect();
            let created = match app.tokens().import(principal, requests).await {
                Ok(created) => created,
                Err(ImportFailure { index, error }) => {
                    progress.abandon();
                    eprintln!("{}", stopped(batch_start, imported, &shown_out));
                    let line = numbers.get(index).copied().unwrap_or(first);
                    return Err(anyhow::Error::from(error).context(format!("line {line}")));
                }
            };
            for (line, token) in numbers.iter().zip(&created) {
                let issued = Issued {
                    line: *line,
                    id: token.record.id.to_string(),
                    name: &token.record.name,
                    external_id: token.record.external_id.as_deref(),
                    token: &token.token,
                };
                serde_json::to_writer(&mut out, &issued).map_err(std::io::Error::from)?;
                out.write_all(b"\n")?;
            }
            // The batch is committed: its secrets must not wait in a buffer.
            out.flush()?;
            imported += created.len() as u64;
            progress.set_position(number);
        }
        progress.finish_and_clear();
        eprintln!("imported {imported} tokens; their secrets are in {shown_out}");
        Ok(())
    }
    .await;
    refresh_statistics(app, principal, imported).await;
    outcome
}

/// After an import that wrote tokens (also one stopped part way), the database's
/// statistics for the token list. Run once the secrets are safe; a failure loses
/// nothing (the database's own upkeep gets there later), so it is a warning.
async fn refresh_statistics(app: &Tessera, principal: &Principal, imported: u64) {
    if imported == 0 {
        return;
    }
    if let Err(error) = app.tokens().finish_import(principal).await {
        eprintln!(
            "warning: the database's statistics were not refreshed after the import \
             ({error}); the token list may be slow until the database analyzes the table"
        );
    }
}

/// Reads up to one batch of requests, skipping blank lines and the first `skip` lines.
/// A line that is not a create request stops the import, named.
fn read_batch(
    lines: &mut impl Iterator<Item = std::io::Result<String>>,
    number: &mut u64,
    options: &Options,
) -> Result<Batch> {
    let mut batch = Vec::with_capacity(options.batch_size);
    while batch.len() < options.batch_size {
        let Some(line) = lines.next() else {
            break;
        };
        *number += 1;
        let line = line.with_context(|| format!("cannot read line {number}"))?;
        if *number <= options.skip || line.trim().is_empty() {
            continue;
        }
        let request: CreateTokenRequest = serde_json::from_str(&line).map_err(|error| {
            // The message may quote the line: never a token-shaped part of it.
            let error = tessera_core::token::redact_secrets(&error.to_string());
            UsageError(format!(
                "line {number}: not a token create request ({error}); each line is one \
                 JSON object with the fields of POST /v1/tokens"
            ))
        })?;
        batch.push((*number, request));
    }
    Ok(batch)
}

/// What a stopped import says before its error: what was kept, and how to resume.
fn stopped(batch_start: u64, imported: u64, out: &str) -> String {
    let resume = batch_start.saturating_sub(1);
    if imported == 0 {
        return format!(
            "the import stopped and imported nothing; fix the line named below and run it \
             again{}",
            if resume > 0 {
                format!(" with --skip {resume}")
            } else {
                String::new()
            }
        );
    }
    format!(
        "the import stopped: the {imported} tokens of the lines before line {batch_start} \
         were imported and their secrets written to {out}; fix the line named below and \
         run again with --skip {resume} (and a new --out)"
    )
}

/// A new file, readable by its owner only: it will hold secrets.
fn private_file(path: &PathBuf) -> Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map_err(|error| {
        if error.kind() == std::io::ErrorKind::AlreadyExists {
            UsageError(format!(
                "--out {}: the file exists; name a new one (secrets are never appended to or \
                 overwrite a file)",
                path.display()
            ))
            .into()
        } else {
            anyhow::Error::from(error).context(format!("cannot create {}", path.display()))
        }
    })
}

/// A bar over the input's lines on a terminal (a spinner for stdin), nothing otherwise.
fn progress_bar(options: &Options, from_stdin: bool) -> Result<ProgressBar> {
    if from_stdin {
        return Ok(ProgressBar::new_spinner());
    }
    let total = BufReader::new(File::open(&options.file)?).lines().count() as u64;
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{wide_bar} {pos}/{len} lines · {per_sec} · {eta} left")
            .map_err(|error| anyhow::anyhow!("progress bar template: {error}"))?,
    );
    Ok(bar)
}
