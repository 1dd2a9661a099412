//! The client against the real `misdirect` server running its embedded set-up on loopback:
//! a.localhost and b.localhost share a certificate that also covers secure.localhost (which
//! requires a client certificate), c.localhost has its own, and every connection gets an
//! ORIGIN frame listing exactly the origins it serves.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use std::sync::atomic::{AtomicUsize, Ordering};

use http_body_util::{BodyExt, Full};
use misdirect_client::{Client, ClientBuilder, ErrorKind, RequestBody, StaticResolver};
use misdirect_coalesce::ReuseMode;
use rustls::RootCertStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use support::{LOCAL, OTHER_LOCAL, Setup, TestCa, counts, der_key, self_signed_acceptor, served};

#[tokio::test]
async fn a_then_b_share_one_connection_when_dns_overlaps_or_origin_frame_lists_b() {
    // RFC 9113 §9.1.1: the shared certificate covers b.localhost and b resolves to the
    // connection's peer; RFC 8336 §2.4: the ORIGIN frame lists b.localhost.
    let setup = Setup::start("share").await;
    for mode in [
        ReuseMode::DnsOverlap,
        ReuseMode::IpOverlap,
        ReuseMode::OriginFrame,
    ] {
        let client = setup.builder(mode).build().unwrap();
        setup.assert_served(&client, "a.localhost").await;
        setup.assert_served(&client, "b.localhost").await;
        let stats = client.stats();
        assert_eq!(counts(stats), (1, 1, 0), "{mode:?}");
        assert_eq!(stats.requests, 2, "{mode:?}");
        assert_eq!(
            stats.origin_frames, 1,
            "{mode:?}: one frame, after SETTINGS"
        );
    }
}

#[tokio::test]
async fn an_origin_in_the_origin_set_needs_no_dns_answer() {
    // RFC 8336 §2.4: membership of the ORIGIN set replaces the DNS check, not the
    // certificate check. b.localhost is not in the resolver at all.
    let setup = Setup::start("no-dns").await;
    let resolver = StaticResolver::new().insert("a.localhost", [LOCAL]);
    for (mode, want_b) in [
        (ReuseMode::OriginFrame, true),
        (ReuseMode::DnsOverlap, false),
    ] {
        let client = setup
            .builder(mode)
            .resolver(resolver.clone())
            .build()
            .unwrap();
        setup.assert_served(&client, "a.localhost").await;
        let request = http::Request::get(format!("https://b.localhost:{}/", setup.port))
            .body(Bytes::new())
            .unwrap();
        match client.send(request).await {
            Ok(response) => assert!(want_b && response.status() == 200, "{mode:?}"),
            Err(err) => assert!(
                !want_b && err.kind() == ErrorKind::Resolve,
                "{mode:?}: {err}"
            ),
        }
        assert_eq!(client.stats().connections_opened, 1, "{mode:?}");
    }
}

#[tokio::test]
async fn exact_mode_opens_one_connection_per_origin() {
    let setup = Setup::start("exact").await;
    let client = setup.builder(ReuseMode::Exact).build().unwrap();
    setup.assert_served(&client, "a.localhost").await;
    setup.assert_served(&client, "b.localhost").await;
    // The same origin again rides its own connection (RFC 9113 §9.1).
    setup.assert_served(&client, "a.localhost").await;
    assert_eq!(counts(client.stats()), (2, 0, 0));
}

#[tokio::test]
async fn a_host_the_certificate_does_not_cover_gets_its_own_connection() {
    // RFC 9113 §9.1.1: a.localhost's certificate does not cover c.localhost.
    let setup = Setup::start("cover").await;
    for mode in [ReuseMode::DnsOverlap, ReuseMode::OriginFrame] {
        let client = setup.builder(mode).build().unwrap();
        setup.assert_served(&client, "a.localhost").await;
        setup.assert_served(&client, "c.localhost").await;
        assert_eq!(counts(client.stats()), (2, 0, 0), "{mode:?}");
    }
}

