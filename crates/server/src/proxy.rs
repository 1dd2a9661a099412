//! `respond = { proxy = "http://127.0.0.1:3000" }`: forwarding a virtual host's requests to
//! an application behind this server, which is then its TLS front.
//!
//! [`Proxy::forward`] takes a request the virtual-host decision has already accepted and
//! answers it with the upstream's response, streamed both ways:
//! - the upstream gets the request in origin-form over a pooled connection (hyper-util's
//!   client): HTTP/1.1 by default, HTTP/2 with prior knowledge (`h2c`) or by ALPN over TLS
//!   when configured so, TLS verified against the system's roots or the configured `ca`;
//! - `Host` is the normalised authority the decision used; hop-by-hop fields go; `Via`,
//!   `Forwarded` and `X-Forwarded-*` are added ([`headers`] has each rule and its RFC);
//! - nothing is buffered but a small request body (≤ [`REPLAY_BUFFER`] bytes with a known
//!   `Content-Length`), kept so that the request can be sent again after a `421`;
//! - the proxy answers itself when the upstream cannot: `413` for a body over
//!   `max_body_bytes`, `502` when the upstream cannot be reached or fails, `504` when its
//!   response head is late, each rendered by `misdirect-response` in the media type the
//!   request's `Accept` prefers, with a stable code, and logged at `warn`;
//! - `421 Misdirected Request` from the upstream (RFC 9110 §15.5.20) is retried once on a
//!   new connection when the body can be sent again ([`Proxy::retries_421`] counts them);
//! - an HTTP/1.1 `Upgrade` (WebSocket and the like, RFC 9110 §7.8) is passed through: on
//!   `101` the two upgraded connections are joined and bytes copied both ways ([`Tunnel`]).
//!
//! # The proxy's own answers
//! | status | code | when |
//! |---|---|---|
//! | 413 | `body-too-large` | `Content-Length` over `max_body_bytes` (the upstream is not contacted), or a streamed body going over it before the response started (after that, the response is aborted) |
//! | 502 | `upstream-unreachable` | no connection: refused, unresolvable, TLS failed, or `connect_timeout` passed |
//! | 502 | `upstream-failed` | the upstream closed or broke the exchange before its response head |
//! | 504 | `upstream-timeout` | no response head within `response_timeout` |
//! | 502 | `upstream-421-not-retried` | `421` to a request whose body was streamed, so cannot be sent again |
//! | 502 | `upstream-421-after-retry` | `421` again on a new connection |
//! | 400 | `request-body-failed` | a small body (read whole first) could not be read from the client |
//! | 400 | `bad-request-target` | `CONNECT`, or a target that is not a path (`OPTIONS *`) |
//!
//! # What the request path must do
//! - **HTTP/1.1**: serve the connection with hyper's `serve_connection(..).with_upgrades()`
//!   (else an upgrade can never complete), and pass the request as hyper gave it — its body,
//!   and its extensions, which hold the upgrade (`into_parts`/`from_parts` keep them). The
//!   response's body is a [`ProxyBody`]. A `101` response has a [`Tunnel`] in its extensions:
//!   whatever must live as long as the connection (a connection slot, an in-flight count)
//!   can wait on [`Tunnel::finished`], and shutdown can [`Tunnel::abort`] it.
//! - **HTTP/2**: wrap the stream's `RecvStream` in [`H2RequestBody`], and send the
//!   [`ProxyBody`] back window by window as `files::send_h2` sends a file (its `send_body`
//!   loop is generic over the body); forward in a task of its own per stream.
//! - Refuse `CONNECT` first (as the request path does today, 405): `forward` never opens
//!   tunnels for it and answers 400.
//!
//! # Not yet
//! - WebSocket over HTTP/2 (extended CONNECT, RFC 8441). The h2 crate in use (0.4) has
//!   `h2::server::Builder::enable_connect_protocol`, but the request path does not enable it
//!   and `forward` does not translate such a stream into an HTTP/1.1 `Upgrade` request.
//! - An `Upgrade` to an HTTP/2 upstream: `Upgrade` is dropped, as RFC 9110 §7.8 allows a
//!   server to ignore it, and the request is forwarded as a plain one.
//! - Idle timeouts on tunnels: a tunnel lasts until either side closes it.

mod body;
mod connect;
mod headers;
mod prefix;

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::uri::{PathAndQuery, Scheme};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, Version, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::{Body, Incoming};
use hyper::upgrade::OnUpgrade;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{CaptureConnection, capture_connection};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use misdirect_response::{RenderOptions, RenderReason, StaticReason, render};
use rustls::pki_types::CertificateDer;
use tokio::sync::watch;

pub(crate) use body::{BoxError, H2RequestBody, ProxyBody};
pub(crate) use prefix::IpPrefix;

use crate::error::{Error, ErrorKind};
use body::{StreamWatch, UpstreamBody};
use connect::{ConnectError, Connector};
use headers::RequestRules;

/// `max_body_bytes` unless configured: the largest request body forwarded.
pub(crate) const DEFAULT_MAX_BODY_BYTES: u64 = 100 * 1024 * 1024;

/// `connect_timeout` unless configured: TCP and TLS to the upstream.
pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// `response_timeout` unless configured: how long the upstream may take to start its
/// response once it has the request.
pub(crate) const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);

/// Request bodies with a `Content-Length` of at most this many bytes are read whole before
/// the request is sent, so that it can be sent again after a `421`.
pub(crate) const REPLAY_BUFFER: u64 = 64 * 1024;

/// How long an idle pooled connection to the upstream is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Which fields tell the upstream about the client.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) enum ForwardedMode {
    /// `Forwarded` (RFC 7239).
    Rfc7239,
    /// `X-Forwarded-For`, `X-Forwarded-Proto`, `X-Forwarded-Host`.
    XForwarded,
    /// Both.
    #[default]
    Both,
    /// Neither. Copies from untrusted peers are still removed.
    None,
}

impl FromStr for ForwardedMode {
    type Err = Error;

    /// `rfc7239`, `x-forwarded`, `both` or `none`, as the configuration spells them.
    fn from_str(text: &str) -> Result<Self, Error> {
        match text {
            "rfc7239" => Ok(Self::Rfc7239),
            "x-forwarded" => Ok(Self::XForwarded),
            "both" => Ok(Self::Both),
            "none" => Ok(Self::None),
            _ => Err(Error::new(
                ErrorKind::Invalid,
                format!("forwarded: {text:?} is not one of rfc7239, x-forwarded, both, none"),
            )),
        }
    }
}

/// How a virtual host forwards: the upstream and the limits. [`ProxyConfig::new`] checks the
/// upstream URI; [`Proxy::new`] checks the rest and sets up TLS.
///
/// ```text
/// let config = ProxyConfig::new("https://app.internal:8443")?
///     .trust_forwarded_from(vec!["10.0.0.0/8".parse()?])
///     .response_timeout(Duration::from_secs(30));
/// let proxy = Proxy::new(config)?;
/// ```
#[derive(Clone, Debug)]
pub(crate) struct ProxyConfig {
    /// Scheme and authority only; the path is `/`.
    upstream: Uri,
    http2: bool,
    ca: Option<Vec<CertificateDer<'static>>>,
    forwarded: ForwardedMode,
    trust_forwarded_from: Vec<IpPrefix>,
    max_body_bytes: u64,
    connect_timeout: Duration,
    response_timeout: Duration,
}

