//! The embedded development set-up that `misdirect serve` runs without a configuration file.
//!
//! An in-memory CA signs three server certificates and one client certificate:
//!
//! | virtual host | certificate | client certificate |
//! |---|---|---|
//! | `a.localhost` (default) | shared: `a`, `b`, `secure.localhost` | – |
//! | `b.localhost` | shared | – |
//! | `c.localhost` | its own | – |
//! | `*.wild.localhost` | its own wildcard | – |
//! | `secure.localhost` | shared | required, verified by the CA |
//!
//! Everything is made in memory by [`Embedded::generate`]. Once the listener is bound,
//! [`Embedded::write_files`] writes the CA certificate and the client certificate and key to
//! a directory so that curl can use them — a second `misdirect serve` that cannot bind leaves
//! the first one's files alone. The directory must be private: a new one is made with mode
//! 0700, and one that is a symbolic link, is writable by group or others, or belongs to another
//! user is refused; the key is written with mode 0600, never through a symbolic link.
//! [`EXAMPLES`] lists the requests that show a 200, a coalesced 200, a 421 with its reason,
//! the client-certificate 421 and a 200 with the client certificate.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use misdirect_certmatch::DnsPattern;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::config::{
    Alpn, CertSource, ClientAuth, Config, Limits, Listener, Material, PolicyLevel, Respond, TlsMin,
    UnknownHostMode, Vhost,
};
use crate::error::{Error, ErrorKind};

/// The default listen address of the embedded set-up.
pub const DEFAULT_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8443);

/// The embedded set-up: its configuration and the files for clients.
#[derive(Debug)]
pub struct Embedded {
    config: Config,
    dir: PathBuf,
    /// `(file name, contents, secret)`: written by [`Embedded::write_files`].
    files: Vec<(&'static str, String, bool)>,
}

/// One request that shows what the server does, and what it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Example {
    /// What it shows.
    pub title: &'static str,
    /// The TLS server name (and the URL's host).
    pub sni: &'static str,
    /// The Host header, when it differs from the SNI.
    pub host: Option<&'static str>,
    /// Whether the client certificate is sent.
    pub client_cert: bool,
    /// The status the server answers.
    pub status: u16,
    /// The reason code of a refusal.
    pub reason: Option<&'static str>,
}

/// The requests printed at start-up.
pub const EXAMPLES: &[Example] = &[
    Example {
        title: "a.localhost serves itself",
        sni: "a.localhost",
        host: None,
        client_cert: false,
        status: 200,
        reason: None,
    },
    Example {
        title: "coalesced: a connection made for a.localhost serves b.localhost, which its certificate covers",
        sni: "a.localhost",
        host: Some("b.localhost"),
        client_cert: false,
        status: 200,
        reason: None,
    },
    Example {
        title: "a.localhost's certificate does not cover c.localhost",
        sni: "a.localhost",
        host: Some("c.localhost"),
        client_cert: false,
        status: 421,
        reason: Some("certificate-does-not-cover"),
    },
    Example {
        title: "secure.localhost needs a client certificate this connection never presented",
        sni: "a.localhost",
        host: Some("secure.localhost"),
        client_cert: false,
        status: 421,
        reason: Some("client-cert-required"),
    },
    Example {
        title: "secure.localhost over its own connection, with the client certificate",
        sni: "secure.localhost",
        host: None,
        client_cert: true,
        status: 200,
        reason: None,
    },
];

/// File names inside the output directory.
pub const CA_FILE: &str = "ca.pem";
/// The client certificate's file name.
pub const CLIENT_CERT_FILE: &str = "client.pem";
/// The client key's file name.
pub const CLIENT_KEY_FILE: &str = "client.key";

