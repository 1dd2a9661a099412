//! Configuration to core: each listener's `misdirect_coalesce::Listener`, built from the
//! loaded virtual hosts. The core makes every choice (SNI, client-certificate facts, the
//! request decision); the server only feeds it.

use std::sync::Arc;

use misdirect_authority::Scheme;
use misdirect_certmatch::Pattern;
use misdirect_coalesce::{
    Alpn, ClientAuth, ConfigError, Policy, TlsVersion, UnknownHost, VirtualHost, VirtualHosts,
};
use misdirect_response::RenderOptions;

use crate::config::{self, Listener, PolicyLevel, TlsMin, UnknownHostMode};
use crate::error::{Error, ErrorKind};
use crate::site::Site;

/// A listener's core. Virtual hosts are added in the site's order, so a `VhostId`'s
/// index is the position of its virtual host in `Site::vhosts` (checked when built).
#[derive(Debug)]
pub(crate) struct Table {
    pub(crate) listener: misdirect_coalesce::Listener,
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
                entry = entry.client_auth(match auth.required {
                    true => ClientAuth::Required(anchors),
                    false => ClientAuth::Optional(anchors),
                });
            }
            if let Some(level) = vhost.policy {
                entry = entry.policy(policy(level));
            }
            let id = builder.add(entry);
            // The invariant the rest of the server relies on.
            assert_eq!(
                id.index(),
                ids.len(),
                "virtual hosts are added in site order"
            );
            ids.push(id);
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
            let (kind, message) = match &err {
                // Positions are site positions: the [[vhost]] entries in file order.
                ConfigError::DuplicateName {
                    pattern,
                    first,
                    first_position,
                    second,
                    second_position,
                    ..
                } => (ErrorKind::Invalid, match first_position == second_position {
                    true => format!(
                        "vhost \"{first}\" ([[vhost]] number {}): \"{pattern}\" is listed twice",
                        first_position + 1
                    ),
                    false => format!(
                        "name \"{pattern}\" is in two virtual hosts: \"{first}\" ([[vhost]] \
                         number {}) and \"{second}\" ([[vhost]] number {})",
                        first_position + 1,
                        second_position + 1
                    ),
                }),
                _ => (
                    ErrorKind::Policy,
                    format!("listener {}: {err}", listener.addr),
                ),
            };
            Error::new(kind, message).with_source(err)
        })?;
        let render = RenderOptions::new().name_reason(listener.reason_in_body);
        Ok(Self {
            listener: misdirect_coalesce::Listener::new(vhosts).render_options(render),
        })
    }

    /// The virtual hosts.
    pub(crate) fn vhosts(&self) -> &VirtualHosts {
        self.listener.vhosts()
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
