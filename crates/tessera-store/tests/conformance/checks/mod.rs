//! The checks, by area. Each module sees the suite's fixtures (`crate::*`).

pub(crate) mod audit;
pub(crate) mod catalog;
pub(crate) mod feed;
pub(crate) mod tokens;
pub(crate) mod usage;
pub(crate) mod users;
