//! Policy benches: what a server does per misdirected request.
//!
//! `render` group: a complete 421 response from `misdirect_response::render`, Accept
//! negotiation included.
//! - `421 as problem+json`: `Accept: application/problem+json` (target ≤ 1 µs).
//! - `421 as html (browser Accept)`: a browser's navigation `Accept` with q-values.
//! - `421 as text/plain (no Accept)`: the default.
//! - `serde_json problem+json (anchor)`: what a server writes today without this crate:
//!   `serde_json::to_vec` of the same problem object, headers set by hand, no negotiation.
//!
//! `decide` group: `misdirect_coalesce::decide` on a 10,000-virtual-host table, target
//! extraction from an HTTP/2 request's `http::request::Parts` included (target ≤ 150 ns
//! each). Virtual host `v{i}` serves `v{i}.g{i / 10}.example.test`; the ten of a group share
//! one `*.g{n}.example.test` certificate, and the last of each group requires a client
//! certificate.
//! - `serve_same_vhost`: the request names the connection's own virtual host.
//! - `serve_coalesced`: it names another virtual host the certificate covers.
//! - `misdirected_client_cert`: it names the group's client-certificate virtual host over a
//!   connection without one: 421 `client-cert-required`.
//!
//! `on_request` group: the same three requests through `Listener::on_request`, the path the
//! server and the tower layer take — a served request costs `decide`; a refusal also renders
//! its 421 and gathers the fields of its log line.
//!
//! Run: `cargo bench -p misdirect-benches --bench policy`

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use misdirect_authority::{HostName, RequestTarget, Scheme};
use misdirect_certmatch::Identities;
use misdirect_coalesce::{
    ClientAuth, ConnectionContext, Decision, Listener, Outcome, Reason, TrustAnchorsId,
    VirtualHost, VirtualHosts, decide,
};
use misdirect_response::{RenderOptions, StaticReason};

const REASON: StaticReason = StaticReason::new(
    "client-cert-required",
    "the requested host requires a client certificate that this connection did not present",
);

const BROWSER_ACCEPT: &str =
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";

fn accept(value: &'static str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(header::ACCEPT, HeaderValue::from_static(value));
    headers
}

fn render(c: &mut Criterion) {
    let options = RenderOptions::new();
    let mut group = c.benchmark_group("render");

    for (name, headers) in [
        ("421 as problem+json", accept("application/problem+json")),
        ("421 as html (browser Accept)", accept(BROWSER_ACCEPT)),
        ("421 as text/plain (no Accept)", HeaderMap::new()),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                misdirect_response::render(
                    StatusCode::MISDIRECTED_REQUEST,
                    black_box(&REASON),
                    black_box(&headers),
                    &options,
                )
            })
        });
    }

    group.bench_function("serde_json problem+json (anchor)", |b| {
        b.iter(|| {
            let reason = black_box(&REASON);
            let body = serde_json::to_vec(&serde_json::json!({
                "type": "about:blank",
                "title": "Misdirected Request",
                "status": 421,
                "detail": misdirect_response::RenderReason::description(reason),
                "code": misdirect_response::RenderReason::code(reason),
            }))
            .expect("a JSON value always serialises");
            let mut response = Response::new(Bytes::from(body));
            *response.status_mut() = StatusCode::MISDIRECTED_REQUEST;
            let len = response.body().len();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/problem+json"),
            );
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        })
    });

    group.finish();
}

const VHOSTS: usize = 10_000;

fn decide_group(c: &mut Criterion) {
    let mut table = VirtualHosts::builder(Scheme::Https);
    let mut ids = Vec::with_capacity(VHOSTS);
    for group in 0..VHOSTS / 10 {
        let wildcard = format!("*.g{group}.example.test")
            .parse()
            .expect("valid pattern");
        let cert = std::sync::Arc::new(Identities::from_patterns([wildcard]));
        for i in group * 10..group * 10 + 10 {
            let name = format!("v{i}.g{group}.example.test")
                .parse()
                .expect("valid pattern");
            let mut vhost = VirtualHost::new(format!("v{i}"), cert.clone()).pattern(name);
            if i % 10 == 9 {
                vhost = vhost.client_auth(ClientAuth::Required(TrustAnchorsId::new(1)));
            }
            ids.push(table.add(vhost));
        }
    }
    let vhosts = table.port(443).build().expect("distinct names");
    let sni = HostName::from_sni(b"v4200.g420.example.test").expect("valid SNI");
    let conn = ConnectionContext::new().sni(sni).presented(ids[4200]);

    let mut group = c.benchmark_group("decide");
    for (name, authority, expected) in [
        (
            "serve_same_vhost",
            "v4200.g420.example.test",
            Decision::Serve {
                vhost: ids[4200],
                warning: None,
            },
        ),
        (
            "serve_coalesced",
            "v4201.g420.example.test",
            Decision::Serve {
                vhost: ids[4201],
                warning: None,
            },
        ),
        (
            "misdirected_client_cert",
            "v4209.g420.example.test",
            Decision::misdirected(Reason::ClientCertRequired, Some(ids[4209])),
        ),
    ] {
        let (parts, ()) = http::Request::get(format!("https://{authority}/"))
            .version(http::Version::HTTP_2)
            .body(())
            .expect("valid request")
            .into_parts();
        let run = |parts: &http::request::Parts| match RequestTarget::from_parts(parts) {
            Ok(target) => decide(&vhosts, &conn, &target),
            Err(e) => Decision::bad_request(&e),
        };
        assert_eq!(run(&parts), expected, "{name}");
        group.bench_function(name, |b| b.iter(|| run(black_box(&parts))));
    }
    group.finish();

    // The whole per-request path the server and the tower layer take: the listener core's
    // `on_request`, which also renders the 421 and gathers the log fields of a refusal.
    let listener = Listener::new(vhosts);
    let mut group = c.benchmark_group("on_request");
    for (name, authority, serves) in [
        ("serve_same_vhost", "v4200.g420.example.test", true),
        ("serve_coalesced", "v4201.g420.example.test", true),
        ("misdirected_client_cert", "v4209.g420.example.test", false),
    ] {
        let (parts, ()) = http::Request::get(format!("https://{authority}/"))
            .version(http::Version::HTTP_2)
            .body(())
            .expect("valid request")
            .into_parts();
        let outcome = listener.on_request(&conn, &parts);
        assert_eq!(matches!(outcome, Outcome::Serve { .. }), serves, "{name}");
        group.bench_function(name, |b| {
            b.iter(|| listener.on_request(&conn, black_box(&parts)))
        });
    }
    group.finish();
}

criterion_group!(benches, render, decide_group);
criterion_main!(benches);
