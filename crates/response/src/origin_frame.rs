use bytes::{BufMut, Bytes, BytesMut};

use crate::{OriginFrameError, OriginFrameErrorKind};

/// The HTTP/2 frame type of `ORIGIN` (RFC 8336 §2.1).
pub const ORIGIN_FRAME_TYPE: u8 = 0xc;

/// Length of an HTTP/2 frame header: 24-bit length, type, flags, reserved bit and 31-bit
/// stream identifier (RFC 9113 §4.1).
pub const FRAME_HEADER_LEN: usize = 9;

/// Longest entry: `Origin-Len` is an unsigned 16-bit integer (RFC 8336 §2.1).
pub const MAX_ENTRY_LEN: usize = u16::MAX as usize;

/// Longest payload an HTTP/2 frame header can announce: 2²⁴ − 1 bytes (RFC 9113 §4.1).
///
/// A peer accepts frames up to its `SETTINGS_MAX_FRAME_SIZE` only (16,384 bytes unless it
/// says otherwise, RFC 9113 §6.5.2); check [`OriginFrame::payload_len`] against it.
pub const MAX_PAYLOAD_LEN: usize = (1 << 24) - 1;

/// An HTTP/2 `ORIGIN` frame (RFC 8336): the origins a server says a connection is
/// authoritative for, so that a client can send their requests on it without a DNS lookup
/// and without guessing.
///
/// # The rules (RFC 8336)
/// - §2.1: frame type 0xc; the payload is zero or more `Origin-Entry` fields, each an
///   unsigned 16-bit `Origin-Len` followed by that many bytes of `ASCII-Origin`, the ASCII
///   serialisation of an origin (RFC 6454 §6.2): `scheme "://" host [ ":" port ]`, no path,
///   no trailing slash, no wildcards. No flags are defined.
/// - §2.2: only a server sends it; it MUST be sent on stream 0 and a frame on any other
///   stream MUST be ignored; it MUST be ignored on `h2c` connections and when received from
///   a proxy; intermediaries MUST NOT forward it. An entry that does not parse as an origin
///   MUST be ignored, the rest of the frame still applies. A sender normalises case
///   (lowercase scheme and host, RFC 6454 §4).
/// - §2.3: the first `ORIGIN` frame a client processes initialises the connection's origin
///   set to the origin of the connection's SNI plus the listed entries; later frames add
///   to it; a 421 removes the origin from the set.
/// - §2.4: membership of the set replaces the DNS check for coalescing, never the
///   certificate check: the connection's certificate must still be valid for the origin.
/// - Appendix A (non-normative): a client ignores a frame with any of the flags 0x1, 0x2,
///   0x4 or 0x8 set — see [`OriginFrame::flags`].
///
/// # What this type checks
/// Entries are byte strings of visible ASCII (0x21–0x7e). Whether an entry is a valid origin
/// is for the caller to decide — `misdirect_authority::Origin::parse` does exactly that —
/// which keeps this crate free of other dependencies. Building a frame refuses empty,
/// non-ASCII and overlong entries; decoding skips them (§2.2) but rejects a frame whose
/// entries run past its end ([`OriginFrameErrorKind::Truncated`]), since nothing after that
/// point can be read reliably.
///
/// The payload form ([`encode_payload`](Self::encode_payload),
/// [`decode_payload`](Self::decode_payload)) suits HTTP/2 libraries that frame extension
/// payloads themselves; the full-frame form ([`encode_frame`](Self::encode_frame),
/// [`decode_frame`](Self::decode_frame)) adds the 9-byte header for servers that write
/// frames onto the connection themselves (the `h2` crate has no way to send `ORIGIN`).
///
/// ```
/// use misdirect_response::OriginFrame;
///
/// let frame = OriginFrame::from_origins(["https://example.com", "https://cdn.example.com:8443"])?;
/// let wire = frame.to_frame();
/// assert_eq!(&wire[..9], b"\x00\x00\x33\x0c\x00\x00\x00\x00\x00");
/// let (decoded, used) = OriginFrame::decode_frame(&wire)?;
/// assert_eq!(used, wire.len());
/// assert_eq!(decoded, frame);
/// # Ok::<(), misdirect_response::OriginFrameError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct OriginFrame {
    origins: Vec<String>,
    payload_len: usize,
    flags: u8,
}

impl OriginFrame {
    /// An empty frame: valid, and on its own enough to initialise a client's origin set to
    /// the connection's SNI origin only (RFC 8336 §2.3).
    ///
    /// ```
    /// use misdirect_response::OriginFrame;
    ///
    /// let frame = OriginFrame::new();
    /// assert!(frame.is_empty());
    /// assert_eq!(&frame.to_frame()[..], b"\x00\x00\x00\x0c\x00\x00\x00\x00\x00");
    /// ```
    pub const fn new() -> Self {
        Self {
            origins: Vec::new(),
            payload_len: 0,
            flags: 0,
        }
    }

