//! How many refusal log lines a listener writes: every one, or the first of each kind per
//! window and a count of the rest.
//!
//! [`Refusal::log`] writes one `WARN` line of about 400 bytes. A client that keeps sending
//! the same misdirected request — a browser coalescing onto the wrong host, a monitor with a
//! stale name, a scanner — turns that into one line per request: 900,000 refusals make
//! 389 MB of logs, and formatting them costs the 421 path a third of its throughput.
//! [`RefusalLog`] stands between the listener and the log: every connection of a listener
//! records its refusals in one shared `RefusalLog`, which writes a line or counts it.
//!
//! The modes, their defaults and why, and what the summary line says, are on
//! [`RefusalLogMode`] and [`RefusalLog`]; this is how the budget is kept.
//!
//! # Design
//! The log sits on the request path of servers answering 100,000+ requests a second on
//! every core, so it takes no lock there. The budget is a fixed table of 4,096 `AtomicU64`
//! slots in 512 buckets of 8, one cache line each. A slot packs the window (24 bits), a
//! fingerprint of the key (32 bits) and the refusals counted so far (8 bits). Recording a
//! refusal hashes its key in place (foldhash, seeded at random for each log, no
//! allocation), scans the key's bucket, and claims or counts with a compare-and-swap. Once
//! a key has used its budget and a first refusal was held back, its slot is only read —
//! the cache line stays shared between cores — and each held-back refusal adds one to a
//! counter of the recording thread's own stripe (16 stripes, each on its own cache line).
//! A new window needs no sweep: a slot of an older window is free. The first call that
//! sees a new window advances it with one `fetch_max`, and only that call takes the mutex
//! that guards what the last summary reported.
//!
//! The table errs towards logging more, never towards hiding a key's first line:
//! - A key whose bucket is full of other keys of the current window gets a line for every
//!   refusal (with 4,096 slots, a window must see many distinct keys first).
//! - Two threads recording a new key at once may each claim a slot for it: that key may
//!   log up to twice its budget in that window.
//! - A call with an instant of an older window (threads read the clock at different
//!   times) sees the newer window's slots as free; a key whose slot it takes logs again.
//! - A refusal is only held back when a slot of this window carries the key's bucket and
//!   fingerprint (41 bits of its hash). Two keys of one window share both with a
//!   probability of about k² / 2⁴² for k keys: 4 × 10⁻⁶ with 4,096 keys.
//!
//! Held-back counts are never lost: each is one `fetch_add` on a stripe, and a summary
//! reports the difference between the stripes' sum and what the previous one reported. A
//! refusal counted while a summary is being written is reported by the next one.
//!
//! # Time
//! [`RefusalLog::record`] and [`RefusalLog::tick`] read [`Instant::now`];
//! [`RefusalLog::record_at`] and [`RefusalLog::tick_at`] take the time from the caller,
//! which keeps tests deterministic and lets a server that already read the clock for the
//! request reuse it. Windows are counted from the first instant the log sees.

use std::fmt;
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use foldhash::fast::RandomState;
use tracing::Level;

use crate::listener::Refusal;

