//! `Authority::parse` does not allocate for canonical inputs of up to 64 bytes.
//!
//! A counting global allocator records allocations made by this thread while a flag is
//! set. This file holds one test so that nothing else runs beside it.
#![allow(unsafe_code)] // A global allocator cannot be written without it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use misdirect_authority::{Authority, HostName, RequestTarget};

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; the thread-locals are
// const-initialised, so touching them never allocates or recurses.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            COUNT.with(|c| c.set(c.get() + 1));
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations(f: impl FnOnce()) -> usize {
    COUNT.with(|c| c.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    COUNT.with(Cell::get)
}

#[test]
fn parse_does_not_allocate() {
    let inputs: &[&[u8]] = &[
        b"www.example.com:443",
        b"WWW.Example.COM",
        b"[2001:db8::1]:8443",
        b"192.0.2.1:80",
        b"a-sixty-four-byte-host-name-is-still-stored-inline.example.co.uk",
        b"sixty-byte-host-name-plus-port-stays-inline.example.com.co:8443",
        b"A-SIXTY-FOUR-BYTE-HOST-NAME-WITH-A-TRAILING-DOT.EXAMPLE.COM.UK.",
    ];
    for input in inputs {
        assert!(input.len() <= 64, "{}", input.len());
        let n = allocations(|| {
            let a = Authority::parse(input).expect("valid");
            std::hint::black_box(&a);
            let t = RequestTarget::from_h2(Some(input), [&input[..]]).expect("valid");
            std::hint::black_box(&t);
        });
        assert_eq!(n, 0, "{} allocated", String::from_utf8_lossy(input));
    }
    // The counter works: a long name does go to the heap.
    let long = format!("{}.example.com", "a".repeat(53));
    assert_eq!(long.len(), 65);
    assert!(allocations(|| drop(HostName::parse(long.as_bytes()).expect("valid"))) > 0);
}
