//! The policy matrix: for each level, SNI × authority × client certificate × protocol →
//! the status and reason `docs/policy.md` gives, computed here by an independent oracle
//! from the site's layout.

use std::sync::Arc;

use tokio::task::JoinSet;

use crate::fixtures::Site;
use crate::support::{Client, Conn, Proto, TestServer, request};

const POLICIES: &[&str] = &["strict", "secure", "cert-only"];
const SNIS: &[Option<&str>] = &[
    Some("a.test"),
    Some("b.test"),
    Some("c.test"),
    Some("secure.test"),
    Some("x.wild.test"),
    None,
];
/// Public ports are 443 and 8443 (see the fixture).
const AUTHORITIES: &[&str] = &[
    "a.test",
    "b.test",
    "c.test",
    "secure.test",
    "unknown.test",
    "y.wild.test",
    "a.test:8443",
    "a.test:1",
    "A.TEST",
    "a.test.",
];

#[derive(Clone, Debug, PartialEq, Eq)]
enum Want {
    /// The server refuses the handshake (or the first request after it): a client
    /// certificate was required and not sent.
    NoConnection,
    Status(u16, Option<&'static str>, Option<String>),
}

/// The virtual host serving `host`, as the site is laid out.
fn vhost_of(host: &str) -> Option<&'static str> {
    match host {
        "a.test" => Some("a.test"),
        "b.test" => Some("b.test"),
        "c.test" => Some("c.test"),
        "secure.test" => Some("secure.test"),
        "partner.test" => Some("partner.test"),
        _ => match host.split_once('.') {
            Some((label, "wild.test")) if !label.is_empty() => Some("*.wild.test"),
            _ => None,
        },
    }
}

/// The names the certificate presented by `vhost` covers.
fn covers(vhost: &str, host: &str) -> bool {
    match vhost {
        "a.test" | "b.test" | "secure.test" => ["a.test", "b.test", "secure.test"].contains(&host),
        "c.test" => host == "c.test",
        "*.wild.test" => vhost_of(host) == Some("*.wild.test"),
        _ => false,
    }
}

/// docs/policy.md, rule by rule: (a) port, (b) host, (c) certificate, (d) client
/// certificate, then strict's own-vhost rule.
fn oracle(policy: &str, sni: Option<&str>, authority: &str, cert: bool) -> Want {
    let own = sni.and_then(vhost_of).unwrap_or("a.test");
    if own == "secure.test" && !cert {
        return Want::NoConnection;
    }
    let verified = own == "secure.test" && cert;
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, port.parse::<u16>().unwrap()),
        None => (authority, 443),
    };
    let host = host.to_ascii_lowercase();
    let host = host.strip_suffix('.').unwrap_or(&host);
    let refuse = |reason| Want::Status(421, Some(reason), None);
    if ![443, 8443].contains(&port) {
        return refuse("port-not-served");
    }
    let Some(vhost) = vhost_of(host) else {
        return refuse("unknown-host");
    };
    if !covers(own, host) {
        return refuse("certificate-does-not-cover");
    }
    if vhost == "secure.test" && !verified {
        return refuse("client-cert-required");
    }
    if policy == "strict" && vhost != own {
        return refuse(if sni.is_some() {
            "sni-vhost-differs"
        } else {
            "no-sni"
        });
    }
    Want::Status(200, None, Some(format!("vhost {vhost}\n")))
}

#[test]
fn oracle_spot_checks() {
    // The rows the embedded default prints, and the client-certificate floor.
    assert_eq!(
        oracle("secure", Some("a.test"), "b.test", false),
        Want::Status(200, None, Some("vhost b.test\n".into()))
    );
    assert_eq!(
        oracle("cert-only", Some("a.test"), "secure.test", true),
        Want::Status(421, Some("client-cert-required"), None)
    );
    assert_eq!(
        oracle("strict", None, "b.test", false),
        Want::Status(421, Some("no-sni"), None)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_matrix() {
    let site = Arc::new(Site::new("matrix"));
    let mut servers = Vec::new();
    for policy in POLICIES {
        let path = site.write(&format!("{policy}.toml"), &site.config(policy, ""));
        servers.push((*policy, TestServer::start(&path).await));
    }
    let roots = site.ca.roots();
    let mut tasks = JoinSet::new();
    for (policy, server) in &servers {
        for sni in SNIS {
            for cert in [false, true] {
                for proto in [Proto::H1, Proto::H2] {
                    let client = Client::new(&roots, *sni, "a.test", proto)
                        .cert(cert.then(|| site.client.clone()));
                    let addr = server.addr;
                    let policy = *policy;
                    tasks.spawn(async move {
                        let mut failures = Vec::new();
                        let mut conn: Option<Conn> = None;
                        for authority in AUTHORITIES {
                            let want = oracle(policy, client.sni.as_deref(), authority, cert);
                            let case = format!(
                                "policy={policy} sni={:?} authority={authority} cert={cert} {proto:?}",
                                client.sni
                            );
                            if conn.is_none() {
                                conn = client.connect(addr).await.ok();
                            }
                            let got = match conn.as_mut() {
                                None => Err("no connection".to_string()),
                                Some(c) => c.send(request(proto, Some(authority), &[])).await,
                            };
                            match (&want, got) {
                                (Want::NoConnection, Err(_)) => {}
                                (Want::NoConnection, Ok(resp)) => failures.push(format!(
                                    "{case}: want no connection, got {}",
                                    resp.status
                                )),
                                (Want::Status(..), Err(err)) => {
                                    failures.push(format!("{case}: want {want:?}, got error {err}"))
                                }
                                (Want::Status(status, reason, body), Ok(resp)) => {
                                    let ok = resp.status == *status
                                        && resp.reason().as_deref() == *reason
                                        && body.as_ref().is_none_or(|b| resp.text() == *b);
                                    if !ok {
                                        failures.push(format!(
                                            "{case}: want {want:?}, got {} {:?}",
                                            resp.status,
                                            resp.text()
                                        ));
                                    }
                                    // HTTP/1.1 closes after a 421; open a new connection.
                                    if resp.status == 421 && proto == Proto::H1 {
                                        conn = None;
                                    }
                                }
                            }
                            if matches!(want, Want::NoConnection) {
                                conn = None;
                            }
                        }
                        failures
                    });
                }
            }
        }
    }
    let mut failures = Vec::new();
    let mut groups = 0;
    while let Some(result) = tasks.join_next().await {
        failures.extend(result.unwrap());
        groups += 1;
    }
    assert_eq!(groups, POLICIES.len() * SNIS.len() * 2 * 2);
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        groups * AUTHORITIES.len(),
        failures.join("\n")
    );
    for (_, server) in servers {
        server.shutdown().await;
    }
}
