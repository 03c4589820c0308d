//! What a tower service answers, handed to the module: a body that is whole at once (or
//! small and of known size) as BODY_BYTES, any other as BODY_STREAM, pulled by the event loop
//! from a task that polls the body one frame at a time.

use std::ffi::c_void;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_LENGTH};
use http_body::{Body as _, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt;
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tracing::Instrument;

use super::{tracing_bridge, CallHandle};
use crate::abi;
use crate::host::Host;
use crate::logging::Logger;
use crate::wire;

/// The error type boxed bodies carry, as tower's `BoxError`.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A service's response body, its type erased.
pub(crate) type BoxBody = UnsyncBoxBody<Bytes, BoxError>;

/// A body of known size up to this is gathered and sent as bytes: a stream would cost a task
/// and a pull per chunk for nothing.
const GATHER_LIMIT: u64 = 1024 * 1024;

/// What becomes of a response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    /// No bytes at all.
    Empty,
    /// Small and of known size: gathered, then sent as bytes.
    Gather,
    /// Polled once: if that first frame ends the body it is sent as bytes, else streamed.
    Probe,
}

pub(crate) fn plan(ended: bool, size: &SizeHint) -> Plan {
    if ended || size.exact() == Some(0) {
        Plan::Empty
    } else if size.exact().is_some_and(|len| len <= GATHER_LIMIT) {
        Plan::Gather
    } else {
        Plan::Probe
    }
}

/// A response body ready for the module.
pub(crate) enum Prepared {
    Bytes(Bytes),
    /// Its first chunk, if polling once gave one, and the rest.
    Stream(Option<Bytes>, BoxBody),
}

/// Decides how to send `body` (see [`Plan`]), polling it as needed. Generic, so that a body
/// sent as bytes is never boxed: only a streamed one is.
pub(crate) async fn prepare<B>(body: B) -> Result<Prepared, String>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let failed = |error: BoxError| format!("response body failed: {error}");
    match plan(body.is_end_stream(), &body.size_hint()) {
        Plan::Empty => Ok(Prepared::Bytes(Bytes::new())),
        // Trailers are dropped: nginx sends none.
        Plan::Gather => Ok(Prepared::Bytes(
            body.collect()
                .await
                .map_err(|error| failed(error.into()))?
                .to_bytes(),
        )),
        Plan::Probe => {
            let mut body = body.map_err(Into::into).boxed_unsync();
            // One poll only: a body whose first chunk is not ready yet (a timer, an event
            // source) is streamed at once, so the client has the headers meanwhile.
            let first = poll_fn(|cx| Poll::Ready(Pin::new(&mut body).poll_frame(cx))).await;
            match first {
                Poll::Ready(None) => Ok(Prepared::Bytes(Bytes::new())),
                Poll::Ready(Some(Err(error))) => Err(failed(error)),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) if body.is_end_stream() => Ok(Prepared::Bytes(data)),
                    Ok(data) => Ok(Prepared::Stream(Some(data), body)),
                    Err(_trailers) => Ok(Prepared::Stream(None, body)),
                },
                Poll::Pending => Ok(Prepared::Stream(None, body)),
            }
        }
    }
}

/// The response headers the module can send: hop-by-hop ones (which hyper-style bodies and
/// middleware may add, and nginx manages itself) are left out; a streamed body of known size
/// gets a Content-Length if it has none, as hyper would give it.
pub(crate) fn sendable_headers(mut headers: http::HeaderMap, size: &SizeHint) -> http::HeaderMap {
    let hop_by_hop: Vec<_> = headers
        .iter()
        .filter(|(name, _)| wire::is_hop_by_hop(name.as_str().as_bytes()))
        .map(|(name, _)| name.clone())
        .collect();
    for name in hop_by_hop {
        headers.remove(name);
    }
    if let Some(len) = size.exact() {
        headers
            .entry(CONTENT_LENGTH)
            .or_insert_with(|| HeaderValue::from(len));
    }
    headers
}

