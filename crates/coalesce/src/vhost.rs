use core::fmt;
use std::borrow::Cow;
use std::sync::Arc;

use misdirect_authority::{Host, RequestTarget, Scheme};
use misdirect_certmatch::{HostIndex, HostIndexBuilder, Identities, Pattern};
use misdirect_response::RenderReason;

use crate::reason::Reason;

/// Identifies a virtual host in a [`VirtualHosts`] table (its position).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VhostId(u32);

impl VhostId {
    /// The position of the virtual host in its table.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for VhostId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Identifies a set of trust anchors (CA certificates) that verify client certificates.
///
/// A server gives each distinct client-CA configuration its own id and records on each
/// connection which id verified the client certificate; the policy compares ids, so a
/// certificate verified for one virtual host never counts for another with other anchors.
///
/// ```
/// use misdirect_coalesce::TrustAnchorsId;
///
/// let staff = TrustAnchorsId::new(1);
/// assert_eq!(staff.get(), 1);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrustAnchorsId(u32);

impl TrustAnchorsId {
    /// Wraps a server-assigned id.
    pub const fn new(id: u32) -> Self {
        Self(id)
    }

    /// The server-assigned id.
    pub const fn get(self) -> u32 {
        self.0
    }
}

/// A virtual host's client-certificate requirement.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ClientAuth {
    /// No client certificate is asked for.
    #[default]
    None,
    /// A client certificate is asked for; if the connection has one, these anchors must
    /// have verified it.
    Optional(TrustAnchorsId),
    /// The connection must carry a client certificate verified by these anchors.
    Required(TrustAnchorsId),
}

/// A TLS protocol version, ordered oldest first.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TlsVersion {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

/// The application protocol a TLS connection negotiated (RFC 7301).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Alpn {
    /// `http/1.1`, also assumed when no ALPN was negotiated.
    Http11,
    /// `h2`.
    H2,
    /// Anything else.
    Other,
}

impl Alpn {
    /// Classifies an ALPN protocol id.
    ///
    /// ```
    /// use misdirect_coalesce::Alpn;
    ///
    /// assert_eq!(Alpn::from_id(b"h2"), Alpn::H2);
    /// assert_eq!(Alpn::from_id(b"spdy/3"), Alpn::Other);
    /// ```
    pub fn from_id(id: &[u8]) -> Self {
        match id {
            b"h2" => Self::H2,
            b"http/1.1" => Self::Http11,
            _ => Self::Other,
        }
    }
}

/// How strictly a request's virtual host must match its connection.
///
/// Every level checks the listener's scheme and port, that some virtual host serves the
/// host, that the connection's certificate covers it, and the client-certificate rule.
/// No level relaxes the client-certificate rule.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Policy {
    /// Also require the host's virtual host to be the SNI's: no coalescing across virtual
    /// hosts (Apache's `SSLVHostSNIPolicy strict`).
    Strict,
    /// Also check the virtual host's minimum TLS version and ALPN: coalescing is served
    /// whenever the connection is good enough for the target (the default).
    #[default]
    Secure,
    /// Only the certificate and the client-certificate rule (plus scheme and port).
    CertOnly,
}

impl Policy {
    /// The configuration spelling: `strict`, `secure`, `cert-only`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Strict => "strict",
            Self::Secure => "secure",
            Self::CertOnly => "cert-only",
        }
    }
}

/// What to answer for a host no virtual host serves.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum UnknownHost {
    /// 421 (RFC 9110 §15.5.20: the target does not match a configured origin).
    #[default]
    Misdirected,
    /// 404.
    NotFound,
    /// Serve this virtual host, like nginx's `default_server`. The certificate presented on
    /// the connection must still cover the host, with or without `warn_only`.
    Default(VhostId),
}

