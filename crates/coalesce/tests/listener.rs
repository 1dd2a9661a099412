//! The listener core without sockets: the one SNI choice, handshake facts to a connection
//! context, and requests to outcomes with the fields every log line carries.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use http::{Method, StatusCode, Version};
use misdirect_authority::{HostName, Scheme};
use misdirect_certmatch::Identities;
use misdirect_coalesce::{
    Alpn, ClientAuth, ClientCert, Handshake, Listener, Outcome, Reason, TrustAnchorSets,
    UnknownHost, VerifiedClientCert, VhostId, VirtualHost, VirtualHosts,
};

struct Fixture {
    listener: Listener,
    a: VhostId,
    b: VhostId,
    wild: VhostId,
    secure: VhostId,
}

/// a.test, b.test and secure.test share a certificate; *.wild.test has its own;
/// secure.test requires client certificates from one CA set.
#[derive(Clone, Copy)]
enum Unknown {
    Misdirected,
    NotFound,
    ToA,
}

fn fixture(warn_only: bool, unknown: Unknown) -> Fixture {
    let shared = Arc::new(Identities::from_patterns([
        "a.test".parse().unwrap(),
        "b.test".parse().unwrap(),
        "secure.test".parse().unwrap(),
    ]));
    let wild_cert = Arc::new(Identities::from_patterns(["*.wild.test".parse().unwrap()]));
    let mut sets = TrustAnchorSets::new();
    let staff = sets.intern([b"staff CA".as_slice()]);
    let mut builder = VirtualHosts::builder(Scheme::Https);
    let a =
        builder.add(VirtualHost::new("a.test", shared.clone()).pattern("a.test".parse().unwrap()));
    let b =
        builder.add(VirtualHost::new("b.test", shared.clone()).pattern("b.test".parse().unwrap()));
    let wild = builder
        .add(VirtualHost::new("*.wild.test", wild_cert).pattern("*.wild.test".parse().unwrap()));
    let secure = builder.add(
        VirtualHost::new("secure.test", shared)
            .pattern("secure.test".parse().unwrap())
            .client_auth(ClientAuth::Required(staff)),
    );
    let builder = builder
        .port(443)
        .warn_only(warn_only)
        .default_vhost(a)
        .unknown_host(match unknown {
            Unknown::Misdirected => UnknownHost::Misdirected,
            Unknown::NotFound => UnknownHost::NotFound,
            Unknown::ToA => UnknownHost::Default(a),
        });
    Fixture {
        listener: Listener::new(builder.build().unwrap()),
        a,
        b,
        wild,
        secure,
    }
}

fn sni(name: &str) -> HostName {
    HostName::from_sni(name.as_bytes()).unwrap()
}

fn h2(method: Method, uri: &str) -> http::request::Parts {
    http::Request::builder()
        .method(method)
        .uri(uri)
        .version(Version::HTTP_2)
        .body(())
        .unwrap()
        .into_parts()
        .0
}

#[test]
fn select_is_exact_then_wildcard_then_default() {
    let f = fixture(false, Unknown::Misdirected);
    let l = &f.listener;
    assert_eq!(l.select(Some(&sni("b.test"))), Some(f.b));
    assert_eq!(l.select(Some(&sni("B.TEST"))), Some(f.b));
    assert_eq!(l.select(Some(&sni("x.wild.test"))), Some(f.wild));
    // A wildcard covers one label only.
    assert_eq!(l.select(Some(&sni("y.x.wild.test"))), Some(f.a));
    assert_eq!(l.select(Some(&sni("unknown.test"))), Some(f.a));
    assert_eq!(l.select(None), Some(f.a));
}

#[test]
fn without_a_default_the_first_virtual_host_answers() {
    let cert = Arc::new(Identities::from_patterns(["x.test".parse().unwrap()]));
    let mut builder = VirtualHosts::builder(Scheme::Https);
    let x = builder.add(VirtualHost::new("x", cert).pattern("x.test".parse().unwrap()));
    let listener = Listener::new(builder.port(443).build().unwrap());
    assert_eq!(listener.select(None), Some(x));
}

