//! The Python objects PEP 3333 gives an app: the environ with `wsgi.input`, `wsgi.errors` and
//! `wsgi.file_wrapper` (see [`crate::file_wrapper`]), `start_response` and the `write()`
//! callable it returns.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use gateway_abi::{self as abi, slice_from_abi};
use pyo3::exceptions::{PyAssertionError, PyOSError, PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use crate::file_wrapper::FileWrapper;
use crate::link::RequestLink;
use crate::response::Head;

pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Bytes as a native string, one char per byte, as PEP 3333 says.
fn latin1_str<'py>(py: Python<'py>, bytes: &[u8]) -> Bound<'py, PyString> {
    match std::str::from_utf8(bytes) {
        Ok(text) if text.is_ascii() => PyString::new(py, text),
        _ => PyString::new(
            py,
            &bytes.iter().map(|&b| char::from(b)).collect::<String>(),
        ),
    }
}

/// The environ's names as Python strings, made once: the same few dozen come with every
/// request. Interned, their hash is computed once and the app's lookups with literal keys
/// match by identity. Bounded, as header names come from clients.
static NAMES: Mutex<Option<NameStrings>> = Mutex::new(None);
type NameStrings = HashMap<Box<[u8]>, Py<PyString>>;
const MAX_NAMES: usize = 512;

/// The entries every environ has with the same value, copied into each.
static CONSTANT_ENTRIES: PyOnceLock<Py<PyDict>> = PyOnceLock::new();

fn constant_entries(py: Python<'_>) -> PyResult<&Bound<'_, PyDict>> {
    let entries = CONSTANT_ENTRIES.get_or_try_init(py, || {
        let entries = PyDict::new(py);
        entries.set_item("wsgi.version", (1, 0))?;
        entries.set_item("wsgi.input_terminated", true)?;
        entries.set_item("wsgi.multithread", true)?;
        entries.set_item("wsgi.multiprocess", true)?;
        entries.set_item("wsgi.run_once", false)?;
        entries.set_item("wsgi.file_wrapper", py.get_type::<FileWrapper>())?;
        Ok::<_, PyErr>(entries.unbind())
    })?;
    Ok(entries.bind(py))
}

/// Builds the environ of `request`, valid until the call completes.
///
/// # Safety
/// `request` must be the module's, not completed yet.
pub unsafe fn environ<'py>(
    py: Python<'py>,
    request: &abi::Request,
    link: &Arc<RequestLink>,
) -> PyResult<Bound<'py, PyDict>> {
    let environ = constant_entries(py)?.copy()?;
    let mut scheme = None;
    // SAFETY: the caller vouches for the request; its pairs' bytes are valid until completion,
    // and are copied into Python strings here.
    let pairs = unsafe { slice_from_abi(request.environ, request.environ_len) };
    // SAFETY: as above.
    let bytes_of = |pair: &abi::Pair| unsafe { (pair.name.as_slice(), pair.value.as_slice()) };
    // Looked up under the lock, used after it: no Python code runs while it is held.
    let known: Vec<Option<Bound<'py, PyString>>> = {
        let names = lock(&NAMES);
        pairs
            .iter()
            .map(|pair| Some(names.as_ref()?.get(bytes_of(pair).0)?.bind(py).clone()))
            .collect()
    };
    let mut new_names = Vec::new();
    for ((name, value), known) in pairs.iter().map(bytes_of).zip(known) {
        if name == b"gateway.url_scheme" || (name == b"REQUEST_SCHEME" && scheme.is_none()) {
            scheme = Some(value);
        }
        let key = match known {
            Some(key) => key,
            None => {
                let key = match std::str::from_utf8(name) {
                    Ok(text) if text.is_ascii() => PyString::intern(py, text),
                    _ => latin1_str(py, name),
                };
                new_names.push((name, key.clone().unbind()));
                key
            }
        };
        environ.set_item(key, latin1_str(py, value))?;
    }
    if !new_names.is_empty() {
        let mut names = lock(&NAMES);
        let names = names.get_or_insert_with(HashMap::new);
        for (name, key) in new_names {
            if names.len() < MAX_NAMES {
                names.entry(name.into()).or_insert(key);
            }
        }
    }
    // SAFETY: as above: the segments stay valid until completion, which `with_body` guards.
    let segments = unsafe { slice_from_abi(request.body, request.body_len) }.to_vec();
    let input = Input {
        body: Arc::new(Body {
            total: segments.iter().map(|s| s.len).sum(),
            segments: Segments(segments),
            link: Arc::clone(link),
        }),
        pos: 0,
    };
    let scheme = match scheme {
        Some(b"https") => intern!(py, "https"),
        _ => intern!(py, "http"),
    };
    environ.set_item(intern!(py, "wsgi.url_scheme"), scheme)?;
    environ.set_item(intern!(py, "wsgi.input"), Py::new(py, input)?)?;
    environ.set_item(
        intern!(py, "wsgi.errors"),
        Py::new(
            py,
            ErrorStream {
                link: Arc::clone(link),
                partial: Mutex::default(),
            },
        )?,
    )?;
    Ok(environ)
}

