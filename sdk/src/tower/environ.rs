//! The request a tower service gets: built from the gateway environ on the event loop, owning
//! everything it needs, since it outlives the module's call.

use std::ops::Range;
use std::sync::Arc;

use http::header::{HeaderName, HeaderValue};
use percent_encoding::{percent_encode, AsciiSet, CONTROLS};

use crate::abi;

/// The gateway environ of a request, owned: every request a tower service gets carries one in
/// its extensions (`request.extensions().get::<Environ>()`, or axum's
/// `Extension<gateway::tower::Environ>`). Cheap to clone.
///
/// It has every key of the environ (see [`crate::Environ`]), `gateway_param` values included;
/// the accessors below name the usual ones.
#[derive(Clone)]
pub struct Environ(Arc<Owned>);

/// All names and values in one buffer: one allocation per request.
struct Owned {
    bytes: Vec<u8>,
    entries: Vec<(Range<usize>, Range<usize>)>,
}

impl Environ {
    /// Copies the module's environ.
    pub(crate) fn copy(pairs: &[abi::Pair]) -> Environ {
        Environ::from_views(
            pairs
                .iter()
                // SAFETY: the module keeps the environ valid while `call` runs, and this
                // copies it.
                .map(|pair| unsafe { (pair.name.as_slice(), pair.value.as_slice()) }),
        )
    }

    /// Copies every pair into one buffer; `views` is walked twice (sizes, then bytes), so
    /// nothing else is allocated.
    fn from_views<'v>(views: impl Iterator<Item = (&'v [u8], &'v [u8])> + Clone) -> Environ {
        let (count, total) = views.clone().fold((0, 0), |(count, total), (name, value)| {
            (count + 1, total + name.len() + value.len())
        });
        let mut bytes = Vec::with_capacity(total);
        let mut entries = Vec::with_capacity(count);
        let mut push = |part: &[u8]| {
            let start = bytes.len();
            bytes.extend_from_slice(part);
            start..bytes.len()
        };
        for (name, value) in views {
            entries.push((push(name), push(value)));
        }
        Environ(Arc::new(Owned { bytes, entries }))
    }

    /// An environ from names and values, e.g. to test a service without nginx.
    pub fn from_pairs<N: AsRef<[u8]>, V: AsRef<[u8]>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Environ {
        let pairs: Vec<(N, V)> = pairs.into_iter().collect();
        Environ::from_views(
            pairs
                .iter()
                .map(|(name, value)| (name.as_ref(), value.as_ref())),
        )
    }

    /// Every entry, in the order the module built them.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        let bytes = &self.0.bytes;
        self.0
            .entries
            .iter()
            .map(move |(name, value)| (&bytes[name.clone()], &bytes[value.clone()]))
    }

    /// The raw value of `name` (an environ key such as `REMOTE_PORT`, or a `gateway_param`).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.iter()
            .find(|(key, _)| *key == name.as_bytes())
            .map(|(_, value)| value)
    }

    /// The value of `name` as text; `None` when absent or not UTF-8.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name)
            .and_then(|value| std::str::from_utf8(value).ok())
    }

    /// Where the app is mounted (`SCRIPT_NAME`): "" at the root, else a prefix such as "/api".
    /// The request's URI is the path below it.
    pub fn script_name(&self) -> &str {
        self.get_str("SCRIPT_NAME").unwrap_or("")
    }

    /// The client's address (`REMOTE_ADDR`), as nginx saw it (after the realip module).
    pub fn remote_addr(&self) -> Option<&str> {
        self.get_str("REMOTE_ADDR")
    }

    /// nginx's `$request_id` (`gateway.request_id`), which the error and access logs show.
    pub fn request_id(&self) -> Option<&str> {
        self.get_str("gateway.request_id")
    }
}

impl std::fmt::Debug for Environ {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(
                self.iter()
                    .map(|(k, v)| (String::from_utf8_lossy(k), String::from_utf8_lossy(v))),
            )
            .finish()
    }
}

/// Bytes a decoded path must escape to be a URI path again: `%` first of all, so that a
/// decoded `%2525` stays what it was, and `?`/`#`, which would end the path.
const PATH_ESCAPES: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Bytes `http::Uri` refuses in a query that nginx may pass raw; existing escapes stay.
const QUERY_ESCAPES: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// The URI a service routes on: the path below the mount point (`PATH_INFO`, "/" when empty,
/// escaped again since nginx decoded it) and the raw query.
pub(crate) fn uri(environ: &Environ) -> http::Uri {
    let path = match environ.get("PATH_INFO") {
        Some(path) if !path.is_empty() => path,
        _ => b"/",
    };
    let mut target: String = percent_encode(path, PATH_ESCAPES).collect();
    if let Some(query) = environ
        .get("QUERY_STRING")
        .filter(|query| !query.is_empty())
    {
        target.push('?');
        target.extend(percent_encode(query, QUERY_ESCAPES));
    }
    // Every byte that could make it invalid is escaped above; "/" is the last resort all the
    // same, rather than failing a request over a URI.
    http::Uri::try_from(target).unwrap_or_else(|_| http::Uri::from_static("/"))
}

/// The request headers, from the environ's `HTTP_*`, `CONTENT_TYPE` and `CONTENT_LENGTH` keys:
/// `HTTP_X_FOO` is `x-foo`. A header sent more than once arrives as one value, joined by nginx.
pub(crate) fn headers(environ: &Environ) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    for (key, value) in environ.iter() {
        let Some(name) = header_name(key) else {
            continue;
        };
        // nginx hands over only valid header values; one that is not is left out rather than
        // failing the request.
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append(name, value);
        }
    }
    headers
}

