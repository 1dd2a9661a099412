//! The crate's one error type.

use std::fmt;
use std::path::{Path, PathBuf};

/// Why the server could not start (or stopped).
///
/// Every error names where it came from — the configuration file, and inside it the virtual
/// host, listener or referenced file — so that one line is enough to fix it.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    file: Option<PathBuf>,
    message: String,
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
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            file: None,
            message: message.into(),
        }
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

impl std::error::Error for Error {}
