//! An HTTP/2 client that coalesces connections correctly and recovers from
//! `421 Misdirected Request`.
//!
//! A client may send requests for several origins on one TLS connection when the server is
//! authoritative for all of them (RFC 9113 §9.1.1). [`Client`] does so only when the
//! sans-IO [`ReusePolicy`](misdirect_coalesce::ReusePolicy) of `misdirect-coalesce`
//! allows it and the connection's certificate chain passes, for the new origin's host, the
//! full verification a new connection would make; it reads the server's `ORIGIN` frames
//! (RFC 8336), which `h2` itself drops; and on a 421 (RFC 9110 §15.5.20) it marks the origin
//! as misdirected on that connection and retries the request once on a fresh connection
//! made for it.
//!
//! - [`Client::builder`]: trust anchors, an optional client certificate, the
//!   [`ReuseMode`](misdirect_coalesce::ReuseMode) (default `OriginFrame`), a [`Resolve`]r
//!   ([`SystemResolver`] or [`StaticResolver`]), timeouts, a connection limit per peer and
//!   an optional memory of 421s across connections
//!   ([`remember_misdirected`](ClientBuilder::remember_misdirected)).
//! - [`Client::send`]: one `http::Request` in — its body whole ([`Bytes`](bytes::Bytes),
//!   `String`, …, replayed on a retry) or a [`RequestBody::streaming`] stream (sent once) —
//!   an `http::Response<`[`Body`]`>` out. A server that selects HTTP/1.1 by ALPN gets
//!   HTTP/1.1, on connections that serve their own origin only.
//! - [`Client::connect`]: a [`Connection`] outside the pool, for tools that test servers:
//!   requests for any authority on it, what the handshake found ([`ConnectionInfo`], with
//!   the verifier's answer kept on request), its ORIGIN set.
//! - [`Client::stats`]: connections opened, requests, coalesced requests, 421 retries and
//!   ORIGIN frames.
//!
//! Every coalesced reuse, 421 retry and ORIGIN frame is a `tracing` event at `DEBUG`.
//!
//! # Not yet
//! TLS session resumption for a client with a certificate (each of its connections makes a
//! full handshake, so that whether it presented the certificate is known per connection).
//!
//! # Example
//! ```no_run
//! use bytes::Bytes;
//! use misdirect_client::{Client, StaticResolver};
//! use misdirect_coalesce::ReuseMode;
//! use rustls_pki_types::CertificateDer;
//! use rustls_pki_types::pem::PemObject;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut roots = rustls::RootCertStore::empty();
//! for cert in CertificateDer::pem_file_iter("ca.pem")? {
//!     roots.add(cert?)?;
//! }
//! let local = ["127.0.0.1".parse()?];
//! let client = Client::builder()
//!     .roots(roots)
//!     .reuse_mode(ReuseMode::DnsOverlap)
//!     .resolver(StaticResolver::new().insert("a.localhost", local).insert("b.localhost", local))
//!     .build()?;
//! for host in ["a.localhost", "b.localhost"] {
//!     let request = http::Request::get(format!("https://{host}:8443/")).body(Bytes::new())?;
//!     let response = client.send(request).await?;
//!     println!("{host}: {}", response.status());
//! }
//! assert_eq!(client.stats().connections_opened, 1); // b.localhost rode a.localhost's connection
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::exhaustive_enums, clippy::exhaustive_structs)]

mod body;
mod client;
mod conn;
mod error;
mod info;
mod origin_watch;
mod resolve;
mod tls;

pub use body::{Body, BoxError, RequestBody};
pub use client::{Client, ClientBuilder, Stats};
pub use conn::{ConnectOptions, Connection};
pub use error::{Error, ErrorKind};
pub use info::{ConnectionInfo, Protocol};
pub use resolve::{Resolve, Resolving, StaticResolver, SystemResolver};

/// The README's example, compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
