#![no_main]
use libfuzzer_sys::fuzz_target;
use misdirect_response::{SettingsSplice, SpliceState};

// The insertion point after the first SETTINGS frame does not depend on how the stream is
// cut into writes; it is exactly where a one-pass reading of the first frame header says
// that frame ends; and nothing is ever inserted after the first frame, or twice.
fuzz_target!(|input: (Vec<u8>, Vec<u8>)| {
    let (stream, cuts) = input;
    // The reference: read the first frame header in one go (RFC 9113 §4.1, §3.4).
    let expected = (stream.len() >= 9).then(|| {
        let len =
            usize::from(stream[0]) << 16 | usize::from(stream[1]) << 8 | usize::from(stream[2]);
        let id = u32::from_be_bytes([stream[5], stream[6], stream[7], stream[8]]) & 0x7fff_ffff;
        let settings = stream[3] == 0x4 && stream[4] & 0x1 == 0 && id == 0;
        (settings, 9 + len)
    });
    let mut splice = SettingsSplice::new();
    let mut at = 0;
    let mut found = None;
    let mut cuts = cuts.into_iter();
    while at < stream.len() {
        let step = usize::from(cuts.next().unwrap_or(u8::MAX)).max(1);
        let chunk = &stream[at..(at + step).min(stream.len())];
        let peeked = splice.peek(chunk);
        let fed = splice.feed(chunk);
        assert_eq!(peeked, fed, "peek and feed agree");
        if let Some(n) = fed {
            assert!(found.is_none(), "reported twice");
            assert!((1..=chunk.len()).contains(&n));
            found = Some(at + n);
        }
        at += chunk.len();
    }
    match expected {
        Some((true, end)) if end <= stream.len() => {
            assert_eq!(found, Some(end));
            assert_eq!(splice.state(), SpliceState::Found);
        }
        Some((true, _)) | None => {
            assert_eq!(found, None);
            assert_eq!(splice.state(), SpliceState::Searching);
        }
        Some((false, _)) => {
            assert_eq!(found, None);
            assert_eq!(splice.state(), SpliceState::GaveUp);
        }
    }
});
