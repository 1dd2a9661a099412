use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;

/// The future a [`Resolve`] returns: the addresses of a host, boxed so that resolvers can
/// be chosen at run time.
///
/// ```
/// use misdirect_client::Resolving;
///
/// fn nowhere<'a>() -> Resolving<'a> {
///     Box::pin(async { Err(std::io::Error::other("no resolver here")) })
/// }
/// ```
pub type Resolving<'a> = Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>>;

/// Turns a host name and port into socket addresses.
///
/// The client connects to the addresses in order, and — in
/// [`ReuseMode::DnsOverlap`](misdirect_coalesce::ReuseMode::DnsOverlap) — reuses a
/// connection for another origin only when that origin's addresses include the
/// connection's peer address.
///
/// ```
/// use std::net::SocketAddr;
/// use misdirect_client::{Resolve, Resolving};
///
/// /// Every name is the local host.
/// #[derive(Debug)]
/// struct Loopback;
///
/// impl Resolve for Loopback {
///     fn resolve(&self, _host: &str, port: u16) -> Resolving<'_> {
///         Box::pin(async move { Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))]) })
///     }
/// }
///
/// let client = misdirect_client::Client::builder().resolver(Loopback).build()?;
/// # Ok::<(), misdirect_client::Error>(())
/// ```
pub trait Resolve: std::fmt::Debug + Send + Sync + 'static {
    /// The addresses of `host` (a DNS name, or an IP address as text) at `port`.
    ///
    /// ```
    /// use misdirect_client::{Resolve, StaticResolver};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// let addrs = StaticResolver::new().resolve("::1", 8443).await?;
    /// assert_eq!(addrs, ["[::1]:8443".parse()?]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn resolve(&self, host: &str, port: u16) -> Resolving<'_>;
}

/// The system resolver, through tokio's `lookup_host` (the default).
///
/// ```
/// use misdirect_client::{Resolve, SystemResolver};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// let addrs = SystemResolver::new().resolve("127.0.0.1", 443).await?;
/// assert_eq!(addrs, ["127.0.0.1:443".parse()?]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct SystemResolver;

impl SystemResolver {
    /// The system resolver.
    ///
    /// ```
    /// let client = misdirect_client::Client::builder()
    ///     .resolver(misdirect_client::SystemResolver::new())
    ///     .build()?;
    /// # Ok::<(), misdirect_client::Error>(())
    /// ```
    pub const fn new() -> Self {
        Self
    }
}

impl Resolve for SystemResolver {
    fn resolve(&self, host: &str, port: u16) -> Resolving<'_> {
        let host = host.to_owned();
        Box::pin(async move {
            Ok(tokio::net::lookup_host((host.as_str(), port))
                .await?
                .collect())
        })
    }
}

/// A fixed map from host names to addresses, for tests and pinned deployments; names are
/// compared ASCII case-insensitively, IP addresses resolve to themselves, and any other name
/// fails with [`io::ErrorKind::NotFound`].
///
/// ```
/// use misdirect_client::{Resolve, StaticResolver};
///
/// let resolver = StaticResolver::new()
///     .insert("a.localhost", ["127.0.0.1".parse()?])
///     .insert("b.localhost", ["127.0.0.2".parse()?]);
/// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
/// assert_eq!(resolver.resolve("A.localhost", 8443).await?, ["127.0.0.1:8443".parse()?]);
/// assert!(resolver.resolve("c.localhost", 8443).await.is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct StaticResolver {
    names: HashMap<String, Vec<IpAddr>>,
}

impl StaticResolver {
    /// An empty map: only IP addresses resolve.
    ///
    /// ```
    /// let resolver = misdirect_client::StaticResolver::new();
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Maps `name` to `addrs` (replacing what it mapped to before).
    ///
    /// ```
    /// use misdirect_client::StaticResolver;
    ///
    /// let both = ["127.0.0.1".parse()?, "::1".parse()?];
    /// let resolver = StaticResolver::new().insert("a.localhost", both);
    /// # Ok::<(), std::net::AddrParseError>(())
    /// ```
    pub fn insert(mut self, name: &str, addrs: impl IntoIterator<Item = IpAddr>) -> Self {
        self.names
            .insert(name.to_ascii_lowercase(), addrs.into_iter().collect());
        self
    }
}

impl Resolve for StaticResolver {
    fn resolve(&self, host: &str, port: u16) -> Resolving<'_> {
        let found = match host.trim_matches(['[', ']']).parse::<IpAddr>() {
            Ok(ip) => Ok(vec![ip]),
            Err(_) => self
                .names
                .get(&host.to_ascii_lowercase())
                .cloned()
                .ok_or_else(|| {
                    io::Error::new(io::ErrorKind::NotFound, format!("{host}: not in the map"))
                }),
        };
        let found = found.map(|ips| {
            ips.into_iter()
                .map(|ip| SocketAddr::new(ip, port))
                .collect()
        });
        Box::pin(std::future::ready(found))
    }
}
