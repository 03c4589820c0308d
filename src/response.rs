//! Turning an app's response into nginx's: status, headers and body, checked before anything
//! is sent so that an invalid response becomes a clean 500 instead of a broken one.

use std::ffi::c_void;
use std::sync::Arc;

use gateway_abi as abi;

use ngx::core::Pool;
use ngx::ffi::{
    ngx_buf_t, ngx_chain_t, ngx_http_internal_redirect, ngx_http_named_location,
    ngx_http_output_filter, ngx_http_request_t, ngx_http_send_header, ngx_int_t, ngx_list_push,
    ngx_parse_http_time, ngx_pool_cleanup_add, ngx_str_t, ngx_table_elt_t, off_t, NGX_DONE,
    NGX_ERROR, NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_OK,
};

use crate::app_loader::App;
use crate::call::{AppResponse, Outcome};
use crate::call_record::CallRecord;
use crate::conf::LocationConf;
use crate::panic_guard::guard;
use crate::{app_log, pool_bytes};

mod bytes;
mod check;
mod file;
mod stream;

pub use bytes::send_bytes;
use check::check;
pub use check::Checked;

pub const INTERNAL_SERVER_ERROR: ngx_int_t = NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;

/// Sends what the app answered (or says why it cannot), once its call completed, and records
/// it; returns what the request is to be finalized with.
pub fn answer(
    r: &mut ngx_http_request_t,
    conf: &LocationConf,
    app: &Arc<App>,
    outcome: Outcome,
) -> ngx_int_t {
    let Some(record) = CallRecord::of(r) else {
        return INTERNAL_SERVER_ERROR;
    };
    record.returned();
    let rc = match outcome {
        Outcome::Responded(response) => {
            record.set_status(response.get().status);
            send(r, app, response)
        }
        Outcome::Failed { message, panicked } => {
            record.set_status(INTERNAL_SERVER_ERROR as u16);
            if let Some(counters) = conf.counters.app() {
                counters.failed(panicked);
            }
            app_log::error(r, app, format_args!("failed: {message}"));
            INTERNAL_SERVER_ERROR
        }
        Outcome::Pending | Outcome::Abandoned | Outcome::CameLate | Outcome::Taken => {
            record.set_status(INTERNAL_SERVER_ERROR as u16);
            app_log::error(r, app, format_args!("call ended without an answer to send"));
            INTERNAL_SERVER_ERROR
        }
    };
    record.answered(r, conf);
    rc
}

/// Sends `response` for `r` and returns what the request is to be finalized with.
pub fn send(r: &mut ngx_http_request_t, app: &Arc<App>, response: AppResponse) -> ngx_int_t {
    // From here on the pool owns the response: it is released when the request ends, after
    // nginx has sent the body straight from the app's memory.
    let Some(owned) = release_with_pool(r, response) else {
        return INTERNAL_SERVER_ERROR;
    };
    let response = owned.get();
    let checked = match check(response) {
        Ok(checked) => checked,
        Err(invalid) => {
            if let Some(record) = CallRecord::of(r) {
                record.set_status(INTERNAL_SERVER_ERROR as u16);
            }
            app_log::error(
                r,
                app,
                format_args!("returned an invalid response: {invalid}"),
            );
            return INTERNAL_SERVER_ERROR;
        }
    };
    if checked.kind == abi::BODY_REDIRECT {
        return redirect(r, checked.body);
    }
    if set_status_and_headers(r, &checked).is_none() {
        return INTERNAL_SERVER_ERROR;
    }
    match checked.kind {
        abi::BODY_FILE => file::send(r, app, &checked),
        abi::BODY_STREAM => stream::start(r, app, owned.call(), &checked),
        _ => send_bytes(r, checked.body),
    }
}