/// One virtual host: the names it serves, the certificate it presents and the TLS
/// requirements a connection must meet to reach it.
///
/// ```
/// use misdirect_certmatch::Identities;
/// use misdirect_coalesce::{ClientAuth, TlsVersion, TrustAnchorsId, VirtualHost};
///
/// let cert = Identities::from_patterns(["admin.example".parse()?]);
/// let admin = VirtualHost::new("admin", cert)
///     .pattern("admin.example".parse()?)
///     .client_auth(ClientAuth::Required(TrustAnchorsId::new(1)))
///     .min_tls(TlsVersion::Tls13);
/// assert_eq!(admin.patterns().len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct VirtualHost {
    /// Shared with every refusal record that names it.
    name: Arc<str>,
    patterns: Vec<Pattern>,
    certificate: Arc<Identities>,
    client_auth: ClientAuth,
    min_tls: Option<TlsVersion>,
    alpn: Option<Vec<Alpn>>,
    policy: Option<Policy>,
}

impl VirtualHost {
    /// A virtual host called `name` (for logs) presenting a certificate with these
    /// identities. Add the names it serves with [`pattern`](Self::pattern).
    pub fn new(name: impl Into<String>, certificate: impl Into<Arc<Identities>>) -> Self {
        Self {
            name: Arc::from(name.into()),
            patterns: Vec::new(),
            certificate: certificate.into(),
            client_auth: ClientAuth::None,
            min_tls: None,
            alpn: None,
            policy: None,
        }
    }

    /// Serves this name or wildcard (`*.example.com`) or IP address.
    pub fn pattern(mut self, pattern: Pattern) -> Self {
        self.patterns.push(pattern);
        self
    }

    /// Serves each of these.
    pub fn patterns_from(mut self, patterns: impl IntoIterator<Item = Pattern>) -> Self {
        self.patterns.extend(patterns);
        self
    }

    /// Sets the client-certificate requirement.
    pub fn client_auth(mut self, client_auth: ClientAuth) -> Self {
        self.client_auth = client_auth;
        self
    }

    /// Sets the minimum TLS version.
    pub fn min_tls(mut self, version: TlsVersion) -> Self {
        self.min_tls = Some(version);
        self
    }

    /// Allows only these ALPN protocols.
    pub fn alpn(mut self, allowed: impl IntoIterator<Item = Alpn>) -> Self {
        self.alpn = Some(allowed.into_iter().collect());
        self
    }

    /// Overrides the listener's policy level for requests to this virtual host.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// The name used in logs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name, shared.
    pub(crate) fn shared_name(&self) -> &Arc<str> {
        &self.name
    }

    /// The names it serves.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// The identities of the certificate it presents.
    pub fn certificate(&self) -> &Arc<Identities> {
        &self.certificate
    }

    /// Its client-certificate requirement.
    pub fn client_auth_required(&self) -> ClientAuth {
        self.client_auth
    }

    /// Its minimum TLS version, if any.
    pub fn min_tls_version(&self) -> Option<TlsVersion> {
        self.min_tls
    }

    /// Its allowed ALPN protocols, if restricted.
    pub fn allowed_alpn(&self) -> Option<&[Alpn]> {
        self.alpn.as_deref()
    }

    /// Its policy override, if any.
    pub fn policy_override(&self) -> Option<Policy> {
        self.policy
    }
}

/// A listener's virtual hosts and the rules it serves them by.
///
/// ```
/// use misdirect_authority::Scheme;
/// use misdirect_certmatch::Identities;
/// use misdirect_coalesce::{Policy, VirtualHost, VirtualHosts};
///
/// let shared = std::sync::Arc::new(Identities::from_patterns(["*.example.com".parse()?]));
/// let mut b = VirtualHosts::builder(Scheme::Https);
/// let a = b.add(VirtualHost::new("a", shared.clone()).pattern("a.example.com".parse()?));
/// b.add(VirtualHost::new("b", shared).pattern("b.example.com".parse()?));
/// let vhosts = b.port(443).policy(Policy::Secure).default_vhost(a).build()?;
/// assert_eq!(vhosts.lookup(&"A.example.com".parse()?), Some(a));
/// assert_eq!(vhosts.lookup(&"c.example.com".parse()?), None);
/// assert_eq!(vhosts.len(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct VirtualHosts {
    hosts: Vec<VirtualHost>,
    index: HostIndex<VhostId>,
    scheme: Scheme,
    ports: Vec<u16>,
    policy: Policy,
    warn_only: bool,
    unknown_host: UnknownHost,
    default_vhost: Option<VhostId>,
}

