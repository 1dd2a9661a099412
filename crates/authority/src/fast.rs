//! The fast path of [`Authority::parse`]: the common shapes of a valid authority —
//! `name[:port]` with a name of at most 63 bytes, `a.b.c.d[:port]` and `[ipv6][:port]` —
//! checked with few branches, names eight bytes at a time.
//!
//! It either builds the very authority the general parser (`host.rs`) builds, or declines,
//! and then the general parser decides, with the exact error when the input is bad. So the
//! fast path may decline anything, but must never accept what the general parser rejects
//! nor build a different value. The tests below compare the two on every string of up to
//! five bytes over an alphabet that covers both grammars and on large generated corpora;
//! the `authority_parse` fuzz target does the same on whatever it finds.
//!
//! The word-at-a-time tests are exact for bytes below 0x80 only: a byte at or above 0x80
//! makes the additions carry into the lanes above it. Such a byte is itself taken as the
//! end of the host, so only lanes after the end can be misread, and those are never used.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::authority::Authority;
use crate::host::{Host, INLINE_CAP};
use crate::lanes::{LANES, TOP, equal, in_range, load_word, movemask};

/// The longest name the fast path takes: every label then fits in 63 bytes (RFC 1035
/// §2.3.4) without being measured.
const FAST_NAME_MAX: usize = 63;

/// Parses `input` into `out` when it has one of the common shapes and is valid, and says
/// whether it did; on `false` the general parser must decide, and `out` holds garbage.
///
/// `out` comes in holding an empty inline name, whose buffer the name path fills in place:
/// building the name elsewhere and moving it in cost more than all the checks together.
#[inline(always)]
pub(crate) fn parse_into(input: &[u8], out: &mut Authority) -> bool {
    let Some(&first) = input.first() else {
        return false;
    };
    let parsed = match first {
        b'[' => ipv6(input),
        // Most hosts that start with a digit are IPv4 addresses; names such as
        // `1password.com` fall through to the name path.
        b'0'..=b'9' => ipv4(input),
        _ => None,
    };
    if let Some((host, port)) = parsed {
        out.host = host;
        out.port = port;
        return true;
    }
    first != b'[' && name(input, out)
}

/// `name[:port]`: validates, finds the dots and the colon, and folds case for eight bytes
/// per step, writing the folded words straight into the inline buffer of `out`'s name.
#[inline(always)]
fn name(input: &[u8], out: &mut Authority) -> bool {
    let n = input.len();
    let Host::Name(name) = &mut out.host else {
        return false;
    };
    let Some((len, bytes)) = name.inline_mut() else {
        return false;
    };
    if n > INLINE_CAP {
        return false;
    }
    // One bit per byte of the host: its dots.
    let mut dots = 0u64;
    let mut host_len = n;
    for k in 0..n.div_ceil(8) {
        let at = 8 * k;
        let word = word_at(input, k);
        // With 0x20 set, exactly `A-Z` and `a-z` land in `a..=z`.
        let letter = in_range(word | (LANES * 0x20), b'a', b'z');
        let name_byte =
            letter | in_range(word, b'0', b'9') | in_range(word, b'-', b'.') | equal(word, b'_');
        // The host ends at the first byte that cannot be in a name: the colon, a byte past
        // the end (read as zero), or anything else. A byte at or above 0x80 is such a stop
        // itself; only lanes after it can be misread.
        let stop = (!name_byte | word) & TOP;
        // Lanes before the first stop.
        let keep = ((stop & stop.wrapping_neg()) >> 7).wrapping_sub(1);
        dots |= movemask(equal(word, b'.') & keep) << at;
        // The letter mask's top bit, moved to 0x20: lowercase for `A-Z`, no change else.
        let folded = (word | letter >> 2) & keep;
        bytes[at..at + 8].copy_from_slice(&folded.to_le_bytes());
        if stop != 0 {
            host_len = at + (stop.trailing_zeros() / 8) as usize;
            break;
        }
    }
    if host_len == 0 || host_len > FAST_NAME_MAX {
        return false;
    }
    let port = match &input[host_len..] {
        [] | [b':'] => None,
        [b':', digits @ ..] => match port(digits) {
            Some(port) => Some(port),
            None => return false,
        },
        // `@`, `%`, a space…: the general parser names the error.
        _ => return false,
    };
    // No empty label: not a leading dot, nor two in a row. A trailing dot is left to the
    // general parser, which drops it.
    if dots & 1 != 0 || dots & dots >> 1 != 0 || dots >> (host_len - 1) != 0 {
        return false;
    }
    // A last label that starts with a digit may be numeric (an IPv4 address, or an error):
    // the general parser decides.
    let last_label = 64 - dots.leading_zeros() as usize;
    if input.get(last_label).is_none_or(u8::is_ascii_digit) {
        return false;
    }
    // Invariant: host_len <= FAST_NAME_MAX < 256.
    *len = host_len as u8;
    out.port = port;
    true
}

