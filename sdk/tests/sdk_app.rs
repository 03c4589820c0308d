//! The SDK's app-building parts, driven through gateway::testing as app authors would.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use gateway::testing::{check, CapturedLog, LogLine, TestClient};
use gateway::{
    get, post, Body, Config, ConfigError, Error, Json, LogLevel, Redirect, Request, Router, RunsOn,
    StatusCode, Templates,
};
use serde::{Deserialize, Serialize};

#[derive(Default)]
struct State {
    hits: AtomicU64,
}

#[derive(Debug, Deserialize, Serialize, PartialEq)]
struct Item {
    name: String,
    count: u32,
}

fn index(_: &Request) -> &'static str {
    "index\n"
}

fn show(request: &Request, state: &State) -> String {
    let hits = state.hits.fetch_add(1, Ordering::Relaxed) + 1;
    format!("item {} hit {hits}\n", request.param("id").unwrap_or("?"))
}

fn create(request: &Request) -> Result<(StatusCode, Json<Item>), Error> {
    let mut item: Item = request.json()?;
    item.count += 1;
    Ok((StatusCode::CREATED, Json(item)))
}

fn search(request: &Request) -> Result<String, Error> {
    #[derive(Deserialize)]
    struct Search {
        q: String,
        page: Option<u32>,
    }
    let search: Search = request.query()?;
    Ok(format!("{} page {}\n", search.q, search.page.unwrap_or(1)))
}

fn submit(request: &Request) -> Result<Redirect, Error> {
    let form: HashMap<String, String> = request.form()?;
    Ok(Redirect::to(format!(
        "{}/done?name={}",
        request.script_name(),
        form.get("name").map_or("", String::as_str)
    )))
}

fn cookies(request: &Request) -> String {
    format!(
        "theme={:?} lang={:?}\n",
        request.cookie("theme"),
        request.cookie("lang")
    )
}

fn broken(_: &Request) -> Result<String, Error> {
    Err(Error::internal("the database is down"))
}

fn overloaded(_: &Request) -> Result<String, Error> {
    Err(Error::status(
        StatusCode::SERVICE_UNAVAILABLE,
        "busy, try again",
    ))
}

fn app() -> Router<State> {
    Router::with_state(State::default())
        .route("/", get(index))
        .route(
            "/items/{id}",
            get(show).delete(|_: &Request| StatusCode::NO_CONTENT),
        )
        .route("/items", post(create))
        .route("/search", get(search))
        .route("/submit", post(submit))
        .route("/cookies", get(cookies))
        .route("/broken", get(broken))
        .route("/overloaded", get(overloaded))
}

#[test]
fn routes_match_paths_and_methods() {
    let client = TestClient::new(app());
    assert_eq!(client.get("/").send().text(), "index\n");
    assert_eq!(client.get("/items/7").send().text(), "item 7 hit 1\n");
    assert_eq!(
        client.get("/items/8").send().text(),
        "item 8 hit 2\n",
        "state is shared"
    );
    assert_eq!(
        client.delete("/items/8").send().status,
        StatusCode::NO_CONTENT
    );

    let head = client.head("/items/7").send();
    assert_eq!(head.status, 200, "GET answers HEAD");

    let missing = client.get("/nope").send();
    assert_eq!(missing.status, 404);

    let wrong_method = client.put("/items/7").send();
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.header("allow"), Some("GET, DELETE, HEAD"));
}

#[test]
fn the_same_app_works_under_a_mount_point() {
    let client = TestClient::new(app()).mounted_at("/api/");
    assert_eq!(client.get("/api").send().text(), "index\n");
    assert_eq!(client.get("/api/items/3").send().text(), "item 3 hit 1\n");
    let redirect = client.post("/api/submit").form(&[("name", "ada")]).send();
    assert_eq!(redirect.status, StatusCode::SEE_OTHER);
    assert_eq!(redirect.header("location"), Some("/api/done?name=ada"));
}

