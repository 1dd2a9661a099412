//! Configuration audit: the 421 hazards and client-certificate guarantees of a listener,
//! found without opening a socket.

use core::fmt;
use core::fmt::Write as _;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use misdirect_authority::{Host, RequestTarget};
use misdirect_certmatch::{
    CertId, Certificate, Coverage, Finding as CoverageFinding, Identities, Pattern,
};

use crate::decide::{ClientCert, ConnectionContext, Decision, VerifiedClientCert, decide};
use crate::listener::{Handshake, Listener};
use crate::reason::Reason;
use crate::vhost::{
    Alpn, ClientAuth, Policy, TlsVersion, TrustAnchorsId, VhostId, VirtualHost, VirtualHosts,
};

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
    /// Host names a presented certificate covers but no virtual host serves: coalescing
    /// clients get 421 there (warning).
    CoveredNotServed,
    /// A wildcard certificate whose names are only partly served (warning).
    WildcardPartlyServed,
    /// A connection made for one virtual host may carry requests for another whose names
    /// its certificate covers, but some TLS version, ALPN protocol or client certificate it
    /// may negotiate does not meet the other's requirements: those requests get 421
    /// (warning).
    SharedCertDifferentTls,
    /// Strict policy on virtual hosts whose names another's certificate covers: every
    /// coalesced request gets 421 (warning).
    StrictWithSharedCert,
    /// The listener's own port is not among the public ports (warning).
    ListenPortNotPublic,
    /// A certificate that covers names of several virtual hosts: which virtual hosts present
    /// it, and which others it merely covers (info).
    SharedCertificate,
    /// Which virtual hosts' requests a connection made for another may carry (info).
    Coalescing,
    /// IP addresses a presented certificate covers that no virtual host serves (info:
    /// nothing to fix, and not a reason to serve them).
    CoveredIpAddress,
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
            Self::CoveredIpAddress => "covered-ip-address",
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
            Self::SharedCertificate | Self::Coalescing | Self::CoveredIpAddress => Severity::Info,
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
            Self::CoveredIpAddress => "nothing to do",
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
/// use misdirect_coalesce::{Audit, FindingKind, Listener, VirtualHost, VirtualHosts};
///
/// let cert = Arc::new(Identities::from_patterns(["a.test".parse()?, "b.test".parse()?]));
/// let mut table = VirtualHosts::builder(Scheme::Https);
/// table.add(VirtualHost::new("a", cert).pattern("a.test".parse()?));
/// let vhosts = table.port(443).build()?;
///
/// let listener = Listener::new(vhosts);
/// let audit = Audit::run(&listener, &[Some(CertId::new("CN=a.test", [7; 32]))], Some(443));
/// let kinds: Vec<_> = audit.findings().iter().map(|f| f.kind()).collect();
/// assert_eq!(kinds, [FindingKind::CoveredNotServed]); // b.test: coalescing clients get 421
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Audit {
    findings: Vec<AuditFinding>,
}

