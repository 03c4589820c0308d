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

mod errors;
mod hooks;
mod scope;

use std::sync::Arc;

use http::header::{HeaderValue, ALLOW};
use http::{Method, StatusCode};

use crate::error::{self, Error};
use crate::handler::Handler;
use crate::request::Request;
use crate::response::{IntoResponse, Response};
use crate::url_for::{Pattern, RouteNames};

pub use errors::ErrorHandler;
pub use hooks::{AfterHook, BeforeHook, Layer, Next};
use scope::Scope;

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
///
/// Around its routes a router may have:
/// - middleware: hooks run [before](Router::before) and [after](Router::after) the handler,
///   and [layers](Router::layer) around them;
/// - error handlers, by [status](Router::on_status) or for [any error](Router::on_error), so
///   the app answers its own 404 and 500 pages;
/// - [nested routers](Router::nest) (Flask's blueprints), with their own middleware and
///   error handlers;
/// - [named routes](Router::route_named), whose URLs [`Request::url_for`] builds.
///
/// ```
/// use gateway::testing::TestClient;
/// use gateway::{get, header, Error, Request, Response, Router, StatusCode};
///
/// fn list(_: &Request) -> &'static str {
///     "[]"
/// }
///
/// fn stamp(_: &Request, response: &mut Response) {
///     response.headers_mut().insert("x-app", header::HeaderValue::from_static("notes"));
/// }
///
/// let api = Router::blueprint("api")
///     .route_named("list", "/notes", get(list))
///     .on_status(StatusCode::NOT_FOUND, |_: &Request| (StatusCode::NOT_FOUND, "{}"));
/// let app = Router::new()
///     .route("/", get(|request: &Request| request.url_for("api.list", &[])))
///     .nest("/api", api)
///     .after(stamp);
///
/// let client = TestClient::new(app);
/// assert_eq!(client.get("/").send().text(), "/api/notes");
/// let missing = client.get("/api/nope").send();
/// assert_eq!((missing.status, missing.text().as_str()), (StatusCode::NOT_FOUND, "{}"));
/// assert_eq!(missing.header("x-app"), Some("notes"));
/// ```
pub struct Router<S = ()> {
    routes: matchit::Router<usize>,
    /// Every pattern in `routes`, with its endpoint, to nest them elsewhere.
    paths: Vec<(String, usize)>,
    endpoints: Vec<Endpoint<S>>,
    /// This router's scope first, then those of the routers nested in it.
    scopes: Vec<Scope<S>>,
    names: Arc<RouteNames>,
    /// What names of this router get in front when nested ("api."), empty if nothing.
    name_prefix: String,
    /// Whether some scope has an error handler, so errors are looked at.
    handles_errors: bool,
    /// `None` for a blueprint, which uses the state of the router it is nested in.
    state: Option<Arc<S>>,
}

