//! App calls on an nginx thread pool (`gateway_thread_pool`), so a call that blocks (a
//! database, a slow computation) does not stall the worker's other connections.
//!
//! Everything nginx-owned is prepared on the event loop before the call is posted: the thread
//! only runs the app with the environ and body already built, and hands the outcome back
//! through the call state. The request is held (its reference count) until the thread is done,
//! so nothing the call points to can be freed under it, even after a timeout answered the
//! client with a 504.

use std::ffi::c_void;
use std::mem::offset_of;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use gateway::abi;
use ngx::ffi::{
    ngx_add_timer, ngx_del_timer, ngx_event_t, ngx_http_request_t, ngx_int_t, ngx_log_t,
    ngx_thread_pool_t, ngx_thread_task_alloc, ngx_thread_task_post, ngx_thread_task_t, NGX_DONE,
    NGX_HTTP_GATEWAY_TIME_OUT, NGX_HTTP_SERVICE_UNAVAILABLE, NGX_OK,
};

use crate::app_loader::App;
use crate::app_log;
use crate::call_record::CallRecord;
use crate::content_handler::{self, CallState};
use crate::directives::LocationConf;
use crate::panic_guard::guard;
use crate::response::INTERNAL_SERVER_ERROR;

/// Offloaded calls this worker stopped waiting for; they finish detached.
static TIMED_OUT: AtomicU64 = AtomicU64::new(0);

/// One app call, ready to run anywhere.
pub struct Call {
    pub app: Arc<App>,
    pub instance: *mut c_void,
    /// Points into the request's pool, which outlives the call.
    pub request: abi::Request,
    pub state: Arc<CallState>,
    /// The app's reference to `state`, consumed when it completes the call.
    pub handle: *mut abi::Call,
}

/// A posted call: the thread task's context, in the request's pool.
struct Offloaded {
    call: Call,
    request: *mut ngx_http_request_t,
    /// The location's configuration, for its counters and slow-request threshold.
    conf: *const LocationConf,
    deadline: ngx_event_t,
    timed_out: bool,
}

/// Posts `call` to `pool` and returns what the content handler returns to nginx.
pub fn start(
    r: &mut ngx_http_request_t,
    conf: &LocationConf,
    pool: NonNull<ngx_thread_pool_t>,
    call: Call,
) -> ngx_int_t {
    // SAFETY: the request pool is live; nginx zeroes the task and its context.
    let task = unsafe { ngx_thread_task_alloc(r.pool, std::mem::size_of::<Offloaded>()) };
    if task.is_null() {
        abandon(conf, call);
        return INTERNAL_SERVER_ERROR;
    }
    // SAFETY: `task` is fresh; its context has room for an `Offloaded`.
    let offloaded = unsafe {
        let context = (*task).ctx.cast::<Offloaded>();
        context.write(Offloaded {
            call,
            request: r,
            conf,
            // SAFETY: all-zero is the idle state of an nginx event.
            deadline: std::mem::zeroed(),
            timed_out: false,
        });
        (*task).handler = Some(run_in_thread);
        (*task).event.data = (r as *mut ngx_http_request_t).cast();
        (*task).event.handler = Some(call_returned);
        &mut *context
    };

    // Counted before posting: a thread may start the call before the post returns.
    if let Some(pool) = conf.counters.pool() {
        pool.posted();
    }
    // SAFETY: the task and the pool are live; on success nginx owns the task until it posts
    // its event back to this worker's loop.
    if unsafe { ngx_thread_task_post(pool.as_ptr(), task) } != NGX_OK as ngx_int_t {
        // nginx logged the overflow; the app was never called.
        let call = take(offloaded);
        let app = Arc::clone(&call.app);
        abandon(conf, call);
        if let Some(pool) = conf.counters.pool() {
            pool.rejected();
        }
        if let Some(counters) = conf.counters.app() {
            counters.queue_was_full();
        }
        if let Some(record) = CallRecord::of(r) {
            record.answered_for_app(conf, NGX_HTTP_SERVICE_UNAVAILABLE as u16);
        }
        app_log::error(
            r,
            &app,
            format_args!("call refused: the thread pool's queue is full"),
        );
        return NGX_HTTP_SERVICE_UNAVAILABLE as ngx_int_t;
    }

    // SAFETY: a live request has a connection with a log.
    offloaded.deadline.log = unsafe { (*r.connection).log };
    offloaded.deadline.data = (r as *mut ngx_http_request_t).cast();
    offloaded.deadline.handler = Some(deadline_passed);
    // The timer also keeps a gracefully exiting worker (`nginx -s quit`) waiting for the call.
    // SAFETY: the event lives in the pool as long as the request.
    unsafe { ngx_add_timer(&mut offloaded.deadline, conf.timeout) };

    // The thread's reference on the request: given back when the call has returned.
    // SAFETY: `r.main` is the live main request.
    let main = unsafe { &mut *r.main };
    main.set_count(main.count() + 1);
    NGX_DONE as ngx_int_t
}

/// Drops a call the app will never see, giving back the app's reference to its state.
fn abandon(conf: &LocationConf, call: Call) {
    if let Some(counters) = conf.counters.app() {
        counters.call_ended();
    }
    // SAFETY: the handle was never passed to the app.
    drop(unsafe { content_handler::take_handle(call.handle) });
}

