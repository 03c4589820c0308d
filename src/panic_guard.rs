//! Keeps panics inside the module: every `extern "C"` entry point nginx calls runs its body
//! through [`guard`], because unwinding into nginx's C frames would abort the worker.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use ngx::ffi::{ngx_log_t, NGX_LOG_ALERT};
use ngx::ngx_log_error;

/// Runs `body`; if it panics, logs `what` and the panic message to `log` and returns
/// `on_panic` instead.
pub fn guard<T>(log: *mut ngx_log_t, what: &str, on_panic: T, body: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(value) => value,
        Err(payload) => {
            ngx_log_error!(
                NGX_LOG_ALERT,
                log,
                "gateway: {what} panicked: {}",
                panic_message(&*payload)
            );
            on_panic
        }
    }
}

pub fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}