/// Which refusals get a log line: every one, or the first few of each key per window.
///
/// - [`Every`](RefusalLogMode::Every): every refusal gets its line, as [`Refusal::log`]
///   alone does.
/// - [`Sampled`](RefusalLogMode::Sampled), the default, with a window of
///   [`DEFAULT_WINDOW`](RefusalLogMode::DEFAULT_WINDOW) (60 s) and
///   [`DEFAULT_PER_KEY`](RefusalLogMode::DEFAULT_PER_KEY) (1) line per key: the first
///   `per_key` refusals of each key in a window get their line; the rest are counted, and
///   one summary line per window reports them (see [`RefusalLog`]).
///
/// The key is what makes two refusals the same problem: the reason, the connection's SNI,
/// the request's authority, the target virtual host and whether `warn_only` served the
/// request. The peer, method and version are not part of it: a thousand clients making the
/// same mistake are one problem, shown with the first client's address.
///
/// Why these defaults: one line per key per minute shows every distinct problem within a
/// minute of its start, with a complete line to act on, and costs a problem that lasts a
/// day 1,440 lines instead of one per request. Counting refused requests is the job of
/// metrics; the summary keeps the log honest about what it left out. For comparison,
/// nginx's `limit_req_log_level` only chooses the level at which refused requests are
/// logged — each still gets its line — while journald's `RateLimitIntervalSec=30s` /
/// `RateLimitBurst=10000` is one budget per service: one flood uses it up and hides every
/// other message of the service until the interval ends, when a single "Suppressed N
/// messages" line follows. A budget per key keeps one noisy client from hiding a different
/// problem; like journald, each window ends with the count.
///
/// ```
/// use std::time::Duration;
/// use misdirect_coalesce::RefusalLogMode;
///
/// assert_eq!(
///     RefusalLogMode::default(),
///     RefusalLogMode::Sampled { window: Duration::from_secs(60), per_key: 1 },
/// );
/// // A noisier setting: five lines per key every ten seconds.
/// let mode = RefusalLogMode::Sampled { window: Duration::from_secs(10), per_key: 5 };
/// # let _ = mode;
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RefusalLogMode {
    /// Every refusal gets its line.
    Every,
    /// The first `per_key` refusals of each key in each `window` get their line; the rest
    /// are counted and reported by one summary line per window.
    ///
    /// A zero `window` means [`Every`](RefusalLogMode::Every). `per_key` is at most
    /// [`MAX_PER_KEY`](RefusalLogMode::MAX_PER_KEY); `0` writes summaries only.
    Sampled {
        /// How long a key's budget lasts, and how often a summary can be written.
        window: Duration,
        /// How many lines each key gets per window.
        per_key: u32,
    },
}

impl RefusalLogMode {
    /// The default window: 60 seconds.
    ///
    /// ```
    /// use std::time::Duration;
    /// use misdirect_coalesce::RefusalLogMode;
    ///
    /// assert_eq!(RefusalLogMode::DEFAULT_WINDOW, Duration::from_secs(60));
    /// ```
    pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);

    /// The default budget: 1 line per key per window.
    ///
    /// ```
    /// use misdirect_coalesce::RefusalLogMode;
    ///
    /// assert_eq!(RefusalLogMode::DEFAULT_PER_KEY, 1);
    /// ```
    pub const DEFAULT_PER_KEY: u32 = 1;

    /// The largest `per_key` budget; a larger one counts as this. (More lines than this
    /// per key and window is [`Every`](RefusalLogMode::Every) in all but name.)
    ///
    /// ```
    /// use std::time::Duration;
    /// use misdirect_coalesce::{RefusalLog, RefusalLogMode};
    ///
    /// let log = RefusalLog::new(RefusalLogMode::Sampled { window: Duration::from_secs(1), per_key: 1_000 });
    /// assert_eq!(
    ///     log.mode(),
    ///     RefusalLogMode::Sampled { window: Duration::from_secs(1), per_key: RefusalLogMode::MAX_PER_KEY },
    /// );
    /// ```
    pub const MAX_PER_KEY: u32 = 254;
}

impl Default for RefusalLogMode {
    fn default() -> Self {
        Self::Sampled {
            window: Self::DEFAULT_WINDOW,
            per_key: Self::DEFAULT_PER_KEY,
        }
    }
}

