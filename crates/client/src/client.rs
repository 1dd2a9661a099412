use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use misdirect_authority::{Authority, Host, Origin, Scheme};
use misdirect_certmatch::Identities;
use misdirect_coalesce::{PooledConnection, RetryAdvice, ReuseDecision, ReuseMode, ReusePolicy};
use misdirect_response::OriginFrame;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, HandshakeKind, RootCertStore,
    SignatureScheme,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tracing::debug;

use crate::origin_watch::OriginWatch;
use crate::{Body, Error, ErrorKind, Resolve, SystemResolver};

/// The ALPN protocol identifier of HTTP/2 over TLS (RFC 9113 §3.2).
const H2: &[u8] = b"h2";

/// HTTP/1.1's ALPN identifier (RFC 7301 §6), offered after `h2` so that a server without
/// HTTP/2 completes the handshake and the error can say so.
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
struct Inner {
    config: Arc<ClientConfig>,
    verifier: Arc<dyn ServerCertVerifier>,
    has_client_cert: bool,
    policy: ReusePolicy,
    resolver: Arc<dyn Resolve>,
    connect_timeout: Duration,
    request_timeout: Duration,
    max_per_peer: usize,
    /// Open connections by peer address.
    pool: Mutex<HashMap<SocketAddr, Vec<Arc<Conn>>>>,
    /// Server names this client presented its certificate to: sessions resumed with them
    /// carry that authentication.
    presented_to: Mutex<HashSet<String>>,
    /// Origins whose first connection is being opened, so that concurrent requests wait
    /// for it.
    opening: Mutex<HashMap<Origin, Arc<tokio::sync::Mutex<()>>>>,
    counters: Arc<Counters>,
    next_id: AtomicU64,
}

#[derive(Debug, Default)]
struct Counters {
    connections_opened: AtomicU64,
    requests: AtomicU64,
    coalesced: AtomicU64,
    retries_421: AtomicU64,
    origin_frames: AtomicU64,
}

/// One pooled HTTP/2 connection.
#[derive(Debug)]
struct Conn {
    id: u64,
    peer: SocketAddr,
    sender: h2::client::SendRequest<Bytes>,
    /// What the connection was made for and has learnt since; the ORIGIN watch writes to it.
    state: Arc<Mutex<PooledConnection>>,
    /// The server's certificate chain, end entity first, for re-verification.
    chain: Vec<CertificateDer<'static>>,
    /// Set when the connection's driver ended (GOAWAY, error, close).
    closed: Arc<AtomicBool>,
}

