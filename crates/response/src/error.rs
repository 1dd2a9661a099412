use core::fmt;

/// Why an `ORIGIN` frame could not be decoded, or an entry could not be added to one.
///
/// The kind says which rule was broken; [`offset`](OriginFrameError::offset) is the byte
/// offset in the decoded input (for a full frame, counted from the start of its header) or,
/// when building a frame, the payload offset where the refused entry would have started.
///
/// ```
/// use misdirect_response::{OriginFrame, OriginFrameErrorKind};
///
/// // An entry that claims 16 bytes but carries only 3.
/// let err = OriginFrame::decode_payload(b"\x00\x10abc").unwrap_err();
/// assert_eq!(err.kind(), OriginFrameErrorKind::Truncated);
/// assert_eq!(err.offset(), 0);
/// assert_eq!(err.to_string(), "invalid ORIGIN frame at byte 0: an entry runs past the end of the payload");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OriginFrameError {
    kind: OriginFrameErrorKind,
    offset: usize,
}

impl OriginFrameError {
    pub(crate) const fn new(kind: OriginFrameErrorKind, offset: usize) -> Self {
        Self { kind, offset }
    }

    /// Which rule the input broke.
    pub const fn kind(&self) -> OriginFrameErrorKind {
        self.kind
    }

    /// Where the problem was found; see the type's documentation.
    pub const fn offset(&self) -> usize {
        self.offset
    }
}

impl fmt::Display for OriginFrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid ORIGIN frame at byte {}: {}",
            self.offset,
            self.kind.description()
        )
    }
}

impl std::error::Error for OriginFrameError {}

/// The rule an `ORIGIN` frame or entry broke; see [`OriginFrameError`].
///
/// `Incomplete`, `Truncated`, `WrongType` and `NotStreamZero` come from decoding; `EmptyEntry`,
/// `InvalidEntry` and `EntryTooLong` only from building a frame (decoding skips such
/// entries, RFC 8336 §2.2); `PayloadTooLong` from both.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OriginFrameErrorKind {
    /// The buffer ends before the 9-byte frame header, or before the payload length the
    /// header announces (RFC 9113 §4.1). In a byte stream: read more and decode again.
    Incomplete,
    /// An `Origin-Len` field, or the entry it announces, runs past the end of the payload
    /// (RFC 8336 §2.1). The frame is malformed as a whole; RFC 9113 §4.2 would allow a
    /// connection error of type `FRAME_SIZE_ERROR`, but as `ORIGIN` is a non-critical
    /// extension, ignoring the frame is the gentler answer.
    Truncated,
    /// The frame header's type is not `ORIGIN` (0xc).
    WrongType,
    /// The frame was sent on a stream other than 0: RFC 8336 §2.2 says it is invalid and MUST
    /// be ignored (not treated as a connection error).
    NotStreamZero,
    /// An empty entry: it names no origin, so a sender has no reason to write one.
    EmptyEntry,
    /// An entry with a byte outside visible ASCII (0x21–0x7e); an ASCII serialisation of an
    /// origin (RFC 6454 §6.2) has none.
    InvalidEntry,
    /// An entry longer than 65,535 bytes, which `Origin-Len` (16 bits) cannot express.
    EntryTooLong,
    /// The payload would exceed 2²⁴ − 1 bytes, the largest an HTTP/2 frame header can
    /// announce (RFC 9113 §4.1).
    PayloadTooLong,
}

impl OriginFrameErrorKind {
    /// A plain-English description.
    pub const fn description(self) -> &'static str {
        match self {
            Self::Incomplete => "the buffer ends before the frame does",
            Self::Truncated => "an entry runs past the end of the payload",
            Self::WrongType => "the frame type is not ORIGIN (0xc)",
            Self::NotStreamZero => "the frame is not on stream 0",
            Self::EmptyEntry => "an entry is empty",
            Self::InvalidEntry => "an entry contains a byte outside visible ASCII",
            Self::EntryTooLong => "an entry is longer than 65535 bytes",
            Self::PayloadTooLong => "the payload is longer than 16777215 bytes",
        }
    }
}

impl fmt::Display for OriginFrameErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}
