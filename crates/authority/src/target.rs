use core::fmt;

use crate::authority::Authority;
use crate::error::AuthorityError;
use crate::host::Host;
use crate::origin::{Origin, Scheme};

/// The authority a request is for, decided in one place by the rules of RFC 9112 §3.2
/// (HTTP/1.1) and RFC 9113 §8.3.1 (HTTP/2).
///
/// Every server path that needs "which host is this request for?" should go through
/// [`RequestTarget::from_h1`] or [`RequestTarget::from_h2`]: two code paths that normalise
/// differently are how mTLS bypasses happen.
///
/// ```
/// use misdirect_authority::{RequestTarget, TargetErrorKind, TargetSource};
///
/// // HTTP/1.1, origin-form: exactly one Host.
/// let t = RequestTarget::from_h1(None, [&b"Example.com:443"[..]]).unwrap();
/// assert_eq!(t.authority().to_string(), "example.com:443");
/// assert_eq!(t.source(), TargetSource::Host);
///
/// // HTTP/1.1 with two Host lines is a 400.
/// let err = RequestTarget::from_h1(None, [&b"a.example"[..], b"b.example"]).unwrap_err();
/// assert_eq!(err.kind(), TargetErrorKind::DuplicateHost);
///
/// // HTTP/2: `:authority` and a Host naming another host is malformed.
/// let err = RequestTarget::from_h2(Some(b"a.example"), [&b"b.example"[..]]).unwrap_err();
/// assert_eq!(err.kind(), TargetErrorKind::HostMismatch);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RequestTarget {
    authority: Authority,
    scheme: SchemeSeen,
    source: TargetSource,
}

/// What a [`RequestTarget`] knows of the request's scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum SchemeSeen {
    /// The request named none: the connection's (HTTP/1.1 origin-form, RFC 9112 §3.3), or
    /// the caller did not pass `:scheme` on.
    Implied,
    /// The request named this one.
    Named(Scheme),
    /// The request named one (HTTP/2 `:scheme` is mandatory, RFC 9113 §8.3.1), but it was
    /// lost before the target was decided: see [`RequestTarget::scheme_unknown`].
    Unknown,
}

/// Where a [`RequestTarget`]'s authority came from.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TargetSource {
    /// The authority of an HTTP/1.1 absolute-form (or authority-form) request target.
    AbsoluteForm,
    /// The Host header field.
    Host,
    /// The HTTP/2 or HTTP/3 `:authority` pseudo-header field.
    AuthorityPseudo,
}

