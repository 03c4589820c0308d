//! Streamed bodies: pulled from the app one chunk at a time, only while nginx can send.
//!
//! Each chunk is copied into one of a few recycled buffers and passed down nginx's output
//! filters. When every buffer is still queued (the client reads slowly) or the socket is full,
//! the pump stops and waits for the connection's write event, so a stream never holds more
//! than `MAX_BUFFERS * BUFFER_SIZE` bytes however large or endless it is. Copying lets the app
//! reuse a chunk's memory as soon as it is asked for the next one.

use std::ffi::c_void;
use std::ptr::{addr_of, addr_of_mut, null_mut, NonNull};
use std::sync::Arc;

use gateway_abi as abi;
use ngx::core::Pool;
use ngx::ffi::{
    ngx_add_timer, ngx_chain_get_free_buf, ngx_chain_t, ngx_chain_update_chains, ngx_del_timer,
    ngx_event_t, ngx_handle_write_event, ngx_http_finalize_request, ngx_http_output_filter,
    ngx_http_request_t, ngx_http_send_special, ngx_http_test_reading, ngx_int_t, ngx_post_event,
    ngx_posted_events, NGX_AGAIN, NGX_DONE, NGX_ERROR, NGX_HTTP_FLUSH, NGX_HTTP_LAST,
    NGX_HTTP_REQUEST_TIME_OUT, NGX_LOG_INFO, NGX_OK,
};
use ngx::http::{HttpModule, HttpModuleLocationConf, NgxHttpCoreModule};
use ngx::ngx_log_error;

use crate::app_loader::App;
use crate::call::{CallState, Waiter};
use crate::call_record::CallRecord;
use crate::panic_guard::guard;
use crate::request_hold::{self, finalize_from_event, KEEP_WAITING_MS};
use crate::response::{self, Checked};
use crate::{app_log, Module};

const BUFFER_SIZE: usize = 32 * 1024;
/// At most this many buffers of one stream are with nginx at once.
const MAX_BUFFERS: usize = 8;
/// Buffers sent in one go before the pump lets other connections run.
const BUFFERS_PER_TURN: usize = 32;

/// One stream's state, in the request's pool, found through its call record.
pub struct Pump {
    app: Arc<App>,
    /// The call the stream answers: the app wakes a pending stream through it.
    call: Arc<CallState>,
    /// The stream answered `STREAM_PENDING` and a waiter is registered for its wake. The
    /// request is not blocked meanwhile: nginx may end it (a client gone,
    /// `worker_shutdown_timeout`) and free it at once, which drops the pump (unregistering the
    /// waiter) and releases the response, which tells the app.
    awaiting_wake: bool,
    /// Keeps a gracefully quitting worker waiting while the stream waits for its app.
    wake_keep_alive: ngx_event_t,

    stream: *mut c_void,
    next: unsafe extern "C" fn(*mut c_void, *mut abi::Chunk) -> i32,
    /// The part of the current chunk not yet copied out; valid until the next pull.
    pending: &'static [u8],
    pending_flush: bool,
    /// `text/event-stream`: every chunk goes out at once.
    flush_every_chunk: bool,
    free: *mut ngx_chain_t,
    busy: *mut ngx_chain_t,
    buffers: usize,
    sent: u64,
    declared_length: Option<u64>,
    /// Set for a location with `gateway_thread_pool`: chunks are made on its threads too.
    offload: Option<OffloadedPulls>,
}

#[cfg(ngx_feature = "threads")]
mod on_threads;
#[cfg(ngx_feature = "threads")]
use on_threads::OffloadedPulls;

/// Without nginx thread pools no location offloads, so no stream is pulled on a thread.
#[cfg(not(ngx_feature = "threads"))]
enum OffloadedPulls {}

#[cfg(not(ngx_feature = "threads"))]
impl OffloadedPulls {
    fn new(_: &mut ngx_http_request_t, pool: crate::conf::ThreadPool) -> Option<Self> {
        match pool {}
    }

    fn attach(&mut self, _: *mut Pump) {
        match *self {}
    }

    fn pulling(&self) -> bool {
        match *self {}
    }

    fn post(&mut self, _: &mut ngx_http_request_t, _: &Arc<App>) -> Turn {
        match *self {}
    }
}

