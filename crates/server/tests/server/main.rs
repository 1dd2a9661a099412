//! Integration tests over loopback with Rust clients: the policy matrix, the special
//! cases, bad configurations, the limits, serving files and the embedded default.
#![allow(missing_docs, unreachable_pub, dead_code, clippy::unwrap_used)]

mod cases;
mod configs;
mod embedded;
mod files;
mod fixtures;
mod hardening;
mod limits;
mod logs;
mod matrix;
mod operate;
mod plain;
mod proxy;
mod reload;
mod requirements;
mod support;
