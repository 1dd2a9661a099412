//! Hostile and careless clients: idle connections on both protocols, unanswered keep-alive
//! PINGs, `max_connections` with idle reclaim, running out of file descriptors, plain HTTP
//! on the TLS port, `CONNECT`, the exact header-size limit, and `Date` on HTTP/2.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::fixtures::Site;
use crate::limits::{read_to_close, site_with_limits};
use crate::support::{Client, Conn, Proto, request};

/// Waits up to `limit` for the server to end `conn`; returns how long it took.
async fn closed_within(conn: Conn, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let driver = match conn {
        Conn::H1 { driver, .. } | Conn::H2 { driver, .. } => driver,
    };
    tokio::time::timeout(limit, driver)
        .await
        .ok()
        .map(|_| started.elapsed())
}

/// One request over `proto`, then nothing: the server closes the connection after
/// `idle_timeout` (0.5 s), not before.
async fn idle_connection_is_closed(proto: Proto, label: &str, limits: &str) {
    let (site, server) = site_with_limits(label, limits).await;
    let client = Client::new(&site.ca.roots(), Some("a.test"), "a.test", proto);
    let mut conn = client.connect(server.addr).await.unwrap();
    let resp = conn
        .send(request(proto, Some("a.test"), &[]))
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    let waited = closed_within(conn, Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("an idle {proto:?} connection stays open past idle_timeout"));
    assert!(
        waited >= Duration::from_millis(300),
        "closed after {waited:?}"
    );
}

#[tokio::test]
async fn an_idle_http2_connection_is_sent_goaway_and_closed_after_the_idle_timeout() {
    idle_connection_is_closed(Proto::H2, "h2-idle", "idle_timeout_secs = 0.5").await;
}

#[tokio::test]
async fn an_http2_connection_that_never_sends_a_request_is_closed_too() {
    let (site, server) = site_with_limits("h2-silent", "idle_timeout_secs = 0.5").await;
    let client = Client::new(&site.ca.roots(), Some("a.test"), "a.test", Proto::H2);
    let conn = client.connect(server.addr).await.unwrap();
    assert!(
        closed_within(conn, Duration::from_secs(5)).await.is_some(),
        "a connection that only sent the preface stays open"
    );
}

#[tokio::test]
async fn an_idle_http1_connection_is_closed_after_the_idle_timeout_not_the_header_timeout() {
    idle_connection_is_closed(
        Proto::H1,
        "h1-idle",
        "idle_timeout_secs = 0.5\nheader_read_timeout_secs = 10",
    )
    .await;
}

#[tokio::test]
async fn a_keep_alive_http1_connection_outlives_the_header_read_timeout() {
    let (site, server) = site_with_limits(
        "h1-keep",
        "idle_timeout_secs = 30\nheader_read_timeout_secs = 0.3",
    )
    .await;
    let client = Client::new(&site.ca.roots(), Some("a.test"), "a.test", Proto::H1);
    let mut conn = client.connect(server.addr).await.unwrap();
    for _ in 0..2 {
        let resp = conn
            .send(request(Proto::H1, Some("a.test"), &[]))
            .await
            .unwrap();
        assert_eq!(resp.status, 200);
        // Idle between requests for longer than the head timeout: still open.
        tokio::time::sleep(Duration::from_millis(800)).await;
    }
}

/// A raw HTTP/2 frame header.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut out = vec![len[1], len[2], len[3], kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const PING: u8 = 6;
const GOAWAY: u8 = 7;

/// Reads frames until one of `kind` arrives or the connection ends; returns its flags.
async fn next_frame_of(stream: &mut (impl AsyncReadExt + Unpin), kind: u8) -> Option<u8> {
    let mut header = [0u8; 9];
    loop {
        stream.read_exact(&mut header).await.ok()?;
        let len =
            usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
        let mut payload = vec![0u8; len];
        stream.read_exact(&mut payload).await.ok()?;
        if header[3] == kind {
            return Some(header[4]);
        }
    }
}

