//! The app ABI: the whole contract between the nginx module and an app library.
//!
//! An app library and the module are built separately, each with its own copy of this file, so
//! only C types cross: `#[repr(C)]` structs, byte slices and `extern "C"` function pointers.
//!
//! # Versioning
//! - [`ABI_VERSION`] changes only on an incompatible change; the module refuses an app whose
//!   version differs from its own, at configuration time.
//! - A compatible addition bumps [`ABI_MINOR`] and only appends fields at the end of a struct.
//!   Each side reads a field added in minor N only if the other side declares a minor >= N: the
//!   module learns the app's minor from [`AppDescriptor::abi_minor`], the app learns the
//!   module's from [`Host::abi_minor`]. The module refuses an app that declares a newer minor.
//!
//! # Instances
//! Each nginx worker process (never the master: threads and sockets must not cross a fork)
//! calls [`AppDescriptor::init`] once for every location that mounts the app, with that
//! location's settings, before its first request. The instance it makes is passed to every
//! call of that location, possibly from several threads at once, and handed to
//! [`AppDescriptor::shutdown`] when the worker exits. A failed init leaves the location
//! answering 503.
//!
//! # One call
//! For every request the module reads the whole body, then calls [`AppDescriptor::call`] with
//! the instance, a host-owned [`Call`] handle and a [`Request`]: on the nginx event loop, or
//! on a thread of the location's nginx thread pool (`gateway_thread_pool`). The app must then
//! complete the call exactly once, with [`Host::respond`] or [`Host::fail`]. It may do so
//! before `call` returns, or later and from any thread (since 1.1 the module keeps this
//! promise for every location: a call still pending when `call` returns holds its request
//! until it completes, answered 504 at `gateway_timeout`). Everything `request` points to
//! stays valid until the call is completed, and (since 1.1) for a call completed with
//! [`Host::respond`] until that response's `release` (a stream may read the request body as it
//! goes). The handle must not be used after completion, except for [`Host::wake`] and
//! [`Host::log`] while a streamed response is alive (see [`Host::wake`]). The module owns all the nginx-side work; completing from another thread
//! only hands the response over, nginx itself is touched on its own loop.
//!
//! A [`Response`] and everything it points to belong to the app and must stay valid and
//! unchanged until the module calls its `release` function, exactly once. `release` runs on
//! the nginx event loop, except for a response to a call the module had already stopped
//! waiting for (it answered 504): that one is released at once, on the thread that called
//! [`Host::respond`], before `respond` returns. The module sends body bytes straight from the
//! app's memory instead of copying them.
//!
//! # 1.1 additions
//! [`STREAM_PENDING`] with [`Host::wake`], [`Host::log`], how the instance runs
//! ([`Setup::runs_on`], [`Setup::threads`], [`Setup::worker`]), a handle for logging outside
//! requests ([`Setup::log_handle`]), the configuration-time [`AppDescriptor::check`], and
//! [`AppDescriptor::cancel`] for calls the module stopped waiting for.
//!
//! # 1.2 additions
//! nginx's prefix ([`Setup::prefix`]), against which an app resolves the relative paths of
//! its settings and puts files of its own, as nginx does for its own paths; a
//! `Content-Length` header on a [`BODY_FILE`] response sends that much of the file.

#![warn(missing_docs)]

pub mod wire;

use std::ffi::c_void;

/// Name of the exported static [`AppDescriptor`] that makes a library an app.
pub const ENTRY_SYMBOL: &str = "ngx_gateway_app";

/// First bytes of every [`AppDescriptor`], so a stray symbol of that name is told apart.
pub const MAGIC: [u8; 8] = *b"NGXGWAPP";

/// Incompatible-change version of this ABI.
pub const ABI_VERSION: u32 = 1;

/// Compatible-addition level of this ABI within [`ABI_VERSION`].
pub const ABI_MINOR: u32 = 2;

/// Body kind of [`Response::body_kind`]: the body is [`Response::body`], sent as is.
pub const BODY_BYTES: u32 = 0;

/// Body kind: the body is pulled from [`Response::stream`] with [`Response::stream_next`],
/// one chunk at a time, only when nginx can send more. Without a `Content-Length` header the
/// response is chunked (HTTP/1.1) or ends by closing the connection (HTTP/1.0).
pub const BODY_STREAM: u32 = 1;

