//! The WSGI bridge: an app library of ngx-gateway, on the raw ABI 1.1, that serves a Python
//! WSGI app (PEP 3333) in the nginx worker.
//!
//! - `check` (nginx -t, in the master) validates the params and starts no Python;
//! - the first `init` of a worker starts its one interpreter (see [`interpreter`]), every
//!   `init` imports its location's app;
//! - Python never runs on nginx's event loop: a location called there runs its calls on the
//!   bridge's own threads ([`pool`]) and completes them later (ABI 1.1 deferred completion);
//!   a location on a `gateway_thread_pool` runs them inline on nginx's thread;
//! - a list or tuple body is sent as bytes, a real file from `wsgi.file_wrapper` by nginx
//!   ([`file_wrapper`]), any other iterable streamed ([`stream`]).

mod file_wrapper;
mod interpreter;
mod link;
mod params;
mod pep3333;
mod pool;
mod response;
mod stream;

use std::ffi::c_void;
use std::os::unix::ffi::OsStringExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use gateway_abi::{self as abi, slice_from_abi, Bytes};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use thiserror::Error;

use crate::link::{AppLog, Completion, RequestLink};
use crate::params::{ParamError, Params};
use crate::pep3333::{lock, StartResponse};
use crate::pool::{Pool, Submitter};
use crate::response::{Head, OnRelease, OwnedHead, Sent};
use crate::stream::{close_iterable, Pulled, PyBody};

/// The text of a Python exception with its traceback, as `traceback.format_exception` gives
/// it; never `PyErr::print`, which would end the worker on a `SystemExit`.
pub(crate) fn python_error_text(py: Python<'_>, error: &PyErr) -> String {
    let formatted = py
        .import("traceback")
        // Python 3.11 keeps the traceback beside the exception, not always on it.
        .and_then(|traceback| {
            traceback.call_method1(
                "format_exception",
                (error.get_type(py), error.value(py), error.traceback(py)),
            )
        })
        .and_then(|lines| lines.extract::<Vec<String>>());
    match formatted {
        Ok(lines) => lines.concat().trim_end().to_owned(),
        Err(_) => error.to_string(),
    }
}

