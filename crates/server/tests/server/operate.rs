//! Operating the server: the HTTP/2 ORIGIN frame each connection gets (RFC 8336), and the
//! admin listener's metrics after a scripted mix of requests, counted exactly.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::fixtures::Site;
use crate::support::{Client, Proto, TestServer, request};

/// The HTTP/2 client connection preface and an empty SETTINGS frame (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// Reads one frame: (type, flags, stream, payload).
async fn frame<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> (u8, u8, u32, Vec<u8>) {
    let mut head = [0u8; 9];
    stream.read_exact(&mut head).await.unwrap();
    let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
    let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    let mut payload = vec![0; len];
    stream.read_exact(&mut payload).await.unwrap();
    (head[3], head[4], id, payload)
}

/// The first two frames the server sends on a TLS HTTP/2 connection for `sni`.
async fn first_frames(site: &Site, addr: SocketAddr, sni: &str) -> Vec<(u8, u8, u32, Vec<u8>)> {
    let client = Client::new(&site.ca.roots(), Some(sni), sni, Proto::H2);
    let mut tls = client.tls(addr).await.unwrap();
    tls.write_all(PREFACE).await.unwrap();
    vec![frame(&mut tls).await, frame(&mut tls).await]
}

fn origins(payload: &[u8]) -> Vec<String> {
    misdirect_response::OriginFrame::decode_payload(payload)
        .unwrap()
        .into_origins()
}

#[tokio::test]
async fn each_http2_connection_announces_exactly_the_origins_it_serves() {
    let site = Site::new("origin-frame");
    let path = site.write("origin.toml", &site.config("secure", ""));
    let server = TestServer::start(&path).await;

    // a.test's connection has the shared certificate (a, b, secure): a and b are served on
    // it at both public ports; secure.test needs a client certificate this connection does
    // not have, so it is not announced.
    let frames = first_frames(&site, server.addr, "a.test").await;
    assert_eq!(frames[0].0, 0x4, "SETTINGS comes first (RFC 9113 §3.4)");
    assert_eq!(
        frames[0].1 & 0x1,
        0,
        "the server's own SETTINGS, not an ACK"
    );
    let (kind, flags, stream, payload) = &frames[1];
    assert_eq!(
        (*kind, *flags, *stream),
        (0xc, 0, 0),
        "ORIGIN right after SETTINGS"
    );
    assert_eq!(
        origins(payload),
        [
            "https://a.test",
            "https://a.test:8443",
            "https://b.test",
            "https://b.test:8443"
        ]
    );

    // c.test's own certificate covers only c.test.
    let frames = first_frames(&site, server.addr, "c.test").await;
    assert_eq!(frames[1].0, 0xc);
    assert_eq!(
        origins(&frames[1].3),
        ["https://c.test", "https://c.test:8443"]
    );
    // A wildcard virtual host cannot be enumerated: its connection announces nothing.
    let frames = first_frames(&site, server.addr, "x.wild.test").await;
    assert_eq!(frames[1].0, 0xc);
    assert!(origins(&frames[1].3).is_empty());

    // Requests still work on a connection that got the frame.
    let client = Client::new(&site.ca.roots(), Some("a.test"), "a.test", Proto::H2);
    let mut conn = client.connect(server.addr).await.unwrap();
    let resp = conn
        .send(request(Proto::H2, Some("b.test"), &[]))
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn origin_frame_false_sends_none() {
    let site = Site::new("origin-frame-off");
    let path = site.write("off.toml", &site.config("secure", "origin_frame = false"));
    let server = TestServer::start(&path).await;
    let frames = first_frames(&site, server.addr, "a.test").await;
    assert_eq!(frames[0].0, 0x4);
    assert!(frames.iter().all(|f| f.0 != 0xc), "{frames:?}");
    server.shutdown().await;
}

async fn scrape(admin: SocketAddr, path: &str, method: &str) -> (u16, String) {
    let mut tcp = TcpStream::connect(admin).await.unwrap();
    tcp.write_all(
        format!("{method} {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut text = String::new();
    tcp.read_to_string(&mut text).await.unwrap();
    let status = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

/// The sample lines whose value is not 0, without comments.
fn counted(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.ends_with(" 0") && !l.is_empty())
        .filter(|l| !l.starts_with("misdirect_certificate_not_after"))
        .filter(|l| !l.starts_with("misdirect_config_last_reload"))
        .collect()
}

#[tokio::test]
async fn metrics_count_a_scripted_mix_exactly() {
    let site = Site::new("metrics");
    let mut text = site.config("secure", "");
    text.push_str("\n[admin]\naddr = \"127.0.0.1:0\"\n");
    let path = site.write("metrics.toml", &text);
    let server = TestServer::start(&path).await;
    let admin = server.admin.expect("an admin listener");

    let client = Client::new(&site.ca.roots(), Some("a.test"), "a.test", Proto::H2);
    let mut conn = client.connect(server.addr).await.unwrap();
    let mut send = async |authority: &str| {
        conn.send(request(Proto::H2, Some(authority), &[]))
            .await
            .unwrap()
            .status
    };
    for _ in 0..3 {
        assert_eq!(send("a.test").await, 200);
    }
    assert_eq!(send("b.test").await, 200);
    for _ in 0..2 {
        assert_eq!(send("secure.test").await, 421);
    }
    assert_eq!(send("c.test").await, 421);
    // A plain HTTP request on the TLS port: a handshake failure of its own kind.
    let mut plain = TcpStream::connect(server.addr).await.unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    plain.read_to_end(&mut answer).await.unwrap();

    let (status, body) = scrape(admin, "/metrics", "GET").await;
    assert_eq!(status, 200);
    let mut lines = counted(&body);
    lines.sort_unstable();
    let mut want = vec![
        r#"misdirect_coalesced_requests_total{vhost="b.test"} 1"#,
        r#"misdirect_open_connections{protocol="h2"} 1"#,
        r#"misdirect_refusals_total{status="421",reason="certificate-does-not-cover"} 1"#,
        r#"misdirect_refusals_total{status="421",reason="client-cert-required"} 2"#,
        r#"misdirect_requests_total{vhost="a.test",status="200"} 3"#,
        r#"misdirect_requests_total{vhost="a.test",status="421"} 3"#,
        r#"misdirect_requests_total{vhost="b.test",status="200"} 1"#,
        r#"misdirect_tls_handshake_failures_total{cause="plain-http"} 1"#,
        r#"misdirect_tls_handshakes_total{vhost="a.test"} 1"#,
    ];
    want.sort_unstable();
    assert_eq!(lines, want, "{body}");
    // Every virtual host's certificate expiry is there, in seconds since the epoch.
    let expiry: Vec<&str> = body
        .lines()
        .filter(|l| l.starts_with("misdirect_certificate_not_after_timestamp_seconds{"))
        .collect();
    assert_eq!(expiry.len(), 6, "{body}");

    let (status, body) = scrape(admin, "/healthz", "GET").await;
    assert_eq!((status, body.trim()), (200, "ok"));
    let (status, body) = scrape(admin, "/reload", "POST").await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = scrape(admin, "/metrics", "GET").await;
    assert!(
        body.lines()
            .any(|l| l == r#"misdirect_reloads_total{outcome="ok"} 1"#),
        "{body}"
    );
    drop(conn);
    server.shutdown().await;
}
