//! File bodies: nginx opens and sends the file itself, as its static module does, so sendfile,
//! `open_file_cache`, ranges and conditional requests all apply.

use ngx::core::Pool;
use ngx::ffi::{
    ngx_buf_t, ngx_file_t, ngx_http_request_t, ngx_http_send_special, ngx_http_set_content_type,
    ngx_http_set_etag, ngx_int_t, ngx_open_cached_file, ngx_open_file_info_t, ngx_str_t, off_t,
    NGX_ERROR, NGX_HTTP_FORBIDDEN, NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_HTTP_LAST,
    NGX_HTTP_NOT_FOUND, NGX_OK,
};
use ngx::http::{HttpModuleLocationConf, NgxHttpCoreModule};

use crate::app_loader::App;
use crate::response::{self, Checked, INTERNAL_SERVER_ERROR};
use crate::{app_log, pool_bytes};

pub fn send(r: &mut ngx_http_request_t, app: &App, checked: &Checked) -> ngx_int_t {
    let Some(core) = NgxHttpCoreModule::location_conf(r) else {
        return INTERNAL_SERVER_ERROR;
    };
    // SAFETY: the request's pool lives as long as the request.
    let pool = unsafe { Pool::from_ngx_pool(r.pool) };
    // open() needs a NUL-terminated path; nginx keeps pointing at it while sending.
    let Some(path) = pool_bytes::concat(&pool, &[checked.body, b"\0"]) else {
        return INTERNAL_SERVER_ERROR;
    };
    let mut name = response::ngx_string(path);
    name.len -= 1;

    // SAFETY: all-zero is the initial state nginx's own callers start from.
    let mut file: ngx_open_file_info_t = unsafe { std::mem::zeroed() };
    file.read_ahead = core.read_ahead;
    file.directio = core.directio;
    file.valid = core.open_file_cache_valid;
    file.min_uses = core.open_file_cache_min_uses;
    file.set_errors(core.open_file_cache_errors as u32);
    file.set_events(core.open_file_cache_events as u32);
    // SAFETY: `name` is NUL-terminated; the cache (or, without one, a pool cleanup) closes the
    // descriptor when the request ends.
    let rc = unsafe { ngx_open_cached_file(core.open_file_cache, &mut name, &mut file, r.pool) };
    if rc != NGX_OK as ngx_int_t || file.is_dir() != 0 {
        use std::io::ErrorKind;
        let error = std::io::Error::from_raw_os_error(file.err);
        let (status, reason) = match error.kind() {
            _ if file.is_dir() != 0 => (NGX_HTTP_FORBIDDEN, "is a directory".to_string()),
            ErrorKind::NotFound | ErrorKind::NotADirectory | ErrorKind::InvalidFilename => {
                (NGX_HTTP_NOT_FOUND, error.to_string())
            }
            ErrorKind::PermissionDenied => (NGX_HTTP_FORBIDDEN, error.to_string()),
            _ => (NGX_HTTP_INTERNAL_SERVER_ERROR, error.to_string()),
        };
        app_log::error(
            r,
            app,
            format_args!(
                "answered with file \"{}\": {reason}",
                String::from_utf8_lossy(checked.body)
            ),
        );
        return status as ngx_int_t;
    }

    // The app's Content-Length (ABI 1.2) sends that many bytes from the file's start: they are
    // the response, which ranges and the ETag are then of. One past the file's end would be a
    // body shorter than its header: refused before anything is sent.
    let size = match checked.content_length {
        None => file.size,
        Some(declared) if declared <= file.size as u64 => declared as off_t,
        Some(declared) => {
            app_log::error(
                r,
                app,
                format_args!(
                    "answered with file \"{}\" of {} bytes and a Content-Length of {declared}, \
                     past its end",
                    String::from_utf8_lossy(checked.body),
                    file.size
                ),
            );
            return INTERNAL_SERVER_ERROR;
        }
    };
    if r.headers_out.content_type.len == 0 && !set_type_from_extension(r, checked.body) {
        return INTERNAL_SERVER_ERROR;
    }
    r.headers_out.content_length_n = size;
    if r.headers_out.last_modified_time == -1 {
        r.headers_out.last_modified_time = file.mtime;
    }
    // SAFETY: `r` is live; nginx derives the ETag from the size and time just set.
    if r.headers_out.etag.is_null() && unsafe { ngx_http_set_etag(r) } != NGX_OK as ngx_int_t {
        return INTERNAL_SERVER_ERROR;
    }
    r.set_allow_ranges(1);

    if let Some(rc) = response::send_header(r) {
        return rc;
    }
    if size == 0 {
        // SAFETY: `r` is live and its header was sent.
        return unsafe { ngx_http_send_special(r, NGX_HTTP_LAST as usize) };
    }
    let (buf, nginx_file) = (
        pool.calloc(std::mem::size_of::<ngx_buf_t>())
            .cast::<ngx_buf_t>(),
        pool.calloc(std::mem::size_of::<ngx_file_t>())
            .cast::<ngx_file_t>(),
    );
    if buf.is_null() || nginx_file.is_null() {
        return NGX_ERROR as ngx_int_t;
    }
    // SAFETY: both are zeroed pool allocations; the descriptor stays open for the request.
    unsafe {
        (*nginx_file).fd = file.fd;
        (*nginx_file).name = name;
        (*nginx_file).log = (*r.connection).log;
        (*nginx_file).set_directio(file.is_directio());
        (*buf).file = nginx_file;
        (*buf).file_pos = 0;
        (*buf).file_last = size;
        (*buf).set_in_file(1);
    }
    response::send_whole_body(r, buf)
}

/// Sets Content-Type from the file's extension through nginx's `types`, as its static module
/// does for a URI; false when out of memory.
fn set_type_from_extension(r: &mut ngx_http_request_t, path: &[u8]) -> bool {
    let file_name = path.rsplit(|&byte| byte == b'/').next().unwrap_or(path);
    let extension = match file_name.iter().rposition(|&byte| byte == b'.') {
        Some(dot) if dot > 0 => &file_name[dot + 1..],
        _ => &[][..],
    };
    let uri_extension = r.exten;
    r.exten = ngx_str_t {
        len: extension.len(),
        data: extension.as_ptr().cast_mut(),
    };
    // SAFETY: `r` is live; nginx reads the extension and allocates from the request pool.
    let rc = unsafe { ngx_http_set_content_type(r) };
    r.exten = uri_extension;
    rc == NGX_OK as ngx_int_t
}
