//! The embedded default starts, and each printed curl command's request answers as
//! printed — run here with Rust clients over HTTP/1.1 and HTTP/2.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::support::{Client, ClientId, Proto, request, scratch_dir};

const BIN: &str = env!("CARGO_BIN_EXE_misdirect");

struct Printed {
    status: u16,
    reason: Option<String>,
    cacert: String,
    sni: String,
    connect: SocketAddr,
    host: Option<String>,
    cert: Option<(String, String)>,
}

/// Reads `# expect STATUS [REASON]: ...` and the `curl` line after it.
fn parse(expect: &str, curl: &str) -> Printed {
    let head = expect.strip_prefix("# expect ").unwrap();
    let head = head.split(':').next().unwrap();
    let mut words = head.split_whitespace();
    let status = words.next().unwrap().parse().unwrap();
    let reason = words.next().map(str::to_string);
    let mut tokens = curl.split_whitespace().peekable();
    assert_eq!(tokens.next(), Some("curl"));
    let (mut cacert, mut resolve, mut host, mut cert, mut key, mut url) =
        (None, None, None, None, None, None);
    while let Some(token) = tokens.next() {
        match token {
            "--cacert" => cacert = tokens.next().map(str::to_string),
            "--resolve" => resolve = tokens.next().map(str::to_string),
            "--cert" => cert = tokens.next().map(str::to_string),
            "--key" => key = tokens.next().map(str::to_string),
            "-H" => {
                assert_eq!(tokens.next(), Some("'Host:"));
                host = tokens.next().map(|h| h.trim_end_matches('\'').to_string());
            }
            other if other.starts_with("https://") => url = Some(other.to_string()),
            other => panic!("unexpected curl argument {other}"),
        }
    }
    let resolve = resolve.unwrap();
    let (name, rest) = resolve.split_once(':').unwrap();
    let (port, ip) = rest.split_once(':').unwrap();
    let url = url.unwrap();
    assert!(url.starts_with(&format!("https://{name}:{port}/")), "{url}");
    Printed {
        status,
        reason,
        cacert: cacert.unwrap(),
        sni: name.to_string(),
        connect: format!("{ip}:{port}").parse().unwrap(),
        host,
        cert: cert.zip(key),
    }
}

#[tokio::test]
async fn embedded_default_answers_as_printed() {
    let dir = scratch_dir("embedded");
    let mut child = Command::new(BIN)
        .args(["serve", "--port", "0", "--out-dir"])
        .arg(&dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut examples = Vec::new();
        let mut lines = BufReader::new(stdout).lines();
        while let Some(Ok(line)) = lines.next() {
            if line.starts_with("# expect ") {
                let curl = lines.next().unwrap().unwrap();
                examples.push((line, curl));
                if examples.len() == 5 {
                    let _ = tx.send(std::mem::take(&mut examples));
                }
            }
        }
        // Keep draining to EOF: closing the pipe early would make the server's writes fail.
        let _ = tx.send(examples);
    });
    let examples = rx.recv_timeout(Duration::from_secs(30));
    let examples = match examples {
        Ok(examples) => examples,
        Err(_) => {
            child.kill().unwrap();
            panic!("the embedded default printed no examples");
        }
    };
    assert_eq!(examples.len(), 5);
    let statuses: Vec<&str> = examples.iter().map(|(e, _)| &e[9..12]).collect();
    assert_eq!(statuses, ["200", "200", "421", "421", "200"]);

    let mut failures = Vec::new();
    for (expect, curl) in &examples {
        let printed = parse(expect, curl);
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&printed.cacert).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let cert = printed.cert.as_ref().map(|(cert, key)| ClientId {
            chain: CertificateDer::pem_file_iter(cert)
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap(),
            key: std::sync::Arc::new(PrivateKeyDer::from_pem_file(key).unwrap()),
        });
        for proto in [Proto::H1, Proto::H2] {
            let client =
                Client::new(&roots, Some(&printed.sni), &printed.sni, proto).cert(cert.clone());
            let authority = printed
                .host
                .clone()
                .unwrap_or_else(|| format!("{}:{}", printed.sni, printed.connect.port()));
            let got = match client.connect(printed.connect).await {
                Ok(mut conn) => conn.send(request(proto, Some(&authority), &[])).await,
                Err(err) => Err(err.to_string()),
            };
            match got {
                Ok(resp) if resp.status == printed.status && resp.reason() == printed.reason => {}
                other => failures.push(format!("{curl} ({proto:?}): {other:?}")),
            }
        }
    }
    child.kill().unwrap();
    let _ = child.wait();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
