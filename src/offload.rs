//! App calls on an nginx thread pool (`gateway_thread_pool`), so a call that blocks (a
//! database, a slow computation) does not stall the worker's other connections.
//!
//! Everything nginx-owned is prepared on the event loop before a call is queued: the thread
//! only runs the app with the environ and body already built. The call is a [`PendingCall`]:
//! its request is held until the app is done with it, so nothing the call points to can be
//! freed under it, even after a timeout answered the client with a 504 or the client went
//! away. The loop waits for the call's completion from the start, through the call's waiter:
//! it comes back as soon as the app gives it, whatever the thread does next.
//!
//! Handing work to a thread and back costs a few context switches, far more than a quick app
//! call (on 2 vCPUs, ~20 us against ~0.3 us for a "hello"), so one thread task should run many
//! calls. Fixed batches did (up to 8 calls of ~100 us expected work per task), but made every
//! call in a batch wait for the slowest: with 0.3% of calls taking 50 ms, quick calls batched
//! behind one took 50 ms too. So each worker has a lane per pool: a queue of calls that the
//! lane's *runners*, thread tasks posted by the loop, take one at a time until it is empty.
//! The calls made ready in one turn of the event loop are queued together at its end; a
//! runner is posted when calls wait and none is free, and a runner that takes a call while
//! others wait, with no other runner free, has the loop post another (up to the pool's thread
//! count). A call that turns out slow thus holds up only its own thread: the calls behind it
//! go to the next runner. While calls keep coming, one runner drains them all for one task.
//!
//! Measured pinned (nginx on one CPU, the load on the other; `scripts/pool-latency`) on a
//! shared 2-CPU machine: quick calls at 4985/s beside 15/s of 50 ms ones on a pool of 4
//! threads, the quick calls that took 40 ms or more (waiting for a slow one) went from 10-111
//! per 100k with fixed batches to none in 6 runs of 20 s. Hello on the pool: 0.22 context
//! switches and 2.55 system calls a request against 0.60 and 3.0, and 0.88 of inline's
//! requests per CPU second against 0.80. Posting a runner for every waiting call instead (up
//! to the thread count) kept slow calls apart too, but most runners found nothing left to run:
//! 0.95 switches and 3.7 system calls a request, worse than the batches.
//!
//! The pool's `max_queue` bounds the calls waiting for a thread, counted here since the pool's
//! own queue only sees the runners: a call that finds it full is answered 503 at once.

use std::cell::{RefCell, UnsafeCell};
use std::collections::VecDeque;
use std::ffi::c_void;
use std::ptr::{addr_of_mut, NonNull};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ngx::ffi::{
    ngx_cycle, ngx_event_t, ngx_http_request_t, ngx_int_t, ngx_log_t, ngx_post_event,
    ngx_posted_events, ngx_thread_pool_t, ngx_thread_task_post, ngx_thread_task_t, NGX_DONE,
    NGX_HTTP_SERVICE_UNAVAILABLE, NGX_LOG_ALERT, NGX_OK,
};
use ngx::ngx_log_error;
use parking_lot::{Mutex, MutexGuard};

use crate::call::{complete_unrun, CallState, Waiter};
use crate::conf::LocationConf;
use crate::panic_guard::guard;
use crate::pending_call::{self, Call, PendingCall};
use crate::response::INTERNAL_SERVER_ERROR;
use crate::thread_pool_size::{self, PoolSize};

/// How long a runner keeps its thread while calls keep coming; then it ends and the loop
/// posts it again, behind the other tasks on the pool (streams pulled on it, say).
const RUNNER_TURN: Duration = Duration::from_millis(1);

/// The runners per lane if the pool's size cannot be read: nginx's default thread count.
const UNKNOWN_THREADS: usize = 32;

/// A queued call, handed by the loop to the one runner that takes it.
struct Queued(NonNull<PendingCall>);

// SAFETY: a queued call is used by one thread at a time: the loop until it is queued, then
// the runner that takes it until the app has its handle; the loop meanwhile only changes the
// call's deadline fields, which the runner does not read.
unsafe impl Send for Queued {}

