//! Files from a directory, sent by nginx itself ([`Body::file`]: sendfile, ranges, `ETag`,
//! conditional requests), with any path leading outside the directory refused.

use std::path::{Path, PathBuf};

use http::header::{HeaderValue, CONTENT_TYPE};
use http::StatusCode;

use crate::logging::LogLevel;
use crate::request::Request;
use crate::response::{IntoResponse, Response};
use crate::response_body::Body;
use crate::router::{RouteHandler, WithoutState};

/// Serves the files under one directory, as a route handler whose wildcard names the file:
///
/// ```
/// use gateway::{get, Router, StaticFiles};
///
/// let app = Router::new().route("/static/{*path}", get(StaticFiles::new("/srv/app/static")));
/// ```
///
/// `GET /static/css/site.css` sends `/srv/app/static/css/site.css` with `Content-Type:
/// text/css` (guessed from the extension; `application/octet-stream` when unknown). nginx sends
/// the file, with `Last-Modified` and `ETag`, answering `Range` (206) and `If-None-Match` /
/// `If-Modified-Since` (304) itself; HEAD gets the headers alone.
///
/// Answered 404, never with a file outside the directory: a missing file, a directory (no
/// index file is looked for), a path with a `..` or `.` segment, a leading `/`, a NUL or a
/// backslash, and a path whose symbolic links lead outside the directory. The path is
/// percent-decoded once, by nginx, and never again: `%2e%2e` sent as `%252e%252e` names a
/// file called `%2e%2e`. The directory is resolved at each request, so it may be a symbolic
/// link switched by a deployment.
#[derive(Debug, Clone)]
pub struct StaticFiles {
    root: PathBuf,
    param: String,
}

impl StaticFiles {
    /// Serves the files under `root` (best absolute: nginx workers run from nginx's prefix),
    /// named by the route's `{*path}` wildcard.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        StaticFiles {
            root: root.into(),
            param: "path".to_string(),
        }
    }

    /// Reads the file's path from the route parameter `name` instead of `path`:
    /// `.route("/assets/{*file}", get(StaticFiles::new(dir).param("file")))`.
    pub fn param(self, name: impl Into<String>) -> Self {
        StaticFiles {
            param: name.into(),
            ..self
        }
    }

    /// Answers `request` with the file at `path` below the directory, or 404; for a handler
    /// that picks the file itself:
    ///
    /// ```
    /// use gateway::{Request, Response, StaticFiles};
    ///
    /// fn avatar(request: &Request) -> Response {
    ///     let user = request.param("user").unwrap_or("");
    ///     StaticFiles::new("/srv/avatars").serve(request, &format!("{user}.png"))
    /// }
    /// ```
    pub fn serve(&self, request: &Request<'_>, path: &str) -> Response {
        match self.resolve(path) {
            Ok(file) => {
                let content_type = mime_guess::from_path(path).first_or_octet_stream();
                let mut response = Body::file(file).into_response();
                if let Ok(value) = HeaderValue::try_from(content_type.as_ref()) {
                    response.headers_mut().insert(CONTENT_TYPE, value);
                }
                response
            }
            Err(Refused::NoDirectory(error)) => {
                request.log(
                    LogLevel::Error,
                    format_args!("static files directory {}: {error}", self.root.display()),
                );
                not_found()
            }
            Err(Refused::NotServed) => not_found(),
        }
    }

    /// The file `path` names below the directory, with every symbolic link resolved, if it is
    /// a regular file inside the directory.
    fn resolve(&self, path: &str) -> Result<PathBuf, Refused> {
        if path.starts_with('/') || path.contains(['\0', '\\']) {
            return Err(Refused::NotServed);
        }
        let mut relative = PathBuf::new();
        for segment in path.split('/').filter(|segment| !segment.is_empty()) {
            if segment == "." || segment == ".." {
                return Err(Refused::NotServed);
            }
            relative.push(segment);
        }
        let root = self.root.canonicalize().map_err(Refused::NoDirectory)?;
        let file = root
            .join(&relative)
            .canonicalize()
            .map_err(|_| Refused::NotServed)?;
        let is_file = file.metadata().is_ok_and(|metadata| metadata.is_file());
        if !is_file || !file.starts_with(&root) {
            return Err(Refused::NotServed);
        }
        Ok(file)
    }

    /// The directory served, as given.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

enum Refused {
    /// The directory itself cannot be resolved: the app's mistake, logged.
    NoDirectory(std::io::Error),
    /// No file of the directory: the client's.
    NotServed,
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

impl<S> RouteHandler<S, WithoutState> for StaticFiles {
    fn into_boxed(self) -> Box<dyn Fn(&Request<'_>, &S) -> Response + Send + Sync> {
        Box::new(move |request, _| match request.param(&self.param) {
            Some(path) => self.serve(request, path),
            None => {
                request.log(
                    LogLevel::Error,
                    format_args!(
                        "static files: the route has no {{*{}}} parameter naming the file",
                        self.param
                    ),
                );
                not_found()
            }
        })
    }
}
