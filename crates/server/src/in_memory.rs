//! The server's connection path over in-memory pipes: the same handshake, virtual-host
//! choice and HTTP/1.1 and HTTP/2 serving as over TCP, with no sockets, so these tests are
//! fast and deterministic. What needs real sockets (accept, limits on descriptors,
//! shutdown of listeners) stays in the loopback tests.
#![allow(clippy::unwrap_used)]

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Version};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};
use tokio::sync::watch;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::conn::{Admission, Registry};
use crate::embedded::{CA_FILE, CLIENT_CERT_FILE, CLIENT_KEY_FILE, Embedded};
use crate::server::{Shared, Transport, connection};

/// The server's end of a pipe. `peek` holds what it read until the reads that follow.
struct Pipe {
    inner: DuplexStream,
    peeked: Vec<u8>,
}

impl Transport for Pipe {
    async fn peek(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.peeked.is_empty() {
            let mut chunk = vec![0; buf.len()];
            let read = self.inner.read(&mut chunk).await?;
            self.peeked.extend_from_slice(&chunk[..read]);
        }
        let n = self.peeked.len().min(buf.len());
        buf[..n].copy_from_slice(&self.peeked[..n]);
        Ok(n)
    }
}

impl AsyncRead for Pipe {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.peeked.is_empty() {
            let n = self.peeked.len().min(buf.remaining());
            buf.put_slice(&self.peeked[..n]);
            self.peeked.drain(..n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Pipe {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The embedded set-up's server state with no socket bound, and what a client needs.
struct Pair {
    shared: Arc<Shared>,
    dir: PathBuf,
    stop: watch::Sender<bool>,
}

impl Pair {
    fn new(label: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "misdirect-in-memory-{label}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let addr: SocketAddr = "127.0.0.1:8443".parse().unwrap();
        let embedded = Embedded::generate(&dir, addr).unwrap();
        embedded.write_files().unwrap();
        let shared = Arc::new(
            Shared::build(
                embedded.config(),
                &[addr],
                &[],
                &Arc::new(crate::metrics::Metrics::new()),
            )
            .unwrap(),
        );
        let (stop, _) = watch::channel(false);
        Self { shared, dir, stop }
    }

    /// A connection served by the server's own connection path on a new pipe; returns the
    /// client's end.
    fn open(&self) -> DuplexStream {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let registry = Registry::new(16);
        let Admission::Admitted(registration) = registry.admit() else {
            panic!("a registry with room admits");
        };
        let peer: SocketAddr = "192.0.2.7:50000".parse().unwrap();
        tokio::spawn(connection(
            self.shared.clone(),
            0,
            Pipe {
                inner: server,
                peeked: Vec::new(),
            },
            peer,
            self.stop.subscribe(),
            registration,
        ));
        client
    }

    /// A TLS client over a new pipe, for `sni`, offering `alpn`, with the embedded client
    /// certificate when `client_cert`.
    async fn tls(&self, sni: &str, alpn: &[u8], client_cert: bool) -> TlsStream<DuplexStream> {
        let mut roots = rustls::RootCertStore::empty();
        let ca = std::fs::read(self.dir.join(CA_FILE)).unwrap();
        for cert in CertificateDer::pem_slice_iter(&ca) {
            roots.add(cert.unwrap()).unwrap();
        }
        let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
        let mut config = match client_cert {
            false => builder.with_no_client_auth(),
            true => {
                let pem = std::fs::read(self.dir.join(CLIENT_CERT_FILE)).unwrap();
                let chain = CertificateDer::pem_slice_iter(&pem)
                    .map(Result::unwrap)
                    .collect();
                let key = PrivateKeyDer::from_pem_file(self.dir.join(CLIENT_KEY_FILE)).unwrap();
                builder.with_client_auth_cert(chain, key).unwrap()
            }
        };
        config.alpn_protocols = vec![alpn.to_vec()];
        let name = ServerName::try_from(sni.to_owned()).unwrap();
        TlsConnector::from(Arc::new(config))
            .connect(name, self.open())
            .await
            .unwrap()
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Status and refusal reason of each request on one HTTP/2 connection.
async fn h2_statuses(
    tls: TlsStream<DuplexStream>,
    authorities: &[&str],
) -> Vec<(u16, Option<String>)> {
    let (client, connection) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(connection);
    let mut out = Vec::new();
    for authority in authorities {
        let mut client = client.clone().ready().await.unwrap();
        // The embedded listener's public port is 8443: requests name it.
        let request = Request::get(format!("https://{authority}:8443/"))
            .version(Version::HTTP_2)
            .body(())
            .unwrap();
        let (response, _) = client.send_request(request, true).unwrap();
        let (head, mut body) = response.await.unwrap().into_parts();
        let mut text = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.unwrap();
            let _ = body.flow_control().release_capacity(chunk.len());
            text.extend_from_slice(&chunk);
        }
        // The plain-text refusal names its reason on a line of its own.
        let reason = String::from_utf8(text)
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("Reason: ").map(str::to_owned));
        out.push((head.status.as_u16(), reason));
    }
    out
}

#[tokio::test]
async fn http2_serves_coalesces_and_refuses_on_one_connection() {
    let pair = Pair::new("h2");
    let tls = pair.tls("a.localhost", b"h2", false).await;
    let got = h2_statuses(
        tls,
        &[
            "a.localhost",
            "b.localhost",
            "secure.localhost",
            "c.localhost",
            "unknown.localhost",
        ],
    )
    .await;
    let want = [
        (200, None),
        (200, None),
        (421, Some("client-cert-required")),
        (421, Some("certificate-does-not-cover")),
        (421, Some("unknown-host")),
    ];
    let want: Vec<_> = want
        .iter()
        .map(|(s, r)| (*s, r.map(str::to_owned)))
        .collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn a_client_certificate_reaches_its_virtual_host_only_on_its_own_connection() {
    let pair = Pair::new("client-cert");
    let tls = pair.tls("secure.localhost", b"h2", true).await;
    let got = h2_statuses(tls, &["secure.localhost", "a.localhost"]).await;
    assert_eq!(got, [(200, None), (200, None)]);
    // The same certificate on a connection made for a.localhost: a.localhost's handshake
    // asks for none, so none is verified, and secure.localhost is refused there.
    let tls = pair.tls("a.localhost", b"h2", true).await;
    let got = h2_statuses(tls, &["secure.localhost"]).await;
    assert_eq!(got, [(421, Some("client-cert-required".to_owned()))]);
}

#[tokio::test]
async fn http1_serves_and_closes_after_a_421() {
    let pair = Pair::new("h1");
    let tls = pair.tls("a.localhost", b"http/1.1", false).await;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .unwrap();
    let driver = tokio::spawn(connection);
    let request = |host: &str| {
        Request::get("/")
            .header(http::header::HOST, format!("{host}:8443"))
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap()
    };
    let response = sender.send_request(request("b.localhost")).await.unwrap();
    assert_eq!(response.status(), 200);
    let response = sender
        .send_request(request("secure.localhost"))
        .await
        .unwrap();
    assert_eq!(response.status(), 421);
    assert_eq!(response.headers()[http::header::CONNECTION], "close");
    // The server ends the connection after the refusal.
    drop(response);
    let ended = tokio::time::timeout(std::time::Duration::from_secs(5), driver).await;
    assert!(ended.is_ok(), "the connection stays open after a 421");
    assert!(sender.ready().await.is_err());
}

#[tokio::test]
async fn plain_http_on_the_tls_port_gets_a_readable_400() {
    let pair = Pair::new("plain");
    let mut client = pair.open();
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: a.localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    client.read_to_string(&mut answer).await.unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer}"
    );
    assert!(answer.contains("use https://"), "{answer}");
}

/// What a tracing layer saw: each event's level, message and `suppressed` field.
#[derive(Default)]
struct Seen {
    events: std::sync::Mutex<Vec<(tracing::Level, String, Option<u64>)>>,
}

/// A tracing layer that records into [`Seen`].
struct Recorder(Arc<Seen>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Recorder {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Fields(String, Option<u64>);
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
            fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
                if field.name() == "suppressed" {
                    self.1 = Some(value);
                }
            }
        }
        let mut fields = Fields(String::new(), None);
        event.record(&mut fields);
        self.0
            .events
            .lock()
            .unwrap()
            .push((*event.metadata().level(), fields.0, fields.1));
    }
}

/// 10,000 identical 421s write one line in the default sampled mode, and the window's
/// summary counts the other 9,999; the metrics count all 10,000.
#[test]
fn ten_thousand_identical_refusals_write_one_line_and_a_summary() {
    use tracing_subscriber::layer::SubscriberExt as _;
    let seen = Arc::new(Seen::default());
    let subscriber = tracing_subscriber::registry().with(Recorder(seen.clone()));
    let _guard = tracing::subscriber::set_default(subscriber);
    // One thread: every task logs through this thread's subscriber.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pair = runtime.block_on(async {
        let pair = Pair::new("sampled");
        let tls = pair.tls("a.localhost", b"h2", false).await;
        let (client, connection) = h2::client::handshake(tls).await.unwrap();
        tokio::spawn(connection);
        for _ in 0..10_000 {
            let mut client = client.clone().ready().await.unwrap();
            let request = Request::get("https://secure.localhost:8443/")
                .version(Version::HTTP_2)
                .body(())
                .unwrap();
            let (response, _) = client.send_request(request, true).unwrap();
            assert_eq!(response.await.unwrap().status(), 421);
        }
        pair
    });
    let refusals = |seen: &Seen| {
        seen.events
            .lock()
            .unwrap()
            .iter()
            .filter(|(level, message, _)| {
                *level == tracing::Level::WARN && message == "misdirected request"
            })
            .count()
    };
    assert_eq!(refusals(&seen), 1);
    let log = pair.shared.listeners[0].table.listener.refusal_log();
    log.flush();
    let summaries: Vec<Option<u64>> = seen
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, message, _)| message.contains("held back"))
        .map(|(_, _, suppressed)| *suppressed)
        .collect();
    assert_eq!(summaries, [Some(9_999)]);
    assert_eq!(log.suppressed_total(), 9_999);
    drop(runtime);
}
