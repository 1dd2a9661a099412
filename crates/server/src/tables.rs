//! Configuration to core: each listener's `misdirect_coalesce::Listener`, built from the
//! loaded virtual hosts. The core makes every choice (SNI, client-certificate facts, the
//! request decision); the server only feeds it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use misdirect_authority::Scheme;
use misdirect_certmatch::Pattern;
use misdirect_coalesce::{
    Alpn, ClientAuth, ClientCert, ConfigError, ConnectionContext, Policy, TlsVersion, UnknownHost,
    VhostId, VirtualHost, VirtualHosts,
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
    /// Whether HTTP/2 connections get an ORIGIN frame (`origin_frame`).
    origin_frames: bool,
    /// Each encoded ORIGIN frame, by what it depends on: computing one decides every
    /// exact name of the table, so it is done once per kind of connection, not per
    /// connection.
    origin_cache: Mutex<HashMap<OriginKey, OriginEntry>>,
}

/// What a connection's origin set depends on: the presented virtual host (whose
/// certificate the connection has), TLS version, ALPN and client certificate. The SNI
/// does not change it: the server always records the presented virtual host.
type OriginKey = (VhostId, Option<TlsVersion>, Option<Alpn>, ClientCert);

/// An encoded ORIGIN frame, how many origins it lists, and how many did not fit.
#[derive(Clone, Debug)]
pub(crate) struct OriginEntry {
    pub(crate) frame: Bytes,
    pub(crate) origins: usize,
    pub(crate) left_out: usize,
}

impl Table {
    /// Builds the table for a listener whose clients name `ports` in their authorities.
    pub(crate) fn build(
        site: &Site,
        listener: &Listener,
        ports: &[u16],
        log: &config::Log,
    ) -> Result<Self, Error> {
        let scheme = match listener.tls {
            true => Scheme::Https,
            false => Scheme::Http,
        };
        let mut builder = VirtualHosts::builder(scheme);
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
            listener: misdirect_coalesce::Listener::new(vhosts)
                .render_options(render)
                .refusal_log_mode(log.refusals),
            // Clients ignore ORIGIN frames on cleartext connections (RFC 8336 §2.2).
            origin_frames: listener.origin_frame && listener.tls,
            origin_cache: Mutex::new(HashMap::new()),
        })
    }

    /// The virtual hosts.
    pub(crate) fn vhosts(&self) -> &VirtualHosts {
        self.listener.vhosts()
    }

    /// The ORIGIN frame (RFC 8336) for an HTTP/2 connection: exactly the origins it serves
    /// (`Listener::origin_frame`); `None` when the listener sends none.
    pub(crate) fn origin_frame(&self, conn: &ConnectionContext) -> Option<OriginEntry> {
        if !self.origin_frames {
            return None;
        }
        let presented = conn.presented_vhost()?;
        let key = (
            presented,
            conn.negotiated_tls_version(),
            conn.negotiated_alpn(),
            conn.client_cert_state(),
        );
        let mut cache = self
            .origin_cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = cache.entry(key).or_insert_with(|| {
            let (frame, left_out) = self.listener.origin_frame(conn);
            OriginEntry {
                origins: frame.len(),
                frame: frame.to_frame(),
                left_out,
            }
        });
        Some(entry.clone())
    }
}

/// What to do about [`default_requires_client_cert`].
pub(crate) const DEFAULT_CLIENT_CERT_ADVICE: &str =
    "set default_vhost to a virtual host that does not require client certificates";

/// Why it is a problem when a listener's default virtual host requires client certificates,
/// or `None` when it does not: clients that send no SNI, or one no virtual host serves, get
/// the default's handshake, which fails without a client certificate.
pub(crate) fn default_requires_client_cert(site: &Site, listener: &Listener) -> Option<String> {
    // A plain listener makes no handshake.
    if !listener.tls {
        return None;
    }
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