#[tokio::test]
async fn an_origin_left_out_of_the_origin_frame_opens_a_connection_though_dns_overlaps() {
    // RFC 8336 §2.3: once an ORIGIN frame arrived, the connection is used for the origins in
    // its set only. a.localhost's connection presented no client certificate, so the server
    // leaves secure.localhost out; its own connection presents the certificate.
    let setup = Setup::start("origin-set").await;
    let client = setup
        .with_client_cert(setup.builder(ReuseMode::OriginFrame))
        .build()
        .unwrap();
    setup.assert_served(&client, "a.localhost").await;
    setup.assert_served(&client, "secure.localhost").await;
    let stats = client.stats();
    assert_eq!(counts(stats), (2, 0, 0));
    assert_eq!(stats.origin_frames, 2);
}

#[tokio::test]
async fn a_421_is_retried_once_on_a_fresh_connection_and_remembered() {
    // DnsOverlap has no ORIGIN set to consult: secure.localhost goes on a.localhost's
    // connection, which presented no client certificate; the server answers 421
    // client-cert-required (RFC 9110 §15.5.20) and the client retries on a connection made
    // for secure.localhost, which presents it.
    let setup = Setup::start("retry").await;
    let client = setup
        .with_client_cert(setup.builder(ReuseMode::DnsOverlap))
        .build()
        .unwrap();
    setup.assert_served(&client, "a.localhost").await;
    setup.assert_served(&client, "secure.localhost").await;
    assert_eq!(counts(client.stats()), (2, 1, 1));
    // The 421 is remembered on a.localhost's connection, and secure.localhost now has its own.
    setup.assert_served(&client, "secure.localhost").await;
    setup.assert_served(&client, "b.localhost").await;
    let stats = client.stats();
    assert_eq!(counts(stats), (2, 2, 1));
    assert_eq!(stats.requests, 4);
}

#[tokio::test]
async fn a_post_is_retried_after_a_421_with_its_body() {
    // RFC 9110 §15.5.20: the client MAY retry whatever the method.
    let setup = Setup::start("retry-post").await;
    let client = setup
        .with_client_cert(setup.builder(ReuseMode::DnsOverlap))
        .build()
        .unwrap();
    setup.get(&client, "a.localhost").await;
    let request = http::Request::post(format!("https://secure.localhost:{}/", setup.port))
        .body(Bytes::from_static(b"payload"))
        .unwrap();
    let response = client.send(request).await.unwrap();
    assert_ne!(response.status(), 421);
    assert_eq!(client.stats().retries_421, 1);
}

#[tokio::test]
async fn secure_is_never_served_without_the_client_certificate() {
    // Coalesced onto a.localhost's connection it gets 421; its own connection fails: the
    // server requires a client certificate and sends an alert (in TLS 1.3 after the
    // client's Finished, so the error surfaces on the first HTTP/2 read).
    let setup = Setup::start("no-cert").await;
    let client = setup.builder(ReuseMode::DnsOverlap).build().unwrap();
    setup.get(&client, "a.localhost").await;
    let request = http::Request::get(format!("https://secure.localhost:{}/", setup.port))
        .body(Bytes::new())
        .unwrap();
    match client.send(request).await {
        Ok(response) => assert_eq!(response.status(), 421),
        Err(err) => assert_eq!(err.kind(), ErrorKind::ClientCertRequired, "{err}"),
    }
    assert_eq!(client.stats().retries_421, 1);
}

#[tokio::test]
async fn a_connection_that_presented_a_client_certificate_is_not_shared_unless_allowed() {
    let setup = Setup::start("client-cert").await;
    let client = setup
        .with_client_cert(setup.builder(ReuseMode::DnsOverlap))
        .build()
        .unwrap();
    setup.assert_served(&client, "secure.localhost").await;
    setup.assert_served(&client, "a.localhost").await;
    assert_eq!(counts(client.stats()), (2, 0, 0));

    let sharing = setup
        .with_client_cert(setup.builder(ReuseMode::DnsOverlap).share_client_cert(true))
        .build()
        .unwrap();
    setup.assert_served(&sharing, "secure.localhost").await;
    setup.assert_served(&sharing, "a.localhost").await;
    assert_eq!(counts(sharing.stats()), (1, 1, 0));
}

