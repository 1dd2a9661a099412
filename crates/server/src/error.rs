//! The crate's one error type.

use std::fmt;
use std::path::{Path, PathBuf};

/// Why the server could not start (or stopped).
///
/// Every error names where it came from — the configuration file, and inside it the virtual
/// host, listener or referenced file — so that one line is enough to fix it.
///
/// When the problem was reported by something else — the file system, the TOML parser,
/// rustls or its PEM reader — that error is kept as the [`source`](std::error::Error::source),
/// for a program that wants to tell causes apart. Its text is already in the message, so
/// [`Display`](fmt::Display) does not repeat it.
///
/// # Example
/// ```
/// use std::error::Error as _;
/// use std::path::Path;
///
/// use misdirect_server::{Config, ErrorKind};
///
/// let err = Config::from_toml("[[vhost]\nname = ", Path::new("bad.toml"), Path::new("."))
///     .unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Syntax);
/// assert!(err.to_string().starts_with("bad.toml: TOML parse error"));
/// assert!(err.source().is_some_and(|source| source.is::<toml::de::Error>()));
/// ```
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    file: Option<PathBuf>,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// What kind of problem an [`Error`] is.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A file could not be read or written.
    Io,
    /// The configuration is not valid TOML or has an unknown or mistyped key.
    Syntax,
    /// The configuration parsed but says something impossible (a name in two virtual hosts,
    /// an unknown `default_vhost`, a bad address, ...).
    Invalid,
    /// A certificate, key or CA bundle could not be loaded, or a key does not match its
    /// certificate.
    Certificate,
    /// A listener could not bind its address.
    Bind,
    /// The virtual-host table could not be built.
    Policy,
    /// `misdirect probe`: the target could not be resolved or connected to.
    Connect,
    /// `misdirect probe`: the TLS handshake failed.
    Tls,
    /// `misdirect probe`: the server did not answer in time.
    Timeout,
    /// `misdirect probe`: the server broke the HTTP protocol or closed the connection.
    Protocol,
    /// A reload could not be asked for: the server is not running, or has no configuration
    /// file to read again. (A configuration that fails to load keeps its own kind.)
    Reload,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            file: None,
            message: message.into(),
            source: None,
        }
    }

    /// Keeps `source` as the error's cause. The message should already say what it says.
    pub(crate) fn with_source<E>(mut self, source: E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        self.source = Some(Box::new(source));
        self
    }

    /// Puts `context` — where the problem is, such as `vhost "a.test": respond.` — before
    /// the message; the kind and the source stay.
    pub(crate) fn context(mut self, context: &str) -> Self {
        self.message.insert_str(0, context);
        self
    }

    /// Attaches the configuration file this error is about, unless one is already set.
    pub(crate) fn in_file(mut self, file: &Path) -> Self {
        if self.file.is_none() {
            self.file = Some(file.to_path_buf());
        }
        self
    }

    /// The kind of problem.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The configuration file the problem is in, when there is one.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The problem, without the file name.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(file) => write!(f, "{}: {}", file.display(), self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;
    use std::path::PathBuf;

    use rcgen::{CertifiedKey, KeyPair};

    use super::*;
    use crate::Config;
    use crate::site::Site;

    /// A directory of its own with a certificate and key for `a.test`, and a second key.
    fn dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("misdirect-error-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let CertifiedKey { cert, signing_key } =
            rcgen::generate_simple_self_signed(vec!["a.test".to_owned()]).expect("certificate");
        std::fs::write(dir.join("a.pem"), cert.pem()).expect("write");
        std::fs::write(dir.join("a.key"), signing_key.serialize_pem()).expect("write");
        let other = KeyPair::generate().expect("key");
        std::fs::write(dir.join("other.key"), other.serialize_pem()).expect("write");
        std::fs::write(dir.join("garbage.pem"), "not a key\n").expect("write");
        std::fs::write(
            dir.join("bad-base64.pem"),
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        )
        .expect("write");
        dir
    }

    /// Loads a configuration with one virtual host using `cert` and `key` in `dir`.
    fn load(dir: &Path, cert: &str, key: &str) -> Error {
        let text = format!(
            "[[listener]]\naddr = \"127.0.0.1:0\"\ndefault_vhost = \"a.test\"\n\n\
             [[vhost]]\nname = \"a.test\"\ncert = \"{cert}\"\nkey = \"{key}\"\n"
        );
        let path = dir.join("misdirect.toml");
        std::fs::write(&path, text).expect("write");
        let config = Config::from_file(&path).expect("the configuration is valid");
        match Site::load(&config) {
            Ok(_) => panic!("{cert} and {key} load"),
            Err(err) => err,
        }
    }

    /// The cause of `err`, as a `T`.
    fn source<T: std::error::Error + 'static>(err: &Error) -> &T {
        err.source()
            .and_then(|source| source.downcast_ref::<T>())
            .unwrap_or_else(|| panic!("{err}: the source is {:?}", err.source()))
    }

    #[test]
    fn file_errors_keep_the_io_error() {
        let dir = dir("io");
        let err = load(&dir, "nope.pem", "a.key");
        assert_eq!(err.kind(), ErrorKind::Io, "{err}");
        assert_eq!(
            source::<std::io::Error>(&err).kind(),
            std::io::ErrorKind::NotFound
        );
        let err = Config::from_file(dir.join("does-not-exist.toml")).unwrap_err();
        assert_eq!(
            source::<std::io::Error>(&err).kind(),
            std::io::ErrorKind::NotFound
        );
        // The cause is not printed twice.
        let text = err.to_string();
        let cause = err.source().expect("a source").to_string();
        assert_eq!(text.matches(&cause).count(), 1, "{text}");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn syntax_errors_keep_the_toml_error() {
        let err = Config::from_toml("[[vhost]\nname = ", Path::new("x.toml"), Path::new("."))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Syntax);
        let toml = source::<toml::de::Error>(&err);
        assert_eq!(err.message(), toml.to_string().trim_end());
        assert_eq!(err.to_string(), format!("x.toml: {}", err.message()));
    }

    #[test]
    fn certificate_errors_keep_the_rustls_error() {
        let dir = dir("tls");
        let err = load(&dir, "a.pem", "other.key");
        assert_eq!(err.kind(), ErrorKind::Certificate, "{err}");
        assert!(err.message().contains("does not match"), "{err}");
        assert!(
            matches!(
                source::<rustls::Error>(&err),
                rustls::Error::InconsistentKeys(_)
            ),
            "{err}"
        );

        let err = load(&dir, "a.pem", "garbage.pem");
        assert_eq!(err.kind(), ErrorKind::Certificate, "{err}");
        source::<rustls::pki_types::pem::Error>(&err);

        let err = load(&dir, "bad-base64.pem", "a.key");
        assert_eq!(err.kind(), ErrorKind::Certificate, "{err}");
        source::<rustls::pki_types::pem::Error>(&err);

        // A file with no certificate in it is our finding: there is no cause to keep.
        let err = load(&dir, "garbage.pem", "a.key");
        assert!(err.message().contains("no certificate"), "{err}");
        assert!(err.source().is_none());
        std::fs::remove_dir_all(dir).ok();
    }
}