/// The budget for refusal log lines, shared by every connection of a listener.
///
/// Record each [`Refusal`] (and each `warn_only` warning) here instead of calling
/// [`Refusal::log`]: the log writes its line or counts it, as its [`RefusalLogMode`] says.
/// Every method takes `&self` and the log is `Send + Sync`: share one per listener (or per
/// server) behind an `Arc`. Only writing a summary takes a lock (once per window, and in
/// [`flush`](RefusalLog::flush)).
///
/// The summary, `refusal log lines held back`, is a `WARN` line — the level of the lines
/// it stands for, so every filter that shows the refusals shows it — with the fields
/// `suppressed` (lines held back), `keys` (of how many keys), `window_secs` and `per_key`.
/// It is written for a window that held lines back by the first refusal after the window
/// ends, by [`tick`](RefusalLog::tick) (call it from a timer, so the count is not lost when
/// refusals stop) and by [`flush`](RefusalLog::flush) (at shutdown: everything not yet
/// reported). Dropping the log writes nothing.
///
/// The table that keeps the budgets errs towards writing more lines, never towards hiding
/// a key's first one: a key whose slot a hash collision or a full table denies gets every
/// line. It tracks 4,096 keys per window; the budget is per key, so it does not bound
/// keys: a client naming a new authority in each request gets a line for each (limit such
/// clients by rate). A 404's line is `DEBUG`: when no subscriber enables `DEBUG`, a 404
/// is neither logged nor counted.
///
/// ```
/// use std::time::{Duration, Instant};
/// use misdirect_coalesce::{RefusalLog, RefusalLogMode};
/// # fn refused(authority: &str) -> misdirect_coalesce::Refusal {
/// #     use std::sync::Arc;
/// #     use misdirect_authority::Scheme;
/// #     use misdirect_certmatch::Identities;
/// #     use misdirect_coalesce::{ConnectionContext, Listener, Outcome, VirtualHost, VirtualHosts};
/// #     let cert = Arc::new(Identities::from_patterns(["a.test".parse().unwrap()]));
/// #     let mut table = VirtualHosts::builder(Scheme::Https);
/// #     table.add(VirtualHost::new("a", cert).pattern("a.test".parse().unwrap()));
/// #     let listener = Listener::new(table.port(443).build().unwrap());
/// #     let request = http::Request::get(format!("https://{authority}/")).version(http::Version::HTTP_2);
/// #     let (parts, ()) = request.body(()).unwrap().into_parts();
/// #     match listener.on_request(&ConnectionContext::new(), &parts) {
/// #         Outcome::Respond { refusal, .. } => refusal,
/// #         other => panic!("{other:?}"),
/// #     }
/// # }
///
/// let log = RefusalLog::new(RefusalLogMode::default());
/// let start = Instant::now();
/// let refusal = refused("c.test"); // a 421: no virtual host serves c.test
/// assert!(log.record_at(&refusal, None, start)); // its line
/// assert!(!log.record_at(&refusal, None, start)); // held back
/// assert!(log.record_at(&refused("d.test"), None, start)); // another key: its line
/// assert_eq!(log.suppressed_total(), 1);
///
/// // A minute later the window is over: the summary ("suppressed=1") is written.
/// log.tick_at(start + Duration::from_secs(60));
/// ```
pub struct RefusalLog {
    mode: RefusalLogMode,
    /// `None` when every refusal is logged.
    sampler: Option<Box<Sampler>>,
}

impl RefusalLog {
    /// A log in this mode. A zero window gives [`RefusalLogMode::Every`]; a budget above
    /// [`RefusalLogMode::MAX_PER_KEY`] is that.
    ///
    /// ```
    /// use std::time::Duration;
    /// use misdirect_coalesce::{RefusalLog, RefusalLogMode};
    ///
    /// let log = RefusalLog::new(RefusalLogMode::Sampled { window: Duration::ZERO, per_key: 1 });
    /// assert_eq!(log.mode(), RefusalLogMode::Every);
    /// assert_eq!(RefusalLog::default().mode(), RefusalLogMode::default());
    /// ```
    pub fn new(mode: RefusalLogMode) -> Self {
        match mode {
            RefusalLogMode::Sampled { window, per_key } if !window.is_zero() => {
                let per_key = per_key.min(RefusalLogMode::MAX_PER_KEY);
                Self {
                    mode: RefusalLogMode::Sampled { window, per_key },
                    sampler: Some(Box::new(Sampler::new(window, per_key))),
                }
            }
            _ => Self {
                mode: RefusalLogMode::Every,
                sampler: None,
            },
        }
    }

    /// The mode in effect (after the adjustments [`new`](RefusalLog::new) makes).
    ///
    /// ```
    /// use misdirect_coalesce::{RefusalLog, RefusalLogMode};
    ///
    /// assert_eq!(RefusalLog::new(RefusalLogMode::Every).mode(), RefusalLogMode::Every);
    /// ```
    pub fn mode(&self) -> RefusalLogMode {
        self.mode
    }

