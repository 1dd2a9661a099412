//! The special cases: malformed targets, absolute-form, body formats, connection handling
//! after 421, HEAD, session resumption across virtual hosts, other trust anchors, unknown
//! SNI, graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, header};

use crate::fixtures::Site;
use crate::support::{Client, Conn, PromiscuousStore, Proto, TestServer, request};

async fn secure_site(label: &str) -> (Site, TestServer) {
    let site = Site::new(label);
    let path = site.write("secure.toml", &site.config("secure", ""));
    let server = TestServer::start(&path).await;
    (site, server)
}

async fn connect(site: &Site, server: &TestServer, sni: &str, proto: Proto) -> Conn {
    Client::new(&site.ca.roots(), Some(sni), sni, proto)
        .connect(server.addr)
        .await
        .unwrap()
}

#[tokio::test]
async fn malformed_targets_are_400() {
    let (site, server) = secure_site("malformed").await;
    // RFC 9112 §3.2: two Host lines, or none, is 400.
    let mut h1 = connect(&site, &server, "a.test", Proto::H1).await;
    let resp = h1
        .send(request(Proto::H1, None, &["a.test", "a.test"]))
        .await
        .unwrap();
    assert_eq!(
        (resp.status, resp.reason().as_deref()),
        (400, Some("duplicate-host"))
    );
    let resp = h1.send(request(Proto::H1, None, &[])).await.unwrap();
    assert_eq!(
        (resp.status, resp.reason().as_deref()),
        (400, Some("missing-host"))
    );
    let resp = h1
        .send(request(Proto::H1, Some("a.test:99999"), &[]))
        .await
        .unwrap();
    assert_eq!(
        (resp.status, resp.reason().as_deref()),
        (400, Some("invalid-host"))
    );
    // A 400 does not close the connection: the next request is served.
    let resp = h1
        .send(request(Proto::H1, Some("a.test"), &[]))
        .await
        .unwrap();
    assert_eq!(resp.status, 200);

    // RFC 9113 §8.3.1: Host naming another authority than :authority is malformed, and a
    // malformed request is a stream error of type PROTOCOL_ERROR (§8.1.1): the stream is
    // reset, the connection stays.
    let mut h2 = connect(&site, &server, "a.test", Proto::H2).await;
    let err = h2
        .send(request(Proto::H2, Some("a.test"), &["b.test"]))
        .await
        .unwrap_err();
    assert!(
        err.contains("stream error received: unspecific protocol error"),
        "{err}"
    );
    // RFC 9113 §8.2.1: a field value with leading or trailing whitespace is malformed too.
    let mut padded = request(Proto::H2, Some("a.test"), &[]);
    padded
        .headers_mut()
        .insert("x-padded", http::HeaderValue::from_static("value "));
    let err = h2.send(padded).await.unwrap_err();
    assert!(
        err.contains("stream error received: unspecific protocol error"),
        "{err}"
    );
    // The same authority in both is fine.
    let resp = h2
        .send(request(Proto::H2, Some("b.test"), &["B.test:443"]))
        .await
        .unwrap();
    assert_eq!((resp.status, resp.text().as_str()), (200, "vhost b.test\n"));
    server.shutdown().await;
}

#[tokio::test]
async fn absolute_form_overrides_host() {
    let (site, server) = secure_site("absolute").await;
    let mut h1 = connect(&site, &server, "a.test", Proto::H1).await;
    let req = Request::get("https://b.test/path")
        .header(header::HOST, "c.test")
        .body(())
        .unwrap();
    let resp = h1.send(req).await.unwrap();
    assert_eq!((resp.status, resp.text().as_str()), (200, "vhost b.test\n"));
    // And the absolute-form authority is what the policy checks.
    let req = Request::get("https://c.test/")
        .header(header::HOST, "b.test")
        .body(())
        .unwrap();
    let resp = h1.send(req).await.unwrap();
    assert_eq!(resp.reason().as_deref(), Some("certificate-does-not-cover"));
    server.shutdown().await;
}

