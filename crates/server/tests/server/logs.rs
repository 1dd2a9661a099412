//! What the logs look like where they are read: no colour codes in a file or pipe, numbers as
//! JSON numbers, and a warning for a default virtual host that requires client certificates.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::fixtures::Site;

const BIN: &str = env!("CARGO_BIN_EXE_misdirect");

/// Runs `misdirect serve --config path` with logs piped, collects stderr lines until `count`
/// of them contain "listening" (or a timeout), and stops the server.
fn lines_until_listening(path: &Path, format: &str, count: usize) -> Vec<String> {
    let mut child: Child = Command::new(BIN)
        .args(["serve", "--log-format", format, "--config"])
        .arg(path)
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    while lines
        .iter()
        .filter(|l: &&String| l.contains("listening"))
        .count()
        < count
    {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => lines.push(line),
            Err(_) => break,
        }
    }
    child.kill().unwrap();
    let _ = child.wait();
    lines
}

#[test]
fn human_logs_into_a_pipe_have_no_colour_codes() {
    let site = Site::new("logs-human");
    let path = site.write("human.toml", &site.config("secure", ""));
    let lines = lines_until_listening(&path, "human", 1);
    assert!(
        lines.iter().any(|l| l.contains("listening")),
        "no listening line: {lines:?}"
    );
    for line in &lines {
        assert!(!line.contains('\u{1b}'), "colour codes in {line:?}");
    }
}

/// Two listeners: one with public ports 443 and 8443, one on its own port whose default
/// virtual host requires client certificates.
#[test]
fn json_logs_ports_as_numbers_and_warn_about_a_client_cert_default() {
    let site = Site::new("logs-json");
    let text = site.config(
        "secure",
        "\n[[listener]]\naddr = \"127.0.0.1:0\"\ndefault_vhost = \"secure.test\"",
    );
    let path = site.write("json.toml", &text);
    let lines: Vec<Value> = lines_until_listening(&path, "json", 3)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let listening: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "listening")
        .collect();
    assert_eq!(listening.len(), 3, "{lines:?}");
    let port_of = |line: &Value| {
        let addr: std::net::SocketAddr = line["addr"].as_str().unwrap().parse().unwrap();
        addr.port()
    };
    // The first listener, once per public port; the second on its listen port.
    assert_eq!(listening[0]["public_port"], 443);
    assert_eq!(listening[1]["public_port"], 8443);
    assert_eq!(listening[0]["addr"], listening[1]["addr"]);
    assert_eq!(
        listening[2]["public_port"].as_u64(),
        Some(u64::from(port_of(listening[2])))
    );
    for line in &listening {
        assert!(line["public_port"].is_u64(), "{line}");
        assert!(line["vhosts"].is_u64(), "{line}");
        assert!(line.get("ports").is_none(), "{line}");
    }

    let warnings: Vec<&Value> = lines
        .iter()
        .filter(|l| l["level"] == "WARN" && l["vhost"] == "secure.test")
        .collect();
    assert_eq!(warnings.len(), 1, "{lines:?}");
    let message = warnings[0]["message"].as_str().unwrap();
    assert!(
        message.contains("the default virtual host \"secure.test\""),
        "{message}"
    );
    assert!(
        message.contains("requires a client certificate"),
        "{message}"
    );
    assert!(message.contains("set default_vhost to"), "{message}");
    // The listener as configured.
    assert_eq!(warnings[0]["listener"], "127.0.0.1:0");
}

/// SIGHUP (what `systemctl reload` sends) reloads the configuration file and keeps the
/// process serving; a file that fails to load is logged with its reason and changes
/// nothing.
#[cfg(unix)]
#[test]
fn sighup_reloads_and_a_broken_file_is_logged() {
    let site = Site::new("logs-sighup");
    let text = site.config("secure", "");
    let path = site.write("hup.toml", &text);
    let mut child: Child = Command::new(BIN)
        .args(["serve", "--log-format", "json", "--config"])
        .arg(&path)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let Ok(value) = serde_json::from_str(&line) else {
                continue;
            };
            if tx.send(value).is_err() {
                break;
            }
        }
    });
    let wait_for = |message: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(line)
                    if line["message"]
                        .as_str()
                        .is_some_and(|m| m.starts_with(message)) =>
                {
                    return Some(line);
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        None
    };
    let hangup = || {
        let status = Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    assert!(wait_for("listening").is_some());

    hangup();
    assert!(wait_for("configuration reloaded").is_some());

    std::fs::write(&path, text.replace("shared.key", "gone.key")).unwrap();
    hangup();
    let failed = wait_for("reload failed").expect("a failed reload is logged");
    assert!(
        failed["error"].as_str().unwrap().contains("gone.key"),
        "{failed}"
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "SIGHUP ended the server"
    );
    child.kill().unwrap();
    let _ = child.wait();
}
