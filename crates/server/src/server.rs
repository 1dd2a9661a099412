//! Binding, the accept loop, the TLS handshake and graceful shutdown.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use misdirect_authority::HostName;
use misdirect_coalesce::{ConnectionContext, VhostId};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::server::TlsStream;

use crate::admin::{AdminState, serve_admin};
use crate::config::{Config, Limits};
use crate::conn::{Admission, RateLimit, Registration, Registry, Tracked};
use crate::error::{Error, ErrorKind};
use crate::metrics::{HandshakeFailureCause, Metrics, Protocol, VhostCounters};
use crate::origin::{FrameStatus, OriginStream};
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
pub struct Server {
    shared: Arc<Shared>,
    /// Each listener's socket and the address it was configured with.
    sockets: Vec<(SocketAddr, TcpListener)>,
    /// The admin listener's socket, when `[admin]` is configured.
    admin: Option<TcpListener>,
    loader: Option<Loader>,
    reloads: mpsc::Receiver<ReloadRequest>,
    reload_handle: ReloadHandle,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addrs", &self.local_addrs())
            .field("reloads_from_a_loader", &self.loader.is_some())
            .finish_non_exhaustive()
    }
}

/// Reads the configuration again for a reload.
type Loader = Arc<dyn Fn() -> Result<Config, Error> + Send + Sync>;

/// One reload: a configuration to apply (`None`: the server's loader reads it), and where
/// to say how it went.
struct ReloadRequest {
    config: Option<Config>,
    done: oneshot::Sender<Result<Vec<SocketAddr>, Error>>,
}

/// Asks a running [`Server`] to reload its configuration: every certificate and key is read
/// again; new connections get the new configuration while existing ones keep theirs until
/// they end; listeners whose address is unchanged keep their socket, so no connection is
/// refused meanwhile; added listeners are bound and removed ones closed. A configuration
/// that fails to load changes nothing.
///
/// ```no_run
/// # async fn example() -> Result<(), misdirect_server::Error> {
/// use misdirect_server::{Config, Server};
///
/// let path = "misdirect.toml";
/// let server = Server::bind(Config::from_file(path)?)
///     .await?
///     .reload_from(move || Config::from_file(path));
/// let reload = server.reload_handle();
/// tokio::spawn(server.run(std::future::pending()));
/// // Later, for instance on SIGHUP:
/// match reload.reload().await {
///     Ok(addrs) => println!("reloaded; listening on {addrs:?}"),
///     Err(err) => eprintln!("reload failed, still serving the previous configuration: {err}"),
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct ReloadHandle {
    requests: mpsc::Sender<ReloadRequest>,
}

impl ReloadHandle {
    /// Reads the configuration with the server's loader ([`Server::reload_from`]) and
    /// applies it; returns the bound address of each listener, in configuration order.
    pub async fn reload(&self) -> Result<Vec<SocketAddr>, Error> {
        self.send(None).await
    }

    /// Applies `config`.
    pub async fn reload_config(&self, config: Config) -> Result<Vec<SocketAddr>, Error> {
        self.send(Some(config)).await
    }

