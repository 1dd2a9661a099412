use core::fmt;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

// Fingerprints use `sha2`: a small, widely used pure-Rust SHA-256 that the default build can
// carry without the `rustls` feature (which is what brings ring in).
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::identities::{Identities, LegacyCn, parse_certificate};
use crate::pattern::{DnsPattern, Pattern};
use crate::wildcard;

/// How a report names a certificate: its subject and the SHA-256 fingerprint of its DER.
///
/// ```
/// use misdirect_certmatch::CertId;
///
/// let id = CertId::new("CN=example.com", [0xab; 32]);
/// assert_eq!(id.subject(), "CN=example.com");
/// assert!(id.to_string().starts_with("CN=example.com (SHA-256 abababab"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CertId {
    subject: String,
    sha256: [u8; 32],
}

impl CertId {
    /// A certificate identity from its parts.
    pub fn new(subject: impl Into<String>, sha256: [u8; 32]) -> Self {
        Self {
            subject: subject.into(),
            sha256,
        }
    }

    /// The subject distinguished name as text (RFC 4514 style; empty if the subject is).
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The SHA-256 digest of the certificate's DER encoding.
    pub fn sha256(&self) -> &[u8; 32] {
        &self.sha256
    }

    /// The fingerprint as 64 lowercase hex digits, as `openssl x509 -fingerprint -sha256`
    /// prints it without colons.
    pub fn fingerprint_hex(&self) -> String {
        use fmt::Write;
        let mut out = String::with_capacity(64);
        for b in self.sha256 {
            // Invariant: writing to a String cannot fail.
            let _ = write!(out, "{b:02x}");
        }
        out
    }
}

impl fmt::Display for CertId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let subject = if self.subject.is_empty() {
            "(empty subject)"
        } else {
            &self.subject
        };
        write!(f, "{subject} (SHA-256 {})", self.fingerprint_hex())
    }
}

/// A certificate as the coverage report sees it: its identity and the names it covers.
#[derive(Clone, Debug)]
pub struct Certificate {
    id: CertId,
    identities: Identities,
}

impl Certificate {
    /// Reads a DER certificate: subject, SHA-256 fingerprint and identities (no common
    /// name).
    ///
    /// ```
    /// use misdirect_certmatch::Certificate;
    ///
    /// let cert = rcgen::generate_simple_self_signed(vec!["example.com".to_string()])?;
    /// let cert = Certificate::from_der(cert.cert.der())?;
    /// assert_eq!(cert.identities().dns_names()[0].as_str(), "example.com");
    /// assert_eq!(cert.id().fingerprint_hex().len(), 64);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_der(der: &[u8]) -> Result<Self, Error> {
        Self::from_der_with(der, LegacyCn::Deny)
    }

    /// Like [`from_der`](Certificate::from_der), with a choice about the common name.
    ///
    /// ```
    /// use misdirect_certmatch::{Certificate, LegacyCn};
    ///
    /// let cert = rcgen::generate_simple_self_signed(vec!["example.com".to_string()])?;
    /// let cert = Certificate::from_der_with(cert.cert.der(), LegacyCn::Allow)?;
    /// assert_eq!(cert.identities().dns_names().len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_der_with(der: &[u8], legacy_cn: LegacyCn) -> Result<Self, Error> {
        let cert = parse_certificate(der)?;
        let identities = Identities::from_x509(&cert, legacy_cn);
        let sha256: [u8; 32] = Sha256::digest(der).into();
        Ok(Self {
            id: CertId::new(cert.subject().to_string(), sha256),
            identities,
        })
    }

    /// A certificate from an identity and identities given directly.
    ///
    /// ```
    /// use misdirect_certmatch::{CertId, Certificate, Identities};
    ///
    /// let ids = Identities::from_patterns(["*.example.com".parse()?]);
    /// let cert = Certificate::new(CertId::new("CN=wild", [0; 32]), ids);
    /// assert_eq!(cert.id().subject(), "CN=wild");
    /// # Ok::<(), misdirect_certmatch::Error>(())
    /// ```
    pub fn new(id: CertId, identities: Identities) -> Self {
        Self { id, identities }
    }

    /// Subject and fingerprint.
    pub fn id(&self) -> &CertId {
        &self.id
    }

    /// The names the certificate covers.
    pub fn identities(&self) -> &Identities {
        &self.identities
    }
}

/// A virtual host as the coverage report sees it: a name for reports and the patterns
/// it serves.
///
/// ```
/// use misdirect_certmatch::VirtualHost;
///
/// let vhost = VirtualHost::new("shop", ["shop.example.com".parse()?, "*.shop.example.com".parse()?]);
/// assert_eq!(vhost.name(), "shop");
/// assert_eq!(vhost.patterns().len(), 2);
/// # Ok::<(), misdirect_certmatch::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtualHost {
    name: String,
    patterns: Vec<Pattern>,
}

