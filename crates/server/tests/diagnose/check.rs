//! `misdirect check`: each hazard produces exactly its findings, in text and JSON.

use std::collections::BTreeMap;

use misdirect_server::Config;
use misdirect_server::check::check;
use serde_json::Value;

use crate::support::{Ca, scratch_dir};

/// A directory with certificates: `ab` (a.test, b.test), `abold` (a.test, b.test,
/// old.test), `abip` (a.test, b.test, 192.0.2.1), `b` (b.test), `c` (c.test), `wild`
/// (*.x.test), and a client CA.
struct Dir {
    path: std::path::PathBuf,
}

impl Dir {
    fn new(label: &str) -> Self {
        let path = scratch_dir(label);
        let ca = Ca::new("check CA");
        ca.server_cert(&path, "ab", &["a.test", "b.test"]);
        ca.server_cert(&path, "abold", &["a.test", "b.test", "old.test"]);
        ca.server_cert(&path, "abip", &["a.test", "b.test", "192.0.2.1"]);
        ca.server_cert(&path, "b", &["b.test"]);
        ca.server_cert(&path, "c", &["c.test"]);
        ca.server_cert(&path, "wild", &["*.x.test"]);
        ca.write_ca(&path, "client-ca");
        Self { path }
    }

    fn config(&self, text: &str) -> Config {
        let file = self.path.join("misdirect.toml");
        std::fs::write(&file, text).unwrap();
        Config::from_file(&file).unwrap_or_else(|e| panic!("{e}"))
    }
}

fn listener(policy: &str, extra: &str) -> String {
    format!(
        "[[listener]]\naddr = \"127.0.0.1:8443\"\npolicy = \"{policy}\"\ndefault_vhost = \"a.test\"\n{extra}\n"
    )
}

fn vhost(name: &str, cert: &str, extra: &str) -> String {
    format!("[[vhost]]\nname = \"{name}\"\ncert = \"{cert}.pem\"\nkey = \"{cert}.key\"\n{extra}\n")
}

