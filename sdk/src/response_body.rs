//! Response bodies: bytes in memory, a stream of chunks, a file, or an internal redirect.

use std::borrow::Cow;
use std::fmt;
use std::path::PathBuf;

/// A response body.
///
/// - bytes: `Body::from("text")`, `Body::from(vec)`; static bytes are sent without a copy;
/// - a stream: [`Body::from_iter`] / [`Body::from_try_iter`]; nginx pulls the next chunk only
///   when the client can take more, so an endless or huge body needs bounded memory;
/// - a file: [`Body::file`]; nginx sends it itself (sendfile, ranges, conditional requests).
#[derive(Default)]
pub struct Body(pub(crate) Kind);

pub(crate) enum Kind {
    Bytes(Cow<'static, [u8]>),
    Stream(Box<dyn Iterator<Item = Result<Chunk, String>> + Send>),
    File(PathBuf),
    Redirect(String),
}

impl Default for Kind {
    fn default() -> Self {
        Kind::Bytes(Cow::Borrowed(&[]))
    }
}

impl Body {
    /// A body with no bytes; what `()` converts to.
    pub fn empty() -> Self {
        Body::default()
    }

    /// A streamed body: each item is one chunk sent to the client.
    // Not `FromIterator`: that trait collects, while this pulls chunks only as the client
    // reads them.
    #[allow(clippy::should_implement_trait)]
    pub fn from_iter<I, C>(chunks: I) -> Self
    where
        I: IntoIterator<Item = C>,
        I::IntoIter: Send + 'static,
        C: Into<Chunk>,
    {
        Body(Kind::Stream(Box::new(
            chunks.into_iter().map(|chunk| Ok(chunk.into())),
        )))
    }

    /// A streamed body that can fail: an `Err` ends the response early (the client sees it
    /// cut short, as its status was already sent) and is logged with the request.
    pub fn from_try_iter<I, C, E>(chunks: I) -> Self
    where
        I: IntoIterator<Item = Result<C, E>>,
        I::IntoIter: Send + 'static,
        C: Into<Chunk>,
        E: fmt::Display,
    {
        let chunks = chunks
            .into_iter()
            .map(|chunk| chunk.map(Into::into).map_err(|e| e.to_string()));
        Body(Kind::Stream(Box::new(chunks)))
    }

    /// The file at `path` (absolute), sent by nginx: a missing file answers 404, an
    /// unreadable one 403.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Body(Kind::File(path.into()))
    }

    pub(crate) fn internal_redirect(uri: impl Into<String>) -> Self {
        Body(Kind::Redirect(uri.into()))
    }

    /// The bytes of an in-memory body; `None` for streams, files and redirects.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match &self.0 {
            Kind::Bytes(bytes) => Some(bytes),
            _ => None,
        }
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Kind::Bytes(bytes) => f.debug_tuple("Body::Bytes").field(&bytes.len()).finish(),
            Kind::Stream(_) => f.write_str("Body::Stream"),
            Kind::File(path) => f.debug_tuple("Body::File").field(path).finish(),
            Kind::Redirect(uri) => f.debug_tuple("Body::Redirect").field(uri).finish(),
        }
    }
}

impl From<&'static str> for Body {
    fn from(text: &'static str) -> Self {
        Body(Kind::Bytes(Cow::Borrowed(text.as_bytes())))
    }
}

impl From<&'static [u8]> for Body {
    fn from(bytes: &'static [u8]) -> Self {
        Body(Kind::Bytes(Cow::Borrowed(bytes)))
    }
}

impl From<String> for Body {
    fn from(text: String) -> Self {
        Body(Kind::Bytes(Cow::Owned(text.into_bytes())))
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Self {
        Body(Kind::Bytes(Cow::Owned(bytes)))
    }
}

impl From<()> for Body {
    fn from(_: ()) -> Self {
        Body::empty()
    }
}

/// One piece of a streamed body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub(crate) data: Cow<'static, [u8]>,
    pub(crate) flush: bool,
}

impl Chunk {
    /// A chunk of bytes or text, unflushed; static data is sent without a copy. Useful to chain
    /// [`Chunk::flushed`]: `Chunk::new("data: tick\n\n").flushed()`.
    pub fn new(data: impl Into<Chunk>) -> Self {
        data.into()
    }

    /// Asks nginx to send everything so far at once after this chunk, instead of waiting to
    /// fill a packet. Every chunk of a `text/event-stream` response is flushed anyway.
    pub fn flushed(mut self) -> Self {
        self.flush = true;
        self
    }
}

impl From<Vec<u8>> for Chunk {
    fn from(data: Vec<u8>) -> Self {
        Chunk {
            data: Cow::Owned(data),
            flush: false,
        }
    }
}

impl From<String> for Chunk {
    fn from(text: String) -> Self {
        text.into_bytes().into()
    }
}

impl From<&'static [u8]> for Chunk {
    fn from(data: &'static [u8]) -> Self {
        Chunk {
            data: Cow::Borrowed(data),
            flush: false,
        }
    }
}

impl From<&'static str> for Chunk {
    fn from(text: &'static str) -> Self {
        text.as_bytes().into()
    }
}
