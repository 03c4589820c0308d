//! The SDK's response side of the ABI: handlers that answer with arbitrary statuses, reason
//! phrases and headers (attacker-controlled text echoed into a header among them), bodies of
//! every kind, streams that fail, panic or get abandoned mid-way, and handlers that panic.
//! What reaches the host must be what the module accepts (no split headers, ever), every call
//! must complete exactly once, and every stream must be dropped exactly once.

use std::cell::Cell;

use arbitrary::Arbitrary;
use gateway::http::{HeaderName, HeaderValue, StatusCode};
use gateway::{abi, Body, Chunk, Error, IntoResponse, Redirect, Response};
use gateway_abi::wire::{self, HeaderProblem};

use crate::host::{self, Completion, StreamEnd};
use crate::reference;

#[derive(Debug, Clone, Arbitrary)]
enum Step {
    Data(Vec<u8>, bool),
    Fail(String),
    Panic,
}

#[derive(Debug, Arbitrary)]
enum BodySpec {
    Bytes(Vec<u8>),
    Text(String),
    Stream {
        steps: Vec<Step>,
        panic_on_drop: bool,
    },
    File(String),
    InternalRedirect(String),
    /// `Redirect::to`, with a location that may come from the client.
    Redirect(String),
    Json(Vec<(String, i64)>),
    Error(u16, String),
    Internal(String),
}

#[derive(Debug, Arbitrary)]
struct Input {
    status: u16,
    reason: Option<String>,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// Text a client sent, which the app copies into a response header.
    echoed: Vec<u8>,
    body: BodySpec,
    panics: bool,
    /// Chunks the host pulls before it stops (as when a client goes away).
    pull_limit: u8,
}

thread_local! {
    static STREAM_DROPS: Cell<usize> = const { Cell::new(0) };
}

/// A stream that plays its steps and counts its drop.
struct Stream {
    steps: std::vec::IntoIter<Step>,
    panic_on_drop: bool,
}

impl Iterator for Stream {
    type Item = Result<Chunk, String>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.steps.next()? {
            Step::Data(data, flush) => {
                let chunk = Chunk::new(data);
                Some(Ok(if flush { chunk.flushed() } else { chunk }))
            }
            Step::Fail(message) => Some(Err(message)),
            Step::Panic => panic!("stream step panics"),
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        STREAM_DROPS.set(STREAM_DROPS.get() + 1);
        if self.panic_on_drop && !std::thread::panicking() {
            panic!("stream drop panics");
        }
    }
}

fn respond(input: &Input) -> Response {
    // Responses the SDK makes whole (redirects, errors) are sent as they are.
    let (mut response, whole) = match &input.body {
        BodySpec::Bytes(bytes) => (bytes.clone().into_response(), false),
        BodySpec::Text(text) => (text.clone().into_response(), false),
        BodySpec::Stream {
            steps,
            panic_on_drop,
        } => (
            stream_body(Stream {
                steps: steps.clone().into_iter(),
                panic_on_drop: *panic_on_drop,
            })
            .into_response(),
            false,
        ),
        BodySpec::File(path) => (Body::file(path).into_response(), false),
        BodySpec::InternalRedirect(uri) => (gateway::internal_redirect(uri.clone()), false),
        BodySpec::Redirect(location) => (Redirect::to(location.clone()).into_response(), true),
        BodySpec::Json(pairs) => (gateway::Json(pairs.clone()).into_response(), false),
        BodySpec::Error(status, message) => match StatusCode::from_u16(*status) {
            Ok(status) => (Error::status(status, message.clone()).into_response(), true),
            Err(_) => (Error::internal(message).into_response(), true),
        },
        BodySpec::Internal(message) => (Error::internal(message).into_response(), true),
    };
    if input.panics {
        panic!("handler panics");
    }
    if whole {
        return response;
    }
    if let Ok(status) = StatusCode::from_u16(input.status) {
        *response.status_mut() = status;
    }
    if let Some(reason) = &input.reason {
        response
            .extensions_mut()
            .insert(gateway::ReasonPhrase::new(reason.clone()));
    }
    for (name, value) in &input.headers {
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            response.headers_mut().append(name, value);
        }
    }
    // The attacker's text goes in only if it is a valid header value; else the app says 400.
    match HeaderValue::from_bytes(&input.echoed) {
        Ok(value) => {
            response.headers_mut().insert("x-echo", value);
            response
        }
        Err(_) => {
            // Dropped before the 400 is built: were the drop to panic with the 400 already
            // made, rustc would leak it (rust-lang/rust#47949).
            drop(response);
            (StatusCode::BAD_REQUEST, "bad echo\n").into_response()
        }
    }
}

/// A streamed body, as `Body::from_try_iter` builds it.
fn stream_body(stream: Stream) -> Body {
    Body::from_try_iter(stream)
}