/// Why a location's init failed.
#[derive(Debug, Error)]
enum InitError {
    #[error("the WSGI bridge needs gateway ABI 1.1 (deferred completion); this module has 1.{0}")]
    OldModule(u32),
    #[error(transparent)]
    Params(#[from] ParamError),
    #[error(transparent)]
    Start(#[from] interpreter::StartError),
    #[error(transparent)]
    Load(#[from] interpreter::LoadError),
    #[error("cannot start the bridge's threads: {0}")]
    Threads(#[from] std::io::Error),
}

struct Instance {
    /// The app callable; an `Arc` so the event loop can hand it to a thread without the GIL.
    app: Arc<Py<PyAny>>,
    log: Arc<AppLog>,
    pool: Pool,
    /// Calls run on nginx's thread pool, inline.
    inline: bool,
    /// The module sends a file body's Content-Length bytes (ABI 1.2).
    file_lengths: bool,
}

fn params_of(setup: &abi::Setup) -> Result<Params, ParamError> {
    // SAFETY: the module passes `params_len` valid pairs, whose bytes are valid during check
    // and init.
    let pairs = unsafe { slice_from_abi(setup.params, setup.params_len) };
    // SAFETY: as above.
    Params::parse(
        pairs
            .iter()
            .map(|pair| unsafe { (pair.name.as_slice(), pair.value.as_slice()) }),
    )
}

fn setup_fail(setup: *const abi::Setup, message: &str) -> i32 {
    // SAFETY: `setup` is the module's, valid during check and init; the message is copied.
    unsafe { ((*setup).fail)(setup, Bytes::new(message.as_bytes())) };
    1
}

unsafe extern "C" fn check(setup: *const abi::Setup) -> i32 {
    // SAFETY: the module passes a valid setup.
    let checked = catch_unwind(|| params_of(unsafe { &*setup }).map(drop));
    match checked {
        Ok(Ok(())) => 0,
        Ok(Err(error)) => setup_fail(setup, &error.to_string()),
        Err(_) => setup_fail(setup, "the WSGI bridge panicked checking its params"),
    }
}

fn make_instance(setup: &abi::Setup) -> Result<Instance, InitError> {
    // SAFETY: the module's host table is static.
    let host: &'static abi::Host = unsafe { &*setup.host };
    if host.abi_minor < 1 {
        return Err(InitError::OldModule(host.abi_minor));
    }
    let params = params_of(setup)?;
    interpreter::ensure_started(params.home.as_deref())?;
    let app = Python::attach(|py| interpreter::load_app(py, &params))?;
    let inline = setup.runs_on == abi::RUNS_ON_THREAD_POOL;
    // Inline calls still need one bridge thread: streams and releases come to the loop.
    let threads = if inline { 1 } else { params.threads };
    let pool = match Pool::start(threads, "wsgi") {
        Ok(pool) => pool,
        Err(error) => {
            Python::attach(|_| drop(app));
            return Err(error.into());
        }
    };
    let log = Arc::new(AppLog::new(host, setup.log_handle));
    let version = Python::version_str()
        .split_whitespace()
        .next()
        .unwrap_or("");
    log.log(
        abi::LOG_INFO,
        &format!(
            "WSGI app {}:{} loaded in worker {} (Python {version}, {threads} bridge thread{})",
            params.module,
            params.callable,
            setup.worker,
            if threads == 1 { "" } else { "s" }
        ),
    );
    Ok(Instance {
        app: Arc::new(app),
        log,
        pool,
        inline,
        file_lengths: host.abi_minor >= 2,
    })
}

unsafe extern "C" fn init(setup: *const abi::Setup, instance: *mut *mut c_void) -> i32 {
    // SAFETY: the module passes a valid setup for the duration of init.
    let made = catch_unwind(AssertUnwindSafe(|| make_instance(unsafe { &*setup })));
    match made {
        Ok(Ok(made)) => {
            // SAFETY: the module passes a writable slot.
            unsafe { instance.write(Box::into_raw(Box::new(made)).cast()) };
            0
        }
        Ok(Err(error)) => setup_fail(setup, &error.to_string()),
        Err(_) => setup_fail(setup, "the WSGI bridge panicked in init"),
    }
}

unsafe extern "C" fn shutdown(instance: *mut c_void) {
    // SAFETY: the instance made by init, handed back once, after its last call completed.
    let instance = unsafe { Box::from_raw(instance.cast::<Instance>()) };
    let Instance {
        app, log, mut pool, ..
    } = *instance;
    // The job holds the instance's reference: the app is released with the GIL, on a bridge
    // thread, like every Python object.
    pool.submitter().submit(Box::new(move |_py| drop(app)));
    pool.stop();
    log.end();
}

/// The module's request, moved to a bridge thread with its call.
struct RequestPtr(*const abi::Request);

// SAFETY: the request and all it points to stay valid until the call completes, from any
// thread; only the job holding the call's `Completion` reads it.
unsafe impl Send for RequestPtr {}

unsafe extern "C" fn call(
    instance: *mut c_void,
    call: *mut abi::Call,
    request: *const abi::Request,
) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the instance made by init, alive until shutdown, after every call.
        let instance = unsafe { &*instance.cast::<Instance>() };
        // Made first: from here a panic still completes the call (as a failure).
        let completion =
            Completion::new(Arc::new(RequestLink::new(call, Arc::clone(&instance.log))));
        let app = Arc::clone(&instance.app);
        let request = RequestPtr(request);
        let pool = instance.pool.submitter();
        let file_lengths = instance.file_lengths;
        if instance.inline {
            Python::attach(|py| run_call(py, &app, request, completion, pool, file_lengths));
        } else {
            let job_pool = pool.clone();
            pool.submit(Box::new(move |py| {
                run_call(py, &app, request, completion, job_pool, file_lengths)
            }));
        }
    }));
}

/// Runs the app for one call and completes it: with bytes, a file, a stream, or a failure.
fn run_call(
    py: Python<'_>,
    app: &Py<PyAny>,
    request: RequestPtr,
    completion: Completion,
    pool: Submitter,
    file_lengths: bool,
) {
    let link = Arc::clone(completion.link());
    // SAFETY: the call is not completed, so its request is valid.
    let environ = match unsafe { pep3333::environ(py, &*request.0, &link) } {
        Ok(environ) => environ,
        Err(error) => return completion.fail(abi::FAILED, &python_error_text(py, &error)),
    };
    let head = Arc::new(Mutex::new(Head::default()));
    let returned = Py::new(
        py,
        StartResponse {
            head: Arc::clone(&head),
        },
    )
    .and_then(|start_response| app.bind(py).call1((environ, start_response)));
    let iterable = match returned {
        Ok(iterable) => iterable,
        Err(error) => {
            let text = python_error_text(py, &error);
            return completion.fail(abi::FAILED, &format!("the WSGI app raised:\n{text}"));
        }
    };
    let sendable = file_wrapper::sendable_path(py, &iterable, &lock(&head), file_lengths);
    if let Some(path) = sendable {
        return respond_file(completion, &head, path, iterable.unbind(), pool);
    }
    if iterable.is_instance_of::<PyList>() || iterable.is_instance_of::<PyTuple>() {
        let joined = join_sequence(&iterable, &head);
        close_iterable(py, &iterable, &link);
        return match joined {
            Ok(body) => respond_bytes(completion, &head, body),
            Err(message) => completion.fail(abi::FAILED, &message),
        };
    }
    let python = match iterable.try_iter() {
        Ok(iterator) => PyBody::new(iterable, iterator.into_any(), Arc::clone(&head)),
        Err(error) => {
            close_iterable(py, &iterable, &link);
            let text = python_error_text(py, &error);
            return completion.fail(
                abi::FAILED,
                &format!("the WSGI app's response is not iterable:\n{text}"),
            );
        }
    };
    // Nothing is sent before the first non-empty chunk (PEP 3333), so an error until then
    // is still a clean 500.
    match python.pull(py, &link) {
        // The first chunk has all the Content-Length allows (Flask's and werkzeug's bodies
        // come so): nothing more is pulled (PEP 3333), so it goes out whole, as a list's does.
        (Pulled::Chunk(first), Some(python)) if lock(&head).full() => {
            python.close(py, &link);
            respond_bytes(completion, &head, first)
        }
        (Pulled::Chunk(first), Some(python)) => match OwnedHead::from_head(&lock(&head)) {
            Ok(owned) => stream::start(completion, owned, first, python, pool),
            Err(error) => {
                python.close(py, &link);
                completion.fail(abi::FAILED, &error.to_string());
            }
        },
        (Pulled::Failed(text), _) => {
            completion.fail(abi::FAILED, &format!("the WSGI app raised:\n{text}"))
        }
        (_, _) => respond_bytes(completion, &head, Vec::new()),
    }
}