impl VirtualHosts {
    /// Starts a table for a listener serving `scheme`. Give it the ports clients name with
    /// [`port`](VirtualHostsBuilder::port) or [`ports`](VirtualHostsBuilder::ports): there
    /// is no default port.
    pub fn builder(scheme: Scheme) -> VirtualHostsBuilder {
        VirtualHostsBuilder {
            hosts: Vec::new(),
            scheme,
            ports: Vec::new(),
            policy: Policy::default(),
            warn_only: false,
            unknown_host: UnknownHost::default(),
            default_vhost: None,
        }
    }

    /// The virtual host that serves `host` (exact name first, then a wildcard).
    pub fn lookup(&self, host: &Host) -> Option<VhostId> {
        self.index.lookup(host).copied()
    }

    /// The virtual host that answers a request for `host`: the one serving it, else the
    /// default virtual host when unknown hosts go there ([`UnknownHost::Default`]).
    pub fn resolve(&self, host: &Host) -> Option<VhostId> {
        match (self.lookup(host), self.unknown_host) {
            (Some(v), _) => Some(v),
            (None, UnknownHost::Default(v)) => Some(v),
            (None, _) => None,
        }
    }

    /// The virtual host with this id.
    pub fn get(&self, id: VhostId) -> Option<&VirtualHost> {
        self.hosts.get(id.index())
    }

    /// All virtual hosts with their ids.
    pub fn iter(&self) -> impl Iterator<Item = (VhostId, &VirtualHost)> + '_ {
        self.hosts.iter().enumerate().map(|(i, v)| (id_at(i), v))
    }

    /// How many virtual hosts there are.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// The scheme the listener serves.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The ports clients may name in authorities, in the order given; never empty.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// The listener's policy level.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Whether refusals are only reported, except those for certificate cover, the
    /// client-certificate rule and unknown hosts.
    pub fn warn_only(&self) -> bool {
        self.warn_only
    }

    /// What unknown hosts get.
    pub fn unknown_host(&self) -> UnknownHost {
        self.unknown_host
    }

    /// The virtual host whose certificate clients without SNI get.
    pub fn default_vhost(&self) -> Option<VhostId> {
        self.default_vhost
    }

    /// The policy level in force for requests to `vhost`.
    pub fn policy_for(&self, vhost: VhostId) -> Policy {
        self.get(vhost)
            .and_then(VirtualHost::policy_override)
            .unwrap_or(self.policy)
    }
}

fn id_at(index: usize) -> VhostId {
    // Invariant: the builder refuses more than u32::MAX virtual hosts.
    VhostId(u32::try_from(index).expect("fewer than 2^32 virtual hosts"))
}

/// Builds a [`VirtualHosts`] table; see [`VirtualHosts::builder`].
///
/// Its methods take and return `&mut Self`, so settings chain on the builder you keep
/// adding virtual hosts to: [`add`](Self::add) returns the new virtual host's id instead,
/// and [`build`](Self::build) leaves the builder as it was, ready to build another
/// listener's table from the same virtual hosts.
///
/// ```
/// use misdirect_authority::Scheme;
/// use misdirect_certmatch::Identities;
/// use misdirect_coalesce::{Policy, VirtualHost, VirtualHosts};
///
/// let mut b = VirtualHosts::builder(Scheme::Https);
/// let a = b.add(VirtualHost::new("a", Identities::from_patterns(["a.test".parse()?])).pattern("a.test".parse()?));
/// b.policy(Policy::Strict).default_vhost(a);
/// let public = b.port(443).build()?;
/// let internal = b.ports([8443, 9443]).build()?;
/// assert_eq!(public.ports(), [443]);
/// assert_eq!(internal.ports(), [443, 8443, 9443]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct VirtualHostsBuilder {
    hosts: Vec<VirtualHost>,
    scheme: Scheme,
    ports: Vec<u16>,
    policy: Policy,
    warn_only: bool,
    unknown_host: UnknownHost,
    default_vhost: Option<VhostId>,
}

