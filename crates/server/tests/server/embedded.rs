//! The embedded default starts, and each printed curl command's request answers as
//! printed — run here with Rust clients over HTTP/1.1 and HTTP/2. Its files are private,
//! never written through a symbolic link, and left alone by a server that cannot bind.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use misdirect_server::embedded::{
    CA_FILE, CLIENT_CERT_FILE, CLIENT_KEY_FILE, DEFAULT_ADDR, Embedded,
};

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

/// Starts `misdirect serve` on the embedded set-up with `--port 0` and returns the child
/// and the address it printed.
fn start_embedded(dir: &Path) -> (Child, SocketAddr) {
    let mut child = Command::new(BIN)
        .args(["serve", "--port", "0", "--out-dir"])
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.split("set-up on https://").nth(1) {
                let _ = tx.send(rest.trim().parse::<SocketAddr>().unwrap());
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(addr) => (child, addr),
        Err(_) => {
            child.kill().unwrap();
            panic!("the embedded set-up printed no address");
        }
    }
}

#[test]
fn a_server_that_cannot_bind_leaves_the_files_alone() {
    let dir = scratch_dir("embedded-second");
    let (mut first, addr) = start_embedded(&dir);
    let ca = std::fs::read(dir.join(CA_FILE)).unwrap();
    let key = std::fs::read(dir.join(CLIENT_KEY_FILE)).unwrap();
    let second = Command::new(BIN)
        .args(["serve", "--port", &addr.port().to_string(), "--out-dir"])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut second = second;
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            second.kill().unwrap();
            first.kill().unwrap();
            panic!("a second server bound the first one's port");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(second.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    first.kill().unwrap();
    let _ = first.wait();
    assert!(!status.success());
    assert!(stderr.contains("cannot listen"), "{stderr}");
    assert!(
        std::fs::read(dir.join(CA_FILE)).unwrap() == ca,
        "ca.pem was replaced"
    );
    assert!(
        std::fs::read(dir.join(CLIENT_KEY_FILE)).unwrap() == key,
        "client.key was replaced"
    );
}

#[test]
fn generating_writes_nothing() {
    let dir = scratch_dir("embedded-memory").join("out");
    let embedded = Embedded::generate(&dir, DEFAULT_ADDR).unwrap();
    assert!(!dir.exists());
    embedded.write_files().unwrap();
    for name in [CA_FILE, CLIENT_CERT_FILE, CLIENT_KEY_FILE] {
        assert!(dir.join(name).is_file(), "{name}");
    }
}

#[cfg(unix)]
mod unix {
    use std::os::unix::fs::{PermissionsExt, symlink};
    use std::path::Path;

    use misdirect_server::embedded::{
        CA_FILE, CLIENT_CERT_FILE, CLIENT_KEY_FILE, DEFAULT_ADDR, Embedded,
    };

    use crate::support::scratch_dir;

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    }

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn write_to(dir: &Path) -> Result<(), misdirect_server::Error> {
        Embedded::generate(dir, DEFAULT_ADDR)?.write_files()
    }

    #[test]
    fn a_new_directory_is_private_and_the_key_too() {
        let dir = scratch_dir("embedded-modes").join("new");
        write_to(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(CLIENT_KEY_FILE)), 0o600);
        // Certificates are public; the process umask may only take bits away.
        for name in [CA_FILE, CLIENT_CERT_FILE] {
            assert_eq!(mode(&dir.join(name)) & !0o644, 0, "{name}");
        }
        // An old key file readable by others is replaced by a private one.
        chmod(&dir.join(CLIENT_KEY_FILE), 0o644);
        write_to(&dir).unwrap();
        assert_eq!(mode(&dir.join(CLIENT_KEY_FILE)), 0o600);
        // No temporary files are left behind.
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, [CA_FILE, CLIENT_KEY_FILE, CLIENT_CERT_FILE]);
    }

    #[test]
    fn a_planted_symlink_is_not_followed() {
        let base = scratch_dir("embedded-symlink");
        let dir = base.join("out");
        std::fs::create_dir(&dir).unwrap();
        chmod(&dir, 0o700);
        let target = base.join("precious");
        std::fs::write(&target, "precious\n").unwrap();
        for name in [CLIENT_KEY_FILE, CA_FILE] {
            let link = dir.join(name);
            symlink(&target, &link).unwrap();
            let err = write_to(&dir).unwrap_err();
            let message = err.to_string();
            assert!(message.contains(&link.display().to_string()), "{message}");
            assert!(message.contains("symbolic link"), "{message}");
            assert!(message.contains("--out-dir"), "{message}");
            assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
            assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
            // Refused before anything was written.
            assert!(!dir.join(CLIENT_CERT_FILE).exists());
            std::fs::remove_file(&link).unwrap();
        }
    }

    #[test]
    fn unsafe_directories_are_refused() {
        let base = scratch_dir("embedded-unsafe");
        // A directory writable by others (like /tmp itself).
        let open = base.join("open");
        std::fs::create_dir(&open).unwrap();
        chmod(&open, 0o777);
        let err = write_to(&open).unwrap_err().to_string();
        assert!(err.contains(&open.display().to_string()), "{err}");
        assert!(err.contains("writable by group or others"), "{err}");
        assert!(std::fs::read_dir(&open).unwrap().next().is_none());
        // A directory that is a symbolic link, even to a private directory.
        let private = base.join("private");
        std::fs::create_dir(&private).unwrap();
        chmod(&private, 0o700);
        let link = base.join("link");
        symlink(&private, &link).unwrap();
        let err = write_to(&link).unwrap_err().to_string();
        assert!(err.contains("is a symbolic link"), "{err}");
        assert!(err.contains("--out-dir"), "{err}");
        assert!(std::fs::read_dir(&private).unwrap().next().is_none());
    }
}
