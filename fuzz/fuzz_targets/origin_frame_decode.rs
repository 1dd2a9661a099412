#![no_main]
use libfuzzer_sys::fuzz_target;
use misdirect_response::OriginFrame;

// Never panics; re-encoding a decoded frame (or payload) decodes to the same entries.
fuzz_target!(|data: &[u8]| {
    let decoded = OriginFrame::decode_frame(data).map(|(f, _)| f);
    if let Ok(frame) = decoded.or_else(|_| OriginFrame::decode_payload(data)) {
        let (again, used) = OriginFrame::decode_frame(&frame.to_frame()).expect("built frame");
        assert_eq!(
            (again.origins(), used),
            (frame.origins(), 9 + frame.payload_len())
        );
    }
});
