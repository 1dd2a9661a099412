use std::sync::Arc;

use misdirect_authority::{Host, HostName, RequestTarget, Scheme, TargetError};
use misdirect_certmatch::Identities;

use crate::reason::Reason;
use crate::vhost::{Alpn, ClientAuth, Policy, TlsVersion, UnknownHost, VhostId, VirtualHosts};

/// What a connection is: recorded once at the TLS handshake, consulted for every request.
///
/// ```
/// use misdirect_authority::HostName;
/// use misdirect_coalesce::{Alpn, ClientCert, ConnectionContext, TlsVersion, VhostId};
///
/// let ctx = ConnectionContext::new()
///     .sni(HostName::from_sni(b"a.example")?)
///     .tls_version(TlsVersion::Tls13)
///     .alpn(Alpn::H2);
/// assert_eq!(ctx.sni_name().map(|n| n.as_str()), Some("a.example"));
/// assert_eq!(ctx.client_cert_state(), ClientCert::None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct ConnectionContext {
    sni: Option<HostName>,
    presented: Option<VhostId>,
    certificate: Option<Arc<Identities>>,
    tls_version: Option<TlsVersion>,
    alpn: Option<Alpn>,
    client_cert: ClientCert,
}

/// The client certificate state of a connection.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ClientCert {
    /// No client certificate was presented (or none was asked for).
    #[default]
    None,
    /// A client certificate was presented and verified by these trust anchors.
    Verified(VerifiedClientCert),
}

/// The fact that a connection's client certificate was verified by a set of trust anchors.
///
/// The policy's client-certificate rule trusts this fact, so it is made in one named place:
/// [`Listener::on_handshake`](crate::Listener::on_handshake) (and
/// `ConnectionContext::from_rustls`, which calls it) make it from a finished handshake.
/// Code that drives the policy without the listener core — a test, another TLS stack —
/// makes it with [`assertion`](Self::assertion), which is easy to find in review.
///
/// ```
/// use misdirect_coalesce::{ClientCert, TrustAnchorsId, VerifiedClientCert};
///
/// // Only after the TLS stack's verifier for these anchors accepted the certificate:
/// let fact = VerifiedClientCert::assertion(TrustAnchorsId::new(1));
/// assert_eq!(fact.anchors(), TrustAnchorsId::new(1));
/// let state = ClientCert::Verified(fact);
/// # let _ = state;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VerifiedClientCert(crate::vhost::TrustAnchorsId);

impl VerifiedClientCert {
    /// Asserts that a verifier configured with exactly these trust anchors accepted the
    /// connection's client certificate during its handshake.
    pub const fn assertion(anchors: crate::vhost::TrustAnchorsId) -> Self {
        Self(anchors)
    }

    /// The trust anchors that verified the certificate.
    pub const fn anchors(self) -> crate::vhost::TrustAnchorsId {
        self.0
    }
}

impl ConnectionContext {
    /// An empty context: no SNI, no TLS details, no client certificate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the normalised SNI the client sent.
    pub fn sni(mut self, sni: HostName) -> Self {
        self.sni = Some(sni);
        self
    }

    /// Records the virtual host whose certificate was presented (chosen from the SNI, or
    /// the default virtual host). Without it, the policy assumes the certificate of the
    /// SNI's virtual host, else the default virtual host's — what a server presents.
    pub fn presented(mut self, vhost: VhostId) -> Self {
        self.presented = Some(vhost);
        self
    }

    /// Records the presented certificate's identities, when they are not simply the
    /// presented virtual host's.
    pub fn certificate(mut self, identities: Arc<Identities>) -> Self {
        self.certificate = Some(identities);
        self
    }

    /// Records the negotiated TLS version.
    pub fn tls_version(mut self, version: TlsVersion) -> Self {
        self.tls_version = Some(version);
        self
    }

    /// Records the negotiated ALPN protocol.
    pub fn alpn(mut self, alpn: Alpn) -> Self {
        self.alpn = Some(alpn);
        self
    }

    /// Records the client certificate state.
    pub fn client_cert(mut self, state: ClientCert) -> Self {
        self.client_cert = state;
        self
    }

    /// The SNI, if the client sent one.
    pub fn sni_name(&self) -> Option<&HostName> {
        self.sni.as_ref()
    }

    /// The virtual host whose certificate was presented.
    pub fn presented_vhost(&self) -> Option<VhostId> {
        self.presented
    }

    /// The negotiated TLS version, if known.
    pub fn negotiated_tls_version(&self) -> Option<TlsVersion> {
        self.tls_version
    }

