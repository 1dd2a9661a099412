//! `HostIndex`: behaviour, duplicates, and agreement with a slow reference matcher.
// A test that cannot unwrap has failed: panicking is the report.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use misdirect_authority::Host;
use misdirect_certmatch::{
    CertId, Certificate, Coverage, DnsPattern, ErrorKind, Finding, HostIndex, HostIndexBuilder,
    Identities, MatchKind, Pattern, VirtualHost,
};
use proptest::prelude::*;

fn host(text: &str) -> Host {
    text.parse().unwrap()
}

fn pattern(text: &str) -> Pattern {
    text.parse().unwrap()
}

/// The slow reference: a linear scan with `Pattern::covers`, exact (or IP) entries
/// before wildcard entries.
fn reference(entries: &[Pattern], host: &Host) -> Vec<usize> {
    let exact = entries
        .iter()
        .position(|p| !p.as_dns().is_some_and(DnsPattern::is_wildcard) && p.covers(host));
    let wildcard = entries
        .iter()
        .position(|p| p.as_dns().is_some_and(DnsPattern::is_wildcard) && p.covers(host));
    exact.into_iter().chain(wildcard).collect()
}

/// What `Coverage` says about `host` served by one virtual host while one certificate
/// carries `entries`: `Some(true)` if no certificate-less finding names it. `None` for a
/// host name that is not a DNS-ID (and so cannot be served as a pattern).
fn coverage_covers(entries: &[Pattern], host: &Host) -> Option<bool> {
    let served = match host.as_name() {
        Some(name) => Pattern::Dns(DnsPattern::exact(name).ok()?),
        None => Pattern::Ip(host.ip()?),
    };
    let cert = Certificate::new(
        CertId::new("CN=entries", [0; 32]),
        Identities::from_patterns(entries.iter().cloned()),
    );
    let report = Coverage::analyse(&[cert], &[VirtualHost::new("probe", [served])]);
    Some(
        !report
            .findings()
            .iter()
            .any(|f| matches!(f, Finding::ServedNotCovered { .. })),
    )
}

/// What `Coverage` says about a certificate carrying only `name` while one virtual host
/// serves `entries`: `None` if the name is left unserved, else the served names under a
/// wildcard (empty for an exact name or a wildcard served whole).
fn coverage_serves(entries: &[Pattern], name: &DnsPattern) -> Option<Vec<Pattern>> {
    let cert = Certificate::new(
        CertId::new("CN=one", [1; 32]),
        Identities::from_patterns([Pattern::Dns(name.clone())]),
    );
    let vhost = VirtualHost::new("entries", entries.iter().cloned());
    let report = Coverage::analyse(&[cert], &[vhost]);
    let mut served = Some(Vec::new());
    for finding in report.findings() {
        match finding {
            Finding::CoveredNotServed { .. } => served = None,
            Finding::WildcardPartlyServed { served: names, .. } => {
                served = Some(names.clone());
            }
            _ => {}
        }
    }
    served
}

#[test]
fn exact_beats_wildcard_and_lookup_all_returns_both() {
    let index = HostIndex::build([
        (pattern("*.example.com"), "wild"),
        (pattern("www.example.com"), "www"),
        (pattern("example.com"), "apex"),
    ])
    .unwrap();
    assert_eq!(index.lookup(&host("www.example.com")), Some(&"www"));
    assert_eq!(index.lookup(&host("api.example.com")), Some(&"wild"));
    assert_eq!(index.lookup(&host("example.com")), Some(&"apex"));
    assert_eq!(index.lookup(&host("a.api.example.com")), None);
    let m = index.lookup_match(&host("API.example.com.")).unwrap();
    assert_eq!(
        (m.kind(), m.position(), *m.value()),
        (MatchKind::Wildcard, 0, "wild")
    );
    let all: Vec<_> = index
        .lookup_all(&host("www.example.com"))
        .map(|m| (m.kind(), *m.value()))
        .collect();
    assert_eq!(
        all,
        [(MatchKind::Exact, "www"), (MatchKind::Wildcard, "wild")]
    );
    assert_eq!(index.lookup_all(&host("nothing.test")).count(), 0);
}

