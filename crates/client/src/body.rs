use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};

use crate::{Error, ErrorKind};

/// The error type a streaming request body may fail with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

type BoxBody = Pin<Box<dyn http_body::Body<Data = Bytes, Error = BoxError> + Send + 'static>>;

/// A request body: whole bytes, which can be sent again after a `421 Misdirected Request`
/// or a refused stream, or a stream of frames, which is sent once.
///
/// [`Client::send`](crate::Client::send) takes anything that converts into one: `Bytes`,
/// `String`, `Vec<u8>`, `&'static str`, `&'static [u8]` and `()` (no body) are whole bodies;
/// [`RequestBody::streaming`] wraps any [`http_body::Body`].
///
/// ```
/// use misdirect_client::RequestBody;
///
/// assert!(RequestBody::from("hello").is_replayable());
/// assert!(RequestBody::empty().is_replayable());
/// let streamed = RequestBody::streaming(http_body_util::Full::new(bytes::Bytes::from("hi")));
/// assert!(!streamed.is_replayable());
/// ```
pub struct RequestBody {
    kind: Kind,
}

enum Kind {
    Full(Bytes),
    /// `None` once the stream was handed to a connection.
    Streaming(Option<BoxBody>),
}

impl RequestBody {
    /// No body.
    ///
    /// ```
    /// assert!(misdirect_client::RequestBody::empty().is_replayable());
    /// ```
    pub fn empty() -> Self {
        Self::full(Bytes::new())
    }

    /// A whole body, sent again as it is when a request is retried.
    ///
    /// ```
    /// let body = misdirect_client::RequestBody::full("name=value");
    /// assert!(body.is_replayable());
    /// ```
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        Self {
            kind: Kind::Full(bytes.into()),
        }
    }

    /// A body read frame by frame as the connection's flow control allows (RFC 9113
    /// §6.9), trailers included. It is sent once: after a 421 on a connection shared with
    /// another origin the request is not retried and [`Client::send`](crate::Client::send)
    /// fails with [`ErrorKind::NotRetried`].
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http_body_util::{BodyExt, Full};
    ///
    /// let body = Full::new(Bytes::from_static(b"chunk")).map_err(|never| match never {});
    /// let body = misdirect_client::RequestBody::streaming(body);
    /// assert!(!body.is_replayable());
    /// ```
    pub fn streaming<B>(body: B) -> Self
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        use http_body_util::BodyExt;
        Self {
            kind: Kind::Streaming(Some(Box::pin(body.map_err(Into::into)))),
        }
    }

    /// Whether the body can be sent again: a whole body can, a stream cannot.
    ///
    /// ```
    /// assert!(misdirect_client::RequestBody::from(vec![1, 2, 3]).is_replayable());
    /// ```
    pub fn is_replayable(&self) -> bool {
        matches!(self.kind, Kind::Full(_))
    }

    /// A body from an attempt that never went out, to be sent elsewhere.
    pub(crate) fn from_outgoing(outgoing: Outgoing) -> Self {
        match outgoing {
            Outgoing::Full(bytes) => Self::full(bytes.unwrap_or_default()),
            Outgoing::Streaming(stream) => Self {
                kind: Kind::Streaming(Some(stream)),
            },
        }
    }

    /// What to send on one attempt: the whole body again, or the stream the first time;
    /// `None` when the stream was already handed out.
    pub(crate) fn take(&mut self) -> Option<Outgoing> {
        match &mut self.kind {
            Kind::Full(bytes) => Some(Outgoing::Full(Some(bytes.clone()))),
            Kind::Streaming(stream) => stream.take().map(Outgoing::Streaming),
        }
    }

    /// Whether the request ends with its head: an empty whole body, a stream that says
    /// it is over, or a stream already handed out.
    pub(crate) fn is_end(&self) -> bool {
        match &self.kind {
            Kind::Full(bytes) => bytes.is_empty(),
            Kind::Streaming(Some(stream)) => stream.is_end_stream(),
            Kind::Streaming(None) => true,
        }
    }

    /// Whether a stream was handed out, so the body cannot be sent again.
    pub(crate) fn is_spent(&self) -> bool {
        matches!(self.kind, Kind::Streaming(None))
    }
}

impl fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Full(bytes) => f.debug_tuple("Full").field(&bytes.len()).finish(),
            Kind::Streaming(stream) => f
                .debug_tuple("Streaming")
                .field(&if stream.is_some() { "unsent" } else { "sent" })
                .finish(),
        }
    }
}

impl From<Bytes> for RequestBody {
    fn from(bytes: Bytes) -> Self {
        Self::full(bytes)
    }
}

impl From<String> for RequestBody {
    fn from(text: String) -> Self {
        Self::full(text)
    }
}

impl From<Vec<u8>> for RequestBody {
    fn from(bytes: Vec<u8>) -> Self {
        Self::full(bytes)
    }
}

impl From<&'static str> for RequestBody {
    fn from(text: &'static str) -> Self {
        Self::full(text)
    }
}

impl From<&'static [u8]> for RequestBody {
    fn from(bytes: &'static [u8]) -> Self {
        Self::full(bytes)
    }
}

impl From<()> for RequestBody {
    fn from((): ()) -> Self {
        Self::empty()
    }
}

/// One attempt's body, as an [`http_body::Body`] for HTTP/1.1 and pumped by hand onto
/// HTTP/2 streams.
pub(crate) enum Outgoing {
    Full(Option<Bytes>),
    Streaming(BoxBody),
}

