//! Parse and normalise HTTP authorities, and decide which authority a request is for.
//!
//! `misdirect-authority` is the one place where a server turns the bytes of a Host header,
//! an HTTP/2 `:authority`, an absolute-form request target or a TLS SNI value into a
//! normalised host and port. Using one normaliser for every path is what keeps a server's
//! virtual-host choice, its certificate check and its client-certificate check in agreement
//! (see the workspace's `docs/authority.md`).
//!
//! # What it does
//! - [`Authority::parse`]: `host[:port]` per RFC 3986 §3.2 with server rules: no userinfo,
//!   no zone ids or IPvFuture, ports 0–65535 (leading zeros dropped), names lowercased with
//!   one trailing dot removed, labels 1–63 bytes, names ≤ 253 bytes, ASCII only.
//! - [`Host`], [`HostName`]: the validated host; names compare case-insensitively by
//!   construction.
//! - [`Origin`]: scheme + host + effective port (RFC 9110 §4.3.1).
//! - [`RequestTarget`]: the request's authority from HTTP/1.1 (RFC 9112 §3.2) or HTTP/2
//!   (RFC 9113 §8.3.1) inputs, with a [`TargetError`] naming the rule a bad request broke.
//! - [`HostName::from_sni`] (RFC 6066 §3) and [`HostName::from_config`] (UTS 46, Unicode
//!   configuration only).
//!
//! # What it does not do
//! No I/O, no allocation for names up to 64 bytes, no percent-decoding, no IDNA on request
//! data, no WHATWG-style IPv4 guessing (`0x7f.1` is an error, not `127.0.0.1`).
//!
//! # Example
//! ```
//! use misdirect_authority::{Authority, Host, Origin, RequestTarget, Scheme};
//!
//! let target = RequestTarget::from_h2(Some(b"WWW.Example.com:443"), std::iter::empty())?;
//! assert_eq!(target.authority().to_string(), "www.example.com:443");
//! assert_eq!(target.origin(Scheme::Https), "https://www.example.com".parse::<Origin>()?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Features
//! - `idna` (default): [`HostName::from_config`] accepts Unicode names.
//! - `http`: `RequestTarget::from_request` and `RequestTarget::from_parts` for
//!   `http::Request`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::exhaustive_enums, clippy::exhaustive_structs)]

mod authority;
mod chars;
mod error;
mod fast;
mod host;
#[cfg(feature = "http")]
mod http_request;
mod lanes;
mod origin;
mod target;
#[cfg(test)]
mod testgen;

pub use authority::Authority;
pub use error::{AuthorityError, AuthorityErrorKind};
pub use host::{Host, HostName, MAX_LABEL_LEN, MAX_NAME_LEN};
pub use origin::{Origin, Scheme};
pub use target::{RequestTarget, TargetError, TargetErrorKind, TargetSource};

/// [`Authority::parse`] without its fast path: the general parser alone. For the fuzz
/// targets, which check that both paths give the same answer on every input; not part of
/// the API.
#[cfg(fuzzing)]
#[doc(hidden)]
pub fn parse_without_fast_path(input: &[u8]) -> Result<Authority, AuthorityError> {
    authority::parse_general(input)
}

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
