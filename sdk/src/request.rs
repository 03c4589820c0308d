//! The request as an app sees it: the gateway environ, with typed views on top.

use std::fmt::Display;
use std::sync::Arc;

use http::header::{HeaderName, HeaderValue};

use serde::de::DeserializeOwned;

use crate::abi;
use crate::error::Error;
use crate::logging::{CallLog, LogLevel, Logger};
use crate::request_body::RequestBody;
use crate::url_for::RouteNames;

#[doc = include_str!("../ENVIRON.md")]
#[derive(Clone, Copy)]
pub struct Environ<'a> {
    pairs: &'a [abi::Pair],
}

impl<'a> Environ<'a> {
    pub(crate) fn new(pairs: &'a [abi::Pair]) -> Self {
        Environ { pairs }
    }

    /// The raw value of `name`, if the environ has it.
    pub fn get(&self, name: &str) -> Option<&'a [u8]> {
        self.iter()
            .find(|(key, _)| *key == name.as_bytes())
            .map(|(_, value)| value)
    }

    /// The value of `name` as text; `None` when absent or not valid UTF-8 (see [`Environ::get`]).
    pub fn get_str(&self, name: &str) -> Option<&'a str> {
        self.get(name)
            .and_then(|value| std::str::from_utf8(value).ok())
    }

    /// Every entry, in the order the module built them.
    pub fn iter(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        self.pairs.iter().map(|pair| {
            // SAFETY: the module keeps every environ byte alive and unchanged until the call
            // is completed, which happens only after the handler that borrows `self` returned.
            unsafe { (pair.name.as_slice(), pair.value.as_slice()) }
        })
    }

    /// Number of entries (a repeated header is one entry).
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

impl std::fmt::Debug for Environ<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(
                self.iter()
                    .map(|(k, v)| (String::from_utf8_lossy(k), String::from_utf8_lossy(v))),
            )
            .finish()
    }
}

/// One HTTP request handed to the app by nginx.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    environ: Environ<'a>,
    body: &'a [abi::BodySegment],
    /// Path parameters of the matched route.
    params: Vec<(String, String)>,
    /// Where this request's log lines go: the call's handle, live while the request is.
    log: &'a CallLog,
    /// Values set during this request, shared by every view of it (a route's view adds only
    /// its parameters).
    extensions: &'a Extensions,
    /// The named routes of the router that routed this view, for [`Request::url_for`].
    routes: Option<&'a Arc<RouteNames>>,
}

/// The store behind [`Request::extensions`], made empty (without allocating) for each call.
pub(crate) type Extensions = parking_lot::Mutex<http::Extensions>;

impl<'a> Request<'a> {
    pub(crate) fn new(
        environ: Environ<'a>,
        body: &'a [abi::BodySegment],
        log: &'a CallLog,
        extensions: &'a Extensions,
    ) -> Self {
        Request {
            environ,
            body,
            params: Vec::new(),
            log,
            extensions,
            routes: None,
        }
    }

