//! `authority` group: parse and normalise four typical authorities per iteration.
//!
//! - `misdirect`: `Authority::parse`, yielding the normalised host and port.
//! - `http`: `http::uri::Authority::from_str`, then the host lowercased and `port_u16`: the
//!   normalisation a server must add to compare hosts.
//! - `http-parse-only`: `http::uri::Authority::from_str` alone (no normalisation).
//! - `url`: `url::Host::parse` of the host (WHATWG rules: lowercases, IDNA) and the port
//!   parsed as a number; the split at `:` is done before timing.
//! - `fluent-uri`: `fluent_uri::Uri::parse` of `https://{authority}`, host lowercased, port.
//! - `misdirect-moved`: `misdirect`, but moving the authority out of its `Result` first.
//!
//! Every function reads its parser's result where the parser left it (`as_ref`), so the
//! group times parsing, not moving the result about. `misdirect-moved` shows what a move
//! right after parsing adds: the 80-byte `Authority` is copied in 16-byte blocks that
//! straddle the parser's narrower stores, and such a load waits until those stores have
//! left the store buffer (a store-forwarding stall), a few nanoseconds per parse here.
//!
//! Run: `cargo bench -p misdirect-benches --bench authority`

use std::hint::black_box;
use std::str::FromStr;

use criterion::{Criterion, criterion_group, criterion_main};

const INPUTS: [&str; 4] = [
    "www.example.com:443",
    "WWW.Example.COM",
    "[2001:db8::1]:8443",
    "192.0.2.1:80",
];

fn authority(c: &mut Criterion) {
    let urls: Vec<String> = INPUTS.iter().map(|a| format!("https://{a}")).collect();
    // url parses hosts, not authorities: split the port off beforehand (not timed).
    let split: Vec<(&str, Option<&str>)> = INPUTS
        .iter()
        .map(|a| match a.rfind(':') {
            Some(i) if !a[i..].contains(']') => (&a[..i], Some(&a[i + 1..])),
            _ => (*a, None),
        })
        .collect();
    let mut group = c.benchmark_group("authority");

    group.bench_function("misdirect", |b| {
        b.iter(|| {
            for input in INPUTS {
                let parsed = misdirect_authority::Authority::parse(black_box(input.as_bytes()));
                let a = parsed.as_ref().expect("valid");
                black_box((a.host(), a.port()));
            }
        })
    });

    group.bench_function("http", |b| {
        b.iter(|| {
            for input in INPUTS {
                let parsed = http::uri::Authority::from_str(black_box(input));
                let a = parsed.as_ref().expect("valid");
                black_box((a.host().to_ascii_lowercase(), a.port_u16()));
            }
        })
    });

    group.bench_function("http-parse-only", |b| {
        b.iter(|| {
            for input in INPUTS {
                let parsed = http::uri::Authority::from_str(black_box(input));
                black_box(parsed.as_ref().expect("valid"));
            }
        })
    });

    group.bench_function("url", |b| {
        b.iter(|| {
            for (host, port) in &split {
                let parsed = url::Host::parse(black_box(host));
                let host = parsed.as_ref().expect("valid");
                black_box((host, port.map(|p| p.parse::<u16>().expect("port"))));
            }
        })
    });

    group.bench_function("fluent-uri", |b| {
        b.iter(|| {
            for u in &urls {
                let parsed = fluent_uri::Uri::parse(black_box(u.as_str()));
                let a = parsed
                    .as_ref()
                    .expect("valid")
                    .authority()
                    .expect("has authority");
                black_box((
                    a.host().to_ascii_lowercase(),
                    a.port_to_u16().expect("port"),
                ));
            }
        })
    });

    group.bench_function("misdirect-moved", |b| {
        b.iter(|| {
            for input in INPUTS {
                let a = misdirect_authority::Authority::parse(black_box(input.as_bytes()))
                    .expect("valid");
                black_box((a.host(), a.port()));
            }
        })
    });

    group.finish();
}

/// Each input alone, to see where the time goes.
fn authority_inputs(c: &mut Criterion) {
    let mut group = c.benchmark_group("authority_inputs");
    for input in INPUTS {
        group.bench_function(format!("misdirect/{input}"), |b| {
            b.iter(|| {
                let parsed = misdirect_authority::Authority::parse(black_box(input.as_bytes()));
                let a = parsed.as_ref().expect("valid");
                black_box((a.host(), a.port()));
            })
        });
        group.bench_function(format!("http-parse-only/{input}"), |b| {
            b.iter(|| {
                let parsed = http::uri::Authority::from_str(black_box(input));
                black_box(parsed.as_ref().expect("valid"));
            })
        });
    }
    group.finish();
}

criterion_group!(benches, authority, authority_inputs);
criterion_main!(benches);