impl VirtualHostsBuilder {
    /// Adds a virtual host and returns its id: its position in the table, from 0.
    ///
    /// ```
    /// use misdirect_authority::Scheme;
    /// use misdirect_certmatch::Identities;
    /// use misdirect_coalesce::{VirtualHost, VirtualHosts};
    ///
    /// let mut b = VirtualHosts::builder(Scheme::Https);
    /// let a = b.add(VirtualHost::new("a", Identities::from_patterns(["a.test".parse()?])));
    /// assert_eq!(a.index(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn add(&mut self, vhost: VirtualHost) -> VhostId {
        self.hosts.push(vhost);
        id_at(self.hosts.len() - 1)
    }

    /// Adds a port clients may name in authorities: the port they connect to, which is the
    /// listener's own unless a port mapping or load balancer sits in front of it. There is
    /// no default: [`build`](Self::build) fails with [`ConfigError::NoPorts`] until at
    /// least one port is given. A request that names no port names the scheme's default
    /// (443 or 80), so serve it by adding that port.
    ///
    /// ```
    /// use misdirect_authority::Scheme;
    /// use misdirect_coalesce::VirtualHosts;
    ///
    /// let vhosts = VirtualHosts::builder(Scheme::Http).port(19614).build()?;
    /// assert_eq!(vhosts.ports(), [19614]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn port(&mut self, port: u16) -> &mut Self {
        if !self.ports.contains(&port) {
            self.ports.push(port);
        }
        self
    }

    /// Adds each of these ports, as [`port`](Self::port) does: for a listener whose clients
    /// name several.
    ///
    /// ```
    /// use misdirect_authority::Scheme;
    /// use misdirect_coalesce::VirtualHosts;
    ///
    /// let vhosts = VirtualHosts::builder(Scheme::Https).ports([443, 8443, 443]).build()?;
    /// assert_eq!(vhosts.ports(), [443, 8443]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn ports(&mut self, ports: impl IntoIterator<Item = u16>) -> &mut Self {
        for port in ports {
            self.port(port);
        }
        self
    }

    /// Sets the listener's policy level (default [`Policy::Secure`]).
    ///
    /// ```
    /// use misdirect_authority::Scheme;
    /// use misdirect_coalesce::{Policy, VirtualHosts};
    ///
    /// let vhosts = VirtualHosts::builder(Scheme::Https).port(443).policy(Policy::Strict).build()?;
    /// assert_eq!(vhosts.policy(), Policy::Strict);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn policy(&mut self, policy: Policy) -> &mut Self {
        self.policy = policy;
        self
    }

    /// Serve what the policy would refuse and report it — for rolling a policy out. Scheme,
    /// port, TLS version, ALPN and the strict own-vhost rule are relaxed; a host the
    /// connection's certificate does not cover, a failed client-certificate rule and a host
    /// no virtual host serves are still refused.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use misdirect_authority::{HostName, RequestTarget, Scheme};
    /// use misdirect_certmatch::Identities;
    /// use misdirect_coalesce::*;
    ///
    /// let cert = Arc::new(Identities::from_patterns(["a.test".parse()?, "b.test".parse()?]));
    /// let mut b = VirtualHosts::builder(Scheme::Https);
    /// let a = b.add(VirtualHost::new("a", cert.clone()).pattern("a.test".parse()?));
    /// let bb = b.add(VirtualHost::new("b", cert).pattern("b.test".parse()?));
    /// b.add(VirtualHost::new("c", Identities::from_patterns(["c.test".parse()?])).pattern("c.test".parse()?));
    /// let vhosts = b.port(443).policy(Policy::Strict).warn_only(true).build()?;
    ///
    /// let conn = ConnectionContext::new().sni(HostName::from_sni(b"a.test")?).presented(a);
    /// let to = |host: &str| RequestTarget::from_h2(Some(host.as_bytes()), std::iter::empty()).unwrap();
    /// // Strict would refuse b.test on a.test's connection: served, and reported.
    /// assert_eq!(
    ///     decide(&vhosts, &conn, &to("b.test")),
    ///     Decision::Serve { vhost: bb, warning: Some(Reason::SniVhostDiffers) },
    /// );
    /// // a.test's certificate does not cover c.test: refused all the same.
    /// assert_eq!(
    ///     decide(&vhosts, &conn, &to("c.test")).reason(),
    ///     Some(Reason::CertificateDoesNotCover),
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn warn_only(&mut self, warn_only: bool) -> &mut Self {
        self.warn_only = warn_only;
        self
    }

    /// Sets what unknown hosts get (default 421).
    ///
    /// ```
    /// use misdirect_authority::Scheme;
    /// use misdirect_coalesce::{UnknownHost, VirtualHosts};
    ///
    /// let vhosts = VirtualHosts::builder(Scheme::Https)
    ///     .port(443)
    ///     .unknown_host(UnknownHost::NotFound)
    ///     .build()?;
    /// assert_eq!(vhosts.unknown_host(), UnknownHost::NotFound);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn unknown_host(&mut self, unknown_host: UnknownHost) -> &mut Self {
        self.unknown_host = unknown_host;
        self
    }

    /// Sets the virtual host that clients without SNI reach.
    ///
    /// ```
    /// use misdirect_authority::Scheme;
    /// use misdirect_certmatch::Identities;
    /// use misdirect_coalesce::{VirtualHost, VirtualHosts};
    ///
    /// let mut b = VirtualHosts::builder(Scheme::Https);
    /// let a = b.add(VirtualHost::new("a", Identities::from_patterns(["a.test".parse()?])));
    /// let vhosts = b.port(443).default_vhost(a).build()?;
    /// assert_eq!(vhosts.default_vhost(), Some(a));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn default_vhost(&mut self, vhost: VhostId) -> &mut Self {
        self.default_vhost = Some(vhost);
        self
    }

    /// Builds the table from the virtual hosts and settings given so far, leaving the
    /// builder as it is. Fails when no port was given ([`ConfigError::NoPorts`]), when two
    /// virtual hosts serve the same pattern ([`ConfigError::DuplicateName`], with both
    /// positions), when an id names no virtual host, or when the host index refuses a
    /// pattern.
    ///
    /// ```
    /// use misdirect_authority::Scheme;
    /// use misdirect_coalesce::{ConfigError, VirtualHosts};
    ///
    /// let mut b = VirtualHosts::builder(Scheme::Https);
    /// assert_eq!(b.build().unwrap_err(), ConfigError::NoPorts);
    /// assert!(b.port(443).build().is_ok());
    /// ```
    pub fn build(&self) -> Result<VirtualHosts, ConfigError> {
        if u32::try_from(self.hosts.len()).is_err() {
            return Err(ConfigError::TooMany);
        }
        if self.ports.is_empty() {
            return Err(ConfigError::NoPorts);
        }
        let known = |id: VhostId| id.index() < self.hosts.len();
        if let Some(id) = self.default_vhost.filter(|id| !known(*id)) {
            return Err(ConfigError::UnknownVhost(id));
        }
        if let UnknownHost::Default(id) = self.unknown_host
            && !known(id)
        {
            return Err(ConfigError::UnknownVhost(id));
        }
        let mut index = HostIndexBuilder::new();
        // `owner[e]` is the position of the virtual host that pushed index entry `e`.
        let mut owner = Vec::new();
        for (i, host) in self.hosts.iter().enumerate() {
            for pattern in &host.patterns {
                index.push(pattern, id_at(i)).map_err(ConfigError::Index)?;
                owner.push(i);
            }
        }
        // The one duplicate check: the index's, after the index's own case folding.
        let index = index.build().map_err(|err| {
            match err
                .duplicate_entries()
                .and_then(|dup| Some((dup, *owner.get(dup.first())?, *owner.get(dup.second())?)))
            {
                Some((dup, first, second)) => ConfigError::DuplicateName {
                    pattern: dup.pattern().to_owned(),
                    first: self.hosts[first].name.to_string(),
                    first_position: first,
                    second: self.hosts[second].name.to_string(),
                    second_position: second,
                },
                None => ConfigError::Index(err),
            }
        })?;
        Ok(VirtualHosts {
            index,
            hosts: self.hosts.clone(),
            scheme: self.scheme,
            ports: self.ports.clone(),
            policy: self.policy,
            warn_only: self.warn_only,
            unknown_host: self.unknown_host,
            default_vhost: self.default_vhost,
        })
    }
}

