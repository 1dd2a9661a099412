//! `MisdirectLayer`: the policy as a tower layer (feature `tower`).

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use misdirect_authority::RequestTarget;
use misdirect_response::{RenderOptions, render};
use tower_layer::Layer;
use tower_service::Service;

use crate::decide::{ConnectionContext, Decision, decide};
use crate::reason::Reason;
use crate::vhost::{Explanation, VhostId, VirtualHosts};

/// A tower layer that decides every request with [`decide`] before the inner service sees
/// it.
///
/// The server inserts the connection's [`ConnectionContext`] into each request's
/// extensions (once per connection, cloned per request). A request without one is decided
/// with an empty context — no SNI, no client certificate, and the default virtual host's
/// certificate — so a misconfigured server fails closed wherever client certificates or
/// certificate cover matter.
///
/// - Served requests reach the inner service with a [`ServedBy`] extension naming the
///   virtual host (and the `warn_only` warning, if any).
/// - Refused requests get a 421, 400 or 404 rendered by `misdirect_response::render`
///   (content-negotiated; HTTP/1.1 responses to a 421 carry `Connection: close`) from the
///   request's [`Explanation`] — a `port-not-served` body names the port the request named
///   and the ports the table serves — and a `tracing` event at `WARN` with the reason code,
///   SNI, authority and both virtual hosts.
///
/// ```
/// use std::sync::Arc;
/// use misdirect_authority::Scheme;
/// use misdirect_certmatch::Identities;
/// use misdirect_coalesce::{MisdirectLayer, VirtualHost, VirtualHosts};
///
/// let cert = Arc::new(Identities::from_patterns(["a.test".parse()?]));
/// let mut table = VirtualHosts::builder(Scheme::Https);
/// table.add(VirtualHost::new("a", cert).pattern("a.test".parse()?));
/// let layer = MisdirectLayer::new(Arc::new(table.port(443).build()?));
/// # let _ = layer;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct MisdirectLayer {
    vhosts: Arc<VirtualHosts>,
    options: RenderOptions,
}

impl MisdirectLayer {
    /// A layer deciding with these virtual hosts and the default render options.
    pub fn new(vhosts: Arc<VirtualHosts>) -> Self {
        Self {
            vhosts,
            options: RenderOptions::new(),
        }
    }

    /// Uses these render options (method and version are taken from each request).
    pub fn render_options(mut self, options: RenderOptions) -> Self {
        self.options = options;
        self
    }
}

impl<S> Layer<S> for MisdirectLayer {
    type Service = MisdirectService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MisdirectService {
            inner,
            vhosts: self.vhosts.clone(),
            options: self.options,
        }
    }
}

/// The service [`MisdirectLayer`] wraps around an inner service.
#[derive(Clone, Debug)]
pub struct MisdirectService<S> {
    inner: S,
    vhosts: Arc<VirtualHosts>,
    options: RenderOptions,
}

/// Inserted into a served request's extensions: which virtual host serves it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServedBy {
    vhost: VhostId,
    warning: Option<Reason>,
}

impl ServedBy {
    /// The virtual host chosen for the request.
    pub fn vhost(&self) -> VhostId {
        self.vhost
    }

    /// Under `warn_only`: the reason the policy would have refused the request for.
    pub fn warning(&self) -> Option<Reason> {
        self.warning
    }
}

impl<S, B, ResBody> Service<Request<B>> for MisdirectService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    ResBody: From<Bytes>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let empty = ConnectionContext::new();
        let conn = request
            .extensions()
            .get::<ConnectionContext>()
            .unwrap_or(&empty);
        let target = RequestTarget::from_request(&request);
        let decision = match &target {
            Ok(target) => decide(&self.vhosts, conn, target),
            Err(e) => Decision::bad_request(e),
        };
        if let Some(reason) = decision.reason() {
            log_refusal(
                &self.vhosts,
                conn,
                &request,
                target.as_ref().ok(),
                decision,
                reason,
            );
        }
        match decision {
            Decision::Serve { vhost, warning } => {
                request.extensions_mut().insert(ServedBy { vhost, warning });
                ResponseFuture::inner(self.inner.call(request))
            }
            refused => {
                let options = self
                    .options
                    .for_request(request.method(), request.version());
                let response = match refused.reason() {
                    Some(reason) => {
                        let explanation = match &target {
                            Ok(target) => Explanation::new(&self.vhosts, reason, target),
                            Err(_) => Explanation::from(reason),
                        };
                        // Invariant: every refusal but NotFound has a reason with a status.
                        render(reason.status(), &explanation, request.headers(), &options)
                    }
                    None => render(
                        http::StatusCode::NOT_FOUND,
                        &misdirect_response::StaticReason::new("not-found", "no such host"),
                        request.headers(),
                        &options,
                    ),
                };
                ResponseFuture::ready(response.map(ResBody::from))
            }
        }
    }
}

fn log_refusal<B>(
    vhosts: &VirtualHosts,
    conn: &ConnectionContext,
    request: &Request<B>,
    target: Option<&RequestTarget>,
    decision: Decision,
    reason: Reason,
) {
    let name = |id: Option<VhostId>| id.and_then(|v| vhosts.get(v)).map(|v| v.name().to_owned());
    let target_vhost = target.and_then(|t| vhosts.resolve(t.host()));
    let authority = match target {
        Some(t) => t.authority().to_string(),
        None => request
            .uri()
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_default(),
    };
    let served = matches!(decision, Decision::Serve { .. });
    tracing::warn!(
        reason = reason.code(),
        served,
        sni = conn.sni_name().map(|n| n.as_str()),
        authority = %authority,
        presented_vhost = name(conn.presented_vhost()).as_deref(),
        target_vhost = name(target_vhost).as_deref(),
        "{}: {}",
        if served { "would refuse (warn_only)" } else { "refused" },
        reason,
    );
}

pin_project_lite::pin_project! {
    /// The future of [`MisdirectService`]: the inner service's, or a ready refusal.
    #[derive(Debug)]
    pub struct ResponseFuture<F, ResBody> {
        #[pin]
        state: State<F, ResBody>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    #[derive(Debug)]
    enum State<F, ResBody> {
        Inner { #[pin] future: F },
        Ready { response: Option<Response<ResBody>> },
    }
}

impl<F, ResBody> ResponseFuture<F, ResBody> {
    fn inner(future: F) -> Self {
        Self {
            state: State::Inner { future },
        }
    }

    fn ready(response: Response<ResBody>) -> Self {
        Self {
            state: State::Ready {
                response: Some(response),
            },
        }
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F, ResBody>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<ResBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Inner { future } => future.poll(cx),
            StateProj::Ready { response } => {
                // Invariant: a Ready future is polled to completion once.
                Poll::Ready(Ok(response.take().expect("polled after completion")))
            }
        }
    }
}
