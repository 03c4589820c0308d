//! StaticFiles through `TestClient`: files, types, and every way out of the directory refused.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use gateway::testing::TestClient;
use gateway::{get, Request, Response, Router, StaticFiles, StatusCode};

/// `dir/public` is served; `dir/secret.txt` beside it must never be.
fn site(dir: &Path) -> TestClient {
    let public = dir.join("public");
    fs::create_dir_all(public.join("css")).unwrap();
    fs::create_dir_all(public.join("docs")).unwrap();
    fs::write(public.join("index.html"), "<h1>home</h1>").unwrap();
    fs::write(public.join("css/site.css"), "body { color: red }").unwrap();
    fs::write(public.join("logo.png"), [0x89, b'P', b'N', b'G', 0, 1, 2]).unwrap();
    fs::write(public.join("data.unknownext"), "raw").unwrap();
    fs::write(public.join("%2e%2e"), "a file with an odd name").unwrap();
    fs::write(dir.join("secret.txt"), "TOP SECRET").unwrap();
    symlink(dir.join("secret.txt"), public.join("leak.txt")).unwrap();
    symlink(dir, public.join("up")).unwrap();
    symlink(public.join("css/site.css"), public.join("latest.css")).unwrap();
    TestClient::new(Router::new().route("/static/{*path}", get(StaticFiles::new(public))))
}

#[test]
fn files_are_sent_with_their_bytes_and_a_type_from_the_extension() {
    let dir = tempfile::tempdir().unwrap();
    let client = site(dir.path());
    let cases: [(&str, &[u8], &str); 5] = [
        ("/static/index.html", b"<h1>home</h1>", "text/html"),
        ("/static/css/site.css", b"body { color: red }", "text/css"),
        (
            "/static/logo.png",
            &[0x89, b'P', b'N', b'G', 0, 1, 2],
            "image/png",
        ),
        (
            "/static/data.unknownext",
            b"raw",
            "application/octet-stream",
        ),
        // A symbolic link that stays inside the directory is followed.
        ("/static/latest.css", b"body { color: red }", "text/css"),
    ];
    for (uri, body, content_type) in cases {
        let response = client.get(uri).send();
        assert_eq!(response.status, StatusCode::OK, "{uri}");
        assert_eq!(response.body, body, "{uri}");
        assert_eq!(response.header("content-type"), Some(content_type), "{uri}");
    }
}

#[test]
fn head_is_answered_like_get() {
    let dir = tempfile::tempdir().unwrap();
    let response = site(dir.path()).head("/static/css/site.css").send();
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.header("content-type"), Some("text/css"));
}

#[test]
fn missing_files_and_directories_are_404() {
    let dir = tempfile::tempdir().unwrap();
    let client = site(dir.path());
    for uri in [
        "/static/nope.txt",
        "/static/css",
        "/static/css/",
        "/static/docs/x",
    ] {
        assert_eq!(
            client.get(uri).send().status,
            StatusCode::NOT_FOUND,
            "{uri}"
        );
    }
}

#[test]
fn every_way_out_of_the_directory_is_404() {
    let dir = tempfile::tempdir().unwrap();
    let client = site(dir.path());
    let attempts = [
        "/static/../secret.txt",
        "/static/..%2fsecret.txt",
        "/static/%2e%2e/secret.txt",
        "/static/%2e%2e%2fsecret.txt",
        "/static/css/../../secret.txt",
        "/static/./index.html",
        "/static//etc/passwd",
        "/static/%2fetc%2fpasswd",
        "/static/index.html%00.png",
        "/static/..%5csecret.txt",
        "/static/leak.txt",
        "/static/up/secret.txt",
        "/static/up",
    ];
    for uri in attempts {
        let response = client.get(uri).send();
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{uri}");
        assert!(!response.text().contains("SECRET"), "{uri}");
    }
    // Decoded once only: a double-encoded `..` names a file of that name, served from inside.
    let response = client.get("/static/%252e%252e").send();
    assert_eq!(response.text(), "a file with an odd name");
}

#[test]
fn a_missing_directory_is_404_and_logged() {
    let dir = tempfile::tempdir().unwrap();
    let client = TestClient::new(Router::new().route(
        "/files/{*path}",
        get(StaticFiles::new(dir.path().join("absent"))),
    ));
    let response = client.get("/files/a.txt").send();
    assert_eq!(response.status, StatusCode::NOT_FOUND);
    assert!(
        response
            .log
            .iter()
            .any(|line| line.message.contains("absent")),
        "{:?}",
        response.log
    );
}

#[test]
fn the_parameter_can_be_renamed_and_serve_picks_the_file_itself() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("ann.png"), "ann's avatar").unwrap();
    let avatars = StaticFiles::new(dir.path());
    let avatar = move |request: &Request| -> Response {
        avatars.serve(
            request,
            &format!("{}.png", request.param("user").unwrap_or("")),
        )
    };
    let client = TestClient::new(
        Router::new()
            .route(
                "/assets/{*file}",
                get(StaticFiles::new(dir.path()).param("file")),
            )
            .route("/users/{user}/avatar", get(avatar)),
    );
    assert_eq!(client.get("/assets/ann.png").send().text(), "ann's avatar");
    let response = client.get("/users/ann/avatar").send();
    assert_eq!(response.text(), "ann's avatar");
    assert_eq!(response.header("content-type"), Some("image/png"));
    assert_eq!(
        client.get("/users/bob/avatar").send().status,
        StatusCode::NOT_FOUND
    );
}
