//! The verdicts, without I/O: what an answer means, given what the probe knows about the
//! name it asked for.
//!
//! [`judge`] is a pure function of [`Facts`]: the answer's [`StatusClass`], whether the
//! connection's certificate covers the name, whether it is the connection's own name, and
//! what a fresh connection made for the name got ([`Fresh`]). [`fresh_check_wanted`] says
//! when that fresh connection is worth making.

use std::fmt;

/// The class of a status code, as far as the probe cares (RFC 9110 §15).
///
/// ```
/// use misdirect_server::probe::StatusClass;
///
/// assert_eq!(StatusClass::of(204), StatusClass::Success);
/// assert_eq!(StatusClass::of(308), StatusClass::Redirection);
/// assert_eq!(StatusClass::of(421), StatusClass::Misdirected);
/// assert_eq!(StatusClass::of(400), StatusClass::ClientError);
/// assert_eq!(StatusClass::of(503), StatusClass::ServerError);
/// assert_eq!(StatusClass::of(101), StatusClass::Other);
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StatusClass {
    /// 2xx: the request was served (RFC 9110 §15.3).
    Success,
    /// 3xx: the request was served with a redirection (RFC 9110 §15.4).
    Redirection,
    /// 421 Misdirected Request (RFC 9110 §15.5.20).
    Misdirected,
    /// Any other 4xx, e.g. 400, 401, 403, 404, 405: refused (RFC 9110 §15.5).
    ClientError,
    /// 5xx: the server failed (RFC 9110 §15.6).
    ServerError,
    /// Anything else (1xx as a final answer, or out of range): not an answer to judge by.
    Other,
}

impl StatusClass {
    /// The class of `status`.
    pub const fn of(status: u16) -> Self {
        match status {
            200..=299 => Self::Success,
            300..=399 => Self::Redirection,
            421 => Self::Misdirected,
            400..=499 => Self::ClientError,
            500..=599 => Self::ServerError,
            _ => Self::Other,
        }
    }

    /// True for 2xx and 3xx: the server served the request. Never for a 4xx or 5xx.
    pub const fn is_served(self) -> bool {
        matches!(self, Self::Success | Self::Redirection)
    }
}

/// What a fresh connection made for the name itself (with the name as SNI) got.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Fresh {
    /// The server sent a CertificateRequest during the handshake.
    pub client_cert_requested: bool,
    /// The request on it was served (2xx or 3xx).
    pub served: bool,
}

impl Fresh {
    /// What a fresh connection got.
    pub const fn new(client_cert_requested: bool, served: bool) -> Self {
        Self {
            client_cert_requested,
            served,
        }
    }
}

/// The facts [`judge`] decides on.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Facts {
    /// The class of the status the shared connection answered with; `None` when the
    /// request failed.
    pub status: Option<StatusClass>,
    /// The connection's certificate covers the name.
    pub covered: bool,
    /// The name is the connection's own (its SNI).
    pub own: bool,
    /// What a fresh connection for the name got, when one was tried.
    pub fresh: Option<Fresh>,
}

impl Facts {
    /// The facts of an answer (`None`: the request failed), without a fresh connection.
    ///
    /// ```
    /// use misdirect_server::probe::{Facts, Fresh, Verdict, judge};
    ///
    /// let facts = Facts::new(Some(200), true, false);
    /// assert_eq!(judge(&facts), Verdict::Served);
    /// assert_eq!(judge(&facts.with_fresh(Fresh::new(true, false))), Verdict::Bypass);
    /// ```
    pub const fn new(status: Option<u16>, covered: bool, own: bool) -> Self {
        Self {
            status: match status {
                Some(status) => Some(StatusClass::of(status)),
                None => None,
            },
            covered,
            own,
            fresh: None,
        }
    }

    /// The same facts, with what a fresh connection for the name got.
    pub const fn with_fresh(mut self, fresh: Fresh) -> Self {
        self.fresh = Some(fresh);
        self
    }
}

