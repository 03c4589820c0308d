//! A development server: runs an app over HTTP without nginx, for quick iteration. Not for
//! production (one request at a time, no limits, no TLS): deploy the same app with nginx and
//! ngx-gateway. Built on `tiny_http`; enable the SDK's `dev-server` feature.
//!
//! A handler that panics or fails gets an error page with the reason (and for a panic, the
//! stack), as Flask's debugger shows; under nginx the client gets nginx's plain 500 page and
//! the reason goes only to the error log. Templates reload as they change when the app's
//! [`Templates`](crate::Templates) have `templates_reload on`.

use std::io;
use std::net::SocketAddr;

use http::header::CONTENT_TYPE;
use http::StatusCode;

use crate::handler::Handler;
use crate::local::{collect, Collected, LocalRequest};
use crate::logging::Target;
use crate::panic_report;
use crate::response::TEXT_HTML;

/// The development error page; minijinja escapes every value (the name ends in `.html`).
const ERROR_PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>{{ title }}</title>
<style>body{font-family:sans-serif;margin:2em}pre{background:#f4f4f4;padding:1em;overflow:auto}</style>
</head><body>
<h1>{{ title }}</h1>
<p><code>{{ method }} {{ uri }}</code></p>
<pre>{{ reason }}</pre>
{% if backtrace %}<h2>Stack</h2><pre>{{ backtrace }}</pre>{% endif %}
<p><small>Shown by the development server only: under nginx the client gets a plain 500 and
the reason goes to the error log.</small></p>
</body></html>
"#;

/// Calls `handler` as the module would, except that a panic or a failure answers with the
/// development error page.
fn answer(handler: &dyn Handler, local: &LocalRequest) -> Collected {
    let (title, reason, backtrace) = match panic_report::catch_traced("handler", || {
        collect(local.call(handler, Target::Stderr))
    }) {
        Ok(collected) => match &collected.failure {
            Some(failure) if collected.status == StatusCode::INTERNAL_SERVER_ERROR => {
                ("The app failed", failure.clone(), None)
            }
            _ => return collected,
        },
        Err((message, backtrace)) => ("The app panicked", message, Some(backtrace.to_string())),
    };
    eprintln!("  {reason}");
    let mut environment = minijinja::Environment::new();
    let page = environment
        .add_template("error.html", ERROR_PAGE)
        .and_then(|()| environment.get_template("error.html"))
        .and_then(|page| {
            page.render(minijinja::context! {
                title, reason, backtrace, method => &local.method, uri => &local.uri,
            })
        })
        .unwrap_or_else(|error| format!("the error page failed: {error}"));
    let mut headers = http::HeaderMap::new();
    headers.insert(CONTENT_TYPE, TEXT_HTML);
    Collected {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        headers,
        body: page.into_bytes(),
        internal_redirect: None,
        failure: None,
        stream_error: None,
        log: Vec::new(),
    }
}

/// Serves `handler` at `address` (e.g. "127.0.0.1:8000") until the process is stopped.
pub fn serve(handler: impl Handler, address: &str) -> io::Result<()> {
    let server = tiny_http::Server::http(address).map_err(io::Error::other)?;
    let local = server
        .server_addr()
        .to_ip()
        .map_or_else(|| address.to_string(), |addr| addr.to_string());
    eprintln!("WARNING: this is a development server. Do not use it in a production deployment; serve the app with nginx and ngx-gateway.");
    eprintln!("Serving on http://{local}/ (Ctrl-C to stop)");
    let server_addr = server.server_addr().to_ip();
    for mut request in server.incoming_requests() {
        let mut body = Vec::new();
        if let Err(error) = request.as_reader().read_to_end(&mut body) {
            eprintln!("reading a request body failed: {error}");
            continue;
        }
        let remote = request
            .remote_addr()
            .copied()
            .map_or(("".into(), 0), |addr: SocketAddr| {
                (addr.ip().to_string(), addr.port())
            });
        let server = server_addr.map_or(("localhost".into(), 0), |addr| {
            (addr.ip().to_string(), addr.port())
        });
        let local = LocalRequest {
            method: request.method().as_str().to_string(),
            uri: request.url().to_string(),
            script_name: String::new(),
            https: false,
            protocol: if request.http_version() == &tiny_http::HTTPVersion(1, 0) {
                "HTTP/1.0"
            } else {
                "HTTP/1.1"
            },
            headers: request
                .headers()
                .iter()
                .map(|header| {
                    (
                        header.field.as_str().to_string(),
                        header.value.as_str().as_bytes().to_vec(),
                    )
                })
                .collect(),
            body,
            remote,
            server,
            runs_on: "dev_server",
        };
        let collected = answer(&handler, &local);
        let method = request.method().clone();
        eprintln!("{} {} -> {}", method, local.uri, collected.status.as_u16());
        if let Some(failure) = &collected.failure {
            eprintln!("  {failure}");
        }
        if let Some(target) = &collected.internal_redirect {
            eprintln!("  internal redirect to {target}: only nginx can follow it");
        }
        if let Some(error) = &collected.stream_error {
            eprintln!("  stream failed: {error}");
        }
        let mut response = tiny_http::Response::from_data(if method == tiny_http::Method::Head {
            Vec::new()
        } else {
            collected.body
        })
        .with_status_code(collected.status.as_u16());
        for (name, value) in &collected.headers {
            if name == http::header::CONTENT_LENGTH {
                continue;
            }
            if let Ok(header) =
                tiny_http::Header::from_bytes(name.as_str().as_bytes(), value.as_bytes())
            {
                response.add_header(header);
            }
        }
        if let Err(error) = request.respond(response) {
            eprintln!("  sending the response failed: {error}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Error, Request};

    fn get(uri: &str) -> LocalRequest {
        LocalRequest {
            method: "GET".into(),
            uri: uri.into(),
            script_name: String::new(),
            protocol: "HTTP/1.1",
            headers: vec![("Host".into(), b"localhost".to_vec())],
            body: Vec::new(),
            remote: ("127.0.0.1".into(), 40000),
            server: ("localhost".into(), 8000),
            runs_on: "dev_server",
            https: false,
        }
    }

    fn page(collected: &Collected) -> String {
        String::from_utf8_lossy(&collected.body).into_owned()
    }

    fn panics(_: &Request) -> &'static str {
        panic!("no <note> here")
    }

    #[test]
    fn a_panic_answers_the_page_with_its_message_place_and_stack() {
        let collected = answer(&panics, &get("/boom?x=<b>"));
        assert_eq!(collected.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(collected.headers[CONTENT_TYPE], "text/html; charset=utf-8");
        let page = page(&collected);
        assert!(page.contains("The app panicked"), "{page}");
        assert!(
            page.contains("GET &#x2f;boom?x=&lt;b&gt;"),
            "escaped: {page}"
        );
        assert!(page.contains("no &lt;note&gt; here"), "escaped: {page}");
        assert!(page.contains("dev.rs:"), "the panic's place: {page}");
        assert!(page.contains("<h2>Stack</h2>"), "{page}");
        assert!(
            page.contains("panics"),
            "the panicking function in the stack: {page}"
        );
        // The server lives on: the next request is answered as usual.
        let hello = |_: &Request| "hello";
        assert_eq!(answer(&hello, &get("/")).body, b"hello");
    }

    #[test]
    fn a_failure_answers_the_page_with_the_logged_reason() {
        let fails = |_: &Request| -> Result<&'static str, Error> {
            Err(Error::internal("the notes table is missing"))
        };
        let collected = answer(&fails, &get("/"));
        assert_eq!(collected.status, StatusCode::INTERNAL_SERVER_ERROR);
        let page = page(&collected);
        assert!(page.contains("The app failed"), "{page}");
        assert!(page.contains("the notes table is missing"), "{page}");
        assert!(!page.contains("Stack"), "{page}");
    }

    #[test]
    fn client_errors_and_successes_pass_through() {
        let missing = |_: &Request| -> Result<&'static str, Error> {
            Err(Error::status(StatusCode::NOT_FOUND, "no such note"))
        };
        let collected = answer(&missing, &get("/"));
        assert_eq!(collected.status, StatusCode::NOT_FOUND);
        assert!(
            page(&collected).starts_with("no such note"),
            "{}",
            page(&collected)
        );
    }
}
