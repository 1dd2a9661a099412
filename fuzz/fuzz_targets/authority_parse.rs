#![no_main]
use libfuzzer_sys::fuzz_target;
use misdirect_authority::Authority;

// Never panics; whatever parses re-parses from its Display to the same value.
fuzz_target!(|data: &[u8]| {
    if let Ok(a) = Authority::parse(data) {
        let shown = a.to_string();
        assert_eq!(Authority::parse(shown.as_bytes()), Ok(a), "{shown}");
    }
});
