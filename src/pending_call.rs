//! Calls the event loop does not wait for on its stack: a call running on a thread pool, or
//! one the app completes later, from any thread (ABI: "before `call` returns, or later").
//!
//! Such a call lives in its request's pool with the request held ([`request_hold`]): the app
//! may read the environ and the body until it completes, whatever the client does. Its
//! `gateway_timeout` deadline answers 504 and lets the call finish detached. Any end nginx puts
//! to the request meanwhile (a client gone, `worker_shutdown_timeout`, an error elsewhere) is a
//! termination, which runs the request's cleanups: the call's cleanup leaves it the same way.
//! Either way the app hears of it through its `cancel` entry (ABI 1.1), and the request is
//! given back only once the app is done with it. The completion reaches the loop through the
//! call's waiter ([`crate::call::wake`]), and is sent (or dropped) there.

use std::ffi::c_void;
use std::mem::offset_of;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use gateway_abi as abi;
use ngx::ffi::{
    ngx_add_timer, ngx_del_timer, ngx_event_t, ngx_handle_read_event, ngx_http_block_reading,
    ngx_http_cleanup_add, ngx_http_cleanup_t, ngx_http_request_t, ngx_http_test_reading, ngx_int_t,
    ngx_pcalloc, NGX_DONE, NGX_HTTP_GATEWAY_TIME_OUT, NGX_HTTP_SERVICE_UNAVAILABLE, NGX_LOG_INFO,
};

use crate::app_loader::App;
use crate::app_log;
use crate::call::{self, CallState, Outcome, Waiter};
use crate::call_record::CallRecord;
use crate::conf::LocationConf;
use crate::panic_guard::guard;
use crate::request_hold::{self, finalize_from_event, Unblocked, KEEP_WAITING_MS};
use crate::response::{self, INTERNAL_SERVER_ERROR};

/// Calls this worker stopped waiting for; they finish detached.
static TIMED_OUT: AtomicU64 = AtomicU64::new(0);

/// One app call, ready to run anywhere.
pub struct Call {
    pub app: Arc<App>,
    pub instance: *mut c_void,
    /// In the request's pool, which outlives the call.
    pub request: *const abi::Request,
    pub state: Arc<CallState>,
    /// The app's reference to `state`, consumed when it completes the call.
    pub handle: *mut abi::Call,
}

/// A call held in its request's pool.
pub struct PendingCall {
    pub call: Call,
    pub request: *mut ngx_http_request_t,
    /// The location's configuration, for its counters and slow-request threshold.
    conf: *const LocationConf,
    /// The request's cleanup that stops waiting if nginx terminates the request; disarmed by
    /// `done`, before the call is moved out.
    ended: *mut ngx_http_cleanup_t,
    deadline: ngx_event_t,
    timed_out: bool,
    /// The module answered this status for a call that never ran.
    refused: Option<ngx_int_t>,
}

impl PendingCall {
    pub fn conf<'a>(&self) -> &'a LocationConf {
        // SAFETY: the configuration lives with the cycle, longer than any call.
        unsafe { &*self.conf }
    }

    /// The configuration of the call at `pending`, read without borrowing the whole call,
    /// whose other fields the event loop may be changing meanwhile.
    ///
    /// # Safety
    /// `pending` must point to a live `PendingCall`.
    pub unsafe fn conf_of<'a>(pending: *const PendingCall) -> &'a LocationConf {
        // SAFETY: per the caller; the configuration lives with the cycle.
        unsafe { &*(*pending).conf }
    }
}

/// Holds `r` for `call` and arms the deadline; when out of memory, `call` comes back
/// untouched.
pub fn hold(
    r: &mut ngx_http_request_t,
    conf: &LocationConf,
    call: Call,
) -> Result<NonNull<PendingCall>, Call> {
    // SAFETY: `r` is live. nginx allocates the cleanup from the main request's pool, which is
    // `r`'s (a subrequest shares it), and links it unarmed (no handler) into the main
    // request's list, which its termination and its free run.
    let ended = unsafe { ngx_http_cleanup_add(r, 0) };
    if ended.is_null() {
        return Err(call);
    }
    // SAFETY: the request pool is live; the memory is zeroed and lives as long as the request.
    let memory = unsafe { ngx_pcalloc(r.pool, std::mem::size_of::<PendingCall>()) };
    let Some(pending) = NonNull::new(memory.cast::<PendingCall>()) else {
        return Err(call);
    };
    // SAFETY: fresh, suitably aligned memory for a `PendingCall`.
    let pending_ref = unsafe {
        pending.as_ptr().write(PendingCall {
            call,
            request: r,
            conf,
            ended,
            // SAFETY: all-zero is the idle state of an nginx event.
            deadline: std::mem::zeroed(),
            timed_out: false,
            refused: None,
        });
        &mut *pending.as_ptr()
    };
    // SAFETY: a live request has a connection with a log.
    pending_ref.deadline.log = unsafe { (*r.connection).log };
    pending_ref.deadline.data = pending.as_ptr().cast();
    pending_ref.deadline.handler = Some(deadline_passed);
    // The timer also keeps a gracefully exiting worker (`nginx -s quit`) waiting for the call.
    // SAFETY: the event lives in the pool as long as the request, which is held.
    unsafe { ngx_add_timer(&mut pending_ref.deadline, conf.timeout) };
    // SAFETY: `ended` is nginx's fresh cleanup, in the pool `pending` lives in.
    unsafe {
        (*ended).handler = Some(request_ended);
        (*ended).data = pending.as_ptr().cast();
    }
    request_hold::hold(r);
    watch_client(r);
    Ok(pending)
}

