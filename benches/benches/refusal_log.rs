//! Refusal log benches: what a server pays per refusal for its log line.
//!
//! `refusal_log` group, on real refusals (421 `unknown-host`) from `Listener::on_request`:
//! - `every: Refusal::log, fmt to sink (anchor: today)`: every refusal formats its line,
//!   with `tracing_subscriber::fmt` writing to `std::io::sink`: the formatting cost without
//!   the disk.
//! - `every: Refusal::log, no-op subscriber`: every refusal dispatches its line to a
//!   subscriber that enables everything and keeps nothing.
//! - `sampled: repeated key, record (held back)`: `RefusalLog::record` in the default mode
//!   for a key whose budget is spent, clock read included (target: well under 100 ns).
//! - `sampled: repeated key, record_at (held back)`: the same without reading the clock.
//! - `sampled: 1,000 keys round robin (held back)`: the same over 1,000 keys, each with
//!   its budget spent: 1,000 table cache lines instead of one.
//! - `sampled: a new key each time (lines to a no-op subscriber)`: every refusal is its
//!   key's first of the window, so every one is logged.
//! - `sampled: repeated key, 2 threads (held back)`: wall time per refusal with two
//!   threads recording the same key into one log at once.
//!
//! Run: `cargo bench -p misdirect-benches --bench refusal_log`

use std::cell::Cell;
use std::hint::black_box;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use misdirect_authority::{HostName, Scheme};
use misdirect_certmatch::Identities;
use misdirect_coalesce::{
    Handshake, Listener, Outcome, Reason, Refusal, RefusalLog, RefusalLogMode, VirtualHost,
    VirtualHosts,
};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Enables every event and keeps none of them.
struct NoOp;

impl Subscriber for NoOp {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        black_box(event);
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// `count` refusals of distinct keys: HTTP/2 requests for `h{i}.test` on a connection for
/// `a.test`, which no virtual host serves.
fn refusals(count: usize) -> Vec<Refusal> {
    let cert = Arc::new(Identities::from_patterns(["a.test"
        .parse()
        .expect("valid")]));
    let mut table = VirtualHosts::builder(Scheme::Https);
    let a = table.add(VirtualHost::new("a.test", cert).pattern("a.test".parse().expect("valid")));
    let listener = Listener::new(table.port(443).build().expect("one virtual host"));
    let sni = HostName::from_sni(b"a.test").expect("valid SNI");
    let conn = listener.on_handshake(Handshake::new(a).sni(Some(sni)));
    (0..count)
        .map(|i| {
            let (parts, ()) = http::Request::get(format!("https://h{i}.test/"))
                .version(http::Version::HTTP_2)
                .body(())
                .expect("valid request")
                .into_parts();
            match listener.on_request(&conn, &parts) {
                Outcome::Respond { refusal, .. } => refusal,
                other => panic!("h{i}.test: {other:?}"),
            }
        })
        .collect()
}

fn refusal_log(c: &mut Criterion) {
    let refusals = refusals(4_096);
    let one = &refusals[0];
    assert_eq!(one.reason, Some(Reason::UnknownHost));
    let peer = "192.0.2.7:50123".parse().ok();
    let mut group = c.benchmark_group("refusal_log");

    let fmt = tracing_subscriber::fmt()
        .with_writer(std::io::sink)
        .with_max_level(tracing::Level::WARN)
        .finish();
    tracing::subscriber::with_default(fmt, || {
        group.bench_function("every: Refusal::log, fmt to sink (anchor: today)", |b| {
            b.iter(|| black_box(one).log(peer))
        });
    });

    tracing::subscriber::with_default(NoOp, || {
        group.bench_function("every: Refusal::log, no-op subscriber", |b| {
            b.iter(|| black_box(one).log(peer))
        });

        let log = RefusalLog::default();
        log.record(one, peer);
        group.bench_function("sampled: repeated key, record (held back)", |b| {
            b.iter(|| log.record(black_box(one), peer))
        });

        let log = RefusalLog::default();
        let now = Instant::now();
        log.record_at(one, peer, now);
        group.bench_function("sampled: repeated key, record_at (held back)", |b| {
            b.iter(|| log.record_at(black_box(one), peer, now))
        });

        let log = RefusalLog::default();
        let keys = &refusals[..1_000];
        for r in keys {
            log.record_at(r, peer, now);
        }
        let next = Cell::new(0);
        group.bench_function("sampled: 1,000 keys round robin (held back)", |b| {
            b.iter(|| {
                let i = next.get();
                next.set((i + 1) % keys.len());
                log.record_at(black_box(&keys[i]), peer, now)
            })
        });

        // Each pass over the keys is a window of its own: every refusal is a first line.
        let window = Duration::from_secs(60);
        let log = RefusalLog::new(RefusalLogMode::Sampled { window, per_key: 1 });
        let (start, next) = (Instant::now(), Cell::new(0_u64));
        group.bench_function(
            "sampled: a new key each time (lines to a no-op subscriber)",
            |b| {
                b.iter(|| {
                    let i = next.get();
                    next.set(i + 1);
                    let pass = u32::try_from(i / 4_096).expect("fewer than 2^32 passes");
                    let now = start + window * pass;
                    log.record_at(black_box(&refusals[(i % 4_096) as usize]), peer, now)
                })
            },
        );
    });

    let log = RefusalLog::default();
    log.record(one, peer);
    group.bench_function("sampled: repeated key, 2 threads (held back)", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            thread::scope(|s| {
                for _ in 0..2 {
                    s.spawn(|| {
                        tracing::subscriber::with_default(NoOp, || {
                            for _ in 0..iters / 2 {
                                log.record(black_box(one), peer);
                            }
                        })
                    });
                }
            });
            start.elapsed()
        })
    });
    group.finish();
}

criterion_group!(benches, refusal_log);
criterion_main!(benches);
