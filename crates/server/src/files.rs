//! `respond = { dir = … }`: files under a directory, streamed.
//!
//! The request path is resolved here ([`safe_path`], then the real path must stay inside the
//! root), and only a regular file is served: directories map to their `index.html`, and FIFOs,
//! sockets and devices are 404 without being opened. tower-http's `ServeFile` then does the
//! HTTP part — `Range` (206/416), `If-Modified-Since`/`If-Unmodified-Since`, `Last-Modified`,
//! HEAD from metadata only — and reads the file in [`CHUNK`]-byte pieces. We add a strong
//! `ETag` with `If-None-Match`, `If-Match` and `If-Range`, which `ServeFile` lacks.
//!
//! Memory is bounded, whatever the clients do:
//! - a response holds one read buffer and the chunk being sent; over HTTP/2 the chunk goes
//!   out in pieces of the flow-control window the peer grants ([`send_h2`]), and h2 buffers at
//!   most [`H2_SEND_BUFFER`] bytes of a stream; over HTTP/1.1 hyper polls the body only when
//!   its write buffer has room. That is about 64 KiB per response;
//! - at most [`MAX_STREAMING`] file bodies stream at once in the process; past that a GET is
//!   answered `503` with `Retry-After: 1` without opening the file. So file bodies hold at
//!   most about 64 MiB in all.
//!
//! An HTTP/2 stream that gets no window for `send_timeout` is reset (`CANCEL`).
//!
//! [`send_h2`] also sends the responses of `respond = { proxy = … }` ([`Body::proxied`]):
//! an upstream's body is read only as fast as the client's window allows, like a file.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::sync::{Semaphore, SemaphorePermit};
use tower_http::services::ServeFile;
use tower_http::services::fs::ServeFileSystemResponseBody;

use crate::proxy::ProxyBody;

/// The read buffer of one file response, and so the largest piece read at once: one HTTP/2
/// DATA frame at the default frame size.
pub(crate) const CHUNK: usize = 16 * 1024;

/// What h2 may buffer of one stream's body before the socket takes it (h2's default is
/// 400 KiB): a file stream waits for window only while less than this is queued.
pub(crate) const H2_SEND_BUFFER: usize = 2 * CHUNK;

/// File bodies streaming at once in the process; each holds about 64 KiB (see the module
/// notes), so 1024 of them about 64 MiB.
pub(crate) const MAX_STREAMING: usize = 1024;

/// The permits for [`MAX_STREAMING`].
static STREAMING: Semaphore = Semaphore::const_new(MAX_STREAMING);

/// A response body: fixed bytes (fixed bodies, refusals, errors), a file being read, or
/// an upstream's response being forwarded.
///
/// The fixed case is a [`Full`] over shared [`Bytes`]: no copy, no allocation.
pub(crate) enum Body {
    Fixed(Full<Bytes>),
    File(Box<FileBody>),
    Proxied(Box<ProxiedBody>),
}

/// An upstream's response, with what must live as long as it is being sent.
pub(crate) struct ProxiedBody {
    inner: ProxyBody,
    _hold: Option<Box<dyn Send>>,
}

/// A file being streamed, with what must live as long as it does.
pub(crate) struct FileBody {
    inner: ServeFileSystemResponseBody,
    _permit: Option<SemaphorePermit<'static>>,
    _hold: Option<Box<dyn Send>>,
}

impl Body {
    /// A fixed body.
    pub(crate) fn fixed(bytes: Bytes) -> Self {
        Self::Fixed(Full::new(bytes))
    }

    /// The body of a response [`Proxy::forward`](crate::proxy::Proxy::forward) returned.
    pub(crate) fn proxied(body: ProxyBody) -> Self {
        Self::Proxied(Box::new(ProxiedBody {
            inner: body,
            _hold: None,
        }))
    }

