//! `misdirect probe` against our server at each policy level, against a server that lets a
//! coalesced connection past its client-certificate check (and serves names its certificate
//! does not cover), and against servers that fail in the ways a probe must report.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use misdirect_server::probe::{NameSource, ProbeOptions, ProbeReport, Protocol, Verdict, probe};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{Acceptor, WebPkiClientVerifier};
use rustls::{RootCertStore, ServerConfig};
use tokio::net::TcpListener;
use tokio_rustls::LazyConfigAcceptor;

use crate::fixtures::Site;
use crate::support::TestServer;

fn options(site: &Site, addr: SocketAddr, host: &str, names: &[&str]) -> ProbeOptions {
    let mut o = ProbeOptions::new(format!("https://{host}/"));
    o.resolve = Some(addr);
    o.cacert = Some(site.dir.join("client-ca.pem"));
    o.names = names.iter().map(|n| (*n).to_owned()).collect();
    o.timeout = Duration::from_secs(5);
    o
}

fn verdicts(report: &ProbeReport) -> BTreeMap<&str, (Verdict, Option<&str>)> {
    report
        .results
        .iter()
        .map(|r| (r.name.as_str(), (r.verdict, r.error.as_deref())))
        .collect()
}

const EXTRA: &[&str] = &["c.test", "partner.test", "x.wild.test"];

async fn run(policy: &str, extra: &str) -> ProbeReport {
    let site = Site::new(&format!("probe-{policy}"));
    let path = site.write("probe.toml", &site.config(policy, extra));
    let server = TestServer::start(&path).await;
    let report = probe(&options(&site, server.addr, "a.test", EXTRA))
        .await
        .unwrap();
    server.shutdown().await;
    report
}

#[tokio::test]
async fn our_server_secure() {
    let report = run("secure", "").await;
    assert_eq!(report.protocol, Protocol::Http2);
    assert_eq!(report.certificate.verified, Some(true));
    assert_eq!(
        report.certificate.names,
        ["a.test", "b.test", "secure.test"]
    );
    let v = verdicts(&report);
    assert_eq!(v["a.test"], (Verdict::ServedOwn, None));
    assert_eq!(v["b.test"], (Verdict::Served, None));
    assert_eq!(
        v["secure.test"],
        (Verdict::Misdirected, Some("client-cert-required"))
    );
    assert_eq!(
        v["c.test"],
        (
            Verdict::RefusedUncovered,
            Some("certificate-does-not-cover")
        )
    );
    assert_eq!(
        v["partner.test"],
        (
            Verdict::RefusedUncovered,
            Some("certificate-does-not-cover")
        )
    );
    assert_eq!(
        v["x.wild.test"],
        (
            Verdict::RefusedUncovered,
            Some("certificate-does-not-cover")
        )
    );
    assert_eq!(report.exit_code(), 1);
    let sources: BTreeMap<&str, NameSource> = report
        .results
        .iter()
        .map(|r| (r.name.as_str(), r.source))
        .collect();
    assert_eq!(sources["a.test"], NameSource::Sni);
    assert_eq!(sources["b.test"], NameSource::Certificate);
    assert_eq!(sources["c.test"], NameSource::Option);
    let json = report.to_json();
    assert_eq!(json["protocol"], "h2");
    assert_eq!(json["results"][0]["source"], "sni");
    let text = report.to_text();
    assert!(
        text.contains("secure.test") && text.contains("client-cert-required"),
        "{text}"
    );
}

#[tokio::test]
async fn our_server_strict() {
    let v = run("strict", "").await;
    let v = verdicts(&v);
    assert_eq!(v["a.test"].0, Verdict::ServedOwn);
    assert_eq!(
        v["b.test"],
        (Verdict::Misdirected, Some("sni-vhost-differs"))
    );
    assert_eq!(
        v["secure.test"],
        (Verdict::Misdirected, Some("client-cert-required"))
    );
}

