//! Loading a [`Config`]'s certificates, keys and CA bundles into per-virtual-host rustls
//! configurations and the SNI index. Everything that can fail at start-up fails here, before
//! any socket is bound.

use std::path::Path;
use std::sync::Arc;

use misdirect_authority::Host;
use misdirect_certmatch::Identities;
use misdirect_coalesce::{TrustAnchorSets, TrustAnchorsId};
use rustls::crypto::CryptoProvider;
use rustls::server::{ServerSessionMemoryCache, WebPkiClientVerifier};
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{CertSource, Config, Material, ProxyRespond, Respond, TlsMin, Vhost};
use crate::error::{Error, ErrorKind};
use crate::proxy::Proxy;

/// The loaded virtual hosts, in configuration order (a `VhostId`'s index is a position
/// here). Picking one by SNI is the listener core's job.
#[derive(Debug)]
pub(crate) struct Site {
    pub(crate) vhosts: Vec<LoadedVhost>,
}

/// One virtual host, ready to serve.
#[derive(Debug)]
pub(crate) struct LoadedVhost {
    pub(crate) config: Vhost,
    /// Its own rustls configuration: certificate, client verifier, versions, ALPN and
    /// session cache (never shared, so no session crosses virtual hosts).
    pub(crate) tls: Arc<ServerConfig>,
    /// What its end-entity certificate covers.
    pub(crate) identities: Identities,
    /// Its end-entity certificate's subject and SHA-256 fingerprint, for reports.
    pub(crate) cert_id: misdirect_certmatch::CertId,
    /// Which trust-anchor set verifies its client certificates: virtual hosts whose CA
    /// bundles hold the same certificates share an id ([`TrustAnchorSets`]).
    pub(crate) anchors: Option<TrustAnchorsId>,
    /// Its end-entity certificate's notAfter, in seconds since the epoch (for the expiry
    /// metric).
    pub(crate) not_after: Option<i64>,
    /// Its forwarding client, when it answers with `respond = { proxy = … }`: made anew with
    /// each load (a reload reads `ca` and the system's roots again), shared by every
    /// connection that serves the virtual host.
    pub(crate) proxy: Option<Arc<Proxy>>,
}

/// Sessions each virtual host's cache keeps for resumption.
const SESSION_CACHE_SIZE: usize = 1024;

impl Site {
    pub(crate) fn load(config: &Config) -> Result<Self, Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        // Identified by their DER certificates: the order of a bundle, duplicates and the
        // formatting of its PEM file do not matter.
        let mut bundles = TrustAnchorSets::new();
        let mut vhosts = Vec::with_capacity(config.vhosts.len());
        for vhost in &config.vhosts {
            let loaded = load_vhost(vhost, &provider, &mut bundles)
                .map_err(|err| err.in_file(&config.source))?;
            vhosts.push(loaded);
        }
        Ok(Self { vhosts })
    }
}

