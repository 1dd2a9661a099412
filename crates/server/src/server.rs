//! Binding, the accept loop, the TLS handshake and graceful shutdown.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use misdirect_authority::HostName;
use misdirect_coalesce::{ConnectionContext, VhostId};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::server::TlsStream;

use crate::config::{Config, Limits};
use crate::conn::{Admission, RateLimit, Registration, Registry, Tracked};
use crate::error::{Error, ErrorKind};
use crate::site::Site;
use crate::tables::Table;

/// A configured server with its listeners bound, ready to [`run`](Server::run).
///
/// Everything that can fail at start-up — reading certificates and keys, checking that keys
/// match, building the virtual-host tables, binding — has happened when
/// [`Server::bind`] returns `Ok`; nothing starts half-configured.
///
/// ```no_run
/// # async fn example() -> Result<(), misdirect_server::Error> {
/// let config = misdirect_server::Config::from_file("misdirect.toml")?;
/// let server = misdirect_server::Server::bind(config).await?;
/// println!("listening on {:?}", server.local_addrs());
/// server.run(async { tokio::signal::ctrl_c().await.ok(); }).await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Server {
    shared: Arc<Shared>,
    sockets: Vec<TcpListener>,
}

/// What every connection task reads.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) site: Site,
    pub(crate) listeners: Vec<ListenerState>,
    pub(crate) limits: Limits,
    /// TLS handshake failures: one line a second at most.
    handshake_log: RateLimit,
}

/// The stream a connection is served on once its handshake is done.
pub(crate) type Stream<T = TcpStream> = Tracked<TlsStream<T>>;

/// A client's byte stream: a TCP socket, or an in-memory pipe in tests. `peek` looks at the
/// first bytes without consuming them, to tell a TLS ClientHello from plain HTTP.
pub(crate) trait Transport: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Reads into `buf` what has arrived without consuming it; waits for at least one byte.
    fn peek<'a>(
        &'a mut self,
        buf: &'a mut [u8],
    ) -> impl Future<Output = io::Result<usize>> + Send + 'a;
}

impl Transport for TcpStream {
    fn peek<'a>(
        &'a mut self,
        buf: &'a mut [u8],
    ) -> impl Future<Output = io::Result<usize>> + Send + 'a {
        TcpStream::peek(self, buf)
    }
}

/// One bound listener.
#[derive(Debug)]
pub(crate) struct ListenerState {
    pub(crate) local: SocketAddr,
    pub(crate) table: Table,
    /// Its open connections.
    pub(crate) connections: Arc<Registry>,
}

/// What the handshake of one connection established.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) peer: SocketAddr,
    pub(crate) listener: usize,
    /// The SNI as the client sent it, for logs.
    pub(crate) sni: Option<String>,
    /// The presented virtual host (its index is its position in the site).
    pub(crate) presented: VhostId,
    pub(crate) context: ConnectionContext,
}

impl Server {
    /// Loads the configuration's certificates and keys, builds the virtual-host tables and
    /// binds every listener.
    pub async fn bind(config: Config) -> Result<Self, Error> {
        let mut sockets = Vec::with_capacity(config.listeners.len());
        for listener in &config.listeners {
            let socket = TcpListener::bind(listener.addr).await.map_err(|err| {
                Error::new(
                    ErrorKind::Bind,
                    format!("listener {}: cannot listen: {err}", listener.addr),
                )
                .with_source(err)
                .in_file(&config.source)
            })?;
            sockets.push(socket);
        }
        let mut locals = Vec::with_capacity(sockets.len());
        for (socket, listener) in sockets.iter().zip(&config.listeners) {
            locals.push(socket.local_addr().map_err(|err| {
                Error::new(
                    ErrorKind::Bind,
                    format!("listener {}: {err}", listener.addr),
                )
                .with_source(err)
            })?);
        }
        Ok(Self {
            shared: Arc::new(Shared::build(&config, &locals)?),
            sockets,
        })
    }

