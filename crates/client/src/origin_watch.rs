//! Reading the server's ORIGIN frames (RFC 8336) below `h2`, which drops frames of unknown
//! types on receipt (RFC 9113 §4.1, §5.5) and offers no hook for them.
//!
//! [`OriginWatch`] wraps the TLS stream `h2` reads from. Every byte still reaches `h2`; on
//! the way, [`FrameScanner`] follows the frame headers of the server's byte stream (the
//! server sends no preface of its own besides its SETTINGS frame, RFC 9113 §3.4, so the
//! first byte starts a frame) and hands each complete ORIGIN frame on stream 0 to a sink.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use misdirect_response::{FRAME_HEADER_LEN, ORIGIN_FRAME_TYPE, OriginFrame};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Largest ORIGIN payload kept: `h2`'s client never raises its `SETTINGS_MAX_FRAME_SIZE`
/// above the initial 16,384 bytes (RFC 9113 §6.5.2), so a longer frame is a connection
/// error there anyway and is not buffered here.
const MAX_ORIGIN_PAYLOAD: usize = 16_384;

/// Flags a client must find clear before it uses an ORIGIN frame (RFC 8336 Appendix A:
/// 0x1, 0x2, 0x4 and 0x8 are reserved for future use and a frame carrying any is ignored).
const RESERVED_FLAGS: u8 = 0x0f;

/// A sans-IO follower of an HTTP/2 byte stream from a server: bytes in, ORIGIN frames out.
#[derive(Debug, Default)]
pub(crate) struct FrameScanner {
    /// The header of the frame being read, `filled` bytes of it so far.
    header: [u8; FRAME_HEADER_LEN],
    filled: usize,
    /// After a complete header: the payload bytes still to come.
    remaining: usize,
    /// The ORIGIN frame being collected (header included), when the current frame is one
    /// that counts.
    origin: Option<Vec<u8>>,
}

impl FrameScanner {
    /// A scanner at the start of the server's byte stream.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Consumes the next bytes of the stream, in order; calls `sink` with every ORIGIN frame
    /// that completes within them. ORIGIN frames on other streams are ignored (RFC 8336
    /// §2.2), and so are frames with a reserved flag set (RFC 8336 Appendix A) and frames
    /// whose entries run past their end.
    pub(crate) fn feed(&mut self, mut bytes: &[u8], mut sink: impl FnMut(OriginFrame)) {
        while !bytes.is_empty() {
            if self.filled < FRAME_HEADER_LEN {
                let take = (FRAME_HEADER_LEN - self.filled).min(bytes.len());
                self.header[self.filled..self.filled + take].copy_from_slice(&bytes[..take]);
                self.filled += take;
                bytes = &bytes[take..];
                if self.filled == FRAME_HEADER_LEN {
                    self.start_payload(&mut sink);
                }
                continue;
            }
            let take = self.remaining.min(bytes.len());
            if let Some(frame) = &mut self.origin {
                frame.extend_from_slice(&bytes[..take]);
            }
            self.remaining -= take;
            bytes = &bytes[take..];
            if self.remaining == 0 {
                self.finish(&mut sink);
            }
        }
    }

    /// A header is complete: decide whether its payload is collected or skipped.
    fn start_payload(&mut self, sink: &mut impl FnMut(OriginFrame)) {
        let [l0, l1, l2, kind, flags, s0, s1, s2, s3] = self.header;
        let len = usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2);
        // RFC 9113 §4.1: the reserved bit of the stream identifier is ignored on receipt.
        let stream = u32::from_be_bytes([s0, s1, s2, s3]) & 0x7fff_ffff;
        self.remaining = len;
        self.origin = (kind == ORIGIN_FRAME_TYPE
            && stream == 0
            && flags & RESERVED_FLAGS == 0
            && len <= MAX_ORIGIN_PAYLOAD)
            .then(|| {
                let mut frame = Vec::with_capacity(FRAME_HEADER_LEN + len);
                frame.extend_from_slice(&self.header);
                frame
            });
        if len == 0 {
            self.finish(sink);
        }
    }

    /// The current frame's payload is complete.
    fn finish(&mut self, sink: &mut impl FnMut(OriginFrame)) {
        self.filled = 0;
        if let Some(frame) = self.origin.take()
            && let Ok((frame, _)) = OriginFrame::decode_frame(&frame)
        {
            sink(frame);
        }
    }
}

/// A server connection's I/O seen by an HTTP/2 client, with every ORIGIN frame the server
/// sends handed to `sink` as it passes. Writes pass straight through.
pub(crate) struct OriginWatch<IO, F> {
    inner: IO,
    scanner: FrameScanner,
    sink: F,
}

impl<IO, F> std::fmt::Debug for OriginWatch<IO, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OriginWatch")
            .field("scanner", &self.scanner)
            .finish_non_exhaustive()
    }
}