pub fn check(data: &[u8]) {
    let Some(input) = crate::decode::<Input>(data) else {
        return;
    };
    STREAM_DROPS.set(0);
    let environ = vec![(b"REQUEST_METHOD".to_vec(), b"GET".to_vec())];
    let pull_limit = usize::from(input.pull_limit);
    let completion = host::run(&environ, &[], pull_limit, |_request| respond(&input));

    let stream = match &input.body {
        BodySpec::Stream {
            steps,
            panic_on_drop,
        } => Some((steps, *panic_on_drop)),
        _ => None,
    };
    if stream.is_some() {
        assert_eq!(STREAM_DROPS.get(), 1, "the stream is dropped exactly once");
    }

    let seen = match completion {
        Completion::Failed { cause, message } => {
            let text = String::from_utf8_lossy(&message);
            if input.panics {
                assert_eq!(cause, abi::PANICKED);
                assert!(text.contains("handler panicked"), "{text}");
            }
            let echo_refused = HeaderValue::from_bytes(&input.echoed).is_err();
            let expected = input.panics
                || matches!(input.body, BodySpec::Internal(_))
                // An app's own Error::status answers with its status, 5xx included; only a
                // status that is no status becomes Error::internal, a failure.
                || matches!(&input.body, BodySpec::Error(status, _)
                    if StatusCode::from_u16(*status).is_err())
                || matches!(&input.body, BodySpec::Redirect(location)
                    if HeaderValue::from_str(location).is_err())
                // The app drops its stream for the 400, and that drop panics.
                || matches!(&input.body, BodySpec::Stream { panic_on_drop: true, .. } if echo_refused);
            assert!(expected, "failed: {text}");
            return;
        }
        Completion::Responded(seen) => seen,
    };
    assert!(!input.panics, "a panicking handler responded");

    // Nothing the SDK hands over can split a header or smuggle one: every header passes the
    // module's check, but for hop-by-hop names an app set itself, which the module refuses.
    for (name, value) in &seen.headers {
        match wire::check_response_header(name, value) {
            Ok(()) => {}
            Err(HeaderProblem::HopByHop) => {
                assert!(input
                    .headers
                    .iter()
                    .any(|(n, _)| n.eq_ignore_ascii_case(name)))
            }
            Err(problem) => panic!("{problem:?} in {name:?}: {value:?}"),
        }
        assert!(!value.contains(&b'\r') && !value.contains(&b'\n') && !value.contains(&0));
    }
    if let Some((_, value)) = seen.headers.iter().find(|(name, _)| name == b"x-echo") {
        assert_eq!(value, &input.echoed);
    }
    let reason_ok = wire::is_field_text(&seen.reason);
    assert_eq!(
        reason_ok,
        seen.reason.iter().all(|&b| reference::is_field_byte(b))
    );
    // The module's verdict, restated; a refused response is a 500 with a log line, so all we
    // ask is that it is computable from what the host saw.
    let _ = reference::module_accepts(
        seen.status,
        &seen.reason,
        &seen.headers,
        seen.body_kind,
        &seen.body,
    );

    match (&input.body, seen.body_kind) {
        (BodySpec::Bytes(bytes), abi::BODY_BYTES) => {
            if seen.status != 400 {
                assert_eq!(&seen.body, bytes)
            }
        }
        (BodySpec::Text(text), abi::BODY_BYTES) => {
            if seen.status != 400 {
                assert_eq!(seen.body, text.as_bytes())
            }
        }
        (BodySpec::File(path), abi::BODY_FILE) => assert_eq!(seen.body, path.as_bytes()),
        (BodySpec::InternalRedirect(uri), abi::BODY_REDIRECT) => {
            assert_eq!(seen.body, uri.as_bytes())
        }
        (BodySpec::Stream { steps, .. }, abi::BODY_STREAM) => {
            check_stream(steps, &seen, pull_limit)
        }
        (BodySpec::Error(status, message), abi::BODY_BYTES) => {
            assert_eq!(seen.status, *status);
            assert_eq!(seen.body, format!("{message}\n").into_bytes());
        }
        (_, abi::BODY_BYTES) => {}
        (body, kind) => {
            assert_eq!(seen.status, 400, "body {body:?} arrived as kind {kind}");
        }
    }
}

fn check_stream(steps: &[Step], seen: &host::Seen, pull_limit: usize) {
    let mut expected = Vec::new();
    let mut end = StreamEnd::End;
    for step in steps {
        if expected.len() == pull_limit {
            end = StreamEnd::Abandoned;
            break;
        }
        match step {
            Step::Data(data, flush) => expected.push((data.clone(), *flush)),
            Step::Fail(message) => {
                end = StreamEnd::Error(format!("stream failed: {message}").into_bytes());
                break;
            }
            Step::Panic => {
                end = StreamEnd::Panic(Vec::new());
                break;
            }
        }
    }
    if end == StreamEnd::End && expected.len() == pull_limit {
        end = StreamEnd::Abandoned;
    }
    assert_eq!(seen.chunks, expected);
    match (&end, seen.stream_end.as_ref().expect("a stream ends")) {
        (StreamEnd::Panic(_), StreamEnd::Panic(got)) => {
            let got = String::from_utf8_lossy(got);
            assert!(got.contains("stream panicked"), "{got}");
        }
        (expected, got) => assert_eq!(expected, got),
    }
}

/// The input `data` decodes to, for reading a crash (`cargo run --example show`).
pub fn describe(data: &[u8]) -> String {
    format!("{:#?}", crate::decode::<Input>(data))
}
