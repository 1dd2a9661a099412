//! HTTP/1.1 (hyper) and HTTP/2 (h2) serving, and the per-request path: target, decision,
//! answer (DESIGN.md, "A request's path through the server", steps 2–4).

use std::convert::Infallible;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Method, Response, StatusCode, header};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use misdirect_authority::RequestTarget;
use misdirect_coalesce::{Decision, Reason, decide};
use misdirect_response::render;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::server::TlsStream;

use crate::config::Respond;
use crate::server::{Conn, Shared};

/// Serves HTTP/1.1 until the client closes, a response says `Connection: close` (every
/// 421), or shutdown: then the current response is finished and the connection closed.
pub(crate) async fn serve_h1(
    shared: Arc<Shared>,
    conn: Arc<Conn>,
    stream: TlsStream<TcpStream>,
    mut stop: watch::Receiver<bool>,
) {
    let limits = shared.limits;
    let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
        let shared = shared.clone();
        let conn = conn.clone();
        async move {
            let (parts, _body) = request.into_parts();
            let response = answer(&shared, &conn, &parts).await;
            Ok::<_, Infallible>(response.map(Full::new))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes)
        .keep_alive(true);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = crate::server::raised(&mut stop) => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(err) = result {
        tracing::debug!(error = %err, "HTTP/1.1 connection ended with an error");
    }
}

/// Serves HTTP/2 streams until the client goes away or shutdown, which sends GOAWAY and
/// lets the streams in flight finish. A 421 is per stream: the connection stays open.
pub(crate) async fn serve_h2(
    shared: Arc<Shared>,
    conn: Arc<Conn>,
    stream: TlsStream<TcpStream>,
    mut stop: watch::Receiver<bool>,
) {
    let limits = shared.limits;
    let mut builder = h2::server::Builder::new();
    // h2's reset-flood protections (pending-accept and local-error reset limits) keep
    // their defaults.
    builder
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    let mut connection = match builder.handshake::<_, Bytes>(stream).await {
        Ok(connection) => connection,
        Err(err) => {
            tracing::debug!(error = %err, "HTTP/2 handshake failed");
            return;
        }
    };
    let mut stopping = false;
    loop {
        let next = tokio::select! {
            next = connection.accept() => next,
            _ = crate::server::raised(&mut stop), if !stopping => {
                stopping = true;
                connection.graceful_shutdown();
                continue;
            }
        };
        match next {
            Some(Ok((request, respond))) => {
                let (parts, _body) = request.into_parts();
                // Refusals and fixed bodies are answered here, without a task per stream;
                // only files, which wait on the disk, get their own task.
                match answer_now(&shared, &conn, &parts) {
                    Answer::Ready(response) => send_h2(respond, response),
                    Answer::File(root) => {
                        tokio::spawn(async move {
                            let response = serve_file(&root, &parts).await;
                            send_h2(respond, response);
                        });
                    }
                }
            }
            Some(Err(err)) => {
                tracing::debug!(error = %err, "HTTP/2 connection ended with an error");
                break;
            }
            None => break,
        }
    }
}

fn send_h2(mut respond: h2::server::SendResponse<Bytes>, response: Response<Bytes>) {
    let (head, body) = response.into_parts();
    let end = body.is_empty();
    match respond.send_response(Response::from_parts(head, ()), end) {
        Ok(mut stream) if !end => {
            if let Err(err) = stream.send_data(body, true) {
                tracing::debug!(error = %err, "HTTP/2 body not sent");
            }
        }
        Ok(_) => {}
        Err(err) => tracing::debug!(error = %err, "HTTP/2 response not sent"),
    }
}

/// One request: its target (`misdirect-authority`), the decision (`misdirect-coalesce`),
/// and the answer (`misdirect-response` for refusals, the virtual host's `respond` else).
pub(crate) async fn answer(shared: &Shared, conn: &Conn, parts: &Parts) -> Response<Bytes> {
    match answer_now(shared, conn, parts) {
        Answer::Ready(response) => response,
        Answer::File(root) => serve_file(&root, parts).await,
    }
}

/// What [`answer_now`] decided: a response, or a file under this directory to read.
enum Answer {
    Ready(Response<Bytes>),
    File(Arc<Path>),
}

/// [`answer`] up to the point where it would wait: everything but reading a file.
fn answer_now(shared: &Shared, conn: &Conn, parts: &Parts) -> Answer {
    let listener = &shared.listeners[conn.listener];
    let table = &listener.table;
    let target = RequestTarget::from_parts(parts);
    let decision = match &target {
        Ok(target) => decide(&table.vhosts, &conn.context, target),
        Err(err) => Decision::bad_request(err),
    };
    tracing::debug!(context = ?conn.context, decision = ?decision, "decided");
    let target_vhost = target
        .as_ref()
        .ok()
        .and_then(|t| table.vhosts.lookup(t.host()));
    let log = |reason: Reason, message: &str| {
        tracing::warn!(
            status = reason.status().as_u16(),
            reason = reason.code(),
            sni = conn.sni.as_deref().unwrap_or("-"),
            authority = %authority_for_log(parts, target.as_ref().ok()),
            presented_vhost = table.name(table.ids[conn.presented]),
            target_vhost = target_vhost.map_or("-", |id| table.name(id)),
            peer = %conn.peer,
            method = %parts.method,
            version = ?parts.version,
            "{message}"
        );
    };
    match decision {
        Decision::Serve { vhost, warning } => {
            if let Some(reason) = warning {
                log(
                    reason,
                    "served because warn_only is on; would have been refused",
                );
            }
            // The table was built in site order, so a table id is the site index.
            let site_vhost = &shared.site.vhosts[vhost.index()];
            match &site_vhost.config.respond {
                Respond::Body(body) => Answer::Ready(fixed_body(body, parts)),
                Respond::Dir(root) => Answer::File(root.clone()),
            }
        }
        Decision::Misdirected(reason) => {
            log(reason, "misdirected request");
            Answer::Ready(refuse(listener, reason, parts))
        }
        Decision::BadRequest(reason) => {
            log(reason, "bad request");
            Answer::Ready(refuse(listener, reason, parts))
        }
        _ => {
            tracing::debug!(
                authority = %authority_for_log(parts, target.as_ref().ok()),
                peer = %conn.peer,
                "no virtual host for the request; 404 (unknown_host = \"not-found\")"
            );
            Answer::Ready(plain(StatusCode::NOT_FOUND, "not found\n", parts))
        }
    }
}

