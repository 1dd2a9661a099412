//! `respond = { proxy = … }` through `misdirect serve` over loopback: a small hyper
//! application behind the server, HTTP/1.1 and HTTP/2 clients in front of it. Requests and
//! bodies reach it both ways; it sees the rewritten head; its failures are the server's own
//! 502/504; its 421 is retried; the server's own 421 never reaches it; an Upgrade is
//! tunnelled; shutdown and reload drain and rebuild the forwarding.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, Version, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;

use crate::fixtures::Site;
use crate::support::{Client, Conn, Proto, Resp, TestServer, request};

/// What the application received.
#[derive(Clone, Debug)]
struct Seen {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    body_len: u64,
}

/// The application behind the server: it reads each request's body whole (counting, not
/// keeping, the bytes), records the request and answers `NAME METHOD TARGET LENGTH`.
/// Some paths behave otherwise: `/slow?ms=N` answers after N ms, `/421-once` answers 421
/// the first time, `/421-always` every time, and `/echo` with `Upgrade: echo` switches
/// protocols and echoes bytes.
#[derive(Clone)]
struct App {
    name: &'static str,
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Request body bytes received so far, over every request.
    received: Arc<AtomicU64>,
    misdirected: Arc<AtomicUsize>,
}

type AppBody = BoxBody<Bytes, Infallible>;

