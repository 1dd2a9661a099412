//! The header rewriting of a forwarded request and of its response: hop-by-hop fields,
//! `Host`, `Via`, and `Forwarded`/`X-Forwarded-*`.
//!
//! Decisions, each with its reference:
//! - Hop-by-hop fields (RFC 9110 §7.6.1) are removed in both directions: `Connection` and
//!   every field it names, `Keep-Alive`, `Proxy-Connection` (never standard, still sent by
//!   old clients), `TE` (RFC 9110 §10.1.4; only `trailers` is passed on, and only when the
//!   client sent it), `Transfer-Encoding` (RFC 9112 §6.1: the framing is per connection;
//!   hyper frames each side again), and `Upgrade` (RFC 9110 §7.8) unless the request is being
//!   upgraded.
//! - `Proxy-Authenticate`, `Proxy-Authorization` (RFC 9110 §11.7.1, §11.7.2) and
//!   `Proxy-Authentication-Info` (§11.7.3) are removed too. RFC 9110 lets a proxy relay them
//!   only when proxies authenticate together; this server is a gateway that does no proxy
//!   authentication, so credentials meant for a proxy must not reach the application, and
//!   an application's proxy challenge is not one a client could answer to us.
//! - `Host` is the normalised authority the virtual-host decision used, and nothing else: a
//!   client's own `Host` is dropped and HTTP/2's `:authority` becomes `Host` (RFC 9110
//!   §7.2). To an HTTP/2 upstream the authority goes in `:authority` and no `Host` is sent
//!   (RFC 9113 §8.3.1).
//! - `Via` gets our entry, the protocol version we received and the server's pseudonym
//!   (RFC 9110 §7.6.3), after any entries already there.
//! - `Forwarded` (RFC 7239 §4, §5) and `X-Forwarded-For`/`-Proto`/`-Host` (no
//!   specification; the common usage) describe the client. A client can write these fields
//!   itself, so copies received from a peer outside `trust_forwarded_from` are removed
//!   whatever the [`ForwardedMode`] is. From a trusted peer (another proxy in front of this
//!   one) `Forwarded` and `X-Forwarded-For` are kept and our element appended to them (RFC
//!   7239 §4: "appended to the list"), and `X-Forwarded-Proto`/`-Host`, which applications
//!   read as single values, are kept as the first proxy wrote them.
//! - Several `Cookie` lines of an HTTP/2 request are joined with `"; "` for an HTTP/1.1
//!   upstream (RFC 9113 §8.2.3).

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Version};

use super::{ForwardContext, ForwardedMode};

/// `X-Forwarded-For`: the client addresses, oldest first.
pub(super) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`: the scheme the client used.
pub(super) const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`: the host the client asked for.
pub(super) const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
const PROXY_AUTHENTICATION_INFO: HeaderName = HeaderName::from_static("proxy-authentication-info");

/// The fields never forwarded in either direction (see the module notes); `Upgrade` is
/// added back for an upgrade.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    KEEP_ALIVE,
    PROXY_CONNECTION,
    header::TE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    PROXY_AUTHENTICATION_INFO,
];

/// The fields that describe the client to the upstream, and that a client could forge.
const FORWARDING: [HeaderName; 4] = [
    header::FORWARDED,
    X_FORWARDED_FOR,
    X_FORWARDED_PROTO,
    X_FORWARDED_HOST,
];

/// How a request's fields are rewritten.
pub(super) struct RequestRules<'a> {
    pub(super) ctx: &'a ForwardContext,
    /// The normalised authority as a field value.
    pub(super) host: &'a HeaderValue,
    pub(super) mode: ForwardedMode,
    /// The peer is in `trust_forwarded_from`.
    pub(super) trusted: bool,
    /// The upstream speaks HTTP/2: no `Host`, no connection options.
    pub(super) h2_upstream: bool,
    /// The `Upgrade` value to forward, when the request is being upgraded.
    pub(super) upgrade: Option<&'a HeaderValue>,
}

