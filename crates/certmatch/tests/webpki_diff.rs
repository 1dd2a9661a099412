//! Differential test against rustls-webpki's `verify_is_valid_for_subject_name`, on
//! certificates generated with rcgen from random SAN sets.
//!
//! The only documented difference: with the `psl` feature, a wildcard whose parent is a
//! public suffix (`*.co.uk`) never matches here, while rustls-webpki accepts it.
// A test that cannot unwrap has failed: panicking is the report.
#![allow(clippy::unwrap_used)]

use std::net::IpAddr;

use misdirect_authority::Host;
use misdirect_certmatch::{DnsPattern, Identities};
use proptest::prelude::*;
use rustls::pki_types::{CertificateDer, ServerName};

const LABELS: &[&str] = &["a", "b", "www", "xn--bcher-kva", "d1", "e-f", "co", "s3"];
const TLDS: &[&str] = &["example", "com", "uk", "co.uk", "amazonaws.com"];

fn name_strategy() -> impl Strategy<Value = String> {
    (
        proptest::collection::vec(proptest::sample::select(LABELS), 0..3),
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

fn san_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => name_strategy(),
        3 => name_strategy().prop_map(|n| format!("*.{n}")),
        1 => name_strategy().prop_map(|n| n.to_ascii_uppercase()),
        1 => (0u8..3).prop_map(|i| format!("192.0.2.{i}")),
        1 => (0u8..3).prop_map(|i| format!("2001:db8::{i}")),
    ]
}

fn host_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => name_strategy(),
        1 => (0u8..3).prop_map(|i| format!("192.0.2.{i}")),
        1 => (0u8..3).prop_map(|i| format!("2001:db8::{i}")),
    ]
}

fn webpki_accepts(der: &[u8], host: &str) -> bool {
    let der = CertificateDer::from(der);
    let cert = webpki::EndEntityCert::try_from(&der).expect("webpki parses rcgen output");
    let name = ServerName::try_from(host)
        .expect("reference name")
        .to_owned();
    cert.verify_is_valid_for_subject_name(&name).is_ok()
}

/// Whether the certificate has a usable-looking wildcard whose parent is a public suffix
/// and the host sits right under it: the one documented difference.
fn public_suffix_difference(sans: &[String], host: &Host) -> bool {
    let Some(parent) = host.as_name().and_then(|n| n.parent()) else {
        return false;
    };
    sans.iter().any(|san| {
        DnsPattern::parse(san.as_bytes())
            .is_ok_and(|p| p.is_public_suffix_wildcard() && p.base() == parent)
    })
}

fn host_of(text: &str) -> Host {
    match text.parse::<IpAddr>() {
        Ok(ip) => Host::from(ip),
        Err(_) => text.parse().expect("host"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn agrees_with_webpki(
        sans in proptest::collection::vec(san_strategy(), 1..6),
        hosts in proptest::collection::vec(host_strategy(), 1..12),
    ) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(sans.clone()).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let ids = Identities::from_der(cert.der()).unwrap();
        for text in &hosts {
            let host = host_of(text);
            let ours = ids.covers(&host);
            let theirs = webpki_accepts(cert.der(), text);
            if ours != theirs {
                prop_assert!(
                    !ours && theirs && public_suffix_difference(&sans, &host),
                    "SANs {:?}, host {}: ours {}, webpki {}", sans, text, ours, theirs
                );
            }
        }
    }
}

/// The documented difference is real, so the exception above cannot hide other bugs.
#[cfg(feature = "psl")]
#[test]
fn public_suffix_wildcard_is_the_known_difference() {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["*.co.uk".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    assert!(webpki_accepts(cert.der(), "example.co.uk"));
    let ids = Identities::from_der(cert.der()).unwrap();
    assert!(!ids.covers(&host_of("example.co.uk")));
}
