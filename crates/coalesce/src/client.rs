use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;

use misdirect_authority::{Host, Origin, Scheme};
use misdirect_certmatch::Identities;
use misdirect_response::OriginFrame;

/// When a client may send a request for one origin on a connection made for another.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ReuseMode {
    /// Only requests for the connection's own origin (curl, Go, hyper-util today).
    Exact,
    /// The new origin's resolved addresses include the connection's peer address
    /// (Chromium).
    #[default]
    DnsOverlap,
    /// The new origin's resolved addresses share any address with those the connection's
    /// origin resolved to (Firefox).
    IpOverlap,
    /// The origin is in the connection's ORIGIN set (RFC 8336); until an ORIGIN frame
    /// arrives, as [`ReuseMode::DnsOverlap`].
    OriginFrame,
}

/// A client's coalescing rules (RFC 9113 §9.1.1, RFC 8336).
///
/// ```
/// use misdirect_coalesce::{ReuseMode, ReusePolicy};
///
/// let policy = ReusePolicy::new(ReuseMode::OriginFrame);
/// assert_eq!(policy.mode(), ReuseMode::OriginFrame);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ReusePolicy {
    mode: ReuseMode,
    share_client_cert: bool,
}

/// Why a connection may not carry a request for an origin.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NoReuse {
    /// Only `https` connections are shared across origins.
    NotHttps,
    /// The connection is closing (GOAWAY received).
    GoingAway,
    /// This connection answered 421 for the origin before.
    Misdirected,
    /// The policy allows only the connection's own origin.
    ExactOnly,
    /// The origin's port differs from the connection's.
    PortDiffers,
    /// The connection presented a client certificate and sharing it is not allowed.
    ClientCertificate,
    /// The connection's certificate does not name the origin's host.
    NotCovered,
    /// The full certificate verification for the origin's host failed.
    VerifyFailed,
    /// The origin is not in the connection's ORIGIN set.
    NotInOriginSet,
    /// The origin's addresses do not overlap the connection's.
    NoAddressOverlap,
}

/// The answer of [`ReusePolicy::may_reuse`].
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReuseDecision {
    /// Send the request on this connection.
    Reuse,
    /// Open (or find) another connection; the reason says why not this one.
    No(NoReuse),
}

/// What to do after a 421 (RFC 9110 §15.5.20).
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RetryAdvice {
    /// Retry the request once, whatever its method, on a fresh connection made for
    /// this origin.
    RetryOnFreshConnection(Origin),
    /// The connection was already dedicated to this origin: retrying cannot help.
    GiveUp,
}

impl ReusePolicy {
    /// A policy with this mode; connections with client certificates are not shared.
    pub const fn new(mode: ReuseMode) -> Self {
        Self {
            mode,
            share_client_cert: false,
        }
    }

    /// Allows sharing connections that presented a client certificate (off by default:
    /// the certificate would speak for origins it was not chosen for).
    pub const fn share_client_cert(mut self, share: bool) -> Self {
        self.share_client_cert = share;
        self
    }

    /// The mode.
    pub const fn mode(&self) -> ReuseMode {
        self.mode
    }

