//! `respond = { dir = … }` over loopback, on both protocols: files and `index.html`, HEAD,
//! other methods, missing files and paths that leave the directory; ranges and conditional
//! requests; files that are not regular files; and HTTP/2 clients that give no window.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};

use crate::fixtures::Site;
use crate::support::{Client, Conn, Proto, TestServer, request};

/// The size of `big.bin`; byte `i` of it is `i % 251`.
const BIG: usize = 10 * 1024 * 1024;

/// The test site with `c.test` serving the directory `public` of the site's folder.
async fn file_site(label: &str) -> (Site, TestServer) {
    file_site_with(label, "").await
}

/// [`file_site`] with more `[limits]` lines.
async fn file_site_with(label: &str, limits: &str) -> (Site, TestServer) {
    let site = Site::new(label);
    let public = site.dir.join("public");
    std::fs::create_dir_all(public.join("docs")).unwrap();
    std::fs::write(public.join("index.html"), "<h1>c.test</h1>\n").unwrap();
    std::fs::write(public.join("notes.txt"), "hello\n").unwrap();
    std::fs::write(public.join("docs").join("index.html"), "<p>docs</p>\n").unwrap();
    let big: Vec<u8> = (0..BIG).map(|i| (i % 251) as u8).collect();
    std::fs::write(public.join("big.bin"), big).unwrap();
    // A link to a file outside the directory: its real path leaves the root.
    std::os::unix::fs::symlink(site.dir.join("c.key"), public.join("escape.txt")).unwrap();
    let text = site
        .config("secure", "")
        .replace(
            "name = \"c.test\"\ncert = \"c.pem\"\nkey = \"c.key\"\n",
            "name = \"c.test\"\ncert = \"c.pem\"\nkey = \"c.key\"\nrespond = { dir = \"public\" }\n",
        )
        .replace(
            "[limits]\n",
            &format!("[limits]\n{limits}\n"),
        );
    assert!(
        text.contains("dir = \"public\""),
        "the fixture's c.test table moved"
    );
    let path = site.write("files.toml", &text);
    let server = TestServer::start(&path).await;
    (site, server)
}

fn get(proto: Proto, method: Method, path: &str) -> Request<()> {
    get_with(proto, method, path, &[])
}

/// [`get`] with more header fields.
fn get_with(proto: Proto, method: Method, path: &str, fields: &[(&str, &str)]) -> Request<()> {
    let mut builder = match proto {
        Proto::H2 => Request::builder()
            .uri(format!("https://c.test{path}"))
            .version(http::Version::HTTP_2),
        Proto::H1 => Request::builder()
            .uri(path)
            .version(http::Version::HTTP_11)
            .header(header::HOST, "c.test"),
    };
    for (name, value) in fields {
        builder = builder.header(*name, *value);
    }
    builder.method(method).body(()).unwrap()
}

async fn connect(site: &Site, server: &TestServer, proto: Proto) -> Conn {
    Client::new(&site.ca.roots(), Some("c.test"), "c.test", proto)
        .connect(server.addr)
        .await
        .unwrap()
}

