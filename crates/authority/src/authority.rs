use core::fmt;
use core::str::FromStr;

use crate::error::{AuthorityError, AuthorityErrorKind as Kind};
use crate::host::{Host, HostName, parse_bracketed, parse_reg_name};

/// A validated, normalised HTTP authority: `host[:port]` without userinfo.
///
/// Parsed from a Host header value, an HTTP/2 `:authority` pseudo-header or the authority
/// of an absolute-form request target. Once built it is normalised: the host is lowercase
/// with no trailing dot, IPv4 and IPv6 addresses are parsed, and the port is a number.
/// Two authorities are equal exactly when they name the same host and the same explicit
/// port; to compare with default ports filled in, use [`Origin`](crate::Origin).
///
/// ```
/// use misdirect_authority::{Authority, Host};
///
/// let a = Authority::parse(b"WWW.Example.COM.:0443").unwrap();
/// assert_eq!(a.host().to_string(), "www.example.com");
/// assert_eq!(a.port(), Some(443));
/// assert_eq!(a.to_string(), "www.example.com:443");
///
/// let v6: Authority = "[2001:db8::1]:8443".parse().unwrap();
/// assert!(matches!(v6.host(), Host::Ipv6(_)));
/// assert_eq!(v6.to_string(), "[2001:db8::1]:8443");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Authority {
    pub(crate) host: Host,
    pub(crate) port: Option<u16>,
}

impl Authority {
    /// Parses `host [":" port]` (RFC 3986 §3.2, RFC 9110 §4.2) with the rules listed in the
    /// crate documentation. Does not allocate for host names of up to 64 bytes.
    ///
    /// ```
    /// use misdirect_authority::{Authority, AuthorityErrorKind};
    ///
    /// assert_eq!(Authority::parse(b"example.com:").unwrap().port(), None);
    /// assert_eq!(Authority::parse(b"user@example.com").unwrap_err().kind(), AuthorityErrorKind::Userinfo);
    /// assert_eq!(Authority::parse(b"[fe80::1%25eth0]").unwrap_err().kind(), AuthorityErrorKind::ZoneId);
    /// ```
    #[inline(always)]
    pub fn parse(input: &[u8]) -> Result<Self, AuthorityError> {
        // The result is built where it is returned: the fast path writes the name straight
        // into its inline buffer, and only what it declines goes to the general parser.
        let mut result = Ok(Authority {
            host: Host::Name(HostName::EMPTY_INLINE),
            port: None,
        });
        if let Ok(authority) = &mut result
            && !crate::fast::parse_into(input, authority)
        {
            result = parse_general(input);
        }
        result
    }

    /// Builds an authority from parts that are already valid.
    ///
    /// ```
    /// use misdirect_authority::{Authority, Host};
    /// use std::net::Ipv4Addr;
    ///
    /// let a = Authority::new(Host::Ipv4(Ipv4Addr::LOCALHOST), Some(8443));
    /// assert_eq!(a.to_string(), "127.0.0.1:8443");
    /// ```
    pub fn new(host: Host, port: Option<u16>) -> Self {
        Self { host, port }
    }

    /// The normalised host.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The explicit port, if the authority had a non-empty one.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The explicit port, or `default` (the scheme's default port) when there is none.
    pub fn port_or(&self, default: u16) -> u16 {
        self.port.unwrap_or(default)
    }

    /// Splits the authority into its host and port.
    pub fn into_parts(self) -> (Host, Option<u16>) {
        (self.host, self.port)
    }
}

impl fmt::Display for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.host, f)?;
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

impl FromStr for Authority {
    type Err = AuthorityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s.as_bytes())
    }
}

impl TryFrom<&str> for Authority {
    type Error = AuthorityError;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::parse(s.as_bytes())
    }
}

impl TryFrom<&[u8]> for Authority {
    type Error = AuthorityError;

    fn try_from(b: &[u8]) -> Result<Self, Self::Error> {
        Self::parse(b)
    }
}

/// The general parser: every input the fast path declines, and the errors.
#[inline(never)]
pub(crate) fn parse_general(input: &[u8]) -> Result<Authority, AuthorityError> {
    parse_authority(input).map_err(|err| refine(input, err))
}

fn parse_authority(input: &[u8]) -> Result<Authority, AuthorityError> {
    if input.first() == Some(&b'[') {
        let (host, end) = parse_bracketed(input)?;
        let port = match &input[end..] {
            [] => None,
            [b':', digits @ ..] => parse_port(digits, end + 1)?,
            _ => return Err(AuthorityError::new(Kind::TrailingGarbage, end)),
        };
        return Ok(Authority { host, port });
    }
    let (host, end) = parse_reg_name(input)?;
    let port = match input.get(end + 1..) {
        Some(digits) => parse_port(digits, end + 1)?,
        None => None,
    };
    Ok(Authority { host, port })
}

/// RFC 3986 §3.2.3: `port = *DIGIT`; empty means none. Leading zeros are accepted and
/// dropped; values above 65535 are rejected.
#[inline]
fn parse_port(digits: &[u8], offset: usize) -> Result<Option<u16>, AuthorityError> {
    if digits.is_empty() {
        return Ok(None);
    }
    let mut value: u32 = 0;
    for (i, &b) in digits.iter().enumerate() {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return Err(AuthorityError::new(Kind::BadPort, offset + i));
        }
        // Saturate just above the range so long runs of digits cannot overflow.
        value = (value * 10 + u32::from(digit)).min(u32::from(u16::MAX) + 1);
    }
    match u16::try_from(value) {
        Ok(port) => Ok(Some(port)),
        Err(_) => Err(AuthorityError::new(Kind::PortOutOfRange, offset)),
    }
}

/// On the failure path only: any `@` in an authority is a userinfo delimiter
/// (RFC 3986 §3.2.1), whatever the scanner tripped over first.
#[cold]
fn refine(input: &[u8], err: AuthorityError) -> AuthorityError {
    match input.iter().position(|&b| b == b'@') {
        Some(at) => AuthorityError::new(Kind::Userinfo, at),
        None => err,
    }
}