    /// Keeps `guard` alive until a file or proxied body is dropped (fully sent or
    /// abandoned); a fixed body drops it at once.
    pub(crate) fn holding(self, guard: impl Send + 'static) -> Self {
        match self {
            Self::File(mut file) => {
                file._hold = Some(Box::new(guard));
                Self::File(file)
            }
            Self::Proxied(mut proxied) => {
                proxied._hold = Some(Box::new(guard));
                Self::Proxied(proxied)
            }
            fixed @ Self::Fixed(_) => fixed,
        }
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fixed(body) => f.debug_tuple("Fixed").field(body).finish(),
            Self::File(_) => f.write_str("File"),
            Self::Proxied(proxied) => f.debug_tuple("Proxied").field(&proxied.inner).finish(),
        }
    }
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            Self::Fixed(body) => Pin::new(body)
                .poll_frame(cx)
                .map(|frame| frame.map(|result| result.map_err(|never| match never {}))),
            Self::File(file) => Pin::new(&mut file.inner).poll_frame(cx),
            Self::Proxied(proxied) => Pin::new(&mut proxied.inner).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Fixed(body) => body.is_end_stream(),
            Self::File(file) => file.inner.is_end_stream(),
            Self::Proxied(proxied) => proxied.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Fixed(body) => body.size_hint(),
            Self::File(file) => file.inner.size_hint(),
            Self::Proxied(proxied) => proxied.inner.size_hint(),
        }
    }
}

/// Serves a file under `root` for GET and HEAD; `index.html` for directories. Paths with
/// `..`, backslashes, NUL or bad percent-encoding are 404, and so is any file whose real
/// path (after symbolic links) leaves `root`, and anything that is not a regular file.
pub(crate) async fn serve(root: &Path, parts: &Parts) -> Response<Body> {
    serve_with(root, parts, &STREAMING).await
}

