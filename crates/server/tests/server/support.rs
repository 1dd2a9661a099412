//! Test harness: certificates made with rcgen, a server started in-process from a TOML
//! configuration on an ephemeral port, and Rust clients (tokio-rustls + hyper for HTTP/1.1,
//! h2 for HTTP/2) with a chosen SNI (or none), chosen `:authority`/Host, optional client
//! certificate.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use misdirect_server::{Config, ReloadHandle, Server};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use rustls::client::{ClientSessionStore, Tls12ClientSessionValue, Tls13ClientSessionValue};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, NamedGroup, RootCertStore};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A fresh scratch directory under the system temp dir.
pub fn scratch_dir(label: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "misdirect-test-{}-{label}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A CA that issues server and client certificates into a directory.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
    der: CertificateDer<'static>,
}

/// A client identity: chain and key.
#[derive(Clone)]
pub struct ClientId {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: Arc<PrivateKeyDer<'static>>,
}

impl Ca {
    pub fn new(name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        Self {
            pem: cert.pem(),
            der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// Writes `<stem>.pem` (leaf + CA) and `<stem>.key` for these SANs into `dir`.
    pub fn server_cert(&self, dir: &Path, stem: &str, names: &[&str]) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        std::fs::write(dir.join(format!("{stem}.pem")), cert.pem() + &self.pem).unwrap();
        std::fs::write(dir.join(format!("{stem}.key")), key.serialize_pem()).unwrap();
    }

    /// Writes the CA certificate as `<stem>.pem`.
    pub fn write_ca(&self, dir: &Path, stem: &str) {
        std::fs::write(dir.join(format!("{stem}.pem")), &self.pem).unwrap();
    }

    pub fn client(&self, name: &str) -> ClientId {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        ClientId {
            chain: vec![cert.der().clone()],
            key: Arc::new(PrivateKeyDer::Pkcs8(key.serialize_der().into())),
        }
    }

    pub fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.der.clone()).unwrap();
        roots
    }
}

/// A server running in this process.
pub struct TestServer {
    pub addr: SocketAddr,
    /// Reloads re-read the file the server started from (`start`), or take a `Config`.
    pub reload: ReloadHandle,
    /// The admin listener's address, when `[admin]` is configured.
    pub admin: Option<SocketAddr>,
    /// Every listener's address, in configuration order (`addr` is the first).
    pub addrs: Vec<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    /// Starts the configuration file at `path` on its (ephemeral) address.
    pub async fn start(path: &Path) -> Self {
        let config = Config::from_file(path).unwrap_or_else(|e| panic!("{e}"));
        let path = path.to_path_buf();
        Self::run(Server::bind(config).await, Some(path))
    }

    pub async fn start_config(config: Config) -> Self {
        Self::run(Server::bind(config).await, None)
    }

    fn run(server: Result<Server, misdirect_server::Error>, path: Option<PathBuf>) -> Self {
        let mut server = server.unwrap_or_else(|e| panic!("{e}"));
        if let Some(path) = path {
            server = server.reload_from(move || Config::from_file(&path));
        }
        let reload = server.reload_handle();
        let admin = server.admin_addr();
        let addrs = server.local_addrs();
        let addr = server.local_addrs()[0];
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            reload,
            admin,
            addrs,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Signals shutdown and waits for `run` to return.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    H1,
    H2,
}

/// How to connect: SNI, the name to verify the certificate as, client certificate, ALPN.
#[derive(Clone)]
pub struct Client {
    pub roots: Arc<RootCertStore>,
    pub sni: Option<String>,
    /// The name the server certificate is verified for; the SNI when there is one.
    pub verify_as: String,
    pub cert: Option<ClientId>,
    pub proto: Proto,
    pub tls13_only: bool,
    pub tls12_only: bool,
    pub sessions: Option<Arc<dyn ClientSessionStore>>,
    /// Accept any server certificate (to send an SNI the certificate does not cover).
    pub insecure: bool,
    /// The rustls configuration, built once and shared by clones: rustls resumes a
    /// session only with the configuration (verifier, client certificate) that made it.
    config: Arc<OnceLock<Arc<ClientConfig>>>,
}

impl Client {
    pub fn new(roots: &RootCertStore, sni: Option<&str>, default_name: &str, proto: Proto) -> Self {
        Self {
            roots: Arc::new(roots.clone()),
            sni: sni.map(str::to_string),
            verify_as: sni.unwrap_or(default_name).to_string(),
            cert: None,
            proto,
            tls13_only: false,
            tls12_only: false,
            sessions: None,
            insecure: false,
            config: Arc::default(),
        }
    }