#[tokio::test]
async fn disjoint_addresses_prevent_dns_overlap_reuse_but_not_origin_frame_reuse() {
    // b.localhost resolves to 127.0.0.2 only, where a relay passes bytes to the server.
    let setup = Setup::start("disjoint").await;
    let relay = TcpListener::bind((OTHER_LOCAL, setup.port)).await.unwrap();
    let target = SocketAddr::new(LOCAL, setup.port);
    tokio::spawn(async move {
        loop {
            let (mut inbound, _) = relay.accept().await.unwrap();
            tokio::spawn(async move {
                let mut outbound = tokio::net::TcpStream::connect(target).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            });
        }
    });
    let resolver = setup.resolver().insert("b.localhost", [OTHER_LOCAL]);

    // Chromium's rule: b's addresses must include the connection's peer.
    let client = setup
        .builder(ReuseMode::DnsOverlap)
        .resolver(resolver.clone())
        .build()
        .unwrap();
    setup.assert_served(&client, "a.localhost").await;
    setup.assert_served(&client, "b.localhost").await;
    assert_eq!(counts(client.stats()), (2, 0, 0));

    // RFC 8336 §2.4: the ORIGIN set replaces the DNS check.
    let client = setup
        .builder(ReuseMode::OriginFrame)
        .resolver(resolver)
        .build()
        .unwrap();
    setup.assert_served(&client, "a.localhost").await;
    setup.assert_served(&client, "b.localhost").await;
    assert_eq!(counts(client.stats()), (1, 1, 0));
}

#[tokio::test]
async fn a_connection_the_server_closed_is_replaced() {
    let setup = Setup::start("restart").await;
    let client = setup.builder(ReuseMode::OriginFrame).build().unwrap();
    setup.assert_served(&client, "a.localhost").await;
    let setup = setup.restart().await;
    setup.assert_served(&client, "b.localhost").await;
    setup.assert_served(&client, "a.localhost").await;
    assert_eq!(counts(client.stats()), (2, 1, 0));
}

#[tokio::test]
async fn concurrent_requests_for_one_origin_open_one_connection() {
    // RFC 9113 §9.1: clients SHOULD NOT open more than one connection per host and port.
    let setup = Setup::start("concurrent").await;
    let client = setup.builder(ReuseMode::Exact).build().unwrap();
    let gets = (0..8).map(|_| setup.get(&client, "a.localhost"));
    for got in futures_join_all(gets).await {
        assert_eq!(got, served("a.localhost"));
    }
    assert_eq!(counts(client.stats()), (1, 0, 0));
}

#[tokio::test]
async fn concurrent_requests_for_origins_at_one_address_open_one_connection() {
    // A burst for a and b at once on an empty pool: b's requests wait for the connection
    // being opened to the same address rather than open their own, then share it (the
    // certificate covers b). c has its own certificate: it still gets its own connection.
    let setup = Setup::start("burst").await;
    for mode in [ReuseMode::DnsOverlap, ReuseMode::OriginFrame] {
        let client = setup.builder(mode).build().unwrap();
        let hosts = ["a.localhost", "b.localhost"].repeat(4);
        let gets = hosts.iter().map(|host| setup.get(&client, host));
        for (got, host) in futures_join_all(gets).await.into_iter().zip(&hosts) {
            assert_eq!(got, served(host));
        }
        assert_eq!(client.stats().connections_opened, 1, "{mode:?}");
        let gets = ["c.localhost"; 3].map(|host| setup.get(&client, host));
        for got in futures_join_all(gets.into_iter()).await {
            assert_eq!(got, served("c.localhost"));
        }
        assert_eq!(client.stats().connections_opened, 2, "{mode:?}");
    }
}

