//! The gateway environ of one request, built from what nginx already parsed.
//!
//! Values borrow nginx's own buffers (they outlive the app call); only the `HTTP_*` names are
//! new bytes, and those, like the table itself, come from the request's pool.

use allocator_api2::vec::Vec as PoolVec;
use gateway::abi::{Bytes, Pair};
use ngx::core::Pool;
use ngx::ffi::ngx_http_request_t;
use ngx::http::list_iterator;

use crate::directives::LocationConf;

/// Entries the environ has besides one per request header.
const FIXED_ENTRIES: usize = 6;

pub type Environ<'p> = PoolVec<Pair, &'p Pool>;

/// Builds the environ of `r`; `None` when the pool is out of memory.
pub fn build<'p>(
    r: &ngx_http_request_t,
    conf: &LocationConf,
    pool: &'p Pool,
) -> Option<Environ<'p>> {
    // SAFETY: `headers_in.headers` is the request's initialised header list.
    let header_count = unsafe { list_iterator(&r.headers_in.headers) }.count();
    let mut environ = PoolVec::new_in(pool);
    environ
        .try_reserve_exact(FIXED_ENTRIES + header_count)
        .ok()?;

    let uri = r.uri.as_bytes();
    let (script_name, path_info) = split_mount_point(uri, &conf.script_name);
    environ.push(entry(b"REQUEST_METHOD", r.method_name.as_bytes()));
    environ.push(entry(b"SCRIPT_NAME", script_name));
    environ.push(entry(b"PATH_INFO", path_info));
    environ.push(entry(b"QUERY_STRING", r.args.as_bytes()));
    environ.push(entry(b"SERVER_PROTOCOL", r.http_protocol.as_bytes()));
    environ.push(entry(b"REQUEST_URI", r.unparsed_uri.as_bytes()));

    // SAFETY: as above.
    for (name, value) in unsafe { list_iterator(&r.headers_in.headers) } {
        let key = cgi_header_name(name.as_bytes(), pool)?;
        environ.push(Pair {
            name: Bytes::new(key),
            value: Bytes::new(value.as_bytes()),
        });
    }
    Some(environ)
}

fn entry(name: &'static [u8], value: &[u8]) -> Pair {
    Pair {
        name: Bytes::from_static(name),
        value: Bytes::new(value),
    }
}

/// Splits the request path into SCRIPT_NAME and PATH_INFO. The mount point only counts when it
/// ends at a segment boundary: `/app` mounts `/app` and `/app/x`, never `/application`.
pub fn split_mount_point<'a>(uri: &'a [u8], mount_point: &[u8]) -> (&'a [u8], &'a [u8]) {
    match uri.strip_prefix(mount_point) {
        Some(rest) if rest.is_empty() || rest.starts_with(b"/") => uri.split_at(mount_point.len()),
        _ => (&[], uri),
    }
}

/// The CGI name of a request header: `Content-Type` is CONTENT_TYPE and `Content-Length` is
/// CONTENT_LENGTH (RFC 3875), any other `X-Foo` is HTTP_X_FOO. Allocated from `pool`.
fn cgi_header_name<'p>(name: &[u8], pool: &'p Pool) -> Option<&'p [u8]> {
    if name.eq_ignore_ascii_case(b"content-type") {
        return Some(b"CONTENT_TYPE");
    }
    if name.eq_ignore_ascii_case(b"content-length") {
        return Some(b"CONTENT_LENGTH");
    }
    const PREFIX: &[u8] = b"HTTP_";
    let len = PREFIX.len() + name.len();
    let data = pool.alloc_unaligned(len).cast::<u8>();
    if data.is_null() {
        return None;
    }
    // SAFETY: `data` is a fresh pool allocation of `len` bytes that lives as long as the request.
    let key = unsafe { std::slice::from_raw_parts_mut(data, len) };
    key[..PREFIX.len()].copy_from_slice(PREFIX);
    for (out, &byte) in key[PREFIX.len()..].iter_mut().zip(name) {
        *out = if byte == b'-' {
            b'_'
        } else {
            byte.to_ascii_uppercase()
        };
    }
    Some(key)
}
