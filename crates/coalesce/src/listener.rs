//! The sans-IO core of a TLS listener: one SNI choice, one way to turn a finished handshake
//! into a [`ConnectionContext`], one request path from `http::request::Parts` to an
//! [`Outcome`], and one log line for every refusal.
//!
//! A server (like `misdirect serve`), the tower layer and a library user's own accept loop
//! all drive the same [`Listener`]; none of them decides anything itself.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::{Method, Response, StatusCode, Version, header};
use misdirect_authority::{Host, HostName, RequestTarget};
use misdirect_response::{PreparedRefusal, RenderOptions, StaticReason, render};

use crate::decide::{ClientCert, ConnectionContext, Decision, VerifiedClientCert, decide};
use crate::reason::Reason;
use crate::refusal_log::{RefusalLog, RefusalLogMode};
use crate::vhost::{
    Alpn, ClientAuth, Explanation, TlsVersion, TrustAnchorsId, VhostId, VirtualHosts,
};

/// Gives each distinct set of client-certificate trust anchors one [`TrustAnchorsId`].
///
/// A set is identified by its DER certificates, whatever their order, repetitions or the
/// formatting of the file they came from: two virtual hosts that trust the same CAs share an
/// id (a client certificate verified for one counts for the other), and any difference in
/// the set gives another id.
///
/// ```
/// use misdirect_coalesce::TrustAnchorSets;
///
/// let (staff_ca, partner_ca) = (b"staff CA DER".as_slice(), b"partner CA DER".as_slice());
/// let mut sets = TrustAnchorSets::new();
/// let a = sets.intern([staff_ca, partner_ca]);
/// let b = sets.intern([partner_ca, staff_ca, staff_ca]);
/// let c = sets.intern([staff_ca]);
/// assert_eq!(a, b);
/// assert_ne!(a, c);
/// assert_eq!(sets.len(), 2);
/// ```
#[derive(Debug, Default)]
pub struct TrustAnchorSets {
    ids: HashMap<Vec<Vec<u8>>, TrustAnchorsId>,
}

impl TrustAnchorSets {
    /// No sets yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The id of this set of DER-encoded CA certificates, made on first sight.
    pub fn intern<'a>(
        &mut self,
        certificates: impl IntoIterator<Item = &'a [u8]>,
    ) -> TrustAnchorsId {
        let mut key: Vec<Vec<u8>> = certificates.into_iter().map(<[u8]>::to_vec).collect();
        key.sort_unstable();
        key.dedup();
        let next = TrustAnchorsId::new(u32::try_from(self.ids.len()).unwrap_or(u32::MAX));
        *self.ids.entry(key).or_insert(next)
    }

    /// How many distinct sets there are.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// What a finished TLS handshake established, as the TLS stack reports it.
///
/// ```
/// use misdirect_coalesce::{Alpn, Handshake, TlsVersion, VhostId};
/// # fn id() -> VhostId { unimplemented!() }
/// # fn _doc() {
/// let handshake = Handshake::new(id())
///     .tls_version(TlsVersion::Tls13)
///     .alpn(Alpn::H2)
///     .client_certificate_verified(true);
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Handshake {
    sni: Option<HostName>,
    presented: VhostId,
    tls_version: Option<TlsVersion>,
    alpn: Option<Alpn>,
    client_certificate_verified: bool,
}

impl Handshake {
    /// A handshake completed with the configuration of `presented` (the virtual host
    /// [`Listener::select`] chose).
    pub fn new(presented: VhostId) -> Self {
        Self {
            sni: None,
            presented,
            tls_version: None,
            alpn: None,
            client_certificate_verified: false,
        }
    }

    /// The SNI the client sent, normalised.
    pub fn sni(mut self, sni: Option<HostName>) -> Self {
        self.sni = sni;
        self
    }

    /// The negotiated TLS version.
    pub fn tls_version(mut self, version: TlsVersion) -> Self {
        self.tls_version = Some(version);
        self
    }

    /// The negotiated ALPN protocol.
    pub fn alpn(mut self, alpn: Alpn) -> Self {
        self.alpn = Some(alpn);
        self
    }

    /// Whether the client presented a certificate that the presented virtual host's own
    /// client-certificate verifier accepted (a resumed session counts with the certificate
    /// verified when it was made, if session caches are per virtual host).
    pub fn client_certificate_verified(mut self, verified: bool) -> Self {
        self.client_certificate_verified = verified;
        self
    }
}

