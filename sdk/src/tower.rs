//! Any [`tower::Service`](tower_service::Service) (an axum `Router`, say) served by nginx,
//! asynchronously, on a tokio runtime in each nginx worker: see [`tower_app!`](crate::tower_app).
//!
//! # How it runs
//! - **Runtime**: each location that mounts the app has its own instance and so its own
//!   multi-thread tokio runtime, started in the nginx worker (never in the master) with
//!   `gateway_app_param tokio_threads N;` worker threads (default 2), named after the app.
//!   Locations are isolated from each other that way, at the cost of threads: mount one app
//!   at one location and route inside it. The app's init runs inside the runtime's context, so
//!   it may `tokio::spawn` and build connection pools.
//! - **A request**: on nginx's event loop, the module's call builds an
//!   `http::Request<`[`Body`]`>` (method, the path below the mount point with the query as
//!   URI, the headers, and the [`Environ`] and the request's [`Logger`] as extensions) and
//!   polls the service's future once, inside the runtime's context. A future ready at that
//!   poll (most routes) completes the call there, with no hop between threads; one that
//!   waits is spawned on the runtime and the loop moves on, never waiting for it: its task
//!   completes the call from the runtime's threads (ABI 1.1 deferred completion). So, as
//!   under any tokio server, handlers must not block.
//! - **The response**: a body that is empty, small and of known size (up to 1 MiB), or whole
//!   at its first poll is sent as bytes. Any other is streamed: a task polls it one frame at a
//!   time and polls the next only once nginx took the previous one, so a slow client slows
//!   the body down (backpressure end to end); nginx pulls on its loop and is woken
//!   (`Host::wake`) when a frame is ready. Hop-by-hop headers (`connection`,
//!   `transfer-encoding`, ...) are left out: nginx manages its own.
//! - **Cancellation**: when the module stops waiting for a call (its `gateway_timeout`
//!   passed: the client got a 504; or the client went away), the service's future is dropped
//!   at once. A streamed body is dropped as soon as nginx releases the response (the
//!   stream ended, or the client went away).
//! - **Panics** in the service, or in a body while it is polled, are caught: a 500 (or a
//!   response cut short), logged as an `[error]` with where it happened and the request id;
//!   the worker lives on.
//! - **Shutdown**: when the worker exits (after its last call completed), the service is
//!   dropped inside the runtime, then the runtime is shut down, giving its tasks (background
//!   work the app spawned, blocking reads) `gateway_app_param shutdown_timeout` (default
//!   `5s`; also `500ms`) before they are dropped.
//! - **Logging**: the request's [`Logger`] (an extension) writes lines naming the request;
//!   [`Config::logger`] in init, lines naming the app. `tracing` events go to the error log
//!   too, naming the request inside its future or body, else the app: the adapter installs a
//!   subscriber unless the app's init set its own (see `gateway_app_param tracing_level`).

mod body;
mod environ;
mod response;
mod tracing_bridge;

use std::collections::HashMap;
use std::ffi::c_void;
use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::{AbortHandle, Abortable};
use parking_lot::Mutex;
use tokio::runtime::Runtime;
use tower_service::Service;
use tracing::level_filters::LevelFilter;
use tracing::Instrument;

pub use body::{Body, BodyError};
pub use environ::Environ;

use crate::abi;
use crate::config::{Config, ConfigError};
use crate::host::Host;
use crate::logging::{self, Logger, Target};
use crate::panic_report;
use response::{BoxError, Outgoing};

