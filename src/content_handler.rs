//! The content phase: hand the request to its app and turn the app's answer into the response.

use std::ptr::NonNull;
use std::sync::Arc;

use gateway::abi;
use ngx::core::Pool;
use ngx::ffi::{
    ngx_http_finalize_request, ngx_http_read_client_request_body, ngx_http_request_t,
    ngx_http_run_posted_requests, ngx_int_t, NGX_DONE, NGX_HTTP_SERVICE_UNAVAILABLE,
    NGX_HTTP_SPECIAL_RESPONSE,
};
use ngx::http::{HttpModuleLocationConf, HttpModuleMainConf};
use parking_lot::Mutex;

use crate::app_loader::App;
use crate::call_record::CallRecord;
use crate::directives::{Instance, LocationConf};
#[cfg(ngx_feature = "threads")]
use crate::offload;
use crate::panic_guard::guard;
use crate::response::INTERNAL_SERVER_ERROR;
use crate::{app_log, environ, request_body, response, Module};

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
    // Both stay in the request's pool until the request ends, however long the call takes.
    let (environ, body) = (environ.leak(), body.leak());
    let request = abi::Request {
        host: &HOST,
        environ: environ.as_ptr(),
        environ_len: environ.len(),
        body: body.as_ptr(),
        body_len: body.len(),
    };
    let (call, handle) = CallState::start();
    if let Some(counters) = conf.counters.app() {
        counters.call_started();
    }
    if let Some(thread_pool) = conf.thread_pool {
        #[cfg(ngx_feature = "threads")]
        {
            let call = offload::Call {
                app: Arc::clone(app),
                instance,
                request,
                state: call,
                handle,
            };
            return offload::start(r, conf, thread_pool, call);
        }
        #[cfg(not(ngx_feature = "threads"))]
        match thread_pool {}
    }
    // SAFETY: the descriptor was checked at load; `handle` carries one reference to `call`
    // that the app gives back through `respond` or `fail`, and `request` outlives the call.
    unsafe { (app.descriptor().call)(instance, handle, &request) };
    finish(r, conf, app, &call)
}

/// Sends what the app answered, once its call returned, and records it.
pub fn finish(
    r: &mut ngx_http_request_t,
    conf: &LocationConf,
    app: &Arc<App>,
    call: &CallState,
) -> ngx_int_t {
    let Some(record) = CallRecord::of(r) else {
        return INTERNAL_SERVER_ERROR;
    };
    record.returned();
    // Whatever completes the call from now on finds it abandoned and only releases.
    let outcome = std::mem::replace(&mut *call.outcome.lock(), Outcome::Abandoned);
    let rc = match outcome {
        Outcome::Responded(response) => {
            record.set_status(response.get().status);
            response::send(r, app, response)
        }
        Outcome::Failed { message, panicked } => {
            record.set_status(INTERNAL_SERVER_ERROR as u16);
            if let Some(counters) = conf.counters.app() {
                counters.failed(panicked);
            }
            app_log::error(r, app, format_args!("failed: {message}"));
            INTERNAL_SERVER_ERROR
        }
        Outcome::Pending | Outcome::Abandoned => {
            record.set_status(INTERNAL_SERVER_ERROR as u16);
            let unsupported = "returned without completing the request, which this module \
                               version does not support";
            app_log::error(r, app, format_args!("{unsupported}"));
            INTERNAL_SERVER_ERROR
        }
    };
    record.answered(r, conf);
    rc
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
    Failed {
        message: String,
        panicked: bool,
    },
    /// The module stopped waiting; a late completion only gives the response back.
    Abandoned,
}

/// The module's side of one app call; the app's [`abi::Call`] handle is a counted reference.
pub struct CallState {
    outcome: Mutex<Outcome>,
}

impl CallState {
    /// A pending call, and the handle for the app, which holds its own reference.
    fn start() -> (Arc<CallState>, *mut abi::Call) {
        let call = Arc::new(CallState {
            outcome: Mutex::new(Outcome::Pending),
        });
        let handle = Arc::into_raw(Arc::clone(&call))
            .cast_mut()
            .cast::<abi::Call>();
        (call, handle)
    }

    /// Whether the module stopped waiting for the call.
    pub fn is_abandoned(&self) -> bool {
        matches!(*self.outcome.lock(), Outcome::Abandoned)
    }

    /// Stops waiting for a call that has not completed; false if it already has.
    pub fn abandon_if_pending(&self) -> bool {
        let mut outcome = self.outcome.lock();
        let pending = matches!(*outcome, Outcome::Pending);
        if pending {
            *outcome = Outcome::Abandoned;
        }
        pending
    }
}

pub static HOST: abi::Host = abi::Host {
    abi_minor: abi::ABI_MINOR,
    respond: host_respond,
    fail: host_fail,
};

/// Takes back the reference the app's handle holds.
///
/// # Safety
/// `call` must be a handle from [`CallState::start`], not yet completed.
pub unsafe fn take_handle(call: *mut abi::Call) -> Arc<CallState> {
    // SAFETY: per the caller, `call` came from `Arc::into_raw` and is consumed once.
    unsafe { Arc::from_raw(call.cast_const().cast::<CallState>()) }
}

fn complete(call: Arc<CallState>, completion: Outcome) {
    let mut outcome = call.outcome.lock();
    match &*outcome {
        Outcome::Pending => *outcome = completion,
        Outcome::Abandoned | Outcome::Responded(_) | Outcome::Failed { .. } => {
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
                Outcome::Failed {
                    message: "the app responded with a null response".into(),
                    panicked: false,
                },
            ),
        }
    })
}

unsafe extern "C" fn host_fail(call: *mut abi::Call, cause: u32, message: abi::Bytes) {
    let log = ngx::log::ngx_cycle_log().as_ptr();
    guard(log, "fail", (), || {
        // SAFETY: the app completes each call once, with its own handle.
        let call = unsafe { take_handle(call) };
        // SAFETY: the ABI makes `message` valid for the duration of this call.
        let message = String::from_utf8_lossy(unsafe { message.as_slice() }).into_owned();
        complete(
            call,
            Outcome::Failed {
                message,
                panicked: cause == abi::PANICKED,
            },
        );
    })
}