    pub fn cert(mut self, cert: Option<ClientId>) -> Self {
        self.cert = cert;
        self
    }

    fn tls_config(&self) -> Arc<ClientConfig> {
        self.config.get_or_init(|| self.build_config()).clone()
    }

    /// This client with another SNI, sharing the rustls configuration.
    pub fn with_sni(&self, sni: &str) -> Self {
        let mut client = self.clone();
        client.sni = Some(sni.to_string());
        client.verify_as = sni.to_string();
        client
    }

    fn build_config(&self) -> Arc<ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions: &[&rustls::SupportedProtocolVersion] = if self.tls13_only {
            &[&rustls::version::TLS13]
        } else if self.tls12_only {
            &[&rustls::version::TLS12]
        } else {
            rustls::DEFAULT_VERSIONS
        };
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(self.roots.clone());
        let mut config = match &self.cert {
            Some(id) => builder
                .with_client_auth_cert(id.chain.clone(), id.key.clone_key())
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        config.enable_sni = self.sni.is_some();
        if self.insecure {
            let provider = config.crypto_provider().clone();
            config
                .dangerous()
                .set_certificate_verifier(Arc::new(AcceptAny(provider)));
        }
        config.alpn_protocols = match self.proto {
            Proto::H1 => vec![b"http/1.1".to_vec()],
            Proto::H2 => vec![b"h2".to_vec()],
        };
        if let Some(store) = &self.sessions {
            config.resumption = rustls::client::Resumption::store(store.clone());
        }
        Arc::new(config)
    }

    /// TCP + TLS.
    pub async fn tls(&self, addr: SocketAddr) -> std::io::Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(addr).await?;
        let name = match (&self.sni, self.insecure) {
            (Some(sni), true) => sni.clone(),
            _ => self.verify_as.clone(),
        };
        let name = ServerName::try_from(name).unwrap();
        let stream = TlsConnector::from(self.tls_config())
            .connect(name, tcp)
            .await?;
        // TLS 1.3 servers can reject a client certificate after the client thinks the
        // handshake is done; a zero-length read surfaces that alert.
        Ok(stream)
    }

    /// TCP + TLS + HTTP handshake.
    pub async fn connect(&self, addr: SocketAddr) -> std::io::Result<Conn> {
        let tls = self.tls(addr).await?;
        Conn::over(tls, self.proto).await
    }
}

/// An HTTP connection.
pub enum Conn {
    H1 {
        sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
        driver: tokio::task::JoinHandle<()>,
    },
    H2 {
        sender: h2::client::SendRequest<Bytes>,
        driver: tokio::task::JoinHandle<()>,
    },
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The reason code in a text/plain refusal body ("Reason: code").
    pub fn reason(&self) -> Option<String> {
        self.text()
            .lines()
            .find_map(|l| l.strip_prefix("Reason: ").map(str::to_string))
    }
}

impl Conn {
    pub async fn over(tls: TlsStream<TcpStream>, proto: Proto) -> std::io::Result<Self> {
        let io_err = |e: &dyn std::fmt::Display| std::io::Error::other(e.to_string());
        match proto {
            Proto::H1 => {
                let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                    .await
                    .map_err(|e| io_err(&e))?;
                let driver = tokio::spawn(async move {
                    let _ = connection.await;
                });
                Ok(Self::H1 { sender, driver })
            }
            Proto::H2 => {
                let (sender, connection) =
                    h2::client::handshake(tls).await.map_err(|e| io_err(&e))?;
                let driver = tokio::spawn(async move {
                    let _ = connection.await;
                });
                Ok(Self::H2 { sender, driver })
            }
        }
    }

