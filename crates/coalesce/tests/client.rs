//! The client side: RFC 9113 §9.1.1 reuse, RFC 9110 §15.5.20 retry, RFC 8336 ORIGIN sets.

use std::net::IpAddr;
use std::sync::Arc;

use misdirect_authority::Origin;
use misdirect_certmatch::Identities;
use misdirect_coalesce::{
    NoReuse, PooledConnection, RetryAdvice, ReuseDecision, ReuseMode, ReusePolicy,
};
use misdirect_response::OriginFrame;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("valid address")
}

fn origin(s: &str) -> Origin {
    s.parse().expect("valid origin")
}

fn conn() -> PooledConnection {
    let cert = Identities::from_patterns(
        ["*.example.com", "example.com", "other.net"].map(|p| p.parse().expect("valid")),
    );
    PooledConnection::new(
        origin("https://www.example.com"),
        ip("192.0.2.1"),
        Arc::new(cert),
    )
    .resolved([ip("192.0.2.1"), ip("192.0.2.2")])
}

const PEER: &str = "192.0.2.1";
const SIBLING: &str = "192.0.2.2";
const ELSEWHERE: &str = "198.51.100.9";

/// What the row checks, mode, target origin, its addresses, verification result, decision.
type ReuseRow = (
    &'static str,
    ReuseMode,
    &'static str,
    &'static [&'static str],
    bool,
    ReuseDecision,
);

#[test]
fn reuse_table() {
    use NoReuse as N;
    use ReuseDecision::{No, Reuse};
    use ReuseMode::{DnsOverlap as Dns, Exact, IpOverlap as Ip, OriginFrame as Of};
    #[rustfmt::skip]
    let rows: &[ReuseRow] = &[
        ("own origin, any mode", Exact, "https://www.example.com", &[ELSEWHERE], true, Reuse),
        ("own origin, explicit default port", Dns, "https://WWW.example.com:443", &[], true, Reuse),
        ("exact mode refuses other origins", Exact, "https://api.example.com", &[PEER], true, No(N::ExactOnly)),
        ("DNS overlap with the peer (Chromium)", Dns, "https://api.example.com", &[PEER], true, Reuse),
        ("DNS points elsewhere", Dns, "https://api.example.com", &[ELSEWHERE], true, No(N::NoAddressOverlap)),
        ("DNS overlap only with a sibling address", Dns, "https://api.example.com", &[SIBLING], true, No(N::NoAddressOverlap)),
        ("IP overlap with a sibling (Firefox)", Ip, "https://api.example.com", &[SIBLING], true, Reuse),
        ("no overlap at all", Ip, "https://api.example.com", &[ELSEWHERE], true, No(N::NoAddressOverlap)),
        ("certificate does not name the host", Dns, "https://api.other.org", &[PEER], true, No(N::NotCovered)),
        ("wildcard covers one label only", Dns, "https://a.b.example.com", &[PEER], true, No(N::NotCovered)),
        ("port differs", Dns, "https://api.example.com:8443", &[PEER], true, No(N::PortDiffers)),
        ("http is never coalesced", Dns, "http://api.example.com", &[PEER], true, No(N::NotHttps)),
        ("full verification fails (e.g. revoked, pinned)", Dns, "https://api.example.com", &[PEER], false, No(N::VerifyFailed)),
        ("origin frame mode before any frame = DNS overlap", Of, "https://api.example.com", &[PEER], true, Reuse),
        ("origin frame mode before any frame, no overlap", Of, "https://api.example.com", &[ELSEWHERE], true, No(N::NoAddressOverlap)),
    ];
    for &(what, mode, target, addrs, verified, want) in rows {
        let addrs: Vec<IpAddr> = addrs.iter().map(|a| ip(a)).collect();
        let got = ReusePolicy::new(mode).may_reuse(&conn(), &origin(target), &addrs, |_| verified);
        assert_eq!(got, want, "{what}");
    }
}

#[test]
fn verification_runs_for_the_new_host_only_after_cheap_checks() {
    let mut asked = Vec::new();
    let policy = ReusePolicy::new(ReuseMode::DnsOverlap);
    let got = policy.may_reuse(
        &conn(),
        &origin("https://api.example.com"),
        &[ip(PEER)],
        |h| {
            asked.push(h.to_string());
            true
        },
    );
    assert_eq!(got, ReuseDecision::Reuse);
    assert_eq!(asked, ["api.example.com"]);
    let mut called = false;
    policy.may_reuse(&conn(), &origin("https://x.other.org"), &[ip(PEER)], |_| {
        called = true;
        true
    });
    assert!(
        !called,
        "no verification for a host the certificate does not name"
    );
}