fn load_vhost(
    vhost: &Vhost,
    provider: &Arc<CryptoProvider>,
    bundles: &mut TrustAnchorSets,
) -> Result<LoadedVhost, Error> {
    let name = &vhost.name;
    let cert_error = |message: String| {
        Error::new(
            ErrorKind::Certificate,
            format!("vhost \"{name}\": {message}"),
        )
    };
    let (chain, key) = match &vhost.cert {
        CertSource::Pem { cert, key } => {
            let cert_pem = read(cert, name)?;
            let chain = CertificateDer::pem_slice_iter(&cert_pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|err| {
                    cert_error(format!(
                        "cert {}: not a PEM certificate: {err}",
                        cert.label()
                    ))
                    .with_source(err)
                })?;
            if chain.is_empty() {
                return Err(cert_error(format!(
                    "cert {}: no certificate in the file",
                    cert.label()
                )));
            }
            let key_pem = read(key, name)?;
            if is_encrypted_key(&key_pem) {
                return Err(cert_error(format!(
                    "key {}: encrypted private keys are not supported; write a decrypted copy \
                     (openssl pkey -in key.pem -out key-plain.pem), keep it readable only by \
                     the server's user, and name that file in key",
                    key.label()
                )));
            }
            let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|err| {
                cert_error(format!("key {}: not a PEM private key: {err}", key.label()))
                    .with_source(err)
            })?;
            (chain, key_der)
        }
        CertSource::SelfSigned => {
            let names: Vec<String> = vhost.patterns.iter().map(|p| p.to_string()).collect();
            let generated = rcgen::generate_simple_self_signed(names)
                .map_err(|err| cert_error(format!("self_signed: {err}")).with_source(err))?;
            let key = PrivateKeyDer::Pkcs8(generated.signing_key.serialize_der().into());
            (vec![generated.cert.der().clone()], key)
        }
    };
    let identities = Identities::from_der(&chain[0]).map_err(|err| {
        cert_error(format!(
            "cert {}: the certificate does not parse: {err}",
            vhost.cert.label()
        ))
        .with_source(err)
    })?;
    let not_after = crate::metrics::certificate_not_after(&chain[0]);
    let cert_id = misdirect_certmatch::Certificate::from_der(&chain[0])
        .map(|c| c.id().clone())
        .map_err(|err| {
            cert_error(format!("cert {}: {err}", vhost.cert.label())).with_source(err)
        })?;
    for pattern in &vhost.patterns {
        if !identities.covers(&Host::Name(pattern.example_host())) {
            tracing::warn!(
                vhost = %name,
                name = %pattern,
                "the virtual host's certificate does not cover one of its names; \
                 requests for it will get 421"
            );
        }
    }

    let versions: &[&SupportedProtocolVersion] = match vhost.min_tls {
        TlsMin::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsMin::Tls13 => &[&rustls::version::TLS13],
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|err| cert_error(format!("TLS versions: {err}")).with_source(err))?;
    let mut anchors = None;
    let builder = match &vhost.client_auth {
        None => builder.with_no_client_auth(),
        Some(auth) => {
            let pem = read(&auth.ca, name)?;
            let certs = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|err| {
                    cert_error(format!(
                        "client_auth.ca {}: not a PEM certificate: {err}",
                        auth.ca.label()
                    ))
                    .with_source(err)
                })?;
            let mut roots = RootCertStore::empty();
            for cert in &certs {
                roots.add(cert.clone()).map_err(|err| {
                    cert_error(format!(
                        "client_auth.ca {}: not a usable trust anchor: {err}",
                        auth.ca.label()
                    ))
                    .with_source(err)
                })?;
            }
            if roots.is_empty() {
                return Err(cert_error(format!(
                    "client_auth.ca {}: no certificate in the file",
                    auth.ca.label()
                )));
            }
            anchors = Some(bundles.intern(certs.iter().map(|c| c.as_ref())));
            let mut verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            if !auth.required {
                verifier = verifier.allow_unauthenticated();
            }
            let verifier = verifier.build().map_err(|err| {
                cert_error(format!("client_auth.ca {}: {err}", auth.ca.label())).with_source(err)
            })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut tls = builder
        .with_single_cert(chain, key)
        .map_err(|err| match err {
            rustls::Error::InconsistentKeys(_) => cert_error(format!(
                "key {} does not match the certificate {}",
                vhost.key_label(),
                vhost.cert.label()
            ))
            .with_source(err),
            other => cert_error(format!(
                "key {}: cannot be used with the certificate: {other}",
                vhost.key_label()
            ))
            .with_source(other),
        })?;
    tls.alpn_protocols = vhost.alpn.iter().map(|a| a.wire().to_vec()).collect();
    tls.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE_SIZE);
    tls.ignore_client_order = false;
    let proxy = match &vhost.respond {
        Respond::Proxy(settings) => Some(Arc::new(load_proxy(settings, name)?)),
        Respond::Body(_) | Respond::Dir(_) => None,
    };
    Ok(LoadedVhost {
        config: vhost.clone(),
        tls: Arc::new(tls),
        identities,
        cert_id,
        anchors,
        not_after,
        proxy,
    })
}

/// The forwarding client of `respond = { proxy = … }`: reads `ca`, or the system's roots
/// for an `https` upstream without one.
fn load_proxy(settings: &ProxyRespond, vhost: &str) -> Result<Proxy, Error> {
    let mut config = settings.config.clone();
    if let Some(ca) = &settings.ca {
        let cert_error = |message: String| {
            Error::new(
                ErrorKind::Certificate,
                format!("vhost \"{vhost}\": respond.ca {}: {message}", ca.label()),
            )
        };
        let pem = read(ca, vhost)?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| cert_error(format!("not a PEM certificate: {err}")).with_source(err))?;
        if certs.is_empty() {
            return Err(cert_error("no certificate in the file".into()));
        }
        config = config.ca(certs);
    }
    Proxy::new(config).map_err(|err| err.context(&format!("vhost \"{vhost}\": respond.")))
}

/// Whether a PEM key file holds an encrypted key: PKCS#8 `ENCRYPTED PRIVATE KEY`, or a
/// legacy OpenSSL key with a `Proc-Type: 4,ENCRYPTED` header. rustls reads neither.
fn is_encrypted_key(pem: &[u8]) -> bool {
    let contains = |needle: &[u8]| pem.windows(needle.len()).any(|w| w == needle);
    contains(b"-----BEGIN ENCRYPTED PRIVATE KEY-----") || contains(b"Proc-Type: 4,ENCRYPTED")
}

fn read(material: &Material, vhost: &str) -> Result<Vec<u8>, Error> {
    match material {
        Material::File(path) => std::fs::read(path).map_err(|err| {
            Error::new(
                ErrorKind::Io,
                format!("vhost \"{vhost}\": cannot read {}: {err}", display(path)),
            )
            .with_source(err)
        }),
        Material::Inline { pem, .. } => Ok(pem.clone()),
    }
}

