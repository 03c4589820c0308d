//! `gateway_status;`: a location that answers with the counters, as JSON or, for a
//! Prometheus scrape, as text.

use std::ffi::{c_char, c_void};

use ngx::core::{Pool, NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::ffi::{
    ngx_command_t, ngx_conf_t, ngx_http_discard_request_body, ngx_http_request_t, ngx_int_t,
    ngx_str_t, off_t, NGX_LOG_EMERG, NGX_OK,
};
use ngx::http::HttpModuleMainConf;
use ngx::ngx_conf_log_error;

use super::render;
use crate::conf::{location_and_main, MainConf};
use crate::panic_guard::guard;
use crate::response::{self, INTERNAL_SERVER_ERROR};
use crate::{pool_bytes, Module};

/// `gateway_status;`: this location answers with the counters.
pub unsafe extern "C" fn set_status(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    _conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx calls directive handlers with a valid `cf` while parsing.
    let log = unsafe { (*cf).log };
    guard(log, "gateway_status", NGX_CONF_ERROR, || {
        // SAFETY: inside a location block, `cf->ctx` holds that location's configurations.
        let Some((core, main)) = location_and_main(unsafe { &*cf }) else {
            return NGX_CONF_ERROR;
        };
        core.handler = Some(status_handler);
        main.status_locations = true;
        NGX_CONF_OK
    })
}

/// Checked once the whole configuration is read: `gateway_status` needs a zone.
pub fn check_configuration(cf: *mut ngx_conf_t, main: &MainConf) -> bool {
    if main.status_locations && main.status_zone.is_none() {
        ngx_conf_log_error!(
            NGX_LOG_EMERG,
            cf,
            "gateway_status needs a gateway_status_zone in the http block, e.g. \"gateway_status_zone gateway 1m;\""
        );
        return false;
    }
    true
}

unsafe extern "C" fn status_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx passes a live request whose connection carries its log.
    let log = unsafe { (*(*r).connection).log };
    guard(log, "status handler", INTERNAL_SERVER_ERROR, || {
        // SAFETY: the request stays valid and ours for the whole handler.
        let r = unsafe { &mut *r };
        // SAFETY: `r` is a live request in its content phase.
        let rc = unsafe { ngx_http_discard_request_body(r) };
        if rc != NGX_OK as ngx_int_t {
            return rc;
        }
        let Some(table) = Module::main_conf(r).and_then(|main| main.status_table.get()) else {
            return INTERNAL_SERVER_ERROR;
        };
        // SAFETY: the shared table lives as long as the zone; counters are atomics.
        let table = unsafe { table.as_ref() };
        let prometheus = wants_prometheus(r);
        let (body, content_type): (String, &[u8]) = if prometheus {
            (
                render::prometheus(table),
                b"text/plain; version=0.0.4; charset=utf-8",
            )
        } else {
            (render::json(table), b"application/json")
        };
        send(r, content_type, body.as_bytes())
    })
}

fn wants_prometheus(r: &ngx_http_request_t) -> bool {
    let args = r.args.as_bytes();
    if args
        .split(|&byte| byte == b'&')
        .any(|arg| arg == b"format=prometheus")
    {
        return true;
    }
    // SAFETY: the request's header list, initialised for every request.
    unsafe { ngx::http::list_iterator(&r.headers_in.headers) }.any(|(name, value)| {
        name.as_bytes().eq_ignore_ascii_case(b"accept")
            && value
                .as_bytes()
                .windows(10)
                .any(|window| window.eq_ignore_ascii_case(b"text/plain"))
    })
}

fn send(r: &mut ngx_http_request_t, content_type: &'static [u8], body: &[u8]) -> ngx_int_t {
    // SAFETY: the request's pool lives as long as the request.
    let pool = unsafe { Pool::from_ngx_pool(r.pool) };
    // The rendered text is dropped when this returns; nginx sends a copy from the pool.
    let Some(copy) = pool_bytes::concat(&pool, &[body]) else {
        return INTERNAL_SERVER_ERROR;
    };
    r.headers_out.status = 200;
    r.headers_out.content_length_n = body.len() as off_t;
    r.headers_out.content_type_len = content_type.len();
    r.headers_out.content_type = ngx_str_t {
        len: content_type.len(),
        data: content_type.as_ptr().cast_mut(),
    };
    response::send_bytes(r, copy)
}
