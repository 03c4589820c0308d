//! Drives the app side of the ABI the way the module does, with a host of our own: the
//! environ goes in, and a response (or a failure) comes out through the host's functions.

use std::sync::Mutex;

use gateway::abi;
use gateway::{header, IntoResponse, Request, StatusCode};

/// What the fake host saw of one completed call.
#[derive(Debug, Default, PartialEq)]
struct Completion {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    failure: Option<String>,
}

/// The tests' call handle: the host writes the completion into it.
struct FakeCall(Mutex<Option<Completion>>);

unsafe extern "C" fn respond(call: *mut abi::Call, response: *const abi::Response) {
    let call = unsafe { &*call.cast::<FakeCall>() };
    let response = unsafe { &*response };
    let pairs = unsafe { abi::slice_from_abi(response.headers, response.headers_len) };
    let text = |bytes: abi::Bytes| String::from_utf8(unsafe { bytes.as_slice() }.to_vec()).unwrap();
    let completion = Completion {
        status: response.status,
        headers: pairs
            .iter()
            .map(|pair| (text(pair.name), text(pair.value)))
            .collect(),
        body: unsafe { response.body.as_slice() }.to_vec(),
        failure: None,
    };
    assert_eq!(response.body_kind, abi::BODY_BYTES);
    unsafe { (response.release)(response.owner) };
    *call.0.lock().unwrap() = Some(completion);
}

unsafe extern "C" fn fail(call: *mut abi::Call, message: abi::Bytes) {
    let call = unsafe { &*call.cast::<FakeCall>() };
    let message = String::from_utf8_lossy(unsafe { message.as_slice() }).into_owned();
    *call.0.lock().unwrap() = Some(Completion {
        failure: Some(message),
        ..Completion::default()
    });
}

static HOST: abi::Host = abi::Host {
    abi_minor: abi::ABI_MINOR,
    respond,
    fail,
};

fn run<H, R>(environ: &[(&str, &[u8])], handler: H) -> Completion
where
    H: FnOnce(&Request<'_>) -> R,
    R: IntoResponse,
{
    let pairs: Vec<abi::Pair> = environ
        .iter()
        .map(|(name, value)| abi::Pair {
            name: abi::Bytes::new(name.as_bytes()),
            value: abi::Bytes::new(value),
        })
        .collect();
    let request = abi::Request {
        host: &HOST,
        environ: pairs.as_ptr(),
        environ_len: pairs.len(),
    };
    let call = FakeCall(Mutex::new(None));
    let handle = (&call as *const FakeCall).cast_mut().cast::<abi::Call>();
    unsafe { gateway::__private::dispatch(handle, &request, handler) };
    call.0
        .into_inner()
        .unwrap()
        .expect("the call was completed before dispatch returned")
}

#[test]
fn text_response_has_status_content_type_and_body() {
    let done = run(&[], |_| "Hello, World!\n");
    assert_eq!(done.status, 200);
    assert_eq!(
        done.headers,
        vec![("content-type".into(), "text/plain; charset=utf-8".into())]
    );
    assert_eq!(done.body, b"Hello, World!\n");
    assert_eq!(done.failure, None);
}

#[test]
fn handler_sees_the_environ() {
    let environ: &[(&str, &[u8])] = &[
        ("REQUEST_METHOD", b"PUT"),
        ("SCRIPT_NAME", b"/api"),
        ("PATH_INFO", b"/users/7"),
        ("QUERY_STRING", b"a=1&b=%20"),
        ("HTTP_X_REQUEST_TAG", b"t-1"),
        ("CONTENT_TYPE", b"text/csv"),
    ];
    let done = run(environ, |request| {
        format!(
            "{} {} {} {} {:?} {:?} {}",
            request.method(),
            request.script_name(),
            request.path().unwrap_or("?"),
            String::from_utf8_lossy(request.query_string()),
            request.header("x-request-tag").map(String::from_utf8_lossy),
            request.header("Content-Type").map(String::from_utf8_lossy),
            request.environ().len(),
        )
    });
    assert_eq!(
        String::from_utf8(done.body).unwrap(),
        r#"PUT /api /users/7 a=1&b=%20 Some("t-1") Some("text/csv") 6"#
    );
}

#[test]
fn raw_bytes_reach_the_app_unchanged() {
    let done = run(&[("PATH_INFO", b"/caf\xe9")], |request| {
        assert_eq!(request.path(), None, "not UTF-8, so no &str");
        request.environ().get("PATH_INFO").unwrap().to_vec()
    });
    assert_eq!(done.body, b"/caf\xe9");
    assert_eq!(
        done.headers,
        vec![("content-type".into(), "application/octet-stream".into())]
    );
}

#[test]
fn status_tuples_results_and_full_responses() {
    assert_eq!(run(&[], |_| (StatusCode::CREATED, "made")).status, 201);
    assert_eq!(run(&[], |_| StatusCode::NO_CONTENT).body, b"");

    let failing = |_: &Request<'_>| -> Result<&'static str, (StatusCode, String)> {
        Err((StatusCode::UNPROCESSABLE_ENTITY, "bad input".to_string()))
    };
    let done = run(&[], failing);
    assert_eq!(
        (done.status, done.body.as_slice()),
        (422, &b"bad input"[..])
    );

    let done = run(&[], |_| {
        gateway::http::Response::builder()
            .status(StatusCode::FOUND)
            .header(header::LOCATION, "/elsewhere")
            .header(header::SET_COOKIE, "a=1")
            .header(header::SET_COOKIE, "b=2")
            .body("moved")
            .unwrap()
    });
    assert_eq!(done.status, 302);
    assert_eq!(
        done.headers,
        vec![
            ("location".into(), "/elsewhere".into()),
            ("set-cookie".into(), "a=1".into()),
            ("set-cookie".into(), "b=2".into()),
        ]
    );
}

#[test]
fn a_panicking_handler_fails_the_call_instead_of_unwinding() {
    let done = run(&[], |_| -> &'static str { panic!("boom at {}", 42) });
    assert_eq!(
        done.failure.as_deref(),
        Some("handler panicked: boom at 42")
    );
}
