//! `gateway`: write Rust web apps that nginx serves in-process through ngx-gateway.
//!
//! An app is a library crate built as a `cdylib` that exports one handler with [`app!`]:
//!
//! ```
//! fn hello(_request: &gateway::Request) -> &'static str {
//!     "Hello, World!\n"
//! }
//! gateway::app!(hello);
//! ```
//!
//! and nginx serves it from a location: `location /hello { gateway_app /path/libhello.so; }`.
//! The app and the module share only the C ABI in [`abi`], so they are built separately.

#![warn(missing_docs)]

pub mod abi;
mod config;
#[cfg(feature = "dev-server")]
pub mod dev;
mod error;
mod export;
mod handler;
mod local;
mod panic_report;
mod request;
mod request_body;
mod response;
mod response_body;
mod router;
mod templates;
pub mod testing;
pub mod wire;

pub use config::{Config, ConfigError};
pub use error::Error;
pub use handler::Handler;
pub use http::{header, HeaderMap, Method, StatusCode};
pub use request::{Environ, Request};
pub use request_body::RequestBody;
pub use response::{internal_redirect, Html, IntoResponse, Json, ReasonPhrase, Redirect, Response};
pub use response_body::{Body, Chunk};
pub use router::{delete, get, options, patch, post, put, MethodRouter, RouteHandler, Router};
pub use templates::Templates;
pub use {cookie, http, minijinja, parking_lot, serde, serde_json};

/// Version of this SDK, recorded in every app library for the logs.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

#[doc(hidden)]
pub mod __private {
    pub use crate::export::{call, dispatch, init, shutdown};
}
