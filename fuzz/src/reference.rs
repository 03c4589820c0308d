//! Independent, deliberately naive statements of the rules under test, written from the RFCs
//! rather than from the SDK's code: the targets compare the real functions against these.

/// RFC 3986 percent-decoding as the SDK's local runner does it: a `%` not followed by two hex
/// digits stays literal.
pub fn percent_decode(input: &[u8]) -> Vec<u8> {
    let hex = |byte: u8| match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    };
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%' && i + 2 < input.len() {
            if let (Some(high), Some(low)) = (hex(input[i + 1]), hex(input[i + 2])) {
                out.push(high * 16 + low);
                i += 3;
                continue;
            }
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

/// RFC 9110 `tchar`.
pub fn is_tchar(byte: u8) -> bool {
    matches!(byte,
        b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9'
        | b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_'
        | b'`' | b'|' | b'~')
}

/// RFC 9110 `field-value` bytes (VCHAR, obs-text, SP and HTAB).
pub fn is_field_byte(byte: u8) -> bool {
    byte == b' ' || byte == b'\t' || (0x21..=0x7e).contains(&byte) || byte >= 0x80
}

/// RFC 9110 section 7.6.1 connection-specific fields, plus the ones PEP 3333 lists. Kept here
/// on purpose instead of importing `gateway_abi::wire`'s list: a list shared by the code under
/// test and its oracle would agree with itself whatever it got wrong.
pub fn is_hop_by_hop(name: &[u8]) -> bool {
    let lower = name.to_ascii_lowercase();
    [
        &b"connection"[..],
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    ]
    .contains(&&lower[..])
}

/// What the module (src/response.rs `check`) does with a response, restated: the status must
/// be final (200..=999), the reason phrase field text, every header pass
/// `wire::check_response_header`, a Content-Length be a number (the body's length for bytes),
/// a file path absolute, a redirect target a path or a named location.
pub fn module_accepts(
    status: u16,
    reason: &[u8],
    headers: &[(Vec<u8>, Vec<u8>)],
    body_kind: u32,
    body: &[u8],
) -> bool {
    if !(200..=999).contains(&status) || !reason.iter().all(|&b| is_field_byte(b)) {
        return false;
    }
    let kind_ok = match body_kind {
        gateway_abi::BODY_BYTES | gateway_abi::BODY_STREAM => true,
        gateway_abi::BODY_FILE => body.starts_with(b"/"),
        gateway_abi::BODY_REDIRECT => body.starts_with(b"/") || body.starts_with(b"@"),
        _ => false,
    };
    if !kind_ok {
        return false;
    }
    headers.iter().all(|(name, value)| {
        if name.is_empty()
            || !name.iter().all(|&b| is_tchar(b))
            || !value.iter().all(|&b| is_field_byte(b))
            || is_hop_by_hop(name)
        {
            return false;
        }
        if !name.eq_ignore_ascii_case(b"content-length") {
            return true;
        }
        match std::str::from_utf8(value)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            Some(declared) => body_kind != gateway_abi::BODY_BYTES || declared == body.len() as u64,
            None => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode(b"/a%2Fb%zz%4"), b"/a/b%zz%4");
        assert_eq!(percent_decode(b"%"), b"%");
        assert_eq!(percent_decode(b"%41%4a%4A"), b"AJJ");
        assert_eq!(percent_decode(b"%2e%2E/%00"), b"../\0");
    }
}