    /// May a request for `origin` go on `conn`?
    ///
    /// `resolved` are the addresses `origin`'s host resolved to; `verify` must run the full
    /// certificate verification a new connection for that host would run (chain, validity,
    /// name), as RFC 9113 §9.1.1 requires — a name match alone is not enough.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use misdirect_certmatch::Identities;
    /// use misdirect_coalesce::{PooledConnection, ReuseDecision, ReuseMode, ReusePolicy, NoReuse};
    ///
    /// let cert = Arc::new(Identities::from_patterns(["*.example.com".parse()?]));
    /// let peer = "192.0.2.1".parse()?;
    /// let conn = PooledConnection::new("https://a.example.com".parse()?, peer, cert);
    /// let policy = ReusePolicy::new(ReuseMode::DnsOverlap);
    ///
    /// let b = "https://b.example.com".parse()?;
    /// assert_eq!(policy.may_reuse(&conn, &b, &[peer], |_| true), ReuseDecision::Reuse);
    /// let elsewhere = ["198.51.100.7".parse()?];
    /// assert_eq!(policy.may_reuse(&conn, &b, &elsewhere, |_| true), ReuseDecision::No(NoReuse::NoAddressOverlap));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn may_reuse(
        &self,
        conn: &PooledConnection,
        origin: &Origin,
        resolved: &[IpAddr],
        verify: impl FnOnce(&Host) -> bool,
    ) -> ReuseDecision {
        match self.check(conn, origin, resolved) {
            Err(no) => ReuseDecision::No(no),
            Ok(true) => ReuseDecision::Reuse,
            Ok(false) if verify(origin.host()) => ReuseDecision::Reuse,
            Ok(false) => ReuseDecision::No(NoReuse::VerifyFailed),
        }
    }

    /// Every check but verification; `Ok(true)` when `origin` is the connection's own.
    fn check(
        &self,
        conn: &PooledConnection,
        origin: &Origin,
        resolved: &[IpAddr],
    ) -> Result<bool, NoReuse> {
        if origin.scheme() != Scheme::Https || conn.origin.scheme() != Scheme::Https {
            return Err(NoReuse::NotHttps);
        }
        if conn.going_away {
            return Err(NoReuse::GoingAway);
        }
        if conn.misdirected.contains(origin) {
            return Err(NoReuse::Misdirected);
        }
        if *origin == conn.origin {
            return Ok(true);
        }
        if self.mode == ReuseMode::Exact {
            return Err(NoReuse::ExactOnly);
        }
        if origin.port() != conn.origin.port() {
            return Err(NoReuse::PortDiffers);
        }
        if conn.client_cert && !self.share_client_cert {
            return Err(NoReuse::ClientCertificate);
        }
        if !conn.certificate.covers(origin.host()) {
            return Err(NoReuse::NotCovered);
        }
        let dns_overlap = || resolved.contains(&conn.peer);
        let allowed = match (self.mode, &conn.origin_set) {
            (ReuseMode::OriginFrame, Some(set)) => set.contains(origin),
            (ReuseMode::IpOverlap, _) => {
                dns_overlap() || resolved.iter().any(|a| conn.resolved.contains(a))
            }
            _ => dns_overlap(),
        };
        match (allowed, self.mode, &conn.origin_set) {
            (true, _, _) => Ok(false),
            (false, ReuseMode::OriginFrame, Some(_)) => Err(NoReuse::NotInOriginSet),
            (false, _, _) => Err(NoReuse::NoAddressOverlap),
        }
    }
}

/// A client's view of one pooled HTTP/2 connection: what it was made for and what it has
/// learnt since.
///
/// ```
/// use std::sync::Arc;
/// use misdirect_certmatch::Identities;
/// use misdirect_coalesce::{PooledConnection, RetryAdvice};
///
/// let cert = Arc::new(Identities::from_patterns(["*.example.com".parse()?]));
/// let mut conn = PooledConnection::new("https://a.example.com".parse()?, "192.0.2.1".parse()?, cert);
/// let b = "https://b.example.com".parse()?;
/// assert_eq!(conn.on_misdirected(&b), RetryAdvice::RetryOnFreshConnection(b.clone()));
/// assert!(conn.is_misdirected(&b));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct PooledConnection {
    origin: Origin,
    peer: IpAddr,
    resolved: Vec<IpAddr>,
    certificate: Arc<Identities>,
    origin_set: Option<HashSet<Origin>>,
    misdirected: HashSet<Origin>,
    going_away: bool,
    client_cert: bool,
    authoritative_frames: bool,
}

