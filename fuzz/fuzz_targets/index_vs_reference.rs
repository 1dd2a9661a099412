#![no_main]
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use misdirect_authority::Host;
use misdirect_certmatch::{HostIndex, Pattern};

const LABELS: [&str; 6] = ["a", "b", "www", "xn--bcher-kva", "co", "uk"];

/// Names are spelt from a few labels so that patterns and hosts collide often.
#[derive(Arbitrary, Debug)]
struct Input {
    patterns: Vec<(bool, Vec<u8>)>,
    hosts: Vec<(bool, Vec<u8>)>,
}

fn spell(labels: &[u8], upper: bool) -> String {
    let name: Vec<&str> = labels
        .iter()
        .take(4)
        .map(|&b| LABELS[usize::from(b) % 6])
        .collect();
    let name = if name.is_empty() {
        "example".to_string()
    } else {
        name.join(".")
    };
    if upper {
        name.to_ascii_uppercase()
    } else {
        name
    }
}

/// The slow reference: exact entries first, then the wildcard, by linear scan.
fn reference(entries: &[Pattern], host: &Host) -> Vec<usize> {
    let is_wild = |p: &Pattern| p.as_dns().is_some_and(|d| d.is_wildcard());
    let exact = entries.iter().position(|p| !is_wild(p) && p.covers(host));
    let wild = entries.iter().position(|p| is_wild(p) && p.covers(host));
    exact.into_iter().chain(wild).collect()
}

fn pattern((wild, labels): &(bool, Vec<u8>)) -> Option<Pattern> {
    let name = spell(labels, false);
    if *wild {
        format!("*.{name}").parse().ok()
    } else {
        name.parse().ok()
    }
}

// The index answers every query exactly as the linear reference does.
fuzz_target!(|input: Input| {
    let mut entries: Vec<Pattern> = input.patterns.iter().filter_map(pattern).collect();
    entries.sort();
    entries.dedup();
    let index = HostIndex::build(entries.iter().cloned().zip(0usize..)).unwrap();
    for (upper, labels) in &input.hosts {
        let host: Host = spell(labels, *upper).parse().unwrap();
        let got: Vec<usize> = index.lookup_all(&host).map(|m| *m.value()).collect();
        assert_eq!(got, reference(&entries, &host), "{host}");
    }
});
