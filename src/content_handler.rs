//! The content phase: hand the request to its app and turn the app's answer into the response.

use std::ptr::NonNull;
use std::sync::Arc;

use gateway::abi;
use ngx::core::Pool;
use ngx::ffi::{
    ngx_http_discard_request_body, ngx_http_request_t, ngx_int_t, NGX_DECLINED,
    NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_LOG_ERR, NGX_OK,
};
use ngx::http::HttpModuleLocationConf;
use ngx::ngx_log_error;
use parking_lot::Mutex;

use crate::panic_guard::guard;
use crate::{environ, response, Module};

const INTERNAL_SERVER_ERROR: ngx_int_t = NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;

/// The content handler of every location with `gateway_app`.
pub unsafe extern "C" fn gateway_content_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx passes a live request whose connection carries its log.
    let log = unsafe { (*(*r).connection).log };
    guard(log, "content handler", INTERNAL_SERVER_ERROR, || {
        // SAFETY: the request stays valid and ours for the whole handler.
        handle(unsafe { &mut *r })
    })
}

fn handle(r: &mut ngx_http_request_t) -> ngx_int_t {
    let Some(conf) = Module::location_conf(r) else {
        return NGX_DECLINED as ngx_int_t;
    };
    let Some(app) = conf.app.as_ref() else {
        return NGX_DECLINED as ngx_int_t;
    };

    // SAFETY: `r` is a live request in its content phase.
    let rc = unsafe { ngx_http_discard_request_body(r) };
    if rc != NGX_OK as ngx_int_t {
        return rc;
    }

    // SAFETY: the request's pool lives as long as the request.
    let pool = unsafe { Pool::from_ngx_pool(r.pool) };
    let Some(environ) = environ::build(r, conf, &pool) else {
        return INTERNAL_SERVER_ERROR;
    };
    let request = abi::Request {
        host: &HOST,
        environ: environ.as_ptr(),
        environ_len: environ.len(),
    };

    let call = Arc::new(CallState {
        outcome: Mutex::new(Outcome::Pending),
    });
    let handle = Arc::into_raw(Arc::clone(&call))
        .cast_mut()
        .cast::<abi::Call>();
    // SAFETY: the descriptor was checked at load; `handle` carries one reference to `call`
    // that the app gives back through `respond` or `fail`, and `request` outlives the call.
    unsafe { (app.descriptor().call)(handle, &request) };

    // Whatever completes the call from now on finds it abandoned and only releases.
    let outcome = std::mem::replace(&mut *call.outcome.lock(), Outcome::Abandoned);
    match outcome {
        Outcome::Responded(response) => response::send(r, app, response),
        Outcome::Failed(message) => {
            ngx_log_error!(
                NGX_LOG_ERR,
                log_of(r),
                "gateway: app \"{}\" failed: {message}",
                app.name()
            );
            INTERNAL_SERVER_ERROR
        }
        Outcome::Pending | Outcome::Abandoned => {
            ngx_log_error!(
                NGX_LOG_ERR,
                log_of(r),
                "gateway: app \"{}\" returned without completing the request, which this module \
                 version does not support",
                app.name()
            );
            INTERNAL_SERVER_ERROR
        }
    }
}

fn log_of(r: &ngx_http_request_t) -> *mut ngx::ffi::ngx_log_t {
    // SAFETY: a live request always has a connection with a log.
    unsafe { (*r.connection).log }
}

/// A response handed over by the app, owned by the module until it calls the release function.
pub struct AppResponse(NonNull<abi::Response>);

// SAFETY: the ABI lets the module read and release a response from any thread.
unsafe impl Send for AppResponse {}

impl AppResponse {
    pub fn get(&self) -> &abi::Response {
        // SAFETY: the app keeps the response valid and unchanged until it is released.
        unsafe { self.0.as_ref() }
    }

    pub fn as_ptr(&self) -> *mut abi::Response {
        self.0.as_ptr()
    }

    /// Hands the response back to the app.
    pub fn release(self) {
        let response = self.get();
        // SAFETY: released exactly once: `self` is consumed.
        unsafe { (response.release)(response.owner) }
    }
}

enum Outcome {
    Pending,
    Responded(AppResponse),
    Failed(String),
    /// The module stopped waiting; a late completion only gives the response back.
    Abandoned,
}

/// The module's side of one app call; the app's [`abi::Call`] handle is a counted reference.
struct CallState {
    outcome: Mutex<Outcome>,
}

static HOST: abi::Host = abi::Host {
    abi_minor: abi::ABI_MINOR,
    respond: host_respond,
    fail: host_fail,
};

/// Takes back the reference the app's handle holds.
///
/// # Safety
/// `call` must be a handle from `handle`, not yet completed.
unsafe fn take_handle(call: *mut abi::Call) -> Arc<CallState> {
    // SAFETY: per the caller, `call` came from `Arc::into_raw` and is consumed once.
    unsafe { Arc::from_raw(call.cast_const().cast::<CallState>()) }
}

fn complete(call: Arc<CallState>, completion: Outcome) {
    let mut outcome = call.outcome.lock();
    match &*outcome {
        Outcome::Pending => *outcome = completion,
        Outcome::Abandoned | Outcome::Responded(_) | Outcome::Failed(_) => {
            if let Outcome::Responded(response) = completion {
                response.release();
            }
        }
    }
}

unsafe extern "C" fn host_respond(call: *mut abi::Call, response: *const abi::Response) {
    let log = ngx::log::ngx_cycle_log().as_ptr();
    guard(log, "respond", (), || {
        // SAFETY: the app completes each call once, with its own handle.
        let call = unsafe { take_handle(call) };
        match NonNull::new(response.cast_mut()) {
            Some(response) => complete(call, Outcome::Responded(AppResponse(response))),
            None => complete(
                call,
                Outcome::Failed("the app responded with a null response".into()),
            ),
        }
    })
}

unsafe extern "C" fn host_fail(call: *mut abi::Call, message: abi::Bytes) {
    let log = ngx::log::ngx_cycle_log().as_ptr();
    guard(log, "fail", (), || {
        // SAFETY: the app completes each call once, with its own handle.
        let call = unsafe { take_handle(call) };
        // SAFETY: the ABI makes `message` valid for the duration of this call.
        let message = String::from_utf8_lossy(unsafe { message.as_slice() }).into_owned();
        complete(call, Outcome::Failed(message));
    })
}
