//! The call protocol: one app call from the module's side, from pending to completed (by the
//! app, from any thread) to taken by the event loop, and the [`HOST`] table through which the
//! app completes it, wakes its stream and logs.
//!
//! The app's [`abi::Call`] handle is a counted reference to a [`CallState`]. Everything in a
//! state is behind its mutex or immutable, so any thread may complete, wake or log; nginx's
//! own memory is never touched here. When the event loop waits for a call in the background
//! (a call still pending after `call` returned, or a stream that answered `STREAM_PENDING`)
//! it registers a [`Waiter`]; a completion or wake then queues the state for the loop
//! ([`wake`]), which runs the waiter there.

pub mod wake;

use std::ffi::c_void;
use std::ptr::NonNull;
use std::sync::Arc;

use gateway_abi as abi;
use ngx::ffi::{NGX_LOG_DEBUG, NGX_LOG_ERR, NGX_LOG_INFO, NGX_LOG_WARN};
use ngx::ngx_log_error;
use parking_lot::Mutex;

use crate::panic_guard::guard;

/// What became of a call.
pub enum Outcome {
    Pending,
    Responded(AppResponse),
    Failed {
        message: String,
        panicked: bool,
    },
    /// The module stopped waiting (it answered 504): a late completion is only released.
    Abandoned,
    /// Completed after the module stopped waiting; the response, if any, was released.
    CameLate,
    /// The event loop took the completion.
    Taken,
}

/// Runs on the event loop when the call it waits for completes or its stream is woken.
#[derive(Clone, Copy)]
pub struct Waiter {
    pub resume: fn(NonNull<c_void>),
    pub data: NonNull<c_void>,
}

// SAFETY: a waiter is registered, taken and run on the event loop only; other threads only
// see whether there is one.
unsafe impl Send for Waiter {}

struct Inner {
    outcome: Outcome,
    waiter: Option<Waiter>,
    /// The state is in the wake queue already.
    queued: bool,
    /// A wake came while no waiter was registered: the next registration finds it.
    woken: bool,
    /// The app has the handle: it was called with it (or is being called).
    delivered: bool,
}

/// Longest request id kept for log lines (nginx's are 32 hex digits).
const REQUEST_ID_MAX: usize = 32;

/// The module's side of one app call (or, with no request id, of an app's log handle).
pub struct CallState {
    inner: Mutex<Inner>,
    app_name: Arc<str>,
    request_id: [u8; REQUEST_ID_MAX],
    request_id_len: usize,
}

impl CallState {
    fn new(
        app_name: Arc<str>,
        request_id: &[u8],
        outcome: Outcome,
        delivered: bool,
    ) -> Arc<CallState> {
        let mut id = [0; REQUEST_ID_MAX];
        let len = request_id.len().min(REQUEST_ID_MAX);
        id[..len].copy_from_slice(&request_id[..len]);
        Arc::new(CallState {
            inner: Mutex::new(Inner {
                outcome,
                waiter: None,
                queued: false,
                woken: false,
                delivered,
            }),
            app_name,
            request_id: id,
            request_id_len: len,
        })
    }

    /// A pending call, and the handle for the app, which holds its own reference; `delivered`
    /// when the app gets the handle right away, else the thread that calls it says so with
    /// [`CallState::deliver`].
    pub fn start(
        app_name: Arc<str>,
        request_id: &[u8],
        delivered: bool,
    ) -> (Arc<CallState>, *mut abi::Call) {
        let call = CallState::new(app_name, request_id, Outcome::Pending, delivered);
        let handle = Arc::into_raw(Arc::clone(&call))
            .cast_mut()
            .cast::<abi::Call>();
        (call, handle)
    }

    /// An app's handle for [`abi::Host::log`] outside any request; never completed.
    pub fn log_handle(app_name: Arc<str>) -> Arc<CallState> {
        CallState::new(app_name, b"", Outcome::Abandoned, false)
    }

    /// A state that only carries wakes, for the module's own threads: each
    /// [`CallState::wake`] runs the [`Waiter`] registered with [`CallState::wait_for_wake`]
    /// on the event loop.
    pub fn signal() -> Arc<CallState> {
        CallState::new(Arc::from(""), b"", Outcome::Abandoned, false)
    }

    /// The handle the app gets for this state, as long as the state lives.
    pub fn as_handle(self: &Arc<CallState>) -> *mut abi::Call {
        Arc::as_ptr(self).cast_mut().cast()
    }

