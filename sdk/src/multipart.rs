//! `multipart/form-data` bodies (HTML forms with file inputs), parsed by `multer` as they are
//! read from wherever nginx put the body: memory or its temporary file, a chunk at a time.
//!
//! ```
//! use gateway::multipart::{Multipart, MultipartLimits};
//! use gateway::{Error, Request};
//!
//! fn upload(request: &Request) -> Result<String, Error> {
//!     let mut form = Multipart::from_request(request, MultipartLimits::default())?;
//!     let mut seen = Vec::new();
//!     while let Some(mut field) = form.next_field()? {
//!         let name = field.name().unwrap_or("").to_string();
//!         if let Some(file_name) = field.file_name().map(str::to_string) {
//!             let size = field.copy_to(&mut std::io::sink())?;
//!             seen.push(format!("{name}: {file_name}, {size} bytes"));
//!         } else {
//!             seen.push(format!("{name} = {}", field.text()?));
//!         }
//!     }
//!     Ok(seen.join("\n"))
//! }
//! ```

use std::fs::File;
use std::future::Future;
use std::io::{self, BufRead, Write};
use std::marker::PhantomData;
use std::path::Path;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use futures_util::Stream;
use http::StatusCode;

use crate::error::Error;
use crate::request::Request;
use crate::request_body::RequestBody;

/// Most bytes copied out of the body per chunk handed to the parser, so a large body kept in
/// memory by nginx is not copied whole at once.
const CHUNK: usize = 64 * 1024;

/// Bounds on a multipart body; each one exceeded answers 413. The defaults suit forms with a
/// few files: a body of 32 MiB, fields (files included) of 8 MiB each, 100 fields.
///
/// ```
/// use gateway::multipart::MultipartLimits;
///
/// let limits = MultipartLimits::default()
///     .body(100 << 20)
///     .field(50 << 20)
///     .fields(10);
/// ```
///
/// nginx's `client_max_body_size` (1 MiB unless set) applies first: raise it in nginx.conf
/// for larger uploads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MultipartLimits {
    body: u64,
    field: u64,
    fields: usize,
}

impl Default for MultipartLimits {
    fn default() -> Self {
        MultipartLimits {
            body: 32 << 20,
            field: 8 << 20,
            fields: 100,
        }
    }
}

impl MultipartLimits {
    /// The most bytes the whole body may have, boundaries and part headers included.
    pub fn body(self, bytes: u64) -> Self {
        MultipartLimits {
            body: bytes,
            ..self
        }
    }

    /// The most bytes one field's value (a file's contents) may have.
    pub fn field(self, bytes: u64) -> Self {
        MultipartLimits {
            field: bytes,
            ..self
        }
    }

    /// The most fields (files included) the body may have.
    pub fn fields(self, count: usize) -> Self {
        MultipartLimits {
            fields: count,
            ..self
        }
    }
}

