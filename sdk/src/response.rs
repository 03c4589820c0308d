//! What a handler returns, and the conversions that make `"text"`, `(StatusCode, json)` and
//! `Result<_, _>` valid handler results, as in axum.

use http::header::{HeaderValue, CONTENT_TYPE};
use http::StatusCode;

use crate::response_body::Body;

/// A response: the `http` crate's, with a [`Body`].
pub type Response = http::Response<Body>;

/// Anything a handler may return.
pub trait IntoResponse {
    /// Converts `self` into the response to send.
    fn into_response(self) -> Response;
}

impl<B: Into<Body>> IntoResponse for http::Response<B> {
    fn into_response(self) -> Response {
        self.map(Into::into)
    }
}

fn with_content_type(body: Body, content_type: HeaderValue) -> Response {
    let mut response = Response::new(body);
    response.headers_mut().insert(CONTENT_TYPE, content_type);
    response
}

// Checked once, at compile time, rather than byte by byte in every response.
const TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
const OCTET_STREAM: HeaderValue = HeaderValue::from_static("application/octet-stream");
const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");
pub(crate) const TEXT_HTML: HeaderValue = HeaderValue::from_static("text/html; charset=utf-8");

/// The buffer a [`Json`] body is serialized into starts this large.
const JSON_CAPACITY: usize = 1024;

impl IntoResponse for &'static str {
    fn into_response(self) -> Response {
        with_content_type(self.into(), TEXT_PLAIN)
    }
}

impl IntoResponse for String {
    fn into_response(self) -> Response {
        with_content_type(self.into(), TEXT_PLAIN)
    }
}

impl IntoResponse for Vec<u8> {
    fn into_response(self) -> Response {
        with_content_type(self.into(), OCTET_STREAM)
    }
}

impl IntoResponse for &'static [u8] {
    fn into_response(self) -> Response {
        with_content_type(self.into(), OCTET_STREAM)
    }
}

impl IntoResponse for Body {
    fn into_response(self) -> Response {
        Response::new(self)
    }
}

impl IntoResponse for () {
    fn into_response(self) -> Response {
        Response::new(Body::empty())
    }
}

impl IntoResponse for StatusCode {
    fn into_response(self) -> Response {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = self;
        response
    }
}

impl<T: IntoResponse> IntoResponse for (StatusCode, T) {
    fn into_response(self) -> Response {
        let (status, inner) = self;
        let mut response = inner.into_response();
        *response.status_mut() = status;
        response
    }
}

impl<T: IntoResponse, E: IntoResponse> IntoResponse for Result<T, E> {
    fn into_response(self) -> Response {
        match self {
            Ok(value) => value.into_response(),
            Err(error) => error.into_response(),
        }
    }
}

/// A reason phrase for the status line, set as a response extension:
/// `response.extensions_mut().insert(ReasonPhrase::new("Gone Fishing"))`. Without it nginx
/// sends the standard phrase (HTTP/2 and HTTP/3 have none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReasonPhrase(std::borrow::Cow<'static, str>);

impl ReasonPhrase {
    /// A reason phrase; it must not hold CR, LF or another control character but tab, or the
    /// module refuses the response and answers 500.
    pub fn new(phrase: impl Into<std::borrow::Cow<'static, str>>) -> Self {
        ReasonPhrase(phrase.into())
    }

    /// The phrase, as sent in the status line.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A response that has nginx redirect the request internally to `uri` (a path with an
/// optional `?query`, or a named location `@name`): nginx then serves it, for example a
/// protected file from an `internal` location, as with X-Accel-Redirect.
pub fn internal_redirect(uri: impl Into<String>) -> Response {
    Response::new(Body::internal_redirect(uri))
}

/// A JSON response: `Json(value)` for any `serde::Serialize` value.
#[derive(Debug, Clone)]
pub struct Json<T>(pub T);

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        // Room for a typical API answer up front: serde_json's 128 bytes would regrow
        // (and copy) a few times for anything longer.
        let mut bytes = Vec::with_capacity(JSON_CAPACITY);
        match serde_json::to_writer(&mut bytes, &self.0) {
            Ok(()) => with_content_type(bytes.into(), APPLICATION_JSON),
            Err(error) => {
                crate::Error::internal(format!("serializing the JSON response failed: {error}"))
                    .into_response()
            }
        }
    }
}

/// An HTML response.
#[derive(Debug, Clone)]
pub struct Html<T>(pub T);

impl<T: Into<Body>> IntoResponse for Html<T> {
    fn into_response(self) -> Response {
        with_content_type(self.0.into(), TEXT_HTML)
    }
}

/// A redirect for the client to follow (for nginx to serve another URI itself, see
/// [`internal_redirect`]).
#[derive(Debug, Clone)]
pub struct Redirect {
    status: StatusCode,
    location: String,
}

impl Redirect {
    /// 303 See Other: the client fetches `uri` with GET, as after a form post.
    pub fn to(uri: impl Into<String>) -> Self {
        Redirect {
            status: StatusCode::SEE_OTHER,
            location: uri.into(),
        }
    }

    /// 307 Temporary Redirect: the client repeats the same request at `uri`.
    pub fn temporary(uri: impl Into<String>) -> Self {
        Redirect {
            status: StatusCode::TEMPORARY_REDIRECT,
            location: uri.into(),
        }
    }

    /// 308 Permanent Redirect.
    pub fn permanent(uri: impl Into<String>) -> Self {
        Redirect {
            status: StatusCode::PERMANENT_REDIRECT,
            location: uri.into(),
        }
    }
}

impl IntoResponse for Redirect {
    fn into_response(self) -> Response {
        match HeaderValue::try_from(self.location) {
            Ok(location) => {
                let mut response = self.status.into_response();
                response
                    .headers_mut()
                    .insert(http::header::LOCATION, location);
                response
            }
            Err(_) => crate::Error::internal("redirect location is not a valid header value")
                .into_response(),
        }
    }
}
