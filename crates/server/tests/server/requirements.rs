//! A virtual host's minimum TLS version and ALPN list, end to end: a coalesced request over
//! a connection that does not meet them gets 421 with the reason, at the `secure` level;
//! `cert-only` serves it.

use crate::fixtures::Site;
use crate::support::{Client, Proto, TestServer, request};

const EXTRA_VHOSTS: &str = r#"
[[vhost]]
name = "plain.test"
cert = "modern.pem"
key = "modern.key"

[[vhost]]
name = "modern.test"
cert = "modern.pem"
key = "modern.key"
min_tls = "1.3"

[[vhost]]
name = "h2only.test"
cert = "modern.pem"
key = "modern.key"
alpn = ["h2"]
"#;

async fn status(server: &TestServer, client: &Client, authority: &str) -> (u16, Option<String>) {
    let mut conn = client.connect(server.addr).await.unwrap();
    let resp = conn
        .send(request(client.proto, Some(authority), &[]))
        .await
        .unwrap();
    (resp.status, resp.reason())
}

#[tokio::test]
async fn tls_version_and_alpn_requirements() {
    let site = Site::new("requirements");
    site.ca.server_cert(
        &site.dir,
        "modern",
        &["plain.test", "modern.test", "h2only.test"],
    );
    for (policy, refused) in [("secure", true), ("cert-only", false)] {
        let text = site.config(policy, "") + EXTRA_VHOSTS;
        let server =
            TestServer::start(&site.write(&format!("requirements-{policy}.toml"), &text)).await;
        let roots = site.ca.roots();

        let mut tls12 = Client::new(&roots, Some("plain.test"), "plain.test", Proto::H2);
        tls12.tls12_only = true;
        let tls13 = Client::new(&roots, Some("plain.test"), "plain.test", Proto::H2);
        let want = if refused {
            (421, Some("tls-version-below-minimum".to_owned()))
        } else {
            (200, None)
        };
        assert_eq!(
            status(&server, &tls12, "modern.test").await,
            want,
            "{policy}: TLS 1.2"
        );
        assert_eq!(
            status(&server, &tls13, "modern.test").await.0,
            200,
            "{policy}: TLS 1.3"
        );
        assert_eq!(
            status(&server, &tls12, "plain.test").await.0,
            200,
            "{policy}: own vhost"
        );

        let h1 = Client::new(&roots, Some("plain.test"), "plain.test", Proto::H1);
        let want = if refused {
            (421, Some("alpn-not-allowed".to_owned()))
        } else {
            (200, None)
        };
        assert_eq!(
            status(&server, &h1, "h2only.test").await,
            want,
            "{policy}: http/1.1"
        );
        assert_eq!(
            status(&server, &tls13, "h2only.test").await.0,
            200,
            "{policy}: h2"
        );
        server.shutdown().await;
    }
}