fn refuse(
    listener: &crate::server::ListenerState,
    reason: Reason,
    parts: &Parts,
) -> Response<Bytes> {
    let options = listener.render.for_request(&parts.method, parts.version);
    render(reason.status(), &reason, &parts.headers, &options)
}

/// The request's authority as the client wrote it, for a log line.
fn authority_for_log(parts: &Parts, target: Option<&RequestTarget>) -> String {
    if let Some(target) = target {
        return target.authority().to_string();
    }
    let mut seen: Vec<String> = Vec::new();
    if let Some(authority) = parts.uri.authority() {
        seen.push(authority.as_str().to_string());
    }
    for host in parts.headers.get_all(header::HOST) {
        seen.push(String::from_utf8_lossy(host.as_bytes()).into_owned());
    }
    if seen.is_empty() {
        "-".to_string()
    } else {
        seen.join(", ")
    }
}

/// 200 with a virtual host's fixed `text/plain` body.
fn fixed_body(body: &Bytes, parts: &Parts) -> Response<Bytes> {
    with_body(
        StatusCode::OK,
        "text/plain; charset=utf-8",
        body.clone(),
        parts,
    )
}

fn plain(status: StatusCode, body: &str, parts: &Parts) -> Response<Bytes> {
    with_body(
        status,
        "text/plain; charset=utf-8",
        Bytes::copy_from_slice(body.as_bytes()),
        parts,
    )
}

/// A response with `Content-Length` set to the body's length, and an empty body for HEAD
/// (RFC 9110 §9.3.2).
fn with_body(
    status: StatusCode,
    content_type: &'static str,
    body: Bytes,
    parts: &Parts,
) -> Response<Bytes> {
    let length = HeaderValue::from(body.len());
    let body = if parts.method == Method::HEAD {
        Bytes::new()
    } else {
        body
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_LENGTH, length);
    response
}

/// Serves a file under `root` for GET and HEAD; `index.html` for directories. Paths with
/// `..`, backslashes, NUL or bad percent-encoding are 404, and so is any file whose real
/// path (after symbolic links) leaves `root`.
async fn serve_file(root: &Path, parts: &Parts) -> Response<Bytes> {
    if parts.method != Method::GET && parts.method != Method::HEAD {
        let mut response = plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n",
            parts,
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let Some(relative) = safe_path(parts.uri.path()) else {
        return plain(StatusCode::NOT_FOUND, "not found\n", parts);
    };
    let mut path = root.join(relative);
    if tokio::fs::metadata(&path).await.is_ok_and(|m| m.is_dir()) {
        path.push("index.html");
    }
    let inside = match (
        tokio::fs::canonicalize(root).await,
        tokio::fs::canonicalize(&path).await,
    ) {
        (Ok(root), Ok(file)) => file.starts_with(root),
        _ => false,
    };
    if !inside {
        return plain(StatusCode::NOT_FOUND, "not found\n", parts);
    }
    match tokio::fs::read(&path).await {
        Ok(bytes) => with_body(StatusCode::OK, content_type(&path), bytes.into(), parts),
        Err(_) => plain(StatusCode::NOT_FOUND, "not found\n", parts),
    }
}

fn safe_path(path: &str) -> Option<PathBuf> {
    let decoded = percent_decode(path)?;
    if decoded.contains('\\') || decoded.contains('\0') {
        return None;
    }
    let mut out = PathBuf::new();
    for component in Path::new(decoded.trim_start_matches('/')).components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}

fn percent_decode(input: &str) -> Option<String> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let text = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(text, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("txt") => "text/plain; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("ico") => "image/x-icon",
        Some("wasm") => "application/wasm",
        Some("pdf") => "application/pdf",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_paths() {
        const CASES: &[(&str, Option<&str>)] = &[
            ("/", Some("")),
            ("/a/b.html", Some("a/b.html")),
            ("/./a", Some("a")),
            ("/a%20b", Some("a b")),
            ("/../etc/passwd", None),
            ("/a/../../x", None),
            ("/%2e%2e/x", None),
            ("/a%5c..%5cb", None),
            ("/a%00", None),
            ("/%zz", None),
            ("/%4", None),
        ];
        for (input, expected) in CASES {
            assert_eq!(
                safe_path(input).as_deref(),
                expected.map(Path::new),
                "path {input:?}"
            );
        }
    }
}
