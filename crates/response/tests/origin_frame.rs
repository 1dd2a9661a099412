//! The HTTP/2 ORIGIN frame, RFC 8336 §2, with the frame header of RFC 9113 §4.1.
#![allow(clippy::unwrap_used)]

use misdirect_authority::Origin;
use misdirect_response::{
    FRAME_HEADER_LEN, MAX_ENTRY_LEN, OriginFrame, OriginFrameErrorKind as Kind,
};
use proptest::prelude::*;

/// Build a payload from raw entries: (declared length, bytes).
fn payload(entries: &[(u16, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for &(len, bytes) in entries {
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

/// A frame header: length, type, flags, stream identifier (RFC 9113 §4.1).
fn header(len: usize, kind: u8, flags: u8, stream: u32) -> Vec<u8> {
    let len = u32::try_from(len).unwrap().to_be_bytes();
    let mut out = vec![len[1], len[2], len[3], kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out
}

/// RFC 8336 §2.1 layout, byte for byte.
#[test]
fn encodes_the_rfc_layout() {
    let frame = OriginFrame::from_origins(["https://a.example", "https://b.example:8443"]).unwrap();
    let expected_payload = payload(&[(17, b"https://a.example"), (22, b"https://b.example:8443")]);
    assert_eq!(&frame.to_payload()[..], &expected_payload[..]);
    assert_eq!(frame.payload_len(), expected_payload.len());

    let mut expected_frame = header(expected_payload.len(), 0x0c, 0, 0);
    expected_frame.extend_from_slice(&expected_payload);
    assert_eq!(&frame.to_frame()[..], &expected_frame[..]);

    let mut buf = Vec::new();
    frame.encode_frame(&mut buf);
    assert_eq!(buf, expected_frame);
}

/// Decoding: malformed entries skipped (§2.2), truncation rejected.
#[test]
fn decode_payload_cases() {
    type Expected = Result<&'static [&'static str], (Kind, usize)>;
    let cases: &[(&str, Vec<u8>, Expected)] = &[
        ("empty payload", vec![], Ok(&[])),
        (
            "one entry",
            payload(&[(19, b"https://example.com")]),
            Ok(&["https://example.com"]),
        ),
        (
            "duplicates kept",
            payload(&[(9, b"https://a"), (9, b"https://a")]),
            Ok(&["https://a", "https://a"]),
        ),
        (
            "zero-length entry skipped",
            payload(&[(0, b""), (9, b"https://a")]),
            Ok(&["https://a"]),
        ),
        (
            "non-ASCII entry skipped",
            payload(&[(10, "https://é".as_bytes()), (9, b"https://b")]),
            Ok(&["https://b"]),
        ),
        (
            "control byte skipped",
            payload(&[(10, b"https://a\n"), (9, b"https://b")]),
            Ok(&["https://b"]),
        ),
        ("space skipped", payload(&[(11, b"https://a b")]), Ok(&[])),
        (
            "not an origin, but ASCII: kept for the caller to parse",
            payload(&[(5, b"hello")]),
            Ok(&["hello"]),
        ),
        ("lone length byte", vec![0x00], Err((Kind::Truncated, 0))),
        (
            "length byte after a good entry",
            {
                let mut p = payload(&[(9, b"https://a")]);
                p.push(0);
                p
            },
            Err((Kind::Truncated, 11)),
        ),
        (
            "truncated length",
            payload(&[(20, b"https://example.com")]),
            Err((Kind::Truncated, 0)),
        ),
        (
            "truncated second entry",
            payload(&[(9, b"https://a"), (10, b"https://b")]),
            Err((Kind::Truncated, 11)),
        ),
        (
            "skipped entry before truncation does not hide it",
            payload(&[(0, b""), (3, b"ab")]),
            Err((Kind::Truncated, 2)),
        ),
    ];
    for (name, bytes, expected) in cases {
        let got = OriginFrame::decode_payload(bytes);
        match expected {
            Ok(origins) => {
                let frame = got.unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(frame.origins(), *origins, "{name}");
                assert_eq!(frame.flags(), 0, "{name}");
            }
            Err((kind, offset)) => {
                let err = got.expect_err(name);
                assert_eq!((err.kind(), err.offset()), (*kind, *offset), "{name}");
            }
        }
    }
}

/// Full frames: type 0xc, stream 0 (§2.2), flags kept but not checked, R bit ignored.
#[test]
fn decode_frame_cases() {
    let body = payload(&[(9, b"https://a")]);
    let with_header = |kind, flags, stream| {
        let mut f = header(body.len(), kind, flags, stream);
        f.extend_from_slice(&body);
        f
    };

    let (frame, used) = OriginFrame::decode_frame(&with_header(0x0c, 0, 0)).unwrap();
    assert_eq!(
        (frame.origins(), used),
        (&["https://a".to_owned()][..], 9 + body.len())
    );

    // Flags are reported, not refused: Appendix A leaves ignoring them to the client.
    let (frame, _) = OriginFrame::decode_frame(&with_header(0x0c, 0x01, 0)).unwrap();
    assert_eq!(frame.flags(), 0x01);
    assert_eq!(frame.origins(), ["https://a"]);

    // RFC 9113 §4.1: the reserved bit is ignored on receipt.
    let (frame, _) = OriginFrame::decode_frame(&with_header(0x0c, 0, 0x8000_0000)).unwrap();
    assert_eq!(frame.origins(), ["https://a"]);

    let cases: &[(&str, Vec<u8>, Kind, usize)] = &[
        ("stream 1", with_header(0x0c, 0, 1), Kind::NotStreamZero, 5),
        (
            "stream 2^31-1",
            with_header(0x0c, 0, 0x7fff_ffff),
            Kind::NotStreamZero,
            5,
        ),
        ("SETTINGS type", with_header(0x04, 0, 0), Kind::WrongType, 3),
        ("ALTSVC type", with_header(0x0a, 0, 0), Kind::WrongType, 3),
        ("empty buffer", vec![], Kind::Incomplete, 0),
        ("short header", vec![0, 0, 0, 0x0c], Kind::Incomplete, 4),
        (
            "payload shorter than announced",
            with_header(0x0c, 0, 0)[..FRAME_HEADER_LEN + 5].to_vec(),
            Kind::Incomplete,
            FRAME_HEADER_LEN + 5,
        ),
        (
            "entry truncated inside a complete frame",
            {
                let bad = payload(&[(12, b"https://a")]);
                let mut f = header(bad.len(), 0x0c, 0, 0);
                f.extend_from_slice(&bad);
                f
            },
            Kind::Truncated,
            FRAME_HEADER_LEN,
        ),
    ];
    for (name, bytes, kind, offset) in cases {
        let err = OriginFrame::decode_frame(bytes).expect_err(name);
        assert_eq!((err.kind(), err.offset()), (*kind, *offset), "{name}");
    }
}

/// A frame followed by more bytes: only the frame is used.
#[test]
fn decode_frame_stops_at_its_end() {
    let frame = OriginFrame::from_origins(["https://a.example"]).unwrap();
    let mut buf = frame.to_frame().to_vec();
    let first_len = buf.len();
    buf.extend_from_slice(&OriginFrame::new().to_frame());
    let (decoded, used) = OriginFrame::decode_frame(&buf).unwrap();
    assert_eq!((decoded, used), (frame, first_len));
    let (second, used2) = OriginFrame::decode_frame(&buf[used..]).unwrap();
    assert_eq!((second.is_empty(), used2), (true, FRAME_HEADER_LEN));
}

/// Building a frame refuses what a decoder would have to skip.
#[test]
fn push_refuses_bad_entries() {
    let too_long = format!("https://{}", "a".repeat(MAX_ENTRY_LEN));
    let longest = "a".repeat(MAX_ENTRY_LEN);
    let cases: &[(&str, Result<(), Kind>)] = &[
        ("https://example.com", Ok(())),
        ("", Err(Kind::EmptyEntry)),
        ("https://bücher.example", Err(Kind::InvalidEntry)),
        ("https://a b", Err(Kind::InvalidEntry)),
        ("https://a\r\n", Err(Kind::InvalidEntry)),
        (&too_long, Err(Kind::EntryTooLong)),
        (&longest, Ok(())),
    ];
    for (entry, expected) in cases {
        let mut frame = OriginFrame::from_origins(["https://first.example"]).unwrap();
        let before = frame.clone();
        let got = frame.push(entry).map_err(|e| e.kind());
        assert_eq!(got, *expected, "{:.40}", entry);
        if expected.is_err() {
            assert_eq!(frame, before, "a refused entry leaves the frame unchanged");
            assert_eq!(
                frame.push(entry).unwrap_err().offset(),
                23,
                "payload offset"
            );
        } else {
            assert_eq!(frame.payload_len(), 23 + 2 + entry.len());
        }
    }
}

/// The payload may not outgrow the 24-bit frame length (RFC 9113 §4.1).
#[test]
fn payload_limit() {
    let entry = "a".repeat(MAX_ENTRY_LEN);
    let mut frame = OriginFrame::new();
    // 256 entries of 65,537 bytes = 16,777,472 > 16,777,215.
    let mut refused = None;
    for i in 0..256 {
        if let Err(e) = frame.push(&entry) {
            refused = Some((i, e.kind()));
            break;
        }
    }
    assert_eq!(refused, Some((255, Kind::PayloadTooLong)));
    assert_eq!(frame.len(), 255);
    let (decoded, _) = OriginFrame::decode_frame(&frame.to_frame()).unwrap();
    assert_eq!(decoded, frame);
}

/// Entries made from parsed origins decode back to the same origins: the intended use with
/// `misdirect_authority::Origin`.
#[test]
fn origins_from_the_authority_crate() {
    let origins: Vec<Origin> = [
        "https://Example.COM:443",
        "https://[2001:db8::1]:8443",
        "https://xn--bcher-kva.example",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    let frame = OriginFrame::from_origins(origins.iter().map(ToString::to_string)).unwrap();
    let decoded = OriginFrame::decode_payload(&frame.to_payload()).unwrap();
    let reparsed: Vec<Origin> = decoded
        .origins()
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(reparsed, origins);
}

fn visible_ascii() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[!-~]{1,40}").unwrap()
}

proptest! {
    /// decode(encode(f)) == f, for payloads and whole frames.
    #[test]
    fn round_trip(origins in proptest::collection::vec(visible_ascii(), 0..20)) {
        let frame = OriginFrame::from_origins(&origins).unwrap();
        prop_assert_eq!(frame.origins(), &origins[..]);
        prop_assert_eq!(OriginFrame::decode_payload(&frame.to_payload()).unwrap(), frame.clone());
        let wire = frame.to_frame();
        let (decoded, used) = OriginFrame::decode_frame(&wire).unwrap();
        prop_assert_eq!(used, wire.len());
        prop_assert_eq!(decoded, frame);
    }

    /// Whatever decodes re-encodes to a payload that decodes to the same entries, and
    /// keeps exactly the well-formed entries of the input, in order.
    #[test]
    fn decode_keeps_well_formed_entries(entries in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..12), 0..12)) {
        let mut raw = Vec::new();
        for e in &entries {
            raw.extend_from_slice(&u16::try_from(e.len()).unwrap().to_be_bytes());
            raw.extend_from_slice(e);
        }
        let frame = OriginFrame::decode_payload(&raw).unwrap();
        let expected: Vec<String> = entries
            .iter()
            .filter(|e| !e.is_empty() && e.iter().all(|b| (0x21..=0x7e).contains(b)))
            .map(|e| String::from_utf8(e.clone()).unwrap())
            .collect();
        prop_assert_eq!(frame.origins(), &expected[..]);
        prop_assert_eq!(OriginFrame::decode_payload(&frame.to_payload()).unwrap(), frame);
    }

    /// Random bytes never panic; a good payload cut inside its last entry is rejected there.
    #[test]
    fn arbitrary_and_truncated(bytes in proptest::collection::vec(any::<u8>(), 0..64), origins in proptest::collection::vec(visible_ascii(), 1..5), cut in any::<prop::sample::Index>()) {
        let _ = OriginFrame::decode_payload(&bytes);
        let _ = OriginFrame::decode_frame(&bytes);
        let payload = OriginFrame::from_origins(&origins).unwrap().to_payload();
        // Cut into the last entry: between 1 byte and all but one byte of its 2 + len.
        let last_len = origins.last().unwrap().len();
        let cut = cut.index(last_len + 1) + 1;
        let err = OriginFrame::decode_payload(&payload[..payload.len() - cut]).unwrap_err();
        prop_assert_eq!(err.kind(), Kind::Truncated);
        prop_assert_eq!(err.offset(), payload.len() - 2 - last_len);
    }
}
