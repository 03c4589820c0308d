//! The router's dispatch allocates nothing of its own: a request through a `Router` costs the
//! allocations of calling its handler directly, plus its path parameters, with or without
//! names, and middleware only when some is in use.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use gateway::testing::TestClient;
use gateway::{get, Handler, Request, Router};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator, only counting.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        // SAFETY: per the caller.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: per the caller.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn hello(_: &Request) -> &'static str {
    "hello\n"
}

/// Allocations of one request for `uri`, past the first (which warms up lazy statics).
fn allocations(handler: impl Handler, uri: &str) -> usize {
    let client = TestClient::new(handler);
    client.get(uri).send();
    let before = ALLOCATIONS.with(Cell::get);
    client.get(uri).send();
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn dispatch_adds_no_allocation() {
    let direct = allocations(hello, "/hello");
    let routed = allocations(Router::new().route("/hello", get(hello)), "/hello");
    assert_eq!(routed, direct, "a route without parameters");

    let named = Router::new()
        .route_named("hello", "/hello", get(hello))
        .route_named("other", "/other/{id}", get(hello))
        .nest(
            "/api",
            Router::blueprint("api").route_named("x", "/x", get(hello)),
        );
    assert_eq!(
        allocations(named, "/hello"),
        direct,
        "names and nests in use"
    );

    // A parameter is its name and value, in the one Vec of the routed view.
    let with_param = allocations(Router::new().route("/hello/{id}", get(hello)), "/hello/7");
    let direct_same_uri = allocations(hello, "/hello/7");
    assert_eq!(with_param, direct_same_uri + 3, "one parameter");

    let missing = allocations(Router::new().route("/hello", get(hello)), "/nope");
    assert_eq!(missing, direct, "the router's own 404");
}