/// One piece of a streamed body, from the task that polls it to the event loop.
enum Piece {
    Data(Bytes),
    End,
    Failed(String),
    Panicked(String),
}

/// How the task that polls a body tells the event loop a chunk is ready.
struct Wakeup {
    host: Host,
    call: CallHandle,
    state: Mutex<WakeState>,
}

#[derive(Default)]
struct WakeState {
    /// `stream_next` answered STREAM_PENDING and no wake was sent since.
    waiting: bool,
    /// The module released the response: the call's handle is gone.
    released: bool,
}

impl Wakeup {
    fn chunk_ready(&self) {
        // Under the lock: a release waits for a wake in progress, and none starts after it.
        let mut state = self.state.lock();
        if state.waiting && !state.released {
            state.waiting = false;
            // SAFETY: the handle of a call answered with a stream is valid for wakes until the
            // release, which cannot have happened (`released` is false under the lock).
            unsafe { self.host.wake(self.call.0) };
        }
    }
}

/// Polls `body` and hands its frames to the event loop, one at a time: the next frame is
/// polled only once the loop took the previous one (a channel of one, a slot reserved before
/// polling), so a slow client slows the body down instead of filling memory.
async fn produce(
    first: Option<Bytes>,
    mut body: BoxBody,
    tx: mpsc::Sender<Piece>,
    wakeup: Arc<Wakeup>,
) {
    let mut first = first;
    loop {
        // Fails once the response is released (the receiver dropped): the body is dropped.
        let Ok(permit) = tx.reserve().await else {
            return;
        };
        let piece = match first.take() {
            Some(data) => Piece::Data(data),
            None => match super::CatchPanic::new("stream", body.frame()).await {
                Ok(None) => Piece::End,
                Ok(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) if !data.is_empty() => Piece::Data(data),
                    // Trailers (nginx sends none) and empty frames: nothing to hand over.
                    _ => continue,
                },
                Ok(Some(Err(error))) => Piece::Failed(format!("stream failed: {error}")),
                Err(panic) => Piece::Panicked(panic),
            },
        };
        let last = !matches!(piece, Piece::Data(_));
        permit.send(piece);
        wakeup.chunk_ready();
        if last {
            return;
        }
    }
}

/// The event loop's end of a stream.
struct Pull {
    rx: mpsc::Receiver<Piece>,
    wakeup: Arc<Wakeup>,
    producer: tokio::task::AbortHandle,
}

/// A response on its way to the module: the ABI view first, then what it points into.
#[repr(C)]
pub(crate) struct Outgoing {
    abi: abi::Response,
    pairs: Vec<abi::Pair>,
    /// Owns the bytes `pairs` point to.
    headers: http::HeaderMap,
    body: Bytes,
    pull: Option<Pull>,
    /// The chunk being sent, or a stream's failure message, kept until the next pull.
    current: Bytes,
    /// The request's logger (its extension), revoked when the call's handle ends.
    logger: Logger,
}