#[tokio::test]
async fn a_strict_listener_421_is_retried_on_a_fresh_connection_and_b_then_has_its_own() {
    // Under `policy = "strict"` a request goes only on a connection made for its own
    // virtual host (421 sni-vhost-differs otherwise), even when the certificate covers it.
    let ca = TestCa::new();
    let (cert, key) = ca.issue(&["a.strict.localhost", "b.strict.localhost"]);
    let dir = std::env::temp_dir().join(format!("misdirect-client-strict-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("shared.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("shared.key"), key.serialize_pem()).unwrap();
    let mut text = String::from("[[listener]]\naddr = \"127.0.0.1:0\"\npolicy = \"strict\"\n");
    for name in ["a.strict.localhost", "b.strict.localhost"] {
        text.push_str(&format!(
            "\n[[vhost]]\nname = \"{name}\"\ncert = \"shared.pem\"\nkey = \"shared.key\"\nrespond = {{ body = \"vhost {name}\\n\" }}\n"
        ));
    }
    let config =
        misdirect_server::Config::from_toml(&text, &dir.join("strict.toml"), &dir).unwrap();
    let server = misdirect_server::Server::bind(config).await.unwrap();
    let port = server.local_addrs()[0].port();
    tokio::spawn(server.run(std::future::pending()));

    let client = Client::builder()
        .roots(ca.roots())
        .reuse_mode(ReuseMode::DnsOverlap)
        .resolver(
            StaticResolver::new()
                .insert("a.strict.localhost", [LOCAL])
                .insert("b.strict.localhost", [LOCAL]),
        )
        .build()
        .unwrap();
    let get = |host: &'static str| {
        let client = client.clone();
        async move {
            let request = http::Request::get(format!("https://{host}:{port}/"))
                .body(())
                .unwrap();
            let response = client.send(request).await.unwrap();
            let status = response.status().as_u16();
            let body = response.into_body().collect().await.unwrap();
            (status, String::from_utf8(body.to_vec()).unwrap())
        }
    };
    assert_eq!(
        get("a.strict.localhost").await,
        served("a.strict.localhost")
    );
    // Coalesced onto a's connection (DNS and certificate allow it), refused with 421,
    // retried on a fresh connection made for b.
    assert_eq!(
        get("b.strict.localhost").await,
        served("b.strict.localhost")
    );
    assert_eq!(counts(client.stats()), (2, 1, 1));
    // From now on b goes straight to its own connection, and a to its own.
    assert_eq!(
        get("b.strict.localhost").await,
        served("b.strict.localhost")
    );
    assert_eq!(
        get("a.strict.localhost").await,
        served("a.strict.localhost")
    );
    assert_eq!(counts(client.stats()), (2, 1, 1));
}

/// Runs every future to completion concurrently on this task.
async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let mut set = Vec::new();
    for future in futures {
        set.push(Box::pin(future));
    }
    let mut out: Vec<Option<F::Output>> = set.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, slot) in set.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *slot = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(Option::unwrap).collect()
}

#[tokio::test]
async fn the_limit_of_connections_per_peer_holds() {
    let setup = Setup::start("limit").await;
    let client = setup
        .builder(ReuseMode::Exact)
        .max_connections_per_peer(1)
        .build()
        .unwrap();
    setup.assert_served(&client, "a.localhost").await;
    let request = http::Request::get(format!("https://b.localhost:{}/", setup.port))
        .body(Bytes::new())
        .unwrap();
    let err = client.send(request).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooManyConnections, "{err}");
    // The connection in the pool still serves its own origin.
    setup.assert_served(&client, "a.localhost").await;
    assert_eq!(client.stats().connections_opened, 1);
}

#[tokio::test]
async fn clones_share_the_pool() {
    let setup = Setup::start("clone").await;
    let client = setup.builder(ReuseMode::OriginFrame).build().unwrap();
    let clone = client.clone();
    let (a, b) = tokio::join!(setup.get(&client, "a.localhost"), async {
        setup.get(&clone, "a.localhost").await;
        setup.get(&clone, "b.localhost").await
    });
    assert_eq!(a, served("a.localhost"));
    assert_eq!(b, served("b.localhost"));
    assert_eq!(client.stats().requests, 3);
}

