//! `tessera`: the command-line interface and the server's wiring.
//!
//! Output contract: a created or regenerated secret goes alone to stdout (so
//! `T=$(tessera token create …)` works); listings and `--json` documents go to stdout;
//! messages go to stderr. Exit codes are documented in [`exit`].

mod cli;
mod commands;
mod config;
mod copy;
mod exit;
mod import;
mod install;
mod listen;
mod lookup;
mod people;
mod serve;
mod table;
mod token_commands;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(exit::INTERNAL);
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => ExitCode::from(code),
        // A reader that stopped early (`tessera token list | head`) is not an error.
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", describe(&error));
            ExitCode::from(exit::code_of(&error))
        }
    }
}

/// The error and its causes, each said once: a cause whose text its parent already
/// quotes (as `StoreError` does the sqlx error it wraps) is not repeated.
fn describe(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let said = cause.to_string();
        if said.is_empty() || text.contains(&said) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&said);
    }
    text
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
