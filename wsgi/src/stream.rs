//! A response body pulled from the app's iterable as nginx sends it. `stream_next` runs where
//! the module calls it (nginx's event loop, say) and never runs Python: it hands out a chunk
//! a bridge thread made, or answers STREAM_PENDING and has a bridge thread make one, which
//! then wakes the call. Exactly one job at a time holds the Python iterable (`python` is
//! taken out of the state while it runs), so no lock is ever held while Python runs.

use std::ffi::c_void;
use std::sync::{Arc, Mutex};

use gateway_abi::{self as abi, Bytes};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use crate::link::{Completion, RequestLink};
use crate::pep3333::lock;
use crate::pool::Submitter;
use crate::python_error_text;
use crate::response::{Head, OwnedHead};

/// The app's iterable and what iterating it needs; only on a bridge thread, with the GIL.
pub struct PyBody {
    /// What the app returned, whose `close()` is called exactly once.
    iterable: Py<PyAny>,
    iterator: Py<PyAny>,
    head: Arc<Mutex<Head>>,
}

/// What one pull of the iterable gave.
pub enum Pulled {
    /// Bytes to send (`write()` data first); never empty.
    Chunk(Vec<u8>),
    /// The iterable is exhausted and closed.
    End,
    /// It raised, and is closed: the message for the log.
    Failed(String),
}

impl PyBody {
    pub fn new(
        iterable: Bound<'_, PyAny>,
        iterator: Bound<'_, PyAny>,
        head: Arc<Mutex<Head>>,
    ) -> PyBody {
        PyBody {
            iterable: iterable.unbind(),
            iterator: iterator.unbind(),
            head,
        }
    }

    /// Pulls until a non-empty chunk, the end or an error; closes the iterable at the end
    /// or on an error, so that it is consumed then. Once the app's Content-Length is reached
    /// it is the end (PEP 3333): the rest of an item is not sent, and no more are pulled.
    pub fn pull(self, py: Python<'_>, link: &RequestLink) -> (Pulled, Option<PyBody>) {
        let outcome = loop {
            {
                let mut head = lock(&self.head);
                let written = std::mem::take(&mut head.written);
                if !written.is_empty() {
                    break Pulled::Chunk(written);
                }
                if head.full() {
                    break Pulled::End;
                }
            }
            let item = match self.iterator.bind(py).call_method0("__next__") {
                Ok(item) => item,
                Err(error) if error.is_instance_of::<pyo3::exceptions::PyStopIteration>(py) => {
                    break Pulled::End
                }
                Err(error) => break Pulled::Failed(python_error_text(py, &error)),
            };
            match item.cast::<PyBytes>() {
                Ok(bytes) => {
                    let mut head = lock(&self.head);
                    let mut chunk = std::mem::take(&mut head.written);
                    chunk.extend_from_slice(head.take(bytes.as_bytes()));
                    if chunk.is_empty() {
                        continue;
                    }
                    head.sent = true;
                    break Pulled::Chunk(chunk);
                }
                Err(_) => {
                    let kind = item
                        .get_type()
                        .name()
                        .map(|name| name.to_string())
                        .unwrap_or_default();
                    break Pulled::Failed(format!(
                        "the WSGI app's body yielded a {kind}, not bytes"
                    ));
                }
            }
        };
        match outcome {
            Pulled::Chunk(_) => (outcome, Some(self)),
            _ => {
                self.close(py, link);
                (outcome, None)
            }
        }
    }

    /// Calls the iterable's `close()`, if it has one (PEP 3333), and drops it.
    pub fn close(self, py: Python<'_>, link: &RequestLink) {
        close_iterable(py, self.iterable.bind(py), link);
    }
}

/// `close()` of what the app returned, if any; its error only goes to the log.
pub fn close_iterable(py: Python<'_>, iterable: &Bound<'_, PyAny>, link: &RequestLink) {
    // A plain list or tuple has no close(); asking would raise and format an AttributeError
    // (Python 3.11 has no lookup that does not), at each request of the commonest answer.
    if iterable.is_exact_instance_of::<PyList>() || iterable.is_exact_instance_of::<PyTuple>() {
        return;
    }
    let closed = match iterable.getattr_opt(intern!(py, "close")) {
        Ok(Some(close)) => close.call0().map(drop),
        Ok(None) => Ok(()),
        Err(error) => Err(error),
    };
    if let Err(error) = closed {
        link.log(
            abi::LOG_ERROR,
            &format!(
                "close() of the WSGI app's response raised:\n{}",
                python_error_text(py, &error)
            ),
        );
    }
}

enum End {
    Done,
    Failed(String),
}

struct State {
    /// The next chunk, made by a bridge thread.
    ready: Option<Vec<u8>>,
    end: Option<End>,
    /// The iterable, while no job holds it and it is not consumed.
    python: Option<PyBody>,
    /// A job holds `python`.
    producing: bool,
    /// `stream_next` answered STREAM_PENDING and no wake was sent since.
    waiting: bool,
    released: bool,
}