/// A lane's waiting calls and its runners, under one lock, so a runner that finds no call
/// and ends cannot miss a call queued meanwhile.
#[derive(Default)]
struct Queue {
    calls: VecDeque<Queued>,
    /// Runners posted and not ended.
    runners: usize,
    /// Of those, the ones running a call.
    busy: usize,
    /// A runner asked the loop for another, which the loop has not seen yet.
    asked: bool,
}

/// What a lane's runners share with the loop.
struct Shared {
    queue: Mutex<Queue>,
    /// The pool's thread count: more runners would only wait for a thread.
    threads: usize,
    /// Woken by a runner that takes a call while others wait and no other runner is free:
    /// the loop then posts one.
    wanted: Arc<CallState>,
}

/// A thread task that runs its lane's queued calls until there are none. Owned by its lane
/// and reused; nginx has it from its post until its event has run on the loop.
struct Runner {
    task: ngx_thread_task_t,
    shared: Arc<Shared>,
    lane: *const Lane,
}

/// This worker's calls for one thread pool. Lives as long as the worker's event loop, the
/// only thread that touches it; its runners share only the queue.
struct Lane {
    pool: NonNull<ngx_thread_pool_t>,
    /// The pool's `max_queue`: how many calls may wait besides one per idle thread.
    max_queue: usize,
    shared: Arc<Shared>,
    /// Calls made ready in this turn of the event loop, queued at its end by `flush`.
    ready: RefCell<Vec<NonNull<PendingCall>>>,
    flush: UnsafeCell<ngx_event_t>,
    /// Runners not in nginx's hands; boxed, as nginx keeps pointers to those it has.
    #[allow(clippy::vec_box)]
    spare: RefCell<Vec<Box<Runner>>>,
}

thread_local! {
    /// The lanes of this worker's event loop, one per thread pool in use; freed when the
    /// worker exits, after nginx has stopped the pools' threads. Boxed: nginx's queue of
    /// posted events and the runners point into each lane.
    #[allow(clippy::vec_box)]
    static LANES: RefCell<Vec<Box<Lane>>> = const { RefCell::new(Vec::new()) };
}