    /// The negotiated ALPN protocol, if any.
    pub fn negotiated_alpn(&self) -> Option<Alpn> {
        self.alpn
    }

    /// The client certificate state.
    pub fn client_cert_state(&self) -> ClientCert {
        self.client_cert
    }

    /// The virtual host this connection was made for: the presented one, else the SNI's,
    /// else the default (a connection without SNI counts as naming the default).
    pub fn connection_vhost(&self, vhosts: &VirtualHosts) -> Option<VhostId> {
        self.presented
            .or_else(|| {
                self.sni
                    .as_ref()
                    .and_then(|n| vhosts.lookup(&Host::Name(n.clone())))
            })
            .or(vhosts.default_vhost())
    }

    /// The presented certificate's identities: as recorded, else those of the
    /// [`connection_vhost`](Self::connection_vhost)'s certificate.
    fn identities<'a>(&'a self, vhosts: &'a VirtualHosts) -> Option<&'a Identities> {
        match &self.certificate {
            Some(ids) => Some(ids),
            None => self
                .connection_vhost(vhosts)
                .and_then(|v| vhosts.get(v))
                .map(|v| &**v.certificate()),
        }
    }
}

/// The answer to "serve this request on this connection?".
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Serve it from `vhost`. With `warn_only`, `warning` is the reason the policy would
    /// have refused it for; report it.
    Serve {
        /// The virtual host to serve the request.
        vhost: VhostId,
        /// What would have been a 421 without `warn_only`.
        warning: Option<Reason>,
    },
    /// 421 Misdirected Request (RFC 9110 §15.5.20).
    Misdirected {
        /// Why.
        reason: Reason,
        /// The virtual host serving the request's host, when one does: the one the client
        /// should reach on another connection.
        vhost: Option<VhostId>,
    },
    /// 400 Bad Request: the request's target is malformed.
    BadRequest(Reason),
    /// 404: no virtual host serves the host and the listener answers unknown hosts so.
    NotFound,
}

impl Decision {
    /// The reason of a refusal, or the warning of a `warn_only` serve.
    pub fn reason(&self) -> Option<Reason> {
        match *self {
            Self::Serve { warning, .. } => warning,
            Self::Misdirected { reason, .. } | Self::BadRequest(reason) => Some(reason),
            Self::NotFound => None,
        }
    }

    /// The HTTP status to answer with when not serving; `None` for [`Decision::Serve`].
    pub fn status(&self) -> Option<http::StatusCode> {
        match self {
            Self::Serve { .. } => None,
            Self::Misdirected { .. } => Some(http::StatusCode::MISDIRECTED_REQUEST),
            Self::BadRequest(_) => Some(http::StatusCode::BAD_REQUEST),
            Self::NotFound => Some(http::StatusCode::NOT_FOUND),
        }
    }

    /// The virtual host serving the request's host: the one to serve it, or for a 421 the
    /// one the client should reach on another connection. `None` when no virtual host
    /// serves the host, and for a 400.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use misdirect_authority::{RequestTarget, Scheme};
    /// use misdirect_certmatch::Identities;
    /// use misdirect_coalesce::*;
    ///
    /// let mut b = VirtualHosts::builder(Scheme::Https);
    /// let a = b.add(VirtualHost::new("a", Arc::new(Identities::from_patterns(["a.test".parse()?])))
    ///     .pattern("a.test".parse()?));
    /// let vhosts = b.port(443).build()?;
    ///
    /// // No certificate on this connection covers a.test: a 421 that still names a.
    /// let target = RequestTarget::from_h2(Some(b"a.test"), std::iter::empty())?;
    /// let conn = ConnectionContext::new().certificate(Arc::new(Identities::from_patterns(Vec::new())));
    /// let refused = decide(&vhosts, &conn, &target);
    /// assert_eq!(refused.reason(), Some(Reason::CertificateDoesNotCover));
    /// assert_eq!(refused.target_vhost(), Some(a));
    /// assert_eq!(Decision::NotFound.target_vhost(), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn target_vhost(&self) -> Option<VhostId> {
        match *self {
            Self::Serve { vhost, .. } => Some(vhost),
            Self::Misdirected { vhost, .. } => vhost,
            Self::BadRequest(_) | Self::NotFound => None,
        }
    }

    /// A 421 for `reason`, to a host that `vhost` serves (`None` when nothing does).
    pub const fn misdirected(reason: Reason, vhost: Option<VhostId>) -> Self {
        Self::Misdirected { reason, vhost }
    }

    /// The 400 decision for a request whose target could not be decided.
    pub fn bad_request(error: &TargetError) -> Self {
        Self::BadRequest(Reason::BadRequest(error.kind()))
    }
}

