//! Client benches: `misdirect-client` against hyper-util's legacy client, both talking to
//! `misdirect serve`.
//!
//! The server runs in-process on an ephemeral loopback port with twenty virtual hosts,
//! `o0.bench.localhost` … `o19.bench.localhost`, which share one certificate naming all
//! twenty, so its ORIGIN frame lists all twenty origins on every connection.
//!
//! `client_1000_requests_20_origins` group: one iteration builds a fresh client and sends
//! 1,000 GETs round-robin over the twenty origins, 50 in flight, each body read to its end,
//! starting in one of two ways:
//! - `burst`: all 50 at once, on a client with no connection yet;
//! - `one-first`: the first request alone, the other 999 once its body is read (a page
//!   whose resources come from the other nineteen origins).
//!
//! for each of two clients:
//! - `misdirect-client (OriginFrame)`: `ReuseMode::OriginFrame`, the default: an origin
//!   in a connection's ORIGIN set rides that connection once the certificate verifies
//!   for its host.
//! - `hyper-util legacy (per origin)`: `hyper_util::client::legacy::Client` with HTTP/2
//!   only, whose pool keeps one connection per origin, through a TLS connector written here
//!   (every name at 127.0.0.1, SNI = the URI's host, ALPN `h2`) that counts the connections
//!   it makes.
//! - `misdirect-client (Exact, control)`: `ReuseMode::Exact`, one connection per origin as
//!   hyper-util keeps, so no connection is ever considered for another origin and no chain
//!   is verified again: `misdirect-client`'s request path without coalescing.
//!
//! Both run on one multi-thread tokio runtime with two workers, the server included: the
//! machine has two cores, and with work stealing whichever side has work gets both, as a
//! client and a server sharing one host do. A current-thread runtime would put the server
//! and the client on one core and time their sum instead.
//!
//! `client_reverify` group: one `WebPkiServerVerifier::verify_server_cert` of the server's
//! chain for one of the hosts: what `misdirect-client` pays once per connection and host
//! before it carries that host's requests on a connection made for another origin (it
//! keeps a success until the chain's earliest `notAfter`).
//!
//! Before measuring, every origin must answer 200 with its own body to both clients. Then
//! one iteration of each client and start prints its connection counts, and the bench
//! fails when hyper-util did not open one connection per origin, when a request was
//! misdirected, or when `misdirect-client` used more than a tenth of hyper-util's
//! connections. Results: `docs/performance.md`, "Coalescing client vs hyper-util".
//!
//! Run: `cargo bench -p misdirect-benches --bench client`

use std::fmt::Write as _;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use http::Uri;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo};
use misdirect_client::{Client, StaticResolver, Stats};
use misdirect_coalesce::ReuseMode;
use misdirect_server::{Config, Server};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tower_service::Service;

const ORIGINS: usize = 20;
const REQUESTS: usize = 1_000;
const IN_FLIGHT: usize = 50;
const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn host(i: usize) -> String {
    format!("o{i}.bench.localhost")
}

/// The bench's certificates: a CA, and one server certificate for all the origins' hosts
/// written with its key to a fresh directory (`server.pem`, chain end-entity first, and
/// `server.key`).
struct Certificates {
    ca: CertificateDer<'static>,
    server: CertificateDer<'static>,
    dir: PathBuf,
}

