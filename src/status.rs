//! Counters of what the apps do, summed over all workers in a shared-memory zone
//! (`gateway_status_zone NAME SIZE;`) that survives reloads, and the `gateway_status;` handler
//! that shows them as JSON or Prometheus text.

use std::cell::Cell;
use std::ffi::{c_char, c_void};
use std::fmt::Write as _;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use ngx::core::{Pool, NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::ffi::{
    ngx_command_t, ngx_conf_t, ngx_http_discard_request_body, ngx_http_request_t, ngx_int_t,
    ngx_parse_size, ngx_shared_memory_add, ngx_shm_zone_t, ngx_slab_calloc, ngx_slab_pool_t,
    ngx_str_t, off_t, NGX_ERROR, NGX_LOG_EMERG, NGX_OK,
};
use ngx::http::{HttpModuleLocationConf, HttpModuleMainConf, NgxHttpCoreModule};
use ngx::ngx_conf_log_error;

use crate::conf::MainConf;
use crate::panic_guard::guard;
use crate::response::{self, INTERNAL_SERVER_ERROR};
use crate::{pool_bytes, Module};

const MAX_APPS: usize = 64;
const MAX_POOLS: usize = 16;
const NAME_LEN: usize = 64;
/// Upper bounds of the call-latency histogram's buckets, in milliseconds (and +Inf).
const LATENCY_BOUNDS_MS: [u64; 12] = [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];
/// Marks the table's layout, so a zone kept across a reload is reused only by the same layout.
const LAYOUT: u64 = 0x6777_7374_6174_0001;

/// A name in shared memory, written once by the master before any worker reads it.
#[repr(C)]
struct Name {
    len: AtomicUsize,
    bytes: [u8; NAME_LEN],
}

impl Name {
    fn get(&self) -> &[u8] {
        &self.bytes[..self.len.load(Ordering::Acquire).min(NAME_LEN)]
    }

    fn set(&mut self, name: &[u8]) {
        let len = name.len().min(NAME_LEN);
        self.bytes[..len].copy_from_slice(&name[..len]);
        self.len.store(len, Ordering::Release);
    }
}

/// One app's counters, shared by every worker.
#[repr(C)]
pub struct AppCounters {
    name: Name,
    /// Answers by status class (1xx to 5xx), as the app (or the module for it) gave them.
    responses: [AtomicU64; 5],
    failures: AtomicU64,
    panics: AtomicU64,
    timeouts: AtomicU64,
    queue_full: AtomicU64,
    unavailable: AtomicU64,
    in_flight: AtomicI64,
    latency_buckets: [AtomicU64; LATENCY_BOUNDS_MS.len()],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
}

/// One thread pool's counters, for the calls of this module.
#[repr(C)]
pub struct PoolCounters {
    name: Name,
    queued: AtomicI64,
    running: AtomicI64,
    completed: AtomicU64,
    rejected: AtomicU64,
}

#[repr(C)]
pub struct Table {
    layout: u64,
    apps: [AppCounters; MAX_APPS],
    pools: [PoolCounters; MAX_POOLS],
}

impl AppCounters {
    pub fn call_started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// A call returned (or its detached thread did): it no longer runs app code.
    pub fn call_ended(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn answered(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.responses[class].fetch_add(1, Ordering::Relaxed);
    }

    pub fn observe(&self, elapsed: Duration) {
        let ms = elapsed.as_millis() as u64;
        if let Some(bucket) = LATENCY_BOUNDS_MS.iter().position(|&bound| ms < bound) {
            self.latency_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn failed(&self, panicked: bool) {
        let counter = if panicked {
            &self.panics
        } else {
            &self.failures
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn timed_out(&self) {
        self.timeouts.fetch_add(1, Ordering::Relaxed);
    }

    pub fn queue_was_full(&self) {
        self.queue_full.fetch_add(1, Ordering::Relaxed);
    }

    pub fn was_unavailable(&self) {
        self.unavailable.fetch_add(1, Ordering::Relaxed);
    }
}

impl PoolCounters {
    pub fn posted(&self) {
        self.queued.fetch_add(1, Ordering::Relaxed);
    }

    pub fn started(&self) {
        self.queued.fetch_sub(1, Ordering::Relaxed);
        self.running.fetch_add(1, Ordering::Relaxed);
    }

    pub fn finished(&self) {
        self.running.fetch_sub(1, Ordering::Relaxed);
        self.completed.fetch_add(1, Ordering::Relaxed);
    }

    /// A queued call dropped unrun: it timed out before a thread took it.
    pub fn skipped(&self) {
        self.queued.fetch_sub(1, Ordering::Relaxed);
    }

    /// A posted call the full queue refused: it never waited in it.
    pub fn rejected(&self) {
        self.queued.fetch_sub(1, Ordering::Relaxed);
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }
}

/// Where a location's counters are, once the zone exists; empty without a zone.
#[derive(Default)]
pub struct CounterSlots {
    app: Cell<Option<NonNull<AppCounters>>>,
    pool: Cell<Option<NonNull<PoolCounters>>>,
}

impl CounterSlots {
    pub fn app(&self) -> Option<&AppCounters> {
        // SAFETY: set to an entry of the shared table, which lives as long as the zone.
        self.app.get().map(|counters| unsafe { counters.as_ref() })
    }

    pub fn pool(&self) -> Option<&PoolCounters> {
        // SAFETY: as above.
        self.pool.get().map(|counters| unsafe { counters.as_ref() })
    }
}

/// `gateway_status_zone NAME SIZE;`: keep counters in the shared memory zone NAME.
pub unsafe extern "C" fn set_status_zone(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx calls directive handlers with a valid `cf` while parsing.
    let log = unsafe { (*cf).log };
    guard(log, "gateway_status_zone", NGX_CONF_ERROR, || {
        // SAFETY: `conf` is this module's main configuration (NGX_HTTP_MAIN_CONF_OFFSET).
        let main = unsafe { &mut *conf.cast::<MainConf>() };
        if main.status_zone.is_some() {
            return c"is duplicate".as_ptr().cast_mut();
        }
        // SAFETY: NGX_CONF_TAKE2: args are [name, zone name, size].
        let args = unsafe { (*(*cf).args).as_slice::<ngx_str_t>() };
        let (mut name, mut size_text) = (args[1], args[2]);
        // SAFETY: a configuration string, only read.
        let size = unsafe { ngx_parse_size(&mut size_text) };
        if size == NGX_ERROR as isize {
            ngx_conf_log_error!(
                NGX_LOG_EMERG,
                cf,
                "gateway_status_zone: invalid size \"{}\"",
                String::from_utf8_lossy(size_text.as_bytes())
            );
            return NGX_CONF_ERROR;
        }
        let needed = 2 * std::mem::size_of::<Table>() + 8 * 4096;
        if size < needed as isize {
            ngx_conf_log_error!(
                NGX_LOG_EMERG,
                cf,
                "gateway_status_zone \"{}\" needs a size of at least {}k",
                String::from_utf8_lossy(name.as_bytes()),
                needed.div_ceil(1024)
            );
            return NGX_CONF_ERROR;
        }
        let tag = std::ptr::addr_of!(crate::ngx_http_gateway_module)
            .cast_mut()
            .cast::<c_void>();
        // SAFETY: called while parsing; nginx owns the zone and maps it before the workers fork.
        let zone = unsafe { ngx_shared_memory_add(cf, &mut name, size as usize, tag) };
        let Some(mut zone) = NonNull::new(zone) else {
            return NGX_CONF_ERROR;
        };
        // SAFETY: the zone was just added; its data and init are ours to set.
        unsafe {
            let zone = zone.as_mut();
            if !zone.data.is_null() {
                ngx_conf_log_error!(
                    NGX_LOG_EMERG,
                    cf,
                    "gateway_status_zone: the zone name is used by another zone"
                );
                return NGX_CONF_ERROR;
            }
            zone.data = (main as *mut MainConf).cast();
            zone.init = Some(init_zone);
        }
        main.status_zone = Some(zone);
        NGX_CONF_OK
    })
}

/// Sets up the zone's table (or keeps the one the previous configuration used) and points every
/// mount of this configuration at its app's and pool's entries; runs in the master, before the
/// workers fork.
unsafe extern "C" fn init_zone(zone: *mut ngx_shm_zone_t, previous: *mut c_void) -> ngx_int_t {
    // SAFETY: nginx passes the zone being set up; its data is this configuration's MainConf.
    let zone = unsafe { &mut *zone };
    let log = zone.shm.log;
    guard(log, "status zone", NGX_ERROR as ngx_int_t, || {
        // SAFETY: `data` was set to the MainConf in `set_status_zone`, alive with the cycle.
        let main = unsafe { &*zone.data.cast::<MainConf>() };
        // SAFETY: on a reload, `previous` is the old configuration's MainConf, still alive.
        let kept = unsafe { previous.cast::<MainConf>().as_ref() }
            .and_then(|previous| previous.status_table.get())
            // SAFETY: the old table lives in this same zone, mapped at the same address.
            .filter(|table| unsafe { table.as_ref() }.layout == LAYOUT);
        let table = match kept {
            Some(table) => table,
            None => {
                let slab = zone.shm.addr.cast::<ngx_slab_pool_t>();
                // SAFETY: the zone's memory starts with its slab pool; zeroed memory is a valid
                // table (atomics and names start at zero).
                let table =
                    unsafe { ngx_slab_calloc(slab, std::mem::size_of::<Table>()) }.cast::<Table>();
                let Some(mut table) = NonNull::new(table) else {
                    return NGX_ERROR as ngx_int_t;
                };
                // SAFETY: fresh, zeroed and ours.
                unsafe { table.as_mut().layout = LAYOUT };
                table
            }
        };
        main.status_table.set(Some(table));
        // SAFETY: the master is the only process running; workers fork after this.
        let table = unsafe { &mut *table.as_ptr() };
        for &mount in &main.mounts {
            // SAFETY: mounts are location configurations of this cycle.
            let mount = unsafe { &*mount };
            if let Some(app) = &mount.app {
                mount
                    .counters
                    .app
                    .set(entry(&mut table.apps, app.name().as_bytes()));
            }
            if let Some(pool) = &mount.thread_pool_name {
                mount.counters.pool.set(entry(&mut table.pools, pool));
            }
        }
        NGX_OK as ngx_int_t
    })
}

/// Entries with a name: apps and pools.
trait Named {
    fn name(&self) -> &Name;
    fn name_mut(&mut self) -> &mut Name;
}

impl Named for AppCounters {
    fn name(&self) -> &Name {
        &self.name
    }
    fn name_mut(&mut self) -> &mut Name {
        &mut self.name
    }
}

impl Named for PoolCounters {
    fn name(&self) -> &Name {
        &self.name
    }
    fn name_mut(&mut self) -> &mut Name {
        &mut self.name
    }
}

/// The entry named `name`, claiming a free one if needed; `None` when the table is full.
fn entry<T: Named>(entries: &mut [T], name: &[u8]) -> Option<NonNull<T>> {
    let name = &name[..name.len().min(NAME_LEN)];
    let index = entries
        .iter()
        .position(|entry| entry.name().get() == name)
        .or_else(|| {
            entries
                .iter()
                .position(|entry| entry.name().get().is_empty())
        })?;
    let entry = &mut entries[index];
    if entry.name().get().is_empty() {
        entry.name_mut().set(name);
    }
    Some(NonNull::from(entry))
}

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
        let cf_ref = unsafe { &*cf };
        let (Some(core), Some(main)) = (
            NgxHttpCoreModule::location_conf_mut(cf_ref),
            Module::main_conf_mut(cf_ref),
        ) else {
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
                render_prometheus(table),
                b"text/plain; version=0.0.4; charset=utf-8",
            )
        } else {
            (render_json(table), b"application/json")
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

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

fn apps(table: &Table) -> impl Iterator<Item = (String, &AppCounters)> {
    table
        .apps
        .iter()
        .filter(|app| !app.name.get().is_empty())
        .map(|app| (String::from_utf8_lossy(app.name.get()).into_owned(), app))
}

fn pools(table: &Table) -> impl Iterator<Item = (String, &PoolCounters)> {
    table
        .pools
        .iter()
        .filter(|pool| !pool.name.get().is_empty())
        .map(|pool| (String::from_utf8_lossy(pool.name.get()).into_owned(), pool))
}

fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

fn render_json(table: &Table) -> String {
    let mut apps_json = serde_json::Map::new();
    for (name, app) in apps(table) {
        let responses: serde_json::Map<_, _> = CLASSES
            .iter()
            .zip(&app.responses)
            .map(|(class, count)| (class.to_string(), load(count).into()))
            .collect();
        // Cumulative, as in Prometheus: calls that took less than `le_ms` milliseconds.
        let mut cumulative = 0;
        let mut buckets: Vec<serde_json::Value> = LATENCY_BOUNDS_MS
            .iter()
            .zip(&app.latency_buckets)
            .map(|(bound, count)| {
                cumulative += load(count);
                serde_json::json!({ "le_ms": bound, "count": cumulative })
            })
            .collect();
        buckets.push(serde_json::json!({ "le_ms": "+Inf", "count": load(&app.latency_count) }));
        apps_json.insert(
            name,
            serde_json::json!({
                "requests": load_total(app),
                "responses": responses,
                "failures": load(&app.failures),
                "panics": load(&app.panics),
                "timeouts": load(&app.timeouts),
                "queue_full": load(&app.queue_full),
                "unavailable": load(&app.unavailable),
                "in_flight": app.in_flight.load(Ordering::Relaxed),
                "latency": {
                    "buckets": buckets,
                    "count": load(&app.latency_count),
                    "sum_seconds": load(&app.latency_sum_us) as f64 / 1e6,
                },
            }),
        );
    }
    let pools_json: serde_json::Map<_, _> = pools(table)
        .map(|(name, pool)| {
            let value = serde_json::json!({
                "queued": pool.queued.load(Ordering::Relaxed),
                "running": pool.running.load(Ordering::Relaxed),
                "completed": load(&pool.completed),
                "rejected": load(&pool.rejected),
            });
            (name, value)
        })
        .collect();
    let mut json = serde_json::json!({ "apps": apps_json, "thread_pools": pools_json }).to_string();
    json.push('\n');
    json
}

fn load_total(app: &AppCounters) -> u64 {
    app.responses.iter().map(load).sum()
}

/// A Prometheus family: name, help text and how to read it from the counters.
type Metric<C, T> = (&'static str, &'static str, fn(&C) -> T);

/// Prometheus text exposition format 0.0.4.
fn render_prometheus(table: &Table) -> String {
    let mut out = String::new();
    let label = |name: &str| {
        name.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    };
    let family = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    family(
        &mut out,
        "gateway_app_responses_total",
        "counter",
        "Answers by status class, as the app gave them.",
    );
    for (name, app) in apps(table) {
        for (class, count) in CLASSES.iter().zip(&app.responses) {
            let _ = writeln!(
                out,
                "gateway_app_responses_total{{app=\"{}\",class=\"{class}\"}} {}",
                label(&name),
                load(count)
            );
        }
    }
    let counters: [Metric<AppCounters, u64>; 5] = [
        (
            "gateway_app_failures_total",
            "Calls the app failed with an error.",
            |app| load(&app.failures),
        ),
        (
            "gateway_app_panics_total",
            "Calls in which the app panicked.",
            |app| load(&app.panics),
        ),
        (
            "gateway_app_timeouts_total",
            "Offloaded calls past gateway_timeout (answered 504).",
            |app| load(&app.timeouts),
        ),
        (
            "gateway_app_queue_full_total",
            "Calls refused because the thread pool's queue was full (503).",
            |app| load(&app.queue_full),
        ),
        (
            "gateway_app_unavailable_total",
            "Requests refused because the app failed to start (503).",
            |app| load(&app.unavailable),
        ),
    ];
    for (metric, help, value) in counters {
        family(&mut out, metric, "counter", help);
        for (name, app) in apps(table) {
            let _ = writeln!(out, "{metric}{{app=\"{}\"}} {}", label(&name), value(app));
        }
    }
    family(
        &mut out,
        "gateway_app_in_flight",
        "gauge",
        "Calls started and not finished: queued on a thread pool or running app code.",
    );
    for (name, app) in apps(table) {
        let _ = writeln!(
            out,
            "gateway_app_in_flight{{app=\"{}\"}} {}",
            label(&name),
            app.in_flight.load(Ordering::Relaxed)
        );
    }
    family(
        &mut out,
        "gateway_app_call_duration_seconds",
        "histogram",
        "Time the app took to answer.",
    );
    for (name, app) in apps(table) {
        let name = label(&name);
        let mut cumulative = 0;
        for (bound, count) in LATENCY_BOUNDS_MS.iter().zip(&app.latency_buckets) {
            cumulative += load(count);
            let le = *bound as f64 / 1000.0;
            let _ = writeln!(out, "gateway_app_call_duration_seconds_bucket{{app=\"{name}\",le=\"{le}\"}} {cumulative}");
        }
        let count = load(&app.latency_count);
        let _ = writeln!(
            out,
            "gateway_app_call_duration_seconds_bucket{{app=\"{name}\",le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "gateway_app_call_duration_seconds_sum{{app=\"{name}\"}} {}",
            load(&app.latency_sum_us) as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "gateway_app_call_duration_seconds_count{{app=\"{name}\"}} {count}"
        );
    }
    let gauges: [Metric<PoolCounters, i64>; 2] = [
        (
            "gateway_thread_pool_queued",
            "Calls waiting in the pool's queue.",
            |pool| pool.queued.load(Ordering::Relaxed),
        ),
        (
            "gateway_thread_pool_running",
            "Calls running on the pool's threads.",
            |pool| pool.running.load(Ordering::Relaxed),
        ),
    ];
    for (metric, help, value) in gauges {
        family(&mut out, metric, "gauge", help);
        for (name, pool) in pools(table) {
            let _ = writeln!(out, "{metric}{{pool=\"{}\"}} {}", label(&name), value(pool));
        }
    }
    let totals: [Metric<PoolCounters, u64>; 2] = [
        (
            "gateway_thread_pool_completed_total",
            "Calls the pool's threads finished.",
            |pool| load(&pool.completed),
        ),
        (
            "gateway_thread_pool_rejected_total",
            "Calls refused by a full queue.",
            |pool| load(&pool.rejected),
        ),
    ];
    for (metric, help, value) in totals {
        family(&mut out, metric, "counter", help);
        for (name, pool) in pools(table) {
            let _ = writeln!(out, "{metric}{{pool=\"{}\"}} {}", label(&name), value(pool));
        }
    }
    out
}
