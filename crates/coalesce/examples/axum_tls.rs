//! An axum app over real TLS with per-virtual-host client authentication, wired from the
//! crates alone: tokio-rustls picks each connection's `ServerConfig` from the ClientHello
//! through the listener core, hyper-util serves HTTP/1.1 and HTTP/2, and `MisdirectLayer`
//! answers 421 for requests the connection is not right for.
//!
//! Three virtual hosts share one certificate (`a.localhost`, `b.localhost`,
//! `secure.localhost`); `secure.localhost` requires a client certificate, asked for only on
//! its own connections. A browser that coalesces a request for `secure.localhost` onto
//! `a.localhost`'s connection gets `421 client-cert-required` and retries on a connection
//! of its own, where it is asked for the certificate.
//!
//! ```sh
//! cargo run -p misdirect-coalesce --features tower,rustls --example axum_tls
//! ```
//!
//! It writes the CA and a client certificate and key to a temporary directory and prints
//! curl commands for each case. `tests/axum_tls.rs` runs the same set-up with Rust clients.

use std::error::Error;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::Extension;
use axum::routing::get;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use misdirect_authority::Scheme;
use misdirect_certmatch::Identities;
use misdirect_coalesce::{
    ClientAuth, Listener, MisdirectLayer, RustlsListener, ServedBy, TrustAnchorSets, VirtualHost,
    VirtualHosts, vhost_server_config,
};
use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio_rustls::LazyConfigAcceptor;
use tower::Layer;

/// What a client needs: the CA, and a client certificate the CA signed.
// The DER fields are read by `tests/axum_tls.rs`, which runs this example.
#[allow(dead_code)]
#[derive(Debug)]
pub(crate) struct Credentials {
    pub(crate) ca: CertificateDer<'static>,
    pub(crate) client_chain: Vec<CertificateDer<'static>>,
    pub(crate) client_key: PrivateKeyDer<'static>,
    ca_pem: String,
    client_pem: String,
    client_key_pem: String,
}

/// A running demo server.
#[derive(Debug)]
pub(crate) struct Demo {
    pub(crate) addr: SocketAddr,
    pub(crate) credentials: Credentials,
}

