//! Which names a certificate covers, which virtual host or certificate serves a name, and
//! where certificates and virtual hosts disagree.
//!
//! # What it does
//! - [`DnsPattern`]: a presented DNS-ID (`example.com`, `*.example.com`), validated per
//!   RFC 9525 §6.3 and RFC 5280 §4.2.1.6; [`Pattern`] adds IP addresses.
//! - [`Identities`]: the subjectAltName dNSName and iPAddress entries of a DER certificate
//!   (parsed with `x509-parser`), the common name only under [`LegacyCn::Allow`];
//!   unusable entries are reported as [`SanProblem`]s. [`Identities::covers`] applies the
//!   matching rules in one or two hash probes.
//! - [`HostIndex`]: exact, wildcard and IP patterns to values, for a million names:
//!   exact entry first, else the wildcard for the parent; duplicates are a build error.
//! - [`Coverage`]: names certificates cover that no virtual host serves (coalescing clients
//!   get 421 there), served names no certificate covers, partly served wildcards and shared
//!   certificates.
//! - `SniResolver` (feature `rustls`): a `rustls::server::ResolvesServerCert` with
//!   wildcards and a default certificate, which tells which entry it chose.
//!
//! # The rules
//! A wildcard is only the whole left-most label, covers exactly one label, never its own
//! parent, never a parent with fewer than two labels, and (feature `psl`) never a public
//! suffix. Names compare ignoring ASCII case; IP hosts match iPAddress entries octet for
//! octet. The workspace's `docs/certmatch.md` cites each rule and compares with
//! rustls-webpki, Chromium, nginx and Caddy.
//!
//! # What it does not do
//! No chain building, signature or validity checks, name constraints or certificate-profile
//! lints: pair it with a verifier (rustls-webpki) where trust matters. No I/O.
//!
//! # Example
//! ```
//! use misdirect_authority::Host;
//! use misdirect_certmatch::{HostIndex, Identities, Pattern};
//!
//! let ids = Identities::from_patterns(["*.example.com".parse()?, "example.com".parse()?]);
//! assert!(ids.covers(&"www.example.com".parse::<Host>()?));
//! assert!(!ids.covers(&"a.b.example.com".parse::<Host>()?));
//!
//! let vhosts = HostIndex::build([
//!     ("example.com".parse::<Pattern>()?, "apex"),
//!     ("*.example.com".parse()?, "tenants"),
//! ])?;
//! assert_eq!(vhosts.lookup(&"shop.example.com".parse::<Host>()?), Some(&"tenants"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Features
//! - `psl` (default): the public-suffix rule for wildcards, from the `psl` crate.
//! - `idna`: `DnsPattern::from_config`, for names written in configuration with Unicode
//!   labels (UTS 46, through `misdirect-authority`'s `idna` feature).
//! - `rustls`: `SniResolver`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::exhaustive_enums, clippy::exhaustive_structs)]

mod chars;
mod coverage;
mod error;
mod identities;
mod index;
mod pattern;
mod psl;
#[cfg(feature = "rustls")]
mod resolver;
mod table;
mod wildcard;

pub use coverage::{CertId, Certificate, Coverage, Finding, VirtualHost};
pub use error::{Duplicate, Error, ErrorKind};
pub use identities::{Identities, LegacyCn, SanProblem, Source};
pub use index::{HostIndex, HostIndexBuilder, LookupAll, Match, MatchKind, PatternRef};
pub use pattern::{DnsPattern, Pattern};
#[cfg(feature = "rustls")]
pub use resolver::{Choice, Chosen, SniResolver, SniResolverBuilder};

/// The README's examples run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