/// Exports a tower service as the app of this library: `init` builds it once per nginx
/// worker (and location) from the location's settings; `check`, if given, checks the
/// settings when nginx reads its configuration, as for [`app!`](crate::app).
///
/// `init` is a `Fn(&Config) -> Result<S, ConfigError>` (any error that is `Display` will do),
/// where `S` is a `Clone + Send + 'static`
/// [`tower::Service`](tower_service::Service)`<http::Request<`[`Body`]`>>` whose future is
/// `Send`, whose error is `Display`, and whose response is an `http::Response<B>` with `B` an
/// [`http_body::Body`] of [`bytes::Bytes`] that is `Send + 'static` with errors
/// `Into<BoxError>`. An axum `Router` qualifies as is:
///
/// ```
/// use axum::{routing::get, Router};
///
/// fn make(_config: &gateway::Config) -> Result<Router, gateway::ConfigError> {
///     Ok(Router::new().route("/hello", get(|| async { "Hello, World!\n" })))
/// }
/// gateway::tower_app!(init = make);
/// # assert!(ngx_gateway_app.cancel.is_some());
/// ```
///
/// nginx serves it with `location /api/ { gateway_app /path/to/libNAME.so; }`; the service
/// routes on the path below the mount point (`/hello` for `/api/hello`). The runtime's
/// settings are `gateway_app_param tokio_threads N;` (default 2),
/// `gateway_app_param shutdown_timeout 5s;` and `gateway_app_param tracing_level info;`
/// (`off`, `error`, `warn`, `info`, `debug` or `trace`: the finest `tracing` events sent to
/// nginx's error log; the most verbose of a worker's locations counts): nginx checks them at
/// configuration time. See [the module](crate::tower) for the threading, cancellation and
/// logging model.
#[macro_export]
macro_rules! tower_app {
    (init = $init:expr, check = $check:expr $(,)?) => {
        $crate::__tower_app_descriptor!(
            |config: &$crate::Config| $init(config),
            |config: &$crate::Config| $check(config)
        );
    };
    (init = $init:expr $(,)?) => {
        $crate::__tower_app_descriptor!(
            |config: &$crate::Config| $init(config),
            |_: &$crate::Config| ::std::result::Result::<(), $crate::ConfigError>::Ok(())
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __tower_app_descriptor {
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
                // Named apart from anything an app may pass as `init = ...`.
                unsafe extern "C" fn __gateway_init(
                    setup: *const $crate::abi::Setup,
                    instance: *mut *mut ::std::ffi::c_void,
                ) -> i32 {
                    // SAFETY: the module calls this per the ABI contract.
                    unsafe {
                        $crate::__private::tower::init(
                            setup,
                            instance,
                            env!("CARGO_PKG_NAME"),
                            $make,
                        )
                    }
                }
                __gateway_init
            },
            call: $crate::__private::tower::call,
            shutdown: $crate::__private::tower::shutdown,
            check: ::std::option::Option::Some({
                unsafe extern "C" fn __gateway_check(setup: *const $crate::abi::Setup) -> i32 {
                    // SAFETY: the module calls this per the ABI contract.
                    unsafe {
                        $crate::__private::tower::check(setup, env!("CARGO_PKG_NAME"), $check)
                    }
                }
                __gateway_check
            }),
            cancel: ::std::option::Option::Some($crate::__private::tower::cancel),
        };
    };
}

/// The module's handle on a call, moved to the runtime's threads.
#[derive(Clone, Copy)]
pub(crate) struct CallHandle(*mut abi::Call);

// SAFETY: the ABI lets an app complete, wake and log a call from any thread.
unsafe impl Send for CallHandle {}
// SAFETY: the handle is only passed to the module's functions, never dereferenced.
unsafe impl Sync for CallHandle {}

impl CallHandle {
    fn key(self) -> usize {
        self.0 as usize
    }
}

/// Polls a future, turning a panic in it into "`what` panicked at file:line:column: ...".
pub(crate) struct CatchPanic<F> {
    what: &'static str,
    future: F,
}

impl<F> CatchPanic<F> {
    pub(crate) fn new(what: &'static str, future: F) -> Self {
        CatchPanic { what, future }
    }
}

