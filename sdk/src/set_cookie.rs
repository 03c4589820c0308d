//! Cookies a handler sets: [`SetCookies`] returned alongside the body, one `Set-Cookie` header
//! per cookie, built with the `cookie` crate's [`Cookie`] builder.

use cookie::Cookie;
use http::header::{HeaderMap, HeaderValue, SET_COOKIE};
use http::StatusCode;

use crate::error::Error;
use crate::response::{IntoResponse, Response};

/// Cookies to set (or remove) on the response, returned before the body as axum-extra's
/// `CookieJar` is: `(cookies, body)` or `(status, cookies, body)`. Each cookie becomes its
/// own `Set-Cookie` header.
///
/// ```
/// use gateway::cookie::{Cookie, SameSite};
/// use gateway::{Redirect, Request, SetCookies};
///
/// fn choose_theme(_request: &Request) -> (SetCookies, Redirect) {
///     let theme = Cookie::build(("theme", "dark"))
///         .path("/")
///         .http_only(true)
///         .same_site(SameSite::Lax);
///     (SetCookies::new().add(theme).remove(Cookie::build("banner").path("/")), Redirect::to("/"))
/// }
/// # let response = gateway::testing::TestClient::new(choose_theme).get("/").send();
/// # assert_eq!(response.headers.get_all("set-cookie").iter().count(), 2);
/// ```
///
/// Names and values are sent as given, as [`Request::cookie`](crate::Request::cookie) reads
/// them back: a name must be an HTTP token and a value RFC 6265 cookie octets (no space,
/// `"`, `,`, `;` or `\`; encode other text first, e.g. as base64). A cookie that breaks
/// these rules, or whose path or domain holds a `;` or a control character, is not sent: the
/// response becomes a 500 naming the cookie in the error log.
#[derive(Debug, Clone, Default)]
pub struct SetCookies {
    cookies: Vec<Cookie<'static>>,
}

impl SetCookies {
    /// No cookies yet.
    pub fn new() -> Self {
        SetCookies::default()
    }

    /// Sets `cookie`: a [`Cookie`], its builder, or a `(name, value)` pair.
    // Named as the `add` of the cookie crate's jar and axum-extra's, not `ops::Add`.
    #[allow(clippy::should_implement_trait)]
    pub fn add(mut self, cookie: impl Into<Cookie<'static>>) -> Self {
        self.cookies.push(cookie.into());
        self
    }

    /// Tells the client to drop `cookie`: the same name with an empty value, expired. The
    /// client drops only the cookie of the same path and domain, so give those as it was set.
    pub fn remove(mut self, cookie: impl Into<Cookie<'static>>) -> Self {
        let mut cookie = cookie.into();
        cookie.make_removal();
        self.cookies.push(cookie);
        self
    }

    /// The cookies, in the order they are sent.
    pub fn iter(&self) -> impl Iterator<Item = &Cookie<'static>> {
        self.cookies.iter()
    }

    fn apply(self, mut response: Response) -> Response {
        for cookie in &self.cookies {
            if let Err(error) = append(response.headers_mut(), cookie) {
                return error.into_response();
            }
        }
        response
    }
}

impl<T: IntoResponse> IntoResponse for (SetCookies, T) {
    fn into_response(self) -> Response {
        let (cookies, inner) = self;
        cookies.apply(inner.into_response())
    }
}

impl<T: IntoResponse> IntoResponse for (StatusCode, SetCookies, T) {
    fn into_response(self) -> Response {
        let (status, cookies, inner) = self;
        (status, (cookies, inner)).into_response()
    }
}

/// Appends `cookie` as one more `Set-Cookie` header; the length of the header's value, which
/// browsers limit (4096 bytes).
pub(crate) fn append(headers: &mut HeaderMap, cookie: &Cookie<'_>) -> Result<usize, Error> {
    let value = header_value(cookie)?;
    let length = value.len();
    headers.append(SET_COOKIE, value);
    Ok(length)
}

fn header_value(cookie: &Cookie<'_>) -> Result<HeaderValue, Error> {
    let refuse = |what: &str| {
        Error::internal(format!(
            "cookie \"{}\" not sent: its {what}",
            cookie.name().escape_debug()
        ))
    };
    if cookie.name().is_empty() || !cookie.name().bytes().all(is_token_byte) {
        return Err(refuse("name is not an HTTP token"));
    }
    let value = cookie.value();
    let unquoted = value
        .strip_prefix('"')
        .and_then(|value| value.strip_suffix('"'))
        .unwrap_or(value);
    if !unquoted.bytes().all(is_cookie_octet) {
        return Err(refuse(
            "value holds a byte a cookie cannot carry (space, '\"', ',', ';', '\\', a control or non-ASCII): encode it first",
        ));
    }
    let attribute_ok = |text: Option<&str>| {
        text.is_none_or(|text| !text.bytes().any(|b| b == b';' || b.is_ascii_control()))
    };
    if !attribute_ok(cookie.path()) || !attribute_ok(cookie.domain()) {
        return Err(refuse("path or domain holds ';' or a control character"));
    }
    HeaderValue::try_from(cookie.to_string())
        .map_err(|_| refuse("header is not a valid header value"))
}

/// RFC 9110 `tchar`.
fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// RFC 6265 `cookie-octet`.
fn is_cookie_octet(byte: u8) -> bool {
    matches!(byte, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)
}
