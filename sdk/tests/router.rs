//! The router's Flask kit, driven through gateway::testing: middleware, error handlers,
//! nested routers and reverse routing.

use std::sync::Arc;

use gateway::header::{HeaderValue, ALLOW};
use gateway::testing::{LogLine, TestClient};
use gateway::{
    get, post, Error, Html, LogLevel, Next, Redirect, Request, Response, Router, StatusCode,
    Templates,
};
use parking_lot::Mutex;

/// What ran, in order, shared with the test.
#[derive(Clone, Default)]
struct Trace(Arc<Mutex<Vec<String>>>);

impl Trace {
    fn push(&self, step: &str) {
        self.0.lock().push(step.to_string());
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock())
    }
}

fn step(name: &'static str) -> impl Fn(&Request, &Trace) -> Result<(), Error> {
    move |_, trace| {
        trace.push(name);
        Ok(())
    }
}

fn after_step(name: &'static str) -> impl Fn(&Request, &Trace, &mut Response) {
    move |_, trace, _| trace.push(name)
}

fn layer_step(name: &'static str) -> impl Fn(&Request, &Trace, Next) -> Response {
    move |request, trace, next| {
        trace.push(&format!("{name} in"));
        let response = next.run(request);
        trace.push(&format!("{name} out"));
        response
    }
}