    /// The bound address of each listener, in configuration order (useful with port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.shared.listeners.iter().map(|l| l.local).collect()
    }

    /// Serves until `shutdown` completes, then stops accepting, asks every connection to
    /// finish (HTTP/2 GOAWAY, HTTP/1.1 close after the current response) and waits up to
    /// `limits.shutdown_timeout_secs` before closing what is left.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let (kill_tx, kill_rx) = watch::channel(false);
        let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
        raise_file_limit(&self.shared);
        for (index, socket) in self.sockets.into_iter().enumerate() {
            let listener = &self.shared.listeners[index];
            // One event per public port: log formats have no arrays, and a number stays one.
            for port in listener.table.vhosts().ports() {
                tracing::info!(
                    addr = %listener.local,
                    public_port = *port,
                    policy = listener.table.vhosts().policy().as_str(),
                    vhosts = listener.table.vhosts().len(),
                    "listening"
                );
            }
            tokio::spawn(accept_loop(
                self.shared.clone(),
                index,
                socket,
                stop_rx.clone(),
                kill_rx.clone(),
                alive_tx.clone(),
            ));
        }
        drop(alive_tx);
        shutdown.await;
        let timeout = self.shared.limits.shutdown_timeout;
        tracing::info!(
            timeout_secs = timeout.as_secs_f64(),
            "shutting down: no new connections, finishing requests in flight"
        );
        // Only this function sends; the receivers may all be gone already.
        let _ = stop_tx.send(true);
        match tokio::time::timeout(timeout, alive_rx.recv()).await {
            Ok(_) => tracing::info!("all connections finished"),
            Err(_) => {
                tracing::warn!("shutdown timeout reached; closing the remaining connections");
                let _ = kill_tx.send(true);
                // Give the tasks a moment to drop their sockets.
                let _ =
                    tokio::time::timeout(std::time::Duration::from_millis(200), alive_rx.recv())
                        .await;
            }
        }
    }
}

impl Shared {
    /// Loads the site and builds each listener's table, for listeners bound at `locals`
    /// (one address per configured listener, in order).
    pub(crate) fn build(config: &Config, locals: &[SocketAddr]) -> Result<Self, Error> {
        let site = Site::load(config)?;
        let mut listeners = Vec::with_capacity(locals.len());
        for (listener, &local) in config.listeners.iter().zip(locals) {
            let ports = listener
                .public_ports
                .clone()
                .unwrap_or_else(|| vec![local.port()]);
            let table =
                Table::build(&site, listener, &ports).map_err(|err| err.in_file(&config.source))?;
            listeners.push(ListenerState {
                local,
                table,
                connections: Registry::new(config.limits.max_connections),
            });
        }
        Ok(Self {
            site,
            listeners,
            limits: config.limits,
            handshake_log: RateLimit::new(std::time::Duration::from_secs(1)),
        })
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, so that `max_connections` is not cut
/// short by a low default; logs the figure either way.
fn raise_file_limit(shared: &Shared) {
    let wanted: usize = shared.listeners.iter().map(|l| l.connections_max()).sum();
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            let limit = usize::try_from(limit).unwrap_or(usize::MAX);
            if limit < wanted {
                tracing::warn!(
                    open_files = limit,
                    max_connections = wanted,
                    "the open-file limit is below max_connections over all listeners; \
                     when it is reached, idle connections are closed to make room"
                );
            } else {
                tracing::info!(open_files = limit, "open-file limit");
            }
        }
        Err(err) => tracing::warn!(error = %err, "cannot read or raise the open-file limit"),
    }
}

impl ListenerState {
    fn connections_max(&self) -> usize {
        self.connections.max()
    }
}

/// How many idle connections one failed `accept` closes when the process is out of file
/// descriptors.
const RECLAIM_ON_EMFILE: usize = 16;