/// Decides whether this connection serves this request (RFC 9110 §4.3.3, §7.4, §15.5.20;
/// RFC 9113 §9.1.1), by the rules of `docs/design.md` ("Server decision") in order:
///
/// (a) the listener serves the request's scheme and port; (b) some virtual host V serves
/// the host (else the listener's [`UnknownHost`] answer); (c) the connection's certificate
/// covers the host; (d) the connection meets V's TLS requirements: its client certificate
/// rule (every level), then — at [`Policy::Secure`] and [`Policy::Strict`] — V's minimum
/// TLS version and ALPN; then, at [`Policy::Strict`] only, V must be the connection's own
/// virtual host. The first failing rule is the [`Reason`].
///
/// On a cleartext (`http`) table — a plain-HTTP listener behind a TLS-terminating load
/// balancer — there is no certificate, TLS version, ALPN or SNI: (c), (d)'s TLS version and
/// ALPN and the strict rule do not apply, so any virtual host serving the host and port is
/// served, except that a virtual host requiring a client certificate is always refused
/// (RFC 9110 §7.4 lets a trusted gateway stand in for the TLS checks; the gateway must
/// make them).
///
/// The scheme is the one the request named (HTTP/2 `:scheme`, absolute-form), else the
/// listener's (HTTP/1.1 origin-form, RFC 9112 §3.3); one that was named but is unknown
/// ([`RequestTarget::scheme_unknown`]) fails (a).
///
/// With `warn_only`, a request that fails (a), TLS version, ALPN or the strict own-vhost rule
/// is served by V with the reason as a warning — unless the certificate does not cover the
/// host or the client-certificate rule fails: those requests are refused, with the same
/// reason as without `warn_only`. A host no virtual host serves is never served either.
///
/// ```
/// use std::sync::Arc;
/// use misdirect_authority::{HostName, RequestTarget, Scheme};
/// use misdirect_certmatch::Identities;
/// use misdirect_coalesce::*;
///
/// let shared = Arc::new(Identities::from_patterns(["a.test".parse()?, "b.test".parse()?, "admin.test".parse()?]));
/// let mut b = VirtualHosts::builder(Scheme::Https);
/// let a = b.add(VirtualHost::new("a", shared.clone()).pattern("a.test".parse()?));
/// let bb = b.add(VirtualHost::new("b", shared.clone()).pattern("b.test".parse()?));
/// let admin = b.add(VirtualHost::new("admin", shared)
///     .pattern("admin.test".parse()?)
///     .client_auth(ClientAuth::Required(TrustAnchorsId::new(1))));
/// let vhosts = b.port(443).build()?;
///
/// // A connection made for a.test, as a browser coalesces it:
/// let conn = ConnectionContext::new().sni(HostName::from_sni(b"a.test")?).presented(a);
/// let to = |host: &str| RequestTarget::from_h2(Some(host.as_bytes()), std::iter::empty()).unwrap();
///
/// assert_eq!(decide(&vhosts, &conn, &to("b.test")), Decision::Serve { vhost: bb, warning: None });
/// let refused = decide(&vhosts, &conn, &to("admin.test"));
/// assert_eq!(refused.reason(), Some(Reason::ClientCertRequired));
/// assert_eq!(refused.target_vhost(), Some(admin));
/// assert_eq!(decide(&vhosts, &conn, &to("c.test")), Decision::misdirected(Reason::UnknownHost, None));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn decide(vhosts: &VirtualHosts, conn: &ConnectionContext, target: &RequestTarget) -> Decision {
    let host = target.host();
    let vhost = vhosts.resolve(host);

    // (a) scheme and port.
    let mut first = listener_failure(vhosts, target);
    let Some(vhost) = vhost else {
        // (b) nothing to serve: neither warn_only nor any level can help.
        return match first {
            Some(reason) => Decision::misdirected(reason, None),
            None if vhosts.unknown_host() == UnknownHost::NotFound => Decision::NotFound,
            None => Decision::misdirected(Reason::UnknownHost, None),
        };
    };
    // Invariant: lookups and UnknownHost::Default only yield ids of this table.
    let v = vhosts.get(vhost).expect("ids come from this table");

    // (c) the certificate on this connection covers the host: every level, never relaxed,
    // so checked even when (a) failed — warn_only must not serve an uncovered name.
    let covered = vhosts.scheme() != Scheme::Https
        || conn.identities(vhosts).is_some_and(|ids| ids.covers(host));
    if first.is_none() && !covered {
        first = Some(Reason::CertificateDoesNotCover);
    }

    // (d) the client-certificate rule: every level, never relaxed.
    let client_cert = client_cert_failure(v.client_auth_required(), conn.client_cert_state());
    if first.is_none() {
        first = client_cert;
    }

    // (d) at Secure and Strict: TLS version and ALPN; then Strict's own-vhost rule. A
    // cleartext listener has no TLS, no SNI and no certificate to coalesce on: these rules
    // are about TLS connections and do not apply (its client-certificate rule above still
    // refuses every virtual host that requires one).
    let policy = vhosts.policy_for(vhost);
    let tls = vhosts.scheme() == Scheme::Https;
    if first.is_none() && tls && policy <= Policy::Secure {
        first = tls_failure(v.min_tls_version(), v.allowed_alpn(), conn);
    }
    if first.is_none()
        && tls
        && policy == Policy::Strict
        && conn.connection_vhost(vhosts) != Some(vhost)
    {
        first = Some(match conn.sni_name() {
            Some(_) => Reason::SniVhostDiffers,
            None => Reason::NoSni,
        });
    }

    match first {
        None => Decision::Serve {
            vhost,
            warning: None,
        },
        Some(reason) if vhosts.warn_only() && covered && client_cert.is_none() => Decision::Serve {
            vhost,
            warning: Some(reason),
        },
        Some(reason) => Decision::misdirected(reason, Some(vhost)),
    }
}

