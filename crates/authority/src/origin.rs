use core::fmt;
use core::str::FromStr;

use crate::authority::Authority;
use crate::error::{AuthorityError, AuthorityErrorKind as Kind};
use crate::host::Host;

/// An HTTP scheme with an authority: `http` or `https` (RFC 9110 §4.2).
///
/// ```
/// use misdirect_authority::Scheme;
///
/// assert_eq!(Scheme::parse(b"HTTPS"), Some(Scheme::Https));
/// assert_eq!(Scheme::Https.default_port(), 443);
/// assert_eq!(Scheme::parse(b"ftp"), None);
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scheme {
    /// `http`, default port 80 (RFC 9110 §4.2.1).
    Http,
    /// `https`, default port 443 (RFC 9110 §4.2.2).
    Https,
}

impl Scheme {
    /// Parses a scheme name, ignoring ASCII case (RFC 3986 §3.1).
    pub fn parse(input: &[u8]) -> Option<Self> {
        if input.eq_ignore_ascii_case(b"https") {
            Some(Self::Https)
        } else if input.eq_ignore_ascii_case(b"http") {
            Some(Self::Http)
        } else {
            None
        }
    }

    /// The port used when an authority names none.
    pub const fn default_port(self) -> u16 {
        match self {
            Self::Http => 80,
            Self::Https => 443,
        }
    }

    /// The lowercase scheme name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An origin: scheme, normalised host and port with the scheme's default filled in
/// (RFC 9110 §4.3.1, RFC 6454 §4).
///
/// Two origins are equal when scheme, host and effective port are equal, so
/// `https://example.com` and `https://EXAMPLE.com:443` are one origin.
///
/// ```
/// use misdirect_authority::{Authority, Origin, Scheme};
///
/// let a = Origin::from_authority(Scheme::Https, &"Example.com:443".parse::<Authority>().unwrap());
/// let b: Origin = "https://example.com".parse().unwrap();
/// assert_eq!(a, b);
/// assert_eq!(a.to_string(), "https://example.com");
/// assert_eq!(Origin::new(Scheme::Https, b.host().clone(), Some(8443)).to_string(), "https://example.com:8443");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Origin {
    scheme: Scheme,
    host: Host,
    port: u16,
}

impl Origin {
    /// Builds an origin; `None` as port means the scheme's default.
    pub fn new(scheme: Scheme, host: Host, port: Option<u16>) -> Self {
        Self {
            scheme,
            host,
            port: port.unwrap_or(scheme.default_port()),
        }
    }

    /// The origin a request for `authority` under `scheme` is for.
    pub fn from_authority(scheme: Scheme, authority: &Authority) -> Self {
        Self::new(scheme, authority.host().clone(), authority.port())
    }

    /// Parses the ASCII serialisation of an origin, `scheme "://" authority` with no path,
    /// as carried in HTTP/2 ORIGIN frames (RFC 8336 §2) and `Origin` headers (RFC 6454 §7).
    ///
    /// ```
    /// use misdirect_authority::Origin;
    ///
    /// let o = Origin::parse(b"https://a.example:8443").unwrap();
    /// assert_eq!(o.port(), 8443);
    /// assert!(Origin::parse(b"https://a.example/").is_err());
    /// ```
    pub fn parse(input: &[u8]) -> Result<Self, AuthorityError> {
        let sep = match input.windows(3).position(|w| w == b"://") {
            Some(sep) => sep,
            None => return Err(AuthorityError::new(Kind::BadScheme, 0)),
        };
        let scheme = Scheme::parse(&input[..sep]).ok_or(AuthorityError::new(Kind::BadScheme, 0))?;
        let start = sep + 3;
        let authority = Authority::parse(&input[start..])
            .map_err(|e| AuthorityError::new(e.kind(), start + e.offset()))?;
        Ok(Self::from_authority(scheme, &authority))
    }

    /// The scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The normalised host.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The effective port: explicit, or the scheme's default.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.host)?;
        if self.port != self.scheme.default_port() {
            write!(f, ":{}", self.port)?;
        }
        Ok(())
    }
}

impl FromStr for Origin {
    type Err = AuthorityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s.as_bytes())
    }
}

impl TryFrom<&str> for Origin {
    type Error = AuthorityError;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::parse(s.as_bytes())
    }
}