/// Whether a fresh connection for the name is worth a second request, before it is made:
/// when another name than the connection's own was served on the shared connection and the
/// probe presents no client certificate (does the name demand one? then the shared
/// connection bypassed it), and when a covered name was refused with a 4xx other than 421
/// (is it refused on a connection of its own too, or only on the shared one?).
///
/// ```
/// use misdirect_server::probe::{Facts, fresh_check_wanted};
///
/// assert!(fresh_check_wanted(&Facts::new(Some(200), true, false), false));
/// assert!(!fresh_check_wanted(&Facts::new(Some(200), true, false), true));
/// assert!(fresh_check_wanted(&Facts::new(Some(400), true, false), true));
/// assert!(!fresh_check_wanted(&Facts::new(Some(421), true, false), false));
/// ```
pub const fn fresh_check_wanted(facts: &Facts, presenting_client_cert: bool) -> bool {
    match facts.status {
        _ if facts.own => false,
        Some(class) if class.is_served() => !presenting_client_cert,
        Some(StatusClass::ClientError) => facts.covered,
        _ => false,
    }
}

/// The verdict on one name.
///
/// | status on the shared connection | covered | own | fresh connection | verdict |
/// |---|---|---|---|---|
/// | failed | any | any | any | [`Failed`](Verdict::Failed) |
/// | 421 | any | yes | any | [`MisdirectedOwn`](Verdict::MisdirectedOwn) |
/// | 421 | yes | no | any | [`Misdirected`](Verdict::Misdirected) |
/// | 4xx, 5xx, other | no | any | any | [`RefusedUncovered`](Verdict::RefusedUncovered) |
/// | 2xx, 3xx | any | no | asks for a client certificate, not served | [`Bypass`](Verdict::Bypass) |
/// | 2xx, 3xx | no | any | otherwise | [`ServedUncovered`](Verdict::ServedUncovered) |
/// | 2xx, 3xx | yes | yes | any | [`ServedOwn`](Verdict::ServedOwn) |
/// | 2xx, 3xx | yes | no | otherwise | [`Served`](Verdict::Served) |
/// | 4xx | yes | yes | any | [`RefusedOwn`](Verdict::RefusedOwn) |
/// | 4xx | yes | no | served, or asks for a client certificate | [`RefusedShared`](Verdict::RefusedShared) |
/// | 4xx | yes | no | otherwise | [`Refused`](Verdict::Refused) |
/// | 5xx, other | yes | any | any | [`ServerError`](Verdict::ServerError) |
pub const fn judge(facts: &Facts) -> Verdict {
    let Some(class) = facts.status else {
        return Verdict::Failed;
    };
    let fresh_demands_cert = match facts.fresh {
        Some(fresh) => fresh.client_cert_requested && !fresh.served,
        None => false,
    };
    match class {
        StatusClass::Misdirected if facts.own => Verdict::MisdirectedOwn,
        StatusClass::Misdirected if facts.covered => Verdict::Misdirected,
        _ if !facts.covered && !class.is_served() => Verdict::RefusedUncovered,
        _ if class.is_served() && !facts.own && fresh_demands_cert => Verdict::Bypass,
        _ if class.is_served() && !facts.covered => Verdict::ServedUncovered,
        _ if class.is_served() && facts.own => Verdict::ServedOwn,
        _ if class.is_served() => Verdict::Served,
        StatusClass::ClientError if facts.own => Verdict::RefusedOwn,
        StatusClass::ClientError => match facts.fresh {
            Some(fresh) if fresh.served || fresh.client_cert_requested => Verdict::RefusedShared,
            _ => Verdict::Refused,
        },
        _ => Verdict::ServerError,
    }
}

