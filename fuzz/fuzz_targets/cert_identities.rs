#![no_main]
use libfuzzer_sys::fuzz_target;
use misdirect_authority::Host;
use misdirect_certmatch::{Certificate, Identities, LegacyCn};

// Arbitrary bytes as DER never panic; every exact name a certificate yields is covered.
fuzz_target!(|data: &[u8]| {
    let _ = Certificate::from_der(data);
    if let Ok(ids) = Identities::from_der_with(data, LegacyCn::Allow) {
        let exact = ids.dns_names().iter().filter(|p| !p.is_wildcard());
        // A name the authority parser refuses (e.g. a `0x`-numeric last label) is no host.
        let hosts = exact.filter_map(|p| p.as_str().parse::<Host>().ok());
        hosts.for_each(|h| assert!(h.is_ip() || ids.covers(&h)));
    }
});
