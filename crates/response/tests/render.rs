//! Rendering 421 and 400: RFC 9110 §15.5.20 (421), §15.5.1 (400), RFC 9457 (problem
//! details), RFC 9112 §9.6 (`Connection: close`), RFC 9110 §9.3.2 (HEAD).
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, Version, header};
use misdirect_authority::{RequestTarget, TargetError};
use misdirect_response::{PreparedRefusal, RenderOptions, RenderReason, StaticReason, render};
use serde_json::{Value, json};

const CLIENT_CERT: StaticReason = StaticReason::new(
    "client-cert-required",
    "the requested host requires a client certificate that this connection did not present",
);

fn accept(value: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
    headers
}

fn misdirected(accept_value: Option<&str>, options: RenderOptions) -> Response<Bytes> {
    let headers = accept_value.map(accept).unwrap_or_default();
    render(
        StatusCode::MISDIRECTED_REQUEST,
        &CLIENT_CERT,
        &headers,
        &options,
    )
}

fn header(response: &Response<Bytes>, name: header::HeaderName) -> &str {
    response.headers()[name].to_str().unwrap()
}

fn text(response: &Response<Bytes>) -> &str {
    std::str::from_utf8(response.body()).unwrap()
}

/// Headers every rendered response carries, whatever the type.
fn assert_common_headers(response: &Response<Bytes>) {
    assert_eq!(header(response, header::CACHE_CONTROL), "no-store");
    assert_eq!(header(response, header::VARY), "Accept");
    assert_eq!(
        header(response, header::CONTENT_LENGTH),
        response.body().len().to_string()
    );
}

/// RFC 9457 §3.1: type, title, status, detail; the code as an extension member.
#[test]
fn problem_json() {
    let r = misdirected(Some("application/problem+json"), RenderOptions::new());
    assert_eq!(r.status(), StatusCode::MISDIRECTED_REQUEST);
    assert_eq!(header(&r, header::CONTENT_TYPE), "application/problem+json");
    assert_common_headers(&r);
    let body: Value = serde_json::from_slice(r.body()).unwrap();
    assert_eq!(
        body,
        json!({
            "type": "about:blank",
            "title": "Misdirected Request",
            "status": 421,
            "detail": CLIENT_CERT.description(),
            "code": "client-cert-required",
        })
    );
}

#[test]
fn plain_json() {
    let r = misdirected(Some("application/json"), RenderOptions::new());
    assert_eq!(header(&r, header::CONTENT_TYPE), "application/json");
    assert_common_headers(&r);
    let body: Value = serde_json::from_slice(r.body()).unwrap();
    assert_eq!(
        body,
        json!({
            "error": "Misdirected Request",
            "reason": "client-cert-required",
            "detail": CLIENT_CERT.description(),
        })
    );
}

/// A visitor is told to reload; a fresh connection will be used (RFC 9110 §15.5.20).
#[test]
fn html() {
    let r = misdirected(Some("text/html"), RenderOptions::new());
    assert_eq!(header(&r, header::CONTENT_TYPE), "text/html; charset=utf-8");
    assert_common_headers(&r);
    let body = text(&r);
    assert!(body.starts_with("<!DOCTYPE html>"), "{body}");
    assert!(
        body.contains("<title>421 Misdirected Request</title>"),
        "{body}"
    );
    assert!(body.contains("reload the page"), "{body}");
    assert!(body.contains("fresh connection"), "{body}");
    assert!(
        body.contains("<p>The requested host requires a client certificate that this connection did not present.</p>"),
        "{body}"
    );
    assert!(body.contains("<code>client-cert-required</code>"), "{body}");
    assert!(body.ends_with("</html>\n"), "{body}");
}

#[test]
fn plain_text() {
    let r = misdirected(Some("text/plain"), RenderOptions::new());
    assert_eq!(
        header(&r, header::CONTENT_TYPE),
        "text/plain; charset=utf-8"
    );
    assert_common_headers(&r);
    assert_eq!(
        text(&r),
        "421 Misdirected Request\n\
         The requested host requires a client certificate that this connection did not present.\n\
         Reason: client-cert-required\n\
         Retry the request on a new connection.\n"
    );
}