impl ProxyConfig {
    /// A configuration forwarding to `upstream`, `http://host[:port]` or
    /// `https://host[:port]` (no user information, no path but `/`, no query: requests keep
    /// their own path), with the defaults for everything else.
    pub(crate) fn new(upstream: &str) -> Result<Self, Error> {
        let invalid =
            |why: &str| Error::new(ErrorKind::Invalid, format!("proxy {upstream:?}: {why}"));
        let uri: Uri = upstream
            .parse()
            .map_err(|err| invalid(&format!("not a URI ({err})")).with_source(err))?;
        let scheme = match uri.scheme_str() {
            Some("http") => Scheme::HTTP,
            Some("https") => Scheme::HTTPS,
            Some(other) => {
                return Err(invalid(&format!(
                    "the scheme must be http or https, not {other:?} (for h2c, use http:// \
                     with http2 on)"
                )));
            }
            None => {
                return Err(invalid(
                    "give the scheme: http://host:port or https://host:port",
                ));
            }
        };
        let authority = uri
            .authority()
            .filter(|authority| !authority.host().is_empty())
            .ok_or_else(|| invalid("the upstream has no host"))?;
        if authority.as_str().contains('@') {
            return Err(invalid("user information (user@) is not supported"));
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(invalid(
                "a path or query is not supported: requests are forwarded with their own path",
            ));
        }
        let upstream = Uri::builder()
            .scheme(scheme)
            .authority(authority.clone())
            .path_and_query(PathAndQuery::from_static("/"))
            .build()
            .map_err(|err| invalid(&err.to_string()))?;
        Ok(Self {
            upstream,
            http2: false,
            ca: None,
            forwarded: ForwardedMode::default(),
            trust_forwarded_from: Vec::new(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
        })
    }

    /// Whether the upstream is `https` (only then does `ca` apply).
    pub(crate) fn is_https(&self) -> bool {
        self.upstream.scheme() == Some(&Scheme::HTTPS)
    }

    /// Speak HTTP/2 to the upstream: with prior knowledge (`h2c`) to an `http` upstream, by
    /// ALPN `h2` to an `https` one. Off by default (HTTP/1.1).
    pub(crate) fn http2(mut self, yes: bool) -> Self {
        self.http2 = yes;
        self
    }

    /// Trust these roots, and only these, for an `https` upstream (by default the system's).
    pub(crate) fn ca(mut self, roots: Vec<CertificateDer<'static>>) -> Self {
        self.ca = Some(roots);
        self
    }

    /// Which fields describe the client ([`ForwardedMode::Both`] by default).
    pub(crate) fn forwarded(mut self, mode: ForwardedMode) -> Self {
        self.forwarded = mode;
        self
    }

    /// Peers whose `Forwarded`/`X-Forwarded-*` fields are kept and appended to (other
    /// proxies in front of this server); from anyone else they are removed. Empty by default.
    pub(crate) fn trust_forwarded_from(mut self, prefixes: Vec<IpPrefix>) -> Self {
        self.trust_forwarded_from = prefixes;
        self
    }

    /// The largest request body forwarded; larger ones get `413`.
    pub(crate) fn max_body_bytes(mut self, max: u64) -> Self {
        self.max_body_bytes = max;
        self
    }

    /// How long TCP and TLS to the upstream may take together; past it, `502`.
    pub(crate) fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long the upstream may take to send its response head once it has the request —
    /// counted from the connection being ready, or from the end of a streamed request body;
    /// past it, `504`.
    pub(crate) fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }
}

/// What [`Proxy::forward`] needs to know about the request beyond the request itself.
#[derive(Clone, Debug)]
pub(crate) struct ForwardContext {
    /// The client's address.
    pub(crate) peer: SocketAddr,
    /// The normalised authority the virtual-host decision used (`a.test`, `a.test:8443`):
    /// the upstream's `Host`. It must be a valid field value (a normalised authority is).
    pub(crate) authority: String,
    /// The scheme the client used, `https` (a plain-HTTP listener would say `http`).
    pub(crate) scheme: &'static str,
    /// The listener's address, `Forwarded: by=`.
    pub(crate) local: SocketAddr,
    /// The server's pseudonym in `Via` (RFC 9110 §7.6.3), a token such as `misdirect`.
    pub(crate) via: Arc<str>,
}

/// Forwards one virtual host's requests to its upstream. Cheap to share: one per virtual
/// host, used by every connection.
pub(crate) struct Proxy {
    upstream: Uri,
    http2: bool,
    forwarded: ForwardedMode,
    trusted: Vec<IpPrefix>,
    max_body_bytes: u64,
    response_timeout: Duration,
    /// Pooled connections, for every first try.
    pooled: Client<Connector, UpstreamBody>,
    /// A new connection every time, for the retry after a `421`.
    fresh: Client<Connector, UpstreamBody>,
    retries_421: AtomicU64,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("upstream", &self.upstream)
            .field("http2", &self.http2)
            .field("forwarded", &self.forwarded)
            .field("trusted", &self.trusted)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("response_timeout", &self.response_timeout)
            .field("retries_421", &self.retries_421())
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// Checks `config` and sets up the clients; for an `https` upstream without `ca` this
    /// reads the system's root certificates. Needs a tokio runtime only when forwarding.
    pub(crate) fn new(config: ProxyConfig) -> Result<Self, Error> {
        let upstream = config.upstream;
        let invalid =
            |why: &str| Error::new(ErrorKind::Invalid, format!("proxy {upstream}: {why}"));
        if config.connect_timeout.is_zero() {
            return Err(invalid("connect_timeout must be more than zero"));
        }
        if config.response_timeout.is_zero() {
            return Err(invalid("response_timeout must be more than zero"));
        }
        let https = upstream.scheme() == Some(&Scheme::HTTPS);
        let tls = match (&config.ca, https) {
            (Some(_), false) => return Err(invalid("ca is for https upstreams only")),
            (Some(roots), true) if roots.is_empty() => {
                return Err(invalid("ca has no certificate"));
            }
            (ca, true) => Some(connect::client_config(
                &upstream,
                ca.as_deref(),
                config.http2,
            )?),
            (None, false) => None,
        };
        let connector = Connector::new(&upstream, tls, config.connect_timeout)?;
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .http2_only(config.http2)
            // `Host` is always ours (or `:authority`, for HTTP/2).
            .set_host(false);
        let pooled = builder.build(connector.clone());
        // No idle connection kept means none reused: every request connects anew.
        builder.pool_max_idle_per_host(0);
        let fresh = builder.build(connector);
        Ok(Self {
            upstream,
            http2: config.http2,
            forwarded: config.forwarded,
            trusted: config.trust_forwarded_from,
            max_body_bytes: config.max_body_bytes,
            response_timeout: config.response_timeout,
            pooled,
            fresh,
            retries_421: AtomicU64::new(0),
        })
    }

    /// Requests retried on a new connection after the upstream answered `421`.
    pub(crate) fn retries_421(&self) -> u64 {
        self.retries_421.load(Ordering::Relaxed)
    }