/// A TLS server for `h1.localhost` that offers only `http/1.1` by ALPN and answers every
/// request with its method, `Host` and body length; returns its port, the client's trust
/// anchors and the number of connections it accepted.
async fn http1_server() -> (u16, RootCertStore, Arc<AtomicUsize>) {
    let (acceptor, roots) = self_signed_acceptor("h1.localhost", b"http/1.1");
    let listener = TcpListener::bind((LOCAL, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    tokio::spawn({
        let accepted = accepted.clone();
        async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                accepted.fetch_add(1, Ordering::SeqCst);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let tls = acceptor.accept(tcp).await.unwrap();
                    let service = hyper::service::service_fn(
                        |request: http::Request<hyper::body::Incoming>| async move {
                            let method = request.method().clone();
                            let host = request.headers()[http::header::HOST].clone();
                            let target = request.uri().to_string();
                            let body = request.into_body().collect().await?.to_bytes();
                            if target == "/big" {
                                let big = Bytes::from(vec![b'z'; 4 << 20]);
                                return Ok(http::Response::new(Full::new(big)));
                            }
                            let text = format!(
                                "{method} {target} host={} body={}",
                                host.to_str().unwrap(),
                                body.len()
                            );
                            Ok::<_, hyper::Error>(http::Response::new(Full::new(Bytes::from(text))))
                        },
                    );
                    let io = hyper_util::rt::TokioIo::new(tls);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                });
            }
        }
    });
    (port, roots, accepted)
}

#[tokio::test]
async fn a_server_that_selects_http1_gets_http1_on_one_kept_connection() {
    let (port, roots, accepted) = http1_server().await;
    let client = Client::builder()
        .roots(roots)
        .resolver(StaticResolver::new().insert("h1.localhost", [LOCAL]))
        .build()
        .unwrap();
    let uri = format!("https://h1.localhost:{port}/path?q=1");
    for _ in 0..3 {
        let response = client
            .send(http::Request::get(&uri).body(()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.version(), http::Version::HTTP_11);
        let text = response.into_body().collect().await.unwrap();
        // RFC 9112 §3.2: origin-form target, Host from the URI's authority.
        assert_eq!(
            text,
            format!("GET /path?q=1 host=h1.localhost:{port} body=0")
        );
    }
    let body = Bytes::from(vec![b'x'; 100_000]);
    let response = client
        .send(http::Request::post(&uri).body(body).unwrap())
        .await
        .unwrap();
    let text = response.into_body().collect().await.unwrap();
    assert_eq!(
        text,
        format!("POST /path?q=1 host=h1.localhost:{port} body=100000")
    );
    let streamed = RequestBody::streaming(Chunks::new(5, 30_000));
    let response = client
        .send(http::Request::put(&uri).body(streamed).unwrap())
        .await
        .unwrap();
    let text = response.into_body().collect().await.unwrap();
    assert_eq!(
        text,
        format!("PUT /path?q=1 host=h1.localhost:{port} body=150000")
    );
    // One connection, kept between requests whose bodies were read.
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    assert_eq!(client.stats().connections_opened, 1);

    // A response whose body is still being read keeps its connection busy: the next
    // request gets a second connection.
    let big = format!("https://h1.localhost:{port}/big");
    let first = client
        .send(http::Request::get(&big).body(()).unwrap())
        .await
        .unwrap();
    let second = client
        .send(http::Request::get(&uri).body(()).unwrap())
        .await
        .unwrap();
    drop((first, second));
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    assert_eq!(client.stats().coalesced, 0);
}

/// An HTTP/1.1 server whose first connection answers one request, keeps the connection,
/// then reads the next request and closes without answering (the race of an idle timeout,
/// RFC 9112 §9.3.1); later connections answer everything. Returns its port, the client and
/// the number of connections accepted.
async fn closing_h1_server() -> (String, Client, Arc<AtomicUsize>) {
    let (acceptor, roots) = h1_only_tls("h1.localhost");
    let listener = TcpListener::bind((LOCAL, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    tokio::spawn({
        let accepted = accepted.clone();
        async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let index = accepted.fetch_add(1, Ordering::SeqCst);
                let mut tls = acceptor.accept(tcp).await.unwrap();
                tokio::spawn(async move {
                    let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    for served in 0.. {
                        if read_head(&mut tls).await.is_none() || (index == 0 && served == 1) {
                            return;
                        }
                        tls.write_all(answer).await.unwrap();
                    }
                });
            }
        }
    });
    let client = Client::builder()
        .roots(roots)
        .resolver(StaticResolver::new().insert("h1.localhost", [LOCAL]))
        .build()
        .unwrap();
    (format!("https://h1.localhost:{port}/"), client, accepted)
}

#[tokio::test]
async fn a_kept_http1_connection_closed_without_an_answer_is_replaced_for_idempotent_requests() {
    let (uri, client, accepted) = closing_h1_server().await;
    let get = || http::Request::get(&uri).body(()).unwrap();
    for _ in 0..2 {
        let body = client
            .send(get())
            .await
            .unwrap()
            .into_body()
            .collect()
            .await;
        assert_eq!(body.unwrap(), "ok");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 2);

    // A POST is not idempotent (RFC 9110 §9.2.2): it is not sent again.
    let (uri, client, accepted) = closing_h1_server().await;
    let body = client
        .send(get_from(&uri))
        .await
        .unwrap()
        .into_body()
        .collect()
        .await;
    assert_eq!(body.unwrap(), "ok");
    let post = http::Request::post(&uri).body("once").unwrap();
    let err = client.send(post).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Http1, "{err}");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

fn get_from(uri: &str) -> http::Request<()> {
    http::Request::get(uri).body(()).unwrap()
}

/// A TLS acceptor for `name` offering only `http/1.1`, and roots that trust it.
fn h1_only_tls(name: &str) -> (tokio_rustls::TlsAcceptor, RootCertStore) {
    self_signed_acceptor(name, b"http/1.1")
}

/// Reads one request head (no body); `None` at the end of the stream.
async fn read_head<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    Some(head)
}

