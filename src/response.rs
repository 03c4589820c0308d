//! Turning an app's response into nginx's: status, headers and body, checked before anything
//! is sent so that an invalid response becomes a clean 500 instead of a broken one.

use std::ffi::c_void;
use std::fmt;

use gateway::abi;
use ngx::core::Pool;
use ngx::ffi::{
    ngx_buf_t, ngx_chain_t, ngx_http_output_filter, ngx_http_request_t, ngx_http_send_header,
    ngx_http_send_special, ngx_int_t, ngx_list_push, ngx_pcalloc, ngx_pool_cleanup_add, ngx_str_t,
    ngx_table_elt_t, off_t, NGX_ERROR, NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_HTTP_LAST, NGX_LOG_ERR,
    NGX_OK,
};
use ngx::ngx_log_error;

use crate::app_loader::App;
use crate::content_handler::AppResponse;
use crate::panic_guard::guard;
use crate::pool_bytes;

const INTERNAL_SERVER_ERROR: ngx_int_t = NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;

/// Why an app's response cannot be sent.
#[derive(Debug)]
enum Invalid<'a> {
    Status(u16),
    Reason(&'a [u8]),
    HeaderName(&'a [u8]),
    HeaderValue(&'a [u8]),
    ContentLength { declared: &'a [u8], body: usize },
    BodyKind(u32),
}

impl fmt::Display for Invalid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).escape_debug().to_string();
        match self {
            Invalid::Status(status) => write!(f, "status {status} is not a final HTTP status"),
            Invalid::Reason(reason) => write!(
                f,
                "reason phrase \"{}\" has control characters",
                text(reason)
            ),
            Invalid::HeaderName(name) => {
                write!(f, "header name \"{}\" is not an HTTP token", text(name))
            }
            Invalid::HeaderValue(name) => {
                write!(
                    f,
                    "header \"{}\" has a value with CR, LF, NUL or other control characters",
                    text(name)
                )
            }
            Invalid::ContentLength { declared, body } => {
                write!(
                    f,
                    "Content-Length \"{}\" differs from the body's {body} bytes",
                    text(declared)
                )
            }
            Invalid::BodyKind(kind) => write!(f, "body kind {kind} is unknown to this module"),
        }
    }
}

/// Sends `response` for `r` and returns what the content handler returns to nginx.
pub fn send(r: &mut ngx_http_request_t, app: &App, response: AppResponse) -> ngx_int_t {
    // From here on the pool owns the response: it is released when the request ends, after
    // nginx has sent the body straight from the app's memory.
    if !release_with_pool(r, &response) {
        response.release();
        return INTERNAL_SERVER_ERROR;
    }
    // SAFETY: the app keeps the response valid until the pool cleanup above releases it.
    let response = unsafe { &*response.as_ptr() };
    // SAFETY: the ABI gives `headers_len` readable pairs.
    let headers = unsafe { abi::slice_from_abi(response.headers, response.headers_len) };
    // SAFETY: as above, for the body bytes.
    let body = unsafe { response.body.as_slice() };
    // SAFETY: as above, for the reason phrase.
    let reason = unsafe { response.reason.as_slice() };

    if let Err(invalid) = check(response, reason, headers, body) {
        ngx_log_error!(
            NGX_LOG_ERR,
            log_of(r),
            "gateway: app \"{}\" returned an invalid response: {invalid}",
            app.name()
        );
        return INTERNAL_SERVER_ERROR;
    }
    if set_headers(r, response.status, reason, headers, body.len()).is_none() {
        return INTERNAL_SERVER_ERROR;
    }

    // SAFETY: `r` is a live request whose headers are set.
    let rc = unsafe { ngx_http_send_header(r) };
    if rc == NGX_ERROR as ngx_int_t || rc > NGX_OK as ngx_int_t || r.header_only() != 0 {
        return rc;
    }
    send_body(r, body)
}

fn log_of(r: &ngx_http_request_t) -> *mut ngx::ffi::ngx_log_t {
    // SAFETY: a live request always has a connection with a log.
    unsafe { (*r.connection).log }
}

