//! `certmatch` benches.
//!
//! `index_lookup_1m`: one lookup among 1,000,000 names (900,000 exact like
//! `h123.tenant45.example.com`, 100,000 wildcards like `*.tenant45-7.example.net`).
//! - `misdirect_exact_hit`, `misdirect_wildcard_hit`, `misdirect_miss`: `HostIndex::lookup`
//!   with an already parsed `Host` (a server has parsed the authority anyway).
//! - `std_hashmap_exact_hit`: a `HashMap<String, u32>` of the 900,000 exact names looked up
//!   with a lowercase `&str`: what rustls's `ResolvesServerCertUsingSni` does.
//!
//! Queries cycle through 4,096 distinct names in a shuffled order, so caches see a working
//! set rather than one hot key.
//!
//! `cert_match_100_sans`: a certificate with 100 SANs (98 exact names, a wildcard, an IP);
//! each iteration matches four hosts (first SAN, last name SAN, wildcard hit, miss).
//! - `misdirect`: `Identities` extracted once, then `covers`.
//! - `webpki`: `EndEntityCert` parsed once, then `verify_is_valid_for_subject_name`.
//!
//! The 1M-index build time is printed once. Bytes per name are counted by the allocator in
//! `cargo run --release -p misdirect-certmatch --example index_memory`.
//!
//! Run: `cargo bench -p misdirect-benches --bench certmatch`

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use misdirect_authority::Host;
use misdirect_certmatch::{HostIndex, HostIndexBuilder, Identities};
use rustls::pki_types::{CertificateDer, ServerName};

const EXACT: u32 = 900_000;
const WILDCARDS: u32 = 100_000;
const QUERIES: usize = 4096;

fn exact_name(i: u32) -> String {
    format!("h{}.tenant{}.example.com", i / 1000, i % 1000)
}

fn wildcard_parent(j: u32) -> String {
    format!("tenant{}-{}.example.net", j / 10, j % 10)
}

/// A fixed pseudo-random sequence (xorshift), so runs are comparable.
fn spread(n: u32) -> impl Iterator<Item = u32> {
    let mut x = 0x9e37_79b9_u32;
    std::iter::repeat_with(move || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x % n
    })
}

fn build_index() -> HostIndex<u32> {
    let mut builder = HostIndexBuilder::with_capacity((EXACT + WILDCARDS) as usize, 0);
    for i in 0..EXACT {
        builder
            .push_bytes(exact_name(i).as_bytes(), i)
            .expect("valid name");
    }
    for j in 0..WILDCARDS {
        builder
            .push_bytes(format!("*.{}", wildcard_parent(j)).as_bytes(), EXACT + j)
            .expect("valid name");
    }
    builder.build().expect("no duplicates")
}

fn host(name: &str) -> Host {
    name.parse().expect("valid host")
}

fn index_lookup_1m(c: &mut Criterion) {
    let start = Instant::now();
    let index = build_index();
    println!(
        "index_lookup_1m: built {} names in {:.0} ms",
        index.len(),
        start.elapsed().as_secs_f64() * 1e3
    );
    let start = Instant::now();
    let std_map: HashMap<String, u32> = (0..EXACT).map(|i| (exact_name(i), i)).collect();
    println!(
        "index_lookup_1m: std HashMap of {} names in {:.0} ms",
        std_map.len(),
        start.elapsed().as_secs_f64() * 1e3
    );

    let exact_names: Vec<String> = spread(EXACT).take(QUERIES).map(exact_name).collect();
    let exact_hosts: Vec<Host> = exact_names.iter().map(|n| host(n)).collect();
    let wildcard_hosts: Vec<Host> = spread(WILDCARDS)
        .take(QUERIES)
        .map(|j| host(&format!("www{j}.{}", wildcard_parent(j))))
        .collect();
    let miss_hosts: Vec<Host> = spread(EXACT)
        .take(QUERIES)
        .map(|i| host(&format!("h{}.tenant{}.example.org", i / 1000, i % 1000)))
        .collect();
    let mask = QUERIES - 1;

    let mut group = c.benchmark_group("index_lookup_1m");
    for (name, hosts, expect_hit) in [
        ("misdirect_exact_hit", &exact_hosts, true),
        ("misdirect_wildcard_hit", &wildcard_hosts, true),
        ("misdirect_miss", &miss_hosts, false),
    ] {
        assert!(
            hosts
                .iter()
                .all(|h| index.lookup(h).is_some() == expect_hit)
        );
        group.bench_function(name, |b| {
            let mut i = 0usize;
            b.iter(|| {
                let h = &hosts[i & mask];
                i = i.wrapping_add(1);
                black_box(index.lookup(black_box(h)))
            })
        });
    }
    group.bench_function("std_hashmap_exact_hit", |b| {
        let mut i = 0usize;
        b.iter(|| {
            let name = exact_names[i & mask].as_str();
            i = i.wrapping_add(1);
            black_box(std_map.get(black_box(name)))
        })
    });
    group.finish();
}

fn cert_match_100_sans(c: &mut Criterion) {
    let mut sans: Vec<String> = (0..98).map(|i| format!("host{i}.example.com")).collect();
    sans.push("*.svc.example.com".to_string());
    sans.push("192.0.2.1".to_string());
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(sans)
        .expect("params")
        .self_signed(&key)
        .expect("certificate");
    let der = CertificateDer::from(cert.der().to_vec());

    let queries = [
        "host0.example.com",
        "host97.example.com",
        "api.svc.example.com",
        "nothere.example.com",
    ];
    let hosts: Vec<Host> = queries.iter().map(|q| host(q)).collect();
    let names: Vec<ServerName<'static>> = queries
        .iter()
        .map(|q| ServerName::try_from(q.to_string()).expect("name"))
        .collect();

    let ids = Identities::from_der(&der).expect("identities");
    let ee = webpki::EndEntityCert::try_from(&der).expect("webpki parses it");
    let ours: Vec<bool> = hosts.iter().map(|h| ids.covers(h)).collect();
    let theirs: Vec<bool> = names
        .iter()
        .map(|n| ee.verify_is_valid_for_subject_name(n).is_ok())
        .collect();
    assert_eq!(ours, [true, true, true, false]);
    assert_eq!(ours, theirs);

    let mut group = c.benchmark_group("cert_match_100_sans");
    group.bench_function("misdirect", |b| {
        b.iter(|| {
            for h in &hosts {
                black_box(ids.covers(black_box(h)));
            }
        })
    });
    group.bench_function("webpki", |b| {
        b.iter(|| {
            for n in &names {
                black_box(ee.verify_is_valid_for_subject_name(black_box(n)).is_ok());
            }
        })
    });
    group.finish();
}

criterion_group!(benches, index_lookup_1m, cert_match_100_sans);
criterion_main!(benches);
