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
//!
//! An app may build its state from the location's settings ([`Config`]) and have nginx check
//! them at `nginx -t` (see [`app!`]), log to nginx's error log ([`Logger`],
//! [`Request::log`]), be tested without nginx ([`testing`]), keep its state in a database
//! every worker shares ([`database`], with the `database` feature) and each user's in an
//! encrypted cookie ([`Sessions`], with [`Session::flash`] messages), set cookies
//! ([`SetCookies`]), take file uploads ([`multipart`]) and serve a directory of files through
//! nginx ([`StaticFiles`]).

#![warn(missing_docs)]

mod config;
#[cfg(feature = "database")]
pub mod database;
#[cfg(feature = "dev-server")]
pub mod dev;
mod error;
mod export;
mod flash;
mod handler;
mod host;
mod local;
mod logging;
pub mod multipart;
mod panic_report;
mod request;
mod request_body;
mod response;
mod response_body;
mod router;
mod session;
mod set_cookie;
mod static_files;
mod templates;
pub mod testing;
#[cfg(feature = "tower")]
pub mod tower;
mod url_for;

pub use config::{Config, ConfigError, RunsOn};
pub use error::Error;
pub use flash::Flash;
pub use gateway_abi as abi;
pub use gateway_abi::wire;
pub use handler::Handler;
pub use http::{header, HeaderMap, Method, StatusCode};
pub use logging::{LogLevel, Logger};
pub use request::{Environ, Request};
pub use request_body::RequestBody;
pub use response::{internal_redirect, Html, IntoResponse, Json, ReasonPhrase, Redirect, Response};
pub use response_body::{Body, Chunk};
pub use router::{
    delete, get, options, patch, post, put, AfterHook, BeforeHook, ErrorHandler, Layer,
    MethodRouter, Next, RouteHandler, Router,
};
pub use session::{
    Session, Sessions, WithSessions, MAX_SESSION_COOKIE_LEN, MIN_SECRET_KEY_LEN, SECRET_KEY_SETTING,
};
pub use set_cookie::SetCookies;
pub use static_files::StaticFiles;
pub use templates::Templates;
pub use {bytes, cookie, http, minijinja, parking_lot, serde, serde_json};

/// Version of this SDK, recorded in every app library for the logs.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

#[doc(hidden)]
pub mod __private {
    pub use crate::export::{call, check, dispatch, init, shutdown};
    #[cfg(feature = "tower")]
    pub mod tower {
        pub use crate::tower::{call, cancel, check, init, shutdown};
    }
}