    /// Records a refusal now: writes its line with [`Refusal::log`] (`peer` is the
    /// client's address, when known), or counts it for the window's summary.
    ///
    /// Returns whether the line was written. This reads the clock; see
    /// [`record_at`](RefusalLog::record_at).
    ///
    /// ```
    /// use misdirect_coalesce::RefusalLog;
    /// # fn refused(authority: &str) -> misdirect_coalesce::Refusal {
    /// #     use std::sync::Arc;
    /// #     use misdirect_authority::Scheme;
    /// #     use misdirect_certmatch::Identities;
    /// #     use misdirect_coalesce::{ConnectionContext, Listener, Outcome, VirtualHost, VirtualHosts};
    /// #     let cert = Arc::new(Identities::from_patterns(["a.test".parse().unwrap()]));
    /// #     let mut table = VirtualHosts::builder(Scheme::Https);
    /// #     table.add(VirtualHost::new("a", cert).pattern("a.test".parse().unwrap()));
    /// #     let listener = Listener::new(table.port(443).build().unwrap());
    /// #     let request = http::Request::get(format!("https://{authority}/")).version(http::Version::HTTP_2);
    /// #     let (parts, ()) = request.body(()).unwrap().into_parts();
    /// #     match listener.on_request(&ConnectionContext::new(), &parts) {
    /// #         Outcome::Respond { refusal, .. } => refusal,
    /// #         other => panic!("{other:?}"),
    /// #     }
    /// # }
    ///
    /// let log = RefusalLog::default();
    /// let peer = "192.0.2.7:50123".parse().ok();
    /// let written = (0..100).filter(|_| log.record(&refused("c.test"), peer)).count();
    /// assert_eq!(written, 1);
    /// assert_eq!(log.suppressed_total(), 99);
    /// ```
    pub fn record(&self, refusal: &Refusal, peer: Option<SocketAddr>) -> bool {
        match &self.sampler {
            Some(sampler) => sampler.record(refusal, peer, Instant::now()),
            None => log_line(refusal, peer),
        }
    }

    /// [`record`](RefusalLog::record) at `now`.
    ///
    /// A `now` earlier than an instant seen before counts in the window it falls in, or in
    /// the first.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use misdirect_coalesce::{RefusalLog, RefusalLogMode};
    /// # fn refused(authority: &str) -> misdirect_coalesce::Refusal {
    /// #     use std::sync::Arc;
    /// #     use misdirect_authority::Scheme;
    /// #     use misdirect_certmatch::Identities;
    /// #     use misdirect_coalesce::{ConnectionContext, Listener, Outcome, VirtualHost, VirtualHosts};
    /// #     let cert = Arc::new(Identities::from_patterns(["a.test".parse().unwrap()]));
    /// #     let mut table = VirtualHosts::builder(Scheme::Https);
    /// #     table.add(VirtualHost::new("a", cert).pattern("a.test".parse().unwrap()));
    /// #     let listener = Listener::new(table.port(443).build().unwrap());
    /// #     let request = http::Request::get(format!("https://{authority}/")).version(http::Version::HTTP_2);
    /// #     let (parts, ()) = request.body(()).unwrap().into_parts();
    /// #     match listener.on_request(&ConnectionContext::new(), &parts) {
    /// #         Outcome::Respond { refusal, .. } => refusal,
    /// #         other => panic!("{other:?}"),
    /// #     }
    /// # }
    ///
    /// let window = Duration::from_secs(10);
    /// let log = RefusalLog::new(RefusalLogMode::Sampled { window, per_key: 2 });
    /// let refusal = refused("c.test");
    /// let start = Instant::now();
    /// let written = (0..5).filter(|_| log.record_at(&refusal, None, start)).count();
    /// assert_eq!(written, 2);
    /// // The next window has a new budget (and its first refusal writes the summary).
    /// assert!(log.record_at(&refusal, None, start + window));
    /// ```
    pub fn record_at(&self, refusal: &Refusal, peer: Option<SocketAddr>, now: Instant) -> bool {
        match &self.sampler {
            Some(sampler) => sampler.record(refusal, peer, now),
            None => log_line(refusal, peer),
        }
    }

