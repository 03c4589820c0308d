//! Flask's `session`: values kept for one browser in a cookie the client cannot read or
//! change, encrypted and authenticated with the `cookie` crate's private jar (AES-256-GCM),
//! under a key derived from the location's `secret_key` setting.

use std::sync::Arc;

use cookie::{Cookie, CookieJar, Key, SameSite};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::config::{Config, ConfigError};
use crate::error::Error;
use crate::handler::Handler;
use crate::logging::LogLevel;
use crate::request::Request;
use crate::response::{IntoResponse, Response};
use crate::set_cookie;

/// The setting that holds the key sessions are encrypted with:
/// `gateway_app_param secret_key VALUE;`.
pub const SECRET_KEY_SETTING: &str = "secret_key";

/// The shortest `secret_key` accepted, in bytes: 256 bits, what the key derivation (HKDF)
/// needs. Make one with `openssl rand -hex 32` (64 characters).
pub const MIN_SECRET_KEY_LEN: usize = 32;

/// The most a `Set-Cookie` header of the session may take, in bytes: browsers keep no more
/// per cookie.
pub const MAX_SESSION_COOKIE_LEN: usize = 4096;

/// The session cookie's name, as Flask's.
const DEFAULT_COOKIE_NAME: &str = "session";

/// Sessions for an app, built once at init from the location's `secret_key`, wrapping its
/// handler (a [`Router`](crate::Router) or any [`Handler`]); handlers reach the session with
/// [`Session::of`].
///
/// ```
/// use gateway::{get, Config, ConfigError, Error, Request, Router, Session, Sessions};
///
/// fn visits(request: &Request) -> Result<String, Error> {
///     let session = Session::of(request)?;
///     let visits = session.get::<u32>("visits")?.unwrap_or(0) + 1;
///     session.insert("visits", visits)?;
///     Ok(format!("visit {visits}\n"))
/// }
///
/// fn check(config: &Config) -> Result<(), ConfigError> {
///     Sessions::check(config)
/// }
///
/// fn start(config: &Config) -> Result<impl gateway::Handler, ConfigError> {
///     let sessions = Sessions::from_config(config)?;
///     Ok(sessions.wrap(Router::new().route("/", get(visits))))
/// }
/// gateway::app!(init = start, check = check);
/// ```
///
/// The cookie is `session`, `HttpOnly`, `SameSite=Lax`, with the app's mount point as its
/// path (`SCRIPT_NAME`, "/" at the root) and `Secure` for a request over HTTPS; it lasts
/// until the browser closes. The cookie is read only for a handler that asks for the session,
/// whose response then has `Vary: Cookie`; it is written only when a handler changed the
/// session, and removed when the session was emptied. A cookie that does not decrypt (changed
/// by the client, or made with another key) reads as an empty session, with an `info` line in
/// the log. A session whose cookie would exceed [`MAX_SESSION_COOKIE_LEN`] is not sent: the
/// response becomes a 500 with the reason in the error log.
///
/// The key is the setting's bytes as given; make it random, e.g. with `openssl rand -hex 32`.
/// Changing it ends every session.
#[derive(Clone)]
pub struct Sessions {
    key: Arc<Key>,
    cookie_name: Arc<str>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key stays out of logs.
        f.debug_struct("Sessions")
            .field("cookie_name", &self.cookie_name)
            .finish_non_exhaustive()
    }
}

