use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{HOST, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use misdirect_authority::{Authority, Host, Origin, Scheme};
use misdirect_certmatch::Identities;
use misdirect_coalesce::{PooledConnection, RetryAdvice, ReuseDecision, ReuseMode, ReusePolicy};
use misdirect_response::OriginFrame;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::{ClientConfig, HandshakeKind, RootCertStore};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tracing::debug;

use crate::body::{Outgoing, pump_h2};
use crate::info::{ConnectionInfo, Protocol};
use crate::origin_watch::OriginWatch;
use crate::tls::{ClientAuthNotes, Noting, Recording, TrustsNobody};
use crate::{Body, Error, ErrorKind, RequestBody, Resolve, SystemResolver};

/// The ALPN protocol identifier of HTTP/2 over TLS (RFC 9113 §3.2).
const H2: &[u8] = b"h2";

/// HTTP/1.1's ALPN identifier (RFC 7301 §6), offered after `h2`: a server without HTTP/2
/// gets its requests over HTTP/1.1.
const HTTP11: &[u8] = b"http/1.1";

/// An HTTP/2 client that shares connections across origins only where RFC 9113 §9.1.1
/// allows it, honours ORIGIN frames (RFC 8336) and retries a `421 Misdirected Request`
/// (RFC 9110 §15.5.20) once on a fresh connection.
///
/// Cloning is cheap: clones share the pool, the settings and the [`Stats`].
///
/// ```no_run
/// use bytes::Bytes;
/// use misdirect_client::Client;
///
/// # async fn run(roots: rustls::RootCertStore) -> Result<(), Box<dyn std::error::Error>> {
/// let client = Client::builder().roots(roots).build()?;
/// let response = client.send(http::Request::get("https://example.com/").body(Bytes::new())?).await?;
/// println!("{} {:?}", response.status(), response.into_body().collect().await?);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

/// Settings for a [`Client`]; from [`Client::builder`].
///
/// ```
/// use std::time::Duration;
/// use misdirect_client::{Client, StaticResolver};
/// use misdirect_coalesce::ReuseMode;
///
/// let client = Client::builder()
///     .reuse_mode(ReuseMode::DnsOverlap)
///     .resolver(StaticResolver::new().insert("a.localhost", ["127.0.0.1".parse()?]))
///     .connect_timeout(Duration::from_secs(5))
///     .request_timeout(Duration::from_secs(30))
///     .max_connections_per_peer(4)
///     .build()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ClientBuilder {
    roots: RootCertStore,
    client_cert: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    mode: ReuseMode,
    share_client_cert: bool,
    resolver: Arc<dyn Resolve>,
    connect_timeout: Duration,
    request_timeout: Duration,
    max_per_peer: usize,
    remember_misdirected: Option<Duration>,
}

/// What a [`Client`] has done since it was built, from [`Client::stats`].
///
/// ```
/// let client = misdirect_client::Client::builder().build()?;
/// let stats = client.stats();
/// assert_eq!((stats.connections_opened, stats.requests, stats.coalesced), (0, 0, 0));
/// # Ok::<(), misdirect_client::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// TLS connections that completed a handshake with `h2`.
    pub connections_opened: u64,
    /// Requests that found or opened a connection (a retry is not counted again).
    pub requests: u64,
    /// Requests sent on a connection made for another origin.
    pub coalesced: u64,
    /// Requests retried on a fresh connection after a 421.
    pub retries_421: u64,
    /// ORIGIN frames received on stream 0 (RFC 8336 §2.2).
    pub origin_frames: u64,
}

#[derive(Debug)]
pub(crate) struct Inner {
    config: Arc<ClientConfig>,
    pub(crate) verifier: Arc<dyn ServerCertVerifier>,
    has_client_cert: bool,
    policy: ReusePolicy,
    resolver: Arc<dyn Resolve>,
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
    max_per_peer: usize,
    /// How long an origin that got a 421 is kept off connections made for other origins.
    remember_misdirected: Option<Duration>,
    /// Open HTTP/2 connections by peer address.
    pool: Mutex<HashMap<SocketAddr, Vec<Arc<Conn>>>>,
    /// HTTP/1.1 connections between requests, by origin; one request at a time each.
    idle_h1: Mutex<HashMap<Origin, Vec<H1Conn>>>,
    /// Open HTTP/1.1 connections by peer address, for the limit per peer.
    live_h1: Arc<Mutex<HashMap<SocketAddr, usize>>>,
    /// Origins that got a 421 and until when they are sent only on their own connections.
    misdirected: Mutex<HashMap<Origin, Instant>>,
    /// Server names this client presented its certificate to: sessions resumed with them
    /// carry that authentication.
    presented_to: Mutex<HashSet<String>>,
    /// Connections being opened, by origin or by peer, so that concurrent requests wait
    /// for them.
    opening: Mutex<HashMap<Gate, Arc<tokio::sync::Mutex<()>>>>,
    pub(crate) counters: Arc<Counters>,
    next_id: AtomicU64,
}

/// The most origins remembered as misdirected at once; past it the one closest to
/// expiring is forgotten first.
const MAX_REMEMBERED: usize = 4096;

#[derive(Debug, Default)]
pub(crate) struct Counters {
    connections_opened: AtomicU64,
    requests: AtomicU64,
    coalesced: AtomicU64,
    retries_421: AtomicU64,
    origin_frames: AtomicU64,
}

/// One HTTP/2 connection, pooled or held by a [`Connection`](crate::Connection).
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) id: u64,
    peer: SocketAddr,
    sender: h2::client::SendRequest<Bytes>,
    /// What the connection was made for and has learnt since; the ORIGIN watch writes to it.
    pub(crate) state: Arc<Mutex<PooledConnection>>,
    /// What the handshake found; the server's certificate chain is re-verified from it.
    pub(crate) info: ConnectionInfo,
    /// Set when the connection's driver ended (GOAWAY, error, close).
    pub(crate) closed: Arc<AtomicBool>,
    /// Taken by [`Conn::ping`].
    pings: tokio::sync::Mutex<Option<h2::PingPong>>,
    /// Verifications of the chain for other hosts.
    verified: Mutex<Verified>,
}

/// A connection's verifications of its chain for hosts other than its own, and until when
/// each answer holds.
#[derive(Debug, Default)]
struct Verified {
    answers: HashMap<Host, (bool, SystemTime)>,
    /// The earliest `notAfter` of the chain: no verification is trusted past it.
    expires: Option<SystemTime>,
}

/// How long a failed verification of a connection's chain for a host is kept (a chain
/// that is not yet valid may become so).
const FAILED_VERIFICATION_KEPT: Duration = Duration::from_secs(60);

/// The most hosts whose verification one connection keeps.
const MAX_VERIFIED_HOSTS: usize = 256;

/// One HTTP/1.1 connection (RFC 9112): one origin, one request at a time.
#[derive(Debug)]
pub(crate) struct H1Conn {
    pub(crate) id: u64,
    /// Requests sent on it so far.
    served: u64,
    pub(crate) sender: hyper::client::conn::http1::SendRequest<Outgoing>,
    pub(crate) info: ConnectionInfo,
}

/// A TLS connection whose handshake completed, before HTTP.
pub(crate) struct Established {
    tls: TlsStream<TcpStream>,
    pub(crate) info: ConnectionInfo,
    addrs: Vec<SocketAddr>,
}

