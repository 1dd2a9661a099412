//! `misdirect probe`: find a live server's coalescing hazards from the outside.
//!
//! One TLS connection is made, as a browser would make it for the URL's host (or the SNI
//! given). The probe reads the certificate the server presents (and verifies it with
//! `--cacert`, reporting why it fails and how many days it has left) and, over HTTP/2, any
//! ORIGIN frame (RFC 8336) — then sends, on that same connection, one request for each name
//! the certificate covers (a wildcard is tried with a probe label), as a coalescing browser
//! would (RFC 9113 §9.1.1). Each answer gets a [`Verdict`] from [`judge`]: 2xx and 3xx are
//! served, 421 is misdirected, any other 4xx or a 5xx is a refusal or an error, never
//! "served". A name served on the shared connection is then checked on a fresh connection
//! made for it: if that connection is asked for a client certificate the probe did not
//! have, the shared connection bypassed it. A covered name refused with a 4xx other than
//! 421 is checked the same way: served (or guarded by a client certificate) on a
//! connection of its own, the refusal costs coalescing browsers an error page.
//!
//! The probe only sends `GET` or `HEAD` for `/` (or the URL's path), at most two requests
//! per name, each with a timeout, and only to the one address given or resolved.
//!
//! The verdicts ([`judge`], [`Verdict`], [`Severity`]), the plan (the names, the bounds on
//! options, the reading of bodies) and the report are free of I/O. The connections are
//! misdirect-client's ([`Client::connect`](misdirect_client::Client::connect)): made
//! outside its pool, they carry a request for any name, complete the handshake whatever
//! the certificate (keeping the verifier's answer), say whether the server asked for a
//! client certificate, and read the server's ORIGIN frame.

mod net;
mod plan;
mod report;
mod verdict;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use misdirect_certmatch::{DnsPattern, Identities};

use self::net::{Prober, Shared};
pub use self::plan::{MAX_TIMEOUT_SECS, MIN_TIMEOUT_SECS, parse_timeout};
use self::plan::{Plan, Target, parse_name};
pub use self::report::{
    CertSummary, EXPIRY_WARNING_DAYS, FreshCheck, NameResult, NameSource, ProbeReport, Protocol,
};
pub use self::verdict::{Facts, Fresh, Severity, StatusClass, Verdict, fresh_check_wanted, judge};
use crate::error::{Error, ErrorKind};

/// The label a wildcard name is tried with: `*.example.com` → `misdirect-probe.example.com`
/// ([`DnsPattern::example_host`]).
pub const PROBE_LABEL: &str = DnsPattern::EXAMPLE_LABEL;

/// What the probe should do.
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct ProbeOptions {
    /// The `https://host[:port][/path]` URL to probe.
    pub url: String,
    /// The SNI to send: `None` uses the URL's host.
    pub sni: Option<String>,
    /// Send no SNI at all.
    pub no_sni: bool,
    /// Connect to this address instead of resolving the URL's host.
    pub resolve: Option<SocketAddr>,
    /// Trust anchors (PEM) to verify the server's certificate with, for the SNI or without
    /// one for the URL's host. Without them the certificate is read but reported as not
    /// verified.
    pub cacert: Option<PathBuf>,
    /// A client certificate chain and key (PEM) to present.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// More names to try on the connection: DNS names or IP addresses.
    pub names: Vec<String>,
    /// The timeout for connecting and for each request ([`parse_timeout`] reads the
    /// command line's).
    pub timeout: Duration,
    /// Send `HEAD` instead of `GET`.
    pub head: bool,
}

impl ProbeOptions {
    /// Options for probing `url` with defaults: the URL's host as SNI, a 5-second timeout.
    ///
    /// ```
    /// use misdirect_server::probe::ProbeOptions;
    ///
    /// let options = ProbeOptions::new("https://www.example.test/");
    /// assert_eq!(options.timeout.as_secs(), 5);
    /// assert!(options.sni.is_none() && !options.no_sni);
    /// ```
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            sni: None,
            no_sni: false,
            resolve: None,
            cacert: None,
            client_cert: None,
            names: Vec::new(),
            timeout: Duration::from_secs(5),
            head: false,
        }
    }
}