/// The handlers of a path, and the scope of the router that has it.
struct Endpoint<S> {
    methods: MethodRouter<S>,
    scope: usize,
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
            state: Some(Arc::new(state)),
            ..Router::blueprint("")
        }
    }

    /// A router to [nest](Router::nest) in another (Flask's blueprint): it has no state of its
    /// own but gets its parent's, and its route names get `name.` in front (`api.list`); an
    /// empty `name` adds nothing. Served alone, it answers every request with a logged 500.
    pub fn blueprint(name: &str) -> Self {
        Router {
            routes: matchit::Router::new(),
            paths: Vec::new(),
            endpoints: Vec::new(),
            scopes: vec![Scope::new(String::new(), None)],
            names: Arc::default(),
            name_prefix: if name.is_empty() {
                String::new()
            } else {
                format!("{name}.")
            },
            handles_errors: false,
            state: None,
        }
    }

    /// Adds a route. Panics on an invalid or conflicting pattern, a programming error that
    /// shows at the app's start (its init), not at a request.
    pub fn route(mut self, path: &str, methods: MethodRouter<S>) -> Self {
        self.endpoints.push(Endpoint { methods, scope: 0 });
        self.insert(path.to_string(), self.endpoints.len() - 1);
        self
    }

    /// Adds a route named `name`, for [`Request::url_for`] (and `url_for` in templates, see
    /// [`Templates::render_for`](crate::Templates::render_for)). Panics, as [`Router::route`]
    /// does, also on a name used twice.
    ///
    /// ```
    /// use gateway::{get, Request, Router};
    ///
    /// fn show(request: &Request) -> String {
    ///     format!("note {}\n", request.param("id").unwrap_or("?"))
    /// }
    ///
    /// let app = Router::new().route_named("note", "/notes/{id}", get(show));
    /// ```
    pub fn route_named(mut self, name: &str, path: &str, methods: MethodRouter<S>) -> Self {
        Arc::make_mut(&mut self.names).insert(name.to_string(), Pattern::parse(path));
        self.route(path, methods)
    }

    fn insert(&mut self, path: String, endpoint: usize) {
        if let Err(error) = self.routes.insert(path.as_str(), endpoint) {
            panic!("route {path:?}: {error}");
        }
        self.paths.push((path, endpoint));
    }

    /// Serves the routes of `router` below `prefix` ("/api": its route "/notes" answers
    /// "/api/notes", its route "/" both "/api" and "/api/"), as Flask's blueprints. Its hooks,
    /// layers and error handlers apply to its routes alone, and to the requests below
    /// `prefix` no route matches; this router's apply to them too, around its. Its handlers
    /// get this router's state (the state of a nested router made with
    /// [`Router::with_state`] is not used). Its names get its [blueprint](Router::blueprint)
    /// name in front. Panics on a prefix that does not start with "/", ends with one or has
    /// parameters, or on a route or name that conflicts.
    ///
    /// ```
    /// use gateway::{get, Request, Router};
    ///
    /// let api = Router::blueprint("api").route_named("list", "/notes", get(|_: &Request| "[]"));
    /// let app = Router::new().nest("/api", api);
    /// ```
    pub fn nest(mut self, prefix: &str, router: Router<S>) -> Self {
        if !prefix.starts_with('/') || prefix.ends_with('/') || prefix.contains(['{', '}']) {
            panic!("nest {prefix:?}: a prefix is a path without parameters, as \"/api\"");
        }
        let Router {
            paths,
            endpoints,
            scopes,
            names,
            name_prefix,
            handles_errors,
            ..
        } = router;
        let first_scope = self.scopes.len();
        self.scopes.extend(scopes.into_iter().map(|mut scope| {
            scope.prefix = format!("{prefix}{}", scope.prefix);
            scope.parent = Some(scope.parent.map_or(0, |parent| parent + first_scope));
            scope
        }));
        let first_endpoint = self.endpoints.len();
        self.endpoints
            .extend(endpoints.into_iter().map(|endpoint| Endpoint {
                methods: endpoint.methods,
                scope: endpoint.scope + first_scope,
            }));
        for (path, endpoint) in paths {
            let endpoint = endpoint + first_endpoint;
            if path == "/" {
                self.insert(prefix.to_string(), endpoint);
            }
            self.insert(format!("{prefix}{path}"), endpoint);
        }
        let names = Arc::try_unwrap(names).unwrap_or_else(|shared| RouteNames::clone(&shared));
        Arc::make_mut(&mut self.names).nest(&name_prefix, prefix, names);
        self.handles_errors |= handles_errors;
        self
    }

    /// Runs `hook` before the handler of each request, as Flask's `before_request`: it returns
    /// `Ok(())` to go on, or `Err(answer)` to answer instead (the handler and later hooks do
    /// not run; the after hooks do). Hooks run in the order they were added, after the
    /// router's layers, and a parent router's before a nested one's. To pass values to the
    /// handler, use [`Request::extensions`].
    ///
    /// ```
    /// use gateway::{get, Redirect, Request, Router};
    ///
    /// #[derive(Clone)]
    /// struct User(String);
    ///
    /// fn load_user(request: &Request) -> Result<(), Redirect> {
    ///     let name = request.cookie("user").ok_or_else(|| Redirect::to("/login"))?;
    ///     request.extensions().insert(User(name.into()));
    ///     Ok(())
    /// }
    ///
    /// fn home(request: &Request) -> String {
    ///     let user = request.extensions().get::<User>().cloned();
    ///     format!("hello {}\n", user.map_or_else(String::new, |user| user.0))
    /// }
    ///
    /// let app = Router::new().route("/", get(home)).before(load_user);
    /// ```
    pub fn before<M, H: BeforeHook<S, M>>(mut self, hook: H) -> Self {
        self.scopes[0].before.push(hook.into_boxed());
        self
    }

    /// Runs `hook` on each response, as Flask's `after_request`: on the handler's, a before
    /// hook's, and error pages (the router's own 404 and 405 included). After hooks run in
    /// the reverse order they were added, a nested router's before its parent's.
    ///
    /// ```
    /// use gateway::{get, header, Request, Response, Router};
    ///
    /// fn no_store(_: &Request, response: &mut Response) {
    ///     let value = header::HeaderValue::from_static("no-store");
    ///     response.headers_mut().insert(header::CACHE_CONTROL, value);
    /// }
    ///
    /// let app = Router::new().route("/", get(|_: &Request| "hi\n")).after(no_store);
    /// ```
    pub fn after<M, H: AfterHook<S, M>>(mut self, hook: H) -> Self {
        self.scopes[0].after.push(hook.into_boxed());
        self
    }

    /// Wraps this router's handling of each request in `layer` (axum's
    /// `middleware::from_fn`): it gets the request and a [`Next`] to run the rest with, and
    /// answers with what that gives, changed or not, or without calling it. The layer added
    /// first is the outermost; layers wrap the router's hooks and a nested router's layers.
    ///
    /// ```
    /// use gateway::{get, LogLevel, Next, Request, Response, Router};
    ///
    /// fn timed(request: &Request, next: Next) -> Response {
    ///     let start = std::time::Instant::now();
    ///     let response = next.run(request);
    ///     request.log(LogLevel::Info, format_args!("took {:?}", start.elapsed()));
    ///     response
    /// }
    ///
    /// let app = Router::new().route("/", get(|_: &Request| "hi\n")).layer(timed);
    /// ```
    pub fn layer<M, L: Layer<S, M>>(mut self, layer: L) -> Self {
        self.scopes[0].layers.push(layer.into_boxed());
        self
    }

    /// Answers errors of `status` with `handler`, as Flask's `errorhandler(404)`: the router's
    /// own 404 and 405 answers, and an [`Error`] of that status returned by a handler, hook or
    /// layer. A response a handler builds with that status itself is not an error and is sent
    /// as it is. A server-side error answered here is still logged; a 405 keeps its `Allow`
    /// header. A nested router's handlers are tried before its parent's; in one router, a
    /// status handler before [`Router::on_error`].
    ///
    /// ```
    /// use gateway::{get, Html, Request, Router, StatusCode};
    ///
    /// fn not_found(_: &Request) -> (StatusCode, Html<&'static str>) {
    ///     (StatusCode::NOT_FOUND, Html("<h1>No such page</h1>"))
    /// }
    ///
    /// let app = Router::new()
    ///     .route("/", get(|_: &Request| "hi\n"))
    ///     .on_status(StatusCode::NOT_FOUND, not_found);
    /// ```
    pub fn on_status<M, H: RouteHandler<S, M>>(mut self, status: StatusCode, handler: H) -> Self {
        let on_status = &mut self.scopes[0].on_status;
        on_status.retain(|(known, _)| *known != status);
        on_status.push((status, handler.into_boxed()));
        self.handles_errors = true;
        self
    }

    /// Answers, with `handler`, each [`Error`] that a handler, hook or layer returns and the
    /// router's own 404 and 405 (as `Error::Status`), unless a status handler
    /// ([`Router::on_status`]) takes it. The handler sees which error it was. A server-side
    /// error answered here is still logged, as it would have been.
    ///
    /// ```
    /// use gateway::{get, Error, Request, Router, StatusCode};
    ///
    /// fn as_json(_: &Request, error: &Error) -> (StatusCode, String) {
    ///     let message = match error {
    ///         Error::Internal(_) => "internal error".to_string(),
    ///         other => other.to_string(),
    ///     };
    ///     (error.status_code(), serde_json::json!({ "error": message }).to_string())
    /// }
    ///
    /// let app = Router::new()
    ///     .route("/", get(|_: &Request| -> Result<&'static str, Error> { Err(Error::internal("db down")) }))
    ///     .on_error(as_json);
    /// ```
    pub fn on_error<M, H: ErrorHandler<S, M>>(mut self, handler: H) -> Self {
        self.scopes[0].on_error = Some(handler.into_boxed());
        self.handles_errors = true;
        self
    }

    /// Answers requests no route matches, instead of the plain 404 (a nested router's, those
    /// below its prefix).
    pub fn fallback<M, H: RouteHandler<S, M>>(mut self, handler: H) -> Self {
        self.scopes[0].fallback = Some(handler.into_boxed());
        self
    }

    /// The state handlers get; `None` for a [blueprint](Router::blueprint).
    pub fn state(&self) -> Option<&S> {
        self.state.as_deref()
    }
}

