//! The test site: the embedded default's shape under `.test` names, plus a virtual host
//! whose client certificates come from another CA.

use std::path::PathBuf;

use crate::support::{Ca, ClientId, scratch_dir};

pub struct Site {
    pub dir: PathBuf,
    pub ca: Ca,
    pub client: ClientId,
    pub other_client: ClientId,
}

impl Site {
    pub fn new(label: &str) -> Self {
        let dir = scratch_dir(label);
        let ca = Ca::new("test CA");
        let other = Ca::new("other CA");
        ca.server_cert(&dir, "shared", &["a.test", "b.test", "secure.test"]);
        ca.server_cert(&dir, "c", &["c.test"]);
        ca.server_cert(&dir, "wild", &["*.wild.test"]);
        ca.server_cert(&dir, "partner", &["partner.test", "secure.test"]);
        ca.write_ca(&dir, "client-ca");
        other.write_ca(&dir, "other-ca");
        Self {
            dir,
            client: ca.client("client"),
            other_client: other.client("other client"),
            ca,
        }
    }

    /// A configuration with one listener on an ephemeral port whose public ports are 443
    /// and 8443 (as behind a port mapping); `extra` is added to the listener table.
    pub fn config(&self, policy: &str, extra: &str) -> String {
        format!(
            r#"
[[listener]]
addr = "127.0.0.1:0"
public_ports = [443, 8443]
policy = "{policy}"
default_vhost = "a.test"
{extra}

[limits]
shutdown_timeout_secs = 5

[[vhost]]
name = "a.test"
cert = "shared.pem"
key = "shared.key"

[[vhost]]
name = "b.test"
cert = "shared.pem"
key = "shared.key"

[[vhost]]
name = "c.test"
cert = "c.pem"
key = "c.key"

[[vhost]]
name = "*.wild.test"
cert = "wild.pem"
key = "wild.key"

[[vhost]]
name = "secure.test"
cert = "shared.pem"
key = "shared.key"
client_auth = {{ ca = "client-ca.pem", required = true }}

[[vhost]]
name = "partner.test"
cert = "partner.pem"
key = "partner.key"
client_auth = {{ ca = "other-ca.pem", required = true }}
"#
        )
    }

    /// Writes the configuration under its own file name and returns the path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}
