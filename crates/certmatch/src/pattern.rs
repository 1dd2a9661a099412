use core::fmt;
use core::str::FromStr;
use std::net::IpAddr;

use misdirect_authority::{Host, HostName, MAX_LABEL_LEN, MAX_NAME_LEN};

use crate::chars::{CLASS, DIGIT, DOT, HYPHEN, LOWER, NON_ASCII, STAR, UPPER};
use crate::error::{Error, ErrorKind as Kind};
use crate::psl;

/// A presented DNS identifier (DNS-ID) as a certificate or a virtual host carries it:
/// `www.example.com`, or a wildcard `*.example.com`.
///
/// Validated per RFC 9525 §6.3 and RFC 5280 §4.2.1.6: LDH labels of 1–63 bytes, at most
/// 253 bytes, no trailing dot; `*` only as the whole left-most label and followed by at
/// least two labels; the last label not numeric. Case is folded to lowercase, so `Eq` and
/// `Hash` compare patterns as DNS does (RFC 4343).
///
/// ```
/// use misdirect_authority::HostName;
/// use misdirect_certmatch::DnsPattern;
///
/// let pattern = DnsPattern::parse(b"*.Example.com")?;
/// assert_eq!(pattern.as_str(), "*.example.com");
/// assert!(pattern.is_wildcard());
/// assert!(pattern.matches(&HostName::parse(b"www.example.com")?));
/// assert!(!pattern.matches(&HostName::parse(b"a.b.example.com")?));
/// assert!(!pattern.matches(&HostName::parse(b"example.com")?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DnsPattern {
    text: Box<str>,
}

/// What the scanner learnt about a valid pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shape {
    /// The pattern starts with `*.`.
    pub(crate) wildcard: bool,
}

impl DnsPattern {
    /// Parses a presented DNS-ID exactly as a certificate's dNSName must spell it (RFC 5280
    /// §4.2.1.6, RFC 9525 §6.3). ASCII case is folded; anything else invalid is an error,
    /// and an invalid pattern never matches anything.
    ///
    /// ```
    /// use misdirect_certmatch::{DnsPattern, ErrorKind};
    ///
    /// assert_eq!(DnsPattern::parse(b"WWW.example.com")?.as_str(), "www.example.com");
    /// assert_eq!(DnsPattern::parse(b"*.com").unwrap_err().kind(), ErrorKind::WildcardTooShallow);
    /// assert_eq!(DnsPattern::parse(b"a.*.com").unwrap_err().kind(), ErrorKind::WildcardNotLeftmost);
    /// assert_eq!(DnsPattern::parse(b"foo_bar.com").unwrap_err().kind(), ErrorKind::InvalidCharacter);
    /// # Ok::<(), misdirect_certmatch::Error>(())
    /// ```
    pub fn parse(input: &[u8]) -> Result<Self, Error> {
        validate(input)?;
        let mut text = input.to_vec();
        text.make_ascii_lowercase();
        // Invariant: `validate` admits ASCII bytes only.
        let text = String::from_utf8(text).expect("validated patterns are ASCII");
        Ok(Self {
            text: text.into_boxed_str(),
        })
    }

    /// Parses a pattern written in configuration: like [`DnsPattern::parse`], but one
    /// trailing dot is removed first, as for host names (RFC 1034 §3.1 absolute names).
    ///
    /// ```
    /// use misdirect_certmatch::DnsPattern;
    ///
    /// assert_eq!(DnsPattern::parse_config("*.Example.com.")?.as_str(), "*.example.com");
    /// # Ok::<(), misdirect_certmatch::Error>(())
    /// ```
    pub fn parse_config(input: &str) -> Result<Self, Error> {
        let bytes = input.as_bytes();
        match bytes.split_last() {
            Some((b'.', rest)) if !rest.is_empty() => Self::parse(rest),
            _ => Self::parse(bytes),
        }
    }

