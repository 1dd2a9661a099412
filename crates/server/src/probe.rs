//! `misdirect probe`: find a live server's coalescing hazards from the outside.
//!
//! One TLS connection is made, as a browser would make it for the URL's host (or the SNI
//! given). The probe reads the certificate the server presents and, over HTTP/2, any ORIGIN
//! frame (RFC 8336) — then sends, on that same connection, one request for each name the
//! certificate covers (a wildcard is tried with a probe label), as a coalescing browser
//! would (RFC 9113 §9.1.1). Each answer gets a [`Verdict`]. A name served on the shared
//! connection is then checked on a fresh connection made for it: if that connection is
//! asked for a client certificate the probe did not have, the shared connection bypassed it.
//!
//! The probe only sends `GET` or `HEAD` for `/` (or the URL's path), at most two requests
//! per name, each with a timeout, and only to the one address given or resolved.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use misdirect_authority::{Authority, Host};
use misdirect_certmatch::{DnsPattern, Identities, Pattern};
use misdirect_response::{ORIGIN_FRAME_TYPE, OriginFrame};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::error::{Error, ErrorKind};

/// The label a wildcard name is tried with: `*.example.com` → `misdirect-probe.example.com`
/// ([`DnsPattern::example_host`]).
pub const PROBE_LABEL: &str = DnsPattern::EXAMPLE_LABEL;

/// What the probe should do.
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct ProbeOptions {
    /// The `https://host[:port][/path]` URL to probe.
    pub url: String,
    /// The SNI to send: `None` uses the URL's host.
    pub sni: Option<String>,
    /// Send no SNI at all.
    pub no_sni: bool,
    /// Connect to this address instead of resolving the URL's host.
    pub resolve: Option<SocketAddr>,
    /// Trust anchors (PEM) to verify the server's certificate with. Without them the
    /// certificate is read but reported as not verified.
    pub cacert: Option<PathBuf>,
    /// A client certificate chain and key (PEM) to present.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// More names to try on the connection.
    pub names: Vec<String>,
    /// The timeout for connecting and for each request.
    pub timeout: Duration,
    /// Send `HEAD` instead of `GET`.
    pub head: bool,
}

impl ProbeOptions {
    /// Options for probing `url` with defaults: the URL's host as SNI, a 5-second timeout.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            sni: None,
            no_sni: false,
            resolve: None,
            cacert: None,
            client_cert: None,
            names: Vec::new(),
            timeout: Duration::from_secs(5),
            head: false,
        }
    }
}

/// What the probe learnt about one name.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verdict {
    /// Served on the shared connection, and the certificate covers it: coalescing works.
    Served,
    /// The connection's own name (its SNI), served.
    ServedOwn,
    /// 421 on the shared connection: coalescing browsers pay a retry for this name.
    Misdirected,
    /// 421 for the very name the connection was made for: no client can reach it.
    MisdirectedOwn,
    /// Served on the shared connection although a fresh connection for the name demands a
    /// client certificate: the shared connection bypassed client authentication.
    Bypass,
    /// Served although the certificate does not cover the name (RFC 9110 §7.4: an origin
    /// server must reject it).
    ServedUncovered,
    /// Refused for a name the certificate does not cover: correct.
    RefusedUncovered,
    /// The request failed (the connection closed, a timeout, a protocol error).
    Failed,
}

