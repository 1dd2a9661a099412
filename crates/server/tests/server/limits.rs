//! `[limits]` over loopback: the TLS handshake timeout, the HTTP/1.1 header read timeout, the
//! header size limit on both protocols, and the advertised HTTP/2 stream limit.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::fixtures::Site;
use crate::support::{Client, Proto, TestServer, request};

/// The test site with these `[limits]` lines in place of the fixture's.
pub async fn site_with_limits(label: &str, limits: &str) -> (Site, TestServer) {
    let site = Site::new(label);
    let text = site.config("secure", "").replace(
        "[limits]\nshutdown_timeout_secs = 5",
        &format!("[limits]\nshutdown_timeout_secs = 5\n{limits}"),
    );
    assert!(text.contains(limits), "the fixture's [limits] table moved");
    let path = site.write("limits.toml", &text);
    let server = TestServer::start(&path).await;
    (site, server)
}

/// Reads until the peer closes (or fails the connection); returns what was read.
pub async fn read_to_close(stream: &mut (impl AsyncReadExt + Unpin)) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return seen,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn a_silent_client_is_dropped_after_the_tls_handshake_timeout() {
    let (_site, server) = site_with_limits("tls-timeout", "tls_handshake_timeout_secs = 0.5").await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let started = Instant::now();
    let seen = tokio::time::timeout(Duration::from_secs(5), read_to_close(&mut tcp))
        .await
        .expect("the server keeps a silent connection open past its handshake timeout");
    let waited = started.elapsed();
    assert!(
        seen.is_empty(),
        "the server wrote to a client that sent nothing"
    );
    assert!(
        waited >= Duration::from_millis(400),
        "closed after {waited:?}, before the 0.5 s timeout"
    );
}

#[tokio::test]
async fn a_slow_http1_request_head_is_cut_off_after_the_header_read_timeout() {
    let (site, server) = site_with_limits("header-timeout", "header_read_timeout_secs = 0.5").await;
    let client = Client::new(&site.ca.roots(), Some("a.test"), "a.test", Proto::H1);
    let mut tls = client.tls(server.addr).await.unwrap();
    // A request line and one field, then nothing: the head never ends.
    tls.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n")
        .await
        .unwrap();
    tls.flush().await.unwrap();
    let started = Instant::now();
    let seen = tokio::time::timeout(Duration::from_secs(5), read_to_close(&mut tls))
        .await
        .expect("the server waits past its header read timeout");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(400),
        "closed after {waited:?}, before the 0.5 s timeout"
    );
    // Whatever the server says on its way out, it does not serve the request.
    let text = String::from_utf8_lossy(&seen);
    assert!(!text.starts_with("HTTP/1.1 200"), "{text}");
}

#[tokio::test]
async fn an_oversized_http1_head_gets_431_and_a_normal_one_still_works() {
    let (site, server) = site_with_limits("h1-size", "max_header_bytes = 8192").await;
    let client = Client::new(&site.ca.roots(), Some("a.test"), "a.test", Proto::H1);

    let mut normal = client.connect(server.addr).await.unwrap();
    let resp = normal
        .send(request(Proto::H1, Some("a.test"), &[]))
        .await
        .unwrap();
    assert_eq!(resp.status, 200);

    let mut tls = client.tls(server.addr).await.unwrap();
    let filler = "x".repeat(16 * 1024);
    let head = format!("GET / HTTP/1.1\r\nHost: a.test\r\nX-Filler: {filler}\r\n\r\n");
    // The server may stop reading once the limit is hit; a failed write is fine.
    let _ = tls.write_all(head.as_bytes()).await;
    let _ = tls.flush().await;
    let seen = tokio::time::timeout(Duration::from_secs(5), read_to_close(&mut tls))
        .await
        .expect("no answer to an oversized head");
    let text = String::from_utf8_lossy(&seen);
    assert!(text.starts_with("HTTP/1.1 431"), "{text}");
}

#[tokio::test]
async fn an_oversized_http2_header_list_gets_431_on_its_stream_only() {
    let (site, server) = site_with_limits("h2-size", "max_header_bytes = 8192").await;
    let client = Client::new(&site.ca.roots(), Some("a.test"), "a.test", Proto::H2);
    let mut conn = client.connect(server.addr).await.unwrap();

    let mut big = request(Proto::H2, Some("a.test"), &[]);
    big.headers_mut()
        .insert("x-filler", "x".repeat(16 * 1024).parse().unwrap());
    let resp = conn.send(big).await.unwrap();
    assert_eq!(resp.status, 431);

    // RFC 9113 §10.5.1: the limit is per request; the connection carries on.
    let resp = conn
        .send(request(Proto::H2, Some("a.test"), &[]))
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
}

#[tokio::test]
async fn http2_advertises_the_configured_stream_limit() {
    let (site, server) = site_with_limits("h2-streams", "max_concurrent_streams = 7").await;
    let client = Client::new(&site.ca.roots(), Some("a.test"), "a.test", Proto::H2);
    let tls = client.tls(server.addr).await.unwrap();
    let (sender, mut connection) = h2::client::handshake(tls).await.unwrap();
    // The server's SETTINGS arrive while the connection is driven; one request makes sure
    // they have been read.
    let mut ready = sender.ready().await.unwrap();
    let (response, _) = ready
        .send_request(request(Proto::H2, Some("a.test"), &[]), true)
        .unwrap();
    let driven = tokio::select! {
        response = response => response.unwrap().status().as_u16(),
        _ = &mut connection => panic!("the connection ended before the response"),
    };
    assert_eq!(driven, 200);
    assert_eq!(connection.max_concurrent_send_streams(), 7);
}