async fn check_files(proto: Proto) {
    let (site, server) = file_site(&format!("files-{proto:?}")).await;
    let mut conn = connect(&site, &server, proto).await;

    let resp = conn.send(get(proto, Method::GET, "/")).await.unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text(), "<h1>c.test</h1>\n");
    assert_eq!(
        resp.headers[header::CONTENT_TYPE],
        "text/html; charset=utf-8"
    );

    let resp = conn
        .send(get(proto, Method::GET, "/notes.txt"))
        .await
        .unwrap();
    assert_eq!((resp.status, resp.text().as_str()), (200, "hello\n"));
    assert_eq!(
        resp.headers[header::CONTENT_TYPE],
        "text/plain; charset=utf-8"
    );

    let resp = conn.send(get(proto, Method::GET, "/docs")).await.unwrap();
    assert_eq!((resp.status, resp.text().as_str()), (200, "<p>docs</p>\n"));

    // RFC 9110 §9.3.2: HEAD gets the GET's fields, without the content.
    let resp = conn
        .send(get(proto, Method::HEAD, "/notes.txt"))
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.headers[header::CONTENT_LENGTH], "6");
    assert!(resp.body.is_empty());

    let resp = conn
        .send(get(proto, Method::POST, "/notes.txt"))
        .await
        .unwrap();
    assert_eq!(resp.status, 405);
    assert_eq!(resp.headers[header::ALLOW], "GET, HEAD");

    for missing in [
        "/nothing.txt",
        "/escape.txt",
        "/docs/../../c.key",
        "/%2e%2e/c.key",
    ] {
        let resp = conn.send(get(proto, Method::GET, missing)).await.unwrap();
        assert_eq!(resp.status, 404, "{missing}");
        assert!(!resp.text().contains("PRIVATE KEY"), "{missing}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_directory_is_served_over_http1() {
    check_files(Proto::H1).await;
}

#[tokio::test]
async fn a_directory_is_served_over_http2() {
    check_files(Proto::H2).await;
}

/// Byte `i` of `big.bin`.
fn big_bytes(range: std::ops::Range<usize>) -> Vec<u8> {
    range.map(|i| (i % 251) as u8).collect()
}

/// RFC 9110 §14: one range is 206 with its bytes and `Content-Range`; a range past the end
/// is 416 with the length; several ranges, or an `If-Range` that names another version, get
/// the whole file.
async fn check_ranges(proto: Proto) {
    let (site, server) = file_site(&format!("ranges-{proto:?}")).await;
    let mut conn = connect(&site, &server, proto).await;
    let range = |value: &'static str| get_with(proto, Method::GET, "/big.bin", &[("range", value)]);

    let resp = conn.send(range("bytes=100-199")).await.unwrap();
    assert_eq!(resp.status, 206);
    assert_eq!(
        resp.headers[header::CONTENT_RANGE],
        format!("bytes 100-199/{BIG}")
    );
    assert_eq!(resp.headers[header::CONTENT_LENGTH], "100");
    assert!(resp.body == big_bytes(100..200), "the bytes of 100-199");

    let resp = conn.send(range("bytes=-10")).await.unwrap();
    assert_eq!(resp.status, 206);
    assert!(resp.body == big_bytes(BIG - 10..BIG), "the last 10 bytes");

    let resp = conn.send(range("bytes=20000000-20000001")).await.unwrap();
    assert_eq!(resp.status, 416);
    assert_eq!(
        resp.headers[header::CONTENT_RANGE],
        format!("bytes */{BIG}")
    );

    let resp = conn
        .send(get_with(
            proto,
            Method::GET,
            "/notes.txt",
            &[("range", "bytes=0-1,3-4")],
        ))
        .await
        .unwrap();
    assert_eq!((resp.status, resp.text().as_str()), (200, "hello\n"));

    let etag = conn
        .send(get(proto, Method::HEAD, "/notes.txt"))
        .await
        .unwrap()
        .headers[header::ETAG]
        .to_str()
        .unwrap()
        .to_string();
    let if_range = |validator: &str| {
        get_with(
            proto,
            Method::GET,
            "/notes.txt",
            &[("range", "bytes=1-2"), ("if-range", validator)],
        )
    };
    let resp = conn.send(if_range(&etag)).await.unwrap();
    assert_eq!((resp.status, resp.text().as_str()), (206, "el"));
    let resp = conn.send(if_range("\"another\"")).await.unwrap();
    assert_eq!((resp.status, resp.text().as_str()), (200, "hello\n"));
    server.shutdown().await;
}

#[tokio::test]
async fn ranges_over_http1() {
    check_ranges(Proto::H1).await;
}

#[tokio::test]
async fn ranges_over_http2() {
    check_ranges(Proto::H2).await;
}

/// RFC 9110 §13.1: `If-None-Match` with the `ETag`, or `If-Modified-Since` with the
/// `Last-Modified`, is 304 with the `ETag`; `If-None-Match` decides over
/// `If-Modified-Since` (§13.2.2); `If-Match` with another tag is 412.
async fn check_conditionals(proto: Proto) {
    let (site, server) = file_site(&format!("conditionals-{proto:?}")).await;
    let mut conn = connect(&site, &server, proto).await;

    let resp = conn
        .send(get(proto, Method::GET, "/notes.txt"))
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    let etag = resp.headers[header::ETAG].to_str().unwrap().to_string();
    let modified = resp.headers[header::LAST_MODIFIED]
        .to_str()
        .unwrap()
        .to_string();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    assert_eq!(resp.headers[header::ACCEPT_RANGES], "bytes");

    let conditional = |fields: &[(&str, &str)]| get_with(proto, Method::GET, "/notes.txt", fields);
    let resp = conn
        .send(conditional(&[("if-none-match", &etag)]))
        .await
        .unwrap();
    assert_eq!(resp.status, 304);
    assert_eq!(resp.headers[header::ETAG], etag.as_str());
    assert!(resp.body.is_empty());

    let resp = conn
        .send(conditional(&[("if-modified-since", &modified)]))
        .await
        .unwrap();
    assert_eq!(resp.status, 304);
    assert_eq!(resp.headers[header::ETAG], etag.as_str());

    let resp = conn
        .send(conditional(&[
            ("if-none-match", "\"another\""),
            ("if-modified-since", &modified),
        ]))
        .await
        .unwrap();
    assert_eq!((resp.status, resp.text().as_str()), (200, "hello\n"));

    let resp = conn
        .send(conditional(&[("if-match", "\"another\"")]))
        .await
        .unwrap();
    assert_eq!(resp.status, 412);
    server.shutdown().await;
}

#[tokio::test]
async fn conditional_requests_over_http1() {
    check_conditionals(Proto::H1).await;
}

#[tokio::test]
async fn conditional_requests_over_http2() {
    check_conditionals(Proto::H2).await;
}

/// HEAD of a large file: its length, no body (RFC 9110 §9.3.2).
async fn check_head(proto: Proto) {
    let (site, server) = file_site(&format!("head-{proto:?}")).await;
    let mut conn = connect(&site, &server, proto).await;
    let resp = conn
        .send(get(proto, Method::HEAD, "/big.bin"))
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.headers[header::CONTENT_LENGTH],
        BIG.to_string().as_str()
    );
    assert!(resp.body.is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn head_has_the_length_and_no_body_over_http1() {
    check_head(Proto::H1).await;
}

#[tokio::test]
async fn head_has_the_length_and_no_body_over_http2() {
    check_head(Proto::H2).await;
}

/// A FIFO is never opened (opening one waits for a writer): 404 at once, as the file itself
/// and as a directory's `index.html`.
async fn check_fifo(proto: Proto) {
    let (site, server) = file_site(&format!("fifo-{proto:?}")).await;
    let public = site.dir.join("public");
    std::fs::create_dir_all(public.join("pipes")).unwrap();
    for fifo in [public.join("fifo"), public.join("pipes").join("index.html")] {
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success(), "mkfifo {}", fifo.display());
    }
    let mut conn = connect(&site, &server, proto).await;
    for path in ["/fifo", "/pipes/", "/pipes"] {
        for method in [Method::GET, Method::HEAD] {
            let started = Instant::now();
            let resp = tokio::time::timeout(
                Duration::from_secs(1),
                conn.send(get(proto, method.clone(), path)),
            )
            .await
            .unwrap_or_else(|_| panic!("{method} {path} did not answer within 1 s"))
            .unwrap();
            assert_eq!(resp.status, 404, "{method} {path}");
            assert!(started.elapsed() < Duration::from_secs(1));
        }
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_fifo_is_404_over_http1() {
    check_fifo(Proto::H1).await;
}

#[tokio::test]
async fn a_fifo_is_404_over_http2() {
    check_fifo(Proto::H2).await;
}

/// An HTTP/2 connection to `c.test` whose streams start with `window` bytes of flow-control
/// window (SETTINGS_INITIAL_WINDOW_SIZE). Sending a size on the returned channel changes
/// that setting, which opens the window of every stream.
async fn h2_with_window(
    site: &Site,
    server: &TestServer,
    window: u32,
) -> (
    h2::client::SendRequest<Bytes>,
    tokio::sync::mpsc::UnboundedSender<u32>,
) {
    let tls = Client::new(&site.ca.roots(), Some("c.test"), "c.test", Proto::H2)
        .tls(server.addr)
        .await
        .unwrap();
    let (sender, mut connection) = h2::client::Builder::new()
        .initial_window_size(window)
        .handshake::<_, Bytes>(tls)
        .await
        .unwrap();
    let (resize, mut sizes) = tokio::sync::mpsc::unbounded_channel::<u32>();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = &mut connection => return,
                Some(size) = sizes.recv() => {
                    connection.set_initial_window_size(size).unwrap();
                }
            }
        }
    });
    (sender, resize)
}