impl VirtualHost {
    /// A virtual host called `name` serving `patterns`.
    pub fn new(name: impl Into<String>, patterns: impl IntoIterator<Item = Pattern>) -> Self {
        Self {
            name: name.into(),
            patterns: patterns.into_iter().collect(),
        }
    }

    /// The name used in reports.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The patterns it serves.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }
}

/// One disagreement between certificates and virtual hosts.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// The certificate covers these names but no virtual host serves them: a client that
    /// coalesces onto a connection with this certificate (RFC 9113 §9.1.1) and asks for
    /// one of them gets 421 (RFC 9110 §15.5.20).
    CoveredNotServed {
        /// The certificate.
        certificate: CertId,
        /// Its identities that no virtual host serves.
        names: Vec<Pattern>,
    },
    /// The virtual host serves these names but no certificate covers them: TLS clients
    /// fail the handshake (RFC 9110 §4.3.4). A served wildcard counts as covered only by
    /// the same wildcard in a certificate.
    ServedNotCovered {
        /// The virtual host's name.
        virtual_host: String,
        /// Its patterns that no certificate covers.
        names: Vec<Pattern>,
    },
    /// A certificate's wildcard is served only for some names under it: every other name
    /// it covers gets 421 from coalescing clients.
    WildcardPartlyServed {
        /// The certificate.
        certificate: CertId,
        /// The wildcard.
        wildcard: DnsPattern,
        /// The names under it that some virtual host serves.
        served: Vec<Pattern>,
    },
    /// The certificate covers names of several virtual hosts: clients may coalesce their
    /// requests onto one connection, so those virtual hosts must agree on TLS
    /// requirements or answer 421.
    SharedCertificate {
        /// The certificate.
        certificate: CertId,
        /// The virtual hosts, in configuration order.
        virtual_hosts: Vec<String>,
    },
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CoveredNotServed { certificate, names } => write!(
                f,
                "certificate {certificate} covers {} that no virtual host serves \
                 (coalescing clients get 421)",
                list(names)
            ),
            Self::ServedNotCovered {
                virtual_host,
                names,
            } => write!(
                f,
                "virtual host {virtual_host:?} serves {} that no certificate covers \
                 (TLS handshakes fail)",
                list(names)
            ),
            Self::WildcardPartlyServed {
                certificate,
                wildcard,
                served,
            } => write!(
                f,
                "certificate {certificate} covers {wildcard} but only {} is served \
                 (other names get 421)",
                list(served)
            ),
            Self::SharedCertificate {
                certificate,
                virtual_hosts,
            } => write!(
                f,
                "certificate {certificate} is shared by virtual hosts {}",
                virtual_hosts.join(", ")
            ),
        }
    }
}

fn list(names: &[Pattern]) -> String {
    names
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The coverage report: where certificates and virtual hosts disagree.
///
/// ```
/// use misdirect_certmatch::{CertId, Certificate, Coverage, Finding, Identities, VirtualHost};
///
/// let wild = Certificate::new(
///     CertId::new("CN=*.example.com", [1; 32]),
///     Identities::from_patterns(["*.example.com".parse()?]),
/// );
/// let vhosts = [
///     VirtualHost::new("www", ["www.example.com".parse()?]),
///     VirtualHost::new("api", ["api.example.com".parse()?, "api.example.org".parse()?]),
/// ];
/// let report = Coverage::analyse(&[wild], &vhosts);
/// assert!(matches!(report.findings()[0], Finding::WildcardPartlyServed { .. }));
/// assert!(matches!(report.findings()[1], Finding::SharedCertificate { .. }));
/// assert!(matches!(report.findings()[2], Finding::ServedNotCovered { .. }));
/// # Ok::<(), misdirect_certmatch::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Coverage {
    findings: Vec<Finding>,
}

impl Coverage {
    /// Compares `certificates` with the names each virtual host in `served` serves.
    /// Findings come per certificate (in order), then per virtual host.
    pub fn analyse(certificates: &[Certificate], served: &[VirtualHost]) -> Self {
        let served_index = ServedIndex::new(served);
        let covered = CoveredIndex::new(certificates);
        let mut findings = Vec::new();
        for cert in certificates {
            analyse_certificate(cert, &served_index, served, &mut findings);
        }
        for vhost in served {
            let names: Vec<Pattern> = vhost
                .patterns
                .iter()
                .filter(|p| !covered.covers(p))
                .cloned()
                .collect();
            if !names.is_empty() {
                findings.push(Finding::ServedNotCovered {
                    virtual_host: vhost.name.clone(),
                    names,
                });
            }
        }
        Self { findings }
    }

    /// Every finding.
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    /// Whether nothing was found.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }
}

