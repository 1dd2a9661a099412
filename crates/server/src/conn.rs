//! Connection accounting: what each connection is doing, when it must be closed, and how
//! many a listener holds.
//!
//! Every connection owns an [`Activity`]: a few atomics that its I/O wrapper ([`Tracked`])
//! and its request path update, and that its [`Watchdog`] reads to decide when the
//! connection has been idle, or has been sending a request head, for too long. Each listener
//! keeps a [`Registry`] of its connections; at `max_connections`, or when `accept` runs out
//! of file descriptors, the registry asks the longest-idle connections to close so that a
//! new client is still served (as nginx reclaims idle keep-alive connections), and refuses
//! the new connection only when nothing is idle.
//!
//! Nothing here is on a lock per request: the registry's mutex is taken when a connection
//! opens or closes, and when connections are reclaimed.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

use crate::config::Limits;

/// "Never" for the millisecond fields of [`Activity`].
const NEVER: u64 = u64::MAX;

/// What one connection is doing, in milliseconds since it was accepted.
#[derive(Debug)]
pub(crate) struct Activity {
    epoch: Instant,
    /// When the last request head arrived, or the last response was handed over.
    last_request: AtomicU64,
    /// When bytes last arrived.
    last_read: AtomicU64,
    /// When bytes were last written.
    last_write: AtomicU64,
    /// HTTP/1.1: when the first byte of a request head arrived while no request was in
    /// progress; [`NEVER`] while none is being received.
    head_started: AtomicU64,
    /// Requests being answered (HTTP/1.1) or responses being streamed (HTTP/2).
    in_flight: AtomicUsize,
    /// The TLS handshake finished: from now on the connection can count as idle.
    established: AtomicBool,
    /// HTTP/1.1: bytes that arrive while no request is in progress start a request head.
    heads: AtomicBool,
    /// The registry asked this connection to close.
    reclaimed: AtomicBool,
    close: Notify,
    /// Wakes the watchdog when a request head starts, so that its deadline is computed
    /// anew.
    head_start: Notify,
}