    /// Forwards `request` to the upstream and returns its response, or the proxy's own
    /// answer when the upstream cannot give one (see the module notes). Never fails: every
    /// problem is a response.
    ///
    /// `request` is the request as received: over HTTP/1.1 hyper's, extensions included
    /// (they hold the upgrade); over HTTP/2 with an [`H2RequestBody`].
    pub(crate) async fn forward<B>(
        &self,
        mut request: Request<B>,
        ctx: ForwardContext,
    ) -> Response<ProxyBody>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let answer = Answer::new(self, &ctx, &request);
        if request.method() == Method::CONNECT {
            return answer.failed(&Failure::Target("CONNECT is not forwarded"), false);
        }
        let declared = content_length(request.headers());
        let empty = request.body().is_end_stream() || declared == Some(0);
        if let Some(declared) = declared.filter(|&n| n > self.max_body_bytes) {
            let cause = format!("Content-Length {declared} over max_body_bytes");
            return answer.failed(&Failure::TooLarge(cause), !empty);
        }
        let upgrade = self.upgrade_requested(&request);
        let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut request));
        let (parts, body) = request.into_parts();
        let head = match self.head(&parts, &ctx, upgrade.as_ref()) {
            Ok(head) => head,
            Err(failure) => return answer.failed(&failure, !empty),
        };

        let (body, watch) = if empty {
            (UpstreamBody::buffered(Bytes::new(), None), None)
        } else if declared.is_some_and(|n| n <= REPLAY_BUFFER) {
            match buffer(body).await {
                Ok(body) => (body, None),
                Err(failure) => return answer.failed(&failure, true),
            }
        } else {
            let body = body.map_err(Into::into).boxed_unsync();
            let (body, watch) = UpstreamBody::streamed(body, self.max_body_bytes);
            (body, Some(watch))
        };
        // Unread when something of the body may still be on the client's connection.
        let unread =
            |watch: &Option<StreamWatch>| watch.as_ref().is_some_and(|w| !*w.done.borrow());

        let replay = body.replay();
        let first = self.send(&self.pooled, &head, body, watch.as_ref()).await;
        let response = match first {
            Ok(response) if response.status() == StatusCode::MISDIRECTED_REQUEST => {
                let Some(body) = replay else {
                    return answer.failed(&Failure::NotRetried, unread(&watch));
                };
                drop(response);
                self.retries_421.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    upstream = %self.upstream,
                    vhost = %ctx.authority,
                    "upstream answered 421; retrying once on a new connection"
                );
                match self.send(&self.fresh, &head, body, None).await {
                    Ok(again) if again.status() == StatusCode::MISDIRECTED_REQUEST => {
                        return answer.failed(&Failure::MisdirectedAgain, false);
                    }
                    Ok(again) => again,
                    Err(failure) => return answer.failed(&failure, false),
                }
            }
            Ok(response) => response,
            Err(failure) => return answer.failed(&failure, unread(&watch)),
        };

        let (mut parts, body) = response.into_parts();
        let upgraded = parts.status == StatusCode::SWITCHING_PROTOCOLS;
        let tunnel = if upgraded {
            let upstream_upgrade = parts.extensions.remove::<OnUpgrade>();
            let (Some(client), Some(upstream)) = (client_upgrade, upstream_upgrade) else {
                let cause = "101 Switching Protocols to a request that is not being upgraded";
                return answer.failed(&Failure::Upstream(cause.into()), false);
            };
            Some(Tunnel::spawn(client, upstream, &ctx))
        } else {
            None
        };
        headers::response_fields(&mut parts.headers, parts.version, &ctx.via, upgraded);
        parts.extensions = http::Extensions::new();
        if let Some(tunnel) = tunnel {
            parts.extensions.insert(tunnel);
        }
        parts.version = answer.version;
        Response::from_parts(parts, ProxyBody::upstream(body))
    }

    /// The `Upgrade` value to forward: an HTTP/1.1 request (RFC 9110 §7.8 ignores it in
    /// HTTP/1.0) with `Upgrade` and the `upgrade` connection option, that hyper can hand
    /// over, to an HTTP/1.1 upstream.
    fn upgrade_requested<B>(&self, request: &Request<B>) -> Option<HeaderValue> {
        if self.http2
            || request.version() != Version::HTTP_11
            || request.extensions().get::<OnUpgrade>().is_none()
            || !headers::has_token(request.headers(), header::CONNECTION, "upgrade")
        {
            return None;
        }
        request.headers().get(header::UPGRADE).cloned()
    }

    /// The request head sent upstream.
    fn head(
        &self,
        parts: &Parts,
        ctx: &ForwardContext,
        upgrade: Option<&HeaderValue>,
    ) -> Result<Head, Failure> {
        let path = parts.uri.path_and_query().map_or("/", PathAndQuery::as_str);
        if !path.starts_with('/') {
            return Err(Failure::Target("only origin-form targets are forwarded"));
        }
        let host = HeaderValue::from_str(&ctx.authority)
            .map_err(|_| Failure::Target("the authority is not a valid Host"))?;
        // To HTTP/2 the authority is `:authority`; the connector dials the upstream anyway.
        let authority = if self.http2 {
            ctx.authority.as_str()
        } else {
            self.upstream.authority().map_or("", |a| a.as_str())
        };
        let scheme = self.upstream.scheme().cloned().unwrap_or(Scheme::HTTP);
        let uri = Uri::builder()
            .scheme(scheme)
            .authority(authority)
            .path_and_query(path)
            .build()
            .map_err(|_| Failure::Target("the target cannot be forwarded"))?;
        let peer = ctx.peer.ip();
        let rules = RequestRules {
            ctx,
            host: &host,
            mode: self.forwarded,
            trusted: self.trusted.iter().any(|prefix| prefix.contains(peer)),
            h2_upstream: self.http2,
            upgrade,
        };
        Ok(Head {
            method: parts.method.clone(),
            uri,
            version: if self.http2 {
                Version::HTTP_2
            } else {
                Version::HTTP_11
            },
            headers: headers::request_fields(&parts.headers, parts.version, &rules),
        })
    }

    /// One exchange with the upstream, up to the response head.
    async fn send(
        &self,
        client: &Client<Connector, UpstreamBody>,
        head: &Head,
        body: UpstreamBody,
        watch: Option<&StreamWatch>,
    ) -> Result<Response<Incoming>, Failure> {
        let mut request = head.request(body);
        let capture = capture_connection(&mut request);
        let done = watch.map(|w| w.done.clone());
        let deadline = head_deadline(capture, done, self.response_timeout);
        let result = tokio::select! {
            biased;
            result = client.request(request) => result,
            () = deadline => return Err(Failure::HeadTimeout(self.response_timeout)),
        };
        result.map_err(|err| {
            if watch.is_some_and(|w| w.over.load(Ordering::Acquire)) {
                return Failure::TooLarge("the streamed body went over max_body_bytes".into());
            }
            Failure::from_client(&err)
        })
    }
}

/// A request head for the upstream, kept to send the request again.
struct Head {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
}

impl Head {
    fn request(&self, body: UpstreamBody) -> Request<UpstreamBody> {
        let mut request = Request::new(body);
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.version_mut() = self.version;
        *request.headers_mut() = self.headers.clone();
        request
    }
}

/// Resolves when the response head is late: `timeout` after the connection is ready and
/// the request body (when streamed) has been sent whole. Never, when either never happens
/// (the request then fails on its own).
async fn head_deadline(
    mut capture: CaptureConnection,
    body_done: Option<watch::Receiver<bool>>,
    timeout: Duration,
) {
    let connected = capture.wait_for_connection_metadata().await.is_some();
    if !connected {
        return std::future::pending().await;
    }
    if let Some(mut done) = body_done
        && done.wait_for(|done| *done).await.is_err()
    {
        return std::future::pending().await;
    }
    tokio::time::sleep(timeout).await;
}

/// Reads a small body whole, trailers included.
async fn buffer<B>(body: B) -> Result<UpstreamBody, Failure>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    // The caller checked Content-Length ≤ REPLAY_BUFFER; hyper and h2 hold the body to it.
    let limit = usize::try_from(REPLAY_BUFFER).unwrap_or(usize::MAX);
    let collected = Limited::new(body, limit)
        .collect()
        .await
        .map_err(|err| Failure::BodyRead(err.to_string()))?;
    let trailers = collected.trailers().cloned();
    Ok(UpstreamBody::buffered(collected.to_bytes(), trailers))
}