/// What to do with one request.
#[non_exhaustive]
#[derive(Debug)]
pub enum Outcome {
    /// Serve it from `vhost`. `warning` is set when `warn_only` serves what the policy
    /// would refuse: log it with [`Refusal::log`].
    Serve {
        /// The virtual host that serves the request.
        vhost: VhostId,
        /// The refusal `warn_only` turned into a warning.
        warning: Option<Refusal>,
    },
    /// Answer with `response` (a 421, 400 or 404) and log `refusal`.
    Respond {
        /// The rendered refusal, negotiated on the request's `Accept`.
        response: Response<Bytes>,
        /// What to log.
        refusal: Refusal,
    },
}

/// The last HTTP/2 request target a connection served, for
/// [`Listener::on_request_memo`]: one per connection, empty at its start.
///
/// ```
/// let memo = misdirect_coalesce::ServedMemo::default();
/// ```
#[derive(Debug, Default)]
pub struct ServedMemo {
    last: Option<Served>,
}

#[derive(Debug)]
struct Served {
    scheme: Box<str>,
    authority: Box<str>,
    vhost: VhostId,
}

impl ServedMemo {
    /// The `:scheme` and `:authority` a request is remembered by: HTTP/2 or later, not
    /// CONNECT (whose target is its authority alone, RFC 9113 §8.5), and no `Host` field
    /// (which must then agree with `:authority`, RFC 9113 §8.3.1); `None` otherwise.
    fn key(parts: &Parts) -> Option<(&str, &str)> {
        if parts.version < Version::HTTP_2
            || parts.method == Method::CONNECT
            || parts.headers.contains_key(header::HOST)
        {
            return None;
        }
        Some((parts.uri.scheme_str()?, parts.uri.authority()?.as_str()))
    }
}

/// A refused request (or a `warn_only` warning): the facts every log line carries.
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct Refusal {
    /// The reason; `None` for a 404 to a host no virtual host serves.
    pub reason: Option<Reason>,
    /// The status answered (or that would have been, for a warning).
    pub status: StatusCode,
    /// Whether `warn_only` served the request anyway.
    pub served: bool,
    /// The SNI of the connection.
    pub sni: Option<HostName>,
    /// The request's authority as decided, or as the client wrote it when it is malformed.
    pub authority: String,
    /// The name of the virtual host whose certificate the connection presented.
    pub presented_vhost: Option<Arc<str>>,
    /// The name of the virtual host the request resolves to.
    pub target_vhost: Option<Arc<str>>,
    /// The request's method.
    pub method: Method,
    /// The request's HTTP version.
    pub version: Version,
}

impl Refusal {
    /// Writes the one `WARN` line every refusal and warning gets (`DEBUG` for a 404), with
    /// the same fields wherever the request was decided. `peer` is the client's address,
    /// when known.
    ///
    /// Fields: `status`, `reason` (code, `-` for 404), `served`, `sni`, `authority`,
    /// `presented_vhost`, `target_vhost`, `peer`, `method`, `version`.
    pub fn log(&self, peer: Option<SocketAddr>) {
        let none = "-";
        let peer = peer.map(|p| p.to_string());
        let message = match (self.reason, self.served) {
            (_, true) => "served because warn_only is on; would have been refused",
            (Some(r), false) if r.status() == StatusCode::BAD_REQUEST => "bad request",
            (Some(_), false) => "misdirected request",
            (None, _) => "no virtual host for the request; 404 (unknown_host = \"not-found\")",
        };
        macro_rules! line {
            ($level:ident) => {
                tracing::$level!(
                    status = self.status.as_u16(),
                    reason = self.reason.map_or(none, |r| r.code()),
                    served = self.served,
                    sni = self.sni.as_ref().map_or(none, |s| s.as_str()),
                    authority = %self.authority,
                    presented_vhost = self.presented_vhost.as_deref().unwrap_or(none),
                    target_vhost = self.target_vhost.as_deref().unwrap_or(none),
                    peer = peer.as_deref().unwrap_or(none),
                    method = %self.method,
                    version = ?self.version,
                    "{message}"
                )
            };
        }
        match self.reason {
            Some(_) => line!(warn),
            None => line!(debug),
        }
    }
}