fn check<'a>(
    response: &abi::Response,
    reason: &'a [u8],
    headers: &'a [abi::Pair],
    body: &[u8],
) -> Result<(), Invalid<'a>> {
    if !(200..=999).contains(&response.status) {
        return Err(Invalid::Status(response.status));
    }
    if !reason.iter().all(|&byte| is_field_byte(byte)) {
        return Err(Invalid::Reason(reason));
    }
    if response.body_kind != abi::BODY_BYTES {
        return Err(Invalid::BodyKind(response.body_kind));
    }
    for pair in headers {
        // SAFETY: the app keeps header bytes valid until the response is released.
        let (name, value) = unsafe { (pair.name.as_slice(), pair.value.as_slice()) };
        if name.is_empty() || !name.iter().all(|&byte| is_token_byte(byte)) {
            return Err(Invalid::HeaderName(name));
        }
        if !value.iter().all(|&byte| is_field_byte(byte)) {
            return Err(Invalid::HeaderValue(name));
        }
        if name.eq_ignore_ascii_case(b"content-length")
            && std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                != Some(body.len())
        {
            return Err(Invalid::ContentLength {
                declared: value,
                body: body.len(),
            });
        }
    }
    Ok(())
}

/// RFC 9110 `tchar`.
fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// A byte allowed in a field value or reason phrase: no CR, LF, NUL or other controls.
fn is_field_byte(byte: u8) -> bool {
    byte == b'\t' || (byte >= 0x20 && byte != 0x7f)
}

/// Registers a cleanup on the request's pool that releases `response`; false if out of memory.
fn release_with_pool(r: &ngx_http_request_t, response: &AppResponse) -> bool {
    // SAFETY: the request pool is live; a zero-size cleanup only needs its handler and data set.
    let cleanup = unsafe { ngx_pool_cleanup_add(r.pool, 0) };
    if cleanup.is_null() {
        return false;
    }
    // SAFETY: `cleanup` was just allocated by nginx.
    unsafe {
        (*cleanup).handler = Some(release_response);
        (*cleanup).data = response.as_ptr().cast::<c_void>();
    }
    true
}

unsafe extern "C" fn release_response(data: *mut c_void) {
    let log = ngx::log::ngx_cycle_log().as_ptr();
    guard(log, "response release", (), || {
        // SAFETY: `data` is the response registered in `release_with_pool`, released only here.
        let response = unsafe { &*data.cast::<abi::Response>() };
        // SAFETY: the ABI's release contract: once, with the response's own owner.
        unsafe { (response.release)(response.owner) }
    })
}

fn set_headers(
    r: &mut ngx_http_request_t,
    status: u16,
    reason: &[u8],
    headers: &[abi::Pair],
    body_len: usize,
) -> Option<()> {
    // SAFETY: the request's pool lives as long as the request.
    let pool = unsafe { Pool::from_ngx_pool(r.pool) };
    r.headers_out.status = status.into();
    if !reason.is_empty() {
        let code = pool_bytes::decimal(&pool, status.into())?;
        r.headers_out.status_line = ngx_string(pool_bytes::concat(&pool, &[code, b" ", reason])?);
    }
    r.headers_out.content_length_n = body_len as off_t;

    for pair in headers {
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
        let name = ngx_string(pool_bytes::concat(&pool, &[name])?);
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
            (*header).key = name;
            (*header).value = value;
        }
    }
    Some(())
}

fn ngx_string(bytes: &mut [u8]) -> ngx_str_t {
    ngx_str_t {
        len: bytes.len(),
        data: bytes.as_mut_ptr(),
    }
}

fn send_body(r: &mut ngx_http_request_t, body: &[u8]) -> ngx_int_t {
    if body.is_empty() {
        // SAFETY: `r` is live and its header was sent.
        return unsafe { ngx_http_send_special(r, NGX_HTTP_LAST as usize) };
    }
    // SAFETY: the request pool is live.
    let buf = unsafe { ngx_pcalloc(r.pool, std::mem::size_of::<ngx_buf_t>()) }.cast::<ngx_buf_t>();
    if buf.is_null() {
        return NGX_ERROR as ngx_int_t;
    }
    let is_main = std::ptr::eq(r.main, r);
    // SAFETY: `buf` is zeroed and ours. It points at the app's bytes, which stay valid until
    // the pool cleanup releases the response; `memory` tells nginx not to write to them.
    unsafe {
        (*buf).pos = body.as_ptr().cast_mut();
        (*buf).last = body.as_ptr().add(body.len()).cast_mut();
        (*buf).set_memory(1);
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
