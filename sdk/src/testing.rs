//! Calling an app in-process with synthetic requests, without nginx, as Flask's test client
//! does: unit tests for apps run with plain `cargo test`.
//!
//! ```
//! use gateway::testing::TestClient;
//!
//! fn hello(_: &gateway::Request) -> &'static str {
//!     "Hello, World!\n"
//! }
//!
//! let client = TestClient::new(hello);
//! let response = client.get("/").send();
//! assert_eq!(response.status, 200);
//! assert_eq!(response.text(), "Hello, World!\n");
//! ```
//!
//! The client keeps the cookies the app sets, as a browser does, and sends them back with
//! later requests under their path: a login flow tests as it runs.
//!
//! ```
//! use gateway::testing::TestClient;
//! use gateway::{Request, SetCookies};
//!
//! fn app(request: &Request) -> (SetCookies, String) {
//!     let seen = request.cookie("seen").is_some();
//!     (SetCookies::new().add(("seen", "yes")), format!("seen before: {seen}\n"))
//! }
//!
//! let client = TestClient::new(app);
//! assert_eq!(client.get("/").send().text(), "seen before: false\n");
//! assert_eq!(client.get("/").send().text(), "seen before: true\n");
//! assert_eq!(client.cookie("seen").as_deref(), Some("yes"));
//! ```
//!
//! What a request logs is in its response's [`log`](TestResponse::log); what an init logs,
//! in a [`CapturedLog`]; [`check`] runs a configuration check as `nginx -t` would:
//!
//! ```
//! use gateway::testing::{check, CapturedLog, LogLine};
//! use gateway::{Config, ConfigError, LogLevel};
//!
//! fn validate(config: &Config) -> Result<(), ConfigError> {
//!     config.parse::<u16>("port").map(|_| ())
//! }
//!
//! fn start(config: &Config) -> Result<impl gateway::Handler, ConfigError> {
//!     config.logger().info("started");
//!     Ok(|_: &gateway::Request| "hi\n")
//! }
//!
//! assert_eq!(
//!     check(validate, &Config::from_pairs([("port", "http")])),
//!     Err("check failed: setting port = \"http\" is invalid: invalid digit found in string".into())
//! );
//!
//! let log = CapturedLog::new();
//! start(&Config::default().with_logger(log.logger())).unwrap();
//! assert_eq!(
//!     log.lines(),
//!     [LogLine { level: LogLevel::Info, message: "started".into() }]
//! );
//! ```

mod cookie_store;

use std::sync::Arc;

use cookie::Cookie;
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::config::{Config, ConfigError};
use crate::handler::Handler;
use crate::local::{collect, LocalRequest};
use crate::logging::{Logger, Target};
use cookie_store::CookieStore;

pub use crate::local::Collected as TestResponse;
pub use crate::logging::LogLine;

/// Runs `check` (what [`app!`](crate::app)'s `check = ...` names) on `config` as nginx does
/// when it reads its configuration: in no worker ([`Config::worker`] is `None`), a panic
/// caught. `Err` holds the message nginx would refuse the configuration with.
pub fn check<C>(check: C, config: &Config) -> Result<(), String>
where
    C: FnOnce(&Config) -> Result<(), ConfigError>,
{
    crate::export::run_check(check, &config.clone().with_worker(None))
}

/// Keeps in memory what is logged through its [`Logger`]s, for a test to look at: give
/// [`CapturedLog::logger`] to the app's init with [`Config::with_logger`]. Clones share the
/// lines.
#[derive(Debug, Clone, Default)]
pub struct CapturedLog(Arc<Mutex<Vec<LogLine>>>);

impl CapturedLog {
    /// An empty log.
    pub fn new() -> Self {
        CapturedLog::default()
    }

    /// A logger whose lines are kept here.
    pub fn logger(&self) -> Logger {
        Logger::new(Target::Capture(self.0.clone()))
    }

    /// The lines logged so far, in order.
    pub fn lines(&self) -> Vec<LogLine> {
        self.0.lock().clone()
    }
}

/// An app under test, and the cookies it set (see [`TestClient::cookie`]).
pub struct TestClient {
    handler: Box<dyn Handler>,
    script_name: String,
    cookies: CookieStore,
}

impl TestClient {
    /// Tests `handler` mounted at the root.
    pub fn new(handler: impl Handler) -> Self {
        TestClient {
            handler: Box::new(handler),
            script_name: String::new(),
            cookies: CookieStore::default(),
        }
    }

