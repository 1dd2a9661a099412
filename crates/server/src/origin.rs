//! Sending an HTTP/2 `ORIGIN` frame (RFC 8336) on a connection served by `h2`, which has no
//! way to send extension frames.
//!
//! [`OriginStream`] wraps the connection's I/O and writes the frame into the bytes `h2`
//! writes, right after `h2`'s first SETTINGS frame — the server connection preface, which
//! must be the first frame a server sends (RFC 9113 §3.4). The place is found by
//! [`SettingsSplice`], sans-IO; this module only moves bytes. A client that does not know
//! the frame ignores it, as it must any frame of an unknown type (RFC 9113 §4.1, §5.5);
//! `h2`'s client does.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use misdirect_response::{SettingsSplice, SpliceState};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// An HTTP/2 server connection's I/O that inserts one frame right after the server's first
/// SETTINGS frame.
///
/// Reads pass through. Writes pass through up to the end of that SETTINGS frame; then the
/// whole frame is written to the inner I/O before any later byte, whatever the inner I/O
/// accepts per call, and everything after passes straight through (vectored writes
/// included). Flush and shutdown first finish writing the frame. When the server's first
/// frame is not SETTINGS (never, for `h2`), nothing is inserted.
///
/// `h2` owns the stream once the handshake starts, so ask a [`FrameWatch`] (from
/// [`watch`](Self::watch), taken before) whether the frame went out.
#[derive(Debug)]
pub(crate) struct OriginStream<IO> {
    inner: IO,
    phase: Phase,
    status: Arc<AtomicU8>,
}

/// What became of the frame on one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FrameStatus {
    /// There is no frame to send: none was given, or it was empty.
    NoFrame,
    /// The server's SETTINGS frame, or the frame itself, is not completely written yet.
    Pending,
    /// The frame was written, right after the server's SETTINGS frame.
    Sent,
    /// The server's first frame was not SETTINGS: nothing was inserted.
    NotSettings,
}

/// A handle on the [`FrameStatus`] of an [`OriginStream`], readable after `h2` took the
/// stream.
#[derive(Clone, Debug)]
pub(crate) struct FrameWatch(Arc<AtomicU8>);

#[derive(Debug)]
enum Phase {
    /// Passing the server's bytes through up to the end of its first SETTINGS frame, where
    /// `frame` goes.
    Searching {
        splice: SettingsSplice,
        frame: Bytes,
    },
    /// Every byte up to the insertion point is written; these bytes of the frame are not.
    Inserting(Bytes),
    /// Everything passes straight through.
    Through,
}

impl<IO> OriginStream<IO> {
    /// Wraps `inner`, the I/O an HTTP/2 server is about to write its connection preface to;
    /// `frame` is a complete frame, header included (`OriginFrame::to_frame`). `None` or an
    /// empty frame inserts nothing.
    pub(crate) fn new(inner: IO, frame: Option<Bytes>) -> Self {
        let (phase, status) = match frame {
            Some(frame) if !frame.is_empty() => (
                Phase::Searching {
                    splice: SettingsSplice::new(),
                    frame,
                },
                FrameStatus::Pending,
            ),
            _ => (Phase::Through, FrameStatus::NoFrame),
        };
        Self {
            inner,
            phase,
            status: Arc::new(AtomicU8::new(status as u8)),
        }
    }

    /// A handle that tells whether the frame was sent, also once `h2` owns the stream.
    pub(crate) fn watch(&self) -> FrameWatch {
        FrameWatch(self.status.clone())
    }

    fn set_status(&self, status: FrameStatus) {
        self.status.store(status as u8, Ordering::Release);
    }
}

impl FrameWatch {
    /// The frame's status now.
    pub(crate) fn status(&self) -> FrameStatus {
        match self.0.load(Ordering::Acquire) {
            s if s == FrameStatus::NoFrame as u8 => FrameStatus::NoFrame,
            s if s == FrameStatus::Sent as u8 => FrameStatus::Sent,
            s if s == FrameStatus::NotSettings as u8 => FrameStatus::NotSettings,
            _ => FrameStatus::Pending,
        }
    }
}

