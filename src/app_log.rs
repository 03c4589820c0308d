//! Error-log lines about what an app did, each naming the app and the request's `$request_id`
//! so an operator can find the request in the access log.

use std::fmt;

use ngx::ffi::{ngx_http_request_t, NGX_LOG_ERR};
use ngx::http::HttpModuleMainConf;
use ngx::ngx_log_error;

use crate::app_loader::App;
use crate::{request_id, Module};

/// Logs `[error] gateway: app "NAME" MESSAGE (request ID)`.
pub fn error(r: &mut ngx_http_request_t, app: &App, message: fmt::Arguments) {
    log(NGX_LOG_ERR as usize, r, app, message);
}

/// Logs `gateway: app "NAME" MESSAGE (request ID)` at `level`.
pub fn log(level: usize, r: &mut ngx_http_request_t, app: &App, message: fmt::Arguments) {
    let request_id = Module::main_conf(r)
        .and_then(|main| main.variables.as_ref())
        .map(|variables| variables.request_id)
        .and_then(|index| request_id::of(r, index))
        .map(|id| String::from_utf8_lossy(id).into_owned())
        .unwrap_or_default();
    // SAFETY: a live request always has a connection with a log.
    let log = unsafe { (*r.connection).log };
    ngx_log_error!(
        level,
        log,
        "gateway: app \"{}\" {message} (request {request_id})",
        app.name()
    );
}
