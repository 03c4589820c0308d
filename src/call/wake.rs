//! The way into this worker's event loop from any thread: calls that completed, and streams
//! that were woken, are queued here and run by the loop.
//!
//! An eventfd registered with nginx's event module (as a connection of its own, read events
//! only) carries the signal. nginx's own `ngx_notify` is not an option: it has room for one
//! handler, which the thread pools already use. An eventfd, unlike a pipe, is one descriptor
//! whose counter never fills up, however many threads signal before the loop reads it. Only
//! the thread that finds the queue empty writes it, so a burst of completions costs one
//! write and one wake-up of the loop.

use std::mem::take;
use std::sync::Arc;

use ngx::ffi::{
    ngx_close_connection, ngx_connection_t, ngx_cycle_t, ngx_event_t, ngx_get_connection,
    ngx_handle_read_event, ngx_int_t, NGX_LOG_ALERT, NGX_OK,
};
use ngx::ngx_log_error;
use parking_lot::Mutex;

use super::CallState;
use crate::panic_guard::guard;

/// States to hand to the loop, and the eventfd to signal it with (-1 outside a worker).
struct Queue {
    states: Vec<Arc<CallState>>,
    fd: i32,
}

static QUEUE: Mutex<Queue> = Mutex::new(Queue {
    states: Vec::new(),
    fd: -1,
});

/// The eventfd's connection, on this worker's loop.
struct Listener(*mut ngx_connection_t);

// SAFETY: set and read by the worker's event-loop thread only.
unsafe impl Send for Listener {}

static LISTENER: Mutex<Listener> = Mutex::new(Listener(std::ptr::null_mut()));

/// Queues `state` for the loop, signalling it if the queue was empty.
pub(super) fn queue(state: Arc<CallState>) {
    let fd = {
        let mut queue = QUEUE.lock();
        queue.states.push(state);
        if queue.states.len() > 1 {
            return;
        }
        queue.fd
    };
    if fd >= 0 {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to our eventfd; a full counter (EAGAIN)
        // cannot happen with one write per empty queue, and any error leaves the loop no
        // worse off than not signalling.
        unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
    }
}

/// Opens this worker's eventfd and adds it to nginx's event loop; false (with an alert) if
/// it could not, in which case calls completed later from other threads are not served.
pub fn start(cycle: &ngx_cycle_t) -> bool {
    // SAFETY: plain system call; the result is checked.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        let error = std::io::Error::last_os_error();
        ngx_log_error!(
            NGX_LOG_ALERT,
            cycle.log,
            "gateway: eventfd() failed: {error}"
        );
        return false;
    }
    // SAFETY: `fd` is ours; nginx takes a free connection for it, or returns null.
    let connection = unsafe { ngx_get_connection(fd, cycle.log) };
    if connection.is_null() {
        // SAFETY: nginx did not take the descriptor.
        unsafe { libc::close(fd) };
        return false;
    }
    // SAFETY: a fresh connection with its read event, on this worker's loop.
    let added = unsafe {
        let rev = (*connection).read;
        (*rev).handler = Some(drain);
        (*rev).log = cycle.log;
        (*connection).log = cycle.log;
        ngx_handle_read_event(rev, 0) == NGX_OK as ngx_int_t
    };
    if !added {
        // SAFETY: the connection is ours and in no event set.
        unsafe { ngx_close_connection(connection) };
        return false;
    }
    LISTENER.lock().0 = connection;
    QUEUE.lock().fd = fd;
    true
}

/// Closes the eventfd when the worker exits (nginx alerts about connections left open).
pub fn stop() {
    let connection = std::mem::replace(&mut LISTENER.lock().0, std::ptr::null_mut());
    if connection.is_null() {
        return;
    }
    QUEUE.lock().fd = -1;
    // SAFETY: the connection was opened by `start` and is closed once; nginx removes its
    // event and closes the descriptor.
    unsafe { ngx_close_connection(connection) };
}

/// Runs the waiters of every queued state, on the loop.
unsafe extern "C" fn drain(event: *mut ngx_event_t) {
    // SAFETY: nginx passes our read event, whose connection holds the eventfd.
    let (fd, log) = unsafe {
        let connection = (*event).data.cast::<ngx_connection_t>();
        ((*connection).fd, (*event).log)
    };
    let mut counter: u64 = 0;
    // SAFETY: reads 8 bytes into a live u64; one read empties the counter, EAGAIN is fine.
    unsafe { libc::read(fd, (&mut counter as *mut u64).cast(), 8) };
    guard(log, "wake-up", (), || {
        // Taken after the read: a state queued after it signals again.
        let states = take(&mut QUEUE.lock().states);
        for state in states {
            if let Some(waiter) = state.dequeue() {
                guard(log, "woken call", (), || (waiter.resume)(waiter.data));
            }
        }
    })
}
