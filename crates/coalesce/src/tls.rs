//! rustls glue (feature `rustls`): each connection's `ServerConfig` chosen from the
//! ClientHello by the [`Listener`], per-virtual-host configurations built the way
//! `misdirect serve` builds them, and the [`ConnectionContext`] read from a finished
//! `ServerConnection`.
//!
//! With this a hyper or axum server gets per-virtual-host client authentication: the
//! protected host's own connections require a certificate, every other connection does
//! not ask, and the core refuses a coalesced request for the protected host over a
//! connection that never presented one (421 `client-cert-required`).

use std::fmt;
use std::sync::Arc;

use misdirect_authority::HostName;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{
    ClientHello, ServerConnection, ServerSessionMemoryCache, WebPkiClientVerifier,
};
use rustls::{RootCertStore, ServerConfig};

use crate::decide::ConnectionContext;
use crate::listener::{Handshake, Listener};
use crate::vhost::{Alpn, ClientAuth, TlsVersion, VhostId, VirtualHost};

/// Sessions each virtual host's cache keeps for resumption.
const SESSION_CACHE_SIZE: usize = 1024;

/// A [`Listener`] with one rustls `ServerConfig` per virtual host.
///
/// Hand [`config_for`](Self::config_for) to tokio-rustls's `LazyConfigAcceptor` (or
/// rustls's `Acceptor`), then make the connection's context with
/// [`context`](Self::context). `examples/axum_tls.rs` shows the whole accept loop.
#[derive(Debug)]
pub struct RustlsListener {
    listener: Arc<Listener>,
    configs: Vec<Arc<ServerConfig>>,
}

/// Why a [`RustlsListener`] or a virtual host's `ServerConfig` could not be built.
#[non_exhaustive]
#[derive(Debug)]
pub enum TlsSetupError {
    /// A virtual host has no `ServerConfig`.
    MissingConfig(VhostId),
    /// A virtual host that asks for client certificates was given no CA certificates.
    MissingClientRoots(VhostId),
    /// rustls refused the certificate, key, versions or verifier.
    Rustls(rustls::Error),
    /// rustls refused to build the client-certificate verifier.
    Verifier(rustls::server::VerifierBuilderError),
}

impl fmt::Display for TlsSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingConfig(id) => write!(f, "virtual host {id} has no TLS configuration"),
            Self::MissingClientRoots(id) => write!(
                f,
                "virtual host {id} asks for client certificates but has no CA certificates"
            ),
            Self::Rustls(err) => write!(f, "rustls: {err}"),
            Self::Verifier(err) => write!(f, "client-certificate verifier: {err}"),
        }
    }
}

impl std::error::Error for TlsSetupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Rustls(err) => Some(err),
            Self::Verifier(err) => Some(err),
            _ => None,
        }
    }
}

impl RustlsListener {
    /// Pairs the listener with a `ServerConfig` per virtual host (`configs` in the order of
    /// the table's ids: one for each virtual host).
    pub fn new(
        listener: Arc<Listener>,
        configs: impl IntoIterator<Item = Arc<ServerConfig>>,
    ) -> Result<Self, TlsSetupError> {
        let configs: Vec<_> = configs.into_iter().collect();
        if let Some((id, _)) = listener.vhosts().iter().nth(configs.len()) {
            return Err(TlsSetupError::MissingConfig(id));
        }
        Ok(Self { listener, configs })
    }

    /// The listener core.
    pub fn listener(&self) -> &Arc<Listener> {
        &self.listener
    }

    /// The virtual host that answers this ClientHello ([`Listener::select`]) and its
    /// `ServerConfig`.
    pub fn config_for(&self, hello: &ClientHello<'_>) -> (VhostId, Arc<ServerConfig>) {
        let sni = hello
            .server_name()
            .and_then(|name| HostName::from_sni(name.as_bytes()).ok());
        // Invariant: `new` checked that every virtual host has a configuration, and a
        // table with virtual hosts always selects one.
        let vhost = self
            .listener
            .select(sni.as_ref())
            .expect("a listener with virtual hosts selects one");
        (vhost, self.configs[vhost.index()].clone())
    }

