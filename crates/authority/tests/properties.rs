//! Property tests: round trips, idempotent normalisation, and one target rule for all
//! request shapes.

use misdirect_authority::{Authority, RequestTarget};
use proptest::prelude::*;

/// A label of host-name bytes in mixed case.
fn label() -> impl Strategy<Value = String> {
    "[a-zA-Z_-][a-zA-Z0-9_-]{0,12}"
}

/// Authorities in the shapes servers receive: names (maybe with a trailing dot), IPv4,
/// IPv6, each with an optional port that may carry leading zeros.
fn authority_text() -> impl Strategy<Value = String> {
    let name = (prop::collection::vec(label(), 1..5), any::<bool>())
        .prop_map(|(labels, dot)| labels.join(".") + if dot { "." } else { "" });
    let v4 = any::<[u8; 4]>().prop_map(|o| std::net::Ipv4Addr::from(o).to_string());
    let v6 = any::<[u8; 16]>().prop_map(|o| format!("[{}]", std::net::Ipv6Addr::from(o)));
    let port = prop_oneof![
        Just(String::new()),
        Just(":".to_owned()),
        (any::<u16>(), 0usize..3).prop_map(|(p, zeros)| format!(":{}{p}", "0".repeat(zeros))),
    ];
    (prop_oneof![4 => name, 1 => v4, 1 => v6], port).prop_map(|(h, p)| h + &p)
}

/// Bytes drawn mostly from the characters that matter to an authority parser.
fn authority_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            8 => prop::sample::select(b"abcXYZ019-_.:[]@%!vV".to_vec()),
            1 => any::<u8>(),
        ],
        0..24,
    )
}

proptest! {
    #[test]
    fn display_round_trips(text in authority_text()) {
        let a = Authority::parse(text.as_bytes()).expect("generated authorities are valid");
        let shown = a.to_string();
        prop_assert_eq!(Authority::parse(shown.as_bytes()), Ok(a));
    }

    #[test]
    fn normalisation_is_idempotent(text in authority_text()) {
        let once = Authority::parse(text.as_bytes()).expect("valid").to_string();
        let twice = Authority::parse(once.as_bytes()).expect("valid").to_string();
        prop_assert_eq!(&once, &twice);
        prop_assert_eq!(once.to_ascii_lowercase(), once.clone());
        let parsed = Authority::parse(once.as_bytes()).expect("valid");
        if let Some(name) = parsed.host().as_name() {
            prop_assert!(!name.as_str().ends_with('.'));
        }
    }

    #[test]
    fn any_bytes_never_panic_and_round_trip(bytes in authority_bytes()) {
        if let Ok(a) = Authority::parse(&bytes) {
            prop_assert_eq!(Authority::parse(a.to_string().as_bytes()), Ok(a));
        }
    }

    /// The same authority gives the same target whichever way a request carries it.
    #[test]
    fn h1_and_h2_agree(text in prop_oneof![authority_text().prop_map(String::into_bytes), authority_bytes()]) {
        let direct = Authority::parse(&text);
        let via_h1_host = RequestTarget::from_h1(None, [&text[..]]).map(RequestTarget::into_authority);
        let via_h1_abs = RequestTarget::from_h1(Some(&text), [&b"ignored.example"[..]]).map(RequestTarget::into_authority);
        let via_h2 = RequestTarget::from_h2(Some(&text), std::iter::empty()).map(RequestTarget::into_authority);
        let via_h2_host = RequestTarget::from_h2(None, [&text[..]]).map(RequestTarget::into_authority);
        let via_h2_both = RequestTarget::from_h2(Some(&text), [&text[..]]).map(RequestTarget::into_authority);
        for other in [via_h1_host, via_h1_abs, via_h2, via_h2_host, via_h2_both] {
            prop_assert_eq!(other.ok(), direct.clone().ok());
        }
    }
}
