//! The probe's connections, opened with misdirect-client's [`Client::connect`]: the shared
//! connection made as a browser would make it, the requests sent on it for other names,
//! and the fresh connection made for one name.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use http_body_util::BodyExt;
use misdirect_authority::Origin;
use misdirect_client::{Client, ConnectOptions, Connection, ConnectionInfo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::ProbeOptions;
use super::plan::{Target, reason_from_body};
use super::report::{FreshCheck, Protocol};
use super::verdict::StatusClass;
use crate::error::{Error, ErrorKind};

/// The URL's host as an address, with the timeout (the connection itself may be made for
/// another name, the SNI).
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

/// What every connection and request of one probe shares: the client (`--cacert`'s trust
/// anchors, `--cert`/`--key`), the one address, the timeout, the method and the path.
pub(super) struct Prober {
    client: Client,
    address: SocketAddr,
    timeout: Duration,
    method: http::Method,
    path: String,
    presents_client_cert: bool,
}

impl Prober {
    pub(super) fn new(
        options: &ProbeOptions,
        address: SocketAddr,
        path: &str,
    ) -> Result<Self, Error> {
        // Without --cacert the roots are empty: every certificate then fails verification
        // as UnknownIssuer, which the probe reports as not verified.
        let mut builder = Client::builder()
            .connect_timeout(options.timeout)
            .request_timeout(options.timeout);
        if let Some(path) = &options.cacert {
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_pem_certs(path)? {
                roots.add(cert).map_err(|e| {
                    Error::new(ErrorKind::Certificate, format!("{}: {e}", path.display()))
                        .with_source(e)
                })?;
            }
            builder = builder.roots(roots);
        }
        if let Some((cert, key)) = &options.client_cert {
            builder = builder.client_cert(read_pem_certs(cert)?, read_pem_key(key)?);
        }
        let client = builder.build().map_err(|e| {
            let what = match &options.client_cert {
                Some((cert, key)) => format!("{} and {}", cert.display(), key.display()),
                None => "the client's settings".to_owned(),
            };
            Error::new(ErrorKind::Certificate, format!("{what}: {e}")).with_source(e)
        })?;
        Ok(Self {
            client,
            address,
            timeout: options.timeout,
            method: if options.head {
                http::Method::HEAD
            } else {
                http::Method::GET
            },
            path: path.to_owned(),
            presents_client_cert: options.client_cert.is_some(),
        })
    }

    /// Whether a client certificate is presented when asked for.
    pub(super) fn presents_client_cert(&self) -> bool {
        self.presents_client_cert
    }

    /// A connection made for `origin` (`https://host[:port]`) at the probed address, with
    /// the host as SNI unless `sni` is false. The handshake completes whatever the
    /// certificate; the verifier's answer is in [`ConnectionInfo::verification`].
    async fn open(&self, origin: &str, sni: bool) -> Result<Connection, misdirect_client::Error> {
        let mut options = ConnectOptions::new()
            .addr(self.address)
            .dangerous_record_verification();
        if !sni {
            options = options.without_sni();
        }
        self.client.connect(origin, options).await
    }

    /// [`open`](Self::open) within the timeout, with the probe's errors.
    async fn open_in_time(&self, origin: &str, sni: bool) -> Result<Connection, Error> {
        tokio::time::timeout(self.timeout, self.open(origin, sni))
            .await
            .map_err(|_| self.connect_timed_out())?
            .map_err(probe_error)
    }

    fn connect_timed_out(&self) -> Error {
        Error::new(
            ErrorKind::Timeout,
            format!(
                "connecting to {} took longer than {:?}",
                self.address, self.timeout
            ),
        )
    }

    /// Sends one request for `authority` on `conn`; returns the status and, when the
    /// request was not served, the reason its body gave.
    async fn request(
        &self,
        conn: &Connection,
        authority: &str,
    ) -> Result<(u16, Option<String>), Error> {
        let request = http::Request::builder()
            .method(self.method.clone())
            .uri(format!("https://{authority}{}", self.path))
            .header(http::header::ACCEPT, ACCEPT)
            .header(http::header::USER_AGENT, USER_AGENT)
            .body(())
            .map_err(|e| {
                Error::new(
                    ErrorKind::Invalid,
                    format!("bad request for {authority}: {e}"),
                )
                .with_source(e)
            })?;
        let work = async {
            let response = conn.send(request).await.map_err(probe_error)?;
            let status = response.status().as_u16();
            let mut body = response.into_body();
            let mut bytes = Vec::new();
            // Read to the end, keeping the start: an HTTP/1.1 connection takes its next
            // request once the body is read. A body cut short still leaves the status.
            while let Some(Ok(frame)) = body.frame().await {
                if let Ok(data) = frame.into_data() {
                    let room = MAX_BODY.saturating_sub(bytes.len());
                    bytes.extend_from_slice(&data[..data.len().min(room)]);
                }
            }
            Ok((status, refusal_reason(status, &bytes)))
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| {
                Error::new(
                    ErrorKind::Timeout,
                    format!("no answer for {authority} within {:?}", self.timeout),
                )
            })?
    }

    /// A fresh connection made for the name of `authority` (as SNI), with one request for
    /// `authority`: does the name demand a client certificate, and is it served there?
    pub(super) async fn fresh_check(&self, authority: &str) -> FreshCheck {
        let failed = |client_cert_requested, e: Error| FreshCheck {
            client_cert_requested,
            status: None,
            failure: Some(e.to_string()),
        };
        let opened = tokio::time::timeout(
            self.timeout,
            self.open(&format!("https://{authority}"), true),
        )
        .await;
        let conn = match opened {
            Ok(Ok(conn)) => conn,
            // A server that requires a certificate asked for one before ending the handshake
            // (also when it refused the one presented).
            Ok(Err(e)) => {
                let requested = e.client_cert_requested()
                    || e.kind() == misdirect_client::ErrorKind::ClientCertRequired;
                return failed(requested, probe_error(e));
            }
            Err(_) => return failed(false, self.connect_timed_out()),
        };
        let client_cert_requested = conn.info().client_cert_requested;
        match self.request(&conn, authority).await {
            Ok((status, _)) => FreshCheck {
                client_cert_requested,
                status: Some(status),
                failure: None,
            },
            Err(e) => failed(client_cert_requested, e),
        }
    }
}

/// The shared connection: made as a browser would make it for the URL (with its SNI, or
/// none), and made again with the same options when an HTTP/1.1 server closed it after a
/// response.
pub(super) struct Shared {
    conn: Connection,
    origin: String,
    sni: bool,
}

impl Shared {
    /// Connects, and over HTTP/2 waits for a PING round trip, after which the server's
    /// first frames (SETTINGS, an ORIGIN frame) have been read.
    pub(super) async fn open(prober: &Prober, origin: String, sni: bool) -> Result<Self, Error> {
        let work = async {
            let conn = prober.open(&origin, sni).await?;
            conn.ping().await?;
            Ok::<_, misdirect_client::Error>(conn)
        };
        let conn = tokio::time::timeout(prober.timeout, work)
            .await
            .map_err(|_| prober.connect_timed_out())?
            .map_err(probe_error)?;
        Ok(Self { conn, origin, sni })
    }

    /// What the handshake found.
    pub(super) fn info(&self) -> &ConnectionInfo {
        self.conn.info()
    }

    pub(super) fn protocol(&self) -> Protocol {
        match self.conn.info().protocol {
            misdirect_client::Protocol::Http2 => Protocol::Http2,
            _ => Protocol::Http1,
        }
    }

    /// The connection's ORIGIN set (RFC 8336 §2.3) once the server sent an ORIGIN frame:
    /// its own origin and the valid origins the frame lists, ordered as text.
    pub(super) fn origin_set(&self) -> Option<Vec<Origin>> {
        let mut set = self.conn.origin_set()?;
        set.sort_by_cached_key(ToString::to_string);
        Some(set)
    }

    /// Sends one request for `authority`; see [`Prober::request`].
    pub(super) async fn request(
        &mut self,
        prober: &Prober,
        authority: &str,
    ) -> Result<(u16, Option<String>), Error> {
        if self.protocol() == Protocol::Http1 && self.conn.is_closed() {
            self.conn = prober.open_in_time(&self.origin, self.sni).await?;
        }
        prober.request(&self.conn, authority).await
    }
}

/// The probe's error for the client's: a server that requires a client certificate the
/// probe did not present is told as such, with what to do.
fn probe_error(e: misdirect_client::Error) -> Error {
    use misdirect_client::ErrorKind as Client;
    let kind = match e.kind() {
        Client::ClientCertRequired => {
            // The client's own words name its builder; the cause is what users need.
            let cause =
                std::error::Error::source(&e).map_or_else(|| e.to_string(), ToString::to_string);
            return Error::new(
                ErrorKind::Tls,
                format!(
                    "the server requires a client certificate (it asked for one, and ended the connection without: {cause}); present one with --cert FILE --key FILE"
                ),
            )
            .with_source(e);
        }
        Client::Tls => ErrorKind::Tls,
        Client::Timeout => ErrorKind::Timeout,
        Client::Resolve | Client::Connect | Client::TooManyConnections => ErrorKind::Connect,
        Client::InvalidRequest => ErrorKind::Invalid,
        Client::Config => ErrorKind::Certificate,
        _ => ErrorKind::Protocol,
    };
    Error::new(kind, e.to_string()).with_source(e)
}

fn read_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let pem = read(path)?;
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

fn read_pem_key(path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    PrivateKeyDer::from_pem_slice(&read(path)?).map_err(|e| {
        Error::new(ErrorKind::Certificate, format!("{}: {e}", path.display())).with_source(e)
    })
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path)
        .map_err(|e| Error::new(ErrorKind::Io, format!("{}: {e}", path.display())).with_source(e))
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
