//! An axum Router mounted in nginx with `gateway::tower_app!`, on a tokio runtime per worker.
//! The routes exercise what the adapter promises (test-nginx/025-tower.t):
//!
//! - `/hello`: the `greeting` param (default "Hello from axum!") and a newline;
//! - `/sleep?ms=N`: answers after `tokio::time::sleep(N ms)`;
//! - `/stream?n=N&ms=M&size=S&panic_at=P`: a streamed body of N chunks, one every M ms;
//!   chunk k is `chunk k\n`, or with `size` S bytes, byte i being the letter `(k + i) % 26`
//!   from `a`; with `panic_at`, the stream panics instead of making chunk P;
//! - `/sse?n=N&ms=M`: server-sent events (axum's `Sse`), N `tick` events one every M ms, the
//!   data of event k being k;
//! - `/panic`: panics;
//! - `/trace`: `tracing` events at each level (some in a span), and one from a task the
//!   handler spawns, which is outside the request (nginx's error log shows them);
//! - `/environ`: the `gateway::tower::Environ` extension (and the URI and `x-foo` header the
//!   service got) as JSON;
//! - `/drops`: how many request futures and body streams were dropped before they finished
//!   (a client gone, a timeout), in this worker;
//! - `/echo`: the POSTed body, as is.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Uri};
use axum::response::sse::{Event, Sse};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use gateway::serde_json::{json, Value};
use gateway::tower::Environ;
use serde::Deserialize;

/// Futures and streams dropped before they finished.
static DROPS: AtomicU64 = AtomicU64::new(0);

/// Counts a drop unless disarmed first: kept in a future or a stream, it tells a cancellation
/// from a normal end.
struct DropCounter {
    armed: bool,
}

impl DropCounter {
    fn new() -> Self {
        DropCounter { armed: true }
    }

    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for DropCounter {
    fn drop(&mut self) {
        if self.armed {
            DROPS.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[derive(Deserialize)]
struct SleepQuery {
    #[serde(default)]
    ms: u64,
}

async fn sleep(Query(SleepQuery { ms }): Query<SleepQuery>) -> String {
    let counter = DropCounter::new();
    tokio::time::sleep(Duration::from_millis(ms)).await;
    counter.disarm();
    format!("slept {ms} ms\n")
}

#[derive(Deserialize)]
struct StreamQuery {
    #[serde(default)]
    n: u64,
    #[serde(default)]
    ms: u64,
    size: Option<usize>,
    panic_at: Option<u64>,
}

/// Letters enough for any chunk from any starting letter, shared by every chunk.
fn letters(size: usize) -> Bytes {
    (0..size + 26).map(|i| b'a' + (i % 26) as u8).collect()
}

async fn stream(Query(query): Query<StreamQuery>) -> Body {
    let StreamQuery {
        n,
        ms,
        size,
        panic_at,
    } = query;
    let letters = size.map(letters);
    let chunk = move |k: u64| match (&letters, size) {
        (Some(letters), Some(size)) => {
            let start = (k % 26) as usize;
            letters.slice(start..start + size)
        }
        _ => Bytes::from(format!("chunk {k}\n")),
    };
    let chunks =
        futures_util::stream::unfold((0, Some(DropCounter::new())), move |(k, mut counter)| {
            let chunk = chunk.clone();
            async move {
                if k == n {
                    if let Some(counter) = counter.take() {
                        counter.disarm();
                    }
                    return None;
                }
                if ms > 0 {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                if panic_at == Some(k) {
                    panic!("stream boom at chunk {k}");
                }
                Some((Ok::<_, Infallible>(chunk(k)), (k + 1, counter)))
            }
        });
    Body::from_stream(chunks)
}

#[derive(Deserialize)]
struct SseQuery {
    #[serde(default)]
    n: u64,
    #[serde(default)]
    ms: u64,
}

async fn sse(
    Query(SseQuery { n, ms }): Query<SseQuery>,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    tracing::info!(n, ms, "events start");
    let events = futures_util::stream::unfold(
        (0, Some(DropCounter::new())),
        move |(k, mut counter)| async move {
            if k == n {
                if let Some(counter) = counter.take() {
                    counter.disarm();
                }
                return None;
            }
            tokio::time::sleep(Duration::from_millis(ms)).await;
            let event = Event::default().event("tick").data(k.to_string());
            Some((Ok(event), (k + 1, counter)))
        },
    );
    Sse::new(events)
}

async fn trace() -> &'static str {
    tracing::error!(code = 7, "an error event");
    tracing::warn!("a warning");
    tracing::info_span!("work", step = 1).in_scope(|| tracing::info!(rows = 3, "done"));
    tracing::debug!("detail, below the default tracing_level");
    tracing::trace!("finer still");
    // A task of its own is outside the request: its lines name the app only.
    let spawned = tokio::spawn(async { tracing::info!("from a spawned task") });
    if spawned.await.is_err() {
        tracing::error!("the spawned task failed");
    }
    "traced\n"
}

async fn environ(
    Extension(environ): Extension<Environ>,
    uri: Uri,
    headers: HeaderMap,
) -> Json<Value> {
    Json(json!({
        "script_name": environ.script_name(),
        "path_info": environ.get_str("PATH_INFO"),
        "request_id": environ.request_id(),
        "remote_addr": environ.remote_addr(),
        "greeting_param": environ.get_str("GREETING"),
        "uri": uri.to_string(),
        "x_foo": headers.get("x-foo").and_then(|value| value.to_str().ok()),
    }))
}

/// Where the handler ran: its first poll on nginx's loop (the worker's main thread, whose id is
/// the process's), and after it waited, on the runtime's threads (named by the adapter).
async fn threads() -> String {
    let name = || {
        let own = std::fs::read_link("/proc/thread-self").unwrap_or_default();
        if own.ends_with(format!("task/{}", std::process::id())) {
            "main".to_string()
        } else {
            std::thread::current()
                .name()
                .unwrap_or("unnamed")
                .to_string()
        }
    };
    let first = name();
    tokio::task::yield_now().await;
    format!("{first} then {}\n", name())
}

async fn panics() -> &'static str {
    panic!("boom from axum")
}

async fn drops() -> String {
    format!("{}\n", DROPS.load(Ordering::SeqCst))
}

async fn echo(body: Bytes) -> Bytes {
    body
}

fn make(config: &gateway::Config) -> Result<Router, gateway::ConfigError> {
    let greeting = config.get("greeting").unwrap_or("Hello from axum!");
    let hello = format!("{greeting}\n");
    tracing::info!(greeting, "ready");
    Ok(Router::new()
        .route(
            "/hello",
            get(|State(hello): State<String>| async move { hello }),
        )
        .route("/sleep", get(sleep))
        .route("/stream", get(stream))
        .route("/sse", get(sse))
        .route("/panic", get(panics))
        .route("/threads", get(threads))
        .route("/trace", get(trace))
        .route("/environ", get(environ))
        .route("/drops", get(drops))
        .route("/echo", post(echo))
        .with_state(hello))
}

gateway::tower_app!(init = make);
