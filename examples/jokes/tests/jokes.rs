//! The jokes API, tested in-process with gateway::testing, mounted at /jokes as in the demo.

use gateway::testing::{check, TestClient, TestResponse};
use gateway::{Config, StatusCode};
use jokes::Joke;
use serde_json::{json, Value};
use tempfile::TempDir;

/// An instance with `pairs` for settings, on the default database under `dir`, as nginx's
/// prefix.
fn client_on(dir: &TempDir, pairs: &[(&str, &str)]) -> TestClient {
    let config = Config::from_pairs(pairs.iter().copied()).with_prefix(dir.path());
    TestClient::new(jokes::app(&config).expect("the app starts")).mounted_at("/jokes")
}

/// A client on a database of its own, which lives as long as the directory.
fn client_with(pairs: &[(&str, &str)]) -> (TempDir, TestClient) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let client = client_on(&dir, pairs);
    (dir, client)
}

fn client() -> (TempDir, TestClient) {
    client_with(&[])
}

/// The `error` of a JSON error answer.
fn error(response: &TestResponse) -> String {
    assert_eq!(
        response.header("content-type"),
        Some("application/json"),
        "{}",
        response.text()
    );
    let body: Value = response.json().expect("an error answer is JSON");
    body["error"].as_str().expect("it has an error").to_string()
}

fn post_raw(client: &TestClient, body: &str) -> TestResponse {
    client
        .post("/jokes")
        .header("Content-Type", "application/json")
        .body(body)
        .send()
}

#[test]
fn the_list_has_the_seed_jokes_at_the_bare_mount_point_and_with_a_slash() {
    let (_dir, client) = client();
    for uri in ["/jokes", "/jokes/"] {
        let response = client.get(uri).send();
        assert_eq!(response.status, StatusCode::OK, "{uri}");
        assert_eq!(response.header("content-type"), Some("application/json"));
        let jokes: Vec<Joke> = response.json().expect("a JSON list");
        assert_eq!(
            jokes.iter().map(|joke| joke.id).collect::<Vec<_>>(),
            [1, 2, 3],
            "{uri}"
        );
        assert!(jokes.iter().all(|joke| joke.author == "anonymous"));
    }
}

#[test]
fn one_joke_by_id() {
    let (_dir, client) = client();
    let response = client.get("/jokes/2").send();
    assert_eq!(response.status, StatusCode::OK);
    let joke: Joke = response.json().expect("a JSON joke");
    assert_eq!(joke.id, 2);
    assert!(joke.text.contains("binary"), "{joke:?}");
}

#[test]
fn a_missing_joke_is_a_404_that_says_which() {
    let (_dir, client) = client();
    for (uri, message) in [
        ("/jokes/99", "no joke with id 99"),
        ("/jokes/0", "no joke with id 0"),
        ("/jokes/abc", "no joke with id abc"),
        ("/jokes/-1", "no joke with id -1"),
    ] {
        let response = client.get(uri).send();
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(error(&response), message, "{uri}");
    }
    let elsewhere = client.get("/jokes/2/punchline").send();
    assert_eq!(elsewhere.status, StatusCode::NOT_FOUND);
    assert_eq!(error(&elsewhere), "not found");
}

#[test]
fn a_posted_joke_is_created_with_its_location_and_then_listed() {
    let (_dir, client) = client();
    let created = client
        .post("/jokes")
        .json(&json!({"text": "  I would tell a UDP joke, but you might not get it.  ", "author": "Ada"}))
        .send();
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    assert_eq!(created.header("location"), Some("/jokes/4"));
    let joke: Joke = created.json().expect("the new joke");
    let expected = Joke {
        id: 4,
        text: "I would tell a UDP joke, but you might not get it.".into(),
        author: "Ada".into(),
    };
    assert_eq!(joke, expected);

    assert_eq!(
        client.get("/jokes/4").send().json::<Joke>().expect("JSON"),
        expected
    );
    let all: Vec<Joke> = client.get("/jokes").send().json().expect("JSON");
    assert_eq!(all.len(), 4);
    assert_eq!(all.last(), Some(&expected));
}

#[test]
fn the_author_is_optional() {
    let (_dir, client) = client();
    for body in [
        json!({"text": "a"}),
        json!({"text": "b", "author": null}),
        json!({"text": "c", "author": " "}),
    ] {
        let created = client.post("/jokes/").json(&body).send();
        assert_eq!(created.status, StatusCode::CREATED, "{body}");
        assert_eq!(created.json::<Joke>().expect("JSON").author, "anonymous");
    }
}

