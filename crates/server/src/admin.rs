//! The admin listener (`[admin]`): plain HTTP/1.1 for operators and scrapers, apart from
//! the TLS listeners.
//!
//! - `GET /metrics`: every series of [`crate::metrics`], in OpenMetrics text when the
//!   scraper's `Accept` names it, else the Prometheus text format 0.0.4.
//! - `GET /healthz`: `200 ok` while serving, `503 draining` once shutdown has begun.
//! - `POST /reload`: asks the server to reload its configuration and answers with the
//!   outcome (`200` or `500` with the error).
//!
//! Any other path is 404, another method 405 with `Allow`. The listener is bounded like the
//! TLS ones: at most [`MAX_CONNECTIONS`] connections (more are closed at once), a request
//! head must arrive within [`HEADER_READ_TIMEOUT`] (idle keep-alive connections are closed
//! after it too), a connection lives at most [`CONNECTION_LIFETIME`], and no request body
//! is read (a body left unread closes the connection after the response).
//!
//! It has no authentication: it listens on loopback unless `[admin] allow_remote = true`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use crate::conn::RateLimit;
use crate::metrics::{Exposition, Format, Metrics};
use crate::server::{ReloadHandle, raised};

/// Open admin connections at most; a connection over the limit is closed at once.
pub(crate) const MAX_CONNECTIONS: usize = 64;

/// How long a request head may take to arrive, counted from the end of the previous
/// response on a kept-alive connection.
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an admin connection may stay open, whatever it does.
pub(crate) const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);

/// How long `POST /reload` waits for the reload's outcome.
pub(crate) const RELOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// hyper's read buffer: a request head must fit (hyper's minimum).
const MAX_BUF: usize = 8192;

/// What `POST /reload` runs: `Ok` with the line the 200 answer says, or `Err` with why the
/// reload failed.
type ReloadFuture = Pin<Box<dyn Future<Output = Result<String, String>> + Send>>;

/// What the admin endpoints read: the metrics, whether the server is draining, and how to
/// reload.
#[derive(Debug)]
pub(crate) struct AdminState {
    exposition: Exposition,
    draining: AtomicBool,
    reload: Option<ReloadHook>,
}

struct ReloadHook(Box<dyn Fn() -> ReloadFuture + Send + Sync>);

impl AdminState {
    /// Serves `metrics`; `POST /reload` answers 501 until a reload is set with
    /// [`reload_handle`](AdminState::reload_handle) or [`reload_hook`](AdminState::reload_hook).
    pub(crate) fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            exposition: Exposition::new(metrics),
            draining: AtomicBool::new(false),
            reload: None,
        }
    }

    /// `POST /reload` reloads the server `handle` belongs to, and answers with the
    /// addresses it listens on after the reload, or with the error.
    pub(crate) fn reload_handle(self, handle: ReloadHandle) -> Self {
        self.reload_hook(move || {
            let handle = handle.clone();
            async move {
                let addrs = handle.reload().await.map_err(|err| err.to_string())?;
                let addrs: Vec<String> = addrs.iter().map(ToString::to_string).collect();
                Ok(format!("reloaded; listening on {}", addrs.join(", ")))
            }
        })
    }

    /// `POST /reload` runs `hook` and answers with its outcome.
    pub(crate) fn reload_hook<F>(mut self, hook: impl Fn() -> F + Send + Sync + 'static) -> Self
    where
        F: Future<Output = Result<String, String>> + Send + 'static,
    {
        self.reload = Some(ReloadHook(Box::new(move || Box::pin(hook()))));
        self
    }

    /// From now on `/healthz` answers `503 draining`.
    pub(crate) fn set_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

impl std::fmt::Debug for ReloadHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReloadHook")
    }
}

/// Serves the admin endpoints on `listener` until `stop` is raised; then accepts no more
/// connections and lets each open one finish its current request.
pub(crate) async fn serve_admin(
    listener: TcpListener,
    state: Arc<AdminState>,
    mut stop: watch::Receiver<bool>,
) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "admin listening");
    }
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let accept_log = RateLimit::new(Duration::from_secs(5));
    let full_log = RateLimit::new(Duration::from_secs(5));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = raised(&mut stop) => break,
        };
        let (tcp, peer) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                if let Some(suppressed) = accept_log.allow() {
                    tracing::warn!(error = %err, suppressed, "admin accept failed");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            if let Some(suppressed) = full_log.allow() {
                tracing::warn!(
                    %peer,
                    max_connections = MAX_CONNECTIONS,
                    suppressed,
                    "admin connection refused: at its connection limit"
                );
            }
            drop(tcp);
            continue;
        };
        tokio::spawn(connection(tcp, state.clone(), stop.clone(), permit));
    }
}

