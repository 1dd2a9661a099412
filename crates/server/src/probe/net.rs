//! The probe's own network code: TLS with verifiers that record instead of refusing,
//! HTTP/2 and HTTP/1.1 requests on one connection, the frame tap that finds ORIGIN frames,
//! and the fresh connection made for one name.

use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use misdirect_response::{ORIGIN_FRAME_TYPE, OriginFrame};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::ProbeOptions;
use super::plan::{Target, reason_from_body};
use super::report::{FreshCheck, Protocol};
use super::verdict::StatusClass;
use crate::error::{Error, ErrorKind};

pub(super) async fn resolve(target: &Target, timeout: Duration) -> Result<SocketAddr, Error> {
    if let Some(ip) = target.host.ip() {
        return Ok(SocketAddr::new(ip, target.port));
    }
    let host = target.host.to_string();
    let lookup = tokio::net::lookup_host((host.as_str(), target.port));
    match tokio::time::timeout(timeout, lookup).await {
        Err(_) => Err(Error::new(
            ErrorKind::Timeout,
            format!("resolving {host} took longer than {timeout:?}"),
        )),
        Ok(Err(e)) => Err(
            Error::new(ErrorKind::Connect, format!("cannot resolve {host}: {e}")).with_source(e),
        ),
        Ok(Ok(mut addrs)) => addrs
            .next()
            .ok_or_else(|| Error::new(ErrorKind::Connect, format!("{host} has no address"))),
    }
}

/// The rustls client set-up: ALPN h2 then http/1.1, a verifier that records instead of
/// refusing (the probe wants to see any certificate), and a client-certificate resolver
/// that records whether the server asked for one.
pub(super) struct TlsSetup {
    verifier: Option<Arc<dyn ServerCertVerifier>>,
    client_cert: Option<Arc<rustls::sign::CertifiedKey>>,
}

impl TlsSetup {
    pub(super) fn new(options: &ProbeOptions) -> Result<Self, Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = match &options.cacert {
            None => None,
            Some(path) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in read_pem_certs(path)? {
                    roots.add(cert).map_err(|e| {
                        Error::new(ErrorKind::Certificate, format!("{}: {e}", path.display()))
                            .with_source(e)
                    })?;
                }
                let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .map_err(|e| {
                    Error::new(ErrorKind::Certificate, format!("{}: {e}", path.display()))
                        .with_source(e)
                })?;
                Some(verifier as Arc<dyn ServerCertVerifier>)
            }
        };
        let client_cert = match &options.client_cert {
            None => None,
            Some((cert, key)) => {
                let chain = read_pem_certs(cert)?;
                let pem = std::fs::read(key).map_err(|e| {
                    Error::new(ErrorKind::Io, format!("{}: {e}", key.display())).with_source(e)
                })?;
                let der: PrivateKeyDer<'static> =
                    rustls::pki_types::pem::PemObject::from_pem_slice(&pem).map_err(|e| {
                        Error::new(ErrorKind::Certificate, format!("{}: {e}", key.display()))
                            .with_source(e)
                    })?;
                let signing = rustls::crypto::ring::default_provider()
                    .key_provider
                    .load_private_key(der)
                    .map_err(|e| {
                        Error::new(ErrorKind::Certificate, format!("{}: {e}", key.display()))
                            .with_source(e)
                    })?;
                Some(Arc::new(rustls::sign::CertifiedKey::new(chain, signing)))
            }
        };
        Ok(Self {
            verifier,
            client_cert,
        })
    }

    fn config(&self, requested: Arc<Mutex<bool>>) -> ClientConfig {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            // Invariant: the ring provider supports the default protocol versions.
            .expect("ring supports TLS 1.2 and 1.3")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Recorder { provider }));
        let resolver = ClientCertRecorder {
            requested,
            cert: self.client_cert.clone(),
        };
        let mut config = builder.with_client_cert_resolver(Arc::new(resolver));
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        config
    }

    /// Whether a client certificate is presented when asked for.
    pub(super) fn presents_client_cert(&self) -> bool {
        self.client_cert.is_some()
    }

    /// Verifies the connection's chain with `--cacert` for `name` (the SNI, or without one
    /// the URL's host): `None` without trust anchors, else the verifier's answer, with its
    /// reason when it refuses.
    pub(super) fn verify(&self, conn: &Connected, name: &str) -> Option<Result<(), String>> {
        let verifier = self.verifier.as_ref()?;
        let server_name = match name.parse::<std::net::IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => match ServerName::try_from(name.to_owned()) {
                Ok(server_name) => server_name,
                Err(e) => return Some(Err(format!("{name:?} is not a name to verify for: {e}"))),
            },
        };
        let Some((end_entity, intermediates)) = conn.chain.split_first() else {
            return Some(Err("the server presented no certificate".to_owned()));
        };
        Some(
            verifier
                .verify_server_cert(
                    end_entity,
                    intermediates,
                    &server_name,
                    &[],
                    UnixTime::now(),
                )
                .map(|_| ())
                .map_err(|e| e.to_string()),
        )
    }
}

