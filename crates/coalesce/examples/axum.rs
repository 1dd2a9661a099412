//! `MisdirectLayer` in front of an axum `Router`.
//!
//! Serves plain HTTP/1.1 on 127.0.0.1 (port 3000, or the first argument; `0` picks a free
//! one) for three virtual hosts:
//!
//! - `www`: `localhost`, `www.localhost` and `127.0.0.1`;
//! - `api`: `api.localhost`;
//! - `admin`: `admin.localhost`, which requires a client certificate — never present on a
//!   plain-HTTP connection, so every request to it gets a 421.
//!
//! ```sh
//! cargo run -p misdirect-coalesce --features tower --example axum
//! curl -i http://localhost:3000/                                   # 200, served by www
//! curl -i -H 'Host: api.localhost:3000' http://127.0.0.1:3000/     # 200, served by api
//! curl -i -H 'Host: admin.localhost:3000' http://127.0.0.1:3000/   # 421 client-cert-required
//! curl -i -H 'Host: shop.localhost:3000' http://127.0.0.1:3000/    # 421 unknown-host
//! curl -i -H 'Host: localhost:8080' http://127.0.0.1:3000/         # 421 port-not-served
//! curl -i -H 'Accept: application/problem+json' -H 'Host: admin.localhost:3000' http://127.0.0.1:3000/
//! ```

use std::convert::Infallible;
use std::error::Error;
use std::sync::Arc;

use axum::Extension;
use axum::Router;
use axum::routing::get;
use axum::serve::IncomingStream;
use misdirect_authority::Scheme;
use misdirect_certmatch::{Identities, Pattern};
use misdirect_coalesce::{
    ClientAuth, ConnectionContext, Listener, MisdirectLayer, ServedBy, TrustAnchorsId, VirtualHost,
    VirtualHosts,
};
use tokio::net::TcpListener;
use tower::{Layer, service_fn};

fn main() -> Result<(), Box<dyn Error>> {
    let port: u16 = match std::env::args().nth(1) {
        Some(port) => port.parse()?,
        None => 3000,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    runtime.block_on(serve(port))
}

async fn serve(port: u16) -> Result<(), Box<dyn Error>> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let port = listener.local_addr()?.port();
    let vhosts = Arc::new(Listener::new(virtual_hosts(port)?));

    let names = vhosts.clone();
    let app = Router::new().route(
        "/",
        get(move |Extension(served): Extension<ServedBy>| async move {
            // The layer inserted `ServedBy` before the request reached the router.
            let name = names.name(served.vhost()).unwrap_or("?");
            match served.warning() {
                None => format!("served by {name}\n"),
                Some(reason) => format!("served by {name} (warn_only: {})\n", reason.code()),
            }
        }),
    );
    let misdirect = MisdirectLayer::new(vhosts);

    // One service per connection, with that connection's `ConnectionContext` inserted into
    // every request it carries. A TLS server fills the context from the handshake: the SNI
    // (`.sni(HostName::from_sni(..))`), the virtual host whose certificate the SNI resolver
    // presented (`.presented(id)`), the negotiated TLS version and ALPN, and which trust
    // anchors verified the client certificate (`Listener::on_handshake` records it, see `examples/axum_tls.rs`).
    // Over plain HTTP there is no handshake: the context stays empty, the listener's scheme
    // is `http` and no certificate rule applies; but no client certificate either, so
    // `admin` is refused.
    let per_connection = service_fn(move |incoming: IncomingStream<'_, TcpListener>| {
        let conn = ConnectionContext::new();
        eprintln!("connection from {}", incoming.remote_addr());
        let service = Extension(conn).layer(misdirect.layer(app.clone()));
        std::future::ready(Ok::<_, Infallible>(service))
    });

    eprintln!("listening on http://127.0.0.1:{port}/ (try Host: admin.localhost:{port})");
    axum::serve(listener, per_connection).await?;
    Ok(())
}

/// The listener's table: scheme `http`, the bound port, three virtual hosts.
fn virtual_hosts(port: u16) -> Result<VirtualHosts, Box<dyn Error>> {
    // Each virtual host's certificate identities: on a plain-HTTP listener nothing checks
    // them, but a TLS listener with the same table would.
    let vhost = |name: &str, patterns: &[&str]| -> Result<VirtualHost, Box<dyn Error>> {
        let patterns = patterns
            .iter()
            .map(|p| p.parse())
            .collect::<Result<Vec<Pattern>, _>>()?;
        let certificate = Identities::from_patterns(patterns.iter().cloned());
        Ok(VirtualHost::new(name, certificate).patterns_from(patterns))
    };

    let mut table = VirtualHosts::builder(Scheme::Http);
    let www = table.add(vhost("www", &["localhost", "www.localhost", "127.0.0.1"])?);
    table.add(vhost("api", &["api.localhost"])?);
    table.add(
        vhost("admin", &["admin.localhost"])?
            .client_auth(ClientAuth::Required(TrustAnchorsId::new(1))),
    );
    Ok(table.port(port).default_vhost(www).build()?)
}