/// GET of `path` on an h2 connection: the response head and its body.
async fn h2_get(
    sender: &h2::client::SendRequest<Bytes>,
    path: &str,
) -> (http::response::Parts, h2::RecvStream) {
    let mut ready = sender.clone().ready().await.unwrap();
    let request = Request::get(format!("https://c.test{path}"))
        .body(())
        .unwrap();
    let (response, _) = ready.send_request(request, true).unwrap();
    response.await.unwrap().into_parts()
}

/// The hostile client of the report: one connection, window 0, 64 GETs of a 10 MB file.
/// The server answers each head, sends no byte the window does not allow (h2 would fail
/// the connection with FLOW_CONTROL_ERROR), stays responsive on other connections, and
/// sends the file when the window opens.
#[tokio::test]
async fn streams_without_window_get_no_bytes_and_the_server_stays_responsive() {
    let (site, server) = file_site("no-window").await;
    let (sender, resize) = h2_with_window(&site, &server, 0).await;
    let mut bodies = Vec::new();
    let mut pending = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let sender = sender.clone();
        pending.spawn(async move { h2_get(&sender, "/big.bin").await });
    }
    while let Some(result) = pending.join_next().await {
        let (head, body) = result.unwrap();
        assert_eq!(head.status, StatusCode::OK);
        assert_eq!(
            head.headers[header::CONTENT_LENGTH],
            BIG.to_string().as_str()
        );
        bodies.push(body);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for body in &mut bodies {
        // Nothing arrived: a frame would be ready at once.
        let next = tokio::time::timeout(Duration::from_millis(1), body.data()).await;
        assert!(next.is_err(), "data arrived with a window of 0");
    }

    // Other clients are served at once: a fixed body, and a file on another connection.
    let started = Instant::now();
    let mut other = Client::new(&site.ca.roots(), Some("a.test"), "a.test", Proto::H1)
        .connect(server.addr)
        .await
        .unwrap();
    let resp = other
        .send(request(Proto::H1, Some("a.test"), &[]))
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    let mut files = connect(&site, &server, Proto::H2).await;
    let resp = files
        .send(get(Proto::H2, Method::GET, "/notes.txt"))
        .await
        .unwrap();
    assert_eq!((resp.status, resp.text().as_str()), (200, "hello\n"));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    // The window opens: the file arrives whole and unchanged on a stream that reads it;
    // the other streams are dropped (reset by the client).
    let mut body = bodies.pop().unwrap();
    drop(bodies);
    resize.send(1 << 20).unwrap();
    let mut received = Vec::with_capacity(BIG);
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        body.flow_control().release_capacity(chunk.len()).unwrap();
        received.extend_from_slice(&chunk);
    }
    assert_eq!(received.len(), BIG);
    assert!(received == big_bytes(0..BIG), "the file arrived changed");
    server.shutdown().await;
}

/// A stream that gets no window for `send_timeout` is reset with CANCEL; the server carries
/// on.
#[tokio::test]
async fn a_stream_without_window_is_reset_after_send_timeout() {
    let (site, server) = file_site_with("send-timeout", "send_timeout_secs = 0.5").await;
    let (sender, _resize) = h2_with_window(&site, &server, 0).await;
    let started = Instant::now();
    let (head, mut body) = h2_get(&sender, "/big.bin").await;
    assert_eq!(head.status, StatusCode::OK);
    let err = tokio::time::timeout(Duration::from_secs(5), body.data())
        .await
        .expect("no reset within 5 s")
        .expect("the stream ended")
        .expect_err("data arrived with a window of 0");
    assert_eq!(err.reason(), Some(h2::Reason::CANCEL));
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(450) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );

    let (sender, _resize) = h2_with_window(&site, &server, 1 << 16).await;
    let (head, mut body) = h2_get(&sender, "/notes.txt").await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(body.data().await.unwrap().unwrap(), "hello\n");
    server.shutdown().await;
}
