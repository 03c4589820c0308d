//! Runs the notes app without nginx: `cargo run -p notes --features dev-server`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let templates = concat!(env!("CARGO_MANIFEST_DIR"), "/templates");
    let config =
        gateway::Config::from_pairs([("templates", templates), ("templates_reload", "on")]);
    gateway::dev::serve(notes::app(&config)?, "127.0.0.1:8000")?;
    Ok(())
}
