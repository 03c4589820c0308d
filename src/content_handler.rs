//! The content phase: hand the request to its app and turn the app's answer into the response.

use std::sync::Arc;

use gateway_abi as abi;
use ngx::core::Pool;
use ngx::ffi::{
    ngx_http_finalize_request, ngx_http_read_client_request_body, ngx_http_request_t, ngx_int_t,
    NGX_DONE, NGX_HTTP_SERVICE_UNAVAILABLE, NGX_HTTP_SPECIAL_RESPONSE,
};
use ngx::http::{HttpModuleLocationConf, HttpModuleMainConf};

use crate::call::{CallState, Outcome, HOST};
use crate::call_record::CallRecord;
use crate::conf::{Instance, LocationConf};
#[cfg(ngx_feature = "threads")]
use crate::offload;
use crate::panic_guard::guard;
use crate::pending_call::{self, Call};
use crate::response::INTERNAL_SERVER_ERROR;
use crate::{environ, request_body, request_id, response, Module};

/// The content handler of every location with `gateway_app`: has nginx read the whole
/// request body, then calls the app from `body_read`.
pub unsafe extern "C" fn gateway_content_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx passes a live request whose connection carries its log.
    let log = unsafe { (*(*r).connection).log };
    guard(log, "content handler", INTERNAL_SERVER_ERROR, || {
        // SAFETY: `r` is a live request in its content phase. nginx calls `body_read` once the
        // body is in (maybe before this returns); on a client error or abort it finalizes the
        // request itself and never calls it, so the app is not called for an incomplete body.
        let rc = unsafe { ngx_http_read_client_request_body(r, Some(body_read)) };
        if rc >= NGX_HTTP_SPECIAL_RESPONSE as ngx_int_t {
            return rc;
        }
        NGX_DONE as ngx_int_t
    })
}

unsafe extern "C" fn body_read(r: *mut ngx_http_request_t) {
    // SAFETY: nginx passes the live request whose body it finished reading.
    let log = unsafe { (*(*r).connection).log };
    let rc = guard(log, "app call", INTERNAL_SERVER_ERROR, || {
        // SAFETY: as above; the request is ours until finalized below.
        call_app(unsafe { &mut *r })
    });
    // SAFETY: reading the body took a reference on the request; this gives it back.
    unsafe { ngx_http_finalize_request(r, rc) };
}

fn call_app(r: &mut ngx_http_request_t) -> ngx_int_t {
    let (Some(conf), Some(main)) = (Module::location_conf(r), Module::main_conf(r)) else {
        return INTERNAL_SERVER_ERROR;
    };
    let (Some(app), Some(variables)) = (conf.app.as_ref(), main.variables.as_ref()) else {
        return INTERNAL_SERVER_ERROR;
    };

    let Some(record) = CallRecord::start(r, app) else {
        return INTERNAL_SERVER_ERROR;
    };
    let Instance::Ready(instance) = conf.instance.get() else {
        // Its init failed in this worker (and said why in the log): not a crash loop.
        record.answered_for_app(conf, NGX_HTTP_SERVICE_UNAVAILABLE as u16);
        if let Some(counters) = conf.counters.app() {
            counters.was_unavailable();
        }
        return NGX_HTTP_SERVICE_UNAVAILABLE as ngx_int_t;
    };
    // SAFETY: the request's pool lives as long as the request.
    let pool = unsafe { Pool::from_ngx_pool(r.pool) };
    let Some(body) = request_body::segments(r, &pool) else {
        return INTERNAL_SERVER_ERROR;
    };
    let has_body = r.headers_in.content_length_n >= 0 || r.headers_in.chunked() != 0;
    let sources = environ::Sources {
        conf,
        variables,
        app,
        body_len: has_body.then(|| body.iter().map(|segment| segment.len).sum()),
        offloaded: conf.thread_pool.is_some(),
    };
    let Some(environ) = environ::build(r, &sources, &pool) else {
        return INTERNAL_SERVER_ERROR;
    };
    // All three stay in the request's pool until the request ends, however long the call
    // takes: an app that completes later may keep any of them until then.
    let (environ, body) = (environ.leak(), body.leak());
    let request = pool
        .alloc(std::mem::size_of::<abi::Request>())
        .cast::<abi::Request>();
    if request.is_null() {
        return INTERNAL_SERVER_ERROR;
    }
    // SAFETY: fresh pool memory, word-aligned, room for one `abi::Request`.
    unsafe {
        request.write(abi::Request {
            host: &HOST,
            environ: environ.as_ptr(),
            environ_len: environ.len(),
            body: body.as_ptr(),
            body_len: body.len(),
        })
    };
    let request_id = request_id::of(r, variables.request_id).unwrap_or_default();
    let offloaded = conf.thread_pool.is_some();
    let (state, handle) = CallState::start(app.shared_name(), request_id, !offloaded);
    if let Some(counters) = conf.counters.app() {
        counters.call_started();
    }
    let call = Call {
        app: Arc::clone(app),
        instance,
        request,
        state,
        handle,
    };
    if let Some(thread_pool) = conf.thread_pool {
        #[cfg(ngx_feature = "threads")]
        return offload::start(r, conf, thread_pool, call);
        #[cfg(not(ngx_feature = "threads"))]
        match thread_pool {}
    }
    // SAFETY: the descriptor was checked at load; `handle` carries one reference to the
    // state that the app gives back through `respond` or `fail`, and `request` (in the
    // request's pool) outlives the call.
    unsafe { (app.descriptor().call)(instance, handle, request) };
    match call.state.take() {
        Outcome::Pending => defer(r, conf, call),
        outcome => response::answer(r, conf, app, outcome),
    }
}

/// The app returned without completing the call: wait for it in the background.
fn defer(r: &mut ngx_http_request_t, conf: &LocationConf, call: Call) -> ngx_int_t {
    match pending_call::hold(r, conf, call) {
        Ok(pending) => {
            pending_call::wait(pending);
            NGX_DONE as ngx_int_t
        }
        Err(call) => {
            // Out of memory: stop waiting; a later completion is only released.
            call.state.abandon_if_pending();
            let outcome = call.state.take();
            response::answer(r, conf, &call.app, outcome)
        }
    }
}
