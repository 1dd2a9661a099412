use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, Version, header};

use crate::{MediaType, RenderReason, escape};

/// How [`render`] shapes a response; cheap to copy, so keep one per listener and adjust it
/// per request with [`RenderOptions::for_request`].
///
/// ```
/// use http::{Method, Version};
/// use misdirect_response::RenderOptions;
///
/// let listener = RenderOptions::new().name_reason(false);
/// let this_request = listener.for_request(&Method::HEAD, Version::HTTP_2);
/// assert_ne!(listener, this_request);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RenderOptions {
    name_reason: bool,
    close_connection: Option<bool>,
    head: bool,
    version: Version,
}

impl RenderOptions {
    /// The defaults: the body names the reason; HTTP/1.x connections are asked to close
    /// after a 421 but not after other statuses; a GET over HTTP/1.1.
    ///
    /// ```
    /// use misdirect_response::RenderOptions;
    ///
    /// assert_eq!(RenderOptions::new(), RenderOptions::default());
    /// ```
    pub const fn new() -> Self {
        Self {
            name_reason: true,
            close_connection: None,
            head: false,
            version: Version::HTTP_11,
        }
    }

    /// Whether the body names the reason: its [code](RenderReason::code) and
    /// [description](RenderReason::description). On by default, which helps operators and
    /// clients debug a refusal; turn it off to answer every refusal with the same generic
    /// text. Either way no other virtual host is ever named.
    pub const fn name_reason(mut self, yes: bool) -> Self {
        self.name_reason = yes;
        self
    }

    /// Whether to send `Connection: close` (RFC 9112 §9.6) on HTTP/1.x. Unset, it is sent
    /// with 421 only: the client has to open a new connection for the request anyway, and
    /// keeping the misdirected one invites the next request down the same path. Never sent
    /// on HTTP/2 or later, where connection-specific fields are malformed (RFC 9113 §8.2.2).
    pub const fn close_connection(mut self, yes: bool) -> Self {
        self.close_connection = Some(yes);
        self
    }

    /// Whether the request's method is HEAD: the response then has the same header fields,
    /// `Content-Length` included, and an empty body (RFC 9110 §9.3.2).
    pub const fn head(mut self, yes: bool) -> Self {
        self.head = yes;
        self
    }

    /// The request's HTTP version, which the response takes and which decides whether
    /// `Connection: close` may be sent. HTTP/1.1 by default.
    pub const fn version(mut self, version: Version) -> Self {
        self.version = version;
        self
    }

    /// These options with [`head`](Self::head) and [`version`](Self::version) taken from
    /// the request.
    pub fn for_request(self, method: &Method, version: Version) -> Self {
        self.head(*method == Method::HEAD).version(version)
    }
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// Render a refusal with `status` (421 or 400; others get generic text) for a request with
/// `request_headers`, explaining `reason` in the media type the request's `Accept` prefers.
///
/// The representation is chosen by [`MediaType::negotiate`]:
///
/// | media type | body |
/// |---|---|
/// | `application/problem+json` | RFC 9457 object: `type` (`about:blank`), `title` (the status phrase), `status`, `detail` (the description), and the extension member `code` |
/// | `application/json` | `{"error":"Misdirected Request","reason":"<code>","detail":"<description>"}` |
/// | `text/html` | a short page telling a visitor what to do (for 421: reload, a fresh connection will be used) |
/// | `text/plain` | status line, description, code and advice, one per line |
///
/// With [`RenderOptions::name_reason`] off, `code`/`reason` are left out and `detail` is the
/// same generic text for every reason. Every response carries `Content-Type`,
/// `Content-Length`, `Cache-Control: no-store` (a refusal depends on the connection, so no
/// cache may reuse it) and `Vary: Accept`, plus `Connection: close` as
/// [`RenderOptions::close_connection`] says.
///
/// ```
/// use http::{HeaderMap, StatusCode, header};
/// use misdirect_response::{RenderOptions, StaticReason, render};
///
/// let reason = StaticReason::new("missing-host", "request has no Host header");
/// let response = render(StatusCode::BAD_REQUEST, &reason, &HeaderMap::new(), &RenderOptions::new());
/// assert_eq!(response.headers()[header::CONTENT_TYPE], "text/plain; charset=utf-8");
/// assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
/// assert!(response.headers().get(header::CONNECTION).is_none());
/// assert!(std::str::from_utf8(response.body())?.contains("Reason: missing-host"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn render<R>(
    status: StatusCode,
    reason: &R,
    request_headers: &HeaderMap,
    options: &RenderOptions,
) -> Response<Bytes>
where
    R: RenderReason + ?Sized,
{
    let media = MediaType::negotiate(request_headers);
    let named = options.name_reason.then_some(&reason as &dyn RenderReason);
    let body = Body {
        status,
        texts: Texts::for_status(status),
        named,
    }
    .write(media);
    assemble(status, media, Bytes::from(body), options)
}