impl Verdict {
    /// A stable code for JSON output.
    pub const fn code(self) -> &'static str {
        match self {
            Self::Served => "served",
            Self::ServedOwn => "served-own",
            Self::Misdirected => "misdirected",
            Self::MisdirectedOwn => "misdirected-own",
            Self::Bypass => "bypass",
            Self::ServedUncovered => "served-uncovered",
            Self::RefusedUncovered => "refused-uncovered",
            Self::Failed => "failed",
        }
    }

    /// How bad it is: [`Severity::Fine`], a [`Severity::Hazard`] (extra round trips), a
    /// [`Severity::Violation`], or a [`Severity::Failure`] (the request failed).
    ///
    /// ```
    /// use misdirect_server::probe::{Severity, Verdict};
    ///
    /// assert_eq!(Verdict::Served.severity(), Severity::Fine);
    /// assert_eq!(Verdict::Misdirected.severity(), Severity::Hazard);
    /// assert_eq!(Verdict::Bypass.severity(), Severity::Violation);
    /// assert_eq!(Verdict::Failed.severity(), Severity::Failure);
    /// ```
    pub const fn severity(self) -> Severity {
        match self {
            Self::Served | Self::ServedOwn | Self::RefusedUncovered => Severity::Fine,
            Self::Misdirected => Severity::Hazard,
            Self::MisdirectedOwn | Self::Bypass | Self::ServedUncovered => Severity::Violation,
            Self::Failed => Severity::Failure,
        }
    }

    /// One sentence for people.
    pub const fn explanation(self) -> &'static str {
        match self {
            Self::Served => "served on the shared connection (coalescing works)",
            Self::ServedOwn => "the connection's own name, served",
            Self::Misdirected => {
                "421 on the shared connection: coalescing browsers retry on a new connection"
            }
            Self::MisdirectedOwn => "421 for the connection's own name: nobody can reach it",
            Self::Bypass => {
                "BYPASS: served on the shared connection, but a fresh connection for it demands a client certificate"
            }
            Self::ServedUncovered => {
                "served although the certificate does not cover it (RFC 9110 §7.4 violation)"
            }
            Self::RefusedUncovered => "not covered by the certificate, and refused: correct",
            Self::Failed => "the request failed",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// How bad a [`Verdict`] is, in the order the exit status ranks them: a failed request
/// ranks highest, as the probe's picture is then incomplete.
///
/// [`as_str`](Self::as_str) (and [`Display`](fmt::Display)) give the words `docs/probe.md`
/// uses: `fine`, `hazard`, `violation`, `failure`.
///
/// ```
/// use misdirect_server::probe::Severity;
///
/// assert!(Severity::Fine < Severity::Hazard);
/// assert!(Severity::Violation < Severity::Failure);
/// assert_eq!(Severity::Hazard.to_string(), "hazard");
/// assert_eq!(Severity::Violation.exit_code(), 2);
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// Nothing to fix.
    Fine,
    /// Costs coalescing clients a retry on a new connection.
    Hazard,
    /// Breaks a rule of HTTP or bypasses a security check.
    Violation,
    /// The request failed, so the name could not be judged.
    Failure,
}

impl Severity {
    /// The word for it: `fine`, `hazard`, `violation` or `failure`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Fine => "fine",
            Self::Hazard => "hazard",
            Self::Violation => "violation",
            Self::Failure => "failure",
        }
    }

    /// The exit status of a probe whose worst verdict has this severity: 0, 1, 2 or 3.
    pub const fn exit_code(self) -> u8 {
        match self {
            Self::Fine => 0,
            Self::Hazard => 1,
            Self::Violation => 2,
            Self::Failure => 3,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a name the probe tried came from.
///
/// ```
/// use misdirect_server::probe::NameSource;
///
/// assert_eq!(NameSource::OriginFrame.as_str(), "origin-frame");
/// assert_eq!(NameSource::Option.to_string(), "option");
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NameSource {
    /// The SNI the connection was made with (`sni`).
    Sni,
    /// A name or IP address the presented certificate covers; a wildcard is tried with
    /// [`PROBE_LABEL`] (`certificate`).
    Certificate,
    /// Given with `--names` ([`ProbeOptions::names`]) (`option`).
    Option,
    /// An origin of the server's ORIGIN frame (`origin-frame`).
    OriginFrame,
}

impl NameSource {
    /// The code used in the JSON output: `sni`, `certificate`, `option` or `origin-frame`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sni => "sni",
            Self::Certificate => "certificate",
            Self::Option => "option",
            Self::OriginFrame => "origin-frame",
        }
    }
}

impl fmt::Display for NameSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The HTTP version spoken on the probed connection, as ALPN negotiated it.
///
/// ```
/// use misdirect_server::probe::Protocol;
///
/// assert_eq!(Protocol::Http2.as_str(), "h2");
/// assert_eq!(Protocol::Http1.to_string(), "http/1.1");
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// HTTP/2 (`h2`): browsers coalesce these connections.
    Http2,
    /// HTTP/1.1 (`http/1.1`), when the server did not offer HTTP/2.
    Http1,
}

