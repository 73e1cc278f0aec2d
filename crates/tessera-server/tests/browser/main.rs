//! The admin console driven end to end in headless Chromium, as a person would use it,
//! against a real server. Needs `TESSERA_TEST_CHROMEDRIVER` (see `driver.rs`); saves
//! the README's screenshots to `docs/screenshots/`.

#![cfg(test)]

mod driver;
mod flows;
mod graphiql;
#[allow(dead_code)]
#[path = "../it/harness.rs"]
mod harness;
