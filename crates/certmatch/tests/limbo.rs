//! x509-limbo name-matching cases (see `tests/data/PROVENANCE.md`).
//!
//! Every case classed `name` must give upstream's verdict. The `name+profile` and `chain`
//! cases need certificate-profile lints or path validation, which a matcher does not do;
//! each is listed in `tests/data/x509-limbo-exceptions.txt` with the verdict the matcher
//! gives today and the reason, and this test fails if any of those verdicts changes.
// A test that cannot unwrap has failed: panicking is the report.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::IpAddr;

use misdirect_authority::{Host, HostName};
use misdirect_certmatch::Identities;
use serde_json::Value;

const CASES: &str = include_str!("data/x509-limbo-names.json");
const EXCEPTIONS: &str = include_str!("data/x509-limbo-exceptions.txt");

#[derive(Debug)]
struct Case {
    id: String,
    class: String,
    features: Vec<String>,
    expect_success: bool,
    kind: String,
    value: String,
    pem: String,
}

fn cases() -> Vec<Case> {
    let doc: Value = serde_json::from_str(CASES).expect("valid JSON");
    let str_of = |v: &Value, key: &str| v[key].as_str().expect(key).to_string();
    doc["testcases"]
        .as_array()
        .expect("testcases")
        .iter()
        .map(|t| Case {
            id: str_of(t, "id"),
            class: str_of(t, "class"),
            features: t["features"]
                .as_array()
                .expect("features")
                .iter()
                .map(|f| f.as_str().expect("feature").to_string())
                .collect(),
            expect_success: str_of(t, "expected_result") == "SUCCESS",
            kind: str_of(&t["expected_peer_name"], "kind"),
            value: str_of(&t["expected_peer_name"], "value"),
            pem: str_of(t, "peer_certificate"),
        })
        .collect()
}

/// The matcher's verdict: does the leaf cover the peer name?
fn verdict(case: &Case) -> bool {
    let (_, pem) = x509_parser::pem::parse_x509_pem(case.pem.as_bytes())
        .unwrap_or_else(|e| panic!("{}: PEM: {e}", case.id));
    let ids = match Identities::from_der(&pem.contents) {
        Ok(ids) => ids,
        // A certificate we cannot read covers nothing.
        Err(_) => return false,
    };
    let host = match case.kind.as_str() {
        "DNS" => match HostName::parse(case.value.as_bytes()) {
            Ok(name) => Host::Name(name),
            Err(_) => return false,
        },
        "IP" => Host::from(case.value.parse::<IpAddr>().expect("IP peer name")),
        other => panic!("{}: unexpected peer name kind {other}", case.id),
    };
    ids.covers(&host)
}

fn exceptions() -> BTreeMap<String, (bool, String)> {
    let mut out = BTreeMap::new();
    for line in EXCEPTIONS.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.splitn(3, char::is_whitespace);
        let id = parts.next().expect("id").to_string();
        let verdict = match parts.next().expect("verdict") {
            "accept" => true,
            "reject" => false,
            other => panic!("{id}: verdict must be accept or reject, not {other}"),
        };
        let reason = parts.next().unwrap_or("").trim().to_string();
        assert!(!reason.is_empty(), "{id}: every exception needs a reason");
        assert!(
            out.insert(id.clone(), (verdict, reason)).is_none(),
            "{id} listed twice"
        );
    }
    out
}

#[test]
fn name_class_cases_pass() {
    let mut ran = 0;
    let mut failures = Vec::new();
    for case in cases().iter().filter(|c| c.class == "name") {
        let needs_psl = case
            .features
            .iter()
            .any(|f| f == "pedantic-public-suffix-wildcard");
        if needs_psl && !cfg!(feature = "psl") {
            continue;
        }
        ran += 1;
        if verdict(case) != case.expect_success {
            failures.push(format!(
                "{}: expected {} for {} {}",
                case.id,
                if case.expect_success {
                    "SUCCESS"
                } else {
                    "FAILURE"
                },
                case.kind,
                case.value
            ));
        }
    }
    let expected_runs = if cfg!(feature = "psl") { 22 } else { 19 };
    assert_eq!(ran, expected_runs, "the data file lost or gained cases");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn exceptions_keep_their_status() {
    let listed = exceptions();
    let mut problems = Vec::new();
    let mut seen = 0;
    for case in cases() {
        let entry = listed.get(&case.id);
        if case.class == "name" {
            if entry.is_some() {
                problems.push(format!("{}: `name` cases may not be exceptions", case.id));
            }
            continue;
        }
        seen += 1;
        let got = verdict(&case);
        let word = if got { "accept" } else { "reject" };
        match entry {
            None => problems.push(format!("{} {word} <reason>   (missing)", case.id)),
            Some((listed_verdict, _)) if *listed_verdict != got => {
                problems.push(format!("{}: now {word} (status changed)", case.id));
            }
            Some(_) => {}
        }
    }
    assert_eq!(seen, 28, "the data file lost or gained exception cases");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(listed.len(), seen, "exceptions file lists unknown cases");
}

#[test]
fn malformed_entries_are_reported_not_dropped() {
    let all = cases();
    let problems = |id: &str| {
        let case = all.iter().find(|c| c.id == id).expect(id);
        let (_, pem) = x509_parser::pem::parse_x509_pem(case.pem.as_bytes()).expect("PEM");
        let ids = Identities::from_der(&pem.contents).expect("DER");
        ids.problems()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    };
    let malformed = problems("rfc5280::san::malformed");
    assert!(
        malformed[0].starts_with("subjectAltName extension is malformed"),
        "{malformed:?}"
    );
    let emoji = problems("webpki::san::unicode-emoji-san");
    assert!(emoji[0].contains("A-labels"), "{emoji:?}");
    let ip = problems("rfc5280::nc::nc-permits-invalid-ip-san");
    assert_eq!(ip, ["iPAddress of 8 octets is not an IPv4 or IPv6 address"]);
}