impl Protocol {
    /// The ALPN protocol ID: `h2` or `http/1.1`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Http2 => "h2",
            Self::Http1 => "http/1.1",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The probe's result for one name.
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct NameResult {
    /// The name tried.
    pub name: String,
    /// Where the name came from.
    pub source: NameSource,
    /// Whether the presented certificate covers it.
    pub covered: bool,
    /// The status of the request on the shared connection.
    pub status: Option<u16>,
    /// The `reason` the server gave for a 421, if its body said (misdirect servers do).
    pub error: Option<String>,
    /// On a fresh connection for the name: whether it asked for a client certificate and
    /// the status or failure it ended with.
    pub fresh: Option<FreshCheck>,
    /// The verdict.
    pub verdict: Verdict,
}

/// A fresh connection made for one name, to see what it demands.
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct FreshCheck {
    /// The server sent a CertificateRequest.
    pub client_cert_requested: bool,
    /// The status the request got, if it got one.
    pub status: Option<u16>,
    /// Why it failed, if it did.
    pub failure: Option<String>,
}

/// The certificate the server presented.
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct CertSummary {
    /// Its subject.
    pub subject: String,
    /// The SHA-256 fingerprint of its DER, in hex.
    pub sha256: String,
    /// Its DNS and IP identities.
    pub names: Vec<String>,
    /// Whether it verified against `--cacert` for the connection's name: `None` when no
    /// trust anchors were given.
    pub verified: Option<bool>,
}

/// Everything the probe found.
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct ProbeReport {
    /// The address connected to.
    pub address: SocketAddr,
    /// The SNI sent, if any.
    pub sni: Option<String>,
    /// The HTTP version the connection speaks.
    pub protocol: Protocol,
    /// True when the server did not offer HTTP/2.
    pub fell_back_to_http1: bool,
    /// The presented certificate.
    pub certificate: CertSummary,
    /// The ORIGIN frame's entries, if the server sent one.
    pub origin_frame: Option<Vec<String>>,
    /// One result per name tried.
    pub results: Vec<NameResult>,
}

impl ProbeReport {
    /// The severity of the worst verdict: [`Severity::Fine`] when no name was tried.
    pub fn worst(&self) -> Severity {
        self.results
            .iter()
            .map(|r| r.verdict.severity())
            .max()
            .unwrap_or(Severity::Fine)
    }
}

/// Probes a server. Errors are failures to probe at all (resolution, connection, TLS,
/// timeout on the first connection); per-name failures are [`Verdict::Failed`] results.
pub async fn probe(options: &ProbeOptions) -> Result<ProbeReport, Error> {
    let target = Target::parse(&options.url)?;
    let address = match options.resolve {
        Some(address) => address,
        None => resolve(&target, options.timeout).await?,
    };
    let sni = match (options.no_sni, &options.sni) {
        (true, _) => None,
        (false, Some(name)) => Some(name.clone()),
        (false, None) => target.host.as_name().map(|n| n.as_str().to_owned()),
    };
    let tls = TlsSetup::new(options)?;
    let first = connect(&tls, address, sni.as_deref(), options.timeout).await?;
    let certificate = summarise(
        &first.peer_certificate,
        tls.verified(&first, sni.as_deref()),
    );
    let identities = Identities::from_der(&first.peer_certificate).map_err(|e| {
        Error::new(
            ErrorKind::Tls,
            format!("cannot read the server's certificate: {e}"),
        )
        .with_source(e)
    })?;

    let mut names: Vec<(String, NameSource)> = Vec::new();
    let mut add = |name: String, source: NameSource| {
        if !names.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name)) {
            names.push((name, source));
        }
    };
    if let Some(sni) = &sni {
        add(sni.clone(), NameSource::Sni);
    }
    for pattern in identities.patterns() {
        if let Some(name) = probe_name(&pattern) {
            add(name, NameSource::Certificate);
        }
    }
    for name in &options.names {
        add(name.clone(), NameSource::Option);
    }

    let mut session = Session::start(first, options.timeout).await?;
    let origin_frame = session.origin_frame();
    if let Some(origins) = &origin_frame {
        for origin in origins {
            if let Some(host) = origin.strip_prefix("https://") {
                let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
                add(host.to_owned(), NameSource::OriginFrame);
            }
        }
    }

    let mut results = Vec::new();
    for (name, source) in names {
        let host = Host::parse(name.as_bytes()).ok();
        let covered = host.as_ref().is_some_and(|h| identities.covers(h));
        let authority = authority(&name, target.port);
        let outcome = session
            .request(
                &authority,
                &target.path,
                options.head,
                &tls,
                address,
                sni.as_deref(),
            )
            .await;
        let own = sni
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case(&name));
        let (status, error) = match &outcome {
            Ok((status, reason)) => (Some(*status), reason.clone()),
            Err(e) => (None, Some(e.to_string())),
        };
        let mut verdict = match (status, covered, own) {
            (None, _, _) => Verdict::Failed,
            (Some(421), _, true) => Verdict::MisdirectedOwn,
            (Some(421), true, false) => Verdict::Misdirected,
            (Some(421 | 400), false, _) => Verdict::RefusedUncovered,
            (Some(_), false, _) => Verdict::ServedUncovered,
            (Some(_), true, true) => Verdict::ServedOwn,
            (Some(_), true, false) => Verdict::Served,
        };
        let mut fresh = None;
        let served_shared = matches!(verdict, Verdict::Served | Verdict::ServedUncovered);
        if served_shared
            && options.client_cert.is_none()
            && host.as_ref().is_some_and(|h| h.as_name().is_some())
        {
            let check = fresh_check(&tls, address, &name, &authority, &target.path, options).await;
            if check.client_cert_requested && !matches!(check.status, Some(200..=399)) {
                verdict = Verdict::Bypass;
            }
            fresh = Some(check);
        }
        results.push(NameResult {
            name,
            source,
            covered,
            status,
            error,
            fresh,
            verdict,
        });
    }
    Ok(ProbeReport {
        address,
        sni,
        protocol: session.protocol(),
        fell_back_to_http1: session.protocol() == Protocol::Http1,
        certificate,
        origin_frame,
        results,
    })
}

