//! `MisdirectLayer` in front of a tower service: what reaches the inner service, what is
//! answered 421/400 in its place, and what is logged (`docs/design.md`, "Server decision"
//! and "Responses"; RFC 9110 §15.5.20).
#![cfg(feature = "tower")]
#![allow(clippy::unwrap_used)]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once};

use bytes::Bytes;
use http::{Request, Response, StatusCode, Version, header};
use misdirect_authority::{HostName, Scheme};
use misdirect_certmatch::Identities;
use misdirect_coalesce::{
    Alpn, ClientAuth, ConnectionContext, Listener, MisdirectLayer, Reason, ServedBy, TlsVersion,
    TrustAnchorsId, VhostId, VirtualHost, VirtualHosts,
};
use tower::{Layer, ServiceExt, service_fn};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};

const STAFF: TrustAnchorsId = TrustAnchorsId::new(7);

/// Three virtual hosts behind one shared certificate, as browsers coalesce them: `www`,
/// `api` (TLS 1.3 only) and `admin` (client certificates from the staff anchors).
struct Site {
    vhosts: Arc<Listener>,
    www: VhostId,
    api: VhostId,
}

fn site(warn_only: bool) -> Site {
    let cert = Arc::new(Identities::from_patterns([
        "www.example.test".parse().unwrap(),
        "api.example.test".parse().unwrap(),
        "admin.example.test".parse().unwrap(),
    ]));
    let mut table = VirtualHosts::builder(Scheme::Https);
    let www = table
        .add(VirtualHost::new("www", cert.clone()).pattern("www.example.test".parse().unwrap()));
    let api = table.add(
        VirtualHost::new("api", cert.clone())
            .pattern("api.example.test".parse().unwrap())
            .min_tls(TlsVersion::Tls13),
    );
    table.add(
        VirtualHost::new("admin", cert)
            .pattern("admin.example.test".parse().unwrap())
            .client_auth(ClientAuth::Required(STAFF)),
    );
    let vhosts = Arc::new(Listener::new(
        table.port(443).warn_only(warn_only).build().unwrap(),
    ));
    Site { vhosts, www, api }
}

/// A connection a browser opened for `www.example.test`, without a client certificate.
fn www_connection(site: &Site, tls: TlsVersion) -> ConnectionContext {
    ConnectionContext::new()
        .sni(HostName::from_sni(b"www.example.test").unwrap())
        .presented(site.www)
        .tls_version(tls)
        .alpn(Alpn::H2)
}

/// What the inner service saw: how often it was called, and each request's `ServedBy`.
#[derive(Clone, Default)]
struct Inner {
    calls: Arc<AtomicUsize>,
}

impl Inner {
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

/// Sends `request` through `MisdirectLayer(site)` around an inner service that answers 200
/// with the request's `ServedBy` copied into the response's extensions.
fn call(site: &Site, inner: &Inner, request: Request<()>) -> Response<Bytes> {
    install_capture();
    let calls = inner.calls.clone();
    let service =
        MisdirectLayer::new(site.vhosts.clone()).layer(service_fn(move |req: Request<()>| {
            calls.fetch_add(1, Ordering::SeqCst);
            let served = req.extensions().get::<ServedBy>().copied();
            async move {
                let mut response = Response::new(Bytes::from_static(b"inner"));
                response.extensions_mut().insert(served);
                Ok::<_, Infallible>(response)
            }
        }));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(service.oneshot(request)).unwrap()
}

fn h1(host: &str, conn: Option<ConnectionContext>) -> http::request::Builder {
    let mut builder = Request::get("/").header(header::HOST, host);
    if let Some(conn) = conn {
        builder = builder.extension(conn);
    }
    builder
}

fn h2(authority: &str, conn: ConnectionContext) -> http::request::Builder {
    Request::get(format!("https://{authority}/"))
        .version(Version::HTTP_2)
        .extension(conn)
}

fn served_by(response: &Response<Bytes>) -> Option<ServedBy> {
    response
        .extensions()
        .get::<Option<ServedBy>>()
        .copied()
        .flatten()
}

fn body(response: &Response<Bytes>) -> &str {
    std::str::from_utf8(response.body()).unwrap()
}

#[test]
fn served_request_reaches_inner_service_with_served_by() {
    // Rule (a)–(d) all hold for a coalesced request to `api` over TLS 1.3: served.
    let site = site(false);
    let inner = Inner::default();
    for request in [
        h2("api.example.test", www_connection(&site, TlsVersion::Tls13)),
        h1(
            "api.example.test",
            Some(www_connection(&site, TlsVersion::Tls13)),
        ),
    ] {
        let response = call(&site, &inner, request.body(()).unwrap());
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body(&response), "inner");
        let served = served_by(&response).expect("the inner service sees ServedBy");
        assert_eq!(served.vhost(), site.api);
        assert_eq!(served.warning(), None);
    }
    assert_eq!(inner.calls(), 2);