/// Probes a server. Errors are failures to probe at all (a bad option, resolution,
/// connection, TLS — with what to do when the server requires a client certificate —,
/// timeout on the first connection); per-name failures are [`Verdict::Failed`] results.
pub async fn probe(options: &ProbeOptions) -> Result<ProbeReport, Error> {
    let target = Target::parse(&options.url)?;
    let extra_names = options
        .names
        .iter()
        .map(|name| parse_name("--names", name))
        .collect::<Result<Vec<_>, _>>()?;
    let sni = match (options.no_sni, &options.sni) {
        (true, _) => None,
        (false, Some(name)) => Some(name.clone()),
        (false, None) => target.host.as_name().map(|n| n.as_str().to_owned()),
    };
    let own = sni
        .as_deref()
        .map(|name| parse_name("--sni", name))
        .transpose()?;
    let address = match options.resolve {
        Some(address) => address,
        None => net::resolve(&target, options.timeout).await?,
    };
    let prober = Prober::new(options, address, &target.path)?;
    // The connection is made for the SNI's name or, without one, for the URL's host: a
    // client still checks the certificate against it.
    let made_for = own.clone().unwrap_or_else(|| target.host.clone());
    let origin = format!("https://{}", plan::authority(&made_for, target.port));
    let mut shared = Shared::open(&prober, origin, !options.no_sni).await?;
    let info = shared.info();
    let verified_for = match made_for.ip() {
        Some(ip) => ip.to_string(),
        None => made_for.to_string(),
    };
    // Without --cacert the client has no trust anchors: its refusal says nothing.
    let verification = options
        .cacert
        .as_ref()
        .map(|_| info.verification.clone().map_err(|e| e.to_string()));
    let end_entity = info.peer_certificates.first().ok_or_else(|| {
        Error::new(
            ErrorKind::Tls,
            format!("{address} presented no certificate"),
        )
    })?;
    let certificate = summarise(end_entity, verified_for, verification);
    let identities = Identities::from_der(end_entity).map_err(|e| {
        Error::new(
            ErrorKind::Tls,
            format!("cannot read the server's certificate: {e}"),
        )
        .with_source(e)
    })?;

    let mut plan = Plan::default();
    if let Some(own) = &own {
        plan.add(own.clone(), target.port, NameSource::Sni);
    }
    for pattern in identities.patterns() {
        plan.add_pattern(&pattern, target.port);
    }
    for host in extra_names {
        plan.add(host, target.port, NameSource::Option);
    }
    let origin_set = shared.origin_set();
    if let Some(origins) = &origin_set {
        plan.add_origin_frame(origins);
    }

    let mut results = Vec::new();
    for planned in plan.into_names() {
        let covered = identities.covers(&planned.host);
        let authority = planned.authority();
        let outcome = shared.request(&prober, &authority).await;
        let is_own = own.as_ref() == Some(&planned.host);
        let (status, error) = match outcome {
            Ok((status, reason)) => (Some(status), reason),
            // The first request ended by TLS (a client certificate the server requires):
            // no request can be made, and that is what to tell.
            Err(e) if results.is_empty() && e.kind() == ErrorKind::Tls => return Err(e),
            Err(e) => (None, Some(e.to_string())),
        };
        let mut facts = Facts::new(status, covered, is_own);
        let mut fresh = None;
        if fresh_check_wanted(&facts, prober.presents_client_cert())
            && planned.host.as_name().is_some()
        {
            let check = prober.fresh_check(&authority).await;
            let served = check.status.is_some_and(|s| StatusClass::of(s).is_served());
            facts = facts.with_fresh(Fresh::new(check.client_cert_requested, served));
            fresh = Some(check);
        }
        results.push(NameResult {
            name: planned.host.to_string(),
            source: planned.source,
            covered,
            status,
            error,
            fresh,
            verdict: judge(&facts),
        });
    }
    Ok(ProbeReport {
        address,
        sni,
        protocol: shared.protocol(),
        fell_back_to_http1: shared.protocol() == Protocol::Http1,
        certificate,
        origin_frame: origin_set.map(|set| set.iter().map(ToString::to_string).collect()),
        results,
    })
}

fn summarise(
    der: &[u8],
    verified_for: String,
    verification: Option<Result<(), String>>,
) -> CertSummary {
    let certificate = misdirect_certmatch::Certificate::from_der(der).ok();
    let not_after = crate::metrics::certificate_not_after(der);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    CertSummary {
        subject: certificate
            .as_ref()
            .map(|c| c.id().subject().to_owned())
            .unwrap_or_default(),
        sha256: certificate
            .as_ref()
            .map(|c| c.id().fingerprint_hex())
            .unwrap_or_default(),
        names: certificate
            .as_ref()
            .map(|c| c.identities().patterns().map(|p| p.to_string()).collect())
            .unwrap_or_default(),
        verified: verification.as_ref().map(Result::is_ok),
        verified_for: verification.as_ref().map(|_| verified_for),
        verify_error: verification.and_then(Result::err),
        not_after,
        days_left: not_after.map(|not_after| days_between(now, not_after)),
    }
}

/// Whole days from `now` to `then` (seconds since the Unix epoch), rounded down: a
/// certificate that expired an hour ago has -1 day left.
fn days_between(now: i64, then: i64) -> i64 {
    then.saturating_sub(now).div_euclid(86_400)
}

/// Parses `--resolve`: `HOST:ADDR` (curl's form, without the port; the host must be the
/// URL's) or `ADDR`, where ADDR is an IP address with or without a port. Without a port,
/// the URL's port is used.
pub fn parse_resolve(value: &str, url: &str) -> Result<SocketAddr, Error> {
    let target = Target::parse(url)?;
    let bad = || {
        Error::new(
            ErrorKind::Invalid,
            format!(
                "--resolve {value:?}: expected HOST:ADDR or ADDR (an IP address, optionally with :PORT)"
            ),
        )
    };
    let address = |text: &str| -> Option<SocketAddr> {
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Some(addr);
        }
        let ip = text.trim_start_matches('[').trim_end_matches(']');
        ip.parse::<std::net::IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, target.port))
    };
    if let Some(addr) = address(value) {
        return Ok(addr);
    }
    // HOST:ADDR or HOST:PORT:ADDR (curl). Hosts compare as hosts: case and a trailing dot
    // make no other name.
    let (host, rest) = value.split_once(':').ok_or_else(bad)?;
    let (port, rest) = match rest.split_once(':') {
        Some((port, addr)) if !addr.is_empty() && port.parse::<u16>().is_ok() => {
            (port.parse::<u16>().ok(), addr)
        }
        _ => (None, rest),
    };
    let addr = address(rest).ok_or_else(bad)?;
    if parse_name("--resolve", host)? != target.host {
        return Err(Error::new(
            ErrorKind::Invalid,
            format!(
                "--resolve names {host}, but the URL's host is {}",
                target.host
            ),
        ));
    }
    Ok(SocketAddr::new(addr.ip(), port.unwrap_or(addr.port())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_left() {
        assert_eq!(days_between(0, 86_400 * 3 + 5), 3);
        assert_eq!(days_between(0, 86_399), 0);
        assert_eq!(days_between(3600, 0), -1);
        assert_eq!(days_between(0, -86_401), -2);
    }
}
