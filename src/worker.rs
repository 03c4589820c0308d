//! Once per worker process, after the fork: app instances are made here and ended at exit,
//! so app code (its threads, its sockets) never runs in the master.

use std::ffi::c_void;

use gateway::abi;
use ngx::ffi::{ngx_cycle_t, ngx_int_t, NGX_LOG_ERR, NGX_LOG_INFO, NGX_OK};
use ngx::http::HttpModuleMainConf;
use ngx::ngx_log_error;

use crate::content_handler::HOST;
use crate::directives::{Instance, LocationConf};
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
            let instance = start(mount).unwrap_or_else(|message| {
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

/// Makes the app instance of one location, or says why it could not.
fn start(mount: &LocationConf) -> Result<Instance, String> {
    let app = mount.app.as_ref().ok_or("no app")?;
    let params: Vec<abi::Pair> = mount
        .app_params
        .iter()
        .map(|(name, value)| abi::Pair {
            name: abi::Bytes::new(name),
            value: abi::Bytes::new(value),
        })
        .collect();
    let mut failure: Option<String> = None;
    let setup = abi::Setup {
        host: &HOST,
        params: params.as_ptr(),
        params_len: params.len(),
        fail: setup_failed,
        context: (&mut failure as *mut Option<String>).cast::<c_void>(),
    };
    let mut instance = std::ptr::null_mut();
    // SAFETY: the descriptor was checked at load; `setup` and its parameters outlive the call.
    let rc = unsafe { (app.descriptor().init)(&setup, &mut instance) };
    match rc {
        0 => Ok(Instance::Ready(instance)),
        _ => Err(failure.unwrap_or_else(|| format!("init returned {rc} without saying why"))),
    }
}

unsafe extern "C" fn setup_failed(setup: *const abi::Setup, message: abi::Bytes) {
    let log = ngx::log::ngx_cycle_log().as_ptr();
    guard(log, "init failure report", (), || {
        // SAFETY: `context` is the `Option<String>` of `start`, alive during init.
        let failure = unsafe { &mut *(*setup).context.cast::<Option<String>>() };
        // SAFETY: the ABI makes `message` valid for the duration of this call.
        *failure = Some(String::from_utf8_lossy(unsafe { message.as_slice() }).into_owned());
    })
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
    })
}