impl<IO, F: FnMut(OriginFrame)> OriginWatch<IO, F> {
    /// Wraps `inner` before the server's first byte is read.
    pub(crate) fn new(inner: IO, sink: F) -> Self {
        Self {
            inner,
            scanner: FrameScanner::new(),
            sink,
        }
    }
}

impl<IO: AsyncRead + Unpin, F: FnMut(OriginFrame) + Unpin> AsyncRead for OriginWatch<IO, F> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        this.scanner.feed(&buf.filled()[before..], &mut this.sink);
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncWrite + Unpin, F: Unpin> AsyncWrite for OriginWatch<IO, F> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use tokio::io::AsyncReadExt;

    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
        let mut out = vec![len[1], len[2], len[3], kind, flags];
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    fn origin_payload(origins: &[&str]) -> Vec<u8> {
        OriginFrame::from_origins(origins.iter().copied())
            .unwrap()
            .to_payload()
            .to_vec()
    }

    /// A server's first bytes: SETTINGS, an ORIGIN frame, frames that must be ignored
    /// (ORIGIN on stream 1, RFC 8336 §2.2; a reserved flag, Appendix A; a DATA frame whose
    /// payload looks like an ORIGIN frame), an empty ORIGIN frame, the reserved stream bit
    /// set on stream 0 (RFC 9113 §4.1), and a truncated entry.
    fn script() -> (Vec<u8>, Vec<Vec<String>>) {
        let mut wire = frame(0x4, 0, 0, &[0, 3, 0, 0, 0, 100]);
        wire.extend(frame(
            0xc,
            0,
            0,
            &origin_payload(&["https://a.test", "https://b.test"]),
        ));
        wire.extend(frame(0xc, 0, 1, &origin_payload(&["https://evil.test"])));
        wire.extend(frame(0xc, 0x1, 0, &origin_payload(&["https://flag.test"])));
        let lookalike = frame(0xc, 0, 0, &origin_payload(&["https://data.test"]));
        wire.extend(frame(0x0, 0, 1, &lookalike));
        wire.extend(frame(0xc, 0, 0, &[]));
        wire.extend(frame(
            0xc,
            0,
            0x8000_0000,
            &origin_payload(&["https://c.test"]),
        ));
        wire.extend(frame(0xc, 0, 0, &[0, 9, b'h']));
        wire.extend(frame(0x6, 0, 0, &[0; 8]));
        let want = vec![
            vec!["https://a.test".to_owned(), "https://b.test".to_owned()],
            vec![],
            vec!["https://c.test".to_owned()],
        ];
        (wire, want)
    }

    fn scan(chunks: &[&[u8]]) -> Vec<Vec<String>> {
        let mut scanner = FrameScanner::new();
        let mut got = Vec::new();
        for chunk in chunks {
            scanner.feed(chunk, |f| got.push(f.into_origins()));
        }
        got
    }

    #[test]
    fn every_split_in_two_and_three_finds_the_same_frames() {
        let (wire, want) = script();
        assert_eq!(scan(&[&wire]), want);
        for i in 0..=wire.len() {
            let (a, b) = wire.split_at(i);
            assert_eq!(scan(&[a, b]), want, "split at {i}");
            for j in i..=wire.len() {
                let (b, c) = wire[i..].split_at(j - i);
                assert_eq!(scan(&[a, b, c]), want, "split at {i} and {j}");
            }
        }
    }

    #[test]
    fn byte_by_byte_finds_the_same_frames() {
        let (wire, want) = script();
        let chunks: Vec<&[u8]> = wire.chunks(1).collect();
        assert_eq!(scan(&chunks), want);
    }

    #[test]
    fn an_oversized_origin_frame_is_skipped_not_buffered() {
        let mut wire = frame(0xc, 0, 0, &vec![0; MAX_ORIGIN_PAYLOAD + 1]);
        wire.extend(frame(0xc, 0, 0, &origin_payload(&["https://a.test"])));
        assert_eq!(scan(&[&wire]), [vec!["https://a.test".to_owned()]]);
    }

    #[tokio::test]
    async fn the_reader_passes_every_byte_through_whatever_the_read_size() {
        let (wire, want) = script();
        for size in 1..=wire.len() {
            let mut got = Vec::new();
            let mut watch =
                OriginWatch::new(&wire[..], |f: OriginFrame| got.push(f.into_origins()));
            let mut seen = Vec::new();
            let mut chunk = vec![0; size];
            loop {
                let n = watch.read(&mut chunk).await.unwrap();
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&chunk[..n]);
            }
            drop(watch);
            assert_eq!(seen, wire, "read size {size}");
            assert_eq!(got, want, "read size {size}");
        }
    }
}
