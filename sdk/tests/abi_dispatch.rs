//! Drives the app side of the ABI the way the module does, with a host of our own: the
//! environ goes in, and a response (or a failure) comes out through the host's functions.

use std::io::{BufRead, Read, Write};
use std::os::fd::AsRawFd;
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
    run_with_body(environ, &[], handler)
}

fn run_with_body<H, R>(
    environ: &[(&str, &[u8])],
    body: &[abi::BodySegment],
    handler: H,
) -> Completion
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
        body: body.as_ptr(),
        body_len: body.len(),
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

fn memory_segment(bytes: &'static [u8]) -> abi::BodySegment {
    abi::BodySegment {
        fd: -1,
        offset: 0,
        len: bytes.len() as u64,
        data: bytes.as_ptr(),
    }
}

#[test]
fn body_reads_across_memory_and_file_segments() {
    // As nginx leaves a large body: most of it spilled to a temporary file (here at an offset,
    // and longer than the reader's chunk), the rest still in memory.
    let spilled: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let mut file = tempfile();
    file.write_all(b"junk before").unwrap();
    file.write_all(&spilled).unwrap();
    file.write_all(b"junk after").unwrap();
    let segments = [
        memory_segment(b"head:"),
        abi::BodySegment {
            fd: file.as_raw_fd(),
            offset: 11,
            len: spilled.len() as u64,
            data: std::ptr::null(),
        },
        memory_segment(b""),
        memory_segment(b":tail"),
    ];
    let mut expected = b"head:".to_vec();
    expected.extend_from_slice(&spilled);
    expected.extend_from_slice(b":tail");

    let done = run_with_body(&[], &segments, |request| {
        let mut body = request.body();
        assert_eq!(body.len(), expected.len() as u64);
        let mut all = Vec::new();
        body.read_to_end(&mut all).unwrap();
        assert_eq!(all, expected);

        // A second reader starts over, and BufRead works across segment boundaries.
        let lines: Vec<Vec<u8>> = request.body().split(b':').map(Result::unwrap).collect();
        assert_eq!(lines.first().map(Vec::as_slice), Some(&b"head"[..]));
        assert_eq!(lines.last().map(Vec::as_slice), Some(&b"tail"[..]));
        format!("{}", all.len())
    });
    assert_eq!(done.body, format!("{}", 5 + 200_000 + 5).into_bytes());
}

#[test]
fn a_truncated_body_file_is_an_error_not_a_hang() {
    let file = tempfile();
    let segments = [abi::BodySegment {
        fd: file.as_raw_fd(),
        offset: 0,
        len: 10,
        data: std::ptr::null(),
    }];
    let done = run_with_body(&[], &segments, |request| {
        let error = request.body().read_to_end(&mut Vec::new()).unwrap_err();
        error.kind().to_string()
    });
    assert_eq!(
        done.body,
        std::io::ErrorKind::UnexpectedEof.to_string().into_bytes()
    );
}

#[test]
fn http_views_of_the_request() {
    let environ: &[(&str, &[u8])] = &[
        ("REQUEST_URI", b"/caf\xe9/x?q=%2F&b=1"),
        ("SERVER_PROTOCOL", b"HTTP/1.0"),
        ("CONTENT_TYPE", b"text/plain"),
        ("CONTENT_LENGTH", b"12"),
        ("HTTP_X_MULTI", b"a, b"),
        ("HTTP_COOKIE", b"a=1; b=2"),
        ("gateway.app", b"t"),
    ];
    let done = run(environ, |request| {
        let uri = request.uri();
        assert_eq!(uri.path(), "/caf%E9/x");
        assert_eq!(uri.query(), Some("q=%2F&b=1"));
        assert_eq!(request.version(), gateway::http::Version::HTTP_10);
        assert_eq!(request.content_length(), Some(12));
        let headers = request.headers();
        assert_eq!(headers.len(), 4);
        assert_eq!(headers["content-type"], "text/plain");
        assert_eq!(headers["x-multi"], "a, b");
        assert_eq!(headers["cookie"], "a=1; b=2");
        "ok"
    });
    assert_eq!(done.body, b"ok");
}

/// An anonymous temporary file.
fn tempfile() -> std::fs::File {
    let path = std::env::temp_dir().join(format!(
        "gateway-body-test-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    file
}