/// Body kind: [`Response::body`] is the absolute path of a file that nginx sends itself
/// (sendfile, ranges, conditional requests); a missing file is a 404, an unreadable one a 403.
/// With a `Content-Length` header (1.2) the body is that many bytes from the file's start
/// (ranges and the ETag are of those); one past the file's end is a 500. A module of 1.1 or
/// older sends the whole file whatever the header says.
pub const BODY_FILE: u32 = 2;

/// Body kind: no body; [`Response::body`] is a URI (with an optional `?query`) or a named
/// location (`@name`) that nginx redirects the request to internally, as with
/// X-Accel-Redirect. The response's status and headers are not sent.
pub const BODY_REDIRECT: u32 = 3;

/// [`Host::fail`]: the app reported an error.
pub const FAILED: u32 = 0;
/// [`Host::fail`]: the app panicked.
pub const PANICKED: u32 = 1;

/// [`Response::stream_next`] filled in a chunk.
pub const STREAM_CHUNK: i32 = 0;
/// [`Response::stream_next`]: the stream ended; the chunk is not used.
pub const STREAM_END: i32 = 1;
/// [`Response::stream_next`]: the stream failed; the chunk holds the message for the log. The
/// client's response is cut short, since its status and headers are already sent.
pub const STREAM_ERROR: i32 = 2;
/// [`Response::stream_next`]: the stream panicked; as [`STREAM_ERROR`] otherwise.
pub const STREAM_PANIC: i32 = 3;
/// [`Response::stream_next`] (1.1): no chunk is ready yet; the chunk is not used. The module
/// stops pulling until the app calls [`Host::wake`] with the call's handle, then pulls again.
/// Only for a module whose [`Host::abi_minor`] is at least 1.
pub const STREAM_PENDING: i32 = 4;

/// [`Setup::runs_on`]: the instance's calls (and stream pulls) run on the nginx event loop,
/// which they must never block.
pub const RUNS_ON_EVENT_LOOP: u32 = 0;
/// [`Setup::runs_on`]: the instance's calls (and stream pulls) run on the threads of an nginx
/// thread pool, [`Setup::threads`] of them.
pub const RUNS_ON_THREAD_POOL: u32 = 1;

/// [`Setup::worker`] in [`AppDescriptor::check`], which runs in no worker.
pub const NO_WORKER: u32 = u32::MAX;

/// [`Host::log`] levels, as the `log` and `tracing` crates number them.
pub const LOG_ERROR: u32 = 1;
/// [`Host::log`]: a warning.
pub const LOG_WARN: u32 = 2;
/// [`Host::log`]: information.
pub const LOG_INFO: u32 = 3;
/// [`Host::log`]: debugging detail, logged only by an nginx with `error_log ... debug`.
pub const LOG_DEBUG: u32 = 4;
/// [`Host::log`]: finer detail still; logged as [`LOG_DEBUG`].
pub const LOG_TRACE: u32 = 5;

/// A borrowed run of bytes; `ptr` may be null when `len` is 0.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Bytes {
    /// The first byte.
    pub ptr: *const u8,
    /// Number of bytes.
    pub len: usize,
}

/// A name and its value: an environ entry or a response header.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Pair {
    /// The name: an environ key, a header name or a setting name.
    pub name: Bytes,
    /// The value, as raw bytes.
    pub value: Bytes,
}

/// The module's handle on one app call; opaque to the app.
#[repr(C)]
pub struct Call {
    _opaque: [u8; 0],
}

/// The static an app library exports as [`ENTRY_SYMBOL`]. Reading it runs no app code, so the
/// nginx master can check an app at configuration time without executing it.
#[repr(C)]
pub struct AppDescriptor {
    /// Always [`MAGIC`].
    pub magic: [u8; 8],
    /// Read before anything else and refused unless equal to the module's [`ABI_VERSION`].
    pub abi_version: u32,
    /// The app's [`ABI_MINOR`]: which appended fields the app knows.
    pub abi_minor: u32,
    /// The app's name (its crate name), for logs.
    pub name: Bytes,
    /// Version of the SDK the app was built with, for logs.
    pub sdk_version: Bytes,
    /// Makes an instance: stores it in `instance` and returns 0, or calls [`Setup::fail`] and
    /// returns non-zero.
    pub init: unsafe extern "C" fn(setup: *const Setup, instance: *mut *mut c_void) -> i32,
    /// Handles one request; see the module documentation for the completion rules.
    pub call: unsafe extern "C" fn(instance: *mut c_void, call: *mut Call, request: *const Request),
    /// Ends an instance when its worker exits, after its last call completed.
    pub shutdown: unsafe extern "C" fn(instance: *mut c_void),
    /// (1.1, optional) Checks a location's settings when nginx reads its configuration
    /// (`nginx -t`, start, reload), in the nginx master: returns 0 if they are fine, else calls
    /// [`Setup::fail`] and returns non-zero, and nginx refuses the configuration with the
    /// message and the `gateway_app` line. It must have no side effects: no threads, no
    /// interpreter, no files written, nothing kept. [`Setup::worker`] is [`NO_WORKER`].
    pub check: Option<unsafe extern "C" fn(setup: *const Setup) -> i32>,
    /// (1.1, optional) The module stopped waiting for `call`, which the app has not completed:
    /// its `gateway_timeout` passed (the client got a 504) or the client went away. The app
    /// should stop working on it (drop its future, say) and complete it soon, any way it
    /// likes: the completion is only released. Called on the nginx event loop, at most once a
    /// call; the handle stays valid until the app completes the call. It may come while the
    /// app is completing the call on another thread, and is then to be ignored.
    pub cancel: Option<unsafe extern "C" fn(instance: *mut c_void, call: *mut Call)>,
}