/// A refusal whose text never changes, rendered once in every media type and answered
/// many times: what [`render`] would answer, without writing or escaping the body again.
/// Build one per reason when the listener is set up; a response then costs its header
/// fields and a reference to the shared body.
///
/// ```
/// use http::{HeaderMap, StatusCode};
/// use misdirect_response::{PreparedRefusal, RenderOptions, StaticReason, render};
///
/// let reason = StaticReason::new("client-cert-required", "the host requires a client certificate");
/// let options = RenderOptions::new();
/// let prepared = PreparedRefusal::new(StatusCode::MISDIRECTED_REQUEST, &reason, &options);
/// let headers = HeaderMap::new();
/// let rendered = render(StatusCode::MISDIRECTED_REQUEST, &reason, &headers, &options);
/// let answered = prepared.respond(&headers, &options);
/// assert_eq!(answered.headers(), rendered.headers());
/// assert_eq!(answered.body(), rendered.body());
/// ```
#[derive(Clone, Debug)]
pub struct PreparedRefusal {
    status: StatusCode,
    /// One body per [`MediaType`], in `MediaType::ALL` order.
    bodies: [Bytes; MediaType::ALL.len()],
}

impl PreparedRefusal {
    /// Renders `reason` with `status` in every media type, naming the reason as `options`
    /// says ([`RenderOptions::name_reason`]; the other options are the request's and come
    /// with [`respond`](Self::respond)).
    pub fn new<R>(status: StatusCode, reason: &R, options: &RenderOptions) -> Self
    where
        R: RenderReason + ?Sized,
    {
        let named = options.name_reason.then_some(&reason as &dyn RenderReason);
        let body = Body {
            status,
            texts: Texts::for_status(status),
            named,
        };
        Self {
            status,
            bodies: MediaType::ALL.map(|media| Bytes::from(body.write(media))),
        }
    }

    /// The status.
    ///
    /// ```
    /// use http::StatusCode;
    /// use misdirect_response::{PreparedRefusal, RenderOptions, StaticReason};
    ///
    /// let reason = StaticReason::new("unknown-host", "this server is not configured for the host");
    /// let prepared = PreparedRefusal::new(StatusCode::MISDIRECTED_REQUEST, &reason, &RenderOptions::new());
    /// assert_eq!(prepared.status(), StatusCode::MISDIRECTED_REQUEST);
    /// ```
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The response to a request with `request_headers`, as [`render`] would give it with
    /// these `options` (the request's [`head`](RenderOptions::head) and
    /// [`version`](RenderOptions::version); the body was named when prepared).
    pub fn respond(&self, request_headers: &HeaderMap, options: &RenderOptions) -> Response<Bytes> {
        let media = MediaType::negotiate(request_headers);
        let body = self.bodies[media.index()].clone();
        assemble(self.status, media, body, options)
    }
}

/// A refusal's response: its header fields around `body`, which HEAD leaves out.
fn assemble(
    status: StatusCode,
    media: MediaType,
    body: Bytes,
    options: &RenderOptions,
) -> Response<Bytes> {
    let close = options
        .close_connection
        .unwrap_or(status == StatusCode::MISDIRECTED_REQUEST)
        && matches!(
            options.version,
            Version::HTTP_09 | Version::HTTP_10 | Version::HTTP_11
        );
    let mut headers = HeaderMap::with_capacity(8);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(media.content_type()),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::VARY, HeaderValue::from_static("Accept"));
    if close {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let body = if options.head { Bytes::new() } else { body };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.version_mut() = options.version;
    *response.headers_mut() = headers;
    response
}

/// The fixed wording for a status.
struct Texts {
    /// The detail used when the reason is not named; a sentence fragment.
    generic: &'static str,
    /// What the client should do, for plain text; a sentence.
    advice: &'static str,
    /// What a visitor should do, for HTML; a sentence.
    visitor: &'static str,
}

impl Texts {
    fn for_status(status: StatusCode) -> Self {
        match status {
            StatusCode::MISDIRECTED_REQUEST => Self {
                generic: "this connection cannot serve the requested host",
                advice: "Retry the request on a new connection.",
                visitor: "Please reload the page: your browser will use a fresh connection \
                          and the page should then load.",
            },
            StatusCode::BAD_REQUEST => Self {
                generic: "the request does not name a valid host",
                advice: "Check the request's host and send it again.",
                visitor: "Please check the address in your browser's address bar and try \
                          again.",
            },
            _ => Self {
                generic: "the server refused the request",
                advice: "",
                visitor: "",
            },
        }
    }
}

