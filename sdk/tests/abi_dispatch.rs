//! Drives the app side of the ABI the way the module does, with a host of our own: the
//! environ goes in, and a response (or a failure) comes out through the host's functions.

use std::convert::Infallible;
use std::io::{BufRead, Read, Write};
use std::os::fd::AsRawFd;
use std::sync::Mutex;

use gateway::abi;
use gateway::{header, IntoResponse, LogLevel, Request, RunsOn, StatusCode};

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
    /// What was logged with the call's handle, as level and message, until its release.
    log: Vec<(u32, String)>,
}

/// The tests' module handle: a call's (the host writes the completion into it) or a setup's
/// log handle; `Host::log` records lines into either.
#[derive(Default)]
struct FakeCall {
    completion: Mutex<Option<Completion>>,
    log: Mutex<Vec<(u32, String)>>,
}

impl FakeCall {
    fn handle(&self) -> *mut abi::Call {
        (self as *const FakeCall).cast_mut().cast()
    }

    fn completion(self) -> Completion {
        let mut done = self
            .completion
            .into_inner()
            .unwrap()
            .expect("the call was completed before dispatch returned");
        done.log = self.log.into_inner().unwrap();
        done
    }
}

/// Lines logged with a null handle: by loggers whose handle has ended. Tests run in
/// parallel, so each looks for its own message.
static UNNAMED: Mutex<Vec<(u32, String)>> = Mutex::new(Vec::new());

fn logged_unnamed(message: &str) -> bool {
    UNNAMED.lock().unwrap().iter().any(|(_, m)| m == message)
}

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
    *call.completion.lock().unwrap() = Some(completion);
}

unsafe extern "C" fn fail(call: *mut abi::Call, _cause: u32, message: abi::Bytes) {
    let call = unsafe { &*call.cast::<FakeCall>() };
    let message = String::from_utf8_lossy(unsafe { message.as_slice() }).into_owned();
    *call.completion.lock().unwrap() = Some(Completion {
        failure: Some(message),
        ..Completion::default()
    });
}

/// Ignored: this host pulls a stream to its end at once, and the SDK's streams never answer
/// `STREAM_PENDING`.
unsafe extern "C" fn wake(_call: *mut abi::Call) {}

unsafe extern "C" fn log(call: *mut abi::Call, level: u32, message: abi::Bytes) {
    let line = (
        level,
        String::from_utf8_lossy(unsafe { message.as_slice() }).into_owned(),
    );
    match unsafe { call.cast::<FakeCall>().as_ref() } {
        Some(call) => call.log.lock().unwrap().push(line),
        None => UNNAMED.lock().unwrap().push(line),
    }
}

static HOST: abi::Host = abi::Host {
    abi_minor: abi::ABI_MINOR,
    respond,
    fail,
    wake,
    log,
};

/// The host table of a module of ABI 1.0, as it was: it ends at `fail`.
#[repr(C)]
struct Host1_0 {
    abi_minor: u32,
    respond: unsafe extern "C" fn(*mut abi::Call, *const abi::Response),
    fail: unsafe extern "C" fn(*mut abi::Call, u32, abi::Bytes),
}

static HOST_1_0: Host1_0 = Host1_0 {
    abi_minor: 0,
    respond,
    fail,
};

fn host_1_0() -> *const abi::Host {
    (&HOST_1_0 as *const Host1_0).cast()
}

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
    run_on(&HOST, environ, body, handler)
}

/// Dispatches one call as a module with host table `host` does.
fn run_on<H, R>(
    host: *const abi::Host,
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
        host,
        environ: pairs.as_ptr(),
        environ_len: pairs.len(),
        body: body.as_ptr(),
        body_len: body.len(),
    };
    let call = FakeCall::default();
    unsafe { gateway::__private::dispatch(call.handle(), &request, handler) };
    call.completion()
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

/// What a fake module passes in a `Setup` besides the settings.
struct Runs {
    runs_on: u32,
    threads: u32,
    worker: u32,
}