/// How a connection is opened.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Opening {
    /// Send the origin's host as SNI (always, but for [`Connection`](crate::Connection)s
    /// opened without).
    pub(crate) sni: bool,
    /// Keep the verifier's answer instead of failing the handshake on it.
    pub(crate) record_verification: bool,
    /// Count the connection against the limit per peer and put it in the pool.
    pub(crate) pooled: bool,
}

impl Opening {
    const POOLED: Self = Self {
        sni: true,
        record_verification: false,
        pooled: true,
    };
}

/// An HTTP/2 or HTTP/1.1 connection just opened.
pub(crate) enum Opened {
    H2(Arc<Conn>),
    H1(Box<H1Conn>),
}

impl Client {
    /// A builder with no trust anchors, [`ReuseMode::OriginFrame`], the
    /// [`SystemResolver`], a 10 s connect timeout, a 30 s request timeout, at most 16
    /// connections per peer address and no memory of 421s beyond their connection.
    ///
    /// ```
    /// let client = misdirect_client::Client::builder().build()?;
    /// # Ok::<(), misdirect_client::Error>(())
    /// ```
    pub fn builder() -> ClientBuilder {
        ClientBuilder {
            roots: RootCertStore::empty(),
            client_cert: None,
            mode: ReuseMode::OriginFrame,
            share_client_cert: false,
            resolver: Arc::new(SystemResolver),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_per_peer: 16,
            remember_misdirected: None,
        }
    }

