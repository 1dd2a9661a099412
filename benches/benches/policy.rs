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
//! Run: `cargo bench -p misdirect-benches --bench policy`

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
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

criterion_group!(benches, render);
criterion_main!(benches);