    /// Takes the completion if the call has one; else registers `waiter` to run once it
    /// has (or once the module stops waiting and a late completion arrives), and returns
    /// `None`.
    pub fn take_or_wait(&self, waiter: Waiter) -> Option<Outcome> {
        let mut inner = self.inner.lock();
        match inner.outcome {
            Outcome::Pending | Outcome::Abandoned => {
                inner.waiter = Some(waiter);
                None
            }
            _ => Some(std::mem::replace(&mut inner.outcome, Outcome::Taken)),
        }
    }

    /// Takes the completion, or `Pending` while there is none.
    pub fn take(&self) -> Outcome {
        let mut inner = self.inner.lock();
        match inner.outcome {
            Outcome::Pending => Outcome::Pending,
            _ => std::mem::replace(&mut inner.outcome, Outcome::Taken),
        }
    }

    /// The app is about to be called with the handle; false if the module stopped waiting
    /// meanwhile, and the app is not to be called at all.
    pub fn deliver(&self) -> bool {
        let mut inner = self.inner.lock();
        if matches!(inner.outcome, Outcome::Abandoned) {
            return false;
        }
        inner.delivered = true;
        true
    }

    /// Whether the app got the handle; settled for good once the call is abandoned.
    pub fn delivered(&self) -> bool {
        self.inner.lock().delivered
    }

    /// Stops waiting for a call that has not completed; false if it already has. A waiter
    /// stays registered, so a late completion still reaches the loop.
    pub fn abandon_if_pending(&self) -> bool {
        let mut inner = self.inner.lock();
        let pending = matches!(inner.outcome, Outcome::Pending);
        if pending {
            inner.outcome = Outcome::Abandoned;
        }
        pending
    }

    /// Registers `waiter` for the next [`abi::Host::wake`]; false if a wake already came,
    /// which this consumes: the stream is to be pulled again now.
    pub fn wait_for_wake(&self, waiter: Waiter) -> bool {
        let mut inner = self.inner.lock();
        if std::mem::take(&mut inner.woken) {
            return false;
        }
        inner.waiter = Some(waiter);
        true
    }

    /// Unregisters the waiter, whose memory is about to go: nothing runs it after this.
    pub fn forget_waiter(&self) {
        self.inner.lock().waiter = None;
    }

    /// Queues the state for the event loop if a waiter is registered; true if it was.
    fn notify_waiter(self: &Arc<CallState>, inner: &mut Inner) -> bool {
        if inner.waiter.is_none() {
            return false;
        }
        if !inner.queued {
            inner.queued = true;
            wake::queue(Arc::clone(self));
        }
        true
    }

    /// On the event loop, for a state taken from the wake queue: the waiter to run, if any.
    fn dequeue(&self) -> Option<Waiter> {
        let mut inner = self.inner.lock();
        inner.queued = false;
        inner.waiter.take()
    }

    fn complete(self: Arc<CallState>, completion: Outcome) {
        let late = {
            let mut inner = self.inner.lock();
            let late = match inner.outcome {
                Outcome::Pending => {
                    inner.outcome = completion;
                    None
                }
                Outcome::Abandoned => {
                    inner.outcome = Outcome::CameLate;
                    Some(completion)
                }
                _ => Some(completion),
            };
            self.notify_waiter(&mut inner);
            late
        };
        // Released outside the lock: the release runs app code, which may log or wake.
        drop(late);
    }

    /// Has the loop run the registered waiter, or the next registration find the wake.
    pub fn wake(self: &Arc<CallState>) {
        let mut inner = self.inner.lock();
        if !self.notify_waiter(&mut inner) {
            inner.woken = true;
        }
    }

    fn request_id(&self) -> &[u8] {
        &self.request_id[..self.request_id_len]
    }
}

/// A response handed over by the app, owned by the module until it is dropped, which calls
/// the app's release function: exactly once, whichever way the response goes. It keeps the
/// call's state alive until then: the app may wake and log through the call's handle until
/// its release has returned.
pub struct AppResponse {
    response: NonNull<abi::Response>,
    call: Arc<CallState>,
}

// SAFETY: the ABI lets the module read and release a response from any thread.
unsafe impl Send for AppResponse {}

impl AppResponse {
    pub fn get(&self) -> &abi::Response {
        // SAFETY: the app keeps the response valid and unchanged until it is released.
        unsafe { self.response.as_ref() }
    }

    /// The state of the call this answers, alive as long as the response.
    pub fn call(&self) -> &Arc<CallState> {
        &self.call
    }
}

impl Drop for AppResponse {
    fn drop(&mut self) {
        let response = self.get();
        // SAFETY: released exactly once, as the response is dropped; the state (`call`) is
        // dropped after, so the app's handle outlives its release.
        unsafe { (response.release)(response.owner) }
    }
}