/// One admin connection, holding its slot until it ends.
async fn connection(
    tcp: TcpStream,
    state: Arc<AdminState>,
    mut stop: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let _ = tcp.set_nodelay(true);
    let service = service_fn(move |request: Request<hyper::body::Incoming>| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(route(&state, request).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_BUF)
        .keep_alive(true);
    let connection = builder.serve_connection(TokioIo::new(tcp), service);
    tokio::pin!(connection);
    let served = tokio::time::timeout(CONNECTION_LIFETIME, async {
        tokio::select! {
            result = connection.as_mut() => result,
            () = raised(&mut stop) => {
                connection.as_mut().graceful_shutdown();
                connection.as_mut().await
            }
        }
    })
    .await;
    match served {
        Ok(Ok(())) => {}
        Ok(Err(err)) => tracing::debug!(error = %err, "admin connection ended with an error"),
        Err(_) => tracing::debug!("admin connection closed: open too long"),
    }
}

/// One request. The body is never read.
async fn route(
    state: &AdminState,
    request: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let (parts, _body) = request.into_parts();
    let method = &parts.method;
    let read = *method == Method::GET || *method == Method::HEAD;
    match parts.uri.path() {
        "/metrics" if read => metrics(state, &parts.headers),
        "/healthz" if read => match state.draining() {
            false => text(StatusCode::OK, "ok\n"),
            true => text(StatusCode::SERVICE_UNAVAILABLE, "draining\n"),
        },
        "/metrics" | "/healthz" => not_allowed("GET, HEAD"),
        "/reload" if *method == Method::POST => reload(state).await,
        "/reload" => not_allowed("POST"),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn metrics(state: &AdminState, headers: &HeaderMap) -> Response<Full<Bytes>> {
    let format = Format::negotiate(headers);
    match state.exposition.encode(format) {
        Ok(body) => {
            let mut response = Response::new(Full::new(Bytes::from(body)));
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(_) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the metrics could not be encoded\n",
        ),
    }
}

/// Reloads and waits, at most [`RELOAD_TIMEOUT`], for the outcome.
async fn reload(state: &AdminState) -> Response<Full<Bytes>> {
    let Some(hook) = &state.reload else {
        return text(
            StatusCode::NOT_IMPLEMENTED,
            "this server does not reload its configuration\n",
        );
    };
    match tokio::time::timeout(RELOAD_TIMEOUT, (hook.0)()).await {
        Ok(Ok(done)) => text(StatusCode::OK, format!("{done}\n")),
        Ok(Err(message)) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reload failed: {message}\n"),
        ),
        Err(_) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "reload failed: no outcome within {} s\n",
                RELOAD_TIMEOUT.as_secs()
            ),
        ),
    }
}