/// What the probe learnt about one name.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verdict {
    /// Served on the shared connection, and the certificate covers it: coalescing works.
    Served,
    /// The connection's own name (its SNI), served.
    ServedOwn,
    /// A covered name refused with a 4xx other than 421, as it is on a connection of its
    /// own: the site's answer, not a coalescing matter.
    Refused,
    /// The connection's own name, refused with a 4xx other than 421: the site's answer.
    RefusedOwn,
    /// A covered name refused with a 4xx other than 421 on the shared connection, where a
    /// connection of its own is served or asks for a client certificate: coalescing
    /// browsers show this error instead of retrying, as a 421 would make them.
    RefusedShared,
    /// A 5xx (or an answer that is no final status) for a covered name.
    ServerError,
    /// 421 on the shared connection: coalescing browsers pay a retry for this name.
    Misdirected,
    /// 421 for the very name the connection was made for: no client can reach it.
    MisdirectedOwn,
    /// Served on the shared connection although a fresh connection for the name demands a
    /// client certificate: the shared connection bypassed client authentication.
    Bypass,
    /// Served although the certificate does not cover the name (RFC 9110 §7.4: an origin
    /// server must reject it).
    ServedUncovered,
    /// Refused (421, or any 4xx or 5xx) for a name the certificate does not cover: correct.
    RefusedUncovered,
    /// The request failed (the connection closed, a timeout, a protocol error).
    Failed,
}

impl Verdict {
    /// Every verdict, in declaration order.
    pub const ALL: [Self; 12] = [
        Self::Served,
        Self::ServedOwn,
        Self::Refused,
        Self::RefusedOwn,
        Self::RefusedShared,
        Self::ServerError,
        Self::Misdirected,
        Self::MisdirectedOwn,
        Self::Bypass,
        Self::ServedUncovered,
        Self::RefusedUncovered,
        Self::Failed,
    ];

    /// A stable code for JSON output.
    pub const fn code(self) -> &'static str {
        match self {
            Self::Served => "served",
            Self::ServedOwn => "served-own",
            Self::Refused => "refused",
            Self::RefusedOwn => "refused-own",
            Self::RefusedShared => "refused-shared",
            Self::ServerError => "server-error",
            Self::Misdirected => "misdirected",
            Self::MisdirectedOwn => "misdirected-own",
            Self::Bypass => "bypass",
            Self::ServedUncovered => "served-uncovered",
            Self::RefusedUncovered => "refused-uncovered",
            Self::Failed => "failed",
        }
    }

    /// How bad it is: [`Severity::Fine`], a [`Severity::Hazard`] (extra round trips, or an
    /// error page where a retry would work), a [`Severity::Violation`], or a
    /// [`Severity::Failure`] (the request failed).
    ///
    /// ```
    /// use misdirect_server::probe::{Severity, Verdict};
    ///
    /// assert_eq!(Verdict::Served.severity(), Severity::Fine);
    /// assert_eq!(Verdict::Misdirected.severity(), Severity::Hazard);
    /// assert_eq!(Verdict::Bypass.severity(), Severity::Violation);
    /// assert_eq!(Verdict::Failed.severity(), Severity::Failure);
    /// ```
    pub const fn severity(self) -> Severity {
        match self {
            Self::Served
            | Self::ServedOwn
            | Self::Refused
            | Self::RefusedOwn
            | Self::RefusedUncovered => Severity::Fine,
            Self::Misdirected | Self::RefusedShared | Self::ServerError => Severity::Hazard,
            Self::MisdirectedOwn | Self::Bypass | Self::ServedUncovered => Severity::Violation,
            Self::Failed => Severity::Failure,
        }
    }

    /// One sentence for people.
    pub const fn explanation(self) -> &'static str {
        match self {
            Self::Served => "served on the shared connection (coalescing works)",
            Self::ServedOwn => "the connection's own name, served",
            Self::Refused => {
                "refused, and no connection of its own was seen to serve it: the site's answer, not a coalescing matter"
            }
            Self::RefusedOwn => "the connection's own name, refused: the site's answer",
            Self::RefusedShared => {
                "refused on the shared connection, though a connection of its own serves it or asks for a client certificate: coalescing browsers show this error where a 421 would make them retry"
            }
            Self::ServerError => "the server answered with an error (5xx): not judged",
            Self::Misdirected => {
                "421 on the shared connection: coalescing browsers retry on a new connection"
            }
            Self::MisdirectedOwn => "421 for the connection's own name: nobody can reach it",
            Self::Bypass => {
                "BYPASS: served on the shared connection, but a fresh connection for it demands a client certificate"
            }
            Self::ServedUncovered => {
                "served although the certificate does not cover it (RFC 9110 §7.4 violation)"
            }
            Self::RefusedUncovered => "not covered by the certificate, and refused: correct",
            Self::Failed => "the request failed",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// How bad a [`Verdict`] (or a certificate finding) is, in the order the exit status ranks
/// them: a failed request ranks highest, as the probe's picture is then incomplete.
///
/// [`as_str`](Self::as_str) (and [`Display`](fmt::Display)) give the words `docs/probe.md`
/// uses: `fine`, `hazard`, `violation`, `failure`.
///
/// ```
/// use misdirect_server::probe::Severity;
///
/// assert!(Severity::Fine < Severity::Hazard);
/// assert!(Severity::Violation < Severity::Failure);
/// assert_eq!(Severity::Hazard.to_string(), "hazard");
/// assert_eq!(Severity::Violation.exit_code(), 2);
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// Nothing to fix.
    Fine,
    /// Costs clients a retry, shows them an error a retry would avoid, or a certificate
    /// about to expire.
    Hazard,
    /// Breaks a rule of HTTP, bypasses a security check, or a certificate that fails
    /// verification.
    Violation,
    /// The request failed, so the name could not be judged.
    Failure,
}

