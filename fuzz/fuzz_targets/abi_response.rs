#![no_main]
// The checks are in src/abi_response.rs, shared with the regression tests in tests/.
libfuzzer_sys::fuzz_target!(|data: &[u8]| gateway_fuzz::abi_response::check(data));
