//! What a handler returns, and the conversions that make `"text"`, `(StatusCode, json)` and
//! `Result<_, _>` valid handler results, as in axum.

use std::borrow::Cow;

use http::header::{HeaderValue, CONTENT_TYPE};
use http::StatusCode;

/// A response: the `http` crate's, with a [`Body`].
pub type Response = http::Response<Body>;

/// A response body held in memory; static bytes are sent without being copied.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Body(Cow<'static, [u8]>);

impl Body {
    pub fn empty() -> Self {
        Body::default()
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&'static str> for Body {
    fn from(text: &'static str) -> Self {
        Body(Cow::Borrowed(text.as_bytes()))
    }
}

impl From<&'static [u8]> for Body {
    fn from(bytes: &'static [u8]) -> Self {
        Body(Cow::Borrowed(bytes))
    }
}

impl From<String> for Body {
    fn from(text: String) -> Self {
        Body(Cow::Owned(text.into_bytes()))
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Self {
        Body(Cow::Owned(bytes))
    }
}

impl From<()> for Body {
    fn from(_: ()) -> Self {
        Body::empty()
    }
}

/// Anything a handler may return.
pub trait IntoResponse {
    fn into_response(self) -> Response;
}

impl<B: Into<Body>> IntoResponse for http::Response<B> {
    fn into_response(self) -> Response {
        self.map(Into::into)
    }
}

fn with_content_type(body: Body, content_type: &'static str) -> Response {
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

const TEXT_PLAIN: &str = "text/plain; charset=utf-8";
const OCTET_STREAM: &str = "application/octet-stream";

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
