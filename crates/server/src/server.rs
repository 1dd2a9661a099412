//! Binding, the accept loop, the TLS handshake and graceful shutdown.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use misdirect_authority::{Host, HostName};
use misdirect_coalesce::ConnectionContext;
use misdirect_response::RenderOptions;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::server::TlsStream;

use crate::config::{Config, Limits, Listener};
use crate::error::{Error, ErrorKind};
use crate::policy::{self, Handshake, Table};
use crate::site::Site;

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
}

/// One bound listener.
#[derive(Debug)]
pub(crate) struct ListenerState {
    pub(crate) config: Listener,
    pub(crate) local: SocketAddr,
    pub(crate) table: Table,
    pub(crate) render: RenderOptions,
}

/// What the handshake of one connection established.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) peer: SocketAddr,
    pub(crate) listener: usize,
    /// The SNI as the client sent it, for logs.
    pub(crate) sni: Option<String>,
    /// Index of the presented virtual host in the site.
    pub(crate) presented: usize,
    pub(crate) context: ConnectionContext,
}

impl Server {
    /// Loads the configuration's certificates and keys, builds the virtual-host tables and
    /// binds every listener.
    pub async fn bind(config: Config) -> Result<Self, Error> {
        let site = Site::load(&config)?;
        let mut sockets = Vec::with_capacity(config.listeners.len());
        let mut listeners = Vec::with_capacity(config.listeners.len());
        for listener in &config.listeners {
            let socket = TcpListener::bind(listener.addr).await.map_err(|err| {
                Error::new(
                    ErrorKind::Bind,
                    format!("listener {}: cannot listen: {err}", listener.addr),
                )
                .in_file(&config.source)
            })?;
            let local = socket.local_addr().map_err(|err| {
                Error::new(
                    ErrorKind::Bind,
                    format!("listener {}: {err}", listener.addr),
                )
            })?;
            let ports = listener
                .public_ports
                .clone()
                .unwrap_or_else(|| vec![local.port()]);
            let table =
                Table::build(&site, listener, &ports).map_err(|err| err.in_file(&config.source))?;
            listeners.push(ListenerState {
                config: listener.clone(),
                local,
                table,
                render: RenderOptions::new().name_reason(listener.reason_in_body),
            });
            sockets.push(socket);
        }
        Ok(Self {
            shared: Arc::new(Shared {
                site,
                listeners,
                limits: config.limits,
            }),
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
        for (index, socket) in self.sockets.into_iter().enumerate() {
            let listener = &self.shared.listeners[index];
            tracing::info!(
                addr = %listener.local,
                policy = listener.table.vhosts.policy().as_str(),
                ports = ?listener.table.vhosts.ports(),
                vhosts = listener.table.vhosts.len(),
                "listening"
            );
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

async fn accept_loop(
    shared: Arc<Shared>,
    index: usize,
    socket: TcpListener,
    mut stop: watch::Receiver<bool>,
    kill: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = socket.accept() => accepted,
            _ = crate::server::raised(&mut stop) => break,
        };
        let (tcp, peer) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %err, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
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
                () = connection(shared, index, tcp, peer, stop) => {}
                _ = crate::server::raised(&mut kill) => {}
            }
            drop(alive);
        });
    }
}

async fn connection(
    shared: Arc<Shared>,
    listener: usize,
    tcp: TcpStream,
    peer: SocketAddr,
    stop: watch::Receiver<bool>,
) {
    let handshake = tokio::time::timeout(
        shared.limits.tls_handshake_timeout,
        handshake(&shared, listener, tcp, peer),
    )
    .await;
    let (stream, conn) = match handshake {
        Ok(Ok(done)) => done,
        Ok(Err(err)) => {
            tracing::debug!(%peer, error = %err, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    tracing::debug!(
        %peer,
        sni = conn.sni.as_deref().unwrap_or("-"),
        presented = %shared.site.vhosts[conn.presented].config.name,
        protocol = if h2 { "h2" } else { "http/1.1" },
        "connection"
    );
    let conn = Arc::new(conn);
    if h2 {
        crate::http::serve_h2(shared, conn, stream, stop).await;
    } else {
        crate::http::serve_h1(shared, conn, stream, stop).await;
    }
}

/// Reads the ClientHello, picks the virtual host by SNI (exact, then wildcard, else the
/// listener's default), completes the handshake with that virtual host's own rustls
/// configuration and records the connection's context.
async fn handshake(
    shared: &Shared,
    listener: usize,
    tcp: TcpStream,
    peer: SocketAddr,
) -> io::Result<(TlsStream<TcpStream>, Conn)> {
    let state = &shared.listeners[listener];
    let start = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp).await?;
    let sni_raw = start.client_hello().server_name().map(str::to_owned);
    // RFC 6066 §3: the server name is a DNS name, ASCII, without a trailing dot.
    let sni = sni_raw
        .as_deref()
        .and_then(|s| HostName::from_sni(s.as_bytes()).ok());
    let presented = shared.site.select(
        sni.clone().map(Host::Name).as_ref(),
        state.config.default_vhost,
    );
    let vhost = &shared.site.vhosts[presented];
    let stream = start.into_stream(vhost.tls.clone()).await?;
    let session = stream.get_ref().1;
    // rustls only lets the handshake finish with a client certificate that this virtual
    // host's verifier accepted; a resumed session carries the one verified when it was
    // created, by the same configuration (session caches are per virtual host).
    let client_cert = match session.peer_certificates() {
        Some(chain) if !chain.is_empty() => vhost.anchors,
        _ => None,
    };
    let context = policy::context(Handshake {
        sni,
        presented: state.table.ids[presented],
        version: session.protocol_version(),
        alpn: session.alpn_protocol(),
        client_cert,
    });
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
