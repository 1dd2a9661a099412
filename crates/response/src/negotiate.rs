use http::{HeaderMap, header};

/// The media types [`render`](crate::render) can produce.
///
/// Chosen from the request's `Accept` field by [`MediaType::negotiate`].
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MediaType {
    /// `text/plain; charset=utf-8`: the default.
    TextPlain,
    /// `application/problem+json` (RFC 9457).
    ProblemJson,
    /// `application/json`.
    Json,
    /// `text/html; charset=utf-8`, with advice for a visitor.
    Html,
}

impl MediaType {
    /// Every media type, in a fixed order.
    pub(crate) const ALL: [Self; 4] = [Self::TextPlain, Self::ProblemJson, Self::Json, Self::Html];

    /// This type's place in `MediaType::ALL`.
    pub(crate) const fn index(self) -> usize {
        match self {
            Self::TextPlain => 0,
            Self::ProblemJson => 1,
            Self::Json => 2,
            Self::Html => 3,
        }
    }
}

/// The types we offer, in our order of preference when the client weighs several equally.
/// `text/plain` comes first so that `*/*` and a missing `Accept` get plain text.
const OFFERED: [MediaType; 4] = [
    MediaType::TextPlain,
    MediaType::ProblemJson,
    MediaType::Json,
    MediaType::Html,
];

/// Longest `Accept` value examined, in bytes; the rest is ignored. Real user agents send
/// well under 1 KiB.
pub(crate) const MAX_ACCEPT_LEN: usize = 8 * 1024;

/// Most media ranges examined across all `Accept` field lines.
pub(crate) const MAX_RANGES: usize = 64;

impl MediaType {
    /// Choose the representation for a request with these header fields, following RFC 9110
    /// §12.5.1.
    ///
    /// For each type we offer, the most specific matching media range in `Accept` sets its
    /// weight (`text/html` before `text/*` before `*/*`); a weight of `q=0` means "not
    /// acceptable". The type with the highest weight wins; ties go to the type matched by the
    /// more specific range, then to the range listed first, then to our preference (plain
    /// text, problem JSON, JSON, HTML). Media-type parameters other than `q` do not affect
    /// matching.
    ///
    /// Without an `Accept` field, or when nothing we offer is acceptable, the answer is
    /// [`MediaType::TextPlain`]: RFC 9110 §12.5.1 lets a server disregard `Accept` rather than
    /// send 406, and a 421 must reach the client whatever it asked for. Malformed media
    /// ranges are skipped, as are ranges beyond the first 64 or bytes beyond the first 8 KiB
    /// of a field line; this never panics and never allocates.
    ///
    /// ```
    /// use http::{HeaderMap, header::ACCEPT};
    /// use misdirect_response::MediaType;
    ///
    /// let mut headers = HeaderMap::new();
    /// headers.insert(ACCEPT, "text/html,application/xhtml+xml,*/*;q=0.8".parse()?);
    /// assert_eq!(MediaType::negotiate(&headers), MediaType::Html);
    /// assert_eq!(MediaType::negotiate(&HeaderMap::new()), MediaType::TextPlain);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn negotiate(headers: &HeaderMap) -> Self {
        Self::from_accept(headers.get_all(header::ACCEPT).iter().map(|v| v.as_bytes()))
    }

    /// Choose the representation from raw `Accept` field values, one per field line, with the
    /// rules of [`MediaType::negotiate`]. No field lines means "no `Accept` field".
    ///
    /// ```
    /// use misdirect_response::MediaType;
    ///
    /// let lines: [&[u8]; 2] = [b"application/json;q=0.5", b"application/problem+json"];
    /// assert_eq!(MediaType::from_accept(lines), MediaType::ProblemJson);
    /// ```
    pub fn from_accept<'a, I>(field_lines: I) -> Self
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        let mut best = [Match::NONE; OFFERED.len()];
        let mut position = 0usize;
        for line in field_lines {
            let line = &line[..line.len().min(MAX_ACCEPT_LEN)];
            let mut cur = Cursor { b: line, i: 0 };
            loop {
                cur.skip_list_separators();
                if cur.at_end() || position >= MAX_RANGES {
                    break;
                }
                match parse_range(&mut cur) {
                    Some(range) => {
                        for (slot, offered) in best.iter_mut().zip(OFFERED) {
                            slot.update(&range, offered, position);
                        }
                    }
                    None => cur.skip_element(),
                }
                position += 1;
            }
        }
        let mut chosen = MediaType::TextPlain;
        let mut chosen_match = Match::NONE;
        for (m, offered) in best.into_iter().zip(OFFERED) {
            if m.specificity > 0 && m.q > 0 && m.beats(&chosen_match) {
                chosen = offered;
                chosen_match = m;
            }
        }
        chosen
    }

    /// The `Content-Type` value for this media type.
    ///
    /// ```
    /// use misdirect_response::MediaType;
    ///
    /// assert_eq!(MediaType::Html.content_type(), "text/html; charset=utf-8");
    /// ```
    pub const fn content_type(self) -> &'static str {
        match self {
            Self::TextPlain => "text/plain; charset=utf-8",
            Self::ProblemJson => "application/problem+json",
            Self::Json => "application/json",
            Self::Html => "text/html; charset=utf-8",
        }
    }

    /// The type and subtype, lowercase, as matched against media ranges.
    const fn essence(self) -> (&'static [u8], &'static [u8]) {
        match self {
            Self::TextPlain => (b"text", b"plain"),
            Self::ProblemJson => (b"application", b"problem+json"),
            Self::Json => (b"application", b"json"),
            Self::Html => (b"text", b"html"),
        }
    }
}