/// Why a [`VirtualHosts`] table could not be built.
///
/// ```
/// use std::error::Error as _;
/// use misdirect_authority::Scheme;
/// use misdirect_certmatch::Identities;
/// use misdirect_coalesce::{ConfigError, VirtualHost, VirtualHosts};
///
/// let cert = std::sync::Arc::new(Identities::from_patterns(["a.test".parse()?]));
/// let mut b = VirtualHosts::builder(Scheme::Https);
/// b.add(VirtualHost::new("first", cert.clone()).pattern("a.test".parse()?));
/// b.add(VirtualHost::new("second", cert).pattern("a.test".parse()?));
/// let err = b.port(443).build().unwrap_err();
/// assert!(matches!(
///     err,
///     ConfigError::DuplicateName { first_position: 0, second_position: 1, .. }
/// ));
/// assert!(err.source().is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// No port was given: a table must say which ports clients name in authorities.
    NoPorts,
    /// Two virtual hosts (or one, twice) serve the same name pattern. Positions count the
    /// virtual hosts in the order they were added, from 0 (a [`VhostId`]'s
    /// [`index`](VhostId::index)); a server that adds them in configuration-file order can
    /// point at both entries.
    DuplicateName {
        /// The pattern, as the host index folds it (lowercase).
        pattern: String,
        /// The name of the virtual host that had it first.
        first: String,
        /// The position of the virtual host that had it first.
        first_position: usize,
        /// The name of the virtual host that repeated it.
        second: String,
        /// The position of the virtual host that repeated it (equal to `first_position`
        /// when one virtual host lists the pattern twice).
        second_position: usize,
    },
    /// An id given as default virtual host names no virtual host.
    UnknownVhost(VhostId),
    /// More than 2^32 virtual hosts.
    TooMany,
    /// The host index refused a pattern for another reason; the index's error is the
    /// [`source`](std::error::Error::source).
    Index(misdirect_certmatch::Error),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoPorts => f.write_str(
                "no public ports: give the ports clients name in authorities, e.g. .port(443), \
                 or the listener's port",
            ),
            Self::DuplicateName {
                pattern,
                first,
                first_position,
                second_position,
                ..
            } if first_position == second_position => {
                write!(
                    f,
                    "virtual host {first:?} (position {first_position}) lists {pattern} twice"
                )
            }
            Self::DuplicateName {
                pattern,
                first,
                first_position,
                second,
                second_position,
            } => {
                write!(
                    f,
                    "{pattern} is served by two virtual hosts: {first:?} (position \
                     {first_position}) and {second:?} (position {second_position})"
                )
            }
            Self::UnknownVhost(id) => write!(f, "virtual host {id} does not exist"),
            Self::TooMany => f.write_str("too many virtual hosts"),
            Self::Index(_) => f.write_str("cannot index virtual host names"),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Index(err) => Some(err),
            _ => None,
        }
    }
}

