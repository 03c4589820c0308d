//! Once per worker process, after the fork: app instances are made here and ended at exit,
//! so app code (its threads, its sockets) never runs in the master.

use ngx::ffi::{ngx_cycle_t, ngx_int_t, ngx_worker, NGX_LOG_ERR, NGX_LOG_INFO, NGX_OK};
use ngx::http::HttpModuleMainConf;
use ngx::ngx_log_error;

use crate::app_setup::{self, Phase};
use crate::call::wake;
use crate::conf::{Instance, LocationConf};
use crate::panic_guard::guard;
use crate::Module;

pub unsafe extern "C" fn init_process(cycle: *mut ngx_cycle_t) -> ngx_int_t {
    // SAFETY: nginx calls init_process with its live cycle.
    let cycle = unsafe { &*cycle };
    // A failure here must not stop the worker: nginx would only fork it again and again.
    guard(cycle.log, "worker init", NGX_OK as ngx_int_t, || {
        let Some(main) = Module::main_conf(cycle) else {
            return NGX_OK as ngx_int_t;
        };
        if main.mounts.is_empty() {
            return NGX_OK as ngx_int_t;
        }
        // Calls completed later, from other threads, come back to this worker's loop here.
        wake::start(cycle);
        // SAFETY: nginx sets the worker's number before its modules' init_process.
        let worker = u32::try_from(unsafe { ngx_worker }).unwrap_or(u32::MAX);
        for app in &main.apps {
            let descriptor = app.descriptor();
            ngx_log_error!(
                NGX_LOG_INFO,
                cycle.log,
                "gateway: app \"{}\" ready from \"{}\" (SDK {}, ABI {}.{})",
                app.name(),
                app.path().display(),
                app.sdk_version(),
                descriptor.abi_version,
                descriptor.abi_minor
            );
        }
        for &mount in &main.mounts {
            // SAFETY: mounts are location configurations of this cycle, alive as long as it.
            let mount = unsafe { &*mount };
            let instance = start(mount, cycle.prefix.as_bytes(), worker).unwrap_or_else(|message| {
                let name = mount.app.as_ref().map_or("?", |app| app.name());
                ngx_log_error!(
                    NGX_LOG_ERR,
                    cycle.log,
                    "gateway: app \"{name}\" failed to start in this worker, its location answers 503: {message}"
                );
                Instance::Failed
            });
            mount.instance.set(instance);
        }
        NGX_OK as ngx_int_t
    })
}

/// Makes the app instance of one location in a cycle of prefix `prefix`, or says why it
/// could not.
fn start(mount: &LocationConf, prefix: &[u8], worker: u32) -> Result<Instance, String> {
    let app = mount.app.as_ref().ok_or("no app")?;
    let mut instance = std::ptr::null_mut();
    app_setup::run(mount, prefix, Phase::Worker(worker), "init", |setup| {
        // SAFETY: the descriptor was checked at load; `setup` and its parameters outlive the
        // call.
        unsafe { (app.descriptor().init)(setup, &mut instance) }
    })?;
    Ok(Instance::Ready(instance))
}

pub unsafe extern "C" fn exit_process(cycle: *mut ngx_cycle_t) {
    // SAFETY: nginx calls exit_process with its live cycle.
    let cycle = unsafe { &*cycle };
    guard(cycle.log, "worker exit", (), || {
        let Some(main) = Module::main_conf(cycle) else {
            return;
        };
        for &mount in &main.mounts {
            // SAFETY: as in init_process.
            let mount = unsafe { &*mount };
            if let (Instance::Ready(instance), Some(app)) = (mount.instance.get(), &mount.app) {
                mount.instance.set(Instance::NotStarted);
                // SAFETY: the instance came from this app's init and is ended once.
                unsafe { (app.descriptor().shutdown)(instance) };
            }
        }
        wake::stop();
    })
}
