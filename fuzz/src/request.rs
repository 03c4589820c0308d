//! The SDK's request side of the ABI: an arbitrary environ (raw bytes, as the module passes
//! them: invalid UTF-8, duplicate keys, NULs) and a body in memory and file segments, through
//! `dispatch`, into the query / form / JSON / cookie parsers, the header views and the body
//! reader.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use gateway::{IntoResponse, Request, Response};
use gateway_abi as abi;
use serde::Deserialize;

use crate::host::{self, Completion};

#[derive(Debug, Arbitrary)]
struct Input {
    method: Vec<u8>,
    uri: Vec<u8>,
    query: Vec<u8>,
    content_type: Option<Vec<u8>>,
    cookie: Option<Vec<u8>>,
    /// Any further entries, as the module or a `gateway_param` could add.
    extra: Vec<(Vec<u8>, Vec<u8>)>,
    body: Vec<u8>,
    /// Where the body is cut into segments, and whether each lies in the spill file.
    cuts: Vec<(u16, bool)>,
    /// The spill file holds fewer bytes than the segments claim (a truncated temp file).
    short_file: bool,
    /// Read sizes for reading the body back.
    reads: Vec<u16>,
    /// Which parser answers the request.
    answer: u8,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Typed {
    name: Option<String>,
    count: Option<u32>,
    flag: Option<bool>,
    tags: Option<Vec<String>>,
}

/// The spill file: one per process, rewritten for each input.
fn spill_file() -> &'static File {
    static FILE: OnceLock<File> = OnceLock::new();
    FILE.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("gateway-fuzz-body-{}", std::process::id()));
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .expect("spill file");
        let _ = std::fs::remove_file(&path);
        file
    })
}

pub fn check(data: &[u8]) {
    let Some(input) = crate::decode::<Input>(data) else {
        return;
    };

    let mut environ: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b"REQUEST_METHOD".to_vec(), input.method.clone()),
        (b"REQUEST_URI".to_vec(), input.uri.clone()),
        (b"QUERY_STRING".to_vec(), input.query.clone()),
        (b"PATH_INFO".to_vec(), input.uri.clone()),
    ];
    if let Some(content_type) = &input.content_type {
        environ.push((b"CONTENT_TYPE".to_vec(), content_type.clone()));
    }
    if let Some(cookie) = &input.cookie {
        environ.push((b"HTTP_COOKIE".to_vec(), cookie.clone()));
    }
    if !input.body.is_empty() {
        environ.push((
            b"CONTENT_LENGTH".to_vec(),
            input.body.len().to_string().into_bytes(),
        ));
    }
    environ.extend(input.extra.iter().cloned());

    // The body, cut into memory and file segments as nginx may hand it over.
    let file = spill_file();
    let mut segments = Vec::new();
    let mut start = 0usize;
    let mut file_len = 0u64;
    let mut cuts = input.cuts.clone();
    cuts.push((u16::MAX, false));
    for (cut, in_file) in cuts {
        if start >= input.body.len() {
            break;
        }
        let end = (start + usize::from(cut).max(1)).min(input.body.len());
        let part = &input.body[start..end];
        if in_file {
            file.write_all_at(part, file_len).expect("spill write");
            segments.push(abi::BodySegment {
                fd: file.as_raw_fd(),
                offset: file_len,
                len: part.len() as u64,
                data: std::ptr::null(),
            });
            file_len += part.len() as u64;
        } else {
            segments.push(abi::BodySegment {
                fd: -1,
                offset: 0,
                len: part.len() as u64,
                data: part.as_ptr(),
            });
        }
        start = end;
    }
    let truncated = input.short_file && file_len > 0;
    file.set_len(if truncated { file_len - 1 } else { file_len })
        .expect("spill truncate");

    let completion = host::run(&environ, &segments, 16, |request| {
        inspect(request, &input, &environ, truncated)
    });
    match completion {
        Completion::Responded(seen) => {
            assert!(
                matches!(seen.status, 200 | 400 | 415 | 422),
                "status {}",
                seen.status
            );
        }
        // Only a body that cannot be read is a server-side failure.
        Completion::Failed { message, .. } => {
            assert!(truncated, "failed: {}", String::from_utf8_lossy(&message));
        }
    }
}