/// What a refusal's body says: its [`Reason`] and, when the reason turns on facts of this
/// request, a detail naming them. [`Reason::PortNotServed`] gets the port the request named
/// and the ports the listener serves; the other reasons get none. No refusal names a
/// virtual host.
///
/// It implements [`RenderReason`]: the code is the reason's, the description is the
/// reason's followed by the detail, so `misdirect_response::render` puts both into the
/// body's detail text (when the render options name the reason at all).
///
/// ```
/// use misdirect_authority::{RequestTarget, Scheme};
/// use misdirect_certmatch::Identities;
/// use misdirect_coalesce::{decide, ConnectionContext, Decision, Reason, Explanation, VirtualHost, VirtualHosts};
/// use misdirect_response::RenderReason;
///
/// let mut b = VirtualHosts::builder(Scheme::Https);
/// b.add(VirtualHost::new("a", Identities::from_patterns(["a.test".parse()?])).pattern("a.test".parse()?));
/// let vhosts = b.port(8443).build()?;
///
/// let target = RequestTarget::from_h2(Some(b"a.test"), std::iter::empty())?;
/// let decision = decide(&vhosts, &ConnectionContext::new(), &target);
/// assert_eq!(decision.reason(), Some(Reason::PortNotServed));
///
/// let explanation = Explanation::new(&vhosts, Reason::PortNotServed, &target);
/// assert_eq!(
///     explanation.detail(),
///     Some("the request named no port, which means 443 for https; this listener serves port 8443"),
/// );
/// assert_eq!(explanation.code(), "port-not-served");
/// assert!(explanation.description().starts_with("this server does not serve the requested port: "));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    reason: Reason,
    /// The reason's description, followed by the detail when there is one.
    description: Cow<'static, str>,
    /// Where the detail starts in `description`.
    detail_at: Option<usize>,
}

