use crate::FRAME_HEADER_LEN;

/// Frame type of SETTINGS (RFC 9113 §6.5).
const SETTINGS_FRAME_TYPE: u8 = 0x4;

/// The ACK flag of a SETTINGS frame (RFC 9113 §6.5).
const ACK_FLAG: u8 = 0x1;

/// The stream identifier's reserved bit, ignored on receipt (RFC 9113 §4.1).
const RESERVED_BIT: u32 = 1 << 31;

/// Finds, in the bytes an HTTP/2 server writes, the point right after its first SETTINGS
/// frame: where a server that cannot make its HTTP/2 library send an extension frame can
/// insert one, such as [`OriginFrame`](crate::OriginFrame) (RFC 8336; the `h2` crate has no
/// way to send it).
///
/// A server's connection preface is a SETTINGS frame, and it MUST be the first frame the
/// server sends (RFC 9113 §3.4); anything after it may follow, so the end of that frame is
/// the earliest point at which another frame is allowed. Every frame starts with a 9-byte
/// header: 24-bit payload length, type, flags, reserved bit and 31-bit stream identifier
/// (RFC 9113 §4.1).
///
/// Feed it every chunk the server writes, in order ([`feed`](Self::feed)); for each it
/// answers `Some(n)` — pass the first `n` bytes of this chunk through, insert, then the
/// rest — or `None`, the point is not in this chunk. It reads frame headers across
/// arbitrary splits, a header cut into many chunks included, and skips the payload without
/// looking at it. Once the point is found ([`SpliceState::Found`]) it answers `None` to
/// everything at no cost.
///
/// It only ever answers at the end of a SETTINGS frame without the ACK flag on stream 0,
/// and only when that frame is the first one. When the first frame is anything else (a
/// conforming server never does that), it gives up ([`SpliceState::GaveUp`]): it never
/// points into the middle of a frame and never points anywhere later, so nothing is
/// inserted at all.
///
/// ```
/// use misdirect_response::{SettingsSplice, SpliceState};
///
/// // SETTINGS with one setting (6 bytes), then WINDOW_UPDATE, written in two chunks that
/// // cut the SETTINGS frame's header.
/// let settings = b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x04\x00\x10\x00\x00";
/// let window_update = b"\x00\x00\x04\x08\x00\x00\x00\x00\x00\x00\x0f\x00\x01";
/// let mut written = settings.to_vec();
/// written.extend_from_slice(window_update);
///
/// let mut splice = SettingsSplice::new();
/// assert_eq!(splice.feed(&written[..4]), None);
/// assert_eq!(splice.state(), SpliceState::Searching);
/// assert_eq!(splice.feed(&written[4..]), Some(settings.len() - 4));
/// assert_eq!(splice.state(), SpliceState::Found);
/// assert_eq!(splice.feed(b"anything later"), None);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SettingsSplice {
    state: State,
}

/// Where a [`SettingsSplice`] stands.
///
/// ```
/// use misdirect_response::{SettingsSplice, SpliceState};
///
/// let mut splice = SettingsSplice::new();
/// splice.feed(b"\x00\x00\x00\x04\x01\x00\x00\x00\x00"); // a SETTINGS ACK first
/// assert_eq!(splice.state(), SpliceState::GaveUp);
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SpliceState {
    /// The first frame has not been seen to its end yet.
    Searching,
    /// The insertion point was reported; everything after it passes through.
    Found,
    /// The first frame is not a SETTINGS frame without ACK on stream 0: there is no safe
    /// insertion point, and nothing is to be inserted.
    GaveUp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading the first frame's header: the `have` bytes seen so far.
    Header {
        header: [u8; FRAME_HEADER_LEN],
        have: usize,
    },
    /// In the first SETTINGS frame's payload: `left` bytes to go, never 0.
    Payload {
        left: usize,
    },
    Found,
    GaveUp,
}

impl Default for State {
    fn default() -> Self {
        Self::Header {
            header: [0; FRAME_HEADER_LEN],
            have: 0,
        }
    }
}

impl SettingsSplice {
    /// A splice that has seen no byte yet.
    ///
    /// ```
    /// use misdirect_response::{SettingsSplice, SpliceState};
    ///
    /// let mut splice = SettingsSplice::new();
    /// assert_eq!(splice.state(), SpliceState::Searching);
    /// // An empty SETTINGS frame: the point is right after its header.
    /// assert_eq!(splice.feed(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"), Some(9));
    /// ```
    pub const fn new() -> Self {
        Self {
            state: State::Header {
                header: [0; FRAME_HEADER_LEN],
                have: 0,
            },
        }
    }

