//! Table-driven tests of the matching rules, each case with its citation.
//!
//! Every matching case is checked four ways: `DnsPattern::matches` / `Pattern::covers`,
//! `Identities::covers`, and `HostIndex::lookup`, which must all agree with the table.
// A test that cannot unwrap has failed: panicking is the report.
#![allow(clippy::unwrap_used)]

use misdirect_authority::Host;
use misdirect_certmatch::{
    DnsPattern, ErrorKind, HostIndex, Identities, LegacyCn, Pattern, SanProblem, Source,
};

/// (presented identifier, reference host, expected, citation).
///
/// A presented identifier that does not parse must never match: its expected value is
/// `false` and the test also checks that it was rejected.
const MATCH_CASES: &[(&str, &str, bool, &str)] = &[
    // Exact names: RFC 9525 §6.3 (compare the whole name), RFC 4343 (case-insensitive).
    ("example.com", "example.com", true, "RFC 9525 §6.3 exact"),
    ("example.com", "EXAMPLE.COM", true, "RFC 4343 case"),
    ("EXAMPLE.com", "example.com", true, "RFC 4343 case"),
    ("ExAmPlE.CoM", "eXaMpLe.cOm", true, "RFC 4343 case"),
    (
        "www.example.com",
        "www.example.com",
        true,
        "RFC 9525 §6.3 exact",
    ),
    (
        "www.example.com",
        "example.com",
        false,
        "RFC 9525 §6.3 exact",
    ),
    (
        "example.com",
        "www.example.com",
        false,
        "RFC 9525 §6.3 exact",
    ),
    ("example.com", "example.org", false, "RFC 9525 §6.3 exact"),
    ("example.com", "example.co", false, "RFC 9525 §6.3 exact"),
    ("example.com", "xexample.com", false, "RFC 9525 §6.3 exact"),
    (
        "a.example.com",
        "b.example.com",
        false,
        "RFC 9525 §6.3 exact",
    ),
    (
        "localhost",
        "localhost",
        true,
        "RFC 9525 §6.3 exact, single label",
    ),
    (
        "a-b.example.com",
        "a-b.example.com",
        true,
        "RFC 1123 §2.1 LDH",
    ),
    (
        "1.example.com",
        "1.example.com",
        true,
        "RFC 1123 §2.1 leading digit",
    ),
    (
        "123.example",
        "123.example",
        true,
        "RFC 1123 §2.1 leading digit",
    ),
    // Trailing dot: the reference drops one trailing dot (RFC 1034 §3.1); a presented
    // identifier with a trailing dot is invalid.
    (
        "example.com",
        "example.com.",
        true,
        "RFC 1034 §3.1 absolute reference",
    ),
    (
        "www.example.com",
        "WWW.example.com.",
        true,
        "RFC 1034 §3.1 + RFC 4343",
    ),
    (
        "example.com.",
        "example.com",
        false,
        "RFC 5280 §4.2.1.6 preferred name syntax",
    ),
    (
        "example.com.",
        "example.com.",
        false,
        "RFC 5280 §4.2.1.6 preferred name syntax",
    ),
    (
        "*.example.com.",
        "www.example.com",
        false,
        "RFC 5280 §4.2.1.6 preferred name syntax",
    ),
    (
        "*.example.com",
        "www.example.com.",
        true,
        "RFC 1034 §3.1 absolute reference",
    ),
    // Wildcards: one whole left-most label, exactly one label (RFC 9525 §6.3).
    (
        "*.example.com",
        "www.example.com",
        true,
        "RFC 9525 §6.3 wildcard",
    ),
    (
        "*.example.com",
        "WWW.EXAMPLE.COM",
        true,
        "RFC 9525 §6.3 + RFC 4343",
    ),
    (
        "*.EXAMPLE.com",
        "api.example.com",
        true,
        "RFC 9525 §6.3 + RFC 4343",
    ),
    (
        "*.example.com",
        "a-b.example.com",
        true,
        "RFC 9525 §6.3 wildcard",
    ),
    (
        "*.example.com",
        "1.example.com",
        true,
        "RFC 9525 §6.3 wildcard",
    ),
    (
        "*.example.com",
        "x.example.com",
        true,
        "RFC 9525 §6.3 wildcard",
    ),
    (
        "*.example.com",
        "example.com",
        false,
        "RFC 9525 §6.3 one label, not zero",
    ),
    (
        "*.example.com",
        "a.b.example.com",
        false,
        "RFC 9525 §6.3 one label, not two",
    ),
    (
        "*.example.com",
        "x.y.z.example.com",
        false,
        "RFC 9525 §6.3 one label",
    ),
    (
        "*.example.com",
        "www.example.org",
        false,
        "RFC 9525 §6.3 parent must equal",
    ),
    (
        "*.example.com",
        "wwwexample.com",
        false,
        "RFC 9525 §6.3 never across dots",
    ),
    (
        "*.example.com",
        "www.xexample.com",
        false,
        "RFC 9525 §6.3 parent must equal",
    ),
    ("*.example.com", "com", false, "RFC 9525 §6.3 wildcard"),
    (
        "*.b.example.com",
        "a.b.example.com",
        true,
        "RFC 9525 §6.3 wildcard depth",
    ),
    (
        "*.b.example.com",
        "b.example.com",
        false,
        "RFC 9525 §6.3 wildcard depth",
    ),
    (
        "*.b.example.com",
        "a.c.example.com",
        false,
        "RFC 9525 §6.3 wildcard depth",
    ),
    (
        "*.b.example.com",
        "x.a.b.example.com",
        false,
        "RFC 9525 §6.3 wildcard depth",
    ),
    (
        "*.a.b.c.example.com",
        "z.a.b.c.example.com",
        true,
        "RFC 9525 §6.3 depth",
    ),
    (
        "*.example.com",
        "_acme.example.com",
        true,
        "RFC 9525 §6.3 one label of any content",
    ),
    // A wildcard needs at least two labels after it: never a single-label parent.
    (
        "*.com",
        "example.com",
        false,
        "RFC 9525 §7.2 / CABF BR 3.2.2.6",
    ),
    (
        "*.local",
        "printer.local",
        false,
        "RFC 9525 §7.2 single-label parent",
    ),
    (
        "*.localhost",
        "a.localhost",
        false,
        "RFC 9525 §7.2 single-label parent",
    ),
    ("*", "example.com", false, "RFC 9525 §6.3 bare wildcard"),
    ("*", "com", false, "RFC 9525 §6.3 bare wildcard"),
    ("*.", "example.com", false, "RFC 9525 §6.3 bare wildcard"),
    // Partial and misplaced wildcards are invalid (RFC 9525 §6.3 makes them unusable).
    (
        "f*.example.com",
        "foo.example.com",
        false,
        "RFC 9525 §6.3 partial wildcard",
    ),
    (
        "*o.example.com",
        "foo.example.com",
        false,
        "RFC 9525 §6.3 partial wildcard",
    ),
    (
        "f*o.example.com",
        "foo.example.com",
        false,
        "RFC 9525 §6.3 partial wildcard",
    ),
    (
        "ba*.example.com",
        "baz.example.com",
        false,
        "RFC 9525 §6.3 partial wildcard",
    ),
    (
        "**.example.com",
        "a.example.com",
        false,
        "RFC 9525 §6.3 partial wildcard",
    ),
    (
        "xn--*.example.com",
        "xn--bcher-kva.example.com",
        false,
        "RFC 6125 §6.4.3 A-label",
    ),
    (
        "a.*.example.com",
        "a.b.example.com",
        false,
        "RFC 9525 §6.3 left-most only",
    ),
    (
        "foo.*.com",
        "foo.bar.com",
        false,
        "RFC 9525 §6.3 left-most only",
    ),
    (
        "*.*.example.com",
        "a.b.example.com",
        false,
        "RFC 9525 §6.3 one wildcard",
    ),
    (
        "www.example.*",
        "www.example.com",
        false,
        "RFC 9525 §6.3 left-most only",
    ),
    (
        "example.com*",
        "example.com",
        false,
        "RFC 9525 §6.3 partial wildcard",
    ),
    // IDNA: A-labels are plain LDH labels; U-labels are not IA5String (RFC 5280 §7.2).
    (
        "xn--bcher-kva.example",
        "xn--bcher-kva.example",
        true,
        "RFC 5280 §7.2 A-label",
    ),
    (
        "XN--BCHER-KVA.example",
        "xn--bcher-kva.example",
        true,
        "RFC 5890 §2.3.2.1 + RFC 4343",
    ),
    (
        "*.xn--bcher-kva.example",
        "www.xn--bcher-kva.example",
        true,
        "RFC 9525 §6.3 wildcard over A-labels",
    ),
    (
        "*.example.com",
        "xn--bcher-kva.example.com",
        true,
        "RFC 9525 §6.3 wildcard covers an A-label",
    ),
    (
        "bücher.example",
        "xn--bcher-kva.example",
        false,
        "RFC 5280 §7.2 no U-labels",
    ),
    (
        "😜.example.com",
        "xn--628h.example.com",
        false,
        "RFC 5280 §7.2 no U-labels",
    ),
    (
        "xn--628h.example.com",
        "xn--628h.example.com",
        true,
        "RFC 5280 §7.2 A-label",
    ),
    // LDH only (RFC 1034 §3.5, RFC 5280 §4.2.1.6).
    (
        "foo_bar.example.com",
        "foo_bar.example.com",
        false,
        "RFC 5280 §4.2.1.6 LDH",
    ),
    (
        "-a.example.com",
        "-a.example.com",
        false,
        "RFC 1034 §3.5 hyphen",
    ),
    (
        "a-.example.com",
        "a-.example.com",
        false,
        "RFC 1034 §3.5 hyphen",
    ),
    (
        "a..example.com",
        "a.example.com",
        false,
        "RFC 1034 §3.5 empty label",
    ),
    (
        ".example.com",
        "example.com",
        false,
        "RFC 1034 §3.5 empty label",
    ),
    ("exa mple.com", "example.com", false, "RFC 1034 §3.5 LDH"),
    // A DNS-ID never matches an IP reference (RFC 9525 §6.2.1, RFC 5280 §4.2.1.6).
    (
        "192.0.2.1",
        "192.0.2.1",
        true,
        "RFC 9525 §6.2.1 iPAddress (parsed as IP)",
    ),
    (
        "*.0.2.1",
        "192.0.2.1",
        false,
        "RFC 9525 §6.3 no wildcard over IPs",
    ),
    (
        "*.example.com",
        "192.0.2.1",
        false,
        "RFC 9525 §6.3 no wildcard over IPs",
    ),
    (
        "example.com",
        "[2001:db8::1]",
        false,
        "RFC 9525 §6.2.1 IP reference",
    ),
    // IP addresses: octet for octet (RFC 5280 §4.2.1.6, RFC 9525 §6.3).
    (
        "192.0.2.1",
        "192.0.2.2",
        false,
        "RFC 5280 §4.2.1.6 iPAddress",
    ),
    (
        "127.0.0.1",
        "127.0.0.1",
        true,
        "RFC 5280 §4.2.1.6 iPAddress",
    ),
    (
        "[2001:db8::1]",
        "[2001:db8::1]",
        true,
        "RFC 5280 §4.2.1.6 iPAddress",
    ),
    (
        "2001:db8::1",
        "[2001:DB8:0:0:0:0:0:1]",
        true,
        "RFC 5952 forms are one address",
    ),
    (
        "2001:db8::1",
        "[2001:db8::2]",
        false,
        "RFC 5280 §4.2.1.6 iPAddress",
    ),
    ("::1", "[::1]", true, "RFC 5280 §4.2.1.6 iPAddress"),
    (
        "::1",
        "127.0.0.1",
        false,
        "RFC 5280 §4.2.1.6 v4 and v6 differ",
    ),
    (
        "::ffff:192.0.2.1",
        "192.0.2.1",
        false,
        "RFC 5280 §4.2.1.6 16 octets vs 4 (IPv4-mapped)",
    ),
    (
        "192.0.2.1",
        "[::ffff:192.0.2.1]",
        false,
        "RFC 5280 §4.2.1.6 4 octets vs 16 (IPv4-mapped)",
    ),
    (
        "::ffff:192.0.2.1",
        "[::ffff:c000:201]",
        true,
        "RFC 4291 §2.5.5.2 same 16 octets",
    ),
    (
        "192.0.2.1",
        "example.com",
        false,
        "RFC 9525 §6.3 IP-ID vs DNS reference",
    ),
];