fn traced_handler(name: &'static str) -> impl Fn(&Request, &Trace) -> &'static str {
    move |_, trace| {
        trace.push(name);
        "ok\n"
    }
}

fn traced_app(trace: &Trace) -> Router<Trace> {
    let api = Router::blueprint("api")
        .route("/items", get(traced_handler("api handler")))
        .before(step("api before 1"))
        .before(step("api before 2"))
        .after(after_step("api after 1"))
        .after(after_step("api after 2"))
        .layer(layer_step("api layer"));
    Router::with_state(trace.clone())
        .route("/", get(traced_handler("handler")))
        .nest("/api", api)
        .layer(layer_step("layer 1"))
        .layer(layer_step("layer 2"))
        .before(step("before"))
        .after(after_step("after"))
}

#[test]
fn hooks_and_layers_run_in_order_parent_outside_nested() {
    let trace = Trace::default();
    let client = TestClient::new(traced_app(&trace));

    assert_eq!(client.get("/").send().text(), "ok\n");
    let top = ["layer 1 in", "layer 2 in", "before", "handler", "after"];
    let top_out = ["layer 2 out", "layer 1 out"];
    assert_eq!(trace.take(), [&top[..], &top_out[..]].concat());

    assert_eq!(client.get("/api/items").send().text(), "ok\n");
    let expected = [
        "layer 1 in",
        "layer 2 in",
        "before",
        "api layer in",
        "api before 1",
        "api before 2",
        "api handler",
        "api after 2",
        "api after 1",
        "api layer out",
        "after",
        "layer 2 out",
        "layer 1 out",
    ];
    assert_eq!(trace.take(), expected);

    // A miss outside the nest runs only the app's hooks; one below its prefix, the nest's too.
    assert_eq!(client.get("/nope").send().status, StatusCode::NOT_FOUND);
    let outer = ["layer 1 in", "layer 2 in", "before", "after"];
    assert_eq!(trace.take(), [&outer[..], &top_out[..]].concat());
    assert_eq!(client.get("/api/nope").send().status, StatusCode::NOT_FOUND);
    assert!(trace.take().contains(&"api before 1".to_string()));
}

fn require_login(request: &Request) -> Result<(), Redirect> {
    match request.cookie("user") {
        Some(user) => {
            request.extensions().insert(user.to_string());
            Ok(())
        }
        None => Err(Redirect::to("/login")),
    }
}

#[test]
fn a_before_hook_answers_instead_of_the_handler_and_passes_values_on() {
    let trace = Trace::default();
    let account = Router::blueprint("account")
        .route(
            "/",
            get(|request: &Request, trace: &Trace| {
                trace.push("handler");
                format!("hello {}\n", request.extensions().get::<String>().unwrap())
            }),
        )
        .before(require_login)
        .before(step("after login"));
    let app = Router::with_state(trace.clone())
        .route("/public", get(traced_handler("public")))
        .nest("/account", account)
        .after(|_: &Request, response: &mut Response| {
            response
                .headers_mut()
                .insert("x-seen", HeaderValue::from_static("yes"));
        });
    let client = TestClient::new(app);

    let refused = client.get("/account").send();
    assert_eq!(refused.status, StatusCode::SEE_OTHER);
    assert_eq!(refused.header("location"), Some("/login"));
    assert_eq!(
        refused.header("x-seen"),
        Some("yes"),
        "after hooks still run"
    );
    assert!(
        trace.take().is_empty(),
        "neither the handler nor later hooks ran"
    );

    let admitted = client.get("/account/").header("Cookie", "user=ada").send();
    assert_eq!(admitted.text(), "hello ada\n");
    assert_eq!(trace.take(), ["after login", "handler"]);

    // The nested router's hook does not apply to the app's other routes.
    assert_eq!(client.get("/public").send().text(), "ok\n");
}

#[test]
fn a_layer_may_answer_without_the_rest_or_change_its_response() {
    let app = Router::new()
        .route("/", get(|_: &Request| "inner\n"))
        .layer(|request: &Request, next: Next| {
            if request.header("x-block").is_some() {
                return (StatusCode::FORBIDDEN, "blocked\n").into_response();
            }
            let mut response = next.run(request);
            response
                .headers_mut()
                .insert("x-layer", HeaderValue::from_static("1"));
            response
        });
    let client = TestClient::new(app);
    let passed = client.get("/").send();
    assert_eq!(
        (passed.text().as_str(), passed.header("x-layer")),
        ("inner\n", Some("1"))
    );
    let blocked = client.get("/").header("X-Block", "1").send();
    assert_eq!(
        (blocked.status, blocked.text().as_str()),
        (StatusCode::FORBIDDEN, "blocked\n")
    );
}

use gateway::IntoResponse;

fn stamp(_: &Request, response: &mut Response) {
    response
        .headers_mut()
        .insert("x-stamp", HeaderValue::from_static("1"));
}

#[test]
fn after_hooks_see_the_routers_own_404_and_405() {
    let client = TestClient::new(
        Router::new()
            .route("/", get(|_: &Request| "hi\n"))
            .after(stamp),
    );
    let missing = client.get("/nope").send();
    assert_eq!(
        (missing.status, missing.text().as_str()),
        (StatusCode::NOT_FOUND, "not found\n")
    );
    assert_eq!(missing.header("x-stamp"), Some("1"));
    let refused = client.post("/").send();
    assert_eq!(refused.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(refused.header("x-stamp"), Some("1"));
    assert_eq!(refused.header("allow"), Some("GET, HEAD"));
}

fn failing(_: &Request) -> Result<&'static str, Error> {
    Err(Error::internal("the database is down"))
}

fn status_page(status: StatusCode) -> impl Fn(&Request) -> (StatusCode, Html<String>) {
    move |request| {
        (
            status,
            Html(format!(
                "<h1>{status}</h1> {}",
                request.path().unwrap_or("")
            )),
        )
    }
}

#[test]
fn status_handlers_answer_404_405_and_500_and_a_failure_is_still_logged() {
    let app = Router::new()
        .route("/", get(|_: &Request| "hi\n"))
        .route("/broken", get(failing))
        .route(
            "/gone",
            get(|_: &Request| -> Result<(), Error> {
                Err(Error::status(StatusCode::NOT_FOUND, "no such note"))
            }),
        )
        .route(
            "/plain",
            get(|_: &Request| (StatusCode::NOT_FOUND, "my own 404\n")),
        )
        .on_status(StatusCode::NOT_FOUND, status_page(StatusCode::NOT_FOUND))
        .on_status(
            StatusCode::METHOD_NOT_ALLOWED,
            status_page(StatusCode::METHOD_NOT_ALLOWED),
        )
        .on_status(
            StatusCode::INTERNAL_SERVER_ERROR,
            status_page(StatusCode::INTERNAL_SERVER_ERROR),
        );
    let client = TestClient::new(app);

    let missing = client.get("/nope").send();
    assert_eq!(
        (missing.status, missing.text().as_str()),
        (StatusCode::NOT_FOUND, "<h1>404 Not Found</h1> /nope")
    );
    let gone = client.get("/gone").send();
    assert_eq!(
        gone.text(),
        "<h1>404 Not Found</h1> /gone",
        "an Error of the status"
    );
    let plain = client.get("/plain").send();
    assert_eq!(
        plain.text(),
        "my own 404\n",
        "a plain 404 response is no error"
    );

    let refused = client.delete("/").send();
    assert_eq!(refused.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(refused.text(), "<h1>405 Method Not Allowed</h1> /");
    assert_eq!(
        refused.headers.get(ALLOW),
        Some(&HeaderValue::from_static("GET, HEAD"))
    );

    let broken = client.get("/broken").send();
    assert_eq!(broken.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(broken.text(), "<h1>500 Internal Server Error</h1> /broken");
    assert_eq!(broken.failure, None, "the app's page, not nginx's");
    assert_eq!(
        broken.log,
        [LogLine {
            level: LogLevel::Error,
            message: "the database is down".into()
        }]
    );
}

#[test]
fn without_error_handlers_errors_answer_as_before() {
    let client = TestClient::new(Router::new().route("/broken", get(failing)));
    let broken = client.get("/broken").send();
    assert_eq!(broken.failure.as_deref(), Some("the database is down"));
    let missing = client.get("/nope").send();
    assert_eq!(
        (missing.status, missing.text().as_str()),
        (StatusCode::NOT_FOUND, "not found\n")
    );
    let refused = client.post("/broken").send();
    assert_eq!(refused.text(), "method not allowed\n");
}

fn describe(_: &Request, error: &Error) -> (StatusCode, String) {
    let kind = match error {
        Error::Json(_) => "json",
        Error::Internal(_) => "internal",
        Error::Status(..) => "status",
        Error::Unavailable(_) => "unavailable",
        _ => "other",
    };
    (
        error.status_code(),
        format!("{kind}: {}\n", error.status_code().as_u16()),
    )
}

#[test]
fn an_error_handler_sees_which_error_it_was() {
    #[derive(serde::Deserialize)]
    struct Body {
        #[allow(dead_code)]
        name: String,
    }
    let app = Router::new()
        .route(
            "/json",
            post(|request: &Request| -> Result<&'static str, Error> {
                request.json::<Body>()?;
                Ok("ok\n")
            }),
        )
        .route("/broken", get(failing))
        .route(
            "/busy",
            get(|_: &Request| -> Result<(), Error> {
                Err(Error::Unavailable("pool empty".into()))
            }),
        )
        .on_status(StatusCode::UNPROCESSABLE_ENTITY, |_: &Request| {
            "status first\n"
        })
        .on_error(describe);
    let client = TestClient::new(app);

    let bad = client
        .post("/json")
        .header("Content-Type", "application/json")
        .body("{")
        .send();
    assert_eq!(
        (bad.status, bad.text().as_str()),
        (StatusCode::BAD_REQUEST, "json: 400\n")
    );
    let shape = client
        .post("/json")
        .json(&serde_json::json!({"x": 1}))
        .send();
    assert_eq!(
        shape.text(),
        "status first\n",
        "a status handler before on_error"
    );
    assert_eq!(client.get("/broken").send().text(), "internal: 500\n");
    assert_eq!(client.get("/nope").send().text(), "status: 404\n");
    assert_eq!(client.put("/broken").send().text(), "status: 405\n");
    let busy = client.get("/busy").send();
    assert_eq!(busy.text(), "unavailable: 503\n");
    assert_eq!(
        busy.log,
        [LogLine {
            level: LogLevel::Error,
            message: "pool empty".into()
        }]
    );
}

#[test]
fn a_nested_routers_error_handlers_come_first_and_apply_only_below_it() {
    let api = Router::blueprint("api")
        .route("/broken", get(failing))
        .route(
            "/gone",
            get(|_: &Request| -> Result<(), Error> {
                Err(Error::status(StatusCode::GONE, "gone"))
            }),
        )
        .on_status(StatusCode::NOT_FOUND, |_: &Request| {
            (StatusCode::NOT_FOUND, "{\"error\":404}")
        });
    let app = Router::new()
        .route("/broken", get(failing))
        .nest("/api", api)
        .on_status(StatusCode::NOT_FOUND, |_: &Request| {
            (StatusCode::NOT_FOUND, "app 404\n")
        })
        .on_error(describe);
    let client = TestClient::new(app);

    assert_eq!(client.get("/api/nope").send().text(), "{\"error\":404}");
    assert_eq!(client.get("/nope").send().text(), "app 404\n");
    assert_eq!(
        client.get("/apinope").send().text(),
        "app 404\n",
        "not below /api"
    );
    // What the nested router does not answer, the parent does.
    assert_eq!(client.get("/api/broken").send().text(), "internal: 500\n");
    assert_eq!(client.get("/api/gone").send().text(), "status: 410\n");
    assert_eq!(client.get("/broken").send().text(), "internal: 500\n");
}

#[test]
fn nested_routes_answer_below_the_prefix_the_root_with_and_without_slash() {
    let api = Router::blueprint("api")
        .route("/", get(|_: &Request| "api root\n"))
        .route(
            "/notes/{id}",
            get(|request: &Request| format!("note {}\n", request.param("id").unwrap_or("?"))),
        )
        .nest(
            "/v1",
            Router::blueprint("v1").route("/", get(|_: &Request| "v1 root\n")),
        )
        .fallback(|_: &Request| "api fallback\n");
    let client = TestClient::new(
        Router::new()
            .route("/", get(|_: &Request| "root\n"))
            .nest("/api", api),
    );

    assert_eq!(client.get("/").send().text(), "root\n");
    assert_eq!(client.get("/api").send().text(), "api root\n");
    assert_eq!(client.get("/api/").send().text(), "api root\n");
    assert_eq!(client.get("/api/notes/7").send().text(), "note 7\n");
    assert_eq!(client.get("/api/v1").send().text(), "v1 root\n");
    assert_eq!(client.get("/api/v1/").send().text(), "v1 root\n");
    assert_eq!(client.get("/api/elsewhere").send().text(), "api fallback\n");
    assert_eq!(
        client.get("/elsewhere").send().status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(client.get("/notes/7").send().status, StatusCode::NOT_FOUND);
}

#[test]
fn a_blueprint_served_alone_is_a_logged_500() {
    let response =
        TestClient::new(Router::<()>::blueprint("api").route("/", get(|_: &Request| "hi\n")))
            .get("/")
            .send();
    assert_eq!(response.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(response
        .failure
        .is_some_and(|reason| reason.contains("blueprint")));
}

fn link(request: &Request) -> Result<String, Error> {
    let name = request.param("name").unwrap_or("");
    let url = match name {
        "note" => request.url_for(
            "api.note",
            &[("id", &"a b/ü?"), ("page", &2), ("q", &"x&y z")],
        )?,
        "root" => request.url_for("api.root", &[])?,
        "spaced" => request.url_for("api.note", &[("id", &"a b?ü")])?,
        "file" => request.url_for("file", &[("path", &"docs/a b.txt")])?,
        "missing" => request.url_for("api.note", &[])?,
        other => request.url_for(other, &[])?,
    };
    Ok(format!("{url}\n"))
}

fn linking_app() -> Router {
    let api = Router::blueprint("api")
        .route_named("root", "/", get(|_: &Request| "api\n"))
        .route_named(
            "note",
            "/notes/{id}",
            get(|request: &Request| format!("note {}\n", request.param("id").unwrap_or("?"))),
        );
    Router::new()
        .route("/link/{name}", get(link))
        .route_named("file", "/files/{*path}", get(|_: &Request| "file\n"))
        .nest("/api", api)
}

#[test]
fn url_for_builds_urls_with_the_mount_point_nest_prefix_encoding_and_query() {
    let client = TestClient::new(linking_app()).mounted_at("/my app");
    let text = |uri: &str| client.get(uri).send().text();
    assert_eq!(
        text("/my%20app/link/note"),
        "/my%20app/api/notes/a%20b%2F%C3%BC%3F?page=2&q=x%26y+z\n"
    );
    assert_eq!(text("/my%20app/link/root"), "/my%20app/api/\n");
    assert_eq!(
        text("/my%20app/link/file"),
        "/my%20app/files/docs/a%20b.txt\n"
    );

    // The URL it builds is one the app answers, with the value as the parameter.
    let at_root = TestClient::new(linking_app());
    let url = at_root.get("/link/spaced").send().text();
    assert_eq!(url, "/api/notes/a%20b%3F%C3%BC\n");
    assert_eq!(at_root.get(url.trim_end()).send().text(), "note a b?ü\n");
}

#[test]
fn url_for_an_unknown_name_or_without_a_parameter_is_a_logged_500() {
    let client = TestClient::new(linking_app());
    let unknown = client.get("/link/nosuch").send();
    assert_eq!(unknown.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        unknown.failure.as_deref(),
        Some("url_for: no route is named \"nosuch\"")
    );
    let unprefixed = client.get("/link/note.html").send();
    assert!(unprefixed.failure.is_some());
    let missing = client.get("/link/missing").send();
    assert_eq!(
        missing.failure.as_deref(),
        Some("url_for: route \"api.note\" needs parameter \"id\"")
    );
}

#[test]
fn url_for_works_in_templates_rendered_for_the_request() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("index.html"),
        "<a href=\"{{ url_for('api.note', id=id, tab='a b') }}\">{{ title }}</a>",
    )
    .unwrap();
    std::fs::write(dir.path().join("broken.html"), "{{ url_for('nosuch') }}").unwrap();
    let templates = Arc::new(Templates::new(dir.path()).unwrap());
    let api = Router::blueprint("api").route_named("note", "/notes/{id}", get(|_: &Request| ""));
    let render = |name: &'static str| {
        let templates = templates.clone();
        move |request: &Request| {
            templates.render_for(
                request,
                name,
                gateway::minijinja::context! { id => 7, title => "Groceries" },
            )
        }
    };
    let app = Router::new()
        .route("/", get(render("index.html")))
        .route("/broken", get(render("broken.html")))
        .nest("/api", api);
    let client = TestClient::new(app).mounted_at("/notes");

    assert_eq!(
        client.get("/notes/").send().text(),
        "<a href=\"&#x2f;notes&#x2f;api&#x2f;notes&#x2f;7?tab=a+b\">Groceries</a>"
    );
    let broken = client.get("/notes/broken").send();
    assert_eq!(broken.status, StatusCode::INTERNAL_SERVER_ERROR);
    let reason = broken.failure.unwrap();
    assert!(reason.contains("no route is named \"nosuch\""), "{reason}");
}

#[test]
fn errors_from_hooks_and_layers_go_to_the_error_handlers() {
    let app = Router::new()
        .route("/", get(|_: &Request| "hi\n"))
        .layer(|request: &Request, next: Next| -> Result<Response, Error> {
            match request.header("x-layer-fails") {
                Some(_) => Err(Error::status(StatusCode::TOO_MANY_REQUESTS, "slow down")),
                None => Ok(next.run(request)),
            }
        })
        .before(|request: &Request| match request.cookie("user") {
            Some(_) => Ok(()),
            None => Err(Error::status(StatusCode::UNAUTHORIZED, "log in")),
        })
        .on_error(describe);
    let client = TestClient::new(app);
    assert_eq!(client.get("/").send().text(), "status: 401\n");
    let limited = client.get("/").header("X-Layer-Fails", "1").send();
    assert_eq!(limited.text(), "status: 429\n");
    let admitted = client.get("/").header("Cookie", "user=ada").send();
    assert_eq!(admitted.text(), "hi\n");
}