impl<F: Future + Unpin> Future for CatchPanic<F> {
    type Output = Result<F::Output, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let what = self.what;
        // A future that panicked is never polled again: its task ends with the panic.
        match panic_report::catch(what, || Pin::new(&mut self.future).poll(cx)) {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

/// The runtime's settings, from the location's `gateway_app_param`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Settings {
    threads: usize,
    grace: Duration,
    tracing: LevelFilter,
}

impl Settings {
    fn from_config(config: &Config) -> Result<Settings, ConfigError> {
        let invalid = |name: &str, value: &str, reason: &str| ConfigError::Invalid {
            name: name.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        };
        let threads = match config.parse::<usize>("tokio_threads")? {
            None => 2,
            Some(threads @ 1..=512) => threads,
            Some(threads) => {
                return Err(invalid(
                    "tokio_threads",
                    &threads.to_string(),
                    "must be from 1 to 512",
                ))
            }
        };
        let grace = match config.get("shutdown_timeout") {
            None => Duration::from_secs(5),
            Some(value) => parse_duration(value)
                .ok_or_else(|| invalid("shutdown_timeout", value, "expected e.g. 5s or 500ms"))?,
        };
        let tracing = match config.get("tracing_level") {
            None => LevelFilter::INFO,
            Some(value) => value.parse().map_err(|_| {
                invalid(
                    "tracing_level",
                    value,
                    "expected off, error, warn, info, debug or trace",
                )
            })?,
        };
        Ok(Settings {
            threads,
            grace,
            tracing,
        })
    }
}

/// "5s", "500ms", or a number of seconds.
fn parse_duration(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Some(ms) = value.strip_suffix("ms") {
        return ms.parse().ok().map(Duration::from_millis);
    }
    value
        .strip_suffix('s')
        .unwrap_or(value)
        .parse()
        .ok()
        .map(Duration::from_secs)
}

/// What a request's future came to: the response with its body prepared for the module, or
/// the message for the error log.
type Answer = Result<(http::response::Parts, response::Prepared), String>;

/// One request's future, its type erased: the service's, with its body prepared, inside the
/// request's `tracing` scope and span. One allocation per request.
type Pending = Pin<Box<dyn Future<Output = Answer> + Send>>;

/// Makes the future of one request, with its logger and span.
type Dispatch = Box<dyn Fn(http::Request<Body>, Logger, tracing::Span) -> Pending + Send + Sync>;

fn erase<S, B>(service: S) -> Dispatch
where
    S: Service<http::Request<Body>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: fmt::Display,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    // A service need not be `Sync`: each request clones it (an `Arc` clone for a Router).
    let service = Mutex::new(service);
    Box::new(move |request, logger, span| {
        let mut service = service.lock().clone();
        let work = async move {
            poll_fn(|cx| service.poll_ready(cx))
                .await
                .map_err(|error| format!("service not ready: {error}"))?;
            let (parts, body) = service
                .call(request)
                .await
                .map_err(|error| format!("service failed: {error}"))?
                .into_parts();
            Ok((parts, response::prepare(body).await?))
        };
        Box::pin(tracing_bridge::in_request(logger, work.instrument(span)))
    })
}

/// An app instance: its runtime, its service, and the calls it has not completed.
struct Instance {
    runtime: Runtime,
    dispatch: Dispatch,
    /// Calls in flight by handle, to drop their future when the module cancels them.
    calls: Arc<Mutex<HashMap<usize, AbortHandle>>>,
    logger: Logger,
    grace: Duration,
}

