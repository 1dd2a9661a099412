//! The client's `tracing` events, in a test binary of their own: the subscriber is the
//! process's global one, so no other test's threads race it for callsite registration.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::{Arc, Mutex};

use misdirect_coalesce::ReuseMode;

use support::Setup;

#[tokio::test(flavor = "current_thread")]
async fn coalescing_421_retries_and_origin_frames_are_debug_events() {
    let lines = Arc::new(Mutex::new(Vec::<u8>::new()));
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer({
            let lines = lines.clone();
            move || Captured(lines.clone())
        })
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let setup = Setup::start("events").await;
    let client = setup
        .with_client_cert(setup.builder(ReuseMode::DnsOverlap))
        .build()
        .unwrap();
    setup.get(&client, "a.localhost").await;
    setup.get(&client, "b.localhost").await;
    setup.get(&client, "secure.localhost").await;
    let text = String::from_utf8(lines.lock().unwrap().clone()).unwrap();
    for want in [
        "ORIGIN frame",
        "coalesced: reusing a connection made for another origin",
        "421 Misdirected Request: retrying on a fresh connection",
    ] {
        assert!(
            text.lines()
                .any(|line| line.contains("DEBUG") && line.contains(want)),
            "{want:?} not logged in:\n{text}"
        );
    }
}

/// A log writer into a shared buffer.
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
