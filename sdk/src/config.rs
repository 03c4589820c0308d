//! An app's settings from nginx.conf: the `gateway_app_param NAME VALUE;` lines of the
//! location that mounts it, and how nginx runs the instance.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::abi;
use crate::host::Host;
use crate::logging::{Logger, Target};

/// A setting the app needs is missing or unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The setting with this name is not given.
    #[error("missing setting: add `gateway_app_param {0} ...;` to the location")]
    Missing(String),
    /// A setting's value does not parse (see [`Config::parse`]).
    #[error("setting {name} = {value:?} is invalid: {reason}")]
    Invalid {
        /// The setting's name.
        name: String,
        /// The value as given.
        value: String,
        /// Why it does not parse: the parser's error message.
        reason: String,
    },
}

/// Where nginx calls an app instance's handler (and pulls its streamed bodies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RunsOn {
    /// On the nginx worker's event loop, which serves every other connection of the worker
    /// too: a handler must never block there.
    EventLoop,
    /// On the threads of an nginx thread pool (`gateway_thread_pool`), several calls at once.
    ThreadPool {
        /// How many threads the pool has.
        threads: u32,
    },
}

impl RunsOn {
    fn from_abi(runs_on: u32, threads: u32) -> Option<RunsOn> {
        match runs_on {
            abi::RUNS_ON_EVENT_LOOP => Some(RunsOn::EventLoop),
            abi::RUNS_ON_THREAD_POOL => Some(RunsOn::ThreadPool { threads }),
            _ => None,
        }
    }
}

/// The app's settings, in the order nginx.conf gives them, and how nginx runs the instance.
///
/// Built without nginx ([`Config::from_pairs`], [`Config::default`]) it describes an instance
/// in worker 0 on the event loop, logging to stderr, with no nginx prefix; the `with_*`
/// methods change that for tests.
#[derive(Debug, Clone)]
pub struct Config {
    params: Vec<(String, String)>,
    runs_on: Option<RunsOn>,
    worker: Option<u32>,
    logger: Logger,
    prefix: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            params: Vec::new(),
            runs_on: Some(RunsOn::EventLoop),
            worker: Some(0),
            logger: Logger::default(),
            prefix: None,
        }
    }
}

impl Config {
    /// The settings and the rest the module passes to an app's init or check.
    ///
    /// # Safety
    /// `setup` must be the module's, valid for the duration of this call.
    pub(crate) unsafe fn from_setup(setup: *const abi::Setup) -> Self {
        // Fields are read one by one through the pointer: a module of ABI 1.0 passes a
        // shorter `Setup`, which ends at `context`.
        // SAFETY: the module's setup, its host table and its parameters are valid for now.
        let (host, params) = unsafe {
            (
                Host::new((*setup).host),
                abi::slice_from_abi((*setup).params, (*setup).params_len),
            )
        };
        let text = |bytes: abi::Bytes| {
            // SAFETY: the module keeps setting bytes valid for the duration of this call.
            String::from_utf8_lossy(unsafe { bytes.as_slice() }).into_owned()
        };
        let params = params
            .iter()
            .map(|pair| (text(pair.name), text(pair.value)))
            .collect();
        if host.minor() < 1 {
            return Config {
                params,
                runs_on: None,
                worker: None,
                logger: Logger::default(),
                prefix: None,
            };
        }
        // SAFETY: a module of minor 1 or later passes a `Setup` with these fields.
        let (runs_on, threads, worker, log_handle) = unsafe {
            (
                (*setup).runs_on,
                (*setup).threads,
                (*setup).worker,
                (*setup).log_handle,
            )
        };
        // SAFETY: a module of minor 2 or later passes a `Setup` with a prefix, whose bytes
        // are valid for the duration of this call.
        let prefix = (host.minor() >= 2)
            .then(|| unsafe { (*setup).prefix.as_slice() })
            .filter(|prefix| !prefix.is_empty())
            .map(|prefix| PathBuf::from(OsStr::from_bytes(prefix)));
        Config {
            params,
            runs_on: RunsOn::from_abi(runs_on, threads),
            worker: (worker != abi::NO_WORKER).then_some(worker),
            logger: Logger::new(Target::host(host, log_handle)),
            prefix,
        }
    }

    /// Settings from name-value pairs, e.g. for tests.
    pub fn from_pairs<N: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Self {
        Config {
            params: pairs
                .into_iter()
                .map(|(name, value)| (name.into(), value.into()))
                .collect(),
            ..Config::default()
        }
    }

    /// The same settings, as if nginx ran the instance on `runs_on`; for tests.
    pub fn with_runs_on(mut self, runs_on: RunsOn) -> Self {
        self.runs_on = Some(runs_on);
        self
    }

    /// The same settings, as if in nginx worker `worker`, or in none (`None`: as in the
    /// configuration check); for tests.
    pub fn with_worker(mut self, worker: Option<u32>) -> Self {
        self.worker = worker;
        self
    }

    /// The same settings, with lines logged through [`Config::logger`] going to `logger`;
    /// for tests, with [`CapturedLog`](crate::testing::CapturedLog).
    pub fn with_logger(mut self, logger: Logger) -> Self {
        self.logger = logger;
        self
    }

    /// The same settings, as if nginx ran with this prefix (`nginx -p`); for tests.
    pub fn with_prefix(mut self, prefix: impl Into<PathBuf>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// nginx's prefix (`nginx -p`, else the one it was built with: `/usr/share/nginx` for
    /// Debian's), against which nginx resolves the relative paths of its configuration;
    /// `None` outside nginx or when the module is too old to say (ABI 1.0 and 1.1).
    pub fn prefix(&self) -> Option<&Path> {
        self.prefix.as_deref()
    }

    /// `path` resolved as nginx resolves the relative paths of its configuration: against
    /// [`Config::prefix`]; as given when absolute or when there is no prefix (then relative
    /// to the worker's current directory).
    pub fn resolve_path(&self, path: impl AsRef<Path>) -> PathBuf {
        match &self.prefix {
            Some(prefix) => prefix.join(path),
            None => path.as_ref().to_path_buf(),
        }
    }

    /// Where nginx calls the instance's handler; `None` when the module is too old to say
    /// (ABI 1.0).
    pub fn runs_on(&self) -> Option<RunsOn> {
        self.runs_on
    }

    /// The number of the nginx worker process the instance runs in, from 0 to
    /// `worker_processes` - 1 (one instance per worker and location); `None` in the
    /// configuration check, which runs in the nginx master, or when the module is too old to
    /// say (ABI 1.0).
    pub fn worker(&self) -> Option<u32> {
        self.worker
    }

    /// A logger for lines about the instance (not about one request: see
    /// [`Request::log`](crate::Request::log)), to keep in the app's state; lines name the app.
    /// In the configuration check, lines reach the log of `nginx -t` (or of the master).
    pub fn logger(&self) -> Logger {
        self.logger.clone()
    }

    /// The last value given for `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The value of `name`, or an error saying how to set it.
    pub fn require(&self, name: &str) -> Result<&str, ConfigError> {
        self.get(name)
            .ok_or_else(|| ConfigError::Missing(name.to_string()))
    }

    /// The value of `name` parsed as `T`; `None` when absent.
    pub fn parse<T>(&self, name: &str) -> Result<Option<T>, ConfigError>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        self.get(name)
            .map(|value| {
                value.parse().map_err(|error: T::Err| ConfigError::Invalid {
                    name: name.to_string(),
                    value: value.to_string(),
                    reason: error.to_string(),
                })
            })
            .transpose()
    }

    /// Every setting as name and value, in nginx.conf order, repeated names included.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.params
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
    }
}