/// code → count, from the JSON report.
fn codes(json: &Value) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for listener in json["listeners"].as_array().unwrap() {
        for f in listener["findings"].as_array().unwrap() {
            *out.entry(f["code"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    out
}

fn map(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

#[test]
fn clean_shared_certificate() {
    let dir = Dir::new("check-clean");
    let config = dir.config(
        &(listener("secure", "") + &vhost("a.test", "ab", "") + &vhost("b.test", "ab", "")),
    );
    let report = check(&config).unwrap();
    let json = report.to_json();
    assert_eq!(
        codes(&json),
        map(&[("coalescing", 1), ("shared-certificate", 1)])
    );
    assert_eq!(json["summary"]["errors"], 0);
    assert_eq!(report.exit_code(true), 0);
    let text = report.to_text();
    assert!(text.contains("a.test → b.test"), "{text}");
    assert!(
        text.contains("summary: 0 error(s), 0 warning(s), 2 info"),
        "{text}"
    );
}

#[test]
fn covered_but_not_served() {
    let dir = Dir::new("check-covered");
    let config = dir.config(
        &(listener("secure", "") + &vhost("a.test", "abold", "") + &vhost("b.test", "abold", "")),
    );
    let report = check(&config).unwrap();
    let json = report.to_json();
    assert_eq!(
        codes(&json),
        map(&[
            ("coalescing", 1),
            ("covered-not-served", 1),
            ("shared-certificate", 1)
        ])
    );
    let finding = &json["listeners"][0]["findings"][0];
    assert_eq!(finding["severity"], "warning");
    assert_eq!(finding["names"], serde_json::json!(["old.test"]));
    assert_eq!(
        finding["certificate"]["subject"],
        "CN=rcgen self signed cert"
    );
    assert_eq!(finding["certificate"]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(report.exit_code(false), 0);
    assert_eq!(report.exit_code(true), 1);
    assert!(report.to_text().contains("fix: serve these names"));
}

#[test]
fn name_no_certificate_covers() {
    let dir = Dir::new("check-uncovered");
    let config = dir
        .config(&(listener("secure", "") + &vhost("a.test", "ab", "") + &vhost("d.test", "c", "")));
    let report = check(&config).unwrap();
    let json = report.to_json();
    // b.test (on the a/b certificate) and c.test are covered but not served; d.test is
    // served but not covered.
    assert_eq!(
        codes(&json),
        map(&[("covered-not-served", 2), ("served-not-covered", 1)])
    );
    assert_eq!(json["summary"]["errors"], 1);
    assert_eq!(report.exit_code(false), 2);
}

#[test]
fn own_certificate_does_not_cover() {
    let dir = Dir::new("check-own");
    // c.test is served with the a/b certificate while another certificate covers it.
    let config = dir.config(
        &(listener("secure", "")
            + &vhost("a.test", "ab", "")
            + &vhost("c.test", "ab", "aliases = []")
            + &vhost("x.c.test", "c", "")),
    );
    let report = check(&config).unwrap();
    let codes = codes(&report.to_json());
    assert_eq!(codes.get("name-not-covered"), Some(&1), "{codes:?}");
    assert_eq!(report.exit_code(false), 2);
}

#[test]
fn client_auth_on_a_shared_certificate() {
    let dir = Dir::new("check-client-auth");
    let config = dir.config(
        &(listener("secure", "")
            + &vhost("a.test", "ab", "")
            + &vhost(
                "b.test",
                "ab",
                "client_auth = { ca = \"client-ca.pem\", required = true }",
            )),
    );
    let report = check(&config).unwrap();
    let json = report.to_json();
    assert_eq!(
        codes(&json),
        map(&[
            ("coalescing", 1),
            ("shared-cert-different-tls", 1),
            ("shared-certificate", 1)
        ])
    );
    let warning = &json["listeners"][0]["findings"][0];
    assert!(
        warning["message"]
            .as_str()
            .unwrap()
            .contains("client-cert-required"),
        "{warning}"
    );
    assert_eq!(warning["vhosts"], serde_json::json!(["a.test", "b.test"]));
    // The floor holds: no bypass finding, even with warn_only and cert-only.
    for (policy, warn) in [
        ("cert-only", "warn_only = true"),
        ("strict", "warn_only = true"),
        ("secure", ""),
    ] {
        let config = dir.config(
            &(listener(policy, warn)
                + &vhost("a.test", "ab", "")
                + &vhost(
                    "b.test",
                    "ab",
                    "client_auth = { ca = \"client-ca.pem\", required = true }",
                )),
        );
        let codes = codes(&check(&config).unwrap().to_json());
        assert!(
            !codes.contains_key("client-cert-bypass"),
            "{policy}: {codes:?}"
        );
    }
}

#[test]
fn strict_on_shared_certificates() {
    let dir = Dir::new("check-strict");
    let config = dir.config(
        &(listener("strict", "") + &vhost("a.test", "ab", "") + &vhost("b.test", "ab", "")),
    );
    let report = check(&config).unwrap();
    assert_eq!(
        codes(&report.to_json()),
        map(&[("shared-certificate", 1), ("strict-with-shared-cert", 2)])
    );
    assert_eq!(report.exit_code(true), 1);
}

#[test]
fn wildcard_partly_served_and_port_mapping() {
    let dir = Dir::new("check-wild");
    let text = listener("secure", "public_ports = [443]").replace("a.test", "www.x.test")
        + &vhost("www.x.test", "wild", "");
    let report = check(&dir.config(&text)).unwrap();
    let json = report.to_json();
    assert_eq!(
        codes(&json),
        map(&[("listen-port-not-public", 1), ("wildcard-partly-served", 1)])
    );
    assert_eq!(
        json["listeners"][0]["public_ports"],
        serde_json::json!([443])
    );
}

#[test]
fn duplicate_names_fail_to_load() {
    let dir = Dir::new("check-duplicate");
    let file = dir.path.join("dup.toml");
    std::fs::write(
        &file,
        listener("secure", "")
            + &vhost("a.test", "ab", "")
            + &vhost("b.test", "ab", "aliases = [\"a.test\"]"),
    )
    .unwrap();
    let err = Config::from_file(&file)
        .and_then(|c| check(&c))
        .unwrap_err();
    assert!(err.to_string().contains("a.test"), "{err}");
    assert!(err.to_string().contains("dup.toml"), "{err}");
}

/// The binary: exit statuses and both formats.
#[test]
fn command_line() {
    let dir = Dir::new("check-cli");
    let file = dir.path.join("cli.toml");
    std::fs::write(
        &file,
        listener("secure", "") + &vhost("a.test", "abold", "") + &vhost("b.test", "abold", ""),
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_misdirect");
    let run = |args: &[&str]| std::process::Command::new(bin).args(args).output().unwrap();
    let text = run(&["check", "--config", file.to_str().unwrap()]);
    assert_eq!(text.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&text.stdout).contains("covered-not-served"));
    let strict = run(&[
        "check",
        "--config",
        file.to_str().unwrap(),
        "--deny-warnings",
        "--format",
        "json",
    ]);
    assert_eq!(strict.status.code(), Some(1));
    let json: Value = serde_json::from_slice(&strict.stdout).unwrap();
    assert_eq!(json["version"], 1);
    let missing = run(&["check", "--config", "/nonexistent/misdirect.toml"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/misdirect.toml"));
}

/// A listener whose default virtual host requires client certificates: clients without SNI
/// fail the handshake. Whether the default is the first virtual host or named.
#[test]
fn default_vhost_requiring_client_certificates() {
    let dir = Dir::new("check-default-client-cert");
    let secure = vhost(
        "s.x.test",
        "wild",
        "client_auth = { ca = \"client-ca.pem\", required = true }",
    );
    let optional = vhost(
        "s.x.test",
        "wild",
        "client_auth = { ca = \"client-ca.pem\", required = false }",
    );
    let plain = vhost("a.test", "ab", "") + &vhost("b.test", "ab", "");
    let first_is_default = "[[listener]]\naddr = \"127.0.0.1:8443\"\n";
    // (configuration, warned)
    let cases: Vec<(String, bool)> = vec![
        (format!("{first_is_default}{secure}{plain}"), true),
        (
            listener("secure", "").replace("\"a.test\"", "\"S.X.test\"") + &plain + &secure,
            true,
        ),
        (listener("secure", "") + &secure + &plain, false),
        (format!("{first_is_default}{plain}{secure}"), false),
        (format!("{first_is_default}{optional}{plain}"), false),
    ];
    for (text, warned) in &cases {
        let report = check(&dir.config(text)).unwrap();
        let json = report.to_json();
        let findings = json["listeners"][0]["findings"].as_array().unwrap();
        let found: Vec<&Value> = findings
            .iter()
            .filter(|f| f["code"] == "default-requires-client-cert")
            .collect();
        assert_eq!(found.len(), usize::from(*warned), "{text}\n{json:#}");
        if let Some(finding) = found.first() {
            assert_eq!(finding["severity"], "warning");
            assert_eq!(finding["vhosts"], serde_json::json!(["s.x.test"]));
            let message = finding["message"].as_str().unwrap();
            assert!(message.contains("\"s.x.test\""), "{message}");
            assert!(message.contains("no SNI"), "{message}");
            assert_eq!(
                finding["advice"],
                "set default_vhost to a virtual host that does not require client certificates"
            );
            assert_eq!(report.exit_code(false), 0);
            assert_eq!(report.exit_code(true), 1);
            let text = report.to_text();
            assert!(
                text.contains("warning  default-requires-client-cert"),
                "{text}"
            );
            assert!(text.contains("fix: set default_vhost to"), "{text}");
        }
    }
}

/// The findings of one code, from the JSON report.
fn findings<'a>(json: &'a Value, code: &str) -> Vec<&'a Value> {
    json["listeners"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == code)
        .collect()
}

/// A connection made for a virtual host negotiates what that virtual host allows: two
/// virtual hosts that both allow only http/1.1 agree, whatever a browser would prefer.
#[test]
fn http1_only_virtual_hosts_agree() {
    let dir = Dir::new("check-http1-only");
    let http1 = "alpn = [\"http/1.1\"]";
    let config = dir.config(
        &(listener("secure", "") + &vhost("a.test", "ab", http1) + &vhost("b.test", "ab", http1)),
    );
    let report = check(&config).unwrap();
    let json = report.to_json();
    assert_eq!(
        codes(&json),
        map(&[("coalescing", 1), ("shared-certificate", 1)]),
        "{json:#}"
    );
    assert_eq!(report.exit_code(true), 0);
}

/// A TLS 1.3 + h2 virtual host sharing a certificate with one that allows TLS 1.2 and
/// http/1.1: connections made for the latter may negotiate either, and the live server
/// answers coalesced requests for the former there with 421.
#[test]
fn stricter_tls_on_a_shared_certificate() {
    let dir = Dir::new("check-min-tls");
    let config = dir.config(
        &(listener("secure", "")
            + &vhost("a.test", "ab", "min_tls = \"1.3\"\nalpn = [\"h2\"]")
            + &vhost(
                "b.test",
                "ab",
                "min_tls = \"1.2\"\nalpn = [\"h2\", \"http/1.1\"]",
            )),
    );
    let report = check(&config).unwrap();
    let json = report.to_json();
    assert_eq!(
        codes(&json),
        map(&[
            ("coalescing", 1),
            ("shared-cert-different-tls", 1),
            ("shared-certificate", 1)
        ]),
        "{json:#}"
    );
    let warning = findings(&json, "shared-cert-different-tls")[0];
    assert_eq!(
        warning["message"],
        "a connection made for b.test may negotiate TLS 1.2 and http/1.1; a.test requires TLS 1.3 and h2: coalesced requests for a.test there get 421 tls-version-below-minimum"
    );
    assert_eq!(warning["vhosts"], serde_json::json!(["b.test", "a.test"]));
    assert_eq!(warning["names"], serde_json::json!(["a.test"]));
    // A connection made for a.test (TLS 1.3, h2) is good enough for b.test.
    assert!(report.to_text().contains("a.test → b.test"));
    assert_eq!(report.exit_code(true), 1);
}

/// `shared-certificate` names the virtual hosts that present the certificate, and
/// separately those whose names it merely covers.
#[test]
fn shared_certificate_names_only_its_presenters() {
    let dir = Dir::new("check-presenters");
    let config = dir
        .config(&(listener("secure", "") + &vhost("a.test", "ab", "") + &vhost("b.test", "b", "")));
    let report = check(&config).unwrap();
    let json = report.to_json();
    let shared = findings(&json, "shared-certificate");
    assert_eq!(shared.len(), 1, "{json:#}");
    assert_eq!(shared[0]["vhosts"], serde_json::json!(["a.test"]));
    assert_eq!(
        shared[0]["message"],
        "certificate CN=rcgen self signed cert is presented by virtual host a.test; it also covers names of virtual host b.test, which presents another certificate"
    );
    let text = report.to_text();
    assert!(!text.contains("shared by"), "{text}");
}

/// A certificate's IP address SAN is information: the configuration cannot serve IP
/// addresses, so the check does not suggest it.
#[test]
fn ip_address_sans_are_not_a_hazard() {
    let dir = Dir::new("check-ip-san");
    let config = dir.config(
        &(listener("secure", "") + &vhost("a.test", "abip", "") + &vhost("b.test", "abip", "")),
    );
    let report = check(&config).unwrap();
    let json = report.to_json();
    assert_eq!(
        codes(&json),
        map(&[
            ("coalescing", 1),
            ("covered-ip-address", 1),
            ("shared-certificate", 1)
        ]),
        "{json:#}"
    );
    let note = findings(&json, "covered-ip-address")[0];
    assert_eq!(note["severity"], "info");
    assert_eq!(note["names"], serde_json::json!(["192.0.2.1"]));
    assert_eq!(
        note["message"],
        "certificate CN=rcgen self signed cert covers IP address 192.0.2.1; virtual hosts cannot serve IP addresses"
    );
    let text = report.to_text();
    assert!(!text.contains("serve these names"), "{text}");
    assert_eq!(report.exit_code(true), 0);
}

/// A plain listener has nothing of TLS to audit: one information finding that says the
/// load balancer in front must make the TLS checks, and no certificate findings.
#[test]
fn a_plain_listener_is_information_only() {
    let dir = Dir::new("check-plain");
    let text = format!(
        "{}tls = false\n{}{}",
        listener("secure", ""),
        vhost("a.test", "abold", ""),
        vhost("c.test", "c", "client_auth = { ca = \"client-ca.pem\" }"),
    );
    let report = check(&dir.config(&text)).unwrap();
    let json = report.to_json();
    assert_eq!(
        codes(&json),
        BTreeMap::from([("plain-listener".to_owned(), 1)]),
        "{json}"
    );
    assert_eq!(report.exit_code(true), 0);
    assert!(
        report.to_text().contains("load balancer"),
        "{}",
        report.to_text()
    );
}
