//! The notes app, tested in-process with gateway::testing: no nginx needed.

use gateway::testing::{check, TestClient};
use gateway::{Config, StatusCode};
use notes::Note;
use tempfile::TempDir;

/// The settings of a test, with its database (the default one, under the prefix) in `dir`.
fn config(dir: &TempDir) -> Config {
    let templates = concat!(env!("CARGO_MANIFEST_DIR"), "/templates");
    Config::from_pairs([
        ("templates", templates),
        ("title", "Test notes"),
        ("secret_key", SECRET_KEY),
    ])
    .with_prefix(dir.path())
}

const SECRET_KEY: &str = "a test key of thirty-two bytes..";

fn client_on(dir: &TempDir) -> TestClient {
    TestClient::new(notes::app(&config(dir)).expect("the app starts")).mounted_at("/notes")
}

/// A client on a database of its own, which lives as long as the directory.
fn client() -> (TempDir, TestClient) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let client = client_on(&dir);
    (dir, client)
}

/// Logs `client` in as `name` through the form, as a browser does.
fn log_in(client: &TestClient, name: &str) {
    let response = client.post("/notes/login").form(&[("name", name)]).send();
    assert_eq!(
        response.status,
        StatusCode::SEE_OTHER,
        "{}",
        response.text()
    );
    assert_eq!(response.header("location"), Some("/notes/"));
}