fn display(path: &Path) -> String {
    format!("\"{}\"", path.display())
}

impl Material {
    pub(crate) fn label(&self) -> String {
        match self {
            Self::File(path) => display(path),
            Self::Inline { label, .. } => label.clone(),
        }
    }
}

impl CertSource {
    fn label(&self) -> String {
        match self {
            Self::Pem { cert, .. } => cert.label(),
            Self::SelfSigned => "(self-signed)".to_string(),
        }
    }
}

impl Vhost {
    fn key_label(&self) -> String {
        match &self.cert {
            CertSource::Pem { key, .. } => key.label(),
            CertSource::SelfSigned => "(self-signed)".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, DnType, IsCa, KeyPair};

    use super::*;

    /// A self-signed CA certificate in PEM.
    fn ca(name: &str) -> String {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).expect("certificate").pem()
    }

    /// The id of the set of CA certificates in a PEM bundle.
    fn id(sets: &mut TrustAnchorSets, pem: &str) -> TrustAnchorsId {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<_, _>>()
            .expect("PEM");
        sets.intern(certs.iter().map(|c| c.as_ref()))
    }

    #[test]
    fn anchor_sets_are_sets_of_certificates_not_files() {
        let (one, two, other) = (ca("one"), ca("two"), ca("other"));
        let mut sets = TrustAnchorSets::new();
        let base = id(&mut sets, &one);
        // (bundle, same set as `one` alone)
        let cases: &[(String, bool)] = &[
            (one.clone(), true),
            (format!("{one}\n"), true),
            (
                format!("# the client CA\n\n{}", one.replace('\n', "\r\n")),
                true,
            ),
            (format!("{one}{one}"), true),
            (other.clone(), false),
            (format!("{one}{two}"), false),
        ];
        for (bundle, same) in cases {
            assert_eq!(id(&mut sets, bundle) == base, *same, "{bundle}");
        }
        // Two CAs: the order of the bundle does not matter.
        assert_eq!(
            id(&mut sets, &format!("{one}{two}")),
            id(&mut sets, &format!("{two}\n{one}"))
        );
        assert_ne!(
            id(&mut sets, &format!("{one}{two}")),
            id(&mut sets, &format!("{one}{other}"))
        );
    }

    /// A proxy is built when the site loads, with its `ca` read then; what goes wrong
    /// names the virtual host and the file.
    #[test]
    fn a_proxy_is_built_with_its_ca() {
        let dir = std::env::temp_dir().join(format!("misdirect-site-proxy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        std::fs::write(dir.join("ca.pem"), ca("upstream CA")).expect("write");
        std::fs::write(dir.join("text.pem"), "not a certificate\n").expect("write");
        std::fs::write(
            dir.join("broken.pem"),
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        )
        .expect("write");
        let load = |respond: &str| {
            let text = format!(
                "[[vhost]]\nname = \"a.test\"\nself_signed = true\nrespond = {{ {respond} }}\n"
            );
            let config = Config::from_toml(&text, &dir.join("misdirect.toml"), &dir)?;
            Site::load(&config)
        };
        // (respond, None when it loads, or the error's kind and the start of its message)
        let cases: &[(&str, Option<(ErrorKind, &str)>)] = &[
            ("proxy = \"http://127.0.0.1:3000\"", None),
            ("proxy = \"https://127.0.0.1:3000\", ca = \"ca.pem\"", None),
            (
                "proxy = \"https://127.0.0.1:3000\", ca = \"missing.pem\"",
                Some((ErrorKind::Io, "vhost \"a.test\": cannot read")),
            ),
            (
                "proxy = \"https://127.0.0.1:3000\", ca = \"text.pem\"",
                Some((ErrorKind::Certificate, "vhost \"a.test\": respond.ca")),
            ),
            (
                "proxy = \"https://127.0.0.1:3000\", ca = \"broken.pem\"",
                Some((ErrorKind::Certificate, "vhost \"a.test\": respond.ca")),
            ),
        ];
        for (respond, expected) in cases {
            match (load(respond), expected) {
                (Ok(site), None) => assert!(site.vhosts[0].proxy.is_some(), "{respond}"),
                (Err(err), Some((kind, start))) => {
                    assert_eq!(err.kind(), *kind, "{respond}: {err}");
                    assert!(err.message().starts_with(start), "{respond}: {err}");
                }
                (other, _) => panic!("{respond}: {other:?}"),
            }
        }
        let site = load("body = \"text\"").expect("a fixed body");
        assert!(site.vhosts[0].proxy.is_none());
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn encrypted_keys_are_recognised() {
        const CASES: &[(&str, bool)] = &[
            (
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n",
                true,
            ),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nMIIB\n-----END RSA PRIVATE KEY-----\n",
                true,
            ),
            (
                "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n",
                false,
            ),
            ("", false),
        ];
        for (pem, encrypted) in CASES {
            assert_eq!(is_encrypted_key(pem.as_bytes()), *encrypted, "{pem}");
        }
    }
}
