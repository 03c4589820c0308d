//! Records which Python the bridge was built against, so a worker without a `home` param
//! starts that Python's own prefix, not whichever `python3` is first on nginx's PATH.

fn main() {
    let config = pyo3_build_config::get();
    if let Some(executable) = config.executable() {
        println!("cargo:rustc-env=GATEWAY_WSGI_PYTHON={executable}");
    }
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
}