/// Without Accept, or with `*/*`, plain text; a browser gets HTML.
#[test]
fn negotiation_drives_the_body() {
    const CASES: &[(Option<&str>, &str)] = &[
        (None, "text/plain; charset=utf-8"),
        (Some("*/*"), "text/plain; charset=utf-8"),
        (
            Some("this is not an accept header"),
            "text/plain; charset=utf-8",
        ),
        (
            Some("text/html;q=0.2, application/json;q=0.3"),
            "application/json",
        ),
        (Some("text/html,*/*;q=0.8"), "text/html; charset=utf-8"),
        (Some("application/*"), "application/problem+json"),
    ];
    for &(accept_value, content_type) in CASES {
        let r = misdirected(accept_value, RenderOptions::new());
        assert_eq!(
            header(&r, header::CONTENT_TYPE),
            content_type,
            "{accept_value:?}"
        );
        assert_common_headers(&r);
    }
}

/// RFC 9110 §9.3.2: HEAD gets the GET's header fields, Content-Length included, and no body.
#[test]
fn head_has_same_headers_and_no_body() {
    for accept_value in [
        None,
        Some("application/problem+json"),
        Some("application/json"),
        Some("text/html"),
    ] {
        let get = misdirected(
            accept_value,
            RenderOptions::new().for_request(&Method::GET, Version::HTTP_11),
        );
        let head = misdirected(
            accept_value,
            RenderOptions::new().for_request(&Method::HEAD, Version::HTTP_11),
        );
        assert!(!get.body().is_empty());
        assert!(head.body().is_empty(), "{accept_value:?}");
        assert_eq!(head.headers(), get.headers(), "{accept_value:?}");
        assert_eq!(
            header(&head, header::CONTENT_LENGTH),
            get.body().len().to_string()
        );
        assert_eq!(head.status(), get.status());
    }
    let head = misdirected(None, RenderOptions::new().head(true));
    assert!(head.body().is_empty());
}

/// RFC 9112 §9.6: `Connection: close` after 421 on HTTP/1.x by default, never on HTTP/2+
/// (RFC 9113 §8.2.2), and as configured otherwise.
#[test]
fn connection_close() {
    const CASES: &[(StatusCode, Version, Option<bool>, bool)] = &[
        (
            StatusCode::MISDIRECTED_REQUEST,
            Version::HTTP_11,
            None,
            true,
        ),
        (
            StatusCode::MISDIRECTED_REQUEST,
            Version::HTTP_10,
            None,
            true,
        ),
        (
            StatusCode::MISDIRECTED_REQUEST,
            Version::HTTP_2,
            None,
            false,
        ),
        (
            StatusCode::MISDIRECTED_REQUEST,
            Version::HTTP_3,
            None,
            false,
        ),
        (
            StatusCode::MISDIRECTED_REQUEST,
            Version::HTTP_11,
            Some(false),
            false,
        ),
        (
            StatusCode::MISDIRECTED_REQUEST,
            Version::HTTP_2,
            Some(true),
            false,
        ),
        (StatusCode::BAD_REQUEST, Version::HTTP_11, None, false),
        (StatusCode::BAD_REQUEST, Version::HTTP_11, Some(true), true),
        (StatusCode::BAD_REQUEST, Version::HTTP_2, Some(true), false),
    ];
    for &(status, version, close, expected) in CASES {
        let mut options = RenderOptions::new().version(version);
        if let Some(close) = close {
            options = options.close_connection(close);
        }
        let r = render(status, &CLIENT_CERT, &HeaderMap::new(), &options);
        assert_eq!(
            r.headers()
                .get(header::CONNECTION)
                .map(|v| v.to_str().unwrap()),
            expected.then_some("close"),
            "{status} {version:?} close={close:?}"
        );
        assert_eq!(r.version(), version);
    }
}