impl Embedded {
    /// Generates the CA and certificates in memory and returns the configuration for a
    /// listener on `addr`. Nothing is written: [`Embedded::write_files`] puts the CA
    /// certificate and the client certificate and key in `dir`, once the server is bound.
    ///
    /// ```
    /// use misdirect_server::embedded::{DEFAULT_ADDR, Embedded};
    ///
    /// let dir = std::env::temp_dir().join(format!("misdirect-doc-{}", std::process::id()));
    /// let embedded = Embedded::generate(&dir, DEFAULT_ADDR)?;
    /// assert_eq!(embedded.dir(), dir);
    /// assert!(!dir.exists());
    /// # Ok::<(), misdirect_server::Error>(())
    /// ```
    pub fn generate(dir: &Path, addr: SocketAddr) -> Result<Self, Error> {
        let fail = |what: &str, err: rcgen::Error| {
            Error::new(
                ErrorKind::Certificate,
                format!("embedded set-up: {what}: {err}"),
            )
        };
        let ca_key = KeyPair::generate().map_err(|e| fail("CA key", e))?;
        let mut ca_params =
            CertificateParams::new(Vec::<String>::new()).map_err(|e| fail("CA parameters", e))?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "misdirect development CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params
            .self_signed(&ca_key)
            .map_err(|e| fail("CA certificate", e))?;
        let issuer = Issuer::new(ca_params, ca_key);

        let leaf = |names: &[&str], client: bool| -> Result<(String, String), Error> {
            let key = KeyPair::generate().map_err(|e| fail("key", e))?;
            let sans: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            let mut params =
                CertificateParams::new(sans).map_err(|e| fail("certificate parameters", e))?;
            params.distinguished_name.push(
                DnType::CommonName,
                names.first().copied().unwrap_or("misdirect client"),
            );
            params.extended_key_usages = vec![if client {
                ExtendedKeyUsagePurpose::ClientAuth
            } else {
                ExtendedKeyUsagePurpose::ServerAuth
            }];
            let cert = params
                .signed_by(&key, &issuer)
                .map_err(|e| fail("certificate", e))?;
            Ok((cert.pem() + &ca_cert.pem(), key.serialize_pem()))
        };
        let shared = leaf(&["a.localhost", "b.localhost", "secure.localhost"], false)?;
        let own_c = leaf(&["c.localhost"], false)?;
        let wild = leaf(&["*.wild.localhost"], false)?;
        let (client_chain, client_key) = leaf(&[], true)?;

        // Only the client certificate itself: curl sends what the file holds.
        let client_cert_only = client_chain
            .split_inclusive("-----END CERTIFICATE-----\n")
            .next()
            .unwrap_or(&client_chain)
            .to_string();
        let files = vec![
            (CA_FILE, ca_cert.pem(), false),
            (CLIENT_CERT_FILE, client_cert_only, false),
            (CLIENT_KEY_FILE, client_key, true),
        ];

        let pem = |label: &str, (cert, key): &(String, String)| CertSource::Pem {
            cert: Material::Inline {
                label: format!("(embedded {label} certificate)"),
                pem: cert.clone().into_bytes(),
            },
            key: Material::Inline {
                label: format!("(embedded {label} key)"),
                pem: key.clone().into_bytes(),
            },
        };
        let vhost = |name: &str, cert: CertSource, client_auth: Option<ClientAuth>| -> Vhost {
            Vhost {
                name: name.to_string(),
                // Invariant: the names below are valid DNS-IDs, spelt as configuration
                // spells them.
                patterns: vec![DnsPattern::from_config(name).expect("valid embedded name")],
                cert,
                client_auth,
                min_tls: TlsMin::Tls12,
                policy: None,
                alpn: vec![Alpn::H2, Alpn::Http11],
                respond: Respond::Body(Bytes::from(format!("vhost {name}\n"))),
            }
        };
        let vhosts = vec![
            vhost("a.localhost", pem("shared", &shared), None),
            vhost("b.localhost", pem("shared", &shared), None),
            vhost("c.localhost", pem("c.localhost", &own_c), None),
            vhost("*.wild.localhost", pem("wildcard", &wild), None),
            vhost(
                "secure.localhost",
                pem("shared", &shared),
                Some(ClientAuth {
                    ca: Material::Inline {
                        label: "(embedded CA)".to_string(),
                        pem: ca_cert.pem().into_bytes(),
                    },
                    required: true,
                }),
            ),
        ];
        let listener = Listener {
            addr,
            public_ports: None,
            policy: PolicyLevel::Secure,
            warn_only: false,
            unknown_host: UnknownHostMode::Misdirected,
            default_vhost: 0,
            reason_in_body: true,
            origin_frame: true,
            tls: true,
            redirect_https: false,
        };
        Ok(Self {
            config: Config::new_checked(
                PathBuf::from("(embedded default)"),
                vec![listener],
                vhosts,
                Limits::default(),
            ),
            dir: dir.to_path_buf(),
            files,
        })
    }

