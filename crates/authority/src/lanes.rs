//! Eight bytes at a time in a `u64` ("lanes"), for the name scans of both parsers.
//!
//! The tests are exact for lanes whose byte is below 0x80: adding to a byte at or above
//! 0x80 carries into the lane above it. Callers either know their bytes are ASCII or treat
//! such a byte as the end of what they read, so that no lane above it is used.

/// `0x01` in every byte lane.
pub(crate) const LANES: u64 = 0x0101_0101_0101_0101;
/// The top bit of every byte lane.
pub(crate) const TOP: u64 = LANES * 0x80;

/// Eight bytes as a little-endian word: the first byte in the lowest lane.
#[inline(always)]
pub(crate) fn load_word(eight: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(eight);
    u64::from_le_bytes(word)
}

/// The top bit of each lane whose byte (below 0x80) is in `lo..=hi`.
#[inline(always)]
pub(crate) fn in_range(word: u64, lo: u8, hi: u8) -> u64 {
    // Adding 0x80 - c to a byte below 0x80 sets its top bit exactly when it is >= c, and
    // never carries out of the lane.
    let at_least_lo = word.wrapping_add(LANES * u64::from(0x80 - lo));
    let above_hi = word.wrapping_add(LANES * u64::from(0x80 - hi - 1));
    at_least_lo & !above_hi & TOP
}

/// The top bit of each lane whose byte (below 0x80) equals `c`.
#[inline(always)]
pub(crate) fn equal(word: u64, c: u8) -> u64 {
    // A lane of `word ^ c` is zero exactly when the byte is `c`; adding 0x7f sets the top
    // bit of every other lane.
    !(word ^ (LANES * u64::from(c))).wrapping_add(LANES * 0x7f) & TOP
}

/// ASCII lowercase of eight bytes below 0x80: a lane gets 0x20 when it holds `A..=Z`.
#[inline(always)]
pub(crate) fn fold_word(word: u64) -> u64 {
    // The range mask's top bit, moved to 0x20.
    word | in_range(word, b'A', b'Z') >> 2
}

/// Gathers the top bit of each lane into the low eight bits, lane 0 in bit 0.
#[inline(always)]
pub(crate) fn movemask(top_bits: u64) -> u64 {
    // Lane i's bit, at 8i after the shift, is multiplied into bit 56 + i; no two partial
    // products land on the same bit, so nothing carries.
    (top_bits >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each test agrees with a byte predicate for every ASCII byte in every lane.
    #[test]
    fn masks() {
        for b in 0u8..0x80 {
            for lane in 0..8 {
                let word =
                    u64::from(b) << (8 * lane) | 0x7a7a_7a7a_7a7a_7a7a & !(0xff << (8 * lane));
                let bit = |yes: bool| u64::from(yes) << lane;
                assert_eq!(
                    movemask(in_range(word, b'0', b'9')),
                    bit(b.is_ascii_digit()),
                    "digit {b:#04x} lane {lane}"
                );
                assert_eq!(
                    movemask(in_range(word | (LANES * 0x20), b'a', b'z')),
                    0xff & !(1 << lane) | bit(b.is_ascii_alphabetic()),
                    "letter {b:#04x} lane {lane}"
                );
                assert_eq!(
                    movemask(equal(word, b'.')),
                    bit(b == b'.'),
                    "dot {b:#04x} lane {lane}"
                );
                let filler = 0x6161_6161_6161_6161 & !(0xff << (8 * lane));
                assert_eq!(
                    fold_word(u64::from(b) << (8 * lane) | filler),
                    u64::from(b.to_ascii_lowercase()) << (8 * lane) | filler,
                    "fold {b:#04x} lane {lane}"
                );
            }
        }
        for mask in 0..=0xffu64 {
            let spread = (0..8).fold(0, |acc, i| acc | (mask >> i & 1) << (8 * i + 7));
            assert_eq!(movemask(spread), mask);
        }
    }
}
