//! App calls on an nginx thread pool (`gateway_thread_pool`), so a call that blocks (a
//! database, a slow computation) does not stall the worker's other connections.
//!
//! Everything nginx-owned is prepared on the event loop before a call is posted: the thread
//! only runs the app with the environ and body already built, and hands the outcome back
//! through the call state. The request is held (its reference count) until the thread is done,
//! so nothing the call points to can be freed under it, even after a timeout answered the
//! client with a 504.
//!
//! Handing work to a thread and back costs a few context switches, far more than a quick app
//! call (on 2 vCPUs, ~20 us against ~0.3 us for a "hello"). So the calls made ready in one
//! turn of the event loop are posted together at its end, and while the pool's recent calls
//! have been quick, several share one nginx thread task ([`BATCH_CALLS`] at most, about
//! [`BATCH_BUDGET_NS`] of expected work). Calls of unknown or long duration get a task each, so
//! blocking calls still run side by side on all of the pool's threads.

use std::cell::{Cell, RefCell, UnsafeCell};
use std::ffi::c_void;
use std::mem::offset_of;
use std::ptr::{addr_of_mut, NonNull};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use gateway::abi;
use ngx::ffi::{
    ngx_add_timer, ngx_cycle, ngx_del_timer, ngx_event_t, ngx_http_request_t, ngx_int_t, ngx_log_t,
    ngx_pcalloc, ngx_post_event, ngx_posted_events, ngx_thread_pool_t, ngx_thread_task_alloc,
    ngx_thread_task_post, ngx_thread_task_t, NGX_DONE, NGX_HTTP_GATEWAY_TIME_OUT,
    NGX_HTTP_SERVICE_UNAVAILABLE, NGX_OK,
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

/// Most calls one thread task runs, so a call that is unexpectedly slow holds up few others.
const BATCH_CALLS: usize = 8;
/// Expected app time one thread task may take on, when calls share tasks.
const BATCH_BUDGET_NS: u64 = 100_000;
/// A pool whose calls have not been timed yet: each gets a task of its own.
const UNTIMED: u64 = u64::MAX;

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

/// An offloaded call, in its request's pool.
struct Offloaded {
    call: Call,
    request: *mut ngx_http_request_t,
    /// The location's configuration, for its counters and slow-request threshold.
    conf: *const LocationConf,
    deadline: ngx_event_t,
    timed_out: bool,
    /// How long the app took, written by the thread; `None` if it was not called.
    took_ns: Option<u64>,
}

/// The calls of one thread task: its context.
struct Batch {
    calls: Vec<NonNull<Offloaded>>,
}

/// This worker's calls for one thread pool. Lives as long as the worker's event loop, the
/// only thread that touches it.
struct Lane {
    pool: NonNull<ngx_thread_pool_t>,
    /// Calls made ready in this turn of the event loop, posted at its end by `flush`.
    ready: RefCell<Vec<NonNull<Offloaded>>>,
    flush: UnsafeCell<ngx_event_t>,
    /// Moving average of how long the pool's calls took, in nanoseconds.
    recent_call_ns: Cell<u64>,
}

thread_local! {
    /// The lanes of this worker's event loop, one per thread pool in use; freed when the
    /// worker exits. Boxed: nginx's queue of posted events points into each lane.
    #[allow(clippy::vec_box)]
    static LANES: RefCell<Vec<Box<Lane>>> = const { RefCell::new(Vec::new()) };
}

impl Lane {
    fn of(pool: NonNull<ngx_thread_pool_t>) -> &'static Lane {
        LANES.with_borrow_mut(|lanes| {
            let lane: &Lane = match lanes.iter().position(|lane| lane.pool == pool) {
                Some(at) => &lanes[at],
                None => {
                    lanes.push(Box::new(Lane {
                        pool,
                        ready: RefCell::new(Vec::new()),
                        // SAFETY: all-zero is the idle state of an nginx event.
                        flush: UnsafeCell::new(unsafe { std::mem::zeroed() }),
                        recent_call_ns: Cell::new(UNTIMED),
                    }));
                    let lane = lanes.last().expect("just pushed");
                    // SAFETY: the event is the lane's own, and nothing else uses it yet.
                    let flush = unsafe { &mut *lane.flush.get() };
                    flush.handler = Some(flush_lane);
                    flush.data = (&**lane as *const Lane).cast_mut().cast();
                    // SAFETY: the cycle and its log live as long as the worker.
                    flush.log = unsafe { (*ngx_cycle).log };
                    lane
                }
            };
            // SAFETY: boxed, so it stays put as the list grows, and the list is dropped only
            // as the event-loop thread exits, after its last event.
            unsafe { &*(lane as *const Lane) }
        })
    }

    /// Queues `call` for the end of this turn of the event loop.
    fn push(&self, call: NonNull<Offloaded>) {
        self.ready.borrow_mut().push(call);
        // SAFETY: the lane's event, on its own loop; nginx runs posted events at the end of
        // the turn and never drops them.
        unsafe { ngx_post_event(self.flush.get(), addr_of_mut!(ngx_posted_events)) };
    }

    fn took(&self, ns: u64) {
        let recent = self.recent_call_ns.get();
        self.recent_call_ns.set(if recent == UNTIMED {
            ns
        } else {
            (recent.saturating_mul(7).saturating_add(ns)) / 8
        });
    }
}