    async fn send(&self, config: Option<Config>) -> Result<Vec<SocketAddr>, Error> {
        let stopped = || Error::new(ErrorKind::Reload, "the server is not running");
        let (done, answer) = oneshot::channel();
        self.requests
            .send(ReloadRequest { config, done })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// What every connection task reads.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) site: Site,
    pub(crate) listeners: Vec<ListenerState>,
    pub(crate) limits: Limits,
    /// The process's counters; they outlive reloads.
    pub(crate) metrics: Arc<Metrics>,
    /// Each virtual host's counters, by site position (a `VhostId`'s index).
    pub(crate) vhost_metrics: Vec<Arc<VhostCounters>>,
    /// TLS handshake failures: one line a second at most.
    handshake_log: RateLimit,
    /// The server's name in `Via` when it forwards (RFC 9110 §7.6.3).
    pub(crate) via: Arc<str>,
}

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
    /// TLS, or plain HTTP/1.1 and h2c (`tls = false`).
    pub(crate) tls: bool,
    /// A plain listener that redirects to `https://` (`redirect = "https"`).
    pub(crate) redirect_https: bool,
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
            sockets.push((listener.addr, bind_listener(&config, listener.addr).await?));
        }
        let locals = local_addrs(&sockets)?;
        let (requests, reloads) = mpsc::channel(4);
        let metrics = Arc::new(Metrics::new());
        let shared = Arc::new(Shared::build(&config, &locals, &[], &metrics)?);
        let admin = match &config.admin {
            Some(admin) => Some(bind_listener(&config, admin.addr).await?),
            None => None,
        };
        metrics.config_loaded(SystemTime::now());
        metrics.set_certificate_expiry(certificate_expiry(&shared.site));
        Ok(Self {
            shared,
            sockets,
            admin,
            loader: None,
            reloads,
            reload_handle: ReloadHandle { requests },
        })
    }

    /// Reloads read the configuration with `load` (typically `Config::from_file` on the
    /// file the server started from). Without it, only
    /// [`ReloadHandle::reload_config`] can reload.
    pub fn reload_from(
        mut self,
        load: impl Fn() -> Result<Config, Error> + Send + Sync + 'static,
    ) -> Self {
        self.loader = Some(Arc::new(load));
        self
    }

    /// A handle that reloads the running server (SIGHUP, the admin endpoint, tests).
    pub fn reload_handle(&self) -> ReloadHandle {
        self.reload_handle.clone()
    }

    /// The bound address of each listener, in configuration order (useful with port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.shared.listeners.iter().map(|l| l.local).collect()
    }

    /// The bound address of the admin listener (`[admin]`), if there is one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin
            .as_ref()
            .and_then(|socket| socket.local_addr().ok())
    }

    /// Serves until `shutdown` completes, then stops accepting, asks every connection to
    /// finish (HTTP/2 GOAWAY, HTTP/1.1 close after the current response) and waits up to
    /// `limits.shutdown_timeout_secs` before closing what is left. Meanwhile it applies
    /// the reloads its [`ReloadHandle`]s ask for, one at a time.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Self {
            mut shared,
            sockets,
            admin,
            loader,
            mut reloads,
            reload_handle,
        } = self;
        let (admin_stop_tx, admin_stop_rx) = watch::channel(false);
        let admin_state = admin.map(|socket| {
            let state = Arc::new(
                AdminState::new(shared.metrics.clone()).reload_handle(reload_handle.clone()),
            );
            tokio::spawn(serve_admin(socket, state.clone(), admin_stop_rx));
            state
        });
        // The server's own handle must not keep the reload channel open after it stops.
        drop(reload_handle);
        let (generations_tx, generations_rx) = watch::channel(shared.clone());
        let ticker = tokio::spawn(refusal_log_ticker(generations_rx));
        let (stop_tx, stop_rx) = watch::channel(false);
        let (kill_tx, kill_rx) = watch::channel(false);
        let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
        raise_file_limit(&shared);
        let spawner = Spawner {
            stop: stop_rx,
            kill: kill_rx,
            alive: alive_tx,
        };
        let mut live = Vec::with_capacity(sockets.len());
        for (index, (configured, socket)) in sockets.into_iter().enumerate() {
            live.push(spawner.listen(&shared, index, configured, socket));
        }
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                Some(request) = reloads.recv() => {
                    let result = match request.config {
                        Some(config) => Ok(config),
                        None => match &loader {
                            Some(load) => load(),
                            None => Err(Error::new(
                                ErrorKind::Reload,
                                "this server has no configuration file to read again \
                                 (the embedded set-up, or no loader was given)",
                            )),
                        },
                    };
                    let result = match result {
                        Ok(config) => reload(&spawner, &mut shared, &mut live, config).await,
                        Err(err) => Err(err),
                    };
                    match &result {
                        Ok(addrs) => {
                            tracing::info!(
                                listeners = addrs.len(),
                                vhosts = shared.site.vhosts.len(),
                                "configuration reloaded: new connections use it, open ones keep theirs"
                            );
                            shared.metrics.reload_succeeded(SystemTime::now());
                            shared.metrics.set_certificate_expiry(certificate_expiry(&shared.site));
                            let _ = generations_tx.send(shared.clone());
                        }
                        Err(err) => {
                            tracing::warn!(
                                error = %err,
                                "reload failed; still serving the previous configuration"
                            );
                            shared.metrics.reload_failed();
                        }
                    }
                    let _ = request.done.send(result);
                }
            }
        }
        drop(spawner);
        if let Some(state) = &admin_state {
            // /healthz answers 503 while the connections drain.
            state.set_draining();
        }
        let timeout = shared.limits.shutdown_timeout;
        tracing::info!(
            timeout_secs = timeout.as_secs_f64(),
            "shutting down: no new connections, finishing requests in flight"
        );
        // Only this function sends; the receivers may all be gone already.
        let _ = stop_tx.send(true);
        for listener in &live {
            let _ = listener.current.send(None);
        }
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
        let _ = admin_stop_tx.send(true);
        // Dropping the sender ends the ticker, which writes what the logs still hold.
        drop(generations_tx);
        let _ = ticker.await;
    }
}