fn inspect(
    request: &Request,
    input: &Input,
    environ: &[(Vec<u8>, Vec<u8>)],
    truncated: bool,
) -> Response {
    // The environ view: first entry wins, nothing added or lost.
    let view = request.environ();
    assert_eq!(view.len(), environ.len());
    for (key, value) in environ {
        let first = environ.iter().find(|(k, _)| k == key).map(|(_, v)| &v[..]);
        if let Ok(name) = std::str::from_utf8(key) {
            assert_eq!(view.get(name), first);
            assert_eq!(
                view.get_str(name),
                first.and_then(|v| std::str::from_utf8(v).ok())
            );
        }
        let _ = value;
    }
    assert_eq!(request.query_string(), &input.query[..]);

    // Header views. Keys as the module writes them (upper case, "_" for "-") read back as
    // the header they came from: `header` finds the first entry, the map has every value.
    let headers = request.headers();
    for (name, value) in &headers {
        assert!(!name
            .as_str()
            .bytes()
            .any(|b| b.is_ascii_uppercase() || b == b'_'));
        assert!(!value
            .as_bytes()
            .iter()
            .any(|&b| b == b'\r' || b == b'\n' || b == 0));
    }
    for (key, value) in environ {
        let Some(rest) = key.strip_prefix(b"HTTP_") else {
            continue;
        };
        // Not what the module writes: lower case, "-", or a name CONTENT_* already has.
        if rest.iter().any(|b| b.is_ascii_lowercase() || *b == b'-')
            || rest == b"CONTENT_TYPE"
            || rest == b"CONTENT_LENGTH"
        {
            continue;
        }
        let Ok(rest) = std::str::from_utf8(rest) else {
            continue;
        };
        let name = rest.replace('_', "-").to_ascii_lowercase();
        let first = environ.iter().find(|(k, _)| k == key).map(|(_, v)| &v[..]);
        assert_eq!(request.header(&name), first, "header({name:?})");
        if let (Ok(header_name), Ok(header_value)) = (
            gateway::http::HeaderName::from_bytes(name.as_bytes()),
            gateway::http::HeaderValue::from_bytes(value),
        ) {
            assert!(headers
                .get_all(header_name)
                .iter()
                .any(|v| *v == header_value));
        }
    }

    let _ = request.uri();
    let _ = request.method();
    let _ = request.version();
    let _ = request.path();
    let _ = request.script_name();
    let _ = request.content_length();

    let mut cookies = 0;
    for (name, value) in request.cookies() {
        cookies += 1;
        assert!(!name.contains(';') && !value.contains(';'));
        assert!(request.cookie(name).is_some());
    }
    let header = input.cookie.as_deref().unwrap_or(b"");
    assert!(cookies <= header.iter().filter(|&&b| b == b';').count() + 1);

    // The body, read back in the fuzzer's read sizes, then line by line.
    let mut body = request.body();
    assert_eq!(body.len(), input.body.len() as u64);
    let mut read = Vec::new();
    let mut sizes = input.reads.iter().cycle();
    let failed = loop {
        let size = usize::from(*sizes.next().unwrap_or(&4096)).max(1);
        let mut buffer = vec![0; size];
        match body.read(&mut buffer) {
            Ok(0) => break false,
            Ok(n) => read.extend_from_slice(&buffer[..n]),
            Err(_) => break true,
        }
    };
    assert_eq!(failed, truncated);
    if !failed {
        assert_eq!(read, input.body);
        let mut lines = Vec::new();
        let mut reader = request.body();
        loop {
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) => break,
                Ok(_) => lines.extend_from_slice(&line),
                Err(error) => panic!("line read failed: {error}"),
            }
        }
        assert_eq!(lines, input.body);
    } else {
        assert!(input.body.starts_with(&read));
    }

    match input.answer % 6 {
        0 => request
            .query::<HashMap<String, String>>()
            .map(|q| format!("{q:?}"))
            .into_response(),
        1 => request
            .query::<Typed>()
            .map(|q| format!("{q:?}"))
            .into_response(),
        2 => request
            .form::<Vec<(String, String)>>()
            .map(|f| format!("{f:?}"))
            .into_response(),
        3 => request
            .form::<Typed>()
            .map(|f| format!("{f:?}"))
            .into_response(),
        4 => request
            .json::<gateway::serde_json::Value>()
            .map(|j| j.to_string())
            .into_response(),
        _ => request
            .json::<Typed>()
            .map(|j| format!("{j:?}"))
            .into_response(),
    }
}

/// The input `data` decodes to, for reading a crash (`cargo run --example show`).
pub fn describe(data: &[u8]) -> String {
    format!("{:#?}", crate::decode::<Input>(data))
}
