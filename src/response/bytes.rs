//! Bodies in memory: the app's bytes (or the module's own) sent as they are, without a copy.

use ngx::ffi::{
    ngx_buf_t, ngx_http_request_t, ngx_http_send_special, ngx_int_t, ngx_pcalloc, NGX_ERROR,
    NGX_HTTP_LAST,
};

use super::{send_header, send_whole_body};

/// Sends the header, then `body` as the whole response body, without copying it: `body` must
/// stay valid and unchanged until the request ends (the app's memory until its release, or
/// the request's pool).
pub fn send_bytes(r: &mut ngx_http_request_t, body: &[u8]) -> ngx_int_t {
    if let Some(rc) = send_header(r) {
        return rc;
    }
    if body.is_empty() {
        // SAFETY: `r` is live and its header was sent.
        return unsafe { ngx_http_send_special(r, NGX_HTTP_LAST as usize) };
    }
    // SAFETY: the request pool is live.
    let buf = unsafe { ngx_pcalloc(r.pool, std::mem::size_of::<ngx_buf_t>()) }.cast::<ngx_buf_t>();
    if buf.is_null() {
        return NGX_ERROR as ngx_int_t;
    }
    // SAFETY: `buf` is zeroed and ours. It points at `body`, which the caller keeps valid until
    // the request ends; `memory` tells nginx not to write to it.
    unsafe {
        (*buf).pos = body.as_ptr().cast_mut();
        (*buf).last = body.as_ptr().add(body.len()).cast_mut();
        (*buf).set_memory(1);
    }
    send_whole_body(r, buf)
}