/// The value of `Content-Length`, when there is one valid value.
fn content_length(fields: &HeaderMap) -> Option<u64> {
    fields
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// A tunnel between an upgraded client connection and the upstream's, copying bytes both
/// ways until either side closes. It runs in a task of its own; this handle is in the
/// extensions of the `101` response [`Proxy::forward`] returns.
#[derive(Clone, Debug)]
pub(crate) struct Tunnel {
    abort: tokio::task::AbortHandle,
    /// Closed when the task ends.
    ended: watch::Receiver<()>,
}

impl Tunnel {
    fn spawn(client: OnUpgrade, upstream: OnUpgrade, ctx: &ForwardContext) -> Self {
        let (alive, ended) = watch::channel(());
        let peer = ctx.peer;
        let task = tokio::spawn(async move {
            let _alive = alive;
            // The client's side is ready once hyper has sent it the 101.
            let (client, upstream) = match tokio::try_join!(client, upstream) {
                Ok(pair) => pair,
                Err(err) => {
                    tracing::debug!(%peer, error = %err, "upgrade not completed");
                    return;
                }
            };
            let mut client = TokioIo::new(client);
            let mut upstream = TokioIo::new(upstream);
            match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                Ok((up, down)) => tracing::debug!(%peer, up, down, "tunnel closed"),
                Err(err) => tracing::debug!(%peer, error = %err, "tunnel broken"),
            }
        });
        Self {
            abort: task.abort_handle(),
            ended,
        }
    }

    /// Resolves when the tunnel has closed.
    pub(crate) async fn finished(&self) {
        let mut ended = self.ended.clone();
        while ended.changed().await.is_ok() {}
    }

    /// Closes the tunnel now (shutdown).
    pub(crate) fn abort(&self) {
        self.abort.abort();
    }
}

/// Why the proxy answers a request itself.
#[derive(Debug)]
enum Failure {
    /// Over `max_body_bytes`.
    TooLarge(String),
    /// The upstream could not be reached.
    Unreachable(String),
    /// The upstream broke the exchange before its response head.
    Upstream(String),
    /// No response head within `response_timeout`.
    HeadTimeout(Duration),
    /// `421` with a streamed body.
    NotRetried,
    /// `421` again on a new connection.
    MisdirectedAgain,
    /// The client's small body could not be read.
    BodyRead(String),
    /// A request that cannot be forwarded as it is.
    Target(&'static str),
}

const BODY_TOO_LARGE: StaticReason = StaticReason::new(
    "body-too-large",
    "the request body is larger than this server forwards",
);
const UPSTREAM_UNREACHABLE: StaticReason = StaticReason::new(
    "upstream-unreachable",
    "the server behind this one could not be reached",
);
const UPSTREAM_FAILED: StaticReason = StaticReason::new(
    "upstream-failed",
    "the server behind this one closed the connection or answered with an invalid response",
);
const UPSTREAM_TIMEOUT: StaticReason = StaticReason::new(
    "upstream-timeout",
    "the server behind this one did not answer in time",
);
const UPSTREAM_421_NOT_RETRIED: StaticReason = StaticReason::new(
    "upstream-421-not-retried",
    "the server behind this one answered 421 Misdirected Request, and the request body was \
     already sent so the request could not be sent again",
);
const UPSTREAM_421_AFTER_RETRY: StaticReason = StaticReason::new(
    "upstream-421-after-retry",
    "the server behind this one answered 421 Misdirected Request, again on a new connection",
);
const REQUEST_BODY_FAILED: StaticReason =
    StaticReason::new("request-body-failed", "the request body could not be read");
const BAD_REQUEST_TARGET: StaticReason = StaticReason::new(
    "bad-request-target",
    "this request cannot be forwarded: only requests for a path are",
);

impl Failure {
    fn from_client(err: &hyper_util::client::legacy::Error) -> Self {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
        while let Some(current) = source {
            if let Some(connect) = current.downcast_ref::<ConnectError>() {
                return Self::Unreachable(connect.to_string());
            }
            source = current.source();
        }
        if err.is_connect() {
            Self::Unreachable(chain(err))
        } else {
            Self::Upstream(chain(err))
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::HeadTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::BodyRead(_) | Self::Target(_) => StatusCode::BAD_REQUEST,
            Self::Unreachable(_)
            | Self::Upstream(_)
            | Self::NotRetried
            | Self::MisdirectedAgain => StatusCode::BAD_GATEWAY,
        }
    }

    fn reason(&self) -> &'static StaticReason {
        match self {
            Self::TooLarge(_) => &BODY_TOO_LARGE,
            Self::Unreachable(_) => &UPSTREAM_UNREACHABLE,
            Self::Upstream(_) => &UPSTREAM_FAILED,
            Self::HeadTimeout(_) => &UPSTREAM_TIMEOUT,
            Self::NotRetried => &UPSTREAM_421_NOT_RETRIED,
            Self::MisdirectedAgain => &UPSTREAM_421_AFTER_RETRY,
            Self::BodyRead(_) => &REQUEST_BODY_FAILED,
            Self::Target(_) => &BAD_REQUEST_TARGET,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge(cause) | Self::Unreachable(cause) | Self::Upstream(cause) => {
                f.write_str(cause)
            }
            Self::HeadTimeout(after) => write!(f, "no response head within {after:?}"),
            Self::NotRetried => f.write_str("421 to a request whose body was streamed"),
            Self::MisdirectedAgain => f.write_str("421 again on a new connection"),
            Self::BodyRead(cause) => write!(f, "reading the request body: {cause}"),
            Self::Target(cause) => f.write_str(cause),
        }
    }
}

/// An error and its causes on one line.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// What the proxy's own answers need of the request, taken before it is consumed.
struct Answer<'a> {
    proxy: &'a Proxy,
    ctx: &'a ForwardContext,
    method: Method,
    version: Version,
    accept: HeaderMap,
}

impl<'a> Answer<'a> {
    fn new<B>(proxy: &'a Proxy, ctx: &'a ForwardContext, request: &Request<B>) -> Self {
        let mut accept = HeaderMap::new();
        for value in request.headers().get_all(header::ACCEPT) {
            accept.append(header::ACCEPT, value.clone());
        }
        Self {
            proxy,
            ctx,
            method: request.method().clone(),
            version: request.version(),
            accept,
        }
    }

