use std::sync::Arc;

use misdirect_authority::{Host, HostName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::error::{Error, ErrorKind};
use crate::identities::Identities;
use crate::index::{HostIndex, HostIndexBuilder, MatchKind};
use crate::pattern::Pattern;

/// A rustls certificate resolver backed by a [`HostIndex`]: exact SNI first, else the
/// wildcard for its parent (RFC 9525 §6.3 rules), else a configurable default certificate
/// for clients that send no SNI (RFC 6066 §3 makes it optional; IP-literal connections
/// never carry one) or an unknown one.
///
/// rustls's own `ResolvesServerCertUsingSni` is an exact-name map with no wildcard and no
/// default. [`choose`](SniResolver::choose) is the pure decision behind
/// [`resolve`](ResolvesServerCert::resolve): after the handshake, call it with the
/// connection's `server_name()` to record which entry served the connection.
///
/// It chooses by *certificate* names, for a server that has certificates and no virtual
/// hosts. A server with virtual hosts chooses by virtual-host names, and needs each virtual
/// host's own client-certificate verifier, versions and ALPN: use
/// `misdirect_coalesce::RustlsListener` (feature `rustls`), which makes that choice with
/// the same `Listener::select` the 421 decision trusts.
///
/// ```
/// use std::sync::Arc;
/// use misdirect_certmatch::{Chosen, SniResolver};
///
/// # fn key(names: &[&str]) -> Arc<rustls::sign::CertifiedKey> {
/// #     let c = rcgen::generate_simple_self_signed(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
/// #     let der = rustls::pki_types::PrivateKeyDer::Pkcs8(c.signing_key.serialize_der().into());
/// #     let signer = rustls::crypto::ring::sign::any_supported_type(&der).unwrap();
/// #     Arc::new(rustls::sign::CertifiedKey::new(vec![c.cert.der().clone()], signer))
/// # }
/// let mut builder = SniResolver::builder();
/// let apex = builder.add(key(&["example.com"]))?;
/// let wild = builder.add(key(&["*.example.com"]))?;
/// builder.default_entry(apex);
/// let resolver = builder.build()?;
///
/// let choice = resolver.choose(Some("WWW.example.com")).unwrap();
/// assert_eq!((choice.entry(), choice.chosen()), (wild, Chosen::Wildcard));
/// assert_eq!(resolver.choose(None).unwrap().chosen(), Chosen::NoSni);
/// assert_eq!(resolver.choose(Some("other.test")).unwrap().chosen(), Chosen::UnknownSni);
/// # Ok::<(), misdirect_certmatch::Error>(())
/// ```
#[derive(Debug)]
pub struct SniResolver {
    index: HostIndex<usize>,
    keys: Vec<Arc<CertifiedKey>>,
    default: Option<usize>,
    default_for_unknown: bool,
}

/// Builds a [`SniResolver`].
#[derive(Debug, Default)]
pub struct SniResolverBuilder {
    entries: Vec<(Arc<CertifiedKey>, Vec<Pattern>)>,
    default: Option<usize>,
    default_for_unknown: bool,
}

/// Why the resolver picked an entry.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Chosen {
    /// The SNI equals one of the entry's names.
    Exact,
    /// The entry has the wildcard for the SNI's parent.
    Wildcard,
    /// The client sent no SNI; the default entry.
    NoSni,
    /// No entry matches the SNI (or it is not a valid host name); the default entry.
    UnknownSni,
}

/// The entry a [`SniResolver`] picked, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Choice {
    entry: usize,
    chosen: Chosen,
}

impl Choice {
    /// The entry, as returned by [`SniResolverBuilder::add`].
    pub fn entry(&self) -> usize {
        self.entry
    }

    /// Why it was picked.
    pub fn chosen(&self) -> Chosen {
        self.chosen
    }
}

impl SniResolver {
    /// A builder with no entries, no default certificate, and unknown SNI refused.
    ///
    /// ```
    /// let resolver = misdirect_certmatch::SniResolver::builder().build()?;
    /// assert!(resolver.choose(None).is_none());
    /// # Ok::<(), misdirect_certmatch::Error>(())
    /// ```
    pub fn builder() -> SniResolverBuilder {
        SniResolverBuilder {
            default_for_unknown: true,
            ..SniResolverBuilder::default()
        }
    }

