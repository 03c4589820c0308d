//! The upstream of the `proxy_pass` row of scripts/bench: the bench's Router (src/lib.rs)
//! served by axum (hyper) on a single-threaded tokio runtime, as a user would run a Rust
//! service behind nginx.
//!
//! `bench-proxy-server 127.0.0.1:PORT TEMPLATE_DIR`

fn main() {
    let mut args = std::env::args().skip(1);
    let address = args.next().unwrap_or_else(|| "127.0.0.1:8201".into());
    let templates = args.next().unwrap_or_else(|| "bench/templates".into());
    let router = bench_proxy_server::router(&templates);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&address)
            .await
            .unwrap_or_else(|error| panic!("binding {address}: {error}"));
        eprintln!("bench-proxy-server: listening on {address}");
        axum::serve(listener, router).await.expect("serve");
    });
}
