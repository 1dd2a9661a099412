//! Configuration audit: the 421 hazards and client-certificate guarantees of a listener,
//! found without opening a socket.

use core::fmt;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use misdirect_authority::{Host, HostName, RequestTarget};
use misdirect_certmatch::{
    CertId, Certificate, Coverage, Finding as CoverageFinding, Identities, Pattern,
};

use crate::decide::{ClientCert, ConnectionContext, Decision, decide};
use crate::reason::Reason;
use crate::vhost::{Alpn, ClientAuth, Policy, TlsVersion, TrustAnchorsId, VhostId, VirtualHosts};

/// How much a finding matters.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// For the record: how the configuration behaves.
    Info,
    /// Works, but some clients pay for it (extra round trips, 421 retries).
    Warning,
    /// Broken or unsafe.
    Error,
}

impl Severity {
    /// `info`, `warning` or `error`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Error => "error",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an audit finding is about. [`FindingKind::code`] is stable for machine use.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FindingKind {
    /// A virtual host's name that its own certificate does not cover: clients asking for
    /// it by SNI fail the handshake (error).
    NameNotCovered,
    /// A vhost name no certificate on the listener covers (error).
    ServedNotCovered,
    /// A connection that did not authenticate for a client-certificate virtual host would be
    /// served by it (error; the policy makes this impossible, and the audit proves it).
    ClientCertBypass,
    /// Names a presented certificate covers but no virtual host serves: coalescing clients
    /// get 421 there (warning).
    CoveredNotServed,
    /// A wildcard certificate whose names are only partly served (warning).
    WildcardPartlyServed,
    /// Virtual hosts share a certificate but differ in TLS requirements: coalesced
    /// requests between them get 421 (warning).
    SharedCertDifferentTls,
    /// Strict policy on virtual hosts whose names another's certificate covers: every
    /// coalesced request gets 421 (warning).
    StrictWithSharedCert,
    /// The listener's own port is not among the public ports (warning).
    ListenPortNotPublic,
    /// A certificate shared by several virtual hosts (info).
    SharedCertificate,
    /// Which virtual hosts' requests a connection made for another may carry (info).
    Coalescing,
}

impl FindingKind {
    /// A stable code for JSON output and CI rules.
    pub const fn code(self) -> &'static str {
        match self {
            Self::NameNotCovered => "name-not-covered",
            Self::ServedNotCovered => "served-not-covered",
            Self::ClientCertBypass => "client-cert-bypass",
            Self::CoveredNotServed => "covered-not-served",
            Self::WildcardPartlyServed => "wildcard-partly-served",
            Self::SharedCertDifferentTls => "shared-cert-different-tls",
            Self::StrictWithSharedCert => "strict-with-shared-cert",
            Self::ListenPortNotPublic => "listen-port-not-public",
            Self::SharedCertificate => "shared-certificate",
            Self::Coalescing => "coalescing",
        }
    }

    /// The severity of this kind of finding.
    pub const fn severity(self) -> Severity {
        match self {
            Self::NameNotCovered | Self::ServedNotCovered | Self::ClientCertBypass => {
                Severity::Error
            }
            Self::CoveredNotServed
            | Self::WildcardPartlyServed
            | Self::SharedCertDifferentTls
            | Self::StrictWithSharedCert
            | Self::ListenPortNotPublic => Severity::Warning,
            Self::SharedCertificate | Self::Coalescing => Severity::Info,
        }
    }

    /// What to do about it.
    pub const fn advice(self) -> &'static str {
        match self {
            Self::NameNotCovered => {
                "add the name to this virtual host's certificate, or serve it from a virtual host whose certificate covers it"
            }
            Self::ServedNotCovered => "get a certificate that covers the name",
            Self::ClientCertBypass => {
                "this is a bug in the policy: do not deploy this configuration, and report it"
            }
            Self::CoveredNotServed => {
                "serve these names, or remove them from the certificate so clients do not coalesce them here"
            }
            Self::WildcardPartlyServed => {
                "serve the other names (a wildcard virtual host), or use a certificate that lists only the served names"
            }
            Self::SharedCertDifferentTls => {
                "give the virtual hosts the same TLS requirements, or separate certificates so browsers do not coalesce them"
            }
            Self::StrictWithSharedCert => {
                "use the secure policy (it keeps the client-certificate rule), or separate certificates"
            }
            Self::ListenPortNotPublic => {
                "list the listen port in public_ports, unless clients only ever reach it through a port mapping"
            }
            Self::SharedCertificate => "nothing to do; see the coalescing findings",
            Self::Coalescing => "nothing to do: these requests are served on shared connections",
        }
    }
}