    /// The rendered answer to `failure`, logged. `unread`: part of the request body may
    /// still be on an HTTP/1.1 connection, which is then closed after the answer.
    fn failed(&self, failure: &Failure, unread: bool) -> Response<ProxyBody> {
        let status = failure.status();
        let reason = failure.reason();
        let log = |message: &str| {
            tracing::warn!(
                upstream = %self.proxy.upstream,
                vhost = %self.ctx.authority,
                peer = %self.ctx.peer,
                status = status.as_u16(),
                code = reason.code(),
                cause = %failure,
                "{message}"
            );
        };
        match failure {
            Failure::BodyRead(_) | Failure::Target(_) => tracing::debug!(
                vhost = %self.ctx.authority,
                peer = %self.ctx.peer,
                code = reason.code(),
                cause = %failure,
                "request not forwarded"
            ),
            Failure::TooLarge(_) => log("request body too large; not forwarded"),
            _ => log("upstream failed; answered by the proxy"),
        }
        let options = RenderOptions::new()
            .for_request(&self.method, self.version)
            .close_connection(unread);
        render(status, reason, &self.accept, &options).map(ProxyBody::fixed)
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::atomic::AtomicUsize;
    use std::task::{Context, Poll};
    use std::time::Instant;

    use http_body_util::combinators::BoxBody;
    use http_body_util::{Empty, Full};
    use hyper::body::Frame;
    use hyper::service::service_fn;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::mpsc;

    use super::*;

    type UpBody = BoxBody<Bytes, BoxError>;

    /// A test application on loopback, HTTP/1.1 (with upgrades) or h2c, that counts the
    /// connections it accepts.
    struct Upstream {
        addr: SocketAddr,
        connections: Arc<AtomicUsize>,
    }

    impl Upstream {
        async fn start<F, Fut>(handler: F) -> Self
        where
            F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
            Fut: Future<Output = Response<UpBody>> + Send + 'static,
        {
            Self::start_with(false, handler).await
        }

        async fn start_with<F, Fut>(h2: bool, handler: F) -> Self
        where
            F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
            Fut: Future<Output = Response<UpBody>> + Send + 'static,
        {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let connections = Arc::new(AtomicUsize::new(0));
            let counted = connections.clone();
            let handler = Arc::new(handler);
            tokio::spawn(async move {
                while let Ok((tcp, _)) = listener.accept().await {
                    counted.fetch_add(1, Ordering::SeqCst);
                    let handler = handler.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |request| {
                            let response = handler(request);
                            async move { Ok::<_, Infallible>(response.await) }
                        });
                        let io = TokioIo::new(tcp);
                        if h2 {
                            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                                .serve_connection(io, service)
                                .await;
                        } else {
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(io, service)
                                .with_upgrades()
                                .await;
                        }
                    });
                }
            });
            Self { addr, connections }
        }

        fn connections(&self) -> usize {
            self.connections.load(Ordering::SeqCst)
        }

        fn config(&self) -> ProxyConfig {
            ProxyConfig::new(&format!("http://{}", self.addr)).unwrap()
        }
    }

    fn ctx() -> ForwardContext {
        ForwardContext {
            peer: "192.0.2.7:50000".parse().unwrap(),
            authority: "a.test:8443".into(),
            scheme: "https",
            local: "127.0.0.1:8443".parse().unwrap(),
            via: Arc::from("misdirect"),
        }
    }

    fn full(bytes: impl Into<Bytes>) -> UpBody {
        Full::new(bytes.into())
            .map_err(|never| match never {})
            .boxed()
    }

    fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<UpBody> {
        let mut response = Response::new(full(body));
        *response.status_mut() = status;
        response
    }

    fn get(target: &str) -> Request<Empty<Bytes>> {
        Request::get(target).body(Empty::new()).unwrap()
    }

    async fn text(response: Response<ProxyBody>) -> String {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    /// The refusal code of a plain-text answer of the proxy.
    async fn code(response: Response<ProxyBody>) -> String {
        let body = text(response).await;
        body.lines()
            .find_map(|line| line.strip_prefix("Reason: "))
            .unwrap_or_else(|| panic!("no reason in {body:?}"))
            .to_owned()
    }

    fn values(fields: &HeaderMap, name: &str) -> Vec<String> {
        fields
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    /// A body fed by a channel: whatever a producer task sends, as it sends it.
    struct ChannelBody {
        chunks: mpsc::Receiver<Bytes>,
    }

    impl Body for ChannelBody {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            self.chunks
                .poll_recv(cx)
                .map(|chunk| chunk.map(|chunk| Ok(Frame::data(chunk))))
        }
    }

    /// `total` zero bytes in `chunk`-byte pieces, produced only as fast as they are taken.
    fn channel_body(total: usize, chunk: usize) -> ChannelBody {
        let (sender, chunks) = mpsc::channel(1);
        tokio::spawn(async move {
            let piece = Bytes::from(vec![0u8; chunk]);
            let mut left = total;
            while left > 0 {
                let n = left.min(chunk);
                if sender.send(piece.slice(..n)).await.is_err() {
                    return;
                }
                left -= n;
            }
        });
        ChannelBody { chunks }
    }

    /// Counts what a body produces against what the far end has `consumed`, and keeps the
    /// largest difference: the bytes in flight between the two ends.
    struct Counting<B> {
        inner: B,
        produced: u64,
        consumed: Arc<AtomicU64>,
        max_in_flight: Arc<AtomicU64>,
    }

    impl<B: Body<Data = Bytes> + Unpin> Body for Counting<B> {
        type Data = Bytes;
        type Error = B::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
            let frame = std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx));
            if let Some(Ok(data)) = frame.as_ref().map(|f| f.as_ref().map(Frame::data_ref)) {
                let len = data.map_or(0, |d| d.len() as u64);
                self.produced += len;
                let in_flight = self.produced - self.consumed.load(Ordering::SeqCst);
                self.max_in_flight.fetch_max(in_flight, Ordering::SeqCst);
            }
            Poll::Ready(frame)
        }
    }

    const MIB: usize = 1024 * 1024;

    /// Far less than the 50 MB sent: socket buffers on loopback and hyper's own buffers.
    const IN_FLIGHT_BOUND: u64 = 20 * MIB as u64;

    #[tokio::test]
    async fn a_50_mb_upload_is_streamed_not_buffered() {
        const TOTAL: usize = 50 * 1000 * 1000;
        let consumed = Arc::new(AtomicU64::new(0));
        let received = consumed.clone();
        let upstream = Upstream::start(move |request: Request<Incoming>| {
            let received = received.clone();
            async move {
                let mut body = request.into_body();
                while let Some(frame) = body.frame().await {
                    if let Some(data) = frame.unwrap().data_ref() {
                        received.fetch_add(data.len() as u64, Ordering::SeqCst);
                    }
                }
                let total = received.load(Ordering::SeqCst);
                reply(StatusCode::OK, total.to_string())
            }
        })
        .await;
        let proxy = Proxy::new(upstream.config().max_body_bytes(TOTAL as u64)).unwrap();
        let max_in_flight = Arc::new(AtomicU64::new(0));
        let body = Counting {
            inner: channel_body(TOTAL, 64 * 1024),
            produced: 0,
            consumed: consumed.clone(),
            max_in_flight: max_in_flight.clone(),
        };
        let request = Request::post("/upload").body(body).unwrap();
        let response = proxy.forward(request, ctx()).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(text(response).await, TOTAL.to_string());
        let max = max_in_flight.load(Ordering::SeqCst);
        assert!(max < IN_FLIGHT_BOUND, "{max} bytes in flight");
    }

    #[tokio::test]
    async fn a_50_mb_download_is_streamed_not_buffered() {
        const TOTAL: usize = 50 * 1000 * 1000;
        let consumed = Arc::new(AtomicU64::new(0));
        let max_in_flight = Arc::new(AtomicU64::new(0));
        let (counted, max) = (consumed.clone(), max_in_flight.clone());
        let upstream = Upstream::start(move |_request: Request<Incoming>| {
            let body = Counting {
                inner: channel_body(TOTAL, 64 * 1024),
                produced: 0,
                consumed: counted.clone(),
                max_in_flight: max.clone(),
            };
            async move { Response::new(body.map_err(|never| match never {}).boxed()) }
        })
        .await;
        let proxy = Proxy::new(upstream.config()).unwrap();
        let response = proxy.forward(get("/download"), ctx()).await;
        assert_eq!(response.status(), StatusCode::OK);
        let mut body = response.into_body();
        while let Some(frame) = body.frame().await {
            if let Some(data) = frame.unwrap().data_ref() {
                consumed.fetch_add(data.len() as u64, Ordering::SeqCst);
            }
        }
        assert_eq!(consumed.load(Ordering::SeqCst), TOTAL as u64);
        let max = max_in_flight.load(Ordering::SeqCst);
        assert!(max < IN_FLIGHT_BOUND, "{max} bytes in flight");
    }

    /// What the upstream received, and a response with hop-by-hop fields of its own.
    async fn recording_upstream() -> (Upstream, mpsc::UnboundedReceiver<(Uri, Version, HeaderMap)>)
    {
        let (sender, received) = mpsc::unbounded_channel();
        let upstream = Upstream::start(move |request: Request<Incoming>| {
            let _ = sender.send((
                request.uri().clone(),
                request.version(),
                request.headers().clone(),
            ));
            async move {
                let mut response = reply(StatusCode::OK, "ok");
                let fields = response.headers_mut();
                fields.insert("connection", HeaderValue::from_static("x-internal"));
                fields.insert("x-internal", HeaderValue::from_static("1"));
                fields.insert("keep-alive", HeaderValue::from_static("timeout=5"));
                fields.insert("proxy-authenticate", HeaderValue::from_static("Basic"));
                fields.insert("via", HeaderValue::from_static("1.1 app"));
                response
            }
        })
        .await;
        (upstream, received)
    }

    fn spoofing_request() -> Request<Empty<Bytes>> {
        let mut request = get("/path?q=1");
        for (name, value) in [
            ("host", "A.TEST:8443"),
            ("connection", "keep-alive, x-secret, te"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("te", "trailers"),
            ("proxy-authorization", "Basic Zm9vOmJhcg=="),
            ("proxy-connection", "keep-alive"),
            ("x-forwarded-for", "203.0.113.66"),
            ("x-forwarded-host", "evil.test"),
            ("x-forwarded-proto", "http"),
            ("forwarded", "for=203.0.113.66"),
            ("via", "1.0 edge"),
            ("x-kept", "yes"),
        ] {
            request
                .headers_mut()
                .append(name, HeaderValue::from_static(value));
        }
        request
    }

    /// RFC 9110 §7.6.1 (hop-by-hop, Connection options), §7.2 (Host), §7.6.3 (Via),
    /// RFC 7239 §4–§5 (Forwarded); a peer outside trust_forwarded_from cannot forge them.
    #[tokio::test]
    async fn request_head_is_rewritten_and_spoofed_forwarding_fields_removed() {
        let (upstream, mut received) = recording_upstream().await;
        let proxy = Proxy::new(upstream.config()).unwrap();
        let response = proxy.forward(spoofing_request(), ctx()).await;
        assert_eq!(response.status(), StatusCode::OK);

        let (uri, version, fields) = received.recv().await.unwrap();
        assert_eq!(uri, "/path?q=1");
        assert_eq!(version, Version::HTTP_11);
        assert_eq!(values(&fields, "host"), ["a.test:8443"]);
        for gone in [
            "x-secret",
            "keep-alive",
            "proxy-authorization",
            "proxy-connection",
        ] {
            assert!(!fields.contains_key(gone), "{gone} forwarded");
        }
        assert_eq!(values(&fields, "te"), ["trailers"]);
        assert_eq!(values(&fields, "connection"), ["te"]);
        assert_eq!(values(&fields, "x-kept"), ["yes"]);
        assert_eq!(values(&fields, "x-forwarded-for"), ["192.0.2.7"]);
        assert_eq!(values(&fields, "x-forwarded-host"), ["a.test:8443"]);
        assert_eq!(values(&fields, "x-forwarded-proto"), ["https"]);
        assert_eq!(
            values(&fields, "forwarded"),
            ["for=192.0.2.7;by=\"127.0.0.1:8443\";proto=https;host=\"a.test:8443\""]
        );
        assert_eq!(values(&fields, "via"), ["1.0 edge", "1.1 misdirect"]);

        // The response: hop-by-hop and Connection-named fields gone, Via added.
        let fields = response.headers();
        for gone in [
            "connection",
            "x-internal",
            "keep-alive",
            "proxy-authenticate",
        ] {
            assert!(!fields.contains_key(gone), "{gone} returned");
        }
        assert_eq!(values(fields, "via"), ["1.1 app", "1.1 misdirect"]);
        assert_eq!(text(response).await, "ok");
    }

    /// RFC 7239 §4: a trusted proxy's list is kept and ours appended.
    #[tokio::test]
    async fn forwarding_fields_from_a_trusted_peer_are_kept_and_appended_to() {
        let (upstream, mut received) = recording_upstream().await;
        let config = upstream
            .config()
            .trust_forwarded_from(vec!["192.0.2.0/24".parse().unwrap()]);
        let proxy = Proxy::new(config).unwrap();
        let response = proxy.forward(spoofing_request(), ctx()).await;
        assert_eq!(response.status(), StatusCode::OK);
        let (_, _, fields) = received.recv().await.unwrap();
        assert_eq!(
            values(&fields, "x-forwarded-for"),
            ["203.0.113.66, 192.0.2.7"]
        );
        assert_eq!(values(&fields, "x-forwarded-host"), ["evil.test"]);
        assert_eq!(values(&fields, "x-forwarded-proto"), ["http"]);
        assert_eq!(
            values(&fields, "forwarded"),
            [
                "for=203.0.113.66, for=192.0.2.7;by=\"127.0.0.1:8443\";proto=https;host=\"a.test:8443\""
            ]
        );
        // Host is never the client's spelling, trusted or not.
        assert_eq!(values(&fields, "host"), ["a.test:8443"]);
    }

    #[tokio::test]
    async fn forwarded_mode_picks_the_fields() {
        let cases: [(ForwardedMode, &[&str], &[&str]); 3] = [
            (
                ForwardedMode::Rfc7239,
                &["forwarded"],
                &["x-forwarded-for", "x-forwarded-host", "x-forwarded-proto"],
            ),
            (
                ForwardedMode::XForwarded,
                &["x-forwarded-for", "x-forwarded-host", "x-forwarded-proto"],
                &["forwarded"],
            ),
            (
                ForwardedMode::None,
                &[],
                &[
                    "forwarded",
                    "x-forwarded-for",
                    "x-forwarded-host",
                    "x-forwarded-proto",
                ],
            ),
        ];
        for (mode, present, absent) in cases {
            let (upstream, mut received) = recording_upstream().await;
            let proxy = Proxy::new(upstream.config().forwarded(mode)).unwrap();
            proxy.forward(spoofing_request(), ctx()).await;
            let (_, _, fields) = received.recv().await.unwrap();
            for name in present {
                assert_eq!(values(&fields, name).len(), 1, "{mode:?}: {name}");
                assert!(
                    !values(&fields, name)[0].contains("203.0.113.66"),
                    "{mode:?}: {name}"
                );
            }
            for name in absent {
                assert!(!fields.contains_key(*name), "{mode:?}: {name}");
            }
        }
    }

    /// RFC 9113 §8.3.1 and §8.2.3: `:authority` becomes Host; cookies are joined for
    /// HTTP/1.1; Via says the client spoke HTTP/2.
    #[tokio::test]
    async fn an_http2_request_goes_to_an_http1_upstream_with_host_and_one_cookie() {
        let (upstream, mut received) = recording_upstream().await;
        let proxy = Proxy::new(upstream.config()).unwrap();
        let mut request = Request::get("https://a.test:8443/h2?x=1")
            .version(Version::HTTP_2)
            .header("cookie", "a=1")
            .header("cookie", "b=2")
            .body(Empty::<Bytes>::new())
            .unwrap();
        request
            .headers_mut()
            .append("accept", HeaderValue::from_static("*/*"));
        let response = proxy.forward(request, ctx()).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.version(), Version::HTTP_2);
        let (uri, version, fields) = received.recv().await.unwrap();
        assert_eq!(uri, "/h2?x=1");
        assert_eq!(version, Version::HTTP_11);
        assert_eq!(values(&fields, "host"), ["a.test:8443"]);
        assert_eq!(values(&fields, "cookie"), ["a=1; b=2"]);
        assert_eq!(values(&fields, "via"), ["2 misdirect"]);
    }

    /// RFC 9113 §8.3.1: to an HTTP/2 upstream the authority is `:authority`, with no Host.
    #[tokio::test]
    async fn an_h2c_upstream_gets_the_authority_as_authority() {
        let (sender, mut received) = mpsc::unbounded_channel();
        let upstream = Upstream::start_with(true, move |request: Request<Incoming>| {
            let _ = sender.send((request.uri().clone(), request.headers().clone()));
            async move { reply(StatusCode::OK, "h2") }
        })
        .await;
        let proxy = Proxy::new(upstream.config().http2(true)).unwrap();
        for _ in 0..2 {
            let response = proxy.forward(get("/over-h2"), ctx()).await;
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(values(response.headers(), "via"), ["2 misdirect"]);
            assert_eq!(text(response).await, "h2");
        }
        let (uri, fields) = received.recv().await.unwrap();
        assert_eq!(uri.authority().unwrap().as_str(), "a.test:8443");
        assert_eq!(uri.path(), "/over-h2");
        assert!(!fields.contains_key("host"));
        assert_eq!(values(&fields, "via"), ["1.1 misdirect"]);
        // One connection carried both requests.
        assert_eq!(upstream.connections(), 1);
    }

    #[tokio::test]
    async fn an_unreachable_upstream_is_502() {
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        let proxy = Proxy::new(ProxyConfig::new(&format!("http://{addr}")).unwrap()).unwrap();
        let response = proxy.forward(get("/"), ctx()).await;
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(code(response).await, "upstream-unreachable");

        // Negotiated on Accept, as every refusal of this server (RFC 9457).
        let mut request = get("/");
        request.headers_mut().insert(
            header::ACCEPT,
            HeaderValue::from_static("application/problem+json"),
        );
        let response = proxy.forward(request, ctx()).await;
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let json: serde_json::Value = serde_json::from_str(&text(response).await).unwrap();
        assert_eq!(json["status"], 502);
        assert_eq!(json["code"], "upstream-unreachable");
    }

    /// A listener whose accept queue is full drops new SYNs: connecting hangs.
    #[tokio::test]
    async fn a_connect_timeout_is_502() {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(1).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut held = Vec::new();
        while let Ok(Ok(tcp)) =
            tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await
        {
            held.push(tcp);
            assert!(held.len() < 64, "the accept queue never filled");
        }
        let config = ProxyConfig::new(&format!("http://{addr}"))
            .unwrap()
            .connect_timeout(Duration::from_millis(300));
        let proxy = Proxy::new(config).unwrap();
        let started = Instant::now();
        let response = proxy.forward(get("/"), ctx()).await;
        let elapsed = started.elapsed();
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
        assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
        assert_eq!(code(response).await, "upstream-unreachable");
    }

    #[tokio::test]
    async fn a_late_response_head_is_504_at_the_timeout() {
        let upstream = Upstream::start(|_request: Request<Incoming>| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            reply(StatusCode::OK, "too late")
        })
        .await;
        let config = upstream
            .config()
            .response_timeout(Duration::from_millis(300));
        let proxy = Proxy::new(config).unwrap();
        let started = Instant::now();
        let response = proxy.forward(get("/slow"), ctx()).await;
        let elapsed = started.elapsed();
        assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
        assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
        assert_eq!(code(response).await, "upstream-timeout");
    }

    /// RFC 9110 §15.5.14: refused before the upstream is contacted; the connection closes
    /// since the body was not read.
    #[tokio::test]
    async fn a_content_length_over_the_limit_is_413_without_contacting_the_upstream() {
        let upstream =
            Upstream::start(|_request: Request<Incoming>| async { reply(StatusCode::OK, "read") })
                .await;
        let proxy = Proxy::new(upstream.config().max_body_bytes(1000)).unwrap();
        let request = Request::post("/upload")
            .header(header::CONTENT_LENGTH, "5000")
            .body(Full::new(Bytes::from(vec![1u8; 5000])))
            .unwrap();
        let response = proxy.forward(request, ctx()).await;
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(response.headers()[header::CONNECTION], "close");
        assert_eq!(code(response).await, "body-too-large");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(upstream.connections(), 0);
    }

    #[tokio::test]
    async fn a_streamed_body_over_the_limit_is_cut_off_with_413() {
        let upstream = Upstream::start(|request: Request<Incoming>| async move {
            let read = request.into_body().collect().await.is_ok();
            reply(StatusCode::OK, format!("read whole: {read}"))
        })
        .await;
        let proxy = Proxy::new(upstream.config().max_body_bytes(100_000)).unwrap();
        let request = Request::post("/upload")
            .body(channel_body(MIB, 16 * 1024))
            .unwrap();
        let response = proxy.forward(request, ctx()).await;
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(code(response).await, "body-too-large");
    }

    /// RFC 9110 §15.5.20: a 421 is retried on another connection; a small body is sent
    /// again.
    #[tokio::test]
    async fn a_421_is_retried_once_on_a_fresh_connection() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let upstream = Upstream::start(move |request: Request<Incoming>| {
            let call = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                let body = request.into_body().collect().await.unwrap().to_bytes();
                if call == 0 {
                    reply(StatusCode::MISDIRECTED_REQUEST, "not here")
                } else {
                    reply(StatusCode::OK, body)
                }
            }
        })
        .await;
        let proxy = Proxy::new(upstream.config()).unwrap();
        let request = Request::post("/again")
            .header(header::CONTENT_LENGTH, "5")
            .body(Full::new(Bytes::from_static(b"hello")))
            .unwrap();
        let response = proxy.forward(request, ctx()).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(text(response).await, "hello");
        assert_eq!(proxy.retries_421(), 1);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(upstream.connections(), 2);
    }

    #[tokio::test]
    async fn a_421_to_a_streamed_body_is_502_not_retried() {
        // The application reads the body, then refuses: the body has been sent by then.
        let upstream = Upstream::start(|request: Request<Incoming>| async move {
            let _ = request.into_body().collect().await;
            reply(StatusCode::MISDIRECTED_REQUEST, "not here")
        })
        .await;
        let proxy = Proxy::new(upstream.config()).unwrap();
        let request = Request::post("/stream")
            .body(channel_body(4 * MIB, 16 * 1024))
            .unwrap();
        let response = proxy.forward(request, ctx()).await;
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(code(response).await, "upstream-421-not-retried");
        assert_eq!(proxy.retries_421(), 0);
        assert_eq!(upstream.connections(), 1);
    }

    /// RFC 9110 §7.8: an Upgrade passes through, and the two upgraded connections are
    /// joined. The front here is a plain-TCP hyper server, as the TLS one is.
    #[tokio::test]
    async fn an_upgrade_is_passed_through_and_bytes_flow_both_ways() {
        let upstream = Upstream::start(|mut request: Request<Incoming>| async move {
            if request
                .headers()
                .get(header::UPGRADE)
                .is_none_or(|v| v != "echo")
            {
                return reply(StatusCode::BAD_REQUEST, "no upgrade");
            }
            let upgrade = hyper::upgrade::on(&mut request);
            tokio::spawn(async move {
                let mut io = TokioIo::new(upgrade.await.unwrap());
                let mut buf = [0u8; 1024];
                loop {
                    match io.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => io.write_all(&buf[..n]).await.unwrap(),
                    }
                }
            });
            let mut response = reply(StatusCode::SWITCHING_PROTOCOLS, "");
            let fields = response.headers_mut();
            fields.insert(header::UPGRADE, HeaderValue::from_static("echo"));
            fields.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            response
        })
        .await;
        let proxy = Arc::new(Proxy::new(upstream.config()).unwrap());

        let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let front_addr = front.local_addr().unwrap();
        let (tunnels, mut tunnel) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = front.accept().await {
                let proxy = proxy.clone();
                let tunnels = tunnels.clone();
                let service = service_fn(move |request: Request<Incoming>| {
                    let proxy = proxy.clone();
                    let tunnels = tunnels.clone();
                    async move {
                        let mut response = proxy.forward(request, ctx()).await;
                        if let Some(tunnel) = response.extensions_mut().remove::<Tunnel>() {
                            let _ = tunnels.send(tunnel);
                        }
                        Ok::<_, Infallible>(response)
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .with_upgrades(),
                );
            }
        });

        // The client closes: the tunnel ends.
        let client = upgraded_echo(front_addr).await;
        let tunnel_1 = tunnel.recv().await.unwrap();
        drop(client);
        tokio::time::timeout(Duration::from_secs(5), tunnel_1.finished())
            .await
            .expect("the tunnel ends when the client closes");

        // Shutdown aborts a tunnel: the client sees its connection close.
        let mut client = upgraded_echo(front_addr).await;
        let tunnel_2 = tunnel.recv().await.unwrap();
        tunnel_2.abort();
        tokio::time::timeout(Duration::from_secs(5), tunnel_2.finished())
            .await
            .expect("an aborted tunnel ends");
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut rest))
            .await
            .expect("the client's connection is closed");
        assert!(read.is_err() || rest.is_empty(), "{read:?} {rest:?}");
    }

    /// Upgrades a connection to the front to the `echo` protocol and checks that it echoes.
    async fn upgraded_echo(front: SocketAddr) -> TcpStream {
        let mut client = TcpStream::connect(front).await.unwrap();
        client
            .write_all(
                b"GET /chat HTTP/1.1\r\nHost: a.test:8443\r\nConnection: Upgrade\r\n\
                  Upgrade: echo\r\n\r\n",
            )
            .await
            .unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            let read = client.read(&mut byte).await.unwrap();
            assert_eq!(read, 1, "closed in the head");
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 101"), "{head}");
        assert!(head.contains("\r\nupgrade: echo\r\n"), "{head}");
        assert!(head.contains("\r\nconnection: upgrade\r\n"), "{head}");
        assert!(head.contains("\r\nvia: 1.1 misdirect\r\n"), "{head}");
        for message in [&b"ping"[..], b"a longer message"] {
            client.write_all(message).await.unwrap();
            let mut echoed = vec![0u8; message.len()];
            client.read_exact(&mut echoed).await.unwrap();
            assert_eq!(echoed, message);
        }
        client
    }

    /// An HTTP/2 request body streams upstream through `H2RequestBody`: 1 MiB is far more
    /// than a stream's initial window, so it only gets through if capacity is released.
    #[tokio::test]
    async fn an_http2_request_body_streams_with_flow_control() {
        const TOTAL: usize = MIB;
        let received = Arc::new(AtomicU64::new(0));
        let counted = received.clone();
        let upstream = Upstream::start(move |request: Request<Incoming>| {
            let counted = counted.clone();
            async move {
                let bytes = request.into_body().collect().await.unwrap().to_bytes();
                counted.store(bytes.len() as u64, Ordering::SeqCst);
                reply(StatusCode::CREATED, "")
            }
        })
        .await;
        let proxy = Proxy::new(upstream.config()).unwrap();

        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let server = tokio::spawn(async move {
            let mut connection = h2::server::handshake(server_io).await.unwrap();
            let (request, mut respond) = connection.accept().await.unwrap().unwrap();
            tokio::spawn(async move { while connection.accept().await.is_some() {} });
            let (parts, recv) = request.into_parts();
            let request = Request::from_parts(parts, H2RequestBody::new(recv));
            let response = proxy.forward(request, ctx()).await;
            let head = Response::builder()
                .status(response.status())
                .body(())
                .unwrap();
            respond.send_response(head, true).unwrap();
        });

        let (client, connection) = h2::client::handshake(client_io).await.unwrap();
        tokio::spawn(connection);
        let mut client = client.ready().await.unwrap();
        let request = Request::post("https://a.test:8443/h2-upload")
            .body(())
            .unwrap();
        let (response, mut send) = client.send_request(request, false).unwrap();
        let chunk = Bytes::from(vec![7u8; 16 * 1024]);
        for i in 0..TOTAL / chunk.len() {
            send.send_data(chunk.clone(), i + 1 == TOTAL / chunk.len())
                .unwrap();
        }
        let response = response.await.unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        server.await.unwrap();
        assert_eq!(received.load(Ordering::SeqCst), TOTAL as u64);
    }

    /// A TLS upstream on loopback with a self-signed certificate for 127.0.0.1; its
    /// certificate is returned to be given as `ca`.
    async fn tls_upstream() -> (SocketAddr, CertificateDer<'static>) {
        let generated = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
        let cert = generated.cert.der().clone();
        let key =
            rustls::pki_types::PrivateKeyDer::Pkcs8(generated.signing_key.serialize_der().into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key)
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = service_fn(|_request: Request<Incoming>| async {
                        Ok::<_, Infallible>(reply(StatusCode::OK, "over tls"))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        (addr, cert)
    }

    #[tokio::test]
    async fn an_https_upstream_is_verified_against_ca() {
        let (addr, cert) = tls_upstream().await;
        let upstream = format!("https://{addr}");
        let proxy = Proxy::new(ProxyConfig::new(&upstream).unwrap().ca(vec![cert])).unwrap();
        let response = proxy.forward(get("/"), ctx()).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(text(response).await, "over tls");

        // Another CA: the handshake fails, and the upstream counts as unreachable.
        let (_, other) = tls_upstream().await;
        let proxy = Proxy::new(ProxyConfig::new(&upstream).unwrap().ca(vec![other])).unwrap();
        let response = proxy.forward(get("/"), ctx()).await;
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(code(response).await, "upstream-unreachable");
    }

    /// (upstream, error text it must contain)
    const BAD_UPSTREAMS: &[(&str, &str)] = &[
        ("127.0.0.1:3000", "give the scheme"),
        ("ftp://127.0.0.1", "must be http or https"),
        ("h2c://127.0.0.1", "must be http or https"),
        ("http://", "not a URI"),
        ("http://user@127.0.0.1:3000", "user information"),
        (
            "http://127.0.0.1:3000/app",
            "a path or query is not supported",
        ),
        (
            "http://127.0.0.1:3000/?a=b",
            "a path or query is not supported",
        ),
        ("not a uri", "not a URI"),
    ];

    #[test]
    fn bad_upstreams_are_refused_with_the_reason() {
        for &(upstream, why) in BAD_UPSTREAMS {
            let err = ProxyConfig::new(upstream).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Invalid, "{upstream}");
            assert!(err.to_string().contains(why), "{upstream}: {err}");
        }
        let config = ProxyConfig::new("http://[::1]:3000/").unwrap();
        assert_eq!(config.upstream, "http://[::1]:3000/");
    }

    #[tokio::test]
    async fn bad_settings_are_refused_by_the_proxy() {
        let http = || ProxyConfig::new("http://127.0.0.1:3000").unwrap();
        let https = || ProxyConfig::new("https://127.0.0.1:3000").unwrap();
        let cases = [
            (http().connect_timeout(Duration::ZERO), "connect_timeout"),
            (http().response_timeout(Duration::ZERO), "response_timeout"),
            (
                http().ca(vec![CertificateDer::from(vec![1, 2, 3])]),
                "https upstreams only",
            ),
            (https().ca(Vec::new()), "no certificate"),
        ];
        for (config, why) in cases {
            let err = Proxy::new(config).unwrap_err();
            assert!(err.to_string().contains(why), "{why}: {err}");
        }
        let err = Proxy::new(https().ca(vec![CertificateDer::from(vec![1, 2, 3])])).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Certificate, "{err}");
    }

    #[test]
    fn forwarded_modes_parse_from_the_configuration() {
        for (text, mode) in [
            ("rfc7239", ForwardedMode::Rfc7239),
            ("x-forwarded", ForwardedMode::XForwarded),
            ("both", ForwardedMode::Both),
            ("none", ForwardedMode::None),
        ] {
            assert_eq!(text.parse::<ForwardedMode>().unwrap(), mode);
        }
        assert!("Both".parse::<ForwardedMode>().is_err());
        assert_eq!(ForwardedMode::default(), ForwardedMode::Both);
    }
}
