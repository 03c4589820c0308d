//! Byte strings allocated from an nginx pool, freed with it: what the module builds per
//! request (header names, joined values, numbers) lives exactly as long as the request.

use ngx::core::Pool;

/// `len` new bytes from `pool`, zeroed, for the caller to fill.
// Each call hands out fresh memory of the arena, so the mutable slice aliases nothing.
#[allow(clippy::mut_from_ref)]
pub fn zeroed(pool: &Pool, len: usize) -> Option<&mut [u8]> {
    // nginx pools hand out no zero-size allocations, so ask for at least one byte.
    let data = pool.alloc_unaligned(len.max(1)).cast::<u8>();
    if data.is_null() {
        return None;
    }
    // SAFETY: `data` is a fresh allocation of at least `len` bytes, owned by `pool`; zeroing
    // makes every byte initialised before a slice is made of them.
    unsafe {
        std::ptr::write_bytes(data, 0, len);
        Some(std::slice::from_raw_parts_mut(data, len))
    }
}

/// Copies `parts`, one after the other, into one new run of bytes from `pool`.
pub fn concat<'p>(pool: &'p Pool, parts: &[&[u8]]) -> Option<&'p mut [u8]> {
    let len = parts.iter().map(|part| part.len()).sum::<usize>();
    let out = zeroed(pool, len)?;
    let mut at = 0;
    for part in parts {
        out[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    Some(out)
}

/// A number in decimal, from `pool`.
pub fn decimal(pool: &Pool, number: u64) -> Option<&[u8]> {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = number;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    concat(pool, &[&digits[at..]]).map(|bytes| &*bytes)
}