const IN_WORKER_0: Runs = Runs {
    runs_on: abi::RUNS_ON_EVENT_LOOP,
    threads: 0,
    worker: 0,
};

/// Calls `entry` (an init or a check) with a `Setup` of `params` and `runs`, as a module of
/// the current minor does; returns its result, the message it failed with, and the lines
/// logged with the setup's log handle.
fn with_setup(
    params: &[(&str, &str)],
    runs: Runs,
    entry: impl FnOnce(*const abi::Setup) -> i32,
) -> (i32, Option<String>, Vec<(u32, String)>) {
    let pairs: Vec<abi::Pair> = params
        .iter()
        .map(|(name, value)| abi::Pair {
            name: abi::Bytes::new(name.as_bytes()),
            value: abi::Bytes::new(value.as_bytes()),
        })
        .collect();
    let failure = Mutex::new(None::<String>);
    let log_handle = FakeCall::default();
    let setup = abi::Setup {
        host: &HOST,
        params: pairs.as_ptr(),
        params_len: pairs.len(),
        fail: setup_fail,
        context: (&failure as *const Mutex<Option<String>>).cast_mut().cast(),
        runs_on: runs.runs_on,
        threads: runs.threads,
        worker: runs.worker,
        log_handle: log_handle.handle(),
        prefix: abi::Bytes::new(b"/srv/nginx/"),
    };
    let rc = entry(&setup);
    (
        rc,
        failure.into_inner().unwrap(),
        log_handle.log.into_inner().unwrap(),
    )
}

/// Runs the SDK's init with `params` and `make`, as the module does in a worker.
fn init_instance<M, H, E>(params: &[(&str, &str)], make: M) -> Result<*mut std::ffi::c_void, String>
where
    M: FnOnce(&gateway::Config) -> Result<H, E>,
    H: gateway::Handler,
    E: std::fmt::Display,
{
    let mut instance = std::ptr::null_mut();
    let (rc, failure, _) = with_setup(params, IN_WORKER_0, |setup| unsafe {
        gateway::__private::init(setup, &mut instance, "test-app", make)
    });
    match rc {
        0 => Ok(instance),
        _ => Err(failure.expect("a failed init says why")),
    }
}