/// One listener's virtual hosts and how it answers refusals: the whole decision, with no
/// I/O.
///
/// ```
/// use std::sync::Arc;
/// use misdirect_authority::{HostName, Scheme};
/// use misdirect_certmatch::Identities;
/// use misdirect_coalesce::*;
///
/// let cert = Arc::new(Identities::from_patterns(["a.test".parse()?, "b.test".parse()?]));
/// let mut b = VirtualHosts::builder(Scheme::Https);
/// let a = b.add(VirtualHost::new("a", cert.clone()).pattern("a.test".parse()?));
/// let bb = b.add(VirtualHost::new("b", cert).pattern("b.test".parse()?));
/// let listener = Listener::new(b.port(443).default_vhost(a).build()?);
///
/// // The ClientHello names b.test: its virtual host presents its certificate.
/// let sni = HostName::from_sni(b"b.test")?;
/// assert_eq!(listener.select(Some(&sni)), Some(bb));
/// let conn = listener.on_handshake(Handshake::new(bb).sni(Some(sni)).alpn(Alpn::H2));
///
/// let h2 = |uri: &str| http::Request::get(uri).version(http::Version::HTTP_2).body(());
/// let (parts, ()) = h2("https://a.test/")?.into_parts();
/// assert!(matches!(listener.on_request(&conn, &parts), Outcome::Serve { vhost, .. } if vhost == a));
/// let (parts, ()) = h2("https://c.test/")?.into_parts();
/// match listener.on_request(&conn, &parts) {
///     Outcome::Respond { response, refusal } => {
///         assert_eq!(response.status(), 421);
///         assert_eq!(refusal.reason, Some(Reason::UnknownHost));
///     }
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Listener {
    vhosts: VirtualHosts,
    render: RenderOptions,
    /// Refusals whose text never changes, rendered once for `render`.
    prepared: Prepared,
    refusal_log: RefusalLog,
}

/// The reasons whose explanation is the same for every request: all the 421s but
/// `PortNotServed`, whose text names the ports served.
const PREPARED_REASONS: [Reason; 9] = [
    Reason::UnknownHost,
    Reason::SchemeNotServed,
    Reason::CertificateDoesNotCover,
    Reason::SniVhostDiffers,
    Reason::NoSni,
    Reason::ClientCertRequired,
    Reason::ClientCertOtherAnchors,
    Reason::TlsVersionBelowMinimum,
    Reason::AlpnNotAllowed,
];

/// The 404 for a host no virtual host serves.
const NOT_FOUND: StaticReason = StaticReason::new("not-found", "no virtual host serves this host");

/// A listener's refusals rendered once, in every media type.
#[derive(Debug)]
struct Prepared {
    /// In `PREPARED_REASONS` order.
    misdirected: [PreparedRefusal; PREPARED_REASONS.len()],
    not_found: PreparedRefusal,
}

impl Prepared {
    fn new(options: &RenderOptions) -> Self {
        Self {
            misdirected: PREPARED_REASONS.map(|reason| {
                PreparedRefusal::new(reason.status(), &Explanation::from(reason), options)
            }),
            not_found: PreparedRefusal::new(StatusCode::NOT_FOUND, &NOT_FOUND, options),
        }
    }

    fn get(&self, reason: Reason) -> Option<&PreparedRefusal> {
        let at = PREPARED_REASONS.iter().position(|r| *r == reason)?;
        self.misdirected.get(at)
    }
}

impl Listener {
    /// A listener serving `vhosts`, rendering refusals with the default options.
    pub fn new(vhosts: VirtualHosts) -> Self {
        Self {
            vhosts,
            render: RenderOptions::new(),
            prepared: Prepared::new(&RenderOptions::new()),
            refusal_log: RefusalLog::default(),
        }
    }

    /// Logs refusals in this mode (default: [`RefusalLogMode::default`], sampled).
    pub fn refusal_log_mode(mut self, mode: RefusalLogMode) -> Self {
        self.refusal_log = RefusalLog::new(mode);
        self
    }

