//! `tracing` output of a tower app to nginx's error log, through `Host::log`.
//!
//! The adapter installs, once per worker (and app library: each has its own copy of
//! `tracing`), a global subscriber whose lines go to the error log: inside a request's future
//! or streamed body through the request's [`Logger`] (the module adds the app and the request
//! id), elsewhere (init, spawned tasks, shutdown) through the app's. Levels are nginx's:
//! ERROR, WARN and INFO as `error`, `warn`, `info`; DEBUG and TRACE as `debug`. nginx's
//! `error_log` level filters them as usual; `gateway_app_param tracing_level` (default `info`)
//! keeps finer events from being even formatted.
//!
//! An app that sets its own global subscriber in its init keeps it: the adapter's is only
//! installed if none is set once the first instance's init returned (init itself logs to the
//! error log either way). Such an app sees each request's future inside a `request` span
//! (target `gateway::tower`) with the request id, which the adapter's own subscriber leaves
//! out, nginx naming the request already.

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

use parking_lot::RwLock;
use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::{Dispatch, Metadata};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Filter, Layer as _, SubscriberExt};

use crate::logging::{LogLevel, Logger};

/// The target of the adapter's own spans.
pub(crate) const TARGET: &str = "gateway::tower";

tokio::task_local! {
    /// The logger of the request whose future (or body) is being polled.
    static REQUEST: Logger;
}

/// Lines outside any request: those of the instance started last (a worker's instances end
/// together, when it exits).
static APP: RwLock<Option<Logger>> = RwLock::new(None);

/// The most verbose `tracing_level` of the worker's instances, as [`level_rank`] gives it.
static VERBOSITY: AtomicU8 = AtomicU8::new(0);

/// Whose global subscriber is in place, once the first instance's init returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Installed {
    Ours,
    Apps,
}

static INSTALLED: OnceLock<Installed> = OnceLock::new();

/// Runs an instance's `init` with `logger` for lines outside requests and events up to
/// `level`; the first time, with the adapter's subscriber, installed as the global default
/// afterwards unless `init` set one itself.
pub(crate) fn start_instance<T>(logger: Logger, level: LevelFilter, init: impl FnOnce() -> T) -> T {
    *APP.write() = Some(logger);
    let rank = level_rank(level);
    if VERBOSITY.fetch_max(rank, Ordering::SeqCst) < rank {
        // Callsites cached as disabled at the old level are asked again.
        tracing::callsite::rebuild_interest_cache();
    }
    if INSTALLED.get().is_some() {
        return init();
    }
    let ours = dispatch();
    let made = tracing::dispatcher::with_default(&ours, init);
    let installed = match tracing::dispatcher::set_global_default(ours) {
        Ok(()) => Installed::Ours,
        Err(_) => Installed::Apps,
    };
    // Instances start one after the other, on the worker's main thread.
    let _ = INSTALLED.set(installed);
    made
}

/// Whose subscriber is in place; `None` before the first instance's init returned.
#[cfg(test)]
pub(crate) fn installed() -> Option<Installed> {
    INSTALLED.get().copied()
}

/// `future`, with events inside it logged as the request's.
pub(crate) fn in_request<F: Future>(logger: Logger, future: F) -> impl Future<Output = F::Output> {
    REQUEST.scope(logger, future)
}

/// The adapter's subscriber: `tracing_subscriber`'s formatting, without the time and level
/// (nginx writes its own), lines handed to [`Line`].
fn dispatch() -> Dispatch {
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .without_time()
        .with_level(false)
        .with_writer(ToNginx)
        .with_filter(Verbosity);
    Dispatch::new(tracing_subscriber::registry().with(layer))
}

fn level_rank(level: LevelFilter) -> u8 {
    match level.into_level() {
        None => 0,
        Some(tracing::Level::ERROR) => 1,
        Some(tracing::Level::WARN) => 2,
        Some(tracing::Level::INFO) => 3,
        Some(tracing::Level::DEBUG) => 4,
        Some(tracing::Level::TRACE) => 5,
    }
}

fn current_level() -> LevelFilter {
    level_of_rank(VERBOSITY.load(Ordering::SeqCst))
}

fn level_of_rank(rank: u8) -> LevelFilter {
    match rank {
        0 => LevelFilter::OFF,
        1 => LevelFilter::ERROR,
        2 => LevelFilter::WARN,
        3 => LevelFilter::INFO,
        4 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    }
}

/// Events and spans up to the instances' most verbose level, but not the adapter's own
/// request span.
struct Verbosity;

impl Verbosity {
    fn admits(meta: &Metadata<'_>) -> bool {
        *meta.level() <= current_level() && meta.target() != TARGET
    }
}

