//! `misdirect check` and `misdirect probe`: configurations with each hazard, and probes
//! against our server at each policy level and against servers that get things wrong.
#![allow(missing_docs, unreachable_pub, dead_code, clippy::unwrap_used)]

mod check;
#[path = "../server/fixtures.rs"]
mod fixtures;
mod probe;
#[path = "../server/support.rs"]
mod support;
