//! The configuration loader (`crates/tessera/src/config.rs`, with `listen.rs`).
//!
//! `tessera` is a binary crate, so its two modules are compiled into this target from
//! their source files; `Config::from_sources` is `Config::load` after the file is read.
//!
//! Input: the text of `tessera.toml`, optionally followed by a NUL byte and environment
//! variables, one `NAME=value` a line (`TESSERA_` is added to a name without it).
//! Checked:
//! - loading never panics, whatever the file and the variables;
//! - a configuration that loads also yields its settings (the checks at load and the
//!   settings built at start-up agree), its listen address prints as text that parses
//!   back to the same address, and its forward-auth rules decide any request without
//!   panicking (a few fixed ones, and one per `PATH=` line);
//! - every variable's value read as a listen address never panics, and one that parses
//!   round-trips through its printed form.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

#[allow(dead_code, unused_imports)]
#[path = "../../crates/tessera/src/listen.rs"]
mod listen;

#[allow(dead_code, unused_imports)]
#[path = "../../crates/tessera/src/config.rs"]
mod config;

use config::{Config, Overrides};
use listen::ListenAddress;

const REQUESTS: [(&str, &str); 6] = [
    ("GET", "/"),
    ("GET", "/api/articles/42?full=1"),
    ("POST", "/api/articles"),
    ("DELETE", "/api/articles/../admin"),
    ("PATCH", "/a//b/"),
    ("get", "/api/%2e%2e/x#frag"),
];

fn listen_round_trips(address: &ListenAddress) {
    let printed = address.to_string();
    assert_eq!(
        printed.parse::<ListenAddress>().as_ref(),
        Ok(address),
        "{address:?} prints as {printed:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let text = tessera_fuzz::text(data);
    let (toml, env_text) = text.split_once('\0').unwrap_or((&text, ""));
    let env: Vec<(String, String)> = env_text
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| {
            let name = if name.starts_with("TESSERA_") {
                name.to_owned()
            } else {
                format!("TESSERA_{name}")
            };
            (name, value.to_owned())
        })
        .collect();
    for (_, value) in &env {
        if let Ok(address) = value.parse::<ListenAddress>() {
            listen_round_trips(&address);
        }
    }

    let file = (!toml.is_empty()).then_some((Path::new("tessera.toml"), toml));
    let Ok((config, _warnings)) = Config::from_sources(file, &Overrides::default(), &env) else {
        return;
    };
    listen_round_trips(&config.listen);
    let settings = match config.settings() {
        Ok(settings) => settings,
        Err(error) => panic!("a configuration that loads has settings: {error:#}"),
    };
    let options = config.connection_options();
    assert!(options.max_connections >= 1);
    assert!(!config.database_url().is_empty());
    let rules = &settings.forward_auth;
    let paths = env
        .iter()
        .filter(|(name, _)| name == "TESSERA_PATH")
        .map(|(_, path)| ("GET", path.as_str()));
    for (method, path) in REQUESTS.into_iter().chain(paths) {
        let _ = rules.decide(method, path);
    }
});
