//! The compact hash table behind [`HostIndex`](crate::HostIndex) and
//! [`Identities`](crate::Identities).
//!
//! Every key's bytes live in one arena (`Vec<u8>`): an exact name, a wildcard's parent
//! (`example.com` for `*.example.com`), or the 4 or 16 octets of an IP address. The table
//! is open addressing with linear probing over 12-byte slots, at most half full. A slot
//! holds the entry's position, where its bytes are in the arena, its kind and 16 bits of
//! its hash, so a probe touches the arena only when the tag already agrees.

use core::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use foldhash::fast::RandomState;
use misdirect_authority::Host;

use crate::error::{Error, ErrorKind};
use crate::wildcard;

/// What a key's bytes mean.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyKind {
    /// An exact DNS name.
    Exact,
    /// The parent of a wildcard pattern.
    Wildcard,
    /// An IPv4 address, 4 octets.
    Ipv4,
    /// An IPv6 address, 16 octets.
    Ipv6,
}

impl KeyKind {
    const fn code(self) -> u8 {
        match self {
            Self::Exact => 0,
            Self::Wildcard => 1,
            Self::Ipv4 => 2,
            Self::Ipv6 => 3,
        }
    }

    const fn from_code(code: u8) -> Self {
        match code & KIND_MASK {
            0 => Self::Exact,
            1 => Self::Wildcard,
            2 => Self::Ipv4,
            _ => Self::Ipv6,
        }
    }
}

const KIND_MASK: u8 = 0b0000_0011;
/// Set on wildcard keys whose parent is a public suffix: kept (so duplicates are still
/// found and iteration shows them) but never matched.
const BLOCKED: u8 = 0b1000_0000;
const EMPTY: u32 = u32::MAX;
/// At most 2^31 keys, so the table (twice as many slots) has slot positions below 2^32.
const MAX_KEYS: usize = 1 << 31;

#[derive(Clone, Copy, Debug)]
struct Slot {
    /// Insertion position of the entry, or `EMPTY`.
    entry: u32,
    start: u32,
    len: u8,
    flags: u8,
    tag: u16,
}

const VACANT: Slot = Slot {
    entry: EMPTY,
    start: 0,
    len: 0,
    flags: 0,
    tag: 0,
};

/// A key as a caller sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KeyRef<'a> {
    pub(crate) kind: KeyKind,
    pub(crate) bytes: &'a [u8],
    pub(crate) blocked: bool,
    pub(crate) entry: u32,
}

impl KeyRef<'_> {
    /// The key written as a pattern: `*.parent`, a name or an IP address.
    pub(crate) fn display(&self) -> String {
        match self.kind {
            // Invariant: name keys are validated ASCII.
            KeyKind::Exact => String::from_utf8_lossy(self.bytes).into_owned(),
            KeyKind::Wildcard => format!("*.{}", String::from_utf8_lossy(self.bytes)),
            KeyKind::Ipv4 | KeyKind::Ipv6 => key_ip(self.kind, self.bytes).to_string(),
        }
    }
}

pub(crate) fn key_ip(kind: KeyKind, bytes: &[u8]) -> IpAddr {
    match (kind, bytes.len()) {
        (KeyKind::Ipv4, 4) => {
            let mut octets = [0u8; 4];
            octets.copy_from_slice(bytes);
            IpAddr::V4(Ipv4Addr::from(octets))
        }
        _ => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&bytes[..16]);
            IpAddr::V6(Ipv6Addr::from(octets))
        }
    }
}

/// Collects keys before the table is sized and built.
#[derive(Debug, Default)]
pub(crate) struct TableBuilder {
    arena: Vec<u8>,
    pending: Vec<Pending>,
}

#[derive(Clone, Copy, Debug)]
struct Pending {
    start: u32,
    len: u8,
    flags: u8,
}

/// What to do when a key is inserted twice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OnDuplicate {
    /// Fail the build, naming both entries.
    Fail,
    /// Keep the first entry (a certificate listing a name twice is harmless).
    KeepFirst,
}