// --- wsgi.input ---------------------------------------------------------------------------

/// The request's body segments, as the module passed them.
struct Segments(Vec<abi::BodySegment>);

// SAFETY: the ABI lets an app read the body (memory, or a file with pread) from any thread
// until the call completes; `RequestLink::with_body` keeps reads within that.
unsafe impl Send for Segments {}
// SAFETY: as above; reads only.
unsafe impl Sync for Segments {}

struct Body {
    segments: Segments,
    total: u64,
    link: Arc<RequestLink>,
}

impl Body {
    /// Reads from `pos` into `buf` as far as it fills or the body ends: memory is copied, a
    /// file segment read with pread, so a spilled body is never loaded whole.
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        let mut start = 0;
        let mut filled = 0;
        for segment in &self.segments.0 {
            let end = start + segment.len;
            let at = pos + filled as u64;
            if filled == buf.len() {
                break;
            }
            if at >= end {
                start = end;
                continue;
            }
            let within = at - start;
            let want = (buf.len() - filled).min((segment.len - within) as usize);
            let out = &mut buf[filled..filled + want];
            if segment.fd < 0 {
                // SAFETY: a memory segment of `len` bytes, valid until completion (the
                // caller holds `with_body`); `within + want <= len`.
                let bytes =
                    unsafe { std::slice::from_raw_parts(segment.data.add(within as usize), want) };
                out.copy_from_slice(bytes);
            } else {
                pread_exact(segment.fd, out, segment.offset + within)?;
            }
            filled += want;
            start = end;
        }
        Ok(filled)
    }
}

fn pread_exact(fd: i32, mut out: &mut [u8], mut offset: u64) -> io::Result<()> {
    while !out.is_empty() {
        // SAFETY: `out` is writable for its length; the fd is nginx's, open until completion.
        let n = unsafe {
            libc::pread(
                fd,
                out.as_mut_ptr().cast(),
                out.len(),
                offset as libc::off_t,
            )
        };
        match n {
            n if n > 0 => {
                out = &mut out[n as usize..];
                offset += n as u64;
            }
            0 => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the request body's temporary file is short",
                ))
            }
            _ => {
                let error = io::Error::last_os_error();
                if error.kind() != io::ErrorKind::Interrupted {
                    return Err(error);
                }
            }
        }
    }
    Ok(())
}

/// How much is read at a time while looking for a line's end.
const LINE_BLOCK: usize = 8192;

/// `wsgi.input`: a file-like object over the request body.
#[pyclass(module = "gateway_wsgi")]
pub struct Input {
    body: Arc<Body>,
    pos: u64,
}