/// With `name_reason(false)` no body names the reason, and all reasons look the same.
#[test]
fn detail_off_hides_the_reason() {
    let other = StaticReason::new("no-sni", "the connection did not send a server name");
    for accept_value in [
        "application/problem+json",
        "application/json",
        "text/html",
        "text/plain",
    ] {
        let options = RenderOptions::new().name_reason(false);
        let a = misdirected(Some(accept_value), options);
        let b = render(
            StatusCode::MISDIRECTED_REQUEST,
            &other,
            &accept(accept_value),
            &options,
        );
        let body = text(&a);
        assert!(!body.contains("client-cert"), "{accept_value}: {body}");
        assert!(
            !body.contains("client certificate"),
            "{accept_value}: {body}"
        );
        assert!(
            body.contains("this connection cannot serve the requested host")
                || body.contains("This connection cannot serve the requested host"),
            "{accept_value}: {body}"
        );
        assert_eq!(a.body(), b.body(), "{accept_value}");
        assert_common_headers(&a);

        let named = misdirected(Some(accept_value), RenderOptions::new());
        assert!(
            text(&named).contains("client-cert-required"),
            "{accept_value}"
        );
    }
    let r = misdirected(
        Some("application/problem+json"),
        RenderOptions::new().name_reason(false),
    );
    let body: Value = serde_json::from_slice(r.body()).unwrap();
    assert_eq!(body.get("code"), None);
    assert_eq!(body["status"], 421);
}

/// Quotes, backslashes and control characters survive a JSON round trip (RFC 8259 §7).
#[test]
fn json_escaping() {
    let nasty = StaticReason::new(
        "code\"with\\quotes\u{1}",
        "a \"quoted\" host\\name\nsecond line\ttab \u{0}\u{1f}\u{7f} é 😀 </script>",
    );
    for accept_value in ["application/problem+json", "application/json"] {
        let r = render(
            StatusCode::MISDIRECTED_REQUEST,
            &nasty,
            &accept(accept_value),
            &RenderOptions::new(),
        );
        let body: Value = serde_json::from_slice(r.body())
            .unwrap_or_else(|e| panic!("{accept_value}: {e}: {}", text(&r)));
        assert_eq!(body["detail"], nasty.description(), "{accept_value}");
        let code_field = if accept_value == "application/json" {
            "reason"
        } else {
            "code"
        };
        assert_eq!(body[code_field], nasty.code(), "{accept_value}");
        assert!(
            !r.body().contains(&0u8),
            "raw control byte in {accept_value}"
        );
    }
}

/// Markup in a reason is escaped in HTML and cannot forge lines in plain text.
#[test]
fn html_and_plain_escaping() {
    let nasty = StaticReason::new(
        "x<y>",
        "<script>alert('x')</script> & \"more\"\r\nForged: line",
    );
    let r = render(
        StatusCode::MISDIRECTED_REQUEST,
        &nasty,
        &accept("text/html"),
        &RenderOptions::new(),
    );
    let body = text(&r);
    assert!(!body.contains("<script>"), "{body}");
    assert!(
        body.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;more&quot;"),
        "{body}"
    );
    assert!(body.contains("<code>x&lt;y&gt;</code>"), "{body}");

    let r = render(
        StatusCode::MISDIRECTED_REQUEST,
        &nasty,
        &HeaderMap::new(),
        &RenderOptions::new(),
    );
    assert!(!text(&r).contains("\nForged"), "{}", text(&r));
    assert_eq!(text(&r).lines().count(), 4);
}