#[test]
fn ip_entries_match_ip_hosts_only() {
    let index = HostIndex::build([
        (pattern("192.0.2.1"), 4),
        (pattern("2001:db8::1"), 6),
        (pattern("::ffff:192.0.2.9"), 9),
    ])
    .unwrap();
    assert_eq!(index.lookup(&host("192.0.2.1")), Some(&4));
    assert_eq!(index.lookup(&host("[2001:db8::1]")), Some(&6));
    assert_eq!(
        index.lookup(&host("192.0.2.9")),
        None,
        "IPv4-mapped is not IPv4"
    );
    assert_eq!(index.lookup(&host("[::ffff:192.0.2.9]")), Some(&9));
    assert_eq!(
        index.lookup_match(&host("192.0.2.1")).unwrap().kind(),
        MatchKind::Ip
    );
}

#[test]
fn duplicates_name_both_entries() {
    let mut builder = HostIndexBuilder::new();
    builder.push_bytes(b"a.example.com", 0).unwrap();
    builder.push_bytes(b"b.example.com", 1).unwrap();
    builder.push_bytes(b"192.0.2.1", 2).unwrap();
    builder.push_bytes(b"A.EXAMPLE.COM", 3).unwrap();
    let err = builder.build().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DuplicatePattern);
    let dup = err.duplicate_entries().unwrap();
    assert_eq!(
        (dup.pattern(), dup.first(), dup.second()),
        ("a.example.com", 0, 3)
    );
    assert_eq!(
        err.to_string(),
        "duplicate name pattern: `a.example.com` is given by entry 0 and again by entry 3"
    );

    let err =
        HostIndex::build([(pattern("192.0.2.1"), ()), (pattern("192.0.2.1"), ())]).unwrap_err();
    assert_eq!(err.duplicate_entries().unwrap().pattern(), "192.0.2.1");

    // A wildcard and the exact name of its parent are different patterns.
    assert!(
        HostIndex::build([(pattern("*.example.com"), ()), (pattern("example.com"), ())]).is_ok()
    );
}

#[test]
fn push_bytes_rejects_invalid_patterns() {
    let mut builder = HostIndexBuilder::new();
    for bad in [
        &b"f*.example.com"[..],
        b"*.com",
        b"",
        b"a_b.example",
        b"example.com.",
    ] {
        assert!(builder.push_bytes(bad, ()).is_err(), "{bad:?}");
    }
    assert!(builder.is_empty());
    builder.push_bytes(b"[2001:db8::5]", ()).unwrap();
    assert_eq!(builder.len(), 1);
}

#[test]
fn iteration_shows_every_entry() {
    let patterns = [
        "*.example.com",
        "www.example.com",
        "192.0.2.1",
        "2001:db8::1",
    ];
    let index = HostIndex::build(patterns.iter().map(|p| (pattern(p), p.to_string()))).unwrap();
    assert_eq!(index.len(), 4);
    assert!(!index.is_empty());
    // Insertion order, whatever the hash seed.
    let seen: Vec<(String, String)> = index
        .iter()
        .map(|(p, v)| (p.to_string(), v.clone()))
        .collect();
    let expected: Vec<(String, String)> = patterns
        .iter()
        .map(|p| (p.to_string(), p.to_string()))
        .collect();
    assert_eq!(seen, expected);
    for (p, _) in index.iter() {
        assert_eq!(p.to_pattern().to_string(), p.to_string());
    }
    assert_eq!(index.get(1), Some(&"www.example.com".to_string()));
}

