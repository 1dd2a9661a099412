//! Render `421 Misdirected Request` and `400 Bad Request` answers, and encode and decode
//! the HTTP/2 `ORIGIN` frame.
//!
//! `misdirect-response` is the last step of a misdirected request's path: once a policy has
//! decided that a request is not for this connection (RFC 9110 §15.5.20) or names no valid
//! authority (RFC 9112 §3.2, RFC 9113 §8.3.1), [`render`] turns the decision's reason into a
//! response the client can act on. [`OriginFrame`] lets a server tell HTTP/2 clients up front
//! which origins a connection serves (RFC 8336), so that fewer requests are misdirected at all.
//!
//! # What it does
//! - [`render`]: a complete `http::Response<Bytes>` negotiated on `Accept` (RFC 9110
//!   §12.5.1, q-values honoured): `application/problem+json` (RFC 9457),
//!   `application/json`, `text/html` with advice for a visitor, or `text/plain`. It always
//!   sets `Content-Type`, `Content-Length`, `Cache-Control: no-store` and `Vary: Accept`, and
//!   by default asks HTTP/1.x clients to close the connection after a 421.
//! - [`RenderReason`]: the small trait through which any reason is rendered — a stable
//!   machine code and a plain-English description. [`StaticReason`] is a ready-made one.
//! - [`RenderOptions`]: whether the body names the reason, whether to send
//!   `Connection: close`, and the request's method (HEAD) and HTTP version.
//! - [`MediaType::negotiate`]: the negotiation on its own, allocation-free.
//! - [`OriginFrame`]: the RFC 8336 `ORIGIN` frame, as a payload (for HTTP/2 libraries that
//!   frame extension payloads themselves) or as a complete frame with its 9-byte header (for
//!   servers that write raw frames; the `h2` crate cannot send `ORIGIN`).
//! - [`SettingsSplice`]: where in the bytes an HTTP/2 server writes such a frame can go —
//!   right after the server's first SETTINGS frame (RFC 9113 §3.4), found across any
//!   chunking, sans-IO.
//!
//! # What it does not do
//! It decides nothing: which status to send and why is the caller's business (in this
//! workspace, `misdirect-coalesce`). It depends only on `http` and `bytes`: no serde, no I/O,
//! no validation of `ORIGIN` entries as origins — an entry is checked to be visible ASCII
//! only; parse it with `misdirect_authority::Origin::parse` or your own parser. A proxy must
//! never send 421 (RFC 9110 §15.5.20); nothing here can tell whether you are one.
//!
//! # Example
//! ```
//! use http::{HeaderMap, StatusCode, header};
//! use misdirect_response::{RenderOptions, StaticReason, render};
//!
//! let reason = StaticReason::new(
//!     "client-cert-required",
//!     "the requested host requires a client certificate that this connection did not present",
//! );
//! let mut request_headers = HeaderMap::new();
//! request_headers.insert(header::ACCEPT, "application/problem+json".parse()?);
//!
//! let response = render(
//!     StatusCode::MISDIRECTED_REQUEST,
//!     &reason,
//!     &request_headers,
//!     &RenderOptions::new(),
//! );
//! assert_eq!(response.status(), 421);
//! assert_eq!(response.headers()[header::CONTENT_TYPE], "application/problem+json");
//! assert_eq!(response.headers()[header::CONNECTION], "close");
//! assert!(response.body().starts_with(br#"{"type":"about:blank","title":"Misdirected Request","status":421"#));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Features
//! None: the crate has no optional parts.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::exhaustive_enums, clippy::exhaustive_structs)]

mod error;
mod escape;
mod negotiate;
mod origin_frame;
mod reason;
mod render;
mod splice;

pub use error::{OriginFrameError, OriginFrameErrorKind};
pub use negotiate::MediaType;
pub use origin_frame::{
    FRAME_HEADER_LEN, MAX_ENTRY_LEN, MAX_PAYLOAD_LEN, ORIGIN_FRAME_TYPE, OriginFrame,
};
pub use reason::{RenderReason, StaticReason};
pub use render::{PreparedRefusal, RenderOptions, render};
pub use splice::{SettingsSplice, SpliceState};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