/// The fields of the request sent upstream, made from those the client sent, `version`
/// being the protocol the client spoke.
pub(super) fn request_fields(
    received: &HeaderMap,
    version: Version,
    rules: &RequestRules<'_>,
) -> HeaderMap {
    let options = connection_options(received);
    let join_cookies = version == Version::HTTP_2
        && !rules.h2_upstream
        && received.get_all(header::COOKIE).iter().nth(1).is_some();
    let mut fields = HeaderMap::with_capacity(received.len() + 6);
    for (name, value) in received {
        let dropped = HOP_BY_HOP.contains(name)
            || options.contains(name)
            || *name == header::HOST
            || (join_cookies && *name == header::COOKIE)
            || (!rules.trusted && FORWARDING.contains(name));
        if !dropped {
            fields.append(name.clone(), value.clone());
        }
    }
    if join_cookies {
        let mut joined = Vec::new();
        for value in received.get_all(header::COOKIE) {
            if !joined.is_empty() {
                joined.extend_from_slice(b"; ");
            }
            joined.extend_from_slice(value.as_bytes());
        }
        // Joined field values with a visible separator are a valid field value.
        if let Ok(value) = HeaderValue::from_bytes(&joined) {
            fields.insert(header::COOKIE, value);
        }
    }
    if !rules.h2_upstream {
        fields.insert(header::HOST, rules.host.clone());
    }

    let mut connection: Vec<&str> = Vec::new();
    if has_token(received, header::TE, "trailers") {
        fields.insert(header::TE, HeaderValue::from_static("trailers"));
        // RFC 9110 §10.1.4: a sender of TE also sends the "TE" connection option.
        connection.push("te");
    }
    if let Some(upgrade) = rules.upgrade {
        fields.insert(header::UPGRADE, upgrade.clone());
        connection.push("upgrade");
    }
    if !rules.h2_upstream && !connection.is_empty() {
        // Tokens joined with ", " are a valid field value.
        if let Ok(value) = HeaderValue::from_str(&connection.join(", ")) {
            fields.insert(header::CONNECTION, value);
        }
    }

    let ctx = rules.ctx;
    let peer = ctx.peer.ip().to_canonical();
    if matches!(rules.mode, ForwardedMode::Rfc7239 | ForwardedMode::Both) {
        let element = forwarded_element(peer, ctx.local, ctx.scheme, &ctx.authority);
        append_to_list(&mut fields, header::FORWARDED, &element);
    }
    if matches!(rules.mode, ForwardedMode::XForwarded | ForwardedMode::Both) {
        append_to_list(&mut fields, X_FORWARDED_FOR, &peer.to_string());
        if !fields.contains_key(X_FORWARDED_PROTO) {
            // `http` and `https` are tokens; anything else is left out rather than sent
            // malformed.
            if let Ok(scheme) = HeaderValue::from_str(ctx.scheme) {
                fields.insert(X_FORWARDED_PROTO, scheme);
            }
        }
        if !fields.contains_key(X_FORWARDED_HOST) {
            fields.insert(X_FORWARDED_HOST, rules.host.clone());
        }
    }
    fields.append(header::VIA, via(version, &ctx.via));
    fields
}

/// Rewrites the fields of a response from the upstream, `version` being the protocol the
/// upstream spoke; `upgraded`: a `101` to a request we upgraded, which keeps `Upgrade`.
pub(super) fn response_fields(
    fields: &mut HeaderMap,
    version: Version,
    pseudonym: &str,
    upgraded: bool,
) {
    let options = connection_options(fields);
    let upgrade = if upgraded {
        fields.get(header::UPGRADE).cloned()
    } else {
        None
    };
    for name in HOP_BY_HOP.iter().chain(&options) {
        fields.remove(name);
    }
    if let Some(upgrade) = upgrade {
        fields.insert(header::UPGRADE, upgrade);
        fields.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    fields.append(header::VIA, via(version, pseudonym));
}

/// The field names listed in `Connection` (RFC 9110 §7.6.1), lowercase. Tokens that are not
/// field names (`close`, `keep-alive` are) are kept as names all the same: they name no field.
pub(super) fn connection_options(fields: &HeaderMap) -> Vec<HeaderName> {
    fields
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|token| !token.is_empty())
        .filter_map(|token| HeaderName::from_bytes(token).ok())
        .collect()
}