fn certificates() -> Certificates {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "misdirect bench CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca_params, ca_key);

    let key = KeyPair::generate().expect("server key");
    let names: Vec<String> = (0..ORIGINS).map(host).collect();
    let mut params = CertificateParams::new(names).expect("server certificate parameters");
    params.distinguished_name.push(DnType::CommonName, host(0));
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &issuer).expect("server certificate");

    let dir = std::env::temp_dir().join(format!("misdirect-bench-client-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("certificate directory");
    std::fs::write(dir.join("server.pem"), cert.pem() + &ca.pem()).expect("server.pem");
    std::fs::write(dir.join("server.key"), key.serialize_pem()).expect("server.key");
    Certificates {
        ca: ca.der().clone(),
        server: cert.der().clone(),
        dir,
    }
}

/// One loopback listener on a free port and one virtual host per origin, all with the
/// shared certificate; everything else at its default (policy `secure`, ORIGIN frames on).
fn config(dir: &Path) -> Config {
    let mut text = String::from("[[listener]]\naddr = \"127.0.0.1:0\"\n");
    for i in 0..ORIGINS {
        writeln!(
            text,
            "\n[[vhost]]\nname = \"{}\"\ncert = \"server.pem\"\nkey = \"server.key\"",
            host(i)
        )
        .expect("writing to a String");
    }
    Config::from_toml(&text, &dir.join("bench.toml"), dir).expect("bench configuration")
}

/// Binds the server and runs it on the current runtime until `stop` is sent; its port.
async fn serve(config: Config) -> (u16, oneshot::Sender<()>) {
    let server = Server::bind(config).await.expect("bind the server");
    let port = server.local_addrs()[0].port();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    (port, stop)
}

fn roots(ca: &CertificateDer<'static>) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    roots
        .add(ca.clone())
        .expect("the bench CA is a trust anchor");
    roots
}

/// A fresh `misdirect-client` in `mode`, every origin's host at 127.0.0.1.
///
/// The limit of connections per peer address is raised from 16 to one per origin: all the
/// origins share one address, and `Exact` needs a connection for each (hyper-util has no
/// such limit). `OriginFrame` opens one connection in all.
fn misdirect_client(mode: ReuseMode, ca: &CertificateDer<'static>) -> Client {
    let resolver = (0..ORIGINS).fold(StaticResolver::new(), |resolver, i| {
        resolver.insert(&host(i), [LOCAL])
    });
    Client::builder()
        .roots(roots(ca))
        .resolver(resolver)
        .reuse_mode(mode)
        .max_connections_per_peer(ORIGINS)
        .build()
        .expect("misdirect-client")
}

type HyperUtil = HyperClient<CountingTls, Empty<Bytes>>;

/// A fresh hyper-util legacy client speaking HTTP/2 only, and its connection counter.
fn hyper_client(ca: &CertificateDer<'static>) -> (HyperUtil, Arc<AtomicU64>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots(ca))
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let opened = Arc::new(AtomicU64::new(0));
    let connector = CountingTls {
        tls: TlsConnector::from(Arc::new(tls)),
        opened: opened.clone(),
    };
    let client = HyperClient::builder(TokioExecutor::new())
        .http2_only(true)
        .build(connector);
    (client, opened)
}

/// hyper-util's connector: every host at 127.0.0.1 on the URI's port, TLS with the URI's
/// host as SNI, counting the connections whose handshake completed.
#[derive(Clone)]
struct CountingTls {
    tls: TlsConnector,
    opened: Arc<AtomicU64>,
}

impl Service<Uri> for CountingTls {
    type Response = TokioIo<Tls>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<TokioIo<Tls>>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = self.tls.clone();
        let opened = self.opened.clone();
        Box::pin(async move {
            let invalid = |what: &'static str| io::Error::new(io::ErrorKind::InvalidInput, what);
            let host = uri.host().ok_or_else(|| invalid("a URI without a host"))?;
            let name = ServerName::try_from(host.to_owned())
                .map_err(|_| invalid("a host that is not a TLS server name"))?;
            let port = uri.port_u16().unwrap_or(443);
            let tcp = TcpStream::connect(SocketAddr::new(LOCAL, port)).await?;
            tcp.set_nodelay(true)?;
            let stream = tls.connect(name, tcp).await?;
            opened.fetch_add(1, Ordering::Relaxed);
            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
            Ok(TokioIo::new(Tls { stream, h2 }))
        })
    }
}

/// A client TLS stream that tells hyper-util whether ALPN chose `h2`.
struct Tls {
    stream: TlsStream<TcpStream>,
    h2: bool,
}

