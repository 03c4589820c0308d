//! The app `scripts/bench` measures: the same four workloads, byte for byte, as the Lua,
//! Python (uWSGI) and Rust proxy rows of the benchmark.
//!
//! ```nginx
//! location / {
//!     gateway_app /path/to/libbench.so;
//!     gateway_app_param templates /path/to/bench/templates;
//! }
//! ```
//!
//! - `GET /hello`: `Hello, World!\n`.
//! - `GET /json`: 10 objects, built and serialized per request.
//! - `GET /template?name=NAME`: `page.html` rendered per request with a title, the name and a
//!   20-item loop.
//! - `POST /echo`: `<length> <md5 hex>\n` of the body.
//! - `GET /sleep?ms=N`: blocks its thread N ms (at most 1000, default 50), then answers
//!   `slept N ms\n`: the slow query of the `mixed` workload, served on a thread pool only (on
//!   the event loop it would stall every other request).

use std::io::BufRead;

use gateway::minijinja::{context, Value};
use gateway::{
    get, post, Config, ConfigError, Error, Html, Json, Request, Router, StatusCode, Templates,
};
use openssl::hash::{Hasher, MessageDigest};
use serde::{Deserialize, Serialize};

/// The title of the template page.
pub const TITLE: &str = "ngx-gateway bench";

/// One object of the JSON workload. Field order is the order on the wire: every row of the
/// benchmark writes the same bytes.
#[derive(Serialize)]
pub struct Item {
    pub id: u32,
    pub name: String,
    pub price: f64,
    pub active: bool,
    pub tags: [&'static str; 2],
}

/// The 10 objects of the JSON workload, built anew for each request.
pub fn items() -> Vec<Item> {
    (1..=10)
        .map(|id| Item {
            id,
            name: format!("item {id}"),
            price: f64::from(id) + 0.25,
            active: id % 2 == 0,
            tags: ["fast", "small"],
        })
        .collect()
}

/// One line of the template's loop.
#[derive(Serialize)]
pub struct Entry {
    pub id: u32,
    pub name: String,
    pub count: u32,
}

/// The 20 entries the template page loops over.
pub fn entries() -> Vec<Entry> {
    (1..=20)
        .map(|id| Entry {
            id,
            name: format!("Item {id}"),
            count: id * 3,
        })
        .collect()
}

/// The app's state: the templates, and the page's entries as a template value, made once as
/// the Python and Lua rows keep theirs as native objects.
pub struct Bench {
    templates: Templates,
    entries: Value,
}

fn hello(_: &Request) -> &'static str {
    "Hello, World!\n"
}

fn json(_: &Request) -> Json<Vec<Item>> {
    Json(items())
}

fn template(request: &Request, bench: &Bench) -> Result<Html<String>, Error> {
    #[derive(Deserialize)]
    struct Query {
        name: Option<String>,
    }
    let query: Query = request.query()?;
    bench.templates.render(
        "page.html",
        context! {
            title => TITLE,
            name => query.name.as_deref().unwrap_or("World"),
            items => bench.entries.clone(),
        },
    )
}

fn echo(request: &Request) -> Result<String, (StatusCode, String)> {
    let mut body = request.body();
    let mut hasher = Hasher::new(MessageDigest::md5()).map_err(md5_error)?;
    let mut length = 0u64;
    loop {
        let chunk = body.fill_buf().map_err(|error| {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("reading the body failed: {error}\n"),
            )
        })?;
        if chunk.is_empty() {
            break;
        }
        hasher.update(chunk).map_err(md5_error)?;
        let count = chunk.len();
        length += count as u64;
        body.consume(count);
    }
    let digest = hasher.finish().map_err(md5_error)?;
    Ok(format!("{length} {}\n", hex(&digest)))
}

/// The longest `/sleep` may block a thread: enough for any slow query the bench models.
const MAX_SLEEP_MS: u64 = 1000;

fn sleep(request: &Request) -> Result<String, Error> {
    #[derive(Deserialize)]
    struct Query {
        ms: Option<u64>,
    }
    let query: Query = request.query()?;
    let ms = query.ms.unwrap_or(50);
    if ms > MAX_SLEEP_MS {
        return Err(Error::status(
            StatusCode::BAD_REQUEST,
            format!("ms is at most {MAX_SLEEP_MS}\n"),
        ));
    }
    std::thread::sleep(std::time::Duration::from_millis(ms));
    Ok(format!("slept {ms} ms\n"))
}

fn md5_error(error: openssl::error::ErrorStack) -> (StatusCode, String) {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("md5 failed: {error}\n"),
    )
}

/// Lowercase hex, as Lua's `ngx.md5` and Python's `hexdigest` write it.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 15)] as char);
    }
    out
}

/// The router, with templates from `gateway_app_param templates DIR;`.
pub fn app(config: &Config) -> Result<Router<Bench>, ConfigError> {
    let bench = Bench {
        templates: Templates::from_config(config)?,
        entries: Value::from(gateway::minijinja::value::Serde(entries())),
    };
    Ok(Router::with_state(bench)
        .route("/hello", get(hello))
        .route("/json", get(json))
        .route("/template", get(template))
        .route("/echo", post(echo))
        .route("/sleep", get(sleep)))
}

gateway::app!(init = app);