#[test]
fn invalid_json_and_missing_fields_are_a_422_that_says_why() {
    let (_dir, client) = client();
    for (body, message) in [
        ("{", "invalid joke: EOF while parsing an object at line 1 column 1"),
        ("", "invalid joke: EOF while parsing a value at line 1 column 0"),
        ("not json", "invalid joke: expected ident at line 1 column 2"),
        ("{}", "invalid joke: missing field `text`"),
        (r#"{"author": "Ada"}"#, "invalid joke: missing field `text`"),
        (
            r#"{"txt": "typo"}"#,
            "invalid joke: unknown field `txt`, expected `text` or `author`",
        ),
        (
            r#"{"text": 42}"#,
            "invalid joke: invalid type: integer `42`, expected a string",
        ),
        (
            r#"["an array is not a joke"]"#,
            "invalid joke: expected a JSON object with \"text\" and optionally \"author\", got an array",
        ),
        (
            "null",
            "invalid joke: expected a JSON object with \"text\" and optionally \"author\", got null",
        ),
    ] {
        let response = post_raw(&client, body);
        assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(error(&response), message, "{body}");
    }
    // Nothing was added by the refused posts.
    assert_eq!(
        client
            .get("/jokes")
            .send()
            .json::<Vec<Joke>>()
            .expect("JSON")
            .len(),
        3
    );
}

#[test]
fn empty_or_overlong_fields_are_a_422() {
    let (_dir, client) = client();
    let long = "x".repeat(jokes::MAX_TEXT + 1);
    for (body, message) in [
        (
            json!({"text": "   "}),
            "invalid joke: \"text\" must have 1 to 500 characters",
        ),
        (
            json!({"text": long}),
            "invalid joke: \"text\" must have 1 to 500 characters",
        ),
        (
            json!({"text": "ok", "author": "y".repeat(jokes::MAX_AUTHOR + 1)}),
            "invalid joke: \"author\" must have at most 100 characters",
        ),
    ] {
        let response = client.post("/jokes").json(&body).send();
        assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(error(&response), message);
    }
    // Characters, not bytes: 500 of a two-byte character fit.
    let accented = client
        .post("/jokes")
        .json(&json!({"text": "é".repeat(jokes::MAX_TEXT)}))
        .send();
    assert_eq!(accented.status, StatusCode::CREATED);
}

#[test]
fn a_body_that_is_not_json_is_a_415() {
    let (_dir, client) = client();
    let response = client
        .post("/jokes")
        .header("Content-Type", "text/plain")
        .body(r#"{"text": "x"}"#)
        .send();
    assert_eq!(response.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        error(&response),
        "the request body must be application/json"
    );
}

#[test]
fn other_methods_are_a_405_with_allow() {
    let (_dir, client) = client();
    let put = client.put("/jokes").send();
    assert_eq!(
        (put.status, put.header("allow")),
        (StatusCode::METHOD_NOT_ALLOWED, Some("GET, POST, HEAD"))
    );
    let delete = client.delete("/jokes/1").send();
    assert_eq!(
        (delete.status, delete.header("allow")),
        (StatusCode::METHOD_NOT_ALLOWED, Some("GET, HEAD"))
    );
}

#[test]
fn the_book_stops_at_max_jokes() {
    let (_dir, client) = client_with(&[("max_jokes", "4")]);
    let first = client.post("/jokes").json(&json!({"text": "fits"})).send();
    assert_eq!(first.status, StatusCode::CREATED);
    let full = client
        .post("/jokes")
        .json(&json!({"text": "too many"}))
        .send();
    assert_eq!(full.status, StatusCode::INSUFFICIENT_STORAGE);
    assert_eq!(error(&full), "the joke book is full (4 jokes)");
}

#[test]
fn an_invalid_max_jokes_stops_the_app_with_a_clear_error() {
    let error = jokes::app(&Config::from_pairs([("max_jokes", "many")]))
        .err()
        .expect("max_jokes is not a number");
    assert_eq!(
        error.to_string(),
        "setting max_jokes = \"many\" is invalid: invalid digit found in string"
    );
}

#[test]
fn instances_on_one_database_share_their_jokes_and_seed_it_once() {
    let dir = tempfile::tempdir().unwrap();
    // Two instances, as two nginx workers (or a reload) have, on the same database.
    let one = client_on(&dir, &[]);
    let two = client_on(&dir, &[]);
    let count = |client: &TestClient| {
        client
            .get("/jokes")
            .send()
            .json::<Vec<Joke>>()
            .expect("JSON")
            .len()
    };
    assert_eq!(count(&two), 3, "seeded once, not once per instance");
    one.post("/jokes")
        .json(&json!({"text": "told to one, heard by two"}))
        .send();
    assert_eq!(count(&two), 4);
    assert_eq!(two.get("/jokes/4").send().status, StatusCode::OK);
    // Another database is another book.
    let (_other_dir, other) = client();
    assert_eq!(count(&other), 3);
}

#[test]
fn nginx_t_checks_the_settings() {
    assert_eq!(
        check(
            jokes::check,
            &Config::from_pairs([("max_jokes", "5"), ("database", "jokes.sqlite3")])
        ),
        Ok(())
    );
    assert_eq!(
        check(jokes::check, &Config::from_pairs([("max_jokes", "lots")])),
        Err(
            "check failed: setting max_jokes = \"lots\" is invalid: invalid digit found in string"
                .into()
        )
    );
}
