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
    reason: String,
    headers: Vec<(String, String)>,
    body_kind: u32,
    /// The body bytes, file path or redirect target; for a stream, its chunks concatenated.
    body: Vec<u8>,
    /// For a stream: the flush flag of each chunk, and the error that ended it, if any.
    flushes: Vec<bool>,
    stream_error: Option<String>,
    failure: Option<String>,
}

/// The tests' call handle: the host writes the completion into it.
struct FakeCall(Mutex<Option<Completion>>);

unsafe extern "C" fn respond(call: *mut abi::Call, response: *const abi::Response) {
    let call = unsafe { &*call.cast::<FakeCall>() };
    let response = unsafe { &*response };
    let pairs = unsafe { abi::slice_from_abi(response.headers, response.headers_len) };
    let text = |bytes: abi::Bytes| String::from_utf8(unsafe { bytes.as_slice() }.to_vec()).unwrap();
    let mut completion = Completion {
        status: response.status,
        reason: text(response.reason),
        headers: pairs
            .iter()
            .map(|pair| (text(pair.name), text(pair.value)))
            .collect(),
        body_kind: response.body_kind,
        body: unsafe { response.body.as_slice() }.to_vec(),
        ..Completion::default()
    };
    if response.body_kind == abi::BODY_STREAM {
        // Pull the whole stream, as the module does on write events.
        let next = response.stream_next.expect("a stream has a next function");
        loop {
            let mut chunk = abi::Chunk {
                data: abi::Bytes::EMPTY,
                flush: 0,
            };
            match unsafe { next(response.stream, &mut chunk) } {
                abi::STREAM_CHUNK => {
                    completion
                        .body
                        .extend_from_slice(unsafe { chunk.data.as_slice() });
                    completion.flushes.push(chunk.flush != 0);
                }
                abi::STREAM_END => break,
                abi::STREAM_ERROR | abi::STREAM_PANIC => {
                    completion.stream_error = Some(text(chunk.data));
                    break;
                }
                other => panic!("unknown stream status {other}"),
            }
        }
    } else {
        assert!(response.stream_next.is_none());
    }
    unsafe { (response.release)(response.owner) };
    *call.0.lock().unwrap() = Some(completion);
}

