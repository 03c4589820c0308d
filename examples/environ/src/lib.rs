//! Returns the request's gateway environ as a JSON object with sorted keys:
//! a debugging aid for users and the fixture of the environ tests. Values that are not UTF-8
//! are shown with replacement characters; the raw bytes are what the app itself receives.

use gateway::{header, Request, Response};

fn environ(request: &Request) -> Response {
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

gateway::app!(environ);