    /// Sends `request` and returns the response once its head arrives.
    ///
    /// The URI must be absolute with scheme `https`. An open HTTP/2 connection carries the
    /// request when [`ReusePolicy::may_reuse`] allows it — for another origin than its own,
    /// only after the full certificate verification a new connection would make for the
    /// request's host (RFC 9113 §9.1.1) — else a new connection is opened with the
    /// request's own host as SNI (RFC 9113 §9.2, RFC 6066 §3). A server that selects
    /// HTTP/1.1 by ALPN gets the request over HTTP/1.1 (RFC 9112), on a connection that
    /// serves its origin alone, one request at a time.
    ///
    /// A `421 Misdirected Request` (RFC 9110 §15.5.20) on a connection made for another
    /// origin marks the origin as misdirected on that connection and sends the request once
    /// more, whatever its method, on a fresh connection made for its origin (concurrent
    /// retries for one origin share that connection); a second 421 is returned as is. A
    /// [streaming](RequestBody::streaming) body cannot be sent twice: its request is not
    /// retried and fails with [`ErrorKind::NotRetried`]. With
    /// [`remember_misdirected`](ClientBuilder::remember_misdirected), the origin then goes
    /// only on connections made for it, on every connection, for that long.
    ///
    /// The resolver is asked only when no pooled connection is made for the origin or lists
    /// it in its ORIGIN set (RFC 8336 §2.4 lets a client skip DNS for those).
    ///
    /// The request timeout covers waiting for the connection's capacity and the response
    /// head, not sending a streaming body nor reading the response's.
    ///
    /// ```no_run
    /// # async fn run(client: misdirect_client::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// let request = http::Request::post("https://a.localhost:8443/upload").body("hello")?;
    /// let response = client.send(request).await?;
    /// assert!(response.status().is_success());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send<B: Into<RequestBody>>(
        &self,
        request: Request<B>,
    ) -> Result<Response<Body>, Error> {
        let (parts, body) = request.into_parts();
        let mut body = body.into();
        let origin = origin_of(&parts.uri)?;
        // A connection made for this origin, or one whose ORIGIN set lists it, needs no
        // DNS answer (RFC 8336 §2.4); only then is the resolver asked.
        let mut addrs = None;
        let found = match self.pick(&origin, &[]) {
            Some(conn) => Found::Pooled(conn),
            None => match self.idle_h1(&origin) {
                Some(h1) => Found::H1(h1),
                None => {
                    let known = self.addresses(&origin, &mut addrs).await?;
                    let ips: Vec<IpAddr> = known.iter().map(SocketAddr::ip).collect();
                    self.connection(&origin, &ips, &known).await?
                }
            },
        };
        self.inner.counters.requests.fetch_add(1, Ordering::Relaxed);

        let (conn, response) = match found {
            Found::H1(h1) => return self.exchange_h1(h1, &origin, &parts, &mut body).await,
            Found::Pooled(pooled) => match self.exchange(&pooled, &parts, &mut body).await {
                Ok(response) => (pooled, response),
                // The pooled connection stopped taking requests (GOAWAY, closed) or refused
                // this one unprocessed (RFC 9113 §8.7): the request never reached the
                // application, so it goes once on a fresh connection.
                Err(failure) if failure.unsent && !body.is_spent() => {
                    pooled.retire();
                    debug!(
                        origin = %origin,
                        connection = pooled.id,
                        error = %failure.error,
                        "request not processed: opening a fresh connection"
                    );
                    let known = self.addresses(&origin, &mut addrs).await?;
                    match self.dedicated(&origin, &known).await? {
                        Opened::H2(fresh) => {
                            let response = self.exchange(&fresh, &parts, &mut body).await?;
                            (fresh, response)
                        }
                        Opened::H1(h1) => {
                            return self.exchange_h1(h1, &origin, &parts, &mut body).await;
                        }
                    }
                }
                Err(failure) => return Err(failure.error),
            },
            Found::Opened(fresh) => {
                let response = self.exchange(&fresh, &parts, &mut body).await?;
                (fresh, response)
            }
        };
        if response.status() != StatusCode::MISDIRECTED_REQUEST {
            return Ok(response);
        }
        let advice = lock(&conn.state).on_misdirected(&origin);
        self.remember(&origin);
        match advice {
            RetryAdvice::RetryOnFreshConnection(_) if body.is_spent() => {
                debug!(
                    origin = %origin,
                    connection = conn.id,
                    "421 Misdirected Request: not retried, the body was a stream"
                );
                Err(Error::new(
                    ErrorKind::NotRetried,
                    format!(
                        "{} {}: 421 Misdirected Request on connection {} (made for {}); the body was a stream and cannot be sent again, so the request was not retried — send it again and it goes to a connection made for {origin}",
                        parts.method,
                        parts.uri,
                        conn.id,
                        lock(&conn.state).origin()
                    ),
                ))
            }
            RetryAdvice::RetryOnFreshConnection(_) => {
                self.inner
                    .counters
                    .retries_421
                    .fetch_add(1, Ordering::Relaxed);
                debug!(
                    origin = %origin,
                    connection = conn.id,
                    "421 Misdirected Request: retrying on a fresh connection"
                );
                let known = self.addresses(&origin, &mut addrs).await?;
                match self.dedicated(&origin, &known).await? {
                    Opened::H2(fresh) => Ok(self.exchange(&fresh, &parts, &mut body).await?),
                    Opened::H1(h1) => self.exchange_h1(h1, &origin, &parts, &mut body).await,
                }
            }
            _ => Ok(response),
        }
    }

    /// What this client (and its clones) has done so far.
    ///
    /// ```
    /// let client = misdirect_client::Client::builder().build()?;
    /// assert_eq!(client.stats().retries_421, 0);
    /// # Ok::<(), misdirect_client::Error>(())
    /// ```
    pub fn stats(&self) -> Stats {
        let c = &self.inner.counters;
        Stats {
            connections_opened: c.connections_opened.load(Ordering::Relaxed),
            requests: c.requests.load(Ordering::Relaxed),
            coalesced: c.coalesced.load(Ordering::Relaxed),
            retries_421: c.retries_421.load(Ordering::Relaxed),
            origin_frames: c.origin_frames.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// The origin's addresses: those already looked up for this request, else the
    /// resolver's.
    async fn addresses(
        &self,
        origin: &Origin,
        known: &mut Option<Vec<SocketAddr>>,
    ) -> Result<Vec<SocketAddr>, Error> {
        if let Some(addrs) = known {
            return Ok(addrs.clone());
        }
        let addrs = self.resolve(origin).await?;
        *known = Some(addrs.clone());
        Ok(addrs)
    }

    /// The origin's addresses from the resolver.
    pub(crate) async fn resolve(&self, origin: &Origin) -> Result<Vec<SocketAddr>, Error> {
        let host = match origin.host().ip() {
            Some(ip) => ip.to_string(),
            None => origin.host().to_string(),
        };
        let addrs = self
            .inner
            .resolver
            .resolve(&host, origin.port())
            .await
            .map_err(|err| {
                Error::new(ErrorKind::Resolve, format!("resolving {host}")).with_source(err)
            })?;
        match addrs.is_empty() {
            true => Err(Error::new(
                ErrorKind::Resolve,
                format!("resolving {host}: no address"),
            )),
            false => Ok(addrs),
        }
    }

    /// A pooled connection that may carry a request for `origin`, else a new one made for
    /// it. Requests that find none wait for a connection being opened rather than each
    /// opening their own (RFC 9113 §9.1: one connection per host and port): in `Exact` mode
    /// one being opened for the same origin; in the others, one being opened to the same
    /// peer address, which may serve them too once it is up.
    async fn connection(
        &self,
        origin: &Origin,
        ips: &[IpAddr],
        addrs: &[SocketAddr],
    ) -> Result<Found, Error> {
        if let Some(conn) = self.pick(origin, ips) {
            return Ok(Found::Pooled(conn));
        }
        let gate = match (self.inner.policy.mode(), addrs.first()) {
            (ReuseMode::Exact, _) | (_, None) => Gate::Origin(origin.clone()),
            (_, Some(&peer)) => Gate::Peer(peer),
        };
        self.single_flight(gate, || async {
            if let Some(conn) = self.pick(origin, ips) {
                return Ok(Found::Pooled(conn));
            }
            if let Some(h1) = self.idle_h1(origin) {
                return Ok(Found::H1(h1));
            }
            Ok(match self.open(origin, addrs, Opening::POOLED).await? {
                Opened::H2(conn) => Found::Opened(conn),
                Opened::H1(h1) => Found::H1(h1),
            })
        })
        .await
    }

    /// A connection made for `origin` itself, for a request that must not go on a shared
    /// one (after a 421 or a refused stream): an open one when a concurrent request just
    /// made it, else a new one.
    async fn dedicated(&self, origin: &Origin, addrs: &[SocketAddr]) -> Result<Opened, Error> {
        self.single_flight(Gate::Origin(origin.clone()), || async {
            let own = lock(&self.inner.pool)
                .values()
                .flatten()
                .find(|conn| {
                    let state = lock(&conn.state);
                    !conn.closed.load(Ordering::Acquire)
                        && state.origin() == origin
                        && !state.is_misdirected(origin)
                })
                .cloned();
            match own {
                Some(conn) => Ok(Opened::H2(conn)),
                None => self.open(origin, addrs, Opening::POOLED).await,
            }
        })
        .await
    }

    /// Runs `work` while holding `gate`: one request at a time opens a connection, the
    /// others wait and then find it.
    async fn single_flight<T, F, Fut>(&self, key: Gate, work: F) -> Result<T, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let gate = lock(&self.inner.opening)
            .entry(key.clone())
            .or_default()
            .clone();
        let guard = gate.lock().await;
        let result = work().await;
        drop(guard);
        let mut opening = lock(&self.inner.opening);
        // The map's reference and ours: nobody else waits on this gate.
        if Arc::strong_count(&gate) == 2 {
            opening.remove(&key);
        }
        result
    }

    /// An open connection that may carry a request for `origin`: one made for it, else one
    /// the reuse policy lets it share.
    fn pick(&self, origin: &Origin, ips: &[IpAddr]) -> Option<Arc<Conn>> {
        let own_only = self.inner.remembered(origin);
        // A connection made for the origin needs no verification: look for one first, and
        // collect the others, to be weighed outside the pool's lock.
        let others: Vec<Arc<Conn>> = {
            let mut pool = lock(&self.inner.pool);
            for conns in pool.values_mut() {
                conns.retain(|conn| !conn.closed.load(Ordering::Acquire));
            }
            pool.retain(|_, conns| !conns.is_empty());
            let own = pool.values().flatten().find(|conn| {
                let state = lock(&conn.state);
                // Never verifies: the origin is the connection's own.
                state.origin() == origin
                    && self.inner.policy.may_reuse(&state, origin, ips, |_| false)
                        == ReuseDecision::Reuse
            });
            if let Some(conn) = own {
                return Some(conn.clone());
            }
            if own_only {
                return None;
            }
            pool.values()
                .flatten()
                .filter(|conn| lock(&conn.state).origin() != origin)
                .cloned()
                .collect()
        };
        let conn = others.into_iter().find(|conn| {
            let state = lock(&conn.state);
            let decision = self
                .inner
                .policy
                .may_reuse(&state, origin, ips, |host| conn.verifies(&self.inner, host));
            decision == ReuseDecision::Reuse
        })?;
        self.inner
            .counters
            .coalesced
            .fetch_add(1, Ordering::Relaxed);
        debug!(
            origin = %origin,
            connection = conn.id,
            made_for = %lock(&conn.state).origin(),
            peer = %conn.peer,
            "coalesced: reusing a connection made for another origin"
        );
        Some(conn)
    }

    /// An HTTP/1.1 connection of `origin` that is between requests.
    fn idle_h1(&self, origin: &Origin) -> Option<Box<H1Conn>> {
        let mut idle = lock(&self.inner.idle_h1);
        let conns = idle.get_mut(origin)?;
        conns.retain(|h1| !h1.sender.is_closed());
        let ready = conns.iter().position(|h1| h1.sender.is_ready());
        let h1 = ready.map(|at| Box::new(conns.swap_remove(at)));
        if conns.is_empty() {
            idle.remove(origin);
        }
        h1
    }

    /// Records a 421 for `origin`: with `remember_misdirected`, it goes only on
    /// connections made for it until the time is up.
    fn remember(&self, origin: &Origin) {
        let Some(ttl) = self.inner.remember_misdirected else {
            return;
        };
        let now = Instant::now();
        let mut remembered = lock(&self.inner.misdirected);
        if remembered.len() >= MAX_REMEMBERED && !remembered.contains_key(origin) {
            remembered.retain(|_, until| *until > now);
            if remembered.len() >= MAX_REMEMBERED {
                let soonest = remembered
                    .iter()
                    .min_by_key(|(_, until)| **until)
                    .map(|(origin, _)| origin.clone());
                if let Some(soonest) = soonest {
                    remembered.remove(&soonest);
                }
            }
        }
        remembered.insert(origin.clone(), now + ttl);
        debug!(origin = %origin, for_secs = ttl.as_secs_f64(), "origin remembered as misdirected: not coalesced");
    }

    /// TCP, then TLS with the origin's host as SNI (RFC 9113 §9.2), then HTTP/2 or
    /// HTTP/1.1 as ALPN chose (RFC 7301). A pooled connection joins the pool.
    pub(crate) async fn open(
        &self,
        origin: &Origin,
        addrs: &[SocketAddr],
        opening: Opening,
    ) -> Result<Opened, Error> {
        let established = self.handshake(origin, addrs, opening).await?;
        match established.info.protocol {
            Protocol::Http2 => {
                let conn = self.start_h2(origin, established).await?;
                if opening.pooled {
                    lock(&self.inner.pool)
                        .entry(conn.peer)
                        .or_default()
                        .push(conn.clone());
                }
                Ok(Opened::H2(conn))
            }
            Protocol::Http11 => Ok(Opened::H1(Box::new(
                self.start_h1(origin, established, opening).await?,
            ))),
        }
    }

    /// The TCP connection and the TLS handshake of a new connection for `origin`.
    async fn handshake(
        &self,
        origin: &Origin,
        addrs: &[SocketAddr],
        opening: Opening,
    ) -> Result<Established, Error> {
        let inner = &self.inner;
        let (tcp, peer) = tokio::time::timeout(inner.connect_timeout, connect_any(addrs))
            .await
            .map_err(|_| timeout("connecting", origin))??;
        if opening.pooled {
            let live = inner.live(peer);
            if live >= inner.max_per_peer {
                return Err(Error::new(
                    ErrorKind::TooManyConnections,
                    format!(
                        "{peer} already has {live} connections (the limit) and none may carry {origin}"
                    ),
                ));
            }
        }

        let name = server_name(origin.host()).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidRequest,
                format!("{origin}: not a TLS server name"),
            )
        })?;
        let notes = ClientAuthNotes::default();
        let verification = Arc::new(Mutex::new(None));
        let config = inner.connection_config(&notes, opening, &verification);
        let connector = TlsConnector::from(config);
        let tls = tokio::time::timeout(inner.connect_timeout, connector.connect(name, tcp))
            .await
            .map_err(|_| timeout("the TLS handshake with", origin))?
            .map_err(|err| {
                let error = Error::new(
                    ErrorKind::Tls,
                    format!("TLS handshake with {origin} at {peer}"),
                )
                .with_source(err);
                client_cert_hint(error, notes.requested() && !notes.presented())
                    .with_client_cert_requested(notes.requested())
            })?;
        let session = &tls.get_ref().1;
        let protocol = match session.alpn_protocol() {
            Some(H2) => Protocol::Http2,
            _ => Protocol::Http11,
        };
        // A resumed session keeps the client authentication of the handshake it came from
        // without presenting the certificate again (RFC 8446 §2.2): count it as presented
        // when this client ever presented it to that name.
        let host = origin.host().to_string();
        let resumed = session.handshake_kind() == Some(HandshakeKind::Resumed);
        let presented = match resumed {
            true => lock(&inner.presented_to).contains(&host),
            false => notes.presented(),
        };
        if presented {
            lock(&inner.presented_to).insert(host);
        }
        let chain: Vec<CertificateDer<'static>> = session
            .peer_certificates()
            .map(|certs| certs.iter().map(|c| c.clone().into_owned()).collect())
            .unwrap_or_default();
        let verification = lock(&verification).take().unwrap_or(Ok(()));
        let info = ConnectionInfo {
            origin: origin.clone(),
            peer,
            protocol,
            tls_version: session.protocol_version(),
            peer_certificates: chain,
            verification,
            client_cert_requested: notes.requested(),
            client_cert_presented: presented,
            resumed,
        };
        inner
            .counters
            .connections_opened
            .fetch_add(1, Ordering::Relaxed);
        Ok(Established {
            tls,
            info,
            addrs: addrs.to_vec(),
        })
    }

    /// HTTP/2 on an established connection, with its ORIGIN frames watched.
    async fn start_h2(
        &self,
        origin: &Origin,
        established: Established,
    ) -> Result<Arc<Conn>, Error> {
        let inner = &self.inner;
        let Established { tls, info, addrs } = established;
        // A certificate whose names do not parse covers nothing: the connection then
        // serves its own origin only.
        let identities = info
            .peer_certificates
            .first()
            .and_then(|cert| Identities::from_der(cert).ok())
            .unwrap_or_else(|| Identities::from_patterns(std::iter::empty()));
        let state = PooledConnection::new(origin.clone(), info.peer.ip(), Arc::new(identities))
            .resolved(addrs.iter().map(SocketAddr::ip))
            .with_client_cert(info.client_cert_presented);
        let state = Arc::new(Mutex::new(state));
        let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
        let lacks_client_cert = info.lacks_client_cert();
        let peer = info.peer;

        let watch = OriginWatch::new(tls, {
            let state = state.clone();
            let counters = inner.counters.clone();
            move |frame: OriginFrame| {
                counters.origin_frames.fetch_add(1, Ordering::Relaxed);
                let added = lock(&state).on_origin_frame(&frame);
                debug!(
                    connection = id,
                    origins = ?frame.origins(),
                    added,
                    "ORIGIN frame"
                );
            }
        });
        let handshake = h2::client::handshake(watch);
        let (sender, mut connection) = tokio::time::timeout(inner.connect_timeout, handshake)
            .await
            .map_err(|_| timeout("the HTTP/2 handshake with", origin))?
            .map_err(|err| {
                let error = Error::new(ErrorKind::Http2, format!("HTTP/2 handshake with {origin}"))
                    .with_source(err);
                client_cert_hint(error, lacks_client_cert)
            })?;
        let pings = connection.ping_pong();
        let closed = Arc::new(AtomicBool::new(false));
        tokio::spawn({
            let state = state.clone();
            let closed = closed.clone();
            async move {
                let result = connection.await;
                closed.store(true, Ordering::Release);
                lock(&state).going_away();
                debug!(connection = id, ?result, "connection closed");
            }
        });
        debug!(connection = id, origin = %origin, peer = %peer, "connection opened (h2)");
        Ok(Arc::new(Conn {
            id,
            peer,
            sender,
            state,
            verified: Mutex::new(Verified {
                answers: HashMap::new(),
                expires: earliest_not_after(&info.peer_certificates),
            }),
            info,
            closed,
            pings: tokio::sync::Mutex::new(pings),
        }))
    }

    /// HTTP/1.1 on an established connection.
    async fn start_h1(
        &self,
        origin: &Origin,
        established: Established,
        opening: Opening,
    ) -> Result<H1Conn, Error> {
        let inner = &self.inner;
        let info = established.info;
        let io = hyper_util::rt::TokioIo::new(established.tls);
        let handshake = hyper::client::conn::http1::handshake::<_, Outgoing>(io);
        let (sender, connection) = tokio::time::timeout(inner.connect_timeout, handshake)
            .await
            .map_err(|_| timeout("the HTTP/1.1 handshake with", origin))?
            .map_err(|err| {
                Error::new(
                    ErrorKind::Http1,
                    format!("HTTP/1.1 handshake with {origin}"),
                )
                .with_source(err)
            })?;
        let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
        let peer = info.peer;
        if opening.pooled {
            *lock(&inner.live_h1).entry(peer).or_default() += 1;
        }
        tokio::spawn({
            let live = opening.pooled.then(|| inner.live_h1.clone());
            async move {
                let result = connection.await;
                if let Some(live) = live {
                    let mut live = lock(&live);
                    if let Some(count) = live.get_mut(&peer) {
                        *count = count.saturating_sub(1);
                        if *count == 0 {
                            live.remove(&peer);
                        }
                    }
                }
                debug!(connection = id, ?result, "connection closed");
            }
        });
        debug!(connection = id, origin = %origin, peer = %peer, "connection opened (http/1.1)");
        Ok(H1Conn {
            id,
            served: 0,
            sender,
            info,
        })
    }

    /// Sends one request on an HTTP/2 connection and waits for the response head.
    pub(crate) async fn exchange(
        &self,
        conn: &Conn,
        parts: &http::request::Parts,
        body: &mut RequestBody,
    ) -> Result<Response<Body>, Failure> {
        let mut head = Request::new(());
        *head.method_mut() = parts.method.clone();
        *head.uri_mut() = parts.uri.clone();
        *head.headers_mut() = parts.headers.clone();
        if body.is_spent() {
            return Err(Failure {
                unsent: false,
                error: Error::new(
                    ErrorKind::NotRetried,
                    format!(
                        "{} {}: the streaming body was already sent",
                        parts.method, parts.uri
                    ),
                ),
            });
        }
        let lacks_client_cert = conn.info.lacks_client_cert();
        let failure = |unsent: bool| {
            move |err: h2::Error| Failure {
                // RFC 9113 §8.7: REFUSED_STREAM means the server did not process it.
                unsent: unsent || err.reason() == Some(h2::Reason::REFUSED_STREAM),
                error: client_cert_hint(
                    Error::new(
                        ErrorKind::Http2,
                        format!("{} {} on connection {}", parts.method, parts.uri, conn.id),
                    )
                    .with_source(err),
                    lacks_client_cert,
                ),
            }
        };
        let exchange = async {
            let mut sender = conn.sender.clone().ready().await.map_err(failure(true))?;
            let end = body.is_end();
            let (response, mut stream) = sender.send_request(head, end).map_err(failure(true))?;
            if !end {
                match body.take() {
                    Some(Outgoing::Full(Some(bytes))) => {
                        stream.send_data(bytes, true).map_err(failure(false))?;
                    }
                    Some(outgoing) => {
                        tokio::spawn(pump_h2(outgoing, stream));
                    }
                    None => stream.send_reset(h2::Reason::CANCEL),
                }
            }
            let response = response.await.map_err(failure(false))?;
            Ok(response.map(Body::h2))
        };
        tokio::time::timeout(self.inner.request_timeout, exchange)
            .await
            .map_err(|_| Failure {
                unsent: false,
                error: Error::new(
                    ErrorKind::Timeout,
                    format!("{} {}: no response in time", parts.method, parts.uri),
                ),
            })?
    }

    /// Sends one request on an HTTP/1.1 connection (origin-form target and `Host`, RFC 9112
    /// §3.2) and waits for the response head; a pooled connection goes back to the pool
    /// then, ready for the next request once this response's body is read.
    pub(crate) async fn exchange_h1(
        &self,
        mut h1: Box<H1Conn>,
        origin: &Origin,
        parts: &http::request::Parts,
        body: &mut RequestBody,
    ) -> Result<Response<Body>, Error> {
        let request = h1_request(parts, body)?;
        let reused = h1.served > 0;
        let mut result = self.send_h1(&mut h1, parts, request).await;
        if let Err(H1Failure { error, unsent }) = result {
            // A kept connection the server closed while it was idle (RFC 9112 §9.3.1): a
            // request it never took goes on a new connection; so does one it took and
            // closed on without an answer, when the method is idempotent (RFC 9110
            // §9.2.2) and the body can be sent again.
            let request = match unsent {
                _ if !reused => return Err(error),
                Some(request) => request,
                None if parts.method.is_idempotent()
                    && body.is_replayable()
                    && error.kind() == ErrorKind::Http1
                    && closed_before_answer(&error) =>
                {
                    h1_request(parts, body)?
                }
                None => return Err(error),
            };
            debug!(
                origin = %origin,
                connection = h1.id,
                error = %error,
                "request not sent on a kept HTTP/1.1 connection: opening a new one"
            );
            let addrs = self.resolve(origin).await?;
            h1 = match self.open(origin, &addrs, Opening::POOLED).await? {
                Opened::H1(fresh) => fresh,
                Opened::H2(conn) => {
                    // The server now speaks HTTP/2: the request goes there instead.
                    let mut body = RequestBody::from_outgoing(request.into_body());
                    return Ok(self.exchange(&conn, parts, &mut body).await?);
                }
            };
            result = self.send_h1(&mut h1, parts, request).await;
        }
        if result.is_ok() && !h1.sender.is_closed() {
            lock(&self.inner.idle_h1)
                .entry(origin.clone())
                .or_default()
                .push(*h1);
        }
        result.map_err(|failure| failure.error)
    }

    /// Sends `request` on `h1` and waits for the response head; a request the connection
    /// never took comes back with the error.
    pub(crate) async fn send_h1(
        &self,
        h1: &mut H1Conn,
        parts: &http::request::Parts,
        request: Request<Outgoing>,
    ) -> Result<Response<Body>, H1Failure> {
        let id = h1.id;
        let lacks_client_cert = h1.info.lacks_client_cert();
        let failed = |err: hyper::Error| {
            client_cert_hint(
                Error::new(
                    ErrorKind::Http1,
                    format!("{} {} on connection {id}", parts.method, parts.uri),
                )
                .with_source(err),
                lacks_client_cert,
            )
        };
        let sender = &mut h1.sender;
        let exchange = async {
            if let Err(err) = sender.ready().await {
                return Err(H1Failure {
                    error: failed(err),
                    unsent: Some(request),
                });
            }
            match sender.try_send_request(request).await {
                Ok(response) => Ok(response.map(Body::h1)),
                Err(mut err) => {
                    let unsent = err.take_message();
                    Err(H1Failure {
                        error: failed(err.into_error()),
                        unsent,
                    })
                }
            }
        };
        let result = tokio::time::timeout(self.inner.request_timeout, exchange)
            .await
            .map_err(|_| H1Failure {
                error: Error::new(
                    ErrorKind::Timeout,
                    format!("{} {}: no response in time", parts.method, parts.uri),
                ),
                unsent: None,
            })?;
        h1.served += 1;
        result
    }
}

