#![no_main]
// The checks are in src/environ.rs, shared with the regression tests in tests/.
libfuzzer_sys::fuzz_target!(|data: &[u8]| gateway_fuzz::environ::check(data));
