//! Routing by path and method, below the app's mount point (SCRIPT_NAME), so the same app
//! works at `/` and at `/api/`.
//!
//! ```
//! use gateway::{get, Json, Request, Router};
//!
//! struct Counter(std::sync::atomic::AtomicU64);
//!
//! fn index(_: &Request) -> &'static str {
//!     "index\n"
//! }
//!
//! fn user(request: &Request, counter: &Counter) -> String {
//!     let seen = counter.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
//!     format!("user {} (request #{seen})\n", request.param("id").unwrap_or("?"))
//! }
//!
//! let app = Router::with_state(Counter(Default::default()))
//!     .route("/", get(index))
//!     .route("/users/{id}", get(user).post(user));
//! ```

use std::sync::Arc;

use http::header::{HeaderValue, ALLOW};
use http::{Method, StatusCode};

use crate::handler::Handler;
use crate::request::Request;
use crate::response::{IntoResponse, Response};

type BoxedHandler<S> = Box<dyn Fn(&Request<'_>, &S) -> Response + Send + Sync>;

/// Marks route handlers that take only the request.
pub struct WithoutState;
/// Marks route handlers that take the request and the router's state.
pub struct WithState;

/// A function that can handle a route: `fn(&Request) -> impl IntoResponse`, or
/// `fn(&Request, &State) -> impl IntoResponse` for a router with state.
pub trait RouteHandler<S, Marker>: Send + Sync + 'static {
    /// Boxes the handler as a `Fn(&Request, &S) -> Response`, so handlers of either signature
    /// can be stored together; the router calls it, apps need not.
    fn into_boxed(self) -> BoxedHandler<S>;
}

impl<F, R, S> RouteHandler<S, WithoutState> for F
where
    F: Fn(&Request<'_>) -> R + Send + Sync + 'static,
    R: IntoResponse,
{
    fn into_boxed(self) -> BoxedHandler<S> {
        Box::new(move |request, _| self(request).into_response())
    }
}

impl<F, R, S> RouteHandler<S, WithState> for F
where
    F: Fn(&Request<'_>, &S) -> R + Send + Sync + 'static,
    R: IntoResponse,
{
    fn into_boxed(self) -> BoxedHandler<S> {
        Box::new(move |request, state| self(request, state).into_response())
    }
}

/// The handlers of one path, by method.
pub struct MethodRouter<S> {
    handlers: Vec<(Method, BoxedHandler<S>)>,
}

macro_rules! method_routes {
    ($($function:ident $method:ident),*) => {
        $(
            #[doc = concat!("A route answering ", stringify!($method), " with `handler`.")]
            pub fn $function<S, M, H: RouteHandler<S, M>>(handler: H) -> MethodRouter<S> {
                MethodRouter { handlers: Vec::new() }.on(Method::$method, handler)
            }
        )*

        impl<S> MethodRouter<S> {
            $(
                #[doc = concat!("Also answers ", stringify!($method), " with `handler`.")]
                pub fn $function<M, H: RouteHandler<S, M>>(self, handler: H) -> Self {
                    self.on(Method::$method, handler)
                }
            )*
        }
    };
}

method_routes!(get GET, post POST, put PUT, delete DELETE, patch PATCH, options OPTIONS);

impl<S> MethodRouter<S> {
    /// Answers `method` with `handler`.
    pub fn on<M, H: RouteHandler<S, M>>(mut self, method: Method, handler: H) -> Self {
        self.handlers.retain(|(known, _)| *known != method);
        self.handlers.push((method, handler.into_boxed()));
        self
    }

    fn find(&self, method: &Method) -> Option<&BoxedHandler<S>> {
        let found = |wanted: &Method| {
            self.handlers
                .iter()
                .find(|(known, _)| known == wanted)
                .map(|(_, handler)| handler)
        };
        // nginx drops the body of a HEAD response itself, so GET can answer HEAD.
        found(method).or_else(|| {
            (*method == Method::HEAD)
                .then(|| found(&Method::GET))
                .flatten()
        })
    }

    fn allow(&self) -> String {
        let mut methods: Vec<&str> = self
            .handlers
            .iter()
            .map(|(method, _)| method.as_str())
            .collect();
        if methods.contains(&"GET") && !methods.contains(&"HEAD") {
            methods.push("HEAD");
        }
        methods.join(", ")
    }
}

/// Routes requests by the path below the mount point (`PATH_INFO`, with `/` for an empty one)
/// and by method: 404 when no path matches, 405 with an `Allow` header when the path matches
/// but the method does not. Paths are matchit patterns: `/users/{id}`, `/files/{*rest}`.
pub struct Router<S = ()> {
    routes: matchit::Router<usize>,
    methods: Vec<MethodRouter<S>>,
    state: Arc<S>,
    fallback: Option<BoxedHandler<S>>,
}

impl Router<()> {
    /// A router without state; see [`Router::with_state`] for one with.
    pub fn new() -> Self {
        Router::with_state(())
    }
}

impl Default for Router<()> {
    fn default() -> Self {
        Router::new()
    }
}

impl<S> Router<S> {
    /// A router whose handlers may take `&S`: state shared by every request of the app
    /// instance (use atomics or `parking_lot` locks inside it for what changes).
    pub fn with_state(state: S) -> Self {
        Router {
            routes: matchit::Router::new(),
            methods: Vec::new(),
            state: Arc::new(state),
            fallback: None,
        }
    }

    /// Adds a route. Panics on an invalid or conflicting pattern, a programming error that
    /// shows at the app's start (its init), not at a request.
    pub fn route(mut self, path: &str, methods: MethodRouter<S>) -> Self {
        if let Err(error) = self.routes.insert(path, self.methods.len()) {
            panic!("route {path:?}: {error}");
        }
        self.methods.push(methods);
        self
    }

    /// Answers requests no route matches, instead of the plain 404.
    pub fn fallback<M, H: RouteHandler<S, M>>(mut self, handler: H) -> Self {
        self.fallback = Some(handler.into_boxed());
        self
    }

    /// The state handlers get.
    pub fn state(&self) -> &S {
        &self.state
    }
}

impl<S: Send + Sync + 'static> Handler for Router<S> {
    fn handle(&self, request: &Request<'_>) -> Response {
        let path = match request.path() {
            Some("") => "/",
            Some(path) => path,
            None => return self.not_found(request),
        };
        let Ok(matched) = self.routes.at(path) else {
            return self.not_found(request);
        };
        let methods = &self.methods[*matched.value];
        let Some(handler) = methods.find(&request.method()) else {
            let mut response =
                (StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n").into_response();
            if let Ok(allow) = HeaderValue::try_from(methods.allow()) {
                response.headers_mut().insert(ALLOW, allow);
            }
            return response;
        };
        let params = matched
            .params
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        handler(&request.with_params(params), &self.state)
    }
}

impl<S> Router<S> {
    fn not_found(&self, request: &Request<'_>) -> Response {
        match &self.fallback {
            Some(fallback) => fallback(request, &self.state),
            None => (StatusCode::NOT_FOUND, "not found\n").into_response(),
        }
    }
}
