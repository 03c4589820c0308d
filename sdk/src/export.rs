//! The app side of the ABI: what [`app!`](crate::app) expands to calls into here.

use std::ffi::c_void;
use std::fmt;
use std::os::unix::ffi::OsStrExt;

use crate::abi;
use crate::config::{Config, ConfigError};
use crate::error::{self, Failure};
use crate::handler::Handler;
use crate::host::Host;
use crate::logging::{self, CallLog, Logger, Target};
use crate::panic_report;
use crate::request::{Environ, Extensions, Request};
use crate::response::{IntoResponse, ReasonPhrase, Response};
use crate::response_body::{Chunk, Kind};

/// Exports the app of this library: a handler, or a function that builds one per worker,
/// optionally with a check of the location's settings at configuration time.
///
/// ```
/// fn hello(_request: &gateway::Request) -> &'static str {
///     "Hello, World!\n"
/// }
/// gateway::app!(hello);
/// # assert!(ngx_gateway_app.check.is_none());
/// ```
///
/// With state built from the location's `gateway_app_param NAME VALUE;` settings, once per
/// nginx worker (its `Drop` runs when the worker exits):
///
/// ```
/// use gateway::{Config, Handler, Request};
///
/// struct Greeter { greeting: String }
///
/// impl Handler for Greeter {
///     fn handle(&self, _request: &Request) -> gateway::Response {
///         gateway::IntoResponse::into_response(format!("{}\n", self.greeting))
///     }
/// }
///
/// fn start(config: &Config) -> Result<Greeter, gateway::ConfigError> {
///     Ok(Greeter { greeting: config.require("greeting")?.to_string() })
/// }
/// gateway::app!(init = start);
/// # assert!(ngx_gateway_app.check.is_none());
/// ```
///
/// A handler takes a `&Request` and returns anything that is [`IntoResponse`]. An init error
/// or panic is logged and the location answers 503. The library must be built as a `cdylib`;
/// nginx loads it with `gateway_app /path/to/libNAME.so;`.
///
/// # Checking settings at configuration time
///
/// An init error shows only once a worker starts, and only in the error log. A check, a
/// `Fn(&Config) -> Result<(), ConfigError>`, runs when nginx reads its configuration
/// (`nginx -t`, start, reload), in the nginx master, with each location's settings: an `Err`
/// (or a panic) makes nginx refuse the configuration with its message and the location's
/// `gateway_app` line. It must only look at the settings: no threads, no connections, no files
/// written, nothing kept (it runs in the master, which forks the workers). In it,
/// [`Config::worker`] is `None`.
///
/// ```
/// use gateway::{Config, ConfigError, Request};
///
/// fn validate(config: &Config) -> Result<(), ConfigError> {
///     config.require("greeting")?;
///     config.parse::<u32>("repeat")?;
///     Ok(())
/// }
///
/// fn start(config: &Config) -> Result<impl gateway::Handler, ConfigError> {
///     let greeting = config.require("greeting")?.to_string();
///     let repeat = config.parse::<u32>("repeat")?.unwrap_or(1) as usize;
///     Ok(move |_: &Request| format!("{}\n", greeting).repeat(repeat))
/// }
/// gateway::app!(init = start, check = validate);
/// # assert!(ngx_gateway_app.check.is_some());
/// ```
#[macro_export]
macro_rules! app {
    (init = $init:expr, check = $check:expr $(,)?) => {
        $crate::__app_descriptor!(
            |config: &$crate::Config| $init(config),
            ::std::option::Option::Some({
                // Named apart from anything an app may pass as `$check`, which is resolved
                // inside this function.
                unsafe extern "C" fn __gateway_check(setup: *const $crate::abi::Setup) -> i32 {
                    // SAFETY: the module calls this per the ABI contract.
                    unsafe { $crate::__private::check(setup, env!("CARGO_PKG_NAME"), $check) }
                }
                __gateway_check
            })
        );
    };
    (init = $init:expr $(,)?) => {
        $crate::__app_descriptor!(
            |config: &$crate::Config| $init(config),
            ::std::option::Option::None
        );
    };
    ($handler:expr $(,)?) => {
        $crate::__app_descriptor!(
            |_: &$crate::Config| {
                ::std::result::Result::<_, ::std::convert::Infallible>::Ok($handler)
            },
            ::std::option::Option::None
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __app_descriptor {
    ($make:expr, $check:expr) => {
        #[doc(hidden)]
        #[no_mangle]
        #[allow(non_upper_case_globals)]
        pub static ngx_gateway_app: $crate::abi::AppDescriptor = $crate::abi::AppDescriptor {
            magic: $crate::abi::MAGIC,
            abi_version: $crate::abi::ABI_VERSION,
            abi_minor: $crate::abi::ABI_MINOR,
            name: $crate::abi::Bytes::from_static(env!("CARGO_PKG_NAME").as_bytes()),
            sdk_version: $crate::abi::Bytes::from_static($crate::SDK_VERSION.as_bytes()),
            init: {
                // Named apart from anything an app may pass as `init = ...`, which is
                // resolved inside this function.
                unsafe extern "C" fn __gateway_init(
                    setup: *const $crate::abi::Setup,
                    instance: *mut *mut ::std::ffi::c_void,
                ) -> i32 {
                    // SAFETY: the module calls this per the ABI contract.
                    unsafe {
                        $crate::__private::init(setup, instance, env!("CARGO_PKG_NAME"), $make)
                    }
                }
                __gateway_init
            },
            call: $crate::__private::call,
            shutdown: $crate::__private::shutdown,
            check: $check,
            cancel: ::std::option::Option::None,
        };
    };
}

/// An app instance: its handler for every request of its location, and its logger, whose
/// module handle ends at shutdown.
struct Instance {
    handler: Box<dyn Handler>,
    logger: Logger,
}

/// Builds the instance with `make` and stores it for the module; `app` is the app's name.
///
/// # Safety
/// `setup` and `instance` must be what the module passed to the app's `init` function.
pub unsafe fn init<M, H, E>(
    setup: *const abi::Setup,
    instance: *mut *mut c_void,
    app: &'static str,
    make: M,
) -> i32
where
    M: FnOnce(&Config) -> Result<H, E>,
    H: Handler,
    E: fmt::Display,
{
    logging::set_app_name(app);
    // SAFETY: the module's setup is valid for the duration of init.
    let config = unsafe { Config::from_setup(setup) };
    let message = match panic_report::catch("init", || make(&config)) {
        Ok(Ok(handler)) => {
            let made = Box::new(Instance {
                handler: Box::new(handler),
                logger: config.logger(),
            });
            // SAFETY: the module passes a writable slot.
            unsafe { instance.write(Box::into_raw(made).cast()) };
            return 0;
        }
        Ok(Err(error)) => format!("init failed: {error}"),
        Err(panic) => panic,
    };
    // Without an instance there is no shutdown: the setup's log handle ends with init.
    config.logger().revoke();
    // SAFETY: the module copies the message before `fail` returns.
    unsafe { ((*setup).fail)(setup, abi::Bytes::new(message.as_bytes())) };
    1
}

/// The ABI `check` of an app: runs `check` on the location's settings; `app` is the app's
/// name.
///
/// # Safety
/// `setup` must be what the module passed to the app's `check` function.
pub unsafe fn check<C>(setup: *const abi::Setup, app: &'static str, check: C) -> i32
where
    C: FnOnce(&Config) -> Result<(), ConfigError>,
{
    logging::set_app_name(app);
    // SAFETY: the module's setup is valid for the duration of the check.
    let config = unsafe { Config::from_setup(setup) };
    let outcome = run_check(check, &config);
    // Nothing of the check outlives it, its log handle included.
    config.logger().revoke();
    match outcome {
        Ok(()) => 0,
        Err(message) => {
            // SAFETY: the module copies the message before `fail` returns.
            unsafe { ((*setup).fail)(setup, abi::Bytes::new(message.as_bytes())) };
            1
        }
    }
}

/// Runs `check`: `Err` holds the message nginx refuses the configuration with.
pub(crate) fn run_check<C>(check: C, config: &Config) -> Result<(), String>
where
    C: FnOnce(&Config) -> Result<(), ConfigError>,
{
    match panic_report::catch("check", || check(config)) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(format!("check failed: {error}")),
        Err(panic) => Err(panic),
    }
}

/// The ABI `call` of every app: runs the instance's handler.
///
/// # Safety
/// The arguments must be what the module passed to the app's `call` function, with an
/// instance made by [`init`].
pub unsafe extern "C" fn call(
    instance: *mut c_void,
    call: *mut abi::Call,
    request: *const abi::Request,
) {
    // SAFETY: `instance` is the `Instance` made by `init`, alive until `shutdown`.
    let instance = unsafe { &*instance.cast::<Instance>() };
    // SAFETY: per the caller.
    unsafe { dispatch(call, request, |request| instance.handler.handle(request)) }
}

/// The ABI `shutdown` of every app: drops the instance, running its `Drop`.
///
/// # Safety
/// `instance` must come from [`init`] and be used no more.
pub unsafe extern "C" fn shutdown(instance: *mut c_void) {
    // SAFETY: per the caller, the box made by `init`, dropped once.
    let Instance { handler, logger } = *unsafe { Box::from_raw(instance.cast::<Instance>()) };
    if let Err(panic) = panic_report::catch("shutdown", || drop(handler)) {
        logger.error(panic);
    }
    // The setup's log handle ends when shutdown returns; loggers the app kept elsewhere (in a
    // thread of its own) go on without it.
    logger.revoke();
}

/// Runs `handler` on one request and completes the call with what it returns; a panic in the
/// handler completes the call as failed instead of unwinding into nginx.
///
/// # Safety
/// `call` and `request` must be what the module passed to the app's `call` function.
pub unsafe fn dispatch<H, R>(call: *mut abi::Call, request: *const abi::Request, handler: H)
where
    H: FnOnce(&Request<'_>) -> R,
    R: IntoResponse,
{
    // SAFETY: the caller passes the module's request (the same layout in every minor), valid
    // until the call is completed.
    let request = unsafe { &*request };
    // SAFETY: the module's host table is a static of the module.
    let host = unsafe { Host::new(request.host) };
    // SAFETY: the module keeps the environ and the body alive until the call is completed.
    let (environ, body) = unsafe {
        (
            abi::slice_from_abi(request.environ, request.environ_len),
            abi::slice_from_abi(request.body, request.body_len),
        )
    };
    let log = CallLog::new(Target::host(host, call));
    let extensions = Extensions::default();

    let outcome = panic_report::catch("handler", || {
        let request = Request::new(Environ::new(environ), body, &log, &extensions);
        let response = handler(&request).into_response();
        error::log_reason(&response, &log);
        match response.extensions().get::<Failure>() {
            Some(Failure(message)) => Err(message.clone()),
            None => Ok(Outgoing::new(response)),
        }
    });
    // The request's logger must stop using the call's handle when the handle ends: when the
    // call completes, or for a stream when the module releases it.
    let logger = log.into_logger();
    let (cause, message) = match outcome {
        Ok(Ok(mut outgoing)) => {
            if let Some(logger) = logger {
                if outgoing.abi.body_kind == abi::BODY_STREAM {
                    outgoing.logger = Some(logger);
                } else {
                    logger.revoke();
                }
            }
            let response = Box::into_raw(outgoing);
            // SAFETY: `response` points to a live `Outgoing` whose first field is the ABI
            // response; the module hands it back to `release_outgoing` exactly once.
            return unsafe { host.respond(call, response.cast::<abi::Response>()) };
        }
        Ok(Err(message)) => (abi::FAILED, message),
        Err(panic) => (abi::PANICKED, panic),
    };
    if let Some(logger) = logger {
        logger.revoke();
    }
    // SAFETY: the module copies the message before `fail` returns.
    unsafe { host.fail(call, cause, message.as_bytes()) }
}

/// A response on its way to the module: the ABI view first, then what it points into.
#[repr(C)]
struct Outgoing {
    abi: abi::Response,
    headers: Vec<abi::Pair>,
    response: Response,
    /// The stream chunk the module is sending, kept alive until it asks for the next one.
    chunk: Option<Chunk>,
    /// Why the stream failed, kept alive for the module to log it.
    stream_error: String,
    /// For a stream: the request's logger, if the app asked for one, revoked on release.
    logger: Option<Logger>,
}

impl Outgoing {
    fn new(response: Response) -> Box<Outgoing> {
        // Every pointer below goes into heap or static storage owned by `response` and
        // `headers`, so moving the box's contents into place does not invalidate them.
        let headers: Vec<abi::Pair> = response
            .headers()
            .iter()
            .map(|(name, value)| abi::Pair {
                name: abi::Bytes::new(name.as_str().as_bytes()),
                value: abi::Bytes::new(value.as_bytes()),
            })
            .collect();
        let reason = response
            .extensions()
            .get::<ReasonPhrase>()
            .map_or("", ReasonPhrase::as_str);
        let (body_kind, body) = match &response.body().0 {
            Kind::Bytes(bytes) => (abi::BODY_BYTES, abi::Bytes::new(bytes)),
            Kind::Stream(_) => (abi::BODY_STREAM, abi::Bytes::EMPTY),
            Kind::File(path) => (abi::BODY_FILE, abi::Bytes::new(path.as_os_str().as_bytes())),
            Kind::Redirect(uri) => (abi::BODY_REDIRECT, abi::Bytes::new(uri.as_bytes())),
        };
        let abi = abi::Response {
            status: response.status().as_u16(),
            reason: abi::Bytes::new(reason.as_bytes()),
            headers: headers.as_ptr(),
            headers_len: headers.len(),
            body_kind,
            body,
            owner: std::ptr::null_mut(),
            release: release_outgoing,
            stream: std::ptr::null_mut(),
            stream_next: (body_kind == abi::BODY_STREAM).then_some(next_chunk as _),
        };
        let mut outgoing = Box::new(Outgoing {
            abi,
            headers,
            response,
            chunk: None,
            stream_error: String::new(),
            logger: None,
        });
        let this = (&mut *outgoing as *mut Outgoing).cast::<c_void>();
        outgoing.abi.owner = this;
        outgoing.abi.stream = this;
        outgoing
    }
}

unsafe extern "C" fn next_chunk(stream: *mut c_void, chunk: *mut abi::Chunk) -> i32 {
    // SAFETY: `stream` is the live `Outgoing` this function was handed out with; the module
    // calls it from one thread at a time and not after releasing it.
    let outgoing = unsafe { &mut *stream.cast::<Outgoing>() };
    // The chunk sent last is done with: the module asks for the next only after that.
    outgoing.chunk = None;
    let Kind::Stream(chunks) = &mut outgoing.response.body_mut().0 else {
        return abi::STREAM_END;
    };
    let next = panic_report::catch("stream", || chunks.next());
    let (status, failure) = match next {
        Ok(None) => return abi::STREAM_END,
        Ok(Some(Ok(next))) => {
            let data = abi::Bytes::new(&next.data);
            let flush = u32::from(next.flush);
            outgoing.chunk = Some(next);
            // SAFETY: the module passes a writable chunk.
            unsafe { chunk.write(abi::Chunk { data, flush }) };
            return abi::STREAM_CHUNK;
        }
        Ok(Some(Err(error))) => (abi::STREAM_ERROR, format!("stream failed: {error}")),
        Err(panic) => (abi::STREAM_PANIC, panic),
    };
    outgoing.stream_error = failure;
    let data = abi::Bytes::new(outgoing.stream_error.as_bytes());
    // SAFETY: as above.
    unsafe { chunk.write(abi::Chunk { data, flush: 0 }) };
    status
}

unsafe extern "C" fn release_outgoing(owner: *mut c_void) {
    // SAFETY: `owner` is the `Box<Outgoing>` leaked in `dispatch`, released once.
    let mut outgoing = unsafe { Box::from_raw(owner.cast::<Outgoing>()) };
    let logger = outgoing.logger.take();
    // Dropping app values (a stream, for one) runs app code; a panic there must not unwind
    // into nginx.
    let _ = panic_report::catch("release", || drop(outgoing));
    // The call's handle stays valid until release returns, so the stream's own `Drop` could
    // still log with it; not after.
    if let Some(logger) = logger {
        logger.revoke();
    }
}
