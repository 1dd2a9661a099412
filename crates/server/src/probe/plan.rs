//! The plan, without I/O: the URL, the names to ask for and in which order, the
//! authorities to send, the bounds on options, and what an answer's body says.

use std::time::Duration;

use misdirect_authority::{Authority, Host, Origin, Scheme};
use misdirect_certmatch::Pattern;

use super::NameSource;
use crate::error::{Error, ErrorKind};

/// The shortest `--timeout` accepted, in seconds: a millisecond.
pub const MIN_TIMEOUT_SECS: f64 = 0.001;

/// The longest `--timeout` accepted, in seconds: one hour. A probe that waits longer for
/// one answer is not probing any more.
pub const MAX_TIMEOUT_SECS: f64 = 3600.0;

/// Reads `--timeout`: seconds, from [`MIN_TIMEOUT_SECS`] to [`MAX_TIMEOUT_SECS`].
///
/// ```
/// use std::time::Duration;
/// use misdirect_server::probe::parse_timeout;
///
/// assert_eq!(parse_timeout(0.5).unwrap(), Duration::from_millis(500));
/// assert!(parse_timeout(1e30).unwrap_err().to_string().contains("from 0.001 to 3600 seconds"));
/// ```
pub fn parse_timeout(secs: f64) -> Result<Duration, Error> {
    if (MIN_TIMEOUT_SECS..=MAX_TIMEOUT_SECS).contains(&secs)
        && let Ok(timeout) = Duration::try_from_secs_f64(secs)
    {
        return Ok(timeout);
    }
    Err(Error::new(
        ErrorKind::Invalid,
        format!(
            "--timeout {}: must be from {MIN_TIMEOUT_SECS} to {MAX_TIMEOUT_SECS} seconds",
            // 1e30 as 1e30, not thirty-one digits.
            if secs.abs() >= 1e6 {
                format!("{secs:e}")
            } else {
                secs.to_string()
            }
        ),
    ))
}

/// The parsed URL.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) host: Host,
    pub(crate) port: u16,
    pub(crate) path: String,
}

impl Target {
    pub(crate) fn parse(url: &str) -> Result<Self, Error> {
        let bad = |why: &str| {
            Error::new(
                ErrorKind::Invalid,
                format!("{url:?} is not an https URL: {why}"),
            )
        };
        let rest = match url.get(..8) {
            Some(scheme) if scheme.eq_ignore_ascii_case("https://") => &url[8..],
            _ => return Err(bad("it must start with https://")),
        };
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let authority = Authority::parse(authority.as_bytes())
            .map_err(|e| bad(&e.to_string()).with_source(e))?;
        let path = if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/{path}")
        };
        Ok(Self {
            port: authority.port_or(443),
            host: authority.into_parts().0,
            path,
        })
    }
}

/// One name to ask for on the shared connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Planned {
    pub(crate) host: Host,
    pub(crate) port: u16,
    pub(crate) source: NameSource,
}

impl Planned {
    /// The `:authority` (or `Host`) to send: the port is left out when it is 443.
    pub(crate) fn authority(&self) -> String {
        authority(&self.host, self.port)
    }
}

/// `host[:port]`, the port left out when it is 443.
pub(crate) fn authority(host: &Host, port: u16) -> String {
    match port {
        443 => host.to_string(),
        port => format!("{host}:{port}"),
    }
}

/// The names to try, each once (names compare as hosts do: case and a trailing dot do not
/// make another name), in the order they were added.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    names: Vec<Planned>,
}

impl Plan {
    /// Adds `host` unless it is planned already.
    pub(crate) fn add(&mut self, host: Host, port: u16, source: NameSource) {
        if !self.names.iter().any(|p| p.host == host) {
            self.names.push(Planned { host, port, source });
        }
    }

    /// Adds the name a certificate pattern is tried as: a wildcard with
    /// [`PROBE_LABEL`](super::PROBE_LABEL), an IP address as itself.
    pub(crate) fn add_pattern(&mut self, pattern: &Pattern, port: u16) {
        let host = match pattern {
            Pattern::Dns(dns) => Host::from(dns.example_host()),
            Pattern::Ip(ip) => Host::from(*ip),
            _ => return,
        };
        self.add(host, port, NameSource::Certificate);
    }

    /// Adds the `https` origins of a connection's ORIGIN set (RFC 8336 §2.3), each with its
    /// own port; other schemes are skipped.
    pub(crate) fn add_origin_frame(&mut self, origins: &[Origin]) {
        for origin in origins {
            if origin.scheme() == Scheme::Https {
                self.add(
                    origin.host().clone(),
                    origin.port(),
                    NameSource::OriginFrame,
                );
            }
        }
    }

    pub(crate) fn into_names(self) -> Vec<Planned> {
        self.names
    }
}

/// Parses a name given with `--names` (or `--sni`): a DNS name or an IP address.
pub(crate) fn parse_name(option: &str, name: &str) -> Result<Host, Error> {
    let bracketed;
    let text = match name.parse::<std::net::Ipv6Addr>() {
        Ok(_) => {
            bracketed = format!("[{name}]");
            bracketed.as_str()
        }
        Err(_) => name,
    };
    Host::parse(text.as_bytes()).map_err(|e| {
        Error::new(
            ErrorKind::Invalid,
            format!("{option} {name:?} is not a host name or IP address: {e}"),
        )
        .with_source(e)
    })
}

/// The longest reason kept from a body's text.
const MAX_REASON_CHARS: usize = 120;