pub static HOST: abi::Host = abi::Host {
    abi_minor: abi::ABI_MINOR,
    respond: host_respond,
    fail: host_fail,
    wake: host_wake,
    log: host_log,
};

/// Takes back the reference the app's handle holds.
///
/// # Safety
/// `call` must be a handle from [`CallState::start`], not yet completed.
pub unsafe fn take_handle(call: *mut abi::Call) -> Arc<CallState> {
    // SAFETY: per the caller, `call` came from `Arc::into_raw` and is consumed once.
    unsafe { Arc::from_raw(call.cast_const().cast::<CallState>()) }
}

/// Completes a call whose app never got the handle, as the module stopped waiting first (its
/// deadline passed while it waited for a thread): the loop's waiter runs and ends the call.
///
/// # Safety
/// `call` must be a handle from [`CallState::start`] that the app never got.
pub unsafe fn complete_unrun(call: *mut abi::Call) {
    // SAFETY: per the caller, the handle is consumed here, once.
    unsafe { take_handle(call) }.complete(Outcome::Abandoned);
}

/// Borrows the state behind a handle the app still may use (for wake and log).
///
/// # Safety
/// `call` must be a live handle: a call's, not completed or with its streamed response not
/// yet released, or an app's log handle.
unsafe fn borrow_handle(call: *mut abi::Call) -> std::mem::ManuallyDrop<Arc<CallState>> {
    // SAFETY: per the caller, some reference keeps the state alive; this one is never dropped.
    std::mem::ManuallyDrop::new(unsafe { Arc::from_raw(call.cast_const().cast::<CallState>()) })
}

unsafe extern "C" fn host_respond(call: *mut abi::Call, response: *const abi::Response) {
    let log = ngx::log::ngx_cycle_log().as_ptr();
    guard(log, "respond", (), || {
        // SAFETY: the app completes each call once, with its own handle.
        let call = unsafe { take_handle(call) };
        let completion = match NonNull::new(response.cast_mut()) {
            Some(response) => Outcome::Responded(AppResponse {
                response,
                call: Arc::clone(&call),
            }),
            None => Outcome::Failed {
                message: "the app responded with a null response".into(),
                panicked: false,
            },
        };
        call.complete(completion);
    })
}

unsafe extern "C" fn host_fail(call: *mut abi::Call, cause: u32, message: abi::Bytes) {
    let log = ngx::log::ngx_cycle_log().as_ptr();
    guard(log, "fail", (), || {
        // SAFETY: the app completes each call once, with its own handle.
        let call = unsafe { take_handle(call) };
        // SAFETY: the ABI makes `message` valid for the duration of this call.
        let message = String::from_utf8_lossy(unsafe { message.as_slice() }).into_owned();
        call.complete(Outcome::Failed {
            message,
            panicked: cause == abi::PANICKED,
        });
    })
}

unsafe extern "C" fn host_wake(call: *mut abi::Call) {
    let log = ngx::log::ngx_cycle_log().as_ptr();
    guard(log, "wake", (), || {
        // SAFETY: the ABI keeps the handle of a streamed response valid until its release.
        unsafe { borrow_handle(call) }.wake();
    })
}

unsafe extern "C" fn host_log(call: *mut abi::Call, level: u32, message: abi::Bytes) {
    // Any thread: only the cycle's log, which nginx's own thread-pool code writes to as well;
    // a request's log would run nginx's request-context handler off the loop.
    let log = ngx::log::ngx_cycle_log().as_ptr();
    guard(log, "log", (), || {
        let level = match level {
            abi::LOG_ERROR => NGX_LOG_ERR,
            abi::LOG_WARN => NGX_LOG_WARN,
            abi::LOG_INFO => NGX_LOG_INFO,
            abi::LOG_DEBUG | abi::LOG_TRACE => NGX_LOG_DEBUG,
            _ => NGX_LOG_ERR,
        };
        // SAFETY: the ABI makes `message` valid for the duration of this call.
        let message = String::from_utf8_lossy(unsafe { message.as_slice() });
        let Some(call) = NonNull::new(call) else {
            ngx_log_error!(level as usize, log, "gateway: app: {message}");
            return;
        };
        // SAFETY: the ABI asks for a live handle.
        let state = unsafe { borrow_handle(call.as_ptr()) };
        let name = &state.app_name;
        match state.request_id() {
            b"" => {
                ngx_log_error!(level as usize, log, "gateway: app \"{name}\" {message}");
            }
            id => {
                let id = String::from_utf8_lossy(id);
                ngx_log_error!(
                    level as usize,
                    log,
                    "gateway: app \"{name}\" {message} (request {id})"
                );
            }
        }
    })
}