    /// Logs a refusal or `warn_only` warning within the listener's log budget: its own line
    /// while its key has budget left, else counted for the window's summary line. Returns
    /// whether the line was written. `peer` is the client's address, when known.
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
    /// let listener = Listener::new(b.port(443).build()?);
    /// let conn = listener.on_handshake(Handshake::new(a));
    /// let (parts, ()) = http::Request::get("https://b.test/").body(())?.into_parts();
    /// for _ in 0..3 {
    ///     if let Outcome::Respond { refusal, .. } = listener.on_request(&conn, &parts) {
    ///         listener.log_refusal(&refusal, None);
    ///     }
    /// }
    /// // Sampled by default: one line, two held back for the window's summary.
    /// listener.refusal_log().flush();
    /// assert_eq!(listener.refusal_log().suppressed_total(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn log_refusal(&self, refusal: &Refusal, peer: Option<SocketAddr>) -> bool {
        self.refusal_log.record(refusal, peer)
    }

    /// The listener's refusal log: call [`RefusalLog::tick`] from a timer so a window's
    /// summary is written even when refusals stop, and [`RefusalLog::flush`] at shutdown.
    pub fn refusal_log(&self) -> &RefusalLog {
        &self.refusal_log
    }

    /// Renders refusals with these options (method and version come from each request).
    pub fn render_options(mut self, options: RenderOptions) -> Self {
        self.render = options;
        self.prepared = Prepared::new(&options);
        self
    }

    /// The virtual hosts.
    pub fn vhosts(&self) -> &VirtualHosts {
        &self.vhosts
    }

    /// The name of a virtual host, for logs.
    pub fn name(&self, vhost: VhostId) -> Option<&str> {
        self.vhosts.get(vhost).map(|v| v.name())
    }

    /// The virtual host whose TLS configuration answers a ClientHello: the one serving the
    /// SNI (exact name, else the wildcard for its parent), else the default virtual host
    /// (else the first). `None` only for a table without virtual hosts.
    ///
    /// This is the only SNI choice: the server, the rustls glue and `check` all make it
    /// here.
    pub fn select(&self, sni: Option<&HostName>) -> Option<VhostId> {
        sni.and_then(|name| self.vhosts.lookup_name(name))
            .or(self.vhosts.default_vhost())
            .or_else(|| self.vhosts.iter().next().map(|(id, _)| id))
    }

    /// The context of a connection whose handshake finished as `handshake` says.
    ///
    /// A verified client certificate counts for the trust anchors of the presented virtual
    /// host's verifier — the only one that could have accepted it. This is the one place a
    /// [`ClientCert::Verified`] fact is made from a handshake.
    pub fn on_handshake(&self, handshake: Handshake) -> ConnectionContext {
        let presented = self.vhosts.get(handshake.presented);
        let anchors = presented.and_then(|v| match v.client_auth_required() {
            ClientAuth::Required(id) | ClientAuth::Optional(id) => Some(id),
            ClientAuth::None => None,
        });
        let client_cert = match (handshake.client_certificate_verified, anchors) {
            (true, Some(anchors)) => ClientCert::Verified(VerifiedClientCert::assertion(anchors)),
            // A certificate no verifier of ours asked for verifies nothing.
            _ => ClientCert::None,
        };
        let mut context = ConnectionContext::new()
            .presented(handshake.presented)
            .client_cert(client_cert);
        if let Some(sni) = handshake.sni {
            context = context.sni(sni);
        }
        if let Some(version) = handshake.tls_version {
            context = context.tls_version(version);
        }
        if let Some(alpn) = handshake.alpn {
            context = context.alpn(alpn);
        }
        context
    }

    /// [`on_request`](Self::on_request) for a connection that keeps a [`ServedMemo`]: an
    /// HTTP/2 request with the same `:scheme` and `:authority`, byte for byte, as the last
    /// one the connection served, and no `Host` field, is served by the same virtual host
    /// without parsing or deciding again. The answer is the same either way: a decision
    /// depends only on the connection's context, the listener's virtual hosts and the
    /// target, and none of them changes during a connection (the memo belongs to one
    /// connection on one listener).
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
    /// let listener = Listener::new(b.port(443).build()?);
    /// let conn = listener.on_handshake(Handshake::new(a).alpn(Alpn::H2));
    /// let request = http::Request::get("https://a.test/").version(http::Version::HTTP_2);
    /// let (parts, ()) = request.body(())?.into_parts();
    ///
    /// let mut memo = ServedMemo::default();
    /// for _ in 0..3 {
    ///     let outcome = listener.on_request_memo(&conn, &parts, &mut memo);
    ///     assert!(matches!(outcome, Outcome::Serve { warning: None, .. }));
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on_request_memo(
        &self,
        conn: &ConnectionContext,
        parts: &Parts,
        memo: &mut ServedMemo,
    ) -> Outcome {
        let key = ServedMemo::key(parts);
        if let (Some((scheme, authority)), Some(last)) = (key, &memo.last)
            && *last.authority == *authority
            && *last.scheme == *scheme
        {
            return Outcome::Serve {
                vhost: last.vhost,
                warning: None,
            };
        }
        let outcome = self.on_request(conn, parts);
        if let (
            Some((scheme, authority)),
            Outcome::Serve {
                vhost,
                warning: None,
            },
        ) = (key, &outcome)
        {
            memo.last = Some(Served {
                scheme: scheme.into(),
                authority: authority.into(),
                vhost: *vhost,
            });
        }
        outcome
    }

    /// Decides one request: its target (400 when malformed), the serve/421 decision, and
    /// for a refusal the rendered response and what to log.
    pub fn on_request(&self, conn: &ConnectionContext, parts: &Parts) -> Outcome {
        let target = RequestTarget::from_parts(parts);
        let decision = match &target {
            Ok(target) => decide(&self.vhosts, conn, target),
            Err(err) => Decision::bad_request(err),
        };
        let target = target.ok();
        // The decision names the target virtual host: nothing here looks it up again.
        let target_vhost = decision.target_vhost();
        let refusal = |reason: Option<Reason>, served: bool| {
            self.refusal(conn, parts, target.as_ref(), target_vhost, reason, served)
        };
        match decision {
            Decision::Serve {
                vhost,
                warning: None,
            } => Outcome::Serve {
                vhost,
                warning: None,
            },
            Decision::Serve {
                vhost,
                warning: Some(reason),
            } => Outcome::Serve {
                vhost,
                warning: Some(refusal(Some(reason), true)),
            },
            Decision::Misdirected { reason, .. } | Decision::BadRequest(reason) => {
                let options = self.render.for_request(&parts.method, parts.version);
                let response = match self.prepared.get(reason) {
                    Some(prepared) => prepared.respond(&parts.headers, &options),
                    None => {
                        let explanation = match &target {
                            Some(target) => Explanation::new(&self.vhosts, reason, target),
                            None => Explanation::from(reason),
                        };
                        render(reason.status(), &explanation, &parts.headers, &options)
                    }
                };
                Outcome::Respond {
                    response,
                    refusal: refusal(Some(reason), false),
                }
            }
            _ => {
                let options = self.render.for_request(&parts.method, parts.version);
                Outcome::Respond {
                    response: self.prepared.not_found.respond(&parts.headers, &options),
                    refusal: refusal(None, false),
                }
            }
        }
    }

    fn refusal(
        &self,
        conn: &ConnectionContext,
        parts: &Parts,
        target: Option<&RequestTarget>,
        target_vhost: Option<VhostId>,
        reason: Option<Reason>,
        served: bool,
    ) -> Refusal {
        let name = |id: Option<VhostId>| {
            id.and_then(|id| self.vhosts.get(id))
                .map(|vhost| vhost.shared_name().clone())
        };
        Refusal {
            reason,
            status: reason.map_or(StatusCode::NOT_FOUND, |r| r.status()),
            served,
            sni: conn.sni_name().cloned(),
            authority: authority_for_log(parts, target),
            presented_vhost: name(conn.connection_vhost(&self.vhosts)),
            target_vhost: name(target_vhost),
            method: parts.method.clone(),
            version: parts.version,
        }
    }
}