#[tokio::test]
async fn our_server_cert_only() {
    let report = run("cert-only", "").await;
    let v = verdicts(&report);
    assert_eq!(v["b.test"].0, Verdict::Served);
    assert_eq!(
        v["secure.test"],
        (Verdict::Misdirected, Some("client-cert-required"))
    );
    assert_eq!(v["c.test"].0, Verdict::RefusedUncovered);
}

/// warn_only serves what the policy would refuse for TLS details, but never a name the
/// certificate does not cover and never the client-certificate host: the probe finds no
/// violation.
#[tokio::test]
async fn our_server_warn_only() {
    let report = run("secure", "warn_only = true").await;
    let v = verdicts(&report);
    assert_eq!(v["b.test"].0, Verdict::Served);
    assert_eq!(v["c.test"].0, Verdict::RefusedUncovered);
    assert_eq!(
        v["secure.test"],
        (Verdict::Misdirected, Some("client-cert-required"))
    );
    assert!(report.exit_code() < 2, "a violation: {}", report.to_text());
}

fn load(site: &Site, stem: &str) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let pem = std::fs::read(site.dir.join(format!("{stem}.pem"))).unwrap();
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(site.dir.join(format!("{stem}.key"))).unwrap();
    (chain, key)
}

/// A server that chooses its client-certificate requirement by SNI at the handshake and
/// then serves whatever Host it is asked for, over HTTP/1.1 only — the shape of a proxy
/// without any 421 rule.
async fn naive_server(site: &Site) -> SocketAddr {
    let (chain, key) = load(site, "shared");
    let mut plain = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain.clone(), key.clone_key())
        .unwrap();
    plain.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(site.dir.join("client-ca.pem")).unwrap() {
        roots.add(ca.unwrap()).unwrap();
    }
    let verifier = WebPkiClientVerifier::builder(Arc::new(roots))
        .build()
        .unwrap();
    let mut mtls = ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .unwrap();
    mtls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let (plain, mtls) = (Arc::new(plain), Arc::new(mtls));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (plain, mtls) = (plain.clone(), mtls.clone());
            tokio::spawn(async move {
                let Ok(start) = LazyConfigAcceptor::new(Acceptor::default(), tcp).await else {
                    return;
                };
                let config = match start.client_hello().server_name() {
                    Some("secure.test") => mtls,
                    _ => plain,
                };
                let Ok(tls) = start.into_stream(config).await else {
                    return;
                };
                let service = hyper::service::service_fn(|_request| async {
                    Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(
                        b"hello\n",
                    ))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn bypass_and_uncovered_names_on_a_naive_server() {
    let site = Site::new("probe-naive");
    let addr = naive_server(&site).await;
    let report = probe(&options(&site, addr, "a.test", &["c.test"]))
        .await
        .unwrap();
    assert_eq!(report.protocol, Protocol::Http1);
    assert_eq!(report.to_json()["protocol"], "http/1.1");
    assert!(report.fell_back_to_http1);
    assert!(report.to_text().contains("did not offer HTTP/2"));
    let v = verdicts(&report);
    assert_eq!(v["a.test"].0, Verdict::ServedOwn);
    assert_eq!(v["b.test"].0, Verdict::Served);
    assert_eq!(v["secure.test"].0, Verdict::Bypass, "{report:#?}");
    assert_eq!(v["c.test"].0, Verdict::ServedUncovered);
    let secure = report
        .results
        .iter()
        .find(|r| r.name == "secure.test")
        .unwrap();
    assert!(secure.fresh.as_ref().unwrap().client_cert_requested);
    assert_eq!(report.exit_code(), 2);
    assert!(report.to_text().contains("BYPASS"));
    assert_eq!(report.to_json()["results"][2]["verdict"], "bypass");
}

/// The same naive server, probed with a client certificate of our own: the probe then
/// cannot tell a bypass, and does not claim one.
#[tokio::test]
async fn no_bypass_claim_when_presenting_a_certificate() {
    let site = Site::new("probe-naive-cert");
    let addr = naive_server(&site).await;
    let mut o = options(&site, addr, "secure.test", &[]);
    let dir = &site.dir;
    let client = &site.client;
    let cert_pem: String = client
        .chain
        .iter()
        .map(|c| pem_block("CERTIFICATE", c.as_ref()))
        .collect();
    std::fs::write(dir.join("probe-client.pem"), cert_pem).unwrap();
    std::fs::write(
        dir.join("probe-client.key"),
        pem_block("PRIVATE KEY", client.key.secret_der()),
    )
    .unwrap();
    o.client_cert = Some((dir.join("probe-client.pem"), dir.join("probe-client.key")));
    let report = probe(&o).await.unwrap();
    let v = verdicts(&report);
    assert_eq!(v["secure.test"].0, Verdict::ServedOwn);
    assert!(v.values().all(|(verdict, _)| *verdict != Verdict::Bypass));
}

fn pem_block(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let body: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        body.join("\n")
    )
}

#[tokio::test]
async fn tls_failure_is_reported() {
    let site = Site::new("probe-tls");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            use tokio::io::AsyncWriteExt;
            let _ = tcp.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        }
    });
    let err = probe(&options(&site, addr, "a.test", &[]))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), misdirect_server::ErrorKind::Tls, "{err}");
    assert!(err.to_string().contains("TLS handshake"), "{err}");
}

