//! An app with state: its settings come from nginx.conf,
//!
//! ```nginx
//! location /greet/ {
//!     gateway_app /path/libgreeting.so;
//!     gateway_app_param greeting "Good morning";
//!     gateway_app_param punctuation "!";     # optional
//! }
//! ```
//!
//! and are read once per nginx worker, when the app starts. Without `greeting` the app does
//! not start and its location answers 503, with the reason in the error log.

use std::sync::atomic::{AtomicU64, Ordering};

use gateway::{Config, ConfigError, Handler, IntoResponse, Request, Response};

struct Greeter {
    greeting: String,
    punctuation: String,
    /// Requests this worker's instance has answered: state shared by every request.
    served: AtomicU64,
}

impl Handler for Greeter {
    fn handle(&self, request: &Request) -> Response {
        let served = self.served.fetch_add(1, Ordering::Relaxed) + 1;
        let name = request.path().unwrap_or("").trim_matches('/');
        let name = if name.is_empty() { "stranger" } else { name };
        format!(
            "{}, {name}{} (#{served})\n",
            self.greeting, self.punctuation
        )
        .into_response()
    }
}

fn start(config: &Config) -> Result<Greeter, ConfigError> {
    Ok(Greeter {
        greeting: config.require("greeting")?.to_string(),
        punctuation: config.get("punctuation").unwrap_or(".").to_string(),
        served: AtomicU64::new(0),
    })
}

gateway::app!(init = start);