impl Lane {
    fn of(pool: NonNull<ngx_thread_pool_t>, conf: &LocationConf) -> &'static Lane {
        LANES.with_borrow_mut(|lanes| {
            let lane: &Lane = match lanes.iter().position(|lane| lane.pool == pool) {
                Some(at) => &lanes[at],
                None => {
                    let name = conf.thread_pool_name.as_deref().unwrap_or_default();
                    let size = pool_size(pool, name);
                    lanes.push(Box::new(Lane {
                        pool,
                        max_queue: size.max_queue,
                        shared: Arc::new(Shared {
                            queue: Mutex::default(),
                            threads: size.threads,
                            wanted: CallState::signal(),
                        }),
                        ready: RefCell::new(Vec::new()),
                        // SAFETY: all-zero is the idle state of an nginx event.
                        flush: UnsafeCell::new(unsafe { std::mem::zeroed() }),
                        spare: RefCell::new(Vec::new()),
                    }));
                    let lane = lanes.last().expect("just pushed");
                    // SAFETY: the event is the lane's own, and nothing else uses it yet.
                    let flush = unsafe { &mut *lane.flush.get() };
                    flush.handler = Some(flush_lane);
                    flush.data = (&**lane as *const Lane).cast_mut().cast();
                    // SAFETY: the cycle and its log live as long as the worker.
                    flush.log = unsafe { (*ngx_cycle).log };
                    lane.shared.wanted.wait_for_wake(lane.waiter());
                    lane
                }
            };
            // SAFETY: boxed, so it stays put as the list grows, and the list is dropped only
            // as the event-loop thread exits, after its last event.
            unsafe { &*(lane as *const Lane) }
        })
    }

    fn waiter(&self) -> Waiter {
        Waiter {
            resume: runner_wanted,
            data: NonNull::from(self).cast(),
        }
    }

    /// Queues `call` for the end of this turn of the event loop.
    fn push(&self, call: NonNull<PendingCall>) {
        self.ready.borrow_mut().push(call);
        // SAFETY: the lane's event, on its own loop; nginx runs posted events at the end of
        // the turn and never drops them.
        unsafe { ngx_post_event(self.flush.get(), addr_of_mut!(ngx_posted_events)) };
    }

    /// Queues the calls made ready in this turn, and returns those the queue has no room for:
    /// as many may wait as `max_queue`, besides one per thread not running a call of ours.
    fn enqueue(&self) -> Vec<NonNull<PendingCall>> {
        let mut ready = std::mem::take(&mut *self.ready.borrow_mut());
        let mut queue = self.shared.queue.lock();
        let room = self
            .max_queue
            .saturating_add(self.shared.threads.saturating_sub(queue.busy))
            .saturating_sub(queue.calls.len());
        let refused = ready.split_off(room.min(ready.len()));
        queue.calls.extend(ready.into_iter().map(Queued));
        refused
    }

    /// Posts a runner if calls wait and none is free to take them, unless every thread of
    /// the pool has one already.
    fn top_up(&'static self) {
        let wanted = {
            let mut queue = self.shared.queue.lock();
            let wanted = !queue.calls.is_empty()
                && queue.runners == queue.busy
                && queue.runners < self.shared.threads;
            queue.runners += usize::from(wanted);
            wanted
        };
        if wanted && !self.post_runner() {
            self.runner_refused();
        }
    }

    /// Hands a runner to the pool; false if its queue is full (nginx logged it).
    fn post_runner(&'static self) -> bool {
        let runner = self
            .spare
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| self.new_runner());
        let runner = Box::into_raw(runner);
        // SAFETY: the runner is ours, not in nginx's hands (its event has run, if it ever was);
        // on success nginx owns it until it posts its event back to this loop.
        let posted =
            unsafe { ngx_thread_task_post(self.pool.as_ptr(), addr_of_mut!((*runner).task)) };
        if posted == NGX_OK as ngx_int_t {
            return true;
        }
        // SAFETY: nginx did not take it.
        self.spare
            .borrow_mut()
            .push(unsafe { Box::from_raw(runner) });
        false
    }

    fn new_runner(&'static self) -> Box<Runner> {
        let mut runner = Box::new(Runner {
            // SAFETY: all-zero is a fresh thread task, as `ngx_thread_task_alloc` makes it.
            task: unsafe { std::mem::zeroed() },
            shared: Arc::clone(&self.shared),
            lane: self,
        });
        let at: *mut Runner = &mut *runner;
        runner.task.ctx = at.cast();
        runner.task.handler = Some(run_calls);
        runner.task.event.data = at.cast();
        runner.task.event.handler = Some(runner_returned);
        // SAFETY: the cycle's log lives as long as the worker.
        runner.task.event.log = unsafe { (*ngx_cycle).log };
        runner
    }

    /// A runner counted in `top_up` was not posted. If the lane has no other, nothing would
    /// take the waiting calls: they are refused as by a full queue.
    fn runner_refused(&self) {
        let stranded = {
            let mut queue = self.shared.queue.lock();
            queue.runners -= 1;
            if queue.runners > 0 {
                return;
            }
            std::mem::take(&mut queue.calls)
        };
        for Queued(call) in stranded {
            refuse_full(call);
        }
    }
}

/// The size of `pool` named `name`; nginx's default thread count and no limit of ours
/// (nginx's own queue limit still holds the runners) if this nginx's pool cannot be read.
fn pool_size(pool: NonNull<ngx_thread_pool_t>, name: &[u8]) -> PoolSize {
    thread_pool_size::read(pool, name).unwrap_or_else(|| {
        let shown = String::from_utf8_lossy(name);
        // SAFETY: the cycle's log lives as long as the worker.
        let log = unsafe { (*ngx_cycle).log };
        ngx_log_error!(
            NGX_LOG_ALERT,
            log,
            "gateway: the size of thread pool \"{shown}\" cannot be read from this nginx; \
             up to {UNKNOWN_THREADS} of its threads run calls, and only its own queue limit holds"
        );
        PoolSize {
            threads: UNKNOWN_THREADS,
            max_queue: usize::MAX,
        }
    })
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
    // Registers the waiter before any thread can complete the call.
    pending_call::wait(pending);
    Lane::of(pool, conf).push(pending);
    NGX_DONE as ngx_int_t
}