impl<S> Filter<S> for Verbosity {
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        Verbosity::admits(meta)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        // Cached per callsite: a change of level rebuilds the cache (`start_instance`).
        if Verbosity::admits(meta) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(current_level())
    }
}

/// nginx's level for a `tracing` level.
pub(crate) fn log_level(level: &tracing::Level) -> LogLevel {
    match *level {
        tracing::Level::ERROR => LogLevel::Error,
        tracing::Level::WARN => LogLevel::Warn,
        tracing::Level::INFO => LogLevel::Info,
        tracing::Level::DEBUG => LogLevel::Debug,
        tracing::Level::TRACE => LogLevel::Trace,
    }
}

/// Makes a [`Line`] per event.
struct ToNginx;

impl<'a> MakeWriter<'a> for ToNginx {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line::new(LogLevel::Info)
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Line {
        Line::new(log_level(meta.level()))
    }
}

/// One formatted event, logged when dropped: to the request's logger inside a request, else
/// to the app's.
pub(crate) struct Line {
    level: LogLevel,
    text: Vec<u8>,
}

impl Line {
    fn new(level: LogLevel) -> Line {
        Line {
            level,
            text: Vec::new(),
        }
    }
}

impl io::Write for Line {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.text.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.text);
        // nginx ends its lines itself.
        let text = text.trim_end_matches('\n');
        if text.is_empty() {
            return;
        }
        let logged = REQUEST.try_with(|logger| logger.log(self.level, text));
        if logged.is_err() {
            match &*APP.read() {
                Some(logger) => logger.log(self.level, text),
                None => Logger::default().log(self.level, text),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::{LogLine, Target};
    use parking_lot::Mutex;
    use std::sync::Arc;

    fn capture() -> (Logger, Arc<Mutex<Vec<LogLine>>>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        (Logger::new(Target::Capture(Arc::clone(&lines))), lines)
    }

    #[test]
    fn levels_map_to_nginx_levels() {
        assert_eq!(log_level(&tracing::Level::ERROR), LogLevel::Error);
        assert_eq!(log_level(&tracing::Level::WARN), LogLevel::Warn);
        assert_eq!(log_level(&tracing::Level::INFO), LogLevel::Info);
        assert_eq!(log_level(&tracing::Level::DEBUG), LogLevel::Debug);
        assert_eq!(log_level(&tracing::Level::TRACE), LogLevel::Trace);
        for level in [
            LevelFilter::OFF,
            LevelFilter::ERROR,
            LevelFilter::WARN,
            LevelFilter::INFO,
            LevelFilter::DEBUG,
            LevelFilter::TRACE,
        ] {
            assert_eq!(level_of_rank(level_rank(level)), level);
        }
    }

    // One test for the process-wide parts: the global subscriber is set once per process.
    #[test]
    fn events_go_to_the_request_or_the_app() {
        let (app, app_lines) = capture();
        let (request, request_lines) = capture();
        let made = start_instance(app, LevelFilter::INFO, || {
            tracing::info!(workers = 2, "starting");
            7
        });
        assert_eq!(made, 7);
        assert_eq!(installed(), Some(Installed::Ours));
        tracing::debug!("finer than the level: not even formatted");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(in_request(request, async {
            tracing::warn!(ms = 5, "slow");
            let span = tracing::info_span!("query", table = "todos");
            span.in_scope(|| tracing::error!("failed"));
            // The adapter's own span is left out of its lines.
            let own = tracing::info_span!(target: TARGET, "request", id = "abc");
            own.in_scope(|| tracing::info!("inside"));
        }));
        tracing::trace!("still too fine");
        tracing::info!("after the request");
        let message = |line: &LogLine| (line.level, line.message.clone());
        let app_lines: Vec<_> = app_lines.lock().iter().map(message).collect();
        let request_lines: Vec<_> = request_lines.lock().iter().map(message).collect();
        let this = module_path!();
        assert_eq!(
            app_lines,
            [
                (LogLevel::Info, format!("{this}: starting workers=2")),
                (LogLevel::Info, format!("{this}: after the request")),
            ]
        );
        assert_eq!(
            request_lines,
            [
                (LogLevel::Warn, format!("{this}: slow ms=5")),
                (
                    LogLevel::Error,
                    format!("query{{table=\"todos\"}}: {this}: failed")
                ),
                (LogLevel::Info, format!("{this}: inside")),
            ]
        );
        // A second instance asking for more detail raises the level for all.
        let (second, second_lines) = capture();
        start_instance(second, LevelFilter::DEBUG, || ());
        tracing::debug!("now logged");
        assert_eq!(
            second_lines.lock().iter().map(message).collect::<Vec<_>>(),
            [(LogLevel::Debug, format!("{this}: now logged"))]
        );
    }
}
