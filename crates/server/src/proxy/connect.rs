//! Connections to the upstream: TCP, then TLS for an `https` upstream, both within
//! `connect_timeout`.
//!
//! The connector always dials the configured upstream, whatever the request URI says: to
//! an HTTP/2 upstream the URI carries the virtual host's authority (it becomes
//! `:authority`), not the upstream's address.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::error::{Error, ErrorKind};

/// Dials the upstream; a [`tower_service::Service`] for hyper-util's client.
#[derive(Clone)]
pub(super) struct Connector {
    dialer: Arc<Dialer>,
}

struct Dialer {
    /// The host to resolve, without IPv6 brackets.
    host: String,
    port: u16,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    timeout: Duration,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("host", &self.dialer.host)
            .field("port", &self.dialer.port)
            .field("tls", &self.dialer.tls.is_some())
            .field("timeout", &self.dialer.timeout)
            .finish()
    }
}

impl Connector {
    /// A connector to `upstream` (an `http` or `https` URI with a host, already checked),
    /// with TLS by `tls` when it is `https`.
    pub(super) fn new(
        upstream: &Uri,
        tls: Option<Arc<ClientConfig>>,
        timeout: Duration,
    ) -> Result<Self, Error> {
        let invalid =
            |why: &str| Error::new(ErrorKind::Invalid, format!("proxy {upstream}: {why}"));
        let host = upstream
            .host()
            .ok_or_else(|| invalid("the upstream has no host"))?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let port = upstream
            .port_u16()
            .unwrap_or(if tls.is_some() { 443 } else { 80 });
        let tls = match tls {
            Some(config) => {
                let name = ServerName::try_from(host.to_owned())
                    .map_err(|_| invalid("the upstream host is not a valid TLS server name"))?;
                Some((TlsConnector::from(config), name))
            }
            None => None,
        };
        Ok(Self {
            dialer: Arc::new(Dialer {
                host: host.to_owned(),
                port,
                tls,
                timeout,
            }),
        })
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<Io>;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<TokioIo<Io>, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let dialer = self.dialer.clone();
        Box::pin(async move {
            match tokio::time::timeout(dialer.timeout, dialer.connect()).await {
                Ok(io) => io.map(TokioIo::new),
                Err(_) => Err(ConnectError::Timeout(dialer.timeout)),
            }
        })
    }
}

impl Dialer {
    async fn connect(&self) -> Result<Io, ConnectError> {
        let tcp = self.tcp().await?;
        // Requests are written whole by hyper; no reason to hold small writes back.
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => Ok(Io::Plain(tcp)),
            Some((connector, name)) => connector
                .connect(name.clone(), tcp)
                .await
                .map(|tls| Io::Tls(Box::new(tls)))
                .map_err(ConnectError::Tls),
        }
    }

    /// Each of the host's addresses in turn, until one accepts.
    async fn tcp(&self) -> Result<TcpStream, ConnectError> {
        let addrs: Vec<SocketAddr> = match self.host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, self.port)],
            Err(_) => tokio::net::lookup_host((self.host.as_str(), self.port))
                .await
                .map_err(ConnectError::Resolve)?
                .collect(),
        };
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(tcp) => return Ok(tcp),
                Err(err) => last = Some(err),
            }
        }
        Err(last.map_or(ConnectError::NoAddress, ConnectError::Tcp))
    }
}

/// The client configuration for an `https` upstream: the roots `ca` when given, else the
/// system's; ALPN `h2` or `http/1.1` only, the protocol the proxy was configured to speak.
pub(super) fn client_config(
    upstream: &Uri,
    ca: Option<&[CertificateDer<'static>]>,
    http2: bool,
) -> Result<Arc<ClientConfig>, Error> {
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(certs) => {
            for (index, cert) in certs.iter().enumerate() {
                roots.add(cert.clone()).map_err(|err| {
                    Error::new(
                        ErrorKind::Certificate,
                        format!("proxy {upstream}: ca certificate #{}: {err}", index + 1),
                    )
                    .with_source(err)
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _unparsable) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                let errors: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
                return Err(Error::new(
                    ErrorKind::Certificate,
                    format!(
                        "proxy {upstream}: no system root certificates could be loaded{}; \
                         give the upstream's CA with `ca`",
                        if errors.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", errors.join("; "))
                        }
                    ),
                ));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        // Invariant: the ring provider supports the default protocol versions.
        .expect("ring supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![if http2 {
        b"h2".to_vec()
    } else {
        b"http/1.1".to_vec()
    }];
    Ok(Arc::new(config))
}

/// Why the upstream could not be reached.
#[derive(Debug)]
pub(super) enum ConnectError {
    /// TCP and TLS together took longer than `connect_timeout`.
    Timeout(Duration),
    /// The host name did not resolve.
    Resolve(io::Error),
    /// The host name resolved to no address.
    NoAddress,
    /// No address accepted the connection (refused, unreachable).
    Tcp(io::Error),
    /// The TLS handshake failed (certificate not trusted, wrong name, no common protocol).
    Tls(io::Error),
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout(after) => write!(f, "connecting timed out after {after:?}"),
            Self::Resolve(err) => write!(f, "cannot resolve the upstream host: {err}"),
            Self::NoAddress => f.write_str("the upstream host has no address"),
            Self::Tcp(err) => write!(f, "cannot connect: {err}"),
            Self::Tls(err) => write!(f, "TLS handshake failed: {err}"),
        }
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Resolve(err) | Self::Tcp(err) | Self::Tls(err) => Some(err),
            Self::Timeout(_) | Self::NoAddress => None,
        }
    }
}

/// A connection to the upstream.
#[derive(Debug)]
pub(super) enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connection for Io {
    fn connected(&self) -> Connected {
        match self {
            Self::Plain(tcp) => tcp.connected(),
            Self::Tls(tls) => {
                let (tcp, session) = tls.get_ref();
                let connected = tcp.connected();
                if session.alpn_protocol() == Some(b"h2") {
                    connected.negotiated_h2()
                } else {
                    connected
                }
            }
        }
    }
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_write_vectored(cx, bufs),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(tcp) => tcp.is_write_vectored(),
            Self::Tls(tls) => tls.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}
