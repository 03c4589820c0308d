//! The checks behind the fuzz targets, as plain functions of the fuzz input's bytes, so the
//! regression tests (`cargo test` in this directory, on stable) replay the seed corpus and every
//! past crash through exactly the code libFuzzer runs.
//!
//! Each `check_*` function panics when an invariant breaks; libFuzzer reports that as a crash.

use arbitrary::{Arbitrary, Unstructured};

pub mod host;
pub mod reference;

pub mod abi_response;
pub mod environ;
pub mod request;
pub mod routing;
pub mod wire;

/// A target's checks, and what an input decodes to.
pub struct Target {
    pub name: &'static str,
    pub check: fn(&[u8]),
    pub describe: fn(&[u8]) -> String,
}

/// Every target, for the regression tests and the `show` example.
pub const TARGETS: [Target; 5] = [
    Target {
        name: "wire",
        check: wire::check,
        describe: wire::describe,
    },
    Target {
        name: "environ",
        check: environ::check,
        describe: environ::describe,
    },
    Target {
        name: "request",
        check: request::check,
        describe: request::describe,
    },
    Target {
        name: "routing",
        check: routing::check,
        describe: routing::describe,
    },
    Target {
        name: "abi_response",
        check: abi_response::check,
        describe: abi_response::describe,
    },
];

/// Decodes the fuzz input; `None` when the bytes cannot make one (libFuzzer then moves on).
pub fn decode<'a, T: Arbitrary<'a>>(data: &'a [u8]) -> Option<T> {
    T::arbitrary_take_rest(Unstructured::new(data)).ok()
}
