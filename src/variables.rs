//! nginx variables for `log_format` and friends: `$gateway_app`, `$gateway_app_time` (seconds,
//! millisecond resolution) and `$gateway_status` (the app's status, before nginx's filters).

use ngx::core::Pool;
use ngx::ffi::{
    ngx_conf_t, ngx_http_add_variable, ngx_http_request_t, ngx_int_t, ngx_str_t,
    ngx_variable_value_t, NGX_ERROR, NGX_HTTP_VAR_NOCACHEABLE, NGX_OK,
};

use crate::call_record::CallRecord;
use crate::panic_guard::guard;
use crate::pool_bytes;

type Getter = fn(&CallRecord, &Pool) -> Option<&'static [u8]>;

const VARIABLES: [(&str, Getter); 3] = [
    ("gateway_app", |record, _| Some(leak_name(record))),
    ("gateway_app_time", |record, pool| {
        let elapsed = record.elapsed()?;
        let text = format!("{:.3}", elapsed.as_secs_f64());
        pool_bytes::concat(pool, &[text.as_bytes()]).map(|bytes| leak(bytes))
    }),
    ("gateway_status", |record, pool| match record.status() {
        0 => None,
        status => pool_bytes::decimal(pool, status.into()).map(leak),
    }),
];

/// The app's name; it lives in the app, which the record keeps alive for the request.
fn leak_name(record: &CallRecord) -> &'static [u8] {
    // SAFETY: nginx reads the value during the request, while the record holds the app.
    unsafe { &*(record.app.name().as_bytes() as *const [u8]) }
}

/// Pool bytes, which live as long as the request that reads the variable.
fn leak(bytes: &[u8]) -> &'static [u8] {
    // SAFETY: as above, for bytes from the request's pool.
    unsafe { &*(bytes as *const [u8]) }
}

/// Registers the variables; called before the configuration is parsed so `log_format` can
/// name them.
pub fn register(cf: *mut ngx_conf_t) -> ngx_int_t {
    for (index, (name, _)) in VARIABLES.iter().enumerate() {
        let mut name = ngx_str_t {
            len: name.len(),
            data: name.as_ptr().cast_mut(),
        };
        // SAFETY: called while configuring; nginx copies the name.
        let variable =
            unsafe { ngx_http_add_variable(cf, &mut name, NGX_HTTP_VAR_NOCACHEABLE as usize) };
        // SAFETY: a variable nginx just made, ours to set up.
        let Some(variable) = (unsafe { variable.as_mut() }) else {
            return NGX_ERROR as ngx_int_t;
        };
        variable.get_handler = Some(get);
        variable.data = index;
    }
    NGX_OK as ngx_int_t
}

unsafe extern "C" fn get(
    r: *mut ngx_http_request_t,
    value: *mut ngx_variable_value_t,
    data: usize,
) -> ngx_int_t {
    // SAFETY: nginx passes a live request and a value to fill.
    let (r, value) = unsafe { (&*r, &mut *value) };
    // SAFETY: a live request has a connection with a log.
    let log = unsafe { (*r.connection).log };
    guard(log, "variable", NGX_ERROR as ngx_int_t, || {
        // SAFETY: the request's pool lives as long as the request.
        let pool = unsafe { Pool::from_ngx_pool(r.pool) };
        let found = CallRecord::of(r)
            .zip(VARIABLES.get(data))
            .and_then(|(record, (_, get))| get(record, &pool));
        match found {
            Some(bytes) => {
                value.set_len(bytes.len() as u32);
                value.set_valid(1);
                value.set_no_cacheable(1);
                value.set_not_found(0);
                value.data = bytes.as_ptr().cast_mut();
            }
            None => value.set_not_found(1),
        }
        NGX_OK as ngx_int_t
    })
}