/// Whether any line of field `name` has the list member `token` (case-insensitive, with
/// parameters after `;` ignored).
pub(super) fn has_token(fields: &HeaderMap, name: HeaderName, token: &str) -> bool {
    fields
        .get_all(name)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&b| b == b','))
        .map(|member| {
            member
                .split(|&b| b == b';')
                .next()
                .unwrap_or_default()
                .trim_ascii()
        })
        .any(|member| member.eq_ignore_ascii_case(token.as_bytes()))
}

/// Appends `element` to the list in field `name`: every line already there (kept only from
/// a trusted peer) and ours become one line, for applications that read only one.
fn append_to_list(fields: &mut HeaderMap, name: HeaderName, element: &str) {
    let mut list = Vec::new();
    for value in fields.get_all(&name) {
        list.extend_from_slice(value.as_bytes());
        list.extend_from_slice(b", ");
    }
    list.extend_from_slice(element.as_bytes());
    match HeaderValue::from_bytes(&list) {
        Ok(value) => {
            fields.insert(name, value);
        }
        // Our element alone is always valid (addresses, a scheme, an authority).
        Err(_) => {
            if let Ok(value) = HeaderValue::from_str(element) {
                fields.insert(name, value);
            }
        }
    }
}

/// One `Via` entry (RFC 9110 §7.6.3): `received-protocol` (the version only, the protocol
/// being HTTP) and the pseudonym.
pub(super) fn via(version: Version, pseudonym: &str) -> HeaderValue {
    let protocol = match version {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "1.1",
    };
    HeaderValue::from_str(&format!("{protocol} {pseudonym}"))
        .unwrap_or_else(|_| HeaderValue::from_static("1.1 misdirect"))
}

/// One `forwarded-element` (RFC 7239 §4): `for` the client's address, `by` the listener's
/// address and port, `proto` the scheme and `host` the authority (§5.1–§5.4), each a token
/// or, when it has a character a token cannot (`:`, `[`), a quoted string (§6: IPv6 and
/// ports are quoted).
pub(super) fn forwarded_element(
    peer: IpAddr,
    local: SocketAddr,
    proto: &str,
    host: &str,
) -> String {
    let mut out = String::with_capacity(64 + host.len());
    out.push_str("for=");
    match peer.to_canonical() {
        IpAddr::V4(v4) => push_value(&mut out, &v4.to_string()),
        IpAddr::V6(v6) => push_value(&mut out, &format!("[{v6}]")),
    }
    out.push_str(";by=");
    let local = SocketAddr::new(local.ip().to_canonical(), local.port());
    push_value(&mut out, &local.to_string());
    out.push_str(";proto=");
    push_value(&mut out, proto);
    out.push_str(";host=");
    push_value(&mut out, host);
    out
}

/// `value = token / quoted-string` (RFC 7239 §4, RFC 9110 §5.6.4).
fn push_value(out: &mut String, text: &str) {
    if !text.is_empty() && text.bytes().all(is_tchar) {
        out.push_str(text);
        return;
    }
    out.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        let _ = out.write_char(c);
    }
    out.push('"');
}

