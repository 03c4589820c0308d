//! The SDK's `Router`, driven through `dispatch` with any method and any PATH_INFO bytes, against
//! a reference matcher for its route table: the right handler with the path's own segments as
//! parameters, else 404, or 405 with an `Allow` header.

use arbitrary::Arbitrary;
use gateway::{delete, get, put, Request, Router};

use crate::host::{self, Completion};

#[derive(Debug, Arbitrary)]
enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Patch,
    Options,
    Other(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
enum Piece {
    Raw(Vec<u8>),
    Text(String),
    Users,
    Posts,
    Files,
    Static,
    AppJs,
    Api,
    V1,
    Items,
    Empty,
}

#[derive(Debug, Arbitrary)]
struct Input {
    method: Method,
    /// PATH_INFO: the pieces, each after a "/", or raw bytes.
    pieces: Vec<Piece>,
    raw_path: Option<Vec<u8>>,
    mount_point: Vec<u8>,
}

fn route(name: &'static str) -> impl Fn(&Request) -> String + Send + Sync + 'static {
    move |request: &Request| {
        let mut out = name.to_string();
        for param in ["id", "post", "rest", "name"] {
            if let Some(value) = request.param(param) {
                out.push_str(&format!("|{param}={value}"));
            }
        }
        out
    }
}

fn router() -> Router {
    Router::new()
        .route("/", get(route("root")))
        .route("/users/{id}", get(route("user")).post(route("user")))
        .route("/users/{id}/posts/{post}", get(route("post")))
        .route("/files/{*rest}", get(route("files")))
        .route("/static/app.js", get(route("app.js")))
        .route("/static/{name}", put(route("static")))
        .route(
            "/api/v1/items",
            delete(route("items"))
                .patch(route("items"))
                .options(route("items")),
        )
}

/// What the router must do: the route's body (name and parameters) and its methods.
fn reference(path: &str) -> Option<(String, &'static [&'static str])> {
    let path = if path.is_empty() { "/" } else { path };
    let segment = |s: &str| !s.is_empty() && !s.contains('/');
    if path == "/" {
        return Some(("root".into(), &["GET"]));
    }
    if path == "/static/app.js" {
        return Some(("app.js".into(), &["GET"]));
    }
    if path == "/api/v1/items" {
        return Some(("items".into(), &["DELETE", "PATCH", "OPTIONS"]));
    }
    if let Some(rest) = path.strip_prefix("/users/") {
        if segment(rest) {
            return Some((format!("user|id={rest}"), &["GET", "POST"]));
        }
        if let Some((id, post)) = rest.split_once("/posts/") {
            if segment(id) && segment(post) {
                return Some((format!("post|id={id}|post={post}"), &["GET"]));
            }
        }
    }
    if let Some(rest) = path.strip_prefix("/files/") {
        if !rest.is_empty() {
            return Some((format!("files|rest={rest}"), &["GET"]));
        }
    }
    if let Some(name) = path.strip_prefix("/static/") {
        if segment(name) {
            return Some((format!("static|name={name}"), &["PUT"]));
        }
    }
    None
}

pub fn check(data: &[u8]) {
    let Some(input) = crate::decode::<Input>(data) else {
        return;
    };
    let method: Vec<u8> = match &input.method {
        Method::Get => b"GET".to_vec(),
        Method::Head => b"HEAD".to_vec(),
        Method::Post => b"POST".to_vec(),
        Method::Put => b"PUT".to_vec(),
        Method::Delete => b"DELETE".to_vec(),
        Method::Patch => b"PATCH".to_vec(),
        Method::Options => b"OPTIONS".to_vec(),
        Method::Other(other) => other.clone(),
    };
    let path = match &input.raw_path {
        Some(raw) => raw.clone(),
        None => {
            let mut path = Vec::new();
            for piece in &input.pieces {
                path.push(b'/');
                path.extend_from_slice(match piece {
                    Piece::Raw(raw) => raw,
                    Piece::Text(text) => text.as_bytes(),
                    Piece::Users => b"users",
                    Piece::Posts => b"posts",
                    Piece::Files => b"files",
                    Piece::Static => b"static",
                    Piece::AppJs => b"app.js",
                    Piece::Api => b"api",
                    Piece::V1 => b"v1",
                    Piece::Items => b"items",
                    Piece::Empty => b"",
                });
            }
            path
        }
    };
    let environ = vec![
        (b"REQUEST_METHOD".to_vec(), method.clone()),
        (b"SCRIPT_NAME".to_vec(), input.mount_point.clone()),
        (b"PATH_INFO".to_vec(), path.clone()),
    ];
    let router = router();
    let completion = host::run(&environ, &[], 1, |request| {
        gateway::Handler::handle(&router, request)
    });
    let Completion::Responded(seen) = completion else {
        panic!("the router failed: {completion:?}");
    };

    // The method as the SDK reads it: unknown or invalid ones read as GET.
    let method = gateway::http::Method::from_bytes(&method)
        .unwrap_or(gateway::http::Method::GET)
        .to_string();
    let expected = std::str::from_utf8(&path).ok().and_then(reference);
    match expected {
        None => assert_eq!(
            seen.status,
            404,
            "{path:?}: {}",
            String::from_utf8_lossy(&seen.body)
        ),
        Some((body, methods)) => {
            let allowed = methods.contains(&method.as_str())
                || (method == "HEAD" && methods.contains(&"GET"));
            if allowed {
                assert_eq!(seen.status, 200, "{method} {path:?}");
                assert_eq!(String::from_utf8_lossy(&seen.body), body);
            } else {
                assert_eq!(seen.status, 405, "{method} {path:?}");
                let allow = seen
                    .headers
                    .iter()
                    .find(|(name, _)| name == b"allow")
                    .map(|(_, value)| String::from_utf8_lossy(value).into_owned())
                    .expect("a 405 says what is allowed");
                for method in methods {
                    assert!(allow.contains(method), "Allow {allow:?} lacks {method}");
                }
            }
        }
    }
    // Every header the router sends, the module accepts.
    for (name, value) in &seen.headers {
        assert_eq!(
            gateway_abi::wire::check_response_header(name, value),
            Ok(())
        );
    }
}

/// The input `data` decodes to, for reading a crash (`cargo run --example show`).
pub fn describe(data: &[u8]) -> String {
    format!("{:#?}", crate::decode::<Input>(data))
}
