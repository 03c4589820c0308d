//! The request and response rules the nginx module and the SDK's local runners (its
//! `testing` client, the development server) share, so an app sees the same
//! environ and the same checks wherever it runs. Pure functions over bytes, which the fuzz
//! targets exercise directly.

/// Splits a decoded request path into SCRIPT_NAME and PATH_INFO. The mount point only counts
/// when it ends at a segment boundary: `/app` mounts `/app` and `/app/x`, never `/application`,
/// which then is all PATH_INFO.
pub fn split_mount_point<'a>(path: &'a [u8], mount_point: &[u8]) -> (&'a [u8], &'a [u8]) {
    match path.strip_prefix(mount_point) {
        Some(rest) if rest.is_empty() || rest.starts_with(b"/") => path.split_at(mount_point.len()),
        _ => (&[], path),
    }
}

/// What becomes of a request header in the environ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderEntry {
    /// `CONTENT_TYPE` (RFC 3875 names it without the `HTTP_` prefix).
    ContentType,
    /// Left out: `CONTENT_LENGTH` carries the body's real length instead.
    ContentLength,
    /// Left out: a name with `_` would pass for the one with `-` (both are `HTTP_X_FOO`), so a
    /// client could forge a header a proxy in front sets; mod_wsgi drops them too.
    Underscored,
    /// `HTTP_` and the name upper-cased with `-` as `_`; see [`write_cgi_name`].
    Http,
}

/// How the request header `name` enters the environ.
pub fn header_entry(name: &[u8]) -> HeaderEntry {
    if name.contains(&b'_') {
        HeaderEntry::Underscored
    } else if name.eq_ignore_ascii_case(b"content-type") {
        HeaderEntry::ContentType
    } else if name.eq_ignore_ascii_case(b"content-length") {
        HeaderEntry::ContentLength
    } else {
        HeaderEntry::Http
    }
}

/// Length of the `HTTP_*` key of header `name`.
pub const fn cgi_name_len(name: &[u8]) -> usize {
    HTTP_PREFIX.len() + name.len()
}

const HTTP_PREFIX: &[u8] = b"HTTP_";

/// Writes the `HTTP_*` key of header `name` into `out`, which must be [`cgi_name_len`] long.
pub fn write_cgi_name(name: &[u8], out: &mut [u8]) {
    let (prefix, rest) = out.split_at_mut(HTTP_PREFIX.len());
    prefix.copy_from_slice(HTTP_PREFIX);
    for (out, &byte) in rest.iter_mut().zip(name) {
        *out = if byte == b'-' {
            b'_'
        } else {
            byte.to_ascii_uppercase()
        };
    }
}

/// What joins the values of a header sent more than once: "; " for cookies (RFC 6265), ", "
/// otherwise (RFC 9110).
pub fn join_separator(key: &[u8]) -> &'static [u8] {
    if key == b"HTTP_COOKIE" {
        b"; "
    } else {
        b", "
    }
}

/// Headers that describe one connection, not the response; PEP 3333 forbids apps to set them,
/// and nginx manages its own.
const HOP_BY_HOP: [&[u8]; 8] = [
    b"connection",
    b"keep-alive",
    b"proxy-authenticate",
    b"proxy-authorization",
    b"te",
    b"trailer",
    b"transfer-encoding",
    b"upgrade",
];

/// Why a response header cannot be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderProblem {
    /// The name is empty or not an RFC 9110 token.
    Name,
    /// The value has CR, LF, NUL or another control character: it could split the response.
    Value,
    /// A hop-by-hop header.
    HopByHop,
}

/// Checks one response header an app wants to send.
pub fn check_response_header(name: &[u8], value: &[u8]) -> Result<(), HeaderProblem> {
    if name.is_empty() || !name.iter().all(|&byte| is_token_byte(byte)) {
        return Err(HeaderProblem::Name);
    }
    if !is_field_text(value) {
        return Err(HeaderProblem::Value);
    }
    if is_hop_by_hop(name) {
        return Err(HeaderProblem::HopByHop);
    }
    Ok(())
}

/// A hop-by-hop header: nginx manages its own, an app never sends one.
pub fn is_hop_by_hop(name: &[u8]) -> bool {
    HOP_BY_HOP.iter().any(|hop| name.eq_ignore_ascii_case(hop))
}

/// Text allowed in a field value or reason phrase: no CR, LF, NUL or other controls but tab.
pub fn is_field_text(text: &[u8]) -> bool {
    text.iter()
        .all(|&byte| byte == b'\t' || (byte >= 0x20 && byte != 0x7f))
}

/// RFC 9110 `tchar`.
fn is_token_byte(byte: u8) -> bool {
    TCHAR[usize::from(byte)]
}

/// Which bytes are `tchar`, looked up once per byte of every response header name.
const TCHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        table[byte] = b.is_ascii_alphanumeric();
        byte += 1;
    }
    let symbols = b"!#$%&'*+-.^_`|~";
    let mut i = 0;
    while i < symbols.len() {
        table[symbols[i] as usize] = true;
        i += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bytes_are_rfc_9110_tchar() {
        for byte in 0..=255u8 {
            let tchar = byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte);
            assert_eq!(is_token_byte(byte), tchar, "byte {byte:#04x}");
        }
    }

    #[test]
    fn mount_points_split_at_segment_boundaries() {
        assert_eq!(
            split_mount_point(b"/app/x", b"/app"),
            (&b"/app"[..], &b"/x"[..])
        );
        assert_eq!(
            split_mount_point(b"/app", b"/app"),
            (&b"/app"[..], &b""[..])
        );
        assert_eq!(
            split_mount_point(b"/application", b"/app"),
            (&b""[..], &b"/application"[..])
        );
        assert_eq!(split_mount_point(b"/x", b""), (&b""[..], &b"/x"[..]));
    }

    #[test]
    fn request_headers_map_to_environ_keys() {
        assert_eq!(header_entry(b"Content-Type"), HeaderEntry::ContentType);
        assert_eq!(header_entry(b"content-length"), HeaderEntry::ContentLength);
        assert_eq!(header_entry(b"X_Forwarded_For"), HeaderEntry::Underscored);
        assert_eq!(header_entry(b"X-Forwarded-For"), HeaderEntry::Http);
        let mut key = vec![0; cgi_name_len(b"X-Forwarded-For")];
        write_cgi_name(b"X-Forwarded-For", &mut key);
        assert_eq!(key, b"HTTP_X_FORWARDED_FOR");
        assert_eq!(join_separator(b"HTTP_COOKIE"), b"; ");
        assert_eq!(join_separator(b"HTTP_ACCEPT"), b", ");
    }

    #[test]
    fn response_headers_are_checked() {
        assert_eq!(check_response_header(b"X-Ok", b"fine\tvalue \x80"), Ok(()));
        assert_eq!(
            check_response_header(b"Bad Name", b"x"),
            Err(HeaderProblem::Name)
        );
        assert_eq!(check_response_header(b"", b"x"), Err(HeaderProblem::Name));
        assert_eq!(
            check_response_header(b"X-Split", b"a\r\nSet-Cookie: x"),
            Err(HeaderProblem::Value)
        );
        assert_eq!(
            check_response_header(b"X-Nul", b"a\0b"),
            Err(HeaderProblem::Value)
        );
        assert_eq!(
            check_response_header(b"Transfer-Encoding", b"chunked"),
            Err(HeaderProblem::HopByHop)
        );
        assert_eq!(
            check_response_header(b"KEEP-ALIVE", b"x"),
            Err(HeaderProblem::HopByHop)
        );
    }
}
