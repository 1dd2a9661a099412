//! The WPT URL host cases on which WHATWG and a strict RFC 3986 reading agree.
//! Data and provenance: `tests/data/`.

use std::collections::BTreeMap;
use std::net::Ipv6Addr;

use misdirect_authority::{Authority, Host};
use serde_json::Value;

const DATA: &str = include_str!("data/wpt-url-hosts.json");
const EXCEPTIONS: &str = include_str!("data/wpt-exceptions.txt");

fn default_port(scheme: &str) -> u16 {
    match scheme {
        "http" | "ws" => 80,
        "https" | "wss" => 443,
        other => panic!("unexpected scheme {other}"),
    }
}

/// Why a case fails, or `None` when it passes.
fn check(case: &Value) -> Option<String> {
    let authority = case["authority"].as_str().expect("authority");
    let scheme = case["scheme"].as_str().expect("scheme");
    let got = Authority::parse(authority.as_bytes());
    match (case["expect"].as_str(), got) {
        (Some("failure"), Err(_)) => None,
        (Some("failure"), Ok(a)) => Some(format!("accepted as {a}, expected failure")),
        (Some("success"), Err(e)) => Some(format!("rejected ({e}), expected success")),
        (Some("success"), Ok(a)) => {
            let hostname = case["hostname"].as_str().expect("hostname");
            let host_ok = match a.host() {
                Host::Ipv6(v6) => hostname
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<Ipv6Addr>()
                    .is_ok_and(|want| want == *v6),
                host => host.to_string().eq_ignore_ascii_case(hostname),
            };
            let want_port = match case["port"].as_str().expect("port") {
                "" => default_port(scheme),
                p => p.parse().expect("numeric port"),
            };
            let port_ok = a.port_or(default_port(scheme)) == want_port;
            match host_ok && port_ok {
                true => None,
                false => Some(format!(
                    "got {a}, expected host {hostname} port {want_port}"
                )),
            }
        }
        (other, _) => panic!("bad expectation {other:?}"),
    }
}

#[test]
fn wpt_agreeing_cases() {
    let doc: Value = serde_json::from_str(DATA).expect("valid JSON");
    let cases = doc["cases"].as_array().expect("cases");
    assert_eq!(
        cases.len(),
        218,
        "the data file changed; update PROVENANCE.md"
    );
    let exceptions: BTreeMap<&str, &str> = EXCEPTIONS
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split_once('\t').expect("id<TAB>reason"))
        .collect();

    let mut problems = Vec::new();
    let mut seen = 0;
    for case in cases {
        let id = case["id"].as_str().expect("id");
        let failure = check(case);
        match (failure, exceptions.get(id)) {
            (None, None) => {}
            (Some(why), None) => problems.push(format!("{id} {:?}: {why}", case["authority"])),
            (Some(_), Some(_)) => seen += 1,
            (None, Some(reason)) => problems.push(format!(
                "{id} {:?} now passes but is listed as an exception ({reason}): remove it",
                case["authority"]
            )),
        }
    }
    assert_eq!(
        seen + problems.iter().filter(|p| p.contains("now passes")).count(),
        exceptions.len(),
        "an exception names an id that is not in the data"
    );
    assert!(
        problems.is_empty(),
        "{} WPT problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