/// The name a pattern is tried as.
fn probe_name(pattern: &Pattern) -> Option<String> {
    match pattern {
        Pattern::Dns(dns) => Some(dns.example_host().as_str().to_owned()),
        Pattern::Ip(ip) => Some(Host::from(*ip).to_string()),
        _ => None,
    }
}

fn authority(name: &str, port: u16) -> String {
    match port {
        443 => name.to_owned(),
        port => format!("{name}:{port}"),
    }
}

/// The parsed URL.
#[derive(Debug)]
struct Target {
    host: Host,
    port: u16,
    path: String,
}

impl Target {
    fn parse(url: &str) -> Result<Self, Error> {
        let bad = |why: &str| {
            Error::new(
                ErrorKind::Invalid,
                format!("{url:?} is not an https URL: {why}"),
            )
        };
        let rest = match url.get(..8) {
            Some(scheme) if scheme.eq_ignore_ascii_case("https://") => &url[8..],
            _ => return Err(bad("it must start with https://")),
        };
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let authority = Authority::parse(authority.as_bytes())
            .map_err(|e| bad(&e.to_string()).with_source(e))?;
        let path = if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/{path}")
        };
        Ok(Self {
            port: authority.port_or(443),
            host: authority.into_parts().0,
            path,
        })
    }
}

async fn resolve(target: &Target, timeout: Duration) -> Result<SocketAddr, Error> {
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
struct TlsSetup {
    verifier: Option<Arc<dyn ServerCertVerifier>>,
    client_cert: Option<Arc<rustls::sign::CertifiedKey>>,
}

impl TlsSetup {
    fn new(options: &ProbeOptions) -> Result<Self, Error> {
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

    fn verified(&self, conn: &Connected, sni: Option<&str>) -> Option<bool> {
        let verifier = self.verifier.as_ref()?;
        let name = sni.and_then(|s| ServerName::try_from(s.to_owned()).ok())?;
        let (end_entity, intermediates) = conn.chain.split_first()?;
        Some(
            verifier
                .verify_server_cert(end_entity, intermediates, &name, &[], UnixTime::now())
                .is_ok(),
        )
    }
}

fn read_pem_certs(path: &PathBuf) -> Result<Vec<CertificateDer<'static>>, Error> {
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
struct Connected {
    stream: tokio_rustls::client::TlsStream<TcpStream>,
    peer_certificate: Vec<u8>,
    chain: Vec<CertificateDer<'static>>,
    alpn: Option<Vec<u8>>,
    client_cert_requested: Arc<Mutex<bool>>,
}

async fn connect(
    tls: &TlsSetup,
    address: SocketAddr,
    sni: Option<&str>,
    timeout: Duration,
) -> Result<Connected, Error> {
    let requested = Arc::new(Mutex::new(false));
    let mut config = tls.config(requested.clone());
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
            Error::new(
                ErrorKind::Tls,
                format!("TLS handshake with {address} failed: {e}"),
            )
            .with_source(e)
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
        client_cert_requested: requested,
    })
}

fn summarise(der: &[u8], verified: Option<bool>) -> CertSummary {
    let certificate = misdirect_certmatch::Certificate::from_der(der).ok();
    CertSummary {
        subject: certificate
            .as_ref()
            .map(|c| c.id().subject().to_owned())
            .unwrap_or_default(),
        sha256: certificate
            .as_ref()
            .map(|c| c.id().fingerprint_hex())
            .unwrap_or_default(),
        names: certificate
            .as_ref()
            .map(|c| c.identities().patterns().map(|p| p.to_string()).collect())
            .unwrap_or_default(),
        verified,
    }
}

/// HTTP over the shared connection: HTTP/2 when negotiated, else HTTP/1.1 (reconnecting
/// with the same SNI when the server closes after a response).
enum Session {
    H2 {
        send: h2::client::SendRequest<Bytes>,
        frames: Arc<Mutex<FrameLog>>,
        timeout: Duration,
    },
    H1 {
        sender: Option<hyper::client::conn::http1::SendRequest<Empty<Bytes>>>,
        timeout: Duration,
    },
}

