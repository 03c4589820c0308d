//! The smallest app: answers every request with a greeting.

fn hello(_request: &gateway::Request) -> &'static str {
    "Hello, World!\n"
}

gateway::app!(hello);
