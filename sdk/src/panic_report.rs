//! Panics in app code become log lines in nginx's error log, with where they happened.
//!
//! Left to the default hook, a panic would print to stderr, which nginx sends to its error
//! log as a bare line apart from the request it belongs to. While the SDK runs app code for
//! the module, this hook instead keeps the location for the module's own `[error]` line,
//! which also names the app and the request; other panics (in the app's own threads, say)
//! still go to the hook that was there before.

use std::any::Any;
use std::backtrace::Backtrace;
use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    static CATCHING: Cell<bool> = const { Cell::new(false) };
    /// Set only by the development server: nginx's error log gets the location alone.
    static TRACING: Cell<bool> = const { Cell::new(false) };
    static LAST_LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
    static LAST_BACKTRACE: RefCell<Option<Backtrace>> = const { RefCell::new(None) };
}

/// Runs `body`, turning a panic into "`what` panicked at file:line:column: message".
pub fn catch<T>(what: &str, body: impl FnOnce() -> T) -> Result<T, String> {
    install();
    let was_catching = CATCHING.replace(true);
    let result = catch_unwind(AssertUnwindSafe(body));
    CATCHING.set(was_catching);
    result.map_err(|payload| describe(what, &*payload))
}

/// As [`catch`], also keeping the stack where the panic happened, for the development
/// server's error page.
#[cfg(feature = "dev-server")]
pub fn catch_traced<T>(what: &str, body: impl FnOnce() -> T) -> Result<T, (String, Backtrace)> {
    let was_tracing = TRACING.replace(true);
    let result = catch(what, body);
    TRACING.set(was_tracing);
    result.map_err(|message| {
        let backtrace = LAST_BACKTRACE.with(|last| last.borrow_mut().take());
        (message, backtrace.unwrap_or_else(Backtrace::disabled))
    })
}

/// Installs the hook once per app library (each has its own copy of std and of this SDK).
fn install() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if CATCHING.get() {
                let location = info
                    .location()
                    .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
                LAST_LOCATION.with(|last| *last.borrow_mut() = location);
                if TRACING.get() {
                    LAST_BACKTRACE
                        .with(|last| *last.borrow_mut() = Some(Backtrace::force_capture()));
                }
            } else {
                previous(info);
            }
        }));
    });
}

fn describe(what: &str, payload: &(dyn Any + Send)) -> String {
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message");
    match LAST_LOCATION.with(|last| last.borrow_mut().take()) {
        Some(location) => format!("{what} panicked at {location}: {message}"),
        None => format!("{what} panicked: {message}"),
    }
}