/// Generates the certificates and starts serving on `addr` (port 0 picks a free one).
pub(crate) async fn start(addr: SocketAddr) -> Result<Demo, Box<dyn Error>> {
    let socket = TcpListener::bind(addr).await?;
    let addr = socket.local_addr()?;

    // An in-memory CA, one server certificate for the three names, one client certificate.
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let names = ["a.localhost", "b.localhost", "secure.localhost"];
    let server_key = KeyPair::generate()?;
    let server_cert = CertificateParams::new(names.map(String::from).to_vec())?
        .signed_by(&server_key, &issuer)?;
    let client_key = KeyPair::generate()?;
    let mut client_params = CertificateParams::new(Vec::<String>::new())?;
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client_params.signed_by(&client_key, &issuer)?;

    // The virtual hosts. Client-certificate trust anchors are identified by their
    // certificates, so every virtual host trusting this CA shares one id.
    let identities = Arc::new(Identities::from_der(server_cert.der())?);
    let mut anchors = TrustAnchorSets::new();
    let staff = anchors.intern([ca_cert.der().as_ref()]);
    let mut table = VirtualHosts::builder(Scheme::Https);
    for name in names {
        let mut vhost = VirtualHost::new(name, identities.clone()).pattern(name.parse()?);
        if name == "secure.localhost" {
            vhost = vhost.client_auth(ClientAuth::Required(staff));
        }
        table.add(vhost);
    }
    // The port clients name in their authorities is the one we listen on.
    let vhosts = table.port(addr.port()).build()?;
    let listener = Arc::new(Listener::new(vhosts));

    // One rustls configuration per virtual host: its own verifier and session cache.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots.add(ca_cert.der().clone())?;
    let roots = Arc::new(roots);
    let mut configs = Vec::new();
    for (id, vhost) in listener.vhosts().iter() {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
        let config = vhost_server_config(
            provider.clone(),
            id,
            vhost,
            vec![server_cert.der().clone()],
            key,
            Some(roots.clone()),
        )?;
        configs.push(Arc::new(config));
    }
    let tls = Arc::new(RustlsListener::new(listener.clone(), configs)?);

    // The app: it says which virtual host served the request.
    let names = listener.clone();
    let app = Router::new().route(
        "/",
        get(move |Extension(served): Extension<ServedBy>| async move {
            format!("served by {}\n", names.name(served.vhost()).unwrap_or("?"))
        }),
    );
    let app = MisdirectLayer::new(listener).layer(app);

    tokio::spawn(async move {
        loop {
            let Ok((tcp, _peer)) = socket.accept().await else {
                continue;
            };
            let tls = tls.clone();
            let app = app.clone();
            tokio::spawn(async move {
                let acceptor = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp);
                let Ok(start) = acceptor.await else { return };
                let (presented, config) = tls.config_for(&start.client_hello());
                let Ok(stream) = start.into_stream(config).await else {
                    return;
                };
                // What this connection is, for every request on it.
                let context = tls.context(presented, stream.get_ref().1);
                let service = tower::ServiceBuilder::new()
                    .map_request(move |mut request: http::Request<_>| {
                        request.extensions_mut().insert(context.clone());
                        request
                    })
                    .service(app);
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
                    .await;
            });
        }
    });

    Ok(Demo {
        addr,
        credentials: Credentials {
            ca: ca_cert.der().clone(),
            client_chain: vec![client_cert.der().clone()],
            client_key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(client_key.serialize_der())),
            ca_pem: ca_cert.pem(),
            client_pem: client_cert.pem(),
            client_key_pem: client_key.serialize_pem(),
        },
    })
}

impl Demo {
    /// Writes the CA, client certificate and key to `dir` and returns curl commands that
    /// show each case.
    pub(crate) fn curl_commands(&self, dir: &Path) -> Result<Vec<String>, Box<dyn Error>> {
        let file = |name: &str, text: &str| -> Result<PathBuf, Box<dyn Error>> {
            let path = dir.join(name);
            std::fs::write(&path, text)?;
            Ok(path)
        };
        let ca = file("ca.pem", &self.credentials.ca_pem)?;
        let cert = file("client.pem", &self.credentials.client_pem)?;
        let key = file("client.key", &self.credentials.client_key_pem)?;
        let port = self.addr.port();
        let base = |sni: &str| {
            format!(
                "curl --cacert {} --resolve {sni}:{port}:127.0.0.1",
                ca.display()
            )
        };
        Ok(vec![
            format!(
                "# 200 from a.localhost\n{} https://a.localhost:{port}/",
                base("a.localhost")
            ),
            format!(
                "# 200 from b.localhost, coalesced onto a.localhost's connection\n{} -H 'Host: b.localhost:{port}' https://a.localhost:{port}/",
                base("a.localhost")
            ),
            format!(
                "# 421 client-cert-required: secure.localhost over a.localhost's connection\n{} -H 'Host: secure.localhost:{port}' https://a.localhost:{port}/",
                base("a.localhost")
            ),
            format!(
                "# 200 from secure.localhost over its own connection, with the client certificate\n{} --cert {} --key {} https://secure.localhost:{port}/",
                base("secure.localhost"),
                cert.display(),
                key.display()
            ),
        ])
    }
}

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let demo = start("127.0.0.1:0".parse()?).await?;
        let dir = std::env::temp_dir().join(format!("misdirect-axum-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        println!("listening on https://{} (Ctrl-C stops)\n", demo.addr);
        for command in demo.curl_commands(&dir)? {
            println!("{command}\n");
        }
        tokio::signal::ctrl_c().await?;
        Ok(())
    })
}