/// Has the request's read events tell whether the client goes away while the call is out.
fn watch_client(r: &mut ngx_http_request_t) {
    r.read_event_handler = Some(client_read);
    // SAFETY: a live request has its connection and read event; with edge-triggered events
    // (epoll) it is armed already, and this is then a no-op.
    unsafe { ngx_handle_read_event((*r.connection).read, 0) };
}

/// A read event while the call is out: nginx's own test tells a closed or reset connection,
/// and terminates the request (499), which runs the call's cleanup (`request_ended`) and
/// leaves the rest to the hold.
unsafe extern "C" fn client_read(r: *mut ngx_http_request_t) {
    // SAFETY: nginx passes the live request, held by its pending call.
    unsafe { ngx_http_test_reading(r) };
    // SAFETY: held, so still live; it has its connection.
    if unsafe { (*(*r).connection).error() } != 0 {
        // Nothing more to hear from this client; nginx drops the read event (level-triggered).
        // SAFETY: as above.
        unsafe { ngx_http_block_reading(r) };
    }
}

/// The call's request cleanup: nginx is terminating the request while the call is out (the
/// client went away, `worker_shutdown_timeout` closed the connection, an error elsewhere):
/// nobody waits for the call any more, so it is left like a call past its deadline.
///
/// nginx (1.22 and 1.28 alike) runs a request's cleanups in two places, each list once, as
/// it unlinks the list first:
/// - `ngx_http_terminate_request`, before it looks at `blocked`: the hold keeps the request
///   and its pool, so this `PendingCall`, from being freed by it until `done` unblocks it;
/// - `ngx_http_free_request`, before it destroys the pool: a held request gets there only
///   after `done`, which disarmed this cleanup first, so nginx skips it then.
unsafe extern "C" fn request_ended(data: *mut c_void) {
    // SAFETY: armed in `hold` with its `PendingCall`, which is live and still has its call
    // while the cleanup is armed (see above).
    let pending = unsafe { &mut *data.cast::<PendingCall>() };
    // SAFETY: the request is being terminated, not freed: it is live, with its connection.
    let r = unsafe { &mut *pending.request };
    // SAFETY: as above.
    let connection = unsafe { &*r.connection };
    guard(connection.log, "request ended", (), || {
        if !stop_waiting(pending) {
            // Completed (its outcome is on its way to `done`, which drops it), or left already.
            return;
        }
        // nginx's shutdown timer closes every connection in use; otherwise a failed
        // connection is a client gone.
        let why = if connection.close() != 0 {
            "worker_shutdown_timeout ended the request"
        } else if connection.error() != 0 {
            "client went away"
        } else {
            "nginx ended the request"
        };
        let app = Arc::clone(&pending.call.app);
        app_log::log(
            NGX_LOG_INFO as usize,
            r,
            &app,
            format_args!("{why} during the call; it finishes detached"),
        );
    })
}

/// Stops waiting for a call still pending: the app hears of it (`cancel`), the call finishes
/// detached, and a quitting worker still waits for it. False if the call had completed.
fn stop_waiting(pending: &mut PendingCall) -> bool {
    if !pending.call.state.abandon_if_pending() {
        return false;
    }
    if pending.deadline.timer_set() != 0 {
        // SAFETY: the timer is set, on this event.
        unsafe { ngx_del_timer(&mut pending.deadline) };
    }
    pending.deadline.handler = Some(request_hold::keep_waiting);
    // SAFETY: the event lives in the pool as long as the request, which the call holds.
    unsafe { ngx_add_timer(&mut pending.deadline, KEEP_WAITING_MS) };
    let call = &pending.call;
    if let (Some(cancel), true) = (call.app.descriptor().cancel, call.state.delivered()) {
        // SAFETY: the app has the handle and has not completed the call as far as the module
        // knows (the ABI lets a concurrent completion cross this); `call.state` keeps the
        // handle's memory alive meanwhile.
        unsafe { cancel(call.instance, call.handle) };
    }
    true
}

/// Waits for the app to complete the call, or finishes it now if it has.
pub fn wait(pending: NonNull<PendingCall>) {
    // SAFETY: on the loop, with the request held; no thread has the call now.
    let state = Arc::clone(unsafe { &(*pending.as_ptr()).call.state });
    let waiter = Waiter {
        resume,
        data: pending.cast(),
    };
    if let Some(outcome) = state.take_or_wait(waiter) {
        done(pending, outcome);
    }
}

fn resume(data: NonNull<c_void>) {
    // A wake without a completion (an app waking a call it did not answer with a stream)
    // only registers the waiter again.
    wait(data.cast());
}

