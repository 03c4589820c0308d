//! A router's error handlers: pages for errors, by status or for any [`Error`], as Flask's
//! `errorhandler`.

use crate::error::Error;
use crate::request::Request;
use crate::response::{IntoResponse, Response};

use super::{WithState, WithoutState};

pub(crate) type BoxedErrorHandler<S> =
    Box<dyn Fn(&Request<'_>, &S, &Error) -> Response + Send + Sync>;

/// A handler for errors: `fn(&Request, &Error) -> impl IntoResponse` or
/// `fn(&Request, &State, &Error) -> impl IntoResponse`; see [`Router::on_error`](super::Router::on_error).
pub trait ErrorHandler<S, Marker>: Send + Sync + 'static {
    /// Boxes the handler so handlers of either signature can be stored together; the router
    /// calls it, apps need not.
    fn into_boxed(self) -> BoxedErrorHandler<S>;
}

impl<F, R, S> ErrorHandler<S, WithoutState> for F
where
    F: Fn(&Request<'_>, &Error) -> R + Send + Sync + 'static,
    R: IntoResponse,
{
    fn into_boxed(self) -> BoxedErrorHandler<S> {
        Box::new(move |request, _, error| self(request, error).into_response())
    }
}

impl<F, R, S> ErrorHandler<S, WithState> for F
where
    F: Fn(&Request<'_>, &S, &Error) -> R + Send + Sync + 'static,
    R: IntoResponse,
{
    fn into_boxed(self) -> BoxedErrorHandler<S> {
        Box::new(move |request, state, error| self(request, state, error).into_response())
    }
}
