//! The module's configuration: what the directives build for the http block and for each
//! location, read by everything that serves a request.

use std::cell::Cell;
use std::ffi::c_void;
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Duration;

use ngx::ffi::{
    ngx_conf_t, ngx_http_complex_value_t, ngx_http_core_loc_conf_t, ngx_int_t, ngx_msec_t,
    ngx_shm_zone_t,
};
use ngx::http::{
    HttpModuleLocationConf, HttpModuleMainConf, Merge, MergeConfigError, NgxHttpCoreModule,
};

use crate::app_loader::App;
use crate::status::counters;
use crate::Module;

/// The apps this configuration serves, each once however many locations name it, and the
/// nginx variables the environ is built from.
#[derive(Default)]
pub struct MainConf {
    pub apps: Vec<Arc<App>>,
    /// Every location with `gateway_app`, each of which gets an app instance per worker.
    pub mounts: Vec<*const LocationConf>,
    pub variables: Option<EnvironVariables>,
    /// `gateway_status_zone`, and the counters table in it once nginx has mapped it.
    pub status_zone: Option<NonNull<ngx_shm_zone_t>>,
    pub status_table: Cell<Option<NonNull<counters::Table>>>,
    /// Some location has `gateway_status`, which needs the zone.
    pub status_locations: bool,
    /// `gateway_strict_modes`: judge app libraries' owners and modes (`app_trust`); None
    /// when not given, which means on.
    pub strict_modes: Option<bool>,
}

/// Indexes of the nginx variables behind environ keys: nginx computes them (honouring, e.g.,
/// the realip module), the module only reads them.
pub struct EnvironVariables {
    pub scheme: ngx_int_t,
    pub request_id: ngx_int_t,
}

/// What the directives set up for one location.
pub struct LocationConf {
    pub app: Option<Arc<App>>,
    /// Where `gateway_app` stands, "FILE:LINE", for errors found after the location is read.
    pub app_directive: String,
    /// The mount point, the SCRIPT_NAME: `gateway_script_name`, else the location's prefix
    /// without trailing slash, else (exact-match and regex locations) empty.
    pub script_name: Vec<u8>,
    pub script_name_set: bool,
    /// `gateway_param` entries, in order; inherited as a whole from the enclosing level when
    /// this level has none, like `fastcgi_param`.
    pub params: Vec<Param>,
    /// `gateway_app_param` settings, handed to the app's init.
    pub app_params: Vec<(Vec<u8>, Vec<u8>)>,
    /// This worker's app instance for the location; set after the fork, in the worker.
    pub instance: Cell<Instance>,
    /// `gateway_thread_pool`: the nginx thread pool app calls run on, instead of the event loop.
    pub thread_pool: Option<ThreadPool>,
    /// `gateway_timeout`: how long an offloaded call may take before the client gets a 504.
    pub timeout: ngx_msec_t,
    pub timeout_set: bool,
    /// The name of `thread_pool`, for the counters.
    pub thread_pool_name: Option<Vec<u8>>,
    /// This location's entries in the status zone.
    pub counters: counters::CounterSlots,
    /// `gateway_slow_request`: calls slower than this are logged; inherited by nested levels.
    pub slow_request: Option<Duration>,
    /// The location's name, for the counters' labels.
    pub location_name: Vec<u8>,
}

/// An nginx thread pool; an nginx built without `--with-threads` has none to name.
#[cfg(ngx_feature = "threads")]
pub type ThreadPool = NonNull<ngx::ffi::ngx_thread_pool_t>;
#[cfg(not(ngx_feature = "threads"))]
pub type ThreadPool = std::convert::Infallible;

/// The state of a location's app instance in this worker.
#[derive(Debug, Default, Clone, Copy)]
pub enum Instance {
    #[default]
    NotStarted,
    Ready(*mut c_void),
    /// Init failed: the location answers 503 rather than retrying in a loop.
    Failed,
}

/// One `gateway_param NAME VALUE [if_not_empty];`.
#[derive(Clone)]
pub struct Param {
    pub name: Vec<u8>,
    pub value: ngx_http_complex_value_t,
    pub if_not_empty: bool,
}

/// How long an offloaded call may take by default, as proxy_read_timeout's default.
const DEFAULT_TIMEOUT_MS: ngx_msec_t = 60_000;

impl Default for LocationConf {
    fn default() -> Self {
        LocationConf {
            app: None,
            app_directive: String::new(),
            script_name: Vec::new(),
            script_name_set: false,
            params: Vec::new(),
            app_params: Vec::new(),
            instance: Cell::new(Instance::NotStarted),
            thread_pool: None,
            timeout: DEFAULT_TIMEOUT_MS,
            timeout_set: false,
            thread_pool_name: None,
            counters: counters::CounterSlots::default(),
            slow_request: None,
            location_name: Vec::new(),
        }
    }
}

impl Merge for LocationConf {
    fn merge(&mut self, prev: &Self) -> Result<(), MergeConfigError> {
        if self.params.is_empty() {
            self.params = prev.params.clone();
        }
        if self.slow_request.is_none() {
            self.slow_request = prev.slow_request;
        }
        // The app itself is not inherited: like proxy_pass, it serves only its own location.
        Ok(())
    }
}

/// The configurations of the location being parsed and of the http block, for a directive
/// that serves the location (sets its content handler) and registers it with the module.
pub fn location_and_main(
    cf: &ngx_conf_t,
) -> Option<(&mut ngx_http_core_loc_conf_t, &mut MainConf)> {
    Some((
        NgxHttpCoreModule::location_conf_mut(cf)?,
        Module::main_conf_mut(cf)?,
    ))
}
