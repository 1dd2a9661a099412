use core::fmt;
use std::net::IpAddr;

use misdirect_authority::Host;

use crate::error::Error;
use crate::pattern::{DnsPattern, Pattern, validate};
use crate::table::{KeyKind, KeyRef, OnDuplicate, Table, TableBuilder, key_ip};

/// A map from name patterns (exact names, wildcards, IP addresses) to values, answering
/// "which entry serves this host?" in one or two hash probes.
///
/// [`lookup`](HostIndex::lookup) returns the exact entry for a name, else the wildcard entry
/// for its parent (`*.example.com` for `www.example.com`), following RFC 9525 §6.3: a
/// wildcard covers exactly one label, never its own parent, and (feature `psl`) never when
/// its parent is a public suffix. IP hosts match IP entries only, octet for octet.
///
/// Built for a million names: all key bytes sit in one arena, the table is open addressing
/// over 12-byte slots at most half full, hashed with foldhash on the normalised bytes.
/// Duplicate patterns are a build error that names both entries.
///
/// ```
/// use misdirect_authority::Host;
/// use misdirect_certmatch::{HostIndex, MatchKind, Pattern};
///
/// let index = HostIndex::build([
///     ("www.example.com".parse::<Pattern>()?, "www"),
///     ("*.example.com".parse()?, "any"),
///     ("192.0.2.1".parse()?, "ip"),
/// ])?;
/// let host = |s: &str| s.parse::<Host>().unwrap();
/// assert_eq!(index.lookup(&host("WWW.example.com.")), Some(&"www"));
/// assert_eq!(index.lookup(&host("api.example.com")), Some(&"any"));
/// assert_eq!(index.lookup(&host("a.b.example.com")), None);
/// assert_eq!(index.lookup(&host("192.0.2.1")), Some(&"ip"));
/// let all: Vec<_> = index.lookup_all(&host("www.example.com")).map(|m| m.kind()).collect();
/// assert_eq!(all, [MatchKind::Exact, MatchKind::Wildcard]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct HostIndex<T> {
    table: Table,
    values: Vec<T>,
}

/// Collects the entries of a [`HostIndex`]; [`build`](HostIndexBuilder::build) checks for
/// duplicates and sizes the table once.
///
/// ```
/// use misdirect_certmatch::{ErrorKind, HostIndexBuilder};
///
/// let mut builder = HostIndexBuilder::new();
/// builder.push_bytes(b"*.tenant1.example.net", 1)?;
/// builder.push_bytes(b"*.TENANT1.example.net", 2)?;
/// let err = builder.build().unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::DuplicatePattern);
/// let dup = err.duplicate_entries().unwrap();
/// assert_eq!((dup.pattern(), dup.first(), dup.second()), ("*.tenant1.example.net", 0, 1));
/// # Ok::<(), misdirect_certmatch::Error>(())
/// ```
#[derive(Debug)]
pub struct HostIndexBuilder<T> {
    table: TableBuilder,
    values: Vec<T>,
}

impl<T> Default for HostIndexBuilder<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> HostIndexBuilder<T> {
    /// An empty builder.
    ///
    /// ```
    /// let builder = misdirect_certmatch::HostIndexBuilder::<u32>::new();
    /// assert!(builder.is_empty());
    /// ```
    pub fn new() -> Self {
        Self::with_capacity(0, 0)
    }

    /// An empty builder with room for `entries` entries totalling `name_bytes` bytes of
    /// names, so that building a large index does not reallocate.
    ///
    /// ```
    /// let builder = misdirect_certmatch::HostIndexBuilder::<u32>::with_capacity(1000, 25_000);
    /// assert_eq!(builder.len(), 0);
    /// ```
    pub fn with_capacity(entries: usize, name_bytes: usize) -> Self {
        Self {
            table: TableBuilder::with_capacity(entries, name_bytes),
            values: Vec::with_capacity(entries),
        }
    }

    /// Entries pushed so far.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether nothing was pushed yet.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Adds an entry for a pattern.
    pub fn push(&mut self, pattern: &Pattern, value: T) -> Result<(), Error> {
        match pattern {
            Pattern::Dns(dns) => self.push_dns(dns, value),
            Pattern::Ip(ip) => self.push_ip(*ip, value),
        }
    }

