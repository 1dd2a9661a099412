//! The server's counters and gauges, and their Prometheus exposition.
//!
//! Counting costs one relaxed atomic add: every counter is an `AtomicU64` in a fixed array,
//! indexed by a small integer the request path resolves with a `match` (status code,
//! refusal reason, handshake failure cause) or already holds (the virtual host's position in
//! the site). No lock, no hash map and no allocation is on the request path. The arrays are
//! read and labelled only when `/metrics` is scraped ([`Metrics`] is a prometheus-client
//! [`Collector`]).
//!
//! Per-virtual-host counters are kept by name in [`Metrics`], so they outlive a
//! configuration reload: [`Metrics::vhost_table`] hands out the same [`VhostCounters`] for
//! the same name every time, and the server indexes the table it returns by the virtual
//! host's position in the site.
//!
//! Every series is listed in the workspace's `docs/server.md` ("Metrics and the admin
//! listener").

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use http::StatusCode;
use misdirect_authority::TargetErrorKind;
use misdirect_coalesce::Reason;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// Every counter and gauge of one server process.
///
/// Made once at start and shared (`Arc`) by every site the server loads: per-virtual-host
/// counts come from the tables [`Metrics::vhost_table`] returns, the rest from the methods
/// here. [`Exposition`] encodes it all for a scrape.
#[derive(Debug)]
pub(crate) struct Metrics {
    /// Counter blocks by virtual-host name, made on first use and never removed.
    vhosts: Mutex<BTreeMap<Arc<str>, Arc<VhostCounters>>>,
    /// When each current virtual host's certificate expires: replaced as a whole at each
    /// (re)load, so a virtual host that is gone has no line.
    certificates: Mutex<Vec<(Arc<str>, i64)>>,
    refusals: [AtomicU64; REFUSAL_SLOTS],
    warnings: [AtomicU64; WARNING_SLOTS],
    handshake_failures: [AtomicU64; HandshakeFailureCause::ALL.len()],
    open_connections: [AtomicU64; Protocol::ALL.len()],
    /// `[ok, failed]`.
    reloads: [AtomicU64; 2],
    /// Seconds since the Unix epoch; 0 until the first load is recorded.
    last_load: AtomicU64,
    /// Refusal log lines held back (the server moves the listeners' totals here every
    /// second).
    refusal_log_suppressed: AtomicU64,
}

/// The counters of one virtual host, shared by every table that holds its name.
#[derive(Debug)]
pub(crate) struct VhostCounters {
    name: Arc<str>,
    requests: [AtomicU64; STATUS_SLOTS],
    coalesced: AtomicU64,
    handshakes: AtomicU64,
    /// Requests its proxy sent again after the upstream answered `421`.
    proxy_retries_421: AtomicU64,
}

/// The protocol of an open connection (`misdirect_open_connections{protocol}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// HTTP/1.1 (ALPN `http/1.1`, or none).
    H1,
    /// HTTP/2 (ALPN `h2`).
    H2,
}

/// Why a TLS handshake did not complete (`misdirect_tls_handshake_failures_total{cause}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HandshakeFailureCause {
    /// The client sent plain HTTP to the TLS port (answered with a 400).
    PlainHttp,
    /// It did not finish within `limits.tls_handshake_timeout_secs`.
    Timeout,
    /// The connection failed or closed before the handshake finished.
    Io,
    /// The client aborted with a TLS alert (it did not trust the certificate, for one).
    TlsAlert,
    /// The server refused the handshake: a protocol error, no common version, cipher suite
    /// or protocol, or a client certificate its verifier rejected.
    TlsError,
}

/// Keeps `misdirect_open_connections{protocol}` one higher while it lives.
#[derive(Debug)]
#[must_use = "the connection counts as open only while the guard lives"]
pub(crate) struct OpenConnection {
    metrics: Arc<Metrics>,
    protocol: Protocol,
}

/// The exposition format of a scrape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// OpenMetrics 1.0 text, for a scraper that asks for it (Prometheus does).
    OpenMetrics,
    /// The Prometheus text format 0.0.4, for everyone else (curl, older scrapers).
    Prometheus,
}

/// A registry holding the [`Metrics`] collector, ready to encode.
#[derive(Debug)]
pub(crate) struct Exposition {
    registry: Registry,
}

