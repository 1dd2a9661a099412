//! Plain-HTTP listeners (`tls = false`): HTTP/1.1 and HTTP/2 with prior knowledge (h2c,
//! RFC 9113 §3.3) for use behind a TLS-terminating load balancer, and the `https://`
//! redirect of a port-80 companion listener (`redirect = "https"`).
//!
//! There is no TLS here: no SNI, no certificate, no client certificate. The listener core
//! decides on a cleartext table (rule S9 in `docs/design.md`): a virtual host must serve the
//! host and port, and a virtual host that requires client certificates is refused. The TLS
//! checks — SNI against Host, certificate cover — are the load balancer's to make.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Response, StatusCode, header};
use misdirect_authority::{RequestTarget, Scheme};
use misdirect_coalesce::ConnectionContext;
use tokio::sync::watch;

use crate::conn::{Registration, Tracked};
use crate::metrics::Protocol;
use crate::server::{Conn, Shared, Transport};

/// The start of the HTTP/2 client connection preface (RFC 9113 §3.4): a client speaking
/// h2c with prior knowledge opens with it.
const H2_PREFACE_START: &[u8] = b"PRI ";

/// Serves one plain connection: HTTP/2 when it opens with the connection preface, else
/// HTTP/1.1. The connection counts as made for the listener's default virtual host.
pub(crate) async fn connection<T: Transport>(
    shared: Arc<Shared>,
    listener: usize,
    mut tcp: T,
    peer: SocketAddr,
    stop: watch::Receiver<bool>,
    registration: Registration,
) {
    let activity = registration.activity().clone();
    let mut first = [0u8; 4];
    // A client that connects and says nothing is closed like one that stalls a handshake.
    let peeked = tokio::select! {
        peeked = tokio::time::timeout(
            shared.limits.tls_handshake_timeout,
            peek_start(&mut tcp, &mut first),
        ) => peeked,
        () = activity.reclaimed() => return,
    };
    let seen = match peeked {
        Ok(Ok(seen)) if seen > 0 => seen,
        Ok(_) => return,
        Err(_) => {
            tracing::debug!(%peer, "plain connection sent nothing in time");
            return;
        }
    };
    activity.established();
    let h2 = first[..seen] == *H2_PREFACE_START;
    let core = &shared.listeners[listener].table.listener;
    // Invariant: every table has the site's virtual hosts, at least one.
    let presented = core.select(None).expect("a listener has virtual hosts");
    let conn = Arc::new(Conn {
        peer,
        listener,
        sni: None,
        presented,
        context: ConnectionContext::new(),
    });
    let _open = shared.metrics.open_connection(match h2 {
        true => Protocol::H2,
        false => Protocol::H1,
    });
    tracing::debug!(
        %peer,
        protocol = if h2 { "h2c" } else { "http/1.1" },
        "plain connection"
    );
    let stream = Tracked::new(tcp, activity.clone());
    if h2 {
        crate::serving::serve_h2(shared, conn, stream, stop, activity).await;
    } else {
        activity.track_heads();
        crate::serving::serve_h1(shared, conn, stream, stop, activity).await;
    }
    drop(registration);
}

/// Peeks until the first bytes either are the start of the HTTP/2 preface or cannot be;
/// returns how many were seen (0: the client closed).
async fn peek_start<T: Transport>(tcp: &mut T, first: &mut [u8; 4]) -> std::io::Result<usize> {
    loop {
        let seen = tcp.peek(first).await?;
        let undecided =
            seen > 0 && seen < first.len() && H2_PREFACE_START.starts_with(&first[..seen]);
        if !undecided {
            return Ok(seen);
        }
        // Part of "PRI " so far: wait for the rest (peek returns what has arrived).
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// On a `redirect = "https"` listener: a 308 to the request's `https://` URL when some TLS
/// listener serves its host — at that listener's first public port, left out when it is
/// 443 — with the path and query kept (RFC 9110 §15.4.9: a 308 keeps the method and body).
/// `None` for everything else: a malformed request or a host no TLS listener serves, which
/// the listener core then refuses as usual.
pub(crate) fn redirect(shared: &Shared, conn: &Conn, parts: &Parts) -> Option<Response<Bytes>> {
    if !shared.listeners[conn.listener].redirect_https {
        return None;
    }
    let target = RequestTarget::from_parts(parts).ok()?;
    if target.scheme().is_some_and(|s| s != Scheme::Http) {
        return None;
    }
    let host = target.host();
    let port = shared
        .listeners
        .iter()
        .filter(|l| l.tls)
        .find(|l| l.table.vhosts().lookup(host).is_some())?
        .table
        .vhosts()
        .ports()
        .first()
        .copied()?;
    let mut location = format!("https://{host}");
    if port != Scheme::Https.default_port() {
        location.push_str(&format!(":{port}"));
    }
    location.push_str(parts.uri.path_and_query().map_or("/", |p| p.as_str()));
    let location = HeaderValue::try_from(location).ok()?;
    let body = Bytes::from_static(b"308 Permanent Redirect: use https://\n");
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, location);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Some(response)
}