    /// Adds an entry for a DNS pattern.
    pub fn push_dns(&mut self, pattern: &DnsPattern, value: T) -> Result<(), Error> {
        self.table
            .push_dns(pattern.as_str().as_bytes(), pattern.is_wildcard())?;
        self.values.push(value);
        Ok(())
    }

    /// Adds an entry for an IP address.
    pub fn push_ip(&mut self, ip: IpAddr, value: T) -> Result<(), Error> {
        self.table.push_ip(ip)?;
        self.values.push(value);
        Ok(())
    }

    /// Parses a pattern (as [`Pattern::parse`]) straight into the arena, without an
    /// allocation per name: the fast path for loading large configurations.
    pub fn push_bytes(&mut self, pattern: &[u8], value: T) -> Result<(), Error> {
        match validate(pattern) {
            Ok(shape) => self.table.push_dns(pattern, shape.wildcard)?,
            Err(err) => match Pattern::parse(pattern) {
                Ok(Pattern::Ip(ip)) => self.table.push_ip(ip)?,
                _ => return Err(err),
            },
        }
        self.values.push(value);
        Ok(())
    }

    /// Builds the index. Fails with [`ErrorKind::DuplicatePattern`](crate::ErrorKind::DuplicatePattern) when two entries carry
    /// the same pattern (after case folding), naming both.
    pub fn build(self) -> Result<HostIndex<T>, Error> {
        debug_assert_eq!(self.table.len(), self.values.len());
        let table = self.table.build(OnDuplicate::Fail)?;
        let mut values = self.values;
        values.shrink_to_fit();
        Ok(HostIndex { table, values })
    }
}

impl<T> HostIndex<T> {
    /// Builds an index from `(pattern, value)` pairs.
    ///
    /// ```
    /// use misdirect_certmatch::{HostIndex, Pattern};
    ///
    /// let index = HostIndex::build([("*.example.com".parse::<Pattern>()?, 7)])?;
    /// assert_eq!(index.len(), 1);
    /// # Ok::<(), misdirect_certmatch::Error>(())
    /// ```
    pub fn build<P, I>(pairs: I) -> Result<Self, Error>
    where
        P: Into<Pattern>,
        I: IntoIterator<Item = (P, T)>,
    {
        let pairs = pairs.into_iter();
        let mut builder = HostIndexBuilder::with_capacity(pairs.size_hint().0, 0);
        for (pattern, value) in pairs {
            builder.push(&pattern.into(), value)?;
        }
        builder.build()
    }

    /// The value for `host`: the exact entry, else the wildcard entry for its parent.
    #[inline]
    pub fn lookup(&self, host: &Host) -> Option<&T> {
        let (entry, _) = self.table.lookup(host)?;
        self.values.get(entry as usize)
    }

