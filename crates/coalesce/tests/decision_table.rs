//! The decision table: for each policy level, combinations of SNI, authority, certificate
//! coverage, client certificate, TLS version, ALPN, port and scheme, with the rule each row
//! checks (`docs/design.md`, "Server decision"). `docs/policy.md` documents the same table.

use std::error::Error as _;
use std::sync::Arc;

use misdirect_authority::{HostName, RequestTarget, Scheme, TargetErrorKind};
use misdirect_certmatch::Identities;
use misdirect_coalesce::{
    Alpn, ClientAuth, ClientCert, ConfigError, ConnectionContext, Decision, Explanation, Policy,
    Reason, TlsVersion, TrustAnchorsId, UnknownHost, VerifiedClientCert, VirtualHost, VirtualHosts,
    decide, decide_request,
};
use misdirect_response::RenderReason;

const T1: TrustAnchorsId = TrustAnchorsId::new(1);
const T2: TrustAnchorsId = TrustAnchorsId::new(2);

/// Listener settings for a group of rows.
#[derive(Clone, Copy, Debug)]
struct Listener {
    policy: Policy,
    warn_only: bool,
    unknown: Unknown,
    extra_port: Option<u16>,
}

#[derive(Clone, Copy, Debug)]
enum Unknown {
    Misdirected,
    NotFound,
    DefaultA,
}

const SECURE: Listener = Listener {
    policy: Policy::Secure,
    warn_only: false,
    unknown: Unknown::Misdirected,
    extra_port: None,
};
const STRICT: Listener = Listener {
    policy: Policy::Strict,
    ..SECURE
};
const CERT_ONLY: Listener = Listener {
    policy: Policy::CertOnly,
    ..SECURE
};
const WARN: Listener = Listener {
    warn_only: true,
    ..SECURE
};
const NOT_FOUND: Listener = Listener {
    unknown: Unknown::NotFound,
    ..SECURE
};
const DEFAULT_A: Listener = Listener {
    unknown: Unknown::DefaultA,
    ..SECURE
};
const WARN_DEFAULT_A: Listener = Listener {
    warn_only: true,
    ..DEFAULT_A
};
const WARN_STRICT: Listener = Listener {
    warn_only: true,
    ..STRICT
};
const CERT_ONLY_DEFAULT_A: Listener = Listener {
    unknown: Unknown::DefaultA,
    ..CERT_ONLY
};
const TWO_PORTS: Listener = Listener {
    extra_port: Some(8443),
    ..SECURE
};

/// The virtual hosts every row runs against.
///
/// Certificate S covers a, b, secure, partner, opt, modern, strict, lax and free.test (but
/// not u.test); C covers c.test; W covers *.wild.test.
fn table(l: Listener) -> VirtualHosts {
    let s = Arc::new(Identities::from_patterns(
        [
            "a", "b", "secure", "partner", "opt", "modern", "strict", "lax", "free",
        ]
        .map(|n| format!("{n}.test").parse().expect("valid")),
    ));
    let c = Arc::new(Identities::from_patterns(["c.test"
        .parse()
        .expect("valid")]));
    let w = Arc::new(Identities::from_patterns(["*.wild.test"
        .parse()
        .expect("valid")]));
    let vh = |name: &str, cert: &Arc<Identities>, pattern: &str| {
        VirtualHost::new(name, cert.clone()).pattern(pattern.parse().expect("valid"))
    };
    let mut b = VirtualHosts::builder(Scheme::Https);
    b.port(443);
    let a = b.add(vh("a", &s, "a.test"));
    b.add(vh("b", &s, "b.test"));
    b.add(vh("c", &c, "c.test"));
    b.add(vh("secure", &s, "secure.test").client_auth(ClientAuth::Required(T1)));
    b.add(vh("partner", &s, "partner.test").client_auth(ClientAuth::Required(T2)));
    b.add(vh("opt", &s, "opt.test").client_auth(ClientAuth::Optional(T1)));
    b.add(
        vh("modern", &s, "modern.test")
            .min_tls(TlsVersion::Tls13)
            .alpn([Alpn::H2]),
    );
    b.add(vh("u", &s, "u.test"));
    b.add(vh("wild", &w, "*.wild.test"));
    b.add(vh("strict", &s, "strict.test").policy(Policy::Strict));
    b.add(
        vh("lax", &s, "lax.test")
            .min_tls(TlsVersion::Tls13)
            .policy(Policy::CertOnly),
    );
    b.policy(l.policy).warn_only(l.warn_only).default_vhost(a);
    if let Some(port) = l.extra_port {
        b.port(port);
    }
    b.unknown_host(match l.unknown {
        Unknown::Misdirected => UnknownHost::Misdirected,
        Unknown::NotFound => UnknownHost::NotFound,
        Unknown::DefaultA => UnknownHost::Default(a),
    })
    .build()
    .expect("valid table")
}