impl Explanation {
    /// The explanation of refusing `target` for `reason` on a listener with these virtual
    /// hosts.
    pub fn new(vhosts: &VirtualHosts, reason: Reason, target: &RequestTarget) -> Self {
        let detail = match reason {
            Reason::PortNotServed => Some(port_detail(vhosts, target)),
            _ => None,
        };
        match detail {
            None => Self::from(reason),
            Some(detail) => {
                let description = format!("{}: {detail}", reason.description());
                Self {
                    reason,
                    detail_at: Some(description.len() - detail.len()),
                    description: Cow::Owned(description),
                }
            }
        }
    }

    /// The reason.
    pub fn reason(&self) -> Reason {
        self.reason
    }

    /// The facts of this request that explain the reason, if the reason has any.
    pub fn detail(&self) -> Option<&str> {
        self.detail_at.map(|at| &self.description[at..])
    }
}

/// `the request named port 443; this listener serves ports 8443 and 9443`.
fn port_detail(vhosts: &VirtualHosts, target: &RequestTarget) -> String {
    let scheme = vhosts.scheme();
    let mut detail = match target.port() {
        Some(port) => format!("the request named port {port}"),
        None => format!(
            "the request named no port, which means {} for {scheme}",
            scheme.default_port()
        ),
    };
    let ports = vhosts.ports();
    detail.push_str(match ports.len() {
        1 => "; this listener serves port ",
        _ => "; this listener serves ports ",
    });
    for (i, port) in ports.iter().enumerate() {
        if i > 0 {
            detail.push_str(if i + 1 == ports.len() { " and " } else { ", " });
        }
        detail.push_str(&port.to_string());
    }
    detail
}

/// An explanation without detail: the reason's description alone.
impl From<Reason> for Explanation {
    fn from(reason: Reason) -> Self {
        Self {
            reason,
            description: Cow::Borrowed(reason.description()),
            detail_at: None,
        }
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.description)
    }
}

impl RenderReason for Explanation {
    fn code(&self) -> &str {
        self.reason.code()
    }

    fn description(&self) -> &str {
        &self.description
    }
}