    /// The view of this request a router's route gets: its path parameters, and the router's
    /// named routes, borrowed.
    pub(crate) fn routed<'r>(
        &self,
        params: Vec<(String, String)>,
        routes: &'r Arc<RouteNames>,
    ) -> Request<'r>
    where
        'a: 'r,
    {
        Request {
            environ: self.environ,
            body: self.body,
            params,
            log: self.log,
            extensions: self.extensions,
            routes: Some(routes),
        }
    }

    /// The named routes of the router that routed this request, if one did.
    pub(crate) fn route_names(&self) -> Option<&'a Arc<RouteNames>> {
        self.routes
    }

    /// The URL of the route named `name` (Flask's `url_for`), for links and redirects: the
    /// mount point (`SCRIPT_NAME`), the prefixes of the nested routers it is in, and its path
    /// with `params` filling its parameters, percent-encoded; the `params` its path does not
    /// name go to the query string. An unknown name or a missing parameter is a programming
    /// error: an [`Error::Internal`], a logged 500.
    ///
    /// ```
    /// use gateway::testing::TestClient;
    /// use gateway::{get, Error, Request, Router};
    ///
    /// fn note(request: &Request) -> Result<String, Error> {
    ///     let id = request.param("id").unwrap_or("0");
    ///     request.url_for("note", &[("id", &id), ("page", &2)])
    /// }
    ///
    /// let app = Router::new().route_named("note", "/notes/{id}", get(note));
    /// let client = TestClient::new(app).mounted_at("/app");
    /// assert_eq!(client.get("/app/notes/a%20b").send().text(), "/app/notes/a%20b?page=2");
    /// ```
    pub fn url_for(&self, name: &str, params: &[(&str, &dyn Display)]) -> Result<String, Error> {
        crate::url_for::url_for(
            self.routes.map(|routes| &**routes),
            self.script_name(),
            name,
            params,
        )
    }

    /// A path parameter of the matched route: `{id}` in `/users/{id}`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The query string deserialized into `T` (a struct deriving `serde::Deserialize`, or a
    /// `HashMap<String, String>`); a malformed one is a 400.
    pub fn query<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_urlencoded::from_bytes(self.query_string()).map_err(Error::Query)
    }

    /// An `application/x-www-form-urlencoded` body deserialized into `T`; another content type
    /// is a 415, a malformed body a 400.
    pub fn form<T: DeserializeOwned>(&self) -> Result<T, Error> {
        self.expect_content_type(
            |essence| essence == "application/x-www-form-urlencoded",
            "application/x-www-form-urlencoded",
        )?;
        serde_urlencoded::from_bytes(&self.body_bytes()?).map_err(Error::Form)
    }

    /// A JSON body (`application/json` or `application/*+json`) deserialized into `T`; another
    /// content type is a 415, malformed JSON a 400, JSON of the wrong shape a 422.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        self.expect_content_type(
            |essence| {
                essence == "application/json"
                    || (essence.starts_with("application/") && essence.ends_with("+json"))
            },
            "application/json",
        )?;
        serde_json::from_slice(&self.body_bytes()?).map_err(Error::Json)
    }

    /// The whole body in memory; prefer [`Request::body`] for large bodies.
    pub fn body_bytes(&self) -> Result<Vec<u8>, Error> {
        let mut bytes = Vec::with_capacity(self.body().len() as usize);
        std::io::Read::read_to_end(&mut self.body(), &mut bytes).map_err(Error::Body)?;
        Ok(bytes)
    }

    fn expect_content_type(
        &self,
        accept: impl Fn(&str) -> bool,
        expected: &'static str,
    ) -> Result<(), Error> {
        let essence = self
            .environ
            .get_str("CONTENT_TYPE")
            .and_then(|value| value.split(';').next())
            .map(|essence| essence.trim().to_ascii_lowercase());
        match essence {
            Some(essence) if accept(&essence) => Ok(()),
            _ => Err(Error::ContentType { expected }),
        }
    }

    /// The value of the request cookie `name`.
    pub fn cookie(&self, name: &str) -> Option<&'a str> {
        self.cookies()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value)
    }

    /// Every request cookie, as name and value.
    pub fn cookies(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let header = self.environ.get_str("HTTP_COOKIE").unwrap_or("");
        cookie::Cookie::split_parse(header).filter_map(|cookie| {
            let cookie = cookie.ok()?;
            Some((cookie.name_raw()?, cookie.value_raw()?))
        })
    }

    /// A reader over the request body, from its start; see [`RequestBody`].
    pub fn body(&self) -> RequestBody<'a> {
        RequestBody::new(self.body)
    }

    /// The body's length (`CONTENT_LENGTH`); `None` for a request without a body.
    pub fn content_length(&self) -> Option<u64> {
        self.environ.get_str("CONTENT_LENGTH")?.parse().ok()
    }

    /// The request target as the client sent it (`REQUEST_URI`), as an `http::Uri`. Bytes
    /// `http` does not accept in a URI (raw UTF-8, for one) are percent-encoded.
    pub fn uri(&self) -> http::Uri {
        let raw = self.environ.get("REQUEST_URI").unwrap_or(b"/");
        http::Uri::try_from(raw)
            .or_else(|_| http::Uri::try_from(percent_encode_unsafe(raw)))
            .unwrap_or_else(|_| http::Uri::from_static("/"))
    }

    /// The HTTP version (`SERVER_PROTOCOL`).
    pub fn version(&self) -> http::Version {
        match self.environ.get("SERVER_PROTOCOL") {
            Some(b"HTTP/0.9") => http::Version::HTTP_09,
            Some(b"HTTP/1.0") => http::Version::HTTP_10,
            Some(b"HTTP/2.0") => http::Version::HTTP_2,
            Some(b"HTTP/3.0") => http::Version::HTTP_3,
            _ => http::Version::HTTP_11,
        }
    }

    /// The request headers as an `http::HeaderMap`, rebuilt from the environ's `HTTP_*`,
    /// `CONTENT_TYPE` and `CONTENT_LENGTH` keys: names are lowercase with `_` read as `-`, and
    /// a repeated header arrives as one value joined with ", " ("; " for Cookie). Built on each
    /// call; [`Request::header`] looks one up without building the map.
    pub fn headers(&self) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        for (key, value) in self.environ.iter() {
            let Some(cgi_name) = header_part(key) else {
                continue;
            };
            let name: Vec<u8> = cgi_name
                .iter()
                .map(|&byte| {
                    if byte == b'_' {
                        b'-'
                    } else {
                        byte.to_ascii_lowercase()
                    }
                })
                .collect();
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(&name),
                HeaderValue::from_bytes(value),
            ) {
                headers.append(name, value);
            }
        }
        headers
    }

    /// The whole environ.
    pub fn environ(&self) -> Environ<'a> {
        self.environ
    }

    /// The request method. Every method nginx accepts parses, extension methods included
    /// (`PROPFIND`, `M-SEARCH`: [`http::Method::from_bytes`] takes any HTTP token). A request
    /// built by hand without `REQUEST_METHOD`, or with a value that is not a token (which nginx
    /// never passes), reads as GET, the default WSGI frameworks such as Werkzeug use too.
    pub fn method(&self) -> http::Method {
        self.environ
            .get("REQUEST_METHOD")
            .and_then(|raw| http::Method::from_bytes(raw).ok())
            .unwrap_or(http::Method::GET)
    }

    /// Where the app is mounted (`SCRIPT_NAME`): "" at the root, else a prefix such as "/api".
    pub fn script_name(&self) -> &'a str {
        self.environ.get_str("SCRIPT_NAME").unwrap_or("")
    }

    /// The decoded path below the mount point (`PATH_INFO`): "" or starting with "/".
    /// `None` when it is not valid UTF-8; [`Environ::get`] has the raw bytes.
    pub fn path(&self) -> Option<&'a str> {
        self.environ.get_str("PATH_INFO")
    }

    /// The raw query string, without "?".
    pub fn query_string(&self) -> &'a [u8] {
        self.environ.get("QUERY_STRING").unwrap_or(b"")
    }

    /// Writes `message` (text, or `format_args!(...)`) to nginx's error log at `level`, naming
    /// the app and this request's id. To log after the handler returns, from a streamed body,
    /// see [`Request::logger`].
    pub fn log(&self, level: LogLevel, message: impl std::fmt::Display) {
        self.log.log(level, &message.to_string());
    }

    /// A [`Logger`] whose lines name this request, for as long as the request lasts: until
    /// the handler's response is handed to nginx, or, for a streamed body, until nginx is done
    /// with the stream. Move it into a stream to log as it runs:
    ///
    /// ```
    /// use gateway::{Body, Request};
    ///
    /// fn countdown(request: &Request) -> Body {
    ///     let log = request.logger();
    ///     Body::from_iter((0..3).rev().map(move |left| {
    ///         log.debug(format_args!("{left} to go"));
    ///         format!("{left}\n")
    ///     }))
    /// }
    /// ```
    ///
    /// The logger may be kept longer (it is `'static`), but once the request is over its lines
    /// no longer name it, nor the app: nginx has forgotten the request by then.
    pub fn logger(&self) -> Logger {
        self.log.logger()
    }

    /// Values kept for this request alone, by type, as Flask's `g`: a hook or layer that ran
    /// before the handler (loading the user, say) leaves what the handler needs here.
    ///
    /// ```
    /// use gateway::Request;
    ///
    /// #[derive(Clone)]
    /// struct User(String);
    ///
    /// fn greet(request: &Request) -> String {
    ///     let user = request.extensions().get::<User>().cloned();
    ///     format!("hello {}\n", user.map_or("stranger".into(), |user| user.0))
    /// }
    /// ```
    ///
    /// The guard locks the store: let it go before calling code that uses it again.
    pub fn extensions(&self) -> parking_lot::MutexGuard<'a, http::Extensions> {
        self.extensions.lock()
    }

    /// A request header by name, case-insensitively (`"user-agent"` reads `HTTP_USER_AGENT`).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.environ.iter().find_map(|(key, value)| {
            let cgi_name = header_part(key)?;
            let same = cgi_name.len() == name.len()
                && cgi_name.iter().zip(name.bytes()).all(|(&c, n)| {
                    let n = if n == b'-' {
                        b'_'
                    } else {
                        n.to_ascii_uppercase()
                    };
                    c == n
                });
            same.then_some(value)
        })
    }
}

