//! Connections opened by hand, outside the pool: for tools that test servers, like
//! `misdirect probe`, which send requests for any authority on a connection made for
//! another and want to see what the handshake found.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, Response};
use misdirect_authority::{Host, Origin};
use tokio::sync::Mutex as AsyncMutex;

use crate::client::{Conn, H1Conn, Opened, Opening, h1_request, lock, origin_of};
use crate::{Body, Client, ConnectionInfo, Error, ErrorKind, RequestBody};

/// How [`Client::connect`] opens a connection.
///
/// ```
/// use misdirect_client::ConnectOptions;
///
/// let options = ConnectOptions::new()
///     .addr("127.0.0.1:8443".parse()?)
///     .without_sni()
///     .dangerous_record_verification();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct ConnectOptions {
    addr: Option<SocketAddr>,
    without_sni: bool,
    record_verification: bool,
}

impl ConnectOptions {
    /// Resolve the origin's host, send it as SNI, and fail the handshake on a certificate
    /// the client's trust anchors do not verify for it.
    ///
    /// ```
    /// let options = misdirect_client::ConnectOptions::new();
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Connect to this address instead of resolving the origin's host.
    ///
    /// ```
    /// let options = misdirect_client::ConnectOptions::new().addr("192.0.2.7:443".parse()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.addr = Some(addr);
        self
    }

    /// Send no SNI (RFC 6066 §3); the certificate is still verified for the origin's host.
    /// What a server does for a client that names no host is then visible.
    ///
    /// ```
    /// let options = misdirect_client::ConnectOptions::new().without_sni();
    /// ```
    pub fn without_sni(mut self) -> Self {
        self.without_sni = true;
        self
    }

    /// Complete the handshake whatever the certificate verification says, and keep its
    /// answer in [`ConnectionInfo::verification`]. The handshake signatures are still
    /// checked, so the server does hold the certificate's key; but a certificate that
    /// failed verification authenticates nothing: use such a connection to look at a
    /// server, never to trust it with data. Such a connection never resumes a TLS session
    /// (rustls resumes only under the verifier that verified it), so every one of them
    /// reports a verification of its own.
    ///
    /// ```
    /// let options = misdirect_client::ConnectOptions::new().dangerous_record_verification();
    /// ```
    pub fn dangerous_record_verification(mut self) -> Self {
        self.record_verification = true;
        self
    }
}

/// A connection opened by hand with [`Client::connect`]: outside the pool, it carries
/// whatever it is given — requests for any authority, with no reuse rule, no 421 retry and
/// no limit per peer. Made for tools that test what a server does with a request that
/// should not have come on this connection; clients that want requests to reach their
/// origin use [`Client::send`].
///
/// ```no_run
/// # async fn run(client: misdirect_client::Client) -> Result<(), Box<dyn std::error::Error>> {
/// let conn = client.connect("https://a.localhost:8443", Default::default()).await?;
/// conn.ping().await?; // the server's ORIGIN frame, if it sent one, has been read
/// println!("ORIGIN set: {:?}", conn.origin_set());
/// // A request for another authority on a's connection: does the server answer 421?
/// let response = conn.send(http::Request::get("https://secure.localhost:8443/").body(())?).await?;
/// println!("{}", response.status());
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Connection {
    client: Client,
    info: ConnectionInfo,
    transport: Transport,
}

#[derive(Debug)]
enum Transport {
    H2(Arc<Conn>),
    H1(Box<AsyncMutex<H1Conn>>),
}

impl Client {
    /// Opens a connection made for `origin` (`https://host[:port]`), outside the pool; see
    /// [`Connection`].
    ///
    /// ```no_run
    /// use misdirect_client::ConnectOptions;
    ///
    /// # async fn run(client: misdirect_client::Client) -> Result<(), misdirect_client::Error> {
    /// let options = ConnectOptions::new().addr("127.0.0.1:8443".parse().unwrap());
    /// let conn = client.connect("https://a.localhost:8443", options).await?;
    /// assert!(conn.info().verification.is_ok());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(
        &self,
        origin: &str,
        options: ConnectOptions,
    ) -> Result<Connection, Error> {
        let uri = origin.parse::<http::Uri>().map_err(|err| {
            Error::new(ErrorKind::InvalidRequest, format!("{origin}: not a URI")).with_source(err)
        })?;
        let origin = origin_of(&uri)?;
        let addrs = match options.addr {
            Some(addr) => vec![addr],
            None => self.resolve(&origin).await?,
        };
        let opening = Opening {
            sni: !options.without_sni,
            record_verification: options.record_verification,
            pooled: false,
        };
        let (info, transport) = match self.open(&origin, &addrs, opening).await? {
            Opened::H2(conn) => (conn.info.clone(), Transport::H2(conn)),
            Opened::H1(h1) => (
                h1.info.clone(),
                Transport::H1(Box::new(AsyncMutex::new(*h1))),
            ),
        };
        Ok(Connection {
            client: self.clone(),
            info,
            transport,
        })
    }
}

