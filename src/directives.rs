//! The `gateway_*` directives: each checks its arguments (failing `nginx -t` with the file
//! and line) and fills in the configuration (`conf`).

use std::ffi::{c_char, c_void, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Duration;

use ngx::core::{NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::ffi::{
    ngx_command_t, ngx_conf_full_name, ngx_conf_t, ngx_http_compile_complex_value,
    ngx_http_compile_complex_value_t, ngx_http_complex_value_t, ngx_http_core_loc_conf_t,
    ngx_http_get_variable_index, ngx_int_t, ngx_msec_t, ngx_parse_time, ngx_str_t, NGX_ERROR,
    NGX_LOG_EMERG, NGX_OK,
};
use ngx::ngx_conf_log_error;

use crate::conf::{location_and_main, EnvironVariables, LocationConf, Param, ThreadPool};
use crate::content_handler::gateway_content_handler;
use crate::panic_guard::guard;
use crate::{app_loader, app_trust};

/// The arguments of the directive being parsed, its name first.
///
/// # Safety
/// `cf` must be the configuration being parsed, inside a directive handler.
unsafe fn arguments<'a>(cf: *mut ngx_conf_t) -> &'a [ngx_str_t] {
    // SAFETY: per the caller, `cf->args` is the array of the directive's words.
    unsafe { (*(*cf).args).as_slice() }
}

/// Runs a directive handler's body with the module's location configuration, catching panics.
fn with_location_conf(
    cf: *mut ngx_conf_t,
    conf: *mut c_void,
    directive: &str,
    body: impl FnOnce(&mut LocationConf) -> *mut c_char,
) -> *mut c_char {
    // SAFETY: nginx calls directive handlers with a valid `cf` while parsing.
    let log = unsafe { (*cf).log };
    guard(log, directive, NGX_CONF_ERROR, || {
        // SAFETY: `conf` is this module's location configuration, made by create_loc_conf.
        body(unsafe { &mut *conf.cast::<LocationConf>() })
    })
}

/// `gateway_app PATH;`: serve this location with the app library at PATH (relative paths are
/// taken from nginx's prefix). The library is opened and checked here, so `nginx -t` reports
/// a bad app with this file and line.
pub unsafe extern "C" fn set_gateway_app(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    with_location_conf(cf, conf, "gateway_app", |conf| {
        // SAFETY: called by nginx for this directive.
        unsafe { configure_app(cf, conf) }
    })
}

unsafe fn configure_app(cf: *mut ngx_conf_t, conf: &mut LocationConf) -> *mut c_char {
    if conf.app.is_some() {
        return c"is duplicate".as_ptr().cast_mut();
    }
    // SAFETY: nginx checked the argument count (NGX_CONF_TAKE1): args are [name, path].
    let mut path = unsafe { arguments(cf) }[1];
    // SAFETY: `cf->cycle` is the cycle being configured; the result is allocated in its pool.
    if unsafe { ngx_conf_full_name((*cf).cycle, &mut path, 0) } != NGX_OK as ngx_int_t {
        return NGX_CONF_ERROR;
    }
    let path = Path::new(OsStr::from_bytes(path.as_bytes()));
    // SAFETY: inside a location block, `cf->ctx` holds that location's configurations.
    let cf_ref = unsafe { &*cf };
    let Some((core, main)) = location_and_main(cf_ref) else {
        return NGX_CONF_ERROR;
    };
    // Before loading: the loader runs the library's initialisers, here in the master.
    let strict = main.strict_modes.unwrap_or(true);
    if let Err(reason) = app_trust::judge_before_loading(cf_ref, strict, path) {
        ngx_conf_log_error!(
            NGX_LOG_EMERG,
            cf,
            "gateway: app library \"{}\" is not trusted: {reason}",
            path.display()
        );
        return NGX_CONF_ERROR;
    }
    let app = match app_loader::open(path) {
        Ok(app) => app,
        Err(error) => {
            ngx_conf_log_error!(NGX_LOG_EMERG, cf, "{error}");
            return NGX_CONF_ERROR;
        }
    };

    if main.variables.is_none() {
        // SAFETY: called while parsing, as variable indexes must be.
        match unsafe { EnvironVariables::register(cf) } {
            Some(variables) => main.variables = Some(variables),
            None => return NGX_CONF_ERROR,
        }
    }
    if !main.apps.iter().any(|known| Arc::ptr_eq(known, &app)) {
        main.apps.push(Arc::clone(&app));
    }
    main.mounts.push(conf as *const LocationConf);
    // SAFETY: while parsing, `cf->conf_file` is the file being read.
    let file = unsafe { &*cf_ref.conf_file };
    conf.app_directive = format!(
        "{}:{}",
        String::from_utf8_lossy(file.file.name.as_bytes()),
        file.line
    );
    core.handler = Some(gateway_content_handler);
    conf.location_name = core.name.as_bytes().to_vec();
    if !conf.script_name_set {
        conf.script_name = default_mount_point(core);
    }
    conf.app = Some(app);
    NGX_CONF_OK
}

impl EnvironVariables {
    /// # Safety
    /// `cf` must be the configuration being parsed.
    unsafe fn register(cf: *mut ngx_conf_t) -> Option<Self> {
        let index = |name: &'static str| {
            let mut name = ngx_str_t {
                len: name.len(),
                data: name.as_ptr().cast_mut(),
            };
            // SAFETY: per the caller; nginx copies the name and does not write to it.
            let index = unsafe { ngx_http_get_variable_index(cf, &mut name) };
            (index != NGX_ERROR as ngx_int_t).then_some(index)
        };
        Some(EnvironVariables {
            scheme: index("scheme")?,
            request_id: index("request_id")?,
        })
    }
}

fn default_mount_point(core: &ngx_http_core_loc_conf_t) -> Vec<u8> {
    if core.exact_match() != 0 || !core.regex.is_null() || core.named() != 0 || core.noname() != 0 {
        return Vec::new();
    }
    let prefix = core.name.as_bytes();
    prefix.strip_suffix(b"/").unwrap_or(prefix).to_vec()
}

/// `gateway_script_name PREFIX;`: the app's mount point (SCRIPT_NAME) in this location,
/// for locations whose own name is not it (exact, regex) or to mount elsewhere.
pub unsafe extern "C" fn set_gateway_script_name(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    with_location_conf(cf, conf, "gateway_script_name", |conf| {
        if conf.script_name_set {
            return c"is duplicate".as_ptr().cast_mut();
        }
        // SAFETY: NGX_CONF_TAKE1: args are [name, prefix].
        let prefix = unsafe { arguments(cf) }[1].as_bytes();
        if !(prefix.is_empty() || prefix.starts_with(b"/")) {
            ngx_conf_log_error!(
                NGX_LOG_EMERG,
                cf,
                "gateway_script_name \"{}\" must be empty or start with \"/\"",
                String::from_utf8_lossy(prefix)
            );
            return NGX_CONF_ERROR;
        }
        conf.script_name = prefix.strip_suffix(b"/").unwrap_or(prefix).to_vec();
        conf.script_name_set = true;
        NGX_CONF_OK
    })
}

/// `gateway_param NAME VALUE [if_not_empty];`: adds NAME to the environ (or overrides the
/// module's own key of that name) with VALUE, which may contain variables.
pub unsafe extern "C" fn set_gateway_param(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    with_location_conf(cf, conf, "gateway_param", |conf| {
        // SAFETY: NGX_CONF_TAKE23: args are [name, NAME, VALUE] and maybe a flag.
        let args = unsafe { arguments(cf) };
        let if_not_empty = match args.get(3).map(ngx_str_t::as_bytes) {
            None => false,
            Some(b"if_not_empty") => true,
            Some(other) => {
                ngx_conf_log_error!(
                    NGX_LOG_EMERG,
                    cf,
                    "invalid parameter \"{}\"",
                    String::from_utf8_lossy(other)
                );
                return NGX_CONF_ERROR;
            }
        };
        let name = args[1].as_bytes();
        if name.is_empty() {
            ngx_conf_log_error!(NGX_LOG_EMERG, cf, "gateway_param needs a non-empty name");
            return NGX_CONF_ERROR;
        }
        // SAFETY: compiled while parsing, against this configuration.
        let Some(value) = (unsafe { compile_value(cf, args[2]) }) else {
            return NGX_CONF_ERROR;
        };
        conf.params.push(Param {
            name: name.to_vec(),
            value,
            if_not_empty,
        });
        NGX_CONF_OK
    })
}

/// # Safety
/// `cf` must be the configuration being parsed.
unsafe fn compile_value(
    cf: *mut ngx_conf_t,
    mut source: ngx_str_t,
) -> Option<ngx_http_complex_value_t> {
    // SAFETY: both are plain C structs for which all-zero is the documented initial state.
    let (mut value, mut compile) = unsafe {
        (
            std::mem::zeroed::<ngx_http_complex_value_t>(),
            std::mem::zeroed::<ngx_http_compile_complex_value_t>(),
        )
    };
    compile.cf = cf;
    compile.value = &mut source;
    compile.complex_value = &mut value;
    // SAFETY: `compile` points at live values; nginx logs its own errors with file and line.
    let rc = unsafe { ngx_http_compile_complex_value(&mut compile) };
    (rc == NGX_OK as ngx_int_t).then_some(value)
}

/// `gateway_app_param NAME VALUE;`: a setting for the app of this location, which its init
/// reads (`gateway::Config`).
pub unsafe extern "C" fn set_gateway_app_param(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    with_location_conf(cf, conf, "gateway_app_param", |conf| {
        // SAFETY: NGX_CONF_TAKE2: args are [name, NAME, VALUE].
        let args = unsafe { arguments(cf) };
        let (name, value) = (args[1].as_bytes(), args[2].as_bytes());
        if name.is_empty() {
            ngx_conf_log_error!(
                NGX_LOG_EMERG,
                cf,
                "gateway_app_param needs a non-empty name"
            );
            return NGX_CONF_ERROR;
        }
        conf.app_params.push((name.to_vec(), value.to_vec()));
        NGX_CONF_OK
    })
}

/// `gateway_thread_pool NAME;`: run this location's app calls on nginx's thread pool NAME
/// (declared with `thread_pool`, or `default`), so a slow call does not stall the worker's
/// other connections.
pub unsafe extern "C" fn set_gateway_thread_pool(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    with_location_conf(cf, conf, "gateway_thread_pool", |conf| {
        if conf.thread_pool.is_some() {
            return c"is duplicate".as_ptr().cast_mut();
        }
        // SAFETY: NGX_CONF_TAKE1: args are [name, pool].
        let name = unsafe { arguments(cf) }[1];
        // SAFETY: called while parsing this directive.
        match unsafe { add_thread_pool(cf, name) } {
            Some(pool) => {
                conf.thread_pool = Some(pool);
                conf.thread_pool_name = Some(name.as_bytes().to_vec());
                NGX_CONF_OK
            }
            None => NGX_CONF_ERROR,
        }
    })
}

/// # Safety
/// `cf` must be the configuration being parsed.
#[cfg(ngx_feature = "threads")]
unsafe fn add_thread_pool(cf: *mut ngx_conf_t, mut name: ngx_str_t) -> Option<ThreadPool> {
    // SAFETY: per the caller; nginx checks at the end of the configuration that a pool other
    // than "default" was declared, and reports it with this file and line.
    NonNull::new(unsafe { ngx::ffi::ngx_thread_pool_add(cf, &mut name) })
}

/// # Safety
/// `cf` must be the configuration being parsed.
#[cfg(not(ngx_feature = "threads"))]
unsafe fn add_thread_pool(cf: *mut ngx_conf_t, _name: ngx_str_t) -> Option<ThreadPool> {
    ngx_conf_log_error!(
        NGX_LOG_EMERG,
        cf,
        "gateway_thread_pool needs an nginx built with --with-threads"
    );
    None
}

/// `gateway_timeout TIME;`: the longest an offloaded app call may take; past it the client
/// gets a 504 and the call's late result is discarded.
pub unsafe extern "C" fn set_gateway_timeout(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    with_location_conf(cf, conf, "gateway_timeout", |conf| {
        if conf.timeout_set {
            return c"is duplicate".as_ptr().cast_mut();
        }
        // SAFETY: NGX_CONF_TAKE1: args are [name, time].
        let mut value = unsafe { arguments(cf) }[1];
        // SAFETY: `value` is a configuration string; ngx_parse_time only reads it.
        let timeout = unsafe { ngx_parse_time(&mut value, 0) };
        if timeout <= 0 {
            ngx_conf_log_error!(
                NGX_LOG_EMERG,
                cf,
                "gateway_timeout \"{}\" is not a positive time",
                String::from_utf8_lossy(value.as_bytes())
            );
            return NGX_CONF_ERROR;
        }
        conf.timeout = timeout as ngx_msec_t;
        conf.timeout_set = true;
        NGX_CONF_OK
    })
}

/// `gateway_slow_request TIME;`: log a warning for app calls slower than TIME.
pub unsafe extern "C" fn set_gateway_slow_request(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    with_location_conf(cf, conf, "gateway_slow_request", |conf| {
        if conf.slow_request.is_some() {
            return c"is duplicate".as_ptr().cast_mut();
        }
        // SAFETY: NGX_CONF_TAKE1: args are [name, time].
        let mut value = unsafe { arguments(cf) }[1];
        // SAFETY: `value` is a configuration string; ngx_parse_time only reads it.
        let threshold = unsafe { ngx_parse_time(&mut value, 0) };
        if threshold < 0 {
            ngx_conf_log_error!(
                NGX_LOG_EMERG,
                cf,
                "gateway_slow_request \"{}\" is not a time",
                String::from_utf8_lossy(value.as_bytes())
            );
            return NGX_CONF_ERROR;
        }
        conf.slow_request = Some(Duration::from_millis(threshold as u64));
        NGX_CONF_OK
    })
}

/// `gateway_strict_modes on|off;`: whether `nginx -t` run as root refuses app libraries that
/// someone other than root or the worker user could replace (`app_trust`); on by default.
/// Parsed by nginx's own flag parser: "on" or "off", "is duplicate" when repeated.
pub unsafe extern "C" fn set_gateway_strict_modes(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx calls directive handlers with a valid `cf` while parsing.
    let log = unsafe { (*cf).log };
    guard(log, "gateway_strict_modes", NGX_CONF_ERROR, || {
        // SAFETY: `conf` is this module's main configuration (NGX_HTTP_MAIN_CONF_OFFSET).
        let main = unsafe { &mut *conf.cast::<crate::conf::MainConf>() };
        let mut flag: ngx::ffi::ngx_flag_t = match main.strict_modes {
            None => ngx::ffi::NGX_CONF_UNSET as ngx::ffi::ngx_flag_t,
            Some(on) => on.into(),
        };
        // The parser writes at `conf + offset`: here the local flag, with no post handler.
        // SAFETY: `cmd` is this directive's command, which nginx passes to its handler.
        let mut command = unsafe { *cmd };
        command.offset = 0;
        command.post = std::ptr::null_mut();
        let flag_ptr = std::ptr::addr_of_mut!(flag).cast();
        // SAFETY: called while parsing this directive (NGX_CONF_FLAG: args are [name, value]);
        // nginx reads and writes only `flag`, and logs a bad value with this file and line.
        let rc = unsafe { ngx::ffi::ngx_conf_set_flag_slot(cf, &mut command, flag_ptr) };
        if rc == NGX_CONF_OK {
            main.strict_modes = Some(flag != 0);
        }
        rc
    })
}