#[tokio::test]
async fn an_unanswered_keep_alive_ping_closes_the_connection() {
    let (site, server) = site_with_limits(
        "h2-ping",
        "idle_timeout_secs = 30\nkeepalive_interval_secs = 0.3\nkeepalive_timeout_secs = 0.5",
    )
    .await;
    let client = Client::new(&site.ca.roots(), Some("a.test"), "a.test", Proto::H2);
    let mut tls = client.tls(server.addr).await.unwrap();
    tls.write_all(PREFACE).await.unwrap();
    tls.write_all(&frame(4, 0, 0, &[])).await.unwrap();
    tls.flush().await.unwrap();
    let started = Instant::now();
    let flags = tokio::time::timeout(Duration::from_secs(5), next_frame_of(&mut tls, PING))
        .await
        .expect("no keep-alive PING from the server")
        .expect("the connection ended before a PING");
    assert_eq!(flags & 1, 0, "the server's PING is not an ACK");
    // Never answered: the server closes within the keep-alive timeout.
    let seen = tokio::time::timeout(Duration::from_secs(5), read_to_close(&mut tls)).await;
    assert!(seen.is_ok(), "the connection stays open without a PONG");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "closed only after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_answered_keep_alive_ping_keeps_a_quiet_connection_open() {
    let (site, server) = site_with_limits(
        "h2-pong",
        "idle_timeout_secs = 30\nkeepalive_interval_secs = 0.2\nkeepalive_timeout_secs = 0.3",
    )
    .await;
    let client = Client::new(&site.ca.roots(), Some("a.test"), "a.test", Proto::H2);
    // h2's client answers PINGs by itself.
    let mut conn = client.connect(server.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let resp = conn
        .send(request(Proto::H2, Some("a.test"), &[]))
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
}

#[tokio::test]
async fn at_max_connections_the_longest_idle_connection_makes_room() {
    let (site, server) = site_with_limits("max-conns", "max_connections = 3").await;
    let client = Client::new(&site.ca.roots(), Some("a.test"), "a.test", Proto::H2);
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut conn = client.connect(server.addr).await.unwrap();
        let resp = conn
            .send(request(Proto::H2, Some("a.test"), &[]))
            .await
            .unwrap();
        assert_eq!(resp.status, 200);
        held.push(conn);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut fourth = client.connect(server.addr).await.unwrap();
    let resp = fourth
        .send(request(Proto::H2, Some("a.test"), &[]))
        .await
        .unwrap();
    assert_eq!(
        resp.status, 200,
        "a new client is served at max_connections"
    );
    let oldest = held.remove(0);
    assert!(
        closed_within(oldest, Duration::from_secs(3))
            .await
            .is_some(),
        "the longest-idle connection was not closed"
    );
    // The others were not touched.
    for mut conn in held {
        let resp = conn
            .send(request(Proto::H2, Some("a.test"), &[]))
            .await
            .unwrap();
        assert_eq!(resp.status, 200);
    }
}

#[tokio::test]
async fn at_max_connections_with_nothing_idle_a_new_connection_is_refused() {
    let (site, server) = site_with_limits(
        "max-busy",
        "max_connections = 2\nheader_read_timeout_secs = 10",
    )
    .await;
    let client = Client::new(&site.ca.roots(), Some("a.test"), "a.test", Proto::H1);
    // Two connections in the middle of a request head: busy, not idle.
    let mut busy = Vec::new();
    for _ in 0..2 {
        let mut tls = client.tls(server.addr).await.unwrap();
        tls.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n")
            .await
            .unwrap();
        tls.flush().await.unwrap();
        busy.push(tls);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let refused = tokio::time::timeout(Duration::from_secs(3), client.tls(server.addr))
        .await
        .expect("a refused connection is closed at once, not left waiting");
    assert!(
        refused.is_err(),
        "a third connection was served at max_connections = 2"
    );
    // The busy ones finish their requests.
    for mut tls in busy {
        tls.write_all(b"Connection: close\r\n\r\n").await.unwrap();
        tls.flush().await.unwrap();
        let seen = read_to_close(&mut tls).await;
        assert!(String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 200"));
    }
}

#[tokio::test]
async fn plain_http_on_the_tls_port_gets_a_readable_400() {
    let (_site, server) = site_with_limits("plain-http", "").await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .await
        .unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(5), read_to_close(&mut tcp))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&seen);
    assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
    assert!(
        text.contains("plain HTTP request was sent to an HTTPS port"),
        "{text}"
    );
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(
        head.contains(&format!("Content-Length: {}", body.len())),
        "{text}"
    );
}

#[tokio::test]
async fn connect_is_refused_with_405_and_allow_on_both_protocols() {
    let (site, server) = site_with_limits("connect", "").await;
    // HTTP/1.1: a CONNECT in authority form.
    let client = Client::new(&site.ca.roots(), Some("a.test"), "a.test", Proto::H1);
    let mut tls = client.tls(server.addr).await.unwrap();
    tls.write_all(b"CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n")
        .await
        .unwrap();
    tls.flush().await.unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(5), read_to_close(&mut tls))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&seen).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 405"), "{text}");
    assert!(text.contains("\r\nallow: get, head"), "{text}");

    // HTTP/2: :method CONNECT and :authority only.
    let client = Client::new(&site.ca.roots(), Some("a.test"), "a.test", Proto::H2);
    let mut conn = client.connect(server.addr).await.unwrap();
    let connect = http::Request::builder()
        .method(http::Method::CONNECT)
        .uri("a.test:443")
        .version(http::Version::HTTP_2)
        .body(())
        .unwrap();
    let resp = conn.send(connect).await.unwrap();
    assert_eq!(resp.status, 405);
    assert!(resp.headers.contains_key(http::header::ALLOW));
    // The connection carries on.
    let resp = conn
        .send(request(Proto::H2, Some("a.test"), &[]))
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
}

