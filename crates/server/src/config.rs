//! The TOML configuration: parsed strictly (unknown keys are errors naming key and line),
//! checked as a whole, with paths resolved against the configuration file's directory.
//!
//! Every key is documented in the workspace's `docs/server.md`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use misdirect_certmatch::DnsPattern;
use misdirect_coalesce::RefusalLogMode;
use serde::Deserialize;

use crate::error::{Error, ErrorKind};
use crate::proxy::{ForwardedMode, IpPrefix, ProxyConfig};

/// A checked server configuration: listeners, virtual hosts, limits and the admin
/// listener.
///
/// Build it from a file with [`Config::from_file`], from text with [`Config::from_toml`],
/// or take the embedded development set-up from [`crate::embedded`]. Certificates and keys
/// are read when the server starts ([`crate::Server::bind`]), not here.
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) source: PathBuf,
    pub(crate) listeners: Vec<Listener>,
    pub(crate) vhosts: Vec<Vhost>,
    pub(crate) limits: Limits,
    /// `None` when there is no `[admin]` section: no admin listener.
    pub(crate) admin: Option<Admin>,
    /// `[log]`.
    pub(crate) log: Log,
}

/// `[log]`: how refusals are logged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Log {
    /// Every refusal gets its line, or the first `per_key` of each (reason, SNI,
    /// authority, target virtual host) in a window, then one summary line per window.
    pub(crate) refusals: RefusalLogMode,
}

/// One `[[listener]]`.
#[derive(Debug, Clone)]
pub(crate) struct Listener {
    pub(crate) addr: SocketAddr,
    pub(crate) public_ports: Option<Vec<u16>>,
    pub(crate) policy: PolicyLevel,
    pub(crate) warn_only: bool,
    pub(crate) unknown_host: UnknownHostMode,
    /// Index into [`Config::vhosts`].
    pub(crate) default_vhost: usize,
    pub(crate) reason_in_body: bool,
    /// Send an HTTP/2 ORIGIN frame (RFC 8336) listing the origins each connection serves.
    pub(crate) origin_frame: bool,
    /// TLS (the default), or plain HTTP/1.1 and h2c for use behind a TLS-terminating load
    /// balancer.
    pub(crate) tls: bool,
    /// A plain listener that answers every request for a host some TLS listener serves
    /// with a 308 to its `https://` URL.
    pub(crate) redirect_https: bool,
}

/// One `[[vhost]]`.
#[derive(Debug, Clone)]
pub(crate) struct Vhost {
    pub(crate) name: String,
    /// The name and aliases, normalised.
    pub(crate) patterns: Vec<DnsPattern>,
    pub(crate) cert: CertSource,
    pub(crate) client_auth: Option<ClientAuth>,
    pub(crate) min_tls: TlsMin,
    pub(crate) policy: Option<PolicyLevel>,
    pub(crate) alpn: Vec<Alpn>,
    pub(crate) respond: Respond,
}

/// Where PEM data comes from: a file, or memory (the embedded default).
#[derive(Debug, Clone)]
pub(crate) enum Material {
    File(PathBuf),
    Inline { label: String, pem: Vec<u8> },
}

#[derive(Debug, Clone)]
pub(crate) enum CertSource {
    Pem { cert: Material, key: Material },
    SelfSigned,
}

#[derive(Debug, Clone)]
pub(crate) struct ClientAuth {
    pub(crate) ca: Material,
    pub(crate) required: bool,
}

#[derive(Debug, Clone)]
pub(crate) enum Respond {
    /// A fixed `text/plain` body, shared by every response (cloning it is a reference
    /// count, not a copy).
    Body(Bytes),
    /// Files under this directory (shared by the requests that read from it).
    Dir(Arc<Path>),
    /// Forwarded to an application: the checked settings; the client that forwards is
    /// built when the site is loaded, which reads `ca`.
    Proxy(Box<ProxyRespond>),
}

/// `respond = { proxy = "…", … }`, checked: everything but the `ca` file's contents.
#[derive(Debug, Clone)]
pub(crate) struct ProxyRespond {
    pub(crate) config: ProxyConfig,
    /// The upstream's CA bundle (`https` only); the system's roots when `None`.
    pub(crate) ca: Option<Material>,
}

/// `policy`: how strictly a connection must match a request's virtual host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum PolicyLevel {
    Strict,
    Secure,
    CertOnly,
}

/// `unknown_host`: what a request for a host no virtual host serves gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum UnknownHostMode {
    Misdirected,
    NotFound,
    Default,
}

/// `min_tls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub(crate) enum TlsMin {
    #[serde(rename = "1.2")]
    Tls12,
    #[serde(rename = "1.3")]
    Tls13,
}

/// `alpn`: the application protocols a virtual host offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub(crate) enum Alpn {
    #[serde(rename = "h2")]
    H2,
    #[serde(rename = "http/1.1")]
    Http11,
}

impl Alpn {
    pub(crate) fn wire(self) -> &'static [u8] {
        match self {
            Self::H2 => b"h2",
            Self::Http11 => b"http/1.1",
        }
    }
}

