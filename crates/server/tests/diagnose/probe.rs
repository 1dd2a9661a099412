//! `misdirect probe` against our server at each policy level, against a server that lets a
//! coalesced connection past its client-certificate check (and serves names its certificate
//! does not cover), against servers that refuse with 400, 403 or 404 instead of 421 (as
//! nginx and HAProxy do), against expired, expiring and wrongly-signed certificates, and
//! against servers that fail in the ways a probe must report.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
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
    // Our server's ORIGIN frame lists the names the connection serves; the report shows
    // the connection's ORIGIN set, ordered as text.
    let origins = report.origin_frame.clone().unwrap_or_default();
    assert!(
        origins.iter().any(|o| o == "https://a.test")
            && origins.iter().any(|o| o == "https://b.test"),
        "{text}"
    );
    assert!(origins.is_sorted(), "{origins:?}");
    assert_eq!(json["origin_frame"][0], origins[0].as_str());
    assert!(text.contains("ORIGIN frame: https://a.test"), "{text}");
}

/// `--sni` makes the connection for another name than the URL's, verified for that name;
/// `--head` sends HEAD, whose answers have no body to give a reason.
#[tokio::test]
async fn sni_and_head_on_our_server() {
    let site = Site::new("probe-sni-head");
    let path = site.write("probe.toml", &site.config("secure", ""));
    let server = TestServer::start(&path).await;
    let mut o = options(&site, server.addr, "a.test", &["c.test"]);
    o.sni = Some("b.test".to_owned());
    o.head = true;
    let report = probe(&o).await.unwrap();
    server.shutdown().await;
    let text = report.to_text();
    assert_eq!(report.sni.as_deref(), Some("b.test"), "{text}");
    assert_eq!(report.certificate.verified, Some(true), "{text}");
    assert_eq!(
        report.certificate.verified_for.as_deref(),
        Some("b.test"),
        "{text}"
    );
    assert_eq!(
        (report.results[0].name.as_str(), report.results[0].source),
        ("b.test", NameSource::Sni)
    );
    let v = verdicts(&report);
    assert_eq!(v["b.test"], (Verdict::ServedOwn, None), "{text}");
    assert_eq!(v["a.test"], (Verdict::Served, None), "{text}");
    assert_eq!(v["secure.test"], (Verdict::Misdirected, None), "{text}");
    assert_eq!(v["c.test"], (Verdict::RefusedUncovered, None), "{text}");
    assert!(
        text.contains("connected to") && text.contains("with SNI b.test, over h2"),
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
    // Failed requests are counted as failures, not hazards.
    let failed = report.results.len();
    assert!(
        report.to_text().contains(&format!(
            "summary: 0 fine, 0 hazard(s), 0 violation(s), {failed} failure(s)"
        )),
        "{}",
        report.to_text()
    );
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
    // Hosts compare as hosts: case and a trailing dot make no other name.
    for same in [
        "A.TEST:127.0.0.2",
        "a.test.:127.0.0.2",
        "A.Test.:8443:127.0.0.2",
    ] {
        assert_eq!(
            parse_resolve(same, url).unwrap(),
            "127.0.0.2:8443".parse().unwrap(),
            "{same}"
        );
    }
    assert_eq!(
        parse_resolve("a.test:[::2]", url).unwrap(),
        "[::2]:8443".parse().unwrap()
    );
}

/// How the nginx-like server answers on a connection without a client certificate.
#[derive(Clone, Copy)]
struct Refusals {
    /// For `secure.test` (nginx: `400 No required SSL certificate was sent`).
    client_cert_name: u16,
    /// For a name no virtual host serves (HAProxy: `404 no vhost`).
    unknown_name: u16,
}

/// A server in nginx's shape over HTTP/2: one certificate for `a.test`, `b.test` and
/// `secure.test`; a handshake with SNI `secure.test` asks for a client certificate but
/// goes on without one; a request for `secure.test` without a client certificate, or for
/// a name it does not serve, is refused with the given statuses — never a 421.
async fn refusing_server(site: &Site, refusals: Refusals) -> SocketAddr {
    let (chain, key) = load(site, "shared");
    let mut plain = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain.clone(), key.clone_key())
        .unwrap();
    plain.alpn_protocols = vec![b"h2".to_vec()];
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(site.dir.join("client-ca.pem")).unwrap() {
        roots.add(ca.unwrap()).unwrap();
    }
    let verifier = WebPkiClientVerifier::builder(Arc::new(roots))
        .allow_unauthenticated()
        .build()
        .unwrap();
    let mut mtls = ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .unwrap();
    mtls.alpn_protocols = vec![b"h2".to_vec()];
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
                let authenticated = tls.get_ref().1.peer_certificates().is_some();
                let service = hyper::service::service_fn(move |request: http::Request<_>| {
                    let host = request.uri().host().unwrap_or_default().to_owned();
                    async move {
                        let (status, body): (u16, &'static [u8]) = match host.as_str() {
                            "a.test" | "b.test" => (200, b"hello\n"),
                            "secure.test" if authenticated => (200, b"secret\n"),
                            "secure.test" => (
                                refusals.client_cert_name,
                                b"<html>\r\n<head><title>400 No required SSL certificate was sent</title></head>\r\n<body>nginx</body>\r\n</html>\r\n",
                            ),
                            _ => (refusals.unknown_name, b"no vhost\n"),
                        };
                        let mut response = http::Response::new(Full::new(Bytes::from_static(body)));
                        *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
            });
        }
    });
    addr
}