/// The header an environ key carries, if it carries one: `HTTP_X_FOO` is `x-foo`.
pub(crate) fn header_name(key: &[u8]) -> Option<HeaderName> {
    let cgi = match key.strip_prefix(b"HTTP_") {
        Some(rest) => rest,
        None if key == b"CONTENT_TYPE" || key == b"CONTENT_LENGTH" => key,
        None => return None,
    };
    // On the stack for any usual name: this runs for every header of every request.
    let mut buffer = [0u8; 64];
    let mut long = Vec::new();
    let name = match buffer.get_mut(..cgi.len()) {
        Some(name) => name,
        None => {
            long.resize(cgi.len(), 0);
            &mut long[..]
        }
    };
    for (out, &byte) in name.iter_mut().zip(cgi) {
        *out = if byte == b'_' { b'-' } else { byte };
    }
    // from_bytes lowercases as it checks.
    HeaderName::from_bytes(name).ok()
}

/// The method (`REQUEST_METHOD`); GET if absent or not a token, which nginx never passes.
pub(crate) fn method(environ: &Environ) -> http::Method {
    environ
        .get("REQUEST_METHOD")
        .and_then(|raw| http::Method::from_bytes(raw).ok())
        .unwrap_or(http::Method::GET)
}

/// The HTTP version (`SERVER_PROTOCOL`).
pub(crate) fn version(environ: &Environ) -> http::Version {
    match environ.get("SERVER_PROTOCOL") {
        Some(b"HTTP/1.0") => http::Version::HTTP_10,
        Some(b"HTTP/2.0") => http::Version::HTTP_2,
        Some(b"HTTP/3.0") => http::Version::HTTP_3,
        _ => http::Version::HTTP_11,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn environ(pairs: &[(&str, &str)]) -> Environ {
        Environ::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn the_uri_is_the_path_below_the_mount_point_and_the_query() {
        let e = environ(&[
            ("SCRIPT_NAME", "/api"),
            ("PATH_INFO", "/users/7"),
            ("QUERY_STRING", "a=1&b=%20"),
        ]);
        assert_eq!(uri(&e), "/users/7?a=1&b=%20");
        assert_eq!(uri(&environ(&[("PATH_INFO", "")])), "/");
        assert_eq!(uri(&environ(&[])), "/");
    }

    #[test]
    fn a_decoded_path_is_escaped_again() {
        let e = environ(&[("PATH_INFO", "/a b/50%/?#/é"), ("QUERY_STRING", "q={x}")]);
        let uri = uri(&e);
        assert_eq!(uri.path(), "/a%20b/50%25/%3F%23/%C3%A9");
        assert_eq!(uri.query(), Some("q=%7Bx%7D"));
    }

    #[test]
    fn header_names_are_restored_from_environ_keys() {
        assert_eq!(header_name(b"HTTP_X_FOO").unwrap(), "x-foo");
        assert_eq!(header_name(b"HTTP_USER_AGENT").unwrap(), "user-agent");
        assert_eq!(header_name(b"CONTENT_TYPE").unwrap(), "content-type");
        assert_eq!(header_name(b"CONTENT_LENGTH").unwrap(), "content-length");
        assert!(header_name(b"REMOTE_ADDR").is_none());
        assert!(header_name(b"HTTP_").is_none());
        // Longer than the stack buffer: built on the heap, the same way.
        let long = format!("HTTP_X_{}", "LONG_NAME_".repeat(10));
        assert_eq!(
            header_name(long.as_bytes()).unwrap(),
            format!("x-{}", "long-name-".repeat(10)).as_str()
        );
        let e = environ(&[
            ("HTTP_HOST", "example.org"),
            ("HTTP_ACCEPT", "a, b"),
            ("CONTENT_LENGTH", "5"),
            ("QUERY_STRING", "x"),
        ]);
        let map = headers(&e);
        assert_eq!(map.len(), 3);
        assert_eq!(map["host"], "example.org");
        assert_eq!(map["accept"], "a, b");
        assert_eq!(map["content-length"], "5");
    }

    #[test]
    fn method_and_version_come_from_the_environ() {
        let e = environ(&[
            ("REQUEST_METHOD", "PROPFIND"),
            ("SERVER_PROTOCOL", "HTTP/1.0"),
        ]);
        assert_eq!(method(&e).as_str(), "PROPFIND");
        assert_eq!(version(&e), http::Version::HTTP_10);
        let e = environ(&[("REQUEST_METHOD", "BAD METHOD")]);
        assert_eq!(method(&e), http::Method::GET);
        assert_eq!(version(&e), http::Version::HTTP_11);
    }

    #[test]
    fn the_environ_names_the_usual_keys() {
        let e = environ(&[
            ("SCRIPT_NAME", "/t"),
            ("REMOTE_ADDR", "127.0.0.1"),
            ("gateway.request_id", "abc"),
            ("greeting", "hi"),
        ]);
        assert_eq!(e.script_name(), "/t");
        assert_eq!(e.remote_addr(), Some("127.0.0.1"));
        assert_eq!(e.request_id(), Some("abc"));
        assert_eq!(e.get_str("greeting"), Some("hi"));
        assert_eq!(e.get("missing"), None);
        assert_eq!(e.iter().count(), 4);
    }
}