impl Sessions {
    /// Sessions keyed by the `secret_key` setting; an error saying how to set it when it is
    /// missing or shorter than [`MIN_SECRET_KEY_LEN`] bytes.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let secret = secret_key(config)?;
        Ok(Sessions {
            key: Arc::new(Key::derive_from(secret.as_bytes())),
            cookie_name: DEFAULT_COOKIE_NAME.into(),
        })
    }

    /// Checks the `secret_key` setting as [`Sessions::from_config`] does, for the app's
    /// `check` (run at `nginx -t`): a missing or short key fails the configuration check.
    ///
    /// ```
    /// use gateway::testing::check;
    /// use gateway::{Config, Sessions};
    ///
    /// let message = check(Sessions::check, &Config::default()).unwrap_err();
    /// assert!(message.contains("gateway_app_param secret_key"));
    /// ```
    pub fn check(config: &Config) -> Result<(), ConfigError> {
        secret_key(config).map(|_| ())
    }

    /// The same sessions, in a cookie of another name than `session` (two apps on one host
    /// with the same mount point need distinct names).
    pub fn with_cookie_name(mut self, name: &str) -> Self {
        self.cookie_name = name.into();
        self
    }

    /// `handler` with sessions: the session is read from the request's cookie when a handler
    /// first asks for it ([`Session::of`]), and its cookie written on the response after,
    /// when changed.
    pub fn wrap<H: Handler>(&self, handler: H) -> WithSessions<H> {
        WithSessions {
            sessions: self.clone(),
            inner: handler,
        }
    }

    /// The session the request's cookie holds; empty without one or when it does not decrypt.
    fn load(&self, request: &Request<'_>) -> Map<String, Value> {
        let Some(raw) = request.cookie(&self.cookie_name) else {
            return Map::new();
        };
        let sealed = Cookie::new(self.cookie_name.to_string(), raw.to_string());
        let Some(opened) = CookieJar::new().private(&self.key).decrypt(sealed) else {
            request.log(
                LogLevel::Info,
                "session cookie ignored: it does not decrypt with this secret_key (changed by the client, or made with another key)",
            );
            return Map::new();
        };
        match serde_json::from_str(opened.value()) {
            Ok(values) => values,
            Err(error) => {
                request.log(
                    LogLevel::Info,
                    format_args!("session cookie ignored: it holds no JSON map: {error}"),
                );
                Map::new()
            }
        }
    }

    /// The cookie for `values`, as the response to `request` sets it: sealed, or a removal
    /// when `values` is empty.
    fn cookie(
        &self,
        request: &Request<'_>,
        values: &Map<String, Value>,
    ) -> Result<Cookie<'static>, Error> {
        let path = match request.script_name() {
            "" => "/".to_string(),
            mount => mount.to_string(),
        };
        let mut cookie = if values.is_empty() {
            Cookie::build(self.cookie_name.to_string())
                .removal()
                .build()
        } else {
            let mut jar = CookieJar::new();
            // A map of JSON values always serializes.
            let json = Value::Object(values.clone()).to_string();
            jar.private_mut(&self.key)
                .add(Cookie::new(self.cookie_name.to_string(), json));
            jar.get(&self.cookie_name)
                .cloned()
                .ok_or_else(|| Error::internal("the private jar kept no session cookie"))?
        };
        cookie.set_path(path);
        cookie.set_http_only(true);
        cookie.set_same_site(SameSite::Lax);
        cookie.set_secure(is_https(request));
        Ok(cookie)
    }
}

fn secret_key(config: &Config) -> Result<&str, ConfigError> {
    let secret = config.require(SECRET_KEY_SETTING)?;
    if secret.len() < MIN_SECRET_KEY_LEN {
        return Err(ConfigError::Invalid {
            name: SECRET_KEY_SETTING.to_string(),
            // A secret stays out of logs, even a bad one.
            value: format!("<{} bytes, not shown>", secret.len()),
            reason: format!(
                "a session key needs at least {MIN_SECRET_KEY_LEN} bytes; make one with `openssl rand -hex 32`"
            ),
        });
    }
    Ok(secret)
}

fn is_https(request: &Request<'_>) -> bool {
    let environ = request.environ();
    environ.get("gateway.url_scheme") == Some(b"https") || environ.get("HTTPS") == Some(b"on")
}

/// A handler with sessions, made by [`Sessions::wrap`].
#[derive(Debug)]
pub struct WithSessions<H> {
    sessions: Sessions,
    inner: H,
}

impl<H: Handler> Handler for WithSessions<H> {
    fn handle(&self, request: &Request<'_>) -> Response {
        let session = Session(Arc::new(Mutex::new(State {
            sessions: self.sessions.clone(),
            loaded: false,
            values: Map::new(),
            modified: false,
        })));
        request.extensions().insert(session.clone());
        let mut response = self.inner.handle(request);
        let state = session.0.lock();
        if !state.loaded {
            return response;
        }
        // The answer depends on the cookie: a shared cache must not give it to another user.
        response
            .headers_mut()
            .append(http::header::VARY, http::HeaderValue::from_static("Cookie"));
        if !state.modified
            || (state.values.is_empty() && request.cookie(&self.sessions.cookie_name).is_none())
        {
            return response;
        }
        let written = self
            .sessions
            .cookie(request, &state.values)
            .and_then(|cookie| set_cookie::append(response.headers_mut(), &cookie));
        match written {
            Ok(length) if length > MAX_SESSION_COOKIE_LEN => Error::internal(format!(
                "session not saved: its cookie takes {length} bytes, more than the {MAX_SESSION_COOKIE_LEN} a browser keeps; keep less in the session (an id, with the data in a database)"
            ))
            .into_response(),
            Ok(_) => response,
            Err(error) => error.into_response(),
        }
    }
}