/// Probing by IP address without SNI, as one probes nginx: a 400, 403 or 404 for the
/// client-certificate name is a refusal (a connection of its own asks for a certificate,
/// so coalescing browsers get an error page where a 421 would make them retry), never a
/// bypass; a refusal for a name the certificate does not cover is correct, never
/// "served-uncovered" (RFC 9110 §7.4, §15.5).
#[tokio::test]
async fn refusals_are_not_served() {
    for (client_cert_name, unknown_name) in [(400, 404), (403, 403), (404, 400)] {
        let site = Site::new("probe-refusals");
        let refusals = Refusals {
            client_cert_name,
            unknown_name,
        };
        let addr = refusing_server(&site, refusals).await;
        let mut o = options(&site, addr, "a.test", &["c.test"]);
        o.no_sni = true;
        let report = probe(&o).await.unwrap();
        let case = format!("{client_cert_name}/{unknown_name}: {}", report.to_text());
        assert_eq!(report.protocol, Protocol::Http2, "{case}");
        let v = verdicts(&report);
        assert_eq!(v["a.test"], (Verdict::Served, None), "{case}");
        assert_eq!(v["b.test"], (Verdict::Served, None), "{case}");
        assert_eq!(
            v["secure.test"],
            (
                Verdict::RefusedShared,
                Some("400 No required SSL certificate was sent")
            ),
            "{case}"
        );
        assert_eq!(
            v["c.test"],
            (Verdict::RefusedUncovered, Some("no vhost")),
            "{case}"
        );
        let secure = report
            .results
            .iter()
            .find(|r| r.name == "secure.test")
            .unwrap();
        let fresh = secure.fresh.as_ref().unwrap();
        assert!(fresh.client_cert_requested, "{case}");
        assert_eq!(fresh.status, Some(client_cert_name), "{case}");
        assert_eq!(report.exit_code(), 1, "{case}");
        let text = report.to_text();
        assert!(
            !text.contains("BYPASS") && !text.contains("served-uncovered"),
            "{case}"
        );
        assert!(
            text.contains("summary: 3 fine, 1 hazard(s), 0 violation(s), 0 failure(s)"),
            "{case}"
        );
        // Without SNI, --cacert still verifies, for the URL's host.
        assert_eq!(report.certificate.verified, Some(true), "{case}");
        assert!(text.contains("verified with --cacert for a.test"), "{case}");
    }
}