/// One parsed media range: `type/subtype` with its weight in thousandths.
struct Range<'a> {
    kind: &'a [u8],
    subtype: &'a [u8],
    q: u16,
}

/// The best range seen so far for one offered type.
#[derive(Clone, Copy)]
struct Match {
    /// 0: no range matched; 1: `*/*`; 2: `type/*`; 3: `type/subtype`.
    specificity: u8,
    q: u16,
    position: usize,
}

impl Match {
    const NONE: Self = Self {
        specificity: 0,
        q: 0,
        position: usize::MAX,
    };

    fn update(&mut self, range: &Range<'_>, offered: MediaType, position: usize) {
        let (kind, subtype) = offered.essence();
        let specificity = if range.kind == b"*" {
            1
        } else if !range.kind.eq_ignore_ascii_case(kind) {
            return;
        } else if range.subtype == b"*" {
            2
        } else if range.subtype.eq_ignore_ascii_case(subtype) {
            3
        } else {
            return;
        };
        // The most specific range decides (RFC 9110 §12.5.1); among equally specific
        // duplicates, the most favourable weight.
        if specificity > self.specificity || (specificity == self.specificity && range.q > self.q) {
            *self = Self {
                specificity,
                q: range.q,
                position,
            };
        }
    }

    /// Whether this match should replace `other` as the chosen one; equal matches keep the
    /// earlier-offered type.
    fn beats(&self, other: &Self) -> bool {
        (self.q, self.specificity, core::cmp::Reverse(self.position))
            > (
                other.q,
                other.specificity,
                core::cmp::Reverse(other.position),
            )
    }
}