async fn accept_loop(
    shared: Arc<Shared>,
    index: usize,
    socket: TcpListener,
    mut stop: watch::Receiver<bool>,
    kill: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
) {
    let registry = shared.listeners[index].connections.clone();
    let accept_log = RateLimit::new(std::time::Duration::from_secs(5));
    let refuse_log = RateLimit::new(std::time::Duration::from_secs(5));
    loop {
        let accepted = tokio::select! {
            accepted = socket.accept() => accepted,
            _ = crate::server::raised(&mut stop) => break,
        };
        let (tcp, peer) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                // Out of file descriptors (EMFILE, ENFILE) and the like: close the
                // longest-idle connections so the clients waiting are still served, and
                // back off instead of spinning.
                let out_of_files = matches!(err.raw_os_error(), Some(23 | 24));
                let reclaimed = if out_of_files {
                    registry.reclaim(RECLAIM_ON_EMFILE)
                } else {
                    0
                };
                if let Some(suppressed) = accept_log.allow() {
                    tracing::warn!(
                        error = %err,
                        reclaimed,
                        open = registry.open(),
                        suppressed,
                        "accept failed; closing idle connections to make room"
                    );
                }
                let pause = if reclaimed > 0 { 5 } else { 50 };
                tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                continue;
            }
        };
        let registration = match registry.admit() {
            Admission::Admitted(registration) => registration,
            Admission::AdmittedByReclaim(registration) => {
                tracing::debug!(%peer, "at max_connections: closed the longest-idle connection");
                registration
            }
            Admission::Refused => {
                if let Some(suppressed) = refuse_log.allow() {
                    let (reclaimed, refused) = registry.counts();
                    tracing::warn!(
                        %peer,
                        max_connections = registry.max(),
                        refused_total = refused,
                        reclaimed_total = reclaimed,
                        suppressed,
                        "connection refused: at max_connections and no connection is idle"
                    );
                }
                // Closing the socket is the cheapest refusal there is.
                drop(tcp);
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let shared = shared.clone();
        let stop = stop.clone();
        let mut kill = kill.clone();
        let alive = alive.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = connection(shared, index, tcp, peer, stop, registration) => {}
                _ = crate::server::raised(&mut kill) => {}
            }
            drop(alive);
        });
    }
}