impl Connection {
    /// What the handshake found.
    ///
    /// ```no_run
    /// # async fn run(conn: misdirect_client::Connection) {
    /// if let Err(err) = &conn.info().verification {
    ///     eprintln!("certificate not valid for {}: {err}", conn.info().origin);
    /// }
    /// # }
    /// ```
    pub fn info(&self) -> &ConnectionInfo {
        &self.info
    }

    /// Sends `request` on this connection whatever its authority says (`:authority` on
    /// HTTP/2; `Host` and an origin-form target on HTTP/1.1) and returns the response once
    /// its head arrives. On HTTP/1.1 a request waits until the previous response's body
    /// was read.
    ///
    /// ```no_run
    /// # async fn run(conn: misdirect_client::Connection) -> Result<(), Box<dyn std::error::Error>> {
    /// let response = conn.send(http::Request::head("https://b.localhost:8443/").body(())?).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send<B: Into<RequestBody>>(
        &self,
        request: Request<B>,
    ) -> Result<Response<Body>, Error> {
        let (parts, body) = request.into_parts();
        let mut body = body.into();
        origin_of(&parts.uri)?;
        match &self.transport {
            Transport::H2(conn) => Ok(self.client.exchange(conn, &parts, &mut body).await?),
            Transport::H1(h1) => {
                let request = h1_request(&parts, &mut body)?;
                let mut h1 = h1.lock().await;
                self.client
                    .send_h1(&mut h1, &parts, request)
                    .await
                    .map_err(|failure| failure.error)
            }
        }
    }

    /// A PING round trip on HTTP/2 (RFC 9113 §6.7): once it returns, every frame the server
    /// sent before its answer — its SETTINGS and an ORIGIN frame among them — has been
    /// read. Returns at once on HTTP/1.1.
    ///
    /// ```no_run
    /// # async fn run(conn: misdirect_client::Connection) -> Result<(), misdirect_client::Error> {
    /// conn.ping().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn ping(&self) -> Result<(), Error> {
        match &self.transport {
            Transport::H2(conn) => conn.ping().await,
            Transport::H1(_) => Ok(()),
        }
    }

    /// The connection's ORIGIN set (RFC 8336 §2.3) once the server sent an ORIGIN frame:
    /// the connection's own origin and every valid origin the frames listed, in no
    /// particular order. `None` before any frame, and on HTTP/1.1.
    ///
    /// ```no_run
    /// # async fn run(conn: misdirect_client::Connection) {
    /// for origin in conn.origin_set().unwrap_or_default() {
    ///     println!("{origin}");
    /// }
    /// # }
    /// ```
    pub fn origin_set(&self) -> Option<Vec<Origin>> {
        match &self.transport {
            Transport::H2(conn) => lock(&conn.state)
                .origin_set()
                .map(|set| set.iter().cloned().collect()),
            Transport::H1(_) => None,
        }
    }

    /// Whether the server's certificate chain passes, for `host`, the full verification a
    /// new connection to `host` would make (RFC 9113 §9.1.1), with the client's trust
    /// anchors.
    ///
    /// ```no_run
    /// # async fn run(conn: misdirect_client::Connection) -> Result<(), Box<dyn std::error::Error>> {
    /// let verdict = conn.verify_for(&"b.localhost".parse()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn verify_for(&self, host: &Host) -> Result<(), rustls::Error> {
        self.client
            .inner()
            .verify(&self.info.peer_certificates, host)
    }

    /// Whether the connection has ended (closed, failed, or after a GOAWAY on HTTP/2).
    ///
    /// ```no_run
    /// # async fn run(conn: misdirect_client::Connection) {
    /// assert!(!conn.is_closed());
    /// # }
    /// ```
    pub fn is_closed(&self) -> bool {
        match &self.transport {
            Transport::H2(conn) => conn.closed.load(std::sync::atomic::Ordering::Acquire),
            Transport::H1(h1) => h1.try_lock().is_ok_and(|h1| h1.sender.is_closed()),
        }
    }
}