    /// The exact (non-wildcard) pattern for a host name, if the name is a valid DNS-ID
    /// (host names may carry `_`, certificate names may not).
    ///
    /// ```
    /// use misdirect_authority::HostName;
    /// use misdirect_certmatch::DnsPattern;
    ///
    /// let name = HostName::parse(b"api.example.net")?;
    /// assert_eq!(DnsPattern::exact(&name)?.as_str(), "api.example.net");
    /// assert!(DnsPattern::exact(&HostName::parse(b"my_host.internal")?).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn exact(name: &HostName) -> Result<Self, Error> {
        Self::parse(name.as_bytes())
    }

    /// The pattern as lowercase ASCII, with its `*.` if it is a wildcard.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the pattern is a wildcard (`*.parent`).
    pub fn is_wildcard(&self) -> bool {
        self.text.starts_with("*.")
    }

    /// The name a host must equal (exact pattern) or whose children the wildcard covers:
    /// `example.com` for both `example.com` and `*.example.com`.
    pub fn base(&self) -> &str {
        if self.is_wildcard() {
            &self.text[2..]
        } else {
            &self.text
        }
    }

    /// Whether this is a wildcard whose parent is a public suffix (`*.co.uk`,
    /// `*.s3.amazonaws.com`), which never matches. Always false without the `psl` feature.
    pub fn is_public_suffix_wildcard(&self) -> bool {
        self.is_wildcard() && psl::is_public_suffix(self.base().as_bytes())
    }

    /// Whether this pattern covers `name` (RFC 9525 §6.3): an exact pattern equals the
    /// name; a wildcard covers exactly one more label on its base, never the base itself,
    /// and never when its base is a public suffix (feature `psl`).
    pub fn matches(&self, name: &HostName) -> bool {
        if self.is_wildcard() {
            name.parent() == Some(self.base()) && !self.is_public_suffix_wildcard()
        } else {
            name.as_str() == &*self.text
        }
    }
}

impl fmt::Debug for DnsPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.text, f)
    }
}

impl fmt::Display for DnsPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl AsRef<str> for DnsPattern {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

impl FromStr for DnsPattern {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s.as_bytes())
    }
}

impl TryFrom<&str> for DnsPattern {
    type Error = Error;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::parse(s.as_bytes())
    }
}

impl TryFrom<&[u8]> for DnsPattern {
    type Error = Error;

    fn try_from(b: &[u8]) -> Result<Self, Self::Error> {
        Self::parse(b)
    }
}

/// A name a certificate or virtual host carries: a DNS-ID pattern or an IP address.
///
/// ```
/// use misdirect_authority::Host;
/// use misdirect_certmatch::Pattern;
///
/// let ip: Pattern = "[2001:db8::1]".parse()?;
/// assert!(ip.covers(&"[2001:DB8::1]".parse::<Host>()?));
/// let name: Pattern = "*.example.org".parse()?;
/// assert!(name.covers(&"a.example.org".parse::<Host>()?));
/// assert!(!name.covers(&"192.0.2.1".parse::<Host>()?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pattern {
    /// A DNS-ID, possibly a wildcard.
    Dns(DnsPattern),
    /// An IP address, matched octet for octet (RFC 9525 §6.3, RFC 5280 §4.2.1.6).
    Ip(IpAddr),
}

impl Pattern {
    /// Parses an IP address (dotted IPv4, IPv6 with or without brackets) or else a
    /// [`DnsPattern`], in the strict certificate form.
    ///
    /// ```
    /// use misdirect_certmatch::Pattern;
    /// use std::net::Ipv4Addr;
    ///
    /// assert_eq!(Pattern::parse(b"192.0.2.7")?, Pattern::Ip(Ipv4Addr::new(192, 0, 2, 7).into()));
    /// assert!(matches!(Pattern::parse(b"*.example.com")?, Pattern::Dns(_)));
    /// # Ok::<(), misdirect_certmatch::Error>(())
    /// ```
    pub fn parse(input: &[u8]) -> Result<Self, Error> {
        if let Some(ip) = parse_ip(input) {
            return Ok(Self::Ip(ip));
        }
        DnsPattern::parse(input).map(Self::Dns)
    }

