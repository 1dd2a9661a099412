//! The public-suffix rule for wildcards (feature `psl`).
//!
//! RFC 9525 §6.3 leaves public-suffix blocking to the client; Chromium refuses wildcards
//! over registry-controlled suffixes, and x509-limbo's `pedantic-public-suffix-wildcard`
//! cases expect it. With the feature on we use the Public Suffix List (ICANN and private
//! sections), so `*.co.uk` and `*.s3.amazonaws.com` never match.

/// Whether `name` (lowercase, no trailing dot) is itself a public suffix.
#[cfg(feature = "psl")]
pub(crate) fn is_public_suffix(name: &[u8]) -> bool {
    psl::suffix(name).is_some_and(|suffix| suffix.as_bytes() == name)
}

/// Without the `psl` feature no parent is treated as a public suffix; single-label parents
/// (`*.com`) are still refused by [`DnsPattern::parse`](crate::DnsPattern::parse).
#[cfg(not(feature = "psl"))]
pub(crate) fn is_public_suffix(_name: &[u8]) -> bool {
    false
}

#[cfg(all(test, feature = "psl"))]
mod tests {
    use super::is_public_suffix;

    #[test]
    fn suffixes() {
        for (name, expected) in [
            ("com", true),
            ("co.uk", true),
            ("s3.amazonaws.com", true),
            ("github.io", true),
            ("example.com", false),
            ("example.co.uk", false),
            ("tenant.example.internal", false),
            ("foo.internal", false),
        ] {
            assert_eq!(is_public_suffix(name.as_bytes()), expected, "{name}");
        }
    }
}