#[cfg(feature = "psl")]
#[test]
fn public_suffix_wildcards_are_kept_but_never_match() {
    use misdirect_certmatch::PatternRef;

    let index =
        HostIndex::build([(pattern("*.co.uk"), 1), (pattern("*.example.co.uk"), 2)]).unwrap();
    assert_eq!(index.lookup(&host("example.co.uk")), None);
    assert_eq!(index.lookup(&host("www.example.co.uk")), Some(&2));
    let blocked: Vec<_> = index
        .iter()
        .filter(|(p, _)| matches!(p, PatternRef::Wildcard { blocked: true, .. }))
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(blocked, [1]);
    // Still counted for duplicates.
    assert!(HostIndex::build([(pattern("*.co.uk"), ()), (pattern("*.CO.uk"), ())]).is_err());
}

#[test]
fn empty_index() {
    let index: HostIndex<u8> = HostIndexBuilder::new().build().unwrap();
    assert!(index.is_empty());
    assert_eq!(index.lookup(&host("example.com")), None);
    assert_eq!(index.iter().count(), 0);
}

const LABELS: &[&str] = &["a", "b", "c", "www", "xn--bcher-kva", "d1", "e-f"];
const TLDS: &[&str] = &["example", "test", "co.uk"];

fn name_strategy() -> impl Strategy<Value = String> {
    (
        proptest::collection::vec(proptest::sample::select(LABELS), 0..4),
        proptest::sample::select(TLDS),
    )
        .prop_map(|(labels, tld)| {
            let mut name = labels.join(".");
            if !name.is_empty() {
                name.push('.');
            }
            name.push_str(tld);
            name
        })
}

fn pattern_strategy() -> impl Strategy<Value = Pattern> {
    prop_oneof![
        4 => name_strategy().prop_map(|n| pattern(&n)),
        4 => name_strategy().prop_filter_map("wildcard needs two labels", |n| {
            DnsPattern::parse(format!("*.{n}").as_bytes()).ok().map(Pattern::Dns)
        }),
        1 => (0u8..4).prop_map(|i| Pattern::Ip(IpAddr::V4(Ipv4Addr::new(192, 0, 2, i)))),
        1 => (0u16..4).prop_map(|i| Pattern::Ip(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i)))),
    ]
}