unsafe extern "C" fn fail(call: *mut abi::Call, _cause: u32, message: abi::Bytes) {
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
    let failure = done.failure.unwrap();
    assert!(
        failure.starts_with("handler panicked at sdk/tests/abi_dispatch.rs:"),
        "{failure}"
    );
    assert!(failure.ends_with(": boom at 42"), "{failure}");
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

/// Counts drops, to show a stream's state is dropped when the module releases the response.
struct DropCounter(&'static std::sync::atomic::AtomicUsize);

impl Drop for DropCounter {
    fn drop(&mut self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn streams_are_pulled_chunk_by_chunk_and_dropped_on_release() {
    static DROPPED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let done = run(&[], |_| {
        let guard = DropCounter(&DROPPED);
        let chunks = (1..=3).map(move |i| {
            let _keep = &guard;
            let chunk = gateway::Chunk::new(format!("part {i}\n"));
            if i == 2 {
                chunk.flushed()
            } else {
                chunk
            }
        });
        gateway::Body::from_iter(chunks)
    });
    assert_eq!(done.body_kind, abi::BODY_STREAM);
    assert_eq!(done.body, b"part 1\npart 2\npart 3\n");
    assert_eq!(done.flushes, vec![false, true, false]);
    assert_eq!(done.stream_error, None);
    assert_eq!(DROPPED.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[test]
fn a_failing_or_panicking_stream_ends_with_an_error() {
    let done = run(&[], |_| {
        gateway::Body::from_try_iter(vec![Ok("ok\n"), Err("disk on fire"), Ok("never")])
    });
    assert_eq!(done.body, b"ok\n");
    assert_eq!(
        done.stream_error.as_deref(),
        Some("stream failed: disk on fire")
    );

    let done = run(&[], |_| {
        gateway::Body::from_iter((0..3).map(|i| {
            if i == 1 {
                panic!("chunk {i} exploded")
            } else {
                "x"
            }
        }))
    });
    assert_eq!(done.body, b"x");
    let error = done.stream_error.unwrap();
    assert!(
        error.starts_with("stream panicked at sdk/tests/abi_dispatch.rs:"),
        "{error}"
    );
    assert!(error.ends_with(": chunk 1 exploded"), "{error}");
}

#[test]
fn files_redirects_and_reason_phrases() {
    let done = run(&[], |_| gateway::Body::file("/srv/files/report.pdf"));
    assert_eq!(
        (done.body_kind, done.body.as_slice()),
        (abi::BODY_FILE, &b"/srv/files/report.pdf"[..])
    );

    let done = run(&[], |_| {
        gateway::internal_redirect("/protected/report.pdf?v=2")
    });
    assert_eq!(
        (done.body_kind, done.body.as_slice()),
        (abi::BODY_REDIRECT, &b"/protected/report.pdf?v=2"[..])
    );

    let done = run(&[], |_| {
        let mut response = (StatusCode::IM_A_TEAPOT, "short and stout").into_response();
        response
            .extensions_mut()
            .insert(gateway::ReasonPhrase::new("Short And Stout"));
        response
    });
    assert_eq!(
        (done.status, done.reason.as_str()),
        (418, "Short And Stout")
    );
    assert_eq!(run(&[], |_| "plain").reason, "");
}

/// Where the fake host's `Setup::fail` puts the message.
unsafe extern "C" fn setup_fail(setup: *const abi::Setup, message: abi::Bytes) {
    let sink = unsafe { &*(*setup).context.cast::<Mutex<Option<String>>>() };
    *sink.lock().unwrap() =
        Some(String::from_utf8_lossy(unsafe { message.as_slice() }).into_owned());
}

/// Runs the SDK's init with `params` and `make`, as the module does in a worker.
fn init_instance<M, H, E>(params: &[(&str, &str)], make: M) -> Result<*mut std::ffi::c_void, String>
where
    M: FnOnce(&gateway::Config) -> Result<H, E>,
    H: gateway::Handler,
    E: std::fmt::Display,
{
    let pairs: Vec<abi::Pair> = params
        .iter()
        .map(|(name, value)| abi::Pair {
            name: abi::Bytes::new(name.as_bytes()),
            value: abi::Bytes::new(value.as_bytes()),
        })
        .collect();
    let failure = Mutex::new(None::<String>);
    let setup = abi::Setup {
        host: &HOST,
        params: pairs.as_ptr(),
        params_len: pairs.len(),
        fail: setup_fail,
        context: (&failure as *const Mutex<Option<String>>).cast_mut().cast(),
    };
    let mut instance = std::ptr::null_mut();
    let rc = unsafe { gateway::__private::init(&setup, &mut instance, make) };
    match rc {
        0 => Ok(instance),
        _ => Err(failure
            .into_inner()
            .unwrap()
            .expect("a failed init says why")),
    }
}

struct Greeter {
    greeting: String,
    dropped: &'static std::sync::atomic::AtomicUsize,
}

impl gateway::Handler for Greeter {
    fn handle(&self, request: &Request<'_>) -> gateway::Response {
        format!("{}, {}!", self.greeting, request.path().unwrap_or("?")).into_response()
    }
}

impl Drop for Greeter {
    fn drop(&mut self) {
        self.dropped
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn instances_are_built_from_settings_called_and_shut_down() {
    static DROPPED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let instance = init_instance(&[("greeting", "Hi"), ("greeting", "Hello")], |config| {
        Ok::<_, gateway::ConfigError>(Greeter {
            greeting: config.require("greeting")?.to_string(),
            dropped: &DROPPED,
        })
    })
    .unwrap();

    let pairs = [abi::Pair {
        name: abi::Bytes::new(b"PATH_INFO"),
        value: abi::Bytes::new(b"/you"),
    }];
    let request = abi::Request {
        host: &HOST,
        environ: pairs.as_ptr(),
        environ_len: 1,
        body: std::ptr::null(),
        body_len: 0,
    };
    let call = FakeCall(Mutex::new(None));
    let handle = (&call as *const FakeCall).cast_mut().cast::<abi::Call>();
    unsafe { gateway::__private::call(instance, handle, &request) };
    assert_eq!(
        call.0.into_inner().unwrap().unwrap().body,
        b"Hello, /you!",
        "the last setting wins"
    );

    assert_eq!(DROPPED.load(std::sync::atomic::Ordering::SeqCst), 0);
    unsafe { gateway::__private::shutdown(instance) };
    assert_eq!(DROPPED.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[test]
fn init_errors_and_panics_are_reported() {
    let missing = init_instance(&[], |config| {
        config.require("database").map(|_| |_: &Request<'_>| "x")
    });
    assert_eq!(
        missing.unwrap_err(),
        "init failed: missing setting: add `gateway_app_param database ...;` to the location"
    );

    let invalid = init_instance(&[("workers", "many")], |config| {
        config
            .parse::<u32>("workers")
            .map(|_| |_: &Request<'_>| "x")
    });
    assert_eq!(
        invalid.unwrap_err(),
        "init failed: setting workers = \"many\" is invalid: invalid digit found in string"
    );

    let panicked = init_instance(
        &[],
        |_| -> Result<fn(&Request<'_>) -> &'static str, String> { panic!("no database") },
    );
    let message = panicked.unwrap_err();
    assert!(
        message.starts_with("init panicked at sdk/tests/abi_dispatch.rs:")
            && message.ends_with(": no database"),
        "{message}"
    );
}