    // The connection's own virtual host.
    let request = h1(
        "WWW.example.test.",
        Some(www_connection(&site, TlsVersion::Tls12)),
    );
    let response = call(&site, &inner, request.body(()).unwrap());
    assert_eq!(served_by(&response).map(|s| s.vhost()), Some(site.www));
    assert_eq!(inner.calls(), 3);
}

#[test]
fn coalesced_request_to_client_cert_vhost_gets_421_problem_json() {
    // Rule (d): `admin` requires a client certificate this connection did not present.
    let site = site(false);
    let inner = Inner::default();
    let request = h1(
        "admin.example.test",
        Some(www_connection(&site, TlsVersion::Tls13)),
    )
    .header(header::ACCEPT, "application/problem+json")
    .body(())
    .unwrap();
    let response = call(&site, &inner, request);
    assert_eq!(response.status(), StatusCode::MISDIRECTED_REQUEST);
    assert_eq!(response.version(), Version::HTTP_11);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
    // RFC 9112 §9.6: an HTTP/1.1 connection is asked to close after a 421.
    assert_eq!(response.headers()[header::CONNECTION], "close");
    let text = body(&response);
    assert!(text.contains("\"status\":421"), "{text}");
    assert!(text.contains("client-cert-required"), "{text}");
    assert!(
        !text.contains("www"),
        "a refusal never names other virtual hosts: {text}"
    );
    assert_eq!(inner.calls(), 0);
}

#[test]
fn coalesced_request_to_client_cert_vhost_over_h2_has_no_connection_header() {
    // RFC 9113 §8.2.2: connection-specific fields are malformed in HTTP/2.
    let site = site(false);
    let inner = Inner::default();
    let request = h2(
        "admin.example.test",
        www_connection(&site, TlsVersion::Tls13),
    )
    .body(())
    .unwrap();
    let response = call(&site, &inner, request);
    assert_eq!(response.status(), StatusCode::MISDIRECTED_REQUEST);
    assert_eq!(response.version(), Version::HTTP_2);
    assert!(response.headers().get(header::CONNECTION).is_none());
    assert!(body(&response).contains("client-cert-required"));
    assert_eq!(inner.calls(), 0);
}

#[test]
fn client_cert_from_own_anchors_is_served() {
    // The same request over a connection whose client certificate the staff anchors
    // verified reaches `admin`.
    let site = site(false);
    let inner = Inner::default();
    let conn = www_connection(&site, TlsVersion::Tls13).client_cert(
        misdirect_coalesce::ClientCert::Verified(
            misdirect_coalesce::VerifiedClientCert::assertion(STAFF),
        ),
    );
    let response = call(
        &site,
        &inner,
        h2("admin.example.test", conn).body(()).unwrap(),
    );
    assert_eq!(response.status(), StatusCode::OK);
    assert!(served_by(&response).is_some());
    assert_eq!(inner.calls(), 1);
}