/// Calls `instance` with a request for `path`, as the module does.
fn call_instance(instance: *mut std::ffi::c_void, path: &str) -> Completion {
    let pairs = [abi::Pair {
        name: abi::Bytes::new(b"PATH_INFO"),
        value: abi::Bytes::new(path.as_bytes()),
    }];
    let request = abi::Request {
        host: &HOST,
        environ: pairs.as_ptr(),
        environ_len: 1,
        body: std::ptr::null(),
        body_len: 0,
    };
    let call = FakeCall::default();
    unsafe { gateway::__private::call(instance, call.handle(), &request) };
    call.completion()
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

    assert_eq!(
        call_instance(instance, "/you").body,
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

#[test]
fn request_lines_are_logged_with_the_call_handle() {
    let done = run(&[], |request| {
        request.log(LogLevel::Warn, "careful");
        let logger = request.logger();
        logger.info(format_args!("n = {}", 3));
        logger.trace("fine detail");
        "ok"
    });
    assert_eq!(
        done.log,
        vec![
            (abi::LOG_WARN, "careful".to_string()),
            (abi::LOG_INFO, "n = 3".to_string()),
            (abi::LOG_TRACE, "fine detail".to_string()),
        ]
    );
}

#[test]
fn a_request_logger_kept_past_its_call_no_longer_uses_the_handle() {
    // Answered with bytes, failed, and panicked: each completes the call, which ends its
    // handle, so later lines go out with a null handle instead.
    let kept = Mutex::new(Vec::new());
    let done = run(&[], |request| {
        kept.lock().unwrap().push(request.logger());
        "bytes"
    });
    assert_eq!(done.body, b"bytes");
    let done = run(&[], |request| {
        kept.lock().unwrap().push(request.logger());
        gateway::Error::internal("failed")
    });
    assert_eq!(done.failure.as_deref(), Some("failed"));
    let done = run(&[], |request| -> &'static str {
        kept.lock().unwrap().push(request.logger());
        panic!("panicked")
    });
    assert!(done.failure.is_some());

    for (i, logger) in kept.into_inner().unwrap().iter().enumerate() {
        let message = format!("kept logger {i} after its call");
        logger.error(&message);
        assert!(logged_unnamed(&message), "{message}");
    }
}

#[test]
fn a_stream_logs_with_the_call_handle_until_its_release() {
    let kept = Mutex::new(None);
    let done = run(&[], |request| {
        let logger = request.logger();
        *kept.lock().unwrap() = Some(logger.clone());
        gateway::Body::from_iter((1..=2).map(move |i| {
            logger.debug(format_args!("chunk {i}"));
            format!("{i}\n")
        }))
    });
    assert_eq!(done.body, b"1\n2\n");
    assert_eq!(
        done.log,
        vec![
            (abi::LOG_DEBUG, "chunk 1".to_string()),
            (abi::LOG_DEBUG, "chunk 2".to_string()),
        ]
    );
    let message = "stream logger after its release";
    kept.into_inner().unwrap().unwrap().warn(message);
    assert!(logged_unnamed(message));
}

#[test]
fn a_module_of_abi_1_0_is_never_asked_to_log() {
    // Its table has no `log`: lines go to stderr, and the call completes as ever.
    let done = run_on(host_1_0(), &[], &[], |request| {
        request.log(LogLevel::Info, "to stderr");
        request.logger().info("to stderr too");
        "ok"
    });
    assert_eq!((done.status, done.body.as_slice()), (200, &b"ok"[..]));
    assert!(done.log.is_empty());
}

#[test]
fn init_sees_how_the_instance_runs_and_logs_with_the_setup_handle() {
    let seen = Mutex::new(None);
    let mut instance = std::ptr::null_mut();
    let runs = Runs {
        runs_on: abi::RUNS_ON_THREAD_POOL,
        threads: 4,
        worker: 2,
    };
    let (rc, failure, log) = with_setup(&[], runs, |setup| unsafe {
        gateway::__private::init(setup, &mut instance, "test-app", |config| {
            *seen.lock().unwrap() = Some((
                config.runs_on(),
                config.worker(),
                config.prefix().map(std::path::Path::to_path_buf),
                config.resolve_path("data/app.sqlite3"),
            ));
            config.logger().info("starting");
            let logger = config.logger();
            Ok::<_, Infallible>(move |_: &Request<'_>| {
                logger.info("instance line");
                "ok"
            })
        })
    });
    assert_eq!((rc, failure), (0, None));
    assert_eq!(
        seen.into_inner().unwrap(),
        Some((
            Some(RunsOn::ThreadPool { threads: 4 }),
            Some(2),
            Some("/srv/nginx/".into()),
            "/srv/nginx/data/app.sqlite3".into()
        ))
    );
    assert_eq!(log, vec![(abi::LOG_INFO, "starting".to_string())]);
    unsafe { gateway::__private::shutdown(instance) };
}