/// A streaming request body: `count` frames of `size` bytes each.
struct Chunks {
    left: usize,
    size: usize,
}

impl Chunks {
    fn new(count: usize, size: usize) -> Self {
        Self { left: count, size }
    }
}

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if self.left == 0 {
            return std::task::Poll::Ready(None);
        }
        self.left -= 1;
        let chunk = Bytes::from(vec![b'y'; self.size]);
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(chunk))))
    }
}

#[tokio::test]
async fn a_streaming_body_is_sent_within_flow_control() {
    // RFC 9113 §6.9: 1 MB, far past the initial 65,535-byte window, arrives whole.
    let (port, roots) = scripted_server(Script::Echo).await;
    let client = scripted_client(roots).build().unwrap();
    let request = http::Request::post(format!("https://h2.localhost:{port}/"))
        .body(RequestBody::streaming(Chunks::new(64, 16_384)))
        .unwrap();
    let response = client.send(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.into_body().collect().await.unwrap(), "1048576");
}

#[tokio::test]
async fn a_streaming_body_is_not_retried_after_a_421_and_says_so() {
    let setup = Setup::start("retry-stream").await;
    let client = setup
        .with_client_cert(setup.builder(ReuseMode::DnsOverlap))
        .build()
        .unwrap();
    setup.get(&client, "a.localhost").await;
    let request = http::Request::post(format!("https://secure.localhost:{}/", setup.port))
        .body(RequestBody::streaming(Chunks::new(2, 10)))
        .unwrap();
    let err = client.send(request).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotRetried, "{err}");
    assert!(err.to_string().contains("not retried"), "{err}");
    assert_eq!(counts(client.stats()), (1, 1, 0));
    // The origin is misdirected on a.localhost's connection: the next request goes to a
    // connection made for it.
    setup.assert_served(&client, "secure.localhost").await;
    assert_eq!(counts(client.stats()), (2, 1, 0));
}

#[tokio::test]
async fn concurrent_421s_for_one_origin_share_one_fresh_connection() {
    let setup = Setup::start("retry-many").await;
    let client = setup
        .with_client_cert(setup.builder(ReuseMode::DnsOverlap))
        .build()
        .unwrap();
    setup.get(&client, "a.localhost").await;
    let gets = (0..6).map(|_| setup.get(&client, "secure.localhost"));
    for got in futures_join_all(gets).await {
        assert_eq!(got, served("secure.localhost"));
    }
    let stats = client.stats();
    assert_eq!(stats.connections_opened, 2, "{stats:?}");
    assert!(stats.retries_421 >= 1, "{stats:?}");
}

