//! HTTP/1.1 (hyper) and HTTP/2 (h2) serving, and the per-request path: target, decision,
//! answer (`docs/design.md`, "Architecture", steps 5–7).
//!
//! A virtual host with `respond = { proxy = … }` answers with [`Proxy::forward`]: the
//! request body streams to the upstream and its response back, and the request counts as
//! in progress on its connection (for idle timeouts, reclaiming, shutdown and reloads) until
//! the response has been sent — or, after an HTTP/1.1 `101 Switching Protocols`, until the
//! tunnel that the connection became has closed.

use std::convert::Infallible;
use std::future::poll_fn;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use misdirect_authority::{RequestTarget, TargetErrorKind};
use misdirect_coalesce::{Outcome, Reason, ServedMemo, VhostId};
use tokio::sync::watch;

use crate::config::Respond;
use crate::conn::{Activity, Expired, InFlight, Watchdog};
use crate::files::{self, Body};
use crate::proxy::{ForwardContext, H2RequestBody, Proxy, Tunnel};
use crate::server::{Conn, Shared};

/// Serves HTTP/1.1 until the client closes, a response says `Connection: close` (every
/// 421), the connection is idle for `idle_timeout` or a request head takes longer than
/// `header_read_timeout`, the registry reclaims it, or shutdown: then the current response
/// is finished and the connection closed. A connection an upstream upgraded (`101`) is
/// served until its tunnel closes, or until it is dropped (shutdown timeout), which closes
/// the tunnel.
pub(crate) async fn serve_h1<S>(
    shared: Arc<Shared>,
    conn: Arc<Conn>,
    stream: S,
    mut stop: watch::Receiver<bool>,
    activity: Arc<Activity>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let limits = shared.limits;
    let watchdog = Watchdog::h1(activity.clone(), &limits);
    let peer = conn.peer;
    let reclaimed = activity.clone();
    let upgraded: Arc<Mutex<Option<HeldTunnel>>> = Arc::default();
    let tunnel_slot = upgraded.clone();
    let service = service_fn(move |request: Request<Incoming>| {
        let shared = shared.clone();
        let conn = conn.clone();
        let in_flight = activity.request();
        let tunnel_slot = tunnel_slot.clone();
        async move {
            let mut response = answer_h1(&shared, &conn, request).await;
            // After this 101 the connection is the tunnel's: in progress until it closes.
            if let Some(tunnel) = response.extensions_mut().remove::<Tunnel>() {
                let held = HeldTunnel {
                    tunnel,
                    _in_flight: in_flight,
                };
                *tunnel_slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(held);
                return Ok::<_, Infallible>(response);
            }
            // A file or proxied body is in progress until it is sent.
            Ok(response.map(|body| body.holding(in_flight)))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // The watchdog times request heads (and idle keep-alive) itself: hyper's timer
        // would start at the end of each response and so also cut idle connections.
        .header_read_timeout(None)
        // A head of exactly max_header_bytes must fit hyper's read buffer with room for
        // what follows it; heads over the limit are refused with 431 by head_too_large.
        .max_buf_size(limits.max_header_bytes + H1_BUFFER_SLACK)
        .keep_alive(true);
    let connection = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = crate::server::raised(&mut stop) => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
        expired = watchdog.expired(false) => {
            tracing::debug!(%peer, ?expired, "HTTP/1.1 connection timed out");
            return;
        }
        () = reclaimed.reclaimed() => {
            tracing::debug!(%peer, "HTTP/1.1 connection closed to make room");
            return;
        }
    };
    if let Err(err) = result {
        tracing::debug!(error = %err, "HTTP/1.1 connection ended with an error");
    }
    // hyper has handed the connection over to the tunnel. Dropping `held` (here once the
    // tunnel has closed, or when this future is dropped at the shutdown timeout) closes it.
    let held = upgraded
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    if let Some(held) = held {
        held.tunnel.finished().await;
        tracing::debug!(%peer, "upgraded connection closed");
    }
}

/// An HTTP/1.1 connection that an upstream upgraded: the tunnel it became, and the request
/// in progress, which lasts as long as the tunnel. Dropping it closes the tunnel.
struct HeldTunnel {
    tunnel: Tunnel,
    _in_flight: InFlight,
}

impl Drop for HeldTunnel {
    fn drop(&mut self) {
        // Nothing happens when the tunnel has already closed.
        self.tunnel.abort();
    }
}

/// Serves HTTP/2 streams until the client goes away, the connection is idle for
/// `idle_timeout`, a keep-alive PING goes unanswered, the registry reclaims it, or
/// shutdown. Idle, reclaim and shutdown send GOAWAY and let the streams in flight finish
/// (within `request_timeout`, or `shutdown_timeout` on shutdown). A 421 is per stream: the
/// connection stays open.
pub(crate) async fn serve_h2<S>(
    shared: Arc<Shared>,
    conn: Arc<Conn>,
    stream: S,
    mut stop: watch::Receiver<bool>,
    activity: Arc<Activity>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let limits = shared.limits;
    let mut builder = h2::server::Builder::new();
    // h2's reset-flood protections (pending-accept and local-error reset limits) keep
    // their defaults. A header list over max_header_bytes (RFC 9113's measure: name, value
    // and 32 bytes per field) gets 431 on its stream from h2 itself. h2 refuses a list of
    // its setting or more, so the setting is one above the largest list served.
    let header_list = limits.max_header_bytes.saturating_add(1);
    builder
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_send_buffer_size(files::H2_SEND_BUFFER)
        .max_header_list_size(u32::try_from(header_list).unwrap_or(u32::MAX));
    let handshake = tokio::time::timeout(
        limits.request_timeout,
        builder.handshake::<_, Bytes>(stream),
    );
    let mut connection = match handshake.await {
        Ok(Ok(connection)) => connection,
        Ok(Err(err)) => {
            tracing::debug!(error = %err, "HTTP/2 handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!("HTTP/2 preface not received in time");
            return;
        }
    };
    let watchdog = Watchdog::h2(activity.clone(), &limits);
    let mut ping_pong = connection.ping_pong();
    // Set once GOAWAY is sent: the connection is dropped at this instant at the latest.
    let mut closing: Option<tokio::time::Instant> = None;
    let mut stopping = false;
    let mut ping_deadline: Option<tokio::time::Instant> = None;
    let far = tokio::time::Instant::now() + std::time::Duration::from_secs(86_400 * 365);
    let mut batch = Vec::new();
    let mut memo = ServedMemo::default();
    loop {
        let next = tokio::select! {
            next = connection.accept() => next,
            _ = crate::server::raised(&mut stop), if !stopping => {
                stopping = true;
                connection.graceful_shutdown();
                // The server's own shutdown timeout applies; no deadline of ours.
                continue;
            }
            expired = watchdog.expired(ping_deadline.is_some()), if closing.is_none() => {
                match expired {
                    Expired::PingDue => {
                        if let Some(pinger) = ping_pong.as_mut()
                            && pinger.send_ping(h2::Ping::opaque()).is_ok()
                        {
                            ping_deadline = Some(tokio::time::Instant::now() + limits.keepalive_timeout);
                        }
                    }
                    Expired::Idle | Expired::Head | Expired::Stalled => {
                        tracing::debug!(peer = %conn.peer, "HTTP/2 connection idle; GOAWAY");
                        connection.graceful_shutdown();
                        closing = Some(tokio::time::Instant::now() + limits.request_timeout);
                    }
                }
                continue;
            }
            () = activity.reclaimed(), if closing.is_none() => {
                tracing::debug!(peer = %conn.peer, "HTTP/2 connection closed to make room; GOAWAY");
                connection.graceful_shutdown();
                closing = Some(tokio::time::Instant::now() + RECLAIM_GRACE);
                continue;
            }
            pong = std::future::poll_fn(|cx| match ping_pong.as_mut() {
                Some(pinger) => pinger.poll_pong(cx),
                None => std::task::Poll::Pending,
            }), if ping_deadline.is_some() => {
                ping_deadline = None;
                if pong.is_err() {
                    break;
                }
                continue;
            }
            () = tokio::time::sleep_until(ping_deadline.unwrap_or(far)), if ping_deadline.is_some() => {
                tracing::debug!(peer = %conn.peer, "HTTP/2 keep-alive PING not answered; closing");
                break;
            }
            () = tokio::time::sleep_until(closing.unwrap_or(far)), if closing.is_some() => {
                tracing::debug!(peer = %conn.peer, "HTTP/2 streams did not finish after GOAWAY; closing");
                break;
            }
        };
        let first = match next {
            Some(Ok(pair)) => pair,
            Some(Err(err)) => {
                tracing::debug!(error = %err, "HTTP/2 connection ended with an error");
                break;
            }
            None => break,
        };
        // The requests h2 has already read are answered together: h2 writes out what is
        // queued each time it is asked for the next request, so answering them one by one
        // costs a write (and a TLS record) per response.
        batch.push(first);
        let ended = take_ready(&mut connection, &mut batch).await;
        for (request, mut respond) in batch.drain(..) {
            activity.answered();
            let (parts, body) = request.into_parts();
            // RFC 9113 §8.2.1: a field value that starts or ends with SP or HTAB makes the
            // request malformed, a stream error of type PROTOCOL_ERROR (§8.1.1). h2 checks
            // the other §8.2.1 rules itself and leaves this one to the application.
            if let Some(name) = padded_field(&parts) {
                tracing::debug!(peer = %conn.peer, field = %name, "HTTP/2 field value with surrounding whitespace; RST_STREAM(PROTOCOL_ERROR)");
                respond.send_reset(h2::Reason::PROTOCOL_ERROR);
                continue;
            }
            // Refusals and fixed bodies are answered here, without a task per stream;
            // only files, which wait on the disk, and forwarded requests, which wait on
            // the upstream, get their own task.
            match answer_now(&shared, &conn, &parts, Some(&mut memo)) {
                Answer::Ready(response, vhost) => {
                    shared.vhost_metrics[vhost.index()].count_request(response.status());
                    send_h2(respond, response);
                }
                Answer::Malformed(response, vhost) => {
                    // RFC 9113 §8.1.1: a malformed request is a stream error of type
                    // PROTOCOL_ERROR. Logged and counted as the 400 HTTP/1.1 gets.
                    shared.vhost_metrics[vhost.index()].count_request(response.status());
                    respond.send_reset(h2::Reason::PROTOCOL_ERROR);
                }
                Answer::File(root, vhost) => {
                    let in_flight = activity.request();
                    let counters = shared.vhost_metrics[vhost.index()].clone();
                    tokio::spawn(async move {
                        let mut response = files::serve(&root, &parts).await;
                        counters.count_request(response.status());
                        response.headers_mut().insert(header::DATE, date_now());
                        files::send_h2(respond, response, limits.send_timeout).await;
                        drop(in_flight);
                    });
                }
                Answer::Proxy(proxy, ctx, vhost) => {
                    let request = Request::from_parts(parts, H2RequestBody::new(body));
                    let in_flight = activity.request();
                    tokio::spawn(forward_h2(
                        shared.clone(),
                        proxy,
                        ctx,
                        vhost,
                        request,
                        respond,
                        in_flight,
                    ));
                }
            }
        }
        match ended {
            Ended::No => {}
            Ended::Closed => break,
            Ended::Failed(err) => {
                tracing::debug!(error = %err, "HTTP/2 connection ended with an error");
                break;
            }
        }
    }
}

/// The most requests answered in one batch, so that one client's burst cannot delay its
/// own responses for long.
const MAX_BATCH: usize = 64;

/// What `h2` yields for each request: the request and where its response goes.
type Accepted = (Request<h2::RecvStream>, h2::server::SendResponse<Bytes>);

/// Whether the connection ended while [`take_ready`] took requests.
enum Ended {
    No,
    Closed,
    Failed(h2::Error),
}

/// Moves into `batch` the requests `h2` has already read, without waiting for more.
async fn take_ready<S>(
    connection: &mut h2::server::Connection<S, Bytes>,
    batch: &mut Vec<Accepted>,
) -> Ended
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    std::future::poll_fn(|cx| {
        while batch.len() < MAX_BATCH {
            match connection.poll_accept(cx) {
                std::task::Poll::Ready(Some(Ok(accepted))) => batch.push(accepted),
                std::task::Poll::Ready(Some(Err(err))) => {
                    return std::task::Poll::Ready(Ended::Failed(err));
                }
                std::task::Poll::Ready(None) => return std::task::Poll::Ready(Ended::Closed),
                std::task::Poll::Pending => break,
            }
        }
        std::task::Poll::Ready(Ended::No)
    })
    .await
}

/// The current time as an HTTP date, formatted at most once a second per thread.
fn date_now() -> HeaderValue {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};
    thread_local! {
        static CACHE: RefCell<Option<(u64, HeaderValue)>> = const { RefCell::new(None) };
    }
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHE.with_borrow_mut(|cache| match cache {
        Some((cached, value)) if *cached == second => value.clone(),
        _ => {
            let value = HeaderValue::try_from(httpdate::fmt_http_date(now))
                .unwrap_or_else(|_| HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"));
            *cache = Some((second, value.clone()));
            value
        }
    })
}

/// How long a connection closed to make room may take to finish its streams.
const RECLAIM_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// hyper's HTTP/1.1 read buffer is this much larger than `max_header_bytes`, so that a head
/// just under the limit and the start of a body or of a pipelined request fit.
const H1_BUFFER_SLACK: usize = 8192;

/// The size of an HTTP/1.1 request head as it is counted against `max_header_bytes`: the
/// request line and every field line (`name: value`) with their CRLFs, and the empty line.
/// `None` when it is within `limit`.
fn head_too_large(parts: &Parts, limit: usize) -> Option<usize> {
    // "METHOD SP target SP HTTP/1.1 CRLF"
    let mut size = parts.method.as_str().len() + 1 + parts.uri.to_string().len() + 1 + 8 + 2;
    for (name, value) in &parts.headers {
        size += name.as_str().len() + 2 + value.len() + 2;
    }
    size += 2;
    (size > limit).then_some(size)
}

/// 431 for a head over `max_header_bytes`; the connection is closed after it.
fn header_too_large(conn: &Conn, parts: &Parts, size: usize, limit: usize) -> Response<Bytes> {
    tracing::info!(
        peer = %conn.peer,
        size,
        max_header_bytes = limit,
        "request head over max_header_bytes; 431"
    );
    let mut response = plain(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "request header fields too large\n",
        parts,
    );
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

fn send_h2(mut respond: h2::server::SendResponse<Bytes>, response: Response<Bytes>) {
    let (mut head, body) = response.into_parts();
    // RFC 9110 §6.6.1: an origin server with a clock sends Date (hyper adds it on
    // HTTP/1.1; h2 leaves it to us).
    head.headers.insert(header::DATE, date_now());
    let end = body.is_empty();
    match respond.send_response(Response::from_parts(head, ()), end) {
        Ok(mut stream) if !end => {
            if let Err(err) = stream.send_data(body, true) {
                tracing::debug!(error = %err, "HTTP/2 body not sent");
            }
        }
        Ok(_) => {}
        Err(err) => tracing::debug!(error = %err, "HTTP/2 response not sent"),
    }
}

/// A 400 whose reason makes the HTTP/2 request malformed in RFC 9113's terms, so that it
/// is answered with a stream error (§8.1.1) rather than a response: a Host naming another
/// authority than `:authority` (§8.3.1: "SHOULD treat a request as malformed"), or a
/// CONNECT without `:authority` (§8.5).
fn h2_malformed(reason: Option<Reason>, parts: &Parts) -> bool {
    match reason {
        Some(Reason::BadRequest(TargetErrorKind::HostMismatch)) => true,
        Some(Reason::BadRequest(TargetErrorKind::MissingAuthority)) => {
            parts.method == Method::CONNECT
        }
        _ => false,
    }
}

/// The first field whose value starts or ends with SP or HTAB (RFC 9113 §8.2.1).
fn padded_field(parts: &Parts) -> Option<&http::HeaderName> {
    parts.headers.iter().find_map(|(name, value)| {
        let padded = |b: Option<&u8>| matches!(b, Some(b' ' | b'\t'));
        let bytes = value.as_bytes();
        (padded(bytes.first()) || padded(bytes.last())).then_some(name)
    })
}

/// Forwards one HTTP/2 stream's request and sends the upstream's response back window by
/// window (as a file is sent). A stream the client resets while the upstream has not
/// answered yet is abandoned, which also abandons the upstream's exchange.
async fn forward_h2(
    shared: Arc<Shared>,
    proxy: Arc<Proxy>,
    ctx: ForwardContext,
    vhost: VhostId,
    request: Request<H2RequestBody>,
    mut respond: h2::server::SendResponse<Bytes>,
    in_flight: InFlight,
) {
    let peer = ctx.peer;
    let forwarded = proxy.forward(request, ctx);
    let mut response = tokio::select! {
        response = forwarded => response,
        reset = poll_fn(|cx| respond.poll_reset(cx)) => {
            tracing::debug!(%peer, ?reset, "HTTP/2 stream reset before the upstream answered");
            return;
        }
    };
    shared.vhost_metrics[vhost.index()].count_request(response.status());
    // RFC 9110 §6.6.1: a response forwarded without Date gets one.
    if !response.headers().contains_key(header::DATE) {
        response.headers_mut().insert(header::DATE, date_now());
    }
    let response = response.map(Body::proxied);
    files::send_h2(respond, response, shared.limits.send_timeout).await;
    drop(in_flight);
}

/// One HTTP/1.1 request: its target (`misdirect-authority`), the decision
/// (`misdirect-coalesce`), and the answer (`misdirect-response` for refusals, the virtual
/// host's `respond` else — for a proxy, with the request's body and its extensions, which
/// hold a pending upgrade).
async fn answer_h1(shared: &Shared, conn: &Conn, request: Request<Incoming>) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let limit = shared.limits.max_header_bytes;
    if let Some(size) = head_too_large(&parts, limit) {
        let response = header_too_large(conn, &parts, size, limit);
        shared.vhost_metrics[conn.presented.index()].count_request(response.status());
        return response.map(Body::fixed);
    }
    let (response, vhost) = match answer_now(shared, conn, &parts, None) {
        Answer::Ready(response, vhost) | Answer::Malformed(response, vhost) => {
            (response.map(Body::fixed), vhost)
        }
        Answer::File(root, vhost) => (files::serve(&root, &parts).await, vhost),
        Answer::Proxy(proxy, ctx, vhost) => {
            let request = Request::from_parts(parts, body);
            (proxy.forward(request, ctx).await.map(Body::proxied), vhost)
        }
    };
    shared.vhost_metrics[vhost.index()].count_request(response.status());
    response
}

/// What [`answer_now`] decided: a response, a file under this directory to read, or a
/// request to forward; and the virtual host that answers (for the request counters): the
/// serving one, else the connection's own.
enum Answer {
    Ready(Response<Bytes>, VhostId),
    /// An HTTP/2 request RFC 9113 calls malformed (see [`h2_malformed`]), with the 400 it
    /// is logged and counted as.
    Malformed(Response<Bytes>, VhostId),
    File(Arc<Path>, VhostId),
    Proxy(Arc<Proxy>, ForwardContext, VhostId),
}

/// A request's answer up to the point where it would wait: everything but reading a file
/// or forwarding.
fn answer_now(
    shared: &Shared,
    conn: &Conn,
    parts: &Parts,
    memo: Option<&mut ServedMemo>,
) -> Answer {
    if let Some(response) = crate::plain::redirect(shared, conn, parts) {
        return Answer::Ready(response, conn.presented);
    }
    let core = &shared.listeners[conn.listener].table.listener;
    // Benchmarks only (built with `RUSTFLAGS="--cfg misdirect_bench_no_policy"`, never for
    // production): no target, no decision; every request is served by the virtual host the
    // connection presented.
    #[cfg(misdirect_bench_no_policy)]
    let outcome = Outcome::Serve {
        vhost: conn.presented,
        warning: None,
    };
    #[cfg(not(misdirect_bench_no_policy))]
    let outcome = match memo {
        // An HTTP/2 connection remembers the target it last served: the next request for
        // it, byte for byte, skips parsing and deciding.
        Some(memo) => core.on_request_memo(&conn.context, parts, memo),
        None => core.on_request(&conn.context, parts),
    };
    #[cfg(misdirect_bench_no_policy)]
    let _ = memo;
    match outcome {
        Outcome::Serve { vhost, warning } => {
            if let Some(warning) = warning {
                shared.metrics.count_warning(warning.reason);
                core.log_refusal(&warning, Some(conn.peer));
            }
            // The table was built in site order, so a table id is the site index.
            let site_vhost = &shared.site.vhosts[vhost.index()];
            if parts.method == Method::CONNECT {
                // No tunnels here (RFC 9110 §9.3.6 lets a server refuse CONNECT).
                let response = method_not_allowed(&site_vhost.config.respond, parts);
                return Answer::Ready(response, vhost);
            }
            // Coalesced: served by another virtual host than the one whose certificate the
            // connection presented (a cleartext connection presents none).
            if conn.context.presented_vhost().is_some_and(|p| p != vhost) {
                shared.vhost_metrics[vhost.index()].count_coalesced();
            }
            match (&site_vhost.config.respond, &site_vhost.proxy) {
                (Respond::Body(body), _) => Answer::Ready(fixed_body(body, parts), vhost),
                (Respond::Dir(root), _) => Answer::File(root.clone(), vhost),
                (Respond::Proxy(_), Some(proxy)) => match forward_context(shared, conn, parts) {
                    Some(ctx) => Answer::Proxy(proxy.clone(), ctx, vhost),
                    None => Answer::Ready(internal_error(parts), vhost),
                },
                // The site builds a proxy for every `respond = { proxy }`.
                (Respond::Proxy(_), None) => Answer::Ready(internal_error(parts), vhost),
            }
        }
        Outcome::Respond { response, refusal } => {
            // Counted whether or not the log budget writes its line.
            shared.metrics.count_refusal(refusal.reason);
            core.log_refusal(&refusal, Some(conn.peer));
            if parts.version == http::Version::HTTP_2 && h2_malformed(refusal.reason, parts) {
                return Answer::Malformed(response, conn.presented);
            }
            Answer::Ready(response, conn.presented)
        }
        // Outcome is non-exhaustive; every outcome the core makes today is above.
        _ => Answer::Ready(internal_error(parts), conn.presented),
    }
}

/// What the upstream is told about a request the listener core decided to serve: the
/// authority that decision used (the core parsed the same target, so it parses here), and
/// the connection's addresses.
fn forward_context(shared: &Shared, conn: &Conn, parts: &Parts) -> Option<ForwardContext> {
    let target = RequestTarget::from_parts(parts).ok()?;
    Some(ForwardContext {
        peer: conn.peer,
        authority: target.authority().to_string(),
        // The protocol of the hop into this listener (RFC 7239 §5.4): on a plain listener
        // behind a TLS-terminating balancer, `http` (the balancer's own entry says https).
        scheme: match shared.listeners[conn.listener].tls {
            true => "https",
            false => "http",
        },
        local: shared.listeners[conn.listener].local,
        via: shared.via.clone(),
    })
}

/// 500, for what cannot happen.
fn internal_error(parts: &Parts) -> Response<Bytes> {
    plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n", parts)
}

/// 405 for a method the virtual host does not serve, with the `Allow` it does serve
/// (RFC 9110 §15.5.6). HTTP/1.1 closes the connection after it: a client that asked for a
/// tunnel may already be sending tunnel bytes.
fn method_not_allowed(respond: &Respond, parts: &Parts) -> Response<Bytes> {
    let allow = match respond {
        Respond::Dir(_) => "GET, HEAD",
        // The application decides what else it allows; everything but CONNECT is forwarded.
        Respond::Body(_) | Respond::Proxy(_) => {
            "GET, HEAD, POST, PUT, DELETE, OPTIONS, TRACE, PATCH"
        }
    };
    let mut response = plain(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed\n",
        parts,
    );
    let headers = response.headers_mut();
    headers.insert(header::ALLOW, HeaderValue::from_static(allow));
    if parts.version < http::Version::HTTP_2 {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// 200 with a virtual host's fixed `text/plain` body.
fn fixed_body(body: &Bytes, parts: &Parts) -> Response<Bytes> {
    with_body(
        StatusCode::OK,
        "text/plain; charset=utf-8",
        body.clone(),
        parts,
    )
}

fn plain(status: StatusCode, body: &str, parts: &Parts) -> Response<Bytes> {
    with_body(
        status,
        "text/plain; charset=utf-8",
        Bytes::copy_from_slice(body.as_bytes()),
        parts,
    )
}

/// A response with `Content-Length` set to the body's length, and an empty body for HEAD
/// (RFC 9110 §9.3.2).
fn with_body(
    status: StatusCode,
    content_type: &'static str,
    body: Bytes,
    parts: &Parts,
) -> Response<Bytes> {
    let length = HeaderValue::from(body.len());
    let body = if parts.method == Method::HEAD {
        Bytes::new()
    } else {
        body
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_LENGTH, length);
    response
}