/// What the pump did this turn.
enum Turn {
    /// Waiting for the client (or yielded to other connections): the write event resumes it.
    Paused,
    /// The response is complete, or failed: finalize the request with this.
    Finished(ngx_int_t),
}

impl Drop for Pump {
    fn drop(&mut self) {
        // The pool is going: a wake that comes later must find nothing to resume.
        self.call.forget_waiter();
        if self.wake_keep_alive.timer_set() != 0 {
            // SAFETY: the timer is set, on this event, which is about to go.
            unsafe { ngx_del_timer(&mut self.wake_keep_alive) };
        }
    }
}

/// Sends the header, then pumps the stream until it ends or nginx must wait for the client.
pub fn start(
    r: &mut ngx_http_request_t,
    app: &Arc<App>,
    call: &Arc<CallState>,
    checked: &Checked,
) -> ngx_int_t {
    let flush_every_chunk = r
        .headers_out
        .content_type
        .as_bytes()
        .get(..17)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(b"text/event-stream"));
    // HEAD, a 304 or an error: the stream is never pulled, only released with the request.
    if let Some(rc) = response::send_header(r) {
        return rc;
    }
    let Some(next) = checked.response.stream_next else {
        return NGX_ERROR as ngx_int_t;
    };
    // SAFETY: the request's pool lives as long as the request.
    let pool = unsafe { Pool::from_ngx_pool(r.pool) };
    let offload = match Module::location_conf(r).and_then(|conf| conf.thread_pool) {
        Some(thread_pool) => match OffloadedPulls::new(r, thread_pool) {
            Some(offload) => Some(offload),
            None => return NGX_ERROR as ngx_int_t,
        },
        None => None,
    };
    // SAFETY: all-zero is the idle state of an nginx event.
    let mut wake_keep_alive: ngx_event_t = unsafe { std::mem::zeroed() };
    // SAFETY: a live request has a connection with a log.
    wake_keep_alive.log = unsafe { (*r.connection).log };
    wake_keep_alive.handler = Some(request_hold::keep_waiting);
    let pump = pool.allocate(Pump {
        offload,
        app: Arc::clone(app),
        call: Arc::clone(call),
        awaiting_wake: false,
        wake_keep_alive,
        stream: checked.response.stream,
        next,
        pending: &[],
        pending_flush: false,
        flush_every_chunk,
        free: null_mut(),
        busy: null_mut(),
        buffers: 0,
        sent: 0,
        declared_length: checked.content_length,
    });
    if pump.is_null() {
        return NGX_ERROR as ngx_int_t;
    }
    let Some(record) = CallRecord::of(r) else {
        return NGX_ERROR as ngx_int_t;
    };
    record.stream.set(pump.cast());
    // SAFETY: `pump` is live and pinned in the pool; the pull task finds it through this.
    if let Some(offload) = unsafe { (*pump).offload.as_mut() } {
        offload.attach(pump);
    }

    // The pump holds its own reference on the request until it finalizes it; the caller's
    // NGX_DONE gives back the one taken for reading the body.
    // SAFETY: `r.main` is the live main request.
    let main = unsafe { &mut *r.main };
    main.set_count(main.count() + 1);
    r.write_event_handler = Some(write_event_handler);
    // As nginx's own writer does: a client that goes away (a closed connection, an HTTP/2
    // RST_STREAM) shows on the read side, also while the pump waits for a write or its app.
    r.read_event_handler = Some(ngx_http_test_reading);
    if let Turn::Finished(rc) = run(r) {
        // SAFETY: gives back the pump's reference.
        unsafe { ngx_http_finalize_request(r, rc) };
    }
    NGX_DONE as ngx_int_t
}

/// The app woke its pending stream: pump again, on the loop.
fn stream_woken(data: NonNull<c_void>) {
    // SAFETY: the waiter is registered only while the pump (and so its request) is live; the
    // pump's drop unregisters it.
    let r = unsafe { &mut *data.cast::<ngx_http_request_t>().as_ptr() };
    let pump = pump_of(r);
    if !pump.awaiting_wake {
        // Pumped since by a write event, which took the waiter back: nothing to do.
        return;
    }
    if let Turn::Finished(rc) = run(r) {
        finalize_from_event(r, rc);
    }
}

