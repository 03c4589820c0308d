//! The status and headers an app gave `start_response`, checked and turned into the bytes
//! an `abi::Response` points to.

use std::ffi::c_void;

use gateway_abi::wire::{self, HeaderProblem};
use gateway_abi::{self as abi, Bytes, Pair};
use thiserror::Error;

/// What `start_response` recorded.
#[derive(Default)]
pub struct Head {
    /// The status line, once `start_response` was called.
    pub status: Option<String>,
    pub headers: Vec<(String, String)>,
    /// Headers count as sent (PEP 3333) once a body byte was produced or written: a later
    /// `start_response` with `exc_info` then re-raises.
    pub sent: bool,
    /// Bytes given to `write()`, sent before the iterable's.
    pub written: Vec<u8>,
    /// The app's `Content-Length`, if it gave one that is a number: PEP 3333 has the server
    /// send no more than it allows and stop iterating once it is reached.
    pub declared: Option<u64>,
    /// Body bytes taken so far (written and produced), never more than `declared`.
    pub taken: u64,
}

impl Head {
    /// What `start_response` was given.
    pub fn start(&mut self, status: String, headers: Vec<(String, String)>) {
        self.declared = headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, value)| value.trim().parse().ok());
        self.status = Some(status);
        self.headers = headers;
    }

    /// The part of `data` that the Content-Length still allows, counted as taken.
    pub fn take<'d>(&mut self, data: &'d [u8]) -> &'d [u8] {
        let allowed = self.declared.map_or(data.len(), |declared| {
            usize::try_from(declared.saturating_sub(self.taken))
                .map_or(data.len(), |left| left.min(data.len()))
        });
        self.taken += allowed as u64;
        &data[..allowed]
    }

    /// The Content-Length's bytes are all taken: iterating stops.
    pub fn full(&self) -> bool {
        self.declared.is_some_and(|declared| self.taken >= declared)
    }
}

/// Why a response cannot be sent; each is a 500 with this in the error log.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum HeadError {
    #[error("the WSGI app returned without calling start_response")]
    NotStarted,
    #[error("bad WSGI status line {0:?}: it must be a 3-digit code from 200 (nginx sends 1xx itself), a space and a reason phrase")]
    Status(String),
    #[error("bad WSGI response header {name:?}: {problem}")]
    Header { name: String, problem: &'static str },
}

/// Status, reason and headers as bytes, owned for as long as the response.
pub struct OwnedHead {
    pub status: u16,
    reason: Vec<u8>,
    /// The headers' bytes, which `pairs` point into.
    _owned: Vec<(Vec<u8>, Vec<u8>)>,
    pairs: Vec<Pair>,
}

/// PEP 3333 native strings are latin-1 on the wire; anything beyond is an app bug.
fn latin1(text: &str) -> Option<Vec<u8>> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect()
}

fn parse_status(status: &str) -> Result<(u16, Vec<u8>), HeadError> {
    let bad = || HeadError::Status(status.into());
    let bytes = latin1(status).ok_or_else(bad)?;
    let (code, reason) = match bytes.get(3) {
        Some(b' ') => (&bytes[..3], &bytes[4..]),
        _ => return Err(bad()),
    };
    if !code.iter().all(u8::is_ascii_digit) || !wire::is_field_text(reason) {
        return Err(bad());
    }
    let code: u16 = std::str::from_utf8(code)
        .ok()
        .and_then(|code| code.parse().ok())
        .ok_or_else(bad)?;
    if code < 200 {
        return Err(bad());
    }
    Ok((code, reason.to_vec()))
}

impl OwnedHead {
    pub fn from_head(head: &Head) -> Result<OwnedHead, HeadError> {
        let status = head.status.as_deref().ok_or(HeadError::NotStarted)?;
        let (status, reason) = parse_status(status)?;
        let mut owned = Vec::with_capacity(head.headers.len());
        for (name, value) in &head.headers {
            let problem = |problem| HeadError::Header {
                name: name.clone(),
                problem,
            };
            let name_bytes = latin1(name).ok_or_else(|| problem("not latin-1"))?;
            let value_bytes = latin1(value).ok_or_else(|| problem("its value is not latin-1"))?;
            wire::check_response_header(&name_bytes, &value_bytes).map_err(|error| {
                problem(match error {
                    HeaderProblem::Name => "not a valid header name",
                    HeaderProblem::Value => "its value has a control character (CR, LF, NUL...)",
                    HeaderProblem::HopByHop => {
                        "a hop-by-hop header, which PEP 3333 forbids apps to send"
                    }
                })
            })?;
            owned.push((name_bytes, value_bytes));
        }
        // The Vec<u8> buffers do not move when the outer Vec does, so the pairs stay valid.
        let pairs = owned
            .iter()
            .map(|(name, value)| Pair {
                name: Bytes::new(name),
                value: Bytes::new(value),
            })
            .collect();
        Ok(OwnedHead {
            status,
            reason,
            _owned: owned,
            pairs,
        })
    }

