//! Properties over random virtual-host tables, connections and requests.

use std::net::IpAddr;
use std::sync::Arc;

use misdirect_authority::{Host, HostName, Origin, RequestTarget, Scheme};
use misdirect_certmatch::{Identities, Pattern};
use misdirect_coalesce::{
    Alpn, ClientAuth, ClientCert, ConnectionContext, Decision, Policy, PooledConnection,
    ReuseDecision, ReuseMode, ReusePolicy, TlsVersion, TrustAnchorsId, VerifiedClientCert,
    VirtualHost, VirtualHosts, decide,
};
use proptest::prelude::*;

const PATTERNS: &[&str] = &[
    "h0.x.test",
    "h1.x.test",
    "h2.x.test",
    "*.x.test",
    "y.test",
    "h0.y.test",
    "*.y.test",
];
const HOSTS: &[&str] = &[
    "h0.x.test",
    "h1.x.test",
    "h2.x.test",
    "h3.x.test",
    "y.test",
    "h0.y.test",
    "h5.y.test",
    "z.test",
    "a.b.x.test",
    "x.test",
];

#[derive(Clone, Debug)]
struct VhostSpec {
    served: Vec<usize>,
    cert: Vec<usize>,
    client_auth: u8,
    min_tls13: Option<bool>,
    alpn_h2_only: bool,
    policy: Option<u8>,
}

#[derive(Clone, Debug)]
struct Case {
    vhosts: Vec<VhostSpec>,
    sni: Option<usize>,
    cc: u8,
    tls13: bool,
    h2: bool,
    host: usize,
    port: Option<u16>,
    scheme: Option<bool>,
}

fn vhost_spec() -> impl Strategy<Value = VhostSpec> {
    (
        prop::collection::vec(0..PATTERNS.len(), 1..3),
        prop::collection::vec(0..PATTERNS.len(), 0..4),
        0u8..5,
        prop::option::of(any::<bool>()),
        any::<bool>(),
        prop::option::of(0u8..3),
    )
        .prop_map(
            |(served, cert, client_auth, min_tls13, alpn_h2_only, policy)| VhostSpec {
                served,
                cert,
                client_auth,
                min_tls13,
                alpn_h2_only,
                policy,
            },
        )
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(vhost_spec(), 1..5),
        prop::option::of(0..HOSTS.len()),
        0u8..3,
        any::<bool>(),
        any::<bool>(),
        0..HOSTS.len(),
        prop::option::of(prop::sample::select(vec![443u16, 8443])),
        prop::option::of(any::<bool>()),
    )
        .prop_map(|(vhosts, sni, cc, tls13, h2, host, port, scheme)| Case {
            vhosts,
            sni,
            cc,
            tls13,
            h2,
            host,
            port,
            scheme,
        })
}

fn pattern(i: usize) -> Pattern {
    PATTERNS[i].parse().expect("valid pattern")
}

fn policy_of(n: u8) -> Policy {
    [Policy::Strict, Policy::Secure, Policy::CertOnly][n as usize]
}

fn client_auth(n: u8) -> ClientAuth {
    match n {
        0 => ClientAuth::None,
        1 => ClientAuth::Optional(TrustAnchorsId::new(1)),
        2 => ClientAuth::Optional(TrustAnchorsId::new(2)),
        3 => ClientAuth::Required(TrustAnchorsId::new(1)),
        _ => ClientAuth::Required(TrustAnchorsId::new(2)),
    }
}

fn client_cert(n: u8) -> ClientCert {
    match n {
        0 => ClientCert::None,
        n => ClientCert::Verified(VerifiedClientCert::assertion(TrustAnchorsId::new(
            u32::from(n),
        ))),
    }
}

