//! The byte-class table behind the host scanner.
//!
//! One lookup per input byte decides what the scanner does with it. The classes follow
//! RFC 3986 §3.2.2 narrowed to what a DNS host name may contain (RFC 1123 §2.1, plus `_`,
//! which real internal host names use and browsers accept).

/// A byte a host name may contain as is: `a-z`, `0-9`, `-`, `_`.
pub(crate) const NAME: u8 = 0;
/// `A-Z`: allowed, folded to lowercase.
pub(crate) const UPPER: u8 = 1;
/// `.`: label separator.
pub(crate) const DOT: u8 = 2;
/// `:`: starts the port.
pub(crate) const COLON: u8 = 3;
/// `@`: userinfo delimiter, rejected (RFC 9110 §4.2.4).
pub(crate) const AT: u8 = 4;
/// `%`: percent-encoding, rejected in host names.
pub(crate) const PERCENT: u8 = 5;
/// Bytes 0x80 and above: never valid in a Host or `:authority`.
pub(crate) const NON_ASCII: u8 = 6;
/// Everything else: controls, space, delimiters and sub-delims.
pub(crate) const INVALID: u8 = 7;

/// The class of each byte value.
pub(crate) static CLASS: [u8; 256] = build();

const fn build() -> [u8; 256] {
    let mut table = [INVALID; 256];
    let mut b = 0usize;
    while b < 256 {
        let c = b as u8;
        table[b] = match c {
            b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => NAME,
            b'A'..=b'Z' => UPPER,
            b'.' => DOT,
            b':' => COLON,
            b'@' => AT,
            b'%' => PERCENT,
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

    /// The table agrees with a predicate written the slow way, for every byte.
    #[test]
    fn table_invariant() {
        for b in 0..=255u8 {
            let expected = if b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
            {
                NAME
            } else if b.is_ascii_uppercase() {
                UPPER
            } else if b == b'.' {
                DOT
            } else if b == b':' {
                COLON
            } else if b == b'@' {
                AT
            } else if b == b'%' {
                PERCENT
            } else if !b.is_ascii() {
                NON_ASCII
            } else {
                INVALID
            };
            assert_eq!(CLASS[b as usize], expected, "byte {b:#04x}");
        }
    }
}
