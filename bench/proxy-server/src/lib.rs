//! The bench's axum app: the same four workloads, byte for byte, as the ngx-gateway app in
//! examples/bench. One Router, served two ways: by `bench-proxy-server` (src/main.rs) behind
//! nginx's proxy_pass, and in-process by nginx through bench/tower, a `gateway::tower_app!`
//! library that mounts [`router`] as it is.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use minijinja::{context, Environment, Value};
use openssl::hash::{hash, MessageDigest};
use serde::{Deserialize, Serialize};

const TITLE: &str = "ngx-gateway bench";

#[derive(Serialize)]
struct Item {
    id: u32,
    name: String,
    price: f64,
    active: bool,
    tags: [&'static str; 2],
}

#[derive(Serialize)]
struct Entry {
    id: u32,
    name: String,
    count: u32,
}

struct App {
    templates: Environment<'static>,
    /// Made once, as the ngx-gateway app does.
    entries: Value,
}

async fn hello() -> &'static str {
    "Hello, World!\n"
}

async fn json() -> Response {
    let items: Vec<Item> = (1..=10)
        .map(|id| Item {
            id,
            name: format!("item {id}"),
            price: f64::from(id) + 0.25,
            active: id % 2 == 0,
            tags: ["fast", "small"],
        })
        .collect();
    let body = serde_json::to_vec(&items).expect("serializable");
    ([(CONTENT_TYPE, "application/json")], body).into_response()
}

#[derive(Deserialize)]
struct NameQuery {
    name: Option<String>,
}

async fn template(State(app): State<Arc<App>>, Query(query): Query<NameQuery>) -> Response {
    let page = context! {
        title => TITLE,
        name => query.name.as_deref().unwrap_or("World"),
        items => app.entries.clone(),
    };
    match app
        .templates
        .get_template("page.html")
        .and_then(|template| template.render(page))
    {
        Ok(html) => Html(html).into_response(),
        Err(error) => (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("template failed: {error}\n"),
        )
            .into_response(),
    }
}

async fn echo(body: Bytes) -> String {
    let digest = hash(MessageDigest::md5(), &body).expect("md5");
    let mut hex = String::with_capacity(32);
    for byte in digest.iter() {
        hex.push_str(&format!("{byte:02x}"));
    }
    format!("{} {hex}\n", body.len())
}

/// The Router, its templates read from `templates` (bench/templates).
pub fn router(templates: &str) -> Router {
    let mut environment = Environment::new();
    environment.set_loader(minijinja::path_loader(templates));
    // As the SDK's Templates do: minijinja otherwise stats the file at every lookup, to
    // reload it when it changes (its default, meant for development).
    environment.set_auto_reload(false);
    let app = Arc::new(App {
        templates: environment,
        entries: Value::from(minijinja::value::Serde(
            (1..=20)
                .map(|id| Entry {
                    id,
                    name: format!("Item {id}"),
                    count: id * 3,
                })
                .collect::<Vec<_>>(),
        )),
    });
    Router::new()
        .route("/hello", get(hello))
        .route("/json", get(json))
        .route("/template", get(template))
        .route("/echo", post(echo))
        .with_state(app)
}
