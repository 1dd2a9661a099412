//! Deterministic inputs for the unit tests that compare two implementations.

/// Calls `f` with every string of 1 to `max_len` bytes over `alphabet`; returns how many.
pub(crate) fn every_string(alphabet: &[u8], max_len: usize, mut f: impl FnMut(&[u8])) -> usize {
    let mut frontier: Vec<Vec<u8>> = vec![Vec::new()];
    let mut count = 0;
    for _ in 0..max_len {
        let mut next = Vec::with_capacity(frontier.len() * alphabet.len());
        for prefix in &frontier {
            for &b in alphabet {
                let mut s = prefix.clone();
                s.push(b);
                f(&s);
                count += 1;
                next.push(s);
            }
        }
        frontier = next;
    }
    count
}

/// A xorshift sequence from `seed`: a cheap, repeatable spread of 64-bit values.
pub(crate) fn xorshift(seed: u64) -> impl Iterator<Item = u64> {
    core::iter::successors(Some(seed), |&x| {
        let x = x ^ x << 13;
        let x = x ^ x >> 7;
        Some(x ^ x << 17)
    })
    .skip(1)
}

/// Eight IPv6 groups from one random value, about a quarter of them zero, so that `::`
/// runs of every length and place turn up.
pub(crate) fn ipv6_groups(x: u64) -> [u16; 8] {
    let mut groups = [0u16; 8];
    for (n, g) in groups.iter_mut().enumerate() {
        *g = match (x >> (n * 3)) & 3 {
            0 => 0,
            // Invariant: truncation picks 16 of the value's bits.
            _ => (x >> (n * 8)) as u16,
        };
    }
    groups
}