fn listener_failure(vhosts: &VirtualHosts, target: &RequestTarget) -> Option<Reason> {
    // A scheme the request named but the target could not learn (an HTTP/2 request without
    // `:authority`) may be the wrong one: refused like a named wrong one.
    let scheme_served = match target.scheme() {
        Some(scheme) => scheme == vhosts.scheme(),
        None => !target.scheme_unknown(),
    };
    if !scheme_served {
        return Some(Reason::SchemeNotServed);
    }
    let port = target.port().unwrap_or(vhosts.scheme().default_port());
    match vhosts.ports().contains(&port) {
        true => None,
        false => Some(Reason::PortNotServed),
    }
}

fn client_cert_failure(required: ClientAuth, state: ClientCert) -> Option<Reason> {
    match (required, state) {
        (ClientAuth::None, _) => None,
        (ClientAuth::Required(_), ClientCert::None) => Some(Reason::ClientCertRequired),
        (ClientAuth::Optional(_), ClientCert::None) => None,
        (ClientAuth::Required(want) | ClientAuth::Optional(want), ClientCert::Verified(got)) => {
            let got = got.anchors();
            match want == got {
                true => None,
                false => Some(Reason::ClientCertOtherAnchors),
            }
        }
    }
}

fn tls_failure(
    min_tls: Option<TlsVersion>,
    alpn: Option<&[Alpn]>,
    conn: &ConnectionContext,
) -> Option<Reason> {
    if let Some(min) = min_tls
        && conn.negotiated_tls_version().is_none_or(|v| v < min)
    {
        return Some(Reason::TlsVersionBelowMinimum);
    }
    if let Some(allowed) = alpn {
        // No ALPN on an HTTPS connection means HTTP/1.1 (RFC 7301 §3.2, RFC 9110 §4.2.2).
        if !allowed.contains(&conn.negotiated_alpn().unwrap_or(Alpn::Http11)) {
            return Some(Reason::AlpnNotAllowed);
        }
    }
    None
}

/// Decides an [`http::Request`]: picks its target with `RequestTarget::from_request`
/// (400 when malformed), then [`decide`]s.
///
/// ```
/// use std::sync::Arc;
/// use misdirect_authority::Scheme;
/// use misdirect_certmatch::Identities;
/// use misdirect_coalesce::*;
///
/// let cert = Arc::new(Identities::from_patterns(["a.test".parse()?]));
/// let mut b = VirtualHosts::builder(Scheme::Https);
/// let a = b.add(VirtualHost::new("a", cert).pattern("a.test".parse()?));
/// let vhosts = b.port(443).build()?;
/// let conn = ConnectionContext::new().presented(a);
///
/// let req = http::Request::get("/").header("host", "a.test").header("host", "a.test").body(())?;
/// assert_eq!(decide_request(&vhosts, &conn, &req).status(), Some(http::StatusCode::BAD_REQUEST));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn decide_request<B>(
    vhosts: &VirtualHosts,
    conn: &ConnectionContext,
    request: &http::Request<B>,
) -> Decision {
    match RequestTarget::from_request(request) {
        Ok(target) => decide(vhosts, conn, &target),
        Err(e) => Decision::bad_request(&e),
    }
}