impl Session {
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
            return Ok(Self::H2 {
                send,
                frames,
                timeout,
            });
        }
        Ok(Self::H1 {
            sender: Some(h1_handshake(conn.stream, timeout).await?),
            timeout,
        })
    }

    fn protocol(&self) -> Protocol {
        match self {
            Self::H2 { .. } => Protocol::Http2,
            Self::H1 { .. } => Protocol::Http1,
        }
    }

    fn origin_frame(&self) -> Option<Vec<String>> {
        match self {
            Self::H2 { frames, .. } => frames.lock().ok().and_then(|log| log.origins.clone()),
            Self::H1 { .. } => None,
        }
    }

    /// Sends one request; returns the status and the 421 reason code if the body gave one.
    async fn request(
        &mut self,
        authority: &str,
        path: &str,
        head: bool,
        tls: &TlsSetup,
        address: SocketAddr,
        sni: Option<&str>,
    ) -> Result<(u16, Option<String>), Error> {
        let method = if head {
            http::Method::HEAD
        } else {
            http::Method::GET
        };
        match self {
            Self::H2 { send, timeout, .. } => {
                let uri = format!("https://{authority}{path}");
                let request = http::Request::builder()
                    .method(method)
                    .uri(uri)
                    .header(http::header::ACCEPT, "application/problem+json, */*;q=0.1")
                    .header(
                        http::header::USER_AGENT,
                        concat!("misdirect-probe/", env!("CARGO_PKG_VERSION")),
                    )
                    .body(())
                    .map_err(|e| {
                        Error::new(
                            ErrorKind::Invalid,
                            format!("bad request for {authority}: {e}"),
                        )
                        .with_source(e)
                    })?;
                let timeout = *timeout;
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
                        if bytes.len() < 16 * 1024 {
                            bytes.extend_from_slice(&chunk);
                        }
                    }
                    Ok::<_, Error>((status, reason_code(&bytes)))
                };
                tokio::time::timeout(timeout, work).await.map_err(|_| {
                    Error::new(
                        ErrorKind::Timeout,
                        format!("no answer for {authority} within {timeout:?}"),
                    )
                })?
            }
            Self::H1 { sender, timeout } => {
                let timeout = *timeout;
                if sender.as_ref().is_none_or(|s| s.is_closed()) {
                    let conn = connect(tls, address, sni, timeout).await?;
                    *sender = Some(h1_handshake(conn.stream, timeout).await?);
                }
                // Invariant: set just above when it was missing or closed.
                let s = sender.as_mut().expect("an HTTP/1.1 connection");
                let request = http::Request::builder()
                    .method(method)
                    .uri(path)
                    .header(http::header::HOST, authority)
                    .header(http::header::ACCEPT, "application/problem+json, */*;q=0.1")
                    .header(
                        http::header::USER_AGENT,
                        concat!("misdirect-probe/", env!("CARGO_PKG_VERSION")),
                    )
                    .body(Empty::<Bytes>::new())
                    .map_err(|e| {
                        Error::new(
                            ErrorKind::Invalid,
                            format!("bad request for {authority}: {e}"),
                        )
                        .with_source(e)
                    })?;
                let work = async {
                    s.ready().await.map_err(closed)?;
                    let response = s.send_request(request).await.map_err(closed)?;
                    let status = response.status().as_u16();
                    let body = response
                        .into_body()
                        .collect()
                        .await
                        .map_err(closed)?
                        .to_bytes();
                    Ok::<_, Error>((status, reason_code(&body)))
                };
                tokio::time::timeout(timeout, work).await.map_err(|_| {
                    Error::new(
                        ErrorKind::Timeout,
                        format!("no answer for {authority} within {timeout:?}"),
                    )
                })?
            }
        }
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

/// The `code` (problem+json) or `reason` (JSON) member of a 421 body, if there is one.
fn reason_code(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    for key in ["\"code\":\"", "\"reason\":\""] {
        if let Some(start) = text.find(key) {
            let rest = &text[start + key.len()..];
            let end = rest.find('"')?;
            return Some(rest[..end].to_owned());
        }
    }
    None
}