impl PooledConnection {
    /// A connection made for `origin` (its SNI) to `peer`, whose certificate has these
    /// identities.
    pub fn new(origin: Origin, peer: IpAddr, certificate: Arc<Identities>) -> Self {
        Self {
            origin,
            peer,
            resolved: vec![peer],
            certificate,
            origin_set: None,
            misdirected: HashSet::new(),
            going_away: false,
            client_cert: false,
            authoritative_frames: true,
        }
    }

    /// Records every address the connection's origin resolved to (for
    /// [`ReuseMode::IpOverlap`]).
    pub fn resolved(mut self, addrs: impl IntoIterator<Item = IpAddr>) -> Self {
        self.resolved = addrs.into_iter().collect();
        if !self.resolved.contains(&self.peer) {
            self.resolved.push(self.peer);
        }
        self
    }

    /// Records that the connection presented a client certificate.
    pub fn with_client_cert(mut self, presented: bool) -> Self {
        self.client_cert = presented;
        self
    }

    /// Marks a connection through a proxy or over cleartext (h2c): ORIGIN frames on it are
    /// ignored (RFC 8336 §2.1).
    pub fn ignore_origin_frames(mut self) -> Self {
        self.authoritative_frames = false;
        self
    }

    /// Records a GOAWAY: no new requests go on this connection.
    pub fn going_away(&mut self) {
        self.going_away = true;
    }

    /// The origin the connection was made for.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The ORIGIN set, once an ORIGIN frame has arrived.
    pub fn origin_set(&self) -> Option<&HashSet<Origin>> {
        self.origin_set.as_ref()
    }

    /// Whether this connection answered 421 for `origin`.
    pub fn is_misdirected(&self, origin: &Origin) -> bool {
        self.misdirected.contains(origin)
    }

    /// Records a 421 for `origin` on this connection (RFC 9110 §15.5.20, RFC 8336 §2.3):
    /// the origin is never sent here again and leaves the ORIGIN set. The request should be
    /// retried once on a fresh connection made for `origin`, unless this connection already
    /// was one.
    pub fn on_misdirected(&mut self, origin: &Origin) -> RetryAdvice {
        self.misdirected.insert(origin.clone());
        if let Some(set) = &mut self.origin_set {
            set.remove(origin);
        }
        match *origin == self.origin {
            true => RetryAdvice::GiveUp,
            false => RetryAdvice::RetryOnFreshConnection(origin.clone()),
        }
    }

    /// Applies an ORIGIN frame received on stream 0 (RFC 8336 §2.3): the first frame
    /// initialises the origin set with the connection's own origin plus the listed ones;
    /// later frames add to it. Entries that are not ASCII-serialised http(s) origins are
    /// ignored, and so is the whole frame on connections marked with
    /// [`ignore_origin_frames`](Self::ignore_origin_frames). Returns how many origins the
    /// frame added.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use misdirect_certmatch::Identities;
    /// use misdirect_coalesce::PooledConnection;
    /// use misdirect_response::OriginFrame;
    ///
    /// let cert = Arc::new(Identities::from_patterns(["*.example.com".parse()?]));
    /// let mut conn = PooledConnection::new("https://a.example.com".parse()?, "192.0.2.1".parse()?, cert);
    /// let frame = OriginFrame::from_origins(["https://b.example.com", "ftp://b.example.com"])?;
    /// assert_eq!(conn.on_origin_frame(&frame), 1);
    /// assert_eq!(conn.origin_set().unwrap().len(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on_origin_frame(&mut self, frame: &OriginFrame) -> usize {
        if !self.authoritative_frames {
            return 0;
        }
        let own = self.origin.clone();
        let misdirected = &self.misdirected;
        let set = self.origin_set.get_or_insert_with(|| HashSet::from([own]));
        let before = set.len();
        for entry in frame.origins() {
            if let Ok(origin) = Origin::parse(entry.as_bytes())
                && !misdirected.contains(&origin)
            {
                set.insert(origin);
            }
        }
        set.len() - before
    }
}
