//! Bad configurations fail at start with one message naming the file and the problem, and
//! a non-zero exit; `warn_only` serves and logs; names and CA bundles are compared by what
//! they mean, not how they are spelled.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use misdirect_server::Config;

use crate::fixtures::Site;
use crate::support::{Client, Proto, TestServer, request};

/// A P-256 key in encrypted PKCS#8 (`openssl pkcs8 -topk8 -v2 aes-256-cbc`), which rustls
/// cannot read.
const ENCRYPTED_KEY: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----
MIHsMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAiLVioFhm6hwgICCAAw
DAYIKoZIhvcNAgkFADAdBglghkgBZQMEASoEEBjWd8NBDOpPv5KZ8CLO05YEgZCz
NEoaKfo8jDnrg4V6EwIOd4mzZvxtbGfoiKBmTLBfolwOzgam+GevRcgi9zKTGcA9
xWw++c1zmgeppGRLCGUGnlpIg2VnOJk65oGFsewjsO87YljZLdLy77BSOgIl0r4W
pj6Bebt7OU+MBcJlqiy1tij/nHSQ5NcvwJXL9gBt3emHmcV9uBfLFP9xLW1r4lg=
-----END ENCRYPTED PRIVATE KEY-----
";

const BIN: &str = env!("CARGO_BIN_EXE_misdirect");

