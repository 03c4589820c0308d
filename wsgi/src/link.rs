//! What a request's Python objects may still reach of the module, and for how long: the
//! body until the call completes, the call's handle (for `Host::log`) until then or, for a
//! stream, until its release; and the completion itself, exactly once.

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use gateway_abi::{self as abi, Bytes};

/// The module's handle on a call (or a log handle), moved to a bridge thread.
#[derive(Clone, Copy)]
pub struct CallPtr(pub *mut abi::Call);

// SAFETY: the ABI lets an app complete, wake and log a call from any thread.
unsafe impl Send for CallPtr {}
// SAFETY: the handle is only passed to host functions, which take it from any thread.
unsafe impl Sync for CallPtr {}

/// One instance's logging outside requests: `Setup::log_handle`, valid until shutdown.
pub struct AppLog {
    pub host: &'static abi::Host,
    handle: CallPtr,
    alive: RwLock<bool>,
}

impl AppLog {
    pub fn new(host: &'static abi::Host, handle: *mut abi::Call) -> AppLog {
        AppLog {
            host,
            handle: CallPtr(handle),
            alive: RwLock::new(true),
        }
    }

    pub fn log(&self, level: u32, message: &str) {
        let alive = read(&self.alive);
        // A Python object that outlives the instance (an app may keep anything) still logs,
        // without naming the app: the module takes a null handle.
        let handle = if *alive {
            self.handle.0
        } else {
            std::ptr::null_mut()
        };
        // SAFETY: the handle is valid while `alive` (read-locked) says so, or null; the
        // message is copied.
        unsafe { (self.host.log)(handle, level, Bytes::new(message.as_bytes())) };
    }

    /// At shutdown: the handle goes away.
    pub fn end(&self) {
        *write(&self.alive) = false;
    }
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Clone, Copy)]
struct Live {
    body: bool,
    handle: bool,
}

/// One request as its Python objects (wsgi.input, wsgi.errors, a stream) reach it.
pub struct RequestLink {
    call: CallPtr,
    app: Arc<AppLog>,
    live: RwLock<Live>,
}

impl RequestLink {
    pub fn new(call: *mut abi::Call, app: Arc<AppLog>) -> RequestLink {
        RequestLink {
            call: CallPtr(call),
            app,
            live: RwLock::new(Live {
                body: true,
                handle: true,
            }),
        }
    }

    pub fn host(&self) -> &'static abi::Host {
        self.app.host
    }

    /// Runs `read` if the request's body is still there (the call is not completed), with
    /// completion held off meanwhile.
    pub fn with_body<T>(&self, read: impl FnOnce() -> T) -> Option<T> {
        let live = read_live(self);
        live.body.then(read)
    }

    /// Logs with the request id while the handle is valid, else as the app.
    pub fn log(&self, level: u32, message: &str) {
        let live = read_live(self);
        if live.handle {
            // SAFETY: the handle is valid while `live.handle` (read-locked) says so; the
            // message is copied.
            unsafe { (self.host().log)(self.call.0, level, Bytes::new(message.as_bytes())) };
        } else {
            self.app.log(level, message);
        }
    }

    /// Runs `wake` unless the stream's release ended the handle; the release waits for it.
    pub fn wake(&self) {
        let live = read_live(self);
        if live.handle {
            // SAFETY: as in `log`.
            unsafe { (self.host().wake)(self.call.0) };
        }
    }

    /// The stream was released: the handle is gone.
    pub fn end_handle(&self) {
        write(&self.live).handle = false;
    }
}

fn read_live(link: &RequestLink) -> Live {
    *read(&link.live)
}

/// Completes a call exactly once: by `respond` or `fail`, or, if a panic drops it first, as
/// a failure, so that no request waits for its `gateway_timeout`.
pub struct Completion {
    link: Arc<RequestLink>,
    done: bool,
}

impl Completion {
    pub fn new(link: Arc<RequestLink>) -> Completion {
        Completion { link, done: false }
    }

    pub fn link(&self) -> &Arc<RequestLink> {
        &self.link
    }

    /// Hands `response` over; `streamed` keeps the handle valid for `log` and `wake` until
    /// the response's release.
    ///
    /// # Safety
    /// `response` and all it points to must stay valid until the module releases it.
    pub unsafe fn respond(mut self, response: *const abi::Response, streamed: bool) {
        self.done = true;
        // The body goes with the completion; no reader may be inside it then.
        let mut live = write(&self.link.live);
        live.body = false;
        live.handle = streamed;
        drop(live);
        // SAFETY: not completed yet (`done` was false); the caller vouches for `response`.
        unsafe { (self.link.host().respond)(self.link.call.0, response) };
    }

    pub fn fail(mut self, cause: u32, message: &str) {
        self.done = true;
        self.fail_now(cause, message);
    }

    fn fail_now(&self, cause: u32, message: &str) {
        *write(&self.link.live) = Live {
            body: false,
            handle: false,
        };
        // SAFETY: not completed yet; the message is copied.
        unsafe { (self.link.host().fail)(self.link.call.0, cause, Bytes::new(message.as_bytes())) };
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        if !self.done {
            self.fail_now(
                abi::PANICKED,
                "the WSGI bridge panicked before completing the call",
            );
        }
    }
}
