//! `wsgi.file_wrapper` (PEP 3333, "Optional Platform-Specific File Handling"): a real file
//! the app hands over goes out as a file body, which nginx opens and sends itself (sendfile,
//! ranges, conditional requests); anything else is read a block at a time, as a stream.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::response::Head;

/// What `environ["wsgi.file_wrapper"](filelike, blksize)` makes: an iterable reading
/// `filelike` in blocks of `blksize` bytes, whose `close()` closes `filelike`.
#[pyclass(module = "gateway_wsgi", frozen)]
pub struct FileWrapper {
    filelike: Py<PyAny>,
    blksize: usize,
}

#[pymethods]
impl FileWrapper {
    #[new]
    #[pyo3(signature = (filelike, blksize = 8192))]
    fn new(filelike: Py<PyAny>, blksize: isize) -> PyResult<FileWrapper> {
        let blksize = usize::try_from(blksize)
            .ok()
            .filter(|&size| size > 0)
            .ok_or_else(|| PyValueError::new_err("wsgi.file_wrapper's blksize must be positive"))?;
        Ok(FileWrapper { filelike, blksize })
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let block = self
            .filelike
            .bind(py)
            .call_method1("read", (self.blksize,))?;
        Ok(block.is_truthy()?.then_some(block))
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        if let Some(close) = self.filelike.bind(py).getattr_opt("close")? {
            close.call0()?;
        }
        Ok(())
    }
}

/// The path nginx can send for what the app returned, if it is a `FileWrapper` whose file
/// nginx can open and send to the same effect as reading it: a regular file, read from its
/// start, still under the name it was opened by (not deleted or replaced since), with no
/// `write()` data before it. Its `Content-Length`, if any, is how much of the file nginx
/// sends (PEP 3333: no more than it allows), one past the end a 500; a module older than
/// ABI 1.2 (`lengths`: false) would send the whole file, so then only one saying the file's
/// size will do. `None` sends it by reading, a block at a time.
pub fn sendable_path(
    py: Python<'_>,
    returned: &Bound<'_, PyAny>,
    head: &Head,
    lengths: bool,
) -> Option<PathBuf> {
    let wrapper = returned.cast::<FileWrapper>().ok()?;
    if !head.written.is_empty() {
        return None;
    }
    let filelike = wrapper.get().filelike.bind(py);
    let fd: i32 = filelike.call_method0("fileno").ok()?.extract().ok()?;
    // Where reading would start: a buffered file's own position, ahead of which the
    // descriptor's may be.
    let position: u64 = filelike.call_method0("tell").ok()?.extract().ok()?;
    if fd < 0 || position != 0 {
        return None;
    }
    let has_length = head
        .headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("content-length"));
    py.detach(|| {
        // The link names the open file; its metadata is the open file's, even once deleted.
        let link = PathBuf::from(format!("/proc/self/fd/{fd}"));
        let open = std::fs::metadata(&link).ok()?;
        let path = std::fs::read_link(&link).ok()?;
        let named = std::fs::metadata(&path).ok()?;
        let same = open.is_file() && open.dev() == named.dev() && open.ino() == named.ino();
        let length = !has_length || lengths || head.declared == Some(open.len());
        (same && length && path.is_absolute()).then_some(path)
    })
}