impl Metrics {
    /// All counters at zero, no virtual host known yet.
    pub(crate) fn new() -> Self {
        Self {
            vhosts: Mutex::new(BTreeMap::new()),
            certificates: Mutex::new(Vec::new()),
            refusals: [const { AtomicU64::new(0) }; REFUSAL_SLOTS],
            warnings: [const { AtomicU64::new(0) }; WARNING_SLOTS],
            handshake_failures: [const { AtomicU64::new(0) }; HandshakeFailureCause::ALL.len()],
            open_connections: [const { AtomicU64::new(0) }; Protocol::ALL.len()],
            reloads: [const { AtomicU64::new(0) }; 2],
            last_load: AtomicU64::new(0),
            refusal_log_suppressed: AtomicU64::new(0),
        }
    }

    /// The counter blocks of these virtual hosts, in the order given: the block of a name
    /// seen before (in an earlier table, before a reload) is the same block, so its counts
    /// carry on. Call it when a site is loaded, never per request: it takes a lock.
    pub(crate) fn vhost_table<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Vec<Arc<VhostCounters>> {
        let mut vhosts = self.vhosts.lock().unwrap_or_else(PoisonError::into_inner);
        names
            .into_iter()
            .map(|name| match vhosts.get(name) {
                Some(counters) => counters.clone(),
                None => {
                    let counters = Arc::new(VhostCounters::new(name));
                    vhosts.insert(counters.name.clone(), counters.clone());
                    counters
                }
            })
            .collect()
    }

    /// Replaces the certificate expiry of the current virtual hosts: `(name, notAfter in
    /// seconds since the Unix epoch)` for each, as [`certificate_not_after`] reads it. Call
    /// it when a site has been loaded and put in service (at start and after a successful
    /// reload); names left out lose their line.
    pub(crate) fn set_certificate_expiry<'a>(
        &self,
        certificates: impl IntoIterator<Item = (&'a str, i64)>,
    ) {
        let fresh: Vec<(Arc<str>, i64)> = certificates
            .into_iter()
            .map(|(name, not_after)| (Arc::from(name), not_after))
            .collect();
        *self
            .certificates
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = fresh;
    }

    /// One request refused: `reason` and status as in `misdirect_coalesce::Refusal` (`None`
    /// is the 404 of `unknown_host = "not-found"`).
    #[inline]
    pub(crate) fn count_refusal(&self, reason: Option<Reason>) {
        self.refusals[refusal_slot(reason)].fetch_add(1, Ordering::Relaxed);
    }

    /// One request served only because `warn_only` is on; `reason` is the refusal it would
    /// have got.
    #[inline]
    pub(crate) fn count_warning(&self, reason: Option<Reason>) {
        let slot = refusal_slot(reason);
        let slot = if slot < WARNING_SLOTS {
            slot
        } else {
            OTHER_MISDIRECTED
        };
        self.warnings[slot].fetch_add(1, Ordering::Relaxed);
    }