impl Input {
    fn left(&self) -> u64 {
        self.body.total - self.pos
    }

    /// Reads up to `len` bytes at the current position, without the GIL.
    fn read_block(&self, py: Python<'_>, len: usize) -> PyResult<Vec<u8>> {
        let body = &self.body;
        let pos = self.pos;
        let read = py.detach(|| {
            body.link.with_body(|| {
                let mut buf = vec![0; len];
                let n = body.read_at(pos, &mut buf)?;
                buf.truncate(n);
                Ok::<_, io::Error>(buf)
            })
        });
        match read {
            Some(Ok(buf)) => Ok(buf),
            Some(Err(error)) => Err(PyOSError::new_err(format!(
                "reading the request body: {error}"
            ))),
            None => Err(PyOSError::new_err(
                "the request body is gone: its call has completed",
            )),
        }
    }

    /// A size argument: None or negative means no limit.
    fn limit(&self, size: Option<isize>) -> usize {
        let left = usize::try_from(self.left()).unwrap_or(usize::MAX);
        match size {
            Some(size) if size >= 0 => left.min(size as usize),
            _ => left,
        }
    }

    fn line(&mut self, py: Python<'_>, size: Option<isize>) -> PyResult<Vec<u8>> {
        let limit = self.limit(size);
        let mut line = Vec::new();
        while line.len() < limit {
            let block = self.read_block(py, LINE_BLOCK.min(limit - line.len()))?;
            if block.is_empty() {
                break;
            }
            match block.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    line.extend_from_slice(&block[..=end]);
                    self.pos += end as u64 + 1;
                    break;
                }
                None => {
                    line.extend_from_slice(&block);
                    self.pos += block.len() as u64;
                }
            }
        }
        Ok(line)
    }
}

#[pymethods]
impl Input {
    #[pyo3(signature = (size = None))]
    fn read<'py>(&mut self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let block = self.read_block(py, self.limit(size))?;
        self.pos += block.len() as u64;
        Ok(PyBytes::new(py, &block))
    }

    #[pyo3(signature = (size = None))]
    fn readline<'py>(
        &mut self,
        py: Python<'py>,
        size: Option<isize>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let line = self.line(py, size)?;
        Ok(PyBytes::new(py, &line))
    }

    /// Lines until the end, or until their total reaches `hint` (as io.IOBase's).
    #[pyo3(signature = (hint = None))]
    fn readlines<'py>(
        &mut self,
        py: Python<'py>,
        hint: Option<isize>,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let hint = hint.filter(|&hint| hint > 0).map(|hint| hint as usize);
        let mut lines = Vec::new();
        let mut total = 0;
        loop {
            let line = self.line(py, None)?;
            if line.is_empty() {
                break;
            }
            total += line.len();
            lines.push(PyBytes::new(py, &line));
            if hint.is_some_and(|hint| total >= hint) {
                break;
            }
        }
        Ok(lines)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let line = self.line(py, None)?;
        Ok((!line.is_empty()).then(|| PyBytes::new(py, &line)))
    }
}

// --- wsgi.errors --------------------------------------------------------------------------

/// `wsgi.errors`: a text stream into nginx's error log, a line an entry, with the request id.
#[pyclass(module = "gateway_wsgi", frozen)]
pub struct ErrorStream {
    link: Arc<RequestLink>,
    /// Text after the last newline, logged at the next newline, flush or drop.
    partial: Mutex<String>,
}

impl ErrorStream {
    fn emit(&self, text: &str) {
        let mut partial = lock(&self.partial);
        partial.push_str(text);
        if let Some(end) = partial.rfind('\n') {
            let lines: String = partial.drain(..=end).collect();
            drop(partial);
            for line in lines.lines() {
                self.link.log(abi::LOG_ERROR, line);
            }
        }
    }
}