/// One audit finding: what, where, and what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditFinding {
    kind: FindingKind,
    message: String,
    names: Vec<String>,
    vhosts: Vec<String>,
    certificate: Option<CertId>,
}

impl AuditFinding {
    fn new(kind: FindingKind, message: String) -> Self {
        Self {
            kind,
            message,
            names: Vec::new(),
            vhosts: Vec::new(),
            certificate: None,
        }
    }

    fn names(mut self, names: impl IntoIterator<Item = impl ToString>) -> Self {
        self.names = names.into_iter().map(|n| n.to_string()).collect();
        self
    }

    fn vhosts(mut self, vhosts: impl IntoIterator<Item = impl ToString>) -> Self {
        self.vhosts = vhosts.into_iter().map(|n| n.to_string()).collect();
        self
    }

    fn certificate(mut self, id: Option<CertId>) -> Self {
        self.certificate = id;
        self
    }

    /// What the finding is about.
    pub fn kind(&self) -> FindingKind {
        self.kind
    }

    /// Its severity.
    pub fn severity(&self) -> Severity {
        self.kind.severity()
    }

    /// One sentence saying what was found.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The host names involved.
    pub fn host_names(&self) -> &[String] {
        &self.names
    }

    /// The virtual hosts involved, by name.
    pub fn vhost_names(&self) -> &[String] {
        &self.vhosts
    }

    /// The certificate involved, if one is.
    pub fn cert_id(&self) -> Option<&CertId> {
        self.certificate.as_ref()
    }

    /// What to do about it.
    pub fn advice(&self) -> &'static str {
        self.kind.advice()
    }
}

impl fmt::Display for AuditFinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} [{}]: {}",
            self.severity(),
            self.kind.code(),
            self.message
        )
    }
}

/// The audit of one listener.
///
/// ```
/// use std::sync::Arc;
/// use misdirect_authority::Scheme;
/// use misdirect_certmatch::{CertId, Identities};
/// use misdirect_coalesce::{Audit, FindingKind, VirtualHost, VirtualHosts};
///
/// let cert = Arc::new(Identities::from_patterns(["a.test".parse()?, "b.test".parse()?]));
/// let mut table = VirtualHosts::builder(Scheme::Https);
/// table.add(VirtualHost::new("a", cert).pattern("a.test".parse()?));
/// let vhosts = table.build()?;
///
/// let audit = Audit::run(&vhosts, &[Some(CertId::new("CN=a.test", [7; 32]))], Some(443));
/// let kinds: Vec<_> = audit.findings().iter().map(|f| f.kind()).collect();
/// assert_eq!(kinds, [FindingKind::CoveredNotServed]); // b.test: coalescing clients get 421
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Audit {
    findings: Vec<AuditFinding>,
}

impl Audit {
    /// Audits a listener: `vhosts` as it will serve; `cert_ids[i]` identifies the
    /// certificate of the i-th virtual host (subject and fingerprint, for the report; `None`
    /// when unknown — virtual hosts without an id are never treated as sharing one);
    /// `listen_port` is the port the listener binds, when known.
    ///
    /// Findings come errors first, then warnings, then information.
    pub fn run(
        vhosts: &VirtualHosts,
        cert_ids: &[Option<CertId>],
        listen_port: Option<u16>,
    ) -> Self {
        let mut findings = Vec::new();
        let cert_of = |id: VhostId| cert_ids.get(id.index()).cloned().flatten();
        own_certificates(vhosts, &cert_of, &mut findings);
        coverage(vhosts, cert_ids, &mut findings);
        client_cert_floor(vhosts, &mut findings);
        coalescing(vhosts, &cert_of, &mut findings);
        if let Some(port) = listen_port
            && !vhosts.ports().contains(&port)
        {
            findings.push(
                AuditFinding::new(
                    FindingKind::ListenPortNotPublic,
                    format!(
                        "the listener binds port {port}, but public_ports is {:?}: requests naming port {port} get 421",
                        vhosts.ports()
                    ),
                )
                .names([port]),
            );
        }
        findings.sort_by_key(|f| core::cmp::Reverse(f.severity()));
        Self { findings }
    }

