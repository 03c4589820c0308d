//! Byte strings allocated from an nginx pool, freed with it: what the module builds per
//! request (header names, joined values, numbers) lives exactly as long as the request.

use ngx::core::Pool;

/// Copies `parts`, one after the other, into one new run of bytes from `pool`.
pub fn concat<'p>(pool: &'p Pool, parts: &[&[u8]]) -> Option<&'p mut [u8]> {
    let len = parts.iter().map(|part| part.len()).sum::<usize>();
    // nginx pools hand out no zero-size allocations, so ask for at least one byte.
    let data = pool.alloc_unaligned(len.max(1)).cast::<u8>();
    if data.is_null() {
        return None;
    }
    // SAFETY: `data` is a fresh allocation of at least `len` bytes, owned by `pool`.
    let out = unsafe { std::slice::from_raw_parts_mut(data, len) };
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