/// The HTTP/1.1 form of a request (RFC 9112 §3.2): an origin-form target, and `Host` from
/// the URI's authority when the request has none.
pub(crate) fn h1_request(
    parts: &http::request::Parts,
    body: &mut RequestBody,
) -> Result<Request<Outgoing>, Error> {
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str);
    let mut request = Request::new(body.take().ok_or_else(|| {
        Error::new(
            ErrorKind::NotRetried,
            format!(
                "{} {}: the streaming body was already sent",
                parts.method, parts.uri
            ),
        )
    })?);
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = target.parse().map_err(|err| {
        Error::new(
            ErrorKind::InvalidRequest,
            format!("{}: bad target", parts.uri),
        )
        .with_source(err)
    })?;
    *request.headers_mut() = parts.headers.clone();
    if !request.headers().contains_key(HOST)
        && let Some(authority) = parts.uri.authority()
        && let Ok(value) = HeaderValue::from_str(authority.as_str())
    {
        request.headers_mut().insert(HOST, value);
    }
    Ok(request)
}

/// Whether an HTTP/1.1 exchange failed because the server closed the connection before
/// any of its answer arrived.
fn closed_before_answer(error: &Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    let Some(err) =
        std::error::Error::source(error).and_then(|source| source.downcast_ref::<hyper::Error>())
    else {
        return false;
    };
    let io =
        std::error::Error::source(err).and_then(|source| source.downcast_ref::<std::io::Error>());
    err.is_incomplete_message()
        || err.is_canceled()
        || io.is_some_and(|io| {
            matches!(
                io.kind(),
                UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe
            )
        })
}

