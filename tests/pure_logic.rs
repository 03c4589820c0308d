//! Unit tests of the module's pure logic: the response checks and the status renderers. The
//! module itself links against nginx's symbols and cannot run as a test binary, so these
//! files, which use nothing of nginx, are compiled here as they are.

// The module uses all of these files; the tests, only what they check.
#[allow(dead_code)]
#[path = "../src/response/check.rs"]
mod check;

#[allow(dead_code)]
#[path = "../src/status"]
mod status {
    pub mod counters;
    pub mod render;
}

use std::ffi::c_void;
use std::time::Duration;

use check::{check, Invalid};
use gateway_abi as abi;
use status::counters::{MountCounters, Table};

mod checks {
    use super::*;

    unsafe extern "C" fn release(_: *mut c_void) {}

    unsafe extern "C" fn next(_: *mut c_void, _: *mut abi::Chunk) -> i32 {
        abi::STREAM_END
    }

    fn response(
        status: u16,
        headers: &[abi::Pair],
        kind: u32,
        body: &'static [u8],
    ) -> abi::Response {
        abi::Response {
            status,
            reason: abi::Bytes::EMPTY,
            headers: headers.as_ptr(),
            headers_len: headers.len(),
            body_kind: kind,
            body: abi::Bytes::from_static(body),
            owner: std::ptr::null_mut(),
            release,
            stream: std::ptr::null_mut(),
            stream_next: None,
        }
    }

    fn pair(name: &'static [u8], value: &'static [u8]) -> abi::Pair {
        abi::Pair {
            name: abi::Bytes::from_static(name),
            value: abi::Bytes::from_static(value),
        }
    }

    #[test]
    fn a_valid_response_passes_with_its_declared_length() {
        let headers = [
            pair(b"Content-Type", b"text/plain"),
            pair(b"Content-Length", b"5"),
        ];
        let response = response(200, &headers, abi::BODY_BYTES, b"hello");
        let checked = check(&response).expect("valid");
        assert_eq!(
            (checked.status, checked.body, checked.content_length),
            (200, &b"hello"[..], Some(5))
        );
    }

    #[test]
    fn each_invalid_response_is_refused_and_says_why() {
        let crlf = [pair(b"X-Echo", b"a\r\nSet-Cookie: x=1")];
        let hop = [pair(b"Transfer-Encoding", b"chunked")];
        let bad_name = [pair(b"Bad Name", b"x")];
        let length = [pair(b"Content-Length", b"3")];
        let cases: [(abi::Response, &str); 8] = [
            (
                response(99, &[], abi::BODY_BYTES, b""),
                "status 99 is not a final HTTP status",
            ),
            (
                response(200, &crlf, abi::BODY_BYTES, b""),
                "header \"X-Echo\" has a value with CR, LF",
            ),
            (
                response(200, &hop, abi::BODY_BYTES, b""),
                "header \"Transfer-Encoding\" is hop-by-hop",
            ),
            (
                response(200, &bad_name, abi::BODY_BYTES, b""),
                "header name \"Bad Name\" is not an HTTP token",
            ),
            (
                response(200, &length, abi::BODY_BYTES, b"hello"),
                "differs from the body's 5 bytes",
            ),
            (
                response(200, &[], abi::BODY_STREAM, b""),
                "streamed body without a stream function",
            ),
            (
                response(200, &[], abi::BODY_FILE, b"relative/path"),
                "is not absolute",
            ),
            (
                response(200, &[], abi::BODY_REDIRECT, b"elsewhere"),
                "neither a path nor a named location",
            ),
        ];
        for (response, why) in &cases {
            let message = match check(response) {
                Ok(_) => panic!("accepted a response that should fail with {why:?}"),
                Err(invalid) => invalid.to_string(),
            };
            assert!(message.contains(why), "{message:?} does not say {why:?}");
        }
        let unknown = response(200, &[], 42, b"");
        assert!(matches!(check(&unknown), Err(Invalid::BodyKind(42))));
    }

    #[test]
    fn a_stream_with_its_function_and_a_named_redirect_pass() {
        let mut stream = response(200, &[], abi::BODY_STREAM, b"");
        stream.stream_next = Some(next);
        assert!(check(&stream).is_ok());
        assert!(check(&response(200, &[], abi::BODY_REDIRECT, b"@fallback")).is_ok());
        assert!(check(&response(200, &[], abi::BODY_FILE, b"/srv/file")).is_ok());
    }
}

mod renderers {
    use super::*;

