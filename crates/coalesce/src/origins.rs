//! The origins a connection serves, as an HTTP/2 server announces them in an `ORIGIN` frame
//! (RFC 8336).

use misdirect_authority::{Authority, Host, HostName, Origin, RequestTarget};
use misdirect_certmatch::Pattern;
use misdirect_response::OriginFrame;

use crate::decide::{ConnectionContext, Decision, decide};
use crate::listener::Listener;

/// The largest frame payload every HTTP/2 peer accepts: the initial value of
/// `SETTINGS_MAX_FRAME_SIZE`, 2¹⁴ bytes (RFC 9113 §4.2, §6.5.2).
///
/// A server writes its `ORIGIN` frame right after its own SETTINGS frame, before it has read
/// the client's, so this is the size its frame must fit: a peer may treat a larger frame on
/// stream 0 as a connection error of type `FRAME_SIZE_ERROR` (RFC 9113 §4.2).
///
/// ```
/// use misdirect_coalesce::INITIAL_MAX_FRAME_SIZE;
///
/// assert_eq!(INITIAL_MAX_FRAME_SIZE, 1 << 14);
/// ```
pub const INITIAL_MAX_FRAME_SIZE: usize = 16_384;

/// The origins one connection serves: what its server may list in an `ORIGIN` frame
/// (RFC 8336 §2.3), sorted and without duplicates. Made by [`Listener::origins`]; any
/// origins can also be collected into one.
///
/// An origin is in the set when a request for it on this connection — any virtual host's
/// exact name or IP address, on any port the listener serves — is served without a warning
/// ([`Decision::Serve`] with `warning: None`): the certificate covers it, the
/// client-certificate rule, the minimum TLS version and ALPN are met, the [`Policy`] level
/// allows it. A client that believes the frame (RFC 8336 §2.4) then sends only requests the
/// connection serves.
///
/// Names under a wildcard (`*.example.com`) cannot be enumerated and are not in the set, nor
/// are the hosts that unknown-host handling sends to a default virtual host: a client that
/// coalesces by the origin set alone opens another connection for them, and a client that
/// coalesces by DNS and certificate (RFC 9113 §9.1.1) still may use this one, with the usual
/// 421 when it should not. On a cleartext listener the set is computed the same way, but
/// clients ignore `ORIGIN` frames there (RFC 8336 §2.2).
///
/// [`Policy`]: crate::Policy
///
/// ```
/// use std::sync::Arc;
/// use misdirect_authority::{HostName, Scheme};
/// use misdirect_certmatch::Identities;
/// use misdirect_coalesce::*;
///
/// let cert = Arc::new(Identities::from_patterns(["*.example.com".parse()?]));
/// let mut b = VirtualHosts::builder(Scheme::Https);
/// let www = b.add(VirtualHost::new("www", cert.clone()).pattern("www.example.com".parse()?));
/// b.add(VirtualHost::new("api", cert.clone()).pattern("api.example.com".parse()?));
/// b.add(VirtualHost::new("shop", cert.clone()).pattern("*.shop.example.com".parse()?));
/// b.add(VirtualHost::new("admin", cert)
///     .pattern("admin.example.com".parse()?)
///     .client_auth(ClientAuth::Required(TrustAnchorsId::new(1))));
/// let listener = Listener::new(b.ports([443, 8443]).build()?);
///
/// let sni = HostName::from_sni(b"www.example.com")?;
/// let conn = listener.on_handshake(Handshake::new(www).sni(Some(sni)).alpn(Alpn::H2));
/// let set = listener.origins(&conn);
/// let listed: Vec<String> = set.iter().map(|o| o.to_string()).collect();
/// assert_eq!(listed, [
///     "https://api.example.com",
///     "https://api.example.com:8443",
///     "https://www.example.com",
///     "https://www.example.com:8443",
/// ]);
/// assert!(set.contains(&"https://api.example.com:443".parse()?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct OriginSet {
    origins: Vec<Origin>,
}