/// Moves `response` into a cleanup of the request's pool, which releases it when the request
/// ends; `None` (the response released now) if out of memory. The reference is good for as
/// long as the request.
fn release_with_pool<'a>(r: &ngx_http_request_t, response: AppResponse) -> Option<&'a AppResponse> {
    // SAFETY: the request pool is live; nginx allocates the cleanup's data with it.
    let cleanup = unsafe { ngx_pool_cleanup_add(r.pool, std::mem::size_of::<AppResponse>()) };
    if cleanup.is_null() {
        return None;
    }
    // SAFETY: `cleanup` was just allocated by nginx with room for an `AppResponse` in `data`,
    // which stays in the pool until the cleanup runs.
    unsafe {
        let data = (*cleanup).data.cast::<AppResponse>();
        data.write(response);
        (*cleanup).handler = Some(release_response);
        Some(&*data)
    }
}

unsafe extern "C" fn release_response(data: *mut c_void) {
    let log = ngx::log::ngx_cycle_log().as_ptr();
    guard(log, "response release", (), || {
        // SAFETY: `data` holds the response moved there by `release_with_pool`; read once,
        // and dropping it releases it.
        drop(unsafe { data.cast::<AppResponse>().read() });
    })
}

fn set_status_and_headers(r: &mut ngx_http_request_t, checked: &Checked) -> Option<()> {
    // SAFETY: the request's pool lives as long as the request.
    let pool = unsafe { Pool::from_ngx_pool(r.pool) };
    r.headers_out.status = checked.status.into();
    let reason = match checked.reason {
        b"" if !nginx_has_phrase(checked.status) => standard_phrase(checked.status),
        reason => reason,
    };
    if !reason.is_empty() {
        let code = pool_bytes::decimal(&pool, checked.status.into())?;
        let line = pool_bytes::concat(&pool, &[code, b" ", reason])?;
        r.headers_out.status_line = ngx_string(line);
    }
    r.headers_out.content_length_n = match checked.kind {
        abi::BODY_BYTES => checked.body.len() as off_t,
        _ => checked.content_length.map_or(-1, |len| len as off_t),
    };

    for pair in checked.headers {
        // SAFETY: checked in `check`, valid until the response is released.
        let (name, value) = unsafe { (pair.name.as_slice(), pair.value.as_slice()) };
        if name.eq_ignore_ascii_case(b"content-length") {
            // nginx writes its own from content_length_n, which filters such as gzip adjust.
            continue;
        }
        let value = ngx_string(pool_bytes::concat(&pool, &[value])?);
        if name.eq_ignore_ascii_case(b"content-type") {
            r.headers_out.content_type_len = value.len;
            r.headers_out.content_type = value;
            continue;
        }
        let header = push_header(r, ngx_string(pool_bytes::concat(&pool, &[name])?), value)?;
        // nginx's filters read these from their own fields: gzip skips an encoded body,
        // not_modified and range compare ETag and Last-Modified, and the header filters add
        // their own Server and Date only when these are unset.
        if name.eq_ignore_ascii_case(b"content-encoding") {
            r.headers_out.content_encoding = header;
        } else if name.eq_ignore_ascii_case(b"server") {
            r.headers_out.server = header;
        } else if name.eq_ignore_ascii_case(b"date") {
            r.headers_out.date = header;
        } else if name.eq_ignore_ascii_case(b"etag") {
            r.headers_out.etag = header;
        } else if name.eq_ignore_ascii_case(b"last-modified") {
            // SAFETY: `value` is a pool string of `len` bytes.
            let time = unsafe { ngx_parse_http_time(value.data, value.len) };
            if time != NGX_ERROR as i64 {
                r.headers_out.last_modified = header;
                r.headers_out.last_modified_time = time;
            }
        }
    }
    Some(())
}

/// Whether nginx's own status line table has a phrase for `status` (1.22 to 1.28 agree); for
/// the others (422, 207, 451, ...) it would send a bare code.
fn nginx_has_phrase(status: u16) -> bool {
    matches!(status, 200..=202 | 204 | 206 | 301..=304 | 307 | 308 | 400..=406 | 408..=416 | 421 | 429 | 500..=505 | 507)
}