impl RequestTarget {
    /// Decides the target of an HTTP/1.1 request (RFC 9112 §3.2, §3.2.2).
    ///
    /// `target_authority` is the authority of an absolute-form request target, if the
    /// request line had one; `host_headers` yields the value of every Host field line.
    /// The request must carry exactly one Host line with a valid value, even in absolute
    /// form; when both are present the request target wins and Host is ignored.
    ///
    /// ```
    /// use misdirect_authority::{RequestTarget, TargetSource};
    ///
    /// let t = RequestTarget::from_h1(Some(b"a.example:8443"), [&b"b.example"[..]]).unwrap();
    /// assert_eq!(t.authority().to_string(), "a.example:8443");
    /// assert_eq!(t.source(), TargetSource::AbsoluteForm);
    /// ```
    pub fn from_h1<'a, I>(
        target_authority: Option<&[u8]>,
        host_headers: I,
    ) -> Result<Self, TargetError>
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        let mut hosts = host_headers.into_iter();
        let host = match (hosts.next(), hosts.next()) {
            (Some(host), None) => host,
            (None, _) => return Err(TargetError::new(TargetErrorKind::MissingHost, None)),
            (Some(_), Some(_)) => {
                return Err(TargetError::new(TargetErrorKind::DuplicateHost, None));
            }
        };
        let host = Authority::parse(host)
            .map_err(|e| TargetError::new(TargetErrorKind::InvalidHost, Some(e)));
        match target_authority {
            Some(target) => {
                let authority = Authority::parse(target)
                    .map_err(|e| TargetError::new(TargetErrorKind::InvalidTarget, Some(e)))?;
                // RFC 9112 §3.2: an invalid Host is a 400 even when the target overrides it.
                host?;
                Ok(Self::new(authority, TargetSource::AbsoluteForm))
            }
            None => Ok(Self::new(host?, TargetSource::Host)),
        }
    }

    /// Decides the target of an HTTP/2 (or HTTP/3) request (RFC 9113 §8.3.1).
    ///
    /// `authority_pseudo` is the `:authority` pseudo-header field, if present;
    /// `host_headers` yields every Host field. With `:authority` present, a Host field is
    /// allowed only if it names the same normalised authority; without it, exactly one Host
    /// is required. Neither is a malformed request. Pass `:scheme` on with
    /// [`with_scheme`](Self::with_scheme); without it, the target names no scheme.
    ///
    /// ```
    /// use misdirect_authority::{RequestTarget, TargetErrorKind};
    ///
    /// // An equal Host beside :authority is fine (some proxies send both).
    /// let t = RequestTarget::from_h2(Some(b"a.example"), [&b"A.EXAMPLE."[..]]).unwrap();
    /// assert_eq!(t.authority().to_string(), "a.example");
    ///
    /// let none: [&[u8]; 0] = [];
    /// let err = RequestTarget::from_h2(None, none).unwrap_err();
    /// assert_eq!(err.kind(), TargetErrorKind::MissingAuthority);
    /// ```
    pub fn from_h2<'a, I>(
        authority_pseudo: Option<&[u8]>,
        host_headers: I,
    ) -> Result<Self, TargetError>
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        h2_target(None, authority_pseudo, host_headers)
    }

    /// Records the request's scheme (HTTP/2 `:scheme`, or an absolute-form target's scheme).
    pub fn with_scheme(mut self, scheme: Scheme) -> Self {
        self.scheme = SchemeSeen::Named(scheme);
        self
    }

    /// Records that the request named a scheme that did not reach this crate.
    #[cfg(feature = "http")]
    pub(crate) fn with_scheme_unknown(mut self) -> Self {
        self.scheme = SchemeSeen::Unknown;
        self
    }

    /// The normalised authority the request is for.
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// The normalised host the request is for.
    pub fn host(&self) -> &Host {
        self.authority.host()
    }

    /// The explicit port of the authority, if any.
    pub fn port(&self) -> Option<u16> {
        self.authority.port()
    }

    /// The scheme the request named, if it named one and it is known.
    pub fn scheme(&self) -> Option<Scheme> {
        match self.scheme {
            SchemeSeen::Named(scheme) => Some(scheme),
            SchemeSeen::Implied | SchemeSeen::Unknown => None,
        }
    }

    /// Whether the request named a scheme that is not known here: an HTTP/2 or HTTP/3
    /// request without `:authority`, read by `from_request` or `from_parts`. Such a request
    /// has a `:scheme` (RFC 9113 §8.3.1), but an [`http::Uri`] holds a scheme only beside an
    /// authority, so HTTP/2 libraries drop it. It may be `http` on an `https` listener: a
    /// policy that checks the scheme must not pass it. [`scheme`](Self::scheme) is `None`.
    ///
    /// ```
    /// use misdirect_authority::{RequestTarget, Scheme};
    ///
    /// // HTTP/1.1 origin-form names no scheme: it is the connection's (RFC 9112 §3.3).
    /// let t = RequestTarget::from_h1(None, [&b"a.example"[..]])?;
    /// assert_eq!((t.scheme(), t.scheme_unknown()), (None, false));
    /// assert_eq!(t.with_scheme(Scheme::Https).scheme(), Some(Scheme::Https));
    ///
    /// # #[cfg(feature = "http")] {
    /// // How an HTTP/2 library hands over `:scheme http`, no `:authority`, `host: a.example`:
    /// let req = http::Request::get("/")
    ///     .version(http::Version::HTTP_2)
    ///     .header("host", "a.example")
    ///     .body(())?;
    /// let t = RequestTarget::from_request(&req)?;
    /// assert_eq!((t.scheme(), t.scheme_unknown()), (None, true));
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// [`http::Uri`]: https://docs.rs/http/1/http/uri/struct.Uri.html
    pub fn scheme_unknown(&self) -> bool {
        self.scheme == SchemeSeen::Unknown
    }

    /// Where the authority came from.
    pub fn source(&self) -> TargetSource {
        self.source
    }

    /// The request's origin: its own scheme if it named one and it is known, else
    /// `connection_scheme`.
    ///
    /// ```
    /// use misdirect_authority::{RequestTarget, Scheme};
    ///
    /// let t = RequestTarget::from_h1(None, [&b"a.example:443"[..]]).unwrap();
    /// assert_eq!(t.origin(Scheme::Https).to_string(), "https://a.example");
    /// ```
    pub fn origin(&self, connection_scheme: Scheme) -> Origin {
        Origin::from_authority(self.scheme().unwrap_or(connection_scheme), &self.authority)
    }

    /// Takes the authority out.
    pub fn into_authority(self) -> Authority {
        self.authority
    }

    fn new(authority: Authority, source: TargetSource) -> Self {
        Self {
            authority,
            scheme: SchemeSeen::Implied,
            source,
        }
    }
}

pub(crate) fn h2_target<'a, I>(
    scheme: Option<Scheme>,
    authority_pseudo: Option<&[u8]>,
    host_headers: I,
) -> Result<RequestTarget, TargetError>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    let mut hosts = host_headers.into_iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(TargetError::new(TargetErrorKind::DuplicateHost, None));
    }
    let mut target = match (authority_pseudo, host) {
        (Some(pseudo), host) => {
            let authority = Authority::parse(pseudo)
                .map_err(|e| TargetError::new(TargetErrorKind::InvalidAuthority, Some(e)))?;
            if let Some(host) = host {
                let host = Authority::parse(host)
                    .map_err(|e| TargetError::new(TargetErrorKind::InvalidHost, Some(e)))?;
                if !same_entity(scheme, &host, &authority) {
                    return Err(TargetError::new(TargetErrorKind::HostMismatch, None));
                }
            }
            RequestTarget::new(authority, TargetSource::AuthorityPseudo)
        }
        (None, Some(host)) => {
            let authority = Authority::parse(host)
                .map_err(|e| TargetError::new(TargetErrorKind::InvalidHost, Some(e)))?;
            RequestTarget::new(authority, TargetSource::Host)
        }
        (None, None) => return Err(TargetError::new(TargetErrorKind::MissingAuthority, None)),
    };
    if let Some(scheme) = scheme {
        target.scheme = SchemeSeen::Named(scheme);
    }
    Ok(target)
}

