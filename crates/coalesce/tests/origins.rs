//! The origin set of a connection (RFC 8336 §2.3) over random virtual-host tables and
//! connections: every origin announced is served on the connection without a warning, and
//! every exact name and port served so is announced.

use std::sync::Arc;

use http::{Request, Version};
use misdirect_authority::{Host, HostName, Origin, Scheme};
use misdirect_certmatch::{Identities, Pattern};
use misdirect_coalesce::{
    Alpn, ClientAuth, Handshake, INITIAL_MAX_FRAME_SIZE, Listener, OriginSet, Outcome, Policy,
    TlsVersion, TrustAnchorsId, UnknownHost, VirtualHost, VirtualHosts,
};
use misdirect_response::OriginFrame;
use proptest::prelude::*;

/// Names virtual hosts serve and certificates carry: exact, wildcard and IP.
const PATTERNS: &[&str] = &[
    "a.x.test",
    "b.x.test",
    "*.x.test",
    "y.test",
    "a.y.test",
    "*.y.test",
    "192.0.2.1",
    "[2001:db8::1]",
];

/// Certificates that several virtual hosts may share.
const SHARED_CERTS: &[&[&str]] = &[
    &["*.x.test", "y.test", "a.y.test"],
    &["a.x.test", "b.x.test", "192.0.2.1"],
    &["*.y.test", "y.test", "[2001:db8::1]"],
];

/// What clients send as SNI.
const SNIS: &[&str] = &[
    "a.x.test", "b.x.test", "c.x.test", "y.test", "a.y.test", "z.test",
];

#[derive(Clone, Debug)]
enum Cert {
    Shared(usize),
    Own(Vec<usize>),
}

#[derive(Clone, Debug)]
struct VhostSpec {
    served: Vec<usize>,
    cert: Cert,
    client_auth: u8,
    min_tls13: Option<bool>,
    alpn: u8,
    policy: Option<u8>,
}

#[derive(Clone, Debug)]
struct TableSpec {
    vhosts: Vec<VhostSpec>,
    policy: u8,
    warn_only: bool,
    ports: Vec<u16>,
    unknown: u8,
    default: Option<usize>,
}

#[derive(Clone, Debug)]
struct ConnSpec {
    sni: Option<usize>,
    tls13: bool,
    alpn: Option<u8>,
    client_cert_verified: bool,
}

fn vhost_spec() -> impl Strategy<Value = VhostSpec> {
    let cert = prop_oneof![
        (0..SHARED_CERTS.len()).prop_map(Cert::Shared),
        prop::collection::vec(0..PATTERNS.len(), 0..4).prop_map(Cert::Own),
    ];
    (
        prop::collection::vec(0..PATTERNS.len(), 1..4),
        cert,
        0u8..5,
        prop::option::of(any::<bool>()),
        0u8..4,
        prop::option::of(0u8..3),
    )
        .prop_map(
            |(served, cert, client_auth, min_tls13, alpn, policy)| VhostSpec {
                served,
                cert,
                client_auth,
                min_tls13,
                alpn,
                policy,
            },
        )
}

fn table_spec() -> impl Strategy<Value = TableSpec> {
    (
        prop::collection::vec(vhost_spec(), 1..5),
        0u8..3,
        any::<bool>(),
        prop::sample::select(vec![
            vec![443u16],
            vec![8443],
            vec![443, 8443],
            vec![8443, 443],
        ]),
        0u8..3,
        prop::option::of(0usize..4),
    )
        .prop_map(
            |(vhosts, policy, warn_only, ports, unknown, default)| TableSpec {
                vhosts,
                policy,
                warn_only,
                ports,
                unknown,
                default,
            },
        )
}

fn conn_spec() -> impl Strategy<Value = ConnSpec> {
    (
        prop::option::of(0..SNIS.len()),
        any::<bool>(),
        prop::option::of(0u8..3),
        any::<bool>(),
    )
        .prop_map(|(sni, tls13, alpn, client_cert_verified)| ConnSpec {
            sni,
            tls13,
            alpn,
            client_cert_verified,
        })
}