/// Builds the table, or `None` when two virtual hosts serve the same pattern.
fn build(case: &Case, policy: Policy, warn_only: bool, overrides: bool) -> Option<VirtualHosts> {
    let mut b = VirtualHosts::builder(Scheme::Https);
    b.port(443);
    for (i, spec) in case.vhosts.iter().enumerate() {
        let cert = Identities::from_patterns(spec.cert.iter().map(|&p| pattern(p)));
        let mut v = VirtualHost::new(format!("v{i}"), Arc::new(cert))
            .patterns_from(spec.served.iter().map(|&p| pattern(p)))
            .client_auth(client_auth(spec.client_auth));
        if let Some(tls13) = spec.min_tls13 {
            v = v.min_tls(if tls13 {
                TlsVersion::Tls13
            } else {
                TlsVersion::Tls12
            });
        }
        if spec.alpn_h2_only {
            v = v.alpn([Alpn::H2]);
        }
        if let (true, Some(p)) = (overrides, spec.policy) {
            v = v.policy(policy_of(p));
        }
        let id = b.add(v);
        if i == 0 {
            b.default_vhost(id);
        }
    }
    b.policy(policy).warn_only(warn_only).build().ok()
}

fn context(case: &Case, vhosts: &VirtualHosts) -> ConnectionContext {
    let mut ctx = ConnectionContext::new()
        .client_cert(client_cert(case.cc))
        .tls_version(if case.tls13 {
            TlsVersion::Tls13
        } else {
            TlsVersion::Tls12
        })
        .alpn(if case.h2 { Alpn::H2 } else { Alpn::Http11 });
    let mut presented = vhosts.default_vhost();
    if let Some(i) = case.sni {
        let name = HostName::from_sni(HOSTS[i].as_bytes()).expect("valid");
        presented = vhosts.lookup(&Host::Name(name.clone())).or(presented);
        ctx = ctx.sni(name);
    }
    match presented {
        Some(v) => ctx.presented(v),
        None => ctx,
    }
}

fn target(case: &Case) -> RequestTarget {
    let authority = match case.port {
        Some(port) => format!("{}:{port}", HOSTS[case.host]),
        None => HOSTS[case.host].to_owned(),
    };
    let t = RequestTarget::from_h2(Some(authority.as_bytes()), std::iter::empty()).expect("valid");
    match case.scheme {
        Some(true) => t.with_scheme(Scheme::Https),
        Some(false) => t.with_scheme(Scheme::Http),
        None => t,
    }
}

fn client_auth_met(required: ClientAuth, state: ClientCert) -> bool {
    match (required, state) {
        (ClientAuth::Required(want), ClientCert::Verified(got)) => want == got.anchors(),
        (ClientAuth::Required(_), _) => false,
        (ClientAuth::Optional(want), ClientCert::Verified(got)) => want == got.anchors(),
        _ => true,
    }
}