struct Body<'r> {
    status: StatusCode,
    texts: Texts,
    named: Option<&'r dyn RenderReason>,
}

impl Body<'_> {
    fn title(&self) -> &'static str {
        self.status.canonical_reason().unwrap_or("Error")
    }

    fn detail(&self) -> &str {
        self.named.map_or(self.texts.generic, |r| r.description())
    }

    fn write(&self, media: MediaType) -> Vec<u8> {
        let named_len = self
            .named
            .map_or(0, |r| r.code().len() + r.description().len());
        match media {
            MediaType::ProblemJson => self.problem_json(Vec::with_capacity(128 + 2 * named_len)),
            MediaType::Json => self.json(Vec::with_capacity(96 + 2 * named_len)),
            MediaType::Html => self.html(Vec::with_capacity(448 + 2 * named_len)),
            MediaType::TextPlain => self.plain(Vec::with_capacity(128 + named_len)),
        }
    }

    /// RFC 9457 §3: `type`, `title`, `status`, `detail`, and the extension member `code`.
    fn problem_json(&self, mut out: Vec<u8>) -> Vec<u8> {
        // `about:blank` (§4.2.1): the status says it all; the title is then the status phrase.
        out.extend_from_slice(br#"{"type":"about:blank","title":""#);
        escape::json(&mut out, self.title());
        out.extend_from_slice(br#"","status":"#);
        out.extend_from_slice(self.status.as_str().as_bytes());
        out.extend_from_slice(br#","detail":""#);
        escape::json(&mut out, self.detail());
        if let Some(reason) = self.named {
            out.extend_from_slice(br#"","code":""#);
            escape::json(&mut out, reason.code());
        }
        out.extend_from_slice(b"\"}");
        out
    }

    fn json(&self, mut out: Vec<u8>) -> Vec<u8> {
        out.extend_from_slice(br#"{"error":""#);
        escape::json(&mut out, self.title());
        if let Some(reason) = self.named {
            out.extend_from_slice(br#"","reason":""#);
            escape::json(&mut out, reason.code());
        }
        out.extend_from_slice(br#"","detail":""#);
        escape::json(&mut out, self.detail());
        out.extend_from_slice(b"\"}");
        out
    }

    fn html(&self, mut out: Vec<u8>) -> Vec<u8> {
        out.extend_from_slice(
            b"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
              <meta name=\"robots\" content=\"noindex\">\n<title>",
        );
        out.extend_from_slice(self.status.as_str().as_bytes());
        out.push(b' ');
        escape::html(&mut out, self.title());
        out.extend_from_slice(b"</title>\n</head>\n<body>\n<h1>");
        escape::html(&mut out, self.title());
        out.extend_from_slice(b"</h1>\n");
        if !self.texts.visitor.is_empty() {
            out.extend_from_slice(b"<p>");
            escape::html(&mut out, self.texts.visitor);
            out.extend_from_slice(b"</p>\n");
        }
        out.extend_from_slice(b"<p>");
        sentence(&mut out, self.detail(), escape::html);
        out.extend_from_slice(b"</p>\n");
        if let Some(reason) = self.named {
            out.extend_from_slice(b"<p>Reason: <code>");
            escape::html(&mut out, reason.code());
            out.extend_from_slice(b"</code></p>\n");
        }
        out.extend_from_slice(b"</body>\n</html>\n");
        out
    }

    fn plain(&self, mut out: Vec<u8>) -> Vec<u8> {
        out.extend_from_slice(self.status.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.title().as_bytes());
        out.push(b'\n');
        sentence(&mut out, self.detail(), escape::plain);
        out.push(b'\n');
        if let Some(reason) = self.named {
            out.extend_from_slice(b"Reason: ");
            escape::plain(&mut out, reason.code());
            out.push(b'\n');
        }
        if !self.texts.advice.is_empty() {
            out.extend_from_slice(self.texts.advice.as_bytes());
            out.push(b'\n');
        }
        out
    }
}

/// Append a description as a sentence: first ASCII letter capitalised, full stop added
/// unless it already ends in punctuation.
fn sentence(out: &mut Vec<u8>, text: &str, escape: fn(&mut Vec<u8>, &str)) {
    let start = out.len();
    escape(out, text);
    let Some(first) = out.get_mut(start) else {
        return;
    };
    first.make_ascii_uppercase();
    if !matches!(out.last(), Some(b'.' | b'!' | b'?')) {
        out.push(b'.');
    }
}