/// Writes a CA and a leaf for `a.test` valid from `not_before` to `not_after` as
/// `<stem>-ca.pem`, `<stem>.pem` (leaf and CA) and `<stem>.key`.
fn dated_cert(site: &Site, stem: &str, not_before: (i32, u8, u8), not_after: (i32, u8, u8)) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, date_time_ymd,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name.push(DnType::CommonName, "dated CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["a.test".to_owned()]).unwrap();
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.not_before = date_time_ymd(not_before.0, not_before.1, not_before.2);
    leaf.not_after = date_time_ymd(not_after.0, not_after.1, not_after.2);
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    let dir = &site.dir;
    std::fs::write(dir.join(format!("{stem}-ca.pem")), ca_cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{stem}.pem")), cert.pem() + &ca_cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{stem}.key")), key.serialize_pem()).unwrap();
}

/// A server presenting `<stem>.pem` over HTTP/1.1, serving every request.
async fn plain_server(site: &Site, stem: &str) -> SocketAddr {
    let (chain, key) = load(site, stem);
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
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
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

/// A server presenting the shared certificate over HTTP/1.1 that closes the connection
/// after each response (`Connection: close`), counting the connections it accepts.
async fn closing_server(site: &Site) -> (SocketAddr, Arc<AtomicUsize>) {
    let (chain, key) = load(site, "shared");
    let mut config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::Relaxed);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(|_request| async {
                    Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(
                        b"hello\n",
                    ))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(false)
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (addr, accepted)
}

/// An HTTP/1.1 server that closes after each response: the probe makes the shared
/// connection again, with the same SNI, for each name, and every name gets its answer.
#[tokio::test]
async fn http1_server_closing_after_each_response() {
    let site = Site::new("probe-closing");
    let (addr, accepted) = closing_server(&site).await;
    let report = probe(&options(&site, addr, "a.test", &["c.test"]))
        .await
        .unwrap();
    let text = report.to_text();
    assert_eq!(report.protocol, Protocol::Http1, "{text}");
    let v = verdicts(&report);
    assert_eq!(v["a.test"].0, Verdict::ServedOwn, "{text}");
    assert_eq!(v["b.test"].0, Verdict::Served, "{text}");
    assert_eq!(v["secure.test"].0, Verdict::Served, "{text}");
    assert_eq!(v["c.test"].0, Verdict::ServedUncovered, "{text}");
    // Four requests on the shared connection, each on a connection of its own, and a
    // fresh connection for each of the three other names served.
    assert_eq!(accepted.load(Ordering::Relaxed), 7, "{text}");
}

/// An expired certificate is a violation with or without --cacert, and with it the
/// verifier's reason is printed.
#[tokio::test]
async fn expired_certificate_is_a_finding() {
    let site = Site::new("probe-expired");
    dated_cert(&site, "expired", (2020, 1, 1), (2021, 1, 1));
    let addr = plain_server(&site, "expired").await;
    let mut o = options(&site, addr, "a.test", &[]);
    o.cacert = Some(site.dir.join("expired-ca.pem"));
    let report = probe(&o).await.unwrap();
    let text = report.to_text();
    assert_eq!(report.certificate.verified, Some(false), "{text}");
    let reason = report.certificate.verify_error.clone().unwrap();
    assert!(reason.contains("expired"), "{reason}");
    assert!(report.certificate.days_left.unwrap() < -365, "{text}");
    assert!(
        text.contains(&format!(
            "VIOLATION: the certificate fails verification with --cacert for a.test: {reason}"
        )),
        "{text}"
    );
    assert!(
        text.contains("VIOLATION: the certificate expired "),
        "{text}"
    );
    assert!(text.contains("2 violation(s)"), "{text}");
    assert_eq!(report.exit_code(), 2, "{text}");
    assert_eq!(
        report.to_json()["certificate"]["verify_error"],
        reason.as_str()
    );

    o.cacert = None;
    let report = probe(&o).await.unwrap();
    assert_eq!(report.certificate.verified, None);
    assert_eq!(report.exit_code(), 2, "{}", report.to_text());
}

/// A certificate expiring within two weeks is a hazard, with its days left.
#[tokio::test]
async fn expiring_certificate_is_a_hazard() {
    let site = Site::new("probe-expiring");
    let soon = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        + Duration::from_secs(5 * 86_400 + 3600);
    let date = rcgen::date_time_ymd(1970, 1, 1) + soon;
    dated_cert(
        &site,
        "expiring",
        (2020, 1, 1),
        (date.year(), date.month().into(), date.day()),
    );
    let addr = plain_server(&site, "expiring").await;
    let mut o = options(&site, addr, "a.test", &[]);
    o.cacert = Some(site.dir.join("expiring-ca.pem"));
    let report = probe(&o).await.unwrap();
    let text = report.to_text();
    let days = report.certificate.days_left.unwrap();
    assert!((4..=5).contains(&days), "{text}");
    assert_eq!(report.certificate.verified, Some(true), "{text}");
    assert!(
        text.contains(&format!("HAZARD: the certificate expires in {days} day(s)")),
        "{text}"
    );
    assert_eq!(report.exit_code(), 1, "{text}");
}

/// A certificate from another CA than --cacert's (a wrong CA bundle): a violation, with
/// the verifier's reason.
#[tokio::test]
async fn wrongly_signed_certificate_is_a_finding() {
    let site = Site::new("probe-wrong-ca");
    let addr = plain_server(&site, "shared").await;
    let mut o = options(&site, addr, "a.test", &[]);
    o.cacert = Some(site.dir.join("other-ca.pem"));
    let report = probe(&o).await.unwrap();
    let text = report.to_text();
    assert_eq!(report.certificate.verified, Some(false), "{text}");
    let reason = report.certificate.verify_error.clone().unwrap();
    assert!(reason.contains("UnknownIssuer"), "{reason}");
    assert!(text.contains(&reason), "{text}");
    assert!(
        text.contains("NOT valid for a.test with --cacert"),
        "{text}"
    );
    assert_eq!(report.exit_code(), 2, "{text}");
}

/// A server that requires a client certificate for every connection, probed without
/// one: over TLS 1.2 the handshake fails, over TLS 1.3 the connection ends just after
/// it. Either way the probe stops, says a client certificate is required and suggests
/// --cert.
#[tokio::test]
async fn required_client_certificate_is_explained() {
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let site = Site::new("probe-mtls");
        let (chain, key) = load(&site, "shared");
        let verifier = WebPkiClientVerifier::builder(Arc::new(site.ca.roots()))
            .build()
            .unwrap();
        let mut config = ServerConfig::builder_with_protocol_versions(&[version])
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(|_request| async {
                        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(
                            b"hello\n",
                        ))))
                    });
                    let _ = hyper::server::conn::http2::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
                });
            }
        });
        let case = format!("{version:?}");
        let err = probe(&options(&site, addr, "a.test", &[]))
            .await
            .unwrap_err();
        assert_eq!(
            err.kind(),
            misdirect_server::ErrorKind::Tls,
            "{case}: {err}"
        );
        let message = err.to_string();
        assert!(
            message.contains("the server requires a client certificate")
                && message.contains("present one with --cert FILE --key FILE"),
            "{case}: {message}"
        );
    }
}

/// `--timeout` names its bounds, and the command exits 3 before connecting anywhere.
#[test]
fn timeout_bounds_on_the_command_line() {
    for timeout in ["1e30", "0", "-1", "3601", "NaN"] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_misdirect"))
            .args(["probe", "https://a.test/", "--resolve", "127.0.0.1:9"])
            .arg(format!("--timeout={timeout}"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(3), "{timeout}: {stderr}");
        assert!(
            stderr.contains("must be from 0.001 to 3600 seconds"),
            "{timeout}: {stderr}"
        );
    }
}