async fn fresh_check(
    tls: &TlsSetup,
    address: SocketAddr,
    name: &str,
    authority: &str,
    path: &str,
    options: &ProbeOptions,
) -> FreshCheck {
    let conn = match connect(tls, address, Some(name), options.timeout).await {
        Ok(conn) => conn,
        Err(e) => {
            return FreshCheck {
                client_cert_requested: false,
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

impl ProbeReport {
    /// The exit status: 3 when a request failed, 2 for violations (bypass, a name served
    /// without certificate cover, a 421 for the connection's own name), 1 for hazards
    /// (421 on a coalesced connection), else 0.
    pub fn exit_code(&self) -> u8 {
        self.worst().exit_code()
    }

    /// A readable report.
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "connected to {} with {}, over {}{}",
            self.address,
            self.sni
                .as_deref()
                .map_or("no SNI".to_owned(), |s| format!("SNI {s}")),
            self.protocol,
            if self.fell_back_to_http1 {
                " (the server did not offer HTTP/2: HTTP/1.1 connections are not coalesced by browsers)"
            } else {
                ""
            },
        );
        let verified = match self.certificate.verified {
            Some(true) => "verified with --cacert",
            Some(false) => "NOT valid for the SNI with --cacert",
            None => "not verified (no --cacert)",
        };
        let _ = writeln!(
            out,
            "certificate: {} (sha256 {}), {verified}",
            self.certificate.subject, self.certificate.sha256
        );
        let _ = writeln!(out, "  covers: {}", self.certificate.names.join(", "));
        match &self.origin_frame {
            Some(origins) => {
                let _ = writeln!(out, "ORIGIN frame: {}", origins.join(", "));
            }
            None if self.protocol == Protocol::Http2 => {
                let _ = writeln!(out, "ORIGIN frame: none");
            }
            None => {}
        }
        let _ = writeln!(
            out,
            "\n{:<40} {:<6} {:<18} meaning",
            "name", "status", "verdict"
        );
        for r in &self.results {
            let status = r.status.map_or("-".to_owned(), |s| s.to_string());
            let mut meaning = r.verdict.explanation().to_owned();
            if let Some(code) = &r.error {
                let _ = write!(meaning, " [{code}]");
            }
            if let Some(fresh) = &r.fresh
                && r.verdict == Verdict::Bypass
            {
                let _ = write!(
                    meaning,
                    "; fresh connection: client certificate requested, {}",
                    fresh.status.map_or_else(
                        || fresh.failure.clone().unwrap_or_default(),
                        |s| format!("status {s}")
                    )
                );
            }
            let _ = writeln!(
                out,
                "{:<40} {:<6} {:<18} {meaning}",
                r.name,
                status,
                r.verdict.code()
            );
        }
        let count = |severities: &[Severity]| {
            self.results
                .iter()
                .filter(|r| severities.contains(&r.verdict.severity()))
                .count()
        };
        // A failed request is counted with the hazards.
        let _ = writeln!(
            out,
            "\nsummary: {} fine, {} hazard(s), {} violation(s)",
            count(&[Severity::Fine]),
            count(&[Severity::Hazard, Severity::Failure]),
            count(&[Severity::Violation])
        );
        out
    }

    /// The JSON form (documented in `docs/probe.md`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "version": 1,
            "address": self.address.to_string(),
            "sni": self.sni,
            "protocol": self.protocol.as_str(),
            "fell_back_to_http1": self.fell_back_to_http1,
            "certificate": {
                "subject": self.certificate.subject,
                "sha256": self.certificate.sha256,
                "names": self.certificate.names,
                "verified": self.certificate.verified,
            },
            "origin_frame": self.origin_frame,
            "results": self.results.iter().map(|r| serde_json::json!({
                "name": r.name,
                "source": r.source.as_str(),
                "covered": r.covered,
                "status": r.status,
                "reason": r.error,
                "verdict": r.verdict.code(),
                "fresh": r.fresh.as_ref().map(|f| serde_json::json!({
                    "client_cert_requested": f.client_cert_requested,
                    "status": f.status,
                    "failure": f.failure,
                })),
            })).collect::<Vec<_>>(),
            "exit_code": self.exit_code(),
        })
    }
}