impl Severity {
    /// The word for it: `fine`, `hazard`, `violation` or `failure`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Fine => "fine",
            Self::Hazard => "hazard",
            Self::Violation => "violation",
            Self::Failure => "failure",
        }
    }

    /// The exit status of a probe whose worst finding has this severity: 0, 1, 2 or 3.
    pub const fn exit_code(self) -> u8 {
        match self {
            Self::Fine => 0,
            Self::Hazard => 1,
            Self::Violation => 2,
            Self::Failure => 3,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO: Option<Fresh> = None;
    const CERT_REFUSED: Option<Fresh> = Some(Fresh::new(true, false));
    const CERT_SERVED: Option<Fresh> = Some(Fresh::new(true, true));
    const SERVED: Option<Fresh> = Some(Fresh::new(false, true));
    const REFUSED: Option<Fresh> = Some(Fresh::new(false, false));

    /// (status, covered, own, fresh) → verdict. Status classes per RFC 9110 §15; a 421
    /// is the refusal a coalescing client retries on (RFC 9110 §15.5.20, RFC 9113 §9.1.2);
    /// an origin server must reject a name it has no certificate for (RFC 9110 §7.4).
    #[allow(clippy::type_complexity)]
    const CASES: &[((Option<u16>, bool, bool, Option<Fresh>), Verdict)] = &[
        // A failed request is judged on nothing.
        ((None, true, false, NO), Verdict::Failed),
        ((None, false, true, NO), Verdict::Failed),
        // 2xx and 3xx: served.
        ((Some(200), true, false, NO), Verdict::Served),
        ((Some(301), true, false, SERVED), Verdict::Served),
        ((Some(200), true, false, CERT_SERVED), Verdict::Served),
        ((Some(204), true, true, NO), Verdict::ServedOwn),
        ((Some(302), true, true, CERT_REFUSED), Verdict::ServedOwn),
        ((Some(200), true, false, CERT_REFUSED), Verdict::Bypass),
        ((Some(307), true, false, CERT_REFUSED), Verdict::Bypass),
        ((Some(200), false, false, CERT_REFUSED), Verdict::Bypass),
        ((Some(200), false, false, NO), Verdict::ServedUncovered),
        ((Some(304), false, true, NO), Verdict::ServedUncovered),
        // 421: misdirected, whoever's name it is.
        ((Some(421), true, false, NO), Verdict::Misdirected),
        ((Some(421), true, true, NO), Verdict::MisdirectedOwn),
        ((Some(421), false, true, NO), Verdict::MisdirectedOwn),
        ((Some(421), false, false, NO), Verdict::RefusedUncovered),
        // Other 4xx: refused, never served (nginx's 400 without a client certificate,
        // HAProxy's 404 for an unknown name).
        ((Some(400), true, false, NO), Verdict::Refused),
        ((Some(403), true, false, REFUSED), Verdict::Refused),
        (
            (Some(400), true, false, CERT_REFUSED),
            Verdict::RefusedShared,
        ),
        ((Some(404), true, false, SERVED), Verdict::RefusedShared),
        (
            (Some(401), true, false, CERT_SERVED),
            Verdict::RefusedShared,
        ),
        ((Some(405), true, true, NO), Verdict::RefusedOwn),
        ((Some(404), false, false, NO), Verdict::RefusedUncovered),
        (
            (Some(400), false, false, CERT_REFUSED),
            Verdict::RefusedUncovered,
        ),
        ((Some(403), false, true, NO), Verdict::RefusedUncovered),
        // 5xx and answers that are no final status: an error, never served.
        ((Some(500), true, false, NO), Verdict::ServerError),
        ((Some(503), true, true, SERVED), Verdict::ServerError),
        ((Some(101), true, false, NO), Verdict::ServerError),
        ((Some(502), false, false, NO), Verdict::RefusedUncovered),
    ];

    #[test]
    fn decision_table() {
        for &((status, covered, own, fresh), expected) in CASES {
            let mut facts = Facts::new(status, covered, own);
            facts.fresh = fresh;
            assert_eq!(
                judge(&facts),
                expected,
                "status {status:?}, covered {covered}, own {own}, fresh {fresh:?}"
            );
        }
    }

    #[test]
    fn table_reaches_every_verdict() {
        for verdict in Verdict::ALL {
            assert!(
                CASES.iter().any(|(_, v)| *v == verdict),
                "no case for {verdict}"
            );
        }
    }

    /// A 4xx or 5xx is never "served", whatever else is true.
    #[test]
    fn refusals_are_never_served() {
        let served = [
            Verdict::Served,
            Verdict::ServedOwn,
            Verdict::ServedUncovered,
            Verdict::Bypass,
        ];
        for status in (400..=599).chain([100, 101, 600]) {
            for covered in [true, false] {
                for own in [true, false] {
                    for fresh in [NO, CERT_REFUSED, CERT_SERVED, SERVED, REFUSED] {
                        let mut facts = Facts::new(Some(status), covered, own);
                        facts.fresh = fresh;
                        let verdict = judge(&facts);
                        assert!(!served.contains(&verdict), "{status}: {verdict}");
                    }
                }
            }
        }
    }

    #[test]
    fn fresh_checks() {
        let cases = [
            ((Some(200), true, false), false, true),
            ((Some(200), true, false), true, false),
            ((Some(200), false, false), false, true),
            ((Some(200), true, true), false, false),
            ((Some(400), true, false), true, true),
            ((Some(400), true, true), false, false),
            ((Some(404), false, false), false, false),
            ((Some(421), true, false), false, false),
            ((Some(500), true, false), false, false),
            ((None, true, false), false, false),
        ];
        for ((status, covered, own), cert, expected) in cases {
            let facts = Facts::new(status, covered, own);
            assert_eq!(
                fresh_check_wanted(&facts, cert),
                expected,
                "{status:?} {covered} {own} {cert}"
            );
        }
    }

    #[test]
    fn codes_are_distinct() {
        for (i, a) in Verdict::ALL.iter().enumerate() {
            for b in &Verdict::ALL[i + 1..] {
                assert_ne!(a.code(), b.code());
            }
        }
    }
}