    /// Every finding, errors first.
    pub fn findings(&self) -> &[AuditFinding] {
        &self.findings
    }

    /// The most severe finding's severity, if any finding is above info.
    pub fn worst(&self) -> Option<Severity> {
        self.findings
            .iter()
            .map(AuditFinding::severity)
            .filter(|s| *s > Severity::Info)
            .max()
    }
}

/// One entry per distinct certificate: the same id (fingerprint) or, without ids, the
/// same shared identities. Unknown ids are named after the first virtual host using them.
fn distinct_certificates(
    vhosts: &VirtualHosts,
    cert_ids: &[Option<CertId>],
) -> Vec<(CertId, Identities)> {
    let mut out: Vec<(CertId, Identities)> = Vec::new();
    let mut seen_ids = BTreeSet::new();
    let mut seen_ptrs: Vec<*const Identities> = Vec::new();
    for (id, v) in vhosts.iter() {
        let ptr = Arc::as_ptr(v.certificate());
        let cert_id = match cert_ids.get(id.index()).cloned().flatten() {
            Some(cert_id) if seen_ids.insert(*cert_id.sha256()) => cert_id,
            Some(_) => continue,
            None if seen_ptrs.contains(&ptr) => continue,
            None => CertId::new(format!("(certificate of {})", v.name()), [0; 32]),
        };
        seen_ptrs.push(ptr);
        out.push((cert_id, (**v.certificate()).clone()));
    }
    out
}

/// A concrete host for a pattern: itself, or a probe label under a wildcard.
fn probe_host(pattern: &Pattern) -> Option<Host> {
    match pattern {
        Pattern::Ip(ip) => Some(Host::from(*ip)),
        Pattern::Dns(dns) if dns.is_wildcard() => {
            HostName::parse(format!("misdirect-probe.{}", dns.base()).as_bytes())
                .ok()
                .map(Host::Name)
        }
        Pattern::Dns(dns) => HostName::parse(dns.as_str().as_bytes())
            .ok()
            .map(Host::Name),
        _ => None,
    }
}

fn target_for(host: &Host, vhosts: &VirtualHosts) -> Option<RequestTarget> {
    let port = vhosts
        .ports()
        .first()
        .copied()
        .unwrap_or(vhosts.scheme().default_port());
    let authority = format!("{host}:{port}");
    RequestTarget::from_h2(Some(authority.as_bytes()), std::iter::empty())
        .ok()
        .map(|t| t.with_scheme(vhosts.scheme()))
}

fn own_certificates(
    vhosts: &VirtualHosts,
    cert_of: &dyn Fn(VhostId) -> Option<CertId>,
    findings: &mut Vec<AuditFinding>,
) {
    let anywhere = |h: &Host| {
        vhosts
            .iter()
            .any(|(_, other)| other.certificate().covers(h))
    };
    for (id, v) in vhosts.iter() {
        // Names no certificate covers at all are `ServedNotCovered`, from the coverage report.
        let uncovered: Vec<&Pattern> = v
            .patterns()
            .iter()
            .filter(|p| probe_host(p).is_some_and(|h| !v.certificate().covers(&h) && anywhere(&h)))
            .collect();
        if !uncovered.is_empty() {
            findings.push(
                AuditFinding::new(
                    FindingKind::NameNotCovered,
                    format!(
                        "virtual host {:?} serves {} but its certificate does not cover {}: clients asking for {} fail the TLS handshake",
                        v.name(),
                        join(&uncovered),
                        if uncovered.len() == 1 { "it" } else { "them" },
                        if uncovered.len() == 1 { "it" } else { "them" },
                    ),
                )
                .names(&uncovered)
                .vhosts([v.name()])
                .certificate(cert_of(id)),
            );
        }
    }
}