/// One connection: SNI (None = no SNI), client certificate, TLS version, ALPN.
#[derive(Clone, Copy, Debug)]
struct Conn {
    sni: Option<&'static str>,
    cc: ClientCert,
    tls: TlsVersion,
    alpn: Alpn,
}

const fn sni(name: &'static str) -> Conn {
    Conn {
        sni: Some(name),
        cc: ClientCert::None,
        tls: TlsVersion::Tls13,
        alpn: Alpn::H2,
    }
}
const NO_SNI: Conn = Conn {
    sni: None,
    ..sni("")
};
const fn cc(conn: Conn, anchors: TrustAnchorsId) -> Conn {
    Conn {
        cc: ClientCert::Verified(VerifiedClientCert::assertion(anchors)),
        ..conn
    }
}
const fn tls12(conn: Conn) -> Conn {
    Conn {
        tls: TlsVersion::Tls12,
        ..conn
    }
}
const fn h1(conn: Conn) -> Conn {
    Conn {
        alpn: Alpn::Http11,
        ..conn
    }
}

/// What a row expects.
#[derive(Clone, Copy, Debug)]
enum Want {
    Serve(&'static str),
    Warn(&'static str, Reason),
    Mis(Reason),
    NotFound,
}
use Reason as R;
use Want::{Mis, NotFound, Serve, Warn};

/// The target: authority and, when the request named one, its scheme.
type Target = (&'static str, Option<Scheme>);
const fn to(authority: &'static str) -> Target {
    (authority, None)
}

const A: &str = "(a) listener serves scheme and port";
const B: &str = "(b) some virtual host serves the host; RFC 9110 §15.5.20";
const C: &str = "(c) certificate covers the host; RFC 9110 §7.4, RFC 9113 §9.1.1";
const D_CC: &str = "(d) client certificate verified by the vhost's own anchors (every level)";
const D_TLS: &str = "(d) minimum TLS version and ALPN (secure, strict)";
const OWN: &str = "never 421 for the SNI's own vhost when (d) passes";
const STRICT_RULE: &str = "strict: the host's vhost must be the SNI's; no SNI = default vhost";
const LEVEL: &str = "policy level per listener, overridden per vhost";
const WARN_RULE: &str =
    "warn_only serves and reports, except certificate cover and the client-certificate rule";
const NO_COVER: &str = "a name the certificate does not cover is never served: no level, no warn_only, no default vhost";
const UNKNOWN: &str = "unknown host: 421 default, 404 or default vhost";
const NORM: &str = "one normalisation: case, trailing dot, default port";

#[rustfmt::skip]
const ROWS: &[(&str, Listener, Conn, Target, Want)] = &[
    // Secure (the default level).
    (OWN,   SECURE, sni("a.test"), to("a.test"), Serve("a")),
    (NORM,  SECURE, sni("a.test"), to("A.TEST."), Serve("a")),
    (NORM,  SECURE, sni("a.test"), to("a.test:443"), Serve("a")),
    (NORM,  SECURE, sni("a.test"), to("a.test:0443"), Serve("a")),
    (C,     SECURE, sni("a.test"), to("b.test"), Serve("b")),
    (C,     SECURE, sni("a.test"), to("c.test"), Mis(R::CertificateDoesNotCover)),
    (C,     SECURE, sni("c.test"), to("a.test"), Mis(R::CertificateDoesNotCover)),
    (C,     SECURE, sni("a.test"), to("u.test"), Mis(R::CertificateDoesNotCover)),
    (C,     SECURE, sni("a.test"), to("y.wild.test"), Mis(R::CertificateDoesNotCover)),
    (C,     SECURE, sni("x.wild.test"), to("y.wild.test"), Serve("wild")),
    (C,     SECURE, sni("x.wild.test"), to("x.wild.test"), Serve("wild")),
    (B,     SECURE, sni("x.wild.test"), to("a.b.wild.test"), Mis(R::UnknownHost)),
    (B,     SECURE, sni("x.wild.test"), to("wild.test"), Mis(R::UnknownHost)),
    (B,     SECURE, sni("a.test"), to("unknown.test"), Mis(R::UnknownHost)),
    (B,     SECURE, sni("a.test"), to("free.test"), Mis(R::UnknownHost)),
    (B,     SECURE, sni("a.test"), to("[::1]"), Mis(R::UnknownHost)),
    (B,     SECURE, sni("a.test"), to("127.0.0.1"), Mis(R::UnknownHost)),
    (D_CC,  SECURE, sni("a.test"), to("secure.test"), Mis(R::ClientCertRequired)),
    (D_CC,  SECURE, sni("secure.test"), to("secure.test"), Mis(R::ClientCertRequired)),
    (D_CC,  SECURE, cc(sni("secure.test"), T1), to("secure.test"), Serve("secure")),
    (D_CC,  SECURE, cc(sni("a.test"), T1), to("secure.test"), Serve("secure")),
    (D_CC,  SECURE, cc(sni("secure.test"), T1), to("partner.test"), Mis(R::ClientCertOtherAnchors)),
    (D_CC,  SECURE, cc(sni("partner.test"), T2), to("secure.test"), Mis(R::ClientCertOtherAnchors)),
    (D_CC,  SECURE, cc(sni("secure.test"), T1), to("a.test"), Serve("a")),
    (D_CC,  SECURE, sni("a.test"), to("opt.test"), Serve("opt")),
    (D_CC,  SECURE, cc(sni("secure.test"), T1), to("opt.test"), Serve("opt")),
    (D_CC,  SECURE, cc(sni("partner.test"), T2), to("opt.test"), Mis(R::ClientCertOtherAnchors)),
    (D_TLS, SECURE, tls12(sni("a.test")), to("modern.test"), Mis(R::TlsVersionBelowMinimum)),
    (D_TLS, SECURE, sni("a.test"), to("modern.test"), Serve("modern")),
    (D_TLS, SECURE, h1(sni("a.test")), to("modern.test"), Mis(R::AlpnNotAllowed)),
    (D_TLS, SECURE, h1(sni("modern.test")), to("modern.test"), Mis(R::AlpnNotAllowed)),
    (A,     SECURE, sni("a.test"), to("b.test:8443"), Mis(R::PortNotServed)),
    (A,     SECURE, sni("a.test"), to("a.test:80"), Mis(R::PortNotServed)),
    (A,     SECURE, sni("a.test"), ("b.test", Some(Scheme::Http)), Mis(R::SchemeNotServed)),
    (A,     SECURE, sni("a.test"), ("b.test", Some(Scheme::Https)), Serve("b")),
    (A,     SECURE, sni("a.test"), ("unknown.test:8443", None), Mis(R::PortNotServed)),
    (OWN,   SECURE, NO_SNI, to("a.test"), Serve("a")),
    (C,     SECURE, NO_SNI, to("b.test"), Serve("b")),
    (C,     SECURE, NO_SNI, to("c.test"), Mis(R::CertificateDoesNotCover)),
    (LEVEL, SECURE, sni("a.test"), to("strict.test"), Mis(R::SniVhostDiffers)),
    (LEVEL, SECURE, sni("strict.test"), to("strict.test"), Serve("strict")),
    (LEVEL, SECURE, sni("strict.test"), to("b.test"), Serve("b")),
    (LEVEL, SECURE, tls12(sni("a.test")), to("lax.test"), Serve("lax")),
    // Strict.
    (OWN,   STRICT, sni("a.test"), to("a.test"), Serve("a")),
    (STRICT_RULE, STRICT, sni("a.test"), to("b.test"), Mis(R::SniVhostDiffers)),
    (STRICT_RULE, STRICT, NO_SNI, to("a.test"), Serve("a")),
    (STRICT_RULE, STRICT, NO_SNI, to("b.test"), Mis(R::NoSni)),
    (STRICT_RULE, STRICT, sni("x.wild.test"), to("y.wild.test"), Serve("wild")),
    (D_CC,  STRICT, sni("a.test"), to("secure.test"), Mis(R::ClientCertRequired)),
    (D_CC,  STRICT, cc(sni("secure.test"), T1), to("secure.test"), Serve("secure")),
    (D_TLS, STRICT, tls12(sni("a.test")), to("modern.test"), Mis(R::TlsVersionBelowMinimum)),
    (D_TLS, STRICT, sni("a.test"), to("modern.test"), Mis(R::SniVhostDiffers)),
    (C,     STRICT, sni("a.test"), to("c.test"), Mis(R::CertificateDoesNotCover)),
    (B,     STRICT, sni("a.test"), to("unknown.test"), Mis(R::UnknownHost)),
    (LEVEL, STRICT, tls12(sni("a.test")), to("lax.test"), Serve("lax")),
    // Cert-only.
    (LEVEL, CERT_ONLY, tls12(sni("a.test")), to("modern.test"), Serve("modern")),
    (LEVEL, CERT_ONLY, h1(sni("a.test")), to("modern.test"), Serve("modern")),
    (LEVEL, CERT_ONLY, sni("a.test"), to("b.test"), Serve("b")),
    (D_CC,  CERT_ONLY, sni("a.test"), to("secure.test"), Mis(R::ClientCertRequired)),
    (D_CC,  CERT_ONLY, cc(sni("secure.test"), T1), to("partner.test"), Mis(R::ClientCertOtherAnchors)),
    (C,     CERT_ONLY, sni("a.test"), to("c.test"), Mis(R::CertificateDoesNotCover)),
    (A,     CERT_ONLY, sni("a.test"), to("b.test:8443"), Mis(R::PortNotServed)),
    (LEVEL, CERT_ONLY, sni("a.test"), to("strict.test"), Mis(R::SniVhostDiffers)),
    // warn_only (at Secure).
    (WARN_RULE, WARN, sni("a.test"), to("b.test"), Serve("b")),
    (NO_COVER, WARN, sni("a.test"), to("c.test"), Mis(R::CertificateDoesNotCover)),
    (NO_COVER, WARN, NO_SNI, to("c.test"), Mis(R::CertificateDoesNotCover)),
    (NO_COVER, WARN, sni("c.test"), to("a.test"), Mis(R::CertificateDoesNotCover)),
    (NO_COVER, WARN, sni("a.test"), ("c.test", Some(Scheme::Http)), Mis(R::SchemeNotServed)),
    (NO_COVER, WARN, sni("a.test"), to("c.test:8443"), Mis(R::PortNotServed)),
    (NO_COVER, WARN, tls12(sni("c.test")), to("modern.test"), Mis(R::CertificateDoesNotCover)),
    (WARN_RULE, WARN, sni("a.test"), ("b.test", Some(Scheme::Http)), Warn("b", R::SchemeNotServed)),
    (WARN_RULE, WARN, h1(sni("a.test")), to("modern.test"), Warn("modern", R::AlpnNotAllowed)),
    (WARN_RULE, WARN_STRICT, sni("a.test"), to("b.test"), Warn("b", R::SniVhostDiffers)),
    (WARN_RULE, WARN_STRICT, NO_SNI, to("b.test"), Warn("b", R::NoSni)),
    (NO_COVER, WARN_STRICT, sni("a.test"), to("c.test"), Mis(R::CertificateDoesNotCover)),
    (WARN_RULE, WARN, tls12(sni("a.test")), to("modern.test"), Warn("modern", R::TlsVersionBelowMinimum)),
    (WARN_RULE, WARN, sni("a.test"), to("b.test:8443"), Warn("b", R::PortNotServed)),
    (WARN_RULE, WARN, sni("a.test"), to("strict.test"), Warn("strict", R::SniVhostDiffers)),
    (WARN_RULE, WARN, sni("a.test"), to("secure.test"), Mis(R::ClientCertRequired)),
    (WARN_RULE, WARN, cc(sni("secure.test"), T1), to("partner.test"), Mis(R::ClientCertOtherAnchors)),
    (WARN_RULE, WARN, sni("a.test"), to("secure.test:8443"), Mis(R::PortNotServed)),
    (WARN_RULE, WARN, sni("a.test"), to("unknown.test"), Mis(R::UnknownHost)),
    // Unknown hosts.
    (UNKNOWN, NOT_FOUND, sni("a.test"), to("unknown.test"), NotFound),
    (UNKNOWN, NOT_FOUND, sni("a.test"), to("unknown.test:8443"), Mis(R::PortNotServed)),
    (UNKNOWN, NOT_FOUND, sni("a.test"), to("b.test"), Serve("b")),
    (UNKNOWN, DEFAULT_A, sni("a.test"), to("free.test"), Serve("a")),
    (UNKNOWN, DEFAULT_A, sni("a.test"), to("unknown.test"), Mis(R::CertificateDoesNotCover)),
    (UNKNOWN, DEFAULT_A, sni("c.test"), to("free.test"), Mis(R::CertificateDoesNotCover)),
    (NO_COVER, DEFAULT_A, NO_SNI, to("unknown.test"), Mis(R::CertificateDoesNotCover)),
    (NO_COVER, DEFAULT_A, NO_SNI, to("free.test"), Serve("a")),
    (NO_COVER, CERT_ONLY_DEFAULT_A, sni("a.test"), to("unknown.test"), Mis(R::CertificateDoesNotCover)),
    (NO_COVER, CERT_ONLY_DEFAULT_A, sni("a.test"), to("free.test"), Serve("a")),
    // Unknown hosts with warn_only: the default vhost serves only names the certificate covers.
    (NO_COVER, WARN_DEFAULT_A, sni("a.test"), to("unknown.test"), Mis(R::CertificateDoesNotCover)),
    (NO_COVER, WARN_DEFAULT_A, NO_SNI, to("unknown.test"), Mis(R::CertificateDoesNotCover)),
    (NO_COVER, WARN_DEFAULT_A, sni("c.test"), to("free.test"), Mis(R::CertificateDoesNotCover)),
    (NO_COVER, WARN_DEFAULT_A, sni("a.test"), to("unknown.test:8443"), Mis(R::PortNotServed)),
    (WARN_RULE, WARN_DEFAULT_A, sni("a.test"), to("free.test"), Serve("a")),
    (WARN_RULE, WARN_DEFAULT_A, sni("a.test"), to("free.test:8443"), Warn("a", R::PortNotServed)),
    // Several public ports (behind a port mapping).
    (A, TWO_PORTS, sni("a.test"), to("b.test:8443"), Serve("b")),
    (A, TWO_PORTS, sni("a.test"), to("b.test"), Serve("b")),
    (A, TWO_PORTS, sni("a.test"), to("b.test:9443"), Mis(R::PortNotServed)),
];

fn context(vhosts: &VirtualHosts, conn: Conn) -> ConnectionContext {
    let mut ctx = ConnectionContext::new()
        .tls_version(conn.tls)
        .alpn(conn.alpn)
        .client_cert(conn.cc);
    let presented = match conn.sni {
        Some(name) => {
            let name = HostName::from_sni(name.as_bytes()).expect("valid SNI");
            let vhost = vhosts.lookup(&name.clone().into());
            ctx = ctx.sni(name);
            vhost.or(vhosts.default_vhost())
        }
        None => vhosts.default_vhost(),
    };
    if let Some(v) = presented {
        ctx = ctx.presented(v);
    }
    ctx
}

/// The decision a row wants; a 421 names the virtual host serving the request's host.
fn expected(vhosts: &VirtualHosts, target: &RequestTarget, want: Want) -> Decision {
    let id = |name: &str| {
        vhosts
            .iter()
            .find(|(_, v)| v.name() == name)
            .map(|(id, _)| id)
            .expect("known vhost")
    };
    match want {
        Serve(name) => Decision::Serve {
            vhost: id(name),
            warning: None,
        },
        Warn(name, reason) => Decision::Serve {
            vhost: id(name),
            warning: Some(reason),
        },
        Mis(reason) => Decision::misdirected(reason, vhosts.resolve(target.host())),
        NotFound => Decision::NotFound,
    }
}

#[test]
fn decision_table() {
    let mut failures = Vec::new();
    for &(rule, listener, conn, (authority, scheme), want) in ROWS {
        let vhosts = table(listener);
        let ctx = context(&vhosts, conn);
        let mut target = RequestTarget::from_h2(Some(authority.as_bytes()), std::iter::empty())
            .expect("valid authority");
        if let Some(scheme) = scheme {
            target = target.with_scheme(scheme);
        }
        let got = decide(&vhosts, &ctx, &target);
        let want = expected(&vhosts, &target, want);
        if got != want {
            failures.push(format!(
                "[{rule}] {:?} {conn:?} -> {authority} {scheme:?}: want {want:?}, got {got:?}",
                listener.policy
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} rows failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(ROWS.len() >= 80, "keep the table complete: {}", ROWS.len());
}

/// Malformed requests are 400 with the request-target rule as the reason.
#[test]
fn bad_requests() {
    let vhosts = table(SECURE);
    let ctx = context(&vhosts, sni("a.test"));
    let two_hosts = http::Request::get("/")
        .header("host", "a.test")
        .header("host", "b.test")
        .body(())
        .unwrap();
    assert_eq!(
        decide_request(&vhosts, &ctx, &two_hosts),
        Decision::BadRequest(R::BadRequest(TargetErrorKind::DuplicateHost))
    );
    let mismatch = http::Request::get("https://a.test/")
        .version(http::Version::HTTP_2)
        .header("host", "b.test")
        .body(())
        .unwrap();
    let decision = decide_request(&vhosts, &ctx, &mismatch);
    assert_eq!(
        decision,
        Decision::BadRequest(R::BadRequest(TargetErrorKind::HostMismatch))
    );
    assert_eq!(decision.status(), Some(http::StatusCode::BAD_REQUEST));
    let no_host = http::Request::get("/").body(()).unwrap();
    assert_eq!(
        decide_request(&vhosts, &ctx, &no_host),
        Decision::BadRequest(R::BadRequest(TargetErrorKind::MissingHost))
    );
    let fine = http::Request::get("https://b.test/")
        .version(http::Version::HTTP_2)
        .body(())
        .unwrap();
    assert!(matches!(
        decide_request(&vhosts, &ctx, &fine),
        Decision::Serve { .. }
    ));
}

/// Rule (a) holds whatever carries the authority (RFC 9113 §8.3.1: every HTTP/2 request
/// names a scheme). An `http::Uri` cannot hold a scheme without an authority, so HTTP/2
/// libraries drop `:scheme` from a request that has only Host: such a request may be `http`,
/// and is refused as one — the same decision as with `:authority`.
#[test]
fn scheme_is_checked_whatever_carries_the_authority() {
    let request = |version: http::Version, uri: &str, host: Option<&str>| {
        let mut b = http::Request::get(uri).version(version);
        if let Some(host) = host {
            b = b.header("host", host);
        }
        b.body(()).unwrap()
    };
    let (v11, v2) = (http::Version::HTTP_11, http::Version::HTTP_2);
    #[rustfmt::skip]
    let rows: &[(Listener, http::Version, &str, Option<&str>, Want)] = &[
        // `:scheme http` with `:authority`, and (as an HTTP/2 library hands it over) without.
        (SECURE, v2, "http://b.test/", None, Mis(R::SchemeNotServed)),
        (SECURE, v2, "http://b.test/", Some("b.test"), Mis(R::SchemeNotServed)),
        (SECURE, v2, "/", Some("b.test"), Mis(R::SchemeNotServed)),
        (CERT_ONLY, v2, "/", Some("b.test"), Mis(R::SchemeNotServed)),
        (DEFAULT_A, v2, "/", Some("free.test"), Mis(R::SchemeNotServed)),
        (SECURE, v2, "/", Some("c.test"), Mis(R::SchemeNotServed)),
        // `:scheme https` with `:authority` is served.
        (SECURE, v2, "https://b.test/", None, Serve("b")),
        (SECURE, v2, "https://b.test/", Some("b.test"), Serve("b")),
        // warn_only relaxes rule (a) as for a named scheme, never cover.
        (WARN, v2, "/", Some("b.test"), Warn("b", R::SchemeNotServed)),
        (WARN, v2, "http://b.test/", None, Warn("b", R::SchemeNotServed)),
        (WARN, v2, "/", Some("c.test"), Mis(R::SchemeNotServed)),
        // HTTP/1.1 origin-form takes the connection's scheme (RFC 9112 §3.3).
        (SECURE, v11, "/", Some("b.test"), Serve("b")),
        (SECURE, v11, "http://b.test/", Some("b.test"), Mis(R::SchemeNotServed)),
    ];
    for &(listener, version, uri, host, want) in rows {
        let vhosts = table(listener);
        let ctx = context(&vhosts, sni("a.test"));
        let request = request(version, uri, host);
        let got = decide_request(&vhosts, &ctx, &request);
        let target = RequestTarget::from_request(&request).expect("a valid target");
        assert_eq!(
            got,
            expected(&vhosts, &target, want),
            "{listener:?} {version:?} {uri} host {host:?}"
        );
    }
}

/// Every reason has a distinct stable code and a status.
#[test]
fn reason_codes() {
    let codes: std::collections::HashSet<_> =
        Reason::MISDIRECTED.iter().map(|r| r.code()).collect();
    assert_eq!(codes.len(), Reason::MISDIRECTED.len());
    for r in Reason::MISDIRECTED {
        assert_eq!(r.status(), http::StatusCode::MISDIRECTED_REQUEST, "{r:?}");
        assert!(!r.description().is_empty() && !r.rule().is_empty());
    }
    assert_eq!(
        R::BadRequest(TargetErrorKind::DuplicateHost).code(),
        "duplicate-host"
    );
}

/// Duplicate names across virtual hosts are a configuration error naming both, with their
/// positions in the table.
#[test]
fn duplicate_names_are_refused() {
    let cert = Arc::new(Identities::from_patterns(["a.test".parse().unwrap()]));
    let mut b = VirtualHosts::builder(Scheme::Https);
    b.port(443);
    b.add(VirtualHost::new("first", cert.clone()).pattern("a.test".parse().unwrap()));
    b.add(VirtualHost::new("other", cert.clone()).pattern("b.test".parse().unwrap()));
    b.add(VirtualHost::new("second", cert.clone()).pattern("A.test".parse().unwrap()));
    let err = b.build().unwrap_err();
    assert_eq!(
        err,
        ConfigError::DuplicateName {
            pattern: "a.test".into(),
            first: "first".into(),
            first_position: 0,
            second: "second".into(),
            second_position: 2,
        }
    );
    assert_eq!(
        err.to_string(),
        "a.test is served by two virtual hosts: \"first\" (position 0) and \"second\" \
         (position 2)"
    );
    assert!(err.source().is_none());

    // One virtual host listing a name twice: both positions are its own.
    let mut b = VirtualHosts::builder(Scheme::Https);
    b.port(443);
    b.add(VirtualHost::new("a", cert.clone()).pattern("a.test".parse().unwrap()));
    b.add(
        VirtualHost::new("twice", cert)
            .pattern("*.b.test".parse().unwrap())
            .pattern("*.B.test".parse().unwrap()),
    );
    let err = b.build().unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::DuplicateName {
                first_position: 1,
                second_position: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "virtual host \"twice\" (position 1) lists *.b.test twice"
    );
}

/// A table must be told its ports: none means no default, but a configuration error.
#[test]
fn build_without_ports_fails() {
    let cert = Arc::new(Identities::from_patterns(["a.test".parse().unwrap()]));
    let mut b = VirtualHosts::builder(Scheme::Https);
    let a = b.add(VirtualHost::new("a", cert).pattern("a.test".parse().unwrap()));
    let err = b.build().unwrap_err();
    assert_eq!(err, ConfigError::NoPorts);
    assert_eq!(
        err.to_string(),
        "no public ports: give the ports clients name in authorities, e.g. .port(443), or the \
         listener's port"
    );
    // An empty iterator gives no port either.
    assert_eq!(b.ports([]).build().unwrap_err(), ConfigError::NoPorts);

    // A listener on a non-default port serves requests naming it, and only those.
    let vhosts = b.port(19614).build().unwrap();
    let to = |authority: &str| {
        RequestTarget::from_h2(Some(authority.as_bytes()), std::iter::empty()).unwrap()
    };
    let conn = ConnectionContext::new().presented(a);
    assert!(matches!(
        decide(&vhosts, &conn, &to("a.test:19614")),
        Decision::Serve { .. }
    ));
    assert_eq!(
        decide(&vhosts, &conn, &to("a.test")),
        Decision::misdirected(R::PortNotServed, Some(a))
    );
}

/// The host index's own errors keep their type and are the configuration error's source.
#[test]
fn index_errors_are_the_source() {
    let index_error = misdirect_certmatch::DnsPattern::parse(b"f*.test").unwrap_err();
    let err = ConfigError::Index(index_error.clone());
    let source = err.source().expect("the index error");
    assert_eq!(
        source.downcast_ref::<misdirect_certmatch::Error>(),
        Some(&index_error)
    );
    assert_eq!(err.to_string(), "cannot index virtual host names");
}

/// A `port-not-served` refusal explains itself: the port the request named and the ports
/// the listener serves, and nothing about other virtual hosts.
#[test]
fn port_not_served_is_explained() {
    let cert = Arc::new(Identities::from_patterns([
        "a.test".parse().unwrap(),
        "b.test".parse().unwrap(),
    ]));
    let mut b = VirtualHosts::builder(Scheme::Https);
    b.add(VirtualHost::new("a", cert.clone()).pattern("a.test".parse().unwrap()));
    b.add(VirtualHost::new("b", cert).pattern("b.test".parse().unwrap()));
    let to = |authority: &str| {
        RequestTarget::from_h2(Some(authority.as_bytes()), std::iter::empty()).unwrap()
    };
    let conn = ConnectionContext::new();
    for (ports, authority, detail) in [
        (
            &[8443][..],
            "a.test:443",
            "the request named port 443; this listener serves port 8443",
        ),
        (
            &[8443, 9443][..],
            "a.test",
            "the request named no port, which means 443 for https; this listener serves \
             ports 8443 and 9443",
        ),
        (
            &[8443, 9443, 10443][..],
            "a.test:7443",
            "the request named port 7443; this listener serves ports 8443, 9443 and 10443",
        ),
    ] {
        let vhosts = b.clone().ports(ports.iter().copied()).build().unwrap();
        let target = to(authority);
        let decision = decide(&vhosts, &conn, &target);
        assert_eq!(decision.reason(), Some(R::PortNotServed), "{authority}");
        assert_eq!(
            decision
                .target_vhost()
                .and_then(|v| vhosts.get(v))
                .map(|v| v.name()),
            Some("a"),
            "{authority}"
        );
        let explanation = Explanation::new(&vhosts, R::PortNotServed, &target);
        assert_eq!(explanation.reason(), R::PortNotServed);
        assert_eq!(explanation.detail(), Some(detail));
        assert_eq!(RenderReason::code(&explanation), "port-not-served");
        let description = RenderReason::description(&explanation);
        assert_eq!(
            description,
            format!("{}: {detail}", R::PortNotServed.description())
        );
        assert!(!description.contains("b.test"), "{description}");
    }

    // Other reasons keep their description alone.
    let vhosts = b.clone().port(443).build().unwrap();
    let explanation = Explanation::new(&vhosts, R::UnknownHost, &to("c.test"));
    assert_eq!(explanation.detail(), None);
    assert_eq!(explanation.to_string(), R::UnknownHost.description());
}

/// A server that records only the SNI gets the SNI's virtual host's certificate assumed (and
/// the default virtual host's without SNI), as it would present them.
#[test]
fn certificate_follows_the_sni_when_presented_is_not_recorded() {
    let vhosts = table(SECURE);
    let to = |authority: &str| {
        RequestTarget::from_h2(Some(authority.as_bytes()), std::iter::empty()).unwrap()
    };
    let sni_only = ConnectionContext::new().sni(HostName::from_sni(b"c.test").unwrap());
    let d = decide(&vhosts, &sni_only, &to("c.test"));
    assert!(matches!(d, Decision::Serve { .. }), "{d:?}");
    assert_eq!(
        decide(&vhosts, &sni_only, &to("a.test")).reason(),
        Some(R::CertificateDoesNotCover)
    );
    let nothing = ConnectionContext::new();
    assert!(matches!(
        decide(&vhosts, &nothing, &to("b.test")),
        Decision::Serve { .. }
    ));
    assert_eq!(
        decide(&vhosts, &nothing, &to("c.test")).reason(),
        Some(R::CertificateDoesNotCover)
    );
    assert_eq!(vhosts.resolve(&"unknown.test".parse().unwrap()), None);
    assert!(
        table(DEFAULT_A)
            .resolve(&"unknown.test".parse().unwrap())
            .is_some()
    );
}

/// A cleartext listener (a plain-HTTP listener behind a TLS-terminating load balancer) has
/// no certificate, TLS version, ALPN or SNI: only the scheme and port, a virtual host for
/// the host, and the client-certificate rule apply — a virtual host that requires client
/// certificates is never served without TLS, at any level or with `warn_only`.
#[test]
fn a_cleartext_listener_checks_host_port_and_client_certificates_only() {
    let nothing = Arc::new(Identities::from_patterns(Vec::new()));
    for policy in [Policy::Strict, Policy::Secure, Policy::CertOnly] {
        for warn_only in [false, true] {
            let mut b = VirtualHosts::builder(Scheme::Http);
            let a = b.add(
                VirtualHost::new("a", nothing.clone())
                    .pattern("a.test".parse().unwrap())
                    .min_tls(TlsVersion::Tls13)
                    .alpn([Alpn::H2]),
            );
            let other =
                b.add(VirtualHost::new("b", nothing.clone()).pattern("b.test".parse().unwrap()));
            let secure = b.add(
                VirtualHost::new("secure", nothing.clone())
                    .pattern("secure.test".parse().unwrap())
                    .client_auth(ClientAuth::Required(TrustAnchorsId::new(1))),
            );
            let vhosts = b
                .port(80)
                .policy(policy)
                .warn_only(warn_only)
                .default_vhost(a)
                .build()
                .unwrap();
            let conn = ConnectionContext::new();
            let to =
                |authority: &str| RequestTarget::from_h1(None, [authority.as_bytes()]).unwrap();
            let case = format!("{policy:?} warn_only={warn_only}");
            assert_eq!(
                decide(&vhosts, &conn, &to("a.test")),
                Decision::Serve {
                    vhost: a,
                    warning: None
                },
                "{case}"
            );
            assert_eq!(
                decide(&vhosts, &conn, &to("b.test:80")),
                Decision::Serve {
                    vhost: other,
                    warning: None
                },
                "{case}"
            );
            assert_eq!(
                decide(&vhosts, &conn, &to("secure.test")),
                Decision::misdirected(R::ClientCertRequired, Some(secure)),
                "{case}"
            );
            assert_eq!(
                decide(&vhosts, &conn, &to("c.test")).reason(),
                Some(R::UnknownHost),
                "{case}"
            );
            let wrong_port = decide(&vhosts, &conn, &to("a.test:8080"));
            assert_eq!(wrong_port.reason(), Some(R::PortNotServed), "{case}");
            let https = to("a.test").with_scheme(Scheme::Https);
            assert_eq!(
                decide(&vhosts, &conn, &https).reason(),
                Some(R::SchemeNotServed),
                "{case}"
            );
        }
    }
}
