//! Once per worker process, after the fork: app code may run here, never in the master.

use ngx::ffi::{ngx_cycle_t, ngx_int_t, NGX_ERROR, NGX_LOG_INFO, NGX_OK};
use ngx::http::HttpModuleMainConf;
use ngx::ngx_log_error;

use crate::panic_guard::guard;
use crate::Module;

pub unsafe extern "C" fn init_process(cycle: *mut ngx_cycle_t) -> ngx_int_t {
    // SAFETY: nginx calls init_process with its live cycle.
    let cycle = unsafe { &*cycle };
    guard(cycle.log, "worker init", NGX_ERROR as ngx_int_t, || {
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
        NGX_OK as ngx_int_t
    })
}
