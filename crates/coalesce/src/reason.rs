use core::fmt;

use http::StatusCode;
use misdirect_authority::TargetErrorKind;
use misdirect_response::RenderReason;

/// Why a request is not served on this connection: the first rule of the server decision
/// (`docs/design.md`, "Server decision") that failed, or the request-target rule a
/// malformed request broke.
///
/// Each reason has a stable [`code`](Reason::code) for logs and metrics, a plain-English
/// [`description`](Reason::description) and the [`rule`](Reason::rule) it enforces.
///
/// ```
/// use misdirect_coalesce::Reason;
///
/// let r = Reason::ClientCertRequired;
/// assert_eq!(r.code(), "client-cert-required");
/// assert_eq!(r.status(), http::StatusCode::MISDIRECTED_REQUEST);
/// assert!(r.to_string().contains("client certificate"));
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// No virtual host serves the requested host (RFC 9110 §15.5.20).
    UnknownHost,
    /// The listener does not serve the authority's port (RFC 9110 §4.3.3, rule (a)).
    PortNotServed,
    /// The request's scheme is not the listener's, e.g. `http` on a TLS listener (rule (a)).
    SchemeNotServed,
    /// The certificate presented on this connection does not cover the host (RFC 9110 §7.4,
    /// RFC 9113 §9.1.1, rule (c)).
    CertificateDoesNotCover,
    /// Strict policy: the host belongs to another virtual host than the SNI's.
    SniVhostDiffers,
    /// Strict policy: the connection sent no SNI and the host is not the default
    /// virtual host's.
    NoSni,
    /// The virtual host requires a client certificate and this connection has none
    /// (rule (d); never relaxed).
    ClientCertRequired,
    /// The connection's client certificate was verified by another virtual host's trust
    /// anchors, not this one's (rule (d); never relaxed).
    ClientCertOtherAnchors,
    /// The connection's TLS version is below the virtual host's minimum (rule (d)).
    TlsVersionBelowMinimum,
    /// The connection's ALPN protocol is not allowed by the virtual host (rule (d)).
    AlpnNotAllowed,
    /// The request's target is malformed (400): which request-target rule it broke.
    BadRequest(TargetErrorKind),
}

impl Reason {
    /// The stable machine-readable code, e.g. `client-cert-required`.
    pub const fn code(self) -> &'static str {
        match self {
            Self::UnknownHost => "unknown-host",
            Self::PortNotServed => "port-not-served",
            Self::SchemeNotServed => "scheme-not-served",
            Self::CertificateDoesNotCover => "certificate-does-not-cover",
            Self::SniVhostDiffers => "sni-vhost-differs",
            Self::NoSni => "no-sni",
            Self::ClientCertRequired => "client-cert-required",
            Self::ClientCertOtherAnchors => "client-cert-other-anchors",
            Self::TlsVersionBelowMinimum => "tls-version-below-minimum",
            Self::AlpnNotAllowed => "alpn-not-allowed",
            Self::BadRequest(kind) => kind.code(),
        }
    }

    /// A plain-English sentence fragment for people: what was wrong, never which other
    /// virtual hosts exist.
    pub const fn description(self) -> &'static str {
        match self {
            Self::UnknownHost => "this server is not configured for the requested host",
            Self::PortNotServed => "this server does not serve the requested port",
            Self::SchemeNotServed => "this connection does not serve the requested scheme",
            Self::CertificateDoesNotCover => {
                "the certificate on this connection does not cover the requested host"
            }
            Self::SniVhostDiffers => {
                "the requested host must be reached over a connection made for it (TLS server name)"
            }
            Self::NoSni => {
                "the requested host must be reached over a connection that names it (TLS server name)"
            }
            Self::ClientCertRequired => {
                "the requested host requires a client certificate that this connection did not present"
            }
            Self::ClientCertOtherAnchors => {
                "the client certificate on this connection was not verified for the requested host"
            }
            Self::TlsVersionBelowMinimum => {
                "the requested host requires a newer TLS version than this connection uses"
            }
            Self::AlpnNotAllowed => "the requested host does not allow this connection's protocol",
            Self::BadRequest(kind) => kind.description(),
        }
    }

    /// The rule this reason enforces: its id as listed in `docs/design.md` ("Server
    /// decision": `(a)`, `(b)`, `(c)`, `(d)` or `strict policy`) and an RFC section; for a
    /// 400, the request-target rule's RFC section.
    pub const fn rule(self) -> &'static str {
        match self {
            Self::UnknownHost => "(b) RFC 9110 §15.5.20",
            Self::PortNotServed | Self::SchemeNotServed => "(a) RFC 9110 §4.3.3",
            Self::CertificateDoesNotCover => "(c) RFC 9110 §7.4, RFC 9113 §9.1.1",
            Self::SniVhostDiffers | Self::NoSni => "strict policy, RFC 9110 §15.5.20",
            Self::ClientCertRequired
            | Self::ClientCertOtherAnchors
            | Self::TlsVersionBelowMinimum
            | Self::AlpnNotAllowed => "(d) RFC 9110 §15.5.20",
            Self::BadRequest(kind) => kind.rule(),
        }
    }

    /// The status this reason is answered with: 400 for malformed targets, else 421.
    pub const fn status(self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::MISDIRECTED_REQUEST,
        }
    }

    /// Whether this is one of the client-certificate rules that no policy level and no
    /// `warn_only` relaxes.
    pub const fn is_client_cert(self) -> bool {
        matches!(
            self,
            Self::ClientCertRequired | Self::ClientCertOtherAnchors
        )
    }

    /// Every reason but the 400s, for documentation and metrics tables.
    pub const MISDIRECTED: [Reason; 10] = [
        Self::UnknownHost,
        Self::PortNotServed,
        Self::SchemeNotServed,
        Self::CertificateDoesNotCover,
        Self::SniVhostDiffers,
        Self::NoSni,
        Self::ClientCertRequired,
        Self::ClientCertOtherAnchors,
        Self::TlsVersionBelowMinimum,
        Self::AlpnNotAllowed,
    ];
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

impl RenderReason for Reason {
    fn code(&self) -> &str {
        Reason::code(*self)
    }

    fn description(&self) -> &str {
        Reason::description(*self)
    }
}
