use core::fmt;

/// Why an authority, host name or SNI value was rejected.
///
/// Built only on the failure path: the kind says which rule was broken and
/// [`offset`](AuthorityError::offset) points at the byte where the parser noticed.
///
/// ```
/// use misdirect_authority::{Authority, AuthorityErrorKind};
///
/// let err = Authority::parse(b"example.com:99999").unwrap_err();
/// assert_eq!(err.kind(), AuthorityErrorKind::PortOutOfRange);
/// assert_eq!(err.offset(), 12);
/// assert_eq!(err.to_string(), "invalid authority at byte 12: port is larger than 65535");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AuthorityError {
    kind: AuthorityErrorKind,
    offset: usize,
}

impl AuthorityError {
    pub(crate) const fn new(kind: AuthorityErrorKind, offset: usize) -> Self {
        Self { kind, offset }
    }

    /// Which rule the input broke.
    pub const fn kind(&self) -> AuthorityErrorKind {
        self.kind
    }

    /// The byte offset in the input where the problem was found.
    pub const fn offset(&self) -> usize {
        self.offset
    }
}

impl fmt::Display for AuthorityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid authority at byte {}: {}",
            self.offset,
            self.kind.description()
        )
    }
}

impl std::error::Error for AuthorityError {}

/// The rule an input broke; see [`AuthorityError::kind`].
///
/// Each variant names one rule of RFC 3986 §3.2, RFC 9110 §4.2–4.3, RFC 6066 §3 or this
/// crate's documented policy; `docs/authority.md` maps each to its citation and test.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthorityErrorKind {
    /// The input is empty, or has an empty host (`:443`). RFC 9110 §4.2.1, §4.2.2.
    Empty,
    /// The input carries userinfo (`user@host`). RFC 9110 §4.2.4, RFC 9113 §8.3.1.
    Userinfo,
    /// The port contains something other than digits. RFC 3986 §3.2.3.
    BadPort,
    /// The port is larger than 65535.
    PortOutOfRange,
    /// The bracketed IP literal is not a valid IPv6 address. RFC 3986 §3.2.2.
    BadIpv6,
    /// The IPv6 literal carries a zone identifier (`[fe80::1%25eth0]`); RFC 6874 zones
    /// have no meaning outside the sending host.
    ZoneId,
    /// The IP literal is an `IPvFuture` (`[v1.x]`), which no server can route.
    IpvFuture,
    /// A byte outside ASCII; Host and `:authority` carry A-labels only (RFC 9110 §4.2.3 via
    /// RFC 3986 §3.2.2).
    NonAscii,
    /// An empty label: a leading dot, two dots in a row, or more than one trailing dot.
    EmptyLabel,
    /// A byte that a DNS host name may not contain (RFC 1123 §2.1).
    InvalidCharacter,
    /// A label longer than 63 octets (RFC 1035 §2.3.4).
    LabelTooLong,
    /// A name longer than 253 octets without its trailing dot (RFC 1035 §2.3.4).
    NameTooLong,
    /// Percent-encoding in a host name: no DNS name needs it and decoding it invites
    /// normalisation mismatches.
    PercentEncoding,
    /// Bytes after a complete authority, such as `[::1]x`.
    TrailingGarbage,
    /// A host whose last label is numeric but which is not a dotted-decimal IPv4 address
    /// (`127.1`, `0x7f.0.0.1`, `1.2.3.999`): RFC 3986 §3.2.2 reads these as reg-names, but no
    /// DNS name has a numeric top label (RFC 3696 §2) and browsers read them as addresses,
    /// so accepting them would let two parsers disagree about the host.
    NonCanonicalIpv4,
    /// An SNI value ending in a dot (RFC 6066 §3).
    TrailingDot,
    /// An IP address where a DNS name is required (SNI, RFC 6066 §3; configured host names).
    IpLiteral,
    /// A Unicode name that UTS 46 could not convert to A-labels (configuration only).
    Idna,
    /// An origin whose scheme is not `http` or `https`, or that lacks `://`.
    BadScheme,
}

impl AuthorityErrorKind {
    /// A short plain-English description of the broken rule.
    pub const fn description(self) -> &'static str {
        match self {
            Self::Empty => "the host is empty",
            Self::Userinfo => "userinfo (user@) is not allowed in an http(s) authority",
            Self::BadPort => "port is not a number",
            Self::PortOutOfRange => "port is larger than 65535",
            Self::BadIpv6 => "not a valid IPv6 address",
            Self::ZoneId => "IPv6 zone identifiers are not allowed",
            Self::IpvFuture => "IPvFuture literals are not supported",
            Self::NonAscii => "non-ASCII byte; host names must be sent as A-labels",
            Self::EmptyLabel => "empty label in host name",
            Self::InvalidCharacter => "character not allowed in a host name",
            Self::LabelTooLong => "label longer than 63 bytes",
            Self::NameTooLong => "host name longer than 253 bytes",
            Self::PercentEncoding => "percent-encoding is not allowed in a host name",
            Self::TrailingGarbage => "unexpected bytes after the authority",
            Self::NonCanonicalIpv4 => "numeric host that is not a dotted-decimal IPv4 address",
            Self::TrailingDot => "server name must not end with a dot",
            Self::IpLiteral => "an IP address is not allowed here, only a DNS name",
            Self::Idna => "name cannot be converted to A-labels (UTS 46)",
            Self::BadScheme => "origin must be http:// or https:// followed by an authority",
        }
    }
}

impl fmt::Display for AuthorityErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}
