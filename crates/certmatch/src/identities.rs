use core::fmt;
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use misdirect_authority::{Host, Origin};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry::OID_X509_EXT_SUBJECT_ALT_NAME;

use crate::error::{Error, ErrorKind};
use crate::pattern::{DnsPattern, Pattern};
use crate::table::{OnDuplicate, Table, TableBuilder};

/// Whether the subject common name may stand in for a missing subjectAltName.
///
/// RFC 9525 §6.3 (and RFC 9110 §4.3.4 through it) drops the CN-ID; the CA/Browser Forum
/// requires a SAN. Some private PKIs still issue CN-only certificates, so the legacy rule
/// is available, off by default, and applies only to certificates without any SAN
/// extension.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum LegacyCn {
    /// Never use the common name (RFC 9525 §6.3). The default.
    #[default]
    Deny,
    /// Use the last common name as a DNS-ID when the certificate has no subjectAltName
    /// extension at all.
    Allow,
}

/// Where a certificate's identities came from.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// The subjectAltName extension (RFC 5280 §4.2.1.6).
    SubjectAltName,
    /// The subject common name, under [`LegacyCn::Allow`].
    CommonName,
    /// Neither: the certificate covers no host.
    None,
}

/// A subjectAltName entry (or legacy common name) that could not be used. Reported rather
/// than dropped silently, so a configuration check can show it; such an entry never
/// matches anything.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SanProblem {
    /// A dNSName that is not a valid presented DNS-ID (RFC 9525 §6.3, RFC 5280 §4.2.1.6).
    InvalidDnsName {
        /// The entry as found (lossy UTF-8).
        value: String,
        /// Why it is invalid.
        error: Error,
    },
    /// An iPAddress whose length is neither 4 nor 16 octets (RFC 5280 §4.2.1.6).
    InvalidIpAddress {
        /// The octets as found.
        octets: Vec<u8>,
    },
    /// A general name whose content could not be decoded (for example a dNSName that is
    /// not a string).
    UndecodableEntry {
        /// The context tag of the GeneralName (2 is dNSName, 7 is iPAddress).
        tag: u32,
    },
    /// The subjectAltName extension itself is not valid DER, or appears more than once
    /// (RFC 5280 §4.2). No name from it is used, and the common name is not used either.
    MalformedExtension {
        /// The parser's message.
        message: String,
    },
    /// Under [`LegacyCn::Allow`], a common name that is not a valid DNS-ID.
    InvalidCommonName {
        /// The common name as found.
        value: String,
        /// Why it is invalid.
        error: Error,
    },
}

impl fmt::Display for SanProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidDnsName { value, error } => {
                write!(f, "dNSName {value:?} is not usable: {}", error.kind())
            }
            Self::InvalidIpAddress { octets } => write!(
                f,
                "iPAddress of {} octets is not an IPv4 or IPv6 address",
                octets.len()
            ),
            Self::UndecodableEntry { tag } => {
                write!(f, "subjectAltName entry [{tag}] could not be decoded")
            }
            Self::MalformedExtension { message } => {
                write!(f, "subjectAltName extension is malformed: {message}")
            }
            Self::InvalidCommonName { value, error } => {
                write!(f, "common name {value:?} is not usable: {}", error.kind())
            }
        }
    }
}

/// The names a certificate presents: its subjectAltName dNSName and iPAddress entries (or,
/// only under [`LegacyCn::Allow`] and without any SAN extension, its common name), ready
/// to answer [`covers`](Identities::covers) in one or two hash probes.
///
/// ```
/// use misdirect_authority::Host;
/// use misdirect_certmatch::Identities;
///
/// let ids = Identities::from_patterns(["*.example.com".parse()?, "192.0.2.1".parse()?]);
/// assert!(ids.covers(&"www.example.com".parse::<Host>()?));
/// assert!(!ids.covers(&"example.com".parse::<Host>()?));
/// assert!(ids.covers(&"192.0.2.1".parse::<Host>()?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Identities {
    dns: Vec<DnsPattern>,
    ips: Vec<IpAddr>,
    problems: Vec<SanProblem>,
    source: Source,
    table: Table,
}

