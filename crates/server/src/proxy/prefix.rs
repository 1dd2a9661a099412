//! `trust_forwarded_from`: IP prefixes in CIDR notation (RFC 4632 §3.1 for IPv4, RFC 4291
//! §2.3 for IPv6), or single addresses.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::error::{Error, ErrorKind};

/// An IP prefix such as `10.0.0.0/8` or `2001:db8::/32`; a bare address is the prefix of
/// that address alone (`/32` or `/128`).
///
/// Once parsed, the bits past the prefix length are zero: `10.0.0.1/8` is refused rather
/// than read as `10.0.0.0/8`, since it usually means a typing mistake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct IpPrefix {
    addr: IpAddr,
    len: u8,
}

impl IpPrefix {
    /// Whether `ip` is inside the prefix. An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`,
    /// what a dual-stack socket reports for an IPv4 peer) is read as the IPv4 address.
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = mask32(self.len);
                u32::from(ip) & mask == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = mask128(self.len);
                u128::from(ip) & mask == u128::from(net)
            }
            _ => false,
        }
    }
}

impl FromStr for IpPrefix {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        let invalid = |why: &str| {
            Error::new(
                ErrorKind::Invalid,
                format!("trust_forwarded_from: {text:?} {why}"),
            )
        };
        let (addr, len) = match text.split_once('/') {
            Some((addr, len)) => (addr, Some(len)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| invalid("is not an IP address or prefix (such as 10.0.0.0/8)"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len {
            None => max,
            // Digits only: `u8::from_str` would also take a leading `+`.
            Some(len) if !len.is_empty() && len.bytes().all(|b| b.is_ascii_digit()) => len
                .parse::<u8>()
                .ok()
                .filter(|&len| len <= max)
                .ok_or_else(|| invalid(&format!("has a prefix length over {max}")))?,
            Some(_) => return Err(invalid("has a prefix length that is not a number")),
        };
        let host_bits = match addr {
            IpAddr::V4(v4) => u32::from(v4) & !mask32(len) != 0,
            IpAddr::V6(v6) => u128::from(v6) & !mask128(len) != 0,
        };
        if host_bits {
            return Err(invalid(&format!(
                "has bits set past the prefix length /{len} (write the network address)"
            )));
        }
        Ok(Self { addr, len })
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// The netmask of an IPv4 prefix of `len` bits (`len` ≤ 32).
fn mask32(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

/// The netmask of an IPv6 prefix of `len` bits (`len` ≤ 128).
fn mask128(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (prefix, address, inside?)
    const CONTAINS: &[(&str, &str, bool)] = &[
        ("10.0.0.0/8", "10.1.2.3", true),
        ("10.0.0.0/8", "11.0.0.0", false),
        ("192.0.2.1", "192.0.2.1", true),
        ("192.0.2.1", "192.0.2.2", false),
        ("0.0.0.0/0", "203.0.113.9", true),
        ("0.0.0.0/0", "2001:db8::1", false),
        ("2001:db8::/32", "2001:db8:ffff::1", true),
        ("2001:db8::/32", "2001:db9::1", false),
        ("::1", "::1", true),
        ("::/0", "2001:db8::1", true),
        // A dual-stack socket's view of an IPv4 peer.
        ("127.0.0.0/8", "::ffff:127.0.0.1", true),
        ("::ffff:0:0/96", "127.0.0.1", false),
    ];

    #[test]
    fn prefixes_contain_their_addresses() {
        for &(prefix, ip, inside) in CONTAINS {
            let parsed: IpPrefix = prefix.parse().unwrap();
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(parsed.contains(ip), inside, "{prefix} contains {ip}");
        }
    }

    /// (input, error text it must contain)
    const REFUSED: &[(&str, &str)] = &[
        ("", "is not an IP address"),
        ("a.test", "is not an IP address"),
        ("10.0.0.0/", "not a number"),
        ("10.0.0.0/+8", "not a number"),
        ("10.0.0.0/33", "over 32"),
        ("::/129", "over 128"),
        ("10.0.0.1/8", "bits set past the prefix length /8"),
        ("2001:db8::1/32", "bits set past"),
        ("[::1]", "is not an IP address"),
    ];

    #[test]
    fn malformed_prefixes_are_refused_with_the_reason() {
        for &(input, why) in REFUSED {
            let err = input.parse::<IpPrefix>().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Invalid, "{input:?}");
            assert!(err.to_string().contains(why), "{input:?}: {err}");
        }
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "10.0.0.0/8",
            "192.0.2.1/32",
            "2001:db8::/32",
            "::1/128",
            "0.0.0.0/0",
        ] {
            let prefix: IpPrefix = text.parse().unwrap();
            assert_eq!(prefix.to_string(), text);
            assert_eq!(prefix.to_string().parse::<IpPrefix>().unwrap(), prefix);
        }
    }
}
