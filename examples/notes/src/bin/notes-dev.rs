//! Runs the notes app without nginx: `cargo run -p notes --features dev-server [-- ADDRESS]`
//! (default 127.0.0.1:8000; port 0 picks a free one, printed at start).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let templates = concat!(env!("CARGO_MANIFEST_DIR"), "/templates");
    let config =
        gateway::Config::from_pairs([("templates", templates), ("templates_reload", "on")]);
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8000".into());
    gateway::dev::serve(notes::app(&config)?, &address)?;
    Ok(())
}