/// Whether Host and `:authority` identify the same entity (RFC 9113 §8.3.1): the same
/// normalised authority, or, when the scheme is known, the same host and effective port.
fn same_entity(scheme: Option<Scheme>, a: &Authority, b: &Authority) -> bool {
    if a == b {
        return true;
    }
    match scheme {
        Some(scheme) => {
            a.host() == b.host()
                && a.port_or(scheme.default_port()) == b.port_or(scheme.default_port())
        }
        None => false,
    }
}

/// Why a request's target could not be decided; every kind is answered with 400.
///
/// ```
/// use misdirect_authority::{RequestTarget, TargetErrorKind, AuthorityErrorKind};
///
/// let err = RequestTarget::from_h1(None, [&b"exa mple.com"[..]]).unwrap_err();
/// assert_eq!(err.kind(), TargetErrorKind::InvalidHost);
/// assert_eq!(err.authority_error().unwrap().kind(), AuthorityErrorKind::InvalidCharacter);
/// assert_eq!(err.kind().code(), "invalid-host");
/// assert_eq!(err.kind().rule(), "RFC 9112 §3.2");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TargetError {
    kind: TargetErrorKind,
    source: Option<AuthorityError>,
}

impl TargetError {
    pub(crate) const fn new(kind: TargetErrorKind, source: Option<AuthorityError>) -> Self {
        Self { kind, source }
    }

    /// Which rule the request broke.
    pub const fn kind(&self) -> TargetErrorKind {
        self.kind
    }

    /// The authority parse error behind an `Invalid*` kind.
    pub const fn authority_error(&self) -> Option<&AuthorityError> {
        self.source.as_ref()
    }
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.kind.description(), self.kind.rule())?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl std::error::Error for TargetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

/// The request-target rule a request broke; see [`TargetError`].
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TargetErrorKind {
    /// HTTP/1.1 request without a Host header field (RFC 9112 §3.2).
    MissingHost,
    /// More than one Host field line (RFC 9112 §3.2; RFC 9110 §7.2 for HTTP/2).
    DuplicateHost,
    /// The Host field value is not a valid authority (RFC 9112 §3.2, RFC 9110 §7.2).
    InvalidHost,
    /// The absolute-form request target's authority is invalid (RFC 9112 §3.2.2).
    InvalidTarget,
    /// HTTP/2 request with neither `:authority` nor Host (RFC 9113 §8.3.1).
    MissingAuthority,
    /// The `:authority` pseudo-header is not a valid authority (RFC 9113 §8.3.1).
    InvalidAuthority,
    /// Host and `:authority` identify different authorities (RFC 9113 §8.3.1).
    HostMismatch,
    /// The request names a scheme without an authority component, or one this crate does
    /// not know (RFC 9113 §8.3.1).
    UnsupportedScheme,
}

impl TargetErrorKind {
    /// A stable machine-readable code for logs and metrics.
    pub const fn code(self) -> &'static str {
        match self {
            Self::MissingHost => "missing-host",
            Self::DuplicateHost => "duplicate-host",
            Self::InvalidHost => "invalid-host",
            Self::InvalidTarget => "invalid-target",
            Self::MissingAuthority => "missing-authority",
            Self::InvalidAuthority => "invalid-authority",
            Self::HostMismatch => "host-authority-mismatch",
            Self::UnsupportedScheme => "unsupported-scheme",
        }
    }

    /// The RFC section the rule comes from.
    pub const fn rule(self) -> &'static str {
        match self {
            Self::MissingHost | Self::DuplicateHost | Self::InvalidHost => "RFC 9112 §3.2",
            Self::InvalidTarget => "RFC 9112 §3.2.2",
            Self::MissingAuthority
            | Self::InvalidAuthority
            | Self::HostMismatch
            | Self::UnsupportedScheme => "RFC 9113 §8.3.1",
        }
    }

    /// A plain-English description.
    pub const fn description(self) -> &'static str {
        match self {
            Self::MissingHost => "request has no Host header",
            Self::DuplicateHost => "request has more than one Host header",
            Self::InvalidHost => "Host header is not a valid authority",
            Self::InvalidTarget => "request target's authority is invalid",
            Self::MissingAuthority => "request has neither :authority nor Host",
            Self::InvalidAuthority => ":authority is not a valid authority",
            Self::HostMismatch => "Host header names a different authority than :authority",
            Self::UnsupportedScheme => "request scheme is not http or https",
        }
    }
}

impl fmt::Display for TargetErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}
