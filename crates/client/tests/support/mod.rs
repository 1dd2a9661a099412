//! The embedded misdirect set-up served on an ephemeral loopback port, and what clients
//! need to reach it.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use bytes::Bytes;
use misdirect_client::{Client, ClientBuilder, StaticResolver, Stats};
use misdirect_coalesce::ReuseMode;
use misdirect_server::embedded::{CA_FILE, CLIENT_CERT_FILE, CLIENT_KEY_FILE, Embedded};
use misdirect_server::{Config, Server};
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
pub const OTHER_LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

/// The embedded set-up served on an ephemeral loopback port.
pub struct Setup {
    pub port: u16,
    dir: PathBuf,
    config: Config,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Setup {
    pub async fn start(label: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("misdirect-client-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let embedded = Embedded::generate(&dir, SocketAddr::new(LOCAL, 0)).unwrap();
        embedded.write_files().unwrap();
        let mut config = embedded.into_config();
        let (port, stop, task) = Self::serve(config.clone()).await;
        config.override_addr(None, Some(port)).unwrap();
        Self {
            port,
            dir,
            config,
            stop,
            task,
        }
    }

    async fn serve(config: Config) -> (u16, oneshot::Sender<()>, JoinHandle<()>) {
        let server = Server::bind(config).await.unwrap();
        let port = server.local_addrs()[0].port();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        (port, stop, task)
    }

    /// Shuts the server down (GOAWAY on every connection) and starts it again on the same
    /// port with the same certificates.
    pub async fn restart(self) -> Self {
        let _ = self.stop.send(());
        self.task.await.unwrap();
        let (port, stop, task) = Self::serve(self.config.clone()).await;
        assert_eq!(port, self.port);
        Self { stop, task, ..self }
    }

    pub fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(self.dir.join(CA_FILE)).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        roots
    }

    /// Every name of the set-up at 127.0.0.1.
    pub fn resolver(&self) -> StaticResolver {
        [
            "a.localhost",
            "b.localhost",
            "c.localhost",
            "secure.localhost",
        ]
        .into_iter()
        .fold(StaticResolver::new(), |r, name| r.insert(name, [LOCAL]))
    }

    pub fn builder(&self, mode: ReuseMode) -> ClientBuilder {
        Client::builder()
            .roots(self.roots())
            .resolver(self.resolver())
            .reuse_mode(mode)
    }

    pub fn with_client_cert(&self, builder: ClientBuilder) -> ClientBuilder {
        let chain = CertificateDer::pem_file_iter(self.dir.join(CLIENT_CERT_FILE))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let key = PrivateKeyDer::from_pem_file(self.dir.join(CLIENT_KEY_FILE)).unwrap();
        builder.client_cert(chain, key)
    }

    /// GET `https://{host}:{port}/`: the status and body.
    pub async fn get(&self, client: &Client, host: &str) -> (u16, String) {
        let request = http::Request::get(format!("https://{host}:{}/", self.port))
            .body(Bytes::new())
            .unwrap();
        let response = client.send(request).await.unwrap();
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }
}

impl Setup {
    /// GET `https://{host}:{port}/` and check `host`'s own virtual host answered it.
    pub async fn assert_served(&self, client: &Client, host: &str) {
        assert_eq!(self.get(client, host).await, served(host), "{host}");
    }
}

pub fn served(host: &str) -> (u16, String) {
    (200, format!("vhost {host}\n"))
}

/// `(connections opened, coalesced, 421 retries)`.
pub fn counts(stats: Stats) -> (u64, u64, u64) {
    (stats.connections_opened, stats.coalesced, stats.retries_421)
}

/// A throwaway CA for tests that run TLS servers of their own.
pub struct TestCa {
    cert: rcgen::Certificate,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    pub fn new() -> Self {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        Self {
            cert,
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A certificate for `names` (none: a client certificate) and its key.
    pub fn issue(&self, names: &[&str]) -> (rcgen::Certificate, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().unwrap();
        let names = names
            .iter()
            .map(|name| name.to_string())
            .collect::<Vec<_>>();
        let cert = rcgen::CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        (cert, key)
    }

    /// Trust anchors holding this CA.
    pub fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.cert.der().clone()).unwrap();
        roots
    }
}

/// The server's key for rustls.
pub fn der_key(key: &rcgen::KeyPair) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(key.serialize_der().into())
}

/// A TLS acceptor for `name` with a self-signed certificate, offering `alpn`, and trust
/// anchors for it.
pub fn self_signed_acceptor(name: &str, alpn: &[u8]) -> (tokio_rustls::TlsAcceptor, RootCertStore) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.der().clone()], der_key(&key))
    .unwrap();
    config.alpn_protocols = vec![alpn.to_vec()];
    let mut roots = RootCertStore::empty();
    roots.add(cert.der().clone()).unwrap();
    (
        tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)),
        roots,
    )
}
