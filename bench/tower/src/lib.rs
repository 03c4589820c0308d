//! The router of bench/proxy-server, the proxy_pass row's upstream, mounted in-process:
//! the same code nginx reaches through proxy_pass, called by nginx directly.
//!
//! ```nginx
//! location / {
//!     gateway_app /path/to/libbench_tower.so;
//!     gateway_app_param templates /path/to/bench/templates;
//! }
//! ```

fn make(config: &gateway::Config) -> Result<axum::Router, gateway::ConfigError> {
    Ok(bench_proxy_server::router(config.require("templates")?))
}

gateway::tower_app!(init = make);
