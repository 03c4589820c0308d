//! The cookies a [`TestClient`](super::TestClient) keeps between requests, as a browser
//! would for one host: set and removed by `Set-Cookie`, sent back under their path, `Secure`
//! ones over HTTPS only.

use cookie::time::OffsetDateTime;
use cookie::Cookie;
use parking_lot::Mutex;

#[derive(Debug, Default)]
pub(super) struct CookieStore(Mutex<Vec<Cookie<'static>>>);

impl CookieStore {
    /// The `Cookie` header for a request for `path`, if any cookie goes with it.
    pub fn header(&self, path: &str, https: bool) -> Option<String> {
        let mut cookies: Vec<_> = self
            .0
            .lock()
            .iter()
            .filter(|cookie| path_matches(path, cookie.path().unwrap_or("/")))
            .filter(|cookie| https || !cookie.secure().unwrap_or(false))
            .cloned()
            .collect();
        // RFC 6265 5.4: longer paths first.
        cookies.sort_by_key(|cookie| std::cmp::Reverse(cookie.path().map_or(0, str::len)));
        let pairs: Vec<String> = cookies
            .iter()
            .map(|cookie| cookie.stripped().to_string())
            .collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }

    /// Takes in the `Set-Cookie` headers of a response to a request for `path`; headers that
    /// do not parse are skipped, as a browser skips them.
    pub fn update<'h>(&self, path: &str, set_cookies: impl Iterator<Item = &'h str>) {
        for header in set_cookies {
            if let Ok(cookie) = Cookie::parse(header.to_string()) {
                self.set(cookie, path);
            }
        }
    }

    /// Keeps `cookie` as set by a response to `path` (whose directory is the default path),
    /// or drops it when it has expired.
    pub fn set(&self, mut cookie: Cookie<'static>, path: &str) {
        if cookie.path().is_none_or(|path| !path.starts_with('/')) {
            cookie.set_path(default_path(path).to_string());
        }
        let mut cookies = self.0.lock();
        cookies.retain(|kept| kept.name() != cookie.name() || kept.path() != cookie.path());
        let expired = cookie
            .max_age()
            .is_some_and(|age| age.is_zero() || age.is_negative())
            || cookie
                .expires_datetime()
                .is_some_and(|expires| expires <= OffsetDateTime::now_utc());
        if !expired {
            cookies.push(cookie);
        }
    }

    /// The value of the kept cookie `name` (of the longest path, when several).
    pub fn get(&self, name: &str) -> Option<String> {
        self.0
            .lock()
            .iter()
            .filter(|cookie| cookie.name() == name)
            .max_by_key(|cookie| cookie.path().map_or(0, str::len))
            .map(|cookie| cookie.value().to_string())
    }
}

/// RFC 6265 5.1.4: `cookie_path` covers `path` itself and the paths below it.
fn path_matches(path: &str, cookie_path: &str) -> bool {
    match path.strip_prefix(cookie_path) {
        Some(rest) => rest.is_empty() || cookie_path.ends_with('/') || rest.starts_with('/'),
        None => false,
    }
}

/// RFC 6265 5.1.4: the directory of the request path, for a cookie set without a path.
fn default_path(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(slash) => &path[..slash],
    }
}