    /// One TLS handshake that did not complete.
    #[inline]
    pub(crate) fn count_handshake_failure(&self, cause: HandshakeFailureCause) {
        self.handshake_failures[cause as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a connection as open over `protocol` until the guard is dropped.
    #[inline]
    pub(crate) fn open_connection(self: &Arc<Self>, protocol: Protocol) -> OpenConnection {
        self.open_connections[protocol as usize].fetch_add(1, Ordering::Relaxed);
        OpenConnection {
            metrics: self.clone(),
            protocol,
        }
    }

    /// The configuration was loaded at `at` (at start, without counting a reload).
    pub(crate) fn config_loaded(&self, at: SystemTime) {
        let seconds = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.last_load.store(seconds, Ordering::Relaxed);
    }

    /// A reload put a new configuration in service at `at`.
    pub(crate) fn reload_succeeded(&self, at: SystemTime) {
        self.reloads[0].fetch_add(1, Ordering::Relaxed);
        self.config_loaded(at);
    }

    /// A reload failed; the configuration in service stays.
    pub(crate) fn reload_failed(&self) {
        self.reloads[1].fetch_add(1, Ordering::Relaxed);
    }

    /// `lines` more refusal log lines were held back by the log's rate limit.
    #[inline]
    pub(crate) fn count_refusal_log_suppressed(&self, lines: u64) {
        self.refusal_log_suppressed
            .fetch_add(lines, Ordering::Relaxed);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl VhostCounters {
    fn new(name: &str) -> Self {
        Self {
            name: Arc::from(name),
            requests: [const { AtomicU64::new(0) }; STATUS_SLOTS],
            coalesced: AtomicU64::new(0),
            handshakes: AtomicU64::new(0),
            proxy_retries_421: AtomicU64::new(0),
        }
    }

    /// One response with `status`, answered for this virtual host.
    #[inline]
    pub(crate) fn count_request(&self, status: StatusCode) {
        self.requests[status_slot(status.as_u16())].fetch_add(1, Ordering::Relaxed);
    }

    /// One request this virtual host served over a connection made for another.
    #[inline]
    pub(crate) fn count_coalesced(&self) {
        self.coalesced.fetch_add(1, Ordering::Relaxed);
    }

    /// One TLS handshake completed with this virtual host's certificate.
    #[inline]
    pub(crate) fn count_handshake(&self) {
        self.handshakes.fetch_add(1, Ordering::Relaxed);
    }

    /// `retries` more requests its proxy sent again after the upstream answered `421` (the
    /// server moves each proxy's count here every second).
    pub(crate) fn count_proxy_retries_421(&self, retries: u64) {
        self.proxy_retries_421.fetch_add(retries, Ordering::Relaxed);
    }
}

impl Protocol {
    const ALL: [Self; 2] = [Self::H1, Self::H2];

    fn label(self) -> &'static str {
        match self {
            Self::H1 => "h1",
            Self::H2 => "h2",
        }
    }
}

impl HandshakeFailureCause {
    const ALL: [Self; 5] = [
        Self::PlainHttp,
        Self::Timeout,
        Self::Io,
        Self::TlsAlert,
        Self::TlsError,
    ];

    /// The cause of a handshake that failed with `err`: tokio-rustls reports TLS errors as
    /// `io::Error`s wrapping the `rustls::Error`.
    pub(crate) fn of_io(err: &io::Error) -> Self {
        match err
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            Some(rustls::Error::AlertReceived(_)) => Self::TlsAlert,
            Some(_) => Self::TlsError,
            None => Self::Io,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::PlainHttp => "plain-http",
            Self::Timeout => "timeout",
            Self::Io => "io",
            Self::TlsAlert => "tls-alert",
            Self::TlsError => "tls-error",
        }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.metrics.open_connections[self.protocol as usize].fetch_sub(1, Ordering::Relaxed);
    }
}

/// The `Content-Type` of OpenMetrics 1.0 text.
const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

impl Format {
    /// OpenMetrics when an `Accept` value names it, else the Prometheus text format.
    pub(crate) fn negotiate(headers: &http::HeaderMap) -> Self {
        let wants_openmetrics = headers
            .get_all(http::header::ACCEPT)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .any(|value| value.contains("application/openmetrics-text"));
        match wants_openmetrics {
            true => Self::OpenMetrics,
            false => Self::Prometheus,
        }
    }

    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Self::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Self::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        }
    }
}

impl Exposition {
    pub(crate) fn new(metrics: Arc<Metrics>) -> Self {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(metrics));
        Self { registry }
    }

    /// Every series, in `format`.
    pub(crate) fn encode(&self, format: Format) -> Result<String, std::fmt::Error> {
        let mut text = String::with_capacity(4096);
        match format {
            Format::OpenMetrics => {
                prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
            }
            Format::Prometheus => {
                prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)?;
            }
        }
        Ok(text)
    }
}

/// The notAfter of a DER certificate, in seconds since the Unix epoch; `None` when it does
/// not parse.
pub(crate) fn certificate_not_after(der: &[u8]) -> Option<i64> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(certificate.validity().not_after.timestamp())
}