fn read_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    use rustls::pki_types::pem::PemObject;
    let pem = std::fs::read(path).map_err(|e| {
        Error::new(ErrorKind::Io, format!("{}: {e}", path.display())).with_source(e)
    })?;
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&pem).collect();
    match certs {
        Ok(certs) if !certs.is_empty() => Ok(certs),
        Ok(_) => Err(Error::new(
            ErrorKind::Certificate,
            format!("{}: no certificate in the file", path.display()),
        )),
        Err(e) => Err(
            Error::new(ErrorKind::Certificate, format!("{}: {e}", path.display())).with_source(e),
        ),
    }
}

/// Accepts any certificate (the probe reports verification separately) but checks the
/// handshake signatures, so the peer does hold the certificate's key.
#[derive(Debug)]
struct Recorder {
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Presents the configured client certificate, if any, and records that the server asked.
#[derive(Debug)]
struct ClientCertRecorder {
    requested: Arc<Mutex<bool>>,
    cert: Option<Arc<rustls::sign::CertifiedKey>>,
}

impl rustls::client::ResolvesClientCert for ClientCertRecorder {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        if let Ok(mut requested) = self.requested.lock() {
            *requested = true;
        }
        self.cert.clone()
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// An established TLS connection, before HTTP.
pub(super) struct Connected {
    stream: tokio_rustls::client::TlsStream<TcpStream>,
    pub(super) peer_certificate: Vec<u8>,
    chain: Vec<CertificateDer<'static>>,
    alpn: Option<Vec<u8>>,
    client_cert_requested: Arc<Mutex<bool>>,
    presents_client_cert: bool,
}

impl Connected {
    /// The server asked for a client certificate the probe does not have.
    fn lacks_client_cert(&self) -> bool {
        !self.presents_client_cert && requested(&self.client_cert_requested)
    }
}

fn requested(flag: &Mutex<bool>) -> bool {
    flag.lock().map(|r| *r).unwrap_or(false)
}

/// Says what a failure means when the connection was asked for a client certificate the
/// probe did not have (`lacking`): a server that requires one ends the handshake (TLS 1.2)
/// or the connection just after it (TLS 1.3, which reads as a closed pipe or a
/// `CertificateRequired` alert, whichever comes first). Other failures, and timeouts (a
/// server that asks for a certificate may go on without one), are left as they are.
fn client_cert_required(err: Error, lacking: bool) -> Error {
    if !lacking || err.kind() == ErrorKind::Timeout {
        return err;
    }
    Error::new(
        ErrorKind::Tls,
        format!(
            "the server requires a client certificate (it asked for one, and ended the connection without: {err}); present one with --cert FILE --key FILE"
        ),
    )
    .with_source(err)
}

pub(super) async fn connect(
    tls: &TlsSetup,
    address: SocketAddr,
    sni: Option<&str>,
    timeout: Duration,
) -> Result<Connected, Error> {
    connect_recording(tls, address, sni, timeout, Arc::new(Mutex::new(false))).await
}

/// [`connect`], setting `requested_flag` when the server asks for a client certificate,
/// also when the handshake then fails.
async fn connect_recording(
    tls: &TlsSetup,
    address: SocketAddr,
    sni: Option<&str>,
    timeout: Duration,
    requested_flag: Arc<Mutex<bool>>,
) -> Result<Connected, Error> {
    let mut config = tls.config(requested_flag.clone());
    let server_name = match sni {
        Some(name) => ServerName::try_from(name.to_owned()).map_err(|e| {
            Error::new(
                ErrorKind::Invalid,
                format!("{name:?} is not a valid SNI: {e}"),
            )
            .with_source(e)
        })?,
        None => {
            config.enable_sni = false;
            // Without SNI rustls still needs a name; it is not sent.
            ServerName::IpAddress(address.ip().into())
        }
    };
    let connector = TlsConnector::from(Arc::new(config));
    let work = async {
        let tcp = TcpStream::connect(address).await.map_err(|e| {
            Error::new(
                ErrorKind::Connect,
                format!("cannot connect to {address}: {e}"),
            )
            .with_source(e)
        })?;
        connector.connect(server_name, tcp).await.map_err(|e| {
            let err = Error::new(
                ErrorKind::Tls,
                format!("TLS handshake with {address} failed: {e}"),
            )
            .with_source(e);
            client_cert_required(err, tls.client_cert.is_none() && requested(&requested_flag))
        })
    };
    let stream = tokio::time::timeout(timeout, work).await.map_err(|_| {
        Error::new(
            ErrorKind::Timeout,
            format!("connecting to {address} took longer than {timeout:?}"),
        )
    })??;
    let (_, session) = stream.get_ref();
    let chain: Vec<CertificateDer<'static>> = session
        .peer_certificates()
        .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
        .unwrap_or_default();
    let peer_certificate = chain.first().map(|c| c.as_ref().to_vec()).ok_or_else(|| {
        Error::new(
            ErrorKind::Tls,
            format!("{address} presented no certificate"),
        )
    })?;
    let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
    Ok(Connected {
        stream,
        peer_certificate,
        chain,
        alpn,
        client_cert_requested: requested_flag,
        presents_client_cert: tls.presents_client_cert(),
    })
}

/// HTTP over the shared connection: HTTP/2 when negotiated, else HTTP/1.1 (reconnecting
/// with the same SNI when the server closes after a response).
pub(super) struct Session {
    transport: Transport,
    timeout: Duration,
    /// Whether the server asked the current connection for a client certificate.
    client_cert_requested: Arc<Mutex<bool>>,
    presents_client_cert: bool,
}

enum Transport {
    H2 {
        send: h2::client::SendRequest<Bytes>,
        frames: Arc<Mutex<FrameLog>>,
    },
    H1 {
        sender: Option<hyper::client::conn::http1::SendRequest<Empty<Bytes>>>,
    },
}

impl Session {
    /// Speaks HTTP on a connection: HTTP/2 when ALPN chose it, else HTTP/1.1.
    pub(super) async fn start(conn: Connected, timeout: Duration) -> Result<Self, Error> {
        let lacks_client_cert = conn.lacks_client_cert();
        let client_cert_requested = conn.client_cert_requested.clone();
        let presents_client_cert = conn.presents_client_cert;
        let transport = Transport::start(conn, timeout)
            .await
            .map_err(|err| client_cert_required(err, lacks_client_cert))?;
        Ok(Self {
            transport,
            timeout,
            client_cert_requested,
            presents_client_cert,
        })
    }

