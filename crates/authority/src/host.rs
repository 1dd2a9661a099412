use core::fmt;
use core::hash::{Hash, Hasher};
use core::str::FromStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::chars::{AT, CLASS, COLON, DOT, NAME, NON_ASCII, PERCENT, UPPER};
use crate::error::{AuthorityError, AuthorityErrorKind as Kind};

/// The longest DNS name, in octets, without its trailing dot (RFC 1035 §2.3.4).
pub const MAX_NAME_LEN: usize = 253;

/// The longest DNS label, in octets (RFC 1035 §2.3.4).
pub const MAX_LABEL_LEN: usize = 63;

/// Names up to this length are stored inline, without a heap allocation.
const INLINE_CAP: usize = 62;

/// The host of an authority: a DNS name, an IPv4 address or an IPv6 address
/// (RFC 3986 §3.2.2).
///
/// ```
/// use misdirect_authority::Host;
/// use std::net::Ipv6Addr;
///
/// let host = Host::parse(b"[2001:DB8::1]").unwrap();
/// assert_eq!(host, Host::Ipv6("2001:db8::1".parse::<Ipv6Addr>().unwrap()));
/// assert_eq!(host.to_string(), "[2001:db8::1]");
///
/// let host: Host = "Example.COM.".parse().unwrap();
/// assert_eq!(host.as_name().unwrap().as_str(), "example.com");
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Host {
    /// A DNS name (RFC 3986 reg-name restricted to LDH labels plus `_`).
    Name(HostName),
    /// A dotted-decimal IPv4 address.
    Ipv4(Ipv4Addr),
    /// A bracketed IPv6 address (without zone identifier).
    Ipv6(Ipv6Addr),
}

impl Host {
    /// Parses the `host` part of an authority: a name, dotted-decimal IPv4, or IPv6 in
    /// brackets. No port, no userinfo. A single trailing dot on a name is removed.
    ///
    /// ```
    /// use misdirect_authority::{Host, AuthorityErrorKind};
    ///
    /// assert!(matches!(Host::parse(b"192.0.2.1"), Ok(Host::Ipv4(_))));
    /// let err = Host::parse(b"example.com:443").unwrap_err();
    /// assert_eq!(err.kind(), AuthorityErrorKind::TrailingGarbage);
    /// ```
    pub fn parse(input: &[u8]) -> Result<Self, AuthorityError> {
        if input.first() == Some(&b'[') {
            let (host, end) = parse_bracketed(input)?;
            if end != input.len() {
                return Err(AuthorityError::new(Kind::TrailingGarbage, end));
            }
            return Ok(host);
        }
        let end = scan_reg_name(input)?;
        if end != input.len() {
            return Err(AuthorityError::new(Kind::TrailingGarbage, end));
        }
        finish_reg_name(input)
    }

    /// The DNS name, if this host is one.
    pub fn as_name(&self) -> Option<&HostName> {
        match self {
            Self::Name(name) => Some(name),
            _ => None,
        }
    }

    /// The IP address, if this host is one.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Self::Name(_) => None,
            Self::Ipv4(v4) => Some(IpAddr::V4(*v4)),
            Self::Ipv6(v6) => Some(IpAddr::V6(*v6)),
        }
    }

    /// Whether this host is an IP address.
    pub fn is_ip(&self) -> bool {
        !matches!(self, Self::Name(_))
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Name(name) => f.write_str(name.as_str()),
            Self::Ipv4(v4) => v4.fmt(f),
            Self::Ipv6(v6) => write!(f, "[{v6}]"),
        }
    }
}

impl FromStr for Host {
    type Err = AuthorityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s.as_bytes())
    }
}

impl TryFrom<&str> for Host {
    type Error = AuthorityError;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::parse(s.as_bytes())
    }
}

impl From<IpAddr> for Host {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self::Ipv4(v4),
            IpAddr::V6(v6) => Self::Ipv6(v6),
        }
    }
}

impl From<HostName> for Host {
    fn from(name: HostName) -> Self {
        Self::Name(name)
    }
}

