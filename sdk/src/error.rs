//! Errors a handler can return with `?`: client mistakes become 4xx answers, server-side
//! failures a 500 whose reason goes to nginx's error log (with the app and request id), never
//! to the client.

use std::sync::Arc;

use http::StatusCode;

use crate::response::{IntoResponse, Response};

/// Everything that can go wrong while answering a request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The query string does not deserialize into the requested type: a 400.
    #[error("invalid query string: {0}")]
    Query(#[source] serde_urlencoded::de::Error),
    /// A form body does not deserialize into the requested type: a 400.
    #[error("invalid form: {0}")]
    Form(#[source] serde_urlencoded::de::Error),
    /// A JSON body is malformed (a 400) or of the wrong shape for the requested type (a 422).
    #[error("invalid JSON body: {0}")]
    Json(#[source] serde_json::Error),
    /// The body's `Content-Type` is not one the reading method accepts: a 415.
    #[error("the request body must be {expected}")]
    ContentType {
        /// The content type to send, e.g. `application/json`.
        expected: &'static str,
    },
    /// A `multipart/form-data` body over a limit (a 413) or malformed (a 400); see
    /// [`crate::multipart`].
    #[error("{0}")]
    Multipart(#[from] crate::multipart::MultipartError),
    /// Reading the request body failed (from nginx's temporary file): a 500.
    #[error("reading the request body failed: {0}")]
    Body(#[source] std::io::Error),
    /// Rendering a template failed: a 500, logged with the template's name and line.
    #[error("template \"{name}\"{}: {detail}", line.map(|line| format!(" line {line}")).unwrap_or_default())]
    Template {
        /// The template's name; "?" when unknown.
        name: String,
        /// The line of the error, when known.
        line: Option<usize>,
        /// The error's kind and minijinja's detail.
        detail: String,
    },
    /// An answer with this status and message, e.g. `Error::status(StatusCode::NOT_FOUND, "no such user")`.
    #[error("{1}")]
    Status(StatusCode, String),
    /// A server-side failure: a 500, with this message in the error log.
    #[error("{0}")]
    Internal(String),
    /// Something the app needs is unavailable for now (its database is down): a 503, with
    /// this message in the error log; the client is told only to try again later.
    #[error("{0}")]
    Unavailable(String),
}

impl Error {
    /// An answer with `status` and `message` as its body ([`Error::Status`]), 5xx included
    /// (e.g. a 503 while a dependency is down); use [`Error::internal`] for a failure that
    /// should be logged and answered with nginx's 500 page.
    pub fn status(status: StatusCode, message: impl Into<String>) -> Self {
        Error::Status(status, message.into())
    }

    /// A server-side failure ([`Error::Internal`]): the client gets a 500, the message goes to
    /// the error log. Takes any `Display`, so `.map_err(Error::internal)` wraps other errors.
    pub fn internal(message: impl std::fmt::Display) -> Self {
        Error::Internal(message.to_string())
    }

    /// The status the client gets.
    pub fn status_code(&self) -> StatusCode {
        match self {
            Error::Query(_) | Error::Form(_) => StatusCode::BAD_REQUEST,
            Error::Json(error) if error.is_data() => StatusCode::UNPROCESSABLE_ENTITY,
            Error::Json(_) => StatusCode::BAD_REQUEST,
            Error::ContentType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::Multipart(error) => error.status(),
            Error::Status(status, _) => *status,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Body(_) | Error::Template { .. } | Error::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }
}

impl From<minijinja::Error> for Error {
    fn from(error: minijinja::Error) -> Self {
        let detail = match error.detail() {
            Some(detail) => format!("{}: {detail}", error.kind()),
            None => error.kind().to_string(),
        };
        Error::Template {
            name: error.name().unwrap_or("?").to_string(),
            line: error.line(),
            detail,
        }
    }
}

/// Marks a response as a failure of the app: nginx answers with its own 500 page (so
/// `error_page` applies) and logs the message.
#[derive(Debug, Clone)]
pub(crate) struct Failure(pub String);

/// Marks a response whose reason the client does not see but the error log must: written
/// with the request's log when the response leaves the app.
#[derive(Debug, Clone)]
pub(crate) struct LoggedReason(pub String);

/// Writes the [`LoggedReason`] of `response`, if any, to the request's log.
pub(crate) fn log_reason(response: &Response, log: &crate::logging::CallLog) {
    if let Some(LoggedReason(reason)) = response.extensions().get::<LoggedReason>() {
        log.log(crate::LogLevel::Error, reason);
    }
}

/// Marks a response made from an [`Error`], so that the router's error handlers can see which
/// error it was.
#[derive(Debug, Clone)]
struct Raised(Arc<Error>);

/// Takes the error `response` was made from, if it was made from one.
pub(crate) fn take_raised(response: &mut Response) -> Option<Arc<Error>> {
    response
        .extensions_mut()
        .remove::<Raised>()
        .map(|Raised(error)| error)
}

/// `answer`, an app's page for the error `default` was made from, keeping the reason
/// `default` would have logged: a failure answered with the app's own page is still logged.
pub(crate) fn answer_in_place_of(default: &Response, mut answer: Response) -> Response {
    // An error the error handler returns is answered as is, not handled again.
    take_raised(&mut answer);
    let extensions = default.extensions();
    let reason = match extensions.get::<Failure>() {
        Some(Failure(reason)) => Some(reason),
        None => extensions
            .get::<LoggedReason>()
            .map(|LoggedReason(reason)| reason),
    };
    if let Some(reason) = reason {
        answer.extensions_mut().insert(LoggedReason(reason.clone()));
    }
    answer
}

impl Error {
    fn default_response(&self) -> Response {
        let status = self.status_code();
        if let Error::Unavailable(reason) = self {
            let mut response =
                (status, "The service is unavailable; try again later.\n").into_response();
            response
                .extensions_mut()
                .insert(LoggedReason(reason.clone()));
            return response;
        }
        // An app's own `Error::status` is a deliberate answer, whatever its class; the other
        // server-side errors are failures, logged and shown as nginx's 500 page.
        if status.is_server_error() && !matches!(self, Error::Status(..)) {
            let mut response = status.into_response();
            response.extensions_mut().insert(Failure(self.to_string()));
            return response;
        }
        (status, format!("{self}\n")).into_response()
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let mut response = self.default_response();
        response.extensions_mut().insert(Raised(Arc::new(self)));
        response
    }
}