#[tokio::test]
async fn http2_responses_carry_a_date() {
    let (site, server) = site_with_limits("h2-date", "").await;
    let client = Client::new(&site.ca.roots(), Some("a.test"), "a.test", Proto::H2);
    let mut conn = client.connect(server.addr).await.unwrap();
    for (authority, status) in [("a.test", 200), ("c.test", 421)] {
        let resp = conn
            .send(request(Proto::H2, Some(authority), &[]))
            .await
            .unwrap();
        assert_eq!(resp.status, status);
        let date = resp
            .headers
            .get(http::header::DATE)
            .unwrap_or_else(|| panic!("no Date on the {status}"));
        let date = httpdate::parse_http_date(date.to_str().unwrap()).unwrap();
        let skew = std::time::SystemTime::now()
            .duration_since(date)
            .unwrap_or_default();
        assert!(skew < Duration::from_secs(5), "Date is {skew:?} old");
    }
}

/// An HTTP/1.1 head of exactly `size` bytes (request line, Host, one filler field, the
/// empty line).
fn h1_head_of(size: usize) -> String {
    let fixed = "GET / HTTP/1.1\r\n".len() + "host: a.test\r\n".len() + "x-filler: \r\n".len() + 2;
    format!(
        "GET / HTTP/1.1\r\nhost: a.test\r\nx-filler: {}\r\n\r\n",
        "x".repeat(size - fixed)
    )
}

#[tokio::test]
async fn http1_enforces_max_header_bytes_to_the_byte() {
    let (site, server) = site_with_limits("h1-exact", "max_header_bytes = 8192").await;
    let client = Client::new(&site.ca.roots(), Some("a.test"), "a.test", Proto::H1);
    for (size, status) in [(8192, "200"), (8193, "431"), (12_000, "431")] {
        let head = h1_head_of(size);
        assert_eq!(head.len(), size);
        let mut tls = client.tls(server.addr).await.unwrap();
        tls.write_all(head.as_bytes()).await.unwrap();
        tls.flush().await.unwrap();
        let mut seen = vec![0u8; 12];
        tokio::time::timeout(Duration::from_secs(5), tls.read_exact(&mut seen))
            .await
            .unwrap()
            .unwrap();
        let text = String::from_utf8_lossy(&seen);
        assert_eq!(&text[9..12], status, "a {size}-byte head: {text}");
    }
}

