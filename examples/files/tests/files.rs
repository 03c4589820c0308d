//! The files app through `TestClient`: an upload saved under its digest and read back, and
//! static files.

use gateway::testing::TestClient;
use gateway::{Config, StatusCode};

fn client(dir: &std::path::Path, max_file_size: &str) -> TestClient {
    std::fs::create_dir_all(dir.join("static")).unwrap();
    std::fs::write(dir.join("static/app.js"), "console.log(1)").unwrap();
    let config = Config::from_pairs([
        ("static", dir.join("static").to_str().unwrap()),
        ("uploads", dir.join("uploads").to_str().unwrap()),
        ("max_file_size", max_file_size),
    ]);
    TestClient::new(files::app(&config).unwrap())
}

fn form(content: &[u8]) -> Vec<u8> {
    let mut body = b"--B\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nholiday\r\n\
                     --B\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"beach.png\"\r\n\
                     Content-Type: image/png\r\n\r\n"
        .to_vec();
    body.extend_from_slice(content);
    body.extend_from_slice(b"\r\n--B--\r\n");
    body
}

#[test]
fn an_upload_is_saved_under_its_digest_and_served_back() {
    let dir = tempfile::tempdir().unwrap();
    let client = client(dir.path(), "1000000");
    let content: Vec<u8> = (0..50_000u32).map(|n| (n % 256) as u8).collect();
    let response = client
        .post("/upload")
        .header("Content-Type", "multipart/form-data; boundary=B")
        .body(form(&content))
        .send();
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let text = response.text();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("title = holiday"));
    let file: Vec<&str> = lines.next().unwrap().split(' ').collect();
    assert_eq!(file[..4], ["photo", "beach.png", "image/png", "50000"]);
    assert_eq!(file[5], format!("/uploads/{}.png", file[4]));
    let back = client.get(file[5]).send();
    assert_eq!(back.body, content);
    assert_eq!(back.header("content-type"), Some("image/png"));
    // Only the saved file is left in the directory, no temporary one.
    assert_eq!(
        std::fs::read_dir(dir.path().join("uploads"))
            .unwrap()
            .count(),
        1
    );
}

#[test]
fn a_file_over_max_file_size_is_413_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let response = client(dir.path(), "1000")
        .post("/upload")
        .header("Content-Type", "multipart/form-data; boundary=B")
        .body(form(&[7; 5000]))
        .send();
    assert_eq!(response.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        std::fs::read_dir(dir.path().join("uploads"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn static_files_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let response = client(dir.path(), "1000").get("/static/app.js").send();
    assert_eq!(response.text(), "console.log(1)");
    assert_eq!(response.header("content-type"), Some("text/javascript"));
}