    fn table() -> Box<Table> {
        // SAFETY: all-zero is a valid, empty table (atomics and names at zero), as the
        // shared-memory zone's slab gives it.
        unsafe { Box::<Table>::new_zeroed().assume_init() }
    }

    fn mount<'t>(
        table: &'t mut Table,
        at: usize,
        app: &[u8],
        location: &[u8],
    ) -> &'t MountCounters {
        table.mounts[at].app.set(app);
        table.mounts[at].location.set(location);
        &table.mounts[at]
    }

    /// Two locations of `api` and one of `admin"ui` (a name to escape), and a pool.
    fn counted() -> Box<Table> {
        let mut table = table();
        let first = mount(&mut table, 0, b"api", b"/v1/");
        for _ in 0..3 {
            first.answered(200);
            first.observe(Duration::from_millis(3));
        }
        first.answered(504);
        first.timed_out();
        let second = mount(&mut table, 1, b"api", b"/v2/");
        second.answered(500);
        second.failed(true);
        second.observe(Duration::from_millis(700));
        second.call_started();
        let third = mount(&mut table, 2, b"admin\"ui", b"/admin/");
        third.answered(404);
        table.pools[0].name.set(b"default");
        table.pools[0].posted();
        table.pools[0].started();
        table.pools[0].finished();
        table
    }

    #[test]
    fn json_has_each_app_s_totals_and_each_location() {
        let table = counted();
        let doc: serde_json::Value =
            serde_json::from_str(&status::render::json(&table)).expect("valid JSON");
        let api = &doc["apps"]["api"];
        assert_eq!(api["requests"], 5);
        assert_eq!(api["responses"]["2xx"], 3);
        assert_eq!(api["responses"]["5xx"], 2);
        assert_eq!(
            (api["timeouts"].as_u64(), api["panics"].as_u64()),
            (Some(1), Some(1))
        );
        assert_eq!(api["in_flight"], 1);
        assert_eq!(api["latency"]["count"], 4);
        assert_eq!(api["locations"]["/v1/"]["requests"], 4);
        assert_eq!(api["locations"]["/v2/"]["requests"], 1);
        assert_eq!(api["locations"]["/v1/"]["timeouts"], 1);
        assert_eq!(api["locations"]["/v2/"]["timeouts"], 0);
        // Cumulative buckets: the 3 ms calls under 5 ms, all four under 1 s.
        let buckets = api["latency"]["buckets"].as_array().expect("buckets");
        assert_eq!(
            (buckets[1]["le_ms"].as_u64(), buckets[1]["count"].as_u64()),
            (Some(5), Some(3))
        );
        assert_eq!(buckets[8]["count"], 4);
        assert_eq!(buckets.last().expect("+Inf")["le_ms"], "+Inf");
        assert_eq!(doc["apps"]["admin\"ui"]["responses"]["4xx"], 1);
        assert_eq!(doc["thread_pools"]["default"]["completed"], 1);
        assert_eq!(doc["thread_pools"]["default"]["running"], 0);
    }

    #[test]
    fn prometheus_labels_each_series_by_app_and_location_once_per_family() {
        let table = counted();
        let text = status::render::prometheus(&table);
        assert!(text.contains(
            "gateway_app_responses_total{app=\"api\",location=\"/v1/\",class=\"2xx\"} 3\n"
        ));
        assert!(text.contains("gateway_app_timeouts_total{app=\"api\",location=\"/v1/\"} 1\n"));
        assert!(text.contains("gateway_app_panics_total{app=\"api\",location=\"/v2/\"} 1\n"));
        assert!(text.contains("gateway_app_in_flight{app=\"api\",location=\"/v2/\"} 1\n"));
        assert!(
            text.contains("app=\"admin\\\"ui\",location=\"/admin/\""),
            "escaped label"
        );
        assert!(text.contains("gateway_app_call_duration_seconds_bucket{app=\"api\",location=\"/v1/\",le=\"0.005\"} 3\n"));
        assert!(text.contains(
            "gateway_app_call_duration_seconds_count{app=\"api\",location=\"/v1/\"} 3\n"
        ));
        assert!(text.contains("gateway_thread_pool_completed_total{pool=\"default\"} 1\n"));
        let mut families = std::collections::HashMap::new();
        for line in text.lines().filter(|line| line.starts_with("# TYPE ")) {
            *families
                .entry(line.split(' ').nth(2).expect("a name"))
                .or_insert(0) += 1;
        }
        assert_eq!(families.len(), 12, "{families:?}");
        assert!(families.values().all(|&count| count == 1), "{families:?}");
    }
}