impl Instance {
    fn start<M, S, B, E>(config: &Config, host: Host, app: &str, make: M) -> Result<Self, String>
    where
        M: FnOnce(&Config) -> Result<S, E>,
        E: fmt::Display,
        S: Service<http::Request<Body>, Response = http::Response<B>> + Clone + Send + 'static,
        S::Future: Send,
        S::Error: fmt::Display,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        if host.minor() < 1 {
            return Err("a tower app needs a gateway module of ABI 1.1 or later".into());
        }
        let settings =
            Settings::from_config(config).map_err(|error| format!("init failed: {error}"))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(settings.threads)
            .thread_name(format!("{app}-tokio"))
            .enable_all()
            .build()
            .map_err(|error| format!("cannot start the tokio runtime: {error}"))?;
        let service = {
            // So that init may spawn tasks and build pools on the runtime.
            let _entered = runtime.enter();
            tracing_bridge::start_instance(config.logger(), settings.tracing, || make(config))
                .map_err(|error| format!("init failed: {error}"))?
        };
        Ok(Instance {
            runtime,
            dispatch: erase(service),
            calls: Arc::default(),
            logger: config.logger(),
            grace: settings.grace,
        })
    }

    /// Starts serving one call; `Err` is why it could not start.
    fn serve(
        &self,
        host: Host,
        call: CallHandle,
        environ: &[abi::Pair],
        segments: &[abi::BodySegment],
    ) -> Result<(), String> {
        let runtime = self.runtime.handle().clone();
        let environ = Environ::copy(environ);
        let body = Body::from_segments(segments, &runtime)
            .map_err(|error| format!("cannot keep the request body: {error}"))?;
        let logger = Logger::new(Target::host(host, call.0));
        // For an app's own subscriber: the adapter's leaves it out (nginx names the request).
        let span = tracing::info_span!(
            target: tracing_bridge::TARGET,
            "request",
            id = environ.request_id()
        );
        let mut request = http::Request::new(body);
        *request.method_mut() = environ::method(&environ);
        *request.uri_mut() = environ::uri(&environ);
        *request.version_mut() = environ::version(&environ);
        *request.headers_mut() = environ::headers(&environ);
        request.extensions_mut().insert(environ);
        request.extensions_mut().insert(logger.clone());
        let pending = (self.dispatch)(request, logger.clone(), span.clone());
        let mut work = CatchPanic::new("handler", pending);

        // The first poll runs here, on nginx's loop, in the runtime's context (so the service
        // may spawn, sleep or open sockets): most routes answer without waiting, and then the
        // call completes before `call` returns, with no hop to the runtime's threads and back.
        // A future that waits is handed to the runtime, whose first poll registers its wakers
        // again; the no-op waker of this poll is never needed.
        let first = {
            let _entered = self.runtime.enter();
            Pin::new(&mut work).poll(&mut Context::from_waker(Waker::noop()))
        };
        if let Poll::Ready(outcome) = first {
            complete(host, call, outcome, logger, span, &runtime);
            return Ok(());
        }

        let (abort, registration) = AbortHandle::new_pair();
        // Registered before the task exists, so that it is always there to be removed.
        self.calls.lock().insert(call.key(), abort);
        let calls = Arc::clone(&self.calls);
        self.runtime.spawn(async move {
            let outcome = Abortable::new(work, registration).await;
            // The future is dropped by now. Once completed, the call's address may be reused:
            // it is forgotten first.
            calls.lock().remove(&call.key());
            let outcome = outcome.unwrap_or_else(|_aborted| {
                Ok(Err(
                    "cancelled: the module stopped waiting, the future is dropped".to_string(),
                ))
            });
            complete(host, call, outcome, logger, span, &runtime);
        });
        Ok(())
    }
}

/// What a service's future came to: the response, its error, or its panic.
type Outcome = Result<Answer, String>;

/// Completes `call` with what its future came to.
fn complete(
    host: Host,
    call: CallHandle,
    outcome: Outcome,
    logger: Logger,
    span: tracing::Span,
    runtime: &tokio::runtime::Handle,
) {
    let (cause, message) = match outcome {
        Ok(Ok((parts, body))) => {
            return Outgoing::respond(host, call, parts, body, logger, span, runtime)
        }
        Ok(Err(message)) => (abi::FAILED, message),
        Err(panic) => (abi::PANICKED, panic),
    };
    logger.revoke();
    // SAFETY: the call is not completed yet; the module copies the message.
    unsafe { host.fail(call.0, cause, message.as_bytes()) };
}

#[doc(hidden)]
/// The ABI `init` of a tower app: starts the runtime and builds the service with `make`.
///
/// # Safety
/// `setup` and `instance` must be what the module passed to the app's `init` function.
pub unsafe fn init<M, S, B, E>(
    setup: *const abi::Setup,
    instance: *mut *mut c_void,
    app: &'static str,
    make: M,
) -> i32
where
    M: FnOnce(&Config) -> Result<S, E>,
    E: fmt::Display,
    S: Service<http::Request<Body>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: fmt::Display,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    logging::set_app_name(app);
    // SAFETY: the module's setup and its host table are valid for the duration of init.
    let (config, host) = unsafe { (Config::from_setup(setup), Host::new((*setup).host)) };
    let message = match panic_report::catch("init", || Instance::start(&config, host, app, make)) {
        Ok(Ok(made)) => {
            // SAFETY: the module passes a writable slot.
            unsafe { instance.write(Box::into_raw(Box::new(made)).cast()) };
            return 0;
        }
        Ok(Err(message)) | Err(message) => message,
    };
    // Without an instance there is no shutdown: the setup's log handle ends with init.
    config.logger().revoke();
    // SAFETY: the module copies the message before `fail` returns.
    unsafe { ((*setup).fail)(setup, abi::Bytes::new(message.as_bytes())) };
    1
}

