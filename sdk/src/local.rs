//! Running an app without nginx, for tests and the development server: the environ nginx
//! would build, and the response nginx would send, done in plain Rust.

use std::io::Read;

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::abi;
use crate::error::{self, Failure};
use crate::handler::Handler;
use crate::logging::{CallLog, LogLine, Target};
use crate::request::{Environ, Extensions, Request};
use crate::response::Response;
use crate::response_body::Kind;
use crate::wire::{self, HeaderEntry};

/// A request as a client sent it.
pub(crate) struct LocalRequest {
    pub method: String,
    /// Path and query, as sent (percent-encoded).
    pub uri: String,
    pub script_name: String,
    pub protocol: &'static str,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    pub remote: (String, u16),
    pub server: (String, u16),
    /// Whether it came over TLS: the scheme is `https` and `HTTPS` is `on`.
    pub https: bool,
    pub runs_on: &'static str,
}

impl LocalRequest {
    /// The environ of this request, with the same keys and rules as the module's.
    fn environ(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let (path, query) = self.uri.split_once('?').unwrap_or((&self.uri, ""));
        let decoded: Vec<u8> = percent_encoding::percent_decode_str(path).collect();
        let (script_name, path_info) =
            wire::split_mount_point(&decoded, self.script_name.trim_end_matches('/').as_bytes());
        let (script_name, path_info) = (script_name.to_vec(), path_info.to_vec());
        let text = |value: &str| value.as_bytes().to_vec();
        let scheme = if self.https { "https" } else { "http" };
        let mut environ = vec![
            (text("REQUEST_METHOD"), text(&self.method)),
            (text("REQUEST_URI"), text(&self.uri)),
            (text("SCRIPT_NAME"), script_name),
            (text("PATH_INFO"), path_info),
            (text("QUERY_STRING"), text(query)),
            (text("SERVER_PROTOCOL"), text(self.protocol)),
            (text("SERVER_NAME"), text(&self.server.0)),
            (text("SERVER_PORT"), text(&self.server.1.to_string())),
            (text("REMOTE_ADDR"), text(&self.remote.0)),
            (text("REMOTE_PORT"), text(&self.remote.1.to_string())),
            (text("REQUEST_SCHEME"), text(scheme)),
            (text("gateway.url_scheme"), text(scheme)),
            (text("gateway.version"), text(crate::SDK_VERSION)),
            (text("gateway.runs_on"), text(self.runs_on)),
        ];
        if self.https {
            environ.push((text("HTTPS"), text("on")));
        }
        let has_body = !self.body.is_empty()
            || self.headers.iter().any(|(name, _)| {
                name.eq_ignore_ascii_case("content-length")
                    || name.eq_ignore_ascii_case("transfer-encoding")
            });
        if has_body {
            environ.push((text("CONTENT_LENGTH"), text(&self.body.len().to_string())));
        }
        let first_header = environ.len();
        for (name, value) in &self.headers {
            let key = match wire::header_entry(name.as_bytes()) {
                HeaderEntry::ContentType => text("CONTENT_TYPE"),
                HeaderEntry::ContentLength | HeaderEntry::Underscored => continue,
                HeaderEntry::Http => {
                    let mut key = vec![0; wire::cgi_name_len(name.as_bytes())];
                    wire::write_cgi_name(name.as_bytes(), &mut key);
                    key
                }
            };
            match environ[first_header..]
                .iter_mut()
                .find(|(known, _)| *known == key)
            {
                Some((_, joined)) => {
                    joined.extend_from_slice(wire::join_separator(&key));
                    joined.extend_from_slice(value);
                }
                None => environ.push((key, value.clone())),
            }
        }
        environ
    }

    /// Calls `handler` with this request, as the module would; the request's log lines go to
    /// `log`.
    pub fn call(&self, handler: &dyn Handler, log: Target) -> Response {
        let environ = self.environ();
        let pairs: Vec<abi::Pair> = environ
            .iter()
            .map(|(name, value)| abi::Pair {
                name: abi::Bytes::new(name),
                value: abi::Bytes::new(value),
            })
            .collect();
        let body = [abi::BodySegment {
            fd: -1,
            offset: 0,
            len: self.body.len() as u64,
            data: self.body.as_ptr(),
        }];
        let segments: &[abi::BodySegment] = if self.body.is_empty() { &[] } else { &body };
        let log = CallLog::new(log);
        let extensions = Extensions::default();
        let request = Request::new(Environ::new(&pairs), segments, &log, &extensions);
        let response = handler.handle(&request);
        error::log_reason(&response, &log);
        response
    }
}

