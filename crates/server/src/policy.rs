//! The only place the server talks to `misdirect-coalesce`: one `VirtualHosts` table per
//! listener, built from the loaded virtual hosts, and the `ConnectionContext` recorded at
//! each handshake. The server decides nothing itself.

use std::sync::Arc;

use misdirect_authority::Scheme;
use misdirect_certmatch::Pattern;
use misdirect_coalesce::{
    Alpn, ClientAuth, ClientCert, ConnectionContext, Policy, TlsVersion, TrustAnchorsId,
    UnknownHost, VhostId, VirtualHost, VirtualHosts,
};

use crate::config::{self, Listener, PolicyLevel, TlsMin, UnknownHostMode};
use crate::error::{Error, ErrorKind};
use crate::site::Site;

/// A listener's table and the id of each loaded virtual host in it.
#[derive(Debug)]
pub(crate) struct Table {
    pub(crate) vhosts: VirtualHosts,
    /// `ids[i]` is the id of `site.vhosts[i]`.
    pub(crate) ids: Vec<VhostId>,
}

impl Table {
    /// Builds the table for a listener whose clients name `ports` in their authorities.
    pub(crate) fn build(site: &Site, listener: &Listener, ports: &[u16]) -> Result<Self, Error> {
        let mut builder = VirtualHosts::builder(Scheme::Https);
        let mut ids = Vec::with_capacity(site.vhosts.len());
        for loaded in &site.vhosts {
            let vhost = &loaded.config;
            let mut entry =
                VirtualHost::new(vhost.name.clone(), Arc::new(loaded.identities.clone()))
                    .patterns_from(vhost.patterns.iter().cloned().map(Pattern::Dns))
                    .min_tls(tls_version(vhost.min_tls))
                    .alpn(vhost.alpn.iter().map(|a| alpn(*a)));
            if let (Some(auth), Some(anchors)) = (&vhost.client_auth, loaded.anchors) {
                let anchors = TrustAnchorsId::new(anchors);
                entry = entry.client_auth(match auth.required {
                    true => ClientAuth::Required(anchors),
                    false => ClientAuth::Optional(anchors),
                });
            }
            if let Some(level) = vhost.policy {
                entry = entry.policy(policy(level));
            }
            ids.push(builder.add(entry));
        }
        if let Some(message) = default_requires_client_cert(site, listener) {
            tracing::warn!(
                listener = %listener.addr,
                vhost = %site.vhosts[listener.default_vhost].config.name,
                "{message}; fix: {DEFAULT_CLIENT_CERT_ADVICE}"
            );
        }
        let default = ids[listener.default_vhost];
        builder
            .policy(policy(listener.policy))
            .warn_only(listener.warn_only)
            .default_vhost(default)
            .unknown_host(match listener.unknown_host {
                UnknownHostMode::Misdirected => UnknownHost::Misdirected,
                UnknownHostMode::NotFound => UnknownHost::NotFound,
                UnknownHostMode::Default => UnknownHost::Default(default),
            })
            .ports(ports.iter().copied());
        let vhosts = builder.build().map_err(|err| {
            Error::new(
                ErrorKind::Policy,
                format!("listener {}: {err}", listener.addr),
            )
        })?;
        Ok(Self { vhosts, ids })
    }

    /// The name of a virtual host, for logs.
    pub(crate) fn name(&self, id: VhostId) -> &str {
        self.vhosts.get(id).map_or("?", VirtualHost::name)
    }
}

/// What to do about [`default_requires_client_cert`].
pub(crate) const DEFAULT_CLIENT_CERT_ADVICE: &str =
    "set default_vhost to a virtual host that does not require client certificates";

/// Why it is a problem when a listener's default virtual host requires client certificates,
/// or `None` when it does not: clients that send no SNI, or one no virtual host serves, get
/// the default's handshake, which fails without a client certificate.
pub(crate) fn default_requires_client_cert(site: &Site, listener: &Listener) -> Option<String> {
    let vhost = &site.vhosts.get(listener.default_vhost)?.config;
    vhost.client_auth.as_ref().filter(|auth| auth.required)?;
    Some(format!(
        "listener {}: the default virtual host \"{}\" (default_vhost, or the first [[vhost]] \
         when it is not set) requires a client certificate: every client that sends no SNI, \
         or an SNI no virtual host serves, gets its handshake and fails it without one",
        listener.addr, vhost.name
    ))
}

/// What a handshake established, as the policy wants it.
pub(crate) struct Handshake<'a> {
    pub(crate) sni: Option<misdirect_authority::HostName>,
    pub(crate) presented: VhostId,
    pub(crate) version: Option<rustls::ProtocolVersion>,
    pub(crate) alpn: Option<&'a [u8]>,
    /// The trust anchors that verified the client certificate, if one was presented.
    pub(crate) client_cert: Option<u32>,
}

/// The connection's context for `decide`.
pub(crate) fn context(handshake: Handshake<'_>) -> ConnectionContext {
    let mut context = ConnectionContext::new().presented(handshake.presented);
    if let Some(sni) = handshake.sni {
        context = context.sni(sni);
    }
    match handshake.version {
        Some(rustls::ProtocolVersion::TLSv1_3) => context = context.tls_version(TlsVersion::Tls13),
        Some(rustls::ProtocolVersion::TLSv1_2) => context = context.tls_version(TlsVersion::Tls12),
        _ => {}
    }
    if let Some(id) = handshake.alpn {
        context = context.alpn(Alpn::from_id(id));
    }
    if let Some(anchors) = handshake.client_cert {
        context = context.client_cert(ClientCert::Verified(TrustAnchorsId::new(anchors)));
    }
    context
}

fn policy(level: PolicyLevel) -> Policy {
    match level {
        PolicyLevel::Strict => Policy::Strict,
        PolicyLevel::Secure => Policy::Secure,
        PolicyLevel::CertOnly => Policy::CertOnly,
    }
}

fn tls_version(min: TlsMin) -> TlsVersion {
    match min {
        TlsMin::Tls12 => TlsVersion::Tls12,
        TlsMin::Tls13 => TlsVersion::Tls13,
    }
}

fn alpn(alpn: config::Alpn) -> Alpn {
    match alpn {
        config::Alpn::H2 => Alpn::H2,
        config::Alpn::Http11 => Alpn::Http11,
    }
}