#[test]
fn the_instance_logger_outlives_shutdown_without_its_handle() {
    static MESSAGE: &str = "instance logger after shutdown";
    let kept = std::sync::Arc::new(Mutex::new(None));
    let keep = kept.clone();
    let instance = init_instance(&[], move |config| {
        *keep.lock().unwrap() = Some(config.logger());
        Ok::<_, Infallible>(|_: &Request<'_>| "ok")
    })
    .unwrap();
    unsafe { gateway::__private::shutdown(instance) };
    kept.lock().unwrap().as_ref().unwrap().info(MESSAGE);
    assert!(logged_unnamed(MESSAGE));
}

#[test]
fn a_setup_of_abi_1_0_is_read_only_up_to_its_end() {
    /// A module of ABI 1.0's `Setup`, as it was: it ends at `context`.
    #[repr(C)]
    struct Setup1_0 {
        host: *const abi::Host,
        params: *const abi::Pair,
        params_len: usize,
        fail: unsafe extern "C" fn(*const abi::Setup, abi::Bytes),
        context: *mut std::ffi::c_void,
    }
    let pairs = [abi::Pair {
        name: abi::Bytes::new(b"greeting"),
        value: abi::Bytes::new(b"Hi"),
    }];
    let failure = Mutex::new(None::<String>);
    let setup = Setup1_0 {
        host: host_1_0(),
        params: pairs.as_ptr(),
        params_len: pairs.len(),
        fail: setup_fail,
        context: (&failure as *const Mutex<Option<String>>).cast_mut().cast(),
    };
    let seen = Mutex::new(None);
    let mut instance = std::ptr::null_mut();
    let rc = unsafe {
        gateway::__private::init(
            (&setup as *const Setup1_0).cast(),
            &mut instance,
            "test-app",
            |config| {
                config.logger().info("to stderr");
                *seen.lock().unwrap() = Some((
                    config.get("greeting").map(str::to_string),
                    config.runs_on(),
                    config.worker(),
                    config.prefix().is_none(),
                ));
                Ok::<_, Infallible>(|_: &Request<'_>| "ok")
            },
        )
    };
    assert_eq!(rc, 0);
    assert_eq!(
        seen.into_inner().unwrap(),
        Some((Some("Hi".to_string()), None, None, true))
    );
    unsafe { gateway::__private::shutdown(instance) };
}

// The app! form with a configuration check, as an app library exports it.
fn validate(config: &gateway::Config) -> Result<(), gateway::ConfigError> {
    assert_eq!(config.worker(), None, "the check runs in no worker");
    if config.get("explode").is_some() {
        panic!("exploded on purpose");
    }
    config
        .logger()
        .warn(format_args!("checking on {:?}", config.runs_on()));
    config.require("greeting").map(drop)
}

fn start_greeter(config: &gateway::Config) -> Result<Greeter, gateway::ConfigError> {
    static DROPPED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    Ok(Greeter {
        greeting: config.require("greeting")?.to_string(),
        dropped: &DROPPED,
    })
}

gateway::app!(init = start_greeter, check = validate);

const IN_CHECK: Runs = Runs {
    runs_on: abi::RUNS_ON_THREAD_POOL,
    threads: 8,
    worker: abi::NO_WORKER,
};

#[test]
fn the_exported_check_accepts_or_refuses_a_location_settings() {
    let check = ngx_gateway_app
        .check
        .expect("app! with check = exports one");
    let (rc, failure, log) = with_setup(&[("greeting", "Hi")], IN_CHECK, |setup| unsafe {
        check(setup)
    });
    assert_eq!((rc, failure), (0, None));
    assert_eq!(
        log,
        vec![(
            abi::LOG_WARN,
            "checking on Some(ThreadPool { threads: 8 })".to_string()
        )]
    );

    let (rc, failure, _) = with_setup(&[], IN_CHECK, |setup| unsafe { check(setup) });
    assert_eq!(rc, 1);
    assert_eq!(
        failure.as_deref(),
        Some(
            "check failed: missing setting: add `gateway_app_param greeting ...;` to the location"
        )
    );

    let (rc, failure, _) = with_setup(&[("explode", "")], IN_CHECK, |setup| unsafe {
        check(setup)
    });
    assert_eq!(rc, 1);
    let failure = failure.unwrap();
    assert!(
        failure.starts_with("check panicked at sdk/tests/abi_dispatch.rs:")
            && failure.ends_with(": exploded on purpose"),
        "{failure}"
    );
}

#[test]
fn the_exported_init_and_call_serve_the_app() {
    assert_eq!(ngx_gateway_app.abi_minor, abi::ABI_MINOR);
    let mut instance = std::ptr::null_mut();
    let (rc, failure, _) = with_setup(&[("greeting", "Hey")], IN_WORKER_0, |setup| unsafe {
        (ngx_gateway_app.init)(setup, &mut instance)
    });
    assert_eq!((rc, failure), (0, None));
    assert_eq!(call_instance(instance, "/there").body, b"Hey, /there!");
    unsafe { (ngx_gateway_app.shutdown)(instance) };
}
