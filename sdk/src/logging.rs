//! Lines for nginx's error log, from an app's init, its configuration check, a request or a
//! streamed body, through [`abi::Host::log`].
//!
//! A module handle ([`abi::Setup::log_handle`], a call's handle) is valid only for a while:
//! until shutdown, until the call completes, until a stream's release. A [`Logger`] may be
//! kept for longer (it is `'static`), so the SDK revokes its handle when the handle ends:
//! later lines still reach the error log, only without naming the app or the request.

use std::cell::OnceCell;
use std::fmt;
use std::io::Write;
use std::sync::{Arc, OnceLock};

use parking_lot::{Mutex, RwLock};

use crate::abi;
use crate::host::{Host, LogFn};

/// How important a log line is. nginx logs a line when its `error_log` level lets it through:
/// `Error`, `Warn` and `Info` as nginx's `error`, `warn` and `info`, `Debug` and `Trace` as
/// `debug`. Ordered as the `log` crate's levels: `Error` is the lowest, the most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// Something failed.
    Error,
    /// Something looks wrong, but the app carries on.
    Warn,
    /// A notable event.
    Info,
    /// Detail for debugging.
    Debug,
    /// Finer detail still.
    Trace,
}

impl LogLevel {
    /// The level's name, as nginx writes it in brackets (`Trace` as "trace").
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }

    fn to_abi(self) -> u32 {
        match self {
            LogLevel::Error => abi::LOG_ERROR,
            LogLevel::Warn => abi::LOG_WARN,
            LogLevel::Info => abi::LOG_INFO,
            LogLevel::Debug => abi::LOG_DEBUG,
            LogLevel::Trace => abi::LOG_TRACE,
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A logged line, as [`testing`](crate::testing) keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The line's level.
    pub level: LogLevel,
    /// The message, as logged.
    pub message: String,
}

/// The app's name for lines written to stderr, where no module adds it; set by the entry
/// points [`app!`](crate::app) exports, the same for the whole library.
static APP_NAME: OnceLock<&'static str> = OnceLock::new();

pub(crate) fn set_app_name(name: &'static str) {
    // Every entry point of a library passes the same name, so the first one set is right.
    let _ = APP_NAME.set(name);
}

/// A module handle for [`abi::Host::log`]; null logs without naming the app or a request.
#[derive(Clone, Copy)]
pub(crate) struct Handle(*mut abi::Call);

// SAFETY: the ABI lets a handle be passed to `Host::log` from any thread; the SDK stops
// passing it when it ends (see `Logger::revoke`).
unsafe impl Send for Handle {}
// SAFETY: as above; the handle is only passed, never dereferenced by the app.
unsafe impl Sync for Handle {}

/// Where lines go.
#[derive(Clone)]
pub(crate) enum Target {
    /// nginx's error log, through the module's `Host::log` with this handle.
    Host { log: LogFn, handle: Handle },
    /// Stderr, which nginx sends to its error log: a module of ABI 1.0 has no `Host::log`.
    Stderr,
    /// Kept in memory, for tests.
    Capture(Arc<Mutex<Vec<LogLine>>>),
}

impl Target {
    /// Lines logged with `handle` through `host`'s `log`, or to stderr for a module of ABI 1.0.
    pub fn host(host: Host, handle: *mut abi::Call) -> Target {
        match host.log_fn() {
            Some(log) => Target::Host {
                log,
                handle: Handle(handle),
            },
            None => Target::Stderr,
        }
    }

    fn write(&self, level: LogLevel, message: &str) {
        match self {
            Target::Host { log, handle } => {
                // SAFETY: the handle is live (a revoked one is null, which `log` accepts) and
                // the module copies the message before returning.
                unsafe {
                    log(
                        handle.0,
                        level.to_abi(),
                        abi::Bytes::new(message.as_bytes()),
                    )
                }
            }
            Target::Stderr => {
                // A line the error log cannot take is not worth failing the app for.
                let _ = match APP_NAME.get() {
                    Some(app) => writeln!(
                        std::io::stderr().lock(),
                        "[{level}] gateway: app \"{app}\": {message}"
                    ),
                    None => writeln!(std::io::stderr().lock(), "[{level}] gateway: {message}"),
                };
            }
            Target::Capture(lines) => lines.lock().push(LogLine {
                level,
                message: message.to_string(),
            }),
        }
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Target::Host { .. } => "nginx error log",
            Target::Stderr => "stderr",
            Target::Capture(_) => "captured",
        })
    }
}

