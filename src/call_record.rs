//! What the module records of one request's app call: for the counters, the log variables
//! (`$gateway_app`, `$gateway_app_time`, `$gateway_status`) and the slow-request log. Kept in
//! the request's pool, in the module's context slot.

use std::cell::Cell;
use std::ffi::c_void;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ngx::core::Pool;
use ngx::ffi::{ngx_http_request_t, NGX_LOG_WARN};
use ngx::http::HttpModule;

use crate::app_loader::App;
use crate::conf::LocationConf;
use crate::{app_log, Module};

pub struct CallRecord {
    pub app: Arc<App>,
    started: Instant,
    /// How long the app took to answer, once it has.
    elapsed: Cell<Option<Duration>>,
    /// The status the app answered (or the module for it: 500, 503, 504).
    status: Cell<u16>,
    /// The stream being sent, if the answer is one: its state, which the response's stream
    /// code owns and types (this is the request's one slot for the module).
    pub stream: Cell<*mut c_void>,
}

impl CallRecord {
    /// Starts the record of `r`'s call now; `None` when out of memory.
    pub fn start<'r>(r: &'r mut ngx_http_request_t, app: &Arc<App>) -> Option<&'r CallRecord> {
        // SAFETY: the request's pool lives as long as the request.
        let pool = unsafe { Pool::from_ngx_pool(r.pool) };
        let record = pool.allocate(CallRecord {
            app: Arc::clone(app),
            started: Instant::now(),
            elapsed: Cell::new(None),
            status: Cell::new(0),
            stream: Cell::new(std::ptr::null_mut()),
        });
        if record.is_null() {
            return None;
        }
        // SAFETY: `ctx` has a slot per module; the pool keeps the record for the request.
        unsafe {
            *r.ctx.add(Module::module().ctx_index) = record.cast();
            Some(&*record)
        }
    }

    /// The record of `r`, if its call started.
    pub fn of<'r>(r: &ngx_http_request_t) -> Option<&'r CallRecord> {
        // SAFETY: this module's context slot holds nothing but a record, from the pool.
        unsafe {
            (*r.ctx.add(Module::module().ctx_index))
                .cast::<CallRecord>()
                .as_ref()
        }
    }

    pub fn set_status(&self, status: u16) {
        self.status.set(status);
    }

    pub fn status(&self) -> u16 {
        self.status.get()
    }

    pub fn elapsed(&self) -> Option<Duration> {
        self.elapsed.get()
    }

    /// The app's call returned: its time stops here, before the answer is sent.
    pub fn returned(&self) {
        self.elapsed.set(Some(self.started.elapsed()));
    }

    /// The app's answer was handed to nginx: counts it, and logs the call if slow.
    pub fn answered(&self, r: &mut ngx_http_request_t, conf: &LocationConf) {
        let elapsed = self.elapsed().unwrap_or_else(|| self.started.elapsed());
        if let Some(counters) = conf.counters.app() {
            counters.observe(elapsed);
            counters.answered(self.status());
            counters.call_ended();
        }
        if let Some(threshold) = conf.slow_request.filter(|threshold| elapsed > *threshold) {
            let uri = String::from_utf8_lossy(r.unparsed_uri.as_bytes()).into_owned();
            app_log::log(
                NGX_LOG_WARN as usize,
                r,
                &self.app,
                format_args!(
                    "call took {:.3} s, over gateway_slow_request {:.3} s: {}",
                    elapsed.as_secs_f64(),
                    threshold.as_secs_f64(),
                    uri
                ),
            );
        }
    }

    /// The call passed its deadline: the client gets `status` now, and the time so far counts
    /// as the call's.
    pub fn timed_out(&self, conf: &LocationConf, status: u16) {
        let elapsed = self.started.elapsed();
        self.elapsed.set(Some(elapsed));
        self.status.set(status);
        if let Some(counters) = conf.counters.app() {
            counters.observe(elapsed);
            counters.answered(status);
        }
    }

    /// The module answered for the app without calling it (503).
    pub fn answered_for_app(&self, conf: &LocationConf, status: u16) {
        self.status.set(status);
        self.elapsed.set(Some(self.started.elapsed()));
        if let Some(counters) = conf.counters.app() {
            counters.answered(status);
        }
    }
}