/// A failed HTTP/1.1 exchange, with the request when the connection never took it.
pub(crate) struct H1Failure {
    pub(crate) error: Error,
    unsent: Option<Request<Outgoing>>,
}

/// What concurrent requests that open connections wait on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Gate {
    Origin(Origin),
    Peer(SocketAddr),
}

/// Where a request goes.
#[derive(Debug)]
enum Found {
    /// An HTTP/2 connection from the pool, made for this origin or shared with it.
    Pooled(Arc<Conn>),
    /// An HTTP/2 connection just opened for this origin.
    Opened(Arc<Conn>),
    /// An HTTP/1.1 connection of this origin, from the pool or just opened.
    H1(Box<H1Conn>),
}

/// A failed exchange, and whether the request certainly never reached the server's
/// application (so that sending it again elsewhere is safe whatever its method).
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) error: Error,
    unsent: bool,
}

impl From<Failure> for Error {
    fn from(failure: Failure) -> Self {
        failure.error
    }
}

impl Conn {
    /// Whether the connection's chain passes, for `host`, the full verification a new
    /// connection would make (RFC 9113 §9.1.1). The chain never changes, so an answer holds
    /// until the chain's earliest `notAfter` (a failure, a minute); only the clock could
    /// change it.
    fn verifies(&self, inner: &Inner, host: &Host) -> bool {
        let now = SystemTime::now();
        if let Some(answer) = lock(&self.verified).get(host, now) {
            return answer;
        }
        // Verified without holding the lock: other requests go on meanwhile.
        let answer = inner.verifies(&self.info.peer_certificates, host);
        lock(&self.verified).insert(host, answer, now);
        answer
    }