/// Parses `--resolve`: `HOST:ADDR` (curl's form, without the port; the host must be the
/// URL's) or `ADDR`, where ADDR is an IP address with or without a port. Without a port,
/// the URL's port is used.
pub fn parse_resolve(value: &str, url: &str) -> Result<SocketAddr, Error> {
    let target = Target::parse(url)?;
    let bad = || {
        Error::new(
            ErrorKind::Invalid,
            format!(
                "--resolve {value:?}: expected HOST:ADDR or ADDR (an IP address, optionally with :PORT)"
            ),
        )
    };
    let address = |text: &str| -> Option<SocketAddr> {
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Some(addr);
        }
        let ip = text.trim_start_matches('[').trim_end_matches(']');
        ip.parse::<std::net::IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, target.port))
    };
    if let Some(addr) = address(value) {
        return Ok(addr);
    }
    // HOST:ADDR or HOST:PORT:ADDR (curl).
    let (host, rest) = value.split_once(':').ok_or_else(bad)?;
    let rest = match rest.split_once(':') {
        Some((port, addr)) if port.parse::<u16>().is_ok() && !addr.is_empty() => {
            let port: u16 = port.parse().map_err(|_| bad())?;
            return match address(addr) {
                Some(a) if host.eq_ignore_ascii_case(&target.host.to_string()) => {
                    Ok(SocketAddr::new(a.ip(), port))
                }
                Some(_) => Err(Error::new(
                    ErrorKind::Invalid,
                    format!(
                        "--resolve names {host}, but the URL's host is {}",
                        target.host
                    ),
                )),
                None => Err(bad()),
            };
        }
        _ => rest,
    };
    match address(rest) {
        Some(_) if !host.eq_ignore_ascii_case(&target.host.to_string()) => Err(Error::new(
            ErrorKind::Invalid,
            format!(
                "--resolve names {host}, but the URL's host is {}",
                target.host
            ),
        )),
        Some(addr) => Ok(addr),
        None => Err(bad()),
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

    #[test]
    fn urls() {
        let t = Target::parse("https://A.example:8443/x?y").unwrap();
        assert_eq!(
            (t.host.to_string().as_str(), t.port, t.path.as_str()),
            ("a.example", 8443, "/x?y")
        );
        let t = Target::parse("HTTPS://[::1]").unwrap();
        assert_eq!((t.port, t.path.as_str()), (443, "/"));
        for bad in [
            "http://a.example",
            "a.example",
            "https://user@a.example",
            "https://a b",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reason_codes_from_bodies() {
        assert_eq!(
            reason_code(br#"{"type":"about:blank","code":"unknown-host"}"#).as_deref(),
            Some("unknown-host")
        );
        assert_eq!(
            reason_code(br#"{"error":"Misdirected Request","reason":"no-sni"}"#).as_deref(),
            Some("no-sni")
        );
        assert_eq!(reason_code(b"<html>421</html>"), None);
    }

    fn result(
        name: &str,
        source: NameSource,
        status: Option<u16>,
        error: Option<&str>,
        verdict: Verdict,
    ) -> NameResult {
        NameResult {
            name: name.to_owned(),
            source,
            covered: !matches!(
                verdict,
                Verdict::ServedUncovered | Verdict::RefusedUncovered
            ),
            status,
            error: error.map(str::to_owned),
            fresh: None,
            verdict,
        }
    }

    /// A report with every verdict and every source, over HTTP/2 with an ORIGIN frame.
    fn full_report() -> ProbeReport {
        let bypass = |name: &str, status, failure: Option<&str>| NameResult {
            fresh: Some(FreshCheck {
                client_cert_requested: true,
                status,
                failure: failure.map(str::to_owned),
            }),
            ..result(
                name,
                NameSource::OriginFrame,
                Some(200),
                None,
                Verdict::Bypass,
            )
        };
        ProbeReport {
            address: SocketAddr::from(([127, 0, 0, 1], 8443)),
            sni: Some("a.test".to_owned()),
            protocol: Protocol::Http2,
            fell_back_to_http1: false,
            certificate: CertSummary {
                subject: "CN=a.test".to_owned(),
                sha256: "ab12".to_owned(),
                names: vec!["a.test".to_owned(), "*.b.test".to_owned()],
                verified: None,
            },
            origin_frame: Some(vec!["https://a.test".to_owned()]),
            results: vec![
                result(
                    "a.test",
                    NameSource::Sni,
                    Some(200),
                    None,
                    Verdict::ServedOwn,
                ),
                result(
                    "b.test",
                    NameSource::Certificate,
                    Some(200),
                    None,
                    Verdict::Served,
                ),
                result(
                    "secure.test",
                    NameSource::Certificate,
                    Some(421),
                    Some("client-cert-required"),
                    Verdict::Misdirected,
                ),
                result(
                    "own.test",
                    NameSource::Certificate,
                    Some(421),
                    None,
                    Verdict::MisdirectedOwn,
                ),
                bypass("bypass.test", Some(403), None),
                bypass("bypass2.test", None, Some("the connection failed: x")),
                result(
                    "c.test",
                    NameSource::Option,
                    Some(200),
                    None,
                    Verdict::ServedUncovered,
                ),
                result(
                    "d.test",
                    NameSource::Option,
                    Some(421),
                    Some("unknown-host"),
                    Verdict::RefusedUncovered,
                ),
                result(
                    "e.test",
                    NameSource::Option,
                    None,
                    Some("the connection failed: closed"),
                    Verdict::Failed,
                ),
            ],
        }
    }

    /// The text and JSON forms, to the byte: scripts parse both.
    #[test]
    fn report_output_is_stable() {
        const EXPECTED_TEXT: &str = r#"connected to 127.0.0.1:8443 with SNI a.test, over h2
certificate: CN=a.test (sha256 ab12), not verified (no --cacert)
  covers: a.test, *.b.test
ORIGIN frame: https://a.test

name                                     status verdict            meaning
a.test                                   200    served-own         the connection's own name, served
b.test                                   200    served             served on the shared connection (coalescing works)
secure.test                              421    misdirected        421 on the shared connection: coalescing browsers retry on a new connection [client-cert-required]
own.test                                 421    misdirected-own    421 for the connection's own name: nobody can reach it
bypass.test                              200    bypass             BYPASS: served on the shared connection, but a fresh connection for it demands a client certificate; fresh connection: client certificate requested, status 403
bypass2.test                             200    bypass             BYPASS: served on the shared connection, but a fresh connection for it demands a client certificate; fresh connection: client certificate requested, the connection failed: x
c.test                                   200    served-uncovered   served although the certificate does not cover it (RFC 9110 §7.4 violation)
d.test                                   421    refused-uncovered  not covered by the certificate, and refused: correct [unknown-host]
e.test                                   -      failed             the request failed [the connection failed: closed]

summary: 3 fine, 2 hazard(s), 4 violation(s)
"#;
        const EXPECTED_JSON: &str = concat!(
            r#"{"address":"127.0.0.1:8443","certificate":{"names":["a.test","*.b.test"],"sha256":"ab12","subject":"CN=a.test","verified":null},"exit_code":3,"fell_back_to_http1":false,"origin_frame":["https://a.test"],"protocol":"h2","results":["#,
            r#"{"covered":true,"fresh":null,"name":"a.test","reason":null,"source":"sni","status":200,"verdict":"served-own"},"#,
            r#"{"covered":true,"fresh":null,"name":"b.test","reason":null,"source":"certificate","status":200,"verdict":"served"},"#,
            r#"{"covered":true,"fresh":null,"name":"secure.test","reason":"client-cert-required","source":"certificate","status":421,"verdict":"misdirected"},"#,
            r#"{"covered":true,"fresh":null,"name":"own.test","reason":null,"source":"certificate","status":421,"verdict":"misdirected-own"},"#,
            r#"{"covered":true,"fresh":{"client_cert_requested":true,"failure":null,"status":403},"name":"bypass.test","reason":null,"source":"origin-frame","status":200,"verdict":"bypass"},"#,
            r#"{"covered":true,"fresh":{"client_cert_requested":true,"failure":"the connection failed: x","status":null},"name":"bypass2.test","reason":null,"source":"origin-frame","status":200,"verdict":"bypass"},"#,
            r#"{"covered":false,"fresh":null,"name":"c.test","reason":null,"source":"option","status":200,"verdict":"served-uncovered"},"#,
            r#"{"covered":false,"fresh":null,"name":"d.test","reason":"unknown-host","source":"option","status":421,"verdict":"refused-uncovered"},"#,
            r#"{"covered":true,"fresh":null,"name":"e.test","reason":"the connection failed: closed","source":"option","status":null,"verdict":"failed"}"#,
            r#"],"sni":"a.test","version":1}"#,
        );

        let report = full_report();
        assert_eq!(report.to_text(), EXPECTED_TEXT);
        assert_eq!(report.to_json().to_string(), EXPECTED_JSON);
        assert_eq!(report.worst(), Severity::Failure);
        assert_eq!(report.exit_code(), 3);

        let mut empty = full_report();
        empty.sni = None;
        empty.protocol = Protocol::Http1;
        empty.fell_back_to_http1 = true;
        empty.origin_frame = None;
        empty.results.clear();
        assert_eq!(
            empty.to_text(),
            r#"connected to 127.0.0.1:8443 with no SNI, over http/1.1 (the server did not offer HTTP/2: HTTP/1.1 connections are not coalesced by browsers)
certificate: CN=a.test (sha256 ab12), not verified (no --cacert)
  covers: a.test, *.b.test

name                                     status verdict            meaning

summary: 0 fine, 0 hazard(s), 0 violation(s)
"#
        );
        assert_eq!(empty.worst(), Severity::Fine);
        assert_eq!(empty.exit_code(), 0);
    }

    /// The exit status is the worst verdict's: a failed request outranks a violation,
    /// which outranks a hazard.
    #[test]
    fn exit_code_is_the_worst_severity() {
        let mut report = full_report();
        let cases = [
            (Verdict::Failed, 3),
            (Verdict::ServedUncovered, 2),
            (Verdict::Bypass, 2),
            (Verdict::MisdirectedOwn, 2),
            (Verdict::Misdirected, 1),
            (Verdict::Served, 0),
        ];
        // Drop the worst verdicts one kind at a time.
        for (verdict, code) in cases {
            assert_eq!(report.exit_code(), code, "worst left: {verdict}");
            report.results.retain(|r| r.verdict != verdict);
        }
        assert_eq!(report.results.len(), 2, "{report:#?}");
        assert_eq!(report.exit_code(), 0);
    }
}