impl Activity {
    fn new() -> Self {
        Self {
            epoch: Instant::now(),
            last_request: AtomicU64::new(0),
            last_read: AtomicU64::new(0),
            last_write: AtomicU64::new(0),
            head_started: AtomicU64::new(NEVER),
            in_flight: AtomicUsize::new(0),
            established: AtomicBool::new(false),
            heads: AtomicBool::new(false),
            reclaimed: AtomicBool::new(false),
            close: Notify::new(),
            head_start: Notify::new(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(NEVER - 1)
    }

    fn at(&self, millis: u64) -> Instant {
        self.epoch + Duration::from_millis(millis)
    }

    /// The handshake is done; the connection starts out idle.
    pub(crate) fn established(&self) {
        self.last_request.store(self.now(), Ordering::Relaxed);
        self.established.store(true, Ordering::Release);
    }

    /// HTTP/1.1: from now on, bytes that arrive while no request is in progress start the
    /// request-head timer.
    pub(crate) fn track_heads(&self) {
        self.heads.store(true, Ordering::Relaxed);
    }

    /// A request head arrived: it is in progress until the returned guard drops.
    pub(crate) fn request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_started.store(NEVER, Ordering::Relaxed);
        self.last_request.store(self.now(), Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// HTTP/2: a request head arrived and was answered at once (no guard to hold).
    pub(crate) fn answered(&self) {
        self.last_request.store(self.now(), Ordering::Relaxed);
    }

    fn idle_since(&self) -> Option<u64> {
        if !self.established.load(Ordering::Acquire)
            || self.in_flight.load(Ordering::Acquire) != 0
            || self.head_started.load(Ordering::Relaxed) != NEVER
        {
            return None;
        }
        Some(self.last_request.load(Ordering::Relaxed))
    }

    /// Resolves when the registry asks this connection to close.
    pub(crate) async fn reclaimed(&self) {
        let notified = self.close.notified();
        if self.reclaimed.load(Ordering::Acquire) {
            return;
        }
        notified.await;
    }
}

/// A request in progress; dropping it ends it.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        activity
            .last_request
            .store(activity.now(), Ordering::Relaxed);
        activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Why a [`Watchdog`] fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expired {
    /// No request in progress for `idle_timeout`.
    Idle,
    /// HTTP/1.1: a request head took longer than `header_read_timeout`.
    Head,
    /// HTTP/2: nothing arrived for `keepalive_interval`: time to send a PING.
    PingDue,
    /// A request is in progress but no byte moved either way for `send_timeout` (a
    /// client that stopped reading its response).
    Stalled,
}

/// The timers of one connection, computed from its [`Activity`] whenever they fire.
#[derive(Debug)]
pub(crate) struct Watchdog {
    activity: Arc<Activity>,
    idle: Duration,
    head: Duration,
    stall: Duration,
    keepalive: Option<Duration>,
}

impl Watchdog {
    /// HTTP/1.1: idle and request-head timeouts.
    pub(crate) fn h1(activity: Arc<Activity>, limits: &Limits) -> Self {
        Self {
            activity,
            idle: limits.idle_timeout,
            head: limits.header_read_timeout,
            stall: limits.send_timeout,
            keepalive: None,
        }
    }

    /// HTTP/2: idle timeout and keep-alive PINGs.
    pub(crate) fn h2(activity: Arc<Activity>, limits: &Limits) -> Self {
        Self {
            activity,
            idle: limits.idle_timeout,
            head: limits.header_read_timeout,
            stall: limits.send_timeout,
            keepalive: Some(limits.keepalive_interval),
        }
    }

    /// Waits until a timer expires. Cancel-safe: it only sleeps and reads atomics.
    /// `pinging`: a keep-alive PING is already out; its own timeout applies.
    pub(crate) async fn expired(&self, pinging: bool) -> Expired {
        loop {
            let (deadline, what) = self.next(pinging);
            if let Some(what) = what
                && Instant::now() >= deadline
            {
                return what;
            }
            tokio::select! {
                () = tokio::time::sleep_until(deadline.into()) => {}
                () = self.activity.head_start.notified() => {}
            }
        }
    }

    /// The earliest deadline and what it means.
    fn next(&self, pinging: bool) -> (Instant, Option<Expired>) {
        let a = &*self.activity;
        let head = a.head_started.load(Ordering::Relaxed);
        let mut next = if a.in_flight.load(Ordering::Acquire) != 0 {
            let moved = a
                .last_read
                .load(Ordering::Relaxed)
                .max(a.last_write.load(Ordering::Relaxed))
                .max(a.last_request.load(Ordering::Relaxed));
            (a.at(moved) + self.stall, Some(Expired::Stalled))
        } else if head != NEVER {
            (a.at(head) + self.head, Some(Expired::Head))
        } else {
            let idle_from = a.last_request.load(Ordering::Relaxed);
            (a.at(idle_from) + self.idle, Some(Expired::Idle))
        };
        if let Some(interval) = self.keepalive.filter(|_| !pinging) {
            let quiet_from = a.last_read.load(Ordering::Relaxed);
            let ping = a.at(quiet_from) + interval;
            if ping < next.0 {
                next = (ping, Some(Expired::PingDue));
            }
        }
        next
    }
}

/// An I/O stream that records when bytes move, for the [`Watchdog`].
#[derive(Debug)]
pub(crate) struct Tracked<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T> Tracked<T> {
    pub(crate) fn new(inner: T, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            let a = &*self.activity;
            let now = a.now();
            a.last_read.store(now, Ordering::Relaxed);
            if a.heads.load(Ordering::Relaxed)
                && a.in_flight.load(Ordering::Acquire) == 0
                && a.head_started.load(Ordering::Relaxed) == NEVER
            {
                a.head_started.store(now, Ordering::Relaxed);
                a.head_start.notify_one();
            }
        }
        result
    }
}

impl<T> Tracked<T> {
    /// Records a write that moved bytes.
    fn wrote(&self, result: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        if let Poll::Ready(Ok(n)) = result
            && n > 0
        {
            self.activity
                .last_write
                .store(self.activity.now(), Ordering::Relaxed);
        }
        result
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(result)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(result)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The open connections of one listener.
#[derive(Debug)]
pub(crate) struct Registry {
    /// `max_connections`; a reload may change it.
    max: AtomicUsize,
    slots: Mutex<Slots>,
    /// Connections closed to make room.
    reclaimed: AtomicU64,
    /// New connections refused because nothing was idle.
    refused: AtomicU64,
}

#[derive(Debug, Default)]
struct Slots {
    entries: Vec<Option<Arc<Activity>>>,
    free: Vec<usize>,
    open: usize,
    /// Asked to close but not gone yet.
    closing: usize,
}

/// A connection's place in its [`Registry`]; dropping it frees the place.
#[derive(Debug)]
pub(crate) struct Registration {
    registry: Arc<Registry>,
    slot: usize,
    activity: Arc<Activity>,
}

impl Registration {
    pub(crate) fn activity(&self) -> &Arc<Activity> {
        &self.activity
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut slots = self.registry.lock();
        slots.entries[self.slot] = None;
        slots.free.push(self.slot);
        slots.open -= 1;
        if self.activity.reclaimed.load(Ordering::Acquire) {
            slots.closing -= 1;
        }
    }
}

/// What [`Registry::admit`] did.
#[derive(Debug)]
pub(crate) enum Admission {
    /// Room: the connection is registered.
    Admitted(Registration),
    /// Full: the longest-idle connection was asked to close, this one is registered.
    AdmittedByReclaim(Registration),
    /// Full and nothing idle: refuse the connection.
    Refused,
}

impl Registry {
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max: AtomicUsize::new(max),
            slots: Mutex::new(Slots::default()),
            reclaimed: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        // A panic while holding the lock leaves the counts as they were: keep going.
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a new connection, making room by closing the longest-idle one when the
    /// listener is at `max_connections`.
    pub(crate) fn admit(self: &Arc<Self>) -> Admission {
        let mut slots = self.lock();
        let mut reclaimed = false;
        if slots.open - slots.closing >= self.max() {
            if Self::reclaim_locked(&mut slots, 1) == 0 {
                drop(slots);
                self.refused.fetch_add(1, Ordering::Relaxed);
                return Admission::Refused;
            }
            self.reclaimed.fetch_add(1, Ordering::Relaxed);
            reclaimed = true;
        }
        let activity = Arc::new(Activity::new());
        let slot = match slots.free.pop() {
            Some(slot) => {
                slots.entries[slot] = Some(activity.clone());
                slot
            }
            None => {
                slots.entries.push(Some(activity.clone()));
                slots.entries.len() - 1
            }
        };
        slots.open += 1;
        drop(slots);
        let registration = Registration {
            registry: self.clone(),
            slot,
            activity,
        };
        if reclaimed {
            Admission::AdmittedByReclaim(registration)
        } else {
            Admission::Admitted(registration)
        }
    }

    /// Asks up to `count` of the longest-idle connections to close; returns how many.
    pub(crate) fn reclaim(&self, count: usize) -> usize {
        let done = Self::reclaim_locked(&mut self.lock(), count);
        self.reclaimed.fetch_add(done as u64, Ordering::Relaxed);
        done
    }

    fn reclaim_locked(slots: &mut Slots, count: usize) -> usize {
        let mut idle: Vec<(u64, &Arc<Activity>)> = slots
            .entries
            .iter()
            .flatten()
            .filter(|a| !a.reclaimed.load(Ordering::Acquire))
            .filter_map(|a| a.idle_since().map(|since| (since_epoch(a, since), a)))
            .collect();
        let count = count.min(idle.len());
        if count == 0 {
            return 0;
        }
        if count < idle.len() {
            idle.select_nth_unstable_by_key(count - 1, |(since, _)| *since);
        }
        let victims: Vec<Arc<Activity>> = idle[..count].iter().map(|(_, a)| (*a).clone()).collect();
        for victim in &victims {
            victim.reclaimed.store(true, Ordering::Release);
            victim.close.notify_one();
        }
        slots.closing += victims.len();
        victims.len()
    }

    /// Sets `max_connections` (a reload): connections over a lower limit are not closed,
    /// new ones wait for room as usual.
    pub(crate) fn set_max(&self, max: usize) {
        self.max.store(max, Ordering::Relaxed);
    }

    /// The listener's `max_connections`.
    pub(crate) fn max(&self) -> usize {
        self.max.load(Ordering::Relaxed)
    }

    /// Open connections.
    pub(crate) fn open(&self) -> usize {
        self.lock().open
    }

    /// Connections closed to make room, and connections refused, since start.
    pub(crate) fn counts(&self) -> (u64, u64) {
        (
            self.reclaimed.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
        )
    }
}

/// An idle time as an absolute number comparable across connections: milliseconds
/// since a fixed process-wide instant.
fn since_epoch(activity: &Activity, millis: u64) -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    let at = activity.at(millis);
    u64::try_from(at.saturating_duration_since(start).as_millis()).unwrap_or(NEVER)
}

/// A log line that is written at most once per `interval`; the lines held back in between
/// are counted and reported with the next one.
#[derive(Debug)]
pub(crate) struct RateLimit {
    interval_ms: u64,
    epoch: Instant,
    /// When the last line was let through, in ms since `epoch` (+1, so 0 means never).
    last: AtomicU64,
    suppressed: AtomicU64,
}

impl RateLimit {
    pub(crate) fn new(interval: Duration) -> Self {
        Self {
            interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
            epoch: Instant::now(),
            last: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(lines held back since the last one)` when a line may be written now.
    pub(crate) fn allow(&self) -> Option<u64> {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1;
        let last = self.last.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < self.interval_ms {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        if self
            .last
            .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(self.suppressed.swap(0, Ordering::AcqRel))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn established(registry: &Arc<Registry>) -> Registration {
        match registry.admit() {
            Admission::Admitted(r) | Admission::AdmittedByReclaim(r) => {
                r.activity().established();
                r
            }
            Admission::Refused => panic!("refused"),
        }
    }

    #[test]
    fn at_the_limit_the_longest_idle_connection_makes_room() {
        let registry = Registry::new(2);
        let oldest = established(&registry);
        std::thread::sleep(Duration::from_millis(5));
        let newer = established(&registry);
        let third = registry.admit();
        assert!(matches!(third, Admission::AdmittedByReclaim(_)));
        assert!(oldest.activity().reclaimed.load(Ordering::Acquire));
        assert!(!newer.activity().reclaimed.load(Ordering::Acquire));
        assert_eq!(registry.counts(), (1, 0));
        // The reclaimed one leaves: room again without reclaiming.
        drop(oldest);
        drop(third);
        assert!(matches!(registry.admit(), Admission::Admitted(_)));
    }

    #[test]
    fn busy_and_handshaking_connections_are_not_reclaimed() {
        let registry = Registry::new(2);
        let busy = established(&registry);
        let _request = busy.activity().request();
        let _handshaking = match registry.admit() {
            Admission::Admitted(r) => r,
            other => panic!("{other:?}"),
        };
        assert!(matches!(registry.admit(), Admission::Refused));
        assert_eq!(registry.counts(), (0, 1));
        assert_eq!(registry.open(), 2);
    }

    #[test]
    fn a_connection_receiving_a_head_is_not_idle() {
        let registry = Registry::new(1);
        let receiving = established(&registry);
        receiving
            .activity()
            .head_started
            .store(1, Ordering::Relaxed);
        assert!(matches!(registry.admit(), Admission::Refused));
    }

    #[test]
    fn reclaim_picks_the_longest_idle() {
        let registry = Registry::new(10);
        let mut all = Vec::new();
        for _ in 0..5 {
            all.push(established(&registry));
            std::thread::sleep(Duration::from_millis(3));
        }
        assert_eq!(registry.reclaim(2), 2);
        let flags: Vec<bool> = all
            .iter()
            .map(|r| r.activity().reclaimed.load(Ordering::Acquire))
            .collect();
        assert_eq!(flags, [true, true, false, false, false]);
        // Already asked: not counted twice.
        assert_eq!(registry.reclaim(10), 3);
        assert_eq!(registry.reclaim(10), 0);
    }

    #[test]
    fn rate_limit_lets_one_line_through_per_interval_and_counts_the_rest() {
        let limit = RateLimit::new(Duration::from_millis(50));
        assert_eq!(limit.allow(), Some(0));
        assert_eq!(limit.allow(), None);
        assert_eq!(limit.allow(), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(limit.allow(), Some(2));
    }
}