impl TableBuilder {
    pub(crate) fn with_capacity(entries: usize, bytes: usize) -> Self {
        Self {
            arena: Vec::with_capacity(bytes),
            pending: Vec::with_capacity(entries),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.pending.len()
    }

    /// Adds a validated DNS pattern, lowercasing its bytes into the arena.
    pub(crate) fn push_dns(&mut self, pattern: &[u8], wildcard: bool) -> Result<(), Error> {
        let bytes = if wildcard { &pattern[2..] } else { pattern };
        let start = self.arena.len();
        self.arena.extend_from_slice(bytes);
        self.arena[start..].make_ascii_lowercase();
        let flags = if wildcard {
            let blocked = if wildcard::usable(&self.arena[start..]) {
                0
            } else {
                BLOCKED
            };
            KeyKind::Wildcard.code() | blocked
        } else {
            KeyKind::Exact.code()
        };
        self.finish_push(start, flags)
    }

    pub(crate) fn push_ip(&mut self, ip: IpAddr) -> Result<(), Error> {
        let start = self.arena.len();
        let kind = match ip {
            IpAddr::V4(v4) => {
                self.arena.extend_from_slice(&v4.octets());
                KeyKind::Ipv4
            }
            IpAddr::V6(v6) => {
                self.arena.extend_from_slice(&v6.octets());
                KeyKind::Ipv6
            }
        };
        self.finish_push(start, kind.code())
    }

    fn finish_push(&mut self, start: usize, flags: u8) -> Result<(), Error> {
        let len = self.arena.len() - start;
        let (Ok(start32), Ok(len8)) = (u32::try_from(start), u8::try_from(len)) else {
            self.arena.truncate(start);
            return Err(Error::new(ErrorKind::IndexTooLarge));
        };
        if self.pending.len() >= MAX_KEYS || start32.checked_add(len as u32).is_none() {
            self.arena.truncate(start);
            return Err(Error::new(ErrorKind::IndexTooLarge));
        }
        self.pending.push(Pending {
            start: start32,
            len: len8,
            flags,
        });
        Ok(())
    }

    /// Sizes the table for the keys collected so far and inserts them.
    pub(crate) fn build(self, on_duplicate: OnDuplicate) -> Result<Table, Error> {
        let Self { mut arena, pending } = self;
        arena.shrink_to_fit();
        let capacity = (pending.len() * 2).next_power_of_two().max(8);
        let mut table = Table {
            arena,
            slots: vec![VACANT; capacity].into_boxed_slice(),
            mask: capacity - 1,
            state: RandomState::default(),
            order: Vec::with_capacity(pending.len()),
        };
        for (entry, key) in pending.iter().enumerate() {
            let kind = KeyKind::from_code(key.flags);
            let (start, end) = (
                key.start as usize,
                key.start as usize + usize::from(key.len),
            );
            let hash = table.hash(kind, &table.arena[start..end]);
            let mut pos = (hash as usize) & table.mask;
            let tag = tag_of(hash);
            loop {
                let slot = table.slots[pos];
                if slot.entry == EMPTY {
                    table.slots[pos] = Slot {
                        // Invariant: `finish_push` keeps the entry count below u32::MAX.
                        entry: entry as u32,
                        start: key.start,
                        len: key.len,
                        flags: key.flags,
                        tag,
                    };
                    // Invariant: MAX_KEYS keeps the capacity, and so `pos`, below 2^32.
                    table.order.push(pos as u32);
                    break;
                }
                if slot.tag == tag
                    && (slot.flags & KIND_MASK) == (key.flags & KIND_MASK)
                    && table.slot_bytes(&slot) == &table.arena[start..end]
                {
                    match on_duplicate {
                        OnDuplicate::KeepFirst => break,
                        OnDuplicate::Fail => {
                            let first = table.key_ref(&slot);
                            return Err(Error::duplicate(
                                first.display(),
                                slot.entry as usize,
                                entry,
                            ));
                        }
                    }
                }
                pos = (pos + 1) & table.mask;
            }
        }
        table.order.shrink_to_fit();
        Ok(table)
    }
}

/// The built table: immutable, at most half full.
#[derive(Clone)]
pub(crate) struct Table {
    arena: Vec<u8>,
    slots: Box<[Slot]>,
    mask: usize,
    state: RandomState,
    /// Slot position of each stored key, in insertion order (duplicates dropped under
    /// `KeepFirst` have none), so iteration does not depend on the hash seed.
    order: Vec<u32>,
}

impl core::fmt::Debug for Table {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Table")
            .field("keys", &self.order.len())
            .field("slots", &self.slots.len())
            .field("arena_bytes", &self.arena.len())
            .finish()
    }
}