    /// Writes the summary of a window that has ended, if it held lines back and no refusal
    /// since has written it. Call it from a timer — every second, or at least once per
    /// window — so the last window's count is written when refusals stop. This reads the
    /// clock; see [`tick_at`](RefusalLog::tick_at).
    ///
    /// ```
    /// use misdirect_coalesce::RefusalLog;
    ///
    /// let log = RefusalLog::default();
    /// log.tick(); // nothing recorded, nothing written
    /// assert_eq!(log.suppressed_total(), 0);
    /// ```
    pub fn tick(&self) {
        if let Some(sampler) = &self.sampler {
            sampler.tick(Instant::now());
        }
    }

    /// [`tick`](RefusalLog::tick) at `now`.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use misdirect_coalesce::RefusalLog;
    /// # fn refused(authority: &str) -> misdirect_coalesce::Refusal {
    /// #     use std::sync::Arc;
    /// #     use misdirect_authority::Scheme;
    /// #     use misdirect_certmatch::Identities;
    /// #     use misdirect_coalesce::{ConnectionContext, Listener, Outcome, VirtualHost, VirtualHosts};
    /// #     let cert = Arc::new(Identities::from_patterns(["a.test".parse().unwrap()]));
    /// #     let mut table = VirtualHosts::builder(Scheme::Https);
    /// #     table.add(VirtualHost::new("a", cert).pattern("a.test".parse().unwrap()));
    /// #     let listener = Listener::new(table.port(443).build().unwrap());
    /// #     let request = http::Request::get(format!("https://{authority}/")).version(http::Version::HTTP_2);
    /// #     let (parts, ()) = request.body(()).unwrap().into_parts();
    /// #     match listener.on_request(&ConnectionContext::new(), &parts) {
    /// #         Outcome::Respond { refusal, .. } => refusal,
    /// #         other => panic!("{other:?}"),
    /// #     }
    /// # }
    ///
    /// let log = RefusalLog::default();
    /// let start = Instant::now();
    /// for _ in 0..10 {
    ///     log.record_at(&refused("c.test"), None, start);
    /// }
    /// log.tick_at(start + Duration::from_secs(30)); // the window is not over: nothing
    /// log.tick_at(start + Duration::from_secs(60)); // "refusal log lines held back", suppressed=9
    /// ```
    pub fn tick_at(&self, now: Instant) {
        if let Some(sampler) = &self.sampler {
            sampler.tick(now);
        }
    }

    /// Writes the summary of every held-back line not reported yet, whether or not its
    /// window has ended: call it at shutdown. The budgets of the current window stay spent.
    ///
    /// ```
    /// use misdirect_coalesce::RefusalLog;
    /// # fn refused(authority: &str) -> misdirect_coalesce::Refusal {
    /// #     use std::sync::Arc;
    /// #     use misdirect_authority::Scheme;
    /// #     use misdirect_certmatch::Identities;
    /// #     use misdirect_coalesce::{ConnectionContext, Listener, Outcome, VirtualHost, VirtualHosts};
    /// #     let cert = Arc::new(Identities::from_patterns(["a.test".parse().unwrap()]));
    /// #     let mut table = VirtualHosts::builder(Scheme::Https);
    /// #     table.add(VirtualHost::new("a", cert).pattern("a.test".parse().unwrap()));
    /// #     let listener = Listener::new(table.port(443).build().unwrap());
    /// #     let request = http::Request::get(format!("https://{authority}/")).version(http::Version::HTTP_2);
    /// #     let (parts, ()) = request.body(()).unwrap().into_parts();
    /// #     match listener.on_request(&ConnectionContext::new(), &parts) {
    /// #         Outcome::Respond { refusal, .. } => refusal,
    /// #         other => panic!("{other:?}"),
    /// #     }
    /// # }
    ///
    /// let log = RefusalLog::default();
    /// for _ in 0..3 {
    ///     log.record(&refused("c.test"), None);
    /// }
    /// log.flush(); // "refusal log lines held back", suppressed=2
    /// log.flush(); // nothing new: nothing written
    /// ```
    pub fn flush(&self) {
        if let Some(sampler) = &self.sampler {
            sampler.report();
        }
    }

