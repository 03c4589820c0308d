//! A router's middleware: hooks that run before and after its handlers (Flask's
//! `before_request` and `after_request`), and layers around them (axum's
//! `middleware::from_fn`).

use crate::request::Request;
use crate::response::{IntoResponse, Response};

use super::{WithState, WithoutState};

pub(crate) type BoxedBefore<S> = Box<dyn Fn(&Request<'_>, &S) -> Option<Response> + Send + Sync>;
pub(crate) type BoxedAfter<S> = Box<dyn Fn(&Request<'_>, &S, &mut Response) + Send + Sync>;
pub(crate) type BoxedLayer<S> = Box<dyn Fn(&Request<'_>, &S, Next<'_>) -> Response + Send + Sync>;

/// A hook run before a router's handlers, as Flask's `before_request`:
/// `fn(&Request) -> Result<(), R>` or `fn(&Request, &State) -> Result<(), R>`, where `R` is any
/// [`IntoResponse`]. `Ok(())` goes on to the handler; `Err(answer)` answers instead of it (an
/// [`Error`](crate::Error) goes to the router's error handlers).
pub trait BeforeHook<S, Marker>: Send + Sync + 'static {
    /// Boxes the hook so hooks of either signature can be stored together; the router calls
    /// it, apps need not.
    fn into_boxed(self) -> BoxedBefore<S>;
}

impl<F, R, S> BeforeHook<S, WithoutState> for F
where
    F: Fn(&Request<'_>) -> Result<(), R> + Send + Sync + 'static,
    R: IntoResponse,
{
    fn into_boxed(self) -> BoxedBefore<S> {
        Box::new(move |request, _| self(request).err().map(IntoResponse::into_response))
    }
}

impl<F, R, S> BeforeHook<S, WithState> for F
where
    F: Fn(&Request<'_>, &S) -> Result<(), R> + Send + Sync + 'static,
    R: IntoResponse,
{
    fn into_boxed(self) -> BoxedBefore<S> {
        Box::new(move |request, state| self(request, state).err().map(IntoResponse::into_response))
    }
}

/// A hook that sees, and may change, every response of a router, error pages included, as
/// Flask's `after_request`: `fn(&Request, &mut Response)` or
/// `fn(&Request, &State, &mut Response)`.
pub trait AfterHook<S, Marker>: Send + Sync + 'static {
    /// Boxes the hook so hooks of either signature can be stored together; the router calls
    /// it, apps need not.
    fn into_boxed(self) -> BoxedAfter<S>;
}

impl<F, S> AfterHook<S, WithoutState> for F
where
    F: Fn(&Request<'_>, &mut Response) + Send + Sync + 'static,
{
    fn into_boxed(self) -> BoxedAfter<S> {
        Box::new(move |request, _, response| self(request, response))
    }
}

impl<F, S> AfterHook<S, WithState> for F
where
    F: Fn(&Request<'_>, &S, &mut Response) + Send + Sync + 'static,
{
    fn into_boxed(self) -> BoxedAfter<S> {
        Box::new(self)
    }
}

/// A layer around a router's handlers, as axum's `middleware::from_fn`:
/// `fn(&Request, Next) -> R` or `fn(&Request, &State, Next) -> R`, where `R` is any
/// [`IntoResponse`]. Calling [`Next::run`] runs the rest (inner layers, hooks, the handler)
/// and gives its response; not calling it answers instead.
pub trait Layer<S, Marker>: Send + Sync + 'static {
    /// Boxes the layer so layers of either signature can be stored together; the router
    /// calls it, apps need not.
    fn into_boxed(self) -> BoxedLayer<S>;
}

impl<F, R, S> Layer<S, WithoutState> for F
where
    F: Fn(&Request<'_>, Next<'_>) -> R + Send + Sync + 'static,
    R: IntoResponse,
{
    fn into_boxed(self) -> BoxedLayer<S> {
        Box::new(move |request, _, next| self(request, next).into_response())
    }
}

impl<F, R, S> Layer<S, WithState> for F
where
    F: Fn(&Request<'_>, &S, Next<'_>) -> R + Send + Sync + 'static,
    R: IntoResponse,
{
    fn into_boxed(self) -> BoxedLayer<S> {
        Box::new(move |request, state, next| self(request, state, next).into_response())
    }
}

/// What is inside a [`Layer`]: the inner layers, the hooks and the handler.
pub struct Next<'a> {
    rest: &'a (dyn Fn(&Request<'_>) -> Response + 'a),
}

impl Next<'_> {
    /// Runs the rest of the request's handling and gives its response.
    pub fn run(self, request: &Request<'_>) -> Response {
        (self.rest)(request)
    }
}

/// Runs `layers` (the first outermost) around `rest`.
pub(crate) fn run_layers<S>(
    layers: &[BoxedLayer<S>],
    request: &Request<'_>,
    state: &S,
    rest: &dyn Fn(&Request<'_>) -> Response,
) -> Response {
    match layers.split_first() {
        None => rest(request),
        Some((layer, inner)) => {
            let next = |request: &Request<'_>| run_layers(inner, request, state, rest);
            layer(request, state, Next { rest: &next })
        }
    }
}