    /// Whether this pattern covers `host`: DNS patterns cover names only (see
    /// [`DnsPattern::matches`]); IP patterns cover the same address only. An IPv4 address
    /// never matches its IPv4-mapped IPv6 form.
    pub fn covers(&self, host: &Host) -> bool {
        match (self, host.as_name()) {
            (Self::Dns(pattern), Some(name)) => pattern.matches(name),
            (Self::Ip(ip), None) => host.ip() == Some(*ip),
            _ => false,
        }
    }

    /// The DNS pattern, if this is one.
    pub fn as_dns(&self) -> Option<&DnsPattern> {
        match self {
            Self::Dns(pattern) => Some(pattern),
            Self::Ip(_) => None,
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dns(pattern) => f.write_str(pattern.as_str()),
            Self::Ip(ip) => ip.fmt(f),
        }
    }
}

impl FromStr for Pattern {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s.as_bytes())
    }
}

impl From<DnsPattern> for Pattern {
    fn from(pattern: DnsPattern) -> Self {
        Self::Dns(pattern)
    }
}

impl From<IpAddr> for Pattern {
    fn from(ip: IpAddr) -> Self {
        Self::Ip(ip)
    }
}

fn parse_ip(input: &[u8]) -> Option<IpAddr> {
    let text = core::str::from_utf8(input).ok()?;
    let inner = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    inner.parse().ok()
}

/// Checks a presented DNS-ID in one pass without allocating.
pub(crate) fn validate(input: &[u8]) -> Result<Shape, Error> {
    let len = input.len();
    match input {
        [] => return Err(Error::at(Kind::Empty, 0)),
        [b'*'] => return Err(Error::at(Kind::BareWildcard, 0)),
        [.., b'.'] => return Err(Error::at(Kind::TrailingDot, len - 1)),
        _ => {}
    }
    if len > MAX_NAME_LEN {
        return Err(Error::at(Kind::NameTooLong, MAX_NAME_LEN));
    }
    let wildcard = input.starts_with(b"*.");
    let body = if wildcard { 2 } else { 0 };
    let mut labels = 0usize;
    let mut label_start = body;
    let mut numeric = true;
    for (i, &b) in input.iter().enumerate().skip(body) {
        match CLASS[usize::from(b)] {
            LOWER | UPPER => numeric = false,
            DIGIT => {}
            HYPHEN => {
                if i == label_start {
                    return Err(Error::at(Kind::Hyphen, i));
                }
                numeric = false;
            }
            DOT => {
                end_label(input, label_start, i)?;
                labels += 1;
                label_start = i + 1;
                numeric = true;
            }
            STAR => {
                // A `*` that is not the whole first label: inside the first label it is a
                // partial wildcard, anywhere after it is misplaced (RFC 9525 §6.3).
                let kind = if label_start == 0 {
                    Kind::PartialWildcard
                } else {
                    Kind::WildcardNotLeftmost
                };
                return Err(Error::at(kind, i));
            }
            NON_ASCII => return Err(Error::at(Kind::NonAscii, i)),
            _ => return Err(Error::at(Kind::InvalidCharacter, i)),
        }
    }
    end_label(input, label_start, len)?;
    labels += 1;
    if numeric {
        return Err(Error::at(Kind::NumericLastLabel, label_start));
    }
    if wildcard && labels < 2 {
        return Err(Error::at(Kind::WildcardTooShallow, 0));
    }
    Ok(Shape { wildcard })
}

/// Checks the label `input[start..end]` once its end is known.
fn end_label(input: &[u8], start: usize, end: usize) -> Result<(), Error> {
    if end == start {
        return Err(Error::at(Kind::EmptyLabel, start));
    }
    if end - start > MAX_LABEL_LEN {
        return Err(Error::at(Kind::LabelTooLong, start + MAX_LABEL_LEN));
    }
    if input[end - 1] == b'-' {
        return Err(Error::at(Kind::Hyphen, end - 1));
    }
    Ok(())
}