fn coverage(vhosts: &VirtualHosts, cert_ids: &[Option<CertId>], findings: &mut Vec<AuditFinding>) {
    let mut certificates: Vec<Certificate> = Vec::new();
    for (id, cert) in distinct_certificates(vhosts, cert_ids) {
        certificates.push(Certificate::new(id, cert));
    }
    let served: Vec<misdirect_certmatch::VirtualHost> = vhosts
        .iter()
        .map(|(_, v)| misdirect_certmatch::VirtualHost::new(v.name(), v.patterns().iter().cloned()))
        .collect();
    for finding in Coverage::analyse(&certificates, &served).findings() {
        let f = match finding {
            CoverageFinding::CoveredNotServed { certificate, names } => AuditFinding::new(
                FindingKind::CoveredNotServed,
                format!(
                    "certificate {} covers {} that no virtual host serves: every coalescing browser gets a 421 there, then retries",
                    certificate.subject(),
                    join(names)
                ),
            )
            .names(names)
            .certificate(Some(certificate.clone())),
            CoverageFinding::ServedNotCovered { virtual_host, names } => AuditFinding::new(
                FindingKind::ServedNotCovered,
                format!(
                    "virtual host {virtual_host:?} serves {} that no certificate on this listener covers: TLS handshakes fail",
                    join(names)
                ),
            )
            .names(names)
            .vhosts([virtual_host]),
            CoverageFinding::WildcardPartlyServed { certificate, wildcard, served } => {
                AuditFinding::new(
                    FindingKind::WildcardPartlyServed,
                    format!(
                        "certificate {} covers {wildcard} but only {} is served: other names under it get 421",
                        certificate.subject(),
                        join(served)
                    ),
                )
                .names(std::iter::once(wildcard.to_string()).chain(served.iter().map(ToString::to_string)))
                .certificate(Some(certificate.clone()))
            }
            CoverageFinding::SharedCertificate { certificate, virtual_hosts } => AuditFinding::new(
                FindingKind::SharedCertificate,
                format!(
                    "certificate {} is shared by virtual hosts {}",
                    certificate.subject(),
                    virtual_hosts.join(", ")
                ),
            )
            .vhosts(virtual_hosts)
            .certificate(Some(certificate.clone())),
            _ => continue,
        };
        findings.push(f);
    }
}

/// A connection as a modern browser makes it for `vhost`: SNI its first name, its
/// certificate, TLS 1.3, h2, and a client certificate verified by `client` anchors.
fn browser_connection(
    vhosts: &VirtualHosts,
    vhost: VhostId,
    client: ClientCert,
) -> ConnectionContext {
    let mut ctx = ConnectionContext::new()
        .presented(vhost)
        .tls_version(TlsVersion::Tls13)
        .alpn(Alpn::H2)
        .client_cert(client);
    let sni = vhosts
        .get(vhost)
        .and_then(|v| v.patterns().iter().find_map(probe_host))
        .and_then(|h| h.as_name().cloned());
    if let Some(name) = sni {
        ctx = ctx.sni(name);
    }
    ctx
}