#[tokio::test]
async fn http2_enforces_max_header_bytes_by_rfc_9113_measure_per_stream() {
    let (site, server) = site_with_limits("h2-exact", "max_header_bytes = 8192").await;
    let client = Client::new(&site.ca.roots(), Some("a.test"), "a.test", Proto::H2);
    let mut conn = client.connect(server.addr).await.unwrap();
    // :method GET, :scheme https, :authority a.test, :path / and x-filler, each counted as
    // name + value + 32 (RFC 9113 §6.5.2).
    let fixed = (7 + 3 + 32) + (7 + 5 + 32) + (10 + 6 + 32) + (5 + 1 + 32) + (8 + 32);
    for (filler, status) in [(8192 - fixed, 200), (8192 - fixed + 1, 431), (16_384, 431)] {
        let mut req = request(Proto::H2, Some("a.test"), &[]);
        req.headers_mut()
            .insert("x-filler", "x".repeat(filler).parse().unwrap());
        let resp = conn.send(req).await.unwrap();
        assert_eq!(resp.status, status, "filler of {filler} bytes");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_file_descriptors_idle_connections_make_room_for_a_new_client() {
    let site = Site::new("emfile");
    // Plenty of connections allowed: the file limit is what runs out.
    let text = site
        .config("secure", "")
        .replace("[limits]\n", "[limits]\nmax_connections = 100000\n");
    let path = site.write("emfile.toml", &text);
    let (mut child, addr, _log) = spawn_logging_limited(&path, Some(128));
    let client = Client::new(&site.ca.roots(), Some("a.test"), "a.test", Proto::H2);
    // More idle HTTP/2 connections than the server has file descriptors.
    let mut idle = Vec::new();
    for _ in 0..140 {
        // Connections the server closed to make room, or that wait in its backlog, fail.
        if let Ok(Ok(conn)) =
            tokio::time::timeout(Duration::from_secs(2), client.connect(addr)).await
        {
            idle.push(conn);
        }
    }
    let started = Instant::now();
    let served = tokio::time::timeout(Duration::from_secs(5), async {
        let mut conn = client.connect(addr).await.map_err(|e| e.to_string())?;
        conn.send(request(Proto::H2, Some("a.test"), &[])).await
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    let resp = served
        .expect("a new client waited more than 5 s while the server was out of descriptors")
        .expect("a new client failed while the server was out of descriptors");
    assert_eq!(resp.status, 200);
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(idle);
}

#[tokio::test]
async fn an_http1_client_that_stops_reading_its_response_is_cut_off_after_the_send_timeout() {
    let site = Site::new("h1-stall");
    let public = site.dir.join("public");
    std::fs::create_dir_all(&public).unwrap();
    let size = 32 * 1024 * 1024;
    std::fs::write(public.join("big.bin"), vec![7u8; size]).unwrap();
    let text = site
        .config("secure", "")
        .replace("[limits]\n", "[limits]\nsend_timeout_secs = 0.5\n")
        .replace(
            "name = \"c.test\"\ncert = \"c.pem\"\nkey = \"c.key\"\n",
            "name = \"c.test\"\ncert = \"c.pem\"\nkey = \"c.key\"\nrespond = { dir = \"public\" }\n",
        );
    assert!(text.contains("dir = \"public\"") && text.contains("send_timeout_secs"));
    let path = site.write("stall.toml", &text);
    let server = crate::support::TestServer::start(&path).await;
    let client = Client::new(&site.ca.roots(), Some("c.test"), "c.test", Proto::H1);
    let mut tls = client.tls(server.addr).await.unwrap();
    tls.write_all(b"GET /big.bin HTTP/1.1\r\nHost: c.test\r\n\r\n")
        .await
        .unwrap();
    tls.flush().await.unwrap();
    // Read nothing while the socket buffers fill and the server stalls.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let seen = tokio::time::timeout(Duration::from_secs(10), read_to_close(&mut tls))
        .await
        .expect("the connection stays open although its reader stalled");
    assert!(
        seen.len() < size,
        "the whole file arrived: the server never gave up on the stalled reader"
    );
}

/// The `misdirect` binary serving `config` with JSON logs, under `ulimit -n files` when
/// given: its address and a channel of its log lines (the log is drained until the server
/// exits, whether or not the channel is read).
fn spawn_logging_limited(
    config: &std::path::Path,
    files: Option<u32>,
) -> (
    Child,
    std::net::SocketAddr,
    std::sync::mpsc::Receiver<String>,
) {
    let limit = files.map_or(String::new(), |files| format!("ulimit -n {files} && "));
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{limit}exec \"$0\" serve --config \"$1\" --log-format json"
        ))
        .arg(env!("CARGO_BIN_EXE_misdirect"))
        .arg(config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            // Keep draining after the receiver is gone: a full pipe would block the server.
            let _ = tx.send(line);
        }
    });
    let addr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the server did not start");
        if line.contains("\"listening\"") {
            let value: serde_json::Value = serde_json::from_str(&line).unwrap();
            break value["addr"].as_str().unwrap().parse().unwrap();
        }
    };
    (child, addr, rx)
}

fn spawn_logging(
    config: &std::path::Path,
) -> (
    Child,
    std::net::SocketAddr,
    std::sync::mpsc::Receiver<String>,
) {
    spawn_logging_limited(config, None)
}

/// The log lines that arrive within `wait` and contain `needle`, parsed.
fn lines_with(
    rx: &std::sync::mpsc::Receiver<String>,
    needle: &str,
    wait: Duration,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + wait;
    let mut found = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(needle) => found.push(serde_json::from_str(&line).unwrap()),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    found
}