impl Connection for Tls {
    fn connected(&self) -> Connected {
        match self.h2 {
            true => Connected::new().negotiated_h2(),
            false => Connected::new(),
        }
    }
}

impl AsyncRead for Tls {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tls {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// `https://o{i}.bench.localhost:{port}/` for every origin.
fn uris(port: u16) -> Arc<[Uri]> {
    (0..ORIGINS)
        .map(|i| {
            format!("https://{}:{port}/", host(i))
                .parse()
                .expect("valid URI")
        })
        .collect()
}

/// GET `uri` with `misdirect-client`: the status and the whole body.
async fn misdirect_get(client: Client, uri: Uri) -> (u16, Bytes) {
    let request = http::Request::get(uri)
        .body(Bytes::new())
        .expect("valid request");
    let response = client
        .send(request)
        .await
        .expect("misdirect-client response");
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("misdirect-client body");
    (status, body)
}

/// GET `uri` with hyper-util: the status and the whole body.
async fn hyper_get(client: HyperUtil, uri: Uri) -> (u16, Bytes) {
    let request = http::Request::get(uri)
        .body(Empty::new())
        .expect("valid request");
    let response = client.request(request).await.expect("hyper-util response");
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("hyper-util body");
    (status, body.to_bytes())
}

/// How an iteration starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Start {
    /// All `IN_FLIGHT` requests at once, on a client with no connection.
    Burst,
    /// The first request alone, to `o0`; the other 999 once its body is read, as a page
    /// whose resources come from the other origins.
    OneFirst,
}

impl Start {
    fn name(self) -> &'static str {
        match self {
            Self::Burst => "burst",
            Self::OneFirst => "one-first",
        }
    }
}

/// `REQUESTS` GETs, request `n` for origin `n % ORIGINS`, from `IN_FLIGHT` tasks that each
/// take the next request when their last one's body is read. Every one must answer 200.
async fn round_robin<F, Fut>(start: Start, uris: Arc<[Uri]>, get: F)
where
    F: Fn(Uri) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = (u16, Bytes)> + Send + 'static,
{
    let next = Arc::new(AtomicUsize::new(0));
    if start == Start::OneFirst {
        let n = next.fetch_add(1, Ordering::Relaxed);
        let (status, _) = get(uris[n % ORIGINS].clone()).await;
        assert_eq!(status, 200, "GET {}", uris[n % ORIGINS]);
    }
    let mut workers = JoinSet::new();
    for _ in 0..IN_FLIGHT {
        let (next, uris, get) = (next.clone(), uris.clone(), get.clone());
        workers.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= REQUESTS {
                    break;
                }
                let uri = uris[n % ORIGINS].clone();
                let (status, _) = get(uri.clone()).await;
                assert_eq!(status, 200, "GET {uri}");
            }
        });
    }
    while let Some(worker) = workers.join_next().await {
        worker.expect("a request worker");
    }
}

/// One iteration with a fresh `misdirect-client` in `mode`: its stats.
async fn misdirect_iteration(
    start: Start,
    mode: ReuseMode,
    ca: CertificateDer<'static>,
    uris: Arc<[Uri]>,
) -> Stats {
    let client = misdirect_client(mode, &ca);
    let sender = client.clone();
    round_robin(start, uris, move |uri| misdirect_get(sender.clone(), uri)).await;
    client.stats()
}

/// One iteration with a fresh hyper-util client: the connections it opened.
async fn hyper_iteration(start: Start, ca: CertificateDer<'static>, uris: Arc<[Uri]>) -> u64 {
    let (client, opened) = hyper_client(&ca);
    round_robin(start, uris, move |uri| hyper_get(client.clone(), uri)).await;
    opened.load(Ordering::Relaxed)
}