    /// Like [`lookup`](HostIndex::lookup), with which entry answered and how.
    pub fn lookup_match(&self, host: &Host) -> Option<Match<'_, T>> {
        let (entry, kind) = self.table.lookup(host)?;
        Some(self.make_match(entry, kind))
    }

    /// Every entry that matches `host`: the exact (or IP) entry first, then the wildcard
    /// entry for its parent, when both exist.
    pub fn lookup_all(&self, host: &Host) -> LookupAll<'_, T> {
        let hits = self.table.lookup_all(host);
        let exact_kind = if host.is_ip() {
            MatchKind::Ip
        } else {
            MatchKind::Exact
        };
        LookupAll {
            index: self,
            exact: hits.exact.map(|e| (e, exact_kind)),
            wildcard: hits.wildcard,
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the index has no entries.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Every entry with its pattern, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (PatternRef<'_>, &T)> + '_ {
        self.table
            .keys()
            .map(|key| (PatternRef::from_key(key), &self.values[key.entry as usize]))
    }

    /// The value pushed at `position` (insertion order, from 0).
    pub fn get(&self, position: usize) -> Option<&T> {
        self.values.get(position)
    }

    /// Heap bytes the index holds by its own accounting (arena, slots, values); the
    /// `index_memory` example checks it against an allocator's count.
    pub fn heap_bytes(&self) -> usize {
        self.table.heap_bytes() + self.values.capacity() * core::mem::size_of::<T>()
    }

    fn make_match(&self, entry: u32, kind: KeyKind) -> Match<'_, T> {
        let kind = match kind {
            KeyKind::Exact => MatchKind::Exact,
            KeyKind::Wildcard => MatchKind::Wildcard,
            KeyKind::Ipv4 | KeyKind::Ipv6 => MatchKind::Ip,
        };
        Match {
            position: entry as usize,
            kind,
            value: &self.values[entry as usize],
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for HostIndex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// How an entry matched a host.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatchKind {
    /// The entry's name equals the host.
    Exact,
    /// The entry is the wildcard for the host's parent.
    Wildcard,
    /// The entry's IP address equals the host's.
    Ip,
}

/// One entry that matched, from [`HostIndex::lookup_match`] or
/// [`HostIndex::lookup_all`].
#[derive(Debug)]
pub struct Match<'a, T> {
    position: usize,
    kind: MatchKind,
    value: &'a T,
}

impl<T> Clone for Match<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Match<'_, T> {}

impl<'a, T> Match<'a, T> {
    /// The entry's position in insertion order, from 0.
    pub fn position(&self) -> usize {
        self.position
    }

    /// How it matched.
    pub fn kind(&self) -> MatchKind {
        self.kind
    }

    /// The entry's value.
    pub fn value(&self) -> &'a T {
        self.value
    }
}

/// Iterator returned by [`HostIndex::lookup_all`].
#[derive(Debug)]
pub struct LookupAll<'a, T> {
    index: &'a HostIndex<T>,
    exact: Option<(u32, MatchKind)>,
    wildcard: Option<u32>,
}

impl<'a, T> Iterator for LookupAll<'a, T> {
    type Item = Match<'a, T>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some((entry, kind)) = self.exact.take() {
            return Some(Match {
                position: entry as usize,
                kind,
                value: &self.index.values[entry as usize],
            });
        }
        let entry = self.wildcard.take()?;
        Some(self.index.make_match(entry, KeyKind::Wildcard))
    }
}

/// A pattern as stored in a [`HostIndex`], borrowed from its arena.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatternRef<'a> {
    /// An exact name.
    Exact(&'a str),
    /// A wildcard `*.parent`; `blocked` when the parent is a public suffix, so it never
    /// matches.
    Wildcard {
        /// The name after `*.`.
        parent: &'a str,
        /// Whether the public-suffix rule disables it.
        blocked: bool,
    },
    /// An IP address.
    Ip(IpAddr),
}

impl<'a> PatternRef<'a> {
    fn from_key(key: KeyRef<'a>) -> Self {
        match key.kind {
            // Invariant: name keys come from validated ASCII patterns.
            KeyKind::Exact => Self::Exact(core::str::from_utf8(key.bytes).unwrap_or_default()),
            KeyKind::Wildcard => Self::Wildcard {
                parent: core::str::from_utf8(key.bytes).unwrap_or_default(),
                blocked: key.blocked,
            },
            KeyKind::Ipv4 | KeyKind::Ipv6 => Self::Ip(key_ip(key.kind, key.bytes)),
        }
    }

    /// The owned [`Pattern`].
    pub fn to_pattern(&self) -> Pattern {
        match self {
            Self::Ip(ip) => Pattern::Ip(*ip),
            _ => {
                let text = self.to_string();
                // Invariant: stored patterns were validated when they were pushed.
                Pattern::Dns(
                    DnsPattern::parse(text.as_bytes()).unwrap_or_else(|_| {
                        unreachable!("stored pattern `{text}` no longer parses")
                    }),
                )
            }
        }
    }
}

impl fmt::Display for PatternRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(name) => f.write_str(name),
            Self::Wildcard { parent, .. } => write!(f, "*.{parent}"),
            Self::Ip(ip) => ip.fmt(f),
        }
    }
}
