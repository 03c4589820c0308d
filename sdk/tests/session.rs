//! Sessions, flashes and cookies, driven through gateway::testing as app authors would.

use gateway::cookie::{Cookie, SameSite};
use gateway::testing::{check, TestClient};
use gateway::{
    get, post, Config, ConfigError, Error, Flash, LogLevel, Redirect, Request, Router, Session,
    Sessions, SetCookies, StatusCode,
};
use serde::{Deserialize, Serialize};

const KEY: &str = "0123456789abcdef0123456789abcdef";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    name: String,
    roles: Vec<String>,
}

fn log_in(request: &Request) -> Result<Redirect, Error> {
    let session = Session::of(request)?;
    session.insert(
        "user",
        User {
            name: "alice".into(),
            roles: vec!["admin".into()],
        },
    )?;
    session.insert("visits", 0u32)?;
    session.flash("info", "Welcome back.")?;
    Ok(Redirect::to("/"))
}

fn home(request: &Request) -> Result<String, Error> {
    let user: Option<User> = Session::of(request)?.get("user")?;
    Ok(match user {
        Some(user) => format!("{} ({})\n", user.name, user.roles.join(",")),
        None => "stranger\n".into(),
    })
}

fn visit(request: &Request) -> Result<String, Error> {
    let session = Session::of(request)?;
    let visits = session.get::<u32>("visits")?.unwrap_or(0) + 1;
    session.insert("visits", visits)?;
    Ok(format!("{visits}\n"))
}

fn log_out(request: &Request) -> Result<Redirect, Error> {
    Session::of(request)?.clear();
    Ok(Redirect::to("/"))
}

fn flashes(request: &Request) -> Result<String, Error> {
    let flashes = Session::of(request)?.take_flashes()?;
    Ok(flashes
        .iter()
        .map(|Flash { category, message }| format!("{category}: {message}\n"))
        .collect())
}

fn save(request: &Request) -> Result<Redirect, Error> {
    let session = Session::of(request)?;
    session.flash("info", "Saved.")?;
    session.flash("error", "The title was cut to 80 characters.")?;
    Ok(Redirect::to("/flashes"))
}

fn hoard(request: &Request) -> Result<&'static str, Error> {
    Session::of(request)?.insert("blob", "x".repeat(5000))?;
    Ok("kept\n")
}

fn nothing(_: &Request) -> &'static str {
    "no session touched\n"
}

fn with_theme(request: &Request) -> Result<(SetCookies, String), Error> {
    Session::of(request)?.insert("seen", true)?;
    let cookies = SetCookies::new()
        .add(Cookie::build(("theme", "dark")).path("/"))
        .add(("lang", "en"));
    Ok((cookies, "themed\n".into()))
}

fn config(key: &str) -> Config {
    Config::from_pairs([("secret_key", key)])
}

fn app_with(key: &str) -> impl gateway::Handler {
    let sessions = Sessions::from_config(&config(key)).expect("a long enough key");
    sessions.wrap(
        Router::new()
            .route("/", get(home))
            .route("/login", post(log_in))
            .route("/logout", post(log_out))
            .route("/visit", get(visit))
            .route("/flashes", get(flashes))
            .route("/save", post(save))
            .route("/hoard", post(hoard))
            .route("/nothing", get(nothing))
            .route("/theme", get(with_theme)),
    )
}

fn app() -> impl gateway::Handler {
    app_with(KEY)
}

#[test]
fn typed_values_round_trip_through_the_cookie() {
    let client = TestClient::new(app());
    assert_eq!(client.get("/").send().text(), "stranger\n");
    let login = client.post("/login").send();
    assert_eq!(login.status, StatusCode::SEE_OTHER);
    let sealed = client
        .cookie("session")
        .expect("the session cookie is kept");
    // Encrypted: nothing of the values shows.
    assert!(!sealed.contains("alice"), "{sealed}");
    assert_eq!(client.get("/").send().text(), "alice (admin)\n");
    assert_eq!(client.get("/visit").send().text(), "1\n");
    assert_eq!(client.get("/visit").send().text(), "2\n");
}

#[test]
fn the_cookie_is_written_only_when_the_session_changed() {
    let client = TestClient::new(app());
    assert!(client.get("/").send().set_cookies().is_empty());
    assert_eq!(client.post("/login").send().set_cookies().len(), 1);
    let before = client.cookie("session");
    for uri in ["/", "/nothing"] {
        let response = client.get(uri).send();
        assert!(response.is_success(), "{uri}");
        assert!(response.set_cookies().is_empty(), "{uri} wrote the session");
    }
    assert_eq!(client.cookie("session"), before);
    assert_eq!(client.get("/visit").send().set_cookies().len(), 1);
    assert_ne!(client.cookie("session"), before);
}