/// Why a multipart body was refused; [`Error::Multipart`] carries it, answered with
/// [`MultipartError::status`].
#[derive(Debug, thiserror::Error)]
pub enum MultipartError {
    /// The body is over [`MultipartLimits::body`]: a 413.
    #[error("the body is over the limit of {limit} bytes")]
    BodyTooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// A field is over [`MultipartLimits::field`]: a 413.
    #[error("field {name:?} is over the limit of {limit} bytes")]
    FieldTooLarge {
        /// The field's name ("" when it has none).
        name: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// The body has more than [`MultipartLimits::fields`] fields: a 413.
    #[error("the body has more than {limit} fields")]
    TooManyFields {
        /// The limit.
        limit: usize,
    },
    /// The body is not well-formed `multipart/form-data` (or its boundary is missing): a 400.
    #[error("malformed multipart body: {0}")]
    Malformed(#[source] multer::Error),
}

impl MultipartError {
    /// The status the client gets: 413 for a limit, 400 for a malformed body.
    pub fn status(&self) -> StatusCode {
        match self {
            MultipartError::Malformed(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }
}

/// A `multipart/form-data` request body, read one field at a time, in order.
///
/// Each field is read from the body as the app asks for it; a field not read to its end is
/// skipped when the next one is asked for.
pub struct Multipart<'a> {
    parser: multer::Multipart<'a>,
    limits: MultipartLimits,
    fields_seen: usize,
    pause: Pause,
}

impl<'a> Multipart<'a> {
    /// Starts reading `request`'s body. Without a `multipart/form-data` content type: 415
    /// ([`Error::ContentType`]); without a boundary: 400; a body over
    /// [`MultipartLimits::body`]: 413 at once, before anything is parsed.
    pub fn from_request(request: &Request<'a>, limits: MultipartLimits) -> Result<Self, Error> {
        Multipart::from_body(
            request.environ().get_str("CONTENT_TYPE"),
            request.body(),
            limits,
        )
    }

    fn from_body(
        content_type: Option<&str>,
        body: RequestBody<'a>,
        limits: MultipartLimits,
    ) -> Result<Self, Error> {
        let not_multipart = || Error::ContentType {
            expected: "multipart/form-data",
        };
        let boundary =
            multer::parse_boundary(content_type.ok_or_else(not_multipart)?).map_err(|error| {
                match error {
                    multer::Error::NoBoundary => MultipartError::Malformed(error).into(),
                    _ => not_multipart(),
                }
            })?;
        if body.len() > limits.body {
            return Err(MultipartError::BodyTooLarge { limit: limits.body }.into());
        }
        let constraints = multer::Constraints::new().size_limit(
            multer::SizeLimit::new()
                .whole_stream(limits.body)
                .per_field(limits.field),
        );
        let pause = Pause::default();
        let chunks = BodyChunks {
            body,
            pause: pause.clone(),
            gave: false,
        };
        Ok(Multipart {
            parser: multer::Multipart::with_constraints(chunks, boundary, constraints),
            limits,
            fields_seen: 0,
            pause,
        })
    }

    /// The next field, or `None` after the last one. The field borrows the body, so one is
    /// read at a time.
    pub fn next_field(&mut self) -> Result<Option<Field<'_, 'a>>, Error> {
        let Some(field) = self.pause.run(self.parser.next_field())? else {
            return Ok(None);
        };
        self.fields_seen += 1;
        if self.fields_seen > self.limits.fields {
            return Err(MultipartError::TooManyFields {
                limit: self.limits.fields,
            }
            .into());
        }
        Ok(Some(Field {
            inner: field,
            pause: self.pause.clone(),
            _multipart: PhantomData,
        }))
    }
}

impl std::fmt::Debug for Multipart<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Multipart")
            .field("limits", &self.limits)
            .field("fields_seen", &self.fields_seen)
            .finish_non_exhaustive()
    }
}

/// One field of a [`Multipart`] body: a form value, or a file with its name.
///
/// It borrows its [`Multipart`] (`'m`), which borrows the request (`'a`): fields are read one
/// at a time. Its value is read once, by one of [`Field::chunk`] (repeatedly), [`Field::bytes`],
/// [`Field::text`], [`Field::copy_to`] or [`Field::save`].
#[derive(Debug)]
pub struct Field<'m, 'a> {
    inner: multer::Field<'a>,
    pause: Pause,
    /// multer refuses to look for the next field while one is held: the borrow makes that a
    /// compile-time error instead.
    _multipart: PhantomData<&'m mut Multipart<'a>>,
}

impl Field<'_, '_> {
    /// The field's name, from its `Content-Disposition`.
    pub fn name(&self) -> Option<&str> {
        self.inner.name()
    }

    /// The name of the uploaded file, as the client sent it; `None` for a plain form value.
    /// Never use it as a path as is: it may hold `/` or `..`.
    pub fn file_name(&self) -> Option<&str> {
        self.inner.file_name()
    }

    /// The field's `Content-Type`, as the client sent it (e.g. `image/png`).
    pub fn content_type(&self) -> Option<&str> {
        self.inner.content_type().map(|mime| mime.as_ref())
    }

    /// The field's part headers.
    pub fn headers(&self) -> &http::HeaderMap {
        self.inner.headers()
    }

    /// The next chunk of the value, or `None` at its end.
    ///
    /// ```
    /// # fn digest(mut field: gateway::multipart::Field) -> Result<u64, gateway::Error> {
    /// let mut size = 0;
    /// while let Some(chunk) = field.chunk()? {
    ///     size += chunk.len() as u64;
    /// }
    /// # Ok(size) }
    /// ```
    pub fn chunk(&mut self) -> Result<Option<Bytes>, Error> {
        self.pause.run(self.inner.chunk())
    }

    /// The whole value in memory (at most [`MultipartLimits::field`] bytes).
    pub fn bytes(self) -> Result<Bytes, Error> {
        self.pause.run(self.inner.bytes())
    }

    /// The whole value as text, decoded by the `charset` of its content type (UTF-8 when it
    /// has none); invalid sequences become U+FFFD.
    pub fn text(self) -> Result<String, Error> {
        self.pause.run(self.inner.text())
    }

    /// Copies the value into `writer` a chunk at a time, answering the bytes copied. A failing
    /// writer is a server failure (500).
    pub fn copy_to(&mut self, writer: &mut impl Write) -> Result<u64, Error> {
        let mut copied = 0;
        while let Some(chunk) = self.chunk()? {
            writer
                .write_all(&chunk)
                .map_err(|error| Error::internal(format!("writing an uploaded field: {error}")))?;
            copied += chunk.len() as u64;
        }
        Ok(copied)
    }