/// The app is done with the call: sends its outcome (unless the client already has its
/// 504, or is gone) and gives the request back.
pub fn done(pending: NonNull<PendingCall>, outcome: Outcome) {
    // SAFETY: on the loop; the request is held, so the pool and the call are live until the
    // request is unblocked below.
    let pending = unsafe { &mut *pending.as_ptr() };
    // From here on, nginx's termination or free of the request must not touch the call.
    // SAFETY: the cleanup lives in the request's pool, live while the request is held.
    unsafe { (*pending.ended).handler = None };
    if pending.deadline.timer_set() != 0 {
        // SAFETY: the timer is set, on this event.
        unsafe { ngx_del_timer(&mut pending.deadline) };
    }
    let conf = pending.conf();
    let (timed_out, refused) = (pending.timed_out, pending.refused);
    // SAFETY: as above.
    let r = unsafe { &mut *pending.request };
    let call = take_call(pending);
    let unblocked = request_hold::unblock(r);
    if unblocked == Unblocked::Terminated || timed_out {
        // Nobody to answer any more: only the app's response (if any) goes back to it.
        if let Some(counters) = conf.counters.app() {
            counters.call_ended();
        }
        drop(outcome);
        if unblocked == Unblocked::Live {
            // The client has its 504; this gives back the hold's reference.
            finalize_from_event(r, NGX_DONE as ngx_int_t);
        }
        return;
    }
    // SAFETY: a live request has a connection with a log.
    let log = unsafe { (*r.connection).log };
    let rc = match refused {
        Some(status) => {
            if let Some(counters) = conf.counters.app() {
                counters.call_ended();
            }
            status
        }
        None => guard(log, "call result", INTERNAL_SERVER_ERROR, || {
            response::answer(r, conf, &call.app, outcome)
        }),
    };
    drop(call);
    // Gives back the hold's reference.
    finalize_from_event(r, rc);
}

/// Moves the call out of a `PendingCall` that is done with it.
pub fn take_call(pending: &mut PendingCall) -> Call {
    // SAFETY: read once; the memory is the request pool's and the call is never read again.
    unsafe { std::ptr::read(&pending.call) }
}

/// The call took longer than `gateway_timeout`: answer 504 now, let the call finish detached.
unsafe extern "C" fn deadline_passed(event: *mut ngx_event_t) {
    // SAFETY: the event is the `deadline` field of a `PendingCall`.
    let pending = unsafe {
        &mut *event
            .byte_sub(offset_of!(PendingCall, deadline))
            .cast::<PendingCall>()
    };
    // SAFETY: the request is held by the call.
    let r = unsafe { &mut *pending.request };
    // SAFETY: as above.
    let log = unsafe { (*r.connection).log };
    guard(log, "call deadline", (), || {
        if !stop_waiting(pending) {
            // The call just completed; its outcome is on its way to `done`.
            return;
        }
        pending.timed_out = true;
        let count = TIMED_OUT.fetch_add(1, Ordering::Relaxed) + 1;
        let conf = pending.conf();
        if let Some(counters) = conf.counters.app() {
            counters.timed_out();
        }
        if let Some(record) = CallRecord::of(r) {
            record.timed_out(conf, NGX_HTTP_GATEWAY_TIME_OUT as u16);
        }
        let app = Arc::clone(&pending.call.app);
        app_log::error(
            r,
            &app,
            format_args!(
                "call exceeded gateway_timeout, answered 504; the call finishes detached and its \
                 result is discarded ({count} so far in this worker)"
            ),
        );
        // The 504 consumes a reference of its own; the hold's stays until the call is done.
        // SAFETY: `r.main` is the live main request.
        let main = unsafe { &mut *r.main };
        main.set_count(main.count() + 1);
        finalize_from_event(r, NGX_HTTP_GATEWAY_TIME_OUT as ngx_int_t);
    });
}

/// Ends a call that never ran (its thread pool refused it): answers `status` unless the
/// client already has its 504, and gives the request back.
pub fn refuse(pending: NonNull<PendingCall>, status: ngx_int_t, why: &str) {
    // SAFETY: on the loop, no thread has the call; its request is held by it.
    let held = unsafe { &mut *pending.as_ptr() };
    drop_unused_handle(&held.call);
    if !held.timed_out {
        // SAFETY: as above.
        let r = unsafe { &mut *held.request };
        let conf = held.conf();
        if status == NGX_HTTP_SERVICE_UNAVAILABLE as ngx_int_t {
            if let Some(counters) = conf.counters.app() {
                counters.queue_was_full();
            }
        }
        if let Some(record) = CallRecord::of(r) {
            record.answered_for_app(conf, status as u16);
        }
        let app = Arc::clone(&held.call.app);
        app_log::error(r, &app, format_args!("{why}"));
        // No app outcome: the module's own answer is sent instead, when the call is done.
        held.refused = Some(status);
    }
    done(pending, Outcome::Taken);
}

/// The app's handle of a call it was never given back, for calls never run.
pub fn drop_unused_handle(call: &Call) {
    // SAFETY: the handle was never passed to the app.
    drop(unsafe { call::take_handle(call.handle) });
}
