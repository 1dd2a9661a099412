#![no_main]
use http::{HeaderMap, HeaderValue, StatusCode, header};
use libfuzzer_sys::fuzz_target;
use misdirect_response::{MediaType, RenderOptions, StaticReason, render};

const REASON: StaticReason = StaticReason::new("code", "description");

// Negotiation never panics; a rendered 421 carries the negotiated type and its true length.
fuzz_target!(|data: &[u8]| {
    let _ = MediaType::from_accept(data.split(|&b| b == b'\n'));
    let mut headers = HeaderMap::new();
    for v in data
        .split(|&b| b == b'\n')
        .filter_map(|l| HeaderValue::from_bytes(l).ok())
    {
        headers.append(header::ACCEPT, v);
    }
    let r = render(
        StatusCode::MISDIRECTED_REQUEST,
        &REASON,
        &headers,
        &RenderOptions::new(),
    );
    let media = MediaType::negotiate(&headers);
    assert_eq!(r.headers()[header::CONTENT_TYPE], media.content_type());
    assert_eq!(
        r.headers()[header::CONTENT_LENGTH],
        r.body().len().to_string().as_str()
    );
});
