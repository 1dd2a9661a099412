//! Bodies: the response body [`Proxy::forward`](super::Proxy::forward) returns, the request
//! body it sends upstream, and [`H2RequestBody`] for requests received over HTTP/2.
//!
//! Nothing here buffers a streamed body: each frame is handed on when the other side polls
//! for the next one, so back-pressure goes all the way through (hyper polls a body only when
//! its write buffer has room, and h2 only grants window for what was released).

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::Full;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::sync::watch;

/// The error type request bodies are boxed to.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A response from [`Proxy::forward`](super::Proxy::forward): the upstream's body, streamed
/// as the client reads it, or the fixed body of an error the proxy answered itself.
pub(crate) struct ProxyBody {
    kind: Kind,
}

enum Kind {
    Fixed(Full<Bytes>),
    Upstream(Incoming),
}

impl ProxyBody {
    pub(super) fn fixed(bytes: Bytes) -> Self {
        Self {
            kind: Kind::Fixed(Full::new(bytes)),
        }
    }

    pub(super) fn upstream(body: Incoming) -> Self {
        Self {
            kind: Kind::Upstream(body),
        }
    }
}

impl fmt::Debug for ProxyBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Fixed(body) => f.debug_tuple("Fixed").field(body).finish(),
            Kind::Upstream(body) => f.debug_tuple("Upstream").field(body).finish(),
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match &mut self.get_mut().kind {
            Kind::Fixed(body) => Pin::new(body)
                .poll_frame(cx)
                .map(|frame| frame.map(|result| result.map_err(|never| match never {}))),
            // The upstream broke off (reset, closed early, the request body over its
            // limit): the client's response is aborted in turn.
            Kind::Upstream(body) => Pin::new(body)
                .poll_frame(cx)
                .map(|frame| frame.map(|result| result.map_err(io::Error::other))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Fixed(body) => body.is_end_stream(),
            Kind::Upstream(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Fixed(body) => body.size_hint(),
            Kind::Upstream(body) => body.size_hint(),
        }
    }
}

/// A request body received on an HTTP/2 stream, as an [`http_body::Body`](Body), for
/// [`Proxy::forward`](super::Proxy::forward).
///
/// Each DATA frame's bytes are released to h2's flow control when they are handed on, so
/// the client may send more only as fast as the upstream takes it: at most one stream
/// window is in flight.
///
/// ```text
/// let (parts, recv) = request.into_parts();
/// let request = http::Request::from_parts(parts, H2RequestBody::new(recv));
/// let response = proxy.forward(request, ctx).await;
/// ```
pub(crate) struct H2RequestBody {
    stream: h2::RecvStream,
    data_done: bool,
}

impl H2RequestBody {
    /// The body of the stream `stream` is the receiving half of.
    pub(crate) fn new(stream: h2::RecvStream) -> Self {
        Self {
            stream,
            data_done: false,
        }
    }
}

impl fmt::Debug for H2RequestBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("H2RequestBody")
            .field("stream", &self.stream)
            .field("data_done", &self.data_done)
            .finish()
    }
}

impl Body for H2RequestBody {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        if !self.data_done {
            match ready!(self.stream.poll_data(cx)) {
                Some(Ok(data)) => {
                    // Failing only when the stream is already gone, which the next poll
                    // reports.
                    let _ = self.stream.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(err)) => return Poll::Ready(Some(Err(err))),
                None => self.data_done = true,
            }
        }
        match ready!(self.stream.poll_trailers(cx)) {
            Ok(Some(trailers)) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Ok(None) => Poll::Ready(None),
            Err(err) => Poll::Ready(Some(Err(err))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.stream.is_end_stream()
    }
}

/// The request body sent upstream.
pub(super) struct UpstreamBody {
    kind: Upstream,
}

enum Upstream {
    /// Held whole, so that it can be sent again (a retry after `421`).
    Buffered(Option<Bytes>, Option<HeaderMap>),
    Streamed(Box<Streamed>),
}

/// A body passed through as it arrives, cut off past `max` bytes.
struct Streamed {
    inner: UnsyncBoxBody<Bytes, BoxError>,
    sent: u64,
    max: u64,
    /// Set when the body went over `max`.
    over: Arc<AtomicBool>,
    /// Set to `true` when the last frame was handed on.
    done: watch::Sender<bool>,
}

/// What the proxy watches of a streamed body: it went over its limit; it was sent whole.
pub(super) struct StreamWatch {
    pub(super) over: Arc<AtomicBool>,
    pub(super) done: watch::Receiver<bool>,
}

impl UpstreamBody {
    /// A body sent from memory, replayable by [`replay`](Self::replay).
    pub(super) fn buffered(data: Bytes, trailers: Option<HeaderMap>) -> Self {
        let data = (!data.is_empty()).then_some(data);
        Self {
            kind: Upstream::Buffered(data, trailers),
        }
    }

    /// A body streamed from `inner`, failing once more than `max` bytes went through.
    pub(super) fn streamed(inner: UnsyncBoxBody<Bytes, BoxError>, max: u64) -> (Self, StreamWatch) {
        let over = Arc::new(AtomicBool::new(false));
        let (done, watch) = watch::channel(false);
        let body = Self {
            kind: Upstream::Streamed(Box::new(Streamed {
                inner,
                sent: 0,
                max,
                over: over.clone(),
                done,
            })),
        };
        (body, StreamWatch { over, done: watch })
    }

    /// The same body again, when it was buffered.
    pub(super) fn replay(&self) -> Option<Self> {
        match &self.kind {
            Upstream::Buffered(data, trailers) => Some(Self {
                kind: Upstream::Buffered(data.clone(), trailers.clone()),
            }),
            Upstream::Streamed(_) => None,
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.get_mut().kind {
            Upstream::Buffered(data, trailers) => Poll::Ready(match data.take() {
                Some(data) => Some(Ok(Frame::data(data))),
                None => trailers
                    .take()
                    .map(|trailers| Ok(Frame::trailers(trailers))),
            }),
            Upstream::Streamed(streamed) => {
                let frame = ready!(Pin::new(&mut streamed.inner).poll_frame(cx));
                match &frame {
                    Some(Ok(frame)) => {
                        if let Some(data) = frame.data_ref() {
                            streamed.sent = streamed.sent.saturating_add(data.len() as u64);
                            if streamed.sent > streamed.max {
                                streamed.over.store(true, Ordering::Release);
                                return Poll::Ready(Some(Err(Box::new(BodyTooLarge))));
                            }
                        }
                        if streamed.inner.is_end_stream() {
                            streamed.done.send_replace(true);
                        }
                    }
                    None => {
                        streamed.done.send_replace(true);
                    }
                    Some(Err(_)) => {}
                }
                Poll::Ready(frame)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Upstream::Buffered(data, trailers) => data.is_none() && trailers.is_none(),
            Upstream::Streamed(streamed) => streamed.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Upstream::Buffered(data, _) => {
                SizeHint::with_exact(data.as_ref().map_or(0, |data| data.len() as u64))
            }
            Upstream::Streamed(streamed) => streamed.inner.size_hint(),
        }
    }
}

/// The request body went over `max_body_bytes`.
#[derive(Debug)]
pub(super) struct BodyTooLarge;

impl fmt::Display for BodyTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the request body is over max_body_bytes")
    }
}

impl std::error::Error for BodyTooLarge {}