    pub(super) fn protocol(&self) -> Protocol {
        match self.transport {
            Transport::H2 { .. } => Protocol::Http2,
            Transport::H1 { .. } => Protocol::Http1,
        }
    }

    pub(super) fn origin_frame(&self) -> Option<Vec<String>> {
        match &self.transport {
            Transport::H2 { frames, .. } => frames.lock().ok().and_then(|log| log.origins.clone()),
            Transport::H1 { .. } => None,
        }
    }

    /// Sends one request; returns the status and, when the request was not served, the
    /// reason its body gave.
    pub(super) async fn request(
        &mut self,
        authority: &str,
        path: &str,
        head: bool,
        tls: &TlsSetup,
        address: SocketAddr,
        sni: Option<&str>,
    ) -> Result<(u16, Option<String>), Error> {
        let outcome = self.send(authority, path, head, tls, address, sni).await;
        let lacks_client_cert =
            !self.presents_client_cert && requested(&self.client_cert_requested);
        outcome.map_err(|err| client_cert_required(err, lacks_client_cert))
    }

    async fn send(
        &mut self,
        authority: &str,
        path: &str,
        head: bool,
        tls: &TlsSetup,
        address: SocketAddr,
        sni: Option<&str>,
    ) -> Result<(u16, Option<String>), Error> {
        let timeout = self.timeout;
        let method = if head {
            http::Method::HEAD
        } else {
            http::Method::GET
        };
        let bad_request = |e: http::Error| {
            Error::new(
                ErrorKind::Invalid,
                format!("bad request for {authority}: {e}"),
            )
            .with_source(e)
        };
        let timed_out = |_| {
            Error::new(
                ErrorKind::Timeout,
                format!("no answer for {authority} within {timeout:?}"),
            )
        };
        match &mut self.transport {
            Transport::H2 { send, .. } => {
                let request = http::Request::builder()
                    .method(method)
                    .uri(format!("https://{authority}{path}"))
                    .header(http::header::ACCEPT, ACCEPT)
                    .header(http::header::USER_AGENT, USER_AGENT)
                    .body(())
                    .map_err(bad_request)?;
                let work = async {
                    let mut ready = send.clone().ready().await.map_err(closed)?;
                    let (response, _) = ready.send_request(request, true).map_err(closed)?;
                    let response = response.await.map_err(closed)?;
                    let status = response.status().as_u16();
                    let mut body = response.into_body();
                    let mut bytes = Vec::new();
                    while let Some(chunk) = body.data().await {
                        let chunk = chunk.map_err(closed)?;
                        let _ = body.flow_control().release_capacity(chunk.len());
                        if bytes.len() < MAX_BODY {
                            bytes.extend_from_slice(&chunk);
                        }
                    }
                    Ok::<_, Error>((status, refusal_reason(status, &bytes)))
                };
                tokio::time::timeout(timeout, work)
                    .await
                    .map_err(timed_out)?
            }
            Transport::H1 { sender } => {
                if sender.as_ref().is_none_or(|s| s.is_closed()) {
                    let conn = connect(tls, address, sni, timeout).await?;
                    self.client_cert_requested = conn.client_cert_requested.clone();
                    *sender = Some(h1_handshake(conn.stream, timeout).await?);
                }
                // Invariant: set just above when it was missing or closed.
                let s = sender.as_mut().expect("an HTTP/1.1 connection");
                let request = http::Request::builder()
                    .method(method)
                    .uri(path)
                    .header(http::header::HOST, authority)
                    .header(http::header::ACCEPT, ACCEPT)
                    .header(http::header::USER_AGENT, USER_AGENT)
                    .body(Empty::<Bytes>::new())
                    .map_err(bad_request)?;
                let work = async {
                    s.ready().await.map_err(closed)?;
                    let response = s.send_request(request).await.map_err(closed)?;
                    let status = response.status().as_u16();
                    let body = http_body_util::Limited::new(response.into_body(), MAX_BODY)
                        .collect()
                        .await
                        .map(http_body_util::Collected::to_bytes)
                        .unwrap_or_default();
                    Ok::<_, Error>((status, refusal_reason(status, &body)))
                };
                tokio::time::timeout(timeout, work)
                    .await
                    .map_err(timed_out)?
            }
        }
    }
}

/// Asks for problem+json (RFC 9457), whose members say why a request was refused.
const ACCEPT: &str = "application/problem+json, application/json;q=0.9, */*;q=0.1";

const USER_AGENT: &str = concat!("misdirect-probe/", env!("CARGO_PKG_VERSION"));

/// The most of a body the probe reads for a reason.
const MAX_BODY: usize = 16 * 1024;

/// The reason a body gives, for an answer that did not serve the request.
fn refusal_reason(status: u16, body: &[u8]) -> Option<String> {
    if StatusClass::of(status).is_served() {
        None
    } else {
        reason_from_body(body)
    }
}

impl Transport {
    async fn start(conn: Connected, timeout: Duration) -> Result<Self, Error> {
        if conn.alpn.as_deref() == Some(b"h2") {
            let frames = Arc::new(Mutex::new(FrameLog::default()));
            let tapped = Tap {
                inner: conn.stream,
                log: frames.clone(),
            };
            let handshake = h2::client::handshake(tapped);
            let (send, connection) = tokio::time::timeout(timeout, handshake)
                .await
                .map_err(|_| Error::new(ErrorKind::Timeout, "HTTP/2 handshake timed out"))?
                .map_err(|e| {
                    Error::new(ErrorKind::Protocol, format!("HTTP/2 handshake failed: {e}"))
                        .with_source(e)
                })?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            let send = tokio::time::timeout(timeout, send.ready())
                .await
                .map_err(|_| Error::new(ErrorKind::Timeout, "HTTP/2 connection not ready in time"))?
                .map_err(|e| {
                    Error::new(
                        ErrorKind::Protocol,
                        format!("HTTP/2 connection failed: {e}"),
                    )
                    .with_source(e)
                })?;
            // Give the server's first frames (SETTINGS, an ORIGIN frame) a moment to arrive.
            tokio::time::sleep(Duration::from_millis(50)).await;
            return Ok(Self::H2 { send, frames });
        }
        Ok(Self::H1 {
            sender: Some(h1_handshake(conn.stream, timeout).await?),
        })
    }
}

fn closed<E>(e: E) -> Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    Error::new(ErrorKind::Protocol, format!("the connection failed: {e}")).with_source(e)
}

async fn h1_handshake(
    stream: tokio_rustls::client::TlsStream<TcpStream>,
    timeout: Duration,
) -> Result<hyper::client::conn::http1::SendRequest<Empty<Bytes>>, Error> {
    let io = hyper_util::rt::TokioIo::new(stream);
    let (sender, connection) =
        tokio::time::timeout(timeout, hyper::client::conn::http1::handshake(io))
            .await
            .map_err(|_| Error::new(ErrorKind::Timeout, "HTTP/1.1 handshake timed out"))?
            .map_err(|e| {
                Error::new(
                    ErrorKind::Protocol,
                    format!("HTTP/1.1 handshake failed: {e}"),
                )
                .with_source(e)
            })?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// A fresh connection made for `name` (as SNI), with one request for `authority`: does
/// the name demand a client certificate, and is it served there?
pub(super) async fn fresh_check(
    tls: &TlsSetup,
    address: SocketAddr,
    name: &str,
    authority: &str,
    path: &str,
    options: &ProbeOptions,
) -> FreshCheck {
    let requested = Arc::new(Mutex::new(false));
    let connected =
        connect_recording(tls, address, Some(name), options.timeout, requested.clone()).await;
    let conn = match connected {
        Ok(conn) => conn,
        Err(e) => {
            return FreshCheck {
                client_cert_requested: self::requested(&requested),
                status: None,
                failure: Some(e.to_string()),
            };
        }
    };
    let requested = conn.client_cert_requested.clone();
    let outcome = match Session::start(conn, options.timeout).await {
        Ok(mut session) => {
            session
                .request(authority, path, options.head, tls, address, Some(name))
                .await
        }
        Err(e) => Err(e),
    };
    let client_cert_requested = requested.lock().map(|r| *r).unwrap_or(false);
    match outcome {
        Ok((status, _)) => FreshCheck {
            client_cert_requested,
            status: Some(status),
            failure: None,
        },
        Err(e) => FreshCheck {
            client_cert_requested,
            status: None,
            failure: Some(e.to_string()),
        },
    }
}

/// The ORIGIN frames seen in the server's HTTP/2 byte stream.
#[derive(Debug, Default)]
struct FrameLog {
    buf: Vec<u8>,
    origins: Option<Vec<String>>,
    done: bool,
}

impl FrameLog {
    /// Feeds plaintext bytes from the server; frames are parsed as they complete. Only the
    /// first 64 KiB are examined: ORIGIN frames come at the start of a connection.
    fn feed(&mut self, bytes: &[u8]) {
        if self.done {
            return;
        }
        self.buf.extend_from_slice(bytes);
        while self.buf.len() >= 9 {
            let len = usize::from(self.buf[0]) << 16
                | usize::from(self.buf[1]) << 8
                | usize::from(self.buf[2]);
            if self.buf.len() < 9 + len {
                break;
            }
            let frame: Vec<u8> = self.buf.drain(..9 + len).collect();
            if frame[3] == ORIGIN_FRAME_TYPE
                && let Ok((decoded, _)) = OriginFrame::decode_frame(&frame)
            {
                self.origins
                    .get_or_insert_with(Vec::new)
                    .extend(decoded.into_origins());
            }
        }
        if self.buf.len() > 64 * 1024 {
            self.done = true;
            self.buf = Vec::new();
        }
    }
}

/// Passes the decrypted stream through, showing the server's bytes to a [`FrameLog`].
struct Tap<S> {
    inner: S,
    log: Arc<Mutex<FrameLog>>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tap<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = poll
            && let Ok(mut log) = this.log.lock()
        {
            log.feed(&buf.filled()[before..]);
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tap<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ORIGIN frames are found in the server's byte stream however it is split, after
    /// other frames, and only on stream 0.
    #[test]
    fn frame_log_finds_origin_frames() {
        let settings = [0u8, 0, 6, 0x4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100];
        let origin = OriginFrame::from_origins(["https://b.example", "https://c.example:8443"])
            .unwrap()
            .to_frame();
        let mut on_stream_1 = origin.to_vec();
        on_stream_1[8] = 1;
        let mut stream = settings.to_vec();
        stream.extend_from_slice(&on_stream_1);
        stream.extend_from_slice(&origin);
        for split in [1, 2, 5, 9, 17, stream.len()] {
            let mut log = FrameLog::default();
            for chunk in stream.chunks(split) {
                log.feed(chunk);
            }
            assert_eq!(
                log.origins.as_deref(),
                Some(
                    &[
                        "https://b.example".to_owned(),
                        "https://c.example:8443".to_owned()
                    ][..]
                ),
                "split {split}"
            );
        }
        let mut log = FrameLog::default();
        log.feed(&settings);
        assert_eq!(log.origins, None);
    }
}