#[doc(hidden)]
/// The ABI `check` of a tower app: the runtime's settings, then the app's own `check`.
///
/// # Safety
/// `setup` must be what the module passed to the app's `check` function.
pub unsafe fn check<C>(setup: *const abi::Setup, app: &'static str, check: C) -> i32
where
    C: FnOnce(&Config) -> Result<(), ConfigError>,
{
    let both = |config: &Config| {
        Settings::from_config(config)?;
        check(config)
    };
    // SAFETY: per the caller.
    unsafe { crate::export::check(setup, app, both) }
}

#[doc(hidden)]
/// The ABI `call` of a tower app: starts the service's future on the runtime and returns.
///
/// # Safety
/// The arguments must be what the module passed to the app's `call` function, with an
/// instance made by [`init`].
pub unsafe extern "C" fn call(
    instance: *mut c_void,
    call: *mut abi::Call,
    request: *const abi::Request,
) {
    // SAFETY: the instance made by `init`, alive until `shutdown`; the module's request, its
    // environ and body valid while this runs (everything needed is copied).
    let (instance, host, environ, segments) = unsafe {
        let request = &*request;
        (
            &*instance.cast::<Instance>(),
            Host::new(request.host),
            abi::slice_from_abi(request.environ, request.environ_len),
            abi::slice_from_abi(request.body, request.body_len),
        )
    };
    let call = CallHandle(call);
    let (cause, message) =
        match panic_report::catch("handler", || instance.serve(host, call, environ, segments)) {
            Ok(Ok(())) => return,
            Ok(Err(message)) => (abi::FAILED, message),
            Err(panic) => (abi::PANICKED, panic),
        };
    // SAFETY: the call did not start, so it is not completed; the message is copied.
    unsafe { host.fail(call.0, cause, message.as_bytes()) };
}

#[doc(hidden)]
/// The ABI `cancel` of a tower app: drops the call's future; its task then fails the call.
///
/// # Safety
/// The arguments must be what the module passed to the app's `cancel` function.
pub unsafe extern "C" fn cancel(instance: *mut c_void, call: *mut abi::Call) {
    // SAFETY: the instance made by `init`, alive until `shutdown`.
    let instance = unsafe { &*instance.cast::<Instance>() };
    // Absent if the task is completing the call right now: the ABI says to ignore it then.
    let abort = instance.calls.lock().remove(&CallHandle(call).key());
    if let Some(abort) = abort {
        abort.abort();
    }
}

#[doc(hidden)]
/// The ABI `shutdown` of a tower app: drops the service, then stops the runtime.
///
/// # Safety
/// `instance` must come from [`init`] and be used no more.
pub unsafe extern "C" fn shutdown(instance: *mut c_void) {
    // SAFETY: per the caller, the box made by `init`, dropped once.
    let instance = *unsafe { Box::from_raw(instance.cast::<Instance>()) };
    let Instance {
        runtime,
        dispatch,
        logger,
        grace,
        ..
    } = instance;
    {
        // The service's `Drop` may need the runtime (a pool closing its connections).
        let _entered = runtime.enter();
        if let Err(panic) = panic_report::catch("shutdown", || drop(dispatch)) {
            logger.error(panic);
        }
    }
    runtime.shutdown_timeout(grace);
    logger.revoke();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_settings_have_defaults_and_bounds() {
        let settings = |pairs: &[(&str, &str)]| {
            Settings::from_config(&Config::from_pairs(pairs.iter().copied()))
        };
        assert_eq!(
            settings(&[]).unwrap(),
            Settings {
                threads: 2,
                grace: Duration::from_secs(5),
                tracing: LevelFilter::INFO,
            }
        );
        let custom = settings(&[
            ("tokio_threads", "4"),
            ("shutdown_timeout", "250ms"),
            ("tracing_level", "debug"),
        ])
        .unwrap();
        assert_eq!(custom.threads, 4);
        assert_eq!(custom.grace, Duration::from_millis(250));
        assert_eq!(custom.tracing, LevelFilter::DEBUG);
        assert_eq!(
            settings(&[("tracing_level", "off")]).unwrap().tracing,
            LevelFilter::OFF
        );
        assert_eq!(
            settings(&[("shutdown_timeout", "3")]).unwrap().grace,
            Duration::from_secs(3)
        );
        assert!(settings(&[("tokio_threads", "0")]).is_err());
        assert!(settings(&[("tokio_threads", "x")]).is_err());
        assert!(settings(&[("shutdown_timeout", "soon")]).is_err());
        assert!(settings(&[("tracing_level", "loud")]).is_err());
    }

    fn current_thread() -> Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    #[test]
    fn a_router_is_called_through_its_erased_future() {
        use axum::extract::{Extension, Request};
        use http_body_util::BodyExt;
        let router = axum::Router::new().route(
            "/x",
            axum::routing::post(
                |Extension(environ): Extension<Environ>, request: Request| async move {
                    let uri = request.uri().clone();
                    let body = request.into_body().collect().await.unwrap().to_bytes();
                    let mount = environ.script_name().to_string();
                    format!("{mount} {uri} {}", String::from_utf8_lossy(&body))
                },
            ),
        );
        let dispatch = erase(router);
        let mut request = http::Request::new(Body::from(Bytes::from_static(b"payload")));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = http::Uri::from_static("/x?a=1");
        request
            .extensions_mut()
            .insert(Environ::from_pairs([("SCRIPT_NAME", "/api")]));
        let runtime = current_thread();
        let answer = dispatch(request, Logger::new(Target::Stderr), tracing::Span::none());
        let (parts, body) = runtime.block_on(answer).unwrap();
        assert_eq!(parts.status, 200);
        let response::Prepared::Bytes(body) = body else {
            panic!("a whole body is sent as bytes");
        };
        assert_eq!(body, "/api /x?a=1 payload");
    }

    /// A service that is never ready, or fails its calls.
    #[derive(Clone)]
    struct Broken {
        ready: bool,
    }

    impl Service<http::Request<Body>> for Broken {
        type Response = http::Response<http_body_util::Empty<Bytes>>;
        type Error = &'static str;
        type Future = std::future::Ready<Result<Self::Response, &'static str>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), &'static str>> {
            Poll::Ready(if self.ready {
                Ok(())
            } else {
                Err("overloaded")
            })
        }

        fn call(&mut self, _: http::Request<Body>) -> Self::Future {
            std::future::ready(Err("no database"))
        }
    }

    #[test]
    fn service_errors_become_messages_for_the_log() {
        let runtime = current_thread();
        let outcome = |ready| {
            let dispatch = erase(Broken { ready });
            let request = http::Request::new(Body::empty());
            runtime
                .block_on(dispatch(
                    request,
                    Logger::new(Target::Stderr),
                    tracing::Span::none(),
                ))
                .map(|_| ())
        };
        assert_eq!(outcome(true).unwrap_err(), "service failed: no database");
        assert_eq!(outcome(false).unwrap_err(), "service not ready: overloaded");
    }

    #[test]
    fn a_panicking_future_is_caught_with_its_location() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let outcome = runtime.block_on(CatchPanic::new(
            "handler",
            Box::pin(async { panic!("boom") }) as Pin<Box<dyn Future<Output = ()> + Send>>,
        ));
        let message = outcome.unwrap_err();
        assert!(message.starts_with("handler panicked at "), "{message}");
        assert!(
            message.contains("tower.rs") && message.ends_with(": boom"),
            "{message}"
        );
    }
}
