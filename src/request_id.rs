//! `$request_id` for the requests the gateway serves, cheaper than nginx makes it.
//!
//! Every app call needs the id (the environ's `gateway.request_id`), and nginx makes it with
//! OpenSSL's `RAND_bytes`, which on OpenSSL 3 costs about a microsecond and a `getpid` system
//! call per request: a tenth of a whole "hello" request. The module makes the same value, 16
//! random bytes in hex, from the kernel's CSPRNG read a batch at a time, and stores it as
//! nginx's cached `$request_id` of the request, so the access log, the error log and the app
//! all see one id.

use std::cell::RefCell;

use ngx::core::Pool;
use ngx::ffi::{ngx_http_request_t, ngx_int_t};

use crate::nginx_variable::variable_value;
use crate::pool_bytes;

const ID_BYTES: usize = 16;
/// Ids per `getrandom` call.
const BATCH_IDS: usize = 256;

/// Random bytes not handed out yet. Only event-loop threads touch it, and only in workers
/// (the master serves no request), so no two processes ever share a batch.
struct Batch {
    bytes: [u8; ID_BYTES * BATCH_IDS],
    used: usize,
}

thread_local! {
    static BATCH: RefCell<Batch> = const {
        RefCell::new(Batch { bytes: [0; ID_BYTES * BATCH_IDS], used: ID_BYTES * BATCH_IDS })
    };
}

/// The next 16 random bytes; `None` if the kernel gave none.
fn random_id() -> Option<[u8; ID_BYTES]> {
    BATCH.with_borrow_mut(|batch| {
        if batch.used == batch.bytes.len() {
            getrandom::getrandom(&mut batch.bytes).ok()?;
            batch.used = 0;
        }
        let mut id = [0; ID_BYTES];
        id.copy_from_slice(&batch.bytes[batch.used..batch.used + ID_BYTES]);
        batch.used += ID_BYTES;
        Some(id)
    })
}

/// `r`'s `$request_id` (variable `index`): the value nginx already has if something evaluated
/// it, else a new one, cached in the request for nginx to reuse.
pub fn of(r: &mut ngx_http_request_t, index: ngx_int_t) -> Option<&[u8]> {
    // SAFETY: `variables` has an entry for every indexed variable, and `index` is one.
    let cached = unsafe { &mut *r.variables.add(index as usize) };
    if cached.valid() == 0 && cached.not_found() == 0 {
        if let Some(id) = random_id() {
            // SAFETY: the request's pool lives as long as the request, and so its cache.
            let pool = unsafe { Pool::from_ngx_pool(r.pool) };
            let text = pool_bytes::zeroed(&pool, ID_BYTES * 2)?;
            write_hex(&id, text);
            cached.set_len(text.len() as u32);
            cached.data = text.as_mut_ptr();
            cached.set_valid(1);
            cached.set_no_cacheable(0);
            cached.set_escape(0);
        }
    }
    // Also when the kernel failed: nginx makes one its own way.
    variable_value(r, index)
}

/// Lowercase hex of `bytes` into `out`, twice as long.
fn write_hex(bytes: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (byte, pair) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 15)];
    }
}