/// Every second, lets each listener's refusal log write the summary of a finished window,
/// and moves the lines they held back, and the upstream `421`s each proxy retried, into the
/// metrics. A generation a reload replaced is ticked until its last connection ends, then
/// flushed. When the server stops (the sender is dropped), every log is flushed.
async fn refusal_log_ticker(mut generations: watch::Receiver<Arc<Shared>>) {
    /// A generation, what its logs had held back and what its proxies had retried when
    /// last looked at.
    struct Tracked {
        shared: Arc<Shared>,
        counted: Vec<u64>,
        retries: Vec<u64>,
    }
    impl Tracked {
        fn new(shared: Arc<Shared>) -> Self {
            let counted = vec![0; shared.listeners.len()];
            let retries = vec![0; shared.site.vhosts.len()];
            Self {
                shared,
                counted,
                retries,
            }
        }
        fn tick(&mut self, flush: bool) {
            for (listener, counted) in self.shared.listeners.iter().zip(&mut self.counted) {
                let log = listener.table.listener.refusal_log();
                match flush {
                    true => log.flush(),
                    false => log.tick(),
                }
                let total = log.suppressed_total();
                self.shared
                    .metrics
                    .count_refusal_log_suppressed(total.saturating_sub(*counted));
                *counted = total;
            }
            let vhosts = self
                .shared
                .site
                .vhosts
                .iter()
                .zip(&self.shared.vhost_metrics);
            for ((vhost, counters), counted) in vhosts.zip(&mut self.retries) {
                if let Some(proxy) = &vhost.proxy {
                    let total = proxy.retries_421();
                    counters.count_proxy_retries_421(total.saturating_sub(*counted));
                    *counted = total;
                }
            }
        }
    }
    let mut current = Tracked::new(generations.borrow_and_update().clone());
    let mut older: Vec<Tracked> = Vec::new();
    let mut interval = tokio::time::interval(std::time::Duration::from_secs(1));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            changed = generations.changed() => {
                if changed.is_err() {
                    break;
                }
                let next = Tracked::new(generations.borrow_and_update().clone());
                older.push(std::mem::replace(&mut current, next));
            }
        }
        current.tick(false);
        older.retain_mut(|generation| {
            // Only this task holds it: its connections are gone.
            let done = Arc::strong_count(&generation.shared) == 1;
            generation.tick(done);
            !done
        });
    }
    for generation in older.iter_mut().chain([&mut current]) {
        generation.tick(true);
    }
}

/// Each virtual host's certificate expiry, for the metrics.
fn certificate_expiry(site: &Site) -> impl Iterator<Item = (&str, i64)> + '_ {
    site.vhosts
        .iter()
        .filter_map(|v| Some((v.config.name.as_str(), v.not_after?)))
}

/// A listener being served: the address it was configured with, and the channel that
/// hands its accept loop each new configuration (`None` closes it).
struct LiveListener {
    configured: SocketAddr,
    local: SocketAddr,
    current: watch::Sender<Option<(Arc<Shared>, usize)>>,
}

/// What every accept loop shares: the shutdown flags and the liveness channel.
struct Spawner {
    stop: watch::Receiver<bool>,
    kill: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
}

impl Spawner {
    /// Starts serving `socket` as listener `index` of `shared`.
    fn listen(
        &self,
        shared: &Arc<Shared>,
        index: usize,
        configured: SocketAddr,
        socket: TcpListener,
    ) -> LiveListener {
        let listener = &shared.listeners[index];
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
        let (current, receiver) = watch::channel(Some((shared.clone(), index)));
        tokio::spawn(accept_loop(
            receiver,
            socket,
            self.stop.clone(),
            self.kill.clone(),
            self.alive.clone(),
        ));
        LiveListener {
            configured,
            local: listener.local,
            current,
        }
    }
}