#[test]
fn a_verified_client_certificate_counts_for_the_presented_virtual_hosts_anchors_only() {
    let f = fixture(false, Unknown::Misdirected);
    let l = &f.listener;
    let staff = match l.vhosts().get(f.secure).unwrap().client_auth_required() {
        ClientAuth::Required(id) => id,
        other => panic!("{other:?}"),
    };
    let conn = l.on_handshake(
        Handshake::new(f.secure)
            .sni(Some(sni("secure.test")))
            .client_certificate_verified(true),
    );
    assert_eq!(
        conn.client_cert_state(),
        ClientCert::Verified(VerifiedClientCert::assertion(staff))
    );
    assert_eq!(conn.presented_vhost(), Some(f.secure));
    // a.test asks for no client certificate: whatever the stack says, nothing is verified.
    let conn = l.on_handshake(Handshake::new(f.a).client_certificate_verified(true));
    assert_eq!(conn.client_cert_state(), ClientCert::None);
    let conn = l.on_handshake(Handshake::new(f.secure));
    assert_eq!(conn.client_cert_state(), ClientCert::None);
}

#[test]
fn requests_become_outcomes_with_the_log_fields() {
    let f = fixture(false, Unknown::Misdirected);
    let l = &f.listener;
    let conn = l.on_handshake(Handshake::new(f.a).sni(Some(sni("a.test"))).alpn(Alpn::H2));

    // Coalesced and served.
    match l.on_request(&conn, &h2(Method::GET, "https://b.test/")) {
        Outcome::Serve { vhost, warning } => {
            assert_eq!(vhost, f.b);
            assert!(warning.is_none());
        }
        other => panic!("{other:?}"),
    }

    // The client-certificate host over a connection without one: 421, rendered.
    match l.on_request(&conn, &h2(Method::GET, "https://secure.test/x")) {
        Outcome::Respond { response, refusal } => {
            assert_eq!(response.status(), StatusCode::MISDIRECTED_REQUEST);
            assert!(!response.body().is_empty());
            assert_eq!(refusal.reason, Some(Reason::ClientCertRequired));
            assert_eq!(refusal.status, StatusCode::MISDIRECTED_REQUEST);
            assert!(!refusal.served);
            assert_eq!(refusal.sni.as_ref().map(|s| s.as_str()), Some("a.test"));
            assert_eq!(refusal.authority, "secure.test");
            assert_eq!(refusal.presented_vhost.as_deref(), Some("a.test"));
            assert_eq!(refusal.target_vhost.as_deref(), Some("secure.test"));
            assert_eq!(refusal.method, Method::GET);
            assert_eq!(refusal.version, Version::HTTP_2);
        }
        other => panic!("{other:?}"),
    }

    // A malformed request: 400, and the authority as the client wrote it.
    let mut parts = h2(Method::GET, "/");
    parts.headers.append("host", "a.test".parse().unwrap());
    parts.headers.append("host", "b.test".parse().unwrap());
    match l.on_request(&conn, &parts) {
        Outcome::Respond { response, refusal } => {
            assert_eq!(response.status(), StatusCode::BAD_REQUEST);
            assert_eq!(refusal.status, StatusCode::BAD_REQUEST);
            assert_eq!(refusal.authority, "a.test, b.test");
            assert_eq!(refusal.target_vhost, None);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn warn_only_serves_with_a_warning_but_never_an_uncovered_name() {
    let f = fixture(true, Unknown::ToA);
    let l = &f.listener;
    let conn = l.on_handshake(Handshake::new(f.a).sni(Some(sni("a.test"))));
    // Port 8443 is not served: relaxed by warn_only, reported.
    match l.on_request(&conn, &h2(Method::GET, "https://b.test:8443/")) {
        Outcome::Serve {
            vhost,
            warning: Some(refusal),
        } => {
            assert_eq!(vhost, f.b);
            assert_eq!(refusal.reason, Some(Reason::PortNotServed));
            assert!(refusal.served);
        }
        other => panic!("{other:?}"),
    }
    // Routed to the default virtual host, but a.test's certificate does not cover it.
    match l.on_request(&conn, &h2(Method::GET, "https://elsewhere.example/")) {
        Outcome::Respond { response, refusal } => {
            assert_eq!(response.status(), StatusCode::MISDIRECTED_REQUEST);
            assert_eq!(refusal.reason, Some(Reason::CertificateDoesNotCover));
            assert_eq!(refusal.target_vhost.as_deref(), Some("a.test"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_unknown_host_can_be_a_404_with_no_body_for_head() {
    let f = fixture(false, Unknown::NotFound);
    let l = &f.listener;
    let conn = l.on_handshake(Handshake::new(f.a).sni(Some(sni("a.test"))));
    let mut length = None;
    for method in [Method::GET, Method::HEAD] {
        let head = method == Method::HEAD;
        match l.on_request(&conn, &h2(method, "https://nowhere.test/")) {
            Outcome::Respond { response, refusal } => {
                assert_eq!(response.status(), StatusCode::NOT_FOUND);
                assert_eq!(response.body().is_empty(), head);
                let declared = response.headers()["content-length"].clone();
                // HEAD declares the length GET sends.
                assert_eq!(*length.get_or_insert(declared.clone()), declared);
                assert_eq!(refusal.reason, None);
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn trust_anchor_sets_are_identified_by_their_certificates() {
    let mut sets = TrustAnchorSets::new();
    let one = sets.intern([b"CA one".as_slice(), b"CA two".as_slice()]);
    assert_eq!(
        sets.intern([b"CA two".as_slice(), b"CA one".as_slice()]),
        one
    );
    assert_eq!(
        sets.intern([
            b"CA two".as_slice(),
            b"CA one".as_slice(),
            b"CA two".as_slice()
        ]),
        one
    );
    let other = sets.intern([b"CA one".as_slice()]);
    assert_ne!(other, one);
    assert_ne!(
        sets.intern([b"CA one".as_slice(), b"CA three".as_slice()]),
        one
    );
    assert_eq!(sets.len(), 3);
}

/// A refusal is rendered in the media type the request's `Accept` asks for, never cached,
/// with its length; the JSON forms carry the reason code.
#[test]
fn refusals_follow_accept() {
    let f = fixture(false, Unknown::Misdirected);
    let l = &f.listener;
    let conn = l.on_handshake(Handshake::new(f.a).sni(Some(sni("a.test"))).alpn(Alpn::H2));
    for (accept, content_type) in [
        ("application/problem+json", "application/problem+json"),
        ("application/json", "application/json"),
        ("text/html", "text/html; charset=utf-8"),
        ("*/*", "text/plain; charset=utf-8"),
    ] {
        let mut parts = h2(Method::GET, "https://c.wild.test/");
        parts
            .headers
            .insert(http::header::ACCEPT, accept.parse().unwrap());
        let Outcome::Respond { response, refusal } = l.on_request(&conn, &parts) else {
            panic!("{accept}: served");
        };
        assert_eq!(refusal.reason, Some(Reason::CertificateDoesNotCover));
        assert_eq!(response.status(), StatusCode::MISDIRECTED_REQUEST);
        let headers = response.headers();
        assert_eq!(
            headers[http::header::CONTENT_TYPE],
            content_type,
            "{accept}"
        );
        assert_eq!(headers[http::header::CACHE_CONTROL], "no-store");
        assert_eq!(
            headers[http::header::CONTENT_LENGTH],
            response.body().len().to_string().as_str()
        );
        let body = std::str::from_utf8(response.body()).unwrap();
        assert!(
            body.contains("certificate-does-not-cover"),
            "{accept}: {body}"
        );
    }
}

/// HTTP/1.1 targets: a malformed one is a 400 with its own code; the absolute form's
/// authority, not `Host`, is the one decided (RFC 9112 §3.2.2).
#[test]
fn http1_targets_are_decided_from_the_absolute_form_else_host() {
    let f = fixture(false, Unknown::Misdirected);
    let l = &f.listener;
    let conn = l.on_handshake(
        Handshake::new(f.a)
            .sni(Some(sni("a.test")))
            .alpn(Alpn::Http11),
    );
    let h1 = |uri: &str, hosts: &[&str]| {
        let mut parts = http::Request::get(uri).body(()).unwrap().into_parts().0;
        for host in hosts {
            parts
                .headers
                .append(http::header::HOST, host.parse().unwrap());
        }
        parts
    };
    let code = |parts: &http::request::Parts| match l.on_request(&conn, parts) {
        Outcome::Serve { vhost, .. } => Err(vhost),
        Outcome::Respond { refusal, .. } => Ok((refusal.status.as_u16(), refusal.reason)),
        other => panic!("{other:?}"),
    };
    let bad = |kind| Ok((400, Some(Reason::BadRequest(kind))));
    use misdirect_authority::TargetErrorKind as K;
    assert_eq!(code(&h1("/", &["a.test", "a.test"])), bad(K::DuplicateHost));
    assert_eq!(code(&h1("/", &[])), bad(K::MissingHost));
    assert_eq!(code(&h1("/", &["a.test:99999"])), bad(K::InvalidHost));
    assert_eq!(code(&h1("/", &["b.test"])), Err(f.b));
    assert_eq!(code(&h1("https://b.test/path", &["c.test"])), Err(f.b));
    assert_eq!(
        code(&h1("https://c.wild.test/", &["b.test"])),
        Ok((421, Some(Reason::CertificateDoesNotCover)))
    );
}

/// What an outcome says, for comparing two ways of reaching it.
fn summary(outcome: &Outcome) -> (u16, Option<VhostId>, Option<Reason>, bool) {
    match outcome {
        Outcome::Serve { vhost, warning } => (
            200,
            Some(*vhost),
            warning.as_ref().and_then(|w| w.reason),
            warning.is_some(),
        ),
        Outcome::Respond { response, refusal } => {
            (response.status().as_u16(), None, refusal.reason, false)
        }
        other => panic!("{other:?}"),
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    /// A connection's memo never changes an answer: every request of a random sequence —
    /// hosts in any case, ports, `Host` fields that agree or not, HTTP/1.1 and HTTP/2,
    /// CONNECT — gets from `on_request_memo` what `on_request` gives it.
    #[test]
    fn the_memo_gives_the_answer_deciding_again_gives(
        warn_only in proptest::bool::ANY,
        unknown in 0..3u8,
        presented in 0..4usize,
        requests in proptest::collection::vec(
            (0..8usize, 0..4usize, 0..3usize, proptest::bool::ANY, 0..3usize),
            1..24,
        ),
    ) {
        let f = fixture(
            warn_only,
            [Unknown::Misdirected, Unknown::NotFound, Unknown::ToA][usize::from(unknown)],
        );
        let l = &f.listener;
        let (vhost, name) = [
            (f.a, "a.test"),
            (f.b, "b.test"),
            (f.wild, "x.wild.test"),
            (f.secure, "secure.test"),
        ][presented];
        let conn = l.on_handshake(Handshake::new(vhost).sni(Some(sni(name))).alpn(Alpn::H2));
        let mut memo = misdirect_coalesce::ServedMemo::default();
        let hosts = [
            "a.test", "A.TEST", "b.test", "secure.test", "x.wild.test", "unknown.test",
            "a.test.", "[::1]",
        ];
        for (host, port, host_field, http2, method) in requests {
            let port = ["", ":443", ":8443", ":0443"][port];
            let method = [Method::GET, Method::POST, Method::CONNECT][method].clone();
            let authority = format!("{}{port}", hosts[host]);
            let uri = match method {
                Method::CONNECT => authority.clone(),
                _ => format!("https://{authority}/path"),
            };
            let mut request = http::Request::builder()
                .method(method)
                .uri(&uri)
                .version(if http2 { Version::HTTP_2 } else { Version::HTTP_11 });
            match host_field {
                1 => request = request.header(http::header::HOST, authority.as_str()),
                2 => request = request.header(http::header::HOST, "b.test"),
                _ => {}
            }
            let Ok(request) = request.body(()) else { continue };
            let (parts, ()) = request.into_parts();
            let want = summary(&l.on_request(&conn, &parts));
            let got = summary(&l.on_request_memo(&conn, &parts, &mut memo));
            proptest::prop_assert_eq!(got, want, "{} {:?}", uri, parts.headers);
        }
    }
}
