//! Environ construction from raw request parts, through the SDK's local runner
//! (`gateway::testing::TestClient`): path decoding, the SCRIPT_NAME / PATH_INFO split, header
//! mapping and the request helpers an app then calls, for a plain handler and a `Router`.

use std::cell::RefCell;
use std::collections::HashSet;

use arbitrary::Arbitrary;
use gateway::testing::TestClient;
use gateway::{get, IntoResponse, Request, Response, Router, StatusCode};
use gateway_abi::wire::{self, HeaderEntry};

use crate::reference;

/// One path segment; the named ones are what path-traversal attempts are made of.
#[derive(Debug, Arbitrary)]
enum Segment {
    Text(String),
    Empty,
    Dot,
    DotDot,
    EncodedDotDot,
    EncodedSlash,
    Escape(u8),
    Users,
    Files,
}

#[derive(Debug, Arbitrary)]
enum Target {
    /// Any text, as a client may send it.
    Raw(String),
    /// "/" and the segments joined by "/", then "?" and the query if any.
    Segments(Vec<Segment>, Option<String>),
}

#[derive(Debug, Arbitrary)]
struct Input {
    method: String,
    target: Target,
    mount_point: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Target {
    fn uri(&self) -> String {
        match self {
            Target::Raw(raw) => raw.clone(),
            Target::Segments(segments, query) => {
                let mut uri = String::new();
                for segment in segments {
                    uri.push('/');
                    match segment {
                        Segment::Text(text) => uri.push_str(text),
                        Segment::Empty => {}
                        Segment::Dot => uri.push('.'),
                        Segment::DotDot => uri.push_str(".."),
                        Segment::EncodedDotDot => uri.push_str("%2e%2E"),
                        Segment::EncodedSlash => uri.push_str("a%2Fb"),
                        Segment::Escape(byte) => uri.push_str(&format!("%{byte:02x}")),
                        Segment::Users => uri.push_str("users"),
                        Segment::Files => uri.push_str("files"),
                    }
                }
                if uri.is_empty() {
                    uri.push('/');
                }
                if let Some(query) = query {
                    uri.push('?');
                    uri.push_str(query);
                }
                uri
            }
        }
    }
}

/// What the handler must find in the environ.
#[derive(Clone)]
struct Expected {
    method: String,
    uri: String,
    mount_point: String,
    /// Every header the client sent, the test client's own Host first.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

thread_local! {
    static EXPECTED: RefCell<Option<Expected>> = const { RefCell::new(None) };
    static OBSERVED: RefCell<usize> = const { RefCell::new(0) };
}

fn expected() -> Expected {
    EXPECTED.with(|expected| expected.borrow().clone().expect("set before the request"))
}

pub fn check(data: &[u8]) {
    let Some(input) = crate::decode::<Input>(data) else {
        return;
    };
    let uri = input.target.uri();
    let mount_point = input.mount_point.trim_end_matches('/').to_string();
    let mut headers = vec![("Host".to_string(), "localhost".to_string())];
    headers.extend(input.headers.iter().cloned());
    if !input.body.is_empty() {
        headers.push(("Content-Length".into(), input.body.len().to_string()));
    }
    EXPECTED.with(|expected| {
        *expected.borrow_mut() = Some(Expected {
            method: input.method.clone(),
            uri: uri.clone(),
            mount_point: mount_point.clone(),
            headers,
            body: input.body.clone(),
        })
    });

    // A plain handler sees every request.
    OBSERVED.with(|count| *count.borrow_mut() = 0);
    let plain = TestClient::new(|request: &Request| {
        observe(request);
        "ok"
    })
    .mounted_at(&input.mount_point);
    let response = send(&plain, &input, &uri);
    assert_eq!(response.status, 200);
    assert_eq!(OBSERVED.with(|count| *count.borrow()), 1);

    // A router: the route's parameters are the path's own segments.
    let router = Router::new()
        .route("/", get(observed))
        .route("/users/{id}", get(user).post(user))
        .route("/files/{*rest}", get(file))
        .fallback(|request: &Request| {
            observe(request);
            (StatusCode::NOT_FOUND, "fallback")
        });
    let routed = TestClient::new(router).mounted_at(&input.mount_point);
    let response = send(&routed, &input, &uri);
    match response.status.as_u16() {
        200 | 404 => {}
        405 => assert!(response.headers.contains_key("allow")),
        other => panic!("router answered {other}"),
    }
}

fn send(client: &TestClient, input: &Input, uri: &str) -> gateway::testing::TestResponse {
    let mut request = client.request(&input.method, uri);
    for (name, value) in &input.headers {
        request = request.header(name, value);
    }
    if !input.body.is_empty() {
        request = request.body(input.body.clone());
    }
    request.send()
}

fn observed(request: &Request) -> &'static str {
    observe(request);
    "root"
}

fn user(request: &Request) -> Response {
    observe(request);
    let id = request.param("id").expect("the route has an id");
    assert!(!id.is_empty() && !id.contains('/'), "id {id:?}");
    assert_eq!(
        request.path().map(|path| format!("/users/{id}") == path),
        Some(true)
    );
    id.to_string().into_response()
}

fn file(request: &Request) -> Response {
    observe(request);
    let rest = request.param("rest").expect("the route has a rest");
    assert_eq!(
        request.path().map(|path| format!("/files/{rest}") == path),
        Some(true)
    );
    rest.to_string().into_response()
}

/// Checks the environ and the request helpers against what the client sent.
fn observe(request: &Request) {
    OBSERVED.with(|count| *count.borrow_mut() += 1);
    let expected = expected();
    let environ = request.environ();
    let get = |key: &str| environ.get(key).unwrap_or_else(|| panic!("no {key}"));

    // The path: decoded, then split at the mount point.
    let (path, query) = expected.uri.split_once('?').unwrap_or((&expected.uri, ""));
    let decoded = reference::percent_decode(path.as_bytes());
    let (script_name, path_info) = (get("SCRIPT_NAME"), get("PATH_INFO"));
    assert_eq!([script_name, path_info].concat(), decoded);
    assert!(script_name.is_empty() || script_name == expected.mount_point.as_bytes());
    if !script_name.is_empty() || decoded.starts_with(b"/") {
        assert!(
            path_info.is_empty() || path_info[0] == b'/',
            "PATH_INFO {path_info:?}"
        );
    }
    assert_eq!(get("REQUEST_URI"), expected.uri.as_bytes());
    assert_eq!(get("QUERY_STRING"), query.as_bytes());
    assert_eq!(get("REQUEST_METHOD"), expected.method.as_bytes());
    assert_eq!(request.path(), std::str::from_utf8(path_info).ok());
    assert_eq!(
        request.script_name().as_bytes(),
        if std::str::from_utf8(script_name).is_ok() {
            script_name
        } else {
            b""
        }
    );

    // The body's length is the body's, whatever Content-Length the client claimed.
    match environ.get("CONTENT_LENGTH") {
        Some(length) => assert_eq!(length, expected.body.len().to_string().as_bytes()),
        None => assert!(expected.body.is_empty()),
    }
    assert_eq!(
        request.body_bytes().expect("a memory body reads"),
        expected.body
    );
    assert_eq!(request.body().len(), expected.body.len() as u64);

    // Header keys: one entry per key, never from a name with "_", values joined in order.
    let mut keys = HashSet::new();
    for (key, value) in environ.iter() {
        assert!(keys.insert(key.to_vec()), "duplicate key {key:?}");
        if key.starts_with(b"HTTP_") || key == b"CONTENT_TYPE" {
            assert!(
                !key.iter().any(|b| b.is_ascii_lowercase() || *b == b'-'),
                "key {key:?}"
            );
            assert_ne!(key, b"HTTP_CONTENT_LENGTH");
            assert_ne!(key, b"HTTP_CONTENT_TYPE");
            assert_eq!(value, joined(&expected.headers, key), "value of {key:?}");
        }
    }
    for (name, _) in &expected.headers {
        match wire::header_entry(name.as_bytes()) {
            HeaderEntry::Http | HeaderEntry::ContentType => {
                let key = key_of(name);
                assert!(keys.contains(&key), "header {name:?} missing");
                let joined = joined(&expected.headers, &key);
                assert_eq!(request.header(name), Some(&joined[..]), "header({name:?})");
            }
            HeaderEntry::ContentLength | HeaderEntry::Underscored => {}
        }
    }

    // The helpers parse what they can and refuse the rest, without panicking.
    let headers = request.headers();
    assert!(headers.len() <= environ.len());
    let _ = request.uri();
    let _ = request.method();
    let _ = request.version();
    let _ = request.content_length();
    let _ = request.query::<Vec<(String, String)>>();
    for (name, value) in request.cookies() {
        assert!(!name.contains(';') && !value.contains(';'));
    }
}

/// The environ key a header maps to.
fn key_of(name: &str) -> Vec<u8> {
    match wire::header_entry(name.as_bytes()) {
        HeaderEntry::ContentType => b"CONTENT_TYPE".to_vec(),
        _ => {
            let mut key = vec![0; wire::cgi_name_len(name.as_bytes())];
            wire::write_cgi_name(name.as_bytes(), &mut key);
            key
        }
    }
}

/// The value the environ must hold for `key`: every header with that key, in order.
fn joined(headers: &[(String, String)], key: &[u8]) -> Vec<u8> {
    let values: Vec<&[u8]> = headers
        .iter()
        .filter(|(name, _)| {
            matches!(
                wire::header_entry(name.as_bytes()),
                HeaderEntry::Http | HeaderEntry::ContentType
            ) && key_of(name) == key
        })
        .map(|(_, value)| value.as_bytes())
        .collect();
    values.join(wire::join_separator(key))
}

/// The input `data` decodes to, for reading a crash (`cargo run --example show`).
pub fn describe(data: &[u8]) -> String {
    format!("{:#?}", crate::decode::<Input>(data))
}
