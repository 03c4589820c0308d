//! `gateway::wire`, the rules the module's environ (src/environ.rs) and response checks
//! (src/response.rs) call: the mount-point split, request header mapping and response header
//! validation, against the reference statements and the `http` crate.

use arbitrary::Arbitrary;
use gateway_abi::wire::{self, HeaderEntry, HeaderProblem};

use crate::reference;

#[derive(Debug, Arbitrary)]
struct Input {
    path: Vec<u8>,
    mount_point: Vec<u8>,
    name: Vec<u8>,
    other_name: Vec<u8>,
    value: Vec<u8>,
}

pub fn check(data: &[u8]) {
    let Some(input) = crate::decode::<Input>(data) else {
        return;
    };
    check_split(&input.path, &input.mount_point);
    check_header_mapping(&input.name, &input.other_name);
    check_response_header(&input.name, &input.value);
}

fn check_split(path: &[u8], mount_point: &[u8]) {
    let (script_name, path_info) = wire::split_mount_point(path, mount_point);
    // Nothing lost, nothing added, nothing reordered.
    assert_eq!([script_name, path_info].concat(), path);
    if script_name.is_empty() {
        assert_eq!(path_info, path);
    } else {
        // Only the whole mount point, and only at a segment boundary.
        assert_eq!(script_name, mount_point);
        assert!(
            path_info.is_empty() || path_info[0] == b'/',
            "{path_info:?}"
        );
    }
    // What a request path under nginx looks like ("/..."), PATH_INFO keeps.
    if path.starts_with(b"/") {
        assert!(path_info.is_empty() || path_info[0] == b'/');
    }
    // A mount point is never matched in the middle of a segment: /app never mounts /application.
    if let Some(rest) = path.strip_prefix(mount_point) {
        if !mount_point.is_empty() && !rest.is_empty() && rest[0] != b'/' {
            assert!(script_name.is_empty());
        }
    }
}

fn cgi_name(name: &[u8]) -> Vec<u8> {
    let mut key = vec![0xAA; wire::cgi_name_len(name)];
    wire::write_cgi_name(name, &mut key);
    key
}

fn check_header_mapping(name: &[u8], other: &[u8]) {
    let entry = wire::header_entry(name);
    let underscored = name.contains(&b'_');
    match entry {
        HeaderEntry::Underscored => assert!(underscored),
        HeaderEntry::ContentType => {
            assert!(!underscored && name.eq_ignore_ascii_case(b"content-type"))
        }
        HeaderEntry::ContentLength => {
            assert!(!underscored && name.eq_ignore_ascii_case(b"content-length"))
        }
        HeaderEntry::Http => assert!(
            !underscored
                && !name.eq_ignore_ascii_case(b"content-type")
                && !name.eq_ignore_ascii_case(b"content-length")
        ),
    }

    let key = cgi_name(name);
    assert_eq!(key.len(), 5 + name.len());
    assert!(key.starts_with(b"HTTP_"));
    for (&out, &byte) in key[5..].iter().zip(name) {
        let expected = if byte == b'-' {
            b'_'
        } else {
            byte.to_ascii_uppercase()
        };
        assert_eq!(out, expected);
        assert!(!out.is_ascii_lowercase() && out != b'-');
    }

    // No spoofing: two headers that reach the environ get the same key only when they are
    // the same header (names compare case-insensitively). Underscored names never reach it,
    // so X_Forwarded_For cannot pass for X-Forwarded-For.
    if entry == HeaderEntry::Http && wire::header_entry(other) == HeaderEntry::Http {
        assert_eq!(key == cgi_name(other), name.eq_ignore_ascii_case(other));
    }

    let separator = wire::join_separator(&key);
    if key == b"HTTP_COOKIE" {
        assert_eq!(separator, b"; ");
    } else {
        assert_eq!(separator, b", ");
    }
}

fn check_response_header(name: &[u8], value: &[u8]) {
    let verdict = wire::check_response_header(name, value);
    let name_ok = !name.is_empty() && name.iter().all(|&b| reference::is_tchar(b));
    let value_ok = value.iter().all(|&b| reference::is_field_byte(b));
    let expected = if !name_ok {
        Err(HeaderProblem::Name)
    } else if !value_ok {
        Err(HeaderProblem::Value)
    } else if reference::is_hop_by_hop(name) {
        Err(HeaderProblem::HopByHop)
    } else {
        Ok(())
    };
    assert_eq!(verdict, expected, "name {name:?} value {value:?}");
    assert_eq!(wire::is_field_text(value), value_ok);

    if verdict.is_ok() {
        // Never splits: the header line nginx writes is exactly one line.
        assert!(!value.contains(&b'\r') && !value.contains(&b'\n') && !value.contains(&0));
        assert!(!name.contains(&b':'));
    }

    // The SDK hands the module headers built with `http`: what `http` accepts, the module must
    // too (except hop-by-hop names, which the module refuses on purpose).
    if value.len() < 64 * 1024 {
        assert_eq!(
            gateway::http::HeaderValue::from_bytes(value).is_ok(),
            value_ok,
            "http and the module disagree on value {value:?}"
        );
    }
    if let Ok(parsed) = gateway::http::HeaderName::from_bytes(name) {
        let lower = parsed.as_str().as_bytes();
        assert!(name_ok, "http accepts name {name:?} the module refuses");
        assert!(matches!(
            wire::check_response_header(lower, b"v"),
            Ok(()) | Err(HeaderProblem::HopByHop)
        ));
    } else if name_ok && name.len() < 64 * 1024 - 1 {
        panic!("the module accepts name {name:?} that http refuses");
    }
}

/// The input `data` decodes to, for reading a crash (`cargo run --example show`).
pub fn describe(data: &[u8]) -> String {
    format!("{:#?}", crate::decode::<Input>(data))
}
