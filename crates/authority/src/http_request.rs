//! `http::Request` conveniences (feature `http`).

use http::{HeaderMap, Uri, Version, header::HOST};

use crate::origin::Scheme;
use crate::target::{RequestTarget, TargetError, TargetErrorKind, h2_target};

impl RequestTarget {
    /// Decides the target of an [`http::Request`], choosing the HTTP/1.1 or HTTP/2 rules
    /// from its version. For HTTP/2 and HTTP/3 the URI's authority is `:authority` and its
    /// scheme `:scheme` (as `h2` and `hyper` build them); for HTTP/1.x the URI's authority
    /// is the absolute-form target's. An HTTP/2 or HTTP/3 request without `:authority`
    /// arrives without its `:scheme` too: its target's scheme is
    /// [`unknown`](RequestTarget::scheme_unknown).
    ///
    /// ```
    /// use misdirect_authority::{RequestTarget, TargetErrorKind};
    ///
    /// let req = http::Request::get("/").header("host", "Example.com").body(()).unwrap();
    /// assert_eq!(RequestTarget::from_request(&req).unwrap().host().to_string(), "example.com");
    ///
    /// let req = http::Request::get("https://a.example/")
    ///     .version(http::Version::HTTP_2)
    ///     .header("host", "b.example")
    ///     .body(())
    ///     .unwrap();
    /// let err = RequestTarget::from_request(&req).unwrap_err();
    /// assert_eq!(err.kind(), TargetErrorKind::HostMismatch);
    /// ```
    pub fn from_request<B>(request: &http::Request<B>) -> Result<Self, TargetError> {
        from_components(request.version(), request.uri(), request.headers())
    }

    /// Like [`RequestTarget::from_request`], for [`http::request::Parts`].
    pub fn from_parts(parts: &http::request::Parts) -> Result<Self, TargetError> {
        from_components(parts.version, &parts.uri, &parts.headers)
    }
}

fn from_components(
    version: Version,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<RequestTarget, TargetError> {
    let hosts = headers.get_all(HOST).into_iter().map(|v| v.as_bytes());
    let scheme = match uri.scheme_str() {
        Some(s) => Some(
            Scheme::parse(s.as_bytes())
                .ok_or(TargetError::new(TargetErrorKind::UnsupportedScheme, None))?,
        ),
        None => None,
    };
    let authority = uri.authority().map(|a| a.as_str().as_bytes());
    if version >= Version::HTTP_2 {
        let target = h2_target(scheme, authority, hosts)?;
        // RFC 9113 §8.3.1: every request but CONNECT (which has an authority) carries
        // `:scheme`; a URI with neither scheme nor authority is one whose `:scheme` the HTTP/2
        // library dropped, as `Uri` cannot hold a scheme without an authority.
        return Ok(match (scheme, authority) {
            (None, None) => target.with_scheme_unknown(),
            _ => target,
        });
    }
    let target = RequestTarget::from_h1(authority, hosts)?;
    Ok(match scheme {
        Some(scheme) => target.with_scheme(scheme),
        None => target,
    })
}
