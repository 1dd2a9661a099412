//! Memory and build time of a 1,000,000-name `HostIndex`, counted by the allocator.
//!
//! 900,000 exact names like `h123.tenant45.example.com` and 100,000 wildcards like
//! `*.tenant45-7.example.net`, the same set as the `index_lookup_1m` bench. Run with
//! `cargo run --release -p misdirect-certmatch --example index_memory`.
#![allow(unsafe_code)] // A global allocator cannot be written without it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use misdirect_authority::Host;
use misdirect_certmatch::{HostIndex, HostIndexBuilder, PatternRef};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(size: usize) {
    let now = LIVE.fetch_add(size, Ordering::Relaxed) + size;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counters are
// plain atomics, so counting never allocates or recurses.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        grew(new_size);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const EXACT: u32 = 900_000;
const WILDCARDS: u32 = 100_000;

fn build() -> HostIndex<u32> {
    let mut builder = HostIndexBuilder::with_capacity((EXACT + WILDCARDS) as usize, 0);
    let mut name = String::with_capacity(64);
    for i in 0..EXACT {
        name.clear();
        use std::fmt::Write;
        // Invariant: writing to a String cannot fail.
        let _ = write!(name, "h{}.tenant{}.example.com", i / 1000, i % 1000);
        builder
            .push_bytes(name.as_bytes(), i)
            .expect("generated names are valid");
    }
    for j in 0..WILDCARDS {
        name.clear();
        use std::fmt::Write;
        let _ = write!(name, "*.tenant{}-{}.example.net", j / 10, j % 10);
        builder
            .push_bytes(name.as_bytes(), EXACT + j)
            .expect("generated names are valid");
    }
    builder.build().expect("no duplicates")
}

fn main() {
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let start = Instant::now();
    let index = build();
    let elapsed = start.elapsed();
    let live = LIVE.load(Ordering::Relaxed) - before;
    let peak = PEAK.load(Ordering::Relaxed) - before;

    let names = index.len();
    let name_bytes: usize = index
        .iter()
        .map(|(pattern, _)| match pattern {
            PatternRef::Exact(name) => name.len(),
            PatternRef::Wildcard { parent, .. } => parent.len(),
            _ => 0,
        })
        .sum();
    let overhead = live - name_bytes;
    println!("names:                  {names}");
    println!(
        "build time:             {:.0} ms",
        elapsed.as_secs_f64() * 1e3
    );
    println!(
        "heap after build:       {live} bytes ({:.1} bytes/name)",
        live as f64 / names as f64
    );
    println!(
        "  name bytes (arena):   {name_bytes} bytes ({:.1} bytes/name)",
        name_bytes as f64 / names as f64
    );
    println!(
        "  overhead:             {overhead} bytes ({:.1} bytes/name, target <= 48)",
        overhead as f64 / names as f64
    );
    println!(
        "peak heap during build: {peak} bytes ({:.1} bytes/name)",
        peak as f64 / names as f64
    );
    println!("index's own accounting: {} bytes", index.heap_bytes());

    let probe: Host = "h123.tenant45.example.com".parse().expect("valid host");
    assert_eq!(index.lookup(&probe), Some(&(123 * 1000 + 45)));
    let probe: Host = "x.tenant45-7.example.net".parse().expect("valid host");
    assert_eq!(index.lookup(&probe), Some(&(EXACT + 457)));
}