/// Applies a new configuration: binds the listeners it adds, builds every table (reading
/// every certificate and key again), then — only when all of that worked — hands the new
/// state to the accept loops it keeps, starts the added ones and closes the removed ones.
async fn reload(
    spawner: &Spawner,
    shared: &mut Arc<Shared>,
    live: &mut Vec<LiveListener>,
    config: Config,
) -> Result<Vec<SocketAddr>, Error> {
    // Sockets: kept where the configured address is unchanged, else bound now.
    let mut kept: Vec<Option<usize>> = Vec::with_capacity(config.listeners.len());
    let mut bound: Vec<Option<TcpListener>> = Vec::with_capacity(config.listeners.len());
    let mut locals = Vec::with_capacity(config.listeners.len());
    for listener in &config.listeners {
        let old = (0..live.len())
            .find(|&i| live[i].configured == listener.addr && !kept.contains(&Some(i)));
        match old {
            Some(i) => {
                kept.push(Some(i));
                bound.push(None);
                locals.push(live[i].local);
            }
            None => {
                // Dropped on failure: nothing was served on it yet.
                let socket = bind_listener(&config, listener.addr).await?;
                let local = socket.local_addr().map_err(|err| {
                    Error::new(
                        ErrorKind::Bind,
                        format!("listener {}: {err}", listener.addr),
                    )
                    .with_source(err)
                })?;
                kept.push(None);
                bound.push(Some(socket));
                locals.push(local);
            }
        }
    }
    let previous: Vec<(SocketAddr, Arc<Registry>)> = kept
        .iter()
        .flatten()
        .filter_map(|&i| {
            let state = shared.listeners.iter().find(|l| l.local == live[i].local)?;
            Some((live[i].local, state.connections.clone()))
        })
        .collect();
    let next = Arc::new(Shared::build(&config, &locals, &previous, &shared.metrics)?);

    // Commit: nothing below can fail.
    let mut next_live = Vec::with_capacity(config.listeners.len());
    let mut old_live: Vec<Option<LiveListener>> =
        std::mem::take(live).into_iter().map(Some).collect();
    for (index, (keep, socket)) in kept.into_iter().zip(bound).enumerate() {
        let configured = config.listeners[index].addr;
        match (keep, socket) {
            (Some(i), _) => {
                let listener = old_live[i].take().expect("each kept listener is used once");
                let _ = listener.current.send(Some((next.clone(), index)));
                next_live.push(listener);
            }
            (None, Some(socket)) => {
                next_live.push(spawner.listen(&next, index, configured, socket))
            }
            (None, None) => unreachable!("a listener is either kept or bound"),
        }
    }
    for removed in old_live.into_iter().flatten() {
        tracing::info!(addr = %removed.local, "listener removed by the reload: closed");
        let _ = removed.current.send(None);
    }
    *live = next_live;
    *shared = next;
    Ok(locals)
}

/// The accept queue asked of the kernel, which caps it at `net.core.somaxconn` (4096 on
/// current Linux). The default of 128 overflows when a few hundred clients connect at once —
/// a page load through a proxy, a load balancer's health checks, a reconnect after a
/// restart — and every connection it drops waits a second for its SYN to be sent again.
/// SYN cookies, not a short queue, are what stand up to SYN floods.
const LISTEN_BACKLOG: u32 = 4096;