    /// Takes the connection out of service: no new request goes on it.
    fn retire(&self) {
        self.closed.store(true, Ordering::Release);
        lock(&self.state).going_away();
    }

    /// A PING round trip (RFC 9113 §6.7): every frame the server sent before answering it
    /// has been read by then.
    pub(crate) async fn ping(&self) -> Result<(), Error> {
        let mut pings = self.pings.lock().await;
        let Some(pings) = pings.as_mut() else {
            return Ok(());
        };
        match pings.ping(h2::Ping::opaque()).await {
            Ok(_) => Ok(()),
            Err(err) => {
                let error = Error::new(ErrorKind::Http2, format!("PING on connection {}", self.id))
                    .with_source(err);
                Err(client_cert_hint(error, self.info.lacks_client_cert()))
            }
        }
    }
}

impl ClientBuilder {
    /// The trust anchors that verify servers (none by default: add your CA, or the
    /// system's through `rustls-native-certs`).
    ///
    /// ```
    /// let client = misdirect_client::Client::builder().roots(rustls::RootCertStore::empty()).build()?;
    /// # Ok::<(), misdirect_client::Error>(())
    /// ```
    pub fn roots(mut self, roots: RootCertStore) -> Self {
        self.roots = roots;
        self
    }

    /// A client certificate chain and its key, presented to servers that ask for one.
    /// A connection that presented it carries requests for its own origin only, unless
    /// [`share_client_cert`](Self::share_client_cert) says otherwise.
    ///
    /// ```no_run
    /// use rustls_pki_types::pem::PemObject;
    /// use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    ///
    /// let chain = CertificateDer::pem_file_iter("client.pem")?.collect::<Result<Vec<_>, _>>()?;
    /// let key = PrivateKeyDer::from_pem_file("client.key")?;
    /// let client = misdirect_client::Client::builder().client_cert(chain, key).build()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn client_cert(
        mut self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Self {
        self.client_cert = Some((chain, key));
        self
    }

    /// When a connection made for one origin may carry another's requests
    /// (default [`ReuseMode::OriginFrame`]).
    ///
    /// ```
    /// use misdirect_coalesce::ReuseMode;
    ///
    /// let client = misdirect_client::Client::builder().reuse_mode(ReuseMode::Exact).build()?;
    /// # Ok::<(), misdirect_client::Error>(())
    /// ```
    pub fn reuse_mode(mut self, mode: ReuseMode) -> Self {
        self.mode = mode;
        self
    }

    /// Lets a connection that presented the client certificate carry requests for other
    /// origins (off by default: the certificate would speak for origins it was not chosen
    /// for).
    ///
    /// ```
    /// let client = misdirect_client::Client::builder().share_client_cert(true).build()?;
    /// # Ok::<(), misdirect_client::Error>(())
    /// ```
    pub fn share_client_cert(mut self, share: bool) -> Self {
        self.share_client_cert = share;
        self
    }

    /// How host names become addresses (default [`SystemResolver`]).
    ///
    /// ```
    /// use misdirect_client::StaticResolver;
    ///
    /// let resolver = StaticResolver::new().insert("a.localhost", ["127.0.0.1".parse()?]);
    /// let client = misdirect_client::Client::builder().resolver(resolver).build()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn resolver(mut self, resolver: impl Resolve) -> Self {
        self.resolver = Arc::new(resolver);
        self
    }

    /// The longest a TCP connect, and then a TLS handshake, may take (default 10 s).
    ///
    /// ```
    /// let client = misdirect_client::Client::builder()
    ///     .connect_timeout(std::time::Duration::from_secs(3))
    ///     .build()?;
    /// # Ok::<(), misdirect_client::Error>(())
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The longest a request may wait for its response head (default 30 s).
    ///
    /// ```
    /// let client = misdirect_client::Client::builder()
    ///     .request_timeout(std::time::Duration::from_secs(5))
    ///     .build()?;
    /// # Ok::<(), misdirect_client::Error>(())
    /// ```
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The most open connections to one peer address (default 16); opening one more fails
    /// with [`ErrorKind::TooManyConnections`]. A value of 0 counts as 1.
    ///
    /// ```
    /// let client = misdirect_client::Client::builder().max_connections_per_peer(2).build()?;
    /// # Ok::<(), misdirect_client::Error>(())
    /// ```
    pub fn max_connections_per_peer(mut self, max: usize) -> Self {
        self.max_per_peer = max.max(1);
        self
    }

    /// Remembers, for `ttl`, every origin that got a `421 Misdirected Request`: until then
    /// its requests go only on connections made for it, never on one shared with another
    /// origin — a memory across connections that browsers keep for one connection or one
    /// request only. Off by default; at most 4,096 origins are remembered at once.
    ///
    /// ```
    /// let client = misdirect_client::Client::builder()
    ///     .remember_misdirected(std::time::Duration::from_secs(600))
    ///     .build()?;
    /// # Ok::<(), misdirect_client::Error>(())
    /// ```
    pub fn remember_misdirected(mut self, ttl: Duration) -> Self {
        self.remember_misdirected = Some(ttl);
        self
    }

    /// The client; fails when rustls refuses the client certificate or key.
    ///
    /// ```
    /// let client = misdirect_client::Client::builder().build()?;
    /// let clone = client.clone(); // shares the pool
    /// # Ok::<(), misdirect_client::Error>(())
    /// ```
    pub fn build(self) -> Result<Client, Error> {
        let has_client_cert = self.client_cert.is_some();
        let config_error =
            |what: &str, err: rustls::Error| Error::new(ErrorKind::Config, what).with_source(err);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> = match self.roots.is_empty() {
            true => Arc::new(TrustsNobody(provider.clone())),
            false => {
                WebPkiServerVerifier::builder_with_provider(Arc::new(self.roots), provider.clone())
                    .build()
                    .map_err(|err| {
                        Error::new(ErrorKind::Config, "no usable trust anchor").with_source(err)
                    })?
            }
        };
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|err| config_error("TLS versions", err))?
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone());
        let mut config = match self.client_cert {
            None => builder.with_no_client_auth(),
            Some((chain, key)) => builder
                .with_client_auth_cert(chain, key)
                .map_err(|err| config_error("client certificate", err))?,
        };
        config.alpn_protocols = vec![H2.to_vec(), HTTP11.to_vec()];
        let policy = ReusePolicy::new(self.mode).share_client_cert(self.share_client_cert);
        Ok(Client {
            inner: Arc::new(Inner {
                config: Arc::new(config),
                verifier,
                has_client_cert,
                policy,
                resolver: self.resolver,
                connect_timeout: self.connect_timeout,
                request_timeout: self.request_timeout,
                max_per_peer: self.max_per_peer,
                remember_misdirected: self.remember_misdirected,
                idle_h1: Mutex::new(HashMap::new()),
                live_h1: Arc::new(Mutex::new(HashMap::new())),
                misdirected: Mutex::new(HashMap::new()),
                pool: Mutex::new(HashMap::new()),
                opening: Mutex::new(HashMap::new()),
                presented_to: Mutex::new(HashSet::new()),
                counters: Arc::new(Counters::default()),
                next_id: AtomicU64::new(0),
            }),
        })
    }
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("roots", &self.roots.len())
            .field("client_cert", &self.client_cert.is_some())
            .field("mode", &self.mode)
            .field("share_client_cert", &self.share_client_cert)
            .field("resolver", &self.resolver)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("max_connections_per_peer", &self.max_per_peer)
            .field("remember_misdirected", &self.remember_misdirected)
            .finish()
    }
}