/// Every origin answers 200 with its own virtual host's body, to both clients.
async fn check(ca: &CertificateDer<'static>, uris: &[Uri]) {
    let misdirect = misdirect_client(ReuseMode::OriginFrame, ca);
    let (hyper, _) = hyper_client(ca);
    for (i, uri) in uris.iter().enumerate() {
        let expected = (200, Bytes::from(format!("vhost {}\n", host(i))));
        let got = misdirect_get(misdirect.clone(), uri.clone()).await;
        assert_eq!(got, expected, "misdirect-client: GET {uri}");
        let got = hyper_get(hyper.clone(), uri.clone()).await;
        assert_eq!(got, expected, "hyper-util: GET {uri}");
    }
}

fn client(c: &mut Criterion) {
    let runtime: Runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let Certificates { ca, server, dir } = certificates();
    let (port, stop) = runtime.block_on(serve(config(&dir)));
    let uris = uris(port);
    runtime.block_on(check(&ca, &uris));

    let mut group = c.benchmark_group("client_1000_requests_20_origins");
    group.sample_size(10);
    group.throughput(Throughput::Elements(REQUESTS as u64));
    for start in [Start::Burst, Start::OneFirst] {
        let origin_frame = ReuseMode::OriginFrame;
        let stats = runtime.block_on(misdirect_iteration(
            start,
            origin_frame,
            ca.clone(),
            uris.clone(),
        ));
        let hyper = runtime.block_on(hyper_iteration(start, ca.clone(), uris.clone()));
        eprintln!(
            "{}: one iteration ({REQUESTS} requests, {ORIGINS} origins, {IN_FLIGHT} in flight): \
             misdirect-client {} connections ({} requests coalesced, {} ORIGIN frames, {} 421 \
             retries); hyper-util {hyper} connections",
            start.name(),
            stats.connections_opened,
            stats.coalesced,
            stats.origin_frames,
            stats.retries_421
        );
        assert_eq!(
            stats.retries_421,
            0,
            "{}: no request is misdirected",
            start.name()
        );
        assert_eq!(
            hyper,
            ORIGINS as u64,
            "{}: hyper-util opens one connection per origin",
            start.name()
        );
        // In a burst, requests for the other origins wait for the connection being opened
        // to their address and its ORIGIN frame instead of opening their own.
        let most = hyper / 10;
        assert!(
            stats.connections_opened <= most,
            "{}: misdirect-client opened {} connections, more than {most} (hyper-util: {hyper})",
            start.name(),
            stats.connections_opened
        );
        group.bench_with_input(
            BenchmarkId::new("misdirect-client (OriginFrame)", start.name()),
            &start,
            |b, &start| {
                b.iter(|| {
                    runtime.block_on(misdirect_iteration(
                        start,
                        origin_frame,
                        ca.clone(),
                        uris.clone(),
                    ))
                });
            },
        );
        group.bench_with_input(
            BenchmarkId::new("hyper-util legacy (per origin)", start.name()),
            &start,
            |b, &start| {
                b.iter(|| runtime.block_on(hyper_iteration(start, ca.clone(), uris.clone())));
            },
        );
        group.bench_with_input(
            BenchmarkId::new("misdirect-client (Exact, control)", start.name()),
            &start,
            |b, &start| {
                b.iter(|| {
                    runtime.block_on(misdirect_iteration(
                        start,
                        ReuseMode::Exact,
                        ca.clone(),
                        uris.clone(),
                    ))
                });
            },
        );
    }
    group.finish();

    // What `misdirect-client` pays once per connection and host before coalescing:
    // rustls's WebPKI verification of the connection's chain (end entity, then the CA as
    // sent) for the request's host.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots(&ca)), provider)
        .build()
        .expect("WebPKI verifier");
    let name = ServerName::try_from(host(7)).expect("a server name");
    let intermediates = [ca.clone()];
    c.benchmark_group("client_reverify").bench_function(
        "webpki verify_server_cert, shared chain, one host",
        |b| {
            b.iter(|| {
                verifier
                    .verify_server_cert(&server, &intermediates, &name, &[], UnixTime::now())
                    .expect("the chain verifies for the host")
            });
        },
    );

    let _ = stop.send(());
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, client);
criterion_main!(benches);
