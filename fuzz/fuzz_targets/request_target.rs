#![no_main]
use libfuzzer_sys::{arbitrary, fuzz_target};
use misdirect_authority::{Authority, RequestTarget};

#[derive(Debug, arbitrary::Arbitrary)]
struct Input<'a> {
    h2: bool,
    target: Option<&'a [u8]>,
    hosts: Vec<&'a [u8]>,
}

// Never panics; a decided target is what Authority::parse makes of its source.
fuzz_target!(|i: Input<'_>| {
    let hosts = i.hosts.iter().copied();
    let r = if i.h2 {
        RequestTarget::from_h2(i.target, hosts)
    } else {
        RequestTarget::from_h1(i.target, hosts)
    };
    if let Ok(t) = r {
        let src = i
            .target
            .or(i.hosts.first().copied())
            .expect("a target needs a source");
        assert_eq!(Authority::parse(src).as_ref(), Ok(t.authority()));
    }
});
