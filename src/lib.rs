//! ngx_http_gateway_module: serves web apps from inside nginx, in-process.
//!
//! A request's way through the module, a file a step:
//! - [`directives`] read nginx.conf into the [`conf`]iguration, opening apps with
//!   [`app_loader`] and letting them check their settings ([`app_check`]);
//! - [`worker`] starts every location's app in each worker process ([`app_setup`]);
//! - [`content_handler`] has nginx read the [`request_body`], builds the [`environ`] and calls
//!   the app, inline or on a thread pool ([`offload`]);
//! - a call the app completes later waits as a [`pending_call`], holding its request
//!   ([`request_hold`]), until the [`call`] protocol brings the completion back to the loop;
//! - [`response`] sends what the app answered: bytes, a file, a stream, a redirect.
//!
//! Beside the path, for operators: [`call_record`], [`status`], [`variables`], [`app_log`].
//! Every entry point nginx calls goes through [`panic_guard`].

#![deny(clippy::undocumented_unsafe_blocks)]

mod app_check;
mod app_loader;
mod app_log;
mod app_setup;
mod app_trust;
mod call;
mod call_record;
mod conf;
mod content_handler;
mod directives;
mod environ;
mod nginx_variable;
#[cfg(ngx_feature = "threads")]
mod offload;
mod panic_guard;
mod pending_call;
mod pool_bytes;
mod request_body;
mod request_hold;
mod request_id;
mod response;
mod status;
#[cfg(ngx_feature = "threads")]
mod thread_pool_size;
mod variables;
mod worker;

use std::ffi::{c_char, c_void};
use std::ptr::{addr_of, null_mut};

use ngx::ffi::{
    ngx_command_t, ngx_conf_t, ngx_http_module_t, ngx_int_t, ngx_module_t, ngx_str_t, ngx_uint_t,
    NGX_CONF_FLAG, NGX_CONF_NOARGS, NGX_CONF_TAKE1, NGX_CONF_TAKE2, NGX_CONF_TAKE23, NGX_ERROR,
    NGX_HTTP_LOC_CONF, NGX_HTTP_LOC_CONF_OFFSET, NGX_HTTP_MAIN_CONF, NGX_HTTP_MAIN_CONF_OFFSET,
    NGX_HTTP_MODULE, NGX_HTTP_SRV_CONF, NGX_OK,
};
use ngx::http::{HttpModule, HttpModuleLocationConf, HttpModuleMainConf};
use ngx::ngx_string;

/// The module as ngx's configuration helpers know it.
pub struct Module;

impl HttpModule for Module {
    fn module() -> &'static ngx_module_t {
        // SAFETY: the module static is only written by nginx while loading it (its indexes).
        unsafe { &*addr_of!(ngx_http_gateway_module) }
    }

    unsafe extern "C" fn preconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
        // SAFETY: nginx calls this with the configuration being parsed.
        let log = unsafe { (*cf).log };
        panic_guard::guard(log, "preconfiguration", NGX_ERROR as ngx_int_t, || {
            variables::register(cf)
        })
    }

    unsafe extern "C" fn postconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
        // SAFETY: nginx calls this with the parsed configuration.
        let log = unsafe { (*cf).log };
        panic_guard::guard(log, "postconfiguration", NGX_ERROR as ngx_int_t, || {
            // SAFETY: as above; `cf->ctx` is the http block's.
            match Module::main_conf(unsafe { &*cf }) {
                Some(main) if !status::check_configuration(cf, main) => NGX_ERROR as ngx_int_t,
                Some(main) if !app_check::settings_accepted(cf, main) => NGX_ERROR as ngx_int_t,
                _ => NGX_OK as ngx_int_t,
            }
        })
    }
}

// SAFETY: the main configuration of this module is a `conf::MainConf`, made by
// `create_main_conf` below.
unsafe impl HttpModuleMainConf for Module {
    type MainConf = conf::MainConf;
}

