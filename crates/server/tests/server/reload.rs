//! Reloading a running server: new connections get the new configuration and certificates,
//! open ones keep theirs, a broken file changes nothing, kept listeners keep their socket
//! (no failed request under load), added listeners are bound and removed ones closed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::fixtures::Site;
use crate::support::{Client, Proto, TestServer, request};

/// One listener (or two), and a.test answering `body`.
fn config(body: &str, listeners: usize) -> String {
    let mut text = String::new();
    for _ in 0..listeners {
        text.push_str("[[listener]]\naddr = \"127.0.0.1:0\"\npublic_ports = [443]\n\n");
    }
    text.push_str(&format!(
        r#"
[[vhost]]
name = "a.test"
cert = "shared.pem"
key = "shared.key"
respond = {{ body = "{body}" }}

[[vhost]]
name = "c.test"
cert = "c.pem"
key = "c.key"
"#
    ));
    text
}

async fn body(client: &Client, addr: std::net::SocketAddr) -> Result<String, String> {
    let mut conn = client.connect(addr).await.map_err(|e| e.to_string())?;
    let resp = conn
        .send(request(client.proto, Some("a.test"), &[]))
        .await?;
    match resp.status {
        200 => Ok(resp.text()),
        status => Err(format!("status {status}: {}", resp.text())),
    }
}

#[tokio::test]
async fn new_connections_get_the_new_configuration_and_open_ones_keep_theirs() {
    let site = Site::new("reload-generations");
    let path = site.write("misdirect.toml", &config("one", 1));
    let server = TestServer::start(&path).await;
    let client = Client::new(&site.ca.roots(), Some("a.test"), "a.test", Proto::H2);

    let mut old = client.connect(server.addr).await.unwrap();
    let resp = old
        .send(request(Proto::H2, Some("a.test"), &[]))
        .await
        .unwrap();
    assert_eq!(resp.text(), "one");

    std::fs::write(&path, config("two", 1)).unwrap();
    let addrs = server.reload.reload().await.unwrap();
    assert_eq!(addrs, [server.addr], "the listener keeps its socket");
    assert_eq!(body(&client, server.addr).await.unwrap(), "two");
    // The connection accepted before the reload is served by the configuration it was
    // accepted with.
    let resp = old
        .send(request(Proto::H2, Some("a.test"), &[]))
        .await
        .unwrap();
    assert_eq!(resp.text(), "one");
    server.shutdown().await;
}

#[tokio::test]
async fn a_configuration_that_fails_to_load_changes_nothing() {
    let site = Site::new("reload-broken");
    let path = site.write("misdirect.toml", &config("kept", 1));
    let server = TestServer::start(&path).await;
    let client = Client::new(&site.ca.roots(), Some("a.test"), "a.test", Proto::H1);

    for (broken, says) in [
        ("[[vhost]]\nname = ", "misdirect.toml"),
        (
            &config("never", 1).replace("shared.key", "missing.key")[..],
            "missing.key",
        ),
    ] {
        std::fs::write(&path, broken).unwrap();
        let err = server.reload.reload().await.unwrap_err().to_string();
        assert!(err.contains(says), "{err}");
        assert_eq!(body(&client, server.addr).await.unwrap(), "kept");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_renewed_certificate_is_presented_to_new_connections() {
    let site = Site::new("reload-renewed");
    let path = site.write("misdirect.toml", &config("a", 1));
    let server = TestServer::start(&path).await;
    let client = Client::new(&site.ca.roots(), Some("c.test"), "c.test", Proto::H2);
    let presented = |tls: &tokio_rustls::client::TlsStream<tokio::net::TcpStream>| {
        tls.get_ref().1.peer_certificates().unwrap()[0].clone()
    };
    let before = presented(&client.tls(server.addr).await.unwrap());

    // Renewed: a new key and certificate for the same name, in the same files.
    site.ca.server_cert(&site.dir, "c", &["c.test"]);
    server.reload.reload().await.unwrap();
    let after = presented(&client.tls(server.addr).await.unwrap());
    assert_ne!(before, after);
    let on_disk = std::fs::read(site.dir.join("c.pem")).unwrap();
    let on_disk = rustls::pki_types::pem::PemObject::pem_slice_iter(&on_disk)
        .next()
        .unwrap()
        .map(|c: rustls::pki_types::CertificateDer<'static>| c)
        .unwrap();
    assert_eq!(after, on_disk);
    server.shutdown().await;
}

#[tokio::test]
async fn listeners_are_added_and_removed() {
    let site = Site::new("reload-listeners");
    let path = site.write("misdirect.toml", &config("a", 1));
    let server = TestServer::start(&path).await;
    let client = Client::new(&site.ca.roots(), Some("a.test"), "a.test", Proto::H1);

    std::fs::write(&path, config("a", 2)).unwrap();
    let addrs = server.reload.reload().await.unwrap();
    assert_eq!(addrs.len(), 2);
    assert_eq!(addrs[0], server.addr);
    let added = addrs[1];
    assert_eq!(body(&client, added).await.unwrap(), "a");

    std::fs::write(&path, config("a", 1)).unwrap();
    assert_eq!(server.reload.reload().await.unwrap(), [server.addr]);
    // The removed listener's socket is closed.
    let mut refused = false;
    for _ in 0..50 {
        if tokio::net::TcpStream::connect(added).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "the removed listener still accepts");
    assert_eq!(body(&client, server.addr).await.unwrap(), "a");
    server.shutdown().await;
}

/// Clients open a new connection for every request while the configuration is reloaded
/// over and over: no request fails, and the new configuration is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_load_fail_no_request() {
    let site = Site::new("reload-load");
    let path = site.write("misdirect.toml", &config("g0", 1));
    let server = TestServer::start(&path).await;
    let client = Client::new(&site.ca.roots(), Some("a.test"), "a.test", Proto::H2);
    let done = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (client, done, served) = (client.clone(), done.clone(), served.clone());
        let addr = server.addr;
        workers.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            let mut seen = std::collections::BTreeSet::new();
            while !done.load(Ordering::Relaxed) {
                match body(&client, addr).await {
                    Ok(text) => {
                        served.fetch_add(1, Ordering::Relaxed);
                        seen.insert(text);
                    }
                    Err(err) => failures.push(err),
                }
            }
            (failures, seen)
        }));
    }
    for generation in 1..=8 {
        tokio::time::sleep(Duration::from_millis(60)).await;
        std::fs::write(&path, config(&format!("g{generation}"), 1)).unwrap();
        server.reload.reload().await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    done.store(true, Ordering::Relaxed);
    let mut seen = std::collections::BTreeSet::new();
    for worker in workers {
        let (failures, generations) = worker.await.unwrap();
        assert!(failures.is_empty(), "failed requests: {failures:?}");
        seen.extend(generations);
    }
    assert!(
        served.load(Ordering::Relaxed) > 20,
        "too few requests to count"
    );
    assert!(
        seen.contains("g8"),
        "the last configuration is served: {seen:?}"
    );
    server.shutdown().await;
}
