//! `Accept` negotiation, RFC 9110 §12.5.1.
#![allow(clippy::unwrap_used)]

use http::{HeaderMap, HeaderValue, header::ACCEPT};
use misdirect_response::MediaType::{self, Html, Json, ProblemJson, TextPlain};

/// (Accept field value, expected choice). Each row names the rule it checks.
const CASES: &[(&str, MediaType, &str)] = &[
    // Each media type on its own (§12.5.1).
    ("text/plain", TextPlain, "exact text/plain"),
    (
        "application/problem+json",
        ProblemJson,
        "exact problem+json",
    ),
    ("application/json", Json, "exact json"),
    ("text/html", Html, "exact html"),
    // Media types compare case-insensitively (§8.3.1).
    ("Text/HTML", Html, "case-insensitive type"),
    (
        "APPLICATION/Problem+JSON",
        ProblemJson,
        "case-insensitive subtype",
    ),
    // Weights decide (§12.4.2).
    ("text/html;q=0.5, application/json", Json, "higher q wins"),
    (
        "application/json;q=0.4, text/html;q=0.9",
        Html,
        "higher q wins, later in list",
    ),
    (
        "application/json;q=0.901, text/html;q=0.9",
        Json,
        "three decimals count",
    ),
    (
        "text/html; q=0.1 , application/problem+json ; q=0.2",
        ProblemJson,
        "OWS around ;",
    ),
    (
        "text/html;Q=0.1, application/json;q=0.2",
        Json,
        "parameter name Q is case-insensitive",
    ),
    // Equal weights: the more specific range, then list order, then our preference.
    (
        "application/json, application/problem+json",
        Json,
        "tie: first listed",
    ),
    (
        "application/problem+json, application/json",
        ProblemJson,
        "tie: first listed",
    ),
    (
        "application/*",
        ProblemJson,
        "tie within one range: our preference",
    ),
    ("text/*", TextPlain, "text/*: our preference"),
    ("*/*", TextPlain, "*/*: our preference is plain text"),
    ("text/html, */*", Html, "exact beats */* at equal q"),
    (
        "*/*, text/html",
        Html,
        "exact beats */* at equal q, whatever the order",
    ),
    ("text/*, text/html", Html, "exact beats text/* at equal q"),
    (
        "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
        Html,
        "browser navigation",
    ),
    (
        "application/json, text/javascript, */*; q=0.01",
        Json,
        "jQuery-style XHR",
    ),
    // q=0 excludes a type (§12.4.2), even when a less specific range would accept it.
    (
        "text/plain;q=0, */*",
        ProblemJson,
        "q=0 excludes plain; */* takes the next",
    ),
    (
        "*/*;q=0.5, text/plain;q=0",
        ProblemJson,
        "q=0 on the exact type wins over */*",
    ),
    (
        "text/*;q=0, application/json;q=0.1",
        Json,
        "q=0 on text/* excludes html and plain",
    ),
    (
        "text/html;q=0.1, text/*;q=0.5",
        TextPlain,
        "most specific range decides html's q",
    ),
    (
        "text/*;q=0.9, */*;q=1",
        ProblemJson,
        "text/* caps text types below */*",
    ),
    (
        "application/*;q=0.2, application/json;q=0.3",
        Json,
        "exact beats type/* on q",
    ),
    // Nothing acceptable: disregard Accept rather than 406 (§12.5.1).
    ("image/png", TextPlain, "nothing offered is acceptable"),
    ("*/*;q=0", TextPlain, "everything refused"),
    (
        "text/plain;q=0",
        TextPlain,
        "only plain refused, nothing else named",
    ),
    (
        "text/html;q=0",
        TextPlain,
        "a refused type is never chosen, even alone",
    ),
    (
        "application/json;q=0, image/png",
        TextPlain,
        "refused json, unoffered png: fallback",
    ),
    // Parameters other than q do not affect matching; accept-ext after q is ignored.
    ("text/html;level=1", Html, "media-type parameter"),
    (
        "text/plain;charset=\"utf-8\";q=0.2, application/json;q=0.1",
        TextPlain,
        "quoted value",
    ),
    (
        "application/json;q=0.5;ext=\"a,b\", text/html;q=0.4",
        Json,
        "comma in quoted ext",
    ),
    (
        "application/json;;q=0.5 ; ;, text/html;q=0.4",
        Json,
        "empty parameters",
    ),
    // Empty list elements are allowed (§5.6.1).
    (",, text/html ,,", Html, "empty list elements"),
    ("", TextPlain, "empty field value"),
    // Malformed ranges are skipped, the rest still counts.
    ("garbage", TextPlain, "no slash"),
    ("text/", TextPlain, "empty subtype"),
    ("/html", TextPlain, "empty type"),
    ("*/html", TextPlain, "*/subtype is not a media range"),
    ("text/html;q=abc", TextPlain, "bad qvalue"),
    ("text/html;q=1.5", TextPlain, "qvalue above 1"),
    ("text/html;q=0.1234", TextPlain, "qvalue with four decimals"),
    ("text/html;q=\"0.5\"", TextPlain, "quoted qvalue"),
    ("text/html;q", TextPlain, "parameter without value"),
    ("text/html junk", TextPlain, "junk after range"),
    (
        "text/html;x=\"unterminated, application/json",
        TextPlain,
        "unterminated quote",
    ),
    (
        "bad/ran ge, application/json;q=0.3",
        Json,
        "malformed element skipped",
    ),
    (
        "text/html;q=abc, application/json;q=0.3",
        Json,
        "bad q skips only its element",
    ),
    ("text/html;q=0.1;q=0.9", Html, "second q is accept-ext"),
    (
        "text/html;q=0.1;q=0.9, text/plain;q=0.2",
        TextPlain,
        "first q counts",
    ),
    ("té/html, application/json", Json, "non-ASCII type skipped"),
    (
        "text\u{0}/html, text/html;q=0.1",
        Html,
        "NUL inside a range",
    ),
];

