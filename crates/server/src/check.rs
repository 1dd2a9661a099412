//! `misdirect check`: a configuration's 421 hazards, found without opening a socket.
//!
//! The configuration and its certificates are loaded exactly as `misdirect serve` loads
//! them; each listener's virtual-host table is audited with `misdirect_coalesce::Audit`,
//! which also proves that no connection reaches a client-certificate virtual host without
//! authenticating for it. The server adds what only it knows: a default virtual host that
//! requires client certificates (`default-requires-client-cert`).

use std::fmt::Write as _;
use std::net::SocketAddr;

use misdirect_certmatch::CertId;
use misdirect_coalesce::{Audit, AuditFinding, FindingKind, Severity};
use serde_json::{Value, json};

use crate::config::Config;
use crate::error::Error;
use crate::site::Site;
use crate::tables::{self, Table};

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
    /// Errors first, then warnings, then information.
    findings: Vec<Finding>,
}

/// One finding of the report: the audit's, or the server's own.
#[derive(Debug)]
struct Finding {
    severity: Severity,
    code: &'static str,
    message: String,
    names: Vec<String>,
    vhosts: Vec<String>,
    certificate: Option<CertId>,
    advice: &'static str,
}

impl From<&AuditFinding> for Finding {
    fn from(finding: &AuditFinding) -> Self {
        let mut message = finding.message().to_string();
        if finding.kind() == FindingKind::CoveredIpAddress {
            // The configuration accepts host names only: say so, rather than suggest
            // serving the address.
            message = format!(
                "certificate {} covers IP address{} {}; virtual hosts cannot serve IP addresses",
                finding.cert_id().map_or("(unknown)", CertId::subject),
                if finding.host_names().len() == 1 {
                    ""
                } else {
                    "es"
                },
                finding.host_names().join(", "),
            );
        }
        Self {
            severity: finding.severity(),
            code: finding.kind().code(),
            message,
            names: finding.host_names().to_vec(),
            vhosts: finding.vhost_names().to_vec(),
            certificate: finding.cert_id().cloned(),
            advice: finding.advice(),
        }
    }
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
        let table = Table::build(&site, listener, &ports, &config.log)
            .map_err(|e| e.in_file(&config.source))?;
        // Virtual hosts are in site order in every table: a VhostId's index is the position.
        let by_id = cert_ids.clone();
        let listen_port = (listener.addr.port() != 0).then_some(listener.addr.port());
        let mut findings: Vec<Finding> = match listener.tls {
            true => Audit::run(&table.listener, &by_id, listen_port)
                .findings()
                .iter()
                .map(Finding::from)
                .collect(),
            // No certificate is presented here: there is nothing of TLS to audit.
            false => vec![Finding {
                severity: Severity::Info,
                code: "plain-listener",
                message: format!(
                    "listener {} serves plain HTTP (tls = false): no SNI, certificate or \
                     client-certificate checks happen here, so the load balancer in front \
                     must make them; virtual hosts that require client certificates are \
                     refused on it",
                    listener.addr
                ),
                names: Vec::new(),
                vhosts: Vec::new(),
                certificate: None,
                advice: "the TLS-terminating load balancer in front must check that each \
                         request's host is covered by its certificate and matches the \
                         connection's SNI, or put misdirect itself at the edge",
            }],
        };
        if let Some(message) = tables::default_requires_client_cert(&site, listener) {
            findings.push(Finding {
                severity: Severity::Warning,
                code: "default-requires-client-cert",
                message,
                names: Vec::new(),
                vhosts: vec![site.vhosts[listener.default_vhost].config.name.clone()],
                certificate: None,
                advice: tables::DEFAULT_CLIENT_CERT_ADVICE,
            });
        }
        findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
        listeners.push(ListenerAudit {
            addr: listener.addr,
            policy: table.vhosts().policy().as_str(),
            warn_only: listener.warn_only,
            ports,
            findings,
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
        self.listeners
            .iter()
            .flat_map(|l| &l.findings)
            .filter(|f| f.severity == severity)
            .count()
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
            if listener.findings.is_empty() {
                let _ = writeln!(out, "  no findings");
            }
            for finding in &listener.findings {
                let _ = writeln!(
                    out,
                    "  {:<8} {:<26} {}",
                    finding.severity.as_str(),
                    finding.code,
                    finding.message
                );
                let mut details = Vec::new();
                if !finding.names.is_empty() {
                    details.push(format!("names: {}", finding.names.join(", ")));
                }
                if !finding.vhosts.is_empty() && finding.code != "coalescing" {
                    details.push(format!("vhosts: {}", finding.vhosts.join(", ")));
                }
                if let Some(cert) = &finding.certificate {
                    details.push(format!("certificate: {cert}"));
                }
                if !details.is_empty() {
                    let _ = writeln!(out, "  {:<35} {}", "", details.join("; "));
                }
                if finding.severity > Severity::Info {
                    let _ = writeln!(out, "  {:<35} fix: {}", "", finding.advice);
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
                "findings": l.findings.iter().map(finding_json).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    }
}

fn finding_json(finding: &Finding) -> Value {
    json!({
        "severity": finding.severity.as_str(),
        "code": finding.code,
        "message": finding.message,
        "names": finding.names,
        "vhosts": finding.vhosts,
        "certificate": finding.certificate.as_ref().map(|c| json!({
            "subject": c.subject(),
            "sha256": c.fingerprint_hex(),
        })),
        "advice": finding.advice,
    })
}

fn join(ports: &[u16]) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