impl Listener {
    /// The origins `conn` serves without a warning; see [`OriginSet`].
    ///
    /// It asks [`decide`] once per exact name or IP address and per port, so its cost grows
    /// with the table: compute it once per connection, after the handshake.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use misdirect_authority::Scheme;
    /// use misdirect_certmatch::Identities;
    /// use misdirect_coalesce::*;
    ///
    /// let (a_cert, b_cert) = (Identities::from_patterns(["a.test".parse()?]), Identities::from_patterns(["b.test".parse()?]));
    /// let mut b = VirtualHosts::builder(Scheme::Https);
    /// let a = b.add(VirtualHost::new("a", a_cert).pattern("a.test".parse()?));
    /// b.add(VirtualHost::new("b", b_cert).pattern("b.test".parse()?));
    /// let listener = Listener::new(b.port(443).build()?);
    ///
    /// // The connection presented a.test's certificate, which does not cover b.test.
    /// let conn = listener.on_handshake(Handshake::new(a));
    /// assert_eq!(listener.origins(&conn).as_slice(), ["https://a.test".parse()?]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn origins(&self, conn: &ConnectionContext) -> OriginSet {
        let vhosts = self.vhosts();
        let scheme = vhosts.scheme();
        let mut origins = Vec::new();
        for (_, vhost) in vhosts.iter() {
            for host in vhost.patterns().iter().filter_map(exact_host) {
                for &port in vhosts.ports() {
                    let port = (port != scheme.default_port()).then_some(port);
                    let authority = Authority::new(host.clone(), port).to_string();
                    // A displayed authority always parses again; skip it if it ever did not.
                    let Ok(target) =
                        RequestTarget::from_h2(Some(authority.as_bytes()), std::iter::empty())
                    else {
                        continue;
                    };
                    let target = target.with_scheme(scheme);
                    if let Decision::Serve { warning: None, .. } = decide(vhosts, conn, &target) {
                        origins.push(Origin::new(scheme, host.clone(), port));
                    }
                }
            }
        }
        origins.into_iter().collect()
    }

    /// The `ORIGIN` frame for `conn`: its [`origins`](Self::origins) that fit in
    /// [`INITIAL_MAX_FRAME_SIZE`], and how many did not (log it when it is not 0). Write it
    /// right after the server's SETTINGS frame (`OriginFrame::to_frame`).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use misdirect_authority::Scheme;
    /// use misdirect_certmatch::Identities;
    /// use misdirect_coalesce::*;
    ///
    /// let cert = Arc::new(Identities::from_patterns(["a.test".parse()?, "b.test".parse()?]));
    /// let mut b = VirtualHosts::builder(Scheme::Https);
    /// let a = b.add(VirtualHost::new("a", cert.clone()).pattern("a.test".parse()?));
    /// b.add(VirtualHost::new("b", cert).pattern("b.test".parse()?));
    /// let listener = Listener::new(b.port(443).build()?);
    ///
    /// let conn = listener.on_handshake(Handshake::new(a));
    /// let (frame, left_out) = listener.origin_frame(&conn);
    /// assert_eq!(frame.origins(), ["https://a.test", "https://b.test"]);
    /// assert_eq!(left_out, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn origin_frame(&self, conn: &ConnectionContext) -> (OriginFrame, usize) {
        self.origins(conn).to_frame(INITIAL_MAX_FRAME_SIZE)
    }
}