fn pattern(text: &str) -> Pattern {
    text.parse().expect("valid pattern")
}

fn policy(n: u8) -> Policy {
    [Policy::Strict, Policy::Secure, Policy::CertOnly][usize::from(n)]
}

fn alpn(n: u8) -> Alpn {
    [Alpn::H2, Alpn::Http11, Alpn::Other][usize::from(n)]
}

/// Two trust-anchor sets, required or optional.
fn client_auth(n: u8) -> ClientAuth {
    match n {
        0 => ClientAuth::None,
        1 => ClientAuth::Optional(TrustAnchorsId::new(1)),
        2 => ClientAuth::Optional(TrustAnchorsId::new(2)),
        3 => ClientAuth::Required(TrustAnchorsId::new(1)),
        _ => ClientAuth::Required(TrustAnchorsId::new(2)),
    }
}

/// The listener, or `None` when the table is invalid.
fn listener(spec: &TableSpec) -> Option<Listener> {
    let shared: Vec<Arc<Identities>> = SHARED_CERTS
        .iter()
        .map(|names| Arc::new(Identities::from_patterns(names.iter().map(|n| pattern(n)))))
        .collect();
    let mut b = VirtualHosts::builder(Scheme::Https);
    let mut ids = Vec::new();
    // Each name goes to the first virtual host that asks for it, so most tables are valid.
    let mut taken = [false; PATTERNS.len()];
    for (i, v) in spec.vhosts.iter().enumerate() {
        let served: Vec<Pattern> = v
            .served
            .iter()
            .filter(|&&n| !std::mem::replace(&mut taken[n], true))
            .map(|&n| pattern(PATTERNS[n]))
            .collect();
        let cert = match &v.cert {
            Cert::Shared(c) => shared[*c].clone(),
            Cert::Own(names) => Arc::new(Identities::from_patterns(
                names.iter().map(|&n| pattern(PATTERNS[n])),
            )),
        };
        let mut vhost = VirtualHost::new(format!("v{i}"), cert)
            .patterns_from(served)
            .client_auth(client_auth(v.client_auth));
        if let Some(tls13) = v.min_tls13 {
            vhost = vhost.min_tls(if tls13 {
                TlsVersion::Tls13
            } else {
                TlsVersion::Tls12
            });
        }
        vhost = match v.alpn {
            0 => vhost,
            1 => vhost.alpn([Alpn::H2]),
            2 => vhost.alpn([Alpn::Http11]),
            _ => vhost.alpn([Alpn::H2, Alpn::Http11]),
        };
        if let Some(p) = v.policy {
            vhost = vhost.policy(policy(p));
        }
        ids.push(b.add(vhost));
    }
    let default = spec.default.and_then(|d| ids.get(d).copied());
    if let Some(d) = default {
        b.default_vhost(d);
    }
    b.ports(spec.ports.iter().copied())
        .policy(policy(spec.policy))
        .warn_only(spec.warn_only)
        .unknown_host(match (spec.unknown, default) {
            (0, _) => UnknownHost::Misdirected,
            (1, _) | (_, None) => UnknownHost::NotFound,
            (_, Some(d)) => UnknownHost::Default(d),
        });
    b.build().ok().map(Listener::new)
}

/// The connection's context, made as a server makes it: SNI choice, then the handshake.
fn connection(listener: &Listener, spec: &ConnSpec) -> misdirect_coalesce::ConnectionContext {
    let sni = spec
        .sni
        .map(|i| HostName::from_sni(SNIS[i].as_bytes()).expect("valid SNI"));
    let presented = listener
        .select(sni.as_ref())
        .expect("a table with virtual hosts");
    let mut handshake = Handshake::new(presented)
        .sni(sni)
        .tls_version(if spec.tls13 {
            TlsVersion::Tls13
        } else {
            TlsVersion::Tls12
        })
        .client_certificate_verified(spec.client_cert_verified);
    if let Some(a) = spec.alpn {
        handshake = handshake.alpn(alpn(a));
    }
    listener.on_handshake(handshake)
}

