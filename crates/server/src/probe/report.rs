//! The report, without I/O: what the probe found, its exit status, and its text and JSON
//! forms.

use std::fmt;
use std::net::SocketAddr;

use super::verdict::{Severity, Verdict};

/// A certificate that expires in fewer days than this is a [`Severity::Hazard`].
pub const EXPIRY_WARNING_DAYS: i64 = 14;

/// Where a name the probe tried came from.
///
/// ```
/// use misdirect_server::probe::NameSource;
///
/// assert_eq!(NameSource::OriginFrame.as_str(), "origin-frame");
/// assert_eq!(NameSource::Option.to_string(), "option");
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NameSource {
    /// The SNI the connection was made with (`sni`).
    Sni,
    /// A name or IP address the presented certificate covers; a wildcard is tried with
    /// [`PROBE_LABEL`](super::PROBE_LABEL) (`certificate`).
    Certificate,
    /// Given with `--names` ([`ProbeOptions::names`](super::ProbeOptions::names)) (`option`).
    Option,
    /// An origin of the connection's ORIGIN set, from the server's ORIGIN frame
    /// (`origin-frame`).
    OriginFrame,
}

impl NameSource {
    /// The code used in the JSON output: `sni`, `certificate`, `option` or `origin-frame`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sni => "sni",
            Self::Certificate => "certificate",
            Self::Option => "option",
            Self::OriginFrame => "origin-frame",
        }
    }
}

impl fmt::Display for NameSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The HTTP version spoken on the probed connection, as ALPN negotiated it.
///
/// ```
/// use misdirect_server::probe::Protocol;
///
/// assert_eq!(Protocol::Http2.as_str(), "h2");
/// assert_eq!(Protocol::Http1.to_string(), "http/1.1");
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// HTTP/2 (`h2`): browsers coalesce these connections.
    Http2,
    /// HTTP/1.1 (`http/1.1`), when the server did not offer HTTP/2.
    Http1,
}

impl Protocol {
    /// The ALPN protocol ID: `h2` or `http/1.1`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Http2 => "h2",
            Self::Http1 => "http/1.1",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The probe's result for one name.
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct NameResult {
    /// The name tried.
    pub name: String,
    /// Where the name came from.
    pub source: NameSource,
    /// Whether the presented certificate covers it.
    pub covered: bool,
    /// The status of the request on the shared connection.
    pub status: Option<u16>,
    /// What the answer's body gave as its reason when the name was not served: a
    /// problem+json `code` (as misdirect servers send for a 421), a JSON `reason`, `title`
    /// or `detail`, an HTML title or the first line of text. For a failed request, why.
    pub error: Option<String>,
    /// On a fresh connection for the name: whether it asked for a client certificate and
    /// the status or failure it ended with.
    pub fresh: Option<FreshCheck>,
    /// The verdict.
    pub verdict: Verdict,
}

/// A fresh connection made for one name, to see what it demands.
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct FreshCheck {
    /// The server sent a CertificateRequest.
    pub client_cert_requested: bool,
    /// The status the request got, if it got one.
    pub status: Option<u16>,
    /// Why it failed, if it did.
    pub failure: Option<String>,
}

/// The certificate the server presented.
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct CertSummary {
    /// Its subject.
    pub subject: String,
    /// The SHA-256 fingerprint of its DER, in hex.
    pub sha256: String,
    /// Its DNS and IP identities.
    pub names: Vec<String>,
    /// Whether it verified against `--cacert` for [`verified_for`](Self::verified_for):
    /// `None` when no trust anchors were given.
    pub verified: Option<bool>,
    /// The name it was verified for: the SNI, or without one the URL's host.
    pub verified_for: Option<String>,
    /// Why verification failed, as the verifier said.
    pub verify_error: Option<String>,
    /// The end of its validity, in seconds since the Unix epoch.
    pub not_after: Option<i64>,
    /// Whole days from the probe to [`not_after`](Self::not_after); negative once expired.
    pub days_left: Option<i64>,
}

impl CertSummary {
    /// What is wrong with the certificate, worst first: a failed verification or an
    /// expired certificate is a [`Severity::Violation`], one expiring in fewer than
    /// [`EXPIRY_WARNING_DAYS`] days a [`Severity::Hazard`].
    pub fn findings(&self) -> Vec<(Severity, String)> {
        let mut findings = Vec::new();
        if self.verified == Some(false) {
            findings.push((
                Severity::Violation,
                format!(
                    "the certificate fails verification with --cacert for {}: {}",
                    self.verified_for.as_deref().unwrap_or("the server"),
                    self.verify_error.as_deref().unwrap_or("no reason given")
                ),
            ));
        }
        match self.days_left {
            Some(days) if days < 0 => findings.push((
                Severity::Violation,
                format!("the certificate expired {} day(s) ago", -days),
            )),
            Some(days) if days < EXPIRY_WARNING_DAYS => findings.push((
                Severity::Hazard,
                format!("the certificate expires in {days} day(s)"),
            )),
            _ => {}
        }
        findings
    }