/// (input, normalised pattern or the error kind, citation).
const PARSE_CASES: &[(&str, Result<&str, ErrorKind>, &str)] = &[
    ("example.com", Ok("example.com"), "RFC 1034 §3.5"),
    ("EXAMPLE.COM", Ok("example.com"), "RFC 4343"),
    (
        "*.Example.Com",
        Ok("*.example.com"),
        "RFC 9525 §6.3 + RFC 4343",
    ),
    ("localhost", Ok("localhost"), "RFC 1034 §3.5"),
    (
        "xn--bcher-kva.example",
        Ok("xn--bcher-kva.example"),
        "RFC 5890",
    ),
    (
        "",
        Err(ErrorKind::Empty),
        "RFC 5280 §4.2.1.6 (empty dNSName)",
    ),
    ("*", Err(ErrorKind::BareWildcard), "RFC 9525 §6.3"),
    ("*.", Err(ErrorKind::TrailingDot), "RFC 5280 §4.2.1.6"),
    (
        "example.com.",
        Err(ErrorKind::TrailingDot),
        "RFC 5280 §4.2.1.6",
    ),
    (".example.com", Err(ErrorKind::EmptyLabel), "RFC 1034 §3.5"),
    ("a..b.com", Err(ErrorKind::EmptyLabel), "RFC 1034 §3.5"),
    (
        "*..example.com",
        Err(ErrorKind::EmptyLabel),
        "RFC 1034 §3.5",
    ),
    ("*.com", Err(ErrorKind::WildcardTooShallow), "RFC 9525 §7.2"),
    (
        "f*.example.com",
        Err(ErrorKind::PartialWildcard),
        "RFC 9525 §6.3",
    ),
    (
        "xn--*.example.com",
        Err(ErrorKind::PartialWildcard),
        "RFC 6125 §6.4.3",
    ),
    (
        "a.*.example.com",
        Err(ErrorKind::WildcardNotLeftmost),
        "RFC 9525 §6.3",
    ),
    (
        "*.*.example.com",
        Err(ErrorKind::WildcardNotLeftmost),
        "RFC 9525 §6.3",
    ),
    (
        "a_b.example.com",
        Err(ErrorKind::InvalidCharacter),
        "RFC 5280 §4.2.1.6",
    ),
    (
        "a b.example.com",
        Err(ErrorKind::InvalidCharacter),
        "RFC 1034 §3.5",
    ),
    (
        "a@b.example.com",
        Err(ErrorKind::InvalidCharacter),
        "RFC 1034 §3.5",
    ),
    ("bücher.example", Err(ErrorKind::NonAscii), "RFC 5280 §7.2"),
    ("-a.example.com", Err(ErrorKind::Hyphen), "RFC 1034 §3.5"),
    ("a-.example.com", Err(ErrorKind::Hyphen), "RFC 1034 §3.5"),
    ("*.-a.example.com", Err(ErrorKind::Hyphen), "RFC 1034 §3.5"),
    (
        "example.123",
        Err(ErrorKind::NumericLastLabel),
        "RFC 9525 §6.2.1",
    ),
    (
        "8.8.8.8",
        Err(ErrorKind::NumericLastLabel),
        "RFC 9525 §6.2.1",
    ),
    (
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com",
        Err(ErrorKind::LabelTooLong),
        "RFC 1035 §2.3.4",
    ),
    (
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com",
        Ok("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com"),
        "RFC 1035 §2.3.4 (63 is allowed)",
    ),
];