async fn serve_with(root: &Path, parts: &Parts, streaming: &'static Semaphore) -> Response<Body> {
    if parts.method != Method::GET && parts.method != Method::HEAD {
        let mut response = plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n",
            &parts.method,
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let Some((path, metadata)) = resolve(root, parts.uri.path()).await else {
        return plain(StatusCode::NOT_FOUND, "not found\n", &parts.method);
    };
    let etag = etag(&metadata);
    let mut forwarded = Request::new(());
    *forwarded.method_mut() = parts.method.clone();
    match preconditions(&parts.headers, &etag, forwarded.headers_mut()) {
        Precondition::Serve => {}
        Precondition::Failed => {
            return plain(
                StatusCode::PRECONDITION_FAILED,
                "precondition failed\n",
                &parts.method,
            );
        }
        Precondition::NotModified => {
            let mut response = Response::new(Body::fixed(Bytes::new()));
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            response.headers_mut().insert(header::ETAG, etag);
            return response;
        }
    }
    // HEAD reads metadata only: no permit.
    let permit = if parts.method == Method::GET {
        match streaming.try_acquire() {
            Ok(permit) => Some(permit),
            Err(_) => return busy(&parts.method),
        }
    } else {
        None
    };
    let result = ServeFile::new(&path)
        .with_buf_chunk_size(CHUNK)
        .try_call(forwarded)
        .await;
    let response = match result {
        Ok(response) => response,
        Err(err) => {
            tracing::debug!(path = %path.display(), error = %err, "file not served");
            return plain(StatusCode::NOT_FOUND, "not found\n", &parts.method);
        }
    };
    let (mut head, inner) = response.into_parts();
    if matches!(
        head.status,
        StatusCode::OK | StatusCode::PARTIAL_CONTENT | StatusCode::NOT_MODIFIED
    ) {
        head.headers.insert(header::ETAG, etag);
    }
    if let Some(content_type) = content_type(&path)
        && head.headers.contains_key(header::CONTENT_TYPE)
    {
        head.headers
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    // Only a file being read keeps its permit.
    let streams = parts.method == Method::GET
        && matches!(head.status, StatusCode::OK | StatusCode::PARTIAL_CONTENT);
    let body = Body::File(Box::new(FileBody {
        inner,
        _permit: permit.filter(|_| streams),
        _hold: None,
    }));
    Response::from_parts(head, body)
}

/// The file a request path names: inside `root` after symbolic links, `index.html` for a
/// directory, and a regular file (a FIFO, socket or device is never opened).
async fn resolve(root: &Path, request_path: &str) -> Option<(PathBuf, std::fs::Metadata)> {
    let relative = safe_path(request_path)?;
    let mut path = root.join(relative);
    if tokio::fs::metadata(&path).await.is_ok_and(|m| m.is_dir()) {
        path.push("index.html");
    }
    let (Ok(root), Ok(path)) = (
        tokio::fs::canonicalize(root).await,
        tokio::fs::canonicalize(&path).await,
    ) else {
        return None;
    };
    if !path.starts_with(&root) {
        return None;
    }
    // `canonicalize` resolved every link, so this is the file itself.
    let metadata = tokio::fs::symlink_metadata(&path).await.ok()?;
    metadata.is_file().then_some((path, metadata))
}

/// A strong validator from the file's size and modification time, as most servers make it.
fn etag(metadata: &std::fs::Metadata) -> HeaderValue {
    let modified = metadata
        .modified()
        .ok()
        .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |since| since.as_nanos());
    let tag = format!("\"{modified:x}-{:x}\"", metadata.len());
    // Hex digits, a dash and quotes are always a valid header value.
    HeaderValue::try_from(tag).unwrap_or_else(|_| HeaderValue::from_static("\"0\""))
}

/// What the conditional headers decide before the file is opened.
#[derive(Debug, PartialEq, Eq)]
enum Precondition {
    Serve,
    Failed,
    NotModified,
}

/// RFC 9110 §13.2.2, the order of evaluation, for a GET or HEAD of an existing file: the
/// entity-tag conditions are decided here, and the headers `ServeFile` still has to look
/// at are copied into `forward`. `ServeFile` decides the date conditions and the range.
fn preconditions(headers: &HeaderMap, etag: &HeaderValue, forward: &mut HeaderMap) -> Precondition {
    let etag = etag.as_bytes();
    // Step 1: If-Match (strong comparison), else step 2: If-Unmodified-Since.
    if headers.contains_key(header::IF_MATCH) {
        if !tag_listed(headers, header::IF_MATCH, etag, false) {
            return Precondition::Failed;
        }
    } else if let Some(value) = headers.get(header::IF_UNMODIFIED_SINCE) {
        forward.insert(header::IF_UNMODIFIED_SINCE, value.clone());
    }
    // Step 3: If-None-Match (weak comparison), else step 4: If-Modified-Since.
    if headers.contains_key(header::IF_NONE_MATCH) {
        if tag_listed(headers, header::IF_NONE_MATCH, etag, true) {
            return Precondition::NotModified;
        }
    } else if let Some(value) = headers.get(header::IF_MODIFIED_SINCE) {
        forward.insert(header::IF_MODIFIED_SINCE, value.clone());
    }
    // Step 5: Range, unless If-Range names another representation (§13.1.5). Only an
    // entity-tag can match: a date in If-Range sends the whole file, which is always right.
    // Several ranges would need a multipart body, which `ServeFile` answers 416; the whole
    // file is the answer RFC 9110 §14.2 allows.
    if let Some(range) = headers.get(header::RANGE)
        && !range.as_bytes().contains(&b',')
    {
        let honoured = match headers.get(header::IF_RANGE) {
            None => true,
            Some(validator) => validator.as_bytes() == etag,
        };
        if honoured {
            forward.insert(header::RANGE, range.clone());
        }
    }
    Precondition::Serve
}

/// Whether an `If-Match`/`If-None-Match` list has `*` or `etag` (RFC 9110 §8.8.3.2: `weak`
/// comparison ignores `W/`; strong comparison never matches a weak tag).
fn tag_listed(headers: &HeaderMap, name: header::HeaderName, etag: &[u8], weak: bool) -> bool {
    headers
        .get_all(name)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .any(|tag| {
            if tag == b"*" {
                return true;
            }
            match tag.strip_prefix(b"W/") {
                Some(opaque) => weak && opaque == etag,
                None => tag == etag,
            }
        })
}

/// A `text/plain` answer; HEAD gets its `Content-Length` and no body (RFC 9110 §9.3.2).
fn plain(status: StatusCode, body: &'static str, method: &Method) -> Response<Body> {
    let content = if method == Method::HEAD { "" } else { body };
    let mut response = Response::new(Body::fixed(Bytes::from_static(content.as_bytes())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    response
}

/// 503 when [`MAX_STREAMING`] file bodies are already streaming.
fn busy(method: &Method) -> Response<Body> {
    let mut response = plain(StatusCode::SERVICE_UNAVAILABLE, "busy; retry\n", method);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// Sends `response` on an HTTP/2 stream: the head, then the body in pieces no larger than
/// the flow-control window the peer grants, so that no more than one chunk of it waits in
/// memory. A stream that gets no window for `send_timeout` is reset with `CANCEL`; a body
/// that fails or ends short of its `Content-Length` is reset with `INTERNAL_ERROR`.
/// Trailers (an upstream's; files have none) end the stream.
pub(crate) async fn send_h2(
    mut respond: h2::server::SendResponse<Bytes>,
    response: Response<Body>,
    send_timeout: Duration,
) {
    let (head, body) = response.into_parts();
    let length = head
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    let end = body.is_end_stream() || length == Some(0);
    let mut stream = match respond.send_response(Response::from_parts(head, ()), end) {
        Ok(stream) => stream,
        Err(err) => {
            tracing::debug!(error = %err, "HTTP/2 response not sent");
            return;
        }
    };
    if end {
        return;
    }
    match send_body(&mut stream, body, length, send_timeout).await {
        Ok(()) => {}
        Err(Stop::Stalled) => {
            tracing::debug!(
                stream = ?stream.stream_id(),
                ?send_timeout,
                "HTTP/2 stream got no flow-control window for send_timeout; reset"
            );
            stream.send_reset(h2::Reason::CANCEL);
        }
        Err(Stop::Body(err)) => {
            tracing::debug!(error = %err, "HTTP/2 body failed; reset");
            stream.send_reset(h2::Reason::INTERNAL_ERROR);
        }
        Err(Stop::Short) => {
            tracing::debug!("HTTP/2 body ended before its Content-Length; reset");
            stream.send_reset(h2::Reason::INTERNAL_ERROR);
        }
        Err(Stop::Peer(err)) => tracing::debug!(error = %err, "HTTP/2 body not sent"),
    }
}

/// Why [`send_body`] stopped before the end.
#[derive(Debug)]
enum Stop {
    /// No window for `send_timeout`.
    Stalled,
    /// Reading the body failed.
    Body(io::Error),
    /// The body ended before `Content-Length`.
    Short,
    /// The stream or connection is gone.
    Peer(h2::Error),
}

/// The body loop of [`send_h2`]: one frame of the body at a time, each sent as the window
/// allows; `length` (the `Content-Length`) marks the last piece, which ends the stream, and
/// so do trailers.
async fn send_body<B>(
    stream: &mut h2::SendStream<Bytes>,
    mut body: B,
    length: Option<u64>,
    send_timeout: Duration,
) -> Result<(), Stop>
where
    B: HttpBody<Data = Bytes, Error = io::Error> + Unpin,
{
    let mut remaining = length;
    loop {
        let Some(frame) = body.frame().await else {
            if remaining.is_some_and(|left| left > 0) {
                return Err(Stop::Short);
            }
            return stream.send_data(Bytes::new(), true).map_err(Stop::Peer);
        };
        let mut data = match frame.map_err(Stop::Body)?.into_data() {
            Ok(data) => data,
            Err(frame) => {
                let Ok(trailers) = frame.into_trailers() else {
                    continue; // a kind of frame http-body may add later
                };
                if remaining.is_some_and(|left| left > 0) {
                    return Err(Stop::Short);
                }
                return stream.send_trailers(trailers).map_err(Stop::Peer);
            }
        };
        if let Some(left) = remaining {
            data.truncate(usize::try_from(left).unwrap_or(usize::MAX));
        }
        while !data.is_empty() {
            let granted = capacity(stream, data.len(), send_timeout).await?;
            let piece = data.split_to(granted.min(data.len()));
            let last = match &mut remaining {
                Some(left) => {
                    *left -= piece.len() as u64;
                    *left == 0
                }
                None => false,
            };
            stream.send_data(piece, last).map_err(Stop::Peer)?;
            if last {
                return Ok(());
            }
        }
    }
}

/// Waits until the stream may send at least one byte of `wanted`, for `send_timeout` at most.
async fn capacity(
    stream: &mut h2::SendStream<Bytes>,
    wanted: usize,
    send_timeout: Duration,
) -> Result<usize, Stop> {
    stream.reserve_capacity(wanted);
    let wait = async {
        loop {
            // Capacity left over from an earlier grant is not announced again.
            let available = stream.capacity();
            if available > 0 {
                return Ok(available);
            }
            match poll_fn(|cx| stream.poll_capacity(cx)).await {
                Some(Ok(_)) => {}
                Some(Err(err)) => return Err(Stop::Peer(err)),
                None => return Err(Stop::Peer(h2::Error::from(h2::Reason::STREAM_CLOSED))),
            }
        }
    };
    tokio::time::timeout(send_timeout, wait)
        .await
        .unwrap_or(Err(Stop::Stalled))
}

/// The path under the root that a request path names, or `None` for `..`, backslashes, NUL
/// or bad percent-encoding.
fn safe_path(path: &str) -> Option<PathBuf> {
    let decoded = percent_decode(path)?;
    if decoded.contains('\\') || decoded.contains('\0') {
        return None;
    }
    let mut out = PathBuf::new();
    for component in Path::new(decoded.trim_start_matches('/')).components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}

fn percent_decode(input: &str) -> Option<String> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let text = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(text, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Our type for the common extensions (text with its charset); `ServeFile`'s guess for the
/// rest.
fn content_type(path: &Path) -> Option<&'static str> {
    Some(match path.extension()?.to_str()? {
        "html" | "htm" => "text/html; charset=utf-8",
        "txt" => "text/plain; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "wasm" => "application/wasm",
        "pdf" => "application/pdf",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn safe_paths() {
        const CASES: &[(&str, Option<&str>)] = &[
            ("/", Some("")),
            ("/a/b.html", Some("a/b.html")),
            ("/./a", Some("a")),
            ("/a%20b", Some("a b")),
            ("/../etc/passwd", None),
            ("/a/../../x", None),
            ("/%2e%2e/x", None),
            ("/a%5c..%5cb", None),
            ("/a%00", None),
            ("/%zz", None),
            ("/%4", None),
        ];
        for (input, expected) in CASES {
            assert_eq!(
                safe_path(input).as_deref(),
                expected.map(Path::new),
                "path {input:?}"
            );
        }
    }

    /// RFC 9110 §13.1.1–§13.1.5 and §13.2.2: entity-tag conditions, and which headers are
    /// left for `ServeFile`.
    #[test]
    fn conditional_requests() {
        const TAG: &str = "\"5f-a\"";
        type Case = (
            &'static [(&'static str, &'static str)],
            Precondition,
            &'static [&'static str],
        );
        const CASES: &[Case] = &[
            (&[], Precondition::Serve, &[]),
            (&[("if-none-match", TAG)], Precondition::NotModified, &[]),
            (
                &[("if-none-match", "W/\"5f-a\"")],
                Precondition::NotModified,
                &[],
            ),
            (
                &[("if-none-match", "\"x\", \"5f-a\"")],
                Precondition::NotModified,
                &[],
            ),
            (&[("if-none-match", "*")], Precondition::NotModified, &[]),
            // §13.2.2 step 3: If-None-Match decides; If-Modified-Since is not looked at.
            (
                &[
                    ("if-none-match", "\"x\""),
                    ("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT"),
                ],
                Precondition::Serve,
                &[],
            ),
            (
                &[("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT")],
                Precondition::Serve,
                &["if-modified-since"],
            ),
            (&[("if-match", TAG)], Precondition::Serve, &[]),
            (&[("if-match", "W/\"5f-a\"")], Precondition::Failed, &[]),
            (&[("if-match", "\"x\"")], Precondition::Failed, &[]),
            (
                &[
                    ("if-match", "*"),
                    ("if-unmodified-since", "Sun, 06 Nov 1994 08:49:37 GMT"),
                ],
                Precondition::Serve,
                &[],
            ),
            (
                &[("if-unmodified-since", "Sun, 06 Nov 1994 08:49:37 GMT")],
                Precondition::Serve,
                &["if-unmodified-since"],
            ),
            (&[("range", "bytes=0-1")], Precondition::Serve, &["range"]),
            (&[("range", "bytes=0-1,4-5")], Precondition::Serve, &[]),
            (
                &[("range", "bytes=0-1"), ("if-range", TAG)],
                Precondition::Serve,
                &["range"],
            ),
            (
                &[("range", "bytes=0-1"), ("if-range", "\"x\"")],
                Precondition::Serve,
                &[],
            ),
            (
                &[("range", "bytes=0-1"), ("if-range", "W/\"5f-a\"")],
                Precondition::Serve,
                &[],
            ),
            (
                &[
                    ("range", "bytes=0-1"),
                    ("if-range", "Sun, 06 Nov 1994 08:49:37 GMT"),
                ],
                Precondition::Serve,
                &[],
            ),
        ];
        let etag = HeaderValue::from_static(TAG);
        for (headers, expected, forwarded) in CASES {
            let mut map = HeaderMap::new();
            for (name, value) in *headers {
                map.append(*name, HeaderValue::from_static(value));
            }
            let mut forward = HeaderMap::new();
            assert_eq!(
                preconditions(&map, &etag, &mut forward),
                *expected,
                "{headers:?}"
            );
            let mut names: Vec<&str> = forward.keys().map(|name| name.as_str()).collect();
            names.sort_unstable();
            assert_eq!(names, *forwarded, "{headers:?}");
        }
    }

    #[tokio::test]
    async fn no_permit_is_a_cheap_503() {
        static NONE: Semaphore = Semaphore::const_new(0);
        let root = std::env::temp_dir().join(format!("misdirect-files-503-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("a.txt"), "a\n").unwrap();
        let parts = |method: Method| {
            Request::builder()
                .method(method)
                .uri("/a.txt")
                .body(())
                .unwrap()
                .into_parts()
                .0
        };
        let response = serve_with(&root, &parts(Method::GET), &NONE).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        // HEAD reads no file: it needs no permit.
        let response = serve_with(&root, &parts(Method::HEAD), &NONE).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_LENGTH], "2");
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// A body of `chunks` chunks of [`CHUNK`] bytes (byte `i` is `i % 251`) that counts how
    /// many chunks were read from it.
    struct Counting {
        chunks: usize,
        read: Arc<AtomicUsize>,
    }

    impl HttpBody for Counting {
        type Data = Bytes;
        type Error = io::Error;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
            let n = self.read.fetch_add(1, Ordering::SeqCst);
            if n >= self.chunks {
                return Poll::Ready(None);
            }
            let data: Vec<u8> = (n * CHUNK..(n + 1) * CHUNK)
                .map(|i| (i % 251) as u8)
                .collect();
            Poll::Ready(Some(Ok(Frame::data(Bytes::from(data)))))
        }
    }

    /// An h2 server and client over an in-memory pipe; the server sends a [`Counting`] body
    /// of `chunks` chunks with [`send_body`] on the first request. Returns the client's
    /// response body, the read counter and the server task (its result: what `send_body`
    /// returned).
    async fn pipe(
        chunks: usize,
        window: u32,
        send_timeout: Duration,
    ) -> (
        h2::RecvStream,
        Arc<AtomicUsize>,
        tokio::task::JoinHandle<Result<(), String>>,
    ) {
        let (client_io, server_io) = tokio::io::duplex(1 << 20);
        let read = Arc::new(AtomicUsize::new(0));
        let body = Counting {
            chunks,
            read: read.clone(),
        };
        let server = tokio::spawn(async move {
            let mut connection = h2::server::handshake(server_io).await.unwrap();
            let (_request, mut respond) = connection.accept().await.unwrap().unwrap();
            tokio::spawn(async move { while connection.accept().await.is_some() {} });
            let length = (chunks * CHUNK) as u64;
            let head = Response::builder()
                .header(header::CONTENT_LENGTH, length)
                .body(())
                .unwrap();
            let mut stream = respond.send_response(head, false).unwrap();
            let result = send_body(&mut stream, body, Some(length), send_timeout).await;
            if let Err(Stop::Stalled) = result {
                stream.send_reset(h2::Reason::CANCEL);
            }
            result.map_err(|stop| format!("{stop:?}"))
        });
        let (sender, connection) = h2::client::Builder::new()
            .initial_window_size(window)
            .handshake::<_, Bytes>(client_io)
            .await
            .unwrap();
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let mut sender = sender.ready().await.unwrap();
        let request = Request::get("https://c.test/").body(()).unwrap();
        let (response, _) = sender.send_request(request, true).unwrap();
        let response = response.await.unwrap();
        (response.into_body(), read, server)
    }

    /// Reads what arrives within `wait`, without giving window back.
    async fn drain(body: &mut h2::RecvStream, wait: Duration) -> Vec<u8> {
        let mut got = Vec::new();
        while let Ok(Some(chunk)) = tokio::time::timeout(wait, body.data()).await {
            got.extend_from_slice(&chunk.unwrap());
        }
        got
    }

    #[tokio::test]
    async fn the_sender_sends_no_more_than_the_window_and_reads_no_further_ahead() {
        const WINDOW: u32 = 20_000;
        let (mut body, read, server) = pipe(8, WINDOW, Duration::from_secs(10)).await;
        let got = drain(&mut body, Duration::from_millis(200)).await;
        // RFC 9113 §6.9.1: the window bounds what may be sent (h2 would also fail the
        // connection with FLOW_CONTROL_ERROR if more came); and one chunk beyond what the
        // window took was read from the file.
        assert_eq!(got.len(), WINDOW as usize);
        assert_eq!(read.load(Ordering::SeqCst), 2);
        // Window given back, a little at a time: each grant is used, and the whole body,
        // byte for byte, arrives.
        let mut all = got;
        while all.len() < 8 * CHUNK {
            body.flow_control().release_capacity(5_000).unwrap();
            let more = drain(&mut body, Duration::from_millis(100)).await;
            assert!(
                more.len() <= 5_000,
                "{} bytes for a window of 5000",
                more.len()
            );
            all.extend_from_slice(&more);
            assert!(read.load(Ordering::SeqCst) <= all.len() / CHUNK + 2);
        }
        let expected: Vec<u8> = (0..8 * CHUNK).map(|i| (i % 251) as u8).collect();
        assert!(all == expected, "the body arrived changed");
        assert!(body.is_end_stream());
        assert_eq!(server.await.unwrap(), Ok(()));
    }

    #[tokio::test]
    async fn a_stream_without_window_is_reset_after_send_timeout() {
        let started = tokio::time::Instant::now();
        let (mut body, read, server) = pipe(8, 0, Duration::from_millis(300)).await;
        let err = body.data().await.unwrap().unwrap_err();
        assert_eq!(err.reason(), Some(h2::Reason::CANCEL));
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(3),
            "{elapsed:?}"
        );
        assert_eq!(read.load(Ordering::SeqCst), 1);
        assert_eq!(server.await.unwrap(), Err("Stalled".to_string()));
    }
}