fn served_vhost(d: Decision) -> Option<misdirect_coalesce::VhostId> {
    match d {
        Decision::Serve {
            vhost,
            warning: None,
        } => Some(vhost),
        _ => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Serve ⇒ the certificate covers the host and the client-certificate requirement is
    /// met by the vhost's own anchors, at every level, with or without warn_only.
    #[test]
    fn serve_implies_cover_and_client_cert(case in case()) {
        for level in [Policy::Strict, Policy::Secure, Policy::CertOnly] {
            for warn_only in [false, true] {
                let Some(vhosts) = build(&case, level, warn_only, true) else { return Ok(()) };
                let ctx = context(&case, &vhosts);
                let t = target(&case);
                if let Decision::Serve { vhost, .. } = decide(&vhosts, &ctx, &t) {
                    let v = vhosts.get(vhost).expect("known");
                    prop_assert!(client_auth_met(v.client_auth_required(), ctx.client_cert_state()));
                    let cert = ctx.presented_vhost().and_then(|p| vhosts.get(p)).map(|p| p.certificate().clone());
                    prop_assert!(cert.is_some_and(|c| c.covers(t.host())), "served uncovered host");
                }
            }
        }
    }

    /// Whatever Strict serves, Secure serves (the same way); whatever Secure serves,
    /// CertOnly serves.
    #[test]
    fn levels_are_monotone(case in case()) {
        let decisions: Option<Vec<_>> = [Policy::Strict, Policy::Secure, Policy::CertOnly]
            .into_iter()
            .map(|level| {
                let vhosts = build(&case, level, false, false)?;
                let ctx = context(&case, &vhosts);
                Some(decide(&vhosts, &ctx, &target(&case)))
            })
            .collect();
        let Some(d) = decisions else { return Ok(()) };
        if let Some(v) = served_vhost(d[0]) {
            prop_assert_eq!(served_vhost(d[1]), Some(v));
        }
        if let Some(v) = served_vhost(d[1]) {
            prop_assert_eq!(served_vhost(d[2]), Some(v));
        }
    }

    /// warn_only reports exactly the reason the policy gives, and changes nothing else; a
    /// refusal of an uncovered name or for the client-certificate rule stays a refusal.
    #[test]
    fn warn_only_keeps_the_reason(case in case()) {
        for level in [Policy::Strict, Policy::Secure, Policy::CertOnly] {
            let (Some(plain), Some(warn)) = (build(&case, level, false, true), build(&case, level, true, true)) else {
                return Ok(());
            };
            let t = target(&case);
            let p = decide(&plain, &context(&case, &plain), &t);
            let w = decide(&warn, &context(&case, &warn), &t);
            prop_assert_eq!(p.reason(), w.reason());
            match p {
                Decision::Serve { .. } | Decision::NotFound | Decision::BadRequest(_) => prop_assert_eq!(p, w),
                Decision::Misdirected { reason: r, vhost } => {
                    // A 421 names the virtual host serving the host, as resolving it would.
                    prop_assert_eq!(vhost, plain.resolve(t.host()));
                    let served_with_warning = matches!(w, Decision::Serve { warning: Some(x), .. } if x == r);
                    prop_assert!(w == p || served_with_warning, "{:?} vs {:?}", p, w);
                    let ctx = context(&case, &warn);
                    let covered = ctx.presented_vhost().and_then(|v| warn.get(v)).is_some_and(|v| v.certificate().covers(t.host()));
                    if !covered {
                        prop_assert_eq!(w, p, "warn_only served a name the certificate does not cover");
                    }
                }
                _ => prop_assert!(false, "unexpected decision {p:?}"),
            }
        }
    }

    /// A client reuses a connection for another origin only if the certificate covers it,
    /// the origin was not misdirected there and the ports are equal.
    #[test]
    fn client_reuse_is_safe(
        cert in prop::collection::vec(0..PATTERNS.len(), 0..4),
        own in 0..HOSTS.len(),
        other in 0..HOSTS.len(),
        other_port in prop::sample::select(vec![443u16, 8443]),
        misdirect_first in any::<bool>(),
        mode in prop::sample::select(vec![ReuseMode::Exact, ReuseMode::DnsOverlap, ReuseMode::IpOverlap, ReuseMode::OriginFrame]),
        overlap in any::<bool>(),
    ) {
        let ids = Arc::new(Identities::from_patterns(cert.iter().map(|&p| pattern(p))));
        let peer: IpAddr = "192.0.2.1".parse().expect("valid");
        let own: Origin = format!("https://{}", HOSTS[own]).parse().expect("valid");
        let origin: Origin = format!("https://{}:{other_port}", HOSTS[other]).parse().expect("valid");
        let mut conn = PooledConnection::new(own.clone(), peer, ids.clone());
        if misdirect_first {
            conn.on_misdirected(&origin);
        }
        let addrs: Vec<IpAddr> = if overlap { vec![peer] } else { vec!["198.51.100.1".parse().expect("valid")] };
        let decision = ReusePolicy::new(mode).may_reuse(&conn, &origin, &addrs, |h| ids.covers(h));
        if decision == ReuseDecision::Reuse && origin != own {
            prop_assert!(ids.covers(origin.host()));
            prop_assert!(!conn.is_misdirected(&origin));
            prop_assert_eq!(origin.port(), own.port());
        }
        if misdirect_first {
            prop_assert_ne!(decision, ReuseDecision::Reuse);
        }
    }
}