impl fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(bytes) => f
                .debug_tuple("Full")
                .field(&bytes.as_ref().map(Bytes::len))
                .finish(),
            Self::Streaming(_) => f.write_str("Streaming"),
        }
    }
}

impl Outgoing {
    /// Whether nothing at all is to be sent (the request ends with its head).
    pub(crate) fn is_end(&self) -> bool {
        match self {
            Self::Full(bytes) => bytes.as_ref().is_none_or(Bytes::is_empty),
            Self::Streaming(body) => body.is_end_stream(),
        }
    }
}

impl http_body::Body for Outgoing {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Self::Full(bytes) => Poll::Ready(
                bytes
                    .take()
                    .filter(|b| !b.is_empty())
                    .map(|b| Ok(Frame::data(b))),
            ),
            Self::Streaming(body) => body.as_mut().poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.is_end()
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Self::Streaming(body) => body.size_hint(),
        }
    }
}

/// A response body as it arrives: from an HTTP/2 stream or an HTTP/1.1 connection.
///
/// [`collect`](Self::collect) reads it whole. `Body` is also an [`http_body::Body`], for
/// reading it frame by frame (`http_body_util::BodyExt::frame`); on HTTP/2 the flow-control
/// window is given back as each frame is read (RFC 9113 §6.9).
///
/// ```no_run
/// # async fn run(client: misdirect_client::Client) -> Result<(), Box<dyn std::error::Error>> {
/// let response = client.send(http::Request::get("https://a.localhost/").body(())?).await?;
/// let body: bytes::Bytes = response.into_body().collect().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Body {
    inner: Incoming,
}

#[derive(Debug)]
enum Incoming {
    H2 {
        stream: h2::RecvStream,
        data_done: bool,
    },
    H1(hyper::body::Incoming),
}

impl Body {
    pub(crate) fn h2(stream: h2::RecvStream) -> Self {
        Self {
            inner: Incoming::H2 {
                stream,
                data_done: false,
            },
        }
    }

    pub(crate) fn h1(body: hyper::body::Incoming) -> Self {
        Self {
            inner: Incoming::H1(body),
        }
    }

    /// Reads the whole body (its trailers, if any, are dropped).
    ///
    /// ```no_run
    /// # async fn run(response: http::Response<misdirect_client::Body>) -> Result<(), misdirect_client::Error> {
    /// let text = response.into_body().collect().await?;
    /// println!("{}", String::from_utf8_lossy(&text));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn collect(self) -> Result<Bytes, Error> {
        use http_body_util::BodyExt;
        let mut body = self;
        let mut out = BytesMut::new();
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                out.extend_from_slice(&data);
            }
        }
        Ok(out.freeze())
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        fn reading(what: &'static str) -> impl FnOnce(h2::Error) -> Error {
            move |err| Error::new(ErrorKind::Http2, what).with_source(err)
        }
        match &mut self.get_mut().inner {
            Incoming::H2 { stream, data_done } => {
                if !*data_done {
                    match ready!(stream.poll_data(cx)) {
                        Some(Ok(chunk)) => {
                            // Releasing what was read cannot fail for a stream still open;
                            // a reset stream is reported by the next poll.
                            let _ = stream.flow_control().release_capacity(chunk.len());
                            return Poll::Ready(Some(Ok(Frame::data(chunk))));
                        }
                        Some(Err(err)) => {
                            return Poll::Ready(Some(Err(reading("reading a response body")(err))));
                        }
                        None => *data_done = true,
                    }
                }
                match ready!(stream.poll_trailers(cx)) {
                    Ok(Some(trailers)) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
                    Ok(None) => Poll::Ready(None),
                    Err(err) => Poll::Ready(Some(Err(reading("reading response trailers")(err)))),
                }
            }
            Incoming::H1(body) => Pin::new(body).poll_frame(cx).map_err(|err| {
                Error::new(ErrorKind::Http1, "reading a response body").with_source(err)
            }),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Incoming::H2 { stream, .. } => stream.is_end_stream(),
            Incoming::H1(body) => body.is_end_stream(),
        }
    }
}

/// Sends `body` on an HTTP/2 stream as the peer's flow-control window opens, then its
/// trailers or the end of the stream. A failing body resets the stream (`CANCEL`).
pub(crate) async fn pump_h2(mut body: Outgoing, mut send: h2::SendStream<Bytes>) {
    use http_body_util::BodyExt;
    loop {
        let frame = match body.frame().await {
            None => {
                let _ = send.send_data(Bytes::new(), true);
                return;
            }
            Some(Err(_)) => {
                send.send_reset(h2::Reason::CANCEL);
                return;
            }
            Some(Ok(frame)) => frame,
        };
        let frame = match frame.into_data() {
            Ok(mut data) => {
                while !data.is_empty() {
                    send.reserve_capacity(data.len());
                    let granted = match std::future::poll_fn(|cx| send.poll_capacity(cx)).await {
                        Some(Ok(granted)) if granted > 0 => granted,
                        Some(Ok(_)) => continue,
                        // The stream was reset or the connection ended.
                        _ => return,
                    };
                    let chunk = data.split_to(granted.min(data.len()));
                    if send.send_data(chunk, false).is_err() {
                        return;
                    }
                }
                continue;
            }
            Err(frame) => frame,
        };
        if let Ok(trailers) = frame.into_trailers() {
            let _ = send.send_trailers(trailers);
            return;
        }
    }
}
