use std::error::Error as StdError;
use std::fmt;

/// What went wrong, for callers to match on.
///
/// ```
/// use misdirect_client::{Error, ErrorKind};
///
/// fn worth_retrying(err: &Error) -> bool {
///     matches!(err.kind(), ErrorKind::Connect | ErrorKind::Timeout | ErrorKind::Http2)
/// }
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request cannot be sent: not an absolute `https` URI, or a host that is not a
    /// valid authority.
    InvalidRequest,
    /// The builder's settings do not make a client (for example a client certificate
    /// rustls refuses).
    Config,
    /// The resolver failed or found no address.
    Resolve,
    /// No address accepted a TCP connection.
    Connect,
    /// The TLS handshake failed (certificate verification included).
    Tls,
    /// The server asked for a client certificate, the client had none to present, and the
    /// server ended the handshake or the connection (RFC 8446 §4.4.2.4).
    ClientCertRequired,
    /// The HTTP/2 connection or stream failed.
    Http2,
    /// The HTTP/1.1 connection failed.
    Http1,
    /// The server answered `421 Misdirected Request` on a connection shared with another
    /// origin, and the request was not sent again because its body was a stream that
    /// cannot be replayed. The origin is marked misdirected on that connection: sending
    /// the request again goes to a connection made for its origin.
    NotRetried,
    /// A connect or request timeout expired.
    Timeout,
    /// Opening a connection would pass the builder's limit of connections per peer.
    TooManyConnections,
}

/// The error of every fallible operation of this crate: an [`ErrorKind`] and what it was
/// about.
///
/// ```
/// use misdirect_client::{Client, ErrorKind};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// let client = Client::builder().build()?;
/// let request = http::Request::get("http://example.com/").body(bytes::Bytes::new())?;
/// let err = client.send(request).await.unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::InvalidRequest);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    context: String,
    source: Option<Box<dyn StdError + Send + Sync>>,
    client_cert_requested: bool,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, context: impl Into<String>) -> Self {
        Self {
            kind,
            context: context.into(),
            source: None,
            client_cert_requested: false,
        }
    }

    pub(crate) fn with_client_cert_requested(mut self, requested: bool) -> Self {
        self.client_cert_requested = requested;
        self
    }

    pub(crate) fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// What kind of failure this is.
    ///
    /// ```
    /// use misdirect_client::{Client, ErrorKind};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let client = Client::builder().build()?;
    /// let request = http::Request::get("/relative").body(bytes::Bytes::new())?;
    /// assert_eq!(client.send(request).await.unwrap_err().kind(), ErrorKind::InvalidRequest);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// For a failed TLS handshake: whether the server asked for a client certificate
    /// before it failed (RFC 8446 §4.3.2) — with one presented, a server that refuses it
    /// fails the handshake with [`ErrorKind::Tls`]. Known only for connections that note it:
    /// those of a client with a certificate, and those of [`Client::connect`](crate::Client::connect).
    ///
    /// ```no_run
    /// # async fn run(client: misdirect_client::Client) {
    /// if let Err(err) = client.connect("https://secure.localhost:8443", Default::default()).await {
    ///     if err.client_cert_requested() {
    ///         eprintln!("the server wanted a client certificate: {err}");
    ///     }
    /// }
    /// # }
    /// ```
    pub fn client_cert_requested(&self) -> bool {
        self.client_cert_requested
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.context)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn StdError + 'static))
    }
}
