//! What an app's `init` (in each worker) and `check` (at configuration time, in the master)
//! get: the location's `gateway_app_param`s, how its calls run, nginx's prefix, and a way to
//! say what failed.

use std::ffi::c_void;

use gateway_abi as abi;

use crate::call::HOST;
use crate::conf::LocationConf;
use crate::panic_guard::guard;

/// Where the setup is used.
#[derive(Clone, Copy)]
pub enum Phase {
    /// `check`, in the master.
    Check,
    /// `init`, in the worker of this number.
    Worker(u32),
}

/// Runs `entry` (an app's `init` or `check`, named `what`) with the setup of `mount` in a
/// cycle whose prefix is `prefix`; its non-zero result becomes the message the app gave, or a
/// generic one.
pub fn run(
    mount: &LocationConf,
    prefix: &[u8],
    phase: Phase,
    what: &str,
    entry: impl FnOnce(&abi::Setup) -> i32,
) -> Result<(), String> {
    let params: Vec<abi::Pair> = mount
        .app_params
        .iter()
        .map(|(name, value)| abi::Pair {
            name: abi::Bytes::new(name),
            value: abi::Bytes::new(value),
        })
        .collect();
    let (runs_on, threads) = match mount.thread_pool {
        Some(pool) => (abi::RUNS_ON_THREAD_POOL, threads_of(pool, mount)),
        None => (abi::RUNS_ON_EVENT_LOOP, 0),
    };
    let log_handle = mount
        .app
        .as_ref()
        .map_or(std::ptr::null_mut(), |app| app.log_handle());
    let mut failure: Option<String> = None;
    let setup = abi::Setup {
        host: &HOST,
        params: params.as_ptr(),
        params_len: params.len(),
        fail: setup_failed,
        context: (&mut failure as *mut Option<String>).cast::<c_void>(),
        runs_on,
        threads,
        worker: match phase {
            Phase::Check => abi::NO_WORKER,
            Phase::Worker(number) => number,
        },
        log_handle,
        prefix: abi::Bytes::new(prefix),
    };
    match entry(&setup) {
        0 => Ok(()),
        rc => Err(failure.unwrap_or_else(|| format!("{what} returned {rc} without saying why"))),
    }
}

unsafe extern "C" fn setup_failed(setup: *const abi::Setup, message: abi::Bytes) {
    let log = ngx::log::ngx_cycle_log().as_ptr();
    guard(log, "init failure report", (), || {
        // SAFETY: `context` is the `Option<String>` of `run`, alive during the entry's call.
        let failure = unsafe { &mut *(*setup).context.cast::<Option<String>>() };
        // SAFETY: the ABI makes `message` valid for the duration of this call.
        *failure = Some(String::from_utf8_lossy(unsafe { message.as_slice() }).into_owned());
    })
}

/// How many threads the pool has; 0 if this nginx's pool cannot be read.
#[cfg(ngx_feature = "threads")]
fn threads_of(pool: crate::conf::ThreadPool, mount: &LocationConf) -> u32 {
    let name = mount.thread_pool_name.as_deref().unwrap_or_default();
    crate::thread_pool_size::read(pool, name)
        .map_or(0, |size| u32::try_from(size.threads).unwrap_or(u32::MAX))
}

#[cfg(not(ngx_feature = "threads"))]
fn threads_of(pool: crate::conf::ThreadPool, _: &LocationConf) -> u32 {
    match pool {}
}
