//! The verifier and its layer against a real Tessera started in this process.

// Integration tests are always built with cfg(test); saying so lets clippy.toml's
// allow-{unwrap,expect,panic}-in-tests cover the helpers too.
#![cfg(test)]

mod harness;
mod layer;
mod lifetimes;
mod logs;
mod rate_limits;
mod subscription;
mod unreachable;
mod usage;