/// A response as nginx would send it, in memory.
#[derive(Debug)]
pub struct Collected {
    /// The status the client gets: 500 for a failure, 404 or 403 for a file that cannot be
    /// read, else the app's.
    pub status: StatusCode,
    /// The app's headers, plus a `Content-Length` for `body` when the app set none (except for
    /// a failure).
    pub headers: HeaderMap,
    /// The whole body: the bytes, a stream read to its end or its error, or the file's
    /// contents; empty for a failure or an internal redirect.
    pub body: Vec<u8>,
    /// Set when the app asked nginx for an internal redirect: the target.
    pub internal_redirect: Option<String>,
    /// Set when the app failed (an error that becomes nginx's 500 page): the logged message.
    pub failure: Option<String>,
    /// Set when a streamed body ended with an error: the message.
    pub stream_error: Option<String>,
    /// What the app logged for the request ([`Request::log`], [`Request::logger`]), its
    /// stream included, in order; filled by [`TestClient`](crate::testing::TestClient) only.
    pub log: Vec<LogLine>,
}

/// Turns an app's response into what the client would get: streams read to the end, files
/// read, failures as 500s.
pub(crate) fn collect(response: Response) -> Collected {
    let (parts, body) = response.into_parts();
    let mut collected = Collected {
        status: parts.status,
        headers: parts.headers,
        body: Vec::new(),
        internal_redirect: None,
        failure: parts
            .extensions
            .get::<Failure>()
            .map(|Failure(message)| message.clone()),
        stream_error: None,
        log: Vec::new(),
    };
    if collected.failure.is_some() {
        collected.status = StatusCode::INTERNAL_SERVER_ERROR;
        return collected;
    }
    match body.0 {
        Kind::Bytes(bytes) => collected.body = bytes.into_owned(),
        Kind::Stream(chunks) => {
            for chunk in chunks {
                match chunk {
                    Ok(chunk) => collected.body.extend_from_slice(&chunk.data),
                    Err(error) => {
                        collected.stream_error = Some(error);
                        break;
                    }
                }
            }
        }
        Kind::File(path) => match read_file(&path, &collected.headers) {
            Ok(contents) => collected.body = contents,
            Err(error) => {
                collected.status = match error.kind() {
                    std::io::ErrorKind::NotFound => StatusCode::NOT_FOUND,
                    std::io::ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
                    _ => StatusCode::INTERNAL_SERVER_ERROR,
                };
                collected.failure = Some(format!("answered with file {}: {error}", path.display()));
            }
        },
        Kind::Redirect(target) => collected.internal_redirect = Some(target),
    }
    if let Ok(length) = HeaderValue::try_from(collected.body.len().to_string()) {
        if !collected.headers.contains_key(http::header::CONTENT_LENGTH) {
            collected
                .headers
                .insert(HeaderName::from_static("content-length"), length);
        }
    }
    collected
}

/// A file body as the module sends it: the whole file, or as many bytes from its start as
/// the app's `Content-Length` says (ABI 1.2), which must not go past its end.
fn read_file(path: &std::path::Path, headers: &HeaderMap) -> std::io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .map(|value| {
            value
                .to_str()
                .ok()
                .and_then(|text| text.parse::<u64>().ok())
                .ok_or_else(|| std::io::Error::other("its Content-Length is not a number"))
        })
        .transpose()?;
    let len = match declared {
        None => size,
        Some(declared) if declared <= size => declared,
        Some(declared) => {
            return Err(std::io::Error::other(format!(
                "{size} bytes and a Content-Length of {declared}, past its end"
            )))
        }
    };
    let mut contents = Vec::new();
    file.take(len).read_to_end(&mut contents)?;
    Ok(contents)
}