#[test]
fn client_certificate_connections_are_not_shared_by_default() {
    let c = conn().with_client_cert(true);
    let api = origin("https://api.example.com");
    let addrs = [ip(PEER)];
    let strict = ReusePolicy::new(ReuseMode::DnsOverlap);
    assert_eq!(
        strict.may_reuse(&c, &api, &addrs, |_| true),
        ReuseDecision::No(NoReuse::ClientCertificate)
    );
    assert_eq!(
        strict
            .share_client_cert(true)
            .may_reuse(&c, &api, &addrs, |_| true),
        ReuseDecision::Reuse
    );
    assert_eq!(
        strict.may_reuse(&c, c.origin(), &addrs, |_| true),
        ReuseDecision::Reuse
    );
}

#[test]
fn going_away_stops_all_reuse() {
    let mut c = conn();
    c.going_away();
    let policy = ReusePolicy::new(ReuseMode::DnsOverlap);
    assert_eq!(
        policy.may_reuse(&c, &origin("https://www.example.com"), &[], |_| true),
        ReuseDecision::No(NoReuse::GoingAway)
    );
}

/// RFC 9110 §15.5.20: retry once on a fresh connection, whatever the method; the origin is
/// not sent on that connection again.
#[test]
fn misdirected_origins_are_remembered() {
    let mut c = conn();
    let api = origin("https://api.example.com");
    let policy = ReusePolicy::new(ReuseMode::DnsOverlap);
    assert_eq!(
        policy.may_reuse(&c, &api, &[ip(PEER)], |_| true),
        ReuseDecision::Reuse
    );
    assert_eq!(
        c.on_misdirected(&api),
        RetryAdvice::RetryOnFreshConnection(api.clone())
    );
    assert_eq!(
        policy.may_reuse(&c, &api, &[ip(PEER)], |_| true),
        ReuseDecision::No(NoReuse::Misdirected)
    );
    // Other origins are unaffected.
    let shop = origin("https://shop.example.com");
    assert_eq!(
        policy.may_reuse(&c, &shop, &[ip(PEER)], |_| true),
        ReuseDecision::Reuse
    );
    // A 421 on the connection made for the origin itself: retrying cannot help.
    let mut fresh = PooledConnection::new(
        api.clone(),
        ip(PEER),
        Arc::new(Identities::from_patterns(["api.example.com"
            .parse()
            .unwrap()])),
    );
    assert_eq!(fresh.on_misdirected(&api), RetryAdvice::GiveUp);
}

/// RFC 8336 §2.3: the first ORIGIN frame sets the origin set to the connection's origin plus
/// the listed ones; later frames add; a 421 removes; invalid entries are ignored.
#[test]
fn origin_frames() {
    let mut c = conn();
    let policy = ReusePolicy::new(ReuseMode::OriginFrame);
    let api = origin("https://api.example.com");
    let shop = origin("https://shop.example.com");
    let frame = OriginFrame::from_origins([
        "https://api.example.com",
        "ftp://x.example.com",
        "https://[::1",
        "https://u@x.example.com",
    ])
    .unwrap();
    assert_eq!(c.on_origin_frame(&frame), 1);
    assert_eq!(c.origin_set().map(|s| s.len()), Some(2));
    // In the set: no DNS needed. Not in the set: refused even with DNS overlap.
    assert_eq!(
        policy.may_reuse(&c, &api, &[], |_| true),
        ReuseDecision::Reuse
    );
    assert_eq!(
        policy.may_reuse(&c, &shop, &[ip(PEER)], |_| true),
        ReuseDecision::No(NoReuse::NotInOriginSet)
    );
    // The certificate still has to cover the origin.
    let uncovered = OriginFrame::from_origins(["https://evil.org"]).unwrap();
    assert_eq!(c.on_origin_frame(&uncovered), 1);
    assert_eq!(
        policy.may_reuse(&c, &origin("https://evil.org"), &[], |_| true),
        ReuseDecision::No(NoReuse::NotCovered)
    );
    // A later frame adds.
    c.on_origin_frame(&OriginFrame::from_origins(["https://shop.example.com"]).unwrap());
    assert_eq!(
        policy.may_reuse(&c, &shop, &[], |_| true),
        ReuseDecision::Reuse
    );
    // A 421 removes the origin from the set, and a later frame cannot put it back.
    c.on_misdirected(&api);
    assert!(!c.origin_set().unwrap().contains(&api));
    c.on_origin_frame(&OriginFrame::from_origins(["https://api.example.com"]).unwrap());
    assert!(!c.origin_set().unwrap().contains(&api));
}

/// RFC 8336 §2.1: ORIGIN frames through a proxy or on cleartext connections are ignored.
#[test]
fn origin_frames_ignored_when_not_authoritative() {
    let mut c = conn().ignore_origin_frames();
    let frame = OriginFrame::from_origins(["https://api.example.com"]).unwrap();
    assert_eq!(c.on_origin_frame(&frame), 0);
    assert!(c.origin_set().is_none());
}
