//! What a router adds around its routes, once per router nested in the app: its middleware,
//! error handlers and fallback, and where its routes are.

use http::StatusCode;

use crate::error::Error;
use crate::request::Request;
use crate::response::Response;

use super::errors::BoxedErrorHandler;
use super::hooks::{run_layers, BoxedAfter, BoxedBefore, BoxedLayer};
use super::BoxedHandler;

pub(crate) struct Scope<S> {
    /// The path prefix of the router's routes: "" for the app's router, "/api" for one nested
    /// there.
    pub prefix: String,
    /// The scope of the router this one is nested in.
    pub parent: Option<usize>,
    pub before: Vec<BoxedBefore<S>>,
    pub after: Vec<BoxedAfter<S>>,
    pub layers: Vec<BoxedLayer<S>>,
    pub on_status: Vec<(StatusCode, BoxedHandler<S>)>,
    pub on_error: Option<BoxedErrorHandler<S>>,
    pub fallback: Option<BoxedHandler<S>>,
}

impl<S> Scope<S> {
    pub fn new(prefix: String, parent: Option<usize>) -> Self {
        Scope {
            prefix,
            parent,
            before: Vec::new(),
            after: Vec::new(),
            layers: Vec::new(),
            on_status: Vec::new(),
            on_error: None,
            fallback: None,
        }
    }

    /// Whether a request for `path` (not matched by a route) falls below this scope's prefix.
    pub fn covers(&self, path: &str) -> bool {
        path.strip_prefix(self.prefix.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }

    /// Runs this scope's layers around its before hooks, `inner` and its after hooks;
    /// `resolve` turns what an error became into the app's page for it.
    pub fn run(
        &self,
        request: &Request<'_>,
        state: &S,
        inner: &dyn Fn(&Request<'_>) -> Response,
        resolve: &dyn Fn(&Request<'_>, Response) -> Response,
    ) -> Response {
        if self.layers.is_empty() && self.before.is_empty() && self.after.is_empty() {
            return resolve(request, inner(request));
        }
        let hooked = |request: &Request<'_>| {
            let answer = self.before.iter().find_map(|hook| hook(request, state));
            let mut response = resolve(request, answer.unwrap_or_else(|| inner(request)));
            // As Flask: the hook added first runs last, so before and after hooks nest.
            for hook in self.after.iter().rev() {
                hook(request, state, &mut response);
            }
            response
        };
        resolve(request, run_layers(&self.layers, request, state, &hooked))
    }

    /// This scope's page for `error`, if it has one: by its status first, else for any error.
    pub fn answer(&self, request: &Request<'_>, state: &S, error: &Error) -> Option<Response> {
        let status = error.status_code();
        match self.on_status.iter().find(|(known, _)| *known == status) {
            Some((_, handler)) => Some(handler(request, state)),
            None => self
                .on_error
                .as_ref()
                .map(|handler| handler(request, state, error)),
        }
    }
}