    /// A frame listing these origins in order, each checked as [`push`](Self::push) does.
    ///
    /// ```
    /// use misdirect_response::{OriginFrame, OriginFrameErrorKind};
    ///
    /// let frame = OriginFrame::from_origins(["https://a.example", "https://b.example"])?;
    /// assert_eq!(frame.origins(), ["https://a.example", "https://b.example"]);
    ///
    /// let err = OriginFrame::from_origins(["https://a.example", "https://bé.example"]).unwrap_err();
    /// assert_eq!(err.kind(), OriginFrameErrorKind::InvalidEntry);
    /// # Ok::<(), misdirect_response::OriginFrameError>(())
    /// ```
    pub fn from_origins<I, S>(origins: I) -> Result<Self, OriginFrameError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut frame = Self::new();
        for origin in origins {
            frame.push(origin.as_ref())?;
        }
        Ok(frame)
    }

    /// Append one entry: the ASCII serialisation of an origin, such as
    /// `https://example.com` or `https://example.com:8443`.
    ///
    /// Refused when empty, when it holds a byte outside visible ASCII, when it is longer
    /// than [`MAX_ENTRY_LEN`], or when the payload would exceed [`MAX_PAYLOAD_LEN`]. It is
    /// not checked to be an origin; pass the `Display` of a parsed origin.
    pub fn push(&mut self, origin: &str) -> Result<(), OriginFrameError> {
        let at = self.payload_len;
        let error = |kind| Err(OriginFrameError::new(kind, at));
        if origin.is_empty() {
            return error(OriginFrameErrorKind::EmptyEntry);
        }
        if !origin.bytes().all(is_visible_ascii) {
            return error(OriginFrameErrorKind::InvalidEntry);
        }
        if origin.len() > MAX_ENTRY_LEN {
            return error(OriginFrameErrorKind::EntryTooLong);
        }
        let payload_len = self.payload_len + 2 + origin.len();
        if payload_len > MAX_PAYLOAD_LEN {
            return error(OriginFrameErrorKind::PayloadTooLong);
        }
        self.origins.push(origin.to_owned());
        self.payload_len = payload_len;
        Ok(())
    }

    /// The entries, in frame order; duplicates are kept.
    pub fn origins(&self) -> &[String] {
        &self.origins
    }

    /// The entries, by value.
    pub fn into_origins(self) -> Vec<String> {
        self.origins
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.origins.len()
    }

    /// Whether the frame lists no origin.
    pub fn is_empty(&self) -> bool {
        self.origins.is_empty()
    }

    /// The flags of a decoded frame; 0 for a frame built here, which is what is sent.
    ///
    /// RFC 8336 defines none; its Appendix A has a client ignore a frame with any of 0x1,
    /// 0x2, 0x4 or 0x8 set, leaving room for future extensions.
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// Length of the encoded payload in bytes: two per entry plus the entries.
    pub fn payload_len(&self) -> usize {
        self.payload_len
    }

    /// Write the payload: each entry as `Origin-Len` (big-endian u16) and its bytes.
    pub fn encode_payload<B: BufMut>(&self, dst: &mut B) {
        for origin in &self.origins {
            // `push` and `decode_payload` keep every entry within MAX_ENTRY_LEN.
            let len = u16::try_from(origin.len()).unwrap_or(u16::MAX);
            dst.put_u16(len);
            dst.put_slice(origin.as_bytes());
        }
    }

    /// Write the whole frame: the 9-byte header (length, type 0xc, flags 0, stream 0;
    /// RFC 9113 §4.1) and the payload.
    pub fn encode_frame<B: BufMut>(&self, dst: &mut B) {
        // `payload_len` is kept within MAX_PAYLOAD_LEN, which fits the 24-bit field.
        dst.put_uint(self.payload_len as u64, 3);
        dst.put_u8(ORIGIN_FRAME_TYPE);
        dst.put_u8(0);
        dst.put_u32(0);
        self.encode_payload(dst);
    }

    /// The payload as [`Bytes`].
    pub fn to_payload(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(self.payload_len);
        self.encode_payload(&mut buf);
        buf.freeze()
    }

    /// The whole frame, header included, as [`Bytes`].
    pub fn to_frame(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(FRAME_HEADER_LEN + self.payload_len);
        self.encode_frame(&mut buf);
        buf.freeze()
    }

    /// Decode a payload (the bytes after the frame header).
    ///
    /// Entries that are empty or hold a byte outside visible ASCII are skipped (RFC 8336
    /// §2.2: an entry that does not parse is ignored); an `Origin-Len` or entry running past
    /// the end is [`Truncated`](OriginFrameErrorKind::Truncated); a payload longer than
    /// [`MAX_PAYLOAD_LEN`] is [`PayloadTooLong`](OriginFrameErrorKind::PayloadTooLong).
    ///
    /// ```
    /// use misdirect_response::OriginFrame;
    ///
    /// let payload = b"\x00\x13https://example.com\x00\x00\x00\x02\xc3\xa9";
    /// let frame = OriginFrame::decode_payload(payload)?;
    /// assert_eq!(frame.origins(), ["https://example.com"]); // empty and non-ASCII skipped
    /// # Ok::<(), misdirect_response::OriginFrameError>(())
    /// ```
    pub fn decode_payload(payload: &[u8]) -> Result<Self, OriginFrameError> {
        decode_payload_at(payload, 0)
    }

    /// Decode one whole frame from the start of `buf`; returns it and the number of bytes it
    /// used (header plus payload), so that a caller can go on with the next frame.
    ///
    /// The frame must have type 0xc ([`WrongType`](OriginFrameErrorKind::WrongType)) and
    /// stream identifier 0, the reserved bit ignored
    /// ([`NotStreamZero`](OriginFrameErrorKind::NotStreamZero): RFC 8336 §2.2 says to
    /// ignore such a frame); flags are kept in [`flags`](Self::flags), not checked. A buffer
    /// shorter than the frame is [`Incomplete`](OriginFrameErrorKind::Incomplete); the payload
    /// then decodes as [`decode_payload`](Self::decode_payload) does.
    ///
    /// ```
    /// use misdirect_response::{OriginFrame, OriginFrameErrorKind};
    ///
    /// let on_stream_1 = b"\x00\x00\x00\x0c\x00\x00\x00\x00\x01";
    /// let err = OriginFrame::decode_frame(on_stream_1).unwrap_err();
    /// assert_eq!(err.kind(), OriginFrameErrorKind::NotStreamZero);
    /// ```
    pub fn decode_frame(buf: &[u8]) -> Result<(Self, usize), OriginFrameError> {
        let Some((header, rest)) = buf.split_first_chunk::<FRAME_HEADER_LEN>() else {
            return Err(OriginFrameError::new(
                OriginFrameErrorKind::Incomplete,
                buf.len(),
            ));
        };
        let [l0, l1, l2, kind, flags, s0, s1, s2, s3] = *header;
        if kind != ORIGIN_FRAME_TYPE {
            return Err(OriginFrameError::new(OriginFrameErrorKind::WrongType, 3));
        }
        // RFC 9113 §4.1: the reserved bit MUST be ignored on receipt.
        if u32::from_be_bytes([s0, s1, s2, s3]) & 0x7fff_ffff != 0 {
            return Err(OriginFrameError::new(
                OriginFrameErrorKind::NotStreamZero,
                5,
            ));
        }
        let len = usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2);
        let Some(payload) = rest.get(..len) else {
            return Err(OriginFrameError::new(
                OriginFrameErrorKind::Incomplete,
                buf.len(),
            ));
        };
        let mut frame = decode_payload_at(payload, FRAME_HEADER_LEN)?;
        frame.flags = flags;
        Ok((frame, FRAME_HEADER_LEN + len))
    }
}

