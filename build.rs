//! Passes what nginx-sys learned about the nginx build to the module's code as cfg flags, so
//! the module can tell, e.g., whether nginx was built with TLS (`ngx_feature = "http_ssl"`).
//! nginx-sys publishes these only to crates that depend on it directly, hence the direct
//! dependency in Cargo.toml.

fn main() {
    let allowed = std::env::var("DEP_NGINX_FEATURES_CHECK").unwrap_or_else(|_| "any()".into());
    println!("cargo::rustc-check-cfg=cfg(ngx_feature, values({allowed}))");
    println!("cargo::rerun-if-env-changed=DEP_NGINX_FEATURES_CHECK");
    println!("cargo::rerun-if-env-changed=DEP_NGINX_FEATURES");
    for feature in std::env::var("DEP_NGINX_FEATURES")
        .unwrap_or_default()
        .split(',')
    {
        let feature = feature.trim();
        if !feature.is_empty() {
            println!("cargo::rustc-cfg=ngx_feature=\"{feature}\"");
        }
    }
}