    /// How many lines were held back since the log was made, reported or not: a counter
    /// for metrics. Always 0 in [`RefusalLogMode::Every`].
    ///
    /// ```
    /// use misdirect_coalesce::RefusalLog;
    ///
    /// assert_eq!(RefusalLog::default().suppressed_total(), 0);
    /// ```
    pub fn suppressed_total(&self) -> u64 {
        self.sampler.as_ref().map_or(0, |s| s.totals().suppressed)
    }
}

impl Default for RefusalLog {
    fn default() -> Self {
        Self::new(RefusalLogMode::default())
    }
}

impl fmt::Debug for RefusalLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefusalLog")
            .field("mode", &self.mode)
            .field("suppressed_total", &self.suppressed_total())
            .finish_non_exhaustive()
    }
}

/// Writes the refusal's line; `true`, for [`RefusalLog::record`]'s answer.
fn log_line(refusal: &Refusal, peer: Option<SocketAddr>) -> bool {
    refusal.log(peer);
    true
}

/// Buckets in the table; a power of two.
const BUCKETS: usize = 512;
/// Slots in a bucket: one 64-byte cache line of `AtomicU64`.
const WAYS: usize = 8;
/// Stripes of the held-back counters.
const STRIPES: usize = 16;

/// A slot: `window tag (24 bits) | fingerprint (32 bits) | count (8 bits)`.
const COUNT_BITS: u32 = 8;
const FINGERPRINT_BITS: u32 = 32;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
const FINGERPRINT_SHIFT: u32 = COUNT_BITS;
const TAG_SHIFT: u32 = COUNT_BITS + FINGERPRINT_BITS;
/// Window tags run from 1 to 2²⁴ − 1, so a zeroed slot belongs to no window.
const TAG_SPAN: u64 = (1 << (64 - TAG_SHIFT)) - 1;

/// The sampled mode's state.
struct Sampler {
    window: Duration,
    window_nanos: u64,
    /// At most [`RefusalLogMode::MAX_PER_KEY`], so `per_key + 1` fits in a slot's count.
    per_key: u64,
    hasher: RandomState,
    /// The first instant seen; window `n` starts `n` windows later.
    epoch: OnceLock<Instant>,
    buckets: Box<[Bucket]>,
    stripes: [Stripe; STRIPES],
    /// The latest window any call has seen.
    current: AtomicU64,
    /// What summaries have reported so far; locked once per window and by `flush`.
    reported: Mutex<Totals>,
}

/// Eight slots on one cache line.
#[repr(align(64))]
struct Bucket([AtomicU64; WAYS]);

/// One stripe of the held-back counters, on a cache line pair of its own (adjacent lines
/// are fetched together on x86-64).
#[repr(align(128))]
#[derive(Default)]
struct Stripe {
    suppressed: AtomicU64,
    /// Keys whose first held-back refusal was counted here.
    keys: AtomicU64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Totals {
    suppressed: u64,
    keys: u64,
}

/// What the table says about one refusal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    /// Within its key's budget: write the line.
    Log,
    /// Over budget: count it; `first` for the key's first held-back refusal this window.
    Hold { first: bool },
    /// The key's bucket is full of other keys of this window.
    Untracked,
}

impl Sampler {
    fn new(window: Duration, per_key: u32) -> Self {
        Self {
            window,
            window_nanos: u64::try_from(window.as_nanos()).unwrap_or(u64::MAX),
            per_key: u64::from(per_key),
            hasher: RandomState::default(),
            epoch: OnceLock::new(),
            buckets: (0..BUCKETS)
                .map(|_| Bucket(std::array::from_fn(|_| AtomicU64::new(0))))
                .collect(),
            stripes: std::array::from_fn(|_| Stripe::default()),
            current: AtomicU64::new(0),
            reported: Mutex::new(Totals::default()),
        }
    }

