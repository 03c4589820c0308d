//! What answers requests: an app instance.

use crate::request::Request;
use crate::response::{IntoResponse, Response};

/// Answers requests. Plain functions `fn(&Request) -> impl IntoResponse` are handlers; so is
/// any app state that implements this. One instance serves its location in one worker, from
/// the event loop or several threads at once, hence `Send + Sync`.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request. Under nginx, a panic here is caught: it is logged and the client
    /// gets a 500.
    fn handle(&self, request: &Request<'_>) -> Response;
}

impl<F, R> Handler for F
where
    F: Fn(&Request<'_>) -> R + Send + Sync + 'static,
    R: IntoResponse,
{
    fn handle(&self, request: &Request<'_>) -> Response {
        self(request).into_response()
    }
}