impl OriginSet {
    /// The origins, sorted.
    ///
    /// ```
    /// use misdirect_authority::Origin;
    /// use misdirect_coalesce::OriginSet;
    ///
    /// let set: OriginSet = ["https://b.test", "https://a.test", "https://b.test:443"]
    ///     .into_iter()
    ///     .map(Origin::try_from)
    ///     .collect::<Result<_, _>>()?;
    /// assert_eq!(set.as_slice(), ["https://a.test".parse()?, "https://b.test".parse()?]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn as_slice(&self) -> &[Origin] {
        &self.origins
    }

    /// The origins, sorted, by reference.
    ///
    /// ```
    /// use misdirect_authority::Origin;
    /// use misdirect_coalesce::OriginSet;
    ///
    /// let set: OriginSet = ["https://b.test:8443".parse::<Origin>()?].into_iter().collect();
    /// let listed: Vec<String> = set.iter().map(Origin::to_string).collect();
    /// assert_eq!(listed, ["https://b.test:8443"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn iter(&self) -> std::slice::Iter<'_, Origin> {
        self.origins.iter()
    }

    /// Whether `origin` is in the set; origins compare by scheme, host and effective port.
    ///
    /// ```
    /// use misdirect_authority::Origin;
    /// use misdirect_coalesce::OriginSet;
    ///
    /// let set: OriginSet = ["https://a.test".parse::<Origin>()?].into_iter().collect();
    /// assert!(set.contains(&"https://A.test:443".parse()?));
    /// assert!(!set.contains(&"https://a.test:8443".parse()?));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn contains(&self, origin: &Origin) -> bool {
        self.origins.binary_search(origin).is_ok()
    }

    /// How many origins there are.
    ///
    /// ```
    /// use misdirect_authority::Origin;
    /// use misdirect_coalesce::OriginSet;
    ///
    /// let set: OriginSet = ["https://a.test".parse::<Origin>()?].into_iter().collect();
    /// assert_eq!(set.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn len(&self) -> usize {
        self.origins.len()
    }

    /// Whether there are none.
    ///
    /// ```
    /// use misdirect_coalesce::OriginSet;
    ///
    /// assert!(OriginSet::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.origins.is_empty()
    }

    /// The origins, sorted, by value.
    ///
    /// ```
    /// use misdirect_authority::Origin;
    /// use misdirect_coalesce::OriginSet;
    ///
    /// let origin: Origin = "https://a.test".parse()?;
    /// let set: OriginSet = [origin.clone(), origin.clone()].into_iter().collect();
    /// assert_eq!(set.into_vec(), [origin]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn into_vec(self) -> Vec<Origin> {
        self.origins
    }

    /// An `ORIGIN` frame listing the origins, in order, whose entries fit in a payload of
    /// `max_payload` bytes (two bytes of length per entry, RFC 8336 §2.1), and how many were
    /// left out. An origin that does not fit is skipped and the next tried; pass
    /// [`INITIAL_MAX_FRAME_SIZE`] unless the peer's settings are known.
    ///
    /// ```
    /// use misdirect_authority::Origin;
    /// use misdirect_coalesce::{INITIAL_MAX_FRAME_SIZE, OriginSet};
    ///
    /// // Entries of 14 and 15 bytes, each with its 2-byte length.
    /// let set: OriginSet = ["https://a.test", "https://bb.test"]
    ///     .into_iter()
    ///     .map(Origin::try_from)
    ///     .collect::<Result<_, _>>()?;
    /// let (frame, left_out) = set.to_frame(16 + 16);
    /// assert_eq!((frame.origins(), left_out), (&["https://a.test".to_owned()][..], 1));
    /// assert_eq!(set.to_frame(INITIAL_MAX_FRAME_SIZE).0.payload_len(), 16 + 17);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to_frame(&self, max_payload: usize) -> (OriginFrame, usize) {
        let mut frame = OriginFrame::new();
        let mut left_out = 0;
        for origin in &self.origins {
            let entry = origin.to_string();
            // An origin's serialisation is visible ASCII; `push` refuses only what is too
            // long, counted like what does not fit.
            let fits = frame.payload_len() + 2 + entry.len() <= max_payload;
            if !fits || frame.push(&entry).is_err() {
                left_out += 1;
            }
        }
        (frame, left_out)
    }
}

/// Sorts and removes duplicates: a set of the caller's own, to compare or to frame.
impl FromIterator<Origin> for OriginSet {
    fn from_iter<I: IntoIterator<Item = Origin>>(origins: I) -> Self {
        let mut origins: Vec<Origin> = origins.into_iter().collect();
        origins.sort_unstable();
        origins.dedup();
        Self { origins }
    }
}

impl<'a> IntoIterator for &'a OriginSet {
    type Item = &'a Origin;
    type IntoIter = std::slice::Iter<'a, Origin>;

    fn into_iter(self) -> Self::IntoIter {
        self.origins.iter()
    }
}

