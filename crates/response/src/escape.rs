//! Tiny escapers for the bodies [`render`](crate::render) writes: JSON string contents
//! (RFC 8259 §7), HTML text and quoted attribute values, and plain text
//! (control characters replaced).

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Append `s` as the contents of a JSON string: `"` and `\` escaped, and every control
/// character below U+0020 written as a short escape or `\u00XX` (RFC 8259 §7).
pub(crate) fn json(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if short.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(short);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Append `s` as HTML text or a quoted attribute value: `&`, `<`, `>`, `"` and `'` become
/// character references; control characters other than tab and newline become U+FFFD.
pub(crate) fn html(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let reference: &[u8] = match b {
            b'&' => b"&amp;",
            b'<' => b"&lt;",
            b'>' => b"&gt;",
            b'"' => b"&quot;",
            b'\'' => b"&#39;",
            b'\t' | b'\n' => continue,
            0..=0x1f | 0x7f => "\u{fffd}".as_bytes(),
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(reference);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Append `s` as one line of plain text: control characters (including line breaks, which
/// would let a reason forge further lines) become U+FFFD.
pub(crate) fn plain(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b < 0x20 || b == 0x7f {
            out.extend_from_slice(&bytes[start..i]);
            out.extend_from_slice("\u{fffd}".as_bytes());
            start = i + 1;
        }
    }
    out.extend_from_slice(&bytes[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(f: fn(&mut Vec<u8>, &str), s: &str) -> String {
        let mut out = Vec::new();
        f(&mut out, s);
        String::from_utf8(out).expect("escapers keep UTF-8 intact")
    }

    #[test]
    fn json_escapes() {
        const CASES: &[(&str, &str)] = &[
            ("plain", "plain"),
            ("a\"b", "a\\\"b"),
            ("back\\slash", "back\\\\slash"),
            ("line\nbreak\r\t", "line\\nbreak\\r\\t"),
            ("\u{8}\u{c}", "\\b\\f"),
            ("\u{0}\u{1f}", "\\u0000\\u001f"),
            ("\u{7f}é€😀", "\u{7f}é€😀"),
            ("</script>", "</script>"),
        ];
        for &(input, expected) in CASES {
            assert_eq!(run(json, input), expected, "{input:?}");
        }
    }

    #[test]
    fn html_escapes() {
        const CASES: &[(&str, &str)] = &[
            (
                "<script>alert('x')</script>",
                "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;",
            ),
            ("a & \"b\"", "a &amp; &quot;b&quot;"),
            ("tab\tnl\n", "tab\tnl\n"),
            ("nul\u{0}del\u{7f}", "nul\u{fffd}del\u{fffd}"),
            ("é", "é"),
        ];
        for &(input, expected) in CASES {
            assert_eq!(run(html, input), expected, "{input:?}");
        }
    }

    #[test]
    fn plain_escapes() {
        assert_eq!(run(plain, "one\r\ntwo"), "one\u{fffd}\u{fffd}two");
        assert_eq!(run(plain, "fine: \"quotes\" <ok>"), "fine: \"quotes\" <ok>");
    }
}
