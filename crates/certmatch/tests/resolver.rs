//! `SniResolver` in real TLS handshakes over loopback.
#![cfg(feature = "rustls")]
// A test that cannot unwrap has failed: panicking is the report.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::Duration;

use misdirect_certmatch::{Chosen, ErrorKind, SniResolver};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, ring, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, ServerConfig, ServerConnection,
    SignatureScheme, StreamOwned,
};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

fn certified_key(names: &[&str]) -> (Arc<CertifiedKey>, CertificateDer<'static>) {
    let cert =
        rcgen::generate_simple_self_signed(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    let der = cert.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let signer = ring::sign::any_supported_type(&key).unwrap();
    (Arc::new(CertifiedKey::new(vec![der.clone()], signer)), der)
}

/// Accepts any certificate but records it, and still checks the handshake signature, so
/// the test sees which certificate the server proved it holds.
#[derive(Debug)]
struct Recorder {
    provider: Arc<CryptoProvider>,
    seen: Mutex<Option<CertificateDer<'static>>>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.seen.lock().unwrap() = Some(end_entity.clone().into_owned());
        Ok(ServerCertVerified::assertion())
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
            &self.provider.signature_verification_algorithms,
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// What the server saw: SNI, why and which entry, or the handshake error.
type Outcome = Result<(Option<String>, Chosen, usize), String>;

/// Serves `connections` handshakes; for each, reports what the resolver chose for the
/// connection's SNI (or the handshake error).
fn serve(resolver: Arc<SniResolver>, connections: usize) -> (SocketAddr, mpsc::Receiver<Outcome>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let config = Arc::new(
        ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone()),
    );
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for _ in 0..connections {
            let (tcp, _) = listener.accept().unwrap();
            tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let conn = ServerConnection::new(config.clone()).unwrap();
            let mut tls = StreamOwned::new(conn, tcp);
            let mut byte = [0u8; 1];
            let outcome = match tls.read_exact(&mut byte) {
                Ok(()) => {
                    let sni = tls.conn.server_name().map(str::to_owned);
                    let choice = resolver.choose(sni.as_deref()).expect("a choice was made");
                    let reply = u8::try_from(choice.entry()).unwrap();
                    tls.write_all(&[reply]).unwrap();
                    tls.flush().unwrap();
                    Ok((sni, choice.chosen(), choice.entry()))
                }
                Err(err) => Err(err.to_string()),
            };
            tx.send(outcome).unwrap();
        }
    });
    (addr, rx)
}

/// Connects with `sni` (`None`: SNI disabled); returns the certificate the server
/// presented and the entry number it reported, or the handshake error.
fn connect(addr: SocketAddr, sni: Option<&str>) -> Result<(CertificateDer<'static>, u8), String> {
    let recorder = Arc::new(Recorder {
        provider: provider(),
        seen: Mutex::new(None),
    });
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_no_client_auth();
    config.enable_sni = sni.is_some();
    let name = ServerName::try_from(sni.unwrap_or("ignored.invalid").to_string()).unwrap();
    let conn = ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tls = StreamOwned::new(conn, tcp);
    tls.write_all(b"?").map_err(|e| e.to_string())?;
    let mut reply = [0u8; 1];
    tls.read_exact(&mut reply).map_err(|e| e.to_string())?;
    let seen = recorder
        .seen
        .lock()
        .unwrap()
        .clone()
        .expect("a certificate");
    Ok((seen, reply[0]))
}

#[test]
fn handshakes_pick_exact_wildcard_and_default_certificates() {
    let (apex, apex_der) = certified_key(&["example.com"]);
    let (wild, wild_der) = certified_key(&["*.example.com"]);
    let (other, other_der) = certified_key(&["www.example.org", "api.example.org"]);
    let mut builder = SniResolver::builder();
    let apex_entry = builder.add(apex).unwrap();
    let wild_entry = builder.add(wild).unwrap();
    let other_entry = builder.add(other).unwrap();
    builder.default_entry(apex_entry);
    let resolver = Arc::new(builder.build().unwrap());

    let cases: [(Option<&str>, &CertificateDer<'_>, usize, Chosen); 5] = [
        (Some("example.com"), &apex_der, apex_entry, Chosen::Exact),
        (
            Some("www.example.com"),
            &wild_der,
            wild_entry,
            Chosen::Wildcard,
        ),
        (
            Some("api.example.org"),
            &other_der,
            other_entry,
            Chosen::Exact,
        ),
        (None, &apex_der, apex_entry, Chosen::NoSni),
        (
            Some("unknown.example.net"),
            &apex_der,
            apex_entry,
            Chosen::UnknownSni,
        ),
    ];
    let (addr, rx) = serve(resolver, cases.len());
    for (sni, der, entry, chosen) in cases {
        let (seen, reported) = connect(addr, sni).unwrap_or_else(|e| panic!("{sni:?}: {e}"));
        assert_eq!(&seen, der, "{sni:?}: wrong certificate presented");
        assert_eq!(usize::from(reported), entry, "{sni:?}");
        let (server_sni, server_chosen, server_entry) = rx.recv().unwrap().unwrap();
        assert_eq!(server_sni.as_deref(), sni, "server saw another SNI");
        assert_eq!((server_chosen, server_entry), (chosen, entry), "{sni:?}");
    }
}

#[test]
fn unknown_sni_fails_the_handshake_when_configured() {
    let (apex, _) = certified_key(&["example.com"]);
    let mut builder = SniResolver::builder();
    let entry = builder.add(apex).unwrap();
    builder.default_entry(entry).default_for_unknown_sni(false);
    let resolver = Arc::new(builder.build().unwrap());
    let (addr, rx) = serve(resolver, 2);
    assert!(connect(addr, Some("unknown.example.net")).is_err());
    assert!(rx.recv().unwrap().is_err());
    // No SNI still gets the default.
    connect(addr, None).unwrap();
    assert_eq!(rx.recv().unwrap().unwrap().1, Chosen::NoSni);
}

#[test]
fn builder_rejects_duplicates_and_missing_defaults() {
    let (a, _) = certified_key(&["a.example.com", "b.example.com"]);
    let (b, _) = certified_key(&["b.example.com"]);
    let mut builder = SniResolver::builder();
    builder.add(a).unwrap();
    builder.add(b).unwrap();
    let err = builder.build().unwrap_err();
    let dup = err.duplicate_entries().unwrap();
    assert_eq!(
        (dup.pattern(), dup.first(), dup.second()),
        ("b.example.com", 0, 1)
    );

    let mut builder = SniResolver::builder();
    builder.default_entry(3);
    assert_eq!(builder.build().unwrap_err().kind(), ErrorKind::UnknownEntry);
}
