//! Table-driven tests: one row per input, each citing the rule it checks.
//! `docs/authority.md` maps every rule to these tables.

use misdirect_authority::{
    Authority, AuthorityErrorKind as K, Host, HostName, Origin, RequestTarget, Scheme,
    TargetErrorKind as T, TargetSource,
};

/// The expected outcome of parsing one input.
#[derive(Debug)]
enum Want {
    /// Accepted; the normalised `Display` form.
    Ok(&'static str),
    /// Rejected with this kind.
    Err(K),
}
use Want::{Err as E, Ok as O};

const RFC3986_HOST: &str = "RFC 3986 §3.2.2 host";
const RFC3986_PORT: &str = "RFC 3986 §3.2.3 port";
const RFC3986_IPV6: &str = "RFC 3986 §3.2.2 IP-literal";
const RFC6874_ZONE: &str = "RFC 6874 (zone ids not for HTTP authorities)";
const RFC9110_USERINFO: &str = "RFC 9110 §4.2.4, RFC 9113 §8.3.1 userinfo";
const RFC9110_EMPTY: &str = "RFC 9110 §4.2.1-4.2.2 non-empty host";
const RFC4343_CASE: &str = "RFC 4343 / RFC 9110 §4.2.3 case-insensitive host";
const RFC1034_DOT: &str = "RFC 1034 §3.1 trailing dot (absolute name)";
const RFC1035_LEN: &str = "RFC 1035 §2.3.4 label/name length";
const RFC1123_LDH: &str = "RFC 1123 §2.1 host name characters";
const NONASCII: &str = "RFC 3986 §3.2.2 + RFC 9110 §4.2.3: A-labels only";
const PCT: &str = "policy: no percent-encoding in host names";
const IPV4_STRICT: &str = "RFC 3986 §3.2.2 dotted-decimal only; RFC 3696 §2 no numeric TLD";
const GARBAGE: &str = "RFC 3986 §3.2 authority ends at host[:port]";

fn long_label(n: usize) -> String {
    "a".repeat(n)
}

#[rustfmt::skip]
const CASES: &[(&str, &[u8], Want)] = &[
    // Reg-names accepted as they are.
    (RFC3986_HOST, b"example.com", O("example.com")),
    (RFC3986_HOST, b"www.example.com", O("www.example.com")),
    (RFC3986_HOST, b"localhost", O("localhost")),
    (RFC3986_HOST, b"a", O("a")),
    (RFC3986_HOST, b"a.b.c.d.e.f.g", O("a.b.c.d.e.f.g")),
    (RFC3986_HOST, b"xn--bcher-kva.example", O("xn--bcher-kva.example")),
    (RFC3986_HOST, b"a-b.example", O("a-b.example")),
    (RFC3986_HOST, b"my_host.internal", O("my_host.internal")),
    (RFC3986_HOST, b"123.example", O("123.example")),
    (RFC3986_HOST, b"1.2.3.example", O("1.2.3.example")),
    (RFC3986_HOST, b"example.123abc", O("example.123abc")),
    (RFC3986_HOST, b"0x7f.0.0.0x7g", O("0x7f.0.0.0x7g")),
    (RFC3986_HOST, b"256.com", O("256.com")),
    (RFC3986_HOST, b"10000000000.com", O("10000000000.com")),
    (RFC3986_HOST, b"xn--", O("xn--")),
    (RFC3986_HOST, b"-leading.example", O("-leading.example")),
    (RFC3986_HOST, b"trailing-.example", O("trailing-.example")),
    // Case folding.
    (RFC4343_CASE, b"EXAMPLE.COM", O("example.com")),
    (RFC4343_CASE, b"ExAmPlE.CoM", O("example.com")),
    (RFC4343_CASE, b"WWW.Example.COM", O("www.example.com")),
    (RFC4343_CASE, b"XN--BCHER-KVA.EXAMPLE", O("xn--bcher-kva.example")),
    (RFC4343_CASE, b"A:80", O("a:80")),
    // Trailing dot: one is removed, more are empty labels.
    (RFC1034_DOT, b"example.com.", O("example.com")),
    (RFC1034_DOT, b"EXAMPLE.COM.:443", O("example.com:443")),
    (RFC1034_DOT, b"localhost.", O("localhost")),
    (RFC1034_DOT, b"example.com..", E(K::EmptyLabel)),
    (RFC1034_DOT, b".", E(K::EmptyLabel)),
    (RFC1034_DOT, b"..", E(K::EmptyLabel)),
    (RFC1034_DOT, b".:80", E(K::EmptyLabel)),
    (RFC1034_DOT, b"foo.09..", E(K::EmptyLabel)),
    (RFC1034_DOT, b".example.com", E(K::EmptyLabel)),
    (RFC1034_DOT, b"a..b", E(K::EmptyLabel)),
    // Ports.
    (RFC3986_PORT, b"example.com:443", O("example.com:443")),
    (RFC3986_PORT, b"example.com:80", O("example.com:80")),
    (RFC3986_PORT, b"example.com:0", O("example.com:0")),
    (RFC3986_PORT, b"example.com:65535", O("example.com:65535")),
    (RFC3986_PORT, b"example.com:0443", O("example.com:443")),
    (RFC3986_PORT, b"example.com:00000000000000000000080", O("example.com:80")),
    (RFC3986_PORT, b"example.com:000", O("example.com:0")),
    (RFC3986_PORT, b"example.com:", O("example.com")),
    (RFC3986_PORT, b"[::1]:", O("[::1]")),
    (RFC3986_PORT, b"192.0.2.1:", O("192.0.2.1")),
    (RFC3986_PORT, b"example.com:65536", E(K::PortOutOfRange)),
    (RFC3986_PORT, b"example.com:99999", E(K::PortOutOfRange)),
    (RFC3986_PORT, b"example.com:4294967377", E(K::PortOutOfRange)),
    (RFC3986_PORT, b"example.com:18446744073709551697", E(K::PortOutOfRange)),
    (RFC3986_PORT, b"example.com:abc", E(K::BadPort)),
    (RFC3986_PORT, b"example.com:-80", E(K::BadPort)),
    (RFC3986_PORT, b"example.com:+80", E(K::BadPort)),
    (RFC3986_PORT, b"example.com: 80", E(K::BadPort)),
    (RFC3986_PORT, b"example.com:80 ", E(K::BadPort)),
    (RFC3986_PORT, b"example.com:8o", E(K::BadPort)),
    (RFC3986_PORT, b"example.com:80:80", E(K::BadPort)),
    (RFC3986_PORT, b"example.com::80", E(K::BadPort)),
    (RFC3986_PORT, b"example.com:0x50", E(K::BadPort)),
    (RFC3986_PORT, b"[1::2]:3:4", E(K::BadPort)),
    (RFC3986_PORT, b"f:fifty-two", E(K::BadPort)),
    // IPv4: dotted-decimal only.
    (IPV4_STRICT, b"192.0.2.1", O("192.0.2.1")),
    (IPV4_STRICT, b"192.0.2.1:80", O("192.0.2.1:80")),
    (IPV4_STRICT, b"0.0.0.0", O("0.0.0.0")),
    (IPV4_STRICT, b"255.255.255.255", O("255.255.255.255")),
    (IPV4_STRICT, b"127.0.0.1:10100", O("127.0.0.1:10100")),
    (IPV4_STRICT, b"1.2.3.4.", O("1.2.3.4")),
    (IPV4_STRICT, b"256.0.0.1", E(K::NonCanonicalIpv4)),
    (IPV4_STRICT, b"1.2.3.999", E(K::NonCanonicalIpv4)),
    (IPV4_STRICT, b"01.2.3.4", E(K::NonCanonicalIpv4)),
    (IPV4_STRICT, b"1.2.3.04", E(K::NonCanonicalIpv4)),
    (IPV4_STRICT, b"127.1", E(K::NonCanonicalIpv4)),
    (IPV4_STRICT, b"127.0.1", E(K::NonCanonicalIpv4)),
    (IPV4_STRICT, b"2130706433", E(K::NonCanonicalIpv4)),
    (IPV4_STRICT, b"0x7f.0.0.1", E(K::NonCanonicalIpv4)),
    (IPV4_STRICT, b"0x7f.1", E(K::NonCanonicalIpv4)),
    (IPV4_STRICT, b"0x7f000001", E(K::NonCanonicalIpv4)),
    (IPV4_STRICT, b"0177.0.0.1", E(K::NonCanonicalIpv4)),
    (IPV4_STRICT, b"1.2.3.4.5", E(K::NonCanonicalIpv4)),
    (IPV4_STRICT, b"example.123", E(K::NonCanonicalIpv4)),
    (IPV4_STRICT, b"foo.0x1f", E(K::NonCanonicalIpv4)),
    (IPV4_STRICT, b"foo.0x", E(K::NonCanonicalIpv4)),
    (IPV4_STRICT, b"999999999", E(K::NonCanonicalIpv4)),
    (IPV4_STRICT, b"192.168.0.257", E(K::NonCanonicalIpv4)),
    // IPv6 literals.
    (RFC3986_IPV6, b"[::1]", O("[::1]")),
    (RFC3986_IPV6, b"[::]", O("[::]")),
    (RFC3986_IPV6, b"[2001:db8::1]", O("[2001:db8::1]")),
    (RFC3986_IPV6, b"[2001:DB8::1]:8443", O("[2001:db8::1]:8443")),
    (RFC3986_IPV6, b"[2001:0db8:0000:0000:0000:0000:0000:0001]", O("[2001:db8::1]")),
    (RFC3986_IPV6, b"[1:0::]", O("[1::]")),
    (RFC3986_IPV6, b"[::ffff:192.0.2.1]", O("[::ffff:192.0.2.1]")),
    (RFC3986_IPV6, b"[::127.0.0.1]", O("[::7f00:1]")),
    (RFC3986_IPV6, b"[0:0:0:0:0:0:13.1.68.3]", O("[::d01:4403]")),
    (RFC3986_IPV6, b"[0:1:0:1:0:1:0:1]", O("[0:1:0:1:0:1:0:1]")),
    (RFC3986_IPV6, b"[]", E(K::BadIpv6)),
    (RFC3986_IPV6, b"[:]", E(K::BadIpv6)),
    (RFC3986_IPV6, b"[::1", E(K::BadIpv6)),
    (RFC3986_IPV6, b"[0::0::0]", E(K::BadIpv6)),
    (RFC3986_IPV6, b"[0:1:2:3:4:5:6:7:8]", E(K::BadIpv6)),
    (RFC3986_IPV6, b"[12345::1]", E(K::BadIpv6)),
    (RFC3986_IPV6, b"[::1.2.3.]", E(K::BadIpv6)),
    (RFC3986_IPV6, b"[::127.0.0.0.1]", E(K::BadIpv6)),
    (RFC3986_IPV6, b"[::1.2.3.4x]", E(K::BadIpv6)),
    (RFC3986_IPV6, b"[google.com]", E(K::BadIpv6)),
    (RFC3986_IPV6, b"[::g]", E(K::BadIpv6)),
    (RFC3986_IPV6, b"[ ::1]", E(K::BadIpv6)),
    (GARBAGE, b"[::1]x", E(K::TrailingGarbage)),
    (GARBAGE, b"[::1]]", E(K::TrailingGarbage)),
    (GARBAGE, b"[::1][::2]", E(K::TrailingGarbage)),
    (RFC3986_IPV6, b"2001::1", E(K::NonCanonicalIpv4)),
    (RFC3986_IPV6, b"2001::1]", E(K::NonCanonicalIpv4)),
    (RFC3986_IPV6, b"fe80::1", E(K::BadPort)),
    (RFC3986_IPV6, b"::1", E(K::Empty)),
    (RFC3986_IPV6, b"[v1.fe80::a+en1]", E(K::IpvFuture)),
    (RFC3986_IPV6, b"[V7.x]", E(K::IpvFuture)),
    (RFC6874_ZONE, b"[fe80::1%25eth0]", E(K::ZoneId)),
    (RFC6874_ZONE, b"[fe80::1%eth0]:80", E(K::ZoneId)),
    (RFC6874_ZONE, b"[::%31]", E(K::ZoneId)),
    // Userinfo, wherever the scanner first notices trouble.
    (RFC9110_USERINFO, b"user@example.com", E(K::Userinfo)),
    (RFC9110_USERINFO, b"user:pass@example.com", E(K::Userinfo)),
    (RFC9110_USERINFO, b"user:pass@example.com:443", E(K::Userinfo)),
    (RFC9110_USERINFO, b"@example.com", E(K::Userinfo)),
    (RFC9110_USERINFO, b"@", E(K::Userinfo)),
    (RFC9110_USERINFO, b"a:b@", E(K::Userinfo)),
    (RFC9110_USERINFO, b"@:www.example.com", E(K::Userinfo)),
    (RFC9110_USERINFO, b"us!er@example.com", E(K::Userinfo)),
    (RFC9110_USERINFO, b"user@[::1]", E(K::Userinfo)),
    // Empty host.
    (RFC9110_EMPTY, b"", E(K::Empty)),
    (RFC9110_EMPTY, b":443", E(K::Empty)),
    (RFC9110_EMPTY, b":", E(K::Empty)),
    // Characters a host name may not contain.
    (RFC1123_LDH, b"exa mple.com", E(K::InvalidCharacter)),
    (RFC1123_LDH, b" example.com", E(K::InvalidCharacter)),
    (RFC1123_LDH, b"example.com ", E(K::InvalidCharacter)),
    (RFC1123_LDH, b"example.com\t", E(K::InvalidCharacter)),
    (RFC1123_LDH, b"a\x00b", E(K::InvalidCharacter)),
    (RFC1123_LDH, b"a\x7fb", E(K::InvalidCharacter)),
    (RFC1123_LDH, b"a\r\nb", E(K::InvalidCharacter)),
    (RFC1123_LDH, b"a<b", E(K::InvalidCharacter)),
    (RFC1123_LDH, b"a]b", E(K::InvalidCharacter)),
    (RFC1123_LDH, b"a[b", E(K::InvalidCharacter)),
    (RFC1123_LDH, b"a|b", E(K::InvalidCharacter)),
    (RFC1123_LDH, b"a^b", E(K::InvalidCharacter)),
    (RFC1123_LDH, b"*.example.com", E(K::InvalidCharacter)),
    (RFC1123_LDH, b"ex!mple.com", E(K::InvalidCharacter)),
    (RFC1123_LDH, b"ex$mple.com", E(K::InvalidCharacter)),
    (RFC1123_LDH, b"a,b", E(K::InvalidCharacter)),
    (RFC1123_LDH, b"a;b", E(K::InvalidCharacter)),
    (RFC1123_LDH, b"a=b", E(K::InvalidCharacter)),
    (RFC1123_LDH, b"a~b", E(K::InvalidCharacter)),
    (RFC1123_LDH, b"a+b", E(K::InvalidCharacter)),
    (RFC1123_LDH, b"a'b", E(K::InvalidCharacter)),
    (RFC1123_LDH, b"example.com/path", E(K::InvalidCharacter)),
    (RFC1123_LDH, b"example.com?q", E(K::InvalidCharacter)),
    (RFC1123_LDH, b"example.com#f", E(K::InvalidCharacter)),
    (RFC1123_LDH, b"example.com\\", E(K::InvalidCharacter)),
    (RFC1123_LDH, b"\"example.com\"", E(K::InvalidCharacter)),
    // Non-ASCII and percent-encoding.
    (NONASCII, "bücher.example".as_bytes(), E(K::NonAscii)),
    (NONASCII, "例え.テスト".as_bytes(), E(K::NonAscii)),
    (NONASCII, b"a\xffb", E(K::NonAscii)),
    (NONASCII, b"\xad", E(K::NonAscii)),
    (NONASCII, "ｅｘａｍｐｌｅ.com".as_bytes(), E(K::NonAscii)),
    (NONASCII, "[::1]\u{a0}".as_bytes(), E(K::TrailingGarbage)),
    (NONASCII, "[::\u{661}]".as_bytes(), E(K::NonAscii)),
    (PCT, b"ex%61mple.com", E(K::PercentEncoding)),
    (PCT, b"%65xample.com", E(K::PercentEncoding)),
    (PCT, b"a%b", E(K::PercentEncoding)),
    (PCT, b"%5B::1]", E(K::PercentEncoding)),
    (PCT, b"example.com%3a80", E(K::PercentEncoding)),
];

/// Inputs built at run time (lengths).
fn generated_cases() -> Vec<(&'static str, Vec<u8>, Result<String, K>)> {
    let l63 = long_label(63);
    let l64 = long_label(64);
    let name253 = format!("{l63}.{l63}.{l63}.{}", long_label(61));
    let name254 = format!("{l63}.{l63}.{l63}.{}", long_label(62));
    vec![
        (
            RFC1035_LEN,
            format!("{l63}.example").into_bytes(),
            Ok(format!("{l63}.example")),
        ),
        (
            RFC1035_LEN,
            format!("{l64}.example").into_bytes(),
            Err(K::LabelTooLong),
        ),
        (
            RFC1035_LEN,
            format!("example.{l64}").into_bytes(),
            Err(K::LabelTooLong),
        ),
        (
            RFC1035_LEN,
            format!("a.{l64}.b").into_bytes(),
            Err(K::LabelTooLong),
        ),
        (
            RFC1035_LEN,
            name253.clone().into_bytes(),
            Ok(name253.clone()),
        ),
        (
            RFC1035_LEN,
            format!("{name253}.").into_bytes(),
            Ok(name253.clone()),
        ),
        (
            RFC1035_LEN,
            format!("{name253}:8443").into_bytes(),
            Ok(format!("{name253}:8443")),
        ),
        (RFC1035_LEN, name254.into_bytes(), Err(K::NameTooLong)),
        (
            RFC1035_LEN,
            format!("{}a", "a.".repeat(127)).into_bytes(),
            Err(K::NameTooLong),
        ),
        (
            RFC1035_LEN,
            "a.".repeat(127).into_bytes(),
            Ok("a.".repeat(126) + "a"),
        ),
        (
            RFC4343_CASE,
            l63.to_ascii_uppercase().into_bytes(),
            Ok(l63.clone()),
        ),
    ]
}

#[test]
fn authority_table() {
    let mut failures = Vec::new();
    for (rule, input, want) in CASES {
        let got = Authority::parse(input);
        let ok = match (want, &got) {
            (Want::Ok(display), Ok(a)) => a.to_string() == *display,
            (Want::Err(kind), Err(e)) => e.kind() == *kind,
            _ => false,
        };
        if !ok {
            failures.push(format!(
                "[{rule}] {:?}: want {want:?}, got {got:?}",
                String::from_utf8_lossy(input)
            ));
        }
    }
    for (rule, input, want) in generated_cases() {
        let got = Authority::parse(&input)
            .map(|a| a.to_string())
            .map_err(|e| e.kind());
        if got != want {
            failures.push(format!(
                "[{rule}] {} bytes: want {want:?}, got {got:?}",
                input.len()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        CASES.len() + generated_cases().len() >= 150,
        "keep the table at 150+ cases"
    );
}

/// Error offsets point at the offending byte.
#[test]
fn error_offsets() {
    #[rustfmt::skip]
    let cases: &[(&[u8], K, usize)] = &[
        (b"example.com:99999", K::PortOutOfRange, 12),
        (b"example.com:8x", K::BadPort, 13),
        (b"exa mple.com", K::InvalidCharacter, 3),
        (b"a..b", K::EmptyLabel, 2),
        (b"user@host", K::Userinfo, 4),
        (b"[::1]x", K::TrailingGarbage, 5),
        (b"[fe80::1%25eth0]", K::ZoneId, 8),
        (b"ex%61mple", K::PercentEncoding, 2),
        ("bü".as_bytes(), K::NonAscii, 1),
    ];
    for &(input, kind, offset) in cases {
        let err = Authority::parse(input).unwrap_err();
        assert_eq!(
            (err.kind(), err.offset()),
            (kind, offset),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

/// Every error kind has a plain-English message that names the byte.
#[test]
fn error_display() {
    let err = Authority::parse(b"user@example.com").unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid authority at byte 4: userinfo (user@) is not allowed in an http(s) authority"
    );
    let err = Authority::parse(b"0x7f.1").unwrap_err();
    assert!(
        err.to_string()
            .contains("not a dotted-decimal IPv4 address"),
        "{err}"
    );
}

/// RFC 6066 §3: SNI is an ASCII DNS name, no trailing dot, no IP literal.
#[test]
fn sni_table() {
    #[rustfmt::skip]
    let cases: &[(&[u8], Result<&str, K>)] = &[
        (b"example.com", Ok("example.com")),
        (b"WWW.Example.COM", Ok("www.example.com")),
        (b"a", Ok("a")),
        (b"xn--bcher-kva.example", Ok("xn--bcher-kva.example")),
        (b"example.com.", Err(K::TrailingDot)),
        (b".", Err(K::TrailingDot)),
        (b"", Err(K::Empty)),
        (b"192.0.2.1", Err(K::IpLiteral)),
        (b"127.1", Err(K::NonCanonicalIpv4)),
        (b"[::1]", Err(K::InvalidCharacter)),
        (b"example.com:443", Err(K::InvalidCharacter)),
        (b"a..b", Err(K::EmptyLabel)),
        ("bücher.example".as_bytes(), Err(K::NonAscii)),
        (b"*.example.com", Err(K::InvalidCharacter)),
    ];
    for &(input, want) in cases {
        let got = HostName::from_sni(input);
        assert_eq!(
            got.as_ref().map(HostName::as_str).map_err(|e| e.kind()),
            want,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

/// Configuration names: Unicode converted with UTS 46 (RFC 5891 A-labels), ASCII validated.
#[cfg(feature = "idna")]
#[test]
fn config_table() {
    #[rustfmt::skip]
    let cases: &[(&str, Result<&str, K>)] = &[
        ("example.com", Ok("example.com")),
        ("Example.COM.", Ok("example.com")),
        ("bücher.example", Ok("xn--bcher-kva.example")),
        ("BÜCHER.example", Ok("xn--bcher-kva.example")),
        ("例え.テスト", Ok("xn--r8jz45g.xn--zckzah")),
        ("faß.de", Ok("xn--fa-hia.de")),
        ("ｅｘａｍｐｌｅ.com", Ok("example.com")),
        ("xn--bcher-kva.example", Ok("xn--bcher-kva.example")),
        ("10.0.0.1", Err(K::IpLiteral)),
        ("a..b", Err(K::EmptyLabel)),
        ("exa mple.com", Err(K::InvalidCharacter)),
        ("bü cher.example", Err(K::Idna)),
        ("\u{200b}.example", Err(K::Idna)),
    ];
    for &(input, want) in cases {
        let got = HostName::from_config(input);
        assert_eq!(
            got.as_ref().map(HostName::as_str).map_err(|e| e.kind()),
            want,
            "{input:?}"
        );
    }
}

/// `Host::parse` takes the bare host production, IPv6 in brackets.
#[test]
fn host_table() {
    #[rustfmt::skip]
    let cases: &[(&[u8], Result<&str, K>)] = &[
        (b"example.com", Ok("example.com")),
        (b"[::1]", Ok("[::1]")),
        (b"192.0.2.1", Ok("192.0.2.1")),
        (b"example.com:443", Err(K::TrailingGarbage)),
        (b"[::1]:443", Err(K::TrailingGarbage)),
        (b"::1", Err(K::Empty)),
    ];
    for &(input, want) in cases {
        let got = Host::parse(input).map(|h| h.to_string());
        assert_eq!(
            got.as_deref().map_err(|e| e.kind()),
            want,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

/// RFC 9110 §4.3.1 / RFC 6454: origins compare with the default port filled in.
#[test]
fn origin_table() {
    #[rustfmt::skip]
    let equal: &[(&str, &str)] = &[
        ("https://example.com", "https://EXAMPLE.com:443"),
        ("https://example.com", "https://example.com.:0443"),
        ("http://example.com", "http://example.com:80"),
        ("https://[::1]", "https://[0:0::1]:443"),
    ];
    for (a, b) in equal {
        assert_eq!(
            a.parse::<Origin>().unwrap(),
            b.parse::<Origin>().unwrap(),
            "{a} vs {b}"
        );
    }
    #[rustfmt::skip]
    let different: &[(&str, &str)] = &[
        ("https://example.com", "http://example.com"),
        ("https://example.com", "https://example.com:8443"),
        ("http://example.com:443", "https://example.com"),
        ("https://a.example.com", "https://b.example.com"),
    ];
    for (a, b) in different {
        assert_ne!(
            a.parse::<Origin>().unwrap(),
            b.parse::<Origin>().unwrap(),
            "{a} vs {b}"
        );
    }
    assert_eq!(
        "https://Example.com:443"
            .parse::<Origin>()
            .unwrap()
            .to_string(),
        "https://example.com"
    );
    assert_eq!(
        "http://example.com:443"
            .parse::<Origin>()
            .unwrap()
            .to_string(),
        "http://example.com:443"
    );
    for bad in [
        "example.com",
        "ftp://example.com",
        "https://",
        "https://a/",
        "https://u@a",
        "https//a",
    ] {
        assert!(bad.parse::<Origin>().is_err(), "{bad}");
    }
    let err = Origin::parse(b"https://a.example:99999").unwrap_err();
    assert_eq!((err.kind(), err.offset()), (K::PortOutOfRange, 18));
    assert_eq!(Origin::parse(b"ftp://a").unwrap_err().kind(), K::BadScheme);
}

const NO_HOST: [&[u8]; 0] = [];

/// A target-selection row: target or `:authority`, Host values, expected outcome.
type TargetRow = (
    Option<&'static [u8]>,
    &'static [&'static [u8]],
    Result<(&'static str, TargetSource), T>,
);

/// RFC 9112 §3.2, §3.2.2: HTTP/1.1 target selection.
#[test]
fn h1_target_table() {
    #[rustfmt::skip]
    let cases: &[TargetRow] = &[
        (None, &[b"example.com"], Ok(("example.com", TargetSource::Host))),
        (None, &[b"Example.COM:443"], Ok(("example.com:443", TargetSource::Host))),
        (None, &[b"example.com."], Ok(("example.com", TargetSource::Host))),
        (None, &[], Err(T::MissingHost)),
        (None, &[b"a.example", b"a.example"], Err(T::DuplicateHost)),
        (None, &[b"a.example", b"b.example"], Err(T::DuplicateHost)),
        (None, &[b""], Err(T::InvalidHost)),
        (None, &[b"user@a.example"], Err(T::InvalidHost)),
        (None, &[b"a.example:99999"], Err(T::InvalidHost)),
        (Some(b"a.example"), &[b"b.example"], Ok(("a.example", TargetSource::AbsoluteForm))),
        (Some(b"A.example:8443"), &[b"a.example"], Ok(("a.example:8443", TargetSource::AbsoluteForm))),
        (Some(b"a.example"), &[], Err(T::MissingHost)),
        (Some(b"a.example"), &[b"b.example", b"c.example"], Err(T::DuplicateHost)),
        (Some(b"a.example"), &[b"bad host"], Err(T::InvalidHost)),
        (Some(b"user@a.example"), &[b"a.example"], Err(T::InvalidTarget)),
        (Some(b""), &[b"a.example"], Err(T::InvalidTarget)),
    ];
    for &(target, hosts, want) in cases {
        let got = RequestTarget::from_h1(target, hosts.iter().copied());
        let got = got
            .as_ref()
            .map(|t| (t.authority().to_string(), t.source()))
            .map_err(|e| e.kind());
        let want = want.map(|(a, s)| (a.to_owned(), s));
        assert_eq!(got, want, "target {target:?} hosts {hosts:?}");
    }
}

/// RFC 9113 §8.3.1: HTTP/2 target selection.
#[test]
fn h2_target_table() {
    #[rustfmt::skip]
    let cases: &[TargetRow] = &[
        (Some(b"example.com"), &[], Ok(("example.com", TargetSource::AuthorityPseudo))),
        (Some(b"EXAMPLE.com:443"), &[], Ok(("example.com:443", TargetSource::AuthorityPseudo))),
        (Some(b"example.com"), &[b"example.com"], Ok(("example.com", TargetSource::AuthorityPseudo))),
        (Some(b"example.com"), &[b"EXAMPLE.COM."], Ok(("example.com", TargetSource::AuthorityPseudo))),
        (Some(b"example.com"), &[b"other.example"], Err(T::HostMismatch)),
        (Some(b"example.com"), &[b"example.com:8443"], Err(T::HostMismatch)),
        (Some(b"example.com:443"), &[b"example.com"], Err(T::HostMismatch)),
        (Some(b"example.com"), &[b"a", b"b"], Err(T::DuplicateHost)),
        (Some(b"example.com"), &[b"bad host"], Err(T::InvalidHost)),
        (None, &[b"example.com"], Ok(("example.com", TargetSource::Host))),
        (None, &[b"example.com", b"example.com"], Err(T::DuplicateHost)),
        (None, &[], Err(T::MissingAuthority)),
        (Some(b""), &[], Err(T::InvalidAuthority)),
        (Some(b"user@example.com"), &[], Err(T::InvalidAuthority)),
        (None, &[b""], Err(T::InvalidHost)),
    ];
    for &(pseudo, hosts, want) in cases {
        let got = RequestTarget::from_h2(pseudo, hosts.iter().copied());
        let got = got
            .as_ref()
            .map(|t| (t.authority().to_string(), t.source()))
            .map_err(|e| e.kind());
        let want = want.map(|(a, s)| (a.to_owned(), s));
        assert_eq!(got, want, ":authority {pseudo:?} hosts {hosts:?}");
    }
    assert!(RequestTarget::from_h2(Some(b"a"), NO_HOST).is_ok());
}

#[test]
fn target_error_codes_and_rules() {
    let kinds = [
        (T::MissingHost, "missing-host", "RFC 9112 §3.2"),
        (T::DuplicateHost, "duplicate-host", "RFC 9112 §3.2"),
        (T::InvalidHost, "invalid-host", "RFC 9112 §3.2"),
        (T::InvalidTarget, "invalid-target", "RFC 9112 §3.2.2"),
        (T::MissingAuthority, "missing-authority", "RFC 9113 §8.3.1"),
        (T::InvalidAuthority, "invalid-authority", "RFC 9113 §8.3.1"),
        (
            T::HostMismatch,
            "host-authority-mismatch",
            "RFC 9113 §8.3.1",
        ),
        (
            T::UnsupportedScheme,
            "unsupported-scheme",
            "RFC 9113 §8.3.1",
        ),
    ];
    for (kind, code, rule) in kinds {
        assert_eq!((kind.code(), kind.rule()), (code, rule));
    }
    let err = RequestTarget::from_h1(None, [&b"a:99999"[..]]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Host header is not a valid authority (RFC 9112 §3.2): invalid authority at byte 2: port is larger than 65535"
    );
}

#[test]
fn target_origin_uses_own_scheme_first() {
    let t = RequestTarget::from_h1(None, [&b"a.example:80"[..]]).unwrap();
    assert_eq!(t.origin(Scheme::Https).to_string(), "https://a.example:80");
    let t = t.with_scheme(Scheme::Http);
    assert_eq!(t.origin(Scheme::Https).to_string(), "http://a.example");
}

#[cfg(feature = "http")]
mod http_feature {
    use super::*;

    fn request(version: http::Version, uri: &str, hosts: &[&str]) -> http::Request<()> {
        let mut b = http::Request::get(uri).version(version);
        for h in hosts {
            b = b.header(http::header::HOST, *h);
        }
        b.body(()).expect("valid request")
    }

    /// RFC 9113 §8.3.1 with the scheme known: Host without port equals `:authority` with
    /// the scheme's default port.
    #[test]
    fn from_request_table() {
        use http::Version as V;
        #[rustfmt::skip]
        type Row = (V, &'static str, &'static [&'static str], Result<&'static str, T>);
        let cases: &[Row] = &[
            (V::HTTP_11, "/", &["Example.com"], Ok("example.com")),
            (V::HTTP_11, "/", &[], Err(T::MissingHost)),
            (V::HTTP_11, "/", &["a", "b"], Err(T::DuplicateHost)),
            (
                V::HTTP_11,
                "http://a.example/x",
                &["b.example"],
                Ok("a.example"),
            ),
            (V::HTTP_10, "/", &["a.example"], Ok("a.example")),
            (V::HTTP_2, "https://a.example/", &[], Ok("a.example")),
            (
                V::HTTP_2,
                "https://a.example/",
                &["a.example:443"],
                Ok("a.example"),
            ),
            (
                V::HTTP_2,
                "https://a.example:443/",
                &["a.example"],
                Ok("a.example:443"),
            ),
            (
                V::HTTP_2,
                "http://a.example/",
                &["a.example:443"],
                Err(T::HostMismatch),
            ),
            (
                V::HTTP_2,
                "https://a.example/",
                &["b.example"],
                Err(T::HostMismatch),
            ),
            (V::HTTP_2, "/", &["a.example"], Ok("a.example")),
            (V::HTTP_2, "/", &[], Err(T::MissingAuthority)),
            (
                V::HTTP_2,
                "ftp://a.example/",
                &[],
                Err(T::UnsupportedScheme),
            ),
        ];
        for &(version, uri, hosts, want) in cases {
            let got = RequestTarget::from_request(&request(version, uri, hosts));
            let got = got
                .as_ref()
                .map(|t| t.authority().to_string())
                .map_err(|e| e.kind());
            assert_eq!(
                got.as_deref().map_err(|e| *e),
                want,
                "{version:?} {uri} {hosts:?}"
            );
        }
        let req = request(V::HTTP_2, "https://a.example/", &[]);
        let (parts, ()) = req.into_parts();
        let t = RequestTarget::from_parts(&parts).unwrap();
        assert_eq!(t.scheme(), Some(Scheme::Https));
    }

    /// RFC 9113 §8.3.1: every HTTP/2 request but CONNECT names a scheme, yet an `http::Uri`
    /// holds one only beside an authority, so HTTP/2 libraries drop `:scheme` when
    /// `:authority` is absent. The target reports the scheme as unknown rather than as never
    /// named; HTTP/1.1 origin-form names none (RFC 9112 §3.3: the connection's).
    #[test]
    fn scheme_lost_without_authority_is_unknown() {
        use http::Version as V;
        type Row = (
            V,
            &'static str,
            &'static [&'static str],
            Option<Scheme>,
            bool,
        );
        #[rustfmt::skip]
        let cases: &[Row] = &[
            (V::HTTP_2, "/", &["a.example"], None, true),
            (V::HTTP_2, "/x?y", &["a.example:443"], None, true),
            (V::HTTP_3, "/", &["a.example"], None, true),
            (V::HTTP_2, "https://a.example/", &[], Some(Scheme::Https), false),
            (V::HTTP_2, "http://a.example/", &[], Some(Scheme::Http), false),
            (V::HTTP_2, "http://a.example/", &["a.example"], Some(Scheme::Http), false),
            // CONNECT (authority-form) has no :scheme to lose.
            (V::HTTP_2, "a.example:443", &[], None, false),
            (V::HTTP_11, "/", &["a.example"], None, false),
            (V::HTTP_11, "http://a.example/", &["a.example"], Some(Scheme::Http), false),
            (V::HTTP_10, "/", &["a.example"], None, false),
        ];
        for &(version, uri, hosts, scheme, unknown) in cases {
            let req = request(version, uri, hosts);
            let t = RequestTarget::from_request(&req).unwrap();
            let (parts, ()) = req.into_parts();
            assert_eq!(
                RequestTarget::from_parts(&parts).unwrap(),
                t,
                "{version:?} {uri}"
            );
            assert_eq!(
                (t.scheme(), t.scheme_unknown()),
                (scheme, unknown),
                "{version:?} {uri} {hosts:?}"
            );
            let named = t.clone().with_scheme(Scheme::Http);
            assert_eq!(
                (named.scheme(), named.scheme_unknown()),
                (Some(Scheme::Http), false)
            );
        }
        // The raw pseudo-header API learns the scheme from its caller.
        let t = RequestTarget::from_h2(None, [&b"a.example"[..]]).unwrap();
        assert!(!t.scheme_unknown());
    }
}
