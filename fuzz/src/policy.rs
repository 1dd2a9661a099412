//! `policy_invariants`: random virtual-host tables, connections and targets, and the
//! invariants every decision must keep (`docs/design.md`, "Server decision").
//!
//! Names come from a small pool so that virtual hosts, certificates, SNI and targets
//! collide often. Whether a certificate covers a host is read from a hand-written table
//! ([`covers`]), not from `misdirect-certmatch`, so the check does not trust the code under
//! test.

use std::sync::Arc;

use arbitrary::Arbitrary;
use misdirect_authority::{HostName, RequestTarget, Scheme};
use misdirect_certmatch::{Identities, Pattern};
use misdirect_coalesce::{
    Alpn, ClientAuth, ClientCert, ConnectionContext, Decision, Policy, TlsVersion, TrustAnchorsId,
    UnknownHost, VerifiedClientCert, VhostId, VirtualHost, VirtualHosts, decide,
};

/// Names a virtual host serves or a certificate holds (bit `i` of a mask is `PATTERNS[i]`).
const PATTERNS: [&str; 7] = [
    "a.test",
    "b.test",
    "c.test",
    "*.w.test",
    "x.w.test",
    "192.0.2.1",
    "d.test",
];
/// Hosts a request names; `e.test` is in no pattern.
const HOSTS: [&str; 8] = [
    "a.test",
    "b.test",
    "c.test",
    "x.w.test",
    "y.w.test",
    "192.0.2.1",
    "d.test",
    "e.test",
];
const PORTS: [u16; 4] = [443, 8443, 80, 8080];
const ALPNS: [Alpn; 3] = [Alpn::H2, Alpn::Http11, Alpn::Other];
const LEVELS: [Policy; 3] = [Policy::Strict, Policy::Secure, Policy::CertOnly];

/// Whether pattern `p` covers host `h` (RFC 9525 §6.3: exact, or a wildcard for exactly
/// one more label).
fn covers(p: usize, h: usize) -> bool {
    PATTERNS[p] == HOSTS[h] || (PATTERNS[p] == "*.w.test" && HOSTS[h].ends_with(".w.test"))
}

/// One fuzz case: a listener's table, one connection, one request target.
#[derive(Arbitrary, Debug)]
pub struct Input {
    https: bool,
    ports: u8,
    level: u8,
    unknown: Unknown,
    default_vhost: Option<u8>,
    vhosts: Vec<Vhost>,
    conn: Conn,
    host: u8,
    spelling: u8,
    port: Option<u8>,
    scheme: Option<bool>,
}

#[derive(Arbitrary, Debug)]
enum Unknown {
    Misdirected,
    NotFound,
    Default(u8),
}

#[derive(Arbitrary, Debug)]
struct Vhost {
    names: u8,
    cert: u8,
    client_auth: Auth,
    min_tls13: Option<bool>,
    alpn: Option<u8>,
    level: Option<u8>,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Auth {
    None,
    Optional(bool),
    Required(bool),
}

#[derive(Arbitrary, Debug)]
struct Conn {
    sni: Option<u8>,
    presented: Option<u8>,
    certificate: Option<u8>,
    tls13: Option<bool>,
    alpn: Option<u8>,
    client_cert: Option<bool>,
}

fn anchors(second: bool) -> TrustAnchorsId {
    TrustAnchorsId::new(u32::from(second) + 1)
}

fn mask_patterns(mask: u8) -> impl Iterator<Item = Pattern> {
    (0..PATTERNS.len())
        .filter(move |i| mask & (1 << i) != 0)
        .map(|i| PATTERNS[i].parse().expect("the pool's patterns parse"))
}

impl Input {
    fn vhosts(&self) -> &[Vhost] {
        &self.vhosts[..self.vhosts.len().min(4)]
    }

    fn pick(&self, i: Option<u8>) -> Option<usize> {
        let n = self.vhosts().len();
        i.filter(|_| n > 0).map(|i| usize::from(i) % n)
    }