    fn verification(&self) -> String {
        let name = self.verified_for.as_deref().unwrap_or("the server");
        match self.verified {
            Some(true) => format!("verified with --cacert for {name}"),
            Some(false) => format!("NOT valid for {name} with --cacert"),
            None => "not verified (no --cacert)".to_owned(),
        }
    }
}

/// Everything the probe found.
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct ProbeReport {
    /// The address connected to.
    pub address: SocketAddr,
    /// The SNI sent, if any.
    pub sni: Option<String>,
    /// The HTTP version the connection speaks.
    pub protocol: Protocol,
    /// True when the server did not offer HTTP/2.
    pub fell_back_to_http1: bool,
    /// The presented certificate.
    pub certificate: CertSummary,
    /// The connection's ORIGIN set (RFC 8336 §2.3) once the server sent an ORIGIN frame:
    /// the origin the connection was made for and every valid origin the frame lists,
    /// ordered as text. `None` without a frame, and over HTTP/1.1.
    pub origin_frame: Option<Vec<String>>,
    /// One result per name tried.
    pub results: Vec<NameResult>,
}

impl ProbeReport {
    /// The severity of the worst finding, on a name or on the certificate:
    /// [`Severity::Fine`] when there is none.
    pub fn worst(&self) -> Severity {
        self.results
            .iter()
            .map(|r| r.verdict.severity())
            .chain(self.certificate.findings().into_iter().map(|(s, _)| s))
            .max()
            .unwrap_or(Severity::Fine)
    }

    /// The exit status: 3 when a request failed, 2 for violations (bypass, a name served
    /// without certificate cover, a 421 for the connection's own name, a certificate that
    /// fails verification or has expired), 1 for hazards (421 or another refusal on a
    /// coalesced connection, a 5xx, a certificate expiring within
    /// [`EXPIRY_WARNING_DAYS`] days), else 0.
    pub fn exit_code(&self) -> u8 {
        self.worst().exit_code()
    }