/// A validated DNS host name: ASCII lowercase, no trailing dot, labels of 1–63 bytes made
/// of `a-z`, `0-9`, `-` and `_`, at most 253 bytes in all, and not numeric in its last label.
///
/// Case-insensitive by construction: every constructor folds to lowercase, so `Eq` and
/// `Hash` compare names as DNS does (RFC 4343). Names of up to 62 bytes are stored inline.
///
/// ```
/// use misdirect_authority::HostName;
///
/// let a = HostName::parse(b"WWW.Example.com.").unwrap();
/// let b: HostName = "www.example.com".parse().unwrap();
/// assert_eq!(a, b);
/// assert_eq!(a.as_str(), "www.example.com");
/// ```
#[derive(Clone)]
pub struct HostName(Repr);

#[derive(Clone)]
enum Repr {
    Inline { len: u8, bytes: [u8; INLINE_CAP] },
    Heap(Box<str>),
}

impl HostName {
    /// Parses an ASCII DNS name, as found in configuration or a Host header without port.
    /// Case is folded and a single trailing dot removed; IP addresses are rejected
    /// ([`AuthorityErrorKind::IpLiteral`](crate::AuthorityErrorKind::IpLiteral)).
    ///
    /// ```
    /// use misdirect_authority::{HostName, AuthorityErrorKind};
    ///
    /// assert_eq!(HostName::parse(b"API.example.net").unwrap().as_str(), "api.example.net");
    /// assert_eq!(HostName::parse(b"10.0.0.1").unwrap_err().kind(), AuthorityErrorKind::IpLiteral);
    /// ```
    pub fn parse(input: &[u8]) -> Result<Self, AuthorityError> {
        let end = scan_reg_name(input)?;
        if end != input.len() {
            return Err(AuthorityError::new(Kind::InvalidCharacter, end));
        }
        match finish_reg_name(input)? {
            Host::Name(name) => Ok(name),
            _ => Err(AuthorityError::new(Kind::IpLiteral, 0)),
        }
    }

    /// Parses the TLS `server_name` (SNI) value, RFC 6066 §3: an ASCII DNS name with no
    /// trailing dot; IP literals are not permitted.
    ///
    /// ```
    /// use misdirect_authority::{HostName, AuthorityErrorKind};
    ///
    /// assert_eq!(HostName::from_sni(b"A.example").unwrap().as_str(), "a.example");
    /// assert_eq!(HostName::from_sni(b"a.example.").unwrap_err().kind(), AuthorityErrorKind::TrailingDot);
    /// assert_eq!(HostName::from_sni(b"192.0.2.1").unwrap_err().kind(), AuthorityErrorKind::IpLiteral);
    /// ```
    pub fn from_sni(input: &[u8]) -> Result<Self, AuthorityError> {
        if input.last() == Some(&b'.') && !input.is_empty() {
            return Err(AuthorityError::new(Kind::TrailingDot, input.len() - 1));
        }
        Self::parse(input)
    }

    /// Parses a host name written in configuration, where Unicode is welcome: a name with
    /// non-ASCII characters is converted to A-labels with UTS 46 (strict: STD3 rules, DNS
    /// length checks, no transitional mapping), then validated like [`HostName::parse`].
    /// Never use this on request data: Host and `:authority` must already be A-labels.
    ///
    /// ```
    /// use misdirect_authority::HostName;
    ///
    /// let name = HostName::from_config("Bücher.example").unwrap();
    /// assert_eq!(name.as_str(), "xn--bcher-kva.example");
    /// ```
    #[cfg(feature = "idna")]
    pub fn from_config(input: &str) -> Result<Self, AuthorityError> {
        if input.is_ascii() {
            return Self::parse(input.as_bytes());
        }
        let ascii = idna::domain_to_ascii_strict(input.trim_end_matches('.'))
            .map_err(|_| AuthorityError::new(Kind::Idna, 0))?;
        Self::parse(ascii.as_bytes())
    }

