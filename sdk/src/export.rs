//! The app side of the ABI: what [`app!`](crate::app) expands to calls into here.

use std::ffi::c_void;
use std::fmt;
use std::os::unix::ffi::OsStrExt;

use crate::abi;
use crate::config::Config;
use crate::error::Failure;
use crate::handler::Handler;
use crate::panic_report;
use crate::request::{Environ, Request};
use crate::response::{IntoResponse, ReasonPhrase, Response};
use crate::response_body::{Chunk, Kind};

/// Exports the app of this library: a handler, or a function that builds one per worker.
///
/// ```
/// fn hello(_request: &gateway::Request) -> &'static str {
///     "Hello, World!\n"
/// }
/// gateway::app!(hello);
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
/// ```
///
/// A handler takes a `&Request` and returns anything that is [`IntoResponse`]. An init error
/// or panic is logged and the location answers 503. The library must be built as a `cdylib`;
/// nginx loads it with `gateway_app /path/to/libNAME.so;`.
#[macro_export]
macro_rules! app {
    (init = $init:expr) => {
        $crate::__app_descriptor!(|config: &$crate::Config| $init(config));
    };
    ($handler:expr) => {
        $crate::__app_descriptor!(|_: &$crate::Config| {
            ::std::result::Result::<_, ::std::convert::Infallible>::Ok($handler)
        });
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __app_descriptor {
    ($make:expr) => {
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
                unsafe extern "C" fn init(
                    setup: *const $crate::abi::Setup,
                    instance: *mut *mut ::std::ffi::c_void,
                ) -> i32 {
                    // SAFETY: the module calls this per the ABI contract.
                    unsafe { $crate::__private::init(setup, instance, $make) }
                }
                init
            },
            call: $crate::__private::call,
            shutdown: $crate::__private::shutdown,
        };
    };
}

/// An app instance's handler for every request of its location.
pub type Instance = Box<dyn Handler>;

/// Builds the instance with `make` and stores it for the module.
///
/// # Safety
/// `setup` and `instance` must be what the module passed to the app's `init` function.
pub unsafe fn init<M, H, E>(setup: *const abi::Setup, instance: *mut *mut c_void, make: M) -> i32
where
    M: FnOnce(&Config) -> Result<H, E>,
    H: Handler,
    E: fmt::Display,
{
    // SAFETY: the module's setup is valid for the duration of init.
    let setup_ref = unsafe { &*setup };
    // SAFETY: as above, for the parameters.
    let params = unsafe { abi::slice_from_abi(setup_ref.params, setup_ref.params_len) };
    let built = panic_report::catch("init", || {
        let config = Config::from_abi(params);
        make(&config).map(|handler| Box::new(handler) as Instance)
    });
    let message = match built {
        Ok(Ok(handler)) => {
            // SAFETY: the module passes a writable slot.
            unsafe { instance.write(Box::into_raw(Box::new(handler)).cast()) };
            return 0;
        }
        Ok(Err(error)) => format!("init failed: {error}"),
        Err(panic) => panic,
    };
    // SAFETY: the module copies the message before `fail` returns.
    unsafe { (setup_ref.fail)(setup, abi::Bytes::new(message.as_bytes())) };
    1
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
    // SAFETY: `instance` is the `Box<Instance>` made by `init`, alive until `shutdown`.
    let handler = unsafe { &**instance.cast::<Instance>() };
    // SAFETY: per the caller.
    unsafe { dispatch(call, request, |request| handler.handle(request)) }
}

/// The ABI `shutdown` of every app: drops the instance, running its `Drop`.
///
/// # Safety
/// `instance` must come from [`init`] and be used no more.
pub unsafe extern "C" fn shutdown(instance: *mut c_void) {
    let _ = panic_report::catch("shutdown", || {
        // SAFETY: per the caller, the box made by `init`, dropped once.
        drop(unsafe { Box::from_raw(instance.cast::<Instance>()) });
    });
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
    // SAFETY: the caller passes the module's request, valid until the call is completed.
    let request = unsafe { &*request };
    // SAFETY: the module's host table is a static of the module.
    let host = unsafe { &*request.host };
    // SAFETY: the module keeps the environ and the body alive until the call is completed.
    let (environ, body) = unsafe {
        (
            abi::slice_from_abi(request.environ, request.environ_len),
            abi::slice_from_abi(request.body, request.body_len),
        )
    };

    let outcome = panic_report::catch("handler", || {
        let request = Request::new(Environ::new(environ), body);
        let response = handler(&request).into_response();
        match response.extensions().get::<Failure>() {
            Some(Failure(message)) => Err(message.clone()),
            None => Ok(Outgoing::new(response)),
        }
    });
    let (cause, message) = match outcome {
        Ok(Ok(outgoing)) => {
            let response = Box::into_raw(outgoing);
            // SAFETY: `response` points to a live `Outgoing` whose first field is the ABI
            // response; the module hands it back to `release_outgoing` exactly once.
            return unsafe { (host.respond)(call, response.cast::<abi::Response>()) };
        }
        Ok(Err(message)) => (abi::FAILED, message),
        Err(panic) => (abi::PANICKED, panic),
    };
    // SAFETY: the module copies the message before `fail` returns.
    unsafe { (host.fail)(call, cause, abi::Bytes::new(message.as_bytes())) }
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
    // Dropping app values (a stream, for one) runs app code; a panic there must not unwind
    // into nginx.
    let _ = panic_report::catch("release", || {
        // SAFETY: `owner` is the `Box<Outgoing>` leaked in `dispatch`, released once.
        drop(unsafe { Box::from_raw(owner.cast::<Outgoing>()) });
    });
}
