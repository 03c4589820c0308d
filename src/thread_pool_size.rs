//! The size of an nginx thread pool (`thread_pool NAME threads=N max_queue=M`). nginx keeps
//! the pool's struct private to src/core/ngx_thread_pool.c, so this mirrors its head, unchanged
//! from 1.7.11 (when thread pools came) to 1.28, and trusts what it reads only if the name
//! found there is the one the location gave.

use std::ffi::c_void;
use std::ptr::NonNull;

use ngx::ffi::{
    ngx_int_t, ngx_log_t, ngx_str_t, ngx_thread_cond_t, ngx_thread_mutex_t, ngx_thread_pool_t,
    ngx_uint_t,
};

/// `struct ngx_thread_pool_s`, up to the fields read here.
#[repr(C)]
struct NginxThreadPool {
    mtx: ngx_thread_mutex_t,
    queue: [*mut c_void; 2],
    waiting: ngx_int_t,
    cond: ngx_thread_cond_t,
    log: *mut ngx_log_t,
    name: ngx_str_t,
    threads: ngx_uint_t,
    max_queue: ngx_int_t,
}

/// What `thread_pool` set.
#[derive(Clone, Copy)]
pub struct PoolSize {
    pub threads: usize,
    pub max_queue: usize,
}

/// The size of `pool` named `name`; `None` if the struct is not laid out as this mirror says.
pub fn read(pool: NonNull<ngx_thread_pool_t>, name: &[u8]) -> Option<PoolSize> {
    let fields = pool.as_ptr().cast::<NginxThreadPool>();
    // SAFETY: the pool is nginx's, allocated from the cycle's pool with this layout; these
    // fields were set while reading the configuration, before the fork, and nginx's threads
    // only touch the mutex, queue, waiting count and condition.
    let (pool_name, threads, max_queue) =
        unsafe { ((*fields).name, (*fields).threads, (*fields).max_queue) };
    let named = pool_name.len == name.len()
        && !pool_name.data.is_null()
        // SAFETY: a pool's name points to `len` bytes of the configuration, as long as the cycle.
        && unsafe { std::slice::from_raw_parts(pool_name.data, pool_name.len) } == name;
    match usize::try_from(max_queue) {
        Ok(max_queue) if named && threads > 0 => Some(PoolSize { threads, max_queue }),
        _ => None,
    }
}
