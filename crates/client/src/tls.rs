//! The rustls pieces of a connection: the verifier of a client without trust anchors, a
//! verifier that records instead of refusing, and a client-certificate resolver that notes
//! whether the server asked and got one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rustls::client::ResolvesClientCert;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// The verifier of a client built without trust anchors: every server certificate is
/// refused as issued by an unknown authority, so a handshake fails with a clear error
/// rather than the builder.
#[derive(Debug)]
pub(crate) struct TrustsNobody(pub(crate) Arc<CryptoProvider>);

impl ServerCertVerifier for TrustsNobody {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Err(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer,
        ))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Runs the client's verifier and keeps its answer, but lets the handshake go on whatever
/// it says. The handshake signatures are still checked by the inner verifier, so the peer
/// does hold the key of the certificate it presented.
#[derive(Debug)]
pub(crate) struct Recording {
    pub(crate) inner: Arc<dyn ServerCertVerifier>,
    pub(crate) outcome: Arc<Mutex<Option<Result<(), rustls::Error>>>>,
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let outcome = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        *self.outcome.lock().unwrap_or_else(PoisonError::into_inner) = Some(outcome.map(|_| ()));
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// What one handshake's client-certificate exchange did: did the server ask for a
/// certificate (a CertificateRequest, RFC 8446 §4.3.2), and did the client present one?
#[derive(Clone, Debug, Default)]
pub(crate) struct ClientAuthNotes {
    pub(crate) requested: Arc<AtomicBool>,
    pub(crate) presented: Arc<AtomicBool>,
}

impl ClientAuthNotes {
    pub(crate) fn requested(&self) -> bool {
        self.requested.load(Ordering::Acquire)
    }

    pub(crate) fn presented(&self) -> bool {
        self.presented.load(Ordering::Acquire)
    }
}

/// A client certificate resolver that notes when the server asks and when it hands out a
/// certificate.
#[derive(Debug)]
pub(crate) struct Noting {
    pub(crate) inner: Arc<dyn ResolvesClientCert>,
    pub(crate) notes: ClientAuthNotes,
}

impl ResolvesClientCert for Noting {
    fn resolve(
        &self,
        root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.notes.requested.store(true, Ordering::Release);
        let key = self.inner.resolve(root_hint_subjects, sigschemes);
        if key.is_some() {
            self.notes.presented.store(true, Ordering::Release);
        }
        key
    }

    fn has_certs(&self) -> bool {
        // Asked also without a certificate, so that a request for one is noticed.
        true
    }
}