// SAFETY: every location configuration of this module is a `conf::LocationConf`, made by
// `create_loc_conf` below.
unsafe impl HttpModuleLocationConf for Module {
    type LocationConf = conf::LocationConf;
}

/// One directive of the module: where it may stand and how many arguments it takes (`kind`),
/// the handler that parses it, and which configuration that handler gets.
const fn directive(
    name: ngx_str_t,
    kind: u32,
    set: DirectiveHandler,
    conf: usize,
) -> ngx_command_t {
    ngx_command_t {
        name,
        type_: kind as ngx_uint_t,
        set: Some(set),
        conf,
        offset: 0,
        post: null_mut(),
    }
}

type DirectiveHandler =
    unsafe extern "C" fn(*mut ngx_conf_t, *mut ngx_command_t, *mut c_void) -> *mut c_char;

static mut COMMANDS: [ngx_command_t; 11] = [
    directive(
        ngx_string!("gateway_app"),
        NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
        directives::set_gateway_app,
        NGX_HTTP_LOC_CONF_OFFSET,
    ),
    directive(
        ngx_string!("gateway_app_param"),
        NGX_HTTP_LOC_CONF | NGX_CONF_TAKE2,
        directives::set_gateway_app_param,
        NGX_HTTP_LOC_CONF_OFFSET,
    ),
    directive(
        ngx_string!("gateway_script_name"),
        NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
        directives::set_gateway_script_name,
        NGX_HTTP_LOC_CONF_OFFSET,
    ),
    directive(
        ngx_string!("gateway_param"),
        NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE23,
        directives::set_gateway_param,
        NGX_HTTP_LOC_CONF_OFFSET,
    ),
    directive(
        ngx_string!("gateway_thread_pool"),
        NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
        directives::set_gateway_thread_pool,
        NGX_HTTP_LOC_CONF_OFFSET,
    ),
    directive(
        ngx_string!("gateway_timeout"),
        NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
        directives::set_gateway_timeout,
        NGX_HTTP_LOC_CONF_OFFSET,
    ),
    directive(
        ngx_string!("gateway_status_zone"),
        NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE2,
        status::set_status_zone,
        NGX_HTTP_MAIN_CONF_OFFSET,
    ),
    directive(
        ngx_string!("gateway_status"),
        NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS,
        status::set_status,
        NGX_HTTP_LOC_CONF_OFFSET,
    ),
    directive(
        ngx_string!("gateway_slow_request"),
        NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
        directives::set_gateway_slow_request,
        NGX_HTTP_LOC_CONF_OFFSET,
    ),
    directive(
        ngx_string!("gateway_strict_modes"),
        NGX_HTTP_MAIN_CONF | NGX_CONF_FLAG,
        directives::set_gateway_strict_modes,
        NGX_HTTP_MAIN_CONF_OFFSET,
    ),
    ngx_command_t::empty(),
];

static CONTEXT: ngx_http_module_t = ngx_http_module_t {
    preconfiguration: Some(Module::preconfiguration),
    postconfiguration: Some(Module::postconfiguration),
    create_main_conf: Some(Module::create_main_conf),
    init_main_conf: None,
    create_srv_conf: None,
    merge_srv_conf: None,
    create_loc_conf: Some(Module::create_loc_conf),
    merge_loc_conf: Some(Module::merge_loc_conf),
};

// A dynamic module built outside nginx's build system exports its own module table.
ngx::ngx_modules!(ngx_http_gateway_module);

#[used]
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_http_gateway_module: ngx_module_t = ngx_module_t {
    ctx: addr_of!(CONTEXT) as *mut _,
    // SAFETY: only the address of the command table is taken.
    commands: unsafe { addr_of!(COMMANDS[0]) as *mut _ },
    type_: NGX_HTTP_MODULE as ngx_uint_t,
    init_process: Some(worker::init_process),
    exit_process: Some(worker::exit_process),
    ..ngx_module_t::default()
};