#[tokio::test]
async fn tls_handshake_failures_are_logged_at_info_with_sni_and_cause_at_a_bounded_rate() {
    let site = Site::new("handshake-log");
    let path = site.write("handshake-log.toml", &site.config("secure", ""));
    let (mut child, addr, rx) = spawn_logging(&path);
    // secure.test requires a client certificate: without one every handshake fails.
    let client = Client::new(
        &site.ca.roots(),
        Some("secure.test"),
        "secure.test",
        Proto::H1,
    );
    let fail = || async {
        if let Ok(mut tls) = client.tls(addr).await {
            // TLS 1.3: the refusal arrives after the client's side of the handshake.
            let _ = tls
                .write_all(b"GET / HTTP/1.1\r\nHost: secure.test\r\n\r\n")
                .await;
            let _ = read_to_close(&mut tls).await;
        }
    };
    for _ in 0..3 {
        fail().await;
    }
    let first = lines_with(&rx, "TLS handshake failed", Duration::from_millis(700));
    tokio::time::sleep(Duration::from_millis(500)).await;
    fail().await;
    let second = lines_with(&rx, "TLS handshake failed", Duration::from_millis(700));
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(first.len(), 1, "three failures within a second: {first:?}");
    let line = &first[0];
    assert_eq!(line["level"], "INFO", "{line}");
    assert_eq!(line["sni"], "secure.test", "{line}");
    assert!(
        line["peer"]
            .as_str()
            .is_some_and(|p| p.starts_with("127.0.0.1:")),
        "{line}"
    );
    assert!(
        line["cause"]
            .as_str()
            .is_some_and(|c| c.to_lowercase().contains("certificate")),
        "{line}"
    );
    assert_eq!(second.len(), 1, "a failure a second later: {second:?}");
    assert_eq!(second[0]["suppressed"], 2, "{}", second[0]);
}

#[tokio::test]
async fn warn_only_with_unknown_hosts_to_the_default_never_serves_an_uncovered_name() {
    let site = Site::new("warn-default");
    let text = site.config("secure", "warn_only = true\nunknown_host = \"default\"");
    let path = site.write("warn-default.toml", &text);
    let (mut child, addr, rx) = spawn_logging(&path);
    let client = Client::new(&site.ca.roots(), Some("a.test"), "a.test", Proto::H2);
    let mut conn = client.connect(addr).await.unwrap();
    // A name no virtual host serves and a.test's certificate does not cover.
    let resp = conn
        .send(request(Proto::H2, Some("elsewhere.example"), &[]))
        .await
        .unwrap();
    // A name the certificate covers but no virtual host serves goes to the default.
    let covered = conn
        .send(request(Proto::H2, Some("a.test"), &[]))
        .await
        .unwrap();
    let lines = lines_with(&rx, "certificate-does-not-cover", Duration::from_secs(2));
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        (resp.status, resp.reason().as_deref()),
        (421, Some("certificate-does-not-cover"))
    );
    assert_eq!(covered.status, 200);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["status"], 421);
    // The log names the virtual host the request was routed to.
    assert_eq!(lines[0]["target_vhost"], "a.test", "{}", lines[0]);
}

/// Four hundred clients connecting at once all complete TCP's handshake even before the
/// server accepts any: the listening socket's queue is not the default 128, past which the
/// kernel drops SYNs and each dropped client waits a second to send it again.
#[tokio::test]
async fn a_burst_of_connections_fits_the_accept_queue() {
    let dir = crate::support::scratch_dir("backlog");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let embedded = misdirect_server::embedded::Embedded::generate(&dir, addr).unwrap();
    // Bound and listening, but never run: nothing accepts.
    let server = misdirect_server::Server::bind(embedded.into_config())
        .await
        .unwrap();
    let target = server.local_addrs()[0];
    let connects = (0..400)
        .map(|_| tokio::time::timeout(Duration::from_millis(900), TcpStream::connect(target)));
    let mut connected = Vec::new();
    let mut set = tokio::task::JoinSet::new();
    for connect in connects {
        set.spawn(connect);
    }
    while let Some(done) = set.join_next().await {
        if let Ok(Ok(stream)) = done.unwrap() {
            connected.push(stream);
        }
    }
    assert_eq!(
        connected.len(),
        400,
        "connections that completed within 0.9 s"
    );
    drop(server);
}