/// Entries that match one host: the exact key and the wildcard key for its parent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Hits {
    pub(crate) exact: Option<u32>,
    pub(crate) wildcard: Option<u32>,
}

impl Table {
    pub(crate) fn empty() -> Self {
        // Invariant: an empty builder never fails.
        TableBuilder::default()
            .build(OnDuplicate::KeepFirst)
            .expect("an empty table builds")
    }

    /// Heap bytes held: arena, slots and the insertion order.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.arena.capacity()
            + self.slots.len() * core::mem::size_of::<Slot>()
            + self.order.capacity() * core::mem::size_of::<u32>()
    }

    fn hash(&self, kind: KeyKind, bytes: &[u8]) -> u64 {
        let mut hasher = self.state.build_hasher();
        hasher.write(bytes);
        hasher.write_u8(kind.code());
        hasher.finish()
    }

    fn slot_bytes(&self, slot: &Slot) -> &[u8] {
        let start = slot.start as usize;
        &self.arena[start..start + usize::from(slot.len)]
    }

    fn key_ref(&self, slot: &Slot) -> KeyRef<'_> {
        KeyRef {
            kind: KeyKind::from_code(slot.flags),
            bytes: self.slot_bytes(slot),
            blocked: slot.flags & BLOCKED != 0,
            entry: slot.entry,
        }
    }

    /// The slot for a key, blocked or not.
    #[inline]
    fn find(&self, kind: KeyKind, bytes: &[u8]) -> Option<&Slot> {
        let hash = self.hash(kind, bytes);
        let tag = tag_of(hash);
        let mut pos = (hash as usize) & self.mask;
        loop {
            let slot = &self.slots[pos];
            if slot.entry == EMPTY {
                return None;
            }
            if slot.tag == tag
                && KeyKind::from_code(slot.flags) == kind
                && self.slot_bytes(slot) == bytes
            {
                return Some(slot);
            }
            pos = (pos + 1) & self.mask;
        }
    }

    /// The entry that answers `host`: the exact key, else the usable wildcard for the
    /// parent.
    #[inline]
    pub(crate) fn lookup(&self, host: &Host) -> Option<(u32, KeyKind)> {
        match host.as_name() {
            Some(name) => {
                if let Some(slot) = self.find(KeyKind::Exact, name.as_bytes()) {
                    return Some((slot.entry, KeyKind::Exact));
                }
                self.wildcard_for(wildcard::parent(name.as_bytes())?)
                    .map(|entry| (entry, KeyKind::Wildcard))
            }
            None => {
                let (kind, entry) = self.find_ip(host)?;
                Some((entry, kind))
            }
        }
    }

    /// Both matching entries, when both exist.
    pub(crate) fn lookup_all(&self, host: &Host) -> Hits {
        match host.as_name() {
            Some(name) => Hits {
                exact: self
                    .find(KeyKind::Exact, name.as_bytes())
                    .map(|slot| slot.entry),
                wildcard: wildcard::parent(name.as_bytes())
                    .and_then(|parent| self.wildcard_for(parent)),
            },
            None => Hits {
                exact: self.find_ip(host).map(|(_, entry)| entry),
                wildcard: None,
            },
        }
    }

    /// Whether the table has a usable wildcard key for exactly this parent.
    pub(crate) fn wildcard_for(&self, parent: &[u8]) -> Option<u32> {
        self.find(KeyKind::Wildcard, parent)
            .filter(|slot| slot.flags & BLOCKED == 0)
            .map(|slot| slot.entry)
    }

    fn find_ip(&self, host: &Host) -> Option<(KeyKind, u32)> {
        match host.ip()? {
            IpAddr::V4(v4) => self
                .find(KeyKind::Ipv4, &v4.octets())
                .map(|s| (KeyKind::Ipv4, s.entry)),
            IpAddr::V6(v6) => self
                .find(KeyKind::Ipv6, &v6.octets())
                .map(|s| (KeyKind::Ipv6, s.entry)),
        }
    }

    /// Every key, in insertion order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = KeyRef<'_>> + '_ {
        self.order
            .iter()
            .map(|&pos| self.key_ref(&self.slots[pos as usize]))
    }
}

fn tag_of(hash: u64) -> u16 {
    // Invariant: the shift leaves 16 bits.
    (hash >> 48) as u16
}