    /// Takes the next chunk of the server's output, which comes right after the chunks fed
    /// before. `Some(n)` (with `1 <= n <= chunk.len()`): the insertion point is after the
    /// first `n` bytes of this chunk; it is answered once. `None`: not in this chunk.
    ///
    /// Feed only bytes that were passed on: a writer whose sink may take fewer bytes than
    /// offered asks [`peek`](Self::peek) where to stop, writes up to there, and feeds what
    /// was taken.
    ///
    /// ```
    /// use misdirect_response::{SettingsSplice, SpliceState};
    ///
    /// // A WINDOW_UPDATE first: no conforming server does that, and the splice gives up.
    /// let mut splice = SettingsSplice::new();
    /// assert_eq!(splice.feed(b"\x00\x00\x04\x08\x00\x00\x00\x00\x00\x00\x0f\x00\x01"), None);
    /// assert_eq!(splice.state(), SpliceState::GaveUp);
    /// assert_eq!(splice.feed(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"), None);
    /// ```
    pub fn feed(&mut self, chunk: &[u8]) -> Option<usize> {
        let mut at = 0;
        loop {
            match &mut self.state {
                State::Header { header, have } => {
                    let take = (FRAME_HEADER_LEN - *have).min(chunk.len() - at);
                    header[*have..*have + take].copy_from_slice(&chunk[at..at + take]);
                    *have += take;
                    at += take;
                    if *have < FRAME_HEADER_LEN {
                        return None;
                    }
                    self.state = after_header(header);
                    if self.state == State::Found {
                        return Some(at);
                    }
                }
                State::Payload { left } => {
                    let rest = chunk.len() - at;
                    if rest < *left {
                        *left -= rest;
                        return None;
                    }
                    let end = at + *left;
                    self.state = State::Found;
                    return Some(end);
                }
                State::Found | State::GaveUp => return None,
            }
        }
    }

    /// What [`feed`](Self::feed) would answer for `chunk`, without taking it.
    ///
    /// ```
    /// use misdirect_response::{SettingsSplice, SpliceState};
    ///
    /// let written = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x04\x01\x00\x00\x00\x00";
    /// let mut splice = SettingsSplice::new();
    /// let stop = splice.peek(written).unwrap_or(written.len());
    /// assert_eq!(stop, 9);
    /// assert_eq!(splice.state(), SpliceState::Searching);
    /// // Suppose the sink took 5 of those 9 bytes:
    /// assert_eq!(splice.feed(&written[..5]), None);
    /// assert_eq!(splice.peek(&written[5..]), Some(4));
    /// ```
    pub fn peek(&self, chunk: &[u8]) -> Option<usize> {
        let mut copy = *self;
        copy.feed(chunk)
    }

    /// Where the splice stands.
    ///
    /// ```
    /// use misdirect_response::{SettingsSplice, SpliceState};
    ///
    /// let mut splice = SettingsSplice::new();
    /// splice.feed(b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x03");
    /// assert_eq!(splice.state(), SpliceState::Searching);
    /// splice.feed(b"\x00\x00\x00\x64");
    /// assert_eq!(splice.state(), SpliceState::Found);
    /// ```
    pub fn state(&self) -> SpliceState {
        match self.state {
            State::Header { .. } | State::Payload { .. } => SpliceState::Searching,
            State::Found => SpliceState::Found,
            State::GaveUp => SpliceState::GaveUp,
        }
    }
}

