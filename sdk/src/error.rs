//! Errors a handler can return with `?`: client mistakes become 4xx answers, server-side
//! failures a 500 whose reason goes to nginx's error log (with the app and request id), never
//! to the client.

use http::StatusCode;

use crate::response::{IntoResponse, Response};

/// Everything that can go wrong while answering a request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid query string: {0}")]
    Query(#[source] serde_urlencoded::de::Error),
    #[error("invalid form: {0}")]
    Form(#[source] serde_urlencoded::de::Error),
    #[error("invalid JSON body: {0}")]
    Json(#[source] serde_json::Error),
    #[error("the request body must be {expected}")]
    ContentType { expected: &'static str },
    #[error("reading the request body failed: {0}")]
    Body(#[source] std::io::Error),
    #[error("template \"{name}\"{}: {detail}", line.map(|line| format!(" line {line}")).unwrap_or_default())]
    Template {
        name: String,
        line: Option<usize>,
        detail: String,
    },
    /// An answer with this status and message, e.g. `Error::status(StatusCode::NOT_FOUND, "no such user")`.
    #[error("{1}")]
    Status(StatusCode, String),
    /// A server-side failure: a 500, with this message in the error log.
    #[error("{0}")]
    Internal(String),
}

impl Error {
    pub fn status(status: StatusCode, message: impl Into<String>) -> Self {
        Error::Status(status, message.into())
    }

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
            Error::Status(status, _) => *status,
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

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status_code();
        if status.is_server_error() {
            let mut response = status.into_response();
            response.extensions_mut().insert(Failure(self.to_string()));
            return response;
        }
        (status, format!("{self}\n")).into_response()
    }
}
