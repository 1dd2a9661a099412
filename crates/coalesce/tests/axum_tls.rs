//! Runs `examples/axum_tls.rs` and checks it with Rust clients over real TLS: per-virtual-host
//! client authentication from the crates alone.
#![allow(missing_docs, unreachable_pub, clippy::unwrap_used)]

#[path = "../examples/axum_tls.rs"]
mod example;

use std::sync::Arc;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// One request over a fresh connection: TLS with `sni` (and the client certificate when
/// `with_cert`), ALPN `alpn`, then GET / with `host`. `Err` when the connection fails.
async fn get(
    demo: &example::Demo,
    sni: &str,
    host: &str,
    with_cert: bool,
    alpn: &[u8],
) -> Result<(u16, String), String> {
    let mut roots = RootCertStore::empty();
    roots.add(demo.credentials.ca.clone()).unwrap();
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
    let mut config = if with_cert {
        builder
            .with_client_auth_cert(
                demo.credentials.client_chain.clone(),
                demo.credentials.client_key.clone_key(),
            )
            .unwrap()
    } else {
        builder.with_no_client_auth()
    };
    config.alpn_protocols = vec![alpn.to_vec()];
    let tcp = TcpStream::connect(demo.addr)
        .await
        .map_err(|e| e.to_string())?;
    let tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from(sni.to_string()).unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let io = TokioIo::new(tls);
    let port = demo.addr.port();
    let response = if alpn == b"h2" {
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let request = http::Request::get(format!("https://{host}:{port}/"))
            .body(Empty::<Bytes>::new())
            .unwrap();
        sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let request = http::Request::get("/")
            .header("host", format!("{host}:{port}"))
            .body(Empty::<Bytes>::new())
            .unwrap();
        sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?
    };
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok((
        status,
        String::from_utf8_lossy(&body.to_bytes()).into_owned(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_virtual_host_client_authentication_over_real_tls() {
    let demo = example::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    for alpn in [b"h2".as_slice(), b"http/1.1".as_slice()] {
        let case = String::from_utf8_lossy(alpn);
        let (status, body) = get(&demo, "a.localhost", "a.localhost", false, alpn)
            .await
            .unwrap();
        assert_eq!(
            (status, body.as_str()),
            (200, "served by a.localhost\n"),
            "{case}"
        );

        // Coalesced: b.localhost on a.localhost's connection (the certificate covers it).
        let (status, body) = get(&demo, "a.localhost", "b.localhost", false, alpn)
            .await
            .unwrap();
        assert_eq!(
            (status, body.as_str()),
            (200, "served by b.localhost\n"),
            "{case}"
        );

        // The protected host on a connection that never presented a certificate: 421, so a
        // browser retries on a connection of its own (and is asked for the certificate).
        let (status, body) = get(&demo, "a.localhost", "secure.localhost", false, alpn)
            .await
            .unwrap();
        assert_eq!(status, 421, "{case}: {body}");
        assert!(body.contains("client-cert-required"), "{case}: {body}");

        // Its own connection, with the certificate: served.
        let (status, body) = get(&demo, "secure.localhost", "secure.localhost", true, alpn)
            .await
            .unwrap();
        assert_eq!(
            (status, body.as_str()),
            (200, "served by secure.localhost\n"),
            "{case}"
        );

        // Its own connection without a certificate: the handshake (or the first request,
        // under TLS 1.3) fails — never a 421 retry loop, never served.
        let refused = get(&demo, "secure.localhost", "secure.localhost", false, alpn).await;
        assert!(
            refused.is_err(),
            "{case}: served without a certificate: {refused:?}"
        );
    }
}

#[tokio::test]
async fn the_example_prints_working_curl_commands() {
    let demo = example::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!("misdirect-axum-tls-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let commands = demo.curl_commands(&dir).unwrap();
    assert_eq!(commands.len(), 4);
    assert!(dir.join("client.key").exists());
    assert!(commands[2].contains("421 client-cert-required"));
    let _ = std::fs::remove_dir_all(&dir);
}