/// Parse one `media-range [ weight ] *( accept-ext )` (RFC 9110 §12.5.1, §5.6.6) starting at
/// the cursor. `None` if the element is malformed; the cursor is then somewhere inside it.
fn parse_range<'a>(cur: &mut Cursor<'a>) -> Option<Range<'a>> {
    let kind = cur.token()?;
    cur.eat(b'/')?;
    let subtype = cur.token()?;
    if kind == b"*" && subtype != b"*" {
        return None;
    }
    let mut q = None;
    loop {
        cur.skip_ows();
        match cur.peek() {
            None | Some(b',') => break,
            Some(b';') => cur.i += 1,
            Some(_) => return None,
        }
        cur.skip_ows();
        if matches!(cur.peek(), None | Some(b',' | b';')) {
            continue; // an empty parameter is allowed
        }
        let name = cur.token()?;
        cur.eat(b'=')?;
        if name.eq_ignore_ascii_case(b"q") && q.is_none() {
            q = Some(parse_qvalue(cur.token()?)?);
        } else {
            cur.value()?;
        }
    }
    Some(Range {
        kind,
        subtype,
        q: q.unwrap_or(1000),
    })
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )` (RFC 9110 §12.4.2), in
/// thousandths.
fn parse_qvalue(v: &[u8]) -> Option<u16> {
    let (&first, rest) = v.split_first()?;
    let whole: u16 = match first {
        b'0' => 0,
        b'1' => 1000,
        _ => return None,
    };
    let frac = match rest.split_first() {
        None => return Some(whole),
        Some((b'.', frac)) if frac.len() <= 3 => frac,
        Some(_) => return None,
    };
    let mut thousandths = 0u16;
    let mut scale = 100u16;
    for &d in frac {
        if !d.is_ascii_digit() {
            return None;
        }
        thousandths += u16::from(d - b'0') * scale;
        scale /= 10;
    }
    if whole == 1000 && thousandths != 0 {
        return None;
    }
    Some(whole + thousandths)
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn at_end(&self) -> bool {
        self.i >= self.b.len()
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.i += 1)
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    /// Skip whitespace and empty list elements (RFC 9110 §5.6.1 lets recipients accept them).
    fn skip_list_separators(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.i += 1;
        }
    }

    /// Skip to the next `,` outside a quoted string, or to the end.
    fn skip_element(&mut self) {
        let mut quoted = false;
        while let Some(c) = self.peek() {
            match c {
                b'"' => quoted = !quoted,
                b'\\' if quoted => self.i += 1,
                b',' if !quoted => return,
                _ => {}
            }
            self.i += 1;
        }
    }

    /// `token = 1*tchar` (RFC 9110 §5.6.2).
    fn token(&mut self) -> Option<&'a [u8]> {
        let start = self.i;
        while self.peek().is_some_and(is_tchar) {
            self.i += 1;
        }
        (self.i > start).then(|| &self.b[start..self.i])
    }

    /// A parameter value: `token / quoted-string` (RFC 9110 §5.6.6, §5.6.4).
    fn value(&mut self) -> Option<()> {
        if self.peek() != Some(b'"') {
            return self.token().map(drop);
        }
        self.i += 1;
        loop {
            match self.peek()? {
                b'"' => {
                    self.i += 1;
                    return Some(());
                }
                b'\\' => {
                    self.i += 1;
                    let escaped = self.peek()?;
                    if !is_quoted_pair_char(escaped) {
                        return None;
                    }
                }
                c if !is_qdtext(c) => return None,
                _ => {}
            }
            self.i += 1;
        }
    }
}

const TCHAR: u8 = 1;
const QDTEXT: u8 = 2;
const QPAIR: u8 = 4;

/// Byte classes for field values (RFC 9110 §5.6.2, §5.6.4).
static CLASSES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0usize;
    while b < 256 {
        let c = b as u8;
        let obs_text = c >= 0x80;
        let vchar = c >= 0x21 && c <= 0x7e;
        let tchar = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        let qdtext = c == b'\t' || c == b' ' || (vchar && c != b'"' && c != b'\\') || obs_text;
        let qpair = c == b'\t' || c == b' ' || vchar || obs_text;
        t[b] = (if tchar { TCHAR } else { 0 })
            | (if qdtext { QDTEXT } else { 0 })
            | (if qpair { QPAIR } else { 0 });
        b += 1;
    }
    t
};

fn is_tchar(c: u8) -> bool {
    CLASSES[usize::from(c)] & TCHAR != 0
}

fn is_qdtext(c: u8) -> bool {
    CLASSES[usize::from(c)] & QDTEXT != 0
}

fn is_quoted_pair_char(c: u8) -> bool {
    CLASSES[usize::from(c)] & QPAIR != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table agrees with the RFC 9110 grammar written out longhand.
    #[test]
    fn byte_classes_match_the_grammar() {
        const DELIMITERS: &[u8] = b"\"(),/:;<=>?@[\\]{}";
        for c in 0..=255u8 {
            let vchar = (0x21..=0x7e).contains(&c);
            assert_eq!(
                is_tchar(c),
                vchar && !DELIMITERS.contains(&c),
                "tchar {c:#04x}"
            );
            let qd = matches!(c, b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff);
            assert_eq!(is_qdtext(c), qd, "qdtext {c:#04x}");
            let qp = matches!(c, b'\t' | b' ' | 0x21..=0x7e | 0x80..=0xff);
            assert_eq!(is_quoted_pair_char(c), qp, "quoted-pair {c:#04x}");
        }
    }

    /// RFC 9110 §12.4.2: qvalue grammar.
    #[test]
    fn qvalues() {
        const CASES: &[(&str, Option<u16>)] = &[
            ("1", Some(1000)),
            ("1.", Some(1000)),
            ("1.000", Some(1000)),
            ("1.001", None),
            ("0", Some(0)),
            ("0.", Some(0)),
            ("0.5", Some(500)),
            ("0.05", Some(50)),
            ("0.123", Some(123)),
            ("0.1234", None),
            ("0.9a", None),
            (".5", None),
            ("2", None),
            ("-0", None),
            ("", None),
            ("01", None),
        ];
        for &(input, expected) in CASES {
            assert_eq!(parse_qvalue(input.as_bytes()), expected, "q={input}");
        }
    }
}
