//! The module's checks of an app's response, before anything of it is sent: an invalid
//! response becomes a clean 500 instead of a broken one. Pure: no nginx here, so the module's
//! unit tests (tests/pure_logic.rs) run it as it is.

use std::fmt;

use gateway_abi as abi;
use gateway_abi::wire::{self, HeaderProblem};

/// Why an app's response cannot be sent.
#[derive(Debug)]
pub enum Invalid<'a> {
    Status(u16),
    Reason(&'a [u8]),
    HeaderName(&'a [u8]),
    HeaderValue(&'a [u8]),
    HopByHop(&'a [u8]),
    ContentLength {
        declared: &'a [u8],
        body: Option<usize>,
    },
    BodyKind(u32),
    NoStream,
    FilePath(&'a [u8]),
    RedirectTarget(&'a [u8]),
}

impl fmt::Display for Invalid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).escape_debug().to_string();
        match self {
            Invalid::Status(status) => write!(f, "status {status} is not a final HTTP status"),
            Invalid::Reason(reason) => {
                write!(
                    f,
                    "reason phrase \"{}\" has control characters",
                    text(reason)
                )
            }
            Invalid::HeaderName(name) => {
                write!(f, "header name \"{}\" is not an HTTP token", text(name))
            }
            Invalid::HeaderValue(name) => write!(
                f,
                "header \"{}\" has a value with CR, LF, NUL or other control characters",
                text(name)
            ),
            Invalid::HopByHop(name) => write!(
                f,
                "header \"{}\" is hop-by-hop, which apps may not set",
                text(name)
            ),
            Invalid::ContentLength {
                declared,
                body: Some(body),
            } => write!(
                f,
                "Content-Length \"{}\" differs from the body's {body} bytes",
                text(declared)
            ),
            Invalid::ContentLength {
                declared,
                body: None,
            } => {
                write!(f, "Content-Length \"{}\" is not a number", text(declared))
            }
            Invalid::BodyKind(kind) => write!(f, "body kind {kind} is unknown to this module"),
            Invalid::NoStream => write!(f, "streamed body without a stream function"),
            Invalid::FilePath(path) => {
                write!(f, "file body path \"{}\" is not absolute", text(path))
            }
            Invalid::RedirectTarget(target) => write!(
                f,
                "internal redirect target \"{}\" is neither a path nor a named location",
                text(target)
            ),
        }
    }
}

/// A checked response, borrowed from the app until its release.
pub struct Checked<'a> {
    pub status: u16,
    pub reason: &'a [u8],
    pub headers: &'a [abi::Pair],
    pub kind: u32,
    pub body: &'a [u8],
    /// The declared Content-Length, for streams.
    pub content_length: Option<u64>,
    pub response: &'a abi::Response,
}

pub fn check(response: &abi::Response) -> Result<Checked<'_>, Invalid<'_>> {
    // SAFETY: the ABI gives readable reason, header and body bytes, valid until the release.
    let (reason, headers, body) = unsafe {
        (
            response.reason.as_slice(),
            abi::slice_from_abi(response.headers, response.headers_len),
            response.body.as_slice(),
        )
    };
    if !(200..=999).contains(&response.status) {
        return Err(Invalid::Status(response.status));
    }
    if !wire::is_field_text(reason) {
        return Err(Invalid::Reason(reason));
    }
    match response.body_kind {
        abi::BODY_BYTES => {}
        abi::BODY_STREAM if response.stream_next.is_none() => return Err(Invalid::NoStream),
        abi::BODY_STREAM => {}
        abi::BODY_FILE if !body.starts_with(b"/") => return Err(Invalid::FilePath(body)),
        abi::BODY_FILE => {}
        abi::BODY_REDIRECT if !(body.starts_with(b"/") || body.starts_with(b"@")) => {
            return Err(Invalid::RedirectTarget(body))
        }
        abi::BODY_REDIRECT => {}
        other => return Err(Invalid::BodyKind(other)),
    }

    let mut content_length = None;
    for pair in headers {
        // SAFETY: the app keeps header bytes valid until the response is released.
        let (name, value) = unsafe { (pair.name.as_slice(), pair.value.as_slice()) };
        match wire::check_response_header(name, value) {
            Ok(()) => {}
            Err(HeaderProblem::Name) => return Err(Invalid::HeaderName(name)),
            Err(HeaderProblem::Value) => return Err(Invalid::HeaderValue(name)),
            Err(HeaderProblem::HopByHop) => return Err(Invalid::HopByHop(name)),
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            let declared = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok());
            let Some(declared_len) = declared else {
                return Err(Invalid::ContentLength {
                    declared: value,
                    body: None,
                });
            };
            if response.body_kind == abi::BODY_BYTES && declared_len != body.len() as u64 {
                return Err(Invalid::ContentLength {
                    declared: value,
                    body: Some(body.len()),
                });
            }
            content_length = Some(declared_len);
        }
    }
    Ok(Checked {
        status: response.status,
        reason,
        headers,
        kind: response.body_kind,
        body,
        content_length,
        response,
    })
}