/// Decode a payload found at `base` in the caller's input; error offsets include `base`.
fn decode_payload_at(payload: &[u8], base: usize) -> Result<OriginFrame, OriginFrameError> {
    if payload.len() > MAX_PAYLOAD_LEN {
        return Err(OriginFrameError::new(
            OriginFrameErrorKind::PayloadTooLong,
            base + MAX_PAYLOAD_LEN,
        ));
    }
    let mut frame = OriginFrame::new();
    let mut rest = payload;
    while !rest.is_empty() {
        let at = base + payload.len() - rest.len();
        let truncated = || OriginFrameError::new(OriginFrameErrorKind::Truncated, at);
        let (len, after) = rest.split_first_chunk::<2>().ok_or_else(truncated)?;
        let len = usize::from(u16::from_be_bytes(*len));
        let (entry, after) = after.split_at_checked(len).ok_or_else(truncated)?;
        if !entry.is_empty() && entry.iter().copied().all(is_visible_ascii) {
            // Visible ASCII is valid UTF-8, so nothing is replaced.
            frame
                .origins
                .push(String::from_utf8_lossy(entry).into_owned());
            frame.payload_len += 2 + len;
        }
        rest = after;
    }
    Ok(frame)
}

fn is_visible_ascii(b: u8) -> bool {
    (0x21..=0x7e).contains(&b)
}
