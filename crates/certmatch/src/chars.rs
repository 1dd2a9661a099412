//! The byte-class table behind the DNS-ID scanner.
//!
//! A presented DNS-ID uses the "preferred name syntax" (RFC 5280 §4.2.1.6 → RFC 1034 §3.5,
//! relaxed by RFC 1123 §2.1 to allow a leading digit): letters, digits and hyphens, labels
//! separated by dots, plus the `*` of RFC 9525 §6.3 wildcards.

/// `a-z`.
pub(crate) const LOWER: u8 = 0;
/// `A-Z`: allowed, folded to lowercase.
pub(crate) const UPPER: u8 = 1;
/// `0-9`.
pub(crate) const DIGIT: u8 = 2;
/// `-`.
pub(crate) const HYPHEN: u8 = 3;
/// `.`.
pub(crate) const DOT: u8 = 4;
/// `*`.
pub(crate) const STAR: u8 = 5;
/// Bytes 0x80 and above.
pub(crate) const NON_ASCII: u8 = 6;
/// Everything else, `_` included.
pub(crate) const INVALID: u8 = 7;

/// The class of each byte value.
pub(crate) static CLASS: [u8; 256] = build();

const fn build() -> [u8; 256] {
    let mut table = [INVALID; 256];
    let mut b = 0usize;
    while b < 256 {
        // Invariant: b < 256, so the cast is lossless.
        let c = b as u8;
        table[b] = match c {
            b'a'..=b'z' => LOWER,
            b'A'..=b'Z' => UPPER,
            b'0'..=b'9' => DIGIT,
            b'-' => HYPHEN,
            b'.' => DOT,
            b'*' => STAR,
            0x80..=0xff => NON_ASCII,
            _ => INVALID,
        };
        b += 1;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_the_ldh_rule() {
        for b in 0u8..=255 {
            let expected = if b.is_ascii_lowercase() {
                LOWER
            } else if b.is_ascii_uppercase() {
                UPPER
            } else if b.is_ascii_digit() {
                DIGIT
            } else if b == b'-' {
                HYPHEN
            } else if b == b'.' {
                DOT
            } else if b == b'*' {
                STAR
            } else if !b.is_ascii() {
                NON_ASCII
            } else {
                INVALID
            };
            assert_eq!(CLASS[usize::from(b)], expected, "byte {b:#04x}");
        }
        assert_eq!(
            CLASS[usize::from(b'_')],
            INVALID,
            "RFC 5280 names are LDH: no `_`"
        );
    }
}