impl Audit {
    /// Audits a listener: its virtual hosts as it will serve them, with connections made
    /// through the listener's own [`select`](Listener::select) and
    /// [`on_handshake`](Listener::on_handshake), as a server drives it; `cert_ids[i]` identifies the
    /// certificate of the i-th virtual host (subject and fingerprint, for the report; `None`
    /// when unknown — virtual hosts without an id are never treated as sharing one);
    /// `listen_port` is the port the listener binds, when known.
    ///
    /// Findings come errors first, then warnings, then information.
    pub fn run(listener: &Listener, cert_ids: &[Option<CertId>], listen_port: Option<u16>) -> Self {
        let vhosts = listener.vhosts();
        let mut findings = Vec::new();
        let cert_of = |id: VhostId| cert_ids.get(id.index()).cloned().flatten();
        own_certificates(vhosts, &cert_of, &mut findings);
        coverage(vhosts, cert_ids, &mut findings);
        client_cert_floor(listener, &mut findings);
        coalescing(listener, &cert_of, &mut findings);
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

/// A distinct certificate and the virtual hosts that present it.
struct Presented {
    id: CertId,
    identities: Identities,
    /// In configuration order.
    presenters: Vec<VhostId>,
}

/// One entry per distinct certificate: the same id (fingerprint) or, without ids, the
/// same shared identities. Unknown ids are named after the first virtual host using them.
fn distinct_certificates(vhosts: &VirtualHosts, cert_ids: &[Option<CertId>]) -> Vec<Presented> {
    #[derive(PartialEq, Eq, Hash)]
    enum Key {
        Fingerprint([u8; 32]),
        Identities(*const Identities),
    }
    let mut out: Vec<Presented> = Vec::new();
    let mut seen: HashMap<Key, usize> = HashMap::new();
    for (id, v) in vhosts.iter() {
        let known = cert_ids.get(id.index()).cloned().flatten();
        let key = match &known {
            Some(cert_id) => Key::Fingerprint(*cert_id.sha256()),
            None => Key::Identities(Arc::as_ptr(v.certificate())),
        };
        if let Some(&at) = seen.get(&key) {
            out[at].presenters.push(id);
            continue;
        }
        seen.insert(key, out.len());
        out.push(Presented {
            id: known
                .unwrap_or_else(|| CertId::new(format!("(certificate of {})", v.name()), [0; 32])),
            identities: (**v.certificate()).clone(),
            presenters: vec![id],
        });
    }
    out
}

/// A concrete host for a pattern: itself, or `DnsPattern::example_host` under a wildcard.
fn probe_host(pattern: &Pattern) -> Option<Host> {
    match pattern {
        Pattern::Ip(ip) => Some(Host::from(*ip)),
        Pattern::Dns(dns) => Some(Host::Name(dns.example_host())),
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
    let presented = distinct_certificates(vhosts, cert_ids);
    let certificates: Vec<Certificate> = presented
        .iter()
        .map(|p| Certificate::new(p.id.clone(), p.identities.clone()))
        .collect();
    let served: Vec<misdirect_certmatch::VirtualHost> = vhosts
        .iter()
        .map(|(_, v)| misdirect_certmatch::VirtualHost::new(v.name(), v.patterns().iter().cloned()))
        .collect();
    for finding in Coverage::analyse(&certificates, &served).findings() {
        match finding {
            CoverageFinding::CoveredNotServed { certificate, names } => {
                // An IP address SAN nobody serves is recorded, not reported as a hazard:
                // servers usually cannot serve IP addresses (the misdirect server's
                // configuration rejects them), and serving one is not the fix.
                let (ips, dns): (Vec<&Pattern>, Vec<&Pattern>) =
                    names.iter().partition(|p| matches!(p, Pattern::Ip(_)));
                if !dns.is_empty() {
                    findings.push(
                        AuditFinding::new(
                            FindingKind::CoveredNotServed,
                            format!(
                                "certificate {} covers {} that no virtual host serves: every coalescing browser gets a 421 there, then retries",
                                certificate.subject(),
                                join(&dns)
                            ),
                        )
                        .names(&dns)
                        .certificate(Some(certificate.clone())),
                    );
                }
                if !ips.is_empty() {
                    findings.push(
                        AuditFinding::new(
                            FindingKind::CoveredIpAddress,
                            format!(
                                "certificate {} covers IP address{} {} that no virtual host serves",
                                certificate.subject(),
                                if ips.len() == 1 { "" } else { "es" },
                                join(&ips)
                            ),
                        )
                        .names(&ips)
                        .certificate(Some(certificate.clone())),
                    );
                }
            }
            CoverageFinding::ServedNotCovered { virtual_host, names } => findings.push(
                AuditFinding::new(
                    FindingKind::ServedNotCovered,
                    format!(
                        "virtual host {virtual_host:?} serves {} that no certificate on this listener covers: TLS handshakes fail",
                        join(names)
                    ),
                )
                .names(names)
                .vhosts([virtual_host]),
            ),
            CoverageFinding::WildcardPartlyServed { certificate, wildcard, served } => findings.push(
                AuditFinding::new(
                    FindingKind::WildcardPartlyServed,
                    format!(
                        "certificate {} covers {wildcard} but only {} is served: other names under it get 421",
                        certificate.subject(),
                        join(served)
                    ),
                )
                .names(std::iter::once(wildcard.to_string()).chain(served.iter().map(ToString::to_string)))
                .certificate(Some(certificate.clone())),
            ),
            CoverageFinding::SharedCertificate { certificate, virtual_hosts } => {
                let Some(p) = presented.iter().find(|p| p.id == *certificate) else {
                    continue;
                };
                findings.push(shared_certificate(vhosts, p, virtual_hosts));
            }
            _ => {}
        }
    }
}

/// A certificate whose names cover `covered` (several virtual hosts, by name): those that
/// present it, and separately those it merely covers.
fn shared_certificate(vhosts: &VirtualHosts, p: &Presented, covered: &[String]) -> AuditFinding {
    let presenters: Vec<&str> = p
        .presenters
        .iter()
        .filter_map(|id| vhosts.get(*id))
        .map(VirtualHost::name)
        .collect();
    let others: Vec<&str> = covered
        .iter()
        .map(String::as_str)
        .filter(|name| !presenters.contains(name))
        .collect();
    let mut message = format!(
        "certificate {} is presented by virtual host{} {}",
        p.id.subject(),
        if presenters.len() == 1 { "" } else { "s" },
        presenters.join(", ")
    );
    if !others.is_empty() {
        let _ = write!(
            message,
            "; it also covers names of {}, which {}",
            match others.len() {
                1 => format!("virtual host {}", others[0]),
                _ => format!("virtual hosts {}", others.join(", ")),
            },
            match others.len() {
                1 => "presents another certificate",
                _ => "present other certificates",
            },
        );
    }
    AuditFinding::new(FindingKind::SharedCertificate, message)
        .vhosts(presenters)
        .certificate(Some(p.id.clone()))
}

/// Every TLS version, oldest first.
const TLS_VERSIONS: [TlsVersion; 2] = [TlsVersion::Tls12, TlsVersion::Tls13];

/// Every ALPN outcome a request can arrive on.
const ALPNS: [Alpn; 3] = [Alpn::H2, Alpn::Http11, Alpn::Other];

/// What a connection made for `v` may negotiate, as the server answers its SNI with `v`'s
/// own TLS configuration: any version at or above `v`'s minimum, and any protocol of `v`'s
/// ALPN list (h2 and http/1.1 when it is not restricted; http/1.1 — what no ALPN means —
/// when the list is empty).
fn negotiable(v: &VirtualHost) -> Vec<(TlsVersion, Alpn)> {
    let alpns: &[Alpn] = match v.allowed_alpn() {
        None => &[Alpn::H2, Alpn::Http11],
        Some([]) => &[Alpn::Http11],
        Some(list) => list,
    };
    let mut out = Vec::new();
    for version in TLS_VERSIONS {
        if v.min_tls_version().is_some_and(|min| version < min) {
            continue;
        }
        for &alpn in alpns {
            if !out.contains(&(version, alpn)) {
                out.push((version, alpn));
            }
        }
    }
    out
}

/// A connection as a browser makes it for `vhost`: SNI its first name, the virtual host the
/// listener selects for that SNI (its certificate, its verifier), this TLS version and ALPN
/// protocol, and a client certificate that the selected virtual host's verifier accepted
/// when `verified` — the connection a server's handshake would report.
fn browser_connection(
    listener: &Listener,
    vhost: VhostId,
    (version, alpn): (TlsVersion, Alpn),
    verified: bool,
) -> ConnectionContext {
    let sni = listener
        .vhosts()
        .get(vhost)
        .and_then(|v| v.patterns().iter().find_map(probe_host))
        .and_then(|h| h.as_name().cloned());
    let presented = listener.select(sni.as_ref()).unwrap_or(vhost);
    listener.on_handshake(
        Handshake::new(presented)
            .sni(sni)
            .tls_version(version)
            .alpn(alpn)
            .client_certificate_verified(verified),
    )
}

/// Proves the client-certificate floor for this table: for every virtual host V that asks
/// for client certificates, no connection — made for any virtual host, with any TLS version
/// and ALPN protocol, with no client certificate or one verified by other anchors — is
/// served a request for V's names.
///
/// Client-certificate states go beyond what a handshake of this table makes (certificates
/// verified by any other virtual host's anchors, or by some other CA), so the proof is
/// stronger than the server needs.
fn client_cert_floor(listener: &Listener, findings: &mut Vec<AuditFinding>) {
    let vhosts = listener.vhosts();
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
            .map(|a| ClientCert::Verified(VerifiedClientCert::assertion(*a)))
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
                    for version in TLS_VERSIONS {
                        for alpn in ALPNS {
                            let ctx = browser_connection(listener, conn_id, (version, alpn), false)
                                .client_cert(state);
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
/// browser's connection made for P gets when it carries a request for V, for every TLS
/// version and ALPN protocol that connection may negotiate ([`negotiable`]).
fn coalescing(
    listener: &Listener,
    cert_of: &dyn Fn(VhostId) -> Option<CertId>,
    findings: &mut Vec<AuditFinding>,
) {
    let vhosts = listener.vhosts();
    let mut shared_map: Vec<String> = Vec::new();
    let mut strict_reported = BTreeSet::new();
    for (p_id, p) in vhosts.iter() {
        // A browser that has a certificate for P's verifier presents it.
        let client = p.client_auth_required() != ClientAuth::None;
        let negotiable = negotiable(p);
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
            // (negotiated, reason, served anyway under warn_only) for each refusal.
            let mut refused: Vec<((TlsVersion, Alpn), Reason, bool)> = Vec::new();
            for &negotiated in &negotiable {
                let ctx = browser_connection(listener, p_id, negotiated, client);
                match decide(vhosts, &ctx, &target) {
                    Decision::Serve {
                        warning: Some(reason),
                        ..
                    } => refused.push((negotiated, reason, true)),
                    Decision::Misdirected { reason, .. } => {
                        refused.push((negotiated, reason, false))
                    }
                    _ => {}
                }
            }
            if refused.is_empty() {
                shared_map.push(format!("{} → {}", p.name(), v.name()));
                continue;
            }
            let finding = |kind, message| {
                AuditFinding::new(kind, message)
                    .names(hosts.iter())
                    .vhosts([p.name(), v.name()])
                    .certificate(cert_of(p_id))
            };
            let tls = refused
                .iter()
                .filter(|(_, r, _)| {
                    matches!(r, Reason::TlsVersionBelowMinimum | Reason::AlpnNotAllowed)
                })
                // The case to name: the oldest version, then a protocol V does not allow.
                .min_by_key(|((version, alpn), _, _)| {
                    (*version, v.allowed_alpn().is_none_or(|l| l.contains(alpn)))
                });
            if let Some(&((version, alpn), reason, warn_only)) = tls {
                let outcome = match warn_only {
                    false => format!("get 421 {}", reason.code()),
                    true => format!("would get 421 {} (warn_only serves them)", reason.code()),
                };
                findings.push(finding(
                    FindingKind::SharedCertDifferentTls,
                    format!(
                        "a connection made for {} may negotiate {} and {}; {} requires {}: coalesced requests for {host} there {outcome}",
                        p.name(),
                        tls_name(version),
                        alpn_name(alpn),
                        v.name(),
                        requirements(v),
                    ),
                ));
            }
            let strict = refused
                .iter()
                .find(|(_, r, _)| matches!(r, Reason::SniVhostDiffers | Reason::NoSni));
            let other = refused.iter().find(|(_, r, _)| {
                !matches!(
                    r,
                    Reason::TlsVersionBelowMinimum
                        | Reason::AlpnNotAllowed
                        | Reason::SniVhostDiffers
                        | Reason::NoSni
                )
            });
            for (kind, &(_, reason, _)) in [
                (FindingKind::StrictWithSharedCert, strict),
                (FindingKind::SharedCertDifferentTls, other),
            ]
            .into_iter()
            .filter_map(|(kind, r)| Some((kind, r?)))
            {
                if kind == FindingKind::StrictWithSharedCert && !strict_reported.insert(v_id) {
                    continue;
                }
                findings.push(finding(
                    kind,
                    format!(
                        "connections made for {:?} may carry requests for {host} (its certificate covers it), but {:?} answers them 421 ({}) under the {} policy",
                        p.name(),
                        v.name(),
                        reason.code(),
                        policy_name(vhosts.policy_for(v_id)),
                    ),
                ));
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

/// `TLS 1.2`, `TLS 1.3`.
fn tls_name(version: TlsVersion) -> &'static str {
    match version {
        TlsVersion::Tls12 => "TLS 1.2",
        TlsVersion::Tls13 => "TLS 1.3",
    }
}

/// `h2`, `http/1.1`, or `another protocol`.
fn alpn_name(alpn: Alpn) -> &'static str {
    match alpn {
        Alpn::H2 => "h2",
        Alpn::Http11 => "http/1.1",
        Alpn::Other => "another protocol",
    }
}

/// A virtual host's TLS version and ALPN requirements: `TLS 1.3 and h2`,
/// `TLS 1.2 or later and h2 or http/1.1`.
fn requirements(v: &VirtualHost) -> String {
    let mut parts = Vec::new();
    match v.min_tls_version() {
        Some(TlsVersion::Tls12) => parts.push("TLS 1.2 or later".to_owned()),
        Some(version) => parts.push(tls_name(version).to_owned()),
        None => {}
    }
    if let Some(list) = v.allowed_alpn() {
        parts.push(match list {
            [] => "no ALPN protocol".to_owned(),
            _ => list
                .iter()
                .map(|a| alpn_name(*a))
                .collect::<Vec<_>>()
                .join(" or "),
        });
    }
    parts.join(" and ")
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

#[cfg(test)]
mod tests {
    use misdirect_authority::Scheme;

    use super::*;

    fn cert(names: &[&str]) -> Arc<Identities> {
        Arc::new(Identities::from_patterns(
            names.iter().map(|n| n.parse().expect("valid")),
        ))
    }

    fn vhost(name: &str, cert: &Arc<Identities>) -> VirtualHost {
        VirtualHost::new(name, cert.clone()).pattern(name.parse().expect("valid"))
    }

    fn audit(vhosts: Vec<VirtualHost>, ids: &[u8]) -> Audit {
        let mut b = VirtualHosts::builder(Scheme::Https);
        for v in vhosts {
            b.add(v);
        }
        let table = b.port(443).build().expect("valid");
        let ids: Vec<_> = ids
            .iter()
            .map(|n| Some(CertId::new(format!("CN=cert{n}"), [*n; 32])))
            .collect();
        Audit::run(&Listener::new(table), &ids, Some(443))
    }

    fn messages(audit: &Audit, kind: FindingKind) -> Vec<&str> {
        audit
            .findings()
            .iter()
            .filter(|f| f.kind() == kind)
            .map(AuditFinding::message)
            .collect()
    }

    /// Each case: the two virtual hosts' (min TLS, ALPN) sharing one certificate, and the
    /// `shared-cert-different-tls` messages expected. A connection made for a virtual host
    /// negotiates what that virtual host allows, not TLS 1.3 and h2 regardless.
    #[test]
    fn tls_requirements_on_a_shared_certificate() {
        type Side = (Option<TlsVersion>, Option<&'static [Alpn]>);
        const H1: &[Alpn] = &[Alpn::Http11];
        const H2: &[Alpn] = &[Alpn::H2];
        const BOTH: &[Alpn] = &[Alpn::H2, Alpn::Http11];
        let cases: &[(Side, Side, &[&str])] = &[
            // Both http/1.1 only: every connection negotiates http/1.1, which both allow.
            ((None, Some(H1)), (Some(TlsVersion::Tls12), Some(H1)), &[]),
            ((None, None), (None, None), &[]),
            (
                (Some(TlsVersion::Tls13), Some(H2)),
                (Some(TlsVersion::Tls13), Some(BOTH)),
                &[
                    "a connection made for b.test may negotiate TLS 1.3 and http/1.1; a.test requires TLS 1.3 and h2: coalesced requests for a.test there get 421 alpn-not-allowed",
                ],
            ),
            // The strict one is served on its own connections' terms; the other's
            // connections may be TLS 1.2 or http/1.1.
            (
                (Some(TlsVersion::Tls13), Some(H2)),
                (Some(TlsVersion::Tls12), Some(BOTH)),
                &[
                    "a connection made for b.test may negotiate TLS 1.2 and http/1.1; a.test requires TLS 1.3 and h2: coalesced requests for a.test there get 421 tls-version-below-minimum",
                ],
            ),
            (
                (Some(TlsVersion::Tls13), None),
                (None, Some(H1)),
                &[
                    "a connection made for a.test may negotiate TLS 1.3 and h2; b.test requires http/1.1: coalesced requests for b.test there get 421 alpn-not-allowed",
                    "a connection made for b.test may negotiate TLS 1.2 and http/1.1; a.test requires TLS 1.3: coalesced requests for a.test there get 421 tls-version-below-minimum",
                ],
            ),
            // Both directions fail.
            (
                (None, Some(H2)),
                (None, Some(H1)),
                &[
                    "a connection made for a.test may negotiate TLS 1.2 and h2; b.test requires http/1.1: coalesced requests for b.test there get 421 alpn-not-allowed",
                    "a connection made for b.test may negotiate TLS 1.2 and http/1.1; a.test requires h2: coalesced requests for a.test there get 421 alpn-not-allowed",
                ],
            ),
        ];
        let s = cert(&["a.test", "b.test"]);
        for (i, ((a_min, a_alpn), (b_min, b_alpn), expected)) in cases.iter().enumerate() {
            let side = |v: VirtualHost, min: Option<TlsVersion>, alpn: Option<&[Alpn]>| {
                let v = match min {
                    Some(min) => v.min_tls(min),
                    None => v,
                };
                match alpn {
                    Some(alpn) => v.alpn(alpn.iter().copied()),
                    None => v,
                }
            };
            let audit = audit(
                vec![
                    side(vhost("a.test", &s), *a_min, *a_alpn),
                    side(vhost("b.test", &s), *b_min, *b_alpn),
                ],
                &[1, 1],
            );
            assert_eq!(
                messages(&audit, FindingKind::SharedCertDifferentTls),
                *expected,
                "case {i}"
            );
        }
    }

    #[test]
    fn shared_certificate_names_its_presenters() {
        let ab = cert(&["a.test", "b.test", "c.test"]);
        let b = cert(&["b.test"]);
        let audit = audit(
            vec![
                vhost("a.test", &ab),
                vhost("b.test", &b),
                vhost("c.test", &ab),
            ],
            &[1, 2, 1],
        );
        let shared: Vec<_> = audit
            .findings()
            .iter()
            .filter(|f| f.kind() == FindingKind::SharedCertificate)
            .collect();
        assert_eq!(shared.len(), 1, "{audit:?}");
        assert_eq!(
            shared[0].message(),
            "certificate CN=cert1 is presented by virtual hosts a.test, c.test; it also covers names of virtual host b.test, which presents another certificate"
        );
        assert_eq!(shared[0].vhost_names(), ["a.test", "c.test"]);
    }

    #[test]
    fn ip_addresses_are_information() {
        let s = cert(&["a.test", "192.0.2.1", "old.test"]);
        let audit = audit(vec![vhost("a.test", &s)], &[1]);
        let kinds: Vec<_> = audit.findings().iter().map(AuditFinding::kind).collect();
        assert_eq!(
            kinds,
            [FindingKind::CoveredNotServed, FindingKind::CoveredIpAddress]
        );
        assert_eq!(audit.findings()[0].host_names(), ["old.test"]);
        assert_eq!(audit.findings()[1].host_names(), ["192.0.2.1"]);
        assert_eq!(audit.findings()[1].severity(), Severity::Info);
    }
}