impl App {
    /// Starts on a free loopback port: HTTP/1.1 (with upgrades), or HTTP/2 with prior
    /// knowledge when `h2c`.
    async fn start(name: &'static str, h2c: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let app = Self {
            name,
            addr: listener.local_addr().unwrap(),
            seen: Arc::default(),
            received: Arc::default(),
            misdirected: Arc::default(),
        };
        let serving = app.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let app = serving.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let app = app.clone();
                        async move { Ok::<_, Infallible>(app.handle(request).await) }
                    });
                    let io = TokioIo::new(tcp);
                    if h2c {
                        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                            .serve_connection(io, service)
                            .await;
                    } else {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, service)
                            .with_upgrades()
                            .await;
                    }
                });
            }
        });
        app
    }

    async fn handle(self, mut request: Request<Incoming>) -> Response<AppBody> {
        let upgrade = (request.uri().path() == "/echo").then(|| hyper::upgrade::on(&mut request));
        let (parts, mut body) = request.into_parts();
        let mut body_len = 0;
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(data) = frame.data_ref() {
                body_len += data.len() as u64;
                self.received.fetch_add(data.len() as u64, Ordering::SeqCst);
            }
        }
        self.seen.lock().unwrap().push(Seen {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            version: parts.version,
            headers: parts.headers.clone(),
            body_len,
        });
        let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        match parts.uri.path() {
            "/echo" => {
                if parts
                    .headers
                    .get(header::UPGRADE)
                    .is_none_or(|v| v != "echo")
                {
                    return reply(StatusCode::BAD_REQUEST, "no upgrade");
                }
                let Some(upgrade) = upgrade else {
                    return reply(StatusCode::BAD_REQUEST, "no upgrade");
                };
                tokio::spawn(async move {
                    let Ok(upgraded) = upgrade.await else { return };
                    let mut io = TokioIo::new(upgraded);
                    let mut buf = [0u8; 1024];
                    while let Ok(n @ 1..) = io.read(&mut buf).await {
                        if io.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
                let mut response = reply(StatusCode::SWITCHING_PROTOCOLS, "");
                let fields = response.headers_mut();
                fields.insert(header::UPGRADE, HeaderValue::from_static("echo"));
                fields.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
                return response;
            }
            "/slow" => {
                let ms = parts
                    .uri
                    .query()
                    .and_then(|q| q.strip_prefix("ms="))
                    .and_then(|ms| ms.parse().ok())
                    .unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            "/421-once" if self.misdirected.fetch_add(1, Ordering::SeqCst) == 0 => {
                return reply(StatusCode::MISDIRECTED_REQUEST, "not here");
            }
            "/421-always" => return reply(StatusCode::MISDIRECTED_REQUEST, "not here"),
            _ => {}
        }
        let name = self.name;
        let method = &parts.method;
        reply(
            StatusCode::OK,
            format!("{name} {method} {target} {body_len}"),
        )
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<AppBody> {
    let mut response = Response::new(Full::new(body.into()).boxed());
    *response.status_mut() = status;
    response
}

/// The server in front of the applications, with the fixture's certificates:
/// - `a.test` → `app` (response timeout 1 s); `c.test` and `secure.test` (client
///   certificate required) → `app` too;
/// - `b.test` → an address nothing listens on;
/// - `*.wild.test` → `h2c`, over HTTP/2 with prior knowledge.
struct Setup {
    site: Site,
    app: App,
    h2c: App,
    server: TestServer,
    path: PathBuf,
}

impl Setup {
    async fn start(label: &str) -> Self {
        let site = Site::new(label);
        let app = App::start("app", false).await;
        let h2c = App::start("h2c", true).await;
        let text = config(app.addr, h2c.addr, closed_port().await);
        let path = site.write("proxy.toml", &text);
        let server = TestServer::start(&path).await;
        Self {
            site,
            app,
            h2c,
            server,
            path,
        }
    }

    fn client(&self, sni: &str, proto: Proto) -> Client {
        Client::new(&self.site.ca.roots(), Some(sni), sni, proto)
    }

    /// The series of the admin listener's `/metrics` whose line starts with `prefix`.
    async fn metric(&self, prefix: &str) -> Vec<String> {
        let admin = self.server.admin.expect("an admin listener");
        let mut tcp = TcpStream::connect(admin).await.unwrap();
        tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut text = String::new();
        tcp.read_to_string(&mut text).await.unwrap();
        text.lines()
            .filter(|line| line.starts_with(prefix))
            .map(str::to_owned)
            .collect()
    }
}

fn config(app: SocketAddr, h2c: SocketAddr, down: SocketAddr) -> String {
    format!(
        r#"
[[listener]]
addr = "127.0.0.1:0"
public_ports = [443, 8443]
default_vhost = "a.test"

[limits]
shutdown_timeout_secs = 2

[admin]
addr = "127.0.0.1:0"

[[vhost]]
name = "a.test"
cert = "shared.pem"
key = "shared.key"
respond = {{ proxy = "http://{app}", response_timeout_secs = 1 }}

[[vhost]]
name = "b.test"
cert = "shared.pem"
key = "shared.key"
respond = {{ proxy = "http://{down}", connect_timeout_secs = 1 }}

[[vhost]]
name = "c.test"
cert = "c.pem"
key = "c.key"
respond = {{ proxy = "http://{app}" }}

[[vhost]]
name = "secure.test"
cert = "shared.pem"
key = "shared.key"
client_auth = {{ ca = "client-ca.pem", required = true }}
respond = {{ proxy = "http://{app}" }}

[[vhost]]
name = "*.wild.test"
cert = "wild.pem"
key = "wild.key"
respond = {{ proxy = "http://{h2c}", upstream_http2 = true }}
"#
    )
}

/// A loopback address nothing listens on.
async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// A request for `authority` and `target`: `:authority` over HTTP/2, `Host` over HTTP/1.1;
/// a body has its `Content-Length`, as browsers send it.
fn to(
    proto: Proto,
    method: Method,
    authority: &str,
    target: &str,
    body: &'static [u8],
) -> Request<Bytes> {
    let builder = match proto {
        Proto::H1 => Request::builder()
            .uri(target)
            .header(header::HOST, authority),
        Proto::H2 => Request::builder()
            .uri(format!("https://{authority}{target}"))
            .version(Version::HTTP_2),
    };
    let builder = match body.len() {
        0 => builder,
        length => builder.header(header::CONTENT_LENGTH, length),
    };
    builder
        .method(method)
        .body(Bytes::from_static(body))
        .unwrap()
}

/// Sends one request with its body on a new connection and reads the whole response.
async fn exchange(client: &Client, addr: SocketAddr, request: Request<Bytes>) -> Resp {
    match client.proto {
        Proto::H1 => {
            let tls = client.tls(addr).await.unwrap();
            let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .unwrap();
            tokio::spawn(connection);
            let response = sender.send_request(request.map(Full::new)).await.unwrap();
            let (parts, body) = response.into_parts();
            Resp {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body: body.collect().await.unwrap().to_bytes(),
            }
        }
        Proto::H2 => {
            let Conn::H2 { sender, .. } = client.connect(addr).await.unwrap() else {
                unreachable!("an HTTP/2 client makes HTTP/2 connections")
            };
            let mut sender = sender.ready().await.unwrap();
            let (parts, body) = request.into_parts();
            let head = Request::from_parts(parts, ());
            let (response, mut send) = sender.send_request(head, body.is_empty()).unwrap();
            if !body.is_empty() {
                // Queued by h2 and sent as the window opens.
                send.send_data(body, true).unwrap();
            }
            read_h2(response.await.unwrap()).await
        }
    }
}

async fn read_h2(response: Response<h2::RecvStream>) -> Resp {
    let (parts, mut body) = response.into_parts();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        bytes.extend_from_slice(&chunk);
    }
    Resp {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: bytes.into(),
    }
}

fn values(fields: &HeaderMap, name: &str) -> Vec<String> {
    fields
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn get_and_post_reach_the_application_on_both_protocols() {
    let setup = Setup::start("proxy-basic").await;
    for proto in [Proto::H1, Proto::H2] {
        let client = setup.client("a.test", proto);
        let get = to(proto, Method::GET, "a.test", "/hello?x=1", b"");
        let response = exchange(&client, setup.server.addr, get).await;
        assert_eq!(response.status, 200, "{proto:?}: {response:?}");
        assert_eq!(response.text(), "app GET /hello?x=1 0", "{proto:?}");
        assert_eq!(
            values(&response.headers, "via"),
            ["1.1 misdirect"],
            "{proto:?}"
        );

        let post = to(proto, Method::POST, "a.test", "/form", b"name=value");
        let response = exchange(&client, setup.server.addr, post).await;
        assert_eq!(response.status, 200, "{proto:?}: {response:?}");
        assert_eq!(response.text(), "app POST /form 10", "{proto:?}");
    }
    let seen = setup.app.seen();
    assert_eq!(seen.len(), 4);
    for (request, version) in seen
        .iter()
        .zip(["HTTP/1.1", "HTTP/1.1", "HTTP/2", "HTTP/2"])
    {
        // Whatever the client spoke, the application gets HTTP/1.1 in origin-form.
        assert_eq!(request.version, Version::HTTP_11);
        assert!(request.uri.authority().is_none(), "{:?}", request.uri);
        assert_eq!(values(&request.headers, "host"), ["a.test"]);
        let via = if version == "HTTP/2" {
            "2 misdirect"
        } else {
            "1.1 misdirect"
        };
        assert_eq!(values(&request.headers, "via"), [via]);
    }
    assert_eq!(seen[1].body_len, 10);
    assert_eq!(seen[3].body_len, 10);

    // To an HTTP/2 upstream (h2c), the authority is `:authority` and there is no Host.
    for proto in [Proto::H1, Proto::H2] {
        let client = setup.client("x.wild.test", proto);
        let post = to(proto, Method::POST, "x.wild.test:8443", "/h2c", b"abc");
        let response = exchange(&client, setup.server.addr, post).await;
        assert_eq!(response.status, 200, "{proto:?}: {response:?}");
        assert_eq!(response.text(), "h2c POST /h2c 3");
        assert_eq!(
            values(&response.headers, "via"),
            ["2 misdirect"],
            "{proto:?}"
        );
    }
    for request in setup.h2c.seen() {
        assert_eq!(request.version, Version::HTTP_2);
        assert_eq!(
            request.uri.authority().unwrap().as_str(),
            "x.wild.test:8443"
        );
        assert!(!request.headers.contains_key("host"));
    }
}

/// RFC 9110 §7.2 (Host), §7.6.1 (hop-by-hop), §7.6.3 (Via); RFC 7239 (Forwarded): what the
/// application sees is the server's account of the request, not the client's.
#[tokio::test]
async fn the_application_sees_the_rewritten_head() {
    let setup = Setup::start("proxy-head").await;
    let port = setup.server.addr.port();
    for (proto, authority, host, via) in [
        (Proto::H1, "A.TEST.:443", "a.test:443", "1.1 misdirect"),
        (Proto::H2, "A.TEST.:8443", "a.test:8443", "2 misdirect"),
    ] {
        let client = setup.client("a.test", proto);
        let mut request = to(proto, Method::GET, authority, "/head", b"");
        let mut spoofed = vec![
            ("x-forwarded-for", "203.0.113.66"),
            ("x-forwarded-host", "evil.test"),
            ("x-forwarded-proto", "http"),
            ("forwarded", "for=203.0.113.66"),
            ("proxy-authorization", "Basic Zm9vOmJhcg=="),
            ("x-kept", "yes"),
        ];
        if proto == Proto::H1 {
            // HTTP/2 has no connection-specific fields (RFC 9113 §8.2.2).
            spoofed.extend([
                ("connection", "keep-alive, x-secret"),
                ("keep-alive", "timeout=5"),
                ("x-secret", "1"),
            ]);
        }
        for (name, value) in spoofed {
            request
                .headers_mut()
                .append(name, HeaderValue::from_static(value));
        }
        let response = exchange(&client, setup.server.addr, request).await;
        assert_eq!(response.status, 200, "{proto:?}: {response:?}");

        let seen = setup.app.seen().pop().unwrap();
        let fields = &seen.headers;
        assert_eq!(values(fields, "host"), [host], "{proto:?}");
        assert_eq!(
            values(fields, "x-forwarded-for"),
            ["127.0.0.1"],
            "{proto:?}"
        );
        assert_eq!(values(fields, "x-forwarded-host"), [host], "{proto:?}");
        assert_eq!(values(fields, "x-forwarded-proto"), ["https"], "{proto:?}");
        assert_eq!(
            values(fields, "forwarded"),
            [format!(
                "for=127.0.0.1;by=\"127.0.0.1:{port}\";proto=https;host=\"{host}\""
            )],
            "{proto:?}"
        );
        assert_eq!(values(fields, "via"), [via], "{proto:?}");
        assert_eq!(values(fields, "x-kept"), ["yes"], "{proto:?}");
        for gone in [
            "proxy-authorization",
            "x-secret",
            "keep-alive",
            "connection",
        ] {
            assert!(!fields.contains_key(gone), "{proto:?}: {gone} forwarded");
        }
    }
}

/// 50 MB through an HTTP/2 stream: the client sends as the window allows, and never more
/// than a few windows' worth is between the client and the application — the server
/// streams the body, it does not hold it.
#[tokio::test]
async fn a_50_mb_upload_streams_through_an_http2_stream() {
    const TOTAL: u64 = 50 * 1000 * 1000;
    const CHUNK: usize = 16 * 1024;
    /// Flow-control windows, socket buffers and hyper's buffers on the way; far less than
    /// the body.
    const IN_FLIGHT_BOUND: u64 = 16 * 1024 * 1024;
    let setup = Setup::start("proxy-upload").await;
    let mut sender = h2_without_nagle(&setup).await.ready().await.unwrap();
    let head = Request::post("https://a.test/upload").body(()).unwrap();
    let (response, mut send) = sender.send_request(head, false).unwrap();
    let chunk = Bytes::from(vec![b'x'; CHUNK]);
    let (mut sent, mut max_in_flight) = (0u64, 0u64);
    while sent < TOTAL {
        let wanted = usize::try_from(TOTAL - sent).unwrap().min(CHUNK);
        send.reserve_capacity(wanted);
        let granted = std::future::poll_fn(|cx| send.poll_capacity(cx))
            .await
            .expect("the stream is open")
            .unwrap();
        if granted == 0 {
            continue;
        }
        let piece = chunk.slice(..granted.min(wanted));
        sent += piece.len() as u64;
        send.send_data(piece, sent == TOTAL).unwrap();
        let in_flight = sent - setup.app.received.load(Ordering::SeqCst);
        max_in_flight = max_in_flight.max(in_flight);
    }
    let response = read_h2(response.await.unwrap()).await;
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.text(), format!("app POST /upload {TOTAL}"));
    assert_eq!(setup.app.received.load(Ordering::SeqCst), TOTAL);
    assert!(
        max_in_flight < IN_FLIGHT_BOUND,
        "{max_in_flight} bytes between the client and the application"
    );
}

/// An HTTP/2 connection for a.test whose socket sends at once (`TCP_NODELAY`, as browsers
/// and curl set it): with Nagle's algorithm the short tail of each DATA frame's TLS records
/// waits for the server's delayed ACK, and an upload crawls for reasons of the client's.
async fn h2_without_nagle(setup: &Setup) -> h2::client::SendRequest<Bytes> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(setup.site.ca.roots())
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = TcpStream::connect(setup.server.addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let name = rustls::pki_types::ServerName::try_from("a.test").unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    let (sender, connection) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(connection);
    sender
}

/// The server's own answers when the application cannot give one, counted per virtual
/// host.
#[tokio::test]
async fn an_unreachable_or_slow_application_is_502_or_504() {
    let setup = Setup::start("proxy-failures").await;
    for proto in [Proto::H1, Proto::H2] {
        let client = setup.client("b.test", proto);
        let response = exchange(
            &client,
            setup.server.addr,
            to(proto, Method::GET, "b.test", "/", b""),
        )
        .await;
        assert_eq!(response.status, 502, "{proto:?}: {response:?}");
        assert_eq!(response.reason().as_deref(), Some("upstream-unreachable"));

        let client = setup.client("a.test", proto);
        let started = Instant::now();
        let response = exchange(
            &client,
            setup.server.addr,
            to(proto, Method::GET, "a.test", "/slow?ms=3000", b""),
        )
        .await;
        let elapsed = started.elapsed();
        assert_eq!(response.status, 504, "{proto:?}: {response:?}");
        assert_eq!(response.reason().as_deref(), Some("upstream-timeout"));
        assert!(
            elapsed >= Duration::from_secs(1) && elapsed < Duration::from_millis(2500),
            "{proto:?}: {elapsed:?}"
        );
    }
    let mut lines = setup.metric("misdirect_requests_total{").await;
    lines.sort_unstable();
    assert_eq!(
        lines,
        [
            r#"misdirect_requests_total{vhost="a.test",status="504"} 2"#,
            r#"misdirect_requests_total{vhost="b.test",status="502"} 2"#,
        ]
    );
}

/// RFC 9110 §15.5.20: the application's 421 is about its own connection; the request is
/// sent again on a new one, and the client never sees that 421.
#[tokio::test]
async fn an_application_421_is_retried_and_the_client_gets_the_answer() {
    let setup = Setup::start("proxy-421").await;
    for proto in [Proto::H1, Proto::H2] {
        setup.app.misdirected.store(0, Ordering::SeqCst);
        let client = setup.client("a.test", proto);
        let response = exchange(
            &client,
            setup.server.addr,
            to(proto, Method::POST, "a.test", "/421-once", b"again"),
        )
        .await;
        assert_eq!(response.status, 200, "{proto:?}: {response:?}");
        assert_eq!(response.text(), "app POST /421-once 5");
    }
    // Every request arrived twice, with its body each time.
    let seen = setup.app.seen();
    assert_eq!(seen.len(), 4);
    assert!(seen.iter().all(|s| s.body_len == 5), "{seen:?}");

    // A body of unknown length is streamed to the application as it arrives, so it cannot
    // be sent again: 502.
    setup.app.misdirected.store(0, Ordering::SeqCst);
    let client = setup.client("a.test", Proto::H2);
    let mut streamed = to(Proto::H2, Method::POST, "a.test", "/421-once", b"again");
    streamed.headers_mut().remove(header::CONTENT_LENGTH);
    let response = exchange(&client, setup.server.addr, streamed).await;
    assert_eq!(response.status, 502, "{response:?}");
    assert_eq!(
        response.reason().as_deref(),
        Some("upstream-421-not-retried")
    );

    // A 421 again on the new connection: the server answers 502, never 421.
    let client = setup.client("a.test", Proto::H2);
    let response = exchange(
        &client,
        setup.server.addr,
        to(Proto::H2, Method::GET, "a.test", "/421-always", b""),
    )
    .await;
    assert_eq!(response.status, 502, "{response:?}");
    assert_eq!(
        response.reason().as_deref(),
        Some("upstream-421-after-retry")
    );

    // The retries reach the metrics within the once-a-second tick.
    let want = r#"misdirect_proxy_retries_421_total{vhost="a.test"} 3"#;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let lines = setup
            .metric("misdirect_proxy_retries_421_total{vhost=\"a.test\"}")
            .await;
        if lines == [want] {
            break;
        }
        assert!(Instant::now() < deadline, "{lines:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The listener core decides first: a request this connection may not carry gets the
/// server's own 421, and the application never sees it.
#[tokio::test]
async fn a_request_the_connection_may_not_serve_gets_the_servers_421() {
    let setup = Setup::start("proxy-misdirected").await;
    for proto in [Proto::H1, Proto::H2] {
        let client = setup.client("a.test", proto);
        for (authority, reason) in [
            ("c.test", "certificate-does-not-cover"),
            ("secure.test", "client-cert-required"),
        ] {
            let mut conn = client.connect(setup.server.addr).await.unwrap();
            let response = conn
                .send(request(proto, Some(authority), &[]))
                .await
                .unwrap();
            assert_eq!(response.status, 421, "{proto:?} {authority}: {response:?}");
            assert_eq!(response.reason().as_deref(), Some(reason));
        }
    }
    assert!(setup.app.seen().is_empty(), "{:?}", setup.app.seen());
    // The connection made for c.test forwards c.test.
    let client = setup.client("c.test", Proto::H2);
    let mut conn = client.connect(setup.server.addr).await.unwrap();
    let response = conn
        .send(request(Proto::H2, Some("c.test"), &[]))
        .await
        .unwrap();
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(setup.app.seen().len(), 1);
}

/// Opens an HTTP/1.1 connection for a.test and upgrades it to the application's `echo`
/// protocol through the server; checks one echo.
async fn upgraded(setup: &Setup) -> TlsStream<TcpStream> {
    let client = setup.client("a.test", Proto::H1);
    let mut tls = client.tls(setup.server.addr).await.unwrap();
    tls.write_all(
        b"GET /echo HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        assert_eq!(tls.read(&mut byte).await.unwrap(), 1, "closed in the head");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("\r\nupgrade: echo\r\n"), "{head}");
    assert!(head.contains("\r\nconnection: upgrade\r\n"), "{head}");
    assert!(head.contains("\r\nvia: 1.1 misdirect\r\n"), "{head}");
    echo(&mut tls, b"ping").await;
    tls
}

async fn echo(tls: &mut TlsStream<TcpStream>, message: &[u8]) {
    tls.write_all(message).await.unwrap();
    let mut echoed = vec![0u8; message.len()];
    tls.read_exact(&mut echoed).await.unwrap();
    assert_eq!(echoed, message);
}

/// RFC 9110 §7.8: an Upgrade passes through, and the connection becomes a tunnel to the
/// application. A graceful shutdown waits for it as for any request in progress, and
/// closes it at the shutdown timeout.
#[tokio::test]
async fn an_upgrade_is_tunnelled_and_drained_at_shutdown() {
    let setup = Setup::start("proxy-upgrade").await;
    let mut tls = upgraded(&setup).await;
    echo(&mut tls, b"a longer message, after the first").await;
    drop(tls);

    let mut tls = upgraded(&setup).await;
    let Setup { server, .. } = setup;
    let started = Instant::now();
    let stopping = tokio::spawn(server.shutdown());
    // The tunnel still carries bytes while the server drains.
    tokio::time::sleep(Duration::from_millis(300)).await;
    echo(&mut tls, b"still open").await;
    // At the shutdown timeout (2 s) it is closed.
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut rest))
        .await
        .expect("the tunnel is closed at the shutdown timeout");
    assert!(read.is_err() || rest.is_empty(), "{read:?} {rest:?}");
    tokio::time::timeout(Duration::from_secs(5), stopping)
        .await
        .expect("the server stops")
        .unwrap();
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1900) && elapsed < Duration::from_secs(4),
        "{elapsed:?}"
    );
}

/// A graceful shutdown lets a forwarded request in progress finish, on both protocols.
#[tokio::test]
async fn shutdown_waits_for_forwarded_requests() {
    let setup = Setup::start("proxy-drain").await;
    let addr = setup.server.addr;
    let mut answers = Vec::new();
    for proto in [Proto::H1, Proto::H2] {
        let client = setup.client("a.test", proto);
        let request = to(proto, Method::GET, "a.test", "/slow?ms=700", b"");
        answers.push(tokio::spawn(async move {
            exchange(&client, addr, request).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let Setup { server, .. } = setup;
    let started = Instant::now();
    server.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_millis(1900),
        "{:?}",
        started.elapsed()
    );
    for answer in answers {
        let response = answer.await.unwrap();
        assert_eq!(response.status, 200, "{response:?}");
        assert_eq!(response.text(), "app GET /slow?ms=700 0");
    }
}

/// A reload builds each virtual host's forwarding anew: new connections go to the new
/// upstream.
#[tokio::test]
async fn a_reload_rebuilds_the_forwarding() {
    let setup = Setup::start("proxy-reload").await;
    let client = setup.client("a.test", Proto::H2);
    let get = || to(Proto::H2, Method::GET, "a.test", "/which", b"");
    let response = exchange(&client, setup.server.addr, get()).await;
    assert_eq!(response.text(), "app GET /which 0");

    let other = App::start("other", false).await;
    let text = config(other.addr, setup.h2c.addr, closed_port().await);
    std::fs::write(&setup.path, text).unwrap();
    setup.server.reload.reload().await.unwrap();
    let response = exchange(&client, setup.server.addr, get()).await;
    assert_eq!(response.text(), "other GET /which 0");
}
