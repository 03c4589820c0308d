//! multipart/form-data through `TestClient`: fields, files, limits and refusals.

use gateway::multipart::{Multipart, MultipartLimits};
use gateway::{post, Error, Request, Router, StatusCode};

const BOUNDARY: &str = "XyZ-boundary-42";

/// One part: name, optional file name and content type, value.
struct Part<'a> {
    name: &'a str,
    file: Option<(&'a str, &'a str)>,
    value: &'a [u8],
}

fn text<'a>(name: &'a str, value: &'a str) -> Part<'a> {
    Part {
        name,
        file: None,
        value: value.as_bytes(),
    }
}

fn file<'a>(name: &'a str, file_name: &'a str, content_type: &'a str, value: &'a [u8]) -> Part<'a> {
    Part {
        name,
        file: Some((file_name, content_type)),
        value,
    }
}

fn encode(parts: &[Part]) -> Vec<u8> {
    let mut body = Vec::new();
    for part in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match part.file {
            Some((file_name, content_type)) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{}\"; filename=\"{file_name}\"\r\n\
                     Content-Type: {content_type}\r\n\r\n",
                    part.name
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{}\"\r\n\r\n",
                    part.name
                )
                .as_bytes(),
            ),
        }
        body.extend_from_slice(part.value);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

fn content_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

/// Describes every field: `name|file name|content type|size|value or sum`.
fn describe(request: &Request, limits: MultipartLimits) -> Result<String, Error> {
    let mut form = Multipart::from_request(request, limits)?;
    let mut lines = Vec::new();
    while let Some(mut field) = form.next_field()? {
        let head = format!(
            "{}|{}|{}",
            field.name().unwrap_or("-"),
            field.file_name().unwrap_or("-"),
            field.content_type().unwrap_or("-"),
        );
        if field.file_name().is_some() {
            // Read in chunks: their sizes add up to the whole, and their bytes to a sum.
            let (mut size, mut sum) = (0usize, 0u64);
            while let Some(chunk) = field.chunk()? {
                size += chunk.len();
                sum += chunk.iter().map(|&byte| u64::from(byte)).sum::<u64>();
            }
            lines.push(format!("{head}|{size}|{sum}"));
        } else {
            let value = field.text()?;
            lines.push(format!("{head}|{}|{value}", value.len()));
        }
    }
    Ok(lines.join("\n"))
}

fn client(limits: MultipartLimits) -> gateway::testing::TestClient {
    gateway::testing::TestClient::new(Router::new().route(
        "/",
        post(move |request: &Request| describe(request, limits)),
    ))
}

fn pattern(size: usize) -> Vec<u8> {
    (0..size).map(|index| (index * 7 % 251) as u8).collect()
}

#[test]
fn fields_and_files_are_read_with_their_names_and_types() {
    let data = pattern(300_000);
    let body = encode(&[
        text("title", "Grüße"),
        file("attachment", "photo.png", "image/png", &data),
        text("empty", ""),
    ]);
    let response = client(MultipartLimits::default())
        .post("/")
        .header("Content-Type", &content_type())
        .body(body)
        .send();
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let sum: u64 = data.iter().map(|&byte| u64::from(byte)).sum();
    assert_eq!(
        response.text(),
        format!("title|-|-|7|Grüße\nattachment|photo.png|image/png|300000|{sum}\nempty|-|-|0|")
    );
}

#[test]
fn a_field_is_saved_to_a_file_and_copied_to_a_writer() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("saved.bin");
    let saved_to = target.clone();
    let app = Router::new().route(
        "/",
        post(move |request: &Request| -> Result<String, Error> {
            let mut form = Multipart::from_request(request, MultipartLimits::default())?;
            let first = form.next_field()?.expect("a first field");
            let saved = first.save(&saved_to)?;
            let mut second = form.next_field()?.expect("a second field");
            let mut copy = Vec::new();
            let copied = second.copy_to(&mut copy)?;
            Ok(format!(
                "{saved} {copied} {}",
                String::from_utf8_lossy(&copy)
            ))
        }),
    );
    let data = pattern(100_000);
    let response = gateway::testing::TestClient::new(app)
        .post("/")
        .header("Content-Type", &content_type())
        .body(encode(&[
            file("upload", "a.bin", "application/octet-stream", &data),
            text("note", "hello"),
        ]))
        .send();
    assert_eq!(response.text(), "100000 5 hello");
    assert_eq!(std::fs::read(&target).unwrap(), data);
}

#[test]
fn bytes_reads_a_whole_field() {
    let app = Router::new().route(
        "/",
        post(|request: &Request| -> Result<Vec<u8>, Error> {
            let mut form = Multipart::from_request(request, MultipartLimits::default())?;
            Ok(form.next_field()?.expect("a field").bytes()?.to_vec())
        }),
    );
    let data = pattern(70_000);
    let response = gateway::testing::TestClient::new(app)
        .post("/")
        .header("Content-Type", &content_type())
        .body(encode(&[file(
            "f",
            "f.bin",
            "application/octet-stream",
            &data,
        )]))
        .send();
    assert_eq!(response.body, data);
}