/// Writes lines to nginx's error log, naming the app (and the request, for one from
/// [`Request::logger`](crate::Request::logger)); cheap to clone, usable from any thread.
///
/// Get one from [`Config::logger`](crate::Config::logger) in the app's init and keep it in
/// the app's state:
///
/// ```
/// use gateway::{Config, ConfigError, Logger, Request};
///
/// struct App {
///     log: Logger,
/// }
///
/// impl gateway::Handler for App {
///     fn handle(&self, request: &Request<'_>) -> gateway::Response {
///         // A line about the app as a whole; `request.log` names the request.
///         self.log.debug("handling a request");
///         gateway::IntoResponse::into_response("ok\n")
///     }
/// }
///
/// fn start(config: &Config) -> Result<App, ConfigError> {
///     let log = config.logger();
///     log.info(format_args!("starting in worker {:?}", config.worker()));
///     Ok(App { log })
/// }
/// gateway::app!(init = start);
/// ```
///
/// With a module of ABI 1.0, which cannot take log lines, lines go to stderr instead (nginx
/// sends a worker's stderr to its error log, unfiltered by level and without a timestamp).
/// A logger that outlives what it logs for (the app instance after its shutdown, the request
/// after its response) keeps working, but its lines no longer name the app or the request.
#[derive(Clone)]
pub struct Logger {
    /// Behind a lock so that revoking waits for lines being written with the handle.
    target: Arc<RwLock<Target>>,
}

impl Logger {
    pub(crate) fn new(target: Target) -> Self {
        Logger {
            target: Arc::new(RwLock::new(target)),
        }
    }

    /// Writes `message` at `level`: text, or `format_args!(...)`.
    pub fn log(&self, level: LogLevel, message: impl fmt::Display) {
        let message = message.to_string();
        self.target.read().write(level, &message);
    }

    /// Writes `message` at [`LogLevel::Error`].
    pub fn error(&self, message: impl fmt::Display) {
        self.log(LogLevel::Error, message);
    }

    /// Writes `message` at [`LogLevel::Warn`].
    pub fn warn(&self, message: impl fmt::Display) {
        self.log(LogLevel::Warn, message);
    }

    /// Writes `message` at [`LogLevel::Info`].
    pub fn info(&self, message: impl fmt::Display) {
        self.log(LogLevel::Info, message);
    }

    /// Writes `message` at [`LogLevel::Debug`].
    pub fn debug(&self, message: impl fmt::Display) {
        self.log(LogLevel::Debug, message);
    }

    /// Writes `message` at [`LogLevel::Trace`].
    pub fn trace(&self, message: impl fmt::Display) {
        self.log(LogLevel::Trace, message);
    }

    /// Stops using the module handle, which is ending: waits for lines being written with it,
    /// and later lines go out without it. Shared by every clone.
    pub(crate) fn revoke(&self) {
        if let Target::Host { handle, .. } = &mut *self.target.write() {
            *handle = Handle(std::ptr::null_mut());
        }
    }
}

/// Writes to stderr, as with a module of ABI 1.0; what a [`Config`](crate::Config) built
/// without nginx has.
impl Default for Logger {
    fn default() -> Self {
        Logger::new(Target::Stderr)
    }
}

impl fmt::Debug for Logger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Logger").field(&*self.target.read()).finish()
    }
}

/// Logging for one call: lines written while the handler runs, and the [`Logger`] handed out
/// for it, which must be revoked when the call's handle ends.
pub(crate) struct CallLog {
    target: Target,
    /// Made on the first [`CallLog::logger`] only: most requests never ask for one.
    shared: OnceCell<Logger>,
}

impl CallLog {
    pub fn new(target: Target) -> Self {
        CallLog {
            target,
            shared: OnceCell::new(),
        }
    }

    /// Writes a line while the handler runs, when the call's handle is live for sure.
    pub fn log(&self, level: LogLevel, message: &str) {
        self.target.write(level, message);
    }

    pub fn logger(&self) -> Logger {
        self.shared
            .get_or_init(|| Logger::new(self.target.clone()))
            .clone()
    }

    /// The logger handed out for this call, if any.
    pub fn into_logger(self) -> Option<Logger> {
        self.shared.into_inner()
    }
}

impl fmt::Debug for CallLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CallLog").field(&self.target).finish()
    }
}