#[test]
fn two_host_headers_get_400() {
    // RFC 9112 §3.2: more than one Host field line is a 400.
    let site = site(false);
    let inner = Inner::default();
    let request = h1(
        "www.example.test",
        Some(www_connection(&site, TlsVersion::Tls13)),
    )
    .header(header::HOST, "www.example.test")
    .body(())
    .unwrap();
    let response = call(&site, &inner, request);
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(
        body(&response).contains("duplicate-host"),
        "{}",
        body(&response)
    );
    // Only 421 asks the connection to close by default.
    assert!(response.headers().get(header::CONNECTION).is_none());
    assert_eq!(inner.calls(), 0);
}

#[test]
fn request_without_connection_context_fails_closed() {
    // No context means no certificate known to cover the host: rule (c) refuses, even for
    // a host every virtual host's certificate covers.
    let site = site(false);
    let inner = Inner::default();
    let response = call(
        &site,
        &inner,
        h1("www.example.test", None).body(()).unwrap(),
    );
    assert_eq!(response.status(), StatusCode::MISDIRECTED_REQUEST);
    assert!(body(&response).contains(Reason::CertificateDoesNotCover.code()));
    assert_eq!(inner.calls(), 0);
}

#[test]
fn warn_only_serves_and_marks_the_warning() {
    // `api` wants TLS 1.3; the connection has 1.2. warn_only serves it with the warning.
    let site = site(true);
    let inner = Inner::default();
    let request = h2("api.example.test", www_connection(&site, TlsVersion::Tls12));
    let response = call(&site, &inner, request.body(()).unwrap());
    assert_eq!(response.status(), StatusCode::OK);
    let served = served_by(&response).expect("served under warn_only");
    assert_eq!(served.vhost(), site.api);
    assert_eq!(served.warning(), Some(Reason::TlsVersionBelowMinimum));
    assert_eq!(inner.calls(), 1);

    // Without warn_only the same request is a 421.
    let strict = self::site(false);
    let request = h2(
        "api.example.test",
        www_connection(&strict, TlsVersion::Tls12),
    );
    let response = call(&strict, &inner, request.body(()).unwrap());
    assert_eq!(response.status(), StatusCode::MISDIRECTED_REQUEST);
    assert!(body(&response).contains(Reason::TlsVersionBelowMinimum.code()));
    assert_eq!(inner.calls(), 1);
}

#[test]
fn warn_only_never_relaxes_the_client_cert_rule() {
    let site = site(true);
    let inner = Inner::default();
    let request = h2(
        "admin.example.test",
        www_connection(&site, TlsVersion::Tls13),
    );
    let response = call(&site, &inner, request.body(()).unwrap());
    assert_eq!(response.status(), StatusCode::MISDIRECTED_REQUEST);
    assert_eq!(inner.calls(), 0);
}

#[test]
fn refusals_are_logged_at_warn_with_reason_sni_authority_and_vhosts() {
    let site = site(false);
    let inner = Inner::default();
    let ((), events) = capture(|| {
        let ok = h2("api.example.test", www_connection(&site, TlsVersion::Tls13));
        assert_eq!(
            call(&site, &inner, ok.body(()).unwrap()).status(),
            StatusCode::OK
        );
        let admin = h2(
            "admin.example.test",
            www_connection(&site, TlsVersion::Tls13),
        );
        let response = call(&site, &inner, admin.body(()).unwrap());
        assert_eq!(response.status(), StatusCode::MISDIRECTED_REQUEST);
    });

    assert_eq!(
        events.len(),
        1,
        "one event per refusal, none for a serve: {events:?}"
    );
    let (level, fields) = &events[0];
    assert_eq!(*level, Level::WARN);
    let field = |name: &str| fields.get(name).map(String::as_str);
    assert_eq!(field("reason"), Some("client-cert-required"));
    assert_eq!(field("sni"), Some("www.example.test"));
    assert_eq!(field("authority"), Some("admin.example.test"));
    assert_eq!(field("presented_vhost"), Some("www"));
    assert_eq!(field("target_vhost"), Some("admin"));
    assert_eq!(field("served"), Some("false"));
}

