//! `respond = { dir = … }` over loopback, on both protocols: files and `index.html`, HEAD,
//! other methods, missing files and paths that leave the directory.

use http::{Method, Request, header};

use crate::fixtures::Site;
use crate::support::{Client, Conn, Proto, TestServer};

/// The test site with `c.test` serving the directory `public` of the site's folder.
async fn file_site(label: &str) -> (Site, TestServer) {
    let site = Site::new(label);
    let public = site.dir.join("public");
    std::fs::create_dir_all(public.join("docs")).unwrap();
    std::fs::write(public.join("index.html"), "<h1>c.test</h1>\n").unwrap();
    std::fs::write(public.join("notes.txt"), "hello\n").unwrap();
    std::fs::write(public.join("docs").join("index.html"), "<p>docs</p>\n").unwrap();
    // A link to a file outside the directory: its real path leaves the root.
    std::os::unix::fs::symlink(site.dir.join("c.key"), public.join("escape.txt")).unwrap();
    let text = site.config("secure", "").replace(
        "name = \"c.test\"\ncert = \"c.pem\"\nkey = \"c.key\"\n",
        "name = \"c.test\"\ncert = \"c.pem\"\nkey = \"c.key\"\nrespond = { dir = \"public\" }\n",
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
    let builder = match proto {
        Proto::H2 => Request::builder()
            .uri(format!("https://c.test{path}"))
            .version(http::Version::HTTP_2),
        Proto::H1 => Request::builder()
            .uri(path)
            .version(http::Version::HTTP_11)
            .header(header::HOST, "c.test"),
    };
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