/// Runs `misdirect serve --config path` and returns (exit success, stderr); fails the test
/// if the process is still running after a few seconds (it started serving).
fn run_config(path: &Path) -> (bool, String) {
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
            return (status.success(), stderr);
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!(
                "{} did not exit: it started with a bad configuration",
                path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn bad_configs_fail_at_start_naming_file_and_problem() {
    let site = Site::new("badconfig");
    let good = site.config("secure", "");
    std::fs::write(site.dir.join("garbage.pem"), "not a certificate\n").unwrap();
    std::fs::write(
        site.dir.join("empty-der.pem"),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    std::fs::write(site.dir.join("encrypted.key"), ENCRYPTED_KEY).unwrap();
    let cases: Vec<(&str, String, &[&str])> = vec![
        (
            "unknown-key.toml",
            good.replacen(
                "policy = \"secure\"",
                "policy = \"secure\"\nstrictness = 3",
                1,
            ),
            &["unknown field `strictness`", "line 6"],
        ),
        (
            "bad-policy.toml",
            good.replacen("policy = \"secure\"", "policy = \"insecure\"", 1),
            &["unknown variant `insecure`"],
        ),
        (
            "missing-cert-file.toml",
            good.replacen("cert = \"c.pem\"", "cert = \"nope.pem\"", 1),
            &["vhost \"c.test\"", "nope.pem"],
        ),
        (
            "garbage-cert.toml",
            good.replacen("cert = \"c.pem\"", "cert = \"garbage.pem\"", 1),
            &["vhost \"c.test\"", "garbage.pem", "no certificate"],
        ),
        (
            "unparsable-cert.toml",
            good.replacen("cert = \"c.pem\"", "cert = \"empty-der.pem\"", 1),
            &["vhost \"c.test\"", "empty-der.pem"],
        ),
        (
            "key-mismatch.toml",
            good.replacen("key = \"c.key\"", "key = \"wild.key\"", 1),
            &["vhost \"c.test\"", "does not match"],
        ),
        (
            "duplicate-name.toml",
            good.replacen("name = \"b.test\"", "name = \"a.test\"", 1),
            &[
                "\"a.test\" is in two virtual hosts",
                "([[vhost]] number 1)",
                "([[vhost]] number 2)",
            ],
        ),
        (
            "alias-twice.toml",
            good.replacen(
                "name = \"b.test\"",
                "name = \"b.test\"\naliases = [\"B.test.\"]",
                1,
            ),
            &["vhost \"b.test\" ([[vhost]] number 2): \"b.test\" is listed twice"],
        ),
        (
            "duplicate-alias.toml",
            good.replacen(
                "name = \"b.test\"",
                "name = \"b.test\"\naliases = [\"C.test.\"]",
                1,
            ),
            &["\"c.test\" is in two virtual hosts", "b.test", "c.test"],
        ),
        (
            "unknown-default.toml",
            good.replacen(
                "default_vhost = \"a.test\"",
                "default_vhost = \"z.test\"",
                1,
            ),
            &["default_vhost \"z.test\""],
        ),
        (
            "encrypted-key.toml",
            good.replacen("key = \"c.key\"", "key = \"encrypted.key\"", 1),
            &[
                "vhost \"c.test\"",
                "encrypted.key",
                "encrypted private keys are not supported",
                "openssl pkey -in key.pem -out key-plain.pem",
            ],
        ),
        (
            "bad-ca.toml",
            good.replacen("ca = \"client-ca.pem\"", "ca = \"garbage.pem\"", 1),
            &["vhost \"secure.test\"", "client_auth.ca", "garbage.pem"],
        ),
        (
            "not-toml.toml",
            "[[vhost]\nname = ".to_string(),
            &["TOML parse error"],
        ),
    ];
    let mut failures = Vec::new();
    for (file, text, expected) in &cases {
        let path = site.write(file, text);
        let (success, stderr) = run_config(&path);
        let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
        let names_file = stderr.contains(&path.display().to_string());
        let has_all = expected.iter().all(|e| stderr.contains(e));
        if success || !names_file || !has_all {
            failures.push(format!("{file}: success={success} stderr={stderr}"));
        }
        // One clear message (TOML errors quote the offending line, so may span lines).
        if lines.len() != 1 {
            failures.push(format!("{file}: expected one error line, got {lines:?}"));
        }
    }
    let missing = site.dir.join("does-not-exist.toml");
    let (success, stderr) = run_config(&missing);
    if success || !stderr.contains("does-not-exist.toml") || !stderr.contains("cannot read") {
        failures.push(format!("missing file: success={success} stderr={stderr}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[tokio::test]
async fn warn_only_serves_and_logs() {
    let site = Site::new("warnonly");
    let path = site.write("warn.toml", &site.config("strict", "warn_only = true"));
    let mut child = Command::new(BIN)
        .args(["serve", "--log-format", "json", "--config"])
        .arg(&path)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (lines_tx, mut lines_rx) = tokio::sync::mpsc::unbounded_channel::<serde_json::Value>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Ok(value) = serde_json::from_str(&line) {
                let _ = lines_tx.send(value);
            }
        }
    });
    let listening = loop {
        let line = next_line(&mut lines_rx).await;
        if line["message"] == "listening" {
            break line;
        }
    };
    let addr: std::net::SocketAddr = listening["addr"].as_str().unwrap().parse().unwrap();

    let mut conn = Client::new(&site.ca.roots(), Some("a.test"), "a.test", Proto::H2)
        .connect(addr)
        .await
        .unwrap();
    // Strict would refuse b.test on a.test's connection; warn_only serves it and logs.
    let resp = conn
        .send(request(Proto::H2, Some("b.test"), &[]))
        .await
        .unwrap();
    assert_eq!((resp.status, resp.text().as_str()), (200, "vhost b.test\n"));
    // One `listening` line per public port; then the warning.
    let warning = loop {
        let line = next_line(&mut lines_rx).await;
        if line["message"] != "listening" {
            break line;
        }
    };
    assert_eq!(warning["level"], "WARN");
    assert_eq!(warning["reason"], "sni-vhost-differs");
    assert_eq!(warning["sni"], "a.test");
    assert_eq!(warning["authority"], "b.test");
    assert_eq!(warning["presented_vhost"], "a.test");
    assert_eq!(warning["target_vhost"], "b.test");
    assert!(warning["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(warning["message"].as_str().unwrap().contains("warn_only"));

    // The client-certificate rule is never relaxed: still 421, logged as such.
    let resp = conn
        .send(request(Proto::H2, Some("secure.test"), &[]))
        .await
        .unwrap();
    assert_eq!(
        (resp.status, resp.reason().as_deref()),
        (421, Some("client-cert-required"))
    );
    let refusal = next_line(&mut lines_rx).await;
    assert_eq!(refusal["reason"], "client-cert-required");
    assert_eq!(refusal["status"], 421);
    assert_eq!(refusal["target_vhost"], "secure.test");

    // SIGTERM: graceful shutdown and a zero exit.
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    drop(conn);
    let deadline = Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(exit.success(), "{exit:?}");
}

async fn next_line(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>,
) -> serde_json::Value {
    tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("a log line")
        .expect("the server is running")
}

/// `default_vhost` is spelled like any other name: case, a trailing dot and Unicode do not
/// matter. A client without SNI gets the named virtual host's certificate.
#[tokio::test]
async fn default_vhost_is_normalised_like_every_name() {
    let site = Site::new("default-spelling");
    let text = site.config("secure", "").replacen(
        "default_vhost = \"a.test\"",
        "default_vhost = \"C.Test.\"",
        1,
    );
    let server = TestServer::start(&site.write("spelling.toml", &text)).await;
    // The certificate is verified as c.test: only c.test's virtual host presents it.
    let client = Client::new(&site.ca.roots(), None, "c.test", Proto::H1);
    let mut conn = client.connect(server.addr).await.unwrap();
    let resp = conn
        .send(request(Proto::H1, Some("c.test"), &[]))
        .await
        .unwrap();
    assert_eq!((resp.status, resp.text().as_str()), (200, "vhost c.test\n"));
    server.shutdown().await;

    let unknown = site.config("secure", "").replacen(
        "default_vhost = \"a.test\"",
        "default_vhost = \"d.test\"",
        1,
    );
    let err = Config::from_file(site.write("unknown-default.toml", &unknown)).unwrap_err();
    assert!(
        err.message()
            .contains("default_vhost \"d.test\" is not the name of any [[vhost]]"),
        "{err}"
    );
}

/// `--port` (and `--bind`) that give two listeners one address fail before binding, saying
/// so; so does a configuration that lists one address twice.
#[test]
fn one_address_for_two_listeners() {
    let site = Site::new("same-address");
    let two = |first: &str, second: &str| {
        let text = site.config("secure", "").replacen(
            "[[listener]]\naddr = \"127.0.0.1:0\"",
            &format!("[[listener]]\naddr = \"{first}\"\n\n[[listener]]\naddr = \"{second}\""),
            1,
        );
        Config::from_toml(&text, Path::new("two.toml"), &site.dir)
    };
    let mut config = two("127.0.0.1:8443", "127.0.0.1:9443").unwrap();
    // (bind, port, expected message)
    let cases: &[(Option<&str>, Option<u16>, Option<&str>)] = &[
        (
            None,
            Some(8443),
            Some("--port 8443 gives listeners 1 and 2 the same address 127.0.0.1:8443; "),
        ),
        (Some("127.0.0.1"), None, None),
        (None, Some(0), None),
    ];
    for (bind, port, expected) in cases {
        let mut config = config.clone();
        let result = config.override_addr(bind.map(|ip| ip.parse().unwrap()), *port);
        match (result, expected) {
            (Ok(()), None) => {}
            (Err(err), Some(expected)) => {
                assert!(err.message().starts_with(expected), "{err}");
                assert!(err.message().contains("leave out --port 8443"), "{err}");
                assert_eq!(err.file(), Some(Path::new("two.toml")));
            }
            (other, _) => panic!("{bind:?} {port:?}: {other:?}"),
        }
    }
    // A failed override changes nothing.
    assert!(config.override_addr(None, Some(8443)).is_err());
    assert!(
        config
            .override_addr(Some("0.0.0.0".parse().unwrap()), None)
            .is_ok()
    );

    let mut config = two("127.0.0.1:8443", "127.0.0.2:8443").unwrap();
    let err = config
        .override_addr(Some("0.0.0.0".parse().unwrap()), None)
        .unwrap_err();
    assert!(
        err.message()
            .starts_with("--bind 0.0.0.0 gives listeners 1 and 2 the same address 0.0.0.0:8443"),
        "{err}"
    );

    let err = two("127.0.0.1:8443", "127.0.0.1:8443").unwrap_err();
    assert!(
        err.message()
            .starts_with("listeners 1 and 2 have the same addr 127.0.0.1:8443"),
        "{err}"
    );
    assert!(two("127.0.0.1:0", "127.0.0.1:0").is_ok());
}

/// Two virtual hosts share a certificate and require client certificates from the same CA,
/// named in two files that differ only in formatting: one trust-anchor set, so a coalesced
/// request with a client certificate from that CA is served.
#[tokio::test]
async fn one_ca_in_two_files_is_one_anchor_set() {
    let site = Site::new("anchor-files");
    site.ca.server_cert(&site.dir, "xy", &["x.test", "y.test"]);
    let ca = std::fs::read_to_string(site.dir.join("client-ca.pem")).unwrap();
    std::fs::write(
        site.dir.join("client-ca-copy.pem"),
        format!(
            "# the same CA, saved again\n\n{}\n",
            ca.replace('\n', "\r\n")
        ),
    )
    .unwrap();
    let text = site.config("secure", "")
        + r#"
[[vhost]]
name = "x.test"
cert = "xy.pem"
key = "xy.key"
client_auth = { ca = "client-ca.pem", required = true }

[[vhost]]
name = "y.test"
cert = "xy.pem"
key = "xy.key"
client_auth = { ca = "client-ca-copy.pem", required = true }
"#;
    let server = TestServer::start(&site.write("anchors.toml", &text)).await;
    for proto in [Proto::H1, Proto::H2] {
        let client = Client::new(&site.ca.roots(), Some("x.test"), "x.test", proto)
            .cert(Some(site.client.clone()));
        let mut conn = client.connect(server.addr).await.unwrap();
        let resp = conn
            .send(request(proto, Some("y.test"), &[]))
            .await
            .unwrap();
        assert_eq!(
            (resp.status, resp.reason(), resp.text()),
            (200, None, "vhost y.test\n".to_owned()),
            "{proto:?}"
        );
    }
    server.shutdown().await;
}