/// The stream has no chunk ready: send what it made so far, then wait for its wake.
fn await_wake(r: &mut ngx_http_request_t, pump: &mut Pump) -> Option<Turn> {
    // SAFETY: `r` is live and its header was sent.
    if unsafe { ngx_http_send_special(r, NGX_HTTP_FLUSH as usize) } == NGX_ERROR as ngx_int_t {
        return Some(Turn::Finished(NGX_ERROR as ngx_int_t));
    }
    let waiter = Waiter {
        resume: stream_woken,
        data: NonNull::from(&mut *r).cast(),
    };
    if !pump.call.wait_for_wake(waiter) {
        // Woken already: pull again now.
        return None;
    }
    pump.awaiting_wake = true;
    if pump.wake_keep_alive.timer_set() == 0 {
        // SAFETY: the event lives in the pump, which deletes the timer before it goes.
        unsafe { ngx_add_timer(&mut pump.wake_keep_alive, KEEP_WAITING_MS) };
    }
    Some(Turn::Paused)
}

unsafe extern "C" fn write_event_handler(r: *mut ngx_http_request_t) {
    // SAFETY: nginx passes the live request this handler was set on.
    let r = unsafe { &mut *r };
    // SAFETY: a live request has a connection, with its log and write event.
    let (log, wev) = unsafe { ((*r.connection).log, (*r.connection).write) };
    if pump_of(r)
        .offload
        .as_ref()
        .is_some_and(OffloadedPulls::pulling)
    {
        // A thread is making the next chunk and uses the pump: only its return resumes it.
        return;
    }
    let turn = guard(
        log,
        "stream",
        Turn::Finished(NGX_ERROR as ngx_int_t),
        || {
            // SAFETY: as above.
            let event = unsafe { &mut *wev };
            if event.timedout() != 0 {
                ngx_log_error!(
                    NGX_LOG_INFO,
                    log,
                    "client timed out while a stream was sent"
                );
                // SAFETY: as above.
                unsafe { (*r.connection).set_timedout(1) };
                return Turn::Finished(NGX_HTTP_REQUEST_TIME_OUT as ngx_int_t);
            }
            if event.delayed() != 0 {
                // limit_rate holds the connection back; nginx re-arms the event when it may send.
                return wait(r);
            }
            if event.timer_set() != 0 {
                // SAFETY: the timer is set, on this event.
                unsafe { ngx_del_timer(event) };
            }
            run(r)
        },
    );
    if let Turn::Finished(rc) = turn {
        // SAFETY: gives back the pump's reference; the request may be freed after this.
        unsafe { ngx_http_finalize_request(r, rc) };
    }
}

/// The pump of a request whose stream `start` began.
fn pump_of<'a>(r: &ngx_http_request_t) -> &'a mut Pump {
    let pump = CallRecord::of(r).map_or(null_mut(), |record| record.stream.get().cast::<Pump>());
    // SAFETY: `start` put the pump in the request's call record before any turn, and the pool
    // keeps it as long as the request.
    unsafe { &mut *pump }
}

