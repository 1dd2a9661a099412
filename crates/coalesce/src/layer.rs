//! `MisdirectLayer`: the policy as a tower layer (feature `tower`).

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use crate::decide::ConnectionContext;
use crate::listener::{Listener, Outcome};
use crate::reason::Reason;
use crate::vhost::VhostId;

/// A tower layer that decides every request with the [`Listener`] core
/// ([`Listener::on_request`]) before the inner service sees it: the same decision, the same
/// responses and the same log line as `misdirect serve`.
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
///   request's [`Explanation`](crate::Explanation) — a `port-not-served` body names the
///   port the request named and the ports the table serves — and the [`Refusal::log`]
///   line (`WARN`, with the reason code, SNI, authority and both virtual hosts).
///
/// [`Refusal::log`]: crate::Refusal::log
///
/// ```
/// use std::sync::Arc;
/// use misdirect_authority::Scheme;
/// use misdirect_certmatch::Identities;
/// use misdirect_coalesce::{Listener, MisdirectLayer, VirtualHost, VirtualHosts};
///
/// let cert = Arc::new(Identities::from_patterns(["a.test".parse()?]));
/// let mut table = VirtualHosts::builder(Scheme::Https);
/// table.add(VirtualHost::new("a", cert).pattern("a.test".parse()?));
/// let layer = MisdirectLayer::new(Arc::new(Listener::new(table.port(443).build()?)));
/// # let _ = layer;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct MisdirectLayer {
    listener: Arc<Listener>,
}

impl MisdirectLayer {
    /// A layer deciding with this listener core (its virtual hosts and render options).
    pub fn new(listener: Arc<Listener>) -> Self {
        Self { listener }
    }
}

impl<S> Layer<S> for MisdirectLayer {
    type Service = MisdirectService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MisdirectService {
            inner,
            listener: self.listener.clone(),
        }
    }
}

/// The service [`MisdirectLayer`] wraps around an inner service.
#[derive(Clone, Debug)]
pub struct MisdirectService<S> {
    inner: S,
    listener: Arc<Listener>,
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

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let (parts, body) = request.into_parts();
        let empty = ConnectionContext::new();
        let conn = parts
            .extensions
            .get::<ConnectionContext>()
            .unwrap_or(&empty);
        match self.listener.on_request(conn, &parts) {
            Outcome::Serve { vhost, warning } => {
                if let Some(warning) = &warning {
                    self.listener.log_refusal(warning, None);
                }
                let mut request = Request::from_parts(parts, body);
                request.extensions_mut().insert(ServedBy {
                    vhost,
                    warning: warning.and_then(|w| w.reason),
                });
                ResponseFuture::inner(self.inner.call(request))
            }
            Outcome::Respond { response, refusal } => {
                self.listener.log_refusal(&refusal, None);
                ResponseFuture::ready(response.map(ResBody::from))
            }
        }
    }
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
