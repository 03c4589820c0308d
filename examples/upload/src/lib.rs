//! POST or PUT a body: the app reads it as a stream, whether nginx kept it in memory or
//! spilled it to a temporary file, and answers `<length> <sha256 hex>`. GET answers how many
//! bodies this worker's copy of the app has digested, which shows when it was not called.

use std::io::{BufRead, Read};
use std::sync::atomic::{AtomicU64, Ordering};

use gateway::{Method, Request, StatusCode};
use sha2::{Digest, Sha256};

static DIGESTED: AtomicU64 = AtomicU64::new(0);

fn upload(request: &Request) -> Result<String, (StatusCode, String)> {
    if request.method() == Method::GET {
        return Ok(format!("{}\n", DIGESTED.load(Ordering::Relaxed)));
    }
    let mut body = request.body();
    let mut hasher = Sha256::new();
    let mut length = 0u64;
    loop {
        let chunk = body.fill_buf().map_err(read_error)?;
        if chunk.is_empty() {
            break;
        }
        hasher.update(chunk);
        let count = chunk.len();
        length += count as u64;
        body.consume(count);
    }
    // Nothing may be left once the reader says the body ended.
    debug_assert_eq!(body.read(&mut [0; 1]).map_err(read_error)?, 0);
    DIGESTED.fetch_add(1, Ordering::Relaxed);
    let digest: String = hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    Ok(format!("{length} {digest}\n"))
}

fn read_error(error: std::io::Error) -> (StatusCode, String) {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("reading the body failed: {error}\n"),
    )
}

gateway::app!(upload);