/// What [`AppDescriptor::init`] gets.
#[repr(C)]
pub struct Setup {
    /// The module's functions: a static table, valid as long as the library is loaded.
    pub host: *const Host,
    /// The location's `gateway_app_param NAME VALUE` settings, in order.
    pub params: *const Pair,
    /// Number of entries at `params`.
    pub params_len: usize,
    /// Records why init failed, for the error log; the message is copied.
    pub fail: unsafe extern "C" fn(setup: *const Setup, message: Bytes),
    /// The module's own, for `fail`.
    pub context: *mut c_void,
    /// (1.1) [`RUNS_ON_EVENT_LOOP`] or [`RUNS_ON_THREAD_POOL`].
    pub runs_on: u32,
    /// (1.1) How many threads the location's thread pool has; 0 on the event loop.
    pub threads: u32,
    /// (1.1) The nginx worker's number, from 0 (`worker_processes` - 1 at most), or
    /// [`NO_WORKER`] in [`AppDescriptor::check`].
    pub worker: u32,
    /// (1.1) A handle for [`Host::log`] outside any request: lines name the app, without a
    /// request id. Valid until `shutdown` returns; never completed.
    pub log_handle: *mut Call,
    /// (1.2) nginx's prefix (`-p`, else the one it was built with), usually ending in `/`:
    /// where nginx resolves the relative paths of its own configuration. Valid for the
    /// duration of the call; the app copies what it keeps.
    pub prefix: Bytes,
}

/// One request, as the module hands it to the app.
#[repr(C)]
pub struct Request {
    /// The module's functions, with which the app completes the call; a static table.
    pub host: *const Host,
    /// The gateway environ: CGI/WSGI-style names and their raw byte values.
    pub environ: *const Pair,
    /// Number of entries at `environ`.
    pub environ_len: usize,
    /// The whole request body, already read by nginx, as consecutive segments.
    pub body: *const BodySegment,
    /// Number of segments at `body`.
    pub body_len: usize,
}

/// One run of the request body: bytes in memory, or a range of a file nginx holds open (a body
/// too large for nginx's buffer is spilled to a temporary file). The app reads a file segment
/// with positioned reads (`pread`), from any thread, and never closes the descriptor.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct BodySegment {
    /// -1 for a memory segment, else the file descriptor holding this segment.
    pub fd: i32,
    /// Start of the segment in the file; 0 for memory segments.
    pub offset: u64,
    /// Length of the segment in bytes.
    pub len: u64,
    /// Start of a memory segment; null for file segments.
    pub data: *const u8,
}

/// Functions the module provides to the app.
#[repr(C)]
pub struct Host {
    /// The module's [`ABI_MINOR`].
    pub abi_minor: u32,
    /// Completes `call` with `response`; the module takes over `response` until its release.
    pub respond: unsafe extern "C" fn(call: *mut Call, response: *const Response),
    /// Completes `call` as failed: the client gets a 500 and `message` goes to the error log.
    /// `message` is copied before this returns. `cause` is [`FAILED`] or [`PANICKED`], for the
    /// module's counters.
    pub fail: unsafe extern "C" fn(call: *mut Call, cause: u32, message: Bytes),
    /// (1.1) Wakes the stream of `call` after [`Response::stream_next`] answered
    /// [`STREAM_PENDING`]: the module pulls again on its event loop (or thread pool). Callable
    /// from any thread, also before `stream_next` returned (the wake is then kept), and cheap
    /// when repeated. The handle of a call answered with a stream stays valid for this (and
    /// [`Host::log`]) until the response's `release` is called; the app must not let a wake
    /// run after its `release` returned.
    pub wake: unsafe extern "C" fn(call: *mut Call),
    /// (1.1) Writes `message` to nginx's error log at `level` ([`LOG_ERROR`] ... [`LOG_TRACE`]),
    /// naming the app and, for a request's handle, the request id; from any thread. `call` is
    /// a request's handle (valid as for [`Host::wake`]), [`Setup::log_handle`], or null.
    /// `message` is copied before this returns.
    pub log: unsafe extern "C" fn(call: *mut Call, level: u32, message: Bytes),
}