/// Moves the call out of a task context that is done with it.
fn take(offloaded: &mut Offloaded) -> Call {
    // SAFETY: read once; the context's memory is the pool's and is never read again.
    unsafe { std::ptr::read(&offloaded.call) }
}

/// Runs on a thread of the pool: only the app's code, with what was prepared for it.
unsafe extern "C" fn run_in_thread(data: *mut c_void, log: *mut ngx_log_t) {
    guard(log, "offloaded call", (), || {
        // SAFETY: `data` is this task's context, alive until the task's event has run.
        let offloaded = unsafe { &*data.cast::<Offloaded>() };
        // SAFETY: the configuration lives with the cycle; only its shared counters are used.
        let pool = unsafe { (*offloaded.conf).counters.pool() };
        if let Some(pool) = pool {
            pool.started();
        }
        let call = &offloaded.call;
        // SAFETY: checked descriptor; the request is held until this call returns.
        unsafe { (call.app.descriptor().call)(call.instance, call.handle, &call.request) };
        if let Some(pool) = pool {
            pool.finished();
        }
    })
}

/// Back on the event loop once the thread is done with the call.
unsafe extern "C" fn call_returned(event: *mut ngx_event_t) {
    // SAFETY: the event is the `event` field of the task nginx posted.
    let task = unsafe {
        event
            .byte_sub(offset_of!(ngx_thread_task_t, event))
            .cast::<ngx_thread_task_t>()
    };
    // SAFETY: the task's context is the `Offloaded` written in `start`.
    let offloaded = unsafe { &mut *(*task).ctx.cast::<Offloaded>() };
    // SAFETY: the request is alive: this call's reference is still held.
    let r = unsafe { &mut *offloaded.request };
    // SAFETY: as above.
    let log = unsafe { (*r.connection).log };
    if offloaded.deadline.timer_set() != 0 {
        // SAFETY: the timer is set, on this event.
        unsafe { ngx_del_timer(&mut offloaded.deadline) };
    }
    let call = take(offloaded);
    // SAFETY: the configuration lives with the cycle.
    let conf = unsafe { &*offloaded.conf };
    let rc = if offloaded.timed_out {
        // The client already has its 504; the late outcome was discarded when it arrived.
        if let Some(counters) = conf.counters.app() {
            counters.call_ended();
        }
        NGX_DONE as ngx_int_t
    } else {
        guard(log, "offloaded call result", INTERNAL_SERVER_ERROR, || {
            content_handler::finish(r, conf, &call.app, &call.state)
        })
    };
    drop(call);
    // Gives back the reference taken in `start`.
    content_handler::finalize_from_event(r, rc);
}

/// How often a detached call re-arms the timer that keeps a quitting worker waiting for it.
const KEEP_WAITING_MS: ngx::ffi::ngx_msec_t = 60_000;

unsafe extern "C" fn keep_waiting(event: *mut ngx_event_t) {
    // SAFETY: the event lives until the call returns, which deletes the timer.
    unsafe { ngx_add_timer(event, KEEP_WAITING_MS) };
}

/// The call took longer than `gateway_timeout`: answer 504 now, let the call finish detached.
unsafe extern "C" fn deadline_passed(event: *mut ngx_event_t) {
    // SAFETY: the event is the `deadline` field of an `Offloaded`.
    let offloaded = unsafe {
        &mut *event
            .byte_sub(offset_of!(Offloaded, deadline))
            .cast::<Offloaded>()
    };
    // SAFETY: the request is alive: the call's reference is still held.
    let r = unsafe { &mut *offloaded.request };
    // SAFETY: as above.
    let log = unsafe { (*r.connection).log };
    guard(log, "offloaded call deadline", (), || {
        if !offloaded.call.state.abandon_if_pending() {
            // The call just completed; its result is on its way to `call_returned`.
            return;
        }
        offloaded.timed_out = true;
        let count = TIMED_OUT.fetch_add(1, Ordering::Relaxed) + 1;
        // SAFETY: the configuration lives with the cycle.
        let conf = unsafe { &*offloaded.conf };
        if let Some(counters) = conf.counters.app() {
            counters.timed_out();
        }
        if let Some(record) = CallRecord::of(r) {
            record.timed_out(conf, NGX_HTTP_GATEWAY_TIME_OUT as u16);
        }
        // The call goes on detached: keep a gracefully exiting worker waiting for it, as the
        // deadline did until now.
        offloaded.deadline.handler = Some(keep_waiting);
        // SAFETY: the event lives in the pool as long as the request, which the call holds.
        unsafe { ngx_add_timer(&mut offloaded.deadline, KEEP_WAITING_MS) };
        let app = Arc::clone(&offloaded.call.app);
        app_log::error(
            r,
            &app,
            format_args!(
                "call exceeded gateway_timeout, answered 504; the call finishes detached and its \
                 result is discarded ({count} so far in this worker)"
            ),
        );
        // The 504 is sent now, but the request stays allocated until the thread is done with
        // it: this extra reference is given back by the finalization below.
        // SAFETY: `r.main` is the live main request.
        let main = unsafe { &mut *r.main };
        main.set_count(main.count() + 1);
        content_handler::finalize_from_event(r, NGX_HTTP_GATEWAY_TIME_OUT as ngx_int_t);
    });
}