pub(crate) async fn connection<T: Transport>(
    shared: Arc<Shared>,
    listener: usize,
    tcp: T,
    peer: SocketAddr,
    stop: watch::Receiver<bool>,
    registration: Registration,
) {
    let activity = registration.activity().clone();
    let handshake = tokio::select! {
        done = tokio::time::timeout(
            shared.limits.tls_handshake_timeout,
            handshake(&shared, listener, tcp, peer),
        ) => done,
        () = activity.reclaimed() => return,
    };
    let (stream, conn) = match handshake {
        Ok(Ok(done)) => done,
        Ok(Err(failure)) => {
            failure.log(&shared, peer);
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    activity.established();
    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    tracing::debug!(
        %peer,
        sni = conn.sni.as_deref().unwrap_or("-"),
        presented = %shared.site.vhosts[conn.presented.index()].config.name,
        protocol = if h2 { "h2" } else { "http/1.1" },
        "connection"
    );
    let conn = Arc::new(conn);
    let stream = Tracked::new(stream, activity.clone());
    if h2 {
        crate::serving::serve_h2(shared, conn, stream, stop, activity).await;
    } else {
        activity.track_heads();
        crate::serving::serve_h1(shared, conn, stream, stop, activity).await;
    }
    drop(registration);
}

/// Why a handshake did not finish.
#[derive(Debug)]
struct HandshakeFailure {
    sni: Option<String>,
    cause: HandshakeCause,
}

#[derive(Debug)]
enum HandshakeCause {
    /// The client spoke plain HTTP to the TLS port; it was answered with a 400.
    PlainHttp,
    Io(io::Error),
}

impl HandshakeFailure {
    fn io(sni: Option<String>, err: io::Error) -> Self {
        Self {
            sni,
            cause: HandshakeCause::Io(err),
        }
    }

    /// One line at info, at most one a second for the whole server (a scanner must not
    /// flood the log); the lines held back are counted in the next one.
    fn log(&self, shared: &Shared, peer: SocketAddr) {
        let Some(suppressed) = shared.handshake_log.allow() else {
            return;
        };
        let sni = self.sni.as_deref().unwrap_or("-");
        match &self.cause {
            HandshakeCause::PlainHttp => tracing::info!(
                %peer,
                sni,
                suppressed,
                cause = "plain-http",
                "TLS handshake failed: the client sent plain HTTP; answered 400"
            ),
            HandshakeCause::Io(err) => tracing::info!(
                %peer,
                sni,
                suppressed,
                cause = %err,
                "TLS handshake failed"
            ),
        }
    }
}

/// The body of the answer to a plain HTTP request on a TLS port (nginx answers the same
/// way).
const PLAIN_HTTP_BODY: &str =
    "400 Bad Request: a plain HTTP request was sent to an HTTPS port (use https://)\n";

fn plain_http_response() -> String {
    format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{PLAIN_HTTP_BODY}",
        PLAIN_HTTP_BODY.len()
    )
}

/// Whether the first bytes of a connection look like an HTTP/1.x request line or the
/// HTTP/2 preface rather than a TLS record (whose first byte is a content type, 20–24).
fn looks_like_plain_http(first: &[u8]) -> bool {
    !first.is_empty() && first.iter().all(u8::is_ascii_uppercase)
}

/// Reads the ClientHello, picks the virtual host by SNI (exact, then wildcard, else the
/// listener's default), completes the handshake with that virtual host's own rustls
/// configuration and records the connection's context.
async fn handshake<T: Transport>(
    shared: &Shared,
    listener: usize,
    mut tcp: T,
    peer: SocketAddr,
) -> Result<(TlsStream<T>, Conn), HandshakeFailure> {
    let state = &shared.listeners[listener];
    let mut first = [0u8; 3];
    let seen = tcp
        .peek(&mut first)
        .await
        .map_err(|err| HandshakeFailure::io(None, err))?;
    if looks_like_plain_http(&first[..seen]) {
        // Best effort: the client may already be gone.
        let _ = tcp.write_all(plain_http_response().as_bytes()).await;
        let _ = tcp.shutdown().await;
        return Err(HandshakeFailure {
            sni: None,
            cause: HandshakeCause::PlainHttp,
        });
    }
    let start = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp)
        .await
        .map_err(|err| HandshakeFailure::io(None, err))?;
    let sni_raw = start.client_hello().server_name().map(str::to_owned);
    // RFC 6066 §3: the server name is a DNS name, ASCII, without a trailing dot.
    let sni = sni_raw
        .as_deref()
        .and_then(|s| HostName::from_sni(s.as_bytes()).ok());
    let core = &state.table.listener;
    // Invariant: every table has the site's virtual hosts, at least one.
    let presented = core
        .select(sni.as_ref())
        .expect("a listener has virtual hosts");
    let vhost = &shared.site.vhosts[presented.index()];
    let stream = start
        .into_stream(vhost.tls.clone())
        .await
        .map_err(|err| HandshakeFailure::io(sni_raw.clone(), err))?;
    // The core makes the connection's facts, its client-certificate fact included.
    let context = ConnectionContext::from_rustls(core, presented, stream.get_ref().1);
    Ok((
        stream,
        Conn {
            peer,
            listener,
            sni: sni_raw,
            presented,
            context,
        },
    ))
}

/// Waits until a shutdown flag is raised (or its sender is gone).
pub(crate) async fn raised(flag: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is dropped at once: it must not live across an await.
    let _ = flag.wait_for(|raised| *raised).await.map(|_| ());
}