    /// Sends a request (no body). For HTTP/2 the URI's authority is `:authority`.
    pub async fn send(&mut self, request: Request<()>) -> Result<Resp, String> {
        match self {
            Self::H1 { sender, .. } => {
                sender.ready().await.map_err(|e| e.to_string())?;
                let response = sender
                    .send_request(request.map(|()| Empty::new()))
                    .await
                    .map_err(|e| e.to_string())?;
                let (parts, body) = response.into_parts();
                let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
                Ok(Resp {
                    status: parts.status.as_u16(),
                    headers: parts.headers,
                    body,
                })
            }
            Self::H2 { sender, .. } => {
                let mut ready = sender.clone().ready().await.map_err(|e| e.to_string())?;
                let (response, _) = ready
                    .send_request(request, true)
                    .map_err(|e| e.to_string())?;
                let response: Response<h2::RecvStream> =
                    response.await.map_err(|e| e.to_string())?;
                let (parts, mut body) = response.into_parts();
                let mut bytes = Vec::new();
                while let Some(chunk) = body.data().await {
                    let chunk = chunk.map_err(|e| e.to_string())?;
                    let _ = body.flow_control().release_capacity(chunk.len());
                    bytes.extend_from_slice(&chunk);
                }
                Ok(Resp {
                    status: parts.status.as_u16(),
                    headers: parts.headers,
                    body: bytes.into(),
                })
            }
        }
    }

    /// Whether the server closed the connection (within a short wait).
    pub async fn closed_by_server(&mut self) -> bool {
        let driver = match self {
            Self::H1 { driver, .. } | Self::H2 { driver, .. } => driver,
        };
        tokio::time::timeout(Duration::from_millis(500), driver)
            .await
            .is_ok()
    }
}

/// A request with `authority` as HTTP/2 `:authority` or HTTP/1.1 Host, plus extra Host
/// lines.
pub fn request(proto: Proto, authority: Option<&str>, hosts: &[&str]) -> Request<()> {
    let mut builder = Request::get(match (proto, authority) {
        (Proto::H2, Some(authority)) => format!("https://{authority}/"),
        _ => "/".to_string(),
    });
    if proto == Proto::H1 {
        builder = builder.version(http::Version::HTTP_11);
        if let Some(authority) = authority {
            builder = builder.header(http::header::HOST, authority);
        }
    } else {
        builder = builder.version(http::Version::HTTP_2);
    }
    for host in hosts {
        builder = builder.header(http::header::HOST, *host);
    }
    builder.body(()).unwrap()
}

/// A client session store that offers its latest TLS 1.3 ticket to *any* server name,
/// to try resuming one virtual host's session on another.
#[derive(Debug, Default)]
pub struct PromiscuousStore {
    tickets: Mutex<Vec<Tls13ClientSessionValue>>,
}

impl ClientSessionStore for PromiscuousStore {
    fn set_kx_hint(&self, _: ServerName<'static>, _: NamedGroup) {}
    fn kx_hint(&self, _: &ServerName<'_>) -> Option<NamedGroup> {
        None
    }
    fn set_tls12_session(&self, _: ServerName<'static>, _: Tls12ClientSessionValue) {}
    fn tls12_session(&self, _: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        None
    }
    fn remove_tls12_session(&self, _: &ServerName<'static>) {}
    fn insert_tls13_ticket(&self, _: ServerName<'static>, value: Tls13ClientSessionValue) {
        self.tickets.lock().unwrap().push(value);
    }
    fn take_tls13_ticket(&self, _: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        self.tickets.lock().unwrap().pop()
    }
}

impl PromiscuousStore {
    pub fn clear(&self) {
        self.tickets.lock().unwrap().clear();
    }
    pub fn len(&self) -> usize {
        self.tickets.lock().unwrap().len()
    }
}

/// Accepts any server certificate, checking only the handshake signatures.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