impl<IO: AsyncWrite + Unpin> OriginStream<IO> {
    /// Writes what is left of a frame whose insertion point has been passed; ready at once
    /// in every other phase.
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Phase::Inserting(rest) = &mut self.phase else {
            return Poll::Ready(Ok(()));
        };
        while !rest.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, rest))?;
            if n == 0 {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "the connection took no byte of the ORIGIN frame",
                )));
            }
            rest.advance(n.min(rest.len()));
        }
        self.phase = Phase::Through;
        self.set_status(FrameStatus::Sent);
        Poll::Ready(Ok(()))
    }

    /// Writes `buf`, pending frame first, stopping at the insertion point.
    fn poll_write_spliced(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        ready!(self.poll_frame(cx))?;
        let Phase::Searching { splice, frame } = &mut self.phase else {
            return Pin::new(&mut self.inner).poll_write(cx, buf);
        };
        // Only the bytes the inner I/O takes are fed, so the point is never passed unseen.
        let stop = splice.peek(buf).unwrap_or(buf.len());
        let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &buf[..stop]))?;
        let found = splice.feed(&buf[..n.min(stop)]).is_some();
        if found {
            // The frame goes out on the next write, flush or shutdown: this call has
            // already moved bytes and must report them.
            self.phase = Phase::Inserting(std::mem::take(frame));
        } else if splice.state() == SpliceState::GaveUp {
            self.phase = Phase::Through;
            self.set_status(FrameStatus::NotSettings);
        }
        Poll::Ready(Ok(n))
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for OriginStream<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for OriginStream<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_spliced(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_frame(cx))?;
        if let Phase::Through = this.phase {
            return Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        }
        // Before the insertion point: one slice at a time, through the splice.
        let first = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map_or(&[][..], |b| &**b);
        this.poll_write_spliced(cx, first)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_frame(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_frame(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::future::poll_fn;
    use std::task::Waker;

    use http::{Request, Response};
    use misdirect_response::{FRAME_HEADER_LEN, OriginFrame};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// What the scripted inner writer does on one call.
    #[derive(Clone, Copy, Debug)]
    enum Step {
        /// Returns `Pending` (after waking the task, as a real writer would later).
        Pending,
        /// Takes at most this many bytes; 0 is `Ok(0)`.
        Take(usize),
    }

    /// An inner writer that follows a script, then takes everything offered.
    #[derive(Debug, Default)]
    struct Scripted {
        steps: VecDeque<Step>,
        received: Vec<u8>,
        vectored: bool,
        /// `received.len()` at each completed flush.
        flushed_at: Vec<usize>,
        shutdown_at: Option<usize>,
        vectored_calls: usize,
    }

    impl Scripted {
        fn new(steps: impl IntoIterator<Item = Step>) -> Self {
            Self {
                steps: steps.into_iter().collect(),
                ..Self::default()
            }
        }

        /// How many bytes of `offered` this call takes, or `None` for `Pending`.
        fn next(&mut self, cx: &mut Context<'_>, offered: usize) -> Option<usize> {
            match self.steps.pop_front() {
                Some(Step::Pending) => {
                    cx.waker().wake_by_ref();
                    None
                }
                Some(Step::Take(n)) => Some(n.min(offered)),
                None => Some(offered),
            }
        }

        /// Flush and shutdown are pending when the script says so next, else done.
        fn poll_done(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            if let Some(Step::Pending) = self.steps.front() {
                self.steps.pop_front();
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for Scripted {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            let Some(n) = this.next(cx, buf.len()) else {
                return Poll::Pending;
            };
            this.received.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            this.vectored_calls += 1;
            let offered = bufs.iter().map(|b| b.len()).sum();
            let Some(n) = this.next(cx, offered) else {
                return Poll::Pending;
            };
            let mut left = n;
            for b in bufs {
                let take = left.min(b.len());
                this.received.extend_from_slice(&b[..take]);
                left -= take;
            }
            Poll::Ready(Ok(n))
        }

        fn is_write_vectored(&self) -> bool {
            self.vectored
        }

        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            let this = self.get_mut();
            ready!(this.poll_done(cx))?;
            this.flushed_at.push(this.received.len());
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            let this = self.get_mut();
            ready!(this.poll_done(cx))?;
            this.shutdown_at = Some(this.received.len());
            Poll::Ready(Ok(()))
        }
    }

    /// How the server side writes in [`drive`].
    #[derive(Clone, Copy, Debug, Default)]
    struct Writes {
        /// Offer each write as two `IoSlice`s, cut in the middle.
        vectored: bool,
        /// Flush after each write.
        flush_each: bool,
    }

    /// Writes each of `writes` completely through an [`OriginStream`] over `inner`, as
    /// `write_all` does (a partial write is retried with the rest, `Pending` is retried),
    /// then flushes; returns the inner writer and the frame's status.
    fn drive(
        inner: Scripted,
        frame: Option<Bytes>,
        writes: &[&[u8]],
        how: Writes,
    ) -> (Scripted, FrameStatus) {
        let mut stream = OriginStream::new(inner, frame);
        let watch = stream.watch();
        let mut cx = Context::from_waker(Waker::noop());
        let mut polls = 0;
        let mut poll = |f: &mut dyn FnMut(&mut Context<'_>) -> Poll<io::Result<usize>>| loop {
            polls += 1;
            assert!(polls < 100_000, "no progress");
            if let Poll::Ready(r) = f(&mut cx) {
                return r.expect("the scripted writer never fails");
            }
        };
        for write in writes {
            let mut at = 0;
            while at < write.len() {
                let rest = &write[at..];
                let n = poll(&mut |cx| {
                    let s = Pin::new(&mut stream);
                    if how.vectored {
                        let (a, b) = rest.split_at(rest.len() / 2);
                        s.poll_write_vectored(cx, &[io::IoSlice::new(a), io::IoSlice::new(b)])
                    } else {
                        s.poll_write(cx, rest)
                    }
                });
                assert!(n > 0 && n <= rest.len(), "wrote {n} of {}", rest.len());
                at += n;
            }
            if how.flush_each {
                poll(&mut |cx| Pin::new(&mut stream).poll_flush(cx).map_ok(|()| 0));
            }
        }
        poll(&mut |cx| Pin::new(&mut stream).poll_flush(cx).map_ok(|()| 0));
        (stream.inner, watch.status())
    }

    /// One frame: header and `len` bytes of filler payload (RFC 9113 §4.1).
    fn frame(kind: u8, flags: u8, stream: u32, len: usize) -> Vec<u8> {
        let len24 = u32::try_from(len).expect("small test frames").to_be_bytes();
        let mut out = len24[1..].to_vec();
        out.extend([kind, flags]);
        out.extend(stream.to_be_bytes());
        out.extend((0..len).map(|i| (i * 7 % 256) as u8));
        out
    }

    const SETTINGS: u8 = 0x4;
    const WINDOW_UPDATE: u8 = 0x8;

    fn origin_frame() -> Bytes {
        OriginFrame::from_origins(["https://a.test", "https://b.test:8443"])
            .expect("valid entries")
            .to_frame()
    }

    /// `original` with `frame` after its first `k` bytes.
    fn spliced(original: &[u8], k: usize, frame: &[u8]) -> Vec<u8> {
        [&original[..k], frame, &original[k..]].concat()
    }

    /// xorshift64*: enough randomness for write patterns, no dependency.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
            (x >> 33) as usize % n
        }
    }

    #[test]
    fn every_cut_and_pace_puts_the_frame_right_after_settings() {
        // SETTINGS (one setting), WINDOW_UPDATE and SETTINGS ACK, as h2 may write them.
        let settings = frame(SETTINGS, 0, 0, 6);
        let original = [
            settings.clone(),
            frame(WINDOW_UPDATE, 0, 0, 4),
            frame(SETTINGS, 1, 0, 0),
        ]
        .concat();
        let insert = origin_frame();
        let expected = spliced(&original, settings.len(), &insert);
        let mut runs = 0;
        for cut in 0..=original.len() {
            let writes: Vec<&[u8]> = match cut {
                0 => vec![&original],
                _ => vec![&original[..cut], &original[cut..]],
            };
            for take in 1..=10 {
                for pending_at in 0..14 {
                    for (vectored, flush_each) in [(false, false), (true, false), (false, true)] {
                        let mut steps = vec![Step::Take(take); 14];
                        steps[pending_at] = Step::Pending;
                        let how = Writes {
                            vectored,
                            flush_each,
                        };
                        let (inner, status) =
                            drive(Scripted::new(steps), Some(insert.clone()), &writes, how);
                        assert_eq!(inner.received, expected, "cut {cut} take {take} {how:?}");
                        assert_eq!(status, FrameStatus::Sent);
                        runs += 1;
                    }
                }
            }
        }
        assert!(runs > 4000);
    }

    #[test]
    fn random_streams_writes_and_paces() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..3000 {
            let settings = frame(SETTINGS, 0, 0, 6 * rng.below(7));
            let mut original = settings.clone();
            for _ in 0..rng.below(4) {
                let kind = [WINDOW_UPDATE, SETTINGS, 0x0, 0x6][rng.below(4)];
                original.extend(frame(kind, 0, rng.below(3) as u32, rng.below(40)));
            }
            let mut cuts: Vec<usize> = (0..rng.below(5))
                .map(|_| rng.below(original.len() + 1))
                .collect();
            cuts.extend([0, original.len()]);
            cuts.sort_unstable();
            let writes: Vec<&[u8]> = cuts
                .windows(2)
                .map(|w| &original[w[0]..w[1]])
                .filter(|w| !w.is_empty())
                .collect();
            let steps: Vec<Step> = (0..rng.below(60))
                .map(|_| match rng.below(4) {
                    0 => Step::Pending,
                    _ => Step::Take(1 + rng.below(12)),
                })
                .collect();
            let insert = match rng.below(5) {
                0 => Bytes::from_static(b"\x00\x00\x00\x0c\x00\x00\x00\x00\x00"),
                _ => origin_frame(),
            };
            let how = Writes {
                vectored: rng.below(2) == 0,
                flush_each: rng.below(3) == 0,
            };
            let mut inner = Scripted::new(steps);
            inner.vectored = rng.below(2) == 0;
            let (inner, status) = drive(inner, Some(insert.clone()), &writes, how);
            let expected = spliced(&original, settings.len(), &insert);
            assert_eq!(inner.received, expected, "round {round}");
            assert_eq!(status, FrameStatus::Sent, "round {round}");
        }
    }

    #[test]
    fn nothing_is_inserted_without_a_frame_or_a_settings_frame_first() {
        let settings_first = [frame(SETTINGS, 0, 0, 12), frame(WINDOW_UPDATE, 0, 0, 4)].concat();
        let other_first = [frame(WINDOW_UPDATE, 0, 0, 4), frame(SETTINGS, 0, 0, 12)].concat();
        let ack_first = [frame(SETTINGS, 1, 0, 0), frame(SETTINGS, 0, 0, 12)].concat();
        let cases: &[(&str, &[u8], Option<Bytes>, FrameStatus)] = &[
            ("no frame", &settings_first[..], None, FrameStatus::NoFrame),
            (
                "empty frame",
                &settings_first[..],
                Some(Bytes::new()),
                FrameStatus::NoFrame,
            ),
            (
                "WINDOW_UPDATE first",
                &other_first[..],
                Some(origin_frame()),
                FrameStatus::NotSettings,
            ),
            (
                "SETTINGS ACK first",
                &ack_first[..],
                Some(origin_frame()),
                FrameStatus::NotSettings,
            ),
        ];
        for (name, original, insert, want) in cases {
            for take in 1..=4 {
                let inner = Scripted::new([Step::Take(take), Step::Pending].repeat(20));
                let (inner, status) = drive(inner, insert.clone(), &[*original], Writes::default());
                assert_eq!(inner.received, *original, "{name}");
                assert_eq!(status, *want, "{name}");
            }
        }
    }

    #[test]
    fn an_unfinished_settings_frame_keeps_the_frame_pending() {
        let settings = frame(SETTINGS, 0, 0, 12);
        let (inner, status) = drive(
            Scripted::default(),
            Some(origin_frame()),
            &[&settings[..15]],
            Writes::default(),
        );
        assert_eq!(inner.received, &settings[..15]);
        assert_eq!(status, FrameStatus::Pending);
    }

    #[test]
    fn flush_and_shutdown_write_the_frame_first() {
        let settings = frame(SETTINGS, 0, 0, 6);
        let insert = origin_frame();
        let (inner, status) = drive(
            Scripted::new([Step::Take(3), Step::Pending, Step::Take(5), Step::Pending]),
            Some(insert.clone()),
            &[&settings],
            Writes::default(),
        );
        assert_eq!(inner.received, spliced(&settings, settings.len(), &insert));
        assert_eq!(inner.flushed_at, [settings.len() + insert.len()]);
        assert_eq!(status, FrameStatus::Sent);

        let mut stream = OriginStream::new(Scripted::default(), Some(insert.clone()));
        let mut cx = Context::from_waker(Waker::noop());
        let wrote = Pin::new(&mut stream).poll_write(&mut cx, &settings);
        assert!(matches!(wrote, Poll::Ready(Ok(15))));
        assert_eq!(stream.watch().status(), FrameStatus::Pending);
        let closed = Pin::new(&mut stream).poll_shutdown(&mut cx);
        assert!(matches!(closed, Poll::Ready(Ok(()))));
        assert_eq!(
            stream.inner.shutdown_at,
            Some(settings.len() + insert.len())
        );
        assert_eq!(stream.watch().status(), FrameStatus::Sent);
    }

    #[test]
    fn a_connection_that_takes_nothing_of_the_frame_is_an_error() {
        let settings = frame(SETTINGS, 0, 0, 0);
        let inner = Scripted::new([Step::Take(9), Step::Take(4), Step::Take(0)]);
        let mut stream = OriginStream::new(inner, Some(origin_frame()));
        let mut cx = Context::from_waker(Waker::noop());
        let wrote = Pin::new(&mut stream).poll_write(&mut cx, &settings);
        assert!(matches!(wrote, Poll::Ready(Ok(9))));
        let Poll::Ready(Err(err)) = Pin::new(&mut stream).poll_write(&mut cx, b"later") else {
            panic!("expected an error");
        };
        assert_eq!(err.kind(), io::ErrorKind::WriteZero);
        assert_eq!(stream.inner.received.len(), 13);
    }

    #[test]
    fn vectored_writes_reach_the_inner_io_once_the_frame_is_out() {
        let settings = frame(SETTINGS, 0, 0, 6);
        let insert = origin_frame();
        for vectored in [false, true] {
            let inner = Scripted {
                vectored,
                ..Scripted::default()
            };
            let mut stream = OriginStream::new(inner, Some(insert.clone()));
            assert_eq!(stream.is_write_vectored(), vectored);
            let mut cx = Context::from_waker(Waker::noop());
            let slices = [io::IoSlice::new(b""), io::IoSlice::new(&settings)];
            let wrote = Pin::new(&mut stream).poll_write_vectored(&mut cx, &slices);
            assert!(matches!(wrote, Poll::Ready(Ok(15))));
            assert_eq!(
                stream.inner.vectored_calls, 0,
                "the splice takes one slice at a time"
            );
            let later = [io::IoSlice::new(b"ab"), io::IoSlice::new(b"cd")];
            let wrote = Pin::new(&mut stream).poll_write_vectored(&mut cx, &later);
            assert!(matches!(wrote, Poll::Ready(Ok(4))));
            assert_eq!(stream.inner.vectored_calls, 1);
            assert_eq!(
                stream.inner.received,
                [&settings[..], &insert, b"abcd"].concat()
            );
        }
    }

    /// Reads one whole frame: its type, flags, stream and payload.
    async fn read_frame(io: &mut tokio::io::DuplexStream) -> (u8, u8, u32, Vec<u8>) {
        let mut header = [0u8; FRAME_HEADER_LEN];
        io.read_exact(&mut header).await.expect("a frame header");
        let [l0, l1, l2, kind, flags, s0, s1, s2, s3] = header;
        let len = usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2);
        let mut payload = vec![0u8; len];
        io.read_exact(&mut payload).await.expect("a frame payload");
        (kind, flags, u32::from_be_bytes([s0, s1, s2, s3]), payload)
    }

    /// An h2 server over an [`OriginStream`] answering 200 to every request; returns the
    /// client's end of the pipe and the frame's watch.
    fn h2_server(frame: &OriginFrame) -> (tokio::io::DuplexStream, FrameWatch) {
        let (client_io, server_io) = tokio::io::duplex(1 << 16);
        let stream = OriginStream::new(server_io, Some(frame.to_frame()));
        let watch = stream.watch();
        tokio::spawn(async move {
            let Ok(mut connection) = h2::server::handshake(stream).await else {
                return;
            };
            while let Some(Ok((_request, mut respond))) = connection.accept().await {
                let response = Response::new(());
                let _ = respond.send_response(response, true);
            }
        });
        (client_io, watch)
    }

    #[tokio::test]
    async fn h2_server_sends_origin_right_after_its_settings() {
        let frame = OriginFrame::from_origins(["https://a.test", "https://b.test:8443"])
            .expect("valid entries");
        let (mut client_io, watch) = h2_server(&frame);
        // The client connection preface: magic, then an empty SETTINGS (RFC 9113 §3.4).
        client_io
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            .await
            .expect("preface");
        let (kind, flags, stream, _) = read_frame(&mut client_io).await;
        assert_eq!(
            (kind, flags & 1, stream),
            (0x4, 0, 0),
            "the server preface: SETTINGS"
        );
        let (kind, flags, stream, payload) = read_frame(&mut client_io).await;
        assert_eq!(
            (kind, flags, stream),
            (0xc, 0, 0),
            "ORIGIN on stream 0 (RFC 8336 §2.2)"
        );
        assert_eq!(
            OriginFrame::decode_payload(&payload).expect("decodes"),
            frame
        );
        assert_eq!(watch.status(), FrameStatus::Sent);
    }

    #[tokio::test]
    async fn h2_client_ignores_the_frame_and_is_served() {
        let frame = OriginFrame::from_origins(["https://a.test"]).expect("valid entry");
        let (client_io, watch) = h2_server(&frame);
        let (sender, connection) = h2::client::handshake(client_io)
            .await
            .expect("client handshake");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let mut sender = sender.ready().await.expect("ready");
        let request = Request::get("https://a.test/").body(()).expect("request");
        let (response, _) = sender.send_request(request, true).expect("sent");
        let response = response.await.expect("a response");
        assert_eq!(response.status(), 200);
        assert_eq!(watch.status(), FrameStatus::Sent);
        // And a flush with nothing pending is only a flush.
        let mut empty = OriginStream::new(Scripted::default(), None);
        poll_fn(|cx| Pin::new(&mut empty).poll_flush(cx))
            .await
            .expect("flushed");
        assert_eq!(empty.inner.flushed_at, [0]);
    }
}
