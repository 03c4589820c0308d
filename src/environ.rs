//! The gateway environ of one request, built from what nginx already parsed.
//!
//! Values borrow nginx's own buffers, which outlive the app call; names are static except the
//! `HTTP_*` ones, and those, joined header values and the table itself come from the
//! request's pool. Nothing here allocates on the heap.

use allocator_api2::vec::Vec as PoolVec;
use gateway_abi::wire::{self, HeaderEntry};
use gateway_abi::{Bytes, Pair};
use ngx::core::Pool;
use ngx::ffi::{
    ngx_connection_local_sockaddr, ngx_http_complex_value, ngx_http_request_t, ngx_inet_get_port,
    ngx_int_t, ngx_str_t, NGINX_VERSION, NGX_LOG_INFO, NGX_OK,
};
use ngx::http::{list_iterator, HttpModuleServerConf, NgxHttpCoreModule};
use ngx::ngx_log_error;

use crate::app_loader::App;
use crate::conf::{EnvironVariables, LocationConf};
use crate::nginx_variable::variable_value;
use crate::{pool_bytes, request_id};

/// Most entries the environ has besides request headers and `gateway_param`s.
const FIXED_ENTRIES: usize = 21;

pub type Environ<'p> = PoolVec<Pair, &'p Pool>;

/// What the environ is built from, besides the request itself.
pub struct Sources<'a> {
    pub conf: &'a LocationConf,
    pub variables: &'a EnvironVariables,
    pub app: &'a App,
    /// The body's length, when the request has a body.
    pub body_len: Option<u64>,
    /// Whether the app is called on a thread pool rather than the event loop.
    pub offloaded: bool,
}

/// Builds the environ of `r`; `None` when the pool is out of memory.
pub fn build<'p>(
    r: &mut ngx_http_request_t,
    sources: &Sources,
    pool: &'p Pool,
) -> Option<Environ<'p>> {
    // SAFETY: `headers_in.headers` is the request's initialised header list.
    let header_count = unsafe { list_iterator(&r.headers_in.headers) }.count();
    let mut environ = Environ::new_in(pool);
    environ
        .try_reserve_exact(FIXED_ENTRIES + header_count + sources.conf.params.len())
        .ok()?;

    let (script_name, path_info) =
        wire::split_mount_point(r.uri.as_bytes(), &sources.conf.script_name);
    environ.push(entry(b"REQUEST_METHOD", r.method_name.as_bytes()));
    environ.push(entry(b"REQUEST_URI", r.unparsed_uri.as_bytes()));
    environ.push(entry(b"SCRIPT_NAME", script_name));
    environ.push(entry(b"PATH_INFO", path_info));
    environ.push(entry(b"QUERY_STRING", r.args.as_bytes()));
    environ.push(entry(b"SERVER_PROTOCOL", r.http_protocol.as_bytes()));
    if let Some(len) = sources.body_len {
        environ.push(entry(b"CONTENT_LENGTH", pool_bytes::decimal(pool, len)?));
    }

    let variables = sources.variables;
    // $server_name and $remote_addr, read where nginx's own variables read them (the realip
    // module rewrites the connection's address in place).
    if let Some(server) = NgxHttpCoreModule::server_conf(r) {
        environ.push(entry(b"SERVER_NAME", server.server_name.as_bytes()));
    }
    // SAFETY: a live request has its connection.
    let remote_addr = unsafe { (*r.connection).addr_text.as_bytes() };
    environ.push(entry(b"REMOTE_ADDR", remote_addr));
    if let Some(scheme) = variable_value(r, variables.scheme) {
        // nginx sets $https to "on" exactly when $scheme is "https".
        let https = scheme == b"https";
        environ.push(entry(b"REQUEST_SCHEME", scheme));
        environ.push(entry(b"gateway.url_scheme", scheme));
        if https {
            environ.push(entry(b"HTTPS", b"on"));
        }
    }
    let (server_port, remote_port) = ports(r);
    environ.push(entry(b"SERVER_PORT", port_text(pool, server_port)?));
    environ.push(entry(b"REMOTE_PORT", port_text(pool, remote_port)?));
    if let Some(id) = request_id::of(r, variables.request_id) {
        environ.push(entry(b"gateway.request_id", id));
    }
    // Set only once an auth module has checked the credentials, unlike $remote_user, which
    // decodes whatever Authorization header the client sent.
    let user = r.headers_in.user.as_bytes();
    if !user.is_empty() {
        environ.push(entry(b"REMOTE_USER", user));
    }
    environ.push(entry(
        b"gateway.version",
        env!("CARGO_PKG_VERSION").as_bytes(),
    ));
    environ.push(entry(b"gateway.app", sources.app.name().as_bytes()));
    environ.push(entry(b"gateway.nginx_version", NGINX_VERSION.to_bytes()));
    let runs_on: &[u8] = if sources.offloaded {
        b"thread_pool"
    } else {
        b"event_loop"
    };
    environ.push(entry(b"gateway.runs_on", runs_on));

    add_headers(r, &mut environ, pool)?;
    add_params(r, &mut environ, sources.conf)?;
    Some(environ)
}