/// Whether an HTTP/2 request for `origin` is served on `conn` without a warning.
fn served(
    listener: &Listener,
    conn: &misdirect_coalesce::ConnectionContext,
    origin: &Origin,
) -> bool {
    let request = Request::get(format!("{origin}/"))
        .version(Version::HTTP_2)
        .body(())
        .expect("an origin is a valid URI prefix");
    let (parts, ()) = request.into_parts();
    matches!(
        listener.on_request(conn, &parts),
        Outcome::Serve { warning: None, .. }
    )
}

/// Every exact name and IP address of every virtual host, on every port served.
fn candidates(listener: &Listener) -> Vec<Origin> {
    let vhosts = listener.vhosts();
    let mut out = Vec::new();
    for (_, vhost) in vhosts.iter() {
        for p in vhost.patterns() {
            let host = match p {
                Pattern::Dns(dns) if !dns.is_wildcard() => dns
                    .as_str()
                    .parse::<Host>()
                    .expect("an exact DNS-ID is a host"),
                Pattern::Ip(ip) => Host::from(*ip),
                _ => continue,
            };
            for &port in vhosts.ports() {
                out.push(Origin::new(vhosts.scheme(), host.clone(), Some(port)));
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// RFC 8336 §2.3–2.4: a client may send a request for any origin in the set on the
    /// connection; the set promises nothing the connection refuses, and leaves out no exact
    /// name it serves.
    #[test]
    fn announced_origins_are_exactly_the_served_exact_names(
        table in table_spec(),
        conn in conn_spec(),
    ) {
        let Some(listener) = listener(&table) else { return Ok(()) };
        let context = connection(&listener, &conn);
        let set: OriginSet = listener.origins(&context);

        prop_assert!(set.as_slice().windows(2).all(|w| w[0] < w[1]), "sorted, no duplicates");
        for origin in &set {
            prop_assert!(served(&listener, &context, origin), "announced but not served: {}", origin);
        }
        let candidates = candidates(&listener);
        for origin in &set {
            prop_assert!(candidates.contains(origin), "not an exact name × port: {}", origin);
        }
        for origin in &candidates {
            let announced = set.contains(origin);
            prop_assert_eq!(served(&listener, &context, origin), announced, "{}", origin);
        }

        // The frame lists the whole set (small tables fit) and decodes back to it.
        let (frame, left_out) = listener.origin_frame(&context);
        prop_assert_eq!(left_out, 0);
        prop_assert!(frame.payload_len() <= INITIAL_MAX_FRAME_SIZE);
        let (decoded, _) = OriginFrame::decode_frame(&frame.to_frame()).expect("decodes");
        let parsed: Vec<Origin> = decoded
            .origins()
            .iter()
            .map(|o| Origin::parse(o.as_bytes()).expect("an origin"))
            .collect();
        prop_assert_eq!(parsed.as_slice(), set.as_slice());
    }
}

/// A wildcard virtual host is served but cannot be listed; its exact siblings are.
#[test]
fn wildcards_are_not_listed() {
    let cert = Arc::new(Identities::from_patterns([pattern("*.x.test")]));
    let mut b = VirtualHosts::builder(Scheme::Https);
    let exact = b.add(VirtualHost::new("exact", cert.clone()).pattern(pattern("a.x.test")));
    b.add(VirtualHost::new("wild", cert).pattern(pattern("*.x.test")));
    let listener = Listener::new(b.port(443).build().expect("valid table"));
    let context = listener.on_handshake(Handshake::new(exact));
    let wild_host: Origin = "https://c.x.test".parse().expect("valid");
    assert!(served(&listener, &context, &wild_host));
    assert_eq!(
        listener.origins(&context).into_vec(),
        ["https://a.x.test".parse::<Origin>().expect("valid")]
    );
}