impl Outgoing {
    /// Hands `parts` and `body` to the module as the answer to `call`; a stream's task is
    /// spawned on `runtime`, its events logged as the request's, in its `span`.
    pub(crate) fn respond(
        host: Host,
        call: CallHandle,
        parts: http::response::Parts,
        body: Prepared,
        logger: Logger,
        span: tracing::Span,
        runtime: &tokio::runtime::Handle,
    ) {
        let (bytes, pull, size) = match body {
            Prepared::Bytes(bytes) => (bytes, None, SizeHint::with_exact(0)),
            Prepared::Stream(first, rest) => {
                let mut size = rest.size_hint();
                if let (Some(first), Some(len)) = (&first, size.exact()) {
                    size.set_exact(len + first.len() as u64);
                }
                let (tx, rx) = mpsc::channel(1);
                let wakeup = Arc::new(Wakeup {
                    host,
                    call,
                    state: Mutex::default(),
                });
                let producer = produce(first, rest, tx, Arc::clone(&wakeup)).instrument(span);
                let producer = runtime.spawn(tracing_bridge::in_request(logger.clone(), producer));
                let pull = Pull {
                    rx,
                    wakeup,
                    producer: producer.abort_handle(),
                };
                (Bytes::new(), Some(pull), size)
            }
        };
        // The module sets Content-Length for bytes itself.
        let headers = if pull.is_some() {
            sendable_headers(parts.headers, &size)
        } else {
            sendable_headers(parts.headers, &SizeHint::new())
        };
        // The pairs point into `headers`' heap storage (or static names), which moving the
        // map into the box does not move.
        let pairs: Vec<abi::Pair> = headers
            .iter()
            .map(|(name, value)| abi::Pair {
                name: abi::Bytes::new(name.as_str().as_bytes()),
                value: abi::Bytes::new(value.as_bytes()),
            })
            .collect();
        let streamed = pull.is_some();
        let outgoing = Box::new(Outgoing {
            abi: abi::Response {
                status: parts.status.as_u16(),
                reason: abi::Bytes::EMPTY,
                headers: pairs.as_ptr(),
                headers_len: pairs.len(),
                body_kind: if streamed {
                    abi::BODY_STREAM
                } else {
                    abi::BODY_BYTES
                },
                body: abi::Bytes::new(&bytes),
                owner: std::ptr::null_mut(),
                release,
                stream: std::ptr::null_mut(),
                stream_next: streamed.then_some(next_chunk as _),
            },
            pairs,
            headers,
            body: bytes,
            pull,
            current: Bytes::new(),
            logger,
        });
        if !streamed {
            // The call's handle ends with the completion.
            outgoing.logger.revoke();
        }
        let this = Box::into_raw(outgoing);
        // SAFETY: `this` is a live box whose first field is the ABI response; the module hands
        // it back to `release` exactly once, and the call is not completed yet.
        unsafe {
            (*this).abi.owner = this.cast();
            (*this).abi.stream = this.cast();
            host.respond(call.0, this.cast::<abi::Response>());
        }
    }
}

unsafe extern "C" fn next_chunk(stream: *mut c_void, chunk: *mut abi::Chunk) -> i32 {
    // SAFETY: `stream` is the live `Outgoing` handed out with this function; the module pulls
    // one at a time, never after the release.
    let outgoing = unsafe { &mut *stream.cast::<Outgoing>() };
    let Some(pull) = &mut outgoing.pull else {
        return abi::STREAM_END;
    };
    // The chunk sent last is done with: the module pulls again only after that.
    outgoing.current = Bytes::new();
    let piece = {
        // Looked at under the wake lock: a chunk sent after this look finds `waiting` set.
        let mut state = pull.wakeup.state.lock();
        match pull.rx.try_recv() {
            Ok(piece) => piece,
            Err(mpsc::error::TryRecvError::Empty) => {
                state.waiting = true;
                return abi::STREAM_PENDING;
            }
            Err(mpsc::error::TryRecvError::Disconnected) => {
                Piece::Failed("the stream's task ended early (the runtime shut down)".into())
            }
        }
    };
    let status = match piece {
        Piece::Data(data) => {
            outgoing.current = data;
            abi::STREAM_CHUNK
        }
        Piece::End => return abi::STREAM_END,
        Piece::Failed(message) => {
            outgoing.current = Bytes::from(message);
            abi::STREAM_ERROR
        }
        Piece::Panicked(message) => {
            outgoing.current = Bytes::from(message);
            abi::STREAM_PANIC
        }
    };
    // SAFETY: the module passes a writable chunk; `current` lives until the next pull or the
    // release.
    unsafe {
        chunk.write(abi::Chunk {
            data: abi::Bytes::new(&outgoing.current),
            flush: 0,
        })
    };
    status
}

