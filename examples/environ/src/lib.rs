//! Returns the request's gateway environ as a JSON object with sorted keys: a debugging aid
//! for users and the fixture of the environ tests. Values that are not UTF-8 are shown with
//! replacement characters; `?key=NAME` answers with the raw bytes of that one value instead.

use gateway::{header, IntoResponse, Request, Response, StatusCode};

fn environ(request: &Request) -> Response {
    if let Some(name) = request.query_string().strip_prefix(b"key=") {
        return one_value(request, name);
    }
    let object: serde_json::Map<String, serde_json::Value> = request
        .environ()
        .iter()
        .map(|(name, value)| {
            let name = String::from_utf8_lossy(name).into_owned();
            (name, String::from_utf8_lossy(value).into_owned().into())
        })
        .collect();
    let mut body = serde_json::to_vec_pretty(&object).unwrap_or_default();
    body.push(b'\n');
    let mut response = Response::new(body.into());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

fn one_value(request: &Request, name: &[u8]) -> Response {
    let value = request
        .environ()
        .iter()
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_vec());
    match value {
        Some(value) => value.into_response(),
        None => (StatusCode::NOT_FOUND, "no such key\n").into_response(),
    }
}

gateway::app!(environ);