/// 405 with the methods the path takes (RFC 9110 §15.5.6).
fn not_allowed(allow: &'static str) -> Response<Full<Bytes>> {
    let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// A `text/plain` answer. hyper sends a HEAD response's headers only.
fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use std::path::Path;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::oneshot;

    use super::*;
    use crate::{Config, Server};

    /// An admin listener on a free loopback port, with the sender that stops it.
    async fn start(state: Arc<AdminState>) -> (SocketAddr, watch::Sender<bool>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local address");
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(serve_admin(listener, state, stop_rx));
        (addr, stop_tx)
    }

    /// Sends one HTTP/1.1 request and reads the response to the end: (status, head, body).
    async fn request(
        addr: SocketAddr,
        method: &str,
        path: &str,
        extra: &str,
    ) -> (u16, String, String) {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{extra}\r\n"
        );
        tcp.write_all(head.as_bytes()).await.expect("write");
        let mut raw = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut raw))
            .await
            .expect("the response comes in time")
            .expect("read");
        let raw = String::from_utf8(raw).expect("UTF-8");
        let (head, body) = raw.split_once("\r\n\r\n").expect("a head");
        let status = head
            .get(9..12)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("no status in {head}"));
        (status, head.to_ascii_lowercase(), body.to_string())
    }

    #[tokio::test]
    async fn metrics_healthz_and_methods() {
        let metrics = Arc::new(Metrics::new());
        metrics.vhost_table(["a.test"])[0].count_request(StatusCode::OK);
        let state = Arc::new(AdminState::new(metrics));
        let (addr, _stop) = start(state.clone()).await;

        let (status, head, body) = request(addr, "GET", "/metrics", "").await;
        assert_eq!(status, 200, "{head}");
        assert!(
            head.contains("content-type: text/plain; version=0.0.4"),
            "{head}"
        );
        assert!(
            body.contains("misdirect_requests_total{vhost=\"a.test\",status=\"200\"} 1\n"),
            "{body}"
        );
        let (status, head, body) = request(
            addr,
            "GET",
            "/metrics",
            "Accept: application/openmetrics-text;version=1.0.0\r\n",
        )
        .await;
        assert_eq!(status, 200, "{head}");
        assert!(
            head.contains("content-type: application/openmetrics-text"),
            "{head}"
        );
        assert!(body.ends_with("# EOF\n"), "{body}");

        // (method, path, status, Allow)
        const CASES: &[(&str, &str, u16, Option<&str>)] = &[
            ("GET", "/healthz", 200, None),
            ("HEAD", "/healthz", 200, None),
            ("GET", "/healthz?verbose=1", 200, None),
            ("POST", "/metrics", 405, Some("GET, HEAD")),
            ("DELETE", "/healthz", 405, Some("GET, HEAD")),
            ("GET", "/reload", 405, Some("POST")),
            ("GET", "/", 404, None),
            ("GET", "/metrics/", 404, None),
            // No hook: this server cannot reload.
            ("POST", "/reload", 501, None),
        ];
        for (method, path, expected, allow) in CASES {
            let (status, head, _) = request(addr, method, path, "").await;
            assert_eq!(status, *expected, "{method} {path}: {head}");
            if let Some(allow) = allow {
                assert!(
                    head.contains(&format!("allow: {}", allow.to_ascii_lowercase())),
                    "{head}"
                );
            }
        }
        let (_, _, body) = request(addr, "GET", "/healthz", "").await;
        assert_eq!(body, "ok\n");
        let (_, head, body) = request(addr, "HEAD", "/metrics", "").await;
        assert!(head.contains("content-length: "), "{head}");
        assert_eq!(body, "", "HEAD has no body");

        state.set_draining();
        let (status, _, body) = request(addr, "GET", "/healthz", "").await;
        assert_eq!((status, body.as_str()), (503, "draining\n"));
    }

    #[tokio::test]
    async fn reload_calls_the_hook_and_answers_its_outcome() {
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = calls.clone();
        let hook = move || {
            let call = counted.fetch_add(1, Ordering::Relaxed);
            async move {
                match call {
                    0 => Ok("reloaded".to_string()),
                    _ => Err("vhost \"a.test\": cannot read a.pem".to_string()),
                }
            }
        };
        let state = Arc::new(AdminState::new(Arc::new(Metrics::new())).reload_hook(hook));
        let (addr, _stop) = start(state).await;
        let (status, _, body) = request(addr, "POST", "/reload", "").await;
        assert_eq!((status, body.as_str()), (200, "reloaded\n"));
        let (status, _, body) = request(addr, "POST", "/reload", "Content-Length: 0\r\n").await;
        assert_eq!(
            (status, body.as_str()),
            (500, "reload failed: vhost \"a.test\": cannot read a.pem\n")
        );
        // GET does not reload.
        assert_eq!(request(addr, "GET", "/reload", "").await.0, 405);
        assert_eq!(calls.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn reload_reloads_a_running_server() {
        const TEXT: &str = "[[listener]]\naddr = \"127.0.0.1:0\"\n\n\
                            [[vhost]]\nname = \"a.test\"\nself_signed = true\n";
        let load = || Config::from_toml(TEXT, Path::new("misdirect.toml"), Path::new("."));
        let broken = Arc::new(AtomicBool::new(false));
        let loader = {
            let broken = broken.clone();
            move || match broken.load(Ordering::Relaxed) {
                false => load(),
                true => {
                    Config::from_toml("[[vhost]\n", Path::new("misdirect.toml"), Path::new("."))
                }
            }
        };
        let server = Server::bind(load().expect("valid"))
            .await
            .expect("bind")
            .reload_from(loader);
        let listening = server.local_addrs();
        let state = AdminState::new(Arc::new(Metrics::new())).reload_handle(server.reload_handle());
        let (addr, _stop) = start(Arc::new(state)).await;
        let (shutdown, stopped) = oneshot::channel::<()>();
        let running = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));

        let (status, _, body) = request(addr, "POST", "/reload", "").await;
        assert_eq!(
            (status, body),
            (200, format!("reloaded; listening on {}\n", listening[0]))
        );
        broken.store(true, Ordering::Relaxed);
        let (status, _, body) = request(addr, "POST", "/reload", "").await;
        assert_eq!(status, 500, "{body}");
        assert!(
            body.starts_with("reload failed: misdirect.toml: TOML parse error"),
            "{body}"
        );

        // The server has stopped: nothing takes the reload.
        let _ = shutdown.send(());
        running.await.expect("the server stops");
        let (status, _, body) = request(addr, "POST", "/reload", "").await;
        assert_eq!(
            (status, body.as_str()),
            (500, "reload failed: the server is not running\n")
        );
    }

    #[tokio::test]
    async fn stop_closes_the_listener() {
        let state = Arc::new(AdminState::new(Arc::new(Metrics::new())));
        let (addr, stop) = start(state).await;
        assert_eq!(request(addr, "GET", "/healthz", "").await.0, 200);
        stop.send(true).expect("the listener is running");
        let refused = async {
            loop {
                if TcpStream::connect(addr).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), refused)
            .await
            .expect("the admin listener closes");
    }
}
