//! The request as an app sees it: the gateway environ, with typed views on top.

use crate::abi;

/// The gateway environ: CGI/WSGI-style names (`REQUEST_METHOD`, `PATH_INFO`, `HTTP_HOST`, ...)
/// with their values as nginx received them. Values are bytes: a path or a header that is not
/// UTF-8 reaches the app unchanged through [`Environ::get`].
#[derive(Clone, Copy)]
pub struct Environ<'a> {
    pairs: &'a [abi::Pair],
}

impl<'a> Environ<'a> {
    pub(crate) fn new(pairs: &'a [abi::Pair]) -> Self {
        Environ { pairs }
    }

    /// The raw value of `name`, if the environ has it.
    pub fn get(&self, name: &str) -> Option<&'a [u8]> {
        self.iter()
            .find(|(key, _)| *key == name.as_bytes())
            .map(|(_, value)| value)
    }

    /// The value of `name` as text; `None` when absent or not valid UTF-8 (see [`Environ::get`]).
    pub fn get_str(&self, name: &str) -> Option<&'a str> {
        self.get(name)
            .and_then(|value| std::str::from_utf8(value).ok())
    }

    /// Every entry, in the order the module built them.
    pub fn iter(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        self.pairs.iter().map(|pair| {
            // SAFETY: the module keeps every environ byte alive and unchanged until the call
            // is completed, which happens only after the handler that borrows `self` returned.
            unsafe { (pair.name.as_slice(), pair.value.as_slice()) }
        })
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

impl std::fmt::Debug for Environ<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(
                self.iter()
                    .map(|(k, v)| (String::from_utf8_lossy(k), String::from_utf8_lossy(v))),
            )
            .finish()
    }
}

/// One HTTP request handed to the app by nginx.
#[derive(Debug)]
pub struct Request<'a> {
    environ: Environ<'a>,
}

impl<'a> Request<'a> {
    pub(crate) fn new(environ: Environ<'a>) -> Self {
        Request { environ }
    }

    /// The whole environ.
    pub fn environ(&self) -> Environ<'a> {
        self.environ
    }

    /// The request method; a method nginx accepted but `http` cannot represent reads as an
    /// extension method of the same name.
    pub fn method(&self) -> http::Method {
        let raw = self.environ.get("REQUEST_METHOD").unwrap_or(b"GET");
        http::Method::from_bytes(raw).unwrap_or(http::Method::GET)
    }

    /// Where the app is mounted (`SCRIPT_NAME`): "" at the root, else a prefix such as "/api".
    pub fn script_name(&self) -> &'a str {
        self.environ.get_str("SCRIPT_NAME").unwrap_or("")
    }

    /// The decoded path below the mount point (`PATH_INFO`): "" or starting with "/".
    /// `None` when it is not valid UTF-8; [`Environ::get`] has the raw bytes.
    pub fn path(&self) -> Option<&'a str> {
        self.environ.get_str("PATH_INFO")
    }

    /// The raw query string, without "?".
    pub fn query_string(&self) -> &'a [u8] {
        self.environ.get("QUERY_STRING").unwrap_or(b"")
    }

    /// A request header by name, case-insensitively (`"user-agent"` reads `HTTP_USER_AGENT`).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.environ.iter().find_map(|(key, value)| {
            let cgi_name = match key.strip_prefix(b"HTTP_") {
                Some(rest) => rest,
                None if key == b"CONTENT_TYPE" || key == b"CONTENT_LENGTH" => key,
                None => return None,
            };
            let same = cgi_name.len() == name.len()
                && cgi_name.iter().zip(name.bytes()).all(|(&c, n)| {
                    let n = if n == b'-' {
                        b'_'
                    } else {
                        n.to_ascii_uppercase()
                    };
                    c == n
                });
            same.then_some(value)
        })
    }
}
