use core::fmt;

/// Why a name pattern, certificate, index or resolver could not be built.
///
/// The [`kind`](Error::kind) says which rule was broken; context (the byte offset in a
/// pattern, both entries of a duplicate, the parser's message for a certificate) is built
/// only on the failure path.
///
/// ```
/// use misdirect_certmatch::{DnsPattern, ErrorKind};
///
/// let err = DnsPattern::parse(b"f*.example.com").unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::PartialWildcard);
/// assert_eq!(err.offset(), Some(1));
/// assert_eq!(
///     err.to_string(),
///     "invalid DNS name pattern at byte 1: `*` is only allowed as a whole left-most label"
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    context: Context,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Context {
    None,
    Offset(usize),
    Duplicate(Box<Duplicate>),
    Message(Box<str>),
}

impl Error {
    pub(crate) const fn at(kind: ErrorKind, offset: usize) -> Self {
        Self {
            kind,
            context: Context::Offset(offset),
        }
    }

    pub(crate) const fn new(kind: ErrorKind) -> Self {
        Self {
            kind,
            context: Context::None,
        }
    }

    pub(crate) fn with_message(kind: ErrorKind, message: impl fmt::Display) -> Self {
        Self {
            kind,
            context: Context::Message(message.to_string().into_boxed_str()),
        }
    }

    pub(crate) fn duplicate(pattern: String, first: usize, second: usize) -> Self {
        Self {
            kind: ErrorKind::DuplicatePattern,
            context: Context::Duplicate(Box::new(Duplicate {
                pattern,
                first,
                second,
            })),
        }
    }

    /// Which rule the input broke.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// For a name pattern: the byte offset where the problem was found.
    pub fn offset(&self) -> Option<usize> {
        match self.context {
            Context::Offset(offset) => Some(offset),
            _ => None,
        }
    }

    /// For [`ErrorKind::DuplicatePattern`]: the pattern and both entries that carry it.
    pub fn duplicate_entries(&self) -> Option<&Duplicate> {
        match &self.context {
            Context::Duplicate(dup) => Some(dup),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.context {
            Context::Offset(offset) => write!(
                f,
                "invalid DNS name pattern at byte {offset}: {}",
                self.kind.description()
            ),
            Context::Duplicate(dup) => write!(
                f,
                "{}: `{}` is given by entry {} and again by entry {}",
                self.kind.description(),
                dup.pattern,
                dup.first,
                dup.second
            ),
            Context::Message(message) => write!(f, "{}: {message}", self.kind.description()),
            Context::None => f.write_str(self.kind.description()),
        }
    }
}

impl std::error::Error for Error {}

/// The two entries of a [`HostIndex`](crate::HostIndex) that carry the same pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Duplicate {
    pattern: String,
    first: usize,
    second: usize,
}

impl Duplicate {
    /// The pattern both entries carry, as written in a certificate (`*.example.com`,
    /// `www.example.com`, `192.0.2.1`).
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The position (in insertion order, from 0) of the entry that came first.
    pub fn first(&self) -> usize {
        self.first
    }

    /// The position (in insertion order, from 0) of the entry that repeated it.
    pub fn second(&self) -> usize {
        self.second
    }
}

/// The rule an input broke; see [`Error::kind`].
///
/// The pattern kinds cite RFC 9525 §6.3 (wildcards), RFC 5280 §4.2.1.6 (dNSName is
/// "preferred name syntax") and RFC 1034 §3.5 / RFC 1123 §2.1 (LDH labels, lengths).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The pattern is empty.
    Empty,
    /// The pattern ends with a dot. A presented identifier is an absolute name without
    /// the root label (RFC 5280 §4.2.1.6 refers to RFC 1034 §3.5 preferred name syntax).
    TrailingDot,
    /// An empty label: a leading dot or two dots in a row (RFC 1034 §3.5).
    EmptyLabel,
    /// A label longer than 63 octets (RFC 1035 §2.3.4).
    LabelTooLong,
    /// A name longer than 253 octets (RFC 1035 §2.3.4).
    NameTooLong,
    /// A byte other than letters, digits, `-` and `.` (LDH rule, RFC 1034 §3.5; RFC 5280
    /// §4.2.1.6). Underscores are not allowed in certificate names.
    InvalidCharacter,
    /// A byte outside ASCII: IA5String carries A-labels only (RFC 5280 §7.2).
    NonAscii,
    /// A label starts or ends with `-` (RFC 1034 §3.5).
    Hyphen,
    /// The last label is all digits, so the name reads as an IP address; IP addresses
    /// belong in iPAddress entries (RFC 5280 §4.2.1.6, RFC 9525 §6.2.1).
    NumericLastLabel,
    /// `*` inside a label (`f*.example.com`, `xn--*.example.com`): RFC 9525 §6.3 makes
    /// such a presented identifier invalid.
    PartialWildcard,
    /// `*` in a label other than the left-most (RFC 9525 §6.3).
    WildcardNotLeftmost,
    /// The pattern is just `*`.
    BareWildcard,
    /// A wildcard followed by fewer than two labels (`*.com`, `*.local`): it would cover a
    /// whole top-level domain.
    WildcardTooShallow,
    /// A name written in configuration with non-ASCII characters cannot be converted to
    /// A-labels by UTS 46 (RFC 5890, UTS 46 §4 with STD3 rules); see
    /// `DnsPattern::from_config` (feature `idna`).
    Idna,
    /// The certificate is not valid DER for an X.509 certificate.
    InvalidCertificate,
    /// Two entries of an index carry the same pattern; see [`Error::duplicate_entries`].
    DuplicatePattern,
    /// The index would need more than 4 GiB of name bytes or 2³² entries.
    IndexTooLarge,
    /// A resolver entry refers to a certificate that is not there.
    UnknownEntry,
}

impl ErrorKind {
    /// A short English description of the rule.
    pub fn description(self) -> &'static str {
        match self {
            Self::Empty => "the name is empty",
            Self::TrailingDot => "a certificate name must not end with a dot",
            Self::EmptyLabel => "a label is empty",
            Self::LabelTooLong => "a label is longer than 63 bytes",
            Self::NameTooLong => "the name is longer than 253 bytes",
            Self::InvalidCharacter => "only letters, digits, `-` and `.` are allowed",
            Self::NonAscii => "certificate names are ASCII (A-labels) only",
            Self::Hyphen => "a label starts or ends with `-`",
            Self::NumericLastLabel => "the last label is numeric: an IP address is not a DNS name",
            Self::PartialWildcard => "`*` is only allowed as a whole left-most label",
            Self::WildcardNotLeftmost => "`*` is only allowed in the left-most label",
            Self::BareWildcard => "a lone `*` covers nothing",
            Self::WildcardTooShallow => "a wildcard needs at least two labels after `*.`",
            Self::Idna => "the name cannot be converted to A-labels (UTS 46)",
            Self::InvalidCertificate => "the certificate is not valid X.509 DER",
            Self::DuplicatePattern => "duplicate name pattern",
            Self::IndexTooLarge => "the index is too large",
            Self::UnknownEntry => "no such entry",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}