    /// Writes `ca.pem`, `client.pem` and `client.key` to [`Embedded::dir`]. Call it after
    /// [`crate::Server::bind`] succeeded, so that a server that cannot start does not replace
    /// the files of one that runs.
    ///
    /// On Unix the directory must be private. A missing one is created with mode 0700 (its
    /// missing parents as usual). An existing one is refused — with an error naming it — when
    /// it is a symbolic link, is writable by group or others, or belongs to another user; so
    /// is a file name in it that is a symbolic link or anything but a regular file. Each file
    /// is written to a new temporary file (`create_new`, which never follows a link) and
    /// renamed over the old one: the key with mode 0600, the certificates 0644.
    ///
    /// ```
    /// use misdirect_server::embedded::{CLIENT_KEY_FILE, DEFAULT_ADDR, Embedded};
    ///
    /// let dir = std::env::temp_dir().join(format!("misdirect-doc-write-{}", std::process::id()));
    /// let embedded = Embedded::generate(&dir, DEFAULT_ADDR)?;
    /// embedded.write_files()?;
    /// #[cfg(unix)]
    /// {
    ///     use std::os::unix::fs::PermissionsExt;
    ///     let mode = |path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    ///     assert_eq!(mode(dir.clone()), 0o700);
    ///     assert_eq!(mode(dir.join(CLIENT_KEY_FILE)), 0o600);
    /// }
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// # Ok::<(), misdirect_server::Error>(())
    /// ```
    pub fn write_files(&self) -> Result<(), Error> {
        private::write_files(&self.dir, &self.files)
    }

    /// The configuration to start the server with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Takes the configuration.
    pub fn into_config(self) -> Config {
        self.config
    }

    /// The directory holding the CA and client files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The curl command for `example`, against a server listening on `addr`.
    pub fn curl(&self, example: &Example, addr: SocketAddr) -> String {
        let port = addr.port();
        let connect = match addr.ip() {
            ip if ip.is_unspecified() && ip.is_ipv6() => "[::1]".to_string(),
            ip if ip.is_unspecified() => "127.0.0.1".to_string(),
            IpAddr::V6(ip) => format!("[{ip}]"),
            IpAddr::V4(ip) => ip.to_string(),
        };
        let mut command = format!(
            "curl --cacert {} --resolve {}:{port}:{connect}",
            quote(&self.dir.join(CA_FILE)),
            example.sni
        );
        if example.client_cert {
            let _ = write!(
                command,
                " --cert {} --key {}",
                quote(&self.dir.join(CLIENT_CERT_FILE)),
                quote(&self.dir.join(CLIENT_KEY_FILE))
            );
        }
        if let Some(host) = example.host {
            let _ = write!(command, " -H 'Host: {host}:{port}'");
        }
        let _ = write!(command, " https://{}:{port}/", example.sni);
        command
    }

    /// What `misdirect serve` prints: where the files are, and each example as a comment
    /// line (`# expect STATUS [REASON]: what it shows`) followed by its curl command.
    pub fn instructions(&self, addr: SocketAddr) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "misdirect: embedded development set-up on https://{addr}\n\
             virtual hosts: a.localhost, b.localhost (one certificate, which also covers \
             secure.localhost), c.localhost, *.wild.localhost, secure.localhost (client \
             certificate required)\n\
             CA certificate, client certificate and key: {}\n",
            self.dir.display()
        );
        for example in EXAMPLES {
            let _ = write!(out, "# expect {}", example.status);
            if let Some(reason) = example.reason {
                let _ = write!(out, " {reason}");
            }
            let _ = writeln!(out, ": {}", example.title);
            let _ = writeln!(out, "{}\n", self.curl(example, addr));
        }
        out
    }
}

/// An I/O error about `path`.
fn io_error(path: &Path, what: &str, err: &std::io::Error) -> Error {
    Error::new(
        ErrorKind::Io,
        format!("embedded set-up: cannot {what} {}: {err}", path.display()),
    )
}

/// A directory or file the embedded set-up will not write to, and what to do instead.
#[cfg_attr(not(unix), allow(dead_code))]
fn refused(path: &Path, problem: &str) -> Error {
    Error::new(
        ErrorKind::Io,
        format!(
            "embedded set-up: {} {problem}; the client key is written there, so it must be a \
             directory of your own that no one else can write to: fix it, or pass --out-dir \
             with another directory",
            path.display()
        ),
    )
}

#[cfg(unix)]
mod private {
    //! Private files on Unix: a 0700 directory of our own, no symbolic links followed.

