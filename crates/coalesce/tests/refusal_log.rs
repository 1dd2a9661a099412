//! `RefusalLog` over real refusals from the listener core: which lines are written, what
//! the summaries report, and that no count is lost across windows and threads.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use http::Version;
use misdirect_authority::{HostName, Scheme};
use misdirect_certmatch::Identities;
use misdirect_coalesce::{
    ClientAuth, ConnectionContext, Handshake, Listener, Outcome, Reason, Refusal, RefusalLog,
    RefusalLogMode, TrustAnchorSets, UnknownHost, VirtualHost, VirtualHosts,
};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

const MINUTE: Duration = Duration::from_secs(60);

/// The events a test saw: refusal lines by level, and each summary.
#[derive(Debug, Default)]
struct Seen {
    warn: AtomicU64,
    debug: AtomicU64,
    summaries: Mutex<Vec<Summary>>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Summary {
    suppressed: u64,
    keys: u64,
    window_secs: u64,
}

impl Seen {
    fn warn(&self) -> u64 {
        self.warn.load(Relaxed)
    }

    fn debug(&self) -> u64 {
        self.debug.load(Relaxed)
    }

    fn summaries(&self) -> Vec<Summary> {
        self.summaries.lock().unwrap().clone()
    }
}

/// A subscriber that counts refusal lines per level and keeps each summary's fields.
#[derive(Clone)]
struct Capture(Arc<Seen>);

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = SummaryFields::default();
        event.record(&mut fields);
        match (fields.0, *event.metadata().level()) {
            (Some(summary), Level::WARN) => self.0.summaries.lock().unwrap().push(summary),
            (Some(_), level) => panic!("a summary at {level}"),
            (None, Level::WARN) => _ = self.0.warn.fetch_add(1, Relaxed),
            (None, Level::DEBUG) => _ = self.0.debug.fetch_add(1, Relaxed),
            (None, level) => panic!("a refusal line at {level}"),
        }
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// A summary's fields, when the event has a `suppressed` field.
#[derive(Default)]
struct SummaryFields(Option<Summary>);

impl Visit for SummaryFields {
    fn record_u64(&mut self, field: &Field, value: u64) {
        let name = field.name();
        if name == "suppressed" {
            self.0.get_or_insert_default().suppressed = value;
        } else if let Some(summary) = &mut self.0 {
            match name {
                "keys" => summary.keys = value,
                "window_secs" => summary.window_secs = value,
                _ => {}
            }
        }
    }

    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

/// Runs `f` with a capturing subscriber on this thread; returns what it saw.
fn capture(f: impl FnOnce(&Capture)) -> Arc<Seen> {
    let capture = Capture(Arc::default());
    tracing::subscriber::with_default(capture.clone(), || f(&capture));
    capture.0
}

/// a.test, b.test and secure.test share a certificate; secure.test requires client
/// certificates. Unknown hosts get a 421, or a 404 with `not_found`.
fn listener(not_found: bool) -> Listener {
    let cert = Arc::new(Identities::from_patterns(
        ["a.test", "b.test", "secure.test"].map(|n| n.parse().unwrap()),
    ));
    let staff = TrustAnchorSets::new().intern([b"staff CA".as_slice()]);
    let mut builder = VirtualHosts::builder(Scheme::Https);
    let a =
        builder.add(VirtualHost::new("a.test", cert.clone()).pattern("a.test".parse().unwrap()));
    builder.add(VirtualHost::new("b.test", cert.clone()).pattern("b.test".parse().unwrap()));
    builder.add(
        VirtualHost::new("secure.test", cert)
            .pattern("secure.test".parse().unwrap())
            .client_auth(ClientAuth::Required(staff)),
    );
    let unknown = if not_found {
        UnknownHost::NotFound
    } else {
        UnknownHost::Misdirected
    };
    Listener::new(
        builder
            .port(443)
            .default_vhost(a)
            .unknown_host(unknown)
            .build()
            .unwrap(),
    )
}

/// A connection whose ClientHello named `sni`.
fn connection(listener: &Listener, sni: &str) -> ConnectionContext {
    let name = HostName::from_sni(sni.as_bytes()).unwrap();
    let presented = listener.select(Some(&name)).unwrap();
    listener.on_handshake(Handshake::new(presented).sni(Some(name)))
}

/// The refusal of an HTTP/2 GET for `authority` on `conn`.
fn refusal(listener: &Listener, conn: &ConnectionContext, authority: &str) -> Refusal {
    let (parts, ()) = http::Request::get(format!("https://{authority}/"))
        .version(Version::HTTP_2)
        .body(())
        .unwrap()
        .into_parts();
    match listener.on_request(conn, &parts) {
        Outcome::Respond { refusal, .. } => refusal,
        other => panic!("{authority}: {other:?}"),
    }
}

fn sampled(window: Duration, per_key: u32) -> RefusalLog {
    RefusalLog::new(RefusalLogMode::Sampled { window, per_key })
}

#[test]
fn the_default_is_one_line_per_key_per_minute() {
    assert_eq!(
        RefusalLog::default().mode(),
        RefusalLogMode::Sampled {
            window: MINUTE,
            per_key: 1
        }
    );
}

#[test]
fn ten_thousand_identical_refusals_write_per_key_lines_and_one_summary() {
    let l = listener(false);
    let conn = connection(&l, "a.test");
    let unknown = refusal(&l, &conn, "c.test");
    assert_eq!(unknown.reason, Some(Reason::UnknownHost));
    for per_key in [1, 3] {
        let log = sampled(MINUTE, per_key);
        let start = Instant::now();
        let seen = capture(|_| {
            let written = (0..10_000)
                .filter(|_| log.record_at(&unknown, None, start))
                .count();
            assert_eq!(written, per_key as usize);
            // The window is not over: no summary yet.
            log.tick_at(start + MINUTE - Duration::from_millis(1));
            assert!(log.record_at(
                &refusal(&l, &conn, "d.test"),
                None,
                start + Duration::from_secs(59)
            ));
            log.tick_at(start + MINUTE);
            // Reported once: later ticks write nothing.
            log.tick_at(start + MINUTE * 2);
            log.flush();
        });
        let held = 10_000 - u64::from(per_key);
        assert_eq!(seen.warn(), u64::from(per_key) + 1, "per_key {per_key}");
        assert_eq!(
            seen.summaries(),
            [Summary {
                suppressed: held,
                keys: 1,
                window_secs: 60
            }],
            "per_key {per_key}"
        );
        assert_eq!(log.suppressed_total(), held);
    }
}

#[test]
fn the_first_refusal_after_the_window_writes_the_summary() {
    let l = listener(false);
    let conn = connection(&l, "a.test");
    let unknown = refusal(&l, &conn, "c.test");
    let log = sampled(MINUTE, 1);
    let start = Instant::now();
    let seen = capture(|capture| {
        for _ in 0..10 {
            log.record_at(&unknown, None, start);
        }
        assert_eq!(capture.0.summaries(), []);
        assert_eq!(log.suppressed_total(), 9);
        // A new window: the summary first, then this refusal's own line.
        assert!(log.record_at(&unknown, None, start + MINUTE + Duration::from_secs(5)));
    });
    assert_eq!(seen.warn(), 2);
    assert_eq!(seen.summaries().len(), 1);
    assert_eq!(seen.summaries()[0].suppressed, 9);
}

#[test]
fn each_key_gets_its_first_line() {
    let l = listener(false);
    let on_a = connection(&l, "a.test");
    let on_b = connection(&l, "b.test");
    // Keys that differ in authority, SNI, reason and target virtual host.
    let refusals = [
        refusal(&l, &on_a, "c.test"),
        refusal(&l, &on_a, "d.test"),
        refusal(&l, &on_b, "c.test"),
        refusal(&l, &on_a, "secure.test"),
        refusal(&l, &on_b, "secure.test"),
        refusal(&l, &on_a, "a.test:8443"),
    ];
    assert_eq!(refusals[3].reason, Some(Reason::ClientCertRequired));
    assert_eq!(refusals[3].target_vhost.as_deref(), Some("secure.test"));
    assert_eq!(refusals[5].reason, Some(Reason::PortNotServed));
    let log = sampled(MINUTE, 1);
    let seen = capture(|_| {
        for _ in 0..100 {
            for r in &refusals {
                log.record(r, None);
            }
        }
        log.flush();
    });
    assert_eq!(seen.warn(), 6);
    assert_eq!(
        seen.summaries(),
        [Summary {
            suppressed: 594,
            keys: 6,
            window_secs: 60
        }]
    );
}

#[test]
fn collisions_never_hold_back_a_first_line() {
    // More keys than the table has slots: buckets overflow and fingerprints collide in
    // bucket indices, yet every key's first refusal is written.
    let l = listener(false);
    let conn = connection(&l, "a.test");
    let refusals: Vec<_> = (0..10_000)
        .map(|i| refusal(&l, &conn, &format!("h{i}.test")))
        .collect();
    let log = sampled(MINUTE, 1);
    let start = Instant::now();
    let seen = capture(|_| {
        let first = refusals
            .iter()
            .filter(|r| log.record_at(r, None, start))
            .count();
        assert_eq!(first, 10_000);
        let second = refusals
            .iter()
            .filter(|r| log.record_at(r, None, start))
            .count() as u64;
        assert_eq!(second + log.suppressed_total(), 10_000);
        log.flush();
    });
    let held = log.suppressed_total();
    // The table tracks at most 4,096 keys per window; those are held back.
    assert!((1..=4_096).contains(&held), "{held}");
    assert_eq!(seen.warn(), 20_000 - held);
    assert_eq!(seen.summaries()[0].suppressed, held);
    assert_eq!(seen.summaries()[0].keys, held);
}

#[test]
fn a_new_window_logs_again() {
    let l = listener(false);
    let conn = connection(&l, "a.test");
    let unknown = refusal(&l, &conn, "c.test");
    let log = sampled(Duration::from_secs(10), 2);
    let start = Instant::now();
    let seen = capture(|_| {
        for window in 0..5 {
            let now = start + Duration::from_secs(10 * window + 3);
            let written = (0..7)
                .filter(|_| log.record_at(&unknown, None, now))
                .count();
            assert_eq!(written, 2, "window {window}");
        }
        log.flush();
    });
    assert_eq!(seen.warn(), 10);
    let summaries = seen.summaries();
    assert_eq!(summaries.len(), 5);
    assert!(
        summaries
            .iter()
            .all(|s| s.suppressed == 5 && s.keys == 1 && s.window_secs == 10)
    );
}

#[test]
fn quiet_windows_write_no_summary() {
    let l = listener(false);
    let conn = connection(&l, "a.test");
    let log = sampled(MINUTE, 1);
    let start = Instant::now();
    let seen = capture(|_| {
        // One refusal per key: nothing held back.
        log.record_at(&refusal(&l, &conn, "c.test"), None, start);
        log.record_at(&refusal(&l, &conn, "d.test"), None, start);
        log.tick_at(start + MINUTE * 3);
        log.flush();
    });
    assert_eq!(seen.warn(), 2);
    assert_eq!(seen.summaries(), []);
}

#[test]
fn every_mode_logs_every_refusal() {
    let l = listener(false);
    let conn = connection(&l, "a.test");
    let unknown = refusal(&l, &conn, "c.test");
    for mode in [
        RefusalLogMode::Every,
        RefusalLogMode::Sampled {
            window: Duration::ZERO,
            per_key: 1,
        },
    ] {
        let log = RefusalLog::new(mode);
        let seen = capture(|_| {
            assert!((0..10_000).all(|_| log.record(&unknown, None)));
            log.tick();
            log.flush();
        });
        assert_eq!(seen.warn(), 10_000, "{mode:?}");
        assert_eq!(seen.summaries(), [], "{mode:?}");
        assert_eq!(log.suppressed_total(), 0);
    }
}

#[test]
fn a_budget_of_zero_writes_summaries_only() {
    let l = listener(false);
    let conn = connection(&l, "a.test");
    let log = sampled(MINUTE, 0);
    let seen = capture(|_| {
        for host in ["c.test", "d.test", "c.test"] {
            assert!(!log.record(&refusal(&l, &conn, host), None));
        }
        log.flush();
    });
    assert_eq!(seen.warn(), 0);
    assert_eq!(
        seen.summaries(),
        [Summary {
            suppressed: 3,
            keys: 2,
            window_secs: 60
        }]
    );
}

#[test]
fn flush_reports_what_is_new_and_keeps_the_budgets() {
    let l = listener(false);
    let conn = connection(&l, "a.test");
    let unknown = refusal(&l, &conn, "c.test");
    let log = sampled(MINUTE, 1);
    let seen = capture(|_| {
        for _ in 0..4 {
            log.record(&unknown, None);
        }
        log.flush();
        log.flush();
        // The key's budget is still spent in this window.
        assert!(!log.record(&unknown, None));
        log.flush();
    });
    assert_eq!(seen.warn(), 1);
    let suppressed: Vec<_> = seen.summaries().iter().map(|s| s.suppressed).collect();
    assert_eq!(suppressed, [3, 1]);
    assert_eq!(log.suppressed_total(), 4);
}

#[test]
fn not_found_lines_are_debug_and_sampled() {
    let l = listener(true);
    let conn = connection(&l, "a.test");
    let not_found = refusal(&l, &conn, "c.test");
    assert_eq!(not_found.reason, None);
    let log = sampled(MINUTE, 1);
    let seen = capture(|_| {
        for _ in 0..100 {
            log.record(&not_found, None);
        }
        log.flush();
    });
    assert_eq!((seen.debug(), seen.warn()), (1, 0));
    assert_eq!(seen.summaries()[0].suppressed, 99);
}

#[test]
fn concurrent_refusals_lose_no_count() {
    const THREADS: u64 = 4;
    const EACH: u64 = 20_000;
    let l = listener(false);
    let conn = connection(&l, "a.test");
    let refusals: Vec<_> = (0..20)
        .map(|i| refusal(&l, &conn, &format!("k{i}.test")))
        .collect();
    // One window for the whole run, and windows of 5 ms crossed many times.
    for (window, step) in [
        (MINUTE, Duration::ZERO),
        (Duration::from_millis(5), Duration::from_micros(50)),
    ] {
        let log = sampled(window, 2);
        let start = Instant::now();
        let capture = Capture(Arc::default());
        let written = AtomicU64::new(0);
        thread::scope(|s| {
            for t in 0..THREADS {
                let (capture, log, refusals, written) =
                    (capture.clone(), &log, &refusals, &written);
                s.spawn(move || {
                    tracing::subscriber::with_default(capture, || {
                        for i in 0..EACH {
                            let r = &refusals[((i + t) % 20) as usize];
                            let now = start + step * u32::try_from(i).unwrap();
                            if log.record_at(r, None, now) {
                                written.fetch_add(1, Relaxed);
                            }
                        }
                    });
                });
            }
        });
        tracing::subscriber::with_default(capture.clone(), || log.flush());
        let seen = capture.0;
        let written = written.into_inner();
        let reported: u64 = seen.summaries().iter().map(|s| s.suppressed).sum();
        assert_eq!(
            written + log.suppressed_total(),
            THREADS * EACH,
            "{window:?}"
        );
        assert_eq!(reported, log.suppressed_total(), "{window:?}");
        assert_eq!(seen.warn(), written, "{window:?}");
        if step.is_zero() {
            // Two lines per key; a key two threads claim at once may get up to twice that.
            assert!((40..=80).contains(&written), "{written}");
        }
    }
}