/// End of an event-loop turn: queues the calls made ready in it, and posts the runners
/// they need.
unsafe extern "C" fn flush_lane(event: *mut ngx_event_t) {
    // SAFETY: the flush event's data is its lane, which is never freed.
    let lane = unsafe { &*(*event).data.cast::<Lane>() };
    // SAFETY: the cycle's log lives as long as the worker.
    let log = unsafe { (*ngx_cycle).log };
    guard(log, "offloaded calls", (), || {
        for call in lane.enqueue() {
            refuse_full(call);
        }
        lane.top_up();
    })
}

/// Answers 503 for a call that never ran: the pool's queue is full.
fn refuse_full(call: NonNull<PendingCall>) {
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

/// Runs on a thread of the pool: the lane's queued calls, one at a time, until there are none
/// or its turn is over. Taking a call while others wait, with no other runner free, it asks
/// the loop for another: should this call be slow, the others do not wait for it.
unsafe extern "C" fn run_calls(data: *mut c_void, log: *mut ngx_log_t) {
    // SAFETY: the task's context is its runner, which nginx hands to this thread alone until
    // the task's event runs on the loop; only what it shares with the lane is used here.
    let shared = unsafe { &(*data.cast::<Runner>()).shared };
    let turn = Instant::now();
    let mut queue = shared.queue.lock();
    while let Some(Queued(call)) = queue.calls.pop_front() {
        queue.busy += 1;
        let ask = !queue.asked
            && !queue.calls.is_empty()
            && queue.runners == queue.busy
            && queue.runners < shared.threads;
        queue.asked |= ask;
        MutexGuard::unlocked(&mut queue, || {
            if ask {
                shared.wanted.wake();
            }
            guard(log, "offloaded call", (), || run(call));
        });
        queue.busy -= 1;
        if turn.elapsed() >= RUNNER_TURN {
            break;
        }
    }
    queue.runners -= 1;
}

/// Runs one call on this thread: only the app's code, with what was prepared for it.
fn run(pending: NonNull<PendingCall>) {
    let pending = pending.as_ptr();
    // SAFETY: the loop keeps the call and its request until the call is completed, which
    // only its handle does, and changes only the deadline fields of a queued call. Nothing of
    // the call is used once the handle is handed over: the loop may then end it at any time.
    let (conf, state, entry, instance, handle, request) = unsafe {
        let call = &(*pending).call;
        (
            PendingCall::conf_of(pending),
            &*Arc::as_ptr(&call.state),
            call.app.descriptor().call,
            call.instance,
            call.handle,
            call.request,
        )
    };
    let pool = conf.counters.pool();
    if !state.deliver() {
        // It timed out while queued: nobody waits for its answer any more.
        if let Some(pool) = pool {
            pool.skipped();
        }
        // SAFETY: the app never had the handle.
        unsafe { complete_unrun(handle) };
        return;
    }
    if let Some(pool) = pool {
        pool.started();
    }
    // SAFETY: checked descriptor, loaded for as long as the configuration (`conf.app`); the
    // request is held until the app completes the call.
    unsafe { entry(instance, handle, request) };
    if let Some(pool) = pool {
        pool.finished();
    }
}

/// On the loop, when a runner asked for another.
fn runner_wanted(data: NonNull<c_void>) {
    // SAFETY: the waiter's data is its lane, which lives as long as the event loop.
    let lane: &'static Lane = unsafe { data.cast::<Lane>().as_ref() };
    loop {
        lane.shared.queue.lock().asked = false;
        lane.top_up();
        // A runner that asked since the waiter was taken left its wake for this to find.
        if lane.shared.wanted.wait_for_wake(lane.waiter()) {
            break;
        }
    }
}

/// Back on the loop once a runner has ended: if calls still wait (it ended its turn, or they
/// came as it ended), runners are posted for them.
unsafe extern "C" fn runner_returned(event: *mut ngx_event_t) {
    // SAFETY: the event's data is its runner, boxed by its lane and given to nginx by
    // `post_runner`; nginx gives it back with this event and no longer uses it.
    let runner = unsafe { Box::from_raw((*event).data.cast::<Runner>()) };
    // SAFETY: the lane lives as long as the event loop.
    let lane = unsafe { &*runner.lane };
    lane.spare.borrow_mut().push(runner);
    // SAFETY: the cycle's log lives as long as the worker.
    let log = unsafe { (*ngx_cycle).log };
    guard(log, "offloaded calls", (), || lane.top_up());
}