/// `[limits]`, with their defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Limits {
    pub(crate) tls_handshake_timeout: Duration,
    pub(crate) header_read_timeout: Duration,
    pub(crate) max_header_bytes: usize,
    pub(crate) max_concurrent_streams: u32,
    pub(crate) shutdown_timeout: Duration,
    /// No request in progress for this long: the connection is closed (HTTP/2: GOAWAY).
    pub(crate) idle_timeout: Duration,
    /// After GOAWAY (idle or shutdown), how long streams still open may take; and the
    /// longest an HTTP/2 connection may receive bytes without completing a request head.
    pub(crate) request_timeout: Duration,
    /// HTTP/2: a PING after this long without a frame from the client.
    pub(crate) keepalive_interval: Duration,
    /// HTTP/2: the connection is closed when that PING is not answered in this time.
    pub(crate) keepalive_timeout: Duration,
    /// A response that cannot send any bytes for this long is abandoned.
    pub(crate) send_timeout: Duration,
    /// Open connections per listener; at the limit the longest-idle one is closed first.
    pub(crate) max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            tls_handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(30),
            max_header_bytes: 64 * 1024,
            max_concurrent_streams: 128,
            shutdown_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(20),
            send_timeout: Duration::from_secs(60),
            max_connections: 10_000,
        }
    }
}

/// `[admin]`: the plain-HTTP admin listener (`/metrics`, `/healthz`, `/reload`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Admin {
    /// A loopback address unless `allow_remote = true` was set.
    pub(crate) addr: SocketAddr,
}

/// hyper refuses header buffers smaller than this.
const MIN_HEADER_BYTES: usize = 8192;