impl IntoIterator for OriginSet {
    type Item = Origin;
    type IntoIter = std::vec::IntoIter<Origin>;

    fn into_iter(self) -> Self::IntoIter {
        self.origins.into_iter()
    }
}

/// The host of an exact pattern: a DNS name without wildcard, or an IP address.
fn exact_host(pattern: &Pattern) -> Option<Host> {
    match pattern {
        Pattern::Dns(dns) if !dns.is_wildcard() => HostName::parse(dns.as_str().as_bytes())
            .ok()
            .map(Host::Name),
        Pattern::Ip(ip) => Some(Host::from(*ip)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use misdirect_authority::Scheme;
    use misdirect_certmatch::Identities;

    use super::*;
    use crate::{Handshake, VirtualHost, VirtualHosts};

    /// A listener of `n` virtual hosts under one wildcard certificate, each with a
    /// `len`-byte name, and a connection to the first.
    fn listener(n: usize, len: usize) -> (Listener, ConnectionContext) {
        let wildcard = "*.x.test".parse().expect("valid");
        let cert = Arc::new(Identities::from_patterns([wildcard]));
        let mut b = VirtualHosts::builder(Scheme::Https);
        let ids: Vec<_> = (0..n)
            .map(|i| {
                let label = format!("{i:0width$}", width = len - ".x.test".len());
                let name = format!("{label}.x.test");
                b.add(
                    VirtualHost::new(name.clone(), cert.clone())
                        .pattern(name.parse().expect("valid")),
                )
            })
            .collect();
        let listener = Listener::new(b.port(443).build().expect("valid table"));
        let conn = listener.on_handshake(Handshake::new(ids[0]));
        (listener, conn)
    }

    #[test]
    fn the_frame_fits_the_initial_max_frame_size() {
        // "https://" + 60 bytes: 68-byte entries, 70 bytes each in the payload; 234 fit.
        let (listener, conn) = listener(300, 60);
        assert_eq!(listener.origins(&conn).len(), 300);
        let (frame, left_out) = listener.origin_frame(&conn);
        assert_eq!(frame.len(), INITIAL_MAX_FRAME_SIZE / 70);
        assert_eq!(left_out, 300 - INITIAL_MAX_FRAME_SIZE / 70);
        assert!(frame.payload_len() <= INITIAL_MAX_FRAME_SIZE);
        assert_eq!(
            frame.origins()[0],
            "https://".to_owned() + &"0".repeat(53) + ".x.test"
        );
    }

    #[test]
    fn a_shorter_origin_after_one_that_did_not_fit_still_goes_in() {
        let set = OriginSet {
            origins: [
                "https://a.test",
                "https://bbbbbbbbbb.test",
                "https://c.test",
            ]
            .map(|o| o.parse().expect("valid"))
            .to_vec(),
        };
        let (frame, left_out) = set.to_frame(2 * (2 + 14));
        assert_eq!(frame.origins(), ["https://a.test", "https://c.test"]);
        assert_eq!(left_out, 1);
        assert_eq!(set.to_frame(0).1, 3);
        assert_eq!(set.to_frame(usize::MAX).1, 0);
    }

    #[test]
    fn ip_addresses_are_origins_too() {
        let cert = Arc::new(Identities::from_patterns([
            "192.0.2.7".parse().expect("valid"),
            "[2001:db8::1]".parse().expect("valid"),
        ]));
        let mut b = VirtualHosts::builder(Scheme::Https);
        let v = b.add(
            VirtualHost::new("ip", cert)
                .pattern("192.0.2.7".parse().expect("valid"))
                .pattern("[2001:db8::1]".parse().expect("valid")),
        );
        let listener = Listener::new(b.ports([443, 8443]).build().expect("valid table"));
        let conn = listener.on_handshake(Handshake::new(v));
        let listed: Vec<String> = listener
            .origins(&conn)
            .iter()
            .map(Origin::to_string)
            .collect();
        assert_eq!(
            listed,
            [
                "https://192.0.2.7",
                "https://192.0.2.7:8443",
                "https://[2001:db8::1]",
                "https://[2001:db8::1]:8443",
            ]
        );
    }
}
