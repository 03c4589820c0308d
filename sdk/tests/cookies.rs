//! Cookies a handler sets with SetCookies, and the TestClient's cookie store.

use gateway::cookie::Cookie;
use gateway::testing::TestClient;
use gateway::{get, Redirect, Request, Router, SetCookies, StatusCode};

fn remember(_: &Request) -> (StatusCode, SetCookies, &'static str) {
    let cookies = SetCookies::new()
        .add(
            Cookie::build(("token", "abc.123/x="))
                .path("/")
                .http_only(true),
        )
        .add(Cookie::build(("admin_tab", "notes")).path("/admin"));
    (StatusCode::CREATED, cookies, "remembered\n")
}

fn forget(_: &Request) -> (SetCookies, Redirect) {
    (
        SetCookies::new().remove(Cookie::build("token").path("/")),
        Redirect::to("/"),
    )
}

fn echo(request: &Request) -> String {
    let mut cookies: Vec<String> = request
        .cookies()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    cookies.sort();
    format!("{}\n", cookies.join(" "))
}

fn app() -> Router {
    Router::new()
        .route("/remember", get(remember))
        .route("/forget", get(forget))
        .route("/", get(echo))
        .route("/admin", get(echo))
        .route("/administrator", get(echo))
}

#[test]
fn each_cookie_is_one_set_cookie_header_with_its_attributes() {
    let response = TestClient::new(app()).get("/remember").send();
    assert_eq!(response.status, StatusCode::CREATED);
    assert_eq!(response.text(), "remembered\n");
    let headers: Vec<_> = response.headers.get_all("set-cookie").iter().collect();
    assert_eq!(
        headers,
        [
            "token=abc.123/x=; HttpOnly; Path=/",
            "admin_tab=notes; Path=/admin"
        ]
    );
}

#[test]
fn the_client_sends_cookies_back_under_their_path_until_removed() {
    let client = TestClient::new(app());
    client.get("/remember").send();
    // Values come back exactly as set.
    assert_eq!(client.get("/").send().text(), "token=abc.123/x=\n");
    assert_eq!(
        client.get("/admin?tab=1").send().text(),
        "admin_tab=notes token=abc.123/x=\n"
    );
    assert_eq!(
        client.get("/administrator").send().text(),
        "token=abc.123/x=\n"
    );

    let removal = client.get("/forget").send().set_cookies();
    assert_eq!(removal[0].name_value(), ("token", ""));
    assert_eq!(
        removal[0].max_age(),
        Some(gateway::cookie::time::Duration::ZERO)
    );
    assert_eq!(client.cookie("token"), None);
    assert_eq!(client.get("/admin").send().text(), "admin_tab=notes\n");
}

#[test]
fn a_cookie_set_without_a_path_goes_with_the_request_directory() {
    let client = TestClient::new(
        Router::new()
            .route(
                "/docs/page",
                get(|_: &Request| (SetCookies::new().add(("seen", "1")), "")),
            )
            .route("/{*rest}", get(echo)),
    );
    client.get("/docs/page").send();
    assert_eq!(
        client.get("/docs/other").send().text(),
        "seen=1
"
    );
    assert_eq!(
        client.get("/docs").send().text(),
        "seen=1
"
    );
    assert_eq!(
        client.get("/elsewhere").send().text(),
        "
"
    );
    // One the test sets goes everywhere.
    client.set_cookie(("here", "1"));
    assert_eq!(
        client.get("/elsewhere").send().text(),
        "here=1
"
    );
}

#[test]
fn a_cookie_that_cannot_be_sent_as_given_is_a_server_error() {
    for bad in [
        Cookie::new("note", "two words"),
        Cookie::new("note", "a;Domain=evil.example"),
        Cookie::new("bad name", "1"),
        Cookie::build(("note", "1")).path("/; Domain=evil").build(),
    ] {
        let shown = bad.to_string();
        let client =
            TestClient::new(move |_: &Request| (SetCookies::new().add(bad.clone()), "never sent"));
        let response = client.get("/").send();
        assert_eq!(
            response.status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{shown}"
        );
        assert!(response.set_cookies().is_empty(), "{shown}");
        assert!(
            response
                .failure
                .clone()
                .expect("logged")
                .contains("not sent"),
            "{shown}"
        );
    }
}