#[test]
fn the_cookie_is_read_only_for_handlers_that_ask_for_the_session() {
    let client = TestClient::new(app());
    client.set_cookie(("session", "tampered"));
    let untouched = client.get("/nothing").send();
    assert!(untouched.log.is_empty(), "{:?}", untouched.log);
    assert_eq!(untouched.header("vary"), None);
    let read = client.get("/").send();
    assert_eq!(read.log.len(), 1, "{:?}", read.log);
    assert_eq!(read.header("vary"), Some("Cookie"));
}

#[test]
fn a_tampered_cookie_reads_as_an_empty_session() {
    let client = TestClient::new(app());
    client.post("/login").send();
    let sealed = client.cookie("session").expect("logged in");
    let mut bytes = sealed.into_bytes();
    let middle = bytes.len() / 2;
    bytes[middle] = if bytes[middle] == b'A' { b'B' } else { b'A' };
    client.set_cookie(("session", String::from_utf8(bytes).expect("ASCII")));
    let response = client.get("/").send();
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.text(), "stranger\n");
    let line = response.log.first().expect("the ignored cookie is logged");
    assert_eq!(line.level, LogLevel::Info);
    assert!(line.message.contains("session cookie ignored"), "{line:?}");

    client.set_cookie(("session", "not even base64"));
    assert_eq!(client.get("/").send().text(), "stranger\n");
}

#[test]
fn a_cookie_made_with_another_key_reads_as_an_empty_session() {
    let old = TestClient::new(app_with("another key of thirty-two bytes!"));
    old.post("/login").send();
    let sealed = old.cookie("session").expect("logged in");
    let client = TestClient::new(app());
    client.set_cookie(("session", sealed));
    assert_eq!(client.get("/").send().text(), "stranger\n");
}

#[test]
fn clearing_the_session_sends_a_removal_cookie() {
    let client = TestClient::new(app());
    client.post("/login").send();
    let logout = client.post("/logout").send();
    let cookies = logout.set_cookies();
    assert_eq!(cookies.len(), 1);
    assert_eq!(cookies[0].name_value(), ("session", ""));
    assert_eq!(
        cookies[0].max_age(),
        Some(gateway::cookie::time::Duration::ZERO)
    );
    assert_eq!(cookies[0].path(), Some("/"));
    assert_eq!(client.cookie("session"), None);
    assert_eq!(client.get("/").send().text(), "stranger\n");
    // Nothing to remove without a cookie.
    let fresh = TestClient::new(app());
    assert!(fresh.post("/logout").send().set_cookies().is_empty());
}

#[test]
fn the_cookie_has_flasks_attributes() {
    let client = TestClient::new(app());
    let cookies = client.post("/login").send().set_cookies();
    let cookie = &cookies[0];
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(cookie.same_site(), Some(SameSite::Lax));
    assert_eq!(cookie.path(), Some("/"));
    assert_eq!(cookie.secure(), None);
    assert_eq!(cookie.max_age(), None, "a browser-session cookie");
}

#[test]
fn the_cookie_is_secure_over_https() {
    let client = TestClient::new(app());
    let cookies = client.post("/login").https().send().set_cookies();
    assert_eq!(cookies[0].secure(), Some(true));
    // Kept for HTTPS only, as a browser does.
    assert_eq!(client.get("/").send().text(), "stranger\n");
    assert_eq!(client.get("/").https().send().text(), "alice (admin)\n");
}

#[test]
fn the_cookie_path_is_the_mount_point() {
    let client = TestClient::new(app()).mounted_at("/app/");
    let cookies = client.post("/app/login").send().set_cookies();
    assert_eq!(cookies[0].path(), Some("/app"));
    assert_eq!(client.get("/app/").send().text(), "alice (admin)\n");
    let removal = client.post("/app/logout").send().set_cookies();
    assert_eq!(removal[0].path(), Some("/app"));
}

#[test]
fn a_session_too_big_for_a_cookie_is_a_logged_server_error() {
    let client = TestClient::new(app());
    let response = client.post("/hoard").send();
    assert_eq!(response.status, StatusCode::INTERNAL_SERVER_ERROR);
    let reason = response.failure.clone().expect("the reason is logged");
    assert!(reason.starts_with("session not saved"), "{reason}");
    assert!(reason.contains("more than the 4096"), "{reason}");
    assert!(response.set_cookies().is_empty());
    assert_eq!(client.cookie("session"), None);
}