impl Identities {
    /// Reads the identities of a DER-encoded X.509 certificate, ignoring the common name.
    ///
    /// ```
    /// use misdirect_authority::Host;
    /// use misdirect_certmatch::Identities;
    ///
    /// let cert = rcgen::generate_simple_self_signed(vec!["*.example.net".to_string()])?;
    /// let ids = Identities::from_der(cert.cert.der())?;
    /// assert!(ids.covers(&"api.example.net".parse::<Host>()?));
    /// assert_eq!(ids.dns_names()[0].as_str(), "*.example.net");
    /// assert!(ids.problems().is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_der(der: &[u8]) -> Result<Self, Error> {
        Self::from_der_with(der, LegacyCn::Deny)
    }

    /// Like [`from_der`](Identities::from_der), choosing whether a certificate without
    /// subjectAltName may be matched by its common name.
    ///
    /// ```
    /// use misdirect_certmatch::{Identities, LegacyCn, Source};
    ///
    /// let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    /// params.distinguished_name.push(rcgen::DnType::CommonName, "legacy.example.com");
    /// let cert = params.self_signed(&rcgen::KeyPair::generate()?)?;
    /// assert_eq!(Identities::from_der(cert.der())?.source(), Source::None);
    /// let ids = Identities::from_der_with(cert.der(), LegacyCn::Allow)?;
    /// assert_eq!(ids.source(), Source::CommonName);
    /// assert_eq!(ids.dns_names()[0].as_str(), "legacy.example.com");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_der_with(der: &[u8], legacy_cn: LegacyCn) -> Result<Self, Error> {
        let cert = parse_certificate(der)?;
        Ok(Self::from_x509(&cert, legacy_cn))
    }

    /// Identities from patterns given directly (configuration, tests). Duplicates (after
    /// case folding) are kept once, in first-seen order.
    ///
    /// ```
    /// use misdirect_certmatch::{Identities, Source};
    ///
    /// let ids = Identities::from_patterns(["a.example".parse()?, "A.example".parse()?]);
    /// assert_eq!(ids.dns_names().len(), 1);
    /// assert_eq!(ids.source(), Source::SubjectAltName);
    /// # Ok::<(), misdirect_certmatch::Error>(())
    /// ```
    pub fn from_patterns(patterns: impl IntoIterator<Item = Pattern>) -> Self {
        let mut dns = Vec::new();
        let mut ips = Vec::new();
        let mut seen = HashSet::new();
        for pattern in patterns {
            if !seen.insert(pattern.clone()) {
                continue;
            }
            match pattern {
                Pattern::Dns(name) => dns.push(name),
                Pattern::Ip(ip) => ips.push(ip),
            }
        }
        Self::assemble(dns, ips, Vec::new(), Source::SubjectAltName)
    }

    pub(crate) fn from_x509(cert: &X509Certificate<'_>, legacy_cn: LegacyCn) -> Self {
        let mut dns = Vec::new();
        let mut ips = Vec::new();
        let mut problems = Vec::new();
        let mut san_seen = false;
        for ext in cert.extensions() {
            if ext.oid != OID_X509_EXT_SUBJECT_ALT_NAME {
                continue;
            }
            if san_seen {
                problems.push(SanProblem::MalformedExtension {
                    message: "the extension appears more than once; later copies are ignored"
                        .to_string(),
                });
                continue;
            }
            san_seen = true;
            match ext.parsed_extension() {
                ParsedExtension::SubjectAlternativeName(san) => {
                    for name in &san.general_names {
                        read_general_name(name, &mut dns, &mut ips, &mut problems);
                    }
                }
                ParsedExtension::ParseError { error } => {
                    problems.push(SanProblem::MalformedExtension {
                        message: error.to_string(),
                    });
                }
                other => problems.push(SanProblem::MalformedExtension {
                    message: format!("unexpected content {other:?}"),
                }),
            }
        }
        let source = if san_seen {
            Source::SubjectAltName
        } else if legacy_cn == LegacyCn::Allow {
            match cert.subject().iter_common_name().last() {
                Some(cn) => {
                    let value = cn
                        .as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|_| String::from_utf8_lossy(cn.as_slice()).into_owned());
                    match DnsPattern::parse(value.as_bytes()) {
                        Ok(pattern) => {
                            dns.push(pattern);
                            Source::CommonName
                        }
                        Err(error) => {
                            problems.push(SanProblem::InvalidCommonName { value, error });
                            Source::None
                        }
                    }
                }
                None => Source::None,
            }
        } else {
            Source::None
        };
        Self::assemble(dns, ips, problems, source)
    }

    fn assemble(
        dns: Vec<DnsPattern>,
        ips: Vec<IpAddr>,
        problems: Vec<SanProblem>,
        source: Source,
    ) -> Self {
        let bytes = dns.iter().map(|d| d.as_str().len()).sum::<usize>() + ips.len() * 16;
        let mut builder = TableBuilder::with_capacity(dns.len() + ips.len(), bytes);
        let mut pushed = Ok(());
        for name in &dns {
            pushed = pushed.and(builder.push_dns(name.as_str().as_bytes(), name.is_wildcard()));
        }
        for ip in &ips {
            pushed = pushed.and(builder.push_ip(*ip));
        }
        let table = match pushed {
            // Invariant: a certificate is far smaller than the 4 GiB arena limit, and
            // `KeepFirst` never reports duplicates.
            Ok(()) => builder
                .build(OnDuplicate::KeepFirst)
                .unwrap_or_else(|_| Table::empty()),
            Err(_) => Table::empty(),
        };
        Self {
            dns,
            ips,
            problems,
            source,
            table,
        }
    }

    /// Whether the certificate covers `host` (RFC 9525 §6.3): a DNS host equals a dNSName,
    /// or its parent equals the base of a wildcard whose parent is not a public suffix
    /// (feature `psl`); an IP host equals an iPAddress octet for octet (an IPv4 host never
    /// matches an IPv4-mapped IPv6 entry, nor the reverse). DNS entries never cover IP
    /// hosts and IP entries never cover names.
    #[inline]
    pub fn covers(&self, host: &Host) -> bool {
        self.table.lookup(host).is_some()
    }

    /// Whether the certificate covers the origin's host. Certificates do not bind schemes or
    /// ports, so only the host is compared (RFC 9110 §4.3.4).
    ///
    /// ```
    /// use misdirect_authority::Origin;
    /// use misdirect_certmatch::Identities;
    ///
    /// let ids = Identities::from_patterns(["www.example.com".parse()?]);
    /// assert!(ids.covers_origin(&"https://WWW.example.com:8443".parse::<Origin>()?));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn covers_origin(&self, origin: &Origin) -> bool {
        self.covers(origin.host())
    }

    /// The usable DNS-IDs (dNSName entries, or the common name under
    /// [`LegacyCn::Allow`]), lowercased, in certificate order.
    pub fn dns_names(&self) -> &[DnsPattern] {
        &self.dns
    }

    /// The iPAddress entries, in certificate order.
    pub fn ip_addresses(&self) -> &[IpAddr] {
        &self.ips
    }

    /// Every usable identity as a [`Pattern`], DNS names first.
    pub fn patterns(&self) -> impl Iterator<Item = Pattern> + '_ {
        self.dns
            .iter()
            .cloned()
            .map(Pattern::Dns)
            .chain(self.ips.iter().copied().map(Pattern::Ip))
    }

    /// Entries that could not be used, with the reason.
    pub fn problems(&self) -> &[SanProblem] {
        &self.problems
    }

    /// Where the identities came from.
    pub fn source(&self) -> Source {
        self.source
    }

    /// Whether the certificate covers no host at all.
    pub fn is_empty(&self) -> bool {
        self.dns.is_empty() && self.ips.is_empty()
    }
}

