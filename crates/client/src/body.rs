use bytes::{Bytes, BytesMut};

use crate::{Error, ErrorKind};

/// A response body as it arrives on its HTTP/2 stream.
///
/// [`collect`](Self::collect) reads it whole and gives the flow-control window back as it
/// goes (RFC 9113 §6.9); [`into_inner`](Self::into_inner) hands the stream to callers that
/// read it piece by piece — they must then release capacity themselves.
///
/// ```no_run
/// # async fn run(client: misdirect_client::Client) -> Result<(), Box<dyn std::error::Error>> {
/// let response = client.send(http::Request::get("https://a.localhost/").body(bytes::Bytes::new())?).await?;
/// let body: bytes::Bytes = response.into_body().collect().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Body {
    stream: h2::RecvStream,
}

impl Body {
    pub(crate) fn new(stream: h2::RecvStream) -> Self {
        Self { stream }
    }

    /// Reads the whole body.
    ///
    /// ```no_run
    /// # async fn run(response: http::Response<misdirect_client::Body>) -> Result<(), misdirect_client::Error> {
    /// let text = response.into_body().collect().await?;
    /// println!("{}", String::from_utf8_lossy(&text));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn collect(mut self) -> Result<Bytes, Error> {
        let mut out = BytesMut::new();
        while let Some(chunk) = self.stream.data().await {
            let chunk = chunk.map_err(|err| {
                Error::new(ErrorKind::Http2, "reading a response body").with_source(err)
            })?;
            // Releasing what was read cannot fail for a stream still open; an error here
            // means the stream was reset, which the next `data()` reports.
            let _ = self.stream.flow_control().release_capacity(chunk.len());
            out.extend_from_slice(&chunk);
        }
        Ok(out.freeze())
    }

    /// The `h2` stream itself.
    ///
    /// ```no_run
    /// # async fn run(response: http::Response<misdirect_client::Body>) -> Result<(), h2::Error> {
    /// let mut stream = response.into_body().into_inner();
    /// while let Some(chunk) = stream.data().await {
    ///     let chunk = chunk?;
    ///     stream.flow_control().release_capacity(chunk.len())?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn into_inner(self) -> h2::RecvStream {
        self.stream
    }
}