    /// Which entry serves a client that sent `sni` (`None`: no SNI).
    pub fn choose(&self, sni: Option<&str>) -> Option<Choice> {
        let Some(sni) = sni else {
            return self.default.map(|entry| Choice {
                entry,
                chosen: Chosen::NoSni,
            });
        };
        let found = HostName::from_sni(sni.as_bytes())
            .ok()
            .and_then(|name| self.index.lookup_match(&Host::Name(name)));
        match found {
            Some(m) => Some(Choice {
                entry: *m.value(),
                chosen: if m.kind() == MatchKind::Wildcard {
                    Chosen::Wildcard
                } else {
                    Chosen::Exact
                },
            }),
            None if self.default_for_unknown => self.default.map(|entry| Choice {
                entry,
                chosen: Chosen::UnknownSni,
            }),
            None => None,
        }
    }

    /// The certified key of an entry.
    pub fn key(&self, entry: usize) -> Option<&Arc<CertifiedKey>> {
        self.keys.get(entry)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let choice = self.choose(client_hello.server_name())?;
        self.keys.get(choice.entry).cloned()
    }
}

impl SniResolverBuilder {
    /// Adds a certified key served for the names its end-entity certificate covers
    /// (subjectAltName only). Returns the entry number.
    pub fn add(&mut self, key: Arc<CertifiedKey>) -> Result<usize, Error> {
        let end_entity = key
            .cert
            .first()
            .ok_or_else(|| Error::with_message(ErrorKind::InvalidCertificate, "empty chain"))?;
        let identities = Identities::from_der(end_entity)?;
        let names = identities.patterns().collect();
        Ok(self.push(key, names))
    }

    /// Adds a certified key served for the given names. Returns the entry number.
    pub fn add_with_names(
        &mut self,
        key: Arc<CertifiedKey>,
        names: impl IntoIterator<Item = Pattern>,
    ) -> usize {
        self.push(key, names.into_iter().collect())
    }

    /// The entry for clients without SNI (and, unless turned off, with an unknown SNI).
    pub fn default_entry(&mut self, entry: usize) -> &mut Self {
        self.default = Some(entry);
        self
    }

    /// Whether a client whose SNI matches no entry gets the default entry (`true`, the
    /// default) or no certificate, which fails the handshake.
    pub fn default_for_unknown_sni(&mut self, yes: bool) -> &mut Self {
        self.default_for_unknown = yes;
        self
    }

    fn push(&mut self, key: Arc<CertifiedKey>, mut names: Vec<Pattern>) -> usize {
        names.sort();
        names.dedup();
        self.entries.push((key, names));
        self.entries.len() - 1
    }

    /// Builds the resolver. Two entries with the same name are an error naming the name
    /// and both entries; a default entry that was never added is an error too.
    pub fn build(self) -> Result<SniResolver, Error> {
        if let Some(default) = self.default.filter(|&d| d >= self.entries.len()) {
            return Err(Error::with_message(
                ErrorKind::UnknownEntry,
                format_args!("default entry {default} was never added"),
            ));
        }
        let mut builder = HostIndexBuilder::new();
        for (entry, (_, names)) in self.entries.iter().enumerate() {
            for name in names {
                builder.push(name, entry)?;
            }
        }
        // Positions in the index are per name; report duplicates per entry.
        let owners: Vec<usize> = self
            .entries
            .iter()
            .enumerate()
            .flat_map(|(entry, (_, names))| core::iter::repeat_n(entry, names.len()))
            .collect();
        let index = builder
            .build()
            .map_err(|err| match err.duplicate_entries() {
                Some(dup) => Error::duplicate(
                    dup.pattern().to_string(),
                    owners[dup.first()],
                    owners[dup.second()],
                ),
                None => err,
            })?;
        Ok(SniResolver {
            index,
            keys: self.entries.into_iter().map(|(key, _)| key).collect(),
            default: self.default,
            default_for_unknown: self.default_for_unknown,
        })
    }
}