fn analyse_certificate(
    cert: &Certificate,
    index: &ServedIndex<'_>,
    served: &[VirtualHost],
    findings: &mut Vec<Finding>,
) {
    let mut users = BTreeSet::new();
    let mut not_served = Vec::new();
    let mut partial = Vec::new();
    for pattern in cert.identities.dns_names() {
        if !pattern.is_wildcard() {
            let vhosts = index.serving_name(pattern.as_str());
            if vhosts.is_empty() {
                not_served.push(Pattern::Dns(pattern.clone()));
            }
            users.extend(vhosts);
            continue;
        }
        if pattern.is_public_suffix_wildcard() {
            // Covers nothing, so nothing can be unserved.
            continue;
        }
        if let Some(vhosts) = index.wildcards.get(pattern.base()) {
            users.extend(vhosts.iter().copied());
            continue;
        }
        match index.children.get(pattern.base()) {
            Some(children) => {
                let mut names = Vec::new();
                for &(name, vhost) in children {
                    users.insert(vhost);
                    if !names.iter().any(|n: &Pattern| n.as_dns() == Some(name)) {
                        names.push(Pattern::Dns(name.clone()));
                    }
                }
                partial.push((pattern.clone(), names));
            }
            None => not_served.push(Pattern::Dns(pattern.clone())),
        }
    }
    for ip in cert.identities.ip_addresses() {
        match index.ips.get(ip) {
            Some(vhosts) => users.extend(vhosts.iter().copied()),
            None => not_served.push(Pattern::Ip(*ip)),
        }
    }
    if !not_served.is_empty() {
        findings.push(Finding::CoveredNotServed {
            certificate: cert.id.clone(),
            names: not_served,
        });
    }
    for (wildcard, served_names) in partial {
        findings.push(Finding::WildcardPartlyServed {
            certificate: cert.id.clone(),
            wildcard,
            served: served_names,
        });
    }
    if users.len() > 1 {
        findings.push(Finding::SharedCertificate {
            certificate: cert.id.clone(),
            virtual_hosts: users.into_iter().map(|i| served[i].name.clone()).collect(),
        });
    }
}

/// Which virtual hosts serve what.
struct ServedIndex<'a> {
    exact: HashMap<&'a str, Vec<usize>>,
    wildcards: HashMap<&'a str, Vec<usize>>,
    ips: HashMap<IpAddr, Vec<usize>>,
    /// Exact served names by parent, for partly served wildcards.
    children: HashMap<&'a str, Vec<(&'a DnsPattern, usize)>>,
}

impl<'a> ServedIndex<'a> {
    fn new(served: &'a [VirtualHost]) -> Self {
        let mut index = Self {
            exact: HashMap::new(),
            wildcards: HashMap::new(),
            ips: HashMap::new(),
            children: HashMap::new(),
        };
        for (i, vhost) in served.iter().enumerate() {
            for pattern in &vhost.patterns {
                match pattern {
                    Pattern::Dns(dns) if dns.is_wildcard() => {
                        if !dns.is_public_suffix_wildcard() {
                            index.wildcards.entry(dns.base()).or_default().push(i);
                        }
                    }
                    Pattern::Dns(dns) => {
                        index.exact.entry(dns.as_str()).or_default().push(i);
                        if let Some(parent) = wildcard::parent_str(dns.as_str()) {
                            index.children.entry(parent).or_default().push((dns, i));
                        }
                    }
                    Pattern::Ip(ip) => index.ips.entry(*ip).or_default().push(i),
                }
            }
        }
        index
    }

    /// Virtual hosts serving the exact name `name`, directly or by a wildcard.
    fn serving_name(&self, name: &str) -> Vec<usize> {
        let mut out: Vec<usize> = self.exact.get(name).cloned().unwrap_or_default();
        if let Some(vhosts) =
            wildcard::parent_str(name).and_then(|parent| self.wildcards.get(parent))
        {
            out.extend(vhosts.iter().copied());
        }
        out
    }
}

/// What all certificates cover together.
struct CoveredIndex<'a> {
    exact: HashSet<&'a str>,
    wildcards: HashSet<&'a str>,
    ips: HashSet<IpAddr>,
}

impl<'a> CoveredIndex<'a> {
    fn new(certificates: &'a [Certificate]) -> Self {
        let mut index = Self {
            exact: HashSet::new(),
            wildcards: HashSet::new(),
            ips: HashSet::new(),
        };
        for cert in certificates {
            for dns in cert.identities.dns_names() {
                if !dns.is_wildcard() {
                    index.exact.insert(dns.as_str());
                } else if wildcard::usable(dns.base().as_bytes()) {
                    index.wildcards.insert(dns.base());
                }
            }
            index
                .ips
                .extend(cert.identities.ip_addresses().iter().copied());
        }
        index
    }

    fn covers(&self, pattern: &Pattern) -> bool {
        match pattern {
            Pattern::Dns(dns) if dns.is_wildcard() => self.wildcards.contains(dns.base()),
            Pattern::Dns(dns) => {
                self.exact.contains(dns.as_str())
                    || wildcard::parent_str(dns.as_str())
                        .is_some_and(|parent| self.wildcards.contains(parent))
            }
            Pattern::Ip(ip) => self.ips.contains(ip),
        }
    }
}