#[test]
fn notes_are_added_by_form_once_logged_in_and_listed_escaped() {
    let (_dir, client) = client();
    let empty = client.get("/notes/").send();
    assert_eq!(empty.status, 200);
    assert_eq!(
        empty.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(empty.header("x-content-type-options"), Some("nosniff"));
    assert!(
        empty
            .header("server-timing")
            .is_some_and(|timing| timing.starts_with("app;dur=")),
        "the timing layer wraps the page"
    );
    let text = empty.text();
    assert!(text.contains("<title>Test notes</title>"));
    assert!(text.contains("No notes yet."));
    assert!(text.contains("Hello, stranger."));
    assert!(
        text.contains(r#"<a href="&#x2f;notes&#x2f;login" class="login">"#),
        "{text}"
    );

    // Not logged in: sent to the login page, told why.
    let refused = client.post("/notes/").form(&[("text", "sneaky")]).send();
    assert_eq!(refused.header("location"), Some("/notes/login"));
    let login = client.get("/notes/login").send().text();
    assert!(
        login.contains(r#"<p class="flash error">Log in to add notes.</p>"#),
        "{login}"
    );
    assert!(
        !login.contains("password"),
        "no password asked without one set"
    );

    log_in(&client, "Ada");
    let welcome = client.get("/notes/").send().text();
    assert!(
        welcome.contains(r#"<p class="flash info">Welcome, Ada.</p>"#),
        "{welcome}"
    );
    assert!(welcome.contains("Hello, Ada."));
    assert!(
        !client
            .get("/notes/")
            .send()
            .text()
            .contains("Welcome, Ada."),
        "a flash shows once"
    );

    let added = client
        .post("/notes/")
        .form(&[("text", "<script>alert(1)</script>")])
        .send();
    assert_eq!(added.status, StatusCode::SEE_OTHER);
    assert_eq!(added.header("location"), Some("/notes/"));
    let page = client.get("/notes/").send().text();
    assert!(page.contains("Note saved."), "{page}");
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
        "{page}"
    );
    assert!(!page.contains("<script>"));
    assert!(!page.contains("sneaky"));

    let out = client.post("/notes/logout").send();
    assert_eq!(out.header("location"), Some("/notes/"));
    let page = client.get("/notes/").send().text();
    assert!(
        page.contains("Logged out.") && page.contains("Hello, stranger."),
        "{page}"
    );
}

#[test]
fn a_password_when_one_is_set_and_names_of_1_to_40_characters() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(&dir);
    let pairs: Vec<(String, String)> = config
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .chain([("password".to_string(), "sesame".to_string())])
        .collect();
    let config = Config::from_pairs(pairs).with_prefix(dir.path());
    let client = TestClient::new(notes::app(&config).unwrap()).mounted_at("/notes");
    assert!(client
        .get("/notes/login")
        .send()
        .text()
        .contains(r#"type="password""#));
    client
        .post("/notes/login")
        .form(&[("name", "Ada"), ("password", "guess")])
        .send();
    assert!(client
        .get("/notes/login")
        .send()
        .text()
        .contains("Wrong password."));
    client
        .post("/notes/login")
        .form(&[("name", "x".repeat(41).as_str()), ("password", "sesame")])
        .send();
    assert!(client
        .get("/notes/login")
        .send()
        .text()
        .contains("A name has 1 to 40 characters."));
    client
        .post("/notes/login")
        .form(&[("name", "Ada"), ("password", "sesame")])
        .send();
    assert!(client.get("/notes/").send().text().contains("Hello, Ada."));
}

#[test]
fn pages_no_route_takes_get_the_apps_404_page_and_the_api_json() {
    let (_dir, client) = client();
    let missing = client.get("/notes/nowhere").send();
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.header("x-content-type-options"), Some("nosniff"));
    assert!(
        missing.text().contains(r#"<p class="not-found">"#),
        "{}",
        missing.text()
    );

    let note = client.get("/notes/api/notes/7").send();
    assert_eq!(note.status, StatusCode::NOT_FOUND);
    assert_eq!(
        note.json::<serde_json::Value>().unwrap(),
        serde_json::json!({"error": "no such note"})
    );
    let api = client.get("/notes/api/nowhere").send();
    assert_eq!(api.status, StatusCode::NOT_FOUND);
    assert_eq!(
        api.json::<serde_json::Value>().unwrap(),
        serde_json::json!({"error": "not found"})
    );
    let bad = client
        .post("/notes/api/notes")
        .header("Content-Type", "application/json")
        .body("{")
        .send();
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let error = bad.json::<serde_json::Value>().unwrap();
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid JSON body"),
        "{error}"
    );
}

#[test]
fn the_json_api_creates_reads_and_deletes() {
    let (_dir, client) = client();
    let created = client
        .post("/notes/api/notes")
        .json(&serde_json::json!({"text": "buy milk"}))
        .send();
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.header("location"), Some("/notes/api/notes/1"));
    let note: Note = created.json().unwrap();
    assert_eq!(
        note,
        Note {
            id: 1,
            text: "buy milk".into()
        }
    );

    let all: Vec<Note> = client.get("/notes/api/notes").send().json().unwrap();
    assert_eq!(all, vec![note.clone()]);
    assert_eq!(
        client
            .get("/notes/api/notes/1")
            .send()
            .json::<Note>()
            .unwrap(),
        note
    );
    assert_eq!(
        client.get("/notes/api/notes/2").send().status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        client.get("/notes/api/notes/x").send().status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        client.delete("/notes/api/notes/1").send().status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        client.delete("/notes/api/notes/1").send().status,
        StatusCode::NOT_FOUND
    );

    let empty = client
        .post("/notes/api/notes")
        .json(&serde_json::json!({"text": "  "}))
        .send();
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    let wrong = client.put("/notes/api/notes").send();
    assert_eq!(
        (wrong.status, wrong.header("allow")),
        (StatusCode::METHOD_NOT_ALLOWED, Some("GET, POST, HEAD"))
    );
}

#[test]
fn search_filters_the_page() {
    let (_dir, client) = client();
    for text in ["apples", "pears", "apple pie"] {
        client
            .post("/notes/api/notes")
            .json(&serde_json::json!({ "text": text }))
            .send();
    }
    let page = client.get("/notes/?q=APPLE").send().text();
    assert!(
        page.contains("apples") && page.contains("apple pie") && !page.contains("pears"),
        "{page}"
    );
}

#[test]
fn static_pages_stay_inside_the_template_directory() {
    let (_dir, client) = client();
    assert!(client
        .get("/notes/pages/about.html")
        .send()
        .text()
        .contains("About Test notes"));
    for escape in [
        "/notes/pages/../index.html",
        "/notes/pages/..%2f..%2fCargo.toml",
        "/notes/pages/.hidden",
    ] {
        assert_eq!(
            client.get(escape).send().status,
            StatusCode::NOT_FOUND,
            "{escape}"
        );
    }
}

#[test]
fn notes_live_in_the_database_that_every_instance_shares() {
    let dir = tempfile::tempdir().unwrap();
    // Two instances, as two nginx workers (or a reload) have, on the same database.
    let (one, two) = (client_on(&dir), client_on(&dir));
    let created: Note = one
        .post("/notes/api/notes")
        .json(&serde_json::json!({"text": "seen by all"}))
        .send()
        .json()
        .unwrap();
    assert_eq!(
        two.get(&format!("/notes/api/notes/{}", created.id))
            .send()
            .json::<Note>()
            .unwrap(),
        created
    );
    assert!(dir.path().join("notes.sqlite3").is_file());
    // Only the text's own characters match: LIKE's wildcards are escaped.
    one.post("/notes/api/notes")
        .json(&serde_json::json!({"text": "100% sure"}))
        .send();
    let page = two.get("/notes/?q=%25").send().text();
    assert!(
        page.contains("100% sure") && !page.contains("seen by all"),
        "{page}"
    );
    let page = two.get("/notes/?q=_").send().text();
    assert!(page.contains("No notes yet."), "{page}");
}

#[test]
fn nginx_t_checks_the_settings() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(check(notes::check, &config(&dir)), Ok(()));
    let templates = concat!(env!("CARGO_MANIFEST_DIR"), "/templates");
    let bad_url = Config::from_pairs([
        ("templates", templates),
        ("secret_key", SECRET_KEY),
        ("database", "postgres://notes@db:port/notes"),
    ]);
    let refused = check(notes::check, &bad_url).unwrap_err();
    assert!(
        refused.starts_with("check failed: setting database = \"postgres://...\" is invalid"),
        "{refused}"
    );
}

#[test]
fn sessions_need_a_secret_key_of_32_bytes() {
    let templates = concat!(env!("CARGO_MANIFEST_DIR"), "/templates");
    let refused = check(
        notes::check,
        &Config::from_pairs([("templates", templates)]),
    )
    .unwrap_err();
    assert!(refused.contains("secret_key"), "{refused}");
    let short = Config::from_pairs([("templates", templates), ("secret_key", "short")]);
    assert!(check(notes::check, &short)
        .unwrap_err()
        .contains("at least 32 bytes"));
    assert!(notes::app(&short).is_err());
}

#[test]
fn a_missing_templates_setting_stops_the_app_with_a_clear_error() {
    let error = notes::app(&Config::default())
        .err()
        .expect("no templates setting");
    assert_eq!(
        error.to_string(),
        "missing setting: add `gateway_app_param templates ...;` to the location"
    );
}

/// A multipart form with one file field, as a browser sends it.
fn multipart(field: &str, file_name: &str, content_type: &str, data: &[u8]) -> (String, Vec<u8>) {
    let boundary = "notes-test-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{file_name}\"\r\nContent-Type: {content_type}\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[test]
fn attachments_are_uploaded_once_logged_in_and_sent_back_as_downloads() {
    let (dir, client) = client();
    let (content_type, body) = multipart("file", "plan.txt", "text/plain", b"step one\n");
    let anonymous = client
        .post("/notes/notes/1/attachments")
        .header("Content-Type", &content_type)
        .body(body.clone())
        .send();
    assert_eq!(anonymous.header("location"), Some("/notes/login"));

    log_in(&client, "Ada");
    client.post("/notes/").form(&[("text", "the plan")]).send();
    let missing = client
        .post("/notes/notes/9/attachments")
        .header("Content-Type", &content_type)
        .body(body.clone())
        .send();
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    let attached = client
        .post("/notes/notes/1/attachments")
        .header("Content-Type", &content_type)
        .body(body)
        .send();
    assert_eq!(
        attached.status,
        StatusCode::SEE_OTHER,
        "{}",
        attached.text()
    );
    let page = client.get("/notes/").send().text();
    assert!(page.contains("Attached plan.txt."), "{page}");
    assert!(
        page.contains(
            r#"<a class="attachment" href="&#x2f;notes&#x2f;attachments&#x2f;1">plan.txt</a>"#
        ),
        "{page}"
    );
    assert!(dir.path().join("notes-attachments/1").is_file());

    let download = client.get("/notes/attachments/1").send();
    assert_eq!(download.status, StatusCode::OK);
    assert_eq!(download.body, b"step one\n");
    assert_eq!(download.header("content-type"), Some("text/plain"));
    assert_eq!(
        download.header("content-disposition"),
        Some(r#"attachment; filename="plan.txt""#)
    );
    assert_eq!(
        client.get("/notes/attachments/2").send().status,
        StatusCode::NOT_FOUND
    );

    let (content_type, body) = multipart(
        "file",
        "big.bin",
        "application/octet-stream",
        &vec![7; (8 << 20) + 1],
    );
    let big = client
        .post("/notes/notes/1/attachments")
        .header("Content-Type", &content_type)
        .body(body)
        .send();
    assert_eq!(big.status, StatusCode::PAYLOAD_TOO_LARGE);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("notes-attachments"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, ["1"], "no partial file is left behind");
}
