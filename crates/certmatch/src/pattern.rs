use core::fmt;
use core::str::FromStr;
use std::net::IpAddr;

use misdirect_authority::{Host, HostName, MAX_LABEL_LEN, MAX_NAME_LEN};

use crate::chars::{CLASS, DIGIT, DOT, HYPHEN, LOWER, NON_ASCII, STAR, UPPER};
use crate::error::{Error, ErrorKind as Kind};
use crate::wildcard;

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

    /// Parses a name or alias written in configuration, where Unicode is welcome (feature
    /// `idna`): like [`parse_config`](DnsPattern::parse_config) (case folded, one trailing
    /// dot dropped, a wildcard keeps its `*.`), and a name with non-ASCII characters is first
    /// converted to A-labels by UTS 46 through
    /// [`HostName::from_config`](misdirect_authority::HostName::from_config) (strict: STD3
    /// rules, DNS lengths, no transitional mapping). Never use it on certificate or request
    /// data, which must already be A-labels.
    ///
    /// Errors: [`ErrorKind::Idna`](crate::ErrorKind::Idna) when the conversion fails, else
    /// the kind [`parse`](DnsPattern::parse) gives. For a converted name the error says so
    /// (quoting the A-label form where it has it) and [`Error::offset`] is `None`, since
    /// an offset would point into a spelling the configuration does not contain.
    ///
    /// ```
    /// use misdirect_certmatch::{DnsPattern, ErrorKind};
    ///
    /// assert_eq!(DnsPattern::from_config("*.Bücher.example.")?.as_str(), "*.xn--bcher-kva.example");
    /// assert_eq!(DnsPattern::from_config("WWW.example.com.")?.as_str(), "www.example.com");
    /// assert_eq!(DnsPattern::from_config("bü cher.example").unwrap_err().kind(), ErrorKind::Idna);
    /// assert_eq!(DnsPattern::from_config("*.bücher").unwrap_err().kind(), ErrorKind::WildcardTooShallow);
    /// # Ok::<(), misdirect_certmatch::Error>(())
    /// ```
    #[cfg(feature = "idna")]
    pub fn from_config(input: &str) -> Result<Self, Error> {
        if input.is_ascii() {
            return Self::parse_config(input);
        }
        let (prefix, rest) = match input.strip_prefix("*.") {
            Some(rest) => ("*.", rest),
            None => ("", input),
        };
        // One trailing dot, as for ASCII names (the conversion alone would drop them all).
        let rest = rest.strip_suffix('.').unwrap_or(rest);
        if rest.ends_with('.') {
            return Err(Error::at(Kind::TrailingDot, input.len() - 1));
        }
        let name = HostName::from_config(rest).map_err(|err| {
            use misdirect_authority::AuthorityErrorKind as Authority;
            // The conversion succeeded but its result is not a host name: say which rule.
            let kind = match err.kind() {
                Authority::NonCanonicalIpv4 | Authority::IpLiteral => Kind::NumericLastLabel,
                Authority::Empty => Kind::Empty,
                Authority::EmptyLabel => Kind::EmptyLabel,
                Authority::LabelTooLong => Kind::LabelTooLong,
                Authority::NameTooLong => Kind::NameTooLong,
                Authority::InvalidCharacter => Kind::InvalidCharacter,
                _ => return Error::new(Kind::Idna),
            };
            Error::with_message(kind, "after conversion to A-labels (UTS 46)")
        })?;
        let ascii = format!("{prefix}{name}");
        Self::parse(ascii.as_bytes()).map_err(|err| {
            let at = err
                .offset()
                .map(|o| format!(" at byte {o}"))
                .unwrap_or_default();
            Error::with_message(err.kind(), format_args!("`{ascii}` (A-label form){at}"))
        })
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
        self.is_wildcard() && !wildcard::usable(self.base().as_bytes())
    }

    /// Whether this pattern covers `name` (RFC 9525 §6.3): an exact pattern equals the
    /// name; a wildcard covers exactly one more label on its base, never the base itself,
    /// and never when its base is a public suffix (feature `psl`).
    pub fn matches(&self, name: &HostName) -> bool {
        if self.is_wildcard() {
            wildcard::covers(self.base().as_bytes(), name.as_bytes())
        } else {
            name.as_str() == &*self.text
        }
    }

    /// The label [`example_host`](DnsPattern::example_host) puts in place of a wildcard's
    /// `*`: `misdirect-probe`, a name no one registers by accident, so an example host is
    /// not mistaken for (and does not collide with) a host someone serves.
    pub const EXAMPLE_LABEL: &'static str = "misdirect-probe";

    /// A concrete host name this pattern is meant to cover: an exact pattern's own name, or
    /// for a wildcard `*.base` the name `misdirect-probe.base` ([`EXAMPLE_LABEL`]). Use it to
    /// ask "does this certificate, virtual host or server answer for the pattern?" with an
    /// ordinary host lookup.
    ///
    /// When `base` is so long that the name would pass 253 bytes, the label is cut to fit
    /// (never ending in `-`; at worst `m`), so every pattern has an example host. A wildcard
    /// whose base is a public suffix (feature `psl`) matches nothing, not even its example.
    ///
    /// [`EXAMPLE_LABEL`]: DnsPattern::EXAMPLE_LABEL
    ///
    /// ```
    /// use misdirect_certmatch::DnsPattern;
    ///
    /// let wild = DnsPattern::parse(b"*.Example.com")?;
    /// assert_eq!(wild.example_host().as_str(), "misdirect-probe.example.com");
    /// assert!(wild.matches(&wild.example_host()));
    /// let exact = DnsPattern::parse(b"www.example.com")?;
    /// assert_eq!(exact.example_host().as_str(), "www.example.com");
    /// # Ok::<(), misdirect_certmatch::Error>(())
    /// ```
    pub fn example_host(&self) -> HostName {
        let Some(base) = self.text.strip_prefix("*.") else {
            // Invariant: a valid DNS-ID is a valid host name (LDH labels are a subset of
            // host-name labels, same length limits, same last-label rule).
            return HostName::parse(self.text.as_bytes()).expect("a DNS-ID is a host name");
        };
        // `*.base` fits in MAX_NAME_LEN, so at least one byte is left for the label.
        let room = MAX_NAME_LEN.saturating_sub(base.len() + 1).max(1);
        let label = &Self::EXAMPLE_LABEL[..room.min(Self::EXAMPLE_LABEL.len())];
        let label = label.trim_end_matches('-');
        // Invariant: `label` is a non-empty LDH label without a trailing `-`, and `base`
        // is the valid DNS-ID after `*.`, so the name is valid and at most 253 bytes.
        HostName::parse(format!("{label}.{base}").as_bytes())
            .expect("an example host under a valid wildcard is a host name")
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