#[test]
fn accept_table() {
    for &(accept, expected, rule) in CASES {
        let got = MediaType::from_accept([accept.as_bytes()]);
        assert_eq!(got, expected, "Accept: {accept:?} ({rule})");
    }
}

#[test]
fn missing_accept_is_plain_text() {
    assert_eq!(MediaType::negotiate(&HeaderMap::new()), TextPlain);
    assert_eq!(MediaType::from_accept(std::iter::empty()), TextPlain);
}

/// Several Accept field lines form one list (RFC 9110 §5.3), and list order spans lines.
#[test]
fn accept_field_lines_combine() {
    let mut headers = HeaderMap::new();
    headers.append(ACCEPT, HeaderValue::from_static("text/html;q=0.5"));
    headers.append(ACCEPT, HeaderValue::from_static("application/json;q=0.7"));
    assert_eq!(MediaType::negotiate(&headers), Json);

    let mut headers = HeaderMap::new();
    headers.append(ACCEPT, HeaderValue::from_static("application/json"));
    headers.append(ACCEPT, HeaderValue::from_static("application/problem+json"));
    assert_eq!(MediaType::negotiate(&headers), Json, "tie: first line wins");

    let mut headers = HeaderMap::new();
    headers.append(ACCEPT, HeaderValue::from_static("text/html;q=0"));
    headers.append(ACCEPT, HeaderValue::from_static("text/*"));
    assert_eq!(
        MediaType::negotiate(&headers),
        TextPlain,
        "q=0 on one line holds"
    );
}

/// Field values with obs-text bytes still negotiate (HeaderValue allows them).
#[test]
fn obs_text_in_header_value() {
    let mut headers = HeaderMap::new();
    headers.insert(
        ACCEPT,
        HeaderValue::from_bytes(b"x/\xff\xfe, text/html").unwrap(),
    );
    assert_eq!(MediaType::negotiate(&headers), Html);
}

/// Huge or hostile values are bounded: only the first 8 KiB and 64 ranges are examined.
#[test]
fn limits() {
    let mut long = "a/b,".repeat(100);
    long.push_str("application/json");
    assert_eq!(MediaType::from_accept([long.as_bytes()]), TextPlain);

    let mut short = "a/b,".repeat(60);
    short.push_str("application/json");
    assert_eq!(MediaType::from_accept([short.as_bytes()]), Json);

    let mut padded = " ".repeat(9000);
    padded.push_str("text/html");
    assert_eq!(MediaType::from_accept([padded.as_bytes()]), TextPlain);
}

#[test]
fn content_types() {
    const CASES: &[(MediaType, &str)] = &[
        (TextPlain, "text/plain; charset=utf-8"),
        (ProblemJson, "application/problem+json"),
        (Json, "application/json"),
        (Html, "text/html; charset=utf-8"),
    ];
    for &(media, expected) in CASES {
        assert_eq!(media.content_type(), expected);
        // Each offered type is chosen when asked for by its own content type.
        assert_eq!(MediaType::from_accept([expected.as_bytes()]), media);
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Arbitrary bytes never panic and always produce an answer.
        #[test]
        fn never_panics(lines in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..4)) {
            let _ = MediaType::from_accept(lines.iter().map(Vec::as_slice));
        }

        /// Appending a range for something we do not offer never changes the choice.
        #[test]
        fn foreign_ranges_are_neutral(q in 0u16..=1000, base in prop::sample::select(CASES.iter().map(|c| c.0).collect::<Vec<_>>())) {
            let extended = format!("{base}, image/png;q={}.{:03}", q / 1000, q % 1000);
            prop_assert_eq!(
                MediaType::from_accept([extended.as_bytes()]),
                MediaType::from_accept([base.as_bytes()])
            );
        }
    }
}