    /// The table at `level` with no per-vhost overrides, or (`None`) at the input's level
    /// with its overrides.
    fn table(&self, level: Option<Policy>, warn_only: bool) -> Option<VirtualHosts> {
        let mut ids = Vec::new();
        let scheme = if self.https {
            Scheme::Https
        } else {
            Scheme::Http
        };
        let mut table = VirtualHosts::builder(scheme);
        let mut taken = 0u8;
        for (i, v) in self.vhosts().iter().enumerate() {
            // Each pattern goes to the first virtual host that asks for it.
            let names = v.names & !taken;
            taken |= names;
            let mut vhost = VirtualHost::new(
                format!("v{i}"),
                Identities::from_patterns(mask_patterns(v.cert)),
            )
            .patterns_from(mask_patterns(names))
            .client_auth(match v.client_auth {
                Auth::None => ClientAuth::None,
                Auth::Optional(a) => ClientAuth::Optional(anchors(a)),
                Auth::Required(a) => ClientAuth::Required(anchors(a)),
            });
            if let Some(tls13) = v.min_tls13 {
                vhost = vhost.min_tls(if tls13 {
                    TlsVersion::Tls13
                } else {
                    TlsVersion::Tls12
                });
            }
            if let Some(mask) = v.alpn {
                vhost = vhost.alpn((0..3).filter(|i| mask & (1 << i) != 0).map(|i| ALPNS[i]));
            }
            if let (None, Some(l)) = (level, v.level) {
                vhost = vhost.policy(LEVELS[usize::from(l) % 3]);
            }
            ids.push(table.add(vhost));
        }
        let ports: Vec<u16> = (0..PORTS.len())
            .filter(|i| self.ports & (1 << i) != 0)
            .map(|i| PORTS[i])
            .collect();
        // A table needs a port: the scheme's default stands in for an empty set.
        match ports.is_empty() {
            true => table.port(scheme.default_port()),
            false => table.ports(ports),
        };
        let id = |i: usize| ids[i];
        let unknown = match self.unknown {
            Unknown::Misdirected => UnknownHost::Misdirected,
            Unknown::NotFound => UnknownHost::NotFound,
            Unknown::Default(i) => self
                .pick(Some(i))
                .map_or(UnknownHost::Misdirected, |i| UnknownHost::Default(id(i))),
        };
        if let Some(i) = self.pick(self.default_vhost) {
            table.default_vhost(id(i));
        }
        let level = level.unwrap_or(LEVELS[usize::from(self.level) % 3]);
        table
            .policy(level)
            .warn_only(warn_only)
            .unknown_host(unknown)
            .build()
            .ok()
    }

    /// The connection, naming virtual hosts by the `ids` the table gave them.
    fn connection(&self, ids: &[VhostId]) -> ConnectionContext {
        let c = &self.conn;
        let mut conn = ConnectionContext::new();
        if let Some(sni) = c
            .sni
            .and_then(|i| HostName::from_sni(HOSTS[usize::from(i) % 8].as_bytes()).ok())
        {
            conn = conn.sni(sni);
        }
        if let Some(i) = self.pick(c.presented) {
            conn = conn.presented(ids[i]);
        }
        if let Some(mask) = c.certificate {
            conn = conn.certificate(Arc::new(Identities::from_patterns(mask_patterns(mask))));
        }
        if let Some(tls13) = c.tls13 {
            conn = conn.tls_version(if tls13 {
                TlsVersion::Tls13
            } else {
                TlsVersion::Tls12
            });
        }
        if let Some(alpn) = c.alpn {
            conn = conn.alpn(ALPNS[usize::from(alpn) % 3]);
        }
        conn.client_cert(c.client_cert.map_or(ClientCert::None, |a| {
            ClientCert::Verified(VerifiedClientCert::assertion(anchors(a)))
        }))
    }

    /// The mask of the certificate on the connection: its own, else the presented vhost's,
    /// else — as a server presents it — the SNI's virtual host's, else the default's.
    fn certificate_mask(&self, vhosts: &VirtualHosts, conn: &ConnectionContext) -> Option<u8> {
        let presented = self.pick(self.conn.presented).or_else(|| {
            conn.sni_name()
                .and_then(|sni| vhosts.lookup(&sni.clone().into()))
                .or(vhosts.default_vhost())
                .map(VhostId::index)
        });
        self.conn
            .certificate
            .or(presented.map(|i| self.vhosts[i].cert))
    }