#[tokio::test]
async fn h1_closes_after_421_h2_keeps_the_connection() {
    let (site, server) = secure_site("close").await;
    let mut h1 = connect(&site, &server, "a.test", Proto::H1).await;
    let resp = h1
        .send(request(Proto::H1, Some("a.test"), &[]))
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    assert!(!h1.closed_by_server().await, "keep-alive after a 200");
    let resp = h1
        .send(request(Proto::H1, Some("c.test"), &[]))
        .await
        .unwrap();
    assert_eq!(resp.status, 421);
    assert_eq!(resp.headers[header::CONNECTION], "close");
    assert!(h1.closed_by_server().await, "HTTP/1.1 must close after 421");

    let mut h2 = connect(&site, &server, "a.test", Proto::H2).await;
    let resp = h2
        .send(request(Proto::H2, Some("c.test"), &[]))
        .await
        .unwrap();
    assert_eq!(resp.status, 421);
    assert!(resp.headers.get(header::CONNECTION).is_none());
    let resp = h2
        .send(request(Proto::H2, Some("b.test"), &[]))
        .await
        .unwrap();
    assert_eq!((resp.status, resp.text().as_str()), (200, "vhost b.test\n"));
    assert!(
        !h2.closed_by_server().await,
        "HTTP/2 keeps the connection after 421"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn head_requests() {
    let (site, server) = secure_site("head").await;
    for proto in [Proto::H1, Proto::H2] {
        for (authority, status, length) in
            [("a.test", 200, "vhost a.test\n".len()), ("c.test", 421, 0)]
        {
            let mut conn = connect(&site, &server, "a.test", proto).await;
            let mut req = request(proto, Some(authority), &[]);
            *req.method_mut() = Method::HEAD;
            let resp = conn.send(req).await.unwrap();
            assert_eq!(resp.status, status, "{proto:?} {authority}");
            assert!(
                resp.body.is_empty(),
                "{proto:?} {authority}: HEAD has no body"
            );
            let declared: usize = resp.headers[header::CONTENT_LENGTH]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            if status == 200 {
                assert_eq!(declared, length);
            } else {
                assert!(declared > 0, "the 421's length is the GET body's");
            }
        }
    }
    server.shutdown().await;
}

#[tokio::test]
async fn client_cert_from_other_anchors_is_421() {
    let (site, server) = secure_site("anchors").await;
    // partner.test's certificate also covers secure.test, and its CA verified this client.
    for proto in [Proto::H1, Proto::H2] {
        let mut conn = Client::new(
            &site.ca.roots(),
            Some("partner.test"),
            "partner.test",
            proto,
        )
        .cert(Some(site.other_client.clone()))
        .connect(server.addr)
        .await
        .unwrap();
        let resp = conn
            .send(request(proto, Some("partner.test"), &[]))
            .await
            .unwrap();
        assert_eq!(resp.status, 200);
        let resp = conn
            .send(request(proto, Some("secure.test"), &[]))
            .await
            .unwrap();
        assert_eq!(
            (resp.status, resp.reason().as_deref()),
            (421, Some("client-cert-other-anchors")),
            "{proto:?}"
        );
    }
    server.shutdown().await;
}

/// TLS 1.3 resumption must not carry a client-certificate authentication from one virtual
/// host's trust anchors to another's: each virtual host resumes only its own sessions.
#[tokio::test]
async fn resumption_stays_within_a_virtual_host() {
    let (site, server) = secure_site("resume").await;
    let store = Arc::new(PromiscuousStore::default());
    // One rustls configuration (with the other CA's client certificate) for every
    // connection, so that rustls offers the stored ticket whatever the server name.
    let mut partner = Client::new(
        &site.ca.roots(),
        Some("partner.test"),
        "partner.test",
        Proto::H1,
    )
    .cert(Some(site.other_client.clone()));
    partner.tls13_only = true;
    partner.sessions = Some(store.clone());
    let fresh_ticket = async || {
        store.clear();
        let mut conn = partner.connect(server.addr).await.unwrap();
        let resp = conn
            .send(request(Proto::H1, Some("partner.test"), &[]))
            .await
            .unwrap();
        assert_eq!(resp.status, 200);
        drop(conn);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(store.len() > 0, "the server sent TLS 1.3 tickets");
    };

    // The same virtual host resumes (so the store works and a resumed session is served).
    fresh_ticket().await;
    let tls = partner.tls(server.addr).await.unwrap();
    assert_eq!(
        tls.get_ref().1.handshake_kind(),
        Some(rustls::HandshakeKind::Resumed)
    );
    let mut conn = Conn::over(tls, Proto::H1).await.unwrap();
    let resp = conn
        .send(request(Proto::H1, Some("partner.test"), &[]))
        .await
        .unwrap();
    assert_eq!(resp.status, 200);

    // partner.test's ticket offered to a.test: no resumption, no client certificate on
    // the connection, so secure.test (whose name the certificate covers) is refused.
    fresh_ticket().await;
    let tls = partner.with_sni("a.test").tls(server.addr).await.unwrap();
    assert_eq!(
        tls.get_ref().1.handshake_kind(),
        Some(rustls::HandshakeKind::Full)
    );
    let mut conn = Conn::over(tls, Proto::H1).await.unwrap();
    let resp = conn
        .send(request(Proto::H1, Some("secure.test"), &[]))
        .await
        .unwrap();
    assert_eq!(resp.reason().as_deref(), Some("client-cert-required"));

    // partner.test's ticket offered to secure.test: no resumption; the full handshake
    // asks for a certificate, and the other CA's is refused.
    fresh_ticket().await;
    let secure = partner.with_sni("secure.test");
    if let Ok(tls) = secure.tls(server.addr).await {
        assert_ne!(
            tls.get_ref().1.handshake_kind(),
            Some(rustls::HandshakeKind::Resumed)
        );
        let got = match Conn::over(tls, Proto::H1).await {
            Ok(mut conn) => {
                conn.send(request(Proto::H1, Some("secure.test"), &[]))
                    .await
            }
            Err(err) => Err(err.to_string()),
        };
        assert!(
            got.is_err(),
            "secure.test accepted another CA's client: {got:?}"
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn unknown_and_missing_sni_get_the_default_vhost() {
    let (site, server) = secure_site("default").await;
    for sni in [None, Some("nobody.test")] {
        let mut client = Client::new(&site.ca.roots(), sni, "a.test", Proto::H2);
        client.insecure = sni.is_some();
        let tls = client.tls(server.addr).await.unwrap();
        let presented = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
        let ids = misdirect_certmatch::Identities::from_der(&presented).unwrap();
        assert!(
            ids.covers(&"a.test".parse().unwrap()),
            "{sni:?}: default vhost's certificate"
        );
        let mut conn = Conn::over(tls, Proto::H2).await.unwrap();
        let resp = conn
            .send(request(Proto::H2, Some("a.test"), &[]))
            .await
            .unwrap();
        assert_eq!(
            (resp.status, resp.text().as_str()),
            (200, "vhost a.test\n"),
            "{sni:?}"
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn graceful_shutdown_closes_idle_connections() {
    let (site, server) = secure_site("shutdown").await;
    let mut h2 = connect(&site, &server, "a.test", Proto::H2).await;
    let mut h1 = connect(&site, &server, "a.test", Proto::H1).await;
    assert_eq!(
        h2.send(request(Proto::H2, Some("a.test"), &[]))
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        h1.send(request(Proto::H1, Some("a.test"), &[]))
            .await
            .unwrap()
            .status,
        200
    );
    let started = std::time::Instant::now();
    server.shutdown().await;
    // GOAWAY and close: well within the 5 s drain timeout of the fixture.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(h2.closed_by_server().await);
    assert!(h1.closed_by_server().await);
}

/// RFC 9113 §8.3.1: the listener's scheme is checked whatever carries the authority. An
/// HTTP/2 request without `:authority` reaches the policy without its `:scheme` (an
/// `http::Uri` cannot hold one without an authority), so it is refused like `:scheme http`.
/// HTTP/2 client libraries cannot send such a request: it is written frame by frame.
#[tokio::test]
async fn http2_scheme_is_checked_with_or_without_authority() {
    let (site, server) = secure_site("h2-scheme").await;
    let client = Client::new(&site.ca.roots(), Some("a.test"), "a.test", Proto::H2);
    /// `:scheme`, `:authority`, Host; the body served, or the refusal's reason.
    type Case = (
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
        Result<&'static str, &'static str>,
    );
    #[rustfmt::skip]
    let cases: &[Case] = &[
        ("https", Some("a.test"), None, Ok("vhost a.test\n")),
        ("https", Some("a.test"), Some("a.test"), Ok("vhost a.test\n")),
        ("http", Some("a.test"), None, Err("scheme-not-served")),
        ("http", Some("a.test"), Some("a.test"), Err("scheme-not-served")),
        ("http", None, Some("a.test"), Err("scheme-not-served")),
        ("https", None, Some("a.test"), Err("scheme-not-served")),
    ];
    for &(scheme, authority, host, want) in cases {
        let tls = client.tls(server.addr).await.unwrap();
        let (status, body) = tokio::time::timeout(
            Duration::from_secs(5),
            raw_h2_get(tls, scheme, authority, host),
        )
        .await
        .expect("an answer within 5 s");
        let got = match status {
            200 => Ok(body.as_str()),
            _ => Err(body
                .lines()
                .find_map(|l| l.strip_prefix("Reason: "))
                .unwrap_or(&body)),
        };
        assert_eq!(got, want, "{scheme} :authority {authority:?} host {host:?}");
    }
    server.shutdown().await;
}

/// One HTTP/2 GET on stream 1 with exactly these pseudo-headers and Host: the status (200,
/// or 0 for any other) and the body. The HPACK block uses static-table entries and plain
/// literals only (RFC 7541 Appendix A: 2 `:method GET`, 4 `:path /`, 6/7 `:scheme`; literals
/// without indexing, §6.2.2, of name 1 `:authority` and 38 `host`).
async fn raw_h2_get<S>(
    mut io: S,
    scheme: &str,
    authority: Option<&str>,
    host: Option<&str>,
) -> (u16, String)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let frame = |kind: u8, flags: u8, stream: u32, payload: &[u8]| {
        let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
        let mut f = vec![len[1], len[2], len[3], kind, flags];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    };
    let literal = |block: &mut Vec<u8>, name: &[u8], value: &str| {
        block.extend_from_slice(name);
        block.push(u8::try_from(value.len()).unwrap());
        block.extend_from_slice(value.as_bytes());
    };
    let mut block = vec![0x82, if scheme == "https" { 0x87 } else { 0x86 }, 0x84];
    if let Some(authority) = authority {
        literal(&mut block, &[0x01], authority);
    }
    if let Some(host) = host {
        literal(&mut block, &[0x0f, 0x17], host);
    }
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(0x4, 0, 0, &[])); // SETTINGS
    out.extend(frame(0x1, 0x5, 1, &block)); // HEADERS, END_STREAM | END_HEADERS
    io.write_all(&out).await.unwrap();

    let (mut status, mut body) = (0, Vec::new());
    loop {
        let mut head = [0u8; 9];
        io.read_exact(&mut head)
            .await
            .expect("a response on stream 1");
        let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let (kind, flags) = (head[3], head[4]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0; len];
        io.read_exact(&mut payload).await.unwrap();
        let end_stream = flags & 0x1 != 0;
        match (kind, stream) {
            // The server's SETTINGS: acknowledge them.
            (0x4, 0) if flags & 0x1 == 0 => {
                io.write_all(&frame(0x4, 0x1, 0, &[])).await.unwrap();
            }
            // HEADERS: a block starting with static entry 8 is `:status 200`.
            (0x1, 1) => {
                status = if payload.first() == Some(&0x88) {
                    200
                } else {
                    0
                };
                if end_stream {
                    break;
                }
            }
            (0x0, 1) => {
                body.extend_from_slice(&payload);
                if end_stream {
                    break;
                }
            }
            (0x3, 1) | (0x7, _) => panic!("stream reset or connection closed: {payload:?}"),
            _ => {}
        }
    }
    (status, String::from_utf8_lossy(&body).into_owned())
}
