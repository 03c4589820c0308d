//! App calls on an nginx thread pool (`gateway_thread_pool`), so a call that blocks (a
//! database, a slow computation) does not stall the worker's other connections.
//!
//! Everything nginx-owned is prepared on the event loop before a call is posted: the thread
//! only runs the app with the environ and body already built, and hands the outcome back
//! through the call state. The call is a [`PendingCall`]: its request is held until the app is
//! done with it, so nothing the call points to can be freed under it, even after a timeout
//! answered the client with a 504 or the client went away.
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
use std::time::Instant;

use ngx::ffi::{
    ngx_cycle, ngx_event_t, ngx_http_request_t, ngx_int_t, ngx_log_t, ngx_post_event,
    ngx_posted_events, ngx_thread_pool_t, ngx_thread_task_alloc, ngx_thread_task_post,
    ngx_thread_task_t, NGX_DONE, NGX_HTTP_SERVICE_UNAVAILABLE, NGX_OK,
};

use crate::call::Outcome;
use crate::conf::LocationConf;
use crate::panic_guard::guard;
use crate::pending_call::{self, Call, PendingCall};
use crate::response::INTERNAL_SERVER_ERROR;

/// Most calls one thread task runs, so a call that is unexpectedly slow holds up few others.
const BATCH_CALLS: usize = 8;
/// Expected app time one thread task may take on, when calls share tasks.
const BATCH_BUDGET_NS: u64 = 100_000;
/// A pool whose calls have not been timed yet: each gets a task of its own.
const UNTIMED: u64 = u64::MAX;

/// The calls of one thread task: its context.
struct Batch {
    calls: Vec<NonNull<PendingCall>>,
}

/// This worker's calls for one thread pool. Lives as long as the worker's event loop, the
/// only thread that touches it.
struct Lane {
    pool: NonNull<ngx_thread_pool_t>,
    /// Calls made ready in this turn of the event loop, posted at its end by `flush`.
    ready: RefCell<Vec<NonNull<PendingCall>>>,
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
    fn push(&self, call: NonNull<PendingCall>) {
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
    let pending = match pending_call::hold(r, conf, call) {
        Ok(pending) => pending,
        Err(call) => {
            if let Some(counters) = conf.counters.app() {
                counters.call_ended();
            }
            pending_call::drop_unused_handle(&call);
            return INTERNAL_SERVER_ERROR;
        }
    };
    if let Some(pool) = conf.counters.pool() {
        pool.posted();
    }
    Lane::of(pool).push(pending);
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
fn post(lane: &Lane, calls: Vec<NonNull<PendingCall>>) {
    // SAFETY: the first call's request is held until the task has returned, so its pool
    // outlives the task; nginx zeroes the task and its context.
    let task = unsafe {
        let first = &*calls[0].as_ptr();
        ngx_thread_task_alloc((*first.request).pool, std::mem::size_of::<Batch>())
    };
    if task.is_null() {
        for call in calls {
            pending_call::refuse(call, INTERNAL_SERVER_ERROR, "call failed: out of memory");
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
            // SAFETY: on the loop; no thread has the call.
            if let Some(pool) = unsafe { call.as_ref() }.conf().counters.pool() {
                pool.rejected();
            }
            pending_call::refuse(
                call,
                NGX_HTTP_SERVICE_UNAVAILABLE as ngx_int_t,
                "call refused: the thread pool's queue is full",
            );
        }
    }
}

/// Runs on a thread of the pool: only the app's code, with what was prepared for it.
unsafe extern "C" fn run_batch(data: *mut c_void, log: *mut ngx_log_t) {
    // SAFETY: `data` is this task's context, alive until the task's event has run.
    let batch = unsafe { &*data.cast::<Batch>() };
    for &call in &batch.calls {
        guard(log, "offloaded call", (), || run(call));
    }
}

fn run(offloaded: NonNull<PendingCall>) {
    let offloaded = offloaded.as_ptr();
    // SAFETY: the event loop changes only the deadline fields of a posted call, so the call
    // itself can be read here; the request is held until the task has returned.
    let (call, conf) = unsafe { (&(*offloaded).call, (*offloaded).conf()) };
    let pool = conf.counters.pool();
    if !call.state.deliver() {
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
    unsafe { (call.app.descriptor().call)(call.instance, call.handle, call.request) };
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

/// The thread is done with one call: wait for its completion, unless it was skipped.
fn call_returned(call: NonNull<PendingCall>) {
    // SAFETY: the thread is done with the call; its request is held by it.
    let pending = unsafe { &mut *call.as_ptr() };
    match pending.took_ns {
        Some(ns) => {
            if let Some(pool) = pending.conf().thread_pool {
                Lane::of(pool).took(ns);
            }
            pending_call::wait(call);
        }
        // Skipped after its timeout: the app never had the handle, nothing to send.
        None => {
            pending_call::drop_unused_handle(&pending.call);
            pending_call::done(call, Outcome::Taken);
        }
    }
}