#[test]
fn a_body_over_its_limit_is_413_before_parsing() {
    let body = encode(&[text("a", &"x".repeat(2000))]);
    let response = client(MultipartLimits::default().body(1000))
        .post("/")
        .header("Content-Type", &content_type())
        .body(body)
        .send();
    assert_eq!(response.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        response.text().contains("1000 bytes"),
        "{}",
        response.text()
    );
}

#[test]
fn a_field_over_its_limit_is_413_and_its_partial_file_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("partial.bin");
    let saved_to = target.clone();
    let app = Router::new().route(
        "/",
        post(move |request: &Request| -> Result<String, Error> {
            let limits = MultipartLimits::default().field(10_000);
            let mut form = Multipart::from_request(request, limits)?;
            let field = form.next_field()?.expect("a field");
            Ok(field.save(&saved_to)?.to_string())
        }),
    );
    let response = gateway::testing::TestClient::new(app)
        .post("/")
        .header("Content-Type", &content_type())
        .body(encode(&[file(
            "big",
            "big.bin",
            "application/octet-stream",
            &pattern(200_000),
        )]))
        .send();
    assert_eq!(response.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(response.text().contains("\"big\""), "{}", response.text());
    assert!(!target.exists());
}

#[test]
fn more_fields_than_the_limit_is_413() {
    let parts: Vec<Part> = (0..5).map(|_| text("n", "1")).collect();
    let client = client(MultipartLimits::default().fields(4));
    let send = |parts: &[Part]| {
        client
            .post("/")
            .header("Content-Type", &content_type())
            .body(encode(parts))
            .send()
    };
    assert_eq!(send(&parts).status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(send(&parts[..4]).status, StatusCode::OK);
}

#[test]
fn a_malformed_body_is_400() {
    let client = client(MultipartLimits::default());
    let send = |content_type: &str, body: &[u8]| {
        client
            .post("/")
            .header("Content-Type", content_type)
            .body(body.to_vec())
            .send()
            .status
    };
    // Cut short in a field, no closing boundary.
    let whole = encode(&[text("a", "value")]);
    assert_eq!(
        send(&content_type(), &whole[..whole.len() - 30]),
        StatusCode::BAD_REQUEST
    );
    // Not multipart at all.
    assert_eq!(
        send(&content_type(), b"just some text"),
        StatusCode::BAD_REQUEST
    );
    // Part headers that do not parse.
    let broken = format!("--{BOUNDARY}\r\nno header here\r\n\r\nx\r\n--{BOUNDARY}--\r\n");
    assert_eq!(
        send(&content_type(), broken.as_bytes()),
        StatusCode::BAD_REQUEST
    );
    // No boundary in the content type.
    assert_eq!(send("multipart/form-data", &whole), StatusCode::BAD_REQUEST);
}

#[test]
fn another_content_type_is_415() {
    let client = client(MultipartLimits::default());
    let body = encode(&[text("a", "b")]);
    for content_type in [
        "application/x-www-form-urlencoded",
        "multipart/mixed; boundary=x",
    ] {
        let response = client
            .post("/")
            .header("Content-Type", content_type)
            .body(body.clone())
            .send();
        assert_eq!(
            response.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type}"
        );
    }
    let response = client.post("/").body(body).send();
    assert_eq!(response.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(response.text().contains("multipart/form-data"));
}

#[test]
fn a_large_file_arrives_in_chunks_not_whole() {
    let data = pattern(6 << 20);
    let body = encode(&[file("upload", "big.bin", "application/octet-stream", &data)]);
    let client = gateway::testing::TestClient::new(|request: &Request| -> Result<String, Error> {
        let mut form = Multipart::from_request(request, MultipartLimits::default())?;
        let mut field = form.next_field()?.expect("a field");
        let (mut count, mut largest, mut total) = (0, 0, 0);
        while let Some(chunk) = field.chunk()? {
            count += 1;
            largest = largest.max(chunk.len());
            total += chunk.len();
        }
        Ok(format!("{count} {largest} {total}"))
    });
    let answer = client
        .post("/")
        .header("Content-Type", &content_type())
        .body(body)
        .send()
        .text();
    let numbers: Vec<usize> = answer.split(' ').map(|n| n.parse().unwrap()).collect();
    assert_eq!(numbers[2], 6 << 20, "{answer}");
    assert!(
        numbers[1] <= 256 << 10,
        "no chunk holds much of the file: {answer}"
    );
    assert!(numbers[0] >= 24, "{answer}");
}