/// Proves the client-certificate floor for this table: for every virtual host V that asks
/// for client certificates, no connection — made for any virtual host, with no client
/// certificate or one verified by other anchors — is served a request for V's names.
fn client_cert_floor(vhosts: &VirtualHosts, findings: &mut Vec<AuditFinding>) {
    let mut anchors: BTreeSet<TrustAnchorsId> = BTreeSet::new();
    for (_, v) in vhosts.iter() {
        if let ClientAuth::Required(a) | ClientAuth::Optional(a) = v.client_auth_required() {
            anchors.insert(a);
        }
    }
    // An id no virtual host uses stands for "some other CA".
    let stranger = TrustAnchorsId::new(
        anchors
            .iter()
            .map(|a| a.get())
            .max()
            .map_or(0, |m| m.wrapping_add(1)),
    );
    for (target_id, v) in vhosts.iter() {
        let (required, own) = match v.client_auth_required() {
            ClientAuth::Required(a) => (true, a),
            ClientAuth::Optional(a) => (false, a),
            _ => continue,
        };
        let mut states: Vec<ClientCert> = anchors
            .iter()
            .chain([&stranger])
            .filter(|a| **a != own)
            .map(|a| ClientCert::Verified(*a))
            .collect();
        if required {
            states.push(ClientCert::None);
        }
        let mut bypassed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for pattern in v.patterns() {
            let Some(host) = probe_host(pattern) else {
                continue;
            };
            let Some(target) = target_for(&host, vhosts) else {
                continue;
            };
            for (conn_id, conn_vhost) in vhosts.iter() {
                for &state in &states {
                    let ctx = browser_connection(vhosts, conn_id, state);
                    if let Decision::Serve { vhost, .. } = decide(vhosts, &ctx, &target)
                        && vhost == target_id
                    {
                        bypassed
                            .entry(host.to_string())
                            .or_default()
                            .insert(conn_vhost.name().to_owned());
                    }
                }
            }
        }
        if !bypassed.is_empty() {
            findings.push(
                AuditFinding::new(
                    FindingKind::ClientCertBypass,
                    format!(
                        "virtual host {:?} requires client certificates, yet connections made for {} without one would be served",
                        v.name(),
                        bypassed.values().flatten().cloned().collect::<BTreeSet<_>>().into_iter().collect::<Vec<_>>().join(", ")
                    ),
                )
                .names(bypassed.keys())
                .vhosts([v.name()]),
            );
        }
    }
}

/// For every pair of virtual hosts P ≠ V where P's certificate covers a name of V: what a
/// browser's connection for P gets when it carries a request for V.
fn coalescing(
    vhosts: &VirtualHosts,
    cert_of: &dyn Fn(VhostId) -> Option<CertId>,
    findings: &mut Vec<AuditFinding>,
) {
    let mut shared_map: Vec<String> = Vec::new();
    let mut strict_reported = BTreeSet::new();
    for (p_id, p) in vhosts.iter() {
        let client = match p.client_auth_required() {
            ClientAuth::Required(a) | ClientAuth::Optional(a) => ClientCert::Verified(a),
            _ => ClientCert::None,
        };
        let ctx = browser_connection(vhosts, p_id, client);
        for (v_id, v) in vhosts.iter() {
            if v_id == p_id {
                continue;
            }
            let hosts: Vec<Host> = v
                .patterns()
                .iter()
                .filter_map(probe_host)
                .filter(|h| p.certificate().covers(h))
                .collect();
            let Some(host) = hosts.first() else { continue };
            let Some(target) = target_for(host, vhosts) else {
                continue;
            };
            match decide(vhosts, &ctx, &target) {
                Decision::Serve { warning: None, .. } => {
                    shared_map.push(format!("{} → {}", p.name(), v.name()));
                }
                Decision::Serve {
                    warning: Some(reason),
                    ..
                }
                | Decision::Misdirected(reason) => {
                    let kind = match reason {
                        Reason::SniVhostDiffers | Reason::NoSni => {
                            if !strict_reported.insert(v_id) {
                                continue;
                            }
                            FindingKind::StrictWithSharedCert
                        }
                        _ => FindingKind::SharedCertDifferentTls,
                    };
                    let policy = vhosts.policy_for(v_id);
                    findings.push(
                        AuditFinding::new(
                            kind,
                            format!(
                                "connections made for {:?} may carry requests for {host} (its certificate covers it), but {:?} answers them 421 ({}) under the {} policy",
                                p.name(),
                                v.name(),
                                reason.code(),
                                policy_name(policy),
                            ),
                        )
                        .names(hosts.iter())
                        .vhosts([p.name(), v.name()])
                        .certificate(cert_of(p_id)),
                    );
                }
                _ => {}
            }
        }
    }
    if !shared_map.is_empty() {
        findings.push(
            AuditFinding::new(
                FindingKind::Coalescing,
                format!("served on shared connections: {}", shared_map.join(", ")),
            )
            .vhosts(shared_map),
        );
    }
}

fn policy_name(policy: Policy) -> &'static str {
    policy.as_str()
}

fn join<T: ToString>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