    /// Saves the value to a new file at `path` (replacing one there), answering its size. If
    /// the upload fails (over a limit, cut short) the partial file is removed.
    ///
    /// ```
    /// # fn keep(field: gateway::multipart::Field, dir: &std::path::Path) -> Result<(), gateway::Error> {
    /// // Name the file yourself: the client's file name is not a safe path.
    /// let size = field.save(dir.join("upload-1.bin"))?;
    /// # Ok(()) }
    /// ```
    pub fn save(mut self, path: impl AsRef<Path>) -> Result<u64, Error> {
        let path = path.as_ref();
        let saving_failed = |error: io::Error| {
            Error::internal(format!("saving an upload to {}: {error}", path.display()))
        };
        let mut file = File::create(path).map_err(saving_failed)?;
        let saved = self
            .copy_to(&mut file)
            .and_then(|size| file.sync_all().map(|()| size).map_err(saving_failed));
        if saved.is_err() {
            // The error being reported matters more than one while cleaning up.
            let _ = std::fs::remove_file(path);
        }
        saved
    }
}

/// The body as a stream of owned chunks for `multer`. nginx has read the whole body before
/// the app is called, so a chunk is always there; but multer takes in all a stream has ready
/// before it parses, so the stream pauses (wakes itself and is pending once) after each
/// chunk, and the parser holds one chunk at a time instead of the whole body.
struct BodyChunks<'a> {
    body: RequestBody<'a>,
    pause: Pause,
    /// A chunk was handed over since the last pause.
    gave: bool,
}

// SAFETY: RequestBody only reads memory nginx leaves unchanged while the request lives (which
// its lifetime covers) and files with positioned reads; the ABI allows both from any thread.
unsafe impl Send for BodyChunks<'_> {}

impl Stream for BodyChunks<'_> {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if std::mem::take(&mut self.gave) {
            self.pause.0.store(true, Ordering::Relaxed);
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let available = match self.body.fill_buf() {
            Ok([]) => return Poll::Ready(None),
            Ok(available) => available,
            Err(error) => return Poll::Ready(Some(Err(error))),
        };
        let count = available.len().min(CHUNK);
        let chunk = Bytes::copy_from_slice(&available[..count]);
        self.body.consume(count);
        self.gave = true;
        Poll::Ready(Some(Ok(chunk)))
    }
}

/// Set when the body stream pauses, the only wait there is: the parser's futures are polled
/// here, on the handler's thread, until they are ready.
#[derive(Debug, Clone, Default)]
struct Pause(Arc<AtomicBool>);

impl Pause {
    fn run<T>(&self, step: impl Future<Output = multer::Result<T>>) -> Result<T, Error> {
        let mut step = pin!(step);
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            match step.as_mut().poll(&mut cx) {
                Poll::Ready(result) => return result.map_err(from_multer),
                Poll::Pending if self.0.swap(false, Ordering::Relaxed) => continue,
                Poll::Pending => {
                    return Err(Error::internal(
                        "the multipart parser waited for something other than the body",
                    ))
                }
            }
        }
    }
}

fn from_multer(error: multer::Error) -> Error {
    match error {
        multer::Error::StreamSizeExceeded { limit } => {
            MultipartError::BodyTooLarge { limit }.into()
        }
        multer::Error::FieldSizeExceeded { limit, field_name } => MultipartError::FieldTooLarge {
            name: field_name.unwrap_or_default(),
            limit,
        }
        .into(),
        multer::Error::StreamReadFailed(cause) => match cause.downcast::<io::Error>() {
            Ok(error) => Error::Body(*error),
            Err(cause) => Error::internal(format!("reading the request body failed: {cause}")),
        },
        multer::Error::LockFailure => Error::internal(error),
        error => MultipartError::Malformed(error).into(),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::fd::AsRawFd;

    use super::*;
    use crate::abi::BodySegment;

    /// A body nginx kept partly in memory and spilled partly to its temporary file is read
    /// across both, the file in chunks.
    #[test]
    fn a_body_spilled_to_a_file_is_parsed_across_segments() {
        let data: Vec<u8> = (0..200_000u32).map(|index| (index % 253) as u8).collect();
        let mut body =
            b"--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x\"\r\n\r\n".to_vec();
        body.extend_from_slice(&data);
        body.extend_from_slice(b"\r\n--b--\r\n");
        let (in_memory, spilled) = body.split_at(40);
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"ignored prefix").unwrap();
        file.write_all(spilled).unwrap();
        let segments = [
            BodySegment {
                fd: -1,
                offset: 0,
                len: in_memory.len() as u64,
                data: in_memory.as_ptr(),
            },
            BodySegment {
                fd: file.as_raw_fd(),
                offset: "ignored prefix".len() as u64,
                len: spilled.len() as u64,
                data: std::ptr::null(),
            },
        ];
        let mut form = Multipart::from_body(
            Some("multipart/form-data; boundary=b"),
            RequestBody::new(&segments),
            MultipartLimits::default(),
        )
        .unwrap();
        let mut field = form.next_field().unwrap().unwrap();
        assert_eq!((field.name(), field.file_name()), (Some("f"), Some("x")));
        let mut read = Vec::new();
        field.copy_to(&mut read).unwrap();
        assert_eq!(read, data);
        drop(field);
        assert!(form.next_field().unwrap().is_none());
    }
}