/// What a refusal's body says: the `code` (problem+json, RFC 9457 extension member, as our
/// server sends), `reason`, `title` or `detail` member of a JSON object; else an HTML
/// page's `<title>`; else the first line of text. `None` for an empty or binary body.
pub(crate) fn reason_from_body(body: &[u8]) -> Option<String> {
    if let Ok(serde_json::Value::Object(object)) = serde_json::from_slice(body) {
        for key in ["code", "reason", "title", "detail"] {
            if let Some(serde_json::Value::String(text)) = object.get(key)
                && !text.trim().is_empty()
            {
                return Some(shorten(text));
            }
        }
        return None;
    }
    let text = std::str::from_utf8(body).ok()?;
    let lower = text.to_ascii_lowercase();
    if let Some(start) = lower.find("<title>") {
        let rest = &text[start + "<title>".len()..];
        let end = rest.to_ascii_lowercase().find("</title>")?;
        return Some(shorten(&rest[..end])).filter(|t| !t.is_empty());
    }
    if lower.trim_start().starts_with('<') {
        return None;
    }
    text.lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .map(shorten)
}

fn shorten(text: &str) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match text.char_indices().nth(MAX_REASON_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = Target::parse("https://A.example:8443/x?y").unwrap();
        assert_eq!(
            (t.host.to_string().as_str(), t.port, t.path.as_str()),
            ("a.example", 8443, "/x?y")
        );
        let t = Target::parse("HTTPS://[::1]").unwrap();
        assert_eq!((t.port, t.path.as_str()), (443, "/"));
        for bad in [
            "http://a.example",
            "a.example",
            "https://user@a.example",
            "https://a b",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    /// ORIGIN frame entries are origins (RFC 8336 §2, RFC 6454 §6.2): IPv6 hosts keep their
    /// brackets, a port is kept, case does not make another name, and what is not an
    /// `https` origin is skipped (an entry that is no origin never reaches the set).
    #[test]
    fn origin_frame_entries() {
        const CASES: &[(&str, Option<&str>)] = &[
            ("https://[2001:db8::1]", Some("[2001:db8::1]")),
            ("https://[2001:db8::2]:8443", Some("[2001:db8::2]:8443")),
            ("https://B.example", Some("b.example")),
            ("https://c.example:443", Some("c.example")),
            ("https://d.example:8443", Some("d.example:8443")),
            ("https://192.0.2.1", Some("192.0.2.1")),
            ("http://e.example", None),
            ("https://[2001:db8:", None),
            ("https://f.example/", None),
            ("f.example", None),
        ];
        for &(entry, expected) in CASES {
            let mut plan = Plan::default();
            let origins: Vec<Origin> = Origin::parse(entry.as_bytes()).into_iter().collect();
            plan.add_origin_frame(&origins);
            let names = plan.into_names();
            assert_eq!(
                names.first().map(Planned::authority).as_deref(),
                expected,
                "{entry}"
            );
            assert!(names.iter().all(|n| n.source == NameSource::OriginFrame));
        }
    }

    #[test]
    fn names_are_planned_once() {
        let mut plan = Plan::default();
        plan.add(parse_name("--sni", "a.test").unwrap(), 443, NameSource::Sni);
        let origins = ["https://A.TEST", "https://[2001:DB8::1]"]
            .map(|entry| Origin::parse(entry.as_bytes()).unwrap());
        plan.add_origin_frame(&origins);
        plan.add(
            parse_name("--names", "2001:db8::1").unwrap(),
            443,
            NameSource::Option,
        );
        plan.add(
            parse_name("--names", "a.test.").unwrap(),
            443,
            NameSource::Option,
        );
        let names = plan.into_names();
        let got: Vec<(String, NameSource)> =
            names.iter().map(|n| (n.authority(), n.source)).collect();
        assert_eq!(
            got,
            [
                ("a.test".to_owned(), NameSource::Sni),
                ("[2001:db8::1]".to_owned(), NameSource::OriginFrame),
            ]
        );
        assert!(parse_name("--names", "a b").is_err());
    }

    #[test]
    fn timeout_bounds() {
        assert_eq!(parse_timeout(5.0).unwrap(), Duration::from_secs(5));
        assert_eq!(parse_timeout(3600.0).unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_timeout(0.001).unwrap(), Duration::from_millis(1));
        assert!(
            parse_timeout(1e30)
                .unwrap_err()
                .to_string()
                .starts_with("--timeout 1e30: ")
        );
        for bad in [0.0, -1.0, 3600.5, 1e30, f64::NAN, f64::INFINITY, 1e-12] {
            let err = parse_timeout(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Invalid);
            assert!(
                err.to_string().contains("from 0.001 to 3600 seconds"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn reasons_from_bodies() {
        const CASES: &[(&[u8], Option<&str>)] = &[
            (
                br#"{"type":"about:blank","title":"Misdirected Request","code":"unknown-host"}"#,
                Some("unknown-host"),
            ),
            (
                br#"{"error":"Misdirected Request","reason":"no-sni"}"#,
                Some("no-sni"),
            ),
            (
                br#"{"title":"Misdirected Request","detail":"x"}"#,
                Some("Misdirected Request"),
            ),
            // A string containing the key is not the member.
            (br#"{"note":"\"code\":\"fake\""}"#, None),
            (
                b"<html>\r\n<head><title>400 No required SSL certificate was sent</title></head>\r\n</html>",
                Some("400 No required SSL certificate was sent"),
            ),
            (b"<html>421</html>", None),
            (b"\n  no vhost\nmore\n", Some("no vhost")),
            (b"", None),
            (b"\xff\xfe", None),
        ];
        for &(body, expected) in CASES {
            assert_eq!(
                reason_from_body(body).as_deref(),
                expected,
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
        let long = "x".repeat(500);
        assert_eq!(
            reason_from_body(long.as_bytes()).unwrap().chars().count(),
            MAX_REASON_CHARS + 1
        );
    }
}