/// What the app answers.
#[repr(C)]
pub struct Response {
    /// The HTTP status; the module refuses a response whose status is outside 200..=999 and
    /// answers 500 instead.
    pub status: u16,
    /// Reason phrase for the status line; empty for nginx's standard one.
    pub reason: Bytes,
    /// The response headers, in order; the module refuses a response with an invalid or
    /// hop-by-hop header (see [`wire::check_response_header`](crate::wire::check_response_header)).
    pub headers: *const Pair,
    /// Number of entries at `headers`.
    pub headers_len: usize,
    /// What the body is: [`BODY_BYTES`], [`BODY_STREAM`], [`BODY_FILE`] or [`BODY_REDIRECT`].
    pub body_kind: u32,
    /// The body bytes, file path or redirect target, by `body_kind`.
    pub body: Bytes,
    /// Passed to `release` once the module no longer needs anything this response points to;
    /// releasing a stream also ends it (the app drops its state).
    pub owner: *mut c_void,
    /// Frees the response: called with `owner` exactly once, when the module is done with it
    /// (on the event loop, or see the module documentation for a response that came too late).
    pub release: unsafe extern "C" fn(owner: *mut c_void),
    /// For [`BODY_STREAM`]: passed to `stream_next`.
    pub stream: *mut c_void,
    /// For [`BODY_STREAM`]: fills `chunk` and returns [`STREAM_CHUNK`], or returns
    /// [`STREAM_END`], [`STREAM_ERROR`], [`STREAM_PANIC`] or (1.1) [`STREAM_PENDING`]. Called
    /// where the app's calls run (the event loop, or a thread of the location's pool), one
    /// call at a time, never again after END, ERROR or PANIC; a chunk's bytes stay valid
    /// until the next call or the release.
    pub stream_next: Option<unsafe extern "C" fn(stream: *mut c_void, chunk: *mut Chunk) -> i32>,
}

/// One piece of a streamed body.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Chunk {
    /// The bytes to send.
    pub data: Bytes,
    /// Non-zero: send everything so far to the client now instead of waiting to fill a packet
    /// (nginx does this for every chunk of a `text/event-stream`).
    pub flush: u32,
}

// SAFETY: the descriptor is immutable and points only to static data of its library.
unsafe impl Sync for AppDescriptor {}

impl Bytes {
    /// No bytes: a null pointer and length 0.
    pub const EMPTY: Bytes = Bytes {
        ptr: std::ptr::null(),
        len: 0,
    };

    /// Borrows static bytes; a `const fn`, so it can fill the exported [`AppDescriptor`].
    pub const fn from_static(bytes: &'static [u8]) -> Bytes {
        Bytes {
            ptr: bytes.as_ptr(),
            len: bytes.len(),
        }
    }

    /// Borrows `bytes`, which the caller must keep alive and unchanged for as long as the other
    /// side may read them.
    pub fn new(bytes: &[u8]) -> Bytes {
        Bytes {
            ptr: bytes.as_ptr(),
            len: bytes.len(),
        }
    }

    /// The bytes as a slice; empty when `len` is 0, whatever `ptr` is.
    ///
    /// # Safety
    /// `ptr` must point to `len` readable bytes (or `len` be 0) for the returned lifetime.
    pub unsafe fn as_slice<'a>(self) -> &'a [u8] {
        if self.len == 0 {
            &[]
        } else {
            // SAFETY: non-empty, and the caller vouches for `ptr` and `len`.
            unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
        }
    }
}

/// Builds a slice from an ABI pointer and length, accepting a null pointer for an empty run.
///
/// # Safety
/// `ptr` must point to `len` initialised values (or `len` be 0) for the returned lifetime.
pub unsafe fn slice_from_abi<'a, T>(ptr: *const T, len: usize) -> &'a [T] {
    if len == 0 {
        &[]
    } else {
        // SAFETY: non-empty, and the caller vouches for `ptr` and `len`.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }
}