    use std::fs::{DirBuilder, File, OpenOptions};
    use std::io::{ErrorKind as IoKind, Write as _};
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
    use std::path::Path;

    use super::{io_error, refused};
    use crate::error::Error;

    pub(super) fn write_files(dir: &Path, files: &[(&str, String, bool)]) -> Result<(), Error> {
        let owner = private_dir(dir)?;
        for (name, _, _) in files {
            let path = dir.join(name);
            match std::fs::symlink_metadata(&path) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(refused(
                        &path,
                        "is a symbolic link, which misdirect never writes through",
                    ));
                }
                Ok(meta) if !meta.is_file() => {
                    return Err(refused(&path, "is not a regular file"));
                }
                Ok(_) => {}
                Err(err) if err.kind() == IoKind::NotFound => {}
                Err(err) => return Err(io_error(&path, "inspect", &err)),
            }
        }
        for (name, contents, secret) in files {
            let path = dir.join(name);
            let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
            // A leftover of an interrupted run; removing a link removes the link only.
            match std::fs::remove_file(&temp) {
                Err(err) if err.kind() != IoKind::NotFound => {
                    return Err(io_error(&temp, "remove", &err));
                }
                _ => {}
            }
            // `create_new` is O_CREAT | O_EXCL: it fails on any existing name, links included.
            let mut file: File = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(if *secret { 0o600 } else { 0o644 })
                .open(&temp)
                .map_err(|err| io_error(&temp, "create", &err))?;
            // The new file is ours: its owner is who we are.
            let me = file
                .metadata()
                .map_err(|err| io_error(&temp, "inspect", &err))?
                .uid();
            if me != owner {
                let _ = std::fs::remove_file(&temp);
                return Err(refused(
                    dir,
                    &format!("belongs to another user (uid {owner}, not {me})"),
                ));
            }
            let written = file
                .write_all(contents.as_bytes())
                .and_then(|()| file.sync_all());
            drop(file);
            // `rename` replaces the name itself, never what a link there points to.
            if let Err(err) = written.and_then(|()| std::fs::rename(&temp, &path)) {
                let _ = std::fs::remove_file(&temp);
                return Err(io_error(&path, "write", &err));
            }
        }
        Ok(())
    }

    /// Creates `dir` with mode 0700 if it is missing; refuses it when it is a symbolic link,
    /// not a directory, or writable by group or others. Returns its owner's uid.
    fn private_dir(dir: &Path) -> Result<u32, Error> {
        match std::fs::symlink_metadata(dir) {
            Ok(_) => {}
            Err(err) if err.kind() == IoKind::NotFound => {
                if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent)
                        .map_err(|err| io_error(parent, "create", &err))?;
                }
                match DirBuilder::new().mode(0o700).create(dir) {
                    // Made by someone else in the meantime: checked below like any other.
                    Err(err) if err.kind() != IoKind::AlreadyExists => {
                        return Err(io_error(dir, "create", &err));
                    }
                    _ => {}
                }
            }
            Err(err) => return Err(io_error(dir, "inspect", &err)),
        }
        let meta = std::fs::symlink_metadata(dir).map_err(|err| io_error(dir, "inspect", &err))?;
        if meta.file_type().is_symlink() {
            return Err(refused(dir, "is a symbolic link"));
        }
        if !meta.is_dir() {
            return Err(refused(dir, "is not a directory"));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(refused(
                dir,
                &format!(
                    "is writable by group or others (mode {:o})",
                    meta.mode() & 0o7777
                ),
            ));
        }
        Ok(meta.uid())
    }
}

#[cfg(not(unix))]
mod private {
    //! Elsewhere: the directory is created if missing and the files written plainly.

    use std::path::Path;

    use super::io_error;
    use crate::error::Error;

    pub(super) fn write_files(dir: &Path, files: &[(&str, String, bool)]) -> Result<(), Error> {
        std::fs::create_dir_all(dir).map_err(|err| io_error(dir, "create", &err))?;
        for (name, contents, _) in files {
            let path = dir.join(name);
            std::fs::write(&path, contents).map_err(|err| io_error(&path, "write", &err))?;
        }
        Ok(())
    }
}

/// Quotes a path for a POSIX shell when it needs it.
fn quote(path: &Path) -> String {
    let text = path.display().to_string();
    if text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-+:@".contains(&b))
    {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}