#[pymethods]
impl ErrorStream {
    fn write(&self, text: &Bound<'_, PyString>) -> PyResult<usize> {
        let text = text.to_cow()?;
        self.emit(&text);
        Ok(text.chars().count())
    }

    fn writelines(&self, lines: &Bound<'_, PyAny>) -> PyResult<()> {
        for line in lines.try_iter()? {
            self.emit(&line?.cast::<PyString>()?.to_cow()?);
        }
        Ok(())
    }

    fn flush(&self) {
        let rest = std::mem::take(&mut *lock(&self.partial));
        if !rest.is_empty() {
            self.link.log(abi::LOG_ERROR, &rest);
        }
    }
}

impl Drop for ErrorStream {
    fn drop(&mut self) {
        self.flush();
    }
}

// --- start_response and write -------------------------------------------------------------

/// The `start_response` callable of one call.
#[pyclass(module = "gateway_wsgi", frozen)]
pub struct StartResponse {
    pub head: Arc<Mutex<Head>>,
}

#[pymethods]
impl StartResponse {
    #[pyo3(signature = (status, headers, exc_info = None))]
    fn __call__(
        &self,
        py: Python<'_>,
        status: &Bound<'_, PyAny>,
        headers: &Bound<'_, PyAny>,
        exc_info: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<Write>> {
        let exc_info = exc_info.filter(|info| !info.is_none());
        let status = status
            .cast::<PyString>()
            .map_err(|_| PyTypeError::new_err("the WSGI status must be a str"))?
            .to_cow()?
            .into_owned();
        let headers = headers
            .cast::<PyList>()
            .map_err(|_| PyTypeError::new_err("the WSGI response headers must be a list"))?;
        let mut pairs = Vec::with_capacity(headers.len());
        for header in headers.iter() {
            let pair = header
                .cast::<PyTuple>()
                .ok()
                .filter(|pair| pair.len() == 2)
                .ok_or_else(|| {
                    PyTypeError::new_err("each WSGI response header must be a (name, value) tuple")
                })?;
            let text = |i| -> PyResult<String> {
                Ok(pair
                    .get_item(i)?
                    .cast::<PyString>()
                    .map_err(|_| PyTypeError::new_err("WSGI header names and values must be str"))?
                    .to_cow()?
                    .into_owned())
            };
            pairs.push((text(0)?, text(1)?));
        }
        let mut head = lock(&self.head);
        match exc_info {
            // PEP 3333: too late to change the response: the app's error goes on up.
            Some(info) if head.sent => {
                drop(head);
                return Err(PyErr::from_value(info.get_item(1)?));
            }
            None if head.status.is_some() => {
                return Err(PyAssertionError::new_err(
                    "start_response called a second time without exc_info",
                ))
            }
            _ => {}
        }
        head.start(status, pairs);
        drop(head);
        Py::new(
            py,
            Write {
                head: Arc::clone(&self.head),
            },
        )
    }
}

/// The `write()` callable: bytes sent before the iterable's (kept until the call answers,
/// as the module takes a whole response head at once). Past the app's Content-Length it
/// raises ValueError, as PEP 3333 allows, and sends only the bytes up to it.
#[pyclass(module = "gateway_wsgi", frozen)]
pub struct Write {
    head: Arc<Mutex<Head>>,
}

#[pymethods]
impl Write {
    fn __call__(&self, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let data = data
            .cast::<PyBytes>()
            .map_err(|_| PyTypeError::new_err("write() takes bytes"))?
            .as_bytes();
        let mut head = lock(&self.head);
        let kept = head.take(data);
        head.written.extend_from_slice(kept);
        head.sent |= !kept.is_empty();
        if kept.len() < data.len() {
            return Err(PyValueError::new_err(format!(
                "write() past the response's Content-Length of {} bytes: {} of the {} bytes \
                 given are not sent",
                head.declared.unwrap_or_default(),
                data.len() - kept.len(),
                data.len()
            )));
        }
        Ok(())
    }
}