#[tokio::test]
async fn silent_server_times_out() {
    let site = Site::new("probe-timeout");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });
    let mut o = options(&site, addr, "a.test", &[]);
    o.timeout = Duration::from_millis(300);
    let err = probe(&o).await.unwrap_err();
    assert_eq!(err.kind(), misdirect_server::ErrorKind::Timeout, "{err}");
    hold.abort();
}

#[tokio::test]
async fn connection_refused_is_reported() {
    let site = Site::new("probe-refused");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = probe(&options(&site, addr, "a.test", &[]))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), misdirect_server::ErrorKind::Connect, "{err}");
}

/// A server that completes the handshake, then closes: every request fails, and the
/// report says so with exit status 3.
#[tokio::test]
async fn closed_connection_is_reported() {
    let site = Site::new("probe-closed");
    let (chain, key) = load(&site, "shared");
    let mut config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            if let Ok(mut tls) = acceptor.accept(tcp).await {
                use tokio::io::AsyncWriteExt;
                let _ = tls.shutdown().await;
            }
        }
    });
    let report = probe(&options(&site, addr, "a.test", &[])).await.unwrap();
    assert!(
        report.results.iter().all(|r| r.verdict == Verdict::Failed),
        "{report:#?}"
    );
    assert_eq!(report.exit_code(), 3);
    assert!(
        report.results[0]
            .error
            .as_deref()
            .unwrap_or("")
            .contains("connection"),
        "{report:#?}"
    );
}

#[test]
fn resolve_forms() {
    use misdirect_server::probe::parse_resolve;
    let url = "https://a.test:8443/";
    assert_eq!(
        parse_resolve("127.0.0.1", url).unwrap(),
        "127.0.0.1:8443".parse().unwrap()
    );
    assert_eq!(
        parse_resolve("127.0.0.1:9000", url).unwrap(),
        "127.0.0.1:9000".parse().unwrap()
    );
    assert_eq!(
        parse_resolve("a.test:127.0.0.2", url).unwrap(),
        "127.0.0.2:8443".parse().unwrap()
    );
    assert_eq!(
        parse_resolve("a.test:8443:127.0.0.3", url).unwrap(),
        "127.0.0.3:8443".parse().unwrap()
    );
    assert_eq!(
        parse_resolve("[::1]:9443", url).unwrap(),
        "[::1]:9443".parse().unwrap()
    );
    assert!(
        parse_resolve("b.test:127.0.0.1", url)
            .unwrap_err()
            .to_string()
            .contains("a.test")
    );
    assert!(parse_resolve("nonsense", url).is_err());
}