/// 400 from a request-target error, through a local wrapper implementing the trait.
#[test]
fn bad_request_from_target_error() {
    struct Target(TargetError);
    impl RenderReason for Target {
        fn code(&self) -> &str {
            self.0.kind().code()
        }
        fn description(&self) -> &str {
            self.0.kind().description()
        }
    }

    let err = RequestTarget::from_h1(None, std::iter::empty()).unwrap_err();
    let r = render(
        StatusCode::BAD_REQUEST,
        &Target(err),
        &accept("application/problem+json"),
        &RenderOptions::new(),
    );
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.headers().get(header::CONNECTION).is_none());
    let body: Value = serde_json::from_slice(r.body()).unwrap();
    assert_eq!(
        body,
        json!({
            "type": "about:blank",
            "title": "Bad Request",
            "status": 400,
            "detail": "request has no Host header",
            "code": "missing-host",
        })
    );

    let r = render(
        StatusCode::BAD_REQUEST,
        &Target(err),
        &accept("text/html"),
        &RenderOptions::new(),
    );
    assert!(text(&r).contains("check the address"), "{}", text(&r));
    assert!(!text(&r).contains("reload"), "{}", text(&r));
}

/// Other statuses render generically rather than failing (e.g. 404 for an unknown host).
#[test]
fn other_status() {
    let r = render(
        StatusCode::NOT_FOUND,
        &StaticReason::new("unknown-host", "no virtual host serves the requested host"),
        &accept("application/json"),
        &RenderOptions::new(),
    );
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.headers().get(header::CONNECTION).is_none());
    let body: Value = serde_json::from_slice(r.body()).unwrap();
    assert_eq!(body["error"], "Not Found");
    assert_eq!(body["reason"], "unknown-host");
}

/// A reason behind `&dyn` or `Box<dyn>` renders the same as the value.
#[test]
fn trait_objects() {
    let boxed: Box<dyn RenderReason> = Box::new(CLIENT_CERT);
    let by_dyn: &dyn RenderReason = &CLIENT_CERT;
    let headers = accept("application/json");
    let options = RenderOptions::new();
    let status = StatusCode::MISDIRECTED_REQUEST;
    let direct = render(status, &CLIENT_CERT, &headers, &options);
    assert_eq!(
        render(status, &boxed, &headers, &options).body(),
        direct.body()
    );
    assert_eq!(
        render(status, by_dyn, &headers, &options).body(),
        direct.body()
    );
}

/// A prepared refusal answers exactly what `render` would, for every status, media type,
/// method, version and naming option.
#[test]
fn prepared_refusals_answer_what_render_would() {
    let reasons = [
        StaticReason::new(
            "client-cert-required",
            "the host requires a client certificate",
        ),
        StaticReason::new(
            "odd<&>\"chars\u{7}",
            "a description with <html> & \"quotes\"\n",
        ),
    ];
    let accepts = [
        None,
        Some("*/*"),
        Some("application/problem+json"),
        Some("application/json"),
        Some("text/html,application/xhtml+xml;q=0.9"),
        Some("text/plain;q=0.1, text/html"),
        Some("image/png"),
    ];
    for status in [
        http::StatusCode::MISDIRECTED_REQUEST,
        http::StatusCode::BAD_REQUEST,
        http::StatusCode::NOT_FOUND,
    ] {
        for reason in &reasons {
            for name in [true, false] {
                let listener = RenderOptions::new().name_reason(name);
                let prepared = PreparedRefusal::new(status, reason, &listener);
                assert_eq!(prepared.status(), status);
                for accept in accepts {
                    let mut headers = http::HeaderMap::new();
                    if let Some(accept) = accept {
                        headers.insert(http::header::ACCEPT, accept.parse().unwrap());
                    }
                    for method in [http::Method::GET, http::Method::HEAD] {
                        for version in [
                            http::Version::HTTP_10,
                            http::Version::HTTP_11,
                            http::Version::HTTP_2,
                        ] {
                            let options = listener.for_request(&method, version);
                            let want = render(status, reason, &headers, &options);
                            let got = prepared.respond(&headers, &options);
                            let case =
                                format!("{status} {accept:?} {method} {version:?} name={name}");
                            assert_eq!(got.status(), want.status(), "{case}");
                            assert_eq!(got.version(), want.version(), "{case}");
                            assert_eq!(got.headers(), want.headers(), "{case}");
                            assert_eq!(got.body(), want.body(), "{case}");
                        }
                    }
                }
            }
        }
    }
}