/// `tchar` (RFC 9110 §5.6.2).
const fn is_tchar(b: u8) -> bool {
    matches!(b,
        b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_'
        | b'`' | b'|' | b'~' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7239 §4 and §6: (peer, listener, host, element).
    const ELEMENTS: &[(&str, &str, &str, &str)] = &[
        (
            "192.0.2.43",
            "198.51.100.17:443",
            "a.test",
            "for=192.0.2.43;by=\"198.51.100.17:443\";proto=https;host=a.test",
        ),
        // §6.1: IPv6 in brackets, quoted.
        (
            "2001:db8:cafe::17",
            "[2001:db8::1]:8443",
            "a.test:8443",
            "for=\"[2001:db8:cafe::17]\";by=\"[2001:db8::1]:8443\";proto=https;host=\"a.test:8443\"",
        ),
        // A dual-stack socket's view of IPv4 addresses: the IPv4 addresses.
        (
            "::ffff:192.0.2.1",
            "[::ffff:127.0.0.1]:443",
            "[2001:db8::2]",
            "for=192.0.2.1;by=\"127.0.0.1:443\";proto=https;host=\"[2001:db8::2]\"",
        ),
    ];

    #[test]
    fn forwarded_elements_quote_what_is_not_a_token() {
        for &(peer, local, host, expected) in ELEMENTS {
            let element =
                forwarded_element(peer.parse().unwrap(), local.parse().unwrap(), "https", host);
            assert_eq!(element, expected, "{peer} via {local} for {host}");
            HeaderValue::from_str(&element).unwrap();
        }
    }

    #[test]
    fn quoted_strings_escape_quotes_and_backslashes() {
        let mut out = String::new();
        push_value(&mut out, "a\"b\\c");
        assert_eq!(out, r#""a\"b\\c""#);
        out.clear();
        push_value(&mut out, "");
        assert_eq!(out, "\"\"");
    }

    /// RFC 9110 §7.6.1: (Connection lines, the options they name).
    const OPTIONS: &[(&[&str], &[&str])] = &[
        (&["close"], &["close"]),
        (&["Keep-Alive, X-Secret"], &["keep-alive", "x-secret"]),
        (&["upgrade", " , te ,"], &["upgrade", "te"]),
        (&["bad name"], &[]),
    ];

    #[test]
    fn connection_options_are_lowercase_field_names() {
        for &(lines, expected) in OPTIONS {
            let mut fields = HeaderMap::new();
            for line in lines {
                fields.append(header::CONNECTION, HeaderValue::from_static(line));
            }
            let names: Vec<String> = connection_options(&fields)
                .iter()
                .map(|n| n.as_str().to_owned())
                .collect();
            assert_eq!(names, expected, "{lines:?}");
        }
    }

    /// RFC 9110 §10.1.4: (TE lines, has `trailers`).
    const TE: &[(&[&str], bool)] = &[
        (&["trailers"], true),
        (&["gzip;q=0.5, Trailers"], true),
        (&["gzip", "deflate"], false),
        (&["trailers;q=1"], true),
        (&["x-trailers"], false),
    ];

    #[test]
    fn te_trailers_is_recognised_as_a_list_member() {
        for &(lines, expected) in TE {
            let mut fields = HeaderMap::new();
            for line in lines {
                fields.append(header::TE, HeaderValue::from_static(line));
            }
            assert_eq!(
                has_token(&fields, header::TE, "trailers"),
                expected,
                "{lines:?}"
            );
        }
    }

    #[test]
    fn responses_lose_hop_by_hop_fields_and_gain_via() {
        let mut fields = HeaderMap::new();
        for (name, value) in [
            ("connection", "x-internal, keep-alive"),
            ("keep-alive", "timeout=5"),
            ("x-internal", "1"),
            ("transfer-encoding", "chunked"),
            ("proxy-authenticate", "Basic"),
            ("upgrade", "h2c"),
            ("via", "1.0 app"),
            ("content-type", "text/plain"),
        ] {
            fields.append(name, HeaderValue::from_static(value));
        }
        response_fields(&mut fields, Version::HTTP_11, "misdirect", false);
        let mut names: Vec<&str> = fields.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["content-type", "via"]);
        let via: Vec<&[u8]> = fields
            .get_all(header::VIA)
            .iter()
            .map(HeaderValue::as_bytes)
            .collect();
        assert_eq!(via, [&b"1.0 app"[..], b"1.1 misdirect"]);
    }

    #[test]
    fn an_accepted_upgrade_keeps_upgrade() {
        let mut fields = HeaderMap::new();
        fields.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        fields.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        response_fields(&mut fields, Version::HTTP_11, "misdirect", true);
        assert_eq!(fields[header::UPGRADE], "websocket");
        assert_eq!(fields[header::CONNECTION], "upgrade");
    }

    #[test]
    fn via_names_the_received_version() {
        for (version, expected) in [
            (Version::HTTP_10, "1.0 p"),
            (Version::HTTP_11, "1.1 p"),
            (Version::HTTP_2, "2 p"),
        ] {
            assert_eq!(via(version, "p"), expected);
        }
    }

    #[test]
    fn tchar_is_rfc_9110() {
        let tchars: Vec<u8> = (0..=255u8).filter(|&b| is_tchar(b)).collect();
        assert_eq!(tchars.len(), 15 + 10 + 26 + 26);
        assert!(tchars.iter().all(|&b| b.is_ascii_graphic()));
        for b in b"\"(),/:;<=>?@[\\]{}" {
            assert!(!is_tchar(*b), "{}", *b as char);
        }
    }
}