struct Shared {
    link: Arc<RequestLink>,
    pool: Submitter,
    state: Mutex<State>,
}

/// The stream's state, boxed: `owner` and `stream` of the response point to it.
struct Streamed {
    response: abi::Response,
    shared: Arc<Shared>,
    /// The chunk handed out last (or the error message), valid until the next pull.
    current: Vec<u8>,
    _head: OwnedHead,
}

/// Answers `completion` with a stream whose first chunk is `first` and the rest `python`'s.
pub fn start(
    completion: Completion,
    head: OwnedHead,
    first: Vec<u8>,
    python: PyBody,
    pool: Submitter,
) {
    let shared = Arc::new(Shared {
        link: Arc::clone(completion.link()),
        pool,
        state: Mutex::new(State {
            ready: Some(first),
            end: None,
            python: Some(python),
            producing: false,
            waiting: false,
            released: false,
        }),
    });
    let mut response = head.response(abi::BODY_STREAM, &[]);
    response.release = release_stream;
    response.stream_next = Some(stream_next);
    let streamed = Box::into_raw(Box::new(Streamed {
        response,
        shared,
        current: Vec::new(),
        _head: head,
    }));
    // SAFETY: `streamed` is ours until the module releases it; the call is not completed.
    unsafe {
        (*streamed).response.owner = streamed.cast();
        (*streamed).response.stream = streamed.cast();
        completion.respond(&(*streamed).response, true);
    }
}

/// Has a bridge thread make the next chunk; the caller took `python` and set `producing`.
fn produce(shared: &Arc<Shared>, python: PyBody) {
    let for_job = Arc::clone(shared);
    shared.pool.submit(Box::new(move |py| {
        let shared = for_job;
        let (pulled, python) = python.pull(py, &shared.link);
        let mut state = lock(&shared.state);
        state.producing = false;
        if state.released {
            drop(state);
            // Released while the chunk was made: close here, on this thread.
            if let Some(python) = python {
                python.close(py, &shared.link);
            }
            return;
        }
        state.python = python;
        match pulled {
            Pulled::Chunk(chunk) => state.ready = Some(chunk),
            Pulled::End => state.end = Some(End::Done),
            Pulled::Failed(message) => state.end = Some(End::Failed(message)),
        }
        if std::mem::take(&mut state.waiting) {
            // Under the state lock: the release, which takes it, cannot pass in between.
            shared.link.wake();
        }
    }));
}

unsafe extern "C" fn stream_next(stream: *mut c_void, chunk: *mut abi::Chunk) -> i32 {
    let pulled = std::panic::catch_unwind(|| {
        // SAFETY: the box made in `start`; the module pulls one at a time, never after the
        // release.
        let stream = unsafe { &mut *stream.cast::<Streamed>() };
        next(stream)
    });
    let (code, data) = match pulled {
        Ok(next) => next,
        Err(_) => return abi::STREAM_PANIC,
    };
    // SAFETY: the module passes a writable chunk; `data` points into the box's `current`,
    // valid until the next pull or the release.
    unsafe { chunk.write(abi::Chunk { data, flush: 0 }) };
    code
}

fn next(stream: &mut Streamed) -> (i32, Bytes) {
    let shared = Arc::clone(&stream.shared);
    let mut state = lock(&shared.state);
    if let Some(ready) = state.ready.take() {
        stream.current = ready;
        // Make the next chunk while this one is sent.
        if let Some(python) = state.python.take() {
            state.producing = true;
            drop(state);
            produce(&shared, python);
        }
        return (abi::STREAM_CHUNK, Bytes::new(&stream.current));
    }
    match state.end.take() {
        Some(End::Done) => return (abi::STREAM_END, Bytes::EMPTY),
        Some(End::Failed(message)) => {
            stream.current = message.into_bytes();
            return (abi::STREAM_ERROR, Bytes::new(&stream.current));
        }
        None => {}
    }
    state.waiting = true;
    if let Some(python) = state.python.take() {
        state.producing = true;
        drop(state);
        produce(&shared, python);
    }
    (abi::STREAM_PENDING, Bytes::EMPTY)
}

unsafe extern "C" fn release_stream(owner: *mut c_void) {
    // SAFETY: the box made in `start`, released once by the module.
    let stream = unsafe { Box::from_raw(owner.cast::<Streamed>()) };
    let shared = &stream.shared;
    let python = {
        let mut state = lock(&shared.state);
        state.released = true;
        state.python.take()
    };
    // No wake after this returns; a producer at work sees `released` and closes.
    shared.link.end_handle();
    // Closed on a bridge thread: Python never runs, and no Python object drops, here.
    if let Some(python) = python {
        let link = Arc::clone(&shared.link);
        shared
            .pool
            .submit(Box::new(move |py| python.close(py, &link)));
    }
}
