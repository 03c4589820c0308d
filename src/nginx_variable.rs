//! Reading nginx's own variables by their index, for values nginx computes itself (honouring
//! the realip module, say) that the environ and the request id take as they are.

use ngx::ffi::{ngx_http_get_indexed_variable, ngx_http_request_t, ngx_int_t};

/// The value of an indexed nginx variable, if it has one for this request.
pub fn variable_value(r: &mut ngx_http_request_t, index: ngx_int_t) -> Option<&[u8]> {
    // SAFETY: `index` was registered at configuration time; nginx caches the value in the
    // request, which keeps it alive as long as the request.
    let value = unsafe { ngx_http_get_indexed_variable(r, index as usize).as_ref() }?;
    if value.not_found() != 0 || value.valid() == 0 {
        return None;
    }
    let len = value.len() as usize;
    Some(if len == 0 {
        &[]
    } else {
        // SAFETY: a found variable value is `len` bytes at `data`.
        unsafe { std::slice::from_raw_parts(value.data, len) }
    })
}
