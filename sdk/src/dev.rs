//! A development server: runs an app over HTTP without nginx, for quick iteration. Not for
//! production (one request at a time, no limits, no TLS): deploy the same app with nginx and
//! ngx-gateway. Built on `tiny_http`; enable the SDK's `dev-server` feature.

use std::io;
use std::net::SocketAddr;

use crate::handler::Handler;
use crate::local::{collect, LocalRequest};
use crate::logging::Target;

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
        let collected = collect(local.call(&handler, Target::Stderr));
        let method = request.method().clone();
        eprintln!("{} {} -> {}", method, local.uri, collected.status.as_u16());
        if let Some(failure) = &collected.failure {
            eprintln!("  app failed: {failure}");
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