impl Client {
    /// A builder with no trust anchors, [`ReuseMode::OriginFrame`], the
    /// [`SystemResolver`], a 10 s connect timeout, a 30 s request timeout and at most 16
    /// connections per peer address.
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
        }
    }

    /// Sends `request` over HTTP/2 and returns the response once its head arrives.
    ///
    /// The URI must be absolute with scheme `https`. An open connection carries the request
    /// when [`ReusePolicy::may_reuse`] allows it — for another origin than its own, only
    /// after the full certificate verification a new connection would make for the
    /// request's host (RFC 9113 §9.1.1) — else a new connection is opened with the
    /// request's own host as SNI (RFC 9113 §9.2, RFC 6066 §3). A `421 Misdirected Request`
    /// (RFC 9110 §15.5.20) on a connection made for another origin marks the origin as
    /// misdirected on that connection and sends the request once more, whatever its method,
    /// on a fresh connection made for its origin; a second 421 is returned as is.
    ///
    /// The resolver is asked only when no pooled connection is made for the origin or lists
    /// it in its ORIGIN set (RFC 8336 §2.4 lets a client skip DNS for those).
    ///
    /// The request timeout covers waiting for the connection's capacity and the response
    /// head, not reading the body. Only `h2` is spoken: a server that does not select it by
    /// ALPN gives [`ErrorKind::Http1NotSupported`].
    ///
    /// ```no_run
    /// # async fn run(client: misdirect_client::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// let request = http::Request::post("https://a.localhost:8443/upload")
    ///     .body(bytes::Bytes::from_static(b"hello"))?;
    /// let response = client.send(request).await?;
    /// assert!(response.status().is_success());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send(&self, request: Request<Bytes>) -> Result<Response<Body>, Error> {
        let origin = origin_of(request.uri())?;
        let (parts, body) = request.into_parts();
        // A connection made for this origin, or one whose ORIGIN set lists it, needs no
        // DNS answer (RFC 8336 §2.4); only then is the resolver asked.
        let mut addrs = None;
        let found = match self.pick(&origin, &[]) {
            Some(conn) => Found::Pooled(conn),
            None => {
                let known = self.addresses(&origin, &mut addrs).await?;
                let ips: Vec<IpAddr> = known.iter().map(SocketAddr::ip).collect();
                self.connection(&origin, &ips, &known).await?
            }
        };
        self.inner.counters.requests.fetch_add(1, Ordering::Relaxed);

        let (conn, response) = match found {
            Found::Pooled(pooled) => match self.exchange(&pooled, &parts, &body).await {
                Ok(response) => (pooled, response),
                // The pooled connection stopped taking requests (GOAWAY, closed) or refused
                // this one unprocessed (RFC 9113 §8.7): the request never reached the
                // application, so it goes once on a fresh connection.
                Err(failure) if failure.unsent => {
                    pooled.retire();
                    debug!(
                        origin = %origin,
                        connection = pooled.id,
                        error = %failure.error,
                        "request not processed: opening a fresh connection"
                    );
                    let known = self.addresses(&origin, &mut addrs).await?;
                    let fresh = self.open(&origin, &known).await?;
                    let response = self.exchange(&fresh, &parts, &body).await?;
                    (fresh, response)
                }
                Err(failure) => return Err(failure.error),
            },
            Found::Opened(fresh) => {
                let response = self.exchange(&fresh, &parts, &body).await?;
                (fresh, response)
            }
        };
        if response.status() != StatusCode::MISDIRECTED_REQUEST {
            return Ok(response);
        }
        let advice = lock(&conn.state).on_misdirected(&origin);
        match advice {
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
                let fresh = self.open(&origin, &known).await?;
                Ok(self.exchange(&fresh, &parts, &body).await?)
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
    async fn resolve(&self, origin: &Origin) -> Result<Vec<SocketAddr>, Error> {
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
    /// it. Requests for one origin that find none wait for the first one's new connection
    /// rather than each opening their own (RFC 9113 §9.1: one connection per host and port).
    async fn connection(
        &self,
        origin: &Origin,
        ips: &[IpAddr],
        addrs: &[SocketAddr],
    ) -> Result<Found, Error> {
        if let Some(conn) = self.pick(origin, ips) {
            return Ok(Found::Pooled(conn));
        }
        let gate = lock(&self.inner.opening)
            .entry(origin.clone())
            .or_default()
            .clone();
        let guard = gate.lock().await;
        let found = match self.pick(origin, ips) {
            Some(conn) => Ok(Found::Pooled(conn)),
            None => self.open(origin, addrs).await.map(Found::Opened),
        };
        drop(guard);
        let mut opening = lock(&self.inner.opening);
        // The map's reference and ours: nobody else waits on this gate.
        if Arc::strong_count(&gate) == 2 {
            opening.remove(origin);
        }
        found
    }

    /// An open connection that may carry a request for `origin`: one made for it, else one
    /// the reuse policy lets it share.
    fn pick(&self, origin: &Origin, ips: &[IpAddr]) -> Option<Arc<Conn>> {
        let mut pool = lock(&self.inner.pool);
        for conns in pool.values_mut() {
            conns.retain(|conn| !conn.closed.load(Ordering::Acquire));
        }
        pool.retain(|_, conns| !conns.is_empty());
        let mut shared = None;
        for conn in pool.values().flatten() {
            let state = lock(&conn.state);
            let decision = self.inner.policy.may_reuse(&state, origin, ips, |host| {
                self.inner.verifies(&conn.chain, host)
            });
            if decision != ReuseDecision::Reuse {
                continue;
            }
            if state.origin() == origin {
                return Some(conn.clone());
            }
            if shared.is_none() {
                shared = Some((conn.clone(), state.origin().clone()));
            }
        }
        let (conn, made_for) = shared?;
        self.inner
            .counters
            .coalesced
            .fetch_add(1, Ordering::Relaxed);
        debug!(
            origin = %origin,
            connection = conn.id,
            made_for = %made_for,
            peer = %conn.peer,
            "coalesced: reusing a connection made for another origin"
        );
        Some(conn)
    }

    /// Opens a connection made for `origin` (its host as SNI) and adds it to the pool.
    async fn open(&self, origin: &Origin, addrs: &[SocketAddr]) -> Result<Arc<Conn>, Error> {
        let inner = &self.inner;
        let (tcp, peer) = tokio::time::timeout(inner.connect_timeout, connect_any(addrs))
            .await
            .map_err(|_| timeout("connecting", origin))??;
        let live = lock(&inner.pool).get(&peer).map_or(0, |conns| {
            conns
                .iter()
                .filter(|conn| !conn.closed.load(Ordering::Acquire))
                .count()
        });
        if live >= inner.max_per_peer {
            return Err(Error::new(
                ErrorKind::TooManyConnections,
                format!(
                    "{peer} already has {live} connections (the limit) and none may carry {origin}"
                ),
            ));
        }

        let presented = Arc::new(AtomicBool::new(false));
        let name = server_name(origin.host()).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidRequest,
                format!("{origin}: not a TLS server name"),
            )
        })?;
        let connector = TlsConnector::from(inner.connection_config(&presented));
        let tls = tokio::time::timeout(inner.connect_timeout, connector.connect(name, tcp))
            .await
            .map_err(|_| timeout("the TLS handshake with", origin))?
            .map_err(|err| {
                Error::new(
                    ErrorKind::Tls,
                    format!("TLS handshake with {origin} at {peer}"),
                )
                .with_source(err)
            })?;
        let session = &tls.get_ref().1;
        if session.alpn_protocol() != Some(H2) {
            return Err(Error::new(
                ErrorKind::Http1NotSupported,
                format!(
                    "{origin} at {peer} did not select h2 by ALPN; HTTP/1.1 is not supported yet"
                ),
            ));
        }
        // A resumed session keeps the client authentication of the handshake it came from
        // without presenting the certificate again (RFC 8446 §2.2): count it as presented
        // when this client ever presented it to that name.
        let host = origin.host().to_string();
        let client_cert = match session.handshake_kind() {
            Some(HandshakeKind::Resumed) => lock(&inner.presented_to).contains(&host),
            _ => presented.load(Ordering::Acquire),
        };
        if client_cert {
            lock(&inner.presented_to).insert(host);
        }
        let chain: Vec<CertificateDer<'static>> = session
            .peer_certificates()
            .map(|certs| certs.iter().map(|c| c.clone().into_owned()).collect())
            .unwrap_or_default();
        // A certificate whose names do not parse covers nothing: the connection then
        // serves its own origin only.
        let identities = chain
            .first()
            .and_then(|cert| Identities::from_der(cert).ok())
            .unwrap_or_else(|| Identities::from_patterns(std::iter::empty()));
        let state = PooledConnection::new(origin.clone(), peer.ip(), Arc::new(identities))
            .resolved(addrs.iter().map(SocketAddr::ip))
            .with_client_cert(client_cert);
        let state = Arc::new(Mutex::new(state));
        let id = inner.next_id.fetch_add(1, Ordering::Relaxed);

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
        let (sender, connection) = h2::client::handshake(watch).await.map_err(|err| {
            Error::new(ErrorKind::Http2, format!("HTTP/2 handshake with {origin}")).with_source(err)
        })?;
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
        inner
            .counters
            .connections_opened
            .fetch_add(1, Ordering::Relaxed);
        debug!(connection = id, origin = %origin, peer = %peer, "connection opened");
        let conn = Arc::new(Conn {
            id,
            peer,
            sender,
            state,
            chain,
            closed,
        });
        lock(&inner.pool)
            .entry(peer)
            .or_default()
            .push(conn.clone());
        Ok(conn)
    }

    /// Sends one request on `conn` and waits for the response head.
    async fn exchange(
        &self,
        conn: &Conn,
        parts: &http::request::Parts,
        body: &Bytes,
    ) -> Result<Response<Body>, Failure> {
        let mut head = Request::new(());
        *head.method_mut() = parts.method.clone();
        *head.uri_mut() = parts.uri.clone();
        *head.headers_mut() = parts.headers.clone();
        let failure = |unsent: bool| {
            move |err: h2::Error| Failure {
                // RFC 9113 §8.7: REFUSED_STREAM means the server did not process it.
                unsent: unsent || err.reason() == Some(h2::Reason::REFUSED_STREAM),
                error: Error::new(
                    ErrorKind::Http2,
                    format!("{} {} on connection {}", parts.method, parts.uri, conn.id),
                )
                .with_source(err),
            }
        };
        let exchange = async {
            let mut sender = conn.sender.clone().ready().await.map_err(failure(true))?;
            let end = body.is_empty();
            let (response, mut stream) = sender.send_request(head, end).map_err(failure(true))?;
            if !end {
                stream
                    .send_data(body.clone(), true)
                    .map_err(failure(false))?;
            }
            let response = response.await.map_err(failure(false))?;
            Ok(response.map(Body::new))
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
}

/// Where a request goes.
#[derive(Debug)]
enum Found {
    /// A connection from the pool, made for this origin or shared with it.
    Pooled(Arc<Conn>),
    /// A connection just opened for this origin.
    Opened(Arc<Conn>),
}

/// A failed exchange, and whether the request certainly never reached the server's
/// application (so that sending it again elsewhere is safe whatever its method).
#[derive(Debug)]
struct Failure {
    error: Error,
    unsent: bool,
}

impl From<Failure> for Error {
    fn from(failure: Failure) -> Self {
        failure.error
    }
}

impl Conn {
    /// Takes the connection out of service: no new request goes on it.
    fn retire(&self) {
        self.closed.store(true, Ordering::Release);
        lock(&self.state).going_away();
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

    /// The client; fails when rustls refuses the client certificate or key.
    ///
    /// ```
    /// let client = misdirect_client::Client::builder().build()?;
    /// let clone = client.clone(); // shares the pool
    /// # Ok::<(), misdirect_client::Error>(())
    /// ```
    pub fn build(self) -> Result<Client, Error> {
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
        let has_client_cert = self.client_cert.is_some();
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
            .finish()
    }
}

impl Inner {
    /// Whether `chain` passes the full verification a new connection to `host` would make
    /// (RFC 9113 §9.1.1): chain to a trust anchor, validity period, usage and name.
    fn verifies(&self, chain: &[CertificateDer<'static>], host: &Host) -> bool {
        let Some((end_entity, intermediates)) = chain.split_first() else {
            return false;
        };
        let Some(name) = server_name(host) else {
            return false;
        };
        self.verifier
            .verify_server_cert(end_entity, intermediates, &name, &[], UnixTime::now())
            .is_ok()
    }

    /// The TLS configuration of one new connection: with a client certificate, a resolver
    /// that records whether the server asked for it and got it.
    fn connection_config(&self, presented: &Arc<AtomicBool>) -> Arc<ClientConfig> {
        if !self.has_client_cert {
            return self.config.clone();
        }
        let mut config = (*self.config).clone();
        config.client_auth_cert_resolver = Arc::new(Presented {
            inner: self.config.client_auth_cert_resolver.clone(),
            presented: presented.clone(),
        });
        Arc::new(config)
    }
}

/// The verifier of a client built without trust anchors: every server certificate is
/// refused as issued by an unknown authority, so a handshake fails with a clear error
/// rather than the builder.
#[derive(Debug)]
struct TrustsNobody(Arc<CryptoProvider>);

impl ServerCertVerifier for TrustsNobody {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Err(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer,
        ))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A client certificate resolver that notes when it hands out a certificate.
#[derive(Debug)]
struct Presented {
    inner: Arc<dyn ResolvesClientCert>,
    presented: Arc<AtomicBool>,
}

impl ResolvesClientCert for Presented {
    fn resolve(
        &self,
        root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        let key = self.inner.resolve(root_hint_subjects, sigschemes);
        if key.is_some() {
            self.presented.store(true, Ordering::Release);
        }
        key
    }

    fn has_certs(&self) -> bool {
        self.inner.has_certs()
    }
}

/// The origin a request is for: an absolute `https` URI's scheme, host and port
/// (RFC 9110 §4.3.1, §4.3.3).
fn origin_of(uri: &Uri) -> Result<Origin, Error> {
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
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
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