    /// A readable report.
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "connected to {} with {}, over {}{}",
            self.address,
            self.sni
                .as_deref()
                .map_or("no SNI".to_owned(), |s| format!("SNI {s}")),
            self.protocol,
            if self.fell_back_to_http1 {
                " (the server did not offer HTTP/2: HTTP/1.1 connections are not coalesced by browsers)"
            } else {
                ""
            },
        );
        let certificate = &self.certificate;
        let _ = writeln!(
            out,
            "certificate: {} (sha256 {}), {}",
            certificate.subject,
            certificate.sha256,
            certificate.verification()
        );
        let _ = writeln!(out, "  covers: {}", certificate.names.join(", "));
        if let (Some(not_after), Some(days)) = (certificate.not_after, certificate.days_left) {
            let _ = writeln!(out, "  expires: {} ({days} day(s))", http_date(not_after));
        }
        let findings = certificate.findings();
        for (severity, finding) in &findings {
            let _ = writeln!(out, "  {}: {finding}", severity.as_str().to_uppercase());
        }
        match &self.origin_frame {
            Some(origins) => {
                let _ = writeln!(out, "ORIGIN frame: {}", origins.join(", "));
            }
            None if self.protocol == Protocol::Http2 => {
                let _ = writeln!(out, "ORIGIN frame: none");
            }
            None => {}
        }
        let _ = writeln!(
            out,
            "\n{:<40} {:<6} {:<18} meaning",
            "name", "status", "verdict"
        );
        for r in &self.results {
            let status = r.status.map_or("-".to_owned(), |s| s.to_string());
            let mut meaning = r.verdict.explanation().to_owned();
            if let Some(reason) = &r.error {
                let _ = write!(meaning, " [{reason}]");
            }
            if let Some(fresh) = &r.fresh
                && matches!(r.verdict, Verdict::Bypass | Verdict::RefusedShared)
            {
                let _ = write!(
                    meaning,
                    "; fresh connection: {}{}",
                    if fresh.client_cert_requested {
                        "client certificate requested, "
                    } else {
                        ""
                    },
                    fresh.status.map_or_else(
                        || fresh.failure.clone().unwrap_or_default(),
                        |s| format!("status {s}")
                    )
                );
            }
            let _ = writeln!(
                out,
                "{:<40} {:<6} {:<18} {meaning}",
                r.name,
                status,
                r.verdict.code()
            );
        }
        let count = |severity: Severity| {
            self.results
                .iter()
                .filter(|r| r.verdict.severity() == severity)
                .count()
                + findings.iter().filter(|(s, _)| *s == severity).count()
        };
        let _ = writeln!(
            out,
            "\nsummary: {} fine, {} hazard(s), {} violation(s), {} failure(s)",
            count(Severity::Fine),
            count(Severity::Hazard),
            count(Severity::Violation),
            count(Severity::Failure)
        );
        out
    }

    /// The JSON form (documented in `docs/probe.md`).
    pub fn to_json(&self) -> serde_json::Value {
        let certificate = &self.certificate;
        serde_json::json!({
            "version": 1,
            "address": self.address.to_string(),
            "sni": self.sni,
            "protocol": self.protocol.as_str(),
            "fell_back_to_http1": self.fell_back_to_http1,
            "certificate": {
                "subject": certificate.subject,
                "sha256": certificate.sha256,
                "names": certificate.names,
                "verified": certificate.verified,
                "verified_for": certificate.verified_for,
                "verify_error": certificate.verify_error,
                "not_after": certificate.not_after,
                "days_left": certificate.days_left,
                "findings": certificate.findings().iter().map(|(severity, message)| serde_json::json!({
                    "severity": severity.as_str(),
                    "message": message,
                })).collect::<Vec<_>>(),
            },
            "origin_frame": self.origin_frame,
            "results": self.results.iter().map(|r| serde_json::json!({
                "name": r.name,
                "source": r.source.as_str(),
                "covered": r.covered,
                "status": r.status,
                "reason": r.error,
                "verdict": r.verdict.code(),
                "severity": r.verdict.severity().as_str(),
                "fresh": r.fresh.as_ref().map(|f| serde_json::json!({
                    "client_cert_requested": f.client_cert_requested,
                    "status": f.status,
                    "failure": f.failure,
                })),
            })).collect::<Vec<_>>(),
            "exit_code": self.exit_code(),
        })
    }
}

