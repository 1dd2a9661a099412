//! `misdirect-server`: a thin TLS server that answers `421 Misdirected Request` right, and
//! the `misdirect` binary.
//!
//! It is the reference integration of the workspace's crates: tokio and rustls
//! (`LazyConfigAcceptor`: the ClientHello is read first, the virtual host picked by SNI with
//! `misdirect_coalesce::Listener::select`, then that virtual host's own rustls configuration —
//! its certificate, client-certificate verifier, minimum TLS version and session cache), hyper
//! for HTTP/1.1 and h2 for HTTP/2, chosen by ALPN. The connection's context comes from
//! `Listener::on_handshake`, each request's outcome from `Listener::on_request` (target by
//! `misdirect-authority`, decision by `misdirect-coalesce`, refusals rendered by
//! `misdirect-response`). This crate decides nothing itself: it holds configuration, TLS
//! set-up, the accept loop, connection limits and timeouts, and shutdown.
//!
//! # What it does
//! - [`Config`]: the TOML configuration (listeners, virtual hosts, limits, logs, admin), strict about
//!   unknown keys; see the workspace's `docs/server.md` for every key.
//! - [`Server`]: binds, serves, and shuts down gracefully (GOAWAY on HTTP/2, in-flight
//!   requests finish within a timeout).
//! - [`embedded`]: the development set-up `misdirect serve` runs without a configuration
//!   file — an in-memory CA, certificates and virtual hosts under `localhost`, with curl
//!   commands that show coalescing and each kind of 421.
//!
//! It also sends each HTTP/2 connection an ORIGIN frame (RFC 8336) listing the origins it
//! serves, counts requests, refusals and handshakes for Prometheus on an optional admin
//! listener, keeps refusal logs within a budget, and reloads its configuration and
//! certificates without dropping a connection ([`ReloadHandle`], SIGHUP in the binary).
//!
//! A virtual host with `respond = { proxy = "http://127.0.0.1:3000" }` is the TLS front of
//! an application: requests the listener core serves are forwarded (HTTP/1.1, h2c or
//! HTTPS) with their bodies streamed both ways, `Host`, `Via` and `Forwarded` rewritten,
//! and HTTP/1.1 upgrades (WebSocket) tunnelled. Its 421s stay this server's own decision
//! about the client's connection: an application's 421 is retried on a new connection,
//! never passed on (RFC 9110 §15.5.20).
//!
//! # What it does not do
//! No HTTP/3. Plain-HTTP listeners (`tls = false`: HTTP/1.1 and h2c behind a
//! TLS-terminating load balancer, or a `redirect = "https"` companion) make none of the
//! TLS checks: the load balancer must.
//!
//! # Example
//! ```no_run
//! # async fn example() -> Result<(), misdirect_server::Error> {
//! use misdirect_server::{Config, Server};
//!
//! let config = Config::from_file("misdirect.toml")?;
//! let server = Server::bind(config).await?;
//! server.run(async { tokio::signal::ctrl_c().await.ok(); }).await;
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//! None: the crate has no optional parts.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::exhaustive_enums, clippy::exhaustive_structs)]

mod admin;
pub mod check;
mod config;
mod conn;
pub mod embedded;
mod error;
mod files;
#[cfg(test)]
mod in_memory;
mod metrics;
mod origin;
mod plain;
pub mod probe;
mod proxy;
mod server;
mod serving;
mod site;
mod tables;

pub use config::Config;
pub use error::{Error, ErrorKind};
pub use server::{ReloadHandle, Server};