impl Collector for Metrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        // Counter families are named without `_total`: the encoders add it.
        let vhosts: Vec<Arc<VhostCounters>> = self
            .vhosts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();

        let mut family = encoder.encode_descriptor(
            "misdirect_requests",
            "Responses by the virtual host that answered (the one that served the request; \
             for a refusal, the one the connection was made for) and status code.",
            None,
            MetricType::Counter,
        )?;
        for vhost in &vhosts {
            for (slot, count) in vhost.requests.iter().enumerate() {
                let count = count.load(Ordering::Relaxed);
                // Sparse: a (vhost, status) series appears with its first response.
                if count > 0 {
                    let labels = [("vhost", &*vhost.name), ("status", STATUS_LABELS[slot])];
                    counter(family.encode_family(&labels)?, count)?;
                }
            }
        }

        let mut family = encoder.encode_descriptor(
            "misdirect_refusals",
            "Requests refused, by status (421, 400, or 404 for unknown_host = \"not-found\") \
             and reason code.",
            None,
            MetricType::Counter,
        )?;
        for (slot, count) in self.refusals.iter().enumerate() {
            let count = count.load(Ordering::Relaxed);
            let (status, reason) = refusal_labels(slot);
            if count > 0 || reason != "other" {
                counter(
                    family.encode_family(&[("status", status), ("reason", reason)])?,
                    count,
                )?;
            }
        }

        let mut family = encoder.encode_descriptor(
            "misdirect_warn_only",
            "Requests served only because warn_only is on, by the reason code they would have \
             been refused for.",
            None,
            MetricType::Counter,
        )?;
        for (slot, count) in self.warnings.iter().enumerate() {
            let count = count.load(Ordering::Relaxed);
            let (_, reason) = refusal_labels(slot);
            if count > 0 || reason != "other" {
                counter(family.encode_family(&[("reason", reason)])?, count)?;
            }
        }

        let mut family = encoder.encode_descriptor(
            "misdirect_coalesced_requests",
            "Requests served by a virtual host over a connection made for another one \
             (connection coalescing), by the virtual host that served them.",
            None,
            MetricType::Counter,
        )?;
        for vhost in &vhosts {
            let count = vhost.coalesced.load(Ordering::Relaxed);
            counter(family.encode_family(&[("vhost", &*vhost.name)])?, count)?;
        }

        let mut family = encoder.encode_descriptor(
            "misdirect_tls_handshakes",
            "TLS handshakes completed, by the virtual host whose certificate was presented.",
            None,
            MetricType::Counter,
        )?;
        for vhost in &vhosts {
            let count = vhost.handshakes.load(Ordering::Relaxed);
            counter(family.encode_family(&[("vhost", &*vhost.name)])?, count)?;
        }

        let mut family = encoder.encode_descriptor(
            "misdirect_tls_handshake_failures",
            "TLS handshakes that did not complete, by cause.",
            None,
            MetricType::Counter,
        )?;
        for cause in HandshakeFailureCause::ALL {
            let count = self.handshake_failures[cause as usize].load(Ordering::Relaxed);
            counter(family.encode_family(&[("cause", cause.label())])?, count)?;
        }

        let mut family = encoder.encode_descriptor(
            "misdirect_open_connections",
            "Connections open now (TLS handshake done), by protocol.",
            None,
            MetricType::Gauge,
        )?;
        for protocol in Protocol::ALL {
            let open = self.open_connections[protocol as usize].load(Ordering::Relaxed);
            family
                .encode_family(&[("protocol", protocol.label())])?
                .encode_gauge(&open)?;
        }

        let mut family = encoder.encode_descriptor(
            "misdirect_reloads",
            "Configuration reloads, by outcome.",
            None,
            MetricType::Counter,
        )?;
        for (outcome, count) in ["ok", "failed"].into_iter().zip(&self.reloads) {
            let count = count.load(Ordering::Relaxed);
            counter(family.encode_family(&[("outcome", outcome)])?, count)?;
        }

        encoder
            .encode_descriptor(
                "misdirect_config_last_reload_success_timestamp_seconds",
                "When the configuration in service was loaded (at start or by a reload), in \
                 seconds since the Unix epoch.",
                None,
                MetricType::Gauge,
            )?
            .encode_gauge(&self.last_load.load(Ordering::Relaxed))?;

        let mut family = encoder.encode_descriptor(
            "misdirect_certificate_not_after_timestamp_seconds",
            "When each virtual host's certificate expires (its notAfter), in seconds since the \
             Unix epoch.",
            None,
            MetricType::Gauge,
        )?;
        let certificates = self
            .certificates
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for (name, not_after) in &certificates {
            family
                .encode_family(&[("vhost", &**name)])?
                .encode_gauge(not_after)?;
        }

        let suppressed = self.refusal_log_suppressed.load(Ordering::Relaxed);
        let family = encoder.encode_descriptor(
            "misdirect_refusal_log_suppressed",
            "Refusal log lines held back by the log's rate limit (each refusal is still \
             counted in misdirect_refusals_total).",
            None,
            MetricType::Counter,
        )?;
        counter(family, suppressed)?;

        let mut family = encoder.encode_descriptor(
            "misdirect_proxy_retries_421",
            "Requests a virtual host's proxy sent again, on a new connection, after its \
             upstream answered 421 Misdirected Request.",
            None,
            MetricType::Counter,
        )?;
        for vhost in &vhosts {
            let count = vhost.proxy_retries_421.load(Ordering::Relaxed);
            counter(family.encode_family(&[("vhost", &*vhost.name)])?, count)?;
        }
        Ok(())
    }
}