pub(crate) fn parse_certificate(der: &[u8]) -> Result<X509Certificate<'_>, Error> {
    match x509_parser::parse_x509_certificate(der) {
        Ok(([], cert)) => Ok(cert),
        Ok((rest, _)) => Err(Error::with_message(
            ErrorKind::InvalidCertificate,
            format_args!("{} bytes after the certificate", rest.len()),
        )),
        Err(err) => Err(Error::with_message(ErrorKind::InvalidCertificate, err)),
    }
}

fn read_general_name(
    name: &GeneralName<'_>,
    dns: &mut Vec<DnsPattern>,
    ips: &mut Vec<IpAddr>,
    problems: &mut Vec<SanProblem>,
) {
    match name {
        GeneralName::DNSName(value) => match DnsPattern::parse(value.as_bytes()) {
            Ok(pattern) => dns.push(pattern),
            Err(error) => problems.push(SanProblem::InvalidDnsName {
                value: (*value).to_owned(),
                error,
            }),
        },
        GeneralName::IPAddress(octets) => match octets.len() {
            4 => {
                let mut a = [0u8; 4];
                a.copy_from_slice(octets);
                ips.push(IpAddr::V4(Ipv4Addr::from(a)));
            }
            16 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(octets);
                ips.push(IpAddr::V6(Ipv6Addr::from(a)));
            }
            _ => problems.push(SanProblem::InvalidIpAddress {
                octets: octets.to_vec(),
            }),
        },
        GeneralName::Invalid(tag, _) => problems.push(SanProblem::UndecodableEntry { tag: tag.0 }),
        _ => {}
    }
}
