//! The greet app, tested in-process with gateway::testing, mounted at /greet as in the demo.

use gateway::testing::TestClient;
use gateway::{Config, StatusCode};

const TEMPLATES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/templates");

fn client_with(pairs: &[(&str, &str)]) -> TestClient {
    let mut settings = vec![("templates", TEMPLATES)];
    settings.extend_from_slice(pairs);
    let config = Config::from_pairs(settings);
    TestClient::new(greet::app(&config).expect("the app starts")).mounted_at("/greet")
}

fn client() -> TestClient {
    client_with(&[])
}

#[test]
fn the_page_greets_the_username_from_the_query_string() {
    let response = client().get("/greet?username=Ada").send();
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(
        response.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let page = response.text();
    assert!(page.contains("<title>Greetings</title>"), "{page}");
    assert!(page.contains("<h1>Greetings</h1>"), "{page}");
    assert!(page.contains("<p>Hello, Ada!"), "{page}");
}

#[test]
fn without_a_username_the_page_greets_a_stranger() {
    for uri in [
        "/greet",
        "/greet/",
        "/greet?username=",
        "/greet?username=+++",
        "/greet?other=1",
    ] {
        let page = client().get(uri).send();
        assert_eq!(page.status, StatusCode::OK, "{uri}");
        assert!(
            page.text().contains("<p>Hello, stranger!"),
            "{uri}: {}",
            page.text()
        );
    }
}

#[test]
fn the_page_loops_over_every_greeting_in_order() {
    let page = client().get("/greet?username=Ada").send().text();
    let items: Vec<&str> = page
        .lines()
        .filter(|line| line.trim_start().starts_with("<li"))
        .map(str::trim)
        .collect();
    assert_eq!(
        items,
        [
            r#"<li lang="en">Hello, Ada! <small>(English)</small></li>"#,
            r#"<li lang="fr">Bonjour, Ada! <small>(French)</small></li>"#,
            r#"<li lang="es">Hola, Ada! <small>(Spanish)</small></li>"#,
            r#"<li lang="de">Hallo, Ada! <small>(German)</small></li>"#,
            r#"<li lang="it">Ciao, Ada! <small>(Italian)</small></li>"#,
        ]
    );
    assert!(page.contains("the same in 5 languages"), "{page}");
}

#[test]
fn the_username_is_escaped_everywhere_it_appears() {
    for uri in [
        "/greet?username=<script>alert(1)</script>",
        "/greet?username=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
    ] {
        let page = client().get(uri).send().text();
        assert!(!page.contains("<script>"), "{uri}: {page}");
        assert!(
            page.contains("<p>Hello, &lt;script&gt;alert(1)&lt;&#x2f;script&gt;!"),
            "{uri}: {page}"
        );
        // In the list items and in the form's attribute too.
        assert_eq!(
            page.matches("&lt;script&gt;").count(),
            1 + 5 + 1,
            "{uri}: {page}"
        );
    }
    let quoted = client().get("/greet?username=%22%3E%3Cb%3E").send().text();
    assert!(
        quoted.contains(r#"value="&quot;&gt;&lt;b&gt;""#),
        "{quoted}"
    );
}

#[test]
fn the_title_comes_from_the_settings_and_is_escaped_too() {
    let page = client_with(&[("title", "Hi & welcome")])
        .get("/greet")
        .send()
        .text();
    assert!(page.contains("<title>Hi &amp; welcome</title>"), "{page}");
}

#[test]
fn the_form_submits_to_the_mount_point() {
    let page = client().get("/greet").send().text();
    assert!(
        page.contains(r#"<form method="get" action="&#x2f;greet/">"#),
        "{page}"
    );
}

#[test]
fn other_paths_and_methods_are_refused() {
    let client = client();
    assert_eq!(
        client.get("/greet/other").send().status,
        StatusCode::NOT_FOUND
    );
    let post = client.post("/greet").send();
    assert_eq!(
        (post.status, post.header("allow")),
        (StatusCode::METHOD_NOT_ALLOWED, Some("GET, HEAD"))
    );
    assert_eq!(
        client.head("/greet?username=Ada").send().status,
        StatusCode::OK
    );
}

#[test]
fn a_malformed_query_string_is_a_400() {
    let response = client().get("/greet?username=a&username=b").send();
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert!(
        response.text().starts_with("invalid query string:"),
        "{}",
        response.text()
    );
}

#[test]
fn a_missing_templates_setting_stops_the_app_with_a_clear_error() {
    let error = greet::app(&Config::default())
        .err()
        .expect("no templates setting");
    assert_eq!(
        error.to_string(),
        "missing setting: add `gateway_app_param templates ...;` to the location"
    );
}
