//! Differential test against `http::uri::Authority` over a generated ASCII corpus.
//!
//! Where both accept, both must see the same host (after our normalisation) and port.
//! Where they disagree, the input must fall in one of the documented, intended
//! differences below; anything else fails the test.

use std::str::FromStr;

use misdirect_authority::{Authority, AuthorityErrorKind as K, Host};

/// Why we reject what `http` accepts. Each entry is a deliberate server rule.
fn intended_rejection(input: &[u8], kind: K) -> Option<&'static str> {
    let reason = match kind {
        K::Userinfo => "userinfo: RFC 9110 §4.2.4 makes it an error for http(s); http keeps it",
        K::BadPort | K::PortOutOfRange => {
            "port: http accepts any digits and some non-digits; we require 0-65535"
        }
        K::ZoneId => "zone ids: meaningless off-host, http accepts %25 in brackets",
        K::IpvFuture => "IPvFuture: no server can route it",
        K::BadIpv6 => "IP literal: http accepts brackets around anything IPv6-shaped",
        K::NonCanonicalIpv4 => "numeric last label: dotted-decimal IPv4 only (RFC 3986 §3.2.2)",
        K::EmptyLabel => "empty labels: not a DNS name (RFC 1034 §3.1)",
        K::LabelTooLong | K::NameTooLong => "DNS length limits (RFC 1035 §2.3.4)",
        K::PercentEncoding => "percent-encoding in host names: never needed, invites mismatches",
        K::Empty => "empty host: RFC 9110 §4.2.1-4.2.2",
        K::TrailingGarbage => "bytes after `]`",
        // Only RFC 3986 reg-name characters that DNS names do not use.
        K::InvalidCharacter if input.iter().any(|b| b"!$&'()*+,;=~".contains(b)) => {
            "RFC 3986 sub-delims and `~` are not DNS host name characters (RFC 1123 §2.1)"
        }
        K::InvalidCharacter if input.iter().skip(1).any(|b| b"[]".contains(b)) => {
            "brackets inside a reg-name: http accepts `a[]`, RFC 3986 allows them only around an IP literal"
        }
        _ => return None,
    };
    Some(reason)
}

/// Why we accept what `http` rejects.
fn intended_acceptance(_input: &[u8]) -> Option<&'static str> {
    None
}

fn same_value(ours: &Authority, theirs: &http::uri::Authority) -> bool {
    let their_host = theirs.host();
    let host_ok = match ours.host() {
        Host::Ipv6(v6) => their_host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::Ipv6Addr>()
            .is_ok_and(|t| t == *v6),
        Host::Ipv4(v4) => their_host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|t| t == *v4),
        Host::Name(name) => {
            let lower = their_host.to_ascii_lowercase();
            name.as_str() == lower.strip_suffix('.').unwrap_or(&lower)
        }
        other => panic!("unexpected host {other:?}"),
    };
    host_ok && ours.port() == theirs.port_u16()
}

/// A deterministic corpus: every string of length 1 to 3 over a small alphabet, plus
/// structured variations of realistic authorities.
fn corpus() -> Vec<Vec<u8>> {
    let alphabet: &[u8] = b"aZ9-_.:[]@%!~ /\x7f";
    let mut out: Vec<Vec<u8>> = vec![Vec::new()];
    let mut frontier = vec![Vec::new()];
    for _ in 0..3 {
        let mut next = Vec::new();
        for prefix in &frontier {
            for &b in alphabet {
                let mut s: Vec<u8> = prefix.clone();
                s.push(b);
                next.push(s);
            }
        }
        out.extend(next.iter().cloned());
        frontier = next;
    }
    let hosts = [
        "example.com",
        "EXAMPLE.com.",
        "a..b",
        ".a",
        "a.",
        "127.0.0.1",
        "127.1",
        "0x7f.1",
        "1.2.3.999",
        "[::1]",
        "[fe80::1%25en0]",
        "[v1.x]",
        "[::1",
        "::1",
        "[not-an-ip]",
        "user@host",
        "u:p@host",
        "ex%41mple.com",
        "a b",
        "a!b.com",
        "a~b",
        "my_host",
        "xn--",
        "x-.y",
        "-x.y",
        "[::ffff:1.2.3.4]",
        "",
    ];
    let ports = [
        "", ":", ":0", ":443", ":0443", ":65535", ":65536", ":99999", ":abc", ":-1", "::",
    ];
    for h in hosts {
        for p in ports {
            out.push(format!("{h}{p}").into_bytes());
        }
    }
    out.push(format!("{}.com", "a".repeat(64)).into_bytes());
    out.push(format!("{}a", "a.".repeat(127)).into_bytes());
    out
}

#[test]
fn agrees_with_http_except_where_documented() {
    let mut unexplained = Vec::new();
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    let corpus = corpus();
    for input in &corpus {
        let Ok(text) = std::str::from_utf8(input) else {
            continue;
        };
        let ours = Authority::parse(input);
        let theirs = http::uri::Authority::from_str(text);
        match (&ours, &theirs) {
            (Ok(o), Ok(t)) if !same_value(o, t) => {
                unexplained.push(format!("{text:?}: ours {o}, http {t}"));
            }
            (Ok(_), Ok(_)) | (Err(_), Err(_)) => {}
            (Err(e), Ok(_)) => match intended_rejection(input, e.kind()) {
                Some(reason) => *counts.entry(reason).or_default() += 1,
                None => unexplained.push(format!("{text:?}: we reject ({e}), http accepts")),
            },
            (Ok(o), Err(_)) => match intended_acceptance(input) {
                Some(reason) => *counts.entry(reason).or_default() += 1,
                None => unexplained.push(format!("{text:?}: we accept ({o}), http rejects")),
            },
        }
    }
    assert!(corpus.len() > 4000, "corpus shrank: {}", corpus.len());
    assert!(
        unexplained.is_empty(),
        "{} unexplained differences:\n{}",
        unexplained.len(),
        unexplained.join("\n")
    );
    // The documented differences are real: the corpus exercises the main ones.
    for must in [
        K::Userinfo,
        K::PortOutOfRange,
        K::ZoneId,
        K::NonCanonicalIpv4,
        K::EmptyLabel,
    ] {
        let reason = intended_rejection(b"", must).expect("documented");
        assert!(
            counts.get(reason).copied().unwrap_or(0) > 0,
            "never exercised: {reason}"
        );
    }
}