/// `a.b.c.d[:port]`, each part a `dec-octet` (RFC 3986 §3.2.2): `0`–`255`, no leading zero.
#[inline(always)]
fn ipv4(input: &[u8]) -> Option<(Host, Option<u16>)> {
    let mut octets = [0u8; 4];
    let mut i = 0;
    for (n, octet) in octets.iter_mut().enumerate() {
        if n > 0 {
            if input.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
        let first = digit(input.get(i))?;
        let mut value = first;
        i += 1;
        if let Some(second) = digit(input.get(i)) {
            if first == 0 {
                return None;
            }
            value = value * 10 + second;
            i += 1;
            if let Some(third) = digit(input.get(i)) {
                value = value * 10 + third;
                i += 1;
            }
        }
        *octet = u8::try_from(value).ok()?;
    }
    let port = match &input[i..] {
        [] | [b':'] => None,
        [b':', digits @ ..] => Some(port(digits)?),
        _ => return None,
    };
    Some((Host::Ipv4(Ipv4Addr::from(octets)), port))
}

/// `[IPv6address][:port]` in the forms without an embedded IPv4 part (RFC 4291 §2.2, forms
/// 1 and 2): up to eight groups of one to four hex digits, at most one `::`.
#[inline(always)]
fn ipv6(input: &[u8]) -> Option<(Host, Option<u16>)> {
    let s = input.get(1..)?;
    // The groups read so far, the last one lowest; at `::` they move to `head`.
    let mut groups = 0u128;
    let mut count = 0;
    let mut head = 0u128;
    let mut gap = None;
    let mut i = 0;
    if let [b':', b':', ..] = s {
        gap = Some(0);
        i = 2;
    }
    if !(gap.is_some() && s.get(i) == Some(&b']')) {
        loop {
            let start = i;
            let mut group = 0u16;
            while i - start < 4 {
                match s.get(i).and_then(|&b| hex(b)) {
                    Some(h) => group = group << 4 | h,
                    None => break,
                }
                i += 1;
            }
            if i == start || count == 8 {
                return None;
            }
            groups = groups << 16 | u128::from(group);
            count += 1;
            match *s.get(i)? {
                b']' => break,
                b':' => {
                    i += 1;
                    if *s.get(i)? == b':' {
                        if gap.is_some() {
                            return None;
                        }
                        gap = Some(count);
                        head = groups;
                        groups = 0;
                        i += 1;
                        if *s.get(i)? == b']' {
                            break;
                        }
                    }
                }
                // A fifth hex digit, an embedded IPv4 address, a zone id…
                _ => return None,
            }
        }
    }
    let address = match gap {
        None if count == 8 => groups,
        // `::` stands for one or more zero groups: the groups before it go to the top.
        // With none before it, `head` is zero and so is the (overlong) shift's result.
        Some(before) if count < 8 => head.checked_shl(16 * (8 - before)).unwrap_or(0) | groups,
        _ => return None,
    };
    // s[i] is the closing bracket.
    let port = match &s[i + 1..] {
        [] | [b':'] => None,
        [b':', digits @ ..] => Some(port(digits)?),
        _ => return None,
    };
    Some((Host::Ipv6(Ipv6Addr::from(address)), port))
}

/// One to five decimal digits of at most 65535; longer runs (leading zeros) are left to the
/// general parser.
#[inline(always)]
fn port(digits: &[u8]) -> Option<u16> {
    if digits.len() > 5 {
        return None;
    }
    let mut value = 0u32;
    for &b in digits {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        value = value * 10 + u32::from(d);
    }
    u16::try_from(value).ok()
}

#[inline(always)]
fn digit(b: Option<&u8>) -> Option<u16> {
    let d = b?.wrapping_sub(b'0');
    (d <= 9).then_some(u16::from(d))
}

#[inline(always)]
fn hex(b: u8) -> Option<u16> {
    let value = HEX[usize::from(b)];
    (value < 16).then_some(u16::from(value))
}

/// The value of each hex digit; 0xff for every other byte.
static HEX: [u8; 256] = {
    let mut table = [0xff; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = match b as u8 {
            c @ b'0'..=b'9' => c - b'0',
            c @ b'a'..=b'f' => c - b'a' + 10,
            c @ b'A'..=b'F' => c - b'A' + 10,
            _ => 0xff,
        };
        b += 1;
    }
    table
};

/// Bytes `8k..8k+8` of `input` as a little-endian word, zeros past the end.
#[inline(always)]
fn word_at(input: &[u8], k: usize) -> u64 {
    let n = input.len();
    let at = 8 * k;
    if let Some(eight) = input.get(at..at + 8) {
        return load_word(eight);
    }
    // The last, partial word: 1..=7 bytes remain.
    let rem = n - at;
    if n >= 8 {
        // Read the last eight bytes and shift out the ones already seen.
        load_word(&input[n - 8..]) >> (8 * (8 - rem))
    } else if n >= 4 {
        // Two four-byte reads that overlap cover 4..=7 bytes.
        let lo = u64::from(load_u32(&input[..4]));
        let hi = u64::from(load_u32(&input[n - 4..]));
        lo | hi << (8 * (n - 4))
    } else {
        input
            .iter()
            .rev()
            .fold(0, |acc, &b| acc << 8 | u64::from(b))
    }
}

#[inline(always)]
fn load_u32(four: &[u8]) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(four);
    u32::from_le_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authority::parse_general;
    use crate::host::HostName;
    use crate::testgen::{every_string, ipv6_groups, xorshift};

    /// The fast path's answer, when it has one, is the general parser's.
    fn parse(input: &[u8]) -> Option<Authority> {
        let mut out = Authority {
            host: Host::Name(HostName::EMPTY_INLINE),
            port: None,
        };
        parse_into(input, &mut out).then_some(out)
    }

    fn check(input: &[u8]) -> bool {
        match parse(input) {
            Some(fast) => {
                let general = parse_general(input);
                assert_eq!(
                    general.as_ref(),
                    Ok(&fast),
                    "{:?}",
                    String::from_utf8_lossy(input)
                );
                if let Host::Name(name) = &fast.host {
                    assert!(name.padding_is_zero(), "{name:?}");
                }
                true
            }
            None => false,
        }
    }

    #[test]
    fn words_are_zero_padded() {
        let input = b"abcdefghijklmnopq";
        for n in 0..=input.len() {
            for k in 0..n.div_ceil(8) {
                let mut want = [0u8; 8];
                let end = n.min(8 * k + 8);
                want[..end - 8 * k].copy_from_slice(&input[8 * k..end]);
                assert_eq!(
                    word_at(&input[..n], k),
                    u64::from_le_bytes(want),
                    "n {n} k {k}"
                );
            }
        }
    }

    #[test]
    fn takes_the_common_shapes() {
        for input in [
            "www.example.com:443",
            "WWW.Example.COM",
            "[2001:db8::1]:8443",
            "192.0.2.1:80",
            "localhost",
            "a",
            "a:0",
            "a:65535",
            "x:",
            "1password.com",
            "_dmarc.example",
            "xn--bcher-kva.example:8080",
            "[::]",
            "[::1]:",
            "[1:2:3:4:5:6:7:8]",
            "[1::]",
            "[FFFF::ABCD]",
            "0.0.0.0",
            "255.255.255.255:1",
            &"a".repeat(63),
            &format!("{}:443", "b".repeat(60)),
        ] {
            assert!(check(input.as_bytes()), "{input} should take the fast path");
        }
    }

    #[test]
    fn declines_what_the_general_parser_must_decide() {
        for input in [
            "",
            "example.com.",
            ".example.com",
            "a..b",
            "example.com:65536",
            "example.com:000443",
            "user@example.com",
            "ex%41mple.com",
            "exa mple.com",
            "example.123",
            "example.0x7f",
            "1.2.3",
            "01.2.3.4",
            "256.1.1.1",
            "[1:2:3:4:5:6:7:8:9]",
            "[::ffff:192.0.2.1]",
            "[fe80::1%25eth0]",
            "[v1.x]",
            "[1::2::3]",
            "[12345::]",
            "[::1]x",
            "bücher.example",
            &"a".repeat(64),
        ] {
            assert!(!check(input.as_bytes()), "{input} should be declined");
        }
    }

    /// Every string of up to five bytes over an alphabet that exercises every branch of
    /// both paths.
    #[test]
    fn agrees_with_the_general_parser_exhaustively() {
        let mut taken = 0;
        every_string(b"aZ09.:-_[]f@\x80 ", 5, |s| taken += usize::from(check(s)));
        assert!(taken > 10_000, "only {taken} inputs took the fast path");
    }

    /// Longer generated inputs: names across word boundaries, ports, addresses.
    #[test]
    fn agrees_with_the_general_parser_on_generated_inputs() {
        let pieces: [&[u8]; 16] = [
            b"a", b"Z", b"0", b"9", b".", b":", b"-", b"_", b"example", b"COM", b"255", b"::",
            b"[", b"]", b"443", b"ffff",
        ];
        let mut taken = 0;
        for x in xorshift(0x2545_f491_4f6c_dd1d).take(300_000) {
            let mut s = Vec::new();
            let parts = 1 + (x % 24) as usize;
            for p in 0..parts {
                s.extend_from_slice(pieces[(x >> (4 * (p % 15))) as usize % 16]);
            }
            taken += usize::from(check(&s));
        }
        assert!(taken > 10_000, "only {taken} inputs took the fast path");
    }

    /// IPv6 addresses of every shape `std` writes or reads, with and without ports.
    #[test]
    fn agrees_with_the_general_parser_on_ipv6() {
        for x in xorshift(0x9e37_79b9_7f4a_7c15).take(20_000) {
            let groups = ipv6_groups(x);
            let addr = Ipv6Addr::from(groups);
            let full = groups.map(|g| format!("{g:X}")).join(":");
            for text in [addr.to_string(), full] {
                for input in [format!("[{text}]"), format!("[{text}]:{}", x % 65536)] {
                    // Embedded IPv4 forms (`::ffff:1.2.3.4`) are the general parser's.
                    assert!(check(input.as_bytes()) || text.contains('.'), "{input}");
                }
            }
        }
    }
}
