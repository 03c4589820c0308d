//! Replays every seed in corpus/<target>/ and every past crash in regressions/<target>/
//! through the target's checks, on stable Rust without libFuzzer: `cargo test` here.

use std::path::Path;

fn replay(dir: &Path, check: fn(&[u8])) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut files: Vec<_> = entries.map(|entry| entry.unwrap().path()).collect();
    files.sort();
    for file in &files {
        let data = std::fs::read(file).unwrap();
        eprintln!("replaying {}", file.display());
        check(&data);
    }
    files.len()
}

#[test]
fn seeds_and_past_crashes_pass() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for gateway_fuzz::Target {
        name: target,
        check,
        ..
    } in gateway_fuzz::TARGETS
    {
        let seeds = replay(&root.join("corpus").join(target), check);
        let crashes = replay(&root.join("regressions").join(target), check);
        assert!(seeds > 0, "{target} has no seed corpus");
        eprintln!("{target}: {seeds} seeds, {crashes} past crashes");
    }
}