#[tokio::test]
async fn a_remembered_421_keeps_the_origin_off_new_shared_connections() {
    // After a 421 for secure.localhost, every connection is gone (the server restarts);
    // b.localhost's new connection would carry secure.localhost again (DnsOverlap, the
    // certificate covers it) and get a second 421 — unless the client remembers.
    for (remember, retries) in [(false, 2), (true, 1)] {
        let setup = Setup::start(&format!("remember-{remember}")).await;
        let mut builder = setup.with_client_cert(setup.builder(ReuseMode::DnsOverlap));
        if remember {
            builder = builder.remember_misdirected(std::time::Duration::from_secs(60));
        }
        let client = builder.build().unwrap();
        setup.get(&client, "a.localhost").await;
        setup.assert_served(&client, "secure.localhost").await;
        let setup = setup.restart().await;
        setup.assert_served(&client, "b.localhost").await;
        setup.assert_served(&client, "secure.localhost").await;
        let stats = client.stats();
        assert_eq!(stats.retries_421, retries, "remember {remember}: {stats:?}");
        assert_eq!(
            stats.connections_opened, 4,
            "remember {remember}: {stats:?}"
        );
    }
}

#[tokio::test]
async fn requests_that_are_not_https_are_refused() {
    let client = Client::builder().build().unwrap();
    for uri in ["http://a.localhost/", "/relative"] {
        let request = http::Request::get(uri).body(Bytes::new()).unwrap();
        let err = client.send(request).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidRequest, "{uri}");
    }
    assert_eq!(client.stats().requests, 0);
}

/// What the scripted HTTP/2 server does with each request.
#[derive(Clone, Copy)]
enum Script {
    /// Never answers.
    Hang,
    /// Resets every stream of its first connection with REFUSED_STREAM, answers 200 on the
    /// others.
    RefuseOnFirstConnection,
    /// Reads each request body to its end and answers with its length.
    Echo,
}

/// A bare HTTP/2 server for `h2.localhost` on an ephemeral loopback port, following
/// `script`; returns its port and the client's trust anchors.
async fn scripted_server(script: Script) -> (u16, RootCertStore) {
    let (acceptor, roots) = self_signed_acceptor("h2.localhost", b"h2");
    let listener = TcpListener::bind((LOCAL, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        for index in 0.. {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let tls = acceptor.accept(tcp).await.unwrap();
                let mut conn = h2::server::handshake(tls).await.unwrap();
                let mut held = Vec::new();
                while let Some(Ok((request, mut respond))) = conn.accept().await {
                    match (script, index) {
                        (Script::Echo, _) => {
                            tokio::spawn(async move {
                                let mut body = request.into_body();
                                let mut length = 0;
                                while let Some(chunk) = body.data().await {
                                    let chunk = chunk.unwrap();
                                    length += chunk.len();
                                    body.flow_control().release_capacity(chunk.len()).unwrap();
                                }
                                let mut stream = respond
                                    .send_response(http::Response::new(()), false)
                                    .unwrap();
                                stream
                                    .send_data(Bytes::from(length.to_string()), true)
                                    .unwrap();
                            });
                        }
                        (Script::Hang, _) => held.push(respond),
                        (Script::RefuseOnFirstConnection, 0) => {
                            respond.send_reset(h2::Reason::REFUSED_STREAM)
                        }
                        (Script::RefuseOnFirstConnection, _) => {
                            let response = http::Response::new(());
                            respond.send_response(response, true).unwrap();
                        }
                    }
                }
            });
        }
    });
    (port, roots)
}

fn scripted_client(roots: RootCertStore) -> ClientBuilder {
    Client::builder()
        .roots(roots)
        .resolver(StaticResolver::new().insert("h2.localhost", [LOCAL]))
}

#[tokio::test]
async fn a_request_without_an_answer_times_out() {
    let (port, roots) = scripted_server(Script::Hang).await;
    let client = scripted_client(roots)
        .request_timeout(std::time::Duration::from_millis(200))
        .build()
        .unwrap();
    let request = http::Request::get(format!("https://h2.localhost:{port}/"))
        .body(Bytes::new())
        .unwrap();
    let err = client.send(request).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
}