fn entry(name: &'static [u8], value: &[u8]) -> Pair {
    Pair {
        name: Bytes::from_static(name),
        value: Bytes::new(value),
    }
}

/// The server's and the client's port, as `$server_port` and `$remote_port` have them (0 for
/// none, such as a unix socket), without their printf.
fn ports(r: &ngx_http_request_t) -> (u16, u16) {
    let connection = r.connection;
    // SAFETY: a live request's connection; nginx learns the local address on demand (a
    // getsockname for a wildcard listen) and keeps it in the connection.
    let local_known = unsafe { ngx_connection_local_sockaddr(connection, std::ptr::null_mut(), 0) }
        == NGX_OK as ngx_int_t;
    // SAFETY: both addresses are the connection's, set for its whole life.
    unsafe {
        let server = if local_known {
            ngx_inet_get_port((*connection).local_sockaddr)
        } else {
            0
        };
        (server, ngx_inet_get_port((*connection).sockaddr))
    }
}

/// A port in decimal, empty for none, as nginx writes it.
fn port_text(pool: &Pool, port: u16) -> Option<&[u8]> {
    if port == 0 {
        return Some(b"");
    }
    pool_bytes::decimal(pool, port.into())
}

/// One entry per request header, by the rules of [`gateway_abi::wire::header_entry`]: a repeated
/// header becomes one entry, its values joined in order.
fn add_headers(r: &ngx_http_request_t, environ: &mut Environ, pool: &Pool) -> Option<()> {
    let first_header = environ.len();
    // SAFETY: the request's header list, initialised for every request.
    for (name, value) in unsafe { list_iterator(&r.headers_in.headers) } {
        let name = name.as_bytes();
        let key: &[u8] = match wire::header_entry(name) {
            HeaderEntry::ContentType => b"CONTENT_TYPE",
            HeaderEntry::ContentLength => continue,
            HeaderEntry::Underscored => {
                ngx_log_error!(
                    NGX_LOG_INFO,
                    // SAFETY: a live request has a connection with a log.
                    unsafe { (*r.connection).log },
                    "gateway: dropped request header \"{}\": a name with \"_\" could pass for one with \"-\"",
                    String::from_utf8_lossy(name)
                );
                continue;
            }
            HeaderEntry::Http => {
                let key = pool_bytes::zeroed(pool, wire::cgi_name_len(name))?;
                wire::write_cgi_name(name, key);
                key
            }
        };
        let value = value.as_bytes();
        let earlier = environ[first_header..].iter_mut().find(|pair| {
            // SAFETY: names in the environ are static or pool bytes.
            let name = unsafe { pair.name.as_slice() };
            name == key
        });
        match earlier {
            Some(pair) => {
                // SAFETY: values in the environ point at request or pool bytes.
                let joined = pool_bytes::concat(
                    pool,
                    &[
                        unsafe { pair.value.as_slice() },
                        wire::join_separator(key),
                        value,
                    ],
                )?;
                pair.value = Bytes::new(joined);
            }
            None => environ.push(Pair {
                name: Bytes::new(key),
                value: Bytes::new(value),
            }),
        }
    }
    Some(())
}

/// Adds each `gateway_param`, replacing an entry of the same name.
fn add_params(
    r: &mut ngx_http_request_t,
    environ: &mut Environ,
    conf: &LocationConf,
) -> Option<()> {
    for param in &conf.params {
        let mut value = ngx_str_t::default();
        let compiled = std::ptr::addr_of!(param.value).cast_mut();
        // SAFETY: the complex value was compiled for this configuration, and nginx only reads
        // it; the result is allocated from the request pool.
        let rc = unsafe { ngx_http_complex_value(r, compiled, &mut value) };
        if rc != NGX_OK as ngx_int_t {
            return None;
        }
        if param.if_not_empty && value.is_empty() {
            continue;
        }
        let value = Bytes {
            ptr: value.data,
            len: value.len,
        };
        match environ.iter_mut().find(|pair| {
            // SAFETY: names in the environ are static, pool or configuration bytes.
            let name = unsafe { pair.name.as_slice() };
            name == param.name
        }) {
            Some(pair) => pair.value = value,
            None => {
                environ.try_reserve(1).ok()?;
                environ.push(Pair {
                    name: Bytes::new(&param.name),
                    value,
                });
            }
        }
    }
    Some(())
}