#[test]
fn flashes_are_shown_once_with_their_categories() {
    let client = TestClient::new(app());
    client.post("/save").send();
    assert_eq!(
        client.get("/flashes").send().text(),
        "info: Saved.\nerror: The title was cut to 80 characters.\n"
    );
    assert_eq!(client.get("/flashes").send().text(), "");
    client.post("/login").send();
    assert_eq!(
        client.get("/flashes").send().text(),
        "info: Welcome back.\n"
    );
    // Taking the flashes left the rest of the session alone.
    assert_eq!(client.get("/").send().text(), "alice (admin)\n");
}

#[test]
fn flashes_serialize_for_templates() {
    let flash = Flash {
        category: "error".into(),
        message: "Nope.".into(),
    };
    assert_eq!(
        serde_json::to_value(&flash).unwrap(),
        serde_json::json!({"category": "error", "message": "Nope."})
    );
}

#[test]
fn cookies_of_the_handler_and_the_session_are_separate_headers() {
    let client = TestClient::new(app());
    let response = client.get("/theme").send();
    let headers: Vec<_> = response.headers.get_all("set-cookie").iter().collect();
    assert_eq!(headers.len(), 3, "{headers:?}");
    assert_eq!(headers[0], "theme=dark; Path=/");
    assert_eq!(headers[1], "lang=en");
    assert!(headers[2].to_str().unwrap().starts_with("session="));
    assert_eq!(client.cookie("theme").as_deref(), Some("dark"));
    assert_eq!(client.cookie("lang").as_deref(), Some("en"));
}

#[test]
fn a_missing_or_short_key_fails_the_check_and_init() {
    let missing = check(Sessions::check, &Config::default()).unwrap_err();
    assert_eq!(
        missing,
        "check failed: missing setting: add `gateway_app_param secret_key ...;` to the location"
    );
    let short_key = "too short a key";
    let short = check(Sessions::check, &config(short_key)).unwrap_err();
    assert!(short.contains("at least 32 bytes"), "{short}");
    assert!(short.contains("<15 bytes, not shown>"), "{short}");
    assert!(!short.contains(short_key), "the key is not logged: {short}");

    let init = |config: &Config| Sessions::from_config(config).map(|_| ());
    for bad in [Config::default(), config(short_key)] {
        let error: ConfigError = init(&bad).unwrap_err();
        assert_eq!(
            format!("check failed: {error}"),
            check(Sessions::check, &bad).unwrap_err()
        );
    }
    assert_eq!(check(Sessions::check, &config(KEY)), Ok(()));
    assert!(init(&config(&KEY[..31])).is_err());
}

#[test]
fn a_handler_without_sessions_fails_with_the_reason() {
    let client = TestClient::new(home);
    let response = client.get("/").send();
    assert_eq!(response.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(response
        .failure
        .expect("logged")
        .contains("wrap the app's handler with Sessions::wrap"));
}

#[test]
fn a_value_of_another_type_is_a_server_error() {
    let client = TestClient::new(app());
    client.post("/login").send();
    let wrong = Sessions::from_config(&config(KEY)).unwrap().wrap(
        |request: &Request| -> Result<String, Error> {
            Ok(format!("{:?}", Session::of(request)?.get::<u32>("user")?))
        },
    );
    let other = TestClient::new(wrong);
    other.set_cookie(("session", client.cookie("session").unwrap()));
    let response = other.get("/").send();
    assert_eq!(response.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(response.failure.unwrap().contains("session value \"user\""));
}

#[test]
fn templates_rendered_for_the_request_show_the_flashes_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("page.html"),
        "{% for flash in get_flashed_messages() %}[{{ flash.category }}] {{ flash.message }}\n{% endfor %}.",
    )
    .unwrap();
    let templates = gateway::Templates::new(dir.path()).unwrap();
    let sessions = Sessions::from_config(&config(KEY)).unwrap();
    let save = |request: &Request| -> Result<Redirect, Error> {
        Session::of(request)?.flash("info", "Saved <b>it</b>.")?;
        Ok(Redirect::to("/"))
    };
    let page = move |request: &Request| templates.render_for(request, "page.html", ());
    let client = TestClient::new(sessions.wrap(Router::new().route("/", get(page).post(save))));
    assert_eq!(client.get("/").send().text(), ".");
    client.post("/").send();
    assert_eq!(
        client.get("/").send().text(),
        "[info] Saved &lt;b&gt;it&lt;&#x2f;b&gt;.\n.",
        "escaped, as every value of an .html template"
    );
    assert_eq!(client.get("/").send().text(), ".", "shown once");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("page.html"), "{{ get_flashed_messages() }}").unwrap();
    let templates = gateway::Templates::new(dir.path()).unwrap();
    let without_sessions =
        TestClient::new(move |request: &Request| templates.render_for(request, "page.html", ()));
    assert_eq!(without_sessions.get("/").send().text(), "[]");
}
