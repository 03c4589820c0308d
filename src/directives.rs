//! The `gateway_*` directives and the per-location configuration they build.

use std::ffi::{c_char, c_void, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

use ngx::core::{NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::ffi::{ngx_command_t, ngx_conf_full_name, ngx_conf_t, ngx_str_t, NGX_LOG_EMERG, NGX_OK};
use ngx::http::{
    HttpModuleLocationConf, HttpModuleMainConf, Merge, MergeConfigError, NgxHttpCoreModule,
};
use ngx::ngx_conf_log_error;

use crate::app_loader::{self, App};
use crate::content_handler::gateway_content_handler;
use crate::panic_guard::guard;
use crate::Module;

/// The apps this configuration serves, each once however many locations name it.
#[derive(Default)]
pub struct MainConf {
    pub apps: Vec<Arc<App>>,
}

/// What `gateway_app` set up for one location.
#[derive(Default)]
pub struct LocationConf {
    pub app: Option<Arc<App>>,
    /// The location's mount point, the default SCRIPT_NAME: its prefix without trailing
    /// slash, or empty for exact-match and regex locations.
    pub script_name: Vec<u8>,
}

impl Merge for LocationConf {
    // Like proxy_pass, an app serves only the location that names it, not nested ones.
    fn merge(&mut self, _prev: &Self) -> Result<(), MergeConfigError> {
        Ok(())
    }
}

/// `gateway_app PATH;`: serve this location with the app library at PATH (relative paths are
/// taken from nginx's prefix). The library is opened and checked here, so `nginx -t` reports
/// a bad app with this file and line.
pub unsafe extern "C" fn set_gateway_app(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx calls directive handlers with a valid `cf` while parsing.
    let log = unsafe { (*cf).log };
    guard(log, "gateway_app", NGX_CONF_ERROR, || {
        // SAFETY: `conf` is this module's location configuration, created by create_loc_conf.
        let conf = unsafe { &mut *conf.cast::<LocationConf>() };
        // SAFETY: as above.
        unsafe { configure_app(cf, conf) }
    })
}

unsafe fn configure_app(cf: *mut ngx_conf_t, conf: &mut LocationConf) -> *mut c_char {
    if conf.app.is_some() {
        return c"is duplicate".as_ptr().cast_mut();
    }
    // SAFETY: nginx checked the argument count (NGX_CONF_TAKE1): args are [name, path].
    let mut path: ngx_str_t = unsafe { *(*(*cf).args).elts.cast::<ngx_str_t>().add(1) };
    // SAFETY: `cf->cycle` is the cycle being configured; the result is allocated in its pool.
    if unsafe { ngx_conf_full_name((*cf).cycle, &mut path, 0) } != NGX_OK as isize {
        return NGX_CONF_ERROR;
    }
    let path = Path::new(OsStr::from_bytes(path.as_bytes()));
    let app = match app_loader::open(path) {
        Ok(app) => app,
        Err(error) => {
            ngx_conf_log_error!(NGX_LOG_EMERG, cf, "{error}");
            return NGX_CONF_ERROR;
        }
    };

    // SAFETY: inside a location block, `cf->ctx` holds that location's configurations.
    let cf = unsafe { &*cf };
    let (Some(core), Some(main)) = (
        NgxHttpCoreModule::location_conf_mut(cf),
        Module::main_conf_mut(cf),
    ) else {
        return NGX_CONF_ERROR;
    };
    if !main.apps.iter().any(|known| Arc::ptr_eq(known, &app)) {
        main.apps.push(Arc::clone(&app));
    }
    core.handler = Some(gateway_content_handler);
    conf.script_name = mount_point(core);
    conf.app = Some(app);
    NGX_CONF_OK
}

fn mount_point(core: &ngx::ffi::ngx_http_core_loc_conf_t) -> Vec<u8> {
    if core.exact_match() != 0 || !core.regex.is_null() || core.named() != 0 || core.noname() != 0 {
        return Vec::new();
    }
    let prefix = core.name.as_bytes();
    prefix.strip_suffix(b"/").unwrap_or(prefix).to_vec()
}