#[tokio::test]
async fn a_refused_stream_is_sent_again_on_a_fresh_connection() {
    // RFC 9113 §8.7: REFUSED_STREAM means the request was not processed.
    let (port, roots) = scripted_server(Script::RefuseOnFirstConnection).await;
    let client = scripted_client(roots).build().unwrap();
    let uri = format!("https://h2.localhost:{port}/");
    // The first request opens the connection and is refused there: nothing pooled to
    // fall back from, so the error is returned.
    let request = http::Request::post(&uri)
        .body(Bytes::from_static(b"once"))
        .unwrap();
    let err = client.send(request).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Http2, "{err}");
    // The second finds the first connection in the pool, is refused, and goes on a new one.
    let request = http::Request::post(&uri)
        .body(Bytes::from_static(b"twice"))
        .unwrap();
    let response = client.send(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(counts(client.stats()), (2, 0, 0));
}

#[tokio::test]
async fn a_second_client_certificate_connection_is_not_shared_either() {
    // A server that requires a client certificate for h2.localhost and other.localhost
    // (one certificate covers both) and closes its first connection after one response,
    // so that the client opens a second one, which could resume the first's TLS session —
    // and its client authentication — without sending the certificate again.
    let ca = TestCa::new();
    let (server_cert, server_key) = ca.issue(&["h2.localhost", "other.localhost"]);
    let (client_cert, client_key) = ca.issue(&[]);
    let (server_cert, server_key) = (server_cert.der().clone(), der_key(&server_key));
    let (client_cert, client_key) = (client_cert.der().clone(), der_key(&client_key));
    let roots = ca.roots();

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots.clone()),
        provider.clone(),
    )
    .build()
    .unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![server_cert], server_key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind((LOCAL, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let kinds = Arc::new(std::sync::Mutex::new(Vec::new()));
    tokio::spawn({
        let kinds = kinds.clone();
        async move {
            for index in 0.. {
                let (tcp, _) = listener.accept().await.unwrap();
                let acceptor = acceptor.clone();
                let kinds = kinds.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    kinds.lock().unwrap().push(tls.get_ref().1.handshake_kind());
                    let mut conn = h2::server::handshake(tls).await.unwrap();
                    while let Some(Ok((_request, mut respond))) = conn.accept().await {
                        respond
                            .send_response(http::Response::new(()), true)
                            .unwrap();
                        if index == 0 {
                            conn.graceful_shutdown();
                        }
                    }
                });
            }
        }
    });

    let client = Client::builder()
        .roots(roots)
        .client_cert(vec![client_cert], client_key)
        .reuse_mode(ReuseMode::DnsOverlap)
        .resolver(
            StaticResolver::new()
                .insert("h2.localhost", [LOCAL])
                .insert("other.localhost", [LOCAL]),
        )
        .build()
        .unwrap();
    let get = |host: &str| {
        let request = http::Request::get(format!("https://{host}:{port}/"))
            .body(Bytes::new())
            .unwrap();
        let client = client.clone();
        async move { client.send(request).await.unwrap().status() }
    };
    assert_eq!(get("h2.localhost").await, 200);
    // The first connection closes; wait for the client to see it.
    for _ in 0..100 {
        if get("h2.localhost").await == 200 && client.stats().connections_opened == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(client.stats().connections_opened, 2);
    // rustls ties a ticket to the certificate resolver it was issued under, and each
    // connection of a client with a certificate has its own (to learn whether it was
    // presented): such a client never resumes. Were it to, a resumed session counts as
    // presented for a name the certificate was presented to.
    let kinds = kinds.lock().unwrap().clone();
    assert_eq!(
        kinds,
        [
            Some(rustls::HandshakeKind::Full),
            Some(rustls::HandshakeKind::Full)
        ]
    );
    // other.localhost is covered and resolves to the same peer, but the resumed connection
    // speaks with the client certificate: it gets a connection of its own.
    assert_eq!(get("other.localhost").await, 200);
    assert_eq!(counts(client.stats()), (3, 0, 0));
}