    /// The context of a connection whose handshake finished with `presented`'s
    /// configuration (the id [`config_for`](Self::config_for) returned).
    pub fn context(&self, presented: VhostId, connection: &ServerConnection) -> ConnectionContext {
        ConnectionContext::from_rustls(&self.listener, presented, connection)
    }
}

impl ConnectionContext {
    /// The context of a rustls connection whose handshake finished with the configuration
    /// of `presented`: its SNI, TLS version, ALPN and — through [`Listener::on_handshake`] —
    /// its client certificate. rustls finishes a handshake with a client certificate only
    /// when the configuration's verifier accepted it, so a certificate counts for the
    /// presented virtual host's trust anchors; keep session caches per virtual host (as
    /// [`vhost_server_config`] does) so that a resumed session carries the same fact.
    pub fn from_rustls(
        listener: &Listener,
        presented: VhostId,
        connection: &ServerConnection,
    ) -> Self {
        let sni = connection
            .server_name()
            .and_then(|name| HostName::from_sni(name.as_bytes()).ok());
        let verified = connection
            .peer_certificates()
            .is_some_and(|chain| !chain.is_empty());
        let mut handshake = Handshake::new(presented)
            .sni(sni)
            .client_certificate_verified(verified);
        match connection.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => {
                handshake = handshake.tls_version(TlsVersion::Tls13);
            }
            Some(rustls::ProtocolVersion::TLSv1_2) => {
                handshake = handshake.tls_version(TlsVersion::Tls12);
            }
            _ => {}
        }
        if let Some(id) = connection.alpn_protocol() {
            handshake = handshake.alpn(Alpn::from_id(id));
        }
        listener.on_handshake(handshake)
    }
}

/// A virtual host's own rustls `ServerConfig`, as `misdirect serve` makes it: its
/// certificate chain and key; its client-certificate requirement with `client_roots`
/// (required or optional, as [`VirtualHost::client_auth`] says); its minimum TLS version;
/// its ALPN list (`h2` and `http/1.1` when unrestricted); and a session cache of its own,
/// so no session resumes across virtual hosts.
///
/// `id` only names the virtual host in errors.
pub fn vhost_server_config(
    provider: Arc<CryptoProvider>,
    id: VhostId,
    vhost: &VirtualHost,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_roots: Option<Arc<RootCertStore>>,
) -> Result<ServerConfig, TlsSetupError> {
    let versions: &[&rustls::SupportedProtocolVersion] = match vhost.min_tls_version() {
        Some(TlsVersion::Tls13) => &[&rustls::version::TLS13],
        _ => &[&rustls::version::TLS13, &rustls::version::TLS12],
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(TlsSetupError::Rustls)?;
    let builder = match (vhost.client_auth_required(), client_roots) {
        (ClientAuth::None, _) => builder.with_no_client_auth(),
        (ClientAuth::Required(_) | ClientAuth::Optional(_), None) => {
            return Err(TlsSetupError::MissingClientRoots(id));
        }
        (auth, Some(roots)) => {
            let mut verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
            if matches!(auth, ClientAuth::Optional(_)) {
                verifier = verifier.allow_unauthenticated();
            }
            builder.with_client_cert_verifier(verifier.build().map_err(TlsSetupError::Verifier)?)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(TlsSetupError::Rustls)?;
    config.alpn_protocols = match vhost.allowed_alpn() {
        Some(allowed) => allowed
            .iter()
            .filter_map(|alpn| match alpn {
                Alpn::H2 => Some(b"h2".to_vec()),
                Alpn::Http11 => Some(b"http/1.1".to_vec()),
                _ => None,
            })
            .collect(),
        None => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
    };
    config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE_SIZE);
    Ok(config)
}