/// The items of a list or tuple body, after any `write()` data, as one run of bytes: up to
/// the app's Content-Length, the items past it not even looked at (PEP 3333).
fn join_sequence(iterable: &Bound<'_, PyAny>, head: &Mutex<Head>) -> Result<Vec<u8>, String> {
    let mut body = std::mem::take(&mut lock(head).written);
    let mut items = iterable.try_iter().map_err(|error| error.to_string())?;
    while !lock(head).full() {
        let Some(item) = items.next() else { break };
        let item = item.map_err(|error| error.to_string())?;
        let bytes = item
            .cast::<PyBytes>()
            .map_err(|_| "the WSGI app's body has an item that is not bytes".to_owned())?;
        body.extend_from_slice(lock(head).take(bytes.as_bytes()));
    }
    Ok(body)
}

fn respond_bytes(completion: Completion, head: &Mutex<Head>, mut body: Vec<u8>) {
    let owned = {
        let mut head = lock(head);
        let mut written = std::mem::take(&mut head.written);
        if !written.is_empty() {
            written.append(&mut body);
            body = written;
        }
        OwnedHead::from_head(&head)
    };
    match owned {
        Ok(owned) => {
            let sent = Sent::new(owned, abi::BODY_BYTES, body, None);
            // SAFETY: `sent` is ours until the module releases it.
            unsafe { completion.respond(Sent::response_ptr(sent), false) };
        }
        Err(error) => completion.fail(abi::FAILED, &error.to_string()),
    }
}

/// Answers with the file at `path`, which nginx opens and sends; `wrapper` (the app's
/// iterable) is closed once nginx is done with the response, on a bridge thread.
fn respond_file(
    completion: Completion,
    head: &Mutex<Head>,
    path: PathBuf,
    wrapper: Py<PyAny>,
    pool: Submitter,
) {
    let link = Arc::clone(completion.link());
    let owned = match OwnedHead::from_head(&lock(head)) {
        Ok(owned) => owned,
        Err(error) => {
            pool.submit(Box::new(move |py| {
                close_iterable(py, wrapper.bind(py), &link)
            }));
            return completion.fail(abi::FAILED, &error.to_string());
        }
    };
    let close: OnRelease = Box::new(move || {
        let job_pool = pool.clone();
        job_pool.submit(Box::new(move |py| {
            close_iterable(py, wrapper.bind(py), &link)
        }));
    });
    let sent = Sent::new(
        owned,
        abi::BODY_FILE,
        path.into_os_string().into_vec(),
        Some(close),
    );
    // SAFETY: `sent` is ours until the module releases it.
    unsafe { completion.respond(Sent::response_ptr(sent), false) };
}

#[no_mangle]
#[allow(non_upper_case_globals)]
pub static ngx_gateway_app: abi::AppDescriptor = abi::AppDescriptor {
    magic: abi::MAGIC,
    abi_version: abi::ABI_VERSION,
    abi_minor: abi::ABI_MINOR,
    name: Bytes::from_static(b"wsgi"),
    sdk_version: Bytes::from_static(concat!("gateway-wsgi ", env!("CARGO_PKG_VERSION")).as_bytes()),
    init,
    call,
    shutdown,
    check: Some(check),
    // A call runs to its end once Python has it: CPython cannot stop a thread from outside.
    cancel: None,
};