    /// The value of the cookie `name` the client keeps (the one of the longest path, if the
    /// app set several); `None` once the app removed it.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.get(name)
    }

    /// Keeps `cookie` as if the app had set it (without a path: for every path), e.g. one
    /// changed by the test; it goes with later requests.
    pub fn set_cookie(&self, cookie: impl Into<Cookie<'static>>) {
        self.cookies.set(cookie.into(), "/");
    }

    /// As if mounted at `script_name` (`location /api/` gives "/api"): requested paths start
    /// with it, and the app sees the rest as its path.
    pub fn mounted_at(mut self, script_name: &str) -> Self {
        self.script_name = script_name.trim_end_matches('/').to_string();
        self
    }

    /// A GET request for `uri`; see [`TestClient::request`].
    pub fn get(&self, uri: &str) -> TestRequest<'_> {
        self.request("GET", uri)
    }

    /// A HEAD request for `uri`. The response keeps the body the app produced, which nginx
    /// would not send.
    pub fn head(&self, uri: &str) -> TestRequest<'_> {
        self.request("HEAD", uri)
    }

    /// A POST request for `uri`.
    pub fn post(&self, uri: &str) -> TestRequest<'_> {
        self.request("POST", uri)
    }

    /// A PUT request for `uri`.
    pub fn put(&self, uri: &str) -> TestRequest<'_> {
        self.request("PUT", uri)
    }

    /// A DELETE request for `uri`.
    pub fn delete(&self, uri: &str) -> TestRequest<'_> {
        self.request("DELETE", uri)
    }

    /// A PATCH request for `uri`.
    pub fn patch(&self, uri: &str) -> TestRequest<'_> {
        self.request("PATCH", uri)
    }

    /// A request with any method; `uri` is the path and query as a client sends them.
    pub fn request(&self, method: &str, uri: &str) -> TestRequest<'_> {
        TestRequest {
            client: self,
            request: LocalRequest {
                method: method.to_string(),
                uri: uri.to_string(),
                script_name: self.script_name.clone(),
                protocol: "HTTP/1.1",
                headers: vec![("Host".into(), b"localhost".to_vec())],
                body: Vec::new(),
                remote: ("127.0.0.1".into(), 40000),
                server: ("localhost".into(), 80),
                https: false,
                runs_on: "test",
            },
        }
    }
}

/// A request being built; [`TestRequest::send`] runs it.
pub struct TestRequest<'c> {
    client: &'c TestClient,
    request: LocalRequest,
}

impl TestRequest<'_> {
    /// Adds a request header, with nginx's rules: a repeated name is joined to the earlier
    /// value (`Host: localhost` is always there), a name containing `_` is dropped.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.request
            .headers
            .push((name.to_string(), value.as_bytes().to_vec()));
        self
    }

    /// Sends the request over HTTPS, as nginx would pass it from a `listen ... ssl` server:
    /// the scheme is `https`, `HTTPS` is `on`, the port 443; `Secure` cookies go with it.
    pub fn https(mut self) -> Self {
        self.request.https = true;
        self.request.server.1 = 443;
        self
    }

    /// Sets the body and its `Content-Length` header, so even an empty body counts as sent
    /// (the app sees `CONTENT_LENGTH`).
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.request.body = body.into();
        self.request.headers.push((
            "Content-Length".into(),
            self.request.body.len().to_string().into_bytes(),
        ));
        self
    }

    /// A JSON body, with its content type.
    pub fn json(self, value: &impl Serialize) -> Self {
        let body = serde_json::to_vec(value).expect("test JSON serializes");
        self.header("Content-Type", "application/json").body(body)
    }

    /// A form body (`application/x-www-form-urlencoded`).
    pub fn form(self, value: &impl Serialize) -> Self {
        let body = serde_urlencoded::to_string(value).expect("test form serializes");
        self.header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
    }

    /// Calls the app; panics in it reach the test, as they should. The response's `log` has
    /// what the app logged for the request, from its stream too.
    /// The client's cookies for the request's path go with it, and the response's
    /// `Set-Cookie` headers update them.
    pub fn send(mut self) -> TestResponse {
        let path = self
            .request
            .uri
            .split_once('?')
            .map_or(self.request.uri.as_str(), |(path, _)| path)
            .to_string();
        if let Some(cookies) = self.client.cookies.header(&path, self.request.https) {
            self.request
                .headers
                .push(("Cookie".into(), cookies.into_bytes()));
        }
        let log = CapturedLog::new();
        let response = self
            .request
            .call(self.client.handler.as_ref(), Target::Capture(log.0.clone()));
        let mut collected = collect(response);
        collected.log = log.lines();
        let set_cookies = collected.headers.get_all(http::header::SET_COOKIE);
        self.client.cookies.update(
            &path,
            set_cookies.iter().filter_map(|value| value.to_str().ok()),
        );
        collected
    }
}

impl TestResponse {
    /// The body as text (lossy for invalid UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// A response header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// The cookies the response sets, one per `Set-Cookie` header, in order (a header that
    /// does not parse is left out).
    ///
    /// ```
    /// use gateway::cookie::Cookie;
    /// use gateway::testing::TestClient;
    /// use gateway::SetCookies;
    ///
    /// let client = TestClient::new(|_: &gateway::Request| {
    ///     (SetCookies::new().add(Cookie::build(("a", "1")).path("/docs")), "")
    /// });
    /// let cookies = client.get("/").send().set_cookies();
    /// assert_eq!(cookies[0].name_value(), ("a", "1"));
    /// assert_eq!(cookies[0].path(), Some("/docs"));
    /// ```
    pub fn set_cookies(&self) -> Vec<Cookie<'static>> {
        self.headers
            .get_all(http::header::SET_COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .filter_map(|value| Cookie::parse(value.to_string()).ok())
            .collect()
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }
}
