//! The request body as an [`http_body::Body`], wherever nginx put it.

use std::collections::VecDeque;
use std::fs::File;
use std::future::Future;
use std::io;
use std::os::fd::BorrowedFd;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::abi;

/// How much of a spilled body one read takes from its file.
const FILE_CHUNK: u64 = 64 * 1024;

/// The request body a tower service gets: an [`http_body::Body`] of [`Bytes`] (axum reads it
/// with its extractors, `String`, `Bytes`, `Json`, or as a stream).
///
/// nginx has read the whole body before the service is called. The parts it held in memory
/// were copied when the request was made; the parts it spilled to a temporary file (a body
/// larger than `client_body_buffer_size`) are read from the file as the body is polled, 64
/// KiB at a time, on the runtime's blocking threads, never on nginx's event loop. The body
/// keeps its own descriptor of the file, so it may be read after the response was sent.
pub struct Body {
    segments: VecDeque<Segment>,
    remaining: u64,
    /// Runs the file reads; `None` for a body without file parts.
    runtime: Option<Handle>,
    reading: Option<JoinHandle<Result<Bytes, BodyError>>>,
}

enum Segment {
    Memory(Bytes),
    File {
        file: Arc<File>,
        offset: u64,
        len: u64,
    },
}

/// Why the request body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Reading nginx's temporary file failed.
    #[error("cannot read the request body's temporary file: {0}")]
    Read(#[from] io::Error),
    /// The temporary file ended before the length nginx gave.
    #[error("the request body's temporary file is shorter than nginx said")]
    ShortFile,
    /// The blocking read was cancelled or panicked (the runtime is shutting down).
    #[error("the request body's read did not finish: {0}")]
    Task(String),
}

impl Body {
    /// A body without bytes.
    pub fn empty() -> Body {
        Body {
            segments: VecDeque::new(),
            remaining: 0,
            runtime: None,
            reading: None,
        }
    }

    /// The module's body segments: memory copied, file descriptors duplicated (the module
    /// closes its own when the request ends).
    pub(crate) fn from_segments(
        segments: &[abi::BodySegment],
        runtime: &Handle,
    ) -> io::Result<Body> {
        let mut body = Body::empty();
        // nginx spills a body to one file: one duplicate serves all its segments.
        let mut files: Vec<(i32, Arc<File>)> = Vec::new();
        for segment in segments.iter().filter(|segment| segment.len > 0) {
            body.remaining += segment.len;
            if segment.fd < 0 {
                // SAFETY: the module keeps memory segments valid while `call` runs; copied.
                let bytes = unsafe { abi::slice_from_abi(segment.data, segment.len as usize) };
                body.segments
                    .push_back(Segment::Memory(Bytes::copy_from_slice(bytes)));
                continue;
            }
            let file = match files.iter().find(|(fd, _)| *fd == segment.fd) {
                Some((_, file)) => Arc::clone(file),
                None => {
                    // SAFETY: the module keeps the descriptor open while `call` runs; it is
                    // only borrowed here to duplicate it (close-on-exec).
                    let owned =
                        unsafe { BorrowedFd::borrow_raw(segment.fd) }.try_clone_to_owned()?;
                    let file = Arc::new(File::from(owned));
                    files.push((segment.fd, Arc::clone(&file)));
                    file
                }
            };
            body.segments.push_back(Segment::File {
                file,
                offset: segment.offset,
                len: segment.len,
            });
            body.runtime = Some(runtime.clone());
        }
        Ok(body)
    }

    /// Starts reading the next run of a file segment on the blocking pool, and takes it off
    /// the segment.
    fn start_read(&mut self, file: &Arc<File>, offset: u64, len: u64) -> Result<(), BodyError> {
        let Some(runtime) = &self.runtime else {
            return Err(BodyError::Task("no runtime to read the file on".into()));
        };
        let take = len.min(FILE_CHUNK);
        let file = Arc::clone(file);
        self.reading = Some(runtime.spawn_blocking(move || {
            let mut buffer = vec![0; take as usize];
            let mut filled = 0;
            while filled < buffer.len() {
                match file.read_at(&mut buffer[filled..], offset + filled as u64) {
                    Ok(0) => return Err(BodyError::ShortFile),
                    Ok(read) => filled += read,
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                    Err(error) => return Err(error.into()),
                }
            }
            Ok(Bytes::from(buffer))
        }));
        Ok(())
    }
}

