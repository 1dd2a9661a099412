//! `misdirect check`: a configuration's 421 hazards, found without opening a socket.
//!
//! The configuration and its certificates are loaded exactly as `misdirect serve` loads
//! them; each listener's virtual-host table is audited with `misdirect_coalesce::Audit`,
//! which also proves that no connection reaches a client-certificate virtual host without
//! authenticating for it.

use std::fmt::Write as _;
use std::net::SocketAddr;

use misdirect_coalesce::{Audit, AuditFinding, Severity};
use serde_json::{Value, json};

use crate::config::Config;
use crate::error::Error;
use crate::policy::Table;
use crate::site::Site;

/// The audit of every listener of a configuration.
#[derive(Debug)]
pub struct CheckReport {
    source: String,
    listeners: Vec<ListenerAudit>,
}

#[derive(Debug)]
struct ListenerAudit {
    addr: SocketAddr,
    policy: &'static str,
    warn_only: bool,
    ports: Vec<u16>,
    audit: Audit,
}

/// Loads nothing but what `config` names (certificates, keys, CA bundles) and audits each
/// listener.
pub fn check(config: &Config) -> Result<CheckReport, Error> {
    let site = Site::load(config)?;
    let cert_ids: Vec<_> = site
        .vhosts
        .iter()
        .map(|v| Some(v.cert_id.clone()))
        .collect();
    let mut listeners = Vec::new();
    for listener in &config.listeners {
        let ports = listener
            .public_ports
            .clone()
            .unwrap_or_else(|| vec![listener.addr.port()]);
        let table = Table::build(&site, listener, &ports).map_err(|e| e.in_file(&config.source))?;
        let ids: Vec<_> = table
            .ids
            .iter()
            .enumerate()
            .map(|(loaded, id)| (id.index(), cert_ids[loaded].clone()))
            .collect();
        let mut by_id = vec![None; table.vhosts.len()];
        for (index, cert) in ids {
            by_id[index] = cert;
        }
        let listen_port = (listener.addr.port() != 0).then_some(listener.addr.port());
        listeners.push(ListenerAudit {
            addr: listener.addr,
            policy: table.vhosts.policy().as_str(),
            warn_only: listener.warn_only,
            ports,
            audit: Audit::run(&table.vhosts, &by_id, listen_port),
        });
    }
    Ok(CheckReport {
        source: config.source.display().to_string(),
        listeners,
    })
}

impl CheckReport {
    /// The exit status: 2 with errors, 1 with warnings when `deny_warnings`, else 0.
    pub fn exit_code(&self, deny_warnings: bool) -> u8 {
        match self.count(Severity::Error) {
            0 if deny_warnings && self.count(Severity::Warning) > 0 => 1,
            0 => 0,
            _ => 2,
        }
    }

    fn count(&self, severity: Severity) -> usize {
        self.findings().filter(|f| f.severity() == severity).count()
    }

    fn findings(&self) -> impl Iterator<Item = &AuditFinding> {
        self.listeners.iter().flat_map(|l| l.audit.findings())
    }

    /// A readable report, one block per listener.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "misdirect check: {}", self.source);
        for listener in &self.listeners {
            let _ = writeln!(
                out,
                "\nlistener {} (policy {}{}, public ports {})",
                listener.addr,
                listener.policy,
                if listener.warn_only {
                    ", warn_only"
                } else {
                    ""
                },
                join(&listener.ports),
            );
            if listener.audit.findings().is_empty() {
                let _ = writeln!(out, "  no findings");
            }
            for finding in listener.audit.findings() {
                let _ = writeln!(
                    out,
                    "  {:<8} {:<26} {}",
                    finding.severity().as_str(),
                    finding.kind().code(),
                    finding.message()
                );
                let mut details = Vec::new();
                if !finding.host_names().is_empty() {
                    details.push(format!("names: {}", finding.host_names().join(", ")));
                }
                if !finding.vhost_names().is_empty() && finding.kind().code() != "coalescing" {
                    details.push(format!("vhosts: {}", finding.vhost_names().join(", ")));
                }
                if let Some(cert) = finding.cert_id() {
                    details.push(format!("certificate: {cert}"));
                }
                if !details.is_empty() {
                    let _ = writeln!(out, "  {:<35} {}", "", details.join("; "));
                }
                if finding.severity() > Severity::Info {
                    let _ = writeln!(out, "  {:<35} fix: {}", "", finding.advice());
                }
            }
        }
        let _ = writeln!(
            out,
            "\nsummary: {} error(s), {} warning(s), {} info",
            self.count(Severity::Error),
            self.count(Severity::Warning),
            self.count(Severity::Info),
        );
        out
    }

    /// The stable JSON form (documented in `docs/check.md`).
    pub fn to_json(&self) -> Value {
        json!({
            "version": 1,
            "config": self.source,
            "summary": {
                "errors": self.count(Severity::Error),
                "warnings": self.count(Severity::Warning),
                "info": self.count(Severity::Info),
            },
            "listeners": self.listeners.iter().map(|l| json!({
                "addr": l.addr.to_string(),
                "policy": l.policy,
                "warn_only": l.warn_only,
                "public_ports": l.ports,
                "findings": l.audit.findings().iter().map(finding_json).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    }
}

fn finding_json(finding: &AuditFinding) -> Value {
    json!({
        "severity": finding.severity().as_str(),
        "code": finding.kind().code(),
        "message": finding.message(),
        "names": finding.host_names(),
        "vhosts": finding.vhost_names(),
        "certificate": finding.cert_id().map(|c| json!({
            "subject": c.subject(),
            "sha256": c.fingerprint_hex(),
        })),
        "advice": finding.advice(),
    })
}

fn join(ports: &[u16]) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