/// The request's authority as decided, else every spelling the client sent, for a log line.
fn authority_for_log(parts: &Parts, target: Option<&RequestTarget>) -> String {
    if let Some(target) = target {
        return target.authority().to_string();
    }
    let mut seen: Vec<String> = Vec::new();
    if let Some(authority) = parts.uri.authority() {
        seen.push(authority.as_str().to_string());
    }
    for host in parts.headers.get_all(header::HOST) {
        seen.push(String::from_utf8_lossy(host.as_bytes()).into_owned());
    }
    if seen.is_empty() {
        "-".to_string()
    } else {
        seen.join(", ")
    }
}

impl VirtualHosts {
    /// The virtual host serving `name` (exact, then wildcard).
    fn lookup_name(&self, name: &HostName) -> Option<VhostId> {
        self.lookup(&Host::Name(name.clone()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use http::HeaderMap;

    use super::*;

    #[test]
    fn prepared_refusals_are_what_rendering_each_request_gives() {
        let none: [&[u8]; 0] = [];
        let target = RequestTarget::from_h2(Some(b"b.test:8443"), none).unwrap();
        let vhosts = VirtualHosts::builder(misdirect_authority::Scheme::Https)
            .port(443)
            .build()
            .unwrap();
        for options in [
            RenderOptions::new(),
            RenderOptions::new().name_reason(false),
        ] {
            let prepared = Prepared::new(&options);
            for reason in PREPARED_REASONS {
                let explanation = Explanation::new(&vhosts, reason, &target);
                let mut headers = HeaderMap::new();
                for accept in [None, Some("application/problem+json"), Some("text/html")] {
                    if let Some(accept) = accept {
                        headers.insert(header::ACCEPT, accept.parse().unwrap());
                    }
                    let want = render(reason.status(), &explanation, &headers, &options);
                    let got = prepared.get(reason).unwrap().respond(&headers, &options);
                    assert_eq!(got.headers(), want.headers(), "{reason:?} {accept:?}");
                    assert_eq!(got.body(), want.body(), "{reason:?} {accept:?}");
                }
            }
            // Its text names the ports served: rendered per request.
            assert!(prepared.get(Reason::PortNotServed).is_none());
        }
    }
}