/// Writes one counter sample.
fn counter(mut encoder: MetricEncoder<'_>, value: u64) -> Result<(), std::fmt::Error> {
    encoder.encode_counter::<NoLabelSet, _, u64>(&value, None)
}

// ---------------------------------------------------------------------------------------
// Slots: the small integers the request path indexes the counter arrays with.

/// The status codes counted one by one; anything else is `other`. 502 and 504 are a
/// proxy's answers when its upstream fails or is late.
const STATUSES: [u16; 16] = [
    200, 206, 304, 400, 404, 405, 408, 412, 413, 416, 421, 431, 500, 502, 503, 504,
];

const STATUS_SLOTS: usize = STATUSES.len() + 1;

/// The `status` label of each slot.
const STATUS_LABELS: [&str; STATUS_SLOTS] = [
    "200", "206", "304", "400", "404", "405", "408", "412", "413", "416", "421", "431", "500",
    "502", "503", "504", "other",
];

#[inline]
fn status_slot(code: u16) -> usize {
    match code {
        200 => 0,
        206 => 1,
        304 => 2,
        400 => 3,
        404 => 4,
        405 => 5,
        408 => 6,
        412 => 7,
        413 => 8,
        416 => 9,
        421 => 10,
        431 => 11,
        500 => 12,
        502 => 13,
        503 => 14,
        504 => 15,
        _ => 16,
    }
}

/// The request-target rules a 400 names (`Reason::BadRequest`); a rule added later counts
/// as `other`.
const BAD_REQUEST: [TargetErrorKind; 8] = [
    TargetErrorKind::MissingHost,
    TargetErrorKind::DuplicateHost,
    TargetErrorKind::InvalidHost,
    TargetErrorKind::InvalidTarget,
    TargetErrorKind::MissingAuthority,
    TargetErrorKind::InvalidAuthority,
    TargetErrorKind::HostMismatch,
    TargetErrorKind::UnsupportedScheme,
];

// The refusal slots: `Reason::MISDIRECTED` in its order, then `other` (421), then
// `BAD_REQUEST` in its order, then `other` (400), then the 404 of an unknown host.
const MISDIRECTED_SLOTS: usize = Reason::MISDIRECTED.len();
const OTHER_MISDIRECTED: usize = MISDIRECTED_SLOTS;
const FIRST_BAD_REQUEST: usize = OTHER_MISDIRECTED + 1;
const OTHER_BAD_REQUEST: usize = FIRST_BAD_REQUEST + BAD_REQUEST.len();
const NOT_FOUND: usize = OTHER_BAD_REQUEST + 1;
const REFUSAL_SLOTS: usize = NOT_FOUND + 1;
/// `warn_only` only ever serves what would have been a 421.
const WARNING_SLOTS: usize = OTHER_MISDIRECTED + 1;

#[inline]
fn refusal_slot(reason: Option<Reason>) -> usize {
    let Some(reason) = reason else {
        return NOT_FOUND;
    };
    match reason {
        Reason::UnknownHost => 0,
        Reason::PortNotServed => 1,
        Reason::SchemeNotServed => 2,
        Reason::CertificateDoesNotCover => 3,
        Reason::SniVhostDiffers => 4,
        Reason::NoSni => 5,
        Reason::ClientCertRequired => 6,
        Reason::ClientCertOtherAnchors => 7,
        Reason::TlsVersionBelowMinimum => 8,
        Reason::AlpnNotAllowed => 9,
        Reason::BadRequest(kind) => match kind {
            TargetErrorKind::MissingHost => FIRST_BAD_REQUEST,
            TargetErrorKind::DuplicateHost => FIRST_BAD_REQUEST + 1,
            TargetErrorKind::InvalidHost => FIRST_BAD_REQUEST + 2,
            TargetErrorKind::InvalidTarget => FIRST_BAD_REQUEST + 3,
            TargetErrorKind::MissingAuthority => FIRST_BAD_REQUEST + 4,
            TargetErrorKind::InvalidAuthority => FIRST_BAD_REQUEST + 5,
            TargetErrorKind::HostMismatch => FIRST_BAD_REQUEST + 6,
            TargetErrorKind::UnsupportedScheme => FIRST_BAD_REQUEST + 7,
            _ => OTHER_BAD_REQUEST,
        },
        // A reason added to misdirect-coalesce later.
        other if other.status() == StatusCode::BAD_REQUEST => OTHER_BAD_REQUEST,
        _ => OTHER_MISDIRECTED,
    }
}