fn run(r: &mut ngx_http_request_t) -> Turn {
    let pump = pump_of(r);
    if pump.awaiting_wake {
        // Running again (woken, or the client's write event came first): a wake still to
        // come is not needed any more.
        pump.awaiting_wake = false;
        pump.call.forget_waiter();
        if pump.wake_keep_alive.timer_set() != 0 {
            // SAFETY: the timer is set, on this event.
            unsafe { ngx_del_timer(&mut pump.wake_keep_alive) };
        }
    }
    let tag = addr_of!(Module::module().ctx_index)
        .cast_mut()
        .cast::<c_void>();
    let mut turns_left = BUFFERS_PER_TURN;
    loop {
        // Take back the buffers nginx has finished with.
        // SAFETY: the chains hold only this pump's buffers, from the request's pool.
        unsafe {
            ngx_chain_update_chains(r.pool, &mut pump.free, &mut pump.busy, &mut null_mut(), tag)
        };

        if pump.pending.is_empty() {
            if pump.pending_flush {
                pump.pending_flush = false;
                // SAFETY: `r` is live and its header was sent.
                match unsafe { ngx_http_send_special(r, NGX_HTTP_FLUSH as usize) } {
                    rc if rc == NGX_ERROR as ngx_int_t => return Turn::Finished(rc),
                    rc if rc == NGX_AGAIN as ngx_int_t => return wait(r),
                    _ => {}
                }
            }
            if turns_left == 0 {
                return yield_turn(r);
            }
            turns_left -= 1;
            match pull(r, pump) {
                Some(turn) => return turn,
                None => continue,
            }
        }

        let Some(link) = next_buffer(r, pump) else {
            // Every buffer is still queued: push them out, then wait if the client is slow. A
            // flush, not an empty write: nginx holds small writes back (postpone_output), and
            // with every buffer held back no write event would ever come.
            // SAFETY: `r` is live and its header was sent.
            let rc = unsafe { ngx_http_send_special(r, NGX_HTTP_FLUSH as usize) };
            if rc == NGX_ERROR as ngx_int_t {
                return Turn::Finished(rc);
            }
            // SAFETY: as above.
            unsafe {
                ngx_chain_update_chains(
                    r.pool,
                    &mut pump.free,
                    &mut pump.busy,
                    &mut null_mut(),
                    tag,
                )
            };
            if pump.free.is_null() {
                return wait(r);
            }
            continue;
        };
        let (piece, rest) = pump.pending.split_at(pump.pending.len().min(BUFFER_SIZE));
        pump.pending = rest;
        pump.sent += piece.len() as u64;
        if pump
            .declared_length
            .is_some_and(|declared| pump.sent > declared)
        {
            return length_mismatch(r, pump);
        }
        // SAFETY: `link` holds one of this pump's buffers, of BUFFER_SIZE bytes, not queued.
        unsafe {
            let buf = &mut *(*link).buf;
            buf.pos = buf.start;
            std::ptr::copy_nonoverlapping(piece.as_ptr(), buf.pos, piece.len());
            buf.last = buf.pos.add(piece.len());
            buf.set_flush(u32::from(rest.is_empty() && pump.pending_flush));
            buf.tag = tag;
            (*link).next = null_mut();
        }
        if rest.is_empty() {
            pump.pending_flush = false;
        }
        let mut out = link;
        // SAFETY: `r` is live; `out` is one of this pump's buffers.
        let rc = unsafe { ngx_http_output_filter(r, out) };
        // SAFETY: as above.
        unsafe { ngx_chain_update_chains(r.pool, &mut pump.free, &mut pump.busy, &mut out, tag) };
        if rc == NGX_ERROR as ngx_int_t {
            return Turn::Finished(rc);
        }
        if rc == NGX_AGAIN as ngx_int_t {
            return wait(r);
        }
    }
}

/// Asks the app for the next chunk; `Some` when the pump must stop: the stream is over, or
/// its next chunk is being made on a thread.
fn pull(r: &mut ngx_http_request_t, pump: &mut Pump) -> Option<Turn> {
    if let Some(offload) = pump.offload.as_mut() {
        return Some(offload.post(r, &pump.app));
    }
    let mut chunk = abi::Chunk {
        data: abi::Bytes::EMPTY,
        flush: 0,
    };
    // SAFETY: the stream is live until the response is released with the request, and is
    // called by one thread at a time, never after END or ERROR (the pump stops then).
    let status = unsafe { (pump.next)(pump.stream, &mut chunk) };
    pulled(r, pump, status, chunk)
}