fn host_strategy() -> impl Strategy<Value = Host> {
    prop_oneof![
        6 => (name_strategy(), any::<bool>(), any::<bool>()).prop_map(|(n, upper, dot)| {
            let mut text = if upper { n.to_ascii_uppercase() } else { n };
            if dot {
                text.push('.');
            }
            host(&text)
        }),
        1 => (0u8..5).prop_map(|i| Host::from(IpAddr::V4(Ipv4Addr::new(192, 0, 2, i)))),
        1 => (0u16..5).prop_map(|i| Host::from(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i)))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn index_agrees_with_reference(
        patterns in proptest::collection::btree_set(pattern_strategy(), 0..40),
        hosts in proptest::collection::vec(host_strategy(), 1..40),
    ) {
        let entries: Vec<Pattern> = patterns.into_iter().collect();
        let index = HostIndex::build(entries.iter().cloned().zip(0usize..)).unwrap();
        let ids = Identities::from_patterns(entries.iter().cloned());
        for host in &hosts {
            let expected = reference(&entries, host);
            let all: Vec<usize> = index.lookup_all(host).map(|m| m.position()).collect();
            prop_assert_eq!(&all, &expected, "lookup_all {}", host);
            prop_assert_eq!(index.lookup(host).copied(), expected.first().copied(), "lookup {}", host);
            prop_assert_eq!(ids.covers(host), !expected.is_empty(), "covers {}", host);
        }
    }

    /// One wildcard rule everywhere: `Pattern::covers` (the reference), `HostIndex`,
    /// `Identities` and both sides of `Coverage` agree on every name, and every pattern's
    /// example host is covered by it (unless it is a public-suffix wildcard).
    #[test]
    fn matching_index_and_coverage_agree(
        patterns in proptest::collection::btree_set(pattern_strategy(), 0..24),
        hosts in proptest::collection::vec(host_strategy(), 1..24),
    ) {
        let entries: Vec<Pattern> = patterns.into_iter().collect();
        let index = HostIndex::build(entries.iter().cloned().zip(0usize..)).unwrap();
        for host in &hosts {
            let covered = !reference(&entries, host).is_empty();
            prop_assert_eq!(index.lookup(host).is_some(), covered, "index {}", host);
            if let Some(by_coverage) = coverage_covers(&entries, host) {
                prop_assert_eq!(by_coverage, covered, "coverage, certificate side: {}", host);
            }
            let Some(name) = host.as_name().and_then(|n| DnsPattern::exact(n).ok()) else {
                continue;
            };
            prop_assert_eq!(
                coverage_serves(&entries, &name).is_some(),
                covered,
                "coverage, served side: {}", host
            );
        }
        for pattern in entries.iter().filter_map(Pattern::as_dns) {
            let example = Host::Name(pattern.example_host());
            let usable = !pattern.is_public_suffix_wildcard();
            prop_assert_eq!(Pattern::Dns(pattern.clone()).covers(&example), usable, "{}", pattern);
            let alone = HostIndex::build([(Pattern::Dns(pattern.clone()), ())]).unwrap();
            prop_assert_eq!(alone.lookup(&example).is_some(), usable, "{}", pattern);
            if !pattern.is_wildcard() || !usable {
                continue;
            }
            // A wildcard the virtual host does not serve whole is partly served by the
            // exact names it covers, in order, or not served at all.
            let under: Vec<Pattern> = entries
                .iter()
                .filter(|p| {
                    p.as_dns().is_some_and(|d| {
                        !d.is_wildcard() && pattern.matches(&d.example_host())
                    })
                })
                .cloned()
                .collect();
            let expected = if entries.contains(&Pattern::Dns(pattern.clone())) {
                Some(Vec::new())
            } else if under.is_empty() {
                None
            } else {
                Some(under)
            };
            prop_assert_eq!(coverage_serves(&entries, pattern), expected, "{}", pattern);
        }
    }

    #[test]
    fn index_of_n_names_answers_all_n(
        names in proptest::collection::btree_set("[a-z][a-z0-9-]{0,8}[a-z0-9]\\.[a-z]{1,6}\\.[a-z]{2,5}", 1..300),
    ) {
        let names: Vec<String> = names.into_iter().filter(|n| !n.contains("-.")).collect();
        let mut builder = HostIndexBuilder::new();
        for (i, name) in names.iter().enumerate() {
            builder.push_bytes(name.as_bytes(), i).unwrap();
        }
        let index = builder.build().unwrap();
        prop_assert_eq!(index.len(), names.len());
        for (i, name) in names.iter().enumerate() {
            prop_assert_eq!(index.lookup(&host(name)), Some(&i));
        }
    }
}

#[test]
fn a_hundred_thousand_names_answer_themselves() {
    let mut builder = HostIndexBuilder::with_capacity(110_000, 3_000_000);
    for i in 0..100_000u32 {
        builder
            .push_bytes(format!("h{i}.tenant{}.example.com", i % 97).as_bytes(), i)
            .unwrap();
    }
    for t in 0..10_000u32 {
        builder
            .push_bytes(
                format!("*.tenant{t}-7.example.net").as_bytes(),
                1_000_000 + t,
            )
            .unwrap();
    }
    let index = builder.build().unwrap();
    assert_eq!(index.len(), 110_000);
    for i in (0..100_000u32).step_by(7) {
        let name = format!("h{i}.tenant{}.example.com", i % 97);
        assert_eq!(index.lookup(&host(&name)), Some(&i));
    }
    for t in (0..10_000u32).step_by(3) {
        let name = format!("x{t}.tenant{t}-7.example.net");
        assert_eq!(index.lookup(&host(&name)), Some(&(1_000_000 + t)));
    }
    assert_eq!(index.lookup(&host("h1.tenant1.example.org")), None);
    let distinct: BTreeSet<u32> = index.iter().map(|(_, v)| *v).collect();
    assert_eq!(distinct.len(), 110_000);
}
