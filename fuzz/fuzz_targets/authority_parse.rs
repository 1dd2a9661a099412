#![no_main]
use libfuzzer_sys::fuzz_target;
use misdirect_authority::Authority;

// Never panics; the fast path and the general parser give the same answer; whatever parses
// re-parses from its Display to the same value.
fuzz_target!(|data: &[u8]| {
    let parsed = Authority::parse(data);
    assert_eq!(
        parsed,
        misdirect_authority::parse_without_fast_path(data),
        "{:?}",
        String::from_utf8_lossy(data)
    );
    if let Ok(a) = parsed {
        let shown = a.to_string();
        assert_eq!(Authority::parse(shown.as_bytes()), Ok(a), "{shown}");
    }
});
