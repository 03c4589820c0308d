//! Holding a request while work off the event loop (a thread, or an app completing later)
//! may still use it, the way nginx's own threaded code does.
//!
//! A reference (`count`) keeps ordinary finalization from freeing the request, but nginx's
//! termination (a client that reset, a failing `error_page`, a write error) ignores
//! references and frees the request at once, unless it is `blocked`: then it only marks the
//! connection as failed and leaves the rest to whoever unblocks it. A hold takes both.

use ngx::ffi::{
    ngx_add_timer, ngx_event_t, ngx_http_finalize_request, ngx_http_request_t,
    ngx_http_run_posted_requests, ngx_int_t, ngx_msec_t, NGX_ERROR,
};

/// Holds `r`: nginx will not free it until [`unblock`] and a finalization give it back.
pub fn hold(r: &mut ngx_http_request_t) {
    // SAFETY: `r.main` is the live main request.
    let main = unsafe { &mut *r.main };
    main.set_count(main.count() + 1);
    block(r);
}

/// Blocks `r` for a holder that already has a reference of its own: nginx will not free it
/// until [`unblock`].
pub fn block(r: &mut ngx_http_request_t) {
    // SAFETY: `r.main` is the live main request.
    let main = unsafe { &mut *r.main };
    main.set_blocked(main.blocked() + 1);
}

/// What became of a request while it was held.
#[derive(Debug, PartialEq, Eq)]
pub enum Unblocked {
    /// It goes on: its holder still has the reference to give back with a finalization.
    Live,
    /// nginx terminated it meanwhile; that termination is now finished and the request may
    /// be freed: the holder's reference is gone with it.
    Terminated,
}

/// The off-loop work is done with `r`: lifts the block, and finishes a termination that came
/// while it was held.
pub fn unblock(r: &mut ngx_http_request_t) -> Unblocked {
    // SAFETY: `r.main` is the live main request, held by the caller.
    let main = unsafe { &mut *r.main };
    main.set_blocked(main.blocked() - 1);
    // SAFETY: a live request has its connection.
    if unsafe { (*r.connection).error() } == 0 {
        return Unblocked::Live;
    }
    // A failed connection makes any finalization a termination, which now frees the request
    // whatever its count.
    finalize_from_event(r, NGX_ERROR as ngx_int_t);
    Unblocked::Terminated
}

/// How often a timer that keeps a gracefully quitting worker waiting for off-loop work (nginx
/// lets a quitting worker exit once no timer is left) comes round again.
pub const KEEP_WAITING_MS: ngx_msec_t = 60_000;

/// The handler of such a timer: it only re-arms itself, until its owner deletes it.
pub unsafe extern "C" fn keep_waiting(event: *mut ngx_event_t) {
    // SAFETY: the event lives as long as its owner's work, which deletes the timer.
    unsafe { ngx_add_timer(event, KEEP_WAITING_MS) };
}

/// Finalizes `r` from an event handler of our own (a thread task's return, a timer): nginx's
/// request handler, which would run the requests that finalization posted (such as the
/// termination of a failed one), is not on the stack, so run them here.
pub fn finalize_from_event(r: &mut ngx_http_request_t, rc: ngx_int_t) {
    let connection = r.connection;
    // SAFETY: `r` is live and this call gives back one of its references; it may be freed
    // after, and only the connection is used below.
    unsafe {
        ngx_http_finalize_request(r, rc);
        ngx_http_run_posted_requests(connection);
    }
}
