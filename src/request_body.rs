//! The request body, read whole by nginx before the app is called, handed to the app as
//! segments that point at nginx's own buffers and temporary file: nothing is copied.

use allocator_api2::vec::Vec as PoolVec;
use gateway_abi::BodySegment;
use ngx::core::Pool;
use ngx::ffi::{ngx_buf_t, ngx_http_request_t};

pub type Segments<'p> = PoolVec<BodySegment, &'p Pool>;

/// The body nginx read for `r` (none when the request has none); `None` when out of memory.
pub fn segments<'p>(r: &ngx_http_request_t, pool: &'p Pool) -> Option<Segments<'p>> {
    let mut segments = PoolVec::new_in(pool);
    // SAFETY: after ngx_http_read_client_request_body completed, `request_body` is null or
    // holds the chain of buffers with the whole body, alive as long as the request.
    let Some(body) = (unsafe { r.request_body.as_ref() }) else {
        return Some(segments);
    };
    let mut link = body.bufs;
    // SAFETY: as above: every link and buffer of the chain is valid.
    while let Some(chain) = unsafe { link.as_ref() } {
        // SAFETY: as above.
        if let Some(segment) = unsafe { chain.buf.as_ref() }.and_then(segment_of) {
            segments.try_reserve(1).ok()?;
            segments.push(segment);
        }
        link = chain.next;
    }
    Some(segments)
}

fn segment_of(buf: &ngx_buf_t) -> Option<BodySegment> {
    let in_memory = buf.temporary() != 0 || buf.memory() != 0 || buf.mmap() != 0;
    if in_memory {
        // SAFETY: a memory buffer's `pos..last` is one allocation.
        let len = unsafe { buf.last.offset_from(buf.pos) };
        return (len > 0).then_some(BodySegment {
            fd: -1,
            offset: 0,
            len: len as u64,
            data: buf.pos,
        });
    }
    // SAFETY: a buffer of the body chain that is not in memory is in nginx's temporary file.
    let file = unsafe { buf.file.as_ref() }?;
    let len = buf.file_last - buf.file_pos;
    (buf.in_file() != 0 && len > 0).then_some(BodySegment {
        fd: file.fd,
        offset: buf.file_pos as u64,
        len: len as u64,
        data: std::ptr::null(),
    })
}
