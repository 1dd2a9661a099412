//! The 421 policy, sans-IO: should this connection serve this request — and may a client
//! send that origin's request on this connection?
//!
//! A client may reuse one TLS connection for every origin the certificate covers (RFC 9113
//! §9.1.1). A server must then answer `421 Misdirected Request` (RFC 9110 §15.5.20) for a
//! request the connection is not right for, and serve everything else. This crate is that
//! decision, in one function, with the exact reason for every refusal; and the client's side
//! of the same contract.
//!
//! # Server side
//! - [`Listener`]: the sans-IO core of a TLS listener — [`Listener::select`] (the SNI choice),
//!   [`Listener::on_handshake`] (the connection's context from what the TLS stack reports)
//!   and [`Listener::on_request`] (an [`Outcome`]: serve, or a rendered refusal with the
//!   [`Refusal`] to log, within the listener's [`RefusalLog`] budget through
//!   [`Listener::log_refusal`]). The server and the tower layer both drive it.
//! - [`Listener::origins`]: the [`OriginSet`] a connection serves, and
//!   [`Listener::origin_frame`] the HTTP/2 `ORIGIN` frame (RFC 8336) that announces it.
//! - [`VirtualHosts`]: the listener's virtual hosts ([`VirtualHost`]: names, certificate
//!   identities, client-certificate requirement, minimum TLS version, ALPN, policy
//!   override), scheme, public ports, [`Policy`] level, `warn_only`, and what unknown hosts
//!   get ([`UnknownHost`]).
//! - [`ConnectionContext`]: what the handshake established (SNI, presented virtual host,
//!   TLS version, ALPN, [`ClientCert`] state).
//! - [`decide`] / [`decide_request`]: [`Decision::Serve`], [`Decision::Misdirected`],
//!   [`Decision::BadRequest`] or [`Decision::NotFound`], with a [`Reason`] whose stable
//!   `code()` goes into logs and metrics. [`Reason`] implements
//!   [`misdirect_response::RenderReason`], so `misdirect_response::render` turns it into
//!   the response; so does [`Explanation`], which adds the request's own facts (for
//!   `port-not-served`: the port it named and the ports the listener serves).
//!
//! Builders follow one rule: values you configure and then hand over ([`VirtualHost`],
//! [`ConnectionContext`], [`ReusePolicy`], [`PooledConnection`], `MisdirectLayer`) take
//! and return `self`, while [`VirtualHostsBuilder`], which hands out a [`VhostId`] for each
//! virtual host added between its settings, takes and returns `&mut Self`.
//!
//! The client-certificate rule — a virtual host that requires client certificates is only
//! reached over a connection whose certificate *its own* trust anchors verified — holds at
//! every [`Policy`] level and under `warn_only`; so does certificate cover — a host the
//! connection's certificate does not cover is never served.
//!
//! # Client side
//! [`ReusePolicy::may_reuse`] (exact, DNS overlap, IP overlap, ORIGIN frame modes),
//! [`PooledConnection::on_misdirected`] (retry once on a fresh connection) and
//! [`PooledConnection::on_origin_frame`] (RFC 8336).
//!
//! # Example
//! ```
//! use std::sync::Arc;
//! use misdirect_authority::{HostName, RequestTarget, Scheme};
//! use misdirect_certmatch::Identities;
//! use misdirect_coalesce::{decide, ConnectionContext, Decision, Reason, VirtualHost, VirtualHosts};
//!
//! let cert = Arc::new(Identities::from_patterns(["*.example.com".parse()?]));
//! let mut table = VirtualHosts::builder(Scheme::Https);
//! let www = table.add(VirtualHost::new("www", cert.clone()).pattern("www.example.com".parse()?));
//! let api = table.add(VirtualHost::new("api", cert).pattern("api.example.com".parse()?));
//! let vhosts = table.port(443).build()?;
//!
//! let conn = ConnectionContext::new().sni(HostName::from_sni(b"www.example.com")?).presented(www);
//! let target = RequestTarget::from_h2(Some(b"api.example.com"), std::iter::empty())?;
//! assert_eq!(decide(&vhosts, &conn, &target), Decision::Serve { vhost: api, warning: None });
//!
//! let target = RequestTarget::from_h2(Some(b"shop.example.com"), std::iter::empty())?;
//! assert_eq!(decide(&vhosts, &conn, &target), Decision::misdirected(Reason::UnknownHost, None));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Features
//! - `tower`: `MisdirectLayer`, a tower layer that answers 421/400 in front of any service.
//! - `rustls`: `RustlsListener` (each connection's `ServerConfig` chosen from the
//!   ClientHello by the listener core), `vhost_server_config` and
//!   `ConnectionContext::from_rustls`.
//!
//! No I/O and no runtime: plain values in, decisions out. The one clock read is
//! [`RefusalLog::record`]'s monotonic `Instant::now()` (pass the time with
//! [`RefusalLog::record_at`] to avoid it).
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::exhaustive_enums, clippy::exhaustive_structs)]

mod audit;
mod client;
mod decide;
#[cfg(feature = "tower")]
mod layer;
mod listener;
mod origins;
mod reason;
mod refusal_log;
#[cfg(feature = "rustls")]
mod tls;
mod vhost;

pub use audit::{Audit, AuditFinding, FindingKind, Severity};
pub use client::{NoReuse, PooledConnection, RetryAdvice, ReuseDecision, ReuseMode, ReusePolicy};
pub use decide::{
    ClientCert, ConnectionContext, Decision, VerifiedClientCert, decide, decide_request,
};
#[cfg(feature = "tower")]
pub use layer::{MisdirectLayer, MisdirectService, ResponseFuture, ServedBy};
pub use listener::{Handshake, Listener, Outcome, Refusal, ServedMemo, TrustAnchorSets};
pub use origins::{INITIAL_MAX_FRAME_SIZE, OriginSet};
pub use reason::Reason;
pub use refusal_log::{RefusalLog, RefusalLogMode};
#[cfg(feature = "rustls")]
pub use tls::{RustlsListener, TlsSetupError, vhost_server_config};
pub use vhost::{
    Alpn, ClientAuth, ConfigError, Explanation, Policy, TlsVersion, TrustAnchorsId, UnknownHost,
    VhostId, VirtualHost, VirtualHosts, VirtualHostsBuilder,
};

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