#[test]
fn json_query_and_form_bodies() {
    let client = TestClient::new(app());
    let created = client
        .post("/items")
        .json(&Item {
            name: "pen".into(),
            count: 1,
        })
        .send();
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.header("content-type"), Some("application/json"));
    assert_eq!(
        created.json::<Item>().unwrap(),
        Item {
            name: "pen".into(),
            count: 2
        }
    );

    let not_json = client
        .post("/items")
        .header("Content-Type", "text/plain")
        .body("x")
        .send();
    assert_eq!(not_json.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let malformed = client
        .post("/items")
        .header("Content-Type", "application/json")
        .body("{")
        .send();
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    let wrong_shape = client
        .post("/items")
        .json(&serde_json::json!({"name": 3}))
        .send();
    assert_eq!(wrong_shape.status, StatusCode::UNPROCESSABLE_ENTITY);

    assert_eq!(
        client.get("/search?q=rust%20nginx&page=2").send().text(),
        "rust nginx page 2\n"
    );
    assert_eq!(
        client.get("/search?page=2").send().status,
        StatusCode::BAD_REQUEST
    );
}

#[test]
fn cookies_are_parsed() {
    let client = TestClient::new(app());
    let response = client
        .get("/cookies")
        .header("Cookie", "theme=dark; lang=en")
        .send();
    assert_eq!(response.text(), "theme=Some(\"dark\") lang=Some(\"en\")\n");
    let split = client
        .get("/cookies")
        .header("Cookie", "theme=light")
        .header("Cookie", "lang=fr")
        .send();
    assert_eq!(split.text(), "theme=Some(\"light\") lang=Some(\"fr\")\n");
}

#[test]
fn server_errors_fail_the_call_and_keep_the_reason_out_of_the_response() {
    let response = TestClient::new(app()).get("/broken").send();
    assert_eq!(response.status, 500);
    assert_eq!(response.failure.as_deref(), Some("the database is down"));
    assert!(response.body.is_empty());

    let deliberate = TestClient::new(app()).get("/overloaded").send();
    assert_eq!(
        (deliberate.status, deliberate.text().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "busy, try again\n")
    );
    assert_eq!(deliberate.failure, None);
}