/// The header-name part of an environ key that carries a request header.
fn header_part(key: &[u8]) -> Option<&[u8]> {
    match key.strip_prefix(b"HTTP_") {
        Some(rest) => Some(rest),
        None if key == b"CONTENT_TYPE" || key == b"CONTENT_LENGTH" => Some(key),
        None => None,
    }
}

/// Percent-encodes the bytes a URI may not hold literally, leaving existing escapes alone.
fn percent_encode_unsafe(raw: &[u8]) -> Vec<u8> {
    let mut encoded = Vec::with_capacity(raw.len() * 3);
    for &byte in raw {
        if byte.is_ascii_graphic() && !b"\"<>\\^`{|}".contains(&byte) {
            encoded.push(byte);
        } else {
            encoded.extend_from_slice(format!("%{byte:02X}").as_bytes());
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::Target;

    fn method_of(environ: &[(&str, &[u8])]) -> http::Method {
        let pairs: Vec<abi::Pair> = environ
            .iter()
            .map(|(name, value)| abi::Pair {
                name: abi::Bytes::new(name.as_bytes()),
                value: abi::Bytes::new(value),
            })
            .collect();
        let log = CallLog::new(Target::Stderr);
        let extensions = Extensions::default();
        Request::new(Environ::new(&pairs), &[], &log, &extensions).method()
    }

    #[test]
    fn extensions_are_shared_by_every_view_of_the_request() {
        let log = CallLog::new(Target::Stderr);
        let extensions = Extensions::default();
        let request = Request::new(Environ::new(&[]), &[], &log, &extensions);
        request.extensions().insert(7u32);
        let routes = Arc::default();
        let routed = request.routed(vec![("id".into(), "1".into())], &routes);
        assert_eq!(routed.extensions().get::<u32>(), Some(&7));
        routed.extensions().insert("set by the handler");
        assert_eq!(
            request.extensions().get::<&str>(),
            Some(&"set by the handler")
        );
    }

    #[test]
    fn every_method_nginx_accepts_parses_as_itself() {
        // nginx accepts methods of A-Z, '_' and '-', of any length.
        let long = "A".repeat(100);
        for method in ["GET", "DELETE", "PROPFIND", "M-SEARCH", "X_CUSTOM", &long] {
            let parsed = method_of(&[("REQUEST_METHOD", method.as_bytes())]);
            assert_eq!(parsed.as_str(), method);
        }
        assert_eq!(
            method_of(&[("REQUEST_METHOD", b"POST")]),
            http::Method::POST
        );
    }

    #[test]
    fn a_hand_built_request_without_a_valid_method_reads_as_get() {
        assert_eq!(method_of(&[]), http::Method::GET);
        for raw in [&b""[..], b"BAD METHOD", b"G\xc3\xa9T", b"GET\r\n"] {
            assert_eq!(method_of(&[("REQUEST_METHOD", raw)]), http::Method::GET);
        }
    }
}