/// Queues `call` for `pool` and returns what the content handler returns to nginx.
pub fn start(
    r: &mut ngx_http_request_t,
    conf: &LocationConf,
    pool: NonNull<ngx_thread_pool_t>,
    call: Call,
) -> ngx_int_t {
    // SAFETY: the request pool is live; the memory is zeroed and lives as long as the request.
    let memory = unsafe { ngx_pcalloc(r.pool, std::mem::size_of::<Offloaded>()) };
    let Some(offloaded) = NonNull::new(memory.cast::<Offloaded>()) else {
        abandon(conf, call);
        return INTERNAL_SERVER_ERROR;
    };
    // SAFETY: fresh, suitably aligned memory for an `Offloaded`.
    let offloaded_ref = unsafe {
        offloaded.as_ptr().write(Offloaded {
            call,
            request: r,
            conf,
            // SAFETY: all-zero is the idle state of an nginx event.
            deadline: std::mem::zeroed(),
            timed_out: false,
            took_ns: None,
        });
        &mut *offloaded.as_ptr()
    };
    if let Some(pool) = conf.counters.pool() {
        pool.posted();
    }
    // SAFETY: a live request has a connection with a log.
    offloaded_ref.deadline.log = unsafe { (*r.connection).log };
    offloaded_ref.deadline.data = offloaded.as_ptr().cast();
    offloaded_ref.deadline.handler = Some(deadline_passed);
    // The timer also keeps a gracefully exiting worker (`nginx -s quit`) waiting for the call.
    // SAFETY: the event lives in the pool as long as the request.
    unsafe { ngx_add_timer(&mut offloaded_ref.deadline, conf.timeout) };

    // The thread's reference on the request: given back when the call has returned.
    // SAFETY: `r.main` is the live main request.
    let main = unsafe { &mut *r.main };
    main.set_count(main.count() + 1);
    Lane::of(pool).push(offloaded);
    NGX_DONE as ngx_int_t
}

/// End of an event-loop turn: posts the calls made ready in it, quick ones together.
unsafe extern "C" fn flush_lane(event: *mut ngx_event_t) {
    // SAFETY: the flush event's data is its lane, which is never freed.
    let lane = unsafe { &*(*event).data.cast::<Lane>() };
    // SAFETY: the cycle's log lives as long as the worker.
    let log = unsafe { (*ngx_cycle).log };
    guard(log, "offloaded calls", (), || {
        let ready = std::mem::take(&mut *lane.ready.borrow_mut());
        let expected = lane.recent_call_ns.get();
        let mut batch = Vec::new();
        for call in ready {
            let full = batch.len() == BATCH_CALLS
                || (batch.len() as u64 + 1).saturating_mul(expected) > BATCH_BUDGET_NS;
            if !batch.is_empty() && full {
                post(lane, std::mem::take(&mut batch));
            }
            batch.push(call);
        }
        if !batch.is_empty() {
            post(lane, batch);
        }
    })
}

/// Posts one thread task for `calls`, or refuses them if the pool's queue is full.
fn post(lane: &Lane, calls: Vec<NonNull<Offloaded>>) {
    // SAFETY: the first call's request is held until the task has returned, so its pool
    // outlives the task; nginx zeroes the task and its context.
    let task = unsafe {
        let first = &*calls[0].as_ptr();
        ngx_thread_task_alloc((*first.request).pool, std::mem::size_of::<Batch>())
    };
    if task.is_null() {
        for call in calls {
            refuse(call, INTERNAL_SERVER_ERROR, "call failed: out of memory");
        }
        return;
    }
    // SAFETY: `task` is fresh; its context has room for a `Batch`.
    let batch = unsafe {
        let context = (*task).ctx.cast::<Batch>();
        context.write(Batch { calls });
        (*task).handler = Some(run_batch);
        (*task).event.handler = Some(batch_returned);
        context
    };
    // SAFETY: the task and the pool are live; on success nginx owns the task until it posts
    // its event back to this worker's loop.
    if unsafe { ngx_thread_task_post(lane.pool.as_ptr(), task) } != NGX_OK as ngx_int_t {
        // nginx logged the overflow; the app was called for none of them.
        // SAFETY: the context was written above and nginx did not take the task.
        let Batch { calls } = unsafe { batch.read() };
        for call in calls {
            if let Some(pool) = conf_of(call).counters.pool() {
                pool.rejected();
            }
            refuse(
                call,
                NGX_HTTP_SERVICE_UNAVAILABLE as ngx_int_t,
                "call refused: the thread pool's queue is full",
            );
        }
    }
}

fn conf_of<'a>(call: NonNull<Offloaded>) -> &'a LocationConf {
    // SAFETY: the configuration lives with the cycle, longer than any call.
    unsafe { &*(*call.as_ptr()).conf }
}

