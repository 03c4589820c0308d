//! The apps' own `check` of their locations' settings (ABI 1.1), when nginx reads its
//! configuration: a typo in a `gateway_app_param` fails `nginx -t`, not the first request.

use ngx::ffi::{ngx_conf_t, NGX_LOG_EMERG};
use ngx::ngx_log_error;

use crate::app_setup::{self, Phase};
use crate::conf::MainConf;

/// Runs every mount's `check`; false (each refusal logged with its `gateway_app` line) if an
/// app refused its settings.
pub fn settings_accepted(cf: *mut ngx_conf_t, main: &MainConf) -> bool {
    // SAFETY: nginx calls postconfiguration with the parsed configuration, its log and cycle.
    let (log, prefix) = unsafe { ((*cf).log, (*(*cf).cycle).prefix.as_bytes()) };
    let mut accepted = true;
    for &mount in &main.mounts {
        // SAFETY: mounts are location configurations of this configuration, alive with it.
        let mount = unsafe { &*mount };
        let Some(app) = mount.app.as_ref() else {
            continue;
        };
        let Some(check) = app.descriptor().check else {
            continue;
        };
        // SAFETY: the descriptor was checked at load and declares `check`; the setup and its
        // parameters outlive the call.
        let checked = app_setup::run(mount, prefix, Phase::Check, "check", |setup| unsafe {
            check(setup)
        });
        if let Err(message) = checked {
            ngx_log_error!(
                NGX_LOG_EMERG,
                log,
                "gateway: app \"{}\" refused the settings of its location: {message} in {}",
                app.name(),
                mount.app_directive
            );
            accepted = false;
        }
    }
    accepted
}