    fn record(&self, refusal: &Refusal, peer: Option<SocketAddr>, now: Instant) -> bool {
        // A 404's line is DEBUG: when nothing enables DEBUG there is nothing to sample.
        if refusal.reason.is_none() && !tracing::level_enabled!(Level::DEBUG) {
            return false;
        }
        let window = self.window_of(now);
        if window > self.current.load(Relaxed) {
            self.advance(window);
        }
        let key = (
            refusal.reason,
            refusal.sni.as_ref(),
            refusal.authority.as_str(),
            refusal.target_vhost.as_deref(),
            refusal.served,
        );
        match self.admit(self.hasher.hash_one(key), window) {
            Verdict::Log => log_line(refusal, peer),
            Verdict::Untracked if self.per_key > 0 => log_line(refusal, peer),
            Verdict::Untracked => self.hold(false),
            Verdict::Hold { first } => self.hold(first),
        }
    }

    fn tick(&self, now: Instant) {
        if self.epoch.get().is_some() {
            let window = self.window_of(now);
            if window > self.current.load(Relaxed) {
                self.advance(window);
            }
        }
    }

    /// The number of the window `now` falls in.
    fn window_of(&self, now: Instant) -> u64 {
        let epoch = *self.epoch.get_or_init(|| now);
        let elapsed = now.saturating_duration_since(epoch);
        let nanos = elapsed
            .as_secs()
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::from(elapsed.subsec_nanos()));
        nanos / self.window_nanos
    }

    /// Moves the current window to `window`; the call that moves it writes the summary.
    fn advance(&self, window: u64) {
        if self.current.fetch_max(window, Relaxed) < window {
            self.report();
        }
    }

    /// Looks up or claims the key's slot and counts this refusal in it.
    fn admit(&self, hash: u64, window: u64) -> Verdict {
        // Low bits choose the bucket, high bits make the fingerprint.
        let bucket = &self.buckets[hash as usize % BUCKETS].0;
        let tag = window % TAG_SPAN + 1;
        let id = (tag << TAG_SHIFT) | ((hash >> (64 - FINGERPRINT_BITS)) << FINGERPRINT_SHIFT);
        'scan: loop {
            let mut free = None;
            for slot in bucket {
                let mut value = slot.load(Relaxed);
                if value & !COUNT_MASK == id {
                    loop {
                        let count = value & COUNT_MASK;
                        if count > self.per_key {
                            // Budget spent and already counted as a key: read only.
                            return Verdict::Hold { first: false };
                        }
                        match slot.compare_exchange_weak(value, value + 1, Relaxed, Relaxed) {
                            Ok(_) => return self.verdict(count + 1),
                            // Another window or key took the slot over: look again.
                            Err(now) if now & !COUNT_MASK != id => continue 'scan,
                            Err(now) => value = now,
                        }
                    }
                }
                if free.is_none() && value >> TAG_SHIFT != tag {
                    free = Some((slot, value));
                }
            }
            let Some((slot, value)) = free else {
                return Verdict::Untracked;
            };
            if slot
                .compare_exchange(value, id | 1, Relaxed, Relaxed)
                .is_ok()
            {
                return self.verdict(1);
            }
        }
    }

    /// The verdict for the key's `count`-th refusal of the window.
    fn verdict(&self, count: u64) -> Verdict {
        if count <= self.per_key {
            Verdict::Log
        } else {
            Verdict::Hold {
                first: count == self.per_key + 1,
            }
        }
    }

    /// Counts a held-back refusal on the calling thread's stripe; `false`, for
    /// [`RefusalLog::record`]'s answer.
    fn hold(&self, first_of_key: bool) -> bool {
        let stripe = &self.stripes[STRIPE.try_with(|s| *s).unwrap_or(0)];
        stripe.suppressed.fetch_add(1, Relaxed);
        if first_of_key {
            stripe.keys.fetch_add(1, Relaxed);
        }
        false
    }

    fn totals(&self) -> Totals {
        self.stripes.iter().fold(Totals::default(), |t, s| Totals {
            suppressed: t.suppressed + s.suppressed.load(Relaxed),
            keys: t.keys + s.keys.load(Relaxed),
        })
    }

    /// Writes the summary of what was held back since the last one, if anything was.
    fn report(&self) {
        let mut reported = self.reported.lock().unwrap_or_else(PoisonError::into_inner);
        let totals = self.totals();
        let suppressed = totals.suppressed.saturating_sub(reported.suppressed);
        if suppressed == 0 {
            return;
        }
        tracing::warn!(
            suppressed,
            keys = totals.keys.saturating_sub(reported.keys),
            window_secs = self.window.as_secs(),
            per_key = self.per_key,
            "refusal log lines held back: each key logs its first per_key refusals per window"
        );
        *reported = totals;
    }
}