fn host(text: &str) -> Host {
    Host::parse(text.as_bytes()).unwrap_or_else(|e| panic!("reference {text:?}: {e}"))
}

#[test]
fn matching_table() {
    assert!(MATCH_CASES.len() + PARSE_CASES.len() >= 100);
    let mut failures = Vec::new();
    for &(presented, reference, expected, rfc) in MATCH_CASES {
        let host = host(reference);
        let pattern = Pattern::parse(presented.as_bytes());
        let Ok(pattern) = pattern else {
            if expected {
                failures.push(format!("{presented:?} did not parse ({rfc})"));
            }
            continue;
        };
        let by_pattern = pattern.covers(&host);
        let by_identities = Identities::from_patterns([pattern.clone()]).covers(&host);
        let index = HostIndex::build([(pattern.clone(), ())]).expect("one entry");
        let by_index = index.lookup(&host).is_some();
        if (by_pattern, by_identities, by_index) != (expected, expected, expected) {
            failures.push(format!(
                "{presented:?} vs {reference:?}: expected {expected}, got pattern={by_pattern} \
                 identities={by_identities} index={by_index} ({rfc})"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn parse_table() {
    let mut failures = Vec::new();
    for &(input, expected, rfc) in PARSE_CASES {
        let got = DnsPattern::parse(input.as_bytes());
        let got = got.as_ref().map(DnsPattern::as_str).map_err(|e| e.kind());
        if got != expected {
            failures.push(format!(
                "{input:?}: expected {expected:?}, got {got:?} ({rfc})"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn error_offsets_point_at_the_problem() {
    for (input, offset) in [
        ("f*.example.com", 1),
        ("a.*.example.com", 2),
        ("a_b.example.com", 1),
        ("example.com.", 11),
        ("a..b", 2),
        ("bücher.example", 1),
    ] {
        let err = DnsPattern::parse(input.as_bytes()).unwrap_err();
        assert_eq!(err.offset(), Some(offset), "{input:?}: {err}");
    }
}

#[test]
fn name_length_limits() {
    // RFC 1035 §2.3.4: 253 octets without the trailing dot.
    let label = "a".repeat(63);
    let ok = format!("{label}.{label}.{label}.{}", "b".repeat(61));
    assert_eq!(ok.len(), 253);
    assert!(DnsPattern::parse(ok.as_bytes()).is_ok());
    let long = format!("{ok}c");
    let too_long = format!("{label}.{label}.{label}.{}", "b".repeat(62));
    assert_eq!(
        DnsPattern::parse(too_long.as_bytes()).unwrap_err().kind(),
        ErrorKind::NameTooLong
    );
    assert!(DnsPattern::parse(long.as_bytes()).is_err());
}

#[test]
fn parse_config_drops_one_trailing_dot() {
    assert_eq!(
        DnsPattern::parse_config("WWW.example.com.")
            .unwrap()
            .as_str(),
        "www.example.com"
    );
    assert_eq!(
        DnsPattern::parse_config("www.example.com..")
            .unwrap_err()
            .kind(),
        ErrorKind::TrailingDot
    );
    assert_eq!(
        DnsPattern::parse_config(".").unwrap_err().kind(),
        ErrorKind::TrailingDot
    );
}

/// `example_host`: an exact pattern's own name, or `misdirect-probe.` on a wildcard's base
/// (one label, RFC 9525 §6.3), cut to fit 253 bytes (RFC 1035 §2.3.4).
#[test]
fn example_host_table() {
    const CASES: &[(&str, &str)] = &[
        ("www.example.com", "www.example.com"),
        ("WWW.Example.COM", "www.example.com"),
        ("*.example.com", "misdirect-probe.example.com"),
        ("*.Example.COM", "misdirect-probe.example.com"),
        (
            "*.xn--bcher-kva.example",
            "misdirect-probe.xn--bcher-kva.example",
        ),
        ("*.a.b.example", "misdirect-probe.a.b.example"),
    ];
    for &(pattern, expected) in CASES {
        let pattern = DnsPattern::parse(pattern.as_bytes()).unwrap();
        let example = pattern.example_host();
        assert_eq!(example.as_str(), expected, "{pattern}");
        assert!(pattern.matches(&example), "{pattern} covers {example}");
        let index = HostIndex::build([(Pattern::Dns(pattern.clone()), ())]).unwrap();
        assert!(index.lookup(&Host::Name(example)).is_some(), "{pattern}");
    }
    assert!(DnsPattern::EXAMPLE_LABEL.len() <= 63);
}

#[test]
fn example_host_of_a_long_wildcard_fits_253_bytes() {
    let label = "a".repeat(63);
    // Bases of 251 bytes (the longest a wildcard can have) down to 230.
    for extra in 0..=21 {
        let base = format!("{label}.{label}.{label}.{}", "b".repeat(59 - extra));
        let pattern = DnsPattern::parse(format!("*.{base}").as_bytes()).unwrap();
        let example = pattern.example_host();
        assert!(example.len() <= 253, "{example}");
        let first = example.labels().next().unwrap();
        assert!(
            DnsPattern::EXAMPLE_LABEL.starts_with(first) && !first.ends_with('-'),
            "{first}"
        );
        assert!(pattern.matches(&example), "{pattern}");
    }
    let longest = format!("*.{label}.{label}.{label}.{}", "b".repeat(59));
    let example = DnsPattern::parse(longest.as_bytes())
        .unwrap()
        .example_host();
    assert_eq!(example.labels().next(), Some("m"));
}

/// `from_config`: Unicode labels become A-labels (UTS 46, RFC 5891), a wildcard keeps its
/// `*.`, one trailing dot is dropped (RFC 1034 §3.1), and the result obeys every
/// `DnsPattern::parse` rule.
#[cfg(feature = "idna")]
#[test]
fn from_config_table() {
    const CASES: &[(&str, Result<&str, ErrorKind>)] = &[
        ("www.example.com", Ok("www.example.com")),
        ("WWW.Example.com.", Ok("www.example.com")),
        ("*.Example.com.", Ok("*.example.com")),
        ("Bücher.example", Ok("xn--bcher-kva.example")),
        ("BÜCHER.example.", Ok("xn--bcher-kva.example")),
        ("*.bücher.example", Ok("*.xn--bcher-kva.example")),
        ("*.bücher.example.", Ok("*.xn--bcher-kva.example")),
        ("www.例え.テスト", Ok("www.xn--r8jz45g.xn--zckzah")),
        ("www.example.com..", Err(ErrorKind::TrailingDot)),
        ("bücher.example..", Err(ErrorKind::TrailingDot)),
        ("", Err(ErrorKind::Empty)),
        ("*.com", Err(ErrorKind::WildcardTooShallow)),
        ("*.bücher", Err(ErrorKind::WildcardTooShallow)),
        ("f*.bücher.example", Err(ErrorKind::Idna)),
        ("a.*.bücher.example", Err(ErrorKind::Idna)),
        ("bü cher.example", Err(ErrorKind::Idna)),
        ("bücher_x.example", Err(ErrorKind::Idna)),
        ("bücher.123", Err(ErrorKind::NumericLastLabel)),
        ("１９２.０.２.１", Err(ErrorKind::NumericLastLabel)),
        ("foo_bar.example", Err(ErrorKind::InvalidCharacter)),
    ];
    for &(input, expected) in CASES {
        let got = DnsPattern::from_config(input);
        assert_eq!(
            got.as_ref().map(DnsPattern::as_str).map_err(|e| e.kind()),
            expected,
            "{input:?}"
        );
    }
    let err = DnsPattern::from_config("bücher.123").unwrap_err();
    assert_eq!(err.offset(), None);
    assert_eq!(
        err.to_string(),
        "the last label is numeric: an IP address is not a DNS name: \
         after conversion to A-labels (UTS 46)"
    );
    let err = DnsPattern::from_config("*.bücher").unwrap_err();
    assert_eq!(
        err.to_string(),
        "a wildcard needs at least two labels after `*.`: \
         `*.xn--bcher-kva` (A-label form) at byte 0"
    );
}

/// The public-suffix rule (feature `psl`), as Chromium applies it.
#[cfg(feature = "psl")]
#[test]
fn public_suffix_wildcards_never_match() {
    for (presented, reference, expected) in [
        ("*.co.uk", "example.co.uk", false),
        ("*.s3.amazonaws.com", "bucket.s3.amazonaws.com", false),
        ("*.github.io", "user.github.io", false),
        ("*.example.co.uk", "www.example.co.uk", true),
        (
            "*.tenant.example.internal",
            "a.tenant.example.internal",
            true,
        ),
    ] {
        let pattern = DnsPattern::parse(presented.as_bytes()).unwrap();
        assert_eq!(
            pattern.is_public_suffix_wildcard(),
            !expected,
            "{presented}"
        );
        let host = host(reference);
        assert_eq!(
            pattern.matches(host.as_name().unwrap()),
            expected,
            "{presented}"
        );
        let ids = Identities::from_patterns([pattern.clone().into()]);
        assert_eq!(ids.covers(&host), expected, "{presented}");
        let index = HostIndex::build([(pattern, 1)]).unwrap();
        assert_eq!(index.lookup(&host).is_some(), expected, "{presented}");
    }
}

#[cfg(not(feature = "psl"))]
#[test]
fn without_psl_multi_label_suffix_wildcards_match() {
    let pattern = DnsPattern::parse(b"*.co.uk").unwrap();
    assert!(!pattern.is_public_suffix_wildcard());
    assert!(pattern.matches(host("example.co.uk").as_name().unwrap()));
}

fn cert_der(sans: &[&str], cn: Option<&str>) -> Vec<u8> {
    let mut params =
        rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    if let Some(cn) = cn {
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
    }
    let key = rcgen::KeyPair::generate().unwrap();
    params.self_signed(&key).unwrap().der().to_vec()
}

/// (SANs, CN, legacy option, reference, expected, citation).
type CertCase = (
    &'static [&'static str],
    Option<&'static str>,
    LegacyCn,
    &'static str,
    bool,
    &'static str,
);

const CERT_CASES: &[CertCase] = &[
    (
        &["example.com"],
        None,
        LegacyCn::Deny,
        "example.com",
        true,
        "RFC 9525 §6.3",
    ),
    (
        &["*.example.com"],
        None,
        LegacyCn::Deny,
        "a.example.com",
        true,
        "RFC 9525 §6.3",
    ),
    (
        &["192.0.2.1"],
        None,
        LegacyCn::Deny,
        "192.0.2.1",
        true,
        "RFC 5280 §4.2.1.6",
    ),
    (
        &["2001:db8::1"],
        None,
        LegacyCn::Deny,
        "[2001:db8::1]",
        true,
        "RFC 5280 §4.2.1.6",
    ),
    (
        &[],
        Some("example.com"),
        LegacyCn::Deny,
        "example.com",
        false,
        "RFC 9525 §6.3 no CN-ID",
    ),
    (
        &[],
        Some("example.com"),
        LegacyCn::Allow,
        "example.com",
        true,
        "RFC 6125 §6.4.4 legacy",
    ),
    (
        &[],
        Some("*.example.com"),
        LegacyCn::Allow,
        "a.example.com",
        true,
        "RFC 6125 §6.4.4",
    ),
    (
        &[],
        Some("Example.COM"),
        LegacyCn::Allow,
        "example.com",
        true,
        "RFC 4343",
    ),
    (
        &[],
        Some("f*.example.com"),
        LegacyCn::Allow,
        "foo.example.com",
        false,
        "RFC 9525 §6.3",
    ),
    (
        &[],
        Some("192.0.2.1"),
        LegacyCn::Allow,
        "192.0.2.1",
        false,
        "RFC 9525 §6.2.1",
    ),
    (
        &["other.example.com"],
        Some("example.com"),
        LegacyCn::Allow,
        "example.com",
        false,
        "RFC 6125 §6.4.4: CN only without SAN",
    ),
];

#[test]
fn certificate_table() {
    let mut failures = Vec::new();
    for &(sans, cn, legacy, reference, expected, rfc) in CERT_CASES {
        let der = cert_der(sans, cn);
        let ids = Identities::from_der_with(&der, legacy).unwrap();
        if ids.covers(&host(reference)) != expected {
            failures.push(format!(
                "SAN {sans:?} CN {cn:?} {legacy:?} vs {reference:?}: expected {expected} ({rfc})"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn sources_and_problems_are_reported() {
    let ids = Identities::from_der(&cert_der(&["example.com"], None)).unwrap();
    assert_eq!(ids.source(), Source::SubjectAltName);

    let ids =
        Identities::from_der_with(&cert_der(&[], Some("x.example")), LegacyCn::Allow).unwrap();
    assert_eq!(ids.source(), Source::CommonName);

    let ids = Identities::from_der(&cert_der(&[], Some("x.example"))).unwrap();
    assert_eq!(ids.source(), Source::None);
    assert!(ids.is_empty());

    let ids = Identities::from_der_with(&cert_der(&[], Some("bad_name")), LegacyCn::Allow).unwrap();
    assert!(matches!(
        ids.problems(),
        [SanProblem::InvalidCommonName { value, .. }] if value == "bad_name"
    ));

    let ids = Identities::from_der(&cert_der(&["ok.example", "f*.example.com"], None)).unwrap();
    assert_eq!(ids.dns_names().len(), 1);
    match ids.problems() {
        [SanProblem::InvalidDnsName { value, error }] => {
            assert_eq!(value, "f*.example.com");
            assert_eq!(error.kind(), ErrorKind::PartialWildcard);
        }
        other => panic!("unexpected problems {other:?}"),
    }
}

#[test]
fn not_a_certificate_is_an_error() {
    for bytes in [
        &b""[..],
        b"\x30\x00",
        b"not der at all",
        b"\x30\x82\xff\xff",
    ] {
        let err = Identities::from_der(bytes).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidCertificate);
    }
    let mut der = cert_der(&["example.com"], None);
    der.push(0);
    assert_eq!(
        Identities::from_der(&der).unwrap_err().kind(),
        ErrorKind::InvalidCertificate
    );
}