fn standard_phrase(status: u16) -> &'static [u8] {
    http::StatusCode::from_u16(status)
        .ok()
        .and_then(|status| status.canonical_reason())
        .unwrap_or("")
        .as_bytes()
}

fn push_header(
    r: &mut ngx_http_request_t,
    key: ngx_str_t,
    value: ngx_str_t,
) -> Option<*mut ngx_table_elt_t> {
    // SAFETY: the output header list is initialised for every request.
    let header = unsafe { ngx_list_push(&mut r.headers_out.headers) }.cast::<ngx_table_elt_t>();
    if header.is_null() {
        return None;
    }
    // SAFETY: `header` is a fresh, writable list element. Zeroing first keeps fields that
    // only some nginx versions have (such as `next`) empty.
    unsafe {
        std::ptr::write_bytes(header, 0, 1);
        (*header).hash = 1;
        (*header).key = key;
        (*header).value = value;
    }
    Some(header)
}

pub fn ngx_string(bytes: &mut [u8]) -> ngx_str_t {
    ngx_str_t {
        len: bytes.len(),
        data: bytes.as_mut_ptr(),
    }
}

/// Sends the response header; `Some(rc)` when there is nothing more to send (an error, HEAD,
/// a 304 from nginx's filters).
pub fn send_header(r: &mut ngx_http_request_t) -> Option<ngx_int_t> {
    // SAFETY: `r` is a live request whose headers are set.
    let rc = unsafe { ngx_http_send_header(r) };
    (rc == NGX_ERROR as ngx_int_t || rc > NGX_OK as ngx_int_t || r.header_only() != 0).then_some(rc)
}

/// Sends `buf`, filled in by the caller, as the whole response body: the last buffer of a main
/// request (a subrequest's ends only its part).
fn send_whole_body(r: &mut ngx_http_request_t, buf: *mut ngx_buf_t) -> ngx_int_t {
    let is_main = std::ptr::eq(r.main, r);
    // SAFETY: `buf` is a live buffer of the request's pool, which the caller filled in.
    unsafe {
        (*buf).set_last_buf(u32::from(is_main));
        (*buf).set_last_in_chain(1);
    }
    let mut out = ngx_chain_t {
        buf,
        next: std::ptr::null_mut(),
    };
    // SAFETY: `r` is live; nginx copies the chain link before returning.
    unsafe { ngx_http_output_filter(r, &mut out) }
}

/// Hands the request to another location: a URI (with an optional query) or `@name`.
fn redirect(r: &mut ngx_http_request_t, target: &[u8]) -> ngx_int_t {
    // SAFETY: the request's pool lives as long as the request.
    let pool = unsafe { Pool::from_ngx_pool(r.pool) };
    // nginx keeps pointers to these strings for the rest of the request: copy to the pool.
    let Some(target) = pool_bytes::concat(&pool, &[target]) else {
        return INTERNAL_SERVER_ERROR;
    };
    let mut uri = ngx_string(target);
    if target.starts_with(b"@") {
        // SAFETY: `r` is live; nginx runs the named location's handlers later.
        unsafe { ngx_http_named_location(r, &mut uri) };
        return NGX_DONE as ngx_int_t;
    }
    let (path, query) = match target.iter().position(|&byte| byte == b'?') {
        Some(at) => {
            let (path, query) = target.split_at_mut(at);
            (path, &mut query[1..])
        }
        None => (target, &mut [][..]),
    };
    let (mut path, mut args) = (ngx_string(path), ngx_string(query));
    // SAFETY: as above; on failure nginx finalizes the request itself.
    unsafe { ngx_http_internal_redirect(r, &mut path, &mut args) };
    NGX_DONE as ngx_int_t
}