    /// The name as a lowercase ASCII string.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Inline { len, bytes } => core::str::from_utf8(&bytes[..*len as usize])
                // Invariant: only ASCII bytes that passed the scanner are stored.
                .expect("host names are ASCII"),
            Repr::Heap(s) => s,
        }
    }

    /// The name as lowercase ASCII bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => &bytes[..*len as usize],
            Repr::Heap(s) => s.as_bytes(),
        }
    }

    /// The name's length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Always false: a host name has at least one label. Present for API symmetry.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The labels from left to right.
    ///
    /// ```
    /// use misdirect_authority::HostName;
    ///
    /// let name = HostName::parse(b"a.b.example").unwrap();
    /// assert_eq!(name.labels().collect::<Vec<_>>(), ["a", "b", "example"]);
    /// ```
    pub fn labels(&self) -> impl DoubleEndedIterator<Item = &str> {
        self.as_str().split('.')
    }

    /// The name without its left-most label, or `None` for a single-label name.
    /// This is the part a wildcard certificate name `*.parent` must equal.
    ///
    /// ```
    /// use misdirect_authority::HostName;
    ///
    /// let name = HostName::parse(b"www.example.com").unwrap();
    /// assert_eq!(name.parent(), Some("example.com"));
    /// assert_eq!(HostName::parse(b"localhost").unwrap().parent(), None);
    /// ```
    pub fn parent(&self) -> Option<&str> {
        let s = self.as_str();
        s.find('.').map(|dot| &s[dot + 1..])
    }

    /// Builds a name from bytes the scanner accepted (no trailing dot, not yet folded).
    fn from_validated(name: &[u8]) -> Self {
        if name.len() <= INLINE_CAP {
            let mut bytes = [0u8; INLINE_CAP];
            bytes[..name.len()].copy_from_slice(name);
            bytes[..name.len()].make_ascii_lowercase();
            Self(Repr::Inline {
                // Invariant: name.len() <= INLINE_CAP < 256.
                len: name.len() as u8,
                bytes,
            })
        } else {
            let lower = name.to_ascii_lowercase();
            // Invariant: the scanner admits ASCII only.
            let s = String::from_utf8(lower).expect("host names are ASCII");
            Self(Repr::Heap(s.into_boxed_str()))
        }
    }
}

impl PartialEq for HostName {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for HostName {}

impl Hash for HostName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl PartialOrd for HostName {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for HostName {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl fmt::Debug for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AsRef<str> for HostName {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl FromStr for HostName {
    type Err = AuthorityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s.as_bytes())
    }
}

impl TryFrom<&str> for HostName {
    type Error = AuthorityError;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::parse(s.as_bytes())
    }
}

impl TryFrom<&[u8]> for HostName {
    type Error = AuthorityError;