/// The `status` and `reason` labels of a refusal slot.
fn refusal_labels(slot: usize) -> (&'static str, &'static str) {
    match slot {
        s if s < MISDIRECTED_SLOTS => ("421", Reason::MISDIRECTED[s].code()),
        OTHER_MISDIRECTED => ("421", "other"),
        s if s < OTHER_BAD_REQUEST => ("400", BAD_REQUEST[s - FIRST_BAD_REQUEST].code()),
        OTHER_BAD_REQUEST => ("400", "other"),
        _ => ("404", Reason::UnknownHost.code()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn exposition(metrics: &Arc<Metrics>, format: Format) -> String {
        Exposition::new(metrics.clone())
            .encode(format)
            .expect("encoding into a String cannot fail")
    }

    /// The sample lines whose value is not 0, in order.
    fn nonzero(text: &str) -> Vec<&str> {
        text.lines()
            .filter(|line| !line.starts_with('#') && !line.ends_with(" 0"))
            .collect()
    }

    #[test]
    fn status_slots_match_their_labels() {
        for (slot, code) in STATUSES.iter().enumerate() {
            assert_eq!(status_slot(*code), slot, "{code}");
            assert_eq!(STATUS_LABELS[slot], code.to_string(), "{code}");
        }
        for code in [100, 101, 201, 301, 302, 401, 403, 429, 501, 505, 999] {
            assert_eq!(STATUS_LABELS[status_slot(code)], "other", "{code}");
        }
    }

    #[test]
    fn refusal_slots_match_the_reason_codes() {
        let mut seen = std::collections::HashSet::new();
        let reasons = Reason::MISDIRECTED
            .into_iter()
            .chain(BAD_REQUEST.map(Reason::BadRequest));
        for reason in reasons {
            let slot = refusal_slot(Some(reason));
            assert_eq!(
                refusal_labels(slot),
                (reason.status().as_str(), reason.code()),
                "{reason:?}"
            );
            assert!(seen.insert(slot), "{reason:?} shares slot {slot}");
            assert!(
                (slot < WARNING_SLOTS) == (reason.status() == StatusCode::MISDIRECTED_REQUEST),
                "{reason:?}"
            );
        }
        assert_eq!(refusal_labels(refusal_slot(None)), ("404", "unknown-host"));
        assert_eq!(
            seen.len() + 3,
            REFUSAL_SLOTS,
            "two `other` slots and the 404"
        );
    }

    #[test]
    fn a_scripted_mix_is_exposed_exactly() {
        let metrics = Arc::new(Metrics::new());
        let table = metrics.vhost_table(["a.test", "b.test"]);
        for _ in 0..3 {
            table[0].count_request(StatusCode::OK);
        }
        // Two 421s on connections made for a.test, for b.test (which requires a client
        // certificate).
        for _ in 0..2 {
            table[0].count_request(StatusCode::MISDIRECTED_REQUEST);
            metrics.count_refusal(Some(Reason::ClientCertRequired));
        }
        // One request for b.test served over a connection made for a.test.
        table[1].count_request(StatusCode::OK);
        table[1].count_coalesced();
        table[0].count_handshake();
        table[0].count_request(StatusCode::IM_A_TEAPOT);
        metrics.count_refusal(Some(Reason::BadRequest(TargetErrorKind::MissingHost)));
        metrics.count_refusal(None);
        metrics.count_warning(Some(Reason::SniVhostDiffers));
        metrics.count_handshake_failure(HandshakeFailureCause::PlainHttp);
        let h2 = metrics.open_connection(Protocol::H2);
        let _h1 = metrics.open_connection(Protocol::H1);
        let h2_again = metrics.open_connection(Protocol::H2);
        drop(h2);
        metrics.config_loaded(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        metrics.reload_failed();
        metrics.set_certificate_expiry([("a.test", 1_893_456_000), ("b.test", 1_900_000_000)]);
        metrics.count_refusal_log_suppressed(4);
        metrics.count_refusal_log_suppressed(3);
        table[1].count_request(StatusCode::BAD_GATEWAY);
        table[1].count_proxy_retries_421(2);

        let text = exposition(&metrics, Format::Prometheus);
        assert_eq!(
            nonzero(&text),
            [
                r#"misdirect_requests_total{vhost="a.test",status="200"} 3"#,
                r#"misdirect_requests_total{vhost="a.test",status="421"} 2"#,
                r#"misdirect_requests_total{vhost="a.test",status="other"} 1"#,
                r#"misdirect_requests_total{vhost="b.test",status="200"} 1"#,
                r#"misdirect_requests_total{vhost="b.test",status="502"} 1"#,
                r#"misdirect_refusals_total{status="421",reason="client-cert-required"} 2"#,
                r#"misdirect_refusals_total{status="400",reason="missing-host"} 1"#,
                r#"misdirect_refusals_total{status="404",reason="unknown-host"} 1"#,
                r#"misdirect_warn_only_total{reason="sni-vhost-differs"} 1"#,
                r#"misdirect_coalesced_requests_total{vhost="b.test"} 1"#,
                r#"misdirect_tls_handshakes_total{vhost="a.test"} 1"#,
                r#"misdirect_tls_handshake_failures_total{cause="plain-http"} 1"#,
                r#"misdirect_open_connections{protocol="h1"} 1"#,
                r#"misdirect_open_connections{protocol="h2"} 1"#,
                r#"misdirect_reloads_total{outcome="failed"} 1"#,
                "misdirect_config_last_reload_success_timestamp_seconds 1700000000",
                r#"misdirect_certificate_not_after_timestamp_seconds{vhost="a.test"} 1893456000"#,
                r#"misdirect_certificate_not_after_timestamp_seconds{vhost="b.test"} 1900000000"#,
                "misdirect_refusal_log_suppressed_total 7",
                r#"misdirect_proxy_retries_421_total{vhost="b.test"} 2"#,
            ],
            "{text}"
        );
        // Fixed label sets are there at 0 from the start (so rate() sees the first event),
        // `other` only once counted.
        for line in [
            r#"misdirect_refusals_total{status="421",reason="unknown-host"} 0"#,
            r#"misdirect_refusals_total{status="400",reason="host-authority-mismatch"} 0"#,
            r#"misdirect_warn_only_total{reason="alpn-not-allowed"} 0"#,
            r#"misdirect_coalesced_requests_total{vhost="a.test"} 0"#,
            r#"misdirect_tls_handshake_failures_total{cause="tls-alert"} 0"#,
            r#"misdirect_reloads_total{outcome="ok"} 0"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        assert!(!text.contains("reason=\"other\""), "{text}");
        drop(h2_again);
        let text = exposition(&metrics, Format::Prometheus);
        assert!(text.contains("misdirect_open_connections{protocol=\"h2\"} 0\n"));
    }

    #[test]
    fn every_family_has_help_and_type_and_is_documented() {
        let metrics = Arc::new(Metrics::new());
        let text = exposition(&metrics, Format::Prometheus);
        let types: Vec<&str> = text
            .lines()
            .filter_map(|line| line.strip_prefix("# TYPE "))
            .collect();
        assert_eq!(
            types,
            [
                "misdirect_requests_total counter",
                "misdirect_refusals_total counter",
                "misdirect_warn_only_total counter",
                "misdirect_coalesced_requests_total counter",
                "misdirect_tls_handshakes_total counter",
                "misdirect_tls_handshake_failures_total counter",
                "misdirect_open_connections gauge",
                "misdirect_reloads_total counter",
                "misdirect_config_last_reload_success_timestamp_seconds gauge",
                "misdirect_certificate_not_after_timestamp_seconds gauge",
                "misdirect_refusal_log_suppressed_total counter",
                "misdirect_proxy_retries_421_total counter",
            ]
        );
        let docs = include_str!("../../../docs/server.md");
        for family in &types {
            let name = family.split(' ').next().unwrap_or_default();
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "{name} has no HELP"
            );
            assert!(
                docs.contains(&format!("`{name}")),
                "{name} is not in docs/server.md"
            );
        }
    }

    #[test]
    fn openmetrics_names_counter_families_without_total_and_ends_with_eof() {
        let metrics = Arc::new(Metrics::new());
        metrics.vhost_table(["a.test"])[0].count_request(StatusCode::OK);
        let text = exposition(&metrics, Format::OpenMetrics);
        assert!(
            text.contains("# TYPE misdirect_requests counter\n"),
            "{text}"
        );
        assert!(
            text.contains("misdirect_requests_total{vhost=\"a.test\",status=\"200\"} 1\n"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn counters_persist_across_a_reload() {
        let metrics = Arc::new(Metrics::new());
        let before = metrics.vhost_table(["a.test", "b.test"]);
        before[1].count_request(StatusCode::OK);
        before[1].count_handshake();
        metrics.set_certificate_expiry([("a.test", 10), ("b.test", 20)]);
        // The reload drops a.test, adds c.test and moves b.test to another position.
        let after = metrics.vhost_table(["c.test", "b.test"]);
        assert!(Arc::ptr_eq(&before[1], &after[1]));
        metrics.set_certificate_expiry([("c.test", 30), ("b.test", 40)]);
        metrics.reload_succeeded(UNIX_EPOCH + Duration::from_secs(5));
        after[1].count_request(StatusCode::OK);
        after[0].count_request(StatusCode::NOT_FOUND);
        // A connection from before the reload still counts into the same block.
        before[1].count_request(StatusCode::OK);

        let text = exposition(&metrics, Format::Prometheus);
        assert_eq!(
            nonzero(&text),
            [
                r#"misdirect_requests_total{vhost="b.test",status="200"} 3"#,
                r#"misdirect_requests_total{vhost="c.test",status="404"} 1"#,
                r#"misdirect_tls_handshakes_total{vhost="b.test"} 1"#,
                r#"misdirect_reloads_total{outcome="ok"} 1"#,
                "misdirect_config_last_reload_success_timestamp_seconds 5",
                r#"misdirect_certificate_not_after_timestamp_seconds{vhost="c.test"} 30"#,
                r#"misdirect_certificate_not_after_timestamp_seconds{vhost="b.test"} 40"#,
            ],
            "{text}"
        );
        // The counters of a virtual host the reload removed stay (at their last value).
        assert!(text.contains("misdirect_coalesced_requests_total{vhost=\"a.test\"} 0\n"));
        assert_eq!(&*after[0].name, "c.test");
    }

    #[test]
    fn handshake_failures_are_told_apart() {
        let tls = |err: rustls::Error| io::Error::new(io::ErrorKind::InvalidData, err);
        let cases: &[(io::Error, HandshakeFailureCause)] = &[
            (
                tls(rustls::Error::AlertReceived(
                    rustls::AlertDescription::BadCertificate,
                )),
                HandshakeFailureCause::TlsAlert,
            ),
            (
                tls(rustls::Error::NoApplicationProtocol),
                HandshakeFailureCause::TlsError,
            ),
            (
                io::Error::from(io::ErrorKind::UnexpectedEof),
                HandshakeFailureCause::Io,
            ),
            (
                io::Error::new(io::ErrorKind::ConnectionReset, "reset by peer"),
                HandshakeFailureCause::Io,
            ),
        ];
        for (err, cause) in cases {
            assert_eq!(HandshakeFailureCause::of_io(err), *cause, "{err}");
        }
    }

    #[test]
    fn certificate_not_after_is_read_from_the_der() {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(vec!["a.test".to_owned()]).expect("params");
        params.not_after = rcgen::date_time_ymd(2030, 1, 1);
        let certificate = params.self_signed(&key).expect("certificate");
        assert_eq!(
            certificate_not_after(certificate.der()),
            Some(1_893_456_000)
        );
        assert_eq!(certificate_not_after(b"not a certificate"), None);
    }

    #[test]
    fn the_format_follows_accept() {
        // (Accept, format)
        const CASES: &[(Option<&str>, Format)] = &[
            (None, Format::Prometheus),
            (Some("*/*"), Format::Prometheus),
            (Some("text/plain;version=0.0.4"), Format::Prometheus),
            (
                // What Prometheus 2 and 3 send.
                Some(
                    "application/openmetrics-text;version=1.0.0;q=0.5,\
                     text/plain;version=0.0.4;q=0.3,*/*;q=0.1",
                ),
                Format::OpenMetrics,
            ),
        ];
        for (accept, format) in CASES {
            let mut headers = http::HeaderMap::new();
            if let Some(accept) = accept {
                headers.insert(http::header::ACCEPT, http::HeaderValue::from_static(accept));
            }
            assert_eq!(Format::negotiate(&headers), *format, "{accept:?}");
        }
    }
}