async fn bind_listener(config: &Config, addr: SocketAddr) -> Result<TcpListener, Error> {
    let listen = || -> std::io::Result<TcpListener> {
        let socket = match addr {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        // As std and tokio do: a restarted server binds while old connections linger in
        // TIME_WAIT.
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(LISTEN_BACKLOG)
    };
    listen().map_err(|err| {
        Error::new(
            ErrorKind::Bind,
            format!("listener {addr}: cannot listen: {err}"),
        )
        .with_source(err)
        .in_file(&config.source)
    })
}

fn local_addrs(sockets: &[(SocketAddr, TcpListener)]) -> Result<Vec<SocketAddr>, Error> {
    sockets
        .iter()
        .map(|(configured, socket)| {
            socket.local_addr().map_err(|err| {
                Error::new(ErrorKind::Bind, format!("listener {configured}: {err}"))
                    .with_source(err)
            })
        })
        .collect()
}

impl Shared {
    /// Loads the site and builds each listener's table, for listeners bound at `locals`
    /// (one address per configured listener, in order). A listener whose socket a reload
    /// keeps keeps its connection registry (`previous`, by bound address), so its open
    /// connections still count against `max_connections`.
    pub(crate) fn build(
        config: &Config,
        locals: &[SocketAddr],
        previous: &[(SocketAddr, Arc<Registry>)],
        metrics: &Arc<Metrics>,
    ) -> Result<Self, Error> {
        let site = Site::load(config)?;
        let vhost_metrics = metrics.vhost_table(site.vhosts.iter().map(|v| v.config.name.as_str()));
        let mut listeners = Vec::with_capacity(locals.len());
        for (listener, &local) in config.listeners.iter().zip(locals) {
            let ports = listener
                .public_ports
                .clone()
                .unwrap_or_else(|| vec![local.port()]);
            let table = Table::build(&site, listener, &ports, &config.log)
                .map_err(|err| err.in_file(&config.source))?;
            let connections = match previous.iter().find(|(addr, _)| *addr == local) {
                Some((_, registry)) => {
                    registry.set_max(config.limits.max_connections);
                    registry.clone()
                }
                None => Registry::new(config.limits.max_connections),
            };
            listeners.push(ListenerState {
                local,
                table,
                connections,
                tls: listener.tls,
                redirect_https: listener.redirect_https,
            });
        }
        Ok(Self {
            site,
            listeners,
            limits: config.limits,
            metrics: metrics.clone(),
            vhost_metrics,
            handshake_log: RateLimit::new(std::time::Duration::from_secs(1)),
            via: Arc::from("misdirect"),
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
    mut current: watch::Receiver<Option<(Arc<Shared>, usize)>>,
    socket: TcpListener,
    mut stop: watch::Receiver<bool>,
    kill: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
) {
    let accept_log = RateLimit::new(std::time::Duration::from_secs(5));
    let refuse_log = RateLimit::new(std::time::Duration::from_secs(5));
    loop {
        let accepted = tokio::select! {
            accepted = socket.accept() => accepted,
            _ = crate::server::raised(&mut stop) => break,
            // A reload removed this listener (or the server stopped): close the socket.
            changed = current.wait_for(Option::is_none) => {
                let _ = changed.map(|_| ());
                break;
            }
        };
        // The configuration in force when the connection arrived; it keeps it to the end.
        let Some((shared, index)) = current.borrow().clone() else {
            break;
        };
        let registry = &shared.listeners[index].connections;
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
    if !shared.listeners[listener].tls {
        crate::plain::connection(shared, listener, tcp, peer, stop, registration).await;
        return;
    }
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
            shared
                .metrics
                .count_handshake_failure(match &failure.cause {
                    HandshakeCause::PlainHttp => HandshakeFailureCause::PlainHttp,
                    HandshakeCause::Io(err) => HandshakeFailureCause::of_io(err),
                });
            failure.log(&shared, peer);
            return;
        }
        Err(_) => {
            shared
                .metrics
                .count_handshake_failure(HandshakeFailureCause::Timeout);
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    activity.established();
    shared.vhost_metrics[conn.presented.index()].count_handshake();
    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    let _open = shared.metrics.open_connection(match h2 {
        true => Protocol::H2,
        false => Protocol::H1,
    });
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
        let origin = shared.listeners[listener].table.origin_frame(&conn.context);
        if let Some(entry) = &origin
            && entry.left_out > 0
        {
            tracing::debug!(
                %peer,
                listed = entry.origins,
                left_out = entry.left_out,
                "ORIGIN frame: origins that did not fit in 16,384 bytes were left out"
            );
        }
        let stream = OriginStream::new(stream, origin.map(|entry| entry.frame));
        let frame = stream.watch();
        crate::serving::serve_h2(shared, conn, stream, stop, activity).await;
        let status = frame.status();
        if !matches!(status, FrameStatus::Sent | FrameStatus::NoFrame) {
            tracing::debug!(%peer, ?status, "ORIGIN frame not sent on this connection");
        }
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
