//! Prints what fuzz inputs decode to, and runs them through their target's checks:
//! `cargo run --example show -- TARGET FILE...` (in fuzz/, on stable).

fn main() {
    let mut args = std::env::args().skip(1);
    let name = args.next().expect("usage: show TARGET FILE...");
    let target = gateway_fuzz::TARGETS
        .iter()
        .find(|target| target.name == name)
        .unwrap_or_else(|| panic!("no target {name}"));
    for file in args {
        let data = std::fs::read(&file).expect("readable input");
        println!("{file}:\n{}", (target.describe)(&data));
        (target.check)(&data);
        println!("{file}: passes");
    }
}