impl<S: Send + Sync + 'static> Handler for Router<S> {
    fn handle(&self, request: &Request<'_>) -> Response {
        let Some(state) = self.state.as_deref() else {
            return Error::internal("a blueprint serves requests only nested in a Router")
                .into_response();
        };
        let path = match request.path() {
            Some("") => "/",
            Some(path) => path,
            None => return self.not_found(request, state, ""),
        };
        let Ok(matched) = self.routes.at(path) else {
            return self.not_found(request, state, path);
        };
        let endpoint = &self.endpoints[*matched.value];
        let params = matched
            .params
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        let routed = request.routed(params, &self.names);
        match endpoint.methods.find(&routed.method()) {
            Some(handler) => self.serve(endpoint.scope, &routed, state, &|request| {
                handler(request, state)
            }),
            None => self.serve(endpoint.scope, &routed, state, &|_| {
                let mut response =
                    self.error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
                if let Ok(allow) = HeaderValue::try_from(endpoint.methods.allow()) {
                    response.headers_mut().insert(ALLOW, allow);
                }
                response
            }),
        }
    }
}

impl<S> Router<S> {
    /// Runs `inner` inside the scope `index` and those it is nested in.
    fn serve(
        &self,
        index: usize,
        request: &Request<'_>,
        state: &S,
        inner: &dyn Fn(&Request<'_>) -> Response,
    ) -> Response {
        let scope = &self.scopes[index];
        let resolve =
            |request: &Request<'_>, response| self.resolve(index, request, state, response);
        let this = |request: &Request<'_>| scope.run(request, state, inner, &resolve);
        match scope.parent {
            Some(parent) => self.serve(parent, request, state, &this),
            None => this(request),
        }
    }

    /// The app's page for the error `response` was made from, if it is one and a handler of
    /// scope `index` or those around it answers it.
    fn resolve(
        &self,
        index: usize,
        request: &Request<'_>,
        state: &S,
        mut response: Response,
    ) -> Response {
        if !self.handles_errors {
            return response;
        }
        let Some(raised) = error::take_raised(&mut response) else {
            return response;
        };
        let answer = self
            .scope_chain(index)
            .find_map(|scope| scope.answer(request, state, &raised));
        let Some(answer) = answer else {
            return response;
        };
        let mut answer = error::answer_in_place_of(&response, answer);
        if let Some(allow) = response.headers().get(ALLOW) {
            answer
                .headers_mut()
                .entry(ALLOW)
                .or_insert_with(|| allow.clone());
        }
        answer
    }

    /// Scope `index`, then those it is nested in, out to the app's router.
    fn scope_chain(&self, index: usize) -> impl Iterator<Item = &Scope<S>> {
        std::iter::successors(Some(&self.scopes[index]), |scope| {
            scope.parent.map(|parent| &self.scopes[parent])
        })
    }

    /// Answers a request for `path` no route matches: in the innermost scope whose prefix it
    /// is below, with the first fallback from there out, else a 404.
    fn not_found(&self, request: &Request<'_>, state: &S, path: &str) -> Response {
        let index = (1..self.scopes.len())
            .filter(|&index| self.scopes[index].covers(path))
            .max_by_key(|&index| self.scopes[index].prefix.len())
            .unwrap_or(0);
        let routed = request.routed(Vec::new(), &self.names);
        let fallback = self
            .scope_chain(index)
            .find_map(|scope| scope.fallback.as_ref());
        self.serve(index, &routed, state, &|request| match fallback {
            Some(fallback) => fallback(request, state),
            None => self.error(StatusCode::NOT_FOUND, "not found\n"),
        })
    }

    /// The router's own answer with `status` and `message` (ending with a newline): an
    /// [`Error`] when an error handler may take it, else the same page without allocating.
    fn error(&self, status: StatusCode, message: &'static str) -> Response {
        if self.handles_errors {
            Error::status(status, message.trim_end()).into_response()
        } else {
            (status, message).into_response()
        }
    }
}