/// Takes in what the stream answered.
fn pulled(
    r: &mut ngx_http_request_t,
    pump: &mut Pump,
    status: i32,
    chunk: abi::Chunk,
) -> Option<Turn> {
    match status {
        abi::STREAM_CHUNK => {
            // SAFETY: the chunk stays valid until the next pull, and `pending` is emptied
            // before the next pull.
            pump.pending = unsafe { chunk.data.as_slice() };
            pump.pending_flush = chunk.flush != 0 || pump.flush_every_chunk;
            None
        }
        abi::STREAM_PENDING => await_wake(r, pump),
        abi::STREAM_END => {
            if pump
                .declared_length
                .is_some_and(|declared| pump.sent != declared)
            {
                return Some(length_mismatch(r, pump));
            }
            // SAFETY: `r` is live and its header was sent.
            Some(Turn::Finished(unsafe {
                ngx_http_send_special(r, NGX_HTTP_LAST as usize)
            }))
        }
        other => {
            let failed = other == abi::STREAM_ERROR || other == abi::STREAM_PANIC;
            let message = if failed {
                // SAFETY: with STREAM_ERROR or STREAM_PANIC the chunk holds the message, valid
                // until the release.
                unsafe { chunk.data.as_slice() }
            } else {
                &[]
            };
            if let Some(counters) = Module::location_conf(r).and_then(|conf| conf.counters.app()) {
                counters.failed(other == abi::STREAM_PANIC);
            }
            let app = Arc::clone(&pump.app);
            app_log::error(
                r,
                &app,
                format_args!(
                    "stream failed after {} bytes, the response is cut short: {}",
                    pump.sent,
                    String::from_utf8_lossy(message)
                ),
            );
            Some(cut_short(r))
        }
    }
}

fn length_mismatch(r: &mut ngx_http_request_t, pump: &Pump) -> Turn {
    let declared = pump.declared_length.unwrap_or_default();
    let app = Arc::clone(&pump.app);
    let what = if pump.sent > declared {
        format!("streamed more than the {declared} bytes its Content-Length declared")
    } else {
        format!(
            "ended its stream after {} of the {declared} bytes its Content-Length declared",
            pump.sent
        )
    };
    app_log::error(r, &app, format_args!("{what}; the response is cut short"));
    cut_short(r)
}

/// Ends a response whose headers are out but whose body went wrong: what was produced is
/// sent, then the connection is closed without the end of the body, so the client sees a
/// truncated response rather than a complete wrong one.
fn cut_short(r: &mut ngx_http_request_t) -> Turn {
    // SAFETY: `r` is live; the flush is best effort, the close below happens regardless.
    unsafe { ngx_http_send_special(r, NGX_HTTP_FLUSH as usize) };
    Turn::Finished(NGX_ERROR as ngx_int_t)
}

/// A buffer to fill: a recycled one, or a new one while fewer than MAX_BUFFERS exist.
fn next_buffer(r: &mut ngx_http_request_t, pump: &mut Pump) -> Option<*mut ngx_chain_t> {
    if pump.free.is_null() && pump.buffers == MAX_BUFFERS {
        return None;
    }
    let recycled = !pump.free.is_null();
    // SAFETY: the request's pool is live; `free` holds only this pump's chain links.
    let link = unsafe { ngx_chain_get_free_buf(r.pool, &mut pump.free) };
    if link.is_null() {
        return None;
    }
    if !recycled {
        // SAFETY: the request's pool is live.
        let pool = unsafe { Pool::from_ngx_pool(r.pool) };
        let memory = pool.alloc(BUFFER_SIZE).cast::<u8>();
        if memory.is_null() {
            return None;
        }
        // SAFETY: `link` is a fresh link with a zeroed buffer.
        unsafe {
            let buf = &mut *(*link).buf;
            buf.start = memory;
            buf.end = memory.add(BUFFER_SIZE);
            buf.set_temporary(1);
        }
        pump.buffers += 1;
    }
    Some(link)
}

/// Waits for the client to take more: the write event (or the send timeout) resumes the pump.
fn wait(r: &mut ngx_http_request_t) -> Turn {
    let Some(core) = NgxHttpCoreModule::location_conf(r) else {
        return Turn::Finished(NGX_ERROR as ngx_int_t);
    };
    // SAFETY: a live request has a connection with a write event.
    let wev = unsafe { (*r.connection).write };
    // SAFETY: as above.
    unsafe {
        if (*wev).ready() == 0 && (*wev).delayed() == 0 {
            ngx_add_timer(wev, core.send_timeout);
        }
        if ngx_handle_write_event(wev, core.send_lowat) != NGX_OK as ngx_int_t {
            return Turn::Finished(NGX_ERROR as ngx_int_t);
        }
    }
    Turn::Paused
}

/// Lets other connections run, then carries on from the posted write event.
fn yield_turn(r: &mut ngx_http_request_t) -> Turn {
    // SAFETY: posting the connection's own write event to nginx's posted queue.
    unsafe { ngx_post_event((*r.connection).write, addr_of_mut!(ngx_posted_events)) };
    Turn::Paused
}
