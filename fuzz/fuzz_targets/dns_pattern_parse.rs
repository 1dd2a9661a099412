#![no_main]
use libfuzzer_sys::fuzz_target;
use misdirect_certmatch::DnsPattern;

// Never panics; an accepted pattern is the input lowercased and re-parses to itself.
fuzz_target!(|data: &[u8]| {
    if let Ok(pattern) = DnsPattern::parse(data) {
        assert!(data.eq_ignore_ascii_case(pattern.as_str().as_bytes()));
        assert_eq!(DnsPattern::parse(pattern.as_str().as_bytes()), Ok(pattern));
    }
});