impl Inner {
    /// Whether `chain` passes the full verification a new connection to `host` would make
    /// (RFC 9113 §9.1.1): chain to a trust anchor, validity period, usage and name.
    fn verifies(&self, chain: &[CertificateDer<'static>], host: &Host) -> bool {
        self.verify(chain, host).is_ok()
    }

    /// The verifier's answer for `chain` and `host`.
    pub(crate) fn verify(
        &self,
        chain: &[CertificateDer<'static>],
        host: &Host,
    ) -> Result<(), rustls::Error> {
        let Some((end_entity, intermediates)) = chain.split_first() else {
            return Err(rustls::Error::NoCertificatesPresented);
        };
        let name = server_name(host).ok_or_else(|| {
            rustls::Error::General(format!(
                "{host} is not a name a certificate can be verified for"
            ))
        })?;
        self.verifier
            .verify_server_cert(end_entity, intermediates, &name, &[], UnixTime::now())
            .map(|_| ())
    }

    /// The TLS configuration of one new connection: a client-certificate resolver that
    /// notes whether the server asked and got one; for a connection opened with
    /// [`ConnectOptions::without_sni`](crate::ConnectOptions::without_sni) no SNI; for one
    /// that records verification, a verifier that keeps its answer instead of failing.
    fn connection_config(
        &self,
        notes: &ClientAuthNotes,
        opening: Opening,
        verification: &Arc<Mutex<Option<Result<(), rustls::Error>>>>,
    ) -> Arc<ClientConfig> {
        // A pooled connection of a client without a certificate learns nothing from a
        // resolver of its own, and shares the client's configuration so that it can
        // resume a session (rustls resumes only under the same verifier and resolver).
        if !self.has_client_cert && opening.pooled && opening.sni && !opening.record_verification {
            return self.config.clone();
        }
        let mut config = (*self.config).clone();
        config.client_auth_cert_resolver = Arc::new(Noting {
            inner: self.config.client_auth_cert_resolver.clone(),
            notes: notes.clone(),
        });
        config.enable_sni = opening.sni;
        if opening.record_verification {
            config
                .dangerous()
                .set_certificate_verifier(Arc::new(Recording {
                    inner: self.verifier.clone(),
                    outcome: verification.clone(),
                }));
        }
        Arc::new(config)
    }

    /// Open connections to `peer` that count against the limit per peer.
    fn live(&self, peer: SocketAddr) -> usize {
        let h2 = lock(&self.pool).get(&peer).map_or(0, |conns| {
            conns
                .iter()
                .filter(|conn| !conn.closed.load(Ordering::Acquire))
                .count()
        });
        h2 + lock(&self.live_h1).get(&peer).copied().unwrap_or(0)
    }

    /// Whether `origin` got a 421 recently enough to go only on its own connections.
    fn remembered(&self, origin: &Origin) -> bool {
        if self.remember_misdirected.is_none() {
            return false;
        }
        let mut remembered = lock(&self.misdirected);
        match remembered.get(origin) {
            Some(until) if *until > Instant::now() => true,
            Some(_) => {
                remembered.remove(origin);
                false
            }
            None => false,
        }
    }
}

impl Verified {
    /// The kept answer for `host`, if it still holds at `now`.
    fn get(&self, host: &Host, now: SystemTime) -> Option<bool> {
        match self.answers.get(host) {
            Some(&(answer, until)) if now < until => Some(answer),
            _ => None,
        }
    }

    /// Keeps `answer` for `host`: a success until the chain's earliest `notAfter` (not at
    /// all when that is unknown), a failure for a minute.
    fn insert(&mut self, host: &Host, answer: bool, now: SystemTime) {
        let until = match answer {
            true => self.expires.unwrap_or(now),
            false => now + FAILED_VERIFICATION_KEPT,
        };
        if self.answers.len() >= MAX_VERIFIED_HOSTS {
            self.answers.retain(|_, (_, until)| now < *until);
            if self.answers.len() >= MAX_VERIFIED_HOSTS {
                self.answers.clear();
            }
        }
        self.answers.insert(host.clone(), (answer, until));
    }
}

/// The earliest `notAfter` among `chain`'s certificates; `None` when one does not parse.
fn earliest_not_after(chain: &[CertificateDer<'static>]) -> Option<SystemTime> {
    let mut earliest: Option<SystemTime> = None;
    for cert in chain {
        let (_, parsed) = x509_parser::parse_x509_certificate(cert).ok()?;
        let secs = u64::try_from(parsed.validity().not_after.timestamp()).ok()?;
        let not_after = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        earliest = Some(earliest.map_or(not_after, |e| e.min(not_after)));
    }
    earliest
}

/// Says what a failure means when the server asked for a client certificate this client
/// did not present (`lacking`): a server that requires one ends the handshake (TLS 1.2) or
/// the connection just after it (TLS 1.3: a `certificate_required` alert or a closed
/// connection, whichever is read first).
fn client_cert_hint(error: Error, lacking: bool) -> Error {
    if error.kind() == ErrorKind::Timeout || !(lacking || certificate_required_alert(&error)) {
        return error;
    }
    Error::new(
        ErrorKind::ClientCertRequired,
        "the server requires a client certificate and this client has none to present (ClientBuilder::client_cert)",
    )
    .with_source(error)
}

/// Whether `error` comes from a `certificate_required` alert (RFC 8446 §6.2): the server
/// wanted a client certificate. Read where the connection's own notes are not kept.
fn certificate_required_alert(error: &(dyn std::error::Error + 'static)) -> bool {
    let alert = rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired);
    let mut next = Some(error);
    while let Some(error) = next {
        let tls = error.downcast_ref::<rustls::Error>().or_else(|| {
            error
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if tls == Some(&alert) {
            return true;
        }
        // h2 keeps an I/O error's kind and text, not the error itself.
        if let Some(io) = error
            .downcast_ref::<h2::Error>()
            .and_then(h2::Error::get_io)
            && io.to_string() == alert.to_string()
        {
            return true;
        }
        next = error.source();
    }
    false
}

/// The origin a request is for: an absolute `https` URI's scheme, host and port
/// (RFC 9110 §4.3.1, §4.3.3).
pub(crate) fn origin_of(uri: &Uri) -> Result<Origin, Error> {
    let invalid = |why: &str| Error::new(ErrorKind::InvalidRequest, format!("{uri}: {why}"));
    if uri.scheme_str() != Some("https") {
        return Err(invalid(
            "only https URIs are sent (HTTP/2 over TLS, RFC 9113 §3.2)",
        ));
    }
    let authority = uri.authority().ok_or_else(|| invalid("no authority"))?;
    let authority = Authority::parse(authority.as_str().as_bytes())
        .map_err(|err| invalid("not a valid authority").with_source(err))?;
    Ok(Origin::from_authority(Scheme::Https, &authority))
}

/// The TLS server name for `host`: a DNS name is sent as SNI (RFC 9113 §9.2, RFC 6066 §3);
/// an IP address is verified but never sent.
fn server_name(host: &Host) -> Option<ServerName<'static>> {
    match host.ip() {
        Some(ip) => Some(ServerName::IpAddress(ip.into())),
        None => ServerName::try_from(host.to_string()).ok(),
    }
}

/// The first address that accepts a TCP connection.
async fn connect_any(addrs: &[SocketAddr]) -> Result<(TcpStream, SocketAddr), Error> {
    let mut last = None;
    for &addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(tcp) => {
                // Requests are small frames written as a whole: no Nagle delay.
                let _ = tcp.set_nodelay(true);
                return Ok((tcp, addr));
            }
            Err(err) => last = Some((addr, err)),
        }
    }
    Err(match last {
        Some((addr, err)) => {
            Error::new(ErrorKind::Connect, format!("connecting to {addr}")).with_source(err)
        }
        None => Error::new(ErrorKind::Connect, "no address to connect to"),
    })
}

fn timeout(what: &str, origin: &Origin) -> Error {
    Error::new(ErrorKind::Timeout, format!("{what} {origin}: timed out"))
}

/// Locks `mutex`; a panic while it was held leaves plain data behind, still usable.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

    use super::*;

    /// A CA and a leaf for `names` it issued.
    fn issue(names: &[&str]) -> (CertificateDer<'static>, Vec<CertificateDer<'static>>) {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().unwrap();
        let names = names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let leaf = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        (ca_cert.der().clone(), vec![leaf.der().clone()])
    }

    fn client(root: Option<CertificateDer<'static>>) -> Client {
        let mut roots = RootCertStore::empty();
        if let Some(root) = root {
            roots.add(root).unwrap();
        }
        Client::builder().roots(roots).build().unwrap()
    }

    #[test]
    fn coalescing_verifies_the_whole_chain_not_only_the_name() {
        // RFC 9113 §9.1.1: reuse for another host needs every check a new connection to
        // that host would make.
        let (ca, chain) = issue(&["*.example.test"]);
        let (other_ca, _) = issue(&["unrelated.test"]);
        let cases: &[(&str, Option<&CertificateDer<'static>>, bool)] = &[
            ("b.example.test", Some(&ca), true),
            ("B.Example.Test", Some(&ca), true),
            ("example.test", Some(&ca), false),
            ("a.b.example.test", Some(&ca), false),
            ("b.example.test", Some(&other_ca), false),
            ("b.example.test", None, false),
        ];
        for &(host, root, want) in cases {
            let client = client(root.cloned());
            let host: Host = host.parse().unwrap();
            assert_eq!(
                client.inner.verifies(&chain, &host),
                want,
                "{host} with {}",
                if root == Some(&ca) {
                    "its CA"
                } else {
                    "another or no CA"
                }
            );
        }
        assert!(
            !client(Some(ca))
                .inner
                .verifies(&[], &"b.example.test".parse().unwrap())
        );
    }

    #[test]
    fn verifications_are_kept_until_the_chain_expires_and_failures_for_a_minute() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let expires = now + Duration::from_secs(3600);
        let mut verified = Verified {
            answers: HashMap::new(),
            expires: Some(expires),
        };
        let b: Host = "b.example.test".parse().unwrap();
        let c: Host = "c.example.test".parse().unwrap();
        assert_eq!(verified.get(&b, now), None);
        verified.insert(&b, true, now);
        verified.insert(&c, false, now);
        assert_eq!(
            verified.get(&b, now + Duration::from_secs(3599)),
            Some(true)
        );
        assert_eq!(
            verified.get(&b, expires),
            None,
            "past notAfter: verify again"
        );
        assert_eq!(verified.get(&c, now + Duration::from_secs(59)), Some(false));
        assert_eq!(verified.get(&c, now + FAILED_VERIFICATION_KEPT), None);
        // Without a known notAfter nothing is kept.
        let mut unknown = Verified::default();
        unknown.insert(&b, true, now);
        assert_eq!(unknown.get(&b, now), None);
        // Bounded: past the limit the expired go first, then everything.
        for i in 0..MAX_VERIFIED_HOSTS + 10 {
            let host: Host = format!("h{i}.example.test").parse().unwrap();
            verified.insert(&host, true, now);
        }
        assert!(verified.answers.len() <= MAX_VERIFIED_HOSTS);
    }

    #[test]
    fn the_earliest_not_after_of_a_chain() {
        let (ca, chain) = issue(&["a.example.test"]);
        let with_ca = [chain[0].clone(), ca];
        let leaf = earliest_not_after(&chain).unwrap();
        assert_eq!(earliest_not_after(&with_ca), Some(leaf));
        assert!(leaf > SystemTime::now());
        assert_eq!(
            earliest_not_after(&[CertificateDer::from(vec![1, 2, 3])]),
            None
        );
    }

    #[test]
    fn only_absolute_https_uris_name_an_origin() {
        let cases: &[(&str, Option<&str>)] = &[
            ("https://A.Example.test/x", Some("https://a.example.test")),
            (
                "https://a.example.test:8443/",
                Some("https://a.example.test:8443"),
            ),
            (
                "https://a.example.test:443/",
                Some("https://a.example.test"),
            ),
            ("https://[::1]:8443/", Some("https://[::1]:8443")),
            ("http://a.example.test/", None),
            ("/relative", None),
            ("https://user@a.example.test/", None),
        ];
        for &(uri, want) in cases {
            let got = origin_of(&uri.parse().unwrap()).ok().map(|o| o.to_string());
            assert_eq!(got.as_deref(), want, "{uri}");
        }
    }
}
