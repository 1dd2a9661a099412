//! `Coverage::analyse`: each kind of finding, and a clean configuration.
// A test that cannot unwrap has failed: panicking is the report.
#![allow(clippy::unwrap_used)]

use misdirect_certmatch::{
    CertId, Certificate, Coverage, Finding, Identities, Pattern, VirtualHost,
};

fn cert(subject: &str, names: &[&str]) -> Certificate {
    let patterns = names.iter().map(|n| n.parse::<Pattern>().unwrap());
    Certificate::new(
        CertId::new(subject, [subject.len() as u8; 32]),
        Identities::from_patterns(patterns),
    )
}

fn vhost(name: &str, names: &[&str]) -> VirtualHost {
    VirtualHost::new(name, names.iter().map(|n| n.parse::<Pattern>().unwrap()))
}

fn patterns(names: &[&str]) -> Vec<Pattern> {
    names.iter().map(|n| n.parse().unwrap()).collect()
}

#[test]
fn clean_configuration_has_no_findings() {
    let certs = [
        cert("CN=a", &["a.example.com", "192.0.2.1"]),
        cert("CN=wild", &["*.example.net"]),
    ];
    let vhosts = [
        vhost("a", &["a.example.com", "192.0.2.1"]),
        vhost("tenants", &["*.example.net"]),
    ];
    let report = Coverage::analyse(&certs, &vhosts);
    assert!(report.is_clean(), "{:?}", report.findings());
}

#[test]
fn covered_but_not_served() {
    let certs = [cert(
        "CN=multi",
        &[
            "a.example.com",
            "old.example.com",
            "*.gone.example.com",
            "192.0.2.7",
        ],
    )];
    let vhosts = [vhost("a", &["a.example.com"])];
    let report = Coverage::analyse(&certs, &vhosts);
    assert_eq!(
        report.findings(),
        [Finding::CoveredNotServed {
            certificate: CertId::new("CN=multi", [8; 32]),
            names: patterns(&["old.example.com", "*.gone.example.com", "192.0.2.7"]),
        }]
    );
    let text = report.findings()[0].to_string();
    assert!(text.contains("CN=multi (SHA-256 0808"), "{text}");
    assert!(
        text.contains("old.example.com, *.gone.example.com, 192.0.2.7"),
        "{text}"
    );
}

#[test]
fn served_but_not_covered() {
    let certs = [cert("CN=a", &["a.example.com", "b.example.com"])];
    let vhosts = [vhost(
        "site",
        &[
            "a.example.com",
            "c.example.com",
            "*.example.com",
            "[2001:db8::1]",
        ],
    )];
    let report = Coverage::analyse(&certs, &vhosts);
    assert_eq!(
        report.findings(),
        [Finding::ServedNotCovered {
            virtual_host: "site".to_string(),
            names: patterns(&["c.example.com", "*.example.com", "2001:db8::1"]),
        }]
    );
}

#[test]
fn served_name_under_a_certificate_wildcard_is_covered() {
    let certs = [cert("CN=wild", &["*.example.com"])];
    let vhosts = [vhost("wild", &["*.example.com", "x.example.com"])];
    assert!(Coverage::analyse(&certs, &vhosts).is_clean());
}

#[test]
fn wildcard_partly_served_and_shared() {
    let certs = [cert("CN=*.example.com", &["*.example.com"])];
    let vhosts = [
        vhost("www", &["www.example.com"]),
        vhost("api", &["api.example.com"]),
    ];
    let report = Coverage::analyse(&certs, &vhosts);
    let id = CertId::new("CN=*.example.com", [16; 32]);
    assert_eq!(
        report.findings(),
        [
            Finding::WildcardPartlyServed {
                certificate: id.clone(),
                wildcard: "*.example.com".parse().unwrap(),
                served: patterns(&["www.example.com", "api.example.com"]),
            },
            Finding::SharedCertificate {
                certificate: id,
                virtual_hosts: vec!["www".to_string(), "api".to_string()],
            },
        ]
    );
}

#[test]
fn one_virtual_host_is_not_sharing() {
    let certs = [cert("CN=x", &["a.example.com", "b.example.com"])];
    let vhosts = [vhost("x", &["a.example.com", "b.example.com"])];
    assert!(Coverage::analyse(&certs, &vhosts).is_clean());
}

#[test]
fn served_wildcard_serves_certificate_names_below_it() {
    let certs = [cert("CN=x", &["a.example.com", "b.example.com"])];
    let vhosts = [vhost("wild", &["*.example.com"])];
    let report = Coverage::analyse(&certs, &vhosts);
    // The names are served, but the wildcard vhost has names no certificate covers.
    assert_eq!(
        report.findings(),
        [Finding::ServedNotCovered {
            virtual_host: "wild".to_string(),
            names: patterns(&["*.example.com"]),
        }]
    );
}

#[cfg(feature = "psl")]
#[test]
fn public_suffix_wildcards_cover_nothing() {
    let certs = [cert("CN=bad", &["*.co.uk", "shop.example.co.uk"])];
    let vhosts = [vhost("shop", &["shop.example.co.uk", "x.co.uk"])];
    let report = Coverage::analyse(&certs, &vhosts);
    assert_eq!(
        report.findings(),
        [Finding::ServedNotCovered {
            virtual_host: "shop".to_string(),
            names: patterns(&["x.co.uk"]),
        }]
    );
}

#[test]
fn certificates_from_der_carry_subject_and_fingerprint() {
    let mut params = rcgen::CertificateParams::new(vec!["a.example.com".to_string()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "a.example.com");
    let key = rcgen::KeyPair::generate().unwrap();
    let der = params.self_signed(&key).unwrap().der().to_vec();
    let cert = Certificate::from_der(&der).unwrap();
    assert_eq!(cert.id().subject(), "CN=a.example.com");
    // Independent check of the fingerprint: SHA-256 of the DER, via rustls's ring provider.
    let digest = ring_digest(&der);
    assert_eq!(cert.id().sha256(), &digest);
    let report = Coverage::analyse(&[cert], &[]);
    assert!(matches!(
        &report.findings()[0],
        Finding::CoveredNotServed { certificate, .. } if certificate.sha256() == &digest
    ));
}

fn ring_digest(data: &[u8]) -> [u8; 32] {
    use rustls::crypto::hash::Hash;
    let hash = rustls::crypto::ring::default_provider()
        .cipher_suites
        .iter()
        .find_map(|suite| {
            let h = suite.tls13()?.common.hash_provider;
            (h.output_len() == 32).then_some(h)
        })
        .expect("a SHA-256 suite");
    let out = Hash::hash(hash, data);
    out.as_ref().try_into().unwrap()
}
