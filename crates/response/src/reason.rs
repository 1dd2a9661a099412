/// A reason that [`render`](crate::render) can put into a response body.
///
/// Implement it for your decision's reason type: `misdirect-coalesce`'s `Reason` does, and a
/// parse error such as `misdirect_authority::TargetError` can through a small wrapper.
///
/// Both strings end up in bodies sent to the client, so neither may name anything the client
/// should not learn: never other virtual hosts, certificate details or configuration. When
/// [`RenderOptions::name_reason`](crate::RenderOptions::name_reason) is off, neither is sent.
///
/// ```
/// use misdirect_response::RenderReason;
///
/// enum Refusal {
///     NoSni,
/// }
///
/// impl RenderReason for Refusal {
///     fn code(&self) -> &str {
///         match self {
///             Self::NoSni => "no-sni",
///         }
///     }
///     fn description(&self) -> &str {
///         match self {
///             Self::NoSni => "the connection did not send a server name (SNI)",
///         }
///     }
/// }
///
/// assert_eq!(Refusal::NoSni.code(), "no-sni");
/// ```
pub trait RenderReason {
    /// A stable machine-readable code for the reason, such as `client-cert-required`.
    ///
    /// Conventionally lowercase ASCII words joined by `-`; logs, metrics and clients match on
    /// it, so it must not change between releases. Any text is escaped when rendered.
    fn code(&self) -> &str;

    /// A plain-English description of the reason for a person reading the response, such as
    /// "the requested host requires a client certificate that this connection did not
    /// present". One sentence, no trailing full stop; it is escaped when rendered.
    fn description(&self) -> &str;
}

impl<T: RenderReason + ?Sized> RenderReason for &T {
    fn code(&self) -> &str {
        (**self).code()
    }

    fn description(&self) -> &str {
        (**self).description()
    }
}

impl<T: RenderReason + ?Sized> RenderReason for Box<T> {
    fn code(&self) -> &str {
        (**self).code()
    }

    fn description(&self) -> &str {
        (**self).description()
    }
}

/// A [`RenderReason`] made of two fixed strings, for servers without a reason type of their
/// own and for tests.
///
/// ```
/// use misdirect_response::{RenderReason, StaticReason};
///
/// const UNKNOWN_HOST: StaticReason =
///     StaticReason::new("unknown-host", "no virtual host on this server serves the requested host");
/// assert_eq!(UNKNOWN_HOST.code(), "unknown-host");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StaticReason {
    code: &'static str,
    description: &'static str,
}

impl StaticReason {
    /// A reason with this machine code and description.
    pub const fn new(code: &'static str, description: &'static str) -> Self {
        Self { code, description }
    }
}

impl RenderReason for StaticReason {
    fn code(&self) -> &str {
        self.code
    }

    fn description(&self) -> &str {
        self.description
    }
}