    /// A response pointing into this head; body and release filled by the caller.
    pub fn response(&self, body_kind: u32, body: &[u8]) -> abi::Response {
        abi::Response {
            status: self.status,
            reason: Bytes::new(&self.reason),
            headers: self.pairs.as_ptr(),
            headers_len: self.pairs.len(),
            body_kind,
            body: Bytes::new(body),
            owner: std::ptr::null_mut(),
            release: release_sent,
            stream: std::ptr::null_mut(),
            stream_next: None,
        }
    }
}

/// Run when the module releases a response: Rust only, as it runs on the event loop.
pub type OnRelease = Box<dyn FnOnce() + Send>;

/// A bytes or file response and what it points to, boxed so its address is stable until
/// release.
pub struct Sent {
    response: abi::Response,
    _head: OwnedHead,
    /// The body's bytes, or the file's path.
    _body: Vec<u8>,
    on_release: Option<OnRelease>,
}

impl Sent {
    /// Boxes the response; the caller hands `response_ptr` to `Host::respond`.
    pub fn new(
        head: OwnedHead,
        body_kind: u32,
        body: Vec<u8>,
        on_release: Option<OnRelease>,
    ) -> *mut Sent {
        let response = head.response(body_kind, &body);
        let sent = Box::into_raw(Box::new(Sent {
            response,
            _head: head,
            _body: body,
            on_release,
        }));
        // SAFETY: just allocated; owner points back to the box, freed by `release_sent`.
        unsafe { (*sent).response.owner = sent.cast() };
        sent
    }

    /// # Safety
    /// `sent` must come from [`Sent::new`] and not be released yet.
    pub unsafe fn response_ptr(sent: *mut Sent) -> *const abi::Response {
        // SAFETY: the caller vouches for `sent`.
        unsafe { &(*sent).response }
    }
}

unsafe extern "C" fn release_sent(owner: *mut c_void) {
    // SAFETY: the box leaked in `Sent::new`, released once by the module; pure Rust, so
    // dropping it on the event loop touches no Python.
    let mut sent = unsafe { Box::from_raw(owner.cast::<Sent>()) };
    if let Some(on_release) = sent.on_release.take() {
        on_release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(status: &str, headers: &[(&str, &str)]) -> Head {
        Head {
            status: Some(status.into()),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            ..Head::default()
        }
    }

    #[test]
    fn status_lines() {
        let owned =
            OwnedHead::from_head(&head("200 OK", &[("Content-Type", "text/plain")])).unwrap();
        assert_eq!(
            (owned.status, &owned.reason[..], owned._owned.len()),
            (200, &b"OK"[..], 1)
        );
        assert_eq!(
            OwnedHead::from_head(&head("404 ", &[])).unwrap().reason,
            b""
        );
        for bad in [
            "200",
            "2000 OK",
            "20x OK",
            "200-OK",
            "099 Low",
            "101 Switching",
            "200 O\nK",
            "200 \u{0100}",
        ] {
            assert_eq!(
                OwnedHead::from_head(&head(bad, &[])).err(),
                Some(HeadError::Status(bad.into())),
                "{bad:?}"
            );
        }
        assert_eq!(
            OwnedHead::from_head(&Head::default()).err(),
            Some(HeadError::NotStarted)
        );
    }

    #[test]
    fn content_length_caps_what_is_taken() {
        let mut head = Head::default();
        head.start(
            "200 OK".into(),
            vec![("content-length".into(), " 5 ".into())],
        );
        assert_eq!(head.take(b"abc"), b"abc");
        assert!(!head.full());
        assert_eq!(head.take(b"defg"), b"de");
        assert!(head.full());
        assert_eq!(head.take(b"h"), b"");
        assert_eq!(head.taken, 5);

        for headers in [vec![], vec![("Content-Length".into(), "five".into())]] {
            let mut open = Head::default();
            open.start("200 OK".into(), headers);
            assert_eq!(open.take(b"any length"), b"any length");
            assert!(!open.full());
        }
    }

    #[test]
    fn headers_are_checked() {
        for (name, value) in [
            ("Bad Name", "x"),
            ("X-Split", "a\r\nb"),
            ("Connection", "close"),
            ("X-Wide", "\u{20ac}"),
        ] {
            assert!(
                matches!(
                    OwnedHead::from_head(&head("200 OK", &[(name, value)])),
                    Err(HeadError::Header { .. })
                ),
                "{name:?}: {value:?}"
            );
        }
        let owned = OwnedHead::from_head(&head("200 OK", &[("X-Latin", "caf\u{e9}")])).unwrap();
        assert_eq!(owned._owned[0].1, b"caf\xe9");
    }
}
