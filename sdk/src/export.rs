//! The app side of the ABI: what [`app!`](crate::app) expands to calls into here.

use std::any::Any;
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::abi;
use crate::request::{Environ, Request};
use crate::response::{IntoResponse, Response};

/// Exports `handler` as the app of this library.
///
/// ```
/// fn hello(_request: &gateway::Request) -> &'static str {
///     "Hello, World!\n"
/// }
/// gateway::app!(hello);
/// ```
///
/// The handler takes a `&Request` and returns anything that is [`IntoResponse`]. The library
/// must be built as a `cdylib`; nginx loads it with `gateway_app /path/to/libNAME.so;`.
#[macro_export]
macro_rules! app {
    ($handler:expr) => {
        #[no_mangle]
        #[allow(non_upper_case_globals)]
        pub static ngx_gateway_app: $crate::abi::AppDescriptor = $crate::abi::AppDescriptor {
            magic: $crate::abi::MAGIC,
            abi_version: $crate::abi::ABI_VERSION,
            abi_minor: $crate::abi::ABI_MINOR,
            name: $crate::abi::Bytes::from_static(env!("CARGO_PKG_NAME").as_bytes()),
            sdk_version: $crate::abi::Bytes::from_static($crate::SDK_VERSION.as_bytes()),
            call: {
                unsafe extern "C" fn call(
                    call: *mut $crate::abi::Call,
                    request: *const $crate::abi::Request,
                ) {
                    // SAFETY: the module calls this per the ABI contract, with a live call
                    // handle and a request that stays valid until the call is completed.
                    unsafe { $crate::__private::dispatch(call, request, $handler) }
                }
                call
            },
        };
    };
}

/// Runs `handler` on one request and completes the call with what it returns; a panic in the
/// handler completes the call as failed instead of unwinding into nginx.
///
/// # Safety
/// `call` and `request` must be what the module passed to the app's `call` function.
pub unsafe fn dispatch<H, R>(call: *mut abi::Call, request: *const abi::Request, handler: H)
where
    H: FnOnce(&Request<'_>) -> R,
    R: IntoResponse,
{
    // SAFETY: the caller passes the module's request, valid until the call is completed.
    let request = unsafe { &*request };
    // SAFETY: the module's host table is a static of the module.
    let host = unsafe { &*request.host };
    // SAFETY: the module keeps the environ and the body alive until the call is completed.
    let (environ, body) = unsafe {
        (
            abi::slice_from_abi(request.environ, request.environ_len),
            abi::slice_from_abi(request.body, request.body_len),
        )
    };

    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let request = Request::new(Environ::new(environ), body);
        Outgoing::new(handler(&request).into_response())
    }));
    match outcome {
        Ok(outgoing) => {
            let response = Box::into_raw(outgoing);
            // SAFETY: `response` points to a live `Outgoing` whose first field is the ABI
            // response; the module hands it back to `release_outgoing` exactly once.
            unsafe { (host.respond)(call, response.cast::<abi::Response>()) }
        }
        Err(payload) => {
            let message = panic_message(&payload);
            // SAFETY: the module copies the message before `fail` returns.
            unsafe { (host.fail)(call, abi::Bytes::new(message.as_bytes())) }
        }
    }
}

fn panic_message(payload: &Box<dyn Any + Send>) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message");
    format!("handler panicked: {text}")
}

/// A response on its way to the module: the ABI view first, then what it points into.
#[repr(C)]
struct Outgoing {
    abi: abi::Response,
    headers: Vec<abi::Pair>,
    response: Response,
}

impl Outgoing {
    fn new(response: Response) -> Box<Outgoing> {
        // Every pointer below goes into heap or static storage owned by `response` and
        // `headers`, so moving the box's contents into place does not invalidate them.
        let headers: Vec<abi::Pair> = response
            .headers()
            .iter()
            .map(|(name, value)| abi::Pair {
                name: abi::Bytes::new(name.as_str().as_bytes()),
                value: abi::Bytes::new(value.as_bytes()),
            })
            .collect();
        let body = response.body();
        let abi = abi::Response {
            status: response.status().as_u16(),
            reason: abi::Bytes::EMPTY,
            headers: headers.as_ptr(),
            headers_len: headers.len(),
            body_kind: abi::BODY_BYTES,
            body: abi::Bytes::new(body.as_bytes()),
            owner: std::ptr::null_mut(),
            release: release_outgoing,
        };
        let mut outgoing = Box::new(Outgoing {
            abi,
            headers,
            response,
        });
        outgoing.abi.owner = (&mut *outgoing as *mut Outgoing).cast::<c_void>();
        outgoing
    }
}

unsafe extern "C" fn release_outgoing(owner: *mut c_void) {
    // Dropping app values may run app code; a panic there must not unwind into nginx.
    let _ = catch_unwind(|| {
        // SAFETY: `owner` is the `Box<Outgoing>` leaked in `dispatch`, released once.
        drop(unsafe { Box::from_raw(owner.cast::<Outgoing>()) });
    });
}