#[test]
fn warn_only_serves_are_logged_as_served() {
    let site = site(true);
    let inner = Inner::default();
    let ((), events) = capture(|| {
        let request = h1(
            "api.example.test:443",
            Some(www_connection(&site, TlsVersion::Tls12)),
        );
        assert_eq!(
            call(&site, &inner, request.body(()).unwrap()).status(),
            StatusCode::OK
        );
    });

    assert_eq!(events.len(), 1, "{events:?}");
    let fields = &events[0].1;
    assert_eq!(fields["reason"], "tls-version-below-minimum");
    assert_eq!(fields["served"], "true");
    assert_eq!(fields["authority"], "api.example.test:443");
    assert_eq!(fields["target_vhost"], "api");
}

type Captured = (Level, BTreeMap<String, String>);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

/// The process's one subscriber, installed before any test emits an event: it hands each
/// event to the thread that emitted it, where `capture` may be collecting. Tests run in
/// parallel, and tracing caches each callsite's interest when it is first hit; with scoped
/// subscribers a first hit on a thread without one could cache "never" for every thread.
/// With this global subscriber every callsite is always of interest.
struct PerThread;

thread_local! {
    static CAPTURED: RefCell<Option<Vec<Captured>>> = const { RefCell::new(None) };
}

fn install_capture() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| tracing::subscriber::set_global_default(PerThread).unwrap());
}

/// Runs `f` and returns what it returned and the events this thread emitted meanwhile, each
/// with its level and fields (values as `Display` for strings, else `Debug`).
fn capture<R>(f: impl FnOnce() -> R) -> (R, Vec<Captured>) {
    install_capture();
    CAPTURED.with(|captured| *captured.borrow_mut() = Some(Vec::new()));
    let result = f();
    let events = CAPTURED.with(|captured| captured.borrow_mut().take().unwrap_or_default());
    (result, events)
}

impl Subscriber for PerThread {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        Interest::always()
    }

    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        CAPTURED.with(|captured| {
            if let Some(events) = captured.borrow_mut().as_mut() {
                let mut fields = BTreeMap::new();
                event.record(&mut Fields(&mut fields));
                events.push((*event.metadata().level(), fields));
            }
        });
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

#[test]
fn port_not_served_body_names_the_requested_and_the_served_ports() {
    // Rule (a): the table serves port 443 only; a request naming 8443 gets a 421 whose
    // detail says both, and never another virtual host.
    let site = site(false);
    let inner = Inner::default();
    let request = h1(
        "api.example.test:8443",
        Some(www_connection(&site, TlsVersion::Tls13)),
    )
    .header(header::ACCEPT, "application/problem+json")
    .body(())
    .unwrap();
    let response = call(&site, &inner, request);
    assert_eq!(response.status(), StatusCode::MISDIRECTED_REQUEST);
    let text = body(&response);
    assert!(text.contains("\"code\":\"port-not-served\""), "{text}");
    assert!(
        text.contains(
            "\"detail\":\"this server does not serve the requested port: the request named \
             port 8443; this listener serves port 443\""
        ),
        "{text}"
    );
    assert!(!text.contains("www") && !text.contains("admin"), "{text}");

    // Plain text says the same as a sentence.
    let request = h2(
        "api.example.test:8443",
        www_connection(&site, TlsVersion::Tls13),
    )
    .body(())
    .unwrap();
    let response = call(&site, &inner, request);
    assert_eq!(response.status(), StatusCode::MISDIRECTED_REQUEST);
    assert!(
        body(&response).contains(
            "This server does not serve the requested port: the request named port 8443; \
             this listener serves port 443.\n"
        ),
        "{}",
        body(&response)
    );
    assert_eq!(inner.calls(), 0);
}

#[test]
fn other_refusals_carry_no_port_detail() {
    let site = site(false);
    let inner = Inner::default();
    let request = h1(
        "admin.example.test",
        Some(www_connection(&site, TlsVersion::Tls13)),
    )
    .body(())
    .unwrap();
    let response = call(&site, &inner, request);
    assert_eq!(response.status(), StatusCode::MISDIRECTED_REQUEST);
    assert!(!body(&response).contains("port"), "{}", body(&response));
}