    fn try_from(b: &[u8]) -> Result<Self, Self::Error> {
        Self::parse(b)
    }
}

/// Scans a reg-name or IPv4 host from the start of `input`, stopping at `:` or the end.
/// Checks every byte and every label but the last; returns where it stopped.
#[inline]
pub(crate) fn scan_reg_name(input: &[u8]) -> Result<usize, AuthorityError> {
    let mut label_start = 0;
    let mut i = 0;
    while i < input.len() {
        match CLASS[input[i] as usize] {
            NAME | UPPER => {}
            DOT => {
                let label_len = i - label_start;
                if label_len == 0 {
                    return Err(AuthorityError::new(Kind::EmptyLabel, i));
                }
                if label_len > MAX_LABEL_LEN {
                    return Err(AuthorityError::new(Kind::LabelTooLong, label_start));
                }
                label_start = i + 1;
            }
            COLON => return Ok(i),
            class => return Err(AuthorityError::new(reject_kind(class), i)),
        }
        i += 1;
    }
    Ok(i)
}

#[cold]
fn reject_kind(class: u8) -> Kind {
    match class {
        AT => Kind::Userinfo,
        PERCENT => Kind::PercentEncoding,
        NON_ASCII => Kind::NonAscii,
        _ => Kind::InvalidCharacter,
    }
}

/// Finishes a host that [`scan_reg_name`] accepted in full: strips one trailing dot, checks
/// the last label and the total length, and tells names from IPv4 addresses.
#[inline]
pub(crate) fn finish_reg_name(host: &[u8]) -> Result<Host, AuthorityError> {
    let name = match host {
        [] => return Err(AuthorityError::new(Kind::Empty, 0)),
        [rest @ .., b'.'] => rest,
        _ => host,
    };
    if name.is_empty() {
        return Err(AuthorityError::new(Kind::EmptyLabel, 0));
    }
    let last_start = memrchr_dot(name).map_or(0, |dot| dot + 1);
    let last = &name[last_start..];
    if last.len() > MAX_LABEL_LEN {
        return Err(AuthorityError::new(Kind::LabelTooLong, last_start));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(AuthorityError::new(Kind::NameTooLong, MAX_NAME_LEN));
    }
    if is_numeric_label(last) {
        return match parse_ipv4_dotted(name) {
            Some(v4) => Ok(Host::Ipv4(v4)),
            None => Err(AuthorityError::new(Kind::NonCanonicalIpv4, 0)),
        };
    }
    Ok(Host::Name(HostName::from_validated(name)))
}

/// Parses `[IPv6]` at the start of `input`; returns the host and the index after `]`.
pub(crate) fn parse_bracketed(input: &[u8]) -> Result<(Host, usize), AuthorityError> {
    let close = match input.iter().position(|&b| b == b']') {
        Some(close) => close,
        None => return Err(AuthorityError::new(Kind::BadIpv6, input.len())),
    };
    let literal = &input[1..close];
    match literal.first() {
        Some(b'v' | b'V') => return Err(AuthorityError::new(Kind::IpvFuture, 1)),
        None => return Err(AuthorityError::new(Kind::BadIpv6, 1)),
        _ => {}
    }
    for (i, &b) in literal.iter().enumerate() {
        match b {
            b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' | b':' | b'.' => {}
            b'%' => return Err(AuthorityError::new(Kind::ZoneId, 1 + i)),
            0x80.. => return Err(AuthorityError::new(Kind::NonAscii, 1 + i)),
            _ => return Err(AuthorityError::new(Kind::BadIpv6, 1 + i)),
        }
    }
    let text = core::str::from_utf8(literal).map_err(|_| AuthorityError::new(Kind::NonAscii, 1))?;
    match text.parse::<Ipv6Addr>() {
        Ok(v6) => Ok((Host::Ipv6(v6), close + 1)),
        Err(_) => Err(AuthorityError::new(Kind::BadIpv6, 1)),
    }
}

fn memrchr_dot(bytes: &[u8]) -> Option<usize> {
    bytes.iter().rposition(|&b| b == b'.')
}

/// A label that a browser's host parser would read as a number: decimal digits, or `0x`
/// followed by hex digits (the WHATWG URL Standard's "ends in a number" test).
fn is_numeric_label(label: &[u8]) -> bool {
    match label {
        [] => false,
        [b'0', b'x' | b'X', hex @ ..] => hex.iter().all(u8::is_ascii_hexdigit),
        digits => digits.iter().all(u8::is_ascii_digit),
    }
}

/// RFC 3986 §3.2.2 `IPv4address`: four `dec-octet`s, each `0`–`255` without leading zeros.
fn parse_ipv4_dotted(input: &[u8]) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = input.split(|&b| b == b'.');
    for octet in &mut octets {
        let part = parts.next()?;
        let value = match part {
            [d] if d.is_ascii_digit() => u16::from(d - b'0'),
            [b'1'..=b'9', rest @ ..] if rest.len() <= 2 && rest.iter().all(u8::is_ascii_digit) => {
                part.iter()
                    .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'))
            }
            _ => return None,
        };
        *octet = u8::try_from(value).ok()?;
    }
    match parts.next() {
        None => Some(Ipv4Addr::from(octets)),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_and_heap_names_compare_alike() {
        let long = format!("{}.example", "a".repeat(60));
        let a = HostName::parse(long.as_bytes()).unwrap();
        let b = HostName::parse(long.to_ascii_uppercase().as_bytes()).unwrap();
        assert!(matches!(a.0, Repr::Heap(_)));
        assert_eq!(a, b);
        assert_eq!(a.as_str(), long);
        let short = HostName::parse(b"Short.Example").unwrap();
        assert!(matches!(short.0, Repr::Inline { .. }));
        assert_eq!(short.as_str(), "short.example");
    }

    #[test]
    fn numeric_labels() {
        for yes in ["0", "1", "255", "0x", "0x7f", "0XAB", "999999"] {
            assert!(is_numeric_label(yes.as_bytes()), "{yes}");
        }
        for no in ["", "a", "0x7g", "1a", "x1", "-1"] {
            assert!(!is_numeric_label(no.as_bytes()), "{no}");
        }
    }

    #[test]
    fn dotted_decimal() {
        assert_eq!(parse_ipv4_dotted(b"0.0.0.0"), Some(Ipv4Addr::UNSPECIFIED));
        assert_eq!(
            parse_ipv4_dotted(b"255.255.255.255"),
            Some(Ipv4Addr::BROADCAST)
        );
        for bad in [
            "256.0.0.1",
            "01.2.3.4",
            "1.2.3",
            "1.2.3.4.5",
            "1..2.3",
            "1.2.3.",
            "1000.1.1.1",
        ] {
            assert_eq!(parse_ipv4_dotted(bad.as_bytes()), None, "{bad}");
        }
    }
}
