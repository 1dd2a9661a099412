use core::fmt;
use core::hash::{Hash, Hasher};
use core::str::FromStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::chars::{AT, CLASS, COLON, DOT, NAME, NON_ASCII, PERCENT, UPPER};
use crate::error::{AuthorityError, AuthorityErrorKind as Kind};
use crate::lanes::{fold_word, load_word};

/// The longest DNS name, in octets, without its trailing dot (RFC 1035 §2.3.4).
pub const MAX_NAME_LEN: usize = 253;

/// The longest DNS label, in octets (RFC 1035 §2.3.4).
pub const MAX_LABEL_LEN: usize = 63;

/// Names up to this length are stored inline, without a heap allocation.
pub(crate) const INLINE_CAP: usize = 64;

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
        let (host, end) = parse_reg_name(input)?;
        if end != input.len() {
            return Err(AuthorityError::new(Kind::TrailingGarbage, end));
        }
        Ok(host)
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
/// `Hash` compare names as DNS does (RFC 4343). Names of up to 64 bytes are stored inline.
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
        let (host, end) = parse_reg_name(input)?;
        if end != input.len() {
            return Err(AuthorityError::new(Kind::InvalidCharacter, end));
        }
        match host {
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
        if input.last() == Some(&b'.') {
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

    /// An inline name of length zero: a buffer for [`HostName::inline_mut`] to fill, never
    /// handed out empty.
    pub(crate) const EMPTY_INLINE: Self = Self(Repr::Inline {
        len: 0,
        bytes: [0; INLINE_CAP],
    });

    /// The length and buffer of an inline name, to be filled in place with a name that is
    /// valid and lowercase in its first `len` bytes, with zeros after them.
    #[inline(always)]
    pub(crate) fn inline_mut(&mut self) -> Option<(&mut u8, &mut [u8; INLINE_CAP])> {
        match &mut self.0 {
            Repr::Inline { len, bytes } => Some((len, bytes)),
            Repr::Heap(_) => None,
        }
    }

    /// Whether an inline name's buffer is zero after the name, as [`HostName::inline_mut`]
    /// requires.
    #[cfg(test)]
    pub(crate) fn padding_is_zero(&self) -> bool {
        match &self.0 {
            Repr::Inline { len, bytes } => bytes[usize::from(*len)..].iter().all(|&b| b == 0),
            Repr::Heap(_) => true,
        }
    }

    /// Builds a name from bytes the scanner accepted (no trailing dot, not yet folded).
    #[cold]
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

/// Parses a reg-name or IPv4 host from the start of `input`, stopping at `:` or the end;
/// returns the host and where it stopped.
///
/// One pass: each byte is classified, checked and, for names that fit inline, written
/// lowercased into the name's own buffer, so the common case touches every byte once and
/// never allocates. Then one trailing dot is dropped, the last label and total length are
/// checked, and a numeric last label sends the host to the strict IPv4 parser.
#[inline]
pub(crate) fn parse_reg_name(input: &[u8]) -> Result<(Host, usize), AuthorityError> {
    // Fast path for the common `a.b.c.d[:port]`; anything else takes the general scan,
    // which also finds numeric hosts that are not dotted-decimal.
    if input.first().is_some_and(u8::is_ascii_digit) {
        let end = input.iter().position(|&b| b == b':').unwrap_or(input.len());
        if let Some(v4) = parse_ipv4_dotted(&input[..end]) {
            return Ok((Host::Ipv4(v4), end));
        }
    }
    let mut labels = Labels::default();
    let i = scan(input, &mut labels)?;
    let Labels {
        start: label_start,
        prev_start: prev_label_start,
    } = labels;
    let end = i;
    if end == 0 {
        return Err(AuthorityError::new(Kind::Empty, 0));
    }
    // Drop one trailing dot: the name then ends before it, and its last label is the
    // one before the dot (already checked to be 1..=63 bytes long).
    let (name_len, last_start) = match label_start == end {
        true => (end - 1, prev_label_start),
        false => {
            if end - label_start > MAX_LABEL_LEN {
                return Err(AuthorityError::new(Kind::LabelTooLong, label_start));
            }
            (end, label_start)
        }
    };
    if name_len == 0 {
        return Err(AuthorityError::new(Kind::EmptyLabel, 0));
    }
    if name_len > MAX_NAME_LEN {
        return Err(AuthorityError::new(Kind::NameTooLong, MAX_NAME_LEN));
    }
    let name = &input[..name_len];
    if is_numeric_label(&name[last_start..]) {
        return match parse_ipv4_dotted(name) {
            Some(v4) => Ok((Host::Ipv4(v4), end)),
            None => Err(AuthorityError::new(Kind::NonCanonicalIpv4, 0)),
        };
    }
    let host_name = match name_len <= INLINE_CAP {
        true => {
            let bytes = inline_lowercase(name);
            HostName(Repr::Inline {
                // Invariant: name_len <= INLINE_CAP < 256.
                len: name_len as u8,
                bytes,
            })
        }
        false => HostName::from_validated(name),
    };
    Ok((Host::Name(host_name), end))
}

/// Where the scanner's current and previous labels start.
#[derive(Default)]
struct Labels {
    start: usize,
    prev_start: usize,
}

/// Checks host-name bytes from the start of `input`, stopping at `:`; returns where it
/// stopped. Labels are checked as they end; the last one is left to the caller.
#[inline(always)]
fn scan(input: &[u8], labels: &mut Labels) -> Result<usize, AuthorityError> {
    let mut i = 0;
    loop {
        // Four name bytes at a time: their classes OR to at most UPPER only if all are.
        while let Some(&[a, b, c, d]) = input.get(i..i + 4) {
            let classes =
                CLASS[a as usize] | CLASS[b as usize] | CLASS[c as usize] | CLASS[d as usize];
            if classes > UPPER {
                break;
            }
            i += 4;
        }
        // Then one byte at a time up to the next byte that is not a name byte.
        let class = loop {
            let Some(&b) = input.get(i) else {
                return Ok(i);
            };
            let class = CLASS[b as usize];
            if class > UPPER {
                break class;
            }
            i += 1;
        };
        match class {
            DOT => {
                let label_len = i - labels.start;
                if label_len == 0 {
                    return Err(AuthorityError::new(Kind::EmptyLabel, i));
                }
                if label_len > MAX_LABEL_LEN {
                    return Err(AuthorityError::new(Kind::LabelTooLong, labels.start));
                }
                labels.prev_start = labels.start;
                labels.start = i + 1;
            }
            COLON => return Ok(i),
            class => return Err(AuthorityError::new(reject_kind(class), i)),
        }
        i += 1;
    }
}

/// Copies a validated (ASCII) name of at most `INLINE_CAP` bytes into an inline buffer,
/// folding case eight bytes at a time.
#[inline(always)]
fn inline_lowercase(name: &[u8]) -> [u8; INLINE_CAP] {
    let mut bytes = [0u8; INLINE_CAP];
    let n = name.len();
    let full = n / 8;
    for k in 0..full {
        let at = 8 * k;
        let word = load_word(&name[at..at + 8]);
        bytes[at..at + 8].copy_from_slice(&fold_word(word).to_le_bytes());
    }
    let rem = n % 8;
    if rem != 0 {
        let tail = match n >= 8 {
            // The last eight bytes, shifted so that only the unread ones remain.
            true => load_word(&name[n - 8..]) >> (8 * (8 - rem)),
            false => name.iter().rev().fold(0, |acc, &b| acc << 8 | u64::from(b)),
        };
        let at = 8 * full;
        // Invariant: rem != 0 means n < INLINE_CAP, so at + 8 <= INLINE_CAP.
        bytes[at..at + 8].copy_from_slice(&fold_word(tail).to_le_bytes());
    }
    bytes
}

const _: () = assert!(INLINE_CAP.is_power_of_two() && INLINE_CAP < 256);
// `scan` tests `class <= UPPER` for "a byte a name may contain".
const _: () = assert!(NAME == 0 && UPPER == 1);

#[cold]
fn reject_kind(class: u8) -> Kind {
    match class {
        AT => Kind::Userinfo,
        PERCENT => Kind::PercentEncoding,
        NON_ASCII => Kind::NonAscii,
        _ => Kind::InvalidCharacter,
    }
}

/// Parses `[IPv6]` at the start of `input`; returns the host and the index after `]`.
#[inline]
pub(crate) fn parse_bracketed(input: &[u8]) -> Result<(Host, usize), AuthorityError> {
    let close = match input.iter().position(|&b| b == b']') {
        Some(close) => close,
        None => return Err(AuthorityError::new(Kind::BadIpv6, input.len())),
    };
    let literal = &input[1..close];
    match parse_ipv6(literal) {
        Some(v6) => Ok((Host::Ipv6(v6), close + 1)),
        None => Err(ip_literal_error(literal)),
    }
}

/// Says why an IP literal failed, on the failure path only.
#[cold]
fn ip_literal_error(literal: &[u8]) -> AuthorityError {
    if let Some(b'v' | b'V') = literal.first() {
        return AuthorityError::new(Kind::IpvFuture, 1);
    }
    for (i, &b) in literal.iter().enumerate() {
        match b {
            b'%' => return AuthorityError::new(Kind::ZoneId, 1 + i),
            0x80.. => return AuthorityError::new(Kind::NonAscii, 1 + i),
            _ => {}
        }
    }
    AuthorityError::new(Kind::BadIpv6, 1)
}

/// RFC 3986 §3.2.2 `IPv6address` (the RFC 4291 §2.2 text forms): eight groups of one to
/// four hex digits, at most one `::` standing for one or more zero groups, and optionally a
/// dotted-decimal IPv4 address as the last 32 bits.
pub(crate) fn parse_ipv6(s: &[u8]) -> Option<Ipv6Addr> {
    let mut head = [0u16; 8];
    let mut head_len = 0;
    let mut tail = [0u16; 8];
    let mut tail_len = 0;
    let mut compressed = false;
    let mut i = 0;
    if s.starts_with(b"::") {
        compressed = true;
        i = 2;
        if s.len() == 2 {
            return Some(Ipv6Addr::UNSPECIFIED);
        }
    }
    loop {
        let start = i;
        let mut value: u32 = 0;
        while i < s.len() && i - start < 5 {
            match hex_value(s[i]) {
                Some(d) => value = value << 4 | d,
                None => break,
            }
            i += 1;
        }
        let groups = head_len + tail_len;
        if s.get(i) == Some(&b'.') {
            // The rest must be an IPv4 address filling the last two groups.
            if groups > 6 {
                return None;
            }
            let octets = parse_ipv4_dotted(&s[start..])?.octets();
            for pair in [[octets[0], octets[1]], [octets[2], octets[3]]] {
                let group = u16::from_be_bytes(pair);
                match compressed {
                    true => push_group(&mut tail, &mut tail_len, group),
                    false => push_group(&mut head, &mut head_len, group),
                }
            }
            break;
        }
        let digits = i - start;
        if digits == 0 || digits > 4 || groups == 8 {
            return None;
        }
        // Invariant: at most four hex digits were read, so the value fits in 16 bits.
        let group = value as u16;
        match compressed {
            true => push_group(&mut tail, &mut tail_len, group),
            false => push_group(&mut head, &mut head_len, group),
        }
        match s.get(i) {
            None => break,
            Some(b':') => i += 1,
            Some(_) => return None,
        }
        match s.get(i) {
            None => return None,
            Some(b':') if !compressed => {
                compressed = true;
                i += 1;
                if i == s.len() {
                    break;
                }
            }
            Some(b':') => return None,
            Some(_) => {}
        }
    }
    let groups = head_len + tail_len;
    if (compressed && groups > 7) || (!compressed && groups != 8) {
        return None;
    }
    let mut all = [0u16; 8];
    all[..head_len].copy_from_slice(&head[..head_len]);
    all[8 - tail_len..].copy_from_slice(&tail[..tail_len]);
    Some(Ipv6Addr::from(all))
}

fn push_group(groups: &mut [u16; 8], len: &mut usize, group: u16) {
    groups[*len] = group;
    *len += 1;
}

fn hex_value(b: u8) -> Option<u32> {
    match b {
        b'0'..=b'9' => Some(u32::from(b - b'0')),
        b'a'..=b'f' => Some(u32::from(b - b'a' + 10)),
        b'A'..=b'F' => Some(u32::from(b - b'A' + 10)),
        _ => None,
    }
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
    let mut n = 0;
    let mut value: u16 = 0;
    let mut digits = 0;
    for &b in input {
        match b {
            b'0'..=b'9' => {
                // A fourth digit, or any digit after a leading `0`, is not a dec-octet.
                if digits == 3 || (digits == 1 && value == 0) {
                    return None;
                }
                value = value * 10 + u16::from(b - b'0');
                digits += 1;
            }
            b'.' if digits > 0 && n < 3 => {
                octets[n] = u8::try_from(value).ok()?;
                n += 1;
                value = 0;
                digits = 0;
            }
            _ => return None,
        }
    }
    if digits == 0 || n != 3 {
        return None;
    }
    octets[3] = u8::try_from(value).ok()?;
    Some(Ipv4Addr::from(octets))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testgen::{every_string, ipv6_groups, xorshift};

    #[test]
    fn inline_and_heap_names_compare_alike() {
        let long = format!("{}.example", "a".repeat(62));
        let a = HostName::parse(long.as_bytes()).unwrap();
        let b = HostName::parse(long.to_ascii_uppercase().as_bytes()).unwrap();
        assert!(matches!(a.0, Repr::Heap(_)));
        assert_eq!(a, b);
        assert_eq!(a.as_str(), long);
        let short = HostName::parse(b"Short.Example").unwrap();
        assert!(matches!(short.0, Repr::Inline { .. }));
        assert_eq!(short.as_str(), "short.example");
    }

    /// Names of every inline length are folded like `to_ascii_lowercase` and zero-padded.
    #[test]
    fn inline_lowercase_folds_and_zero_pads() {
        for len in 0..=INLINE_CAP {
            let name: Vec<u8> = (0..len).map(|i| b"AbZz09-_."[i % 9]).collect();
            let bytes = inline_lowercase(&name);
            assert_eq!(&bytes[..len], name.to_ascii_lowercase().as_slice());
            assert!(bytes[len..].iter().all(|&b| b == 0));
        }
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

    /// The hand-written IPv6 parser accepts exactly what the standard library's does, on
    /// every string of up to seven symbols over an alphabet that covers its grammar, and on
    /// the text forms of many addresses.
    #[test]
    fn ipv6_agrees_with_std() {
        let checked = every_string(b"0fF:.1", 7, |s| {
            let text = core::str::from_utf8(s).unwrap();
            assert_eq!(parse_ipv6(s), text.parse::<Ipv6Addr>().ok(), "{text}");
        });
        assert!(checked > 300_000);
        for x in xorshift(0x9e37_79b9_7f4a_7c15).take(20_000) {
            let groups = ipv6_groups(x);
            let addr = Ipv6Addr::from(groups);
            for text in [
                addr.to_string(),
                format!("{:x}", u128::from(addr)),
                expanded(&groups),
            ] {
                assert_eq!(parse_ipv6(text.as_bytes()), text.parse().ok(), "{text}");
            }
        }
    }

    fn expanded(groups: &[u16; 8]) -> String {
        groups
            .iter()
            .map(|g| format!("{g:04X}"))
            .collect::<Vec<_>>()
            .join(":")
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
