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
/// nginx can open and send whole to the same effect as reading it: a regular file, read from
/// its start, still under the name it was opened by (not deleted or replaced since), with no
/// `write()` data before it and no `Content-Length` saying otherwise. `None` sends it by
/// reading, a block at a time.
pub fn sendable_path(py: Python<'_>, returned: &Bound<'_, PyAny>, head: &Head) -> Option<PathBuf> {
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
    let declared = head
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .map(|(_, value)| value.trim().parse::<u64>().ok());
    py.detach(|| {
        // The link names the open file; its metadata is the open file's, even once deleted.
        let link = PathBuf::from(format!("/proc/self/fd/{fd}"));
        let open = std::fs::metadata(&link).ok()?;
        let path = std::fs::read_link(&link).ok()?;
        let named = std::fs::metadata(&path).ok()?;
        let same = open.is_file() && open.dev() == named.dev() && open.ino() == named.ino();
        let whole = declared.is_none_or(|declared| declared == Some(open.len()));
        (same && whole && path.is_absolute()).then_some(path)
    })
}
