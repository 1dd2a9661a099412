//! What a connection's handshake found.

use std::net::SocketAddr;

use misdirect_authority::Origin;
use rustls::ProtocolVersion;
use rustls_pki_types::CertificateDer;

/// The HTTP version a connection speaks, as ALPN chose it (RFC 7301).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// `h2` (RFC 9113).
    Http2,
    /// `http/1.1`, or no ALPN answer (RFC 9112).
    Http11,
}

/// What the TLS handshake of a [`Connection`](crate::Connection) found.
///
/// ```no_run
/// # async fn run(client: misdirect_client::Client) -> Result<(), misdirect_client::Error> {
/// let conn = client.connect("https://a.localhost:8443", Default::default()).await?;
/// let info = conn.info();
/// println!("{:?} to {}, {} certificates", info.protocol, info.peer, info.peer_certificates.len());
/// # Ok(())
/// # }
/// ```
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct ConnectionInfo {
    /// The origin the connection was made for (its host was the SNI, unless sent without).
    pub origin: Origin,
    /// The server's address.
    pub peer: SocketAddr,
    /// HTTP/2 or HTTP/1.1.
    pub protocol: Protocol,
    /// The TLS version negotiated.
    pub tls_version: Option<ProtocolVersion>,
    /// The server's certificate chain, end entity first.
    pub peer_certificates: Vec<CertificateDer<'static>>,
    /// The verifier's answer for the origin's host: always `Ok` unless the connection was
    /// opened with [`ConnectOptions::dangerous_record_verification`](crate::ConnectOptions::dangerous_record_verification).
    pub verification: Result<(), rustls::Error>,
    /// The server asked for a client certificate (RFC 8446 §4.3.2).
    pub client_cert_requested: bool,
    /// This client presented its certificate (or resumed a session in which it had).
    pub client_cert_presented: bool,
    /// The session was resumed (RFC 8446 §2.2).
    pub resumed: bool,
}

impl ConnectionInfo {
    /// The server asked for a client certificate this client did not present.
    pub(crate) fn lacks_client_cert(&self) -> bool {
        self.client_cert_requested && !self.client_cert_presented
    }
}
