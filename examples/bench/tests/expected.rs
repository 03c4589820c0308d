//! The bench app answers each workload with exactly the bytes of bench/expected/, which every
//! row of scripts/bench must match: a change here that drifts from the other rows fails fast,
//! without nginx.

use gateway::testing::TestClient;
use gateway::Config;

fn bench_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench")
}

fn client() -> TestClient {
    let templates = bench_dir().join("templates");
    let config = Config::from_pairs([("templates", templates.to_str().expect("UTF-8 path"))]);
    TestClient::new(bench::app(&config).expect("the app starts"))
}

fn expected(name: &str) -> Vec<u8> {
    std::fs::read(bench_dir().join("expected").join(name)).expect("bench/expected file")
}

#[test]
fn hello_json_and_template_match_the_reference_bytes() {
    let client = client();
    for (uri, file, content_type) in [
        ("/hello", "hello.txt", "text/plain; charset=utf-8"),
        ("/json", "json.json", "application/json"),
        (
            "/template?name=Ada%20Lovelace",
            "template.html",
            "text/html; charset=utf-8",
        ),
    ] {
        let response = client.get(uri).send();
        assert_eq!(response.status, 200, "{uri}");
        assert_eq!(response.header("content-type"), Some(content_type), "{uri}");
        assert_eq!(
            response.text(),
            String::from_utf8(expected(file)).unwrap(),
            "{uri}"
        );
    }
}

#[test]
fn echo_answers_the_length_and_md5_of_the_reference_body() {
    // The body scripts/bench posts: a repeated line cut at 64 KiB.
    let line =
        "ngx-gateway echo body 0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ\n";
    let body: Vec<u8> = line.bytes().cycle().take(65536).collect();
    let response = client().post("/echo").body(body).send();
    assert_eq!(response.status, 200);
    assert_eq!(response.body, expected("echo.txt"));
}

#[test]
fn echo_refuses_get() {
    assert_eq!(client().get("/echo").send().status, 405);
}

#[test]
fn sleep_blocks_for_the_asked_time_within_its_bound() {
    let started = std::time::Instant::now();
    let response = client().get("/sleep?ms=20").send();
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "slept 20 ms\n");
    assert!(started.elapsed() >= std::time::Duration::from_millis(20));
    assert_eq!(client().get("/sleep?ms=1001").send().status, 400);
    assert_eq!(client().get("/sleep?ms=x").send().status, 400);
}
