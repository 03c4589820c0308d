//! A host of our own for the app side of the ABI (`gateway::__private::dispatch`), doing what
//! the module does with a completed call: it reads the response through the ABI's conversions
//! (`Bytes::as_slice`, `slice_from_abi`), pulls a stream chunk by chunk (or gives up early, as
//! when a client goes away mid-stream), then releases the response exactly once.

use std::cell::RefCell;

use gateway::{IntoResponse, Request};
use gateway_abi as abi;

/// How a streamed body ended, as the host saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEnd {
    End,
    Error(Vec<u8>),
    Panic(Vec<u8>),
    /// The host stopped pulling (the client went away) and released the stream.
    Abandoned,
}

/// A response as the host received it, copied out before its release.
#[derive(Debug, Clone)]
pub struct Seen {
    pub status: u16,
    pub reason: Vec<u8>,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub body_kind: u32,
    pub body: Vec<u8>,
    pub chunks: Vec<(Vec<u8>, bool)>,
    pub stream_end: Option<StreamEnd>,
}

#[derive(Debug, Clone)]
pub enum Completion {
    Responded(Seen),
    /// `cause` is `abi::FAILED` or `abi::PANICKED`.
    Failed {
        cause: u32,
        message: Vec<u8>,
    },
}

struct FakeCall {
    /// Chunks to pull before giving up on a stream.
    pull_limit: usize,
    completions: RefCell<Vec<Completion>>,
}

unsafe extern "C" fn respond(call: *mut abi::Call, response: *const abi::Response) {
    // SAFETY: `call` is the FakeCall `run` passed to dispatch, alive during it.
    let call = unsafe { &*call.cast::<FakeCall>() };
    // SAFETY: the app's response is valid until its release, below.
    let response = unsafe { &*response };
    // SAFETY: as above, for everything the response points to.
    let (reason, pairs, body) = unsafe {
        (
            response.reason.as_slice().to_vec(),
            abi::slice_from_abi(response.headers, response.headers_len),
            response.body.as_slice().to_vec(),
        )
    };
    let headers = pairs
        .iter()
        // SAFETY: as above.
        .map(|pair| unsafe {
            (
                pair.name.as_slice().to_vec(),
                pair.value.as_slice().to_vec(),
            )
        })
        .collect();
    let mut seen = Seen {
        status: response.status,
        reason,
        headers,
        body_kind: response.body_kind,
        body,
        chunks: Vec::new(),
        stream_end: None,
    };
    assert_eq!(
        response.stream_next.is_some(),
        response.body_kind == abi::BODY_STREAM,
        "stream_next is set exactly for streams"
    );
    if let Some(next) = response.stream_next {
        let mut end = StreamEnd::Abandoned;
        while seen.chunks.len() < call.pull_limit {
            let mut chunk = abi::Chunk {
                data: abi::Bytes::EMPTY,
                flush: 0,
            };
            // SAFETY: the stream is live and has not ended; one caller at a time.
            match unsafe { next(response.stream, &mut chunk) } {
                abi::STREAM_CHUNK => seen
                    // SAFETY: a chunk's bytes stay valid until the next call.
                    .chunks
                    .push((unsafe { chunk.data.as_slice() }.to_vec(), chunk.flush != 0)),
                abi::STREAM_END => {
                    end = StreamEnd::End;
                    break;
                }
                abi::STREAM_ERROR => {
                    // SAFETY: the message stays valid until the release.
                    end = StreamEnd::Error(unsafe { chunk.data.as_slice() }.to_vec());
                    break;
                }
                abi::STREAM_PANIC => {
                    // SAFETY: as above.
                    end = StreamEnd::Panic(unsafe { chunk.data.as_slice() }.to_vec());
                    break;
                }
                other => panic!("stream_next returned {other}"),
            }
        }
        seen.stream_end = Some(end);
    }
    // SAFETY: released exactly once, with the response's own owner.
    unsafe { (response.release)(response.owner) };
    call.completions
        .borrow_mut()
        .push(Completion::Responded(seen));
}

unsafe extern "C" fn fail(call: *mut abi::Call, cause: u32, message: abi::Bytes) {
    // SAFETY: as in `respond`.
    let call = unsafe { &*call.cast::<FakeCall>() };
    // SAFETY: the message is valid until `fail` returns.
    let message = unsafe { message.as_slice() }.to_vec();
    assert!(
        cause == abi::FAILED || cause == abi::PANICKED,
        "fail cause {cause}"
    );
    call.completions
        .borrow_mut()
        .push(Completion::Failed { cause, message });
}

/// Ignored: this host pulls a stream to its end at once, and a `STREAM_PENDING` (which the
/// SDK's streams never answer) fails the pull loop above anyway.
unsafe extern "C" fn wake(_call: *mut abi::Call) {}

/// Checks a line as the module would take it, then drops it: the fuzzed handlers do not log.
unsafe extern "C" fn log(_call: *mut abi::Call, level: u32, message: abi::Bytes) {
    assert!(
        (abi::LOG_ERROR..=abi::LOG_TRACE).contains(&level),
        "log level {level}"
    );
    // SAFETY: the message is valid until `log` returns.
    let _ = unsafe { message.as_slice() };
}

static HOST: abi::Host = abi::Host {
    abi_minor: abi::ABI_MINOR,
    respond,
    fail,
    wake,
    log,
};

/// Runs `handler` through the SDK's dispatch with `environ` and `body` as the module would
/// pass them, and returns how the call completed, asserting it completed exactly once.
pub fn run<H, R>(
    environ: &[(Vec<u8>, Vec<u8>)],
    body: &[abi::BodySegment],
    pull_limit: usize,
    handler: H,
) -> Completion
where
    H: FnOnce(&Request<'_>) -> R,
    R: IntoResponse,
{
    // An empty name or value as the module may pass it: a null pointer with a zero length.
    let bytes = |b: &[u8]| {
        if b.is_empty() {
            abi::Bytes::EMPTY
        } else {
            abi::Bytes::new(b)
        }
    };
    let pairs: Vec<abi::Pair> = environ
        .iter()
        .map(|(name, value)| abi::Pair {
            name: bytes(name),
            value: bytes(value),
        })
        .collect();
    // Empty runs as the module may pass them: a null pointer with a zero length.
    let (environ_ptr, body_ptr) = (
        if pairs.is_empty() {
            std::ptr::null()
        } else {
            pairs.as_ptr()
        },
        if body.is_empty() {
            std::ptr::null()
        } else {
            body.as_ptr()
        },
    );
    let request = abi::Request {
        host: &HOST,
        environ: environ_ptr,
        environ_len: pairs.len(),
        body: body_ptr,
        body_len: body.len(),
    };
    let call = FakeCall {
        pull_limit,
        completions: RefCell::new(Vec::new()),
    };
    // SAFETY: a valid request and call handle, alive for the whole dispatch; the host
    // completes synchronously.
    unsafe {
        gateway::__private::dispatch(
            (&call as *const FakeCall).cast_mut().cast::<abi::Call>(),
            &request,
            handler,
        )
    };
    let mut completions = call.completions.into_inner();
    assert_eq!(completions.len(), 1, "a call completes exactly once");
    completions.pop().unwrap()
}