/// The session of one request, as Flask's `session`: typed values by name, kept as a JSON
/// map in the cookie. Clones share the values.
///
/// ```
/// use gateway::{Error, Redirect, Request, Session};
///
/// fn log_in(request: &Request) -> Result<Redirect, Error> {
///     let session = Session::of(request)?;
///     session.insert("user", "alice")?;
///     Ok(Redirect::to("/"))
/// }
///
/// fn home(request: &Request) -> Result<String, Error> {
///     let user: Option<String> = Session::of(request)?.get("user")?;
///     Ok(format!("hello {}\n", user.as_deref().unwrap_or("stranger")))
/// }
///
/// fn log_out(request: &Request) -> Result<Redirect, Error> {
///     Session::of(request)?.clear();
///     Ok(Redirect::to("/"))
/// }
/// ```
#[derive(Clone)]
pub struct Session(Arc<Mutex<State>>);

struct State {
    sessions: Sessions,
    /// Whether a handler asked for the session, which is then read from the cookie.
    loaded: bool,
    values: Map<String, Value>,
    modified: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.0.lock().values.iter()).finish()
    }
}

impl Session {
    /// The session of `request`; an error (a 500, logged) when the handler is not wrapped by
    /// [`Sessions::wrap`].
    pub fn of(request: &Request<'_>) -> Result<Session, Error> {
        let session = request
            .extensions()
            .get::<Session>()
            .cloned()
            .ok_or_else(|| {
                Error::internal(
                    "no session for this request: wrap the app's handler with Sessions::wrap",
                )
            })?;
        let mut state = session.0.lock();
        if !state.loaded {
            state.values = state.sessions.load(request);
            state.loaded = true;
        }
        drop(state);
        Ok(session)
    }

    /// The value of `key` as `T`; `None` when absent, an error (a 500, logged) when the value
    /// is not a `T`.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        let state = self.0.lock();
        state
            .values
            .get(key)
            .map(|value| typed(key, value.clone()))
            .transpose()
    }

    /// Sets `key` to `value` (any `serde::Serialize` value).
    pub fn insert(&self, key: impl Into<String>, value: impl Serialize) -> Result<(), Error> {
        let key = key.into();
        let value = serde_json::to_value(value).map_err(|error| {
            Error::internal(format!(
                "session value \"{key}\" does not serialize: {error}"
            ))
        })?;
        let mut state = self.0.lock();
        state.values.insert(key, value);
        state.modified = true;
        Ok(())
    }

    /// Removes `key` and returns its value as `T`; `None` when absent.
    pub fn take<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        let mut state = self.0.lock();
        let Some(value) = state.values.remove(key) else {
            return Ok(None);
        };
        state.modified = true;
        typed(key, value).map(Some)
    }

    /// Removes `key`; whether it was there.
    pub fn remove(&self, key: &str) -> bool {
        let mut state = self.0.lock();
        let removed = state.values.remove(key).is_some();
        state.modified |= removed;
        removed
    }

    /// Whether `key` has a value.
    pub fn contains_key(&self, key: &str) -> bool {
        self.0.lock().values.contains_key(key)
    }

    /// Whether the session holds nothing.
    pub fn is_empty(&self) -> bool {
        self.0.lock().values.is_empty()
    }

    /// Empties the session: the client is told to drop its cookie.
    pub fn clear(&self) {
        let mut state = self.0.lock();
        state.values.clear();
        state.modified = true;
    }
}

fn typed<T: DeserializeOwned>(key: &str, value: Value) -> Result<T, Error> {
    serde_json::from_value(value).map_err(|error| {
        Error::internal(format!(
            "session value \"{key}\" is not a {}: {error}",
            std::any::type_name::<T>()
        ))
    })
}
