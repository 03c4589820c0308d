//! Runs the notes app without nginx: `cargo run -p notes --features dev-server [-- ADDRESS]`
//! (default 127.0.0.1:8000; port 0 picks a free one, printed at start). The notes go to the
//! SQLite file NOTES_DATABASE names, else `notes-dev.sqlite3` in the temporary directory;
//! sessions are signed with NOTES_SECRET_KEY, else a key made at start.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let templates = concat!(env!("CARGO_MANIFEST_DIR"), "/templates");
    let database = std::env::var_os("NOTES_DATABASE").map_or_else(
        || std::env::temp_dir().join("notes-dev.sqlite3"),
        Into::into,
    );
    // Sessions last as long as the server unless NOTES_SECRET_KEY keeps the key.
    let secret_key = match std::env::var("NOTES_SECRET_KEY") {
        Ok(key) => key,
        Err(_) => random_key()?,
    };
    let config = gateway::Config::from_pairs([
        ("templates", templates),
        ("templates_reload", "on"),
        ("database", &database.to_string_lossy()),
        ("secret_key", &secret_key),
    ])
    // The development server calls the app from a thread of its own, one request at a time,
    // where blocking database calls stall nothing else.
    .with_runs_on(gateway::RunsOn::ThreadPool { threads: 1 });
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8000".into());
    gateway::dev::serve(notes::app(&config)?, &address)?;
    Ok(())
}

/// 32 random bytes from the kernel, as hex.
fn random_key() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}