impl Config {
    /// Reads and checks a configuration file. Relative paths inside it are relative to the
    /// file's directory.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|err| {
            Error::new(
                ErrorKind::Io,
                format!("cannot read the configuration: {err}"),
            )
            .with_source(err)
            .in_file(path)
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_toml(&text, path, base)
    }

    /// Checks configuration text. `source` names it in errors; relative paths are resolved
    /// against `base`.
    pub fn from_toml(text: &str, source: &Path, base: &Path) -> Result<Self, Error> {
        let raw: RawConfig = toml::from_str(text).map_err(|err| {
            Error::new(ErrorKind::Syntax, err.to_string().trim_end().to_string())
                .with_source(err)
                .in_file(source)
        })?;
        raw.check(source, base).map_err(|err| err.in_file(source))
    }

    /// The file (or label) this configuration came from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// Overrides the listen address of every listener: `bind` the IP, `port` the port
    /// (`misdirect serve --bind` and `--port`). A listener whose `public_ports` were not set
    /// follows the new port.
    ///
    /// Fails, leaving the configuration unchanged, when the override gives two listeners the
    /// same address (a port of 0 is a different free port for each):
    ///
    /// ```
    /// use std::path::Path;
    /// use misdirect_server::Config;
    ///
    /// let text = r#"
    /// [[listener]]
    /// addr = "127.0.0.1:8443"
    /// [[listener]]
    /// addr = "127.0.0.1:9443"
    /// [[vhost]]
    /// name = "a.test"
    /// self_signed = true
    /// "#;
    /// let mut config = Config::from_toml(text, Path::new("misdirect.toml"), Path::new("."))?;
    /// let err = config.override_addr(None, Some(8443)).unwrap_err();
    /// assert!(err.message().starts_with("--port 8443 gives listeners 1 and 2 the same address"));
    /// config.override_addr(None, Some(0))?;
    /// # Ok::<(), misdirect_server::Error>(())
    /// ```
    pub fn override_addr(
        &mut self,
        bind: Option<std::net::IpAddr>,
        port: Option<u16>,
    ) -> Result<(), Error> {
        let addrs: Vec<SocketAddr> = self
            .listeners
            .iter()
            .map(|listener| {
                let mut addr = listener.addr;
                if let Some(ip) = bind {
                    addr.set_ip(ip);
                }
                if let Some(port) = port {
                    addr.set_port(port);
                }
                addr
            })
            .collect();
        let flags = || {
            [
                bind.map(|ip| format!("--bind {ip}")),
                port.map(|port| format!("--port {port}")),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ")
        };
        if let Some((first, second)) = same_address(&addrs) {
            let flags = flags();
            return Err(invalid(format!(
                "{flags} gives listeners {} and {} the same address {}; a server cannot listen \
                 twice on one address: leave out {flags}, or give each [[listener]] its own \
                 addr in the configuration",
                first + 1,
                second + 1,
                addrs[first]
            ))
            .in_file(&self.source));
        }
        if let Some(admin) = &self.admin
            && let Some(index) = addrs.iter().position(|addr| overlaps(*addr, admin.addr))
        {
            let flags = flags();
            return Err(invalid(format!(
                "{flags} gives listener {} the address {}, which the admin listener ([admin] \
                 addr {}) also takes: leave out {flags}, or change the admin addr",
                index + 1,
                addrs[index],
                admin.addr
            ))
            .in_file(&self.source));
        }
        for (listener, addr) in self.listeners.iter_mut().zip(addrs) {
            listener.addr = addr;
        }
        Ok(())
    }

    pub(crate) fn new_checked(
        source: PathBuf,
        listeners: Vec<Listener>,
        vhosts: Vec<Vhost>,
        limits: Limits,
    ) -> Self {
        Self {
            source,
            listeners,
            vhosts,
            limits,
            admin: None,
            log: Log::default(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The file's shape. Every table denies unknown keys, so a typo is an error with its line.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    listener: Vec<RawListener>,
    #[serde(default)]
    vhost: Vec<RawVhost>,
    #[serde(default)]
    limits: RawLimits,
    admin: Option<RawAdmin>,
    #[serde(default)]
    log: RawLog,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    refusals: Option<RefusalLogKind>,
    refusal_window_secs: Option<f64>,
    refusal_lines_per_key: Option<u32>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum RefusalLogKind {
    Every,
    Sampled,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListener {
    addr: String,
    public_ports: Option<Vec<u16>>,
    policy: Option<PolicyLevel>,
    warn_only: Option<bool>,
    unknown_host: Option<UnknownHostMode>,
    default_vhost: Option<String>,
    reason_in_body: Option<bool>,
    origin_frame: Option<bool>,
    tls: Option<bool>,
    redirect: Option<RedirectTo>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum RedirectTo {
    Https,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVhost {
    name: String,
    #[serde(default)]
    aliases: Vec<String>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    #[serde(default)]
    self_signed: bool,
    client_auth: Option<RawClientAuth>,
    min_tls: Option<TlsMin>,
    policy: Option<PolicyLevel>,
    alpn: Option<Vec<Alpn>>,
    respond: Option<RawRespond>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClientAuth {
    ca: PathBuf,
    #[serde(default = "yes")]
    required: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRespond {
    body: Option<String>,
    dir: Option<PathBuf>,
    proxy: Option<String>,
    upstream_http2: Option<bool>,
    ca: Option<PathBuf>,
    forwarded: Option<String>,
    trust_forwarded_from: Option<Vec<String>>,
    max_body_bytes: Option<u64>,
    connect_timeout_secs: Option<f64>,
    response_timeout_secs: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    tls_handshake_timeout_secs: Option<f64>,
    header_read_timeout_secs: Option<f64>,
    max_header_bytes: Option<usize>,
    max_concurrent_streams: Option<u32>,
    shutdown_timeout_secs: Option<f64>,
    idle_timeout_secs: Option<f64>,
    request_timeout_secs: Option<f64>,
    keepalive_interval_secs: Option<f64>,
    keepalive_timeout_secs: Option<f64>,
    send_timeout_secs: Option<f64>,
    max_connections: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    addr: String,
    #[serde(default)]
    allow_remote: bool,
}

/// The first two listeners (by index) with the same address; port 0 is never the same.
fn same_address(addrs: &[SocketAddr]) -> Option<(usize, usize)> {
    addrs.iter().enumerate().find_map(|(second, addr)| {
        let first = addrs[..second].iter().position(|a| a == addr)?;
        (addr.port() != 0).then_some((first, second))
    })
}

/// A name or alias from configuration: Unicode labels become A-labels (UTS 46), a wildcard
/// keeps its `*.`, one trailing dot is dropped (`DnsPattern::from_config`).
fn config_pattern(spelled: &str) -> Result<DnsPattern, String> {
    DnsPattern::from_config(spelled).map_err(|err| err.to_string())
}

/// Whether two sockets cannot both listen: the same port (not 0) on the same address, or
/// on any address when one of them listens on all (`0.0.0.0`, `[::]`).
fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port()
        && a.port() != 0
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

fn yes() -> bool {
    true
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Invalid, message)
}

impl RawConfig {
    fn check(self, source: &Path, base: &Path) -> Result<Config, Error> {
        if self.vhost.is_empty() {
            return Err(invalid("no [[vhost]]: at least one virtual host is needed"));
        }
        // A name in two virtual hosts (or twice in one) is found where the listener tables
        // are built: one check, in misdirect-coalesce.
        let mut vhosts = Vec::with_capacity(self.vhost.len());
        for raw in self.vhost {
            vhosts.push(raw.check(base)?);
        }
        let mut listeners = Vec::with_capacity(self.listener.len().max(1));
        let raw_listeners = if self.listener.is_empty() {
            vec![RawListener {
                addr: "127.0.0.1:8443".to_string(),
                public_ports: None,
                policy: None,
                warn_only: None,
                unknown_host: None,
                default_vhost: None,
                reason_in_body: None,
                origin_frame: None,
                tls: None,
                redirect: None,
            }]
        } else {
            self.listener
        };
        for raw in raw_listeners {
            listeners.push(raw.check(&vhosts)?);
        }
        let addrs: Vec<SocketAddr> = listeners.iter().map(|l| l.addr).collect();
        if let Some((first, second)) = same_address(&addrs) {
            return Err(invalid(format!(
                "listeners {} and {} have the same addr {}; a server cannot listen twice on one \
                 address: give each [[listener]] its own addr (or list more ports in one \
                 listener's public_ports)",
                first + 1,
                second + 1,
                addrs[first]
            )));
        }
        let admin = self.admin.map(|raw| raw.check(&listeners)).transpose()?;
        Ok(Config {
            source: source.to_path_buf(),
            listeners,
            vhosts,
            limits: self.limits.check()?,
            admin,
            log: self.log.check()?,
        })
    }
}

impl RawListener {
    fn check(self, vhosts: &[Vhost]) -> Result<Listener, Error> {
        let addr: SocketAddr = self.addr.parse().map_err(|_| {
            invalid(format!(
                "listener addr \"{}\" is not an IP address and port such as \"127.0.0.1:8443\"",
                self.addr
            ))
        })?;
        if let Some(ports) = &self.public_ports {
            if ports.is_empty() {
                return Err(invalid(format!(
                    "listener {addr}: public_ports is empty; leave it out to use the listen port"
                )));
            }
            if ports.contains(&0) {
                return Err(invalid(format!("listener {addr}: public_ports contains 0")));
            }
        }
        // Spelled like any name: case, a trailing dot and Unicode labels do not matter.
        let default_vhost = match &self.default_vhost {
            None => 0,
            Some(name) => config_pattern(name)
                .ok()
                .and_then(|pattern| {
                    vhosts
                        .iter()
                        .position(|v| v.patterns.first() == Some(&pattern))
                })
                .ok_or_else(|| {
                    invalid(format!(
                        "listener {addr}: default_vhost \"{name}\" is not the name of any [[vhost]]"
                    ))
                })?,
        };
        let tls = self.tls.unwrap_or(true);
        if tls && self.redirect.is_some() {
            return Err(invalid(format!(
                "listener {addr}: redirect = \"https\" is for a plain listener (tls = false), \
                 the port-80 companion of a TLS listener"
            )));
        }
        if !tls && self.origin_frame == Some(true) {
            return Err(invalid(format!(
                "listener {addr}: origin_frame needs TLS: clients ignore ORIGIN frames on \
                 cleartext connections (RFC 8336 §2.2)"
            )));
        }
        Ok(Listener {
            addr,
            public_ports: self.public_ports,
            policy: self.policy.unwrap_or(PolicyLevel::Secure),
            warn_only: self.warn_only.unwrap_or(false),
            unknown_host: self.unknown_host.unwrap_or(UnknownHostMode::Misdirected),
            default_vhost,
            reason_in_body: self.reason_in_body.unwrap_or(true),
            origin_frame: self.origin_frame.unwrap_or(true),
            tls,
            redirect_https: self.redirect.is_some(),
        })
    }
}

impl RawAdmin {
    fn check(self, listeners: &[Listener]) -> Result<Admin, Error> {
        let addr: SocketAddr = self.addr.parse().map_err(|_| {
            invalid(format!(
                "admin.addr = \"{}\" is not an IP address and port such as \"127.0.0.1:9421\"",
                self.addr
            ))
        })?;
        // An IPv4-mapped IPv6 address (::ffff:127.0.0.1) is as local as the IPv4 one.
        if !self.allow_remote && !addr.ip().to_canonical().is_loopback() {
            return Err(invalid(format!(
                "admin.addr = \"{addr}\" is not a loopback address: the admin listener has no \
                 authentication, and anyone who reaches it can read the metrics and reload the \
                 configuration. Listen on 127.0.0.1 or [::1], or set admin.allow_remote = true \
                 to accept other hosts (then restrict who can reach it with a firewall)"
            )));
        }
        if let Some(index) = listeners.iter().position(|l| overlaps(l.addr, addr)) {
            return Err(invalid(format!(
                "admin.addr = \"{addr}\" takes the port of listener {} ({}); give the admin \
                 listener a port of its own",
                index + 1,
                listeners[index].addr
            )));
        }
        Ok(Admin { addr })
    }
}

impl RawVhost {
    fn check(self, base: &Path) -> Result<Vhost, Error> {
        let name = self.name;
        let context = |message: String| invalid(format!("vhost \"{name}\": {message}"));
        let mut patterns = Vec::with_capacity(1 + self.aliases.len());
        for spelled in std::iter::once(&name).chain(&self.aliases) {
            let pattern = config_pattern(spelled)
                .map_err(|err| context(format!("\"{spelled}\" is not a host name: {err}")))?;
            patterns.push(pattern);
        }
        let cert = match (self.cert, self.key, self.self_signed) {
            (Some(cert), Some(key), false) => CertSource::Pem {
                cert: Material::File(base.join(cert)),
                key: Material::File(base.join(key)),
            },
            (None, None, true) => CertSource::SelfSigned,
            (Some(_), Some(_), true) => {
                return Err(context(
                    "set either cert and key, or self_signed, not both".into(),
                ));
            }
            (Some(_), None, _) => return Err(context("cert is set but key is missing".into())),
            (None, Some(_), _) => return Err(context("key is set but cert is missing".into())),
            (None, None, false) => {
                return Err(context(
                    "no certificate: set cert and key, or self_signed = true".into(),
                ));
            }
        };
        let respond = match self.respond {
            None => Respond::Body(Bytes::from(format!("vhost {name}\n"))),
            Some(raw) => raw
                .check(base)
                .map_err(|err| err.context(&format!("vhost \"{name}\": ")))?,
        };
        let alpn = self.alpn.unwrap_or_else(|| vec![Alpn::H2, Alpn::Http11]);
        if alpn.is_empty() {
            return Err(context("alpn is empty".into()));
        }
        Ok(Vhost {
            patterns,
            cert,
            client_auth: self.client_auth.map(|auth| ClientAuth {
                ca: Material::File(base.join(auth.ca)),
                required: auth.required,
            }),
            min_tls: self.min_tls.unwrap_or(TlsMin::Tls12),
            policy: self.policy,
            alpn,
            respond,
            name,
        })
    }
}

impl RawRespond {
    /// The keys that only `proxy` takes, in the order the documentation lists them.
    fn proxy_keys(&self) -> impl Iterator<Item = &'static str> {
        [
            ("upstream_http2", self.upstream_http2.is_some()),
            ("ca", self.ca.is_some()),
            ("forwarded", self.forwarded.is_some()),
            ("trust_forwarded_from", self.trust_forwarded_from.is_some()),
            ("max_body_bytes", self.max_body_bytes.is_some()),
            ("connect_timeout_secs", self.connect_timeout_secs.is_some()),
            (
                "response_timeout_secs",
                self.response_timeout_secs.is_some(),
            ),
        ]
        .into_iter()
        .filter_map(|(key, set)| set.then_some(key))
    }

    /// The `respond` table; errors start with `respond.` and the key, the caller adds the
    /// virtual host.
    fn check(self, base: &Path) -> Result<Respond, Error> {
        let kinds = [
            self.body.is_some(),
            self.dir.is_some(),
            self.proxy.is_some(),
        ];
        if kinds.iter().filter(|&&set| set).count() != 1 {
            return Err(invalid("respond needs exactly one of body, dir or proxy"));
        }
        if self.proxy.is_none()
            && let Some(key) = self.proxy_keys().next()
        {
            return Err(invalid(format!(
                "respond.{key} is a setting of proxy; it does nothing with {}",
                if self.body.is_some() { "body" } else { "dir" }
            )));
        }
        if let Some(body) = self.body {
            return Ok(Respond::Body(Bytes::from(body)));
        }
        if let Some(dir) = self.dir {
            let dir = base.join(dir);
            if !dir.is_dir() {
                return Err(invalid(format!(
                    "respond.dir \"{}\" is not a directory",
                    dir.display()
                )));
            }
            return Ok(Respond::Dir(Arc::from(dir)));
        }
        let upstream = self.proxy.unwrap_or_default();
        let mut config = ProxyConfig::new(&upstream).map_err(|err| err.context("respond."))?;
        if let Some(http2) = self.upstream_http2 {
            config = config.http2(http2);
        }
        let ca = match self.ca {
            Some(_) if !config.is_https() => {
                return Err(invalid(format!(
                    "respond.ca is for https:// upstreams only: \"{upstream}\" is plain HTTP, \
                     with no certificate to verify"
                )));
            }
            Some(ca) => Some(Material::File(base.join(ca))),
            None => None,
        };
        if let Some(mode) = &self.forwarded {
            let mode: ForwardedMode = mode.parse().map_err(|err: Error| err.context("respond."))?;
            config = config.forwarded(mode);
        }
        if let Some(prefixes) = &self.trust_forwarded_from {
            let prefixes = prefixes
                .iter()
                .map(|prefix| prefix.parse::<IpPrefix>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|err| err.context("respond."))?;
            config = config.trust_forwarded_from(prefixes);
        }
        if let Some(max) = self.max_body_bytes {
            config = config.max_body_bytes(max);
        }
        let secs = |value: f64, key: &str| {
            if value.is_finite() && value > 0.0 && value < 86_400.0 {
                Ok(Duration::from_secs_f64(value))
            } else {
                Err(invalid(format!(
                    "respond.{key} = {value}: give seconds, more than 0 and less than a day"
                )))
            }
        };
        if let Some(value) = self.connect_timeout_secs {
            config = config.connect_timeout(secs(value, "connect_timeout_secs")?);
        }
        if let Some(value) = self.response_timeout_secs {
            config = config.response_timeout(secs(value, "response_timeout_secs")?);
        }
        Ok(Respond::Proxy(Box::new(ProxyRespond { config, ca })))
    }
}

impl RawLog {
    fn check(self) -> Result<Log, Error> {
        let window = match self.refusal_window_secs {
            None => RefusalLogMode::DEFAULT_WINDOW,
            Some(s) if (1.0..=86_400.0).contains(&s) => Duration::from_secs_f64(s),
            Some(s) => {
                return Err(invalid(format!(
                    "log.refusal_window_secs = {s}: give seconds, from 1 to 86400 (a day)"
                )));
            }
        };
        let per_key = match self.refusal_lines_per_key {
            None => RefusalLogMode::DEFAULT_PER_KEY,
            Some(n) if (1..=RefusalLogMode::MAX_PER_KEY).contains(&n) => n,
            Some(n) => {
                return Err(invalid(format!(
                    "log.refusal_lines_per_key = {n}: give 1 to {} (or refusals = \"every\")",
                    RefusalLogMode::MAX_PER_KEY
                )));
            }
        };
        let sampled_keys =
            self.refusal_window_secs.is_some() || self.refusal_lines_per_key.is_some();
        let refusals = match self.refusals.unwrap_or(RefusalLogKind::Sampled) {
            RefusalLogKind::Every if sampled_keys => {
                return Err(invalid(
                    "log.refusals = \"every\" logs every refusal: refusal_window_secs and \
                     refusal_lines_per_key apply to \"sampled\" only",
                ));
            }
            RefusalLogKind::Every => RefusalLogMode::Every,
            RefusalLogKind::Sampled => RefusalLogMode::Sampled { window, per_key },
        };
        Ok(Log { refusals })
    }
}

impl RawLimits {
    fn check(self) -> Result<Limits, Error> {
        let defaults = Limits::default();
        let secs = |value: Option<f64>, key: &str, default: Duration| match value {
            None => Ok(default),
            Some(s) if s.is_finite() && s > 0.0 && s < 86_400.0 => Ok(Duration::from_secs_f64(s)),
            Some(s) => Err(invalid(format!(
                "limits.{key} = {s}: give seconds, more than 0 and less than a day"
            ))),
        };
        let max_header_bytes = self.max_header_bytes.unwrap_or(defaults.max_header_bytes);
        if max_header_bytes < MIN_HEADER_BYTES {
            return Err(invalid(format!(
                "limits.max_header_bytes = {max_header_bytes}: the minimum is {MIN_HEADER_BYTES}"
            )));
        }
        let max_concurrent_streams = self
            .max_concurrent_streams
            .unwrap_or(defaults.max_concurrent_streams);
        if max_concurrent_streams == 0 {
            return Err(invalid("limits.max_concurrent_streams must be at least 1"));
        }
        let max_connections = self.max_connections.unwrap_or(defaults.max_connections);
        if max_connections == 0 {
            return Err(invalid("limits.max_connections must be at least 1"));
        }
        Ok(Limits {
            idle_timeout: secs(
                self.idle_timeout_secs,
                "idle_timeout_secs",
                defaults.idle_timeout,
            )?,
            request_timeout: secs(
                self.request_timeout_secs,
                "request_timeout_secs",
                defaults.request_timeout,
            )?,
            keepalive_interval: secs(
                self.keepalive_interval_secs,
                "keepalive_interval_secs",
                defaults.keepalive_interval,
            )?,
            keepalive_timeout: secs(
                self.keepalive_timeout_secs,
                "keepalive_timeout_secs",
                defaults.keepalive_timeout,
            )?,
            send_timeout: secs(
                self.send_timeout_secs,
                "send_timeout_secs",
                defaults.send_timeout,
            )?,
            max_connections,
            tls_handshake_timeout: secs(
                self.tls_handshake_timeout_secs,
                "tls_handshake_timeout_secs",
                defaults.tls_handshake_timeout,
            )?,
            header_read_timeout: secs(
                self.header_read_timeout_secs,
                "header_read_timeout_secs",
                defaults.header_read_timeout,
            )?,
            max_header_bytes,
            max_concurrent_streams,
            shutdown_timeout: secs(
                self.shutdown_timeout_secs,
                "shutdown_timeout_secs",
                defaults.shutdown_timeout,
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTENER_AND_VHOST: &str = "[[listener]]\naddr = \"127.0.0.1:8443\"\n\n\
                                      [[vhost]]\nname = \"a.test\"\nself_signed = true\n";

    fn parse(admin: &str) -> Result<Config, Error> {
        let text = format!("{LISTENER_AND_VHOST}\n{admin}");
        Config::from_toml(&text, Path::new("misdirect.toml"), Path::new("."))
    }

    #[test]
    fn admin_listens_on_loopback_unless_allowed_elsewhere() {
        // ([admin] section, Ok(addr) or Err(the start of the message))
        const CASES: &[(&str, Result<Option<&str>, &str>)] = &[
            ("", Ok(None)),
            (
                "[admin]\naddr = \"127.0.0.1:9421\"",
                Ok(Some("127.0.0.1:9421")),
            ),
            ("[admin]\naddr = \"127.0.0.2:0\"", Ok(Some("127.0.0.2:0"))),
            ("[admin]\naddr = \"[::1]:9421\"", Ok(Some("[::1]:9421"))),
            (
                "[admin]\naddr = \"[::ffff:127.0.0.1]:9421\"",
                Ok(Some("[::ffff:127.0.0.1]:9421")),
            ),
            (
                "[admin]\naddr = \"0.0.0.0:9421\"",
                Err("admin.addr = \"0.0.0.0:9421\" is not a loopback address"),
            ),
            (
                "[admin]\naddr = \"192.0.2.1:9421\"",
                Err("admin.addr = \"192.0.2.1:9421\" is not a loopback address"),
            ),
            (
                "[admin]\naddr = \"[::]:9421\"\nallow_remote = false",
                Err("admin.addr = \"[::]:9421\" is not a loopback address"),
            ),
            (
                "[admin]\naddr = \"0.0.0.0:9421\"\nallow_remote = true",
                Ok(Some("0.0.0.0:9421")),
            ),
            (
                "[admin]\naddr = \"192.0.2.1:9421\"\nallow_remote = true",
                Ok(Some("192.0.2.1:9421")),
            ),
            (
                "[admin]\naddr = \"localhost:9421\"",
                Err("admin.addr = \"localhost:9421\" is not an IP address and port"),
            ),
            (
                "[admin]\naddr = \"127.0.0.1:8443\"",
                Err("admin.addr = \"127.0.0.1:8443\" takes the port of listener 1"),
            ),
            (
                "[admin]\naddr = \"0.0.0.0:8443\"\nallow_remote = true",
                Err("admin.addr = \"0.0.0.0:8443\" takes the port of listener 1"),
            ),
        ];
        for (section, expected) in CASES {
            let parsed = parse(section);
            match (&parsed, expected) {
                (Ok(config), Ok(addr)) => assert_eq!(
                    config.admin.map(|admin| admin.addr),
                    addr.map(|a| a.parse().expect("a test address")),
                    "{section}"
                ),
                (Err(err), Err(start)) => {
                    assert_eq!(err.kind(), ErrorKind::Invalid, "{section}: {err}");
                    assert!(err.message().starts_with(start), "{section}: {err}");
                }
                _ => panic!("{section}: {parsed:?}"),
            }
        }
    }

    #[test]
    fn the_remote_refusal_names_the_key_that_allows_it() {
        let err = parse("[admin]\naddr = \"0.0.0.0:9421\"").unwrap_err();
        assert!(err.message().contains("admin.allow_remote = true"), "{err}");
        assert_eq!(err.file(), Some(Path::new("misdirect.toml")));
    }

    #[test]
    fn admin_keys_are_checked() {
        // (section, part of the message)
        const CASES: &[(&str, &str)] = &[
            ("[admin]\nallow_remote = true", "missing field `addr`"),
            (
                "[admin]\naddr = \"127.0.0.1:9421\"\nport = 1",
                "unknown field `port`",
            ),
            (
                "[admin]\naddr = \"127.0.0.1:9421\"\nallow_remote = \"yes\"",
                "invalid type",
            ),
        ];
        for (section, message) in CASES {
            let err = parse(section).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Syntax, "{section}: {err}");
            assert!(err.message().contains(message), "{section}: {err}");
        }
    }

    #[test]
    fn a_port_override_may_not_take_the_admin_address() {
        let mut config = parse("[admin]\naddr = \"127.0.0.1:9421\"").expect("valid");
        let err = config.override_addr(None, Some(9421)).unwrap_err();
        assert!(
            err.message().starts_with(
                "--port 9421 gives listener 1 the address 127.0.0.1:9421, which the admin \
                 listener ([admin] addr 127.0.0.1:9421) also takes"
            ),
            "{err}"
        );
        config
            .override_addr(Some("0.0.0.0".parse().expect("an IP")), Some(9422))
            .expect("another port");
    }

    /// `[log]`: sampled by default; every key checked; the budget keys belong to
    /// `"sampled"` only.
    #[test]
    fn refusal_log_keys() {
        let mode = |text: &str| parse(text).map(|c| c.log.refusals);
        assert_eq!(mode("").ok(), Some(RefusalLogMode::default()));
        assert_eq!(
            mode("[log]\nrefusals = \"every\"").ok(),
            Some(RefusalLogMode::Every)
        );
        assert_eq!(
            mode("[log]\nrefusal_window_secs = 10\nrefusal_lines_per_key = 3").ok(),
            Some(RefusalLogMode::Sampled {
                window: Duration::from_secs(10),
                per_key: 3
            })
        );
        for (text, says) in [
            (
                "[log]\nrefusal_window_secs = 0.5",
                "log.refusal_window_secs = 0.5",
            ),
            (
                "[log]\nrefusal_lines_per_key = 0",
                "log.refusal_lines_per_key = 0",
            ),
            (
                "[log]\nrefusal_lines_per_key = 1000",
                "log.refusal_lines_per_key = 1000",
            ),
            (
                "[log]\nrefusals = \"every\"\nrefusal_window_secs = 10",
                "apply to \"sampled\" only",
            ),
            ("[log]\nrefusals = \"some\"", "unknown variant"),
        ] {
            let err = mode(text).unwrap_err().to_string();
            assert!(err.contains(says), "{text}: {err}");
        }
    }

    /// `respond = { proxy = … }`: every key is checked when the file is read, and an error
    /// names the virtual host and the key.
    #[test]
    fn proxy_keys_are_checked() {
        const UPSTREAM: &str = "proxy = \"http://127.0.0.1:3000\"";
        // (keys of the respond table, Ok(what the settings say) or Err(part of the message))
        let cases: &[(String, Result<&[&str], &str>)] = &[
            (
                UPSTREAM.into(),
                Ok(&["upstream: http://127.0.0.1:3000/", "http2: false"]),
            ),
            (
                "proxy = \"https://app.internal:8443\", upstream_http2 = true, ca = \"ca.pem\", \
                 forwarded = \"rfc7239\", trust_forwarded_from = [\"10.0.0.0/8\", \"::1\"], \
                 max_body_bytes = 1000, connect_timeout_secs = 1.5, response_timeout_secs = 30"
                    .into(),
                Ok(&[
                    "upstream: https://app.internal:8443/",
                    "http2: true",
                    "forwarded: Rfc7239",
                    "trust_forwarded_from: [IpPrefix { addr: 10.0.0.0, len: 8 }, \
                     IpPrefix { addr: ::1, len: 128 }]",
                    "max_body_bytes: 1000",
                    "connect_timeout: 1.5s",
                    "response_timeout: 30s",
                    "ca.pem",
                ]),
            ),
            (
                "proxy = \"ftp://127.0.0.1\"".into(),
                Err(
                    "vhost \"a.test\": respond.proxy \"ftp://127.0.0.1\": the scheme must be http or https",
                ),
            ),
            (
                "proxy = \"http://127.0.0.1:3000/app\"".into(),
                Err(
                    "vhost \"a.test\": respond.proxy \"http://127.0.0.1:3000/app\": a path or query is not supported",
                ),
            ),
            (
                format!("{UPSTREAM}, body = \"text\""),
                Err("vhost \"a.test\": respond needs exactly one of body, dir or proxy"),
            ),
            (
                "forwarded = \"none\"".into(),
                Err("vhost \"a.test\": respond needs exactly one of body, dir or proxy"),
            ),
            (
                "body = \"text\", max_body_bytes = 10".into(),
                Err(
                    "vhost \"a.test\": respond.max_body_bytes is a setting of proxy; it does nothing with body",
                ),
            ),
            (
                format!("{UPSTREAM}, ca = \"ca.pem\""),
                Err("vhost \"a.test\": respond.ca is for https:// upstreams only"),
            ),
            (
                format!("{UPSTREAM}, forwarded = \"all\""),
                Err(
                    "vhost \"a.test\": respond.forwarded: \"all\" is not one of rfc7239, x-forwarded, both, none",
                ),
            ),
            (
                format!("{UPSTREAM}, trust_forwarded_from = [\"10.0.0.1/8\"]"),
                Err(
                    "vhost \"a.test\": respond.trust_forwarded_from: \"10.0.0.1/8\" has bits set past the prefix length /8",
                ),
            ),
            (
                format!("{UPSTREAM}, trust_forwarded_from = [\"app.internal\"]"),
                Err(
                    "vhost \"a.test\": respond.trust_forwarded_from: \"app.internal\" is not an IP address",
                ),
            ),
            (
                format!("{UPSTREAM}, connect_timeout_secs = 0"),
                Err(
                    "vhost \"a.test\": respond.connect_timeout_secs = 0: give seconds, more than 0",
                ),
            ),
            (
                format!("{UPSTREAM}, response_timeout_secs = 86400"),
                Err("vhost \"a.test\": respond.response_timeout_secs = 86400: give seconds"),
            ),
        ];
        for (keys, expected) in cases {
            let parsed = parse(&format!("respond = {{ {keys} }}"));
            match (&parsed, expected) {
                (Ok(config), Ok(says)) => {
                    let Respond::Proxy(settings) = &config.vhosts[0].respond else {
                        panic!("{keys}: {:?}", config.vhosts[0].respond);
                    };
                    let settings = format!("{settings:?}");
                    for said in *says {
                        assert!(settings.contains(said), "{keys}: {said} not in {settings}");
                    }
                }
                (Err(err), Err(start)) => {
                    assert_eq!(err.kind(), ErrorKind::Invalid, "{keys}: {err}");
                    assert!(err.message().starts_with(start), "{keys}: {err}");
                }
                _ => panic!("{keys}: {parsed:?}"),
            }
        }
        // Types and names are the TOML reader's to check.
        for (keys, message) in [
            (format!("{UPSTREAM}, max_body_bytes = -1"), "invalid value"),
            (
                format!("{UPSTREAM}, upstream_http2 = \"yes\""),
                "invalid type",
            ),
            (
                format!("{UPSTREAM}, upstream = \"b\""),
                "unknown field `upstream`",
            ),
        ] {
            let err = parse(&format!("respond = {{ {keys} }}")).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Syntax, "{keys}: {err}");
            assert!(err.message().contains(message), "{keys}: {err}");
        }
    }

    #[test]
    fn origin_frame_is_on_unless_turned_off() {
        let on = parse("").unwrap();
        assert!(on.listeners[0].origin_frame);
        let text = LISTENER_AND_VHOST.replace(
            "addr = \"127.0.0.1:8443\"",
            "addr = \"127.0.0.1:8443\"\norigin_frame = false",
        );
        let off = Config::from_toml(&text, Path::new("misdirect.toml"), Path::new(".")).unwrap();
        assert!(!off.listeners[0].origin_frame);
    }
}
