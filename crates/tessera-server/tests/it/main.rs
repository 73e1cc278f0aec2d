//! HTTP integration tests of tessera-server: one binary, one real server per test on
//! 127.0.0.1:0 over its own temporary data dir.

// Integration tests are always built with cfg(test); saying so lets clippy.toml's
// allow-{unwrap,expect,panic}-in-tests cover the helpers too, not only #[test] fns.
#![cfg(test)]

mod audit;
mod auth;
mod bad_input;
mod catalog;
mod changes;
mod console;
mod console_people;
mod customer;
mod forward_auth;
mod gateways;
mod graphql;
mod graphql_permissions;
mod harness;
mod list;
mod metrics;
mod openapi;
mod permissions;
mod personal;
mod register;
mod roles;
mod secrets;
mod slow_clients;
mod tokens;
mod usage_reports;
mod users;
mod verify;
