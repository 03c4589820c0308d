//! Pulling the stream of a location with `gateway_thread_pool` on that pool: one chunk at a
//! time, each made on a thread and sent from the event loop, so the write-event backpressure
//! holds while the app's code stays off the loop. While a pull is out the request is blocked
//! ([`request_hold`]): a client that resets meanwhile cannot have nginx free the pump under
//! the thread.

use std::ffi::c_void;
use std::ptr::NonNull;
use std::sync::Arc;

use gateway_abi as abi;
use ngx::ffi::{
    ngx_add_timer, ngx_del_timer, ngx_event_t, ngx_http_request_t, ngx_int_t, ngx_log_t,
    ngx_thread_pool_t, ngx_thread_task_alloc, ngx_thread_task_post, ngx_thread_task_t, NGX_ERROR,
    NGX_OK,
};

use super::{cut_short, pulled, pump_of, run, Pump, Turn};
use crate::app_loader::App;
use crate::app_log;
use crate::panic_guard::guard;
use crate::request_hold::{self, Unblocked, KEEP_WAITING_MS};

/// Pulling a stream on a thread pool, one chunk at a time like on the event loop.
pub(super) struct OffloadedPulls {
    pool: NonNull<ngx_thread_pool_t>,
    /// Reposted for every pull; its context points back at the pump.
    task: NonNull<ngx_thread_task_t>,
    /// A pull is on a thread: the pump must not run, end or free anything until it is back.
    pulling: bool,
    /// What the thread got, read on the event loop once the task's event ran.
    status: i32,
    chunk: abi::Chunk,
    /// Keeps a gracefully exiting worker waiting while a pull is out.
    keep_alive: ngx_event_t,
}

impl OffloadedPulls {
    pub(super) fn new(
        r: &mut ngx_http_request_t,
        pool: NonNull<ngx_thread_pool_t>,
    ) -> Option<Self> {
        // SAFETY: the request pool is live; the context holds the pump's address.
        let task = NonNull::new(unsafe {
            ngx_thread_task_alloc(r.pool, std::mem::size_of::<*mut Pump>())
        })?;
        // SAFETY: a fresh task; its event comes back to this request.
        unsafe {
            let task = &mut *task.as_ptr();
            task.handler = Some(pull_on_thread);
            task.event.data = (r as *mut ngx_http_request_t).cast();
            task.event.handler = Some(pull_returned);
        }
        // SAFETY: all-zero is the idle state of an nginx event.
        let mut keep_alive: ngx_event_t = unsafe { std::mem::zeroed() };
        // SAFETY: a live request has a connection with a log.
        keep_alive.log = unsafe { (*r.connection).log };
        keep_alive.handler = Some(request_hold::keep_waiting);
        Some(OffloadedPulls {
            pool,
            task,
            pulling: false,
            status: abi::STREAM_END,
            chunk: abi::Chunk {
                data: abi::Bytes::EMPTY,
                flush: 0,
            },
            keep_alive,
        })
    }

    /// Points the pull task at the pump, once the pump has its place in the pool.
    pub(super) fn attach(&mut self, pump: *mut Pump) {
        // SAFETY: the task's context was allocated to hold one pointer.
        unsafe { *(*self.task.as_ptr()).ctx.cast::<*mut Pump>() = pump };
    }

    /// A pull is on a thread: the pump must not run, end or free anything until it is back.
    pub(super) fn pulling(&self) -> bool {
        self.pulling
    }

    /// Sends the next pull to a thread; the pump waits for it.
    pub(super) fn post(&mut self, r: &mut ngx_http_request_t, app: &Arc<App>) -> Turn {
        // SAFETY: the task is idle (no pull is out) and the pool is live.
        if unsafe { ngx_thread_task_post(self.pool.as_ptr(), self.task.as_ptr()) }
            != NGX_OK as ngx_int_t
        {
            app_log::error(
                r,
                app,
                format_args!("stream cut short: the thread pool's queue is full"),
            );
            return cut_short(r);
        }
        self.pulling = true;
        request_hold::block(r);
        // SAFETY: the event lives in the pump, in the pool, as long as the request.
        unsafe { ngx_add_timer(&mut self.keep_alive, KEEP_WAITING_MS) };
        Turn::Paused
    }
}

/// Runs on a thread of the pool: only the app's stream, writing into the pump's pull slots.
unsafe extern "C" fn pull_on_thread(data: *mut c_void, log: *mut ngx_log_t) {
    guard(log, "offloaded stream", (), || {
        // SAFETY: the context holds the pump, which the event loop leaves alone while
        // `pulling` is set.
        let pump = unsafe { &mut **data.cast::<*mut Pump>() };
        let Some(offload) = pump.offload.as_mut() else {
            return;
        };
        let mut chunk = abi::Chunk {
            data: abi::Bytes::EMPTY,
            flush: 0,
        };
        // SAFETY: as in `pull`: the stream is live and only this thread calls it now.
        offload.status = unsafe { (pump.next)(pump.stream, &mut chunk) };
        offload.chunk = chunk;
    })
}

/// Back on the event loop with the pulled chunk: carry on pumping.
unsafe extern "C" fn pull_returned(event: *mut ngx_event_t) {
    // SAFETY: the task's event data is the request, held by the pump's reference.
    let r = unsafe { &mut *(*event).data.cast::<ngx_http_request_t>() };
    // SAFETY: a live request has a connection with a log.
    let log = unsafe { (*r.connection).log };
    let turn = guard(
        log,
        "stream",
        Turn::Finished(NGX_ERROR as ngx_int_t),
        || {
            let pump = pump_of(r);
            let Some(offload) = pump.offload.as_mut() else {
                return Turn::Finished(NGX_ERROR as ngx_int_t);
            };
            offload.pulling = false;
            if offload.keep_alive.timer_set() != 0 {
                // SAFETY: the timer is set, on this event.
                unsafe { ngx_del_timer(&mut offload.keep_alive) };
            }
            if request_hold::unblock(r) == Unblocked::Terminated {
                // The client went away during the pull; the request, the pump and the
                // pump's reference are gone with its termination.
                return Turn::Paused;
            }
            let (status, chunk) = (offload.status, offload.chunk);
            match pulled(r, pump, status, chunk) {
                Some(turn) => turn,
                None => run(r),
            }
        },
    );
    if let Turn::Finished(rc) = turn {
        // Gives back the pump's reference; the request may be freed after this.
        request_hold::finalize_from_event(r, rc);
    }
}
