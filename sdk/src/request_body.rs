//! Reading the request body, wherever nginx put it.

use std::fs::File;
use std::io::{self, BufRead, Read};
use std::mem::ManuallyDrop;
use std::os::fd::FromRawFd;
use std::os::unix::fs::FileExt;

use crate::abi;

/// Size of the buffer used to read the parts of a body nginx spilled to a file.
const FILE_CHUNK: usize = 64 * 1024;

/// The request body as a reader ([`Read`] and [`BufRead`]). nginx has read the whole body
/// before the app is called; parts held in memory are lent without copying, parts spilled to
/// a temporary file are read from it in chunks, so a large body is never all in memory at once.
pub struct RequestBody<'a> {
    segments: &'a [abi::BodySegment],
    /// Segment being read, and how far into it.
    index: usize,
    position: u64,
    /// Bytes read ahead from a file segment: `file_buffer[buffer_start..buffer_end]` starts
    /// at `position`.
    file_buffer: Vec<u8>,
    buffer_start: usize,
    buffer_end: usize,
}

impl<'a> RequestBody<'a> {
    pub(crate) fn new(segments: &'a [abi::BodySegment]) -> Self {
        RequestBody {
            segments,
            index: 0,
            position: 0,
            file_buffer: Vec::new(),
            buffer_start: 0,
            buffer_end: 0,
        }
    }

    /// The whole body's length in bytes (the real length, also for a chunked request).
    pub fn len(&self) -> u64 {
        self.segments.iter().map(|segment| segment.len).sum()
    }

    /// Whether the body has no bytes, as for a request without a body.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read_file_ahead(&mut self, segment: abi::BodySegment) -> io::Result<()> {
        if self.file_buffer.is_empty() {
            self.file_buffer = vec![0; FILE_CHUNK];
        }
        let wanted = (segment.len - self.position).min(FILE_CHUNK as u64) as usize;
        // SAFETY: nginx keeps `fd` open while the request lives, which covers this reader's
        // lifetime; ManuallyDrop leaves closing it to nginx.
        let file = ManuallyDrop::new(unsafe { File::from_raw_fd(segment.fd) });
        let read = file.read_at(
            &mut self.file_buffer[..wanted],
            segment.offset + self.position,
        )?;
        if read == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "request body temporary file is shorter than nginx said",
            ));
        }
        self.buffer_start = 0;
        self.buffer_end = read;
        Ok(())
    }
}

impl BufRead for RequestBody<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while let Some(&segment) = self.segments.get(self.index) {
            if self.position >= segment.len {
                self.index += 1;
                self.position = 0;
                self.buffer_start = 0;
                self.buffer_end = 0;
                continue;
            }
            if segment.fd < 0 {
                // SAFETY: the module keeps memory segments valid while the request is served.
                let bytes = unsafe { abi::slice_from_abi(segment.data, segment.len as usize) };
                return Ok(&bytes[self.position as usize..]);
            }
            if self.buffer_start == self.buffer_end {
                self.read_file_ahead(segment)?;
            }
            return Ok(&self.file_buffer[self.buffer_start..self.buffer_end]);
        }
        Ok(&[])
    }

    fn consume(&mut self, amount: usize) {
        self.position += amount as u64;
        if self.buffer_start < self.buffer_end {
            self.buffer_start = (self.buffer_start + amount).min(self.buffer_end);
        }
    }
}

impl Read for RequestBody<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let count = available.len().min(out.len());
        out[..count].copy_from_slice(&available[..count]);
        self.consume(count);
        Ok(count)
    }
}

impl std::fmt::Debug for RequestBody<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestBody")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}