impl Default for Body {
    fn default() -> Self {
        Body::empty()
    }
}

/// From bytes, e.g. to test a service without nginx.
impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Self {
        let mut body = Body::empty();
        if !bytes.is_empty() {
            body.remaining = bytes.len() as u64;
            body.segments.push_back(Segment::Memory(bytes));
        }
        body
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        loop {
            if let Some(reading) = &mut this.reading {
                let read = ready!(Pin::new(reading).poll(cx));
                this.reading = None;
                let bytes = match read {
                    Ok(Ok(bytes)) => bytes,
                    Ok(Err(error)) => return Poll::Ready(Some(Err(error))),
                    Err(join) => return Poll::Ready(Some(Err(BodyError::Task(join.to_string())))),
                };
                this.remaining -= bytes.len() as u64;
                return Poll::Ready(Some(Ok(Frame::data(bytes))));
            }
            match this.segments.pop_front() {
                None => return Poll::Ready(None),
                Some(Segment::Memory(bytes)) => {
                    this.remaining -= bytes.len() as u64;
                    return Poll::Ready(Some(Ok(Frame::data(bytes))));
                }
                Some(Segment::File { file, offset, len }) => {
                    if let Err(error) = this.start_read(&file, offset, len) {
                        return Poll::Ready(Some(Err(error)));
                    }
                    let taken = len.min(FILE_CHUNK);
                    if taken < len {
                        this.segments.push_front(Segment::File {
                            file,
                            offset: offset + taken,
                            len: len - taken,
                        });
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Body")
            .field("remaining", &self.remaining)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::fd::AsRawFd;

    use http_body_util::BodyExt;

    use super::*;

    #[test]
    fn memory_and_file_segments_read_in_order() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut file = tempfile();
        let spilled: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        file.write_all(b"xx").unwrap();
        file.write_all(&spilled).unwrap();
        let head = b"head:".to_vec();
        let segments = [
            abi::BodySegment {
                fd: -1,
                offset: 0,
                len: head.len() as u64,
                data: head.as_ptr(),
            },
            abi::BodySegment {
                fd: file.as_raw_fd(),
                offset: 2,
                len: spilled.len() as u64,
                data: std::ptr::null(),
            },
        ];
        let body = Body::from_segments(&segments, runtime.handle()).unwrap();
        // The body has its own descriptor: closing the module's does not matter.
        drop(file);
        assert_eq!(http_body::Body::size_hint(&body).exact(), Some(5 + 200_000));
        let collected = runtime.block_on(body.collect()).unwrap().to_bytes();
        assert_eq!(&collected[..5], b"head:");
        assert!(collected[5..] == spilled[..]);
    }

    #[test]
    fn a_short_file_is_an_error() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut file = tempfile();
        file.write_all(b"abc").unwrap();
        let segments = [abi::BodySegment {
            fd: file.as_raw_fd(),
            offset: 0,
            len: 10,
            data: std::ptr::null(),
        }];
        let body = Body::from_segments(&segments, runtime.handle()).unwrap();
        let error = runtime.block_on(body.collect()).unwrap_err();
        assert!(matches!(error, BodyError::ShortFile), "{error}");
    }

    #[test]
    fn an_empty_body_ends_at_once() {
        assert!(http_body::Body::is_end_stream(&Body::empty()));
        assert!(!http_body::Body::is_end_stream(&Body::from(Bytes::from(
            "x"
        ))));
    }

    fn tempfile() -> File {
        let path = std::env::temp_dir().join(format!(
            "gateway-body-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        file
    }
}