    fn target(&self) -> RequestTarget {
        let host = HOSTS[usize::from(self.host) % 8];
        let mut authority = match self.spelling % 3 {
            0 => host.to_owned(),
            1 => host.to_ascii_uppercase(),
            _ if host.parse::<std::net::IpAddr>().is_ok() => host.to_owned(),
            _ => format!("{host}."),
        };
        if let Some(p) = self.port {
            authority = format!("{authority}:{}", PORTS[usize::from(p) % 4]);
        }
        let target = RequestTarget::from_h2(Some(authority.as_bytes()), std::iter::empty())
            .expect("the pool's authorities are valid");
        match self.scheme {
            Some(https) => target.with_scheme(if https { Scheme::Https } else { Scheme::Http }),
            None => target,
        }
    }

    /// Checks every invariant for this input.
    pub fn check(&self) {
        let (Some(plain), Some(warn)) = (self.table(None, false), self.table(None, true)) else {
            return;
        };
        let ids: Vec<VhostId> = plain.iter().map(|(id, _)| id).collect();
        let (conn, target) = (self.connection(&ids), self.target());
        let decided = decide(&plain, &conn, &target);
        let warned = decide(&warn, &conn, &target);
        self.served_safely(&plain, &conn, decided);
        self.served_safely(&warn, &conn, warned);
        // warn_only reports exactly the reason it would have refused for, and serves only
        // what the certificate covers and the client-certificate rule allows (checked above).
        assert_eq!(
            decided.reason(),
            warned.reason(),
            "{decided:?} vs {warned:?}"
        );
        match (decided, warned) {
            (a, b) if a == b => {}
            (Decision::Misdirected { reason, .. }, Decision::Serve { .. }) => {
                assert!(!reason.is_client_cert())
            }
            other => panic!("warn_only changed the decision: {other:?}"),
        }

        // Whatever Strict serves Secure serves, and whatever Secure serves CertOnly serves.
        let by_level = LEVELS.map(|level| {
            let table = self
                .table(Some(level), false)
                .expect("levels do not change the table");
            let d = decide(&table, &conn, &target);
            self.served_safely(&table, &conn, d);
            d
        });
        for pair in by_level.windows(2) {
            if let Decision::Serve { .. } = pair[0] {
                assert_eq!(
                    pair[0], pair[1],
                    "a laxer level refused what a stricter served"
                );
            }
        }
    }

    /// `Serve`, with or without a warning ⇒ the client-certificate rule holds and the
    /// certificate covers the host; `Serve` without a warning ⇒ also the listener serves
    /// the scheme and port.
    fn served_safely(&self, vhosts: &VirtualHosts, conn: &ConnectionContext, decision: Decision) {
        let Decision::Serve { vhost, warning } = decision else {
            return;
        };
        let v = &self.vhosts[vhost.index()];
        let client = conn.client_cert_state();
        match v.client_auth {
            Auth::None => {}
            Auth::Optional(a) => assert!(
                matches!(client, ClientCert::None)
                    || client == ClientCert::Verified(VerifiedClientCert::assertion(anchors(a)))
            ),
            Auth::Required(a) => assert_eq!(
                client,
                ClientCert::Verified(VerifiedClientCert::assertion(anchors(a)))
            ),
        }
        let host = usize::from(self.host) % 8;
        if self.https {
            let mask = self
                .certificate_mask(vhosts, conn)
                .expect("served over https without a certificate");
            assert!(
                (0..PATTERNS.len()).any(|p| mask & (1 << p) != 0 && covers(p, host)),
                "served {} with a certificate that does not cover it",
                HOSTS[host]
            );
        }
        if warning.is_some() {
            return;
        }
        let port = self.port.map_or(if self.https { 443 } else { 80 }, |p| {
            PORTS[usize::from(p) % 4]
        });
        assert!(vhosts.ports().contains(&port));
        assert!(self.scheme.is_none_or(|https| https == self.https));
    }
}