unsafe extern "C" fn release(owner: *mut c_void) {
    // SAFETY: `owner` is the box leaked in `Outgoing::respond`, released once.
    let outgoing = unsafe { Box::from_raw(owner.cast::<Outgoing>()) };
    if let Some(pull) = &outgoing.pull {
        // Waits for a wake in progress; none comes after this.
        pull.wakeup.state.lock().released = true;
        // Drops the body now, even if it is waiting for a timer, a database, a client: a
        // client gone or a stream ended must not leave work running.
        pull.producer.abort();
    }
    outgoing.logger.revoke();
    // Dropping the receiver ends a producer still between polls; the rest is plain data.
    drop(outgoing);
}

#[cfg(test)]
mod tests {
    use http_body_util::{Empty, Full, StreamBody};

    use super::*;

    fn boxed<B>(body: B) -> BoxBody
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        body.map_err(Into::into).boxed_unsync()
    }

    fn run<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn plans_follow_the_size_hint() {
        assert_eq!(plan(true, &SizeHint::new()), Plan::Empty);
        assert_eq!(plan(false, &SizeHint::with_exact(0)), Plan::Empty);
        assert_eq!(plan(false, &SizeHint::with_exact(10)), Plan::Gather);
        assert_eq!(
            plan(false, &SizeHint::with_exact(GATHER_LIMIT)),
            Plan::Gather
        );
        assert_eq!(
            plan(false, &SizeHint::with_exact(GATHER_LIMIT + 1)),
            Plan::Probe
        );
        assert_eq!(plan(false, &SizeHint::new()), Plan::Probe);
    }

    #[test]
    fn whole_bodies_are_sent_as_bytes() {
        let prepared = run(prepare(boxed(Empty::<Bytes>::new()))).unwrap();
        assert!(matches!(prepared, Prepared::Bytes(b) if b.is_empty()));
        let prepared = run(prepare(boxed(Full::new(Bytes::from("hello"))))).unwrap();
        assert!(matches!(prepared, Prepared::Bytes(b) if b == "hello"));
        // Of unknown size, but over after one ready frame.
        let prepared = run(prepare(boxed(OneFrame(Some(Bytes::from("one")))))).unwrap();
        assert!(matches!(prepared, Prepared::Bytes(b) if b == "one"));
    }

    /// One frame, of a size it does not tell, and it knows when it ended.
    struct OneFrame(Option<Bytes>);

    impl http_body::Body for OneFrame {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
            Poll::Ready(self.0.take().map(|data| Ok(http_body::Frame::data(data))))
        }

        fn is_end_stream(&self) -> bool {
            self.0.is_none()
        }
    }

    #[test]
    fn bodies_in_several_frames_or_not_ready_are_streamed() {
        let frames = ["a", "b"].map(|s| Ok::<_, BoxError>(http_body::Frame::data(Bytes::from(s))));
        let prepared = run(prepare(boxed(StreamBody::new(futures_util::stream::iter(
            frames,
        )))));
        assert!(matches!(prepared, Ok(Prepared::Stream(Some(first), _)) if first == "a"));
        let later = futures_util::stream::once(async {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            Ok::<_, BoxError>(http_body::Frame::data(Bytes::from("late")))
        });
        let prepared = run(prepare(boxed(StreamBody::new(later))));
        assert!(matches!(prepared, Ok(Prepared::Stream(None, _))));
    }

    #[test]
    fn hop_by_hop_headers_are_left_out() {
        let mut headers = http::HeaderMap::new();
        headers.insert("connection", HeaderValue::from_static("close"));
        headers.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        headers.insert("content-type", HeaderValue::from_static("text/plain"));
        let sent = sendable_headers(headers.clone(), &SizeHint::new());
        assert_eq!(sent.len(), 1);
        assert_eq!(sent["content-type"], "text/plain");
        let sent = sendable_headers(headers, &SizeHint::with_exact(42));
        assert_eq!(sent["content-length"], "42");
    }
}
