//! Connections opened by hand (`Client::connect`) against the embedded set-up: what the
//! handshake found, requests for any authority, ORIGIN sets, recorded verification and a
//! missing client certificate.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;

use misdirect_authority::Origin;
use misdirect_client::{Client, ConnectOptions, ErrorKind, Protocol};
use misdirect_coalesce::ReuseMode;

use support::{LOCAL, Setup, TestCa, der_key};

fn origin(host: &str, port: u16) -> String {
    format!("https://{host}:{port}")
}

#[tokio::test]
async fn a_connection_carries_any_authority_and_shows_its_origin_set() {
    let setup = Setup::start("conn-any").await;
    let client = setup.builder(ReuseMode::Exact).build().unwrap();
    let conn = client
        .connect(&origin("a.localhost", setup.port), ConnectOptions::new())
        .await
        .unwrap();
    let info = conn.info();
    assert_eq!(info.protocol, Protocol::Http2);
    assert_eq!(info.peer, SocketAddr::new(LOCAL, setup.port));
    assert!(info.verification.is_ok());
    assert!(!info.client_cert_presented);
    assert!(!info.peer_certificates.is_empty());

    conn.ping().await.unwrap();
    let mut set: Vec<String> = conn
        .origin_set()
        .unwrap()
        .iter()
        .map(Origin::to_string)
        .collect();
    set.sort();
    assert_eq!(
        set,
        [
            origin("a.localhost", setup.port),
            origin("b.localhost", setup.port)
        ]
    );

    // The pool's rules do not apply: c.localhost (not covered) and secure.localhost (no
    // client certificate) go on a.localhost's connection and the server refuses them.
    for (host, status) in [
        ("b.localhost", 200),
        ("c.localhost", 421),
        ("secure.localhost", 421),
    ] {
        let request = http::Request::get(format!("{}/", origin(host, setup.port)))
            .body(())
            .unwrap();
        let response = conn.send(request).await.unwrap();
        assert_eq!(response.status(), status, "{host}");
    }
    assert!(conn.verify_for(&"b.localhost".parse().unwrap()).is_ok());
    assert!(conn.verify_for(&"c.localhost".parse().unwrap()).is_err());
    assert!(!conn.is_closed());
    // Connections opened by hand are counted, not pooled.
    assert_eq!(client.stats().connections_opened, 1);
    assert_eq!(client.stats().requests, 0);
}

#[tokio::test]
async fn verification_is_recorded_on_request_and_fails_the_handshake_otherwise() {
    let setup = Setup::start("conn-verify").await;
    // Trust anchors that did not issue the server's certificate.
    let client = Client::builder()
        .resolver(setup.resolver())
        .build()
        .unwrap();
    let a = origin("a.localhost", setup.port);
    let err = client.connect(&a, ConnectOptions::new()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tls, "{err}");

    let conn = client
        .connect(&a, ConnectOptions::new().dangerous_record_verification())
        .await
        .unwrap();
    assert_eq!(
        conn.info().verification,
        Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer
        ))
    );
    let response = conn
        .send(http::Request::get(format!("{a}/")).body(()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn without_sni_the_certificate_is_still_verified_for_the_origin() {
    let setup = Setup::start("conn-no-sni").await;
    let client = setup.builder(ReuseMode::Exact).build().unwrap();
    let options = ConnectOptions::new()
        .addr(SocketAddr::new(LOCAL, setup.port))
        .without_sni()
        .dangerous_record_verification();
    let conn = client
        .connect(&origin("a.localhost", setup.port), options)
        .await
        .unwrap();
    assert!(!conn.info().peer_certificates.is_empty());
    let response = conn
        .send(
            http::Request::get(format!("{}/", origin("a.localhost", setup.port)))
                .body(())
                .unwrap(),
        )
        .await
        .unwrap();
    // The default certificate covers a.localhost, and the `secure` policy serves it on a
    // connection without SNI.
    assert_eq!(response.status(), 200);
    assert_eq!(conn.info().verification, Ok(()));
}

#[tokio::test]
async fn a_missing_client_certificate_is_named() {
    let setup = Setup::start("conn-no-cert").await;
    let client = setup.builder(ReuseMode::Exact).build().unwrap();
    let secure = origin("secure.localhost", setup.port);
    let failure = match client.connect(&secure, ConnectOptions::new()).await {
        Err(err) => err,
        Ok(conn) => {
            assert!(conn.info().client_cert_requested);
            assert!(!conn.info().client_cert_presented);
            // TLS 1.3: the server ends the connection after the handshake.
            let request = http::Request::get(format!("{secure}/")).body(()).unwrap();
            match conn.ping().await {
                Err(err) => err,
                Ok(()) => conn.send(request).await.unwrap_err(),
            }
        }
    };
    assert_eq!(failure.kind(), ErrorKind::ClientCertRequired, "{failure}");

    let client = setup
        .with_client_cert(setup.builder(ReuseMode::Exact))
        .build()
        .unwrap();
    let conn = client
        .connect(&secure, ConnectOptions::new())
        .await
        .unwrap();
    assert!(conn.info().client_cert_requested && conn.info().client_cert_presented);
    let response = conn
        .send(http::Request::get(format!("{secure}/")).body(()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_tls12_handshake_that_fails_for_want_of_a_client_certificate_says_it_was_asked() {
    // TLS 1.2 ends the handshake itself when a required certificate is missing (RFC 5246
    // §7.4.6), so the error carries what the handshake saw.
    let ca = TestCa::new();
    let (cert, key) = ca.issue(&["tls12.localhost"]);
    let roots = ca.roots();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        std::sync::Arc::new(roots.clone()),
        provider.clone(),
    )
    .build()
    .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![cert.der().clone()], der_key(&key))
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind((LOCAL, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let _ = acceptor.accept(tcp).await;
        }
    });

    let client = Client::builder().roots(roots).build().unwrap();
    let options = ConnectOptions::new().addr(SocketAddr::new(LOCAL, port));
    let err = client
        .connect(&origin("tls12.localhost", port), options)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ClientCertRequired, "{err}");
    assert!(err.client_cert_requested(), "{err}");
}
