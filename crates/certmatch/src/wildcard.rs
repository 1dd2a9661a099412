//! The wildcard rule, in one place (RFC 9525 §6.3).
//!
//! A wildcard `*.base` covers a name exactly when the name's parent (the name without its
//! left-most label) equals `base`, and `base` is not a public suffix (feature `psl`). That
//! is one label, never `base` itself, never two labels, never part of a label. Everything
//! that matches wildcards uses these functions: [`DnsPattern::matches`], the hash table
//! behind [`HostIndex`](crate::HostIndex) and [`Identities`](crate::Identities) (which
//! looks a name's parent up among wildcard bases), and [`Coverage`](crate::Coverage).
//!
//! [`DnsPattern::matches`]: crate::DnsPattern::matches

use crate::psl;

/// The parent of a name: `example.com` for `www.example.com`, `None` for a single label.
/// `name` is a valid host name or DNS-ID (lowercase, no trailing dot, no empty label), so
/// the left-most label is never empty. Taken from the bytes, so the lookup hot path does
/// not re-check UTF-8.
#[inline]
pub(crate) fn parent(name: &[u8]) -> Option<&[u8]> {
    parent_start(name).map(|start| &name[start..])
}

/// [`parent`] for text.
#[inline]
pub(crate) fn parent_str(name: &str) -> Option<&str> {
    // Invariant: the parent starts just after an ASCII `.`, a character boundary.
    parent_start(name.as_bytes()).map(|start| &name[start..])
}

/// Whether a wildcard over `base` can match anything: its base is not a public suffix
/// (always true without the `psl` feature). Single-label bases (`*.com`) never get this
/// far: [`DnsPattern::parse`](crate::DnsPattern::parse) refuses them.
#[inline]
pub(crate) fn usable(base: &[u8]) -> bool {
    !psl::is_public_suffix(base)
}

/// Whether the wildcard `*.base` covers `name` (both lowercase, no trailing dot).
#[inline]
pub(crate) fn covers(base: &[u8], name: &[u8]) -> bool {
    parent(name) == Some(base) && usable(base)
}

/// Where the parent of `name` starts: just after its first dot.
#[inline]
fn parent_start(name: &[u8]) -> Option<usize> {
    name.iter().position(|&b| b == b'.').map(|dot| dot + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_is_the_name_without_its_first_label() {
        const CASES: &[(&str, Option<&str>)] = &[
            ("www.example.com", Some("example.com")),
            ("a.b.example.com", Some("b.example.com")),
            ("example.com", Some("com")),
            ("localhost", None),
            ("under_score.example", Some("example")),
        ];
        for &(name, expected) in CASES {
            assert_eq!(parent_str(name), expected, "{name}");
            assert_eq!(
                parent(name.as_bytes()),
                expected.map(str::as_bytes),
                "{name}"
            );
        }
    }

    /// RFC 9525 §6.3: exactly one label, never the base itself.
    #[test]
    fn covers_exactly_one_label() {
        const CASES: &[(&str, &str, bool)] = &[
            ("example.com", "www.example.com", true),
            ("example.com", "example.com", false),
            ("example.com", "a.b.example.com", false),
            ("example.com", "wwwexample.com", false),
            ("example.com", "www.example.org", false),
            ("b.example", "a_b.b.example", true),
        ];
        for &(base, name, expected) in CASES {
            assert_eq!(
                covers(base.as_bytes(), name.as_bytes()),
                expected,
                "*.{base} vs {name}"
            );
        }
    }

    #[cfg(feature = "psl")]
    #[test]
    fn public_suffix_bases_cover_nothing() {
        assert!(!usable(b"co.uk"));
        assert!(!covers(b"co.uk", b"example.co.uk"));
        assert!(usable(b"example.co.uk"));
        assert!(covers(b"example.co.uk", b"www.example.co.uk"));
    }
}
