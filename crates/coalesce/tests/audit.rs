//! `Audit`: each hazard produces exactly its findings.

use std::sync::Arc;

use misdirect_authority::Scheme;
use misdirect_certmatch::{CertId, Identities};
use misdirect_coalesce::{
    Audit, ClientAuth, FindingKind as K, Listener, Policy, Severity, TrustAnchorsId, VirtualHost,
    VirtualHosts,
};

fn cert(names: &[&str]) -> Arc<Identities> {
    Arc::new(Identities::from_patterns(
        names.iter().map(|n| n.parse().expect("valid")),
    ))
}

fn vhost(name: &str, cert: &Arc<Identities>) -> VirtualHost {
    VirtualHost::new(name, cert.clone()).pattern(name.parse().expect("valid"))
}

fn id(n: u8) -> Option<CertId> {
    Some(CertId::new(format!("CN=cert{n}"), [n; 32]))
}

fn kinds(audit: &Audit) -> Vec<K> {
    audit.findings().iter().map(|f| f.kind()).collect()
}

fn table(policy: Policy, vhosts: Vec<VirtualHost>) -> VirtualHosts {
    let mut b = VirtualHosts::builder(Scheme::Https);
    for v in vhosts {
        b.add(v);
    }
    b.port(443).policy(policy).build().expect("valid")
}

#[test]
fn clean_shared_certificate() {
    let s = cert(&["a.test", "b.test"]);
    let vhosts = table(
        Policy::Secure,
        vec![vhost("a.test", &s), vhost("b.test", &s)],
    );
    let audit = Audit::run(&Listener::new(vhosts), &[id(1), id(1)], Some(443));
    assert_eq!(kinds(&audit), [K::SharedCertificate, K::Coalescing]);
    assert_eq!(audit.worst(), None);
    assert!(audit.findings()[1].message().contains("a.test → b.test"));
    assert!(audit.findings()[1].message().contains("b.test → a.test"));
}

#[test]
fn covered_but_not_served() {
    let s = cert(&["a.test", "old.test"]);
    let vhosts = table(Policy::Secure, vec![vhost("a.test", &s)]);
    let audit = Audit::run(&Listener::new(vhosts), &[id(1)], Some(443));
    assert_eq!(kinds(&audit), [K::CoveredNotServed]);
    let f = &audit.findings()[0];
    assert_eq!(f.severity(), Severity::Warning);
    assert_eq!(f.host_names(), ["old.test"]);
    assert_eq!(f.cert_id().map(|c| c.subject()), Some("CN=cert1"));
}

#[test]
fn names_without_a_certificate() {
    let a = cert(&["a.test"]);
    let c = cert(&["c.test"]);
    // "c.test" is served by "x" whose own certificate is a's: another certificate covers it.
    let x = VirtualHost::new("x", a.clone()).pattern("c.test".parse().expect("valid"));
    let vhosts = table(
        Policy::Secure,
        vec![vhost("a.test", &a), x, vhost("nocert.test", &c)],
    );
    let audit = Audit::run(&Listener::new(vhosts), &[id(1), id(1), id(2)], Some(443));
    assert_eq!(
        kinds(&audit),
        [K::NameNotCovered, K::ServedNotCovered, K::Coalescing]
    );
    assert_eq!(audit.findings()[0].vhost_names(), ["x"]);
    assert_eq!(audit.findings()[0].host_names(), ["c.test"]);
    assert_eq!(audit.findings()[1].host_names(), ["nocert.test"]);
    assert_eq!(audit.worst(), Some(Severity::Error));
}

#[test]
fn shared_certificate_with_different_client_auth() {
    let s = cert(&["a.test", "secure.test"]);
    let secure = vhost("secure.test", &s).client_auth(ClientAuth::Required(TrustAnchorsId::new(1)));
    let vhosts = table(Policy::Secure, vec![vhost("a.test", &s), secure]);
    let audit = Audit::run(&Listener::new(vhosts), &[id(1), id(1)], Some(443));
    assert_eq!(
        kinds(&audit),
        [
            K::SharedCertDifferentTls,
            K::SharedCertificate,
            K::Coalescing
        ]
    );
    let f = &audit.findings()[0];
    assert_eq!(f.vhost_names(), ["a.test", "secure.test"]);
    assert!(
        f.message().contains("client-cert-required"),
        "{}",
        f.message()
    );
    // The other direction is served: a connection that authenticated may reach a.test.
    assert!(
        audit.findings()[2]
            .message()
            .contains("secure.test → a.test")
    );
}

/// The client-certificate floor holds at every level and under warn_only; the audit proves
/// it for each of these tables and reports no bypass.
#[test]
fn no_bypass_at_any_level() {
    for policy in [Policy::Strict, Policy::Secure, Policy::CertOnly] {
        for warn_only in [false, true] {
            let s = cert(&["a.test", "secure.test", "partner.test", "*.wild.test"]);
            let mut b = VirtualHosts::builder(Scheme::Https);
            b.add(vhost("a.test", &s));
            b.add(
                vhost("secure.test", &s).client_auth(ClientAuth::Required(TrustAnchorsId::new(1))),
            );
            b.add(
                vhost("partner.test", &s).client_auth(ClientAuth::Optional(TrustAnchorsId::new(2))),
            );
            b.add(
                VirtualHost::new("wild", s.clone())
                    .pattern("*.wild.test".parse().expect("valid"))
                    .client_auth(ClientAuth::Required(TrustAnchorsId::new(2))),
            );
            let vhosts = b
                .port(443)
                .policy(policy)
                .warn_only(warn_only)
                .build()
                .expect("valid");
            let audit = Audit::run(
                &Listener::new(vhosts),
                &[id(1), id(1), id(1), id(1)],
                Some(443),
            );
            assert!(
                !kinds(&audit).contains(&K::ClientCertBypass),
                "{policy:?} {warn_only}: {audit:?}"
            );
            assert!(
                kinds(&audit).contains(&K::SharedCertDifferentTls),
                "{policy:?} {warn_only}"
            );
        }
    }
}

#[test]
fn strict_with_shared_certificate() {
    let s = cert(&["a.test", "b.test"]);
    let vhosts = table(
        Policy::Strict,
        vec![vhost("a.test", &s), vhost("b.test", &s)],
    );
    let audit = Audit::run(&Listener::new(vhosts), &[id(1), id(1)], Some(443));
    assert_eq!(
        kinds(&audit),
        [
            K::StrictWithSharedCert,
            K::StrictWithSharedCert,
            K::SharedCertificate
        ]
    );
    assert!(audit.findings()[0].message().contains("strict"));
}

#[test]
fn wildcard_partly_served_and_port_mapping() {
    let w = cert(&["*.x.test"]);
    let vhosts = table(Policy::Secure, vec![vhost("www.x.test", &w)]);
    let audit = Audit::run(&Listener::new(vhosts), &[id(3)], Some(8443));
    assert_eq!(
        kinds(&audit),
        [K::WildcardPartlyServed, K::ListenPortNotPublic]
    );
    assert_eq!(audit.findings()[0].host_names(), ["*.x.test", "www.x.test"]);
    assert!(audit.findings()[1].message().contains("8443"));
}

#[test]
fn unknown_certificate_ids_still_group_shared_certificates() {
    let s = cert(&["a.test", "b.test"]);
    let vhosts = table(
        Policy::Secure,
        vec![vhost("a.test", &s), vhost("b.test", &s)],
    );
    let audit = Audit::run(&Listener::new(vhosts), &[None, None], None);
    assert_eq!(kinds(&audit), [K::SharedCertificate, K::Coalescing]);
}