/// `not_after` as an HTTP date (RFC 9110 §5.6.7), or the number when out of range.
fn http_date(not_after: i64) -> String {
    let time = u64::try_from(not_after)
        .ok()
        .and_then(|secs| std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(secs)));
    match time {
        Some(time) => httpdate::fmt_http_date(time),
        None => format!("{not_after} s after 1970"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(
        name: &str,
        source: NameSource,
        status: Option<u16>,
        error: Option<&str>,
        verdict: Verdict,
    ) -> NameResult {
        NameResult {
            name: name.to_owned(),
            source,
            covered: !matches!(
                verdict,
                Verdict::ServedUncovered | Verdict::RefusedUncovered
            ),
            status,
            error: error.map(str::to_owned),
            fresh: None,
            verdict,
        }
    }

    fn with_fresh(
        result: NameResult,
        client_cert_requested: bool,
        status: Option<u16>,
        failure: Option<&str>,
    ) -> NameResult {
        NameResult {
            fresh: Some(FreshCheck {
                client_cert_requested,
                status,
                failure: failure.map(str::to_owned),
            }),
            ..result
        }
    }

    fn certificate() -> CertSummary {
        CertSummary {
            subject: "CN=a.test".to_owned(),
            sha256: "ab12".to_owned(),
            names: vec!["a.test".to_owned(), "*.b.test".to_owned()],
            verified: None,
            verified_for: None,
            verify_error: None,
            not_after: Some(1_900_000_000),
            days_left: Some(90),
        }
    }

    /// A report with every verdict and every source, over HTTP/2 with an ORIGIN frame.
    fn full_report() -> ProbeReport {
        let origin = |name: &str, status, verdict| {
            result(name, NameSource::OriginFrame, Some(status), None, verdict)
        };
        let option = |name: &str, status, reason: Option<&str>, verdict| {
            result(name, NameSource::Option, status, reason, verdict)
        };
        ProbeReport {
            address: SocketAddr::from(([127, 0, 0, 1], 8443)),
            sni: Some("a.test".to_owned()),
            protocol: Protocol::Http2,
            fell_back_to_http1: false,
            certificate: certificate(),
            origin_frame: Some(vec!["https://a.test".to_owned()]),
            results: vec![
                result(
                    "a.test",
                    NameSource::Sni,
                    Some(200),
                    None,
                    Verdict::ServedOwn,
                ),
                result(
                    "b.test",
                    NameSource::Certificate,
                    Some(200),
                    None,
                    Verdict::Served,
                ),
                result(
                    "secure.test",
                    NameSource::Certificate,
                    Some(421),
                    Some("client-cert-required"),
                    Verdict::Misdirected,
                ),
                result(
                    "own.test",
                    NameSource::Certificate,
                    Some(421),
                    None,
                    Verdict::MisdirectedOwn,
                ),
                with_fresh(
                    origin("bypass.test", 200, Verdict::Bypass),
                    true,
                    Some(403),
                    None,
                ),
                with_fresh(
                    origin("bypass2.test", 200, Verdict::Bypass),
                    true,
                    None,
                    Some("the connection failed: x"),
                ),
                with_fresh(
                    origin("mtls.test", 400, Verdict::RefusedShared),
                    true,
                    None,
                    Some("the connection failed: y"),
                ),
                with_fresh(
                    origin("gone.test", 404, Verdict::Refused),
                    false,
                    Some(404),
                    None,
                ),
                origin("down.test", 503, Verdict::ServerError),
                option("c.test", Some(200), None, Verdict::ServedUncovered),
                option(
                    "d.test",
                    Some(421),
                    Some("unknown-host"),
                    Verdict::RefusedUncovered,
                ),
                option(
                    "e.test",
                    None,
                    Some("the connection failed: closed"),
                    Verdict::Failed,
                ),
            ],
        }
    }

    /// The text and JSON forms, to the byte: scripts parse both.
    #[test]
    fn report_output_is_stable() {
        const EXPECTED_TEXT: &str = r#"connected to 127.0.0.1:8443 with SNI a.test, over h2
certificate: CN=a.test (sha256 ab12), not verified (no --cacert)
  covers: a.test, *.b.test
  expires: Sun, 17 Mar 2030 17:46:40 GMT (90 day(s))
ORIGIN frame: https://a.test

name                                     status verdict            meaning
a.test                                   200    served-own         the connection's own name, served
b.test                                   200    served             served on the shared connection (coalescing works)
secure.test                              421    misdirected        421 on the shared connection: coalescing browsers retry on a new connection [client-cert-required]
own.test                                 421    misdirected-own    421 for the connection's own name: nobody can reach it
bypass.test                              200    bypass             BYPASS: served on the shared connection, but a fresh connection for it demands a client certificate; fresh connection: client certificate requested, status 403
bypass2.test                             200    bypass             BYPASS: served on the shared connection, but a fresh connection for it demands a client certificate; fresh connection: client certificate requested, the connection failed: x
mtls.test                                400    refused-shared     refused on the shared connection, though a connection of its own serves it or asks for a client certificate: coalescing browsers show this error where a 421 would make them retry; fresh connection: client certificate requested, the connection failed: y
gone.test                                404    refused            refused, and no connection of its own was seen to serve it: the site's answer, not a coalescing matter
down.test                                503    server-error       the server answered with an error (5xx): not judged
c.test                                   200    served-uncovered   served although the certificate does not cover it (RFC 9110 §7.4 violation)
d.test                                   421    refused-uncovered  not covered by the certificate, and refused: correct [unknown-host]
e.test                                   -      failed             the request failed [the connection failed: closed]

summary: 4 fine, 3 hazard(s), 4 violation(s), 1 failure(s)
"#;
        const EXPECTED_JSON: &str = concat!(
            r#"{"address":"127.0.0.1:8443","certificate":{"days_left":90,"findings":[],"names":["a.test","*.b.test"],"not_after":1900000000,"sha256":"ab12","subject":"CN=a.test","verified":null,"verified_for":null,"verify_error":null},"exit_code":3,"fell_back_to_http1":false,"origin_frame":["https://a.test"],"protocol":"h2","results":["#,
            r#"{"covered":true,"fresh":null,"name":"a.test","reason":null,"severity":"fine","source":"sni","status":200,"verdict":"served-own"},"#,
            r#"{"covered":true,"fresh":null,"name":"b.test","reason":null,"severity":"fine","source":"certificate","status":200,"verdict":"served"},"#,
            r#"{"covered":true,"fresh":null,"name":"secure.test","reason":"client-cert-required","severity":"hazard","source":"certificate","status":421,"verdict":"misdirected"},"#,
            r#"{"covered":true,"fresh":null,"name":"own.test","reason":null,"severity":"violation","source":"certificate","status":421,"verdict":"misdirected-own"},"#,
            r#"{"covered":true,"fresh":{"client_cert_requested":true,"failure":null,"status":403},"name":"bypass.test","reason":null,"severity":"violation","source":"origin-frame","status":200,"verdict":"bypass"},"#,
            r#"{"covered":true,"fresh":{"client_cert_requested":true,"failure":"the connection failed: x","status":null},"name":"bypass2.test","reason":null,"severity":"violation","source":"origin-frame","status":200,"verdict":"bypass"},"#,
            r#"{"covered":true,"fresh":{"client_cert_requested":true,"failure":"the connection failed: y","status":null},"name":"mtls.test","reason":null,"severity":"hazard","source":"origin-frame","status":400,"verdict":"refused-shared"},"#,
            r#"{"covered":true,"fresh":{"client_cert_requested":false,"failure":null,"status":404},"name":"gone.test","reason":null,"severity":"fine","source":"origin-frame","status":404,"verdict":"refused"},"#,
            r#"{"covered":true,"fresh":null,"name":"down.test","reason":null,"severity":"hazard","source":"origin-frame","status":503,"verdict":"server-error"},"#,
            r#"{"covered":false,"fresh":null,"name":"c.test","reason":null,"severity":"violation","source":"option","status":200,"verdict":"served-uncovered"},"#,
            r#"{"covered":false,"fresh":null,"name":"d.test","reason":"unknown-host","severity":"fine","source":"option","status":421,"verdict":"refused-uncovered"},"#,
            r#"{"covered":true,"fresh":null,"name":"e.test","reason":"the connection failed: closed","severity":"failure","source":"option","status":null,"verdict":"failed"}"#,
            r#"],"sni":"a.test","version":1}"#,
        );

        let report = full_report();
        assert_eq!(report.to_text(), EXPECTED_TEXT);
        assert_eq!(report.to_json().to_string(), EXPECTED_JSON);
        assert_eq!(report.worst(), Severity::Failure);
        assert_eq!(report.exit_code(), 3);
    }

    #[test]
    fn empty_report() {
        let mut empty = full_report();
        empty.sni = None;
        empty.protocol = Protocol::Http1;
        empty.fell_back_to_http1 = true;
        empty.origin_frame = None;
        empty.certificate.not_after = None;
        empty.certificate.days_left = None;
        empty.results.clear();
        assert_eq!(
            empty.to_text(),
            r#"connected to 127.0.0.1:8443 with no SNI, over http/1.1 (the server did not offer HTTP/2: HTTP/1.1 connections are not coalesced by browsers)
certificate: CN=a.test (sha256 ab12), not verified (no --cacert)
  covers: a.test, *.b.test

name                                     status verdict            meaning

summary: 0 fine, 0 hazard(s), 0 violation(s), 0 failure(s)
"#
        );
        assert_eq!(empty.worst(), Severity::Fine);
        assert_eq!(empty.exit_code(), 0);
    }

    /// The exit status is the worst verdict's: a failed request outranks a violation,
    /// which outranks a hazard.
    #[test]
    fn exit_code_is_the_worst_severity() {
        let mut report = full_report();
        let cases = [
            (Verdict::Failed, 3),
            (Verdict::ServedUncovered, 2),
            (Verdict::Bypass, 2),
            (Verdict::MisdirectedOwn, 2),
            (Verdict::Misdirected, 1),
            (Verdict::RefusedShared, 1),
            (Verdict::ServerError, 1),
            (Verdict::Served, 0),
        ];
        // Drop the worst verdicts one kind at a time.
        for (verdict, code) in cases {
            assert_eq!(report.exit_code(), code, "worst left: {verdict}");
            report.results.retain(|r| r.verdict != verdict);
        }
        assert_eq!(report.results.len(), 3, "{report:#?}");
        assert_eq!(report.exit_code(), 0);
    }

    /// A certificate that fails verification, has expired or expires within
    /// `EXPIRY_WARNING_DAYS` is a finding: it is printed, counted and sets the exit status.
    #[test]
    fn certificate_findings() {
        let mut report = full_report();
        report
            .results
            .retain(|r| r.verdict.severity() == Severity::Fine);
        assert_eq!(report.exit_code(), 0);
        assert!(report.certificate.findings().is_empty());

        report.certificate.days_left = Some(13);
        assert_eq!(report.exit_code(), 1);
        let text = report.to_text();
        assert!(
            text.contains("  HAZARD: the certificate expires in 13 day(s)\n"),
            "{text}"
        );
        assert!(text.contains("1 hazard(s)"), "{text}");
        report.certificate.days_left = Some(14);
        assert_eq!(report.exit_code(), 0);

        report.certificate.days_left = Some(-3);
        report.certificate.verified = Some(false);
        report.certificate.verified_for = Some("a.test".to_owned());
        report.certificate.verify_error =
            Some("invalid peer certificate: UnknownIssuer".to_owned());
        assert_eq!(report.exit_code(), 2);
        let text = report.to_text();
        assert!(
            text.contains("NOT valid for a.test with --cacert\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "  VIOLATION: the certificate fails verification with --cacert for a.test: invalid peer certificate: UnknownIssuer\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("  VIOLATION: the certificate expired 3 day(s) ago\n"),
            "{text}"
        );
        assert!(text.contains("2 violation(s)"), "{text}");
        let json = report.to_json();
        assert_eq!(json["exit_code"], 2);
        assert_eq!(json["certificate"]["verified"], false);
        assert_eq!(
            json["certificate"]["verify_error"],
            "invalid peer certificate: UnknownIssuer"
        );
        assert_eq!(json["certificate"]["findings"][1]["severity"], "violation");

        report.certificate.verified = Some(true);
        report.certificate.verify_error = None;
        report.certificate.days_left = Some(400);
        assert!(
            report
                .to_text()
                .contains("verified with --cacert for a.test\n")
        );
        assert_eq!(report.exit_code(), 0);
    }
}