#[test]
fn templates_render_escape_and_refuse_escaping_names() {
    let dir = std::env::temp_dir().join(format!("gateway-templates-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("pages")).unwrap();
    std::fs::write(
        dir.join("pages/hello.html"),
        "<p>{{ name }}</p>\n{% for i in items %}{{ i }},{% endfor %}",
    )
    .unwrap();
    std::fs::write(dir.join("plain.txt"), "{{ name }}").unwrap();
    std::fs::write(
        dir.join("broken.html"),
        "line one\n{{ name | nosuchfilter }}",
    )
    .unwrap();
    std::fs::write(dir.join("secret"), "secret").unwrap();

    let templates = Templates::new(&dir).unwrap();
    let context = serde_json::json!({"name": "<b>Ada</b>", "items": [1, 2]});
    let page = templates.render("pages/hello.html", &context).unwrap();
    assert_eq!(page.0, "<p>&lt;b&gt;Ada&lt;&#x2f;b&gt;</p>\n1,2,");
    assert_eq!(
        templates.render("plain.txt", &context).unwrap().0,
        "<b>Ada</b>",
        "only html/xml escape"
    );

    for escaping in [
        "../secret",
        "pages/../../secret",
        "/etc/passwd",
        ".hidden",
        "pages//hello.html",
        "",
    ] {
        let error = templates.render(escaping, &context).unwrap_err();
        assert_eq!(error.status_code(), StatusCode::NOT_FOUND, "{escaping:?}");
    }

    let missing = templates.render("nope.html", &context).unwrap_err();
    assert_eq!(missing.status_code(), StatusCode::NOT_FOUND);
    let broken = templates
        .render("broken.html", &context)
        .unwrap_err()
        .to_string();
    assert!(
        broken.starts_with("template \"broken.html\" line 2: "),
        "{broken}"
    );

    // Compiled once: an edit is not seen unless reloading is on.
    std::fs::write(dir.join("plain.txt"), "changed {{ name }}").unwrap();
    assert_eq!(
        templates.render("plain.txt", &context).unwrap().0,
        "<b>Ada</b>"
    );
    let reloading = Templates::new(&dir).unwrap().reloading(true);
    assert_eq!(
        reloading.render("plain.txt", &context).unwrap().0,
        "changed <b>Ada</b>"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn what_a_request_logs_is_in_its_test_response() {
    let client = TestClient::new(|request: &Request| {
        request.log(LogLevel::Warn, format_args!("{} seen", request.method()));
        let log = request.logger();
        Body::from_iter((1..=2).map(move |i| {
            log.debug(format_args!("chunk {i}"));
            format!("{i}\n")
        }))
    });
    let response = client.get("/").send();
    assert_eq!(response.text(), "1\n2\n");
    let line = |level, message: &str| LogLine {
        level,
        message: message.to_string(),
    };
    assert_eq!(
        response.log,
        [
            line(LogLevel::Warn, "GET seen"),
            line(LogLevel::Debug, "chunk 1"),
            line(LogLevel::Debug, "chunk 2"),
        ]
    );
    assert!(
        client.get("/").send().log.len() == 3,
        "one response's lines only"
    );
}

/// An app's init, with what nginx tells it about how it runs.
fn start(config: &Config) -> Result<impl gateway::Handler, ConfigError> {
    let threads = match config.runs_on() {
        Some(RunsOn::ThreadPool { threads }) => threads,
        _ => 1,
    };
    let log = config.logger();
    log.info(format_args!(
        "worker {:?}, {threads} thread(s)",
        config.worker()
    ));
    Ok(move |_: &Request| {
        log.info("called");
        "ok\n"
    })
}

#[test]
fn an_init_logs_through_a_captured_logger() {
    let captured = CapturedLog::new();
    let config = Config::from_pairs([("a", "1")])
        .with_runs_on(RunsOn::ThreadPool { threads: 4 })
        .with_worker(Some(3))
        .with_logger(captured.logger());
    let client = TestClient::new(start(&config).unwrap());
    assert_eq!(client.get("/").send().text(), "ok\n");
    assert_eq!(
        captured.lines(),
        [
            LogLine {
                level: LogLevel::Info,
                message: "worker Some(3), 4 thread(s)".into()
            },
            LogLine {
                level: LogLevel::Info,
                message: "called".into()
            },
        ]
    );
}

#[test]
fn a_config_built_without_nginx_is_worker_0_on_the_event_loop() {
    for config in [Config::default(), Config::from_pairs([("a", "1")])] {
        assert_eq!(config.runs_on(), Some(RunsOn::EventLoop));
        assert_eq!(config.worker(), Some(0));
    }
}

fn validate(config: &Config) -> Result<(), ConfigError> {
    if config.worker().is_some() {
        panic!("the check ran in a worker");
    }
    config.parse::<u32>("repeat")?;
    match config.get("mode") {
        Some("fast" | "safe") | None => Ok(()),
        Some(other) => Err(ConfigError::Invalid {
            name: "mode".into(),
            value: other.into(),
            reason: "expected fast or safe".into(),
        }),
    }
}

#[test]
fn a_check_runs_as_nginx_runs_it() {
    assert_eq!(
        check(validate, &Config::from_pairs([("mode", "fast")])),
        Ok(())
    );
    assert_eq!(
        check(validate, &Config::from_pairs([("mode", "slow")])),
        Err("check failed: setting mode = \"slow\" is invalid: expected fast or safe".into())
    );
    let panicked = check(
        |_: &Config| -> Result<(), ConfigError> { panic!("no") },
        &Config::default(),
    )
    .unwrap_err();
    assert!(
        panicked.starts_with("check panicked at sdk/tests/sdk_app.rs:")
            && panicked.ends_with(": no"),
        "{panicked}"
    );
}

#[test]
fn a_file_body_honours_the_apps_content_length_as_nginx_does() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.txt");
    std::fs::write(&path, b"first line\nsecond line\n").unwrap();
    let file = path.clone();
    let client = TestClient::new(move |request: &Request| {
        let mut response = gateway::IntoResponse::into_response(gateway::Body::file(&file));
        let query: HashMap<String, String> = request.query().unwrap_or_default();
        if let Some(length) = query.get("length") {
            response
                .headers_mut()
                .insert(gateway::header::CONTENT_LENGTH, length.parse().unwrap());
        }
        response
    });
    let whole = client.get("/").send();
    assert_eq!(whole.body, b"first line\nsecond line\n");
    assert_eq!(whole.header("content-length"), Some("23"));

    let first = client.get("/?length=11").send();
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.body, b"first line\n", "as many bytes as declared");

    let past = client.get("/?length=24").send();
    assert_eq!(past.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        past.failure
            .as_deref()
            .unwrap_or_default()
            .contains("past its end"),
        "{:?}",
        past.failure
    );
}