/// Hands each thread a stripe, round robin.
static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static STRIPE: usize = NEXT_STRIPE.fetch_add(1, Relaxed) % STRIPES;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hash for bucket `bucket` with fingerprint `fingerprint`.
    fn hash(bucket: u64, fingerprint: u64) -> u64 {
        (fingerprint << (64 - FINGERPRINT_BITS)) | bucket
    }

    fn sampler(per_key: u32) -> Sampler {
        Sampler::new(Duration::from_secs(60), per_key)
    }

    #[test]
    fn a_key_logs_its_budget_then_is_held_back_once_as_a_key() {
        let s = sampler(2);
        let verdicts: Vec<_> = (0..5).map(|_| s.admit(hash(3, 7), 0)).collect();
        assert_eq!(
            verdicts,
            [
                Verdict::Log,
                Verdict::Log,
                Verdict::Hold { first: true },
                Verdict::Hold { first: false },
                Verdict::Hold { first: false },
            ]
        );
    }

    #[test]
    fn a_different_fingerprint_in_the_same_bucket_gets_its_own_first_line() {
        let s = sampler(1);
        assert_eq!(s.admit(hash(5, 1), 0), Verdict::Log);
        assert_eq!(s.admit(hash(5, 1), 0), Verdict::Hold { first: true });
        assert_eq!(s.admit(hash(5, 2), 0), Verdict::Log);
        assert_eq!(s.admit(hash(5, 2), 0), Verdict::Hold { first: true });
    }

    #[test]
    fn a_full_bucket_logs_every_refusal_of_another_key() {
        let s = sampler(1);
        for fingerprint in 0..WAYS as u64 {
            assert_eq!(s.admit(hash(9, fingerprint), 0), Verdict::Log);
            assert_eq!(
                s.admit(hash(9, fingerprint), 0),
                Verdict::Hold { first: true }
            );
        }
        for _ in 0..3 {
            assert_eq!(s.admit(hash(9, 100), 0), Verdict::Untracked);
        }
        // A new window frees every slot of the old one.
        assert_eq!(s.admit(hash(9, 100), 1), Verdict::Log);
        assert_eq!(s.admit(hash(9, 0), 1), Verdict::Log);
    }

    #[test]
    fn a_budget_of_zero_holds_back_from_the_first_refusal() {
        let s = sampler(0);
        assert_eq!(s.admit(hash(1, 1), 0), Verdict::Hold { first: true });
        assert_eq!(s.admit(hash(1, 1), 0), Verdict::Hold { first: false });
    }

    #[test]
    fn window_tags_skip_zero_and_wrap() {
        let s = sampler(1);
        // Window TAG_SPAN has tag 1 again: the same slot state as window 0.
        assert_eq!(s.admit(hash(2, 4), 0), Verdict::Log);
        assert_eq!(s.admit(hash(2, 4), TAG_SPAN), Verdict::Hold { first: true });
        assert_eq!(s.admit(hash(2, 4), TAG_SPAN - 1), Verdict::Log);
    }

    #[test]
    fn windows_count_from_the_first_instant() {
        let s = Sampler::new(Duration::from_millis(1500), 1);
        let start = Instant::now();
        assert_eq!(s.window_of(start), 0);
        assert_eq!(s.window_of(start + Duration::from_millis(1499)), 0);
        assert_eq!(s.window_of(start + Duration::from_millis(1500)), 1);
        assert_eq!(s.window_of(start + Duration::from_secs(30)), 20);
        // Earlier instants fall in the first window.
        assert_eq!(
            s.window_of(start.checked_sub(Duration::from_secs(1)).unwrap()),
            0
        );
    }
}
