//! Plain-HTTP listeners (`tls = false`): HTTP/1.1 and h2c with virtual-host routing behind
//! a TLS-terminating load balancer, and the `redirect = "https"` companion listener.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Version, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::fixtures::Site;
use crate::support::TestServer;

/// A TLS listener first (public port 8443 or 443), then the plain one; the site's virtual
/// hosts, with b.test answering its own body.
fn config(site: &Site, tls_public_port: u16, plain: &str) -> String {
    site.config("secure", "")
        .replacen(
            "public_ports = [443, 8443]",
            &format!("public_ports = [{tls_public_port}]"),
            1,
        )
        .replacen(
            "[limits]",
            &format!("[[listener]]\naddr = \"127.0.0.1:0\"\ntls = false\n{plain}\n\n[limits]"),
            1,
        )
}

/// (status, Location, body) of a GET over HTTP/1.1 with this Host.
async fn h1(addr: SocketAddr, host: &str, path: &str) -> (u16, Option<String>, String) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = Request::get(path)
        .header(header::HOST, host)
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get(header::LOCATION)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        location,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[tokio::test]
async fn a_plain_listener_routes_http1_and_h2c_by_host() {
    let site = Site::new("plain");
    let path = site.write("plain.toml", &config(&site, 443, "public_ports = [80]"));
    let server = TestServer::start(&path).await;
    let addr = server.addrs[1];

    assert_eq!(h1(addr, "a.test", "/").await.0, 200);
    let (status, _, body) = h1(addr, "b.test:80", "/").await;
    assert_eq!((status, body.as_str()), (200, "vhost b.test\n"));
    // No TLS, no client certificate: a virtual host that requires one is never served.
    let (status, _, body) = h1(addr, "secure.test", "/").await;
    assert_eq!(status, 421);
    assert!(body.contains("client-cert-required"), "{body}");
    let (status, _, body) = h1(addr, "nobody.test", "/").await;
    assert_eq!(status, 421);
    assert!(body.contains("unknown-host"), "{body}");
    assert_eq!(h1(addr, "a.test:8080", "/").await.0, 421);

    // HTTP/2 with prior knowledge on the same port.
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    for (authority, want) in [("c.test", 200), ("b.test", 200), ("secure.test", 421)] {
        let mut client = client.clone().ready().await.unwrap();
        let request = Request::get(format!("http://{authority}/"))
            .version(Version::HTTP_2)
            .body(())
            .unwrap();
        let (response, _) = client.send_request(request, true).unwrap();
        assert_eq!(response.await.unwrap().status(), want, "{authority}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn the_https_redirect_names_the_tls_listeners_port() {
    let site = Site::new("redirect");
    for (tls_port, location) in [
        (443, "https://b.test/path?q=1"),
        (8443, "https://b.test:8443/path?q=1"),
    ] {
        let path = site.write(
            "redirect.toml",
            &config(&site, tls_port, "public_ports = [80]\nredirect = \"https\""),
        );
        let server = TestServer::start(&path).await;
        let addr = server.addrs[1];
        let (status, got, _) = h1(addr, "B.TEST.", "/path?q=1").await;
        assert_eq!((status, got.as_deref()), (308, Some(location)));
        // A host no TLS listener serves is refused as usual.
        let (status, got, _) = h1(addr, "nobody.test", "/").await;
        assert_eq!((status, got), (421, None));
        server.shutdown().await;
    }
}