/// The state after the first frame's complete header: its payload when it is the server's
/// SETTINGS frame (RFC 9113 §3.4), or straight to the end of an empty one.
fn after_header(header: &[u8; FRAME_HEADER_LEN]) -> State {
    let [l0, l1, l2, kind, flags, s0, s1, s2, s3] = *header;
    let stream = u32::from_be_bytes([s0, s1, s2, s3]) & !RESERVED_BIT;
    if kind != SETTINGS_FRAME_TYPE || flags & ACK_FLAG != 0 || stream != 0 {
        return State::GaveUp;
    }
    match usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2) {
        0 => State::Found,
        left => State::Payload { left },
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const WINDOW_UPDATE: u8 = 0x8;
    const PING: u8 = 0x6;
    const HEADERS: u8 = 0x1;

    /// One frame: header and a payload of `len` bytes of filler.
    fn frame(kind: u8, flags: u8, stream: u32, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(FRAME_HEADER_LEN + len);
        let len24 = u32::try_from(len).expect("small test frames");
        out.extend_from_slice(&len24.to_be_bytes()[1..]);
        out.push(kind);
        out.push(flags);
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend((0..len).map(|i| (i % 251) as u8));
        out
    }

    fn concat(frames: &[Vec<u8>]) -> Vec<u8> {
        frames.concat()
    }

    /// Scripted server outputs and where the insertion point is (RFC 9113 §3.4: right after
    /// the server's first frame, SETTINGS), or `None` when the splice must give up or has not
    /// seen the frame's end.
    fn cases() -> Vec<(&'static str, Vec<u8>, Option<usize>, SpliceState)> {
        use SpliceState::{Found, GaveUp, Searching};
        vec![
            (
                "SETTINGS alone, empty",
                frame(SETTINGS_FRAME_TYPE, 0, 0, 0),
                Some(9),
                Found,
            ),
            (
                "SETTINGS alone, one setting",
                frame(SETTINGS_FRAME_TYPE, 0, 0, 6),
                Some(15),
                Found,
            ),
            (
                "SETTINGS alone, six settings",
                frame(SETTINGS_FRAME_TYPE, 0, 0, 36),
                Some(45),
                Found,
            ),
            (
                "SETTINGS + WINDOW_UPDATE + SETTINGS ACK in one write",
                concat(&[
                    frame(SETTINGS_FRAME_TYPE, 0, 0, 18),
                    frame(WINDOW_UPDATE, 0, 0, 4),
                    frame(SETTINGS_FRAME_TYPE, ACK_FLAG, 0, 0),
                ]),
                Some(27),
                Found,
            ),
            (
                "empty SETTINGS, then a second SETTINGS",
                concat(&[
                    frame(SETTINGS_FRAME_TYPE, 0, 0, 0),
                    frame(SETTINGS_FRAME_TYPE, 0, 0, 6),
                ]),
                Some(9),
                Found,
            ),
            (
                "reserved bit set on stream 0 is ignored (RFC 9113 §4.1)",
                frame(SETTINGS_FRAME_TYPE, 0, RESERVED_BIT, 6),
                Some(15),
                Found,
            ),
            (
                "unknown flags other than ACK are ignored (RFC 9113 §4.1)",
                frame(SETTINGS_FRAME_TYPE, 0xfe, 0, 12),
                Some(21),
                Found,
            ),
            (
                "first frame WINDOW_UPDATE",
                concat(&[
                    frame(WINDOW_UPDATE, 0, 0, 4),
                    frame(SETTINGS_FRAME_TYPE, 0, 0, 6),
                ]),
                None,
                GaveUp,
            ),
            (
                "first frame HEADERS",
                concat(&[frame(HEADERS, 0x4, 1, 20)]),
                None,
                GaveUp,
            ),
            (
                "first frame a SETTINGS ACK",
                concat(&[
                    frame(SETTINGS_FRAME_TYPE, ACK_FLAG, 0, 0),
                    frame(SETTINGS_FRAME_TYPE, 0, 0, 6),
                ]),
                None,
                GaveUp,
            ),
            (
                "SETTINGS on stream 1",
                frame(SETTINGS_FRAME_TYPE, 0, 1, 6),
                None,
                GaveUp,
            ),
            ("a PING first", frame(PING, 0, 0, 8), None, GaveUp),
            ("nothing written", Vec::new(), None, Searching),
            (
                "half a header",
                frame(SETTINGS_FRAME_TYPE, 0, 0, 6)[..5].to_vec(),
                None,
                Searching,
            ),
            (
                "a header and half its payload",
                frame(SETTINGS_FRAME_TYPE, 0, 0, 12)[..15].to_vec(),
                None,
                Searching,
            ),
        ]
    }

    /// Feeds `stream` cut at `cuts` (sorted offsets); returns the absolute insertion offset
    /// and the final state, checking that the point is reported at most once.
    fn run(stream: &[u8], cuts: &[usize]) -> (Option<usize>, SpliceState) {
        let mut splice = SettingsSplice::new();
        let mut found = None;
        let mut start = 0;
        for &end in cuts.iter().chain([&stream.len()]) {
            let chunk = &stream[start..end];
            let peeked = splice.peek(chunk);
            let fed = splice.feed(chunk);
            assert_eq!(peeked, fed, "peek and feed disagree at {start}..{end}");
            if let Some(n) = fed {
                assert!(found.is_none(), "point reported twice");
                assert!(
                    (1..=chunk.len()).contains(&n),
                    "{n} out of chunk {start}..{end}"
                );
                found = Some(start + n);
            }
            start = end;
        }
        (found, splice.state())
    }

    #[test]
    fn every_split_into_one_two_and_three_chunks_finds_the_same_point() {
        for (name, stream, expected, state) in cases() {
            let len = stream.len();
            for i in 0..=len {
                for j in i..=len {
                    for cuts in [&[][..], &[i][..], &[i, j][..]] {
                        assert_eq!(
                            run(&stream, cuts),
                            (expected, state),
                            "{name}: cut at {cuts:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn one_byte_at_a_time() {
        for (name, stream, expected, state) in cases() {
            let cuts: Vec<usize> = (1..stream.len()).collect();
            assert_eq!(run(&stream, &cuts), (expected, state), "{name}");
        }
    }

    #[test]
    fn nothing_after_the_point_and_peek_changes_nothing() {
        let mut splice = SettingsSplice::new();
        let settings = frame(SETTINGS_FRAME_TYPE, 0, 0, 6);
        assert_eq!(splice.peek(&settings), Some(15));
        assert_eq!(splice, SettingsSplice::new());
        assert_eq!(splice.feed(&settings), Some(15));
        for chunk in [&settings[..], b"", &frame(SETTINGS_FRAME_TYPE, 0, 0, 0)] {
            assert_eq!(splice.feed(chunk), None);
            assert_eq!(splice.state(), SpliceState::Found);
        }
    }

    #[test]
    fn largest_announced_payload_is_skipped_without_reading() {
        // A 2^24 - 1 byte payload (RFC 9113 §4.1) fed as header plus lengths only.
        let mut splice = SettingsSplice::new();
        assert_eq!(splice.feed(b"\xff\xff\xff\x04\x00\x00\x00\x00\x00"), None);
        let payload = vec![0u8; 1 << 20];
        for _ in 0..15 {
            assert_eq!(splice.feed(&payload), None);
        }
        let last = (1 << 20) - 1;
        assert_eq!(splice.feed(&payload[..last - 1]), None);
        assert_eq!(splice.feed(&payload), Some(1));
    }

    /// The reference: the point is the end of the first frame when it is a SETTINGS frame
    /// without ACK on stream 0 and the stream holds all of it.
    fn reference(stream: &[u8]) -> (Option<usize>, SpliceState) {
        let Some(header) = stream.first_chunk::<FRAME_HEADER_LEN>() else {
            return (None, SpliceState::Searching);
        };
        let len =
            usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
        let stream_id = u32::from_be_bytes([header[5], header[6], header[7], header[8]]);
        let settings = header[3] == SETTINGS_FRAME_TYPE
            && header[4] & ACK_FLAG == 0
            && stream_id & !RESERVED_BIT == 0;
        match (settings, stream.len() >= FRAME_HEADER_LEN + len) {
            (false, _) => (None, SpliceState::GaveUp),
            (true, true) => (Some(FRAME_HEADER_LEN + len), SpliceState::Found),
            (true, false) => (None, SpliceState::Searching),
        }
    }

    fn any_frame() -> impl Strategy<Value = Vec<u8>> {
        (
            prop_oneof![
                4 => Just(SETTINGS_FRAME_TYPE),
                1 => Just(WINDOW_UPDATE),
                1 => Just(PING),
                1 => Just(HEADERS),
                1 => any::<u8>(),
            ],
            prop_oneof![3 => Just(0u8), 1 => Just(ACK_FLAG), 1 => any::<u8>()],
            prop_oneof![3 => Just(0u32), 1 => Just(RESERVED_BIT), 1 => any::<u32>()],
            prop_oneof![2 => Just(0usize), 3 => 0usize..80, 1 => 0usize..600],
        )
            .prop_map(|(kind, flags, stream, len)| frame(kind, flags, stream, len))
    }

    proptest! {
        /// Random frame sequences, cut anywhere (truncated streams too): the point is where
        /// the reference puts it.
        #[test]
        fn random_frames_and_chunkings_agree_with_the_reference(
            frames in prop::collection::vec(any_frame(), 1..6),
            truncate in any::<prop::sample::Index>(),
            truncated in any::<bool>(),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let mut stream = frames.concat();
            if truncated {
                stream.truncate(truncate.index(stream.len() + 1));
            }
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
            cuts.sort_unstable();
            prop_assert_eq!(run(&stream, &cuts), reference(&stream));
        }
    }
}