/// Answers `status` for a call that was never run, and gives back the thread's reference.
fn refuse(call: NonNull<Offloaded>, status: ngx_int_t, why: &str) {
    // SAFETY: on the event loop, no thread has the call; its request is held by it.
    let offloaded = unsafe { &mut *call.as_ptr() };
    // SAFETY: as above.
    let r = unsafe { &mut *offloaded.request };
    let conf = conf_of(call);
    if offloaded.deadline.timer_set() != 0 {
        // SAFETY: the timer is set, on this event.
        unsafe { ngx_del_timer(&mut offloaded.deadline) };
    }
    let call = take(offloaded);
    if offloaded.timed_out {
        // The client already has its 504.
        abandon(conf, call);
        content_handler::finalize_from_event(r, NGX_DONE as ngx_int_t);
        return;
    }
    let app = Arc::clone(&call.app);
    abandon(conf, call);
    if status == NGX_HTTP_SERVICE_UNAVAILABLE as ngx_int_t {
        if let Some(counters) = conf.counters.app() {
            counters.queue_was_full();
        }
    }
    if let Some(record) = CallRecord::of(r) {
        record.answered_for_app(conf, status as u16);
    }
    app_log::error(r, &app, format_args!("{why}"));
    content_handler::finalize_from_event(r, status);
}

/// Drops a call the app will never see, giving back the app's reference to its state.
fn abandon(conf: &LocationConf, call: Call) {
    if let Some(counters) = conf.counters.app() {
        counters.call_ended();
    }
    // SAFETY: the handle was never passed to the app.
    drop(unsafe { content_handler::take_handle(call.handle) });
}

/// Moves the call out of an `Offloaded` that is done with it.
fn take(offloaded: &mut Offloaded) -> Call {
    // SAFETY: read once; the memory is the request pool's and the call is never read again.
    unsafe { std::ptr::read(&offloaded.call) }
}

/// Runs on a thread of the pool: only the app's code, with what was prepared for it.
unsafe extern "C" fn run_batch(data: *mut c_void, log: *mut ngx_log_t) {
    // SAFETY: `data` is this task's context, alive until the task's event has run.
    let batch = unsafe { &*data.cast::<Batch>() };
    for &call in &batch.calls {
        guard(log, "offloaded call", (), || run(call));
    }
}

fn run(offloaded: NonNull<Offloaded>) {
    let offloaded = offloaded.as_ptr();
    // SAFETY: the event loop changes only the deadline fields of a posted call, so the call
    // itself can be read here; the request is held until the task has returned.
    let (call, conf) = unsafe { (&(*offloaded).call, &*(*offloaded).conf) };
    let pool = conf.counters.pool();
    if call.state.is_abandoned() {
        // It timed out while queued: nobody waits for it any more.
        if let Some(pool) = pool {
            pool.skipped();
        }
        return;
    }
    if let Some(pool) = pool {
        pool.started();
    }
    let started = Instant::now();
    // SAFETY: checked descriptor; the request is held until this call returns.
    unsafe { (call.app.descriptor().call)(call.instance, call.handle, &call.request) };
    let took = started.elapsed().as_nanos().try_into().unwrap_or(u64::MAX);
    // SAFETY: only this thread writes the field, and the event loop reads it only after the
    // task has returned.
    unsafe { addr_of_mut!((*offloaded).took_ns).write(Some(took)) };
    if let Some(pool) = pool {
        pool.finished();
    }
}

/// Back on the event loop once the thread is done with a batch.
unsafe extern "C" fn batch_returned(event: *mut ngx_event_t) {
    // SAFETY: the event is the `event` field of the task nginx posted.
    let task = unsafe {
        event
            .byte_sub(offset_of!(ngx_thread_task_t, event))
            .cast::<ngx_thread_task_t>()
    };
    // Moved out first: the task lives in the first call's request pool, which finalizing that
    // call may free.
    // SAFETY: the context is the `Batch` written in `post`, read once.
    let Batch { calls } = unsafe { (*task).ctx.cast::<Batch>().read() };
    // SAFETY: the cycle's log lives as long as the worker.
    let log = unsafe { (*ngx_cycle).log };
    for call in calls {
        guard(log, "offloaded call return", (), || call_returned(call));
    }
}

/// Sends what the app answered for one call and gives back the thread's reference.
fn call_returned(call: NonNull<Offloaded>) {
    // SAFETY: the thread is done with the call; its request is still held by it.
    let offloaded = unsafe { &mut *call.as_ptr() };
    // SAFETY: as above.
    let r = unsafe { &mut *offloaded.request };
    // SAFETY: as above.
    let log = unsafe { (*r.connection).log };
    if offloaded.deadline.timer_set() != 0 {
        // SAFETY: the timer is set, on this event.
        unsafe { ngx_del_timer(&mut offloaded.deadline) };
    }
    let conf = conf_of(call);
    let call = take(offloaded);
    match offloaded.took_ns {
        Some(ns) => {
            if let Some(pool) = conf.thread_pool {
                Lane::of(pool).took(ns);
            }
        }
        // Skipped after its timeout: the app never had the handle.
        // SAFETY: the handle was never passed to the app.
        None => drop(unsafe { content_handler::take_handle(call.handle) }),
    }
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
