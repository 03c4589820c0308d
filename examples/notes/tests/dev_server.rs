//! The development server starts with its "not for production" warning and serves the app.
#![cfg(feature = "dev-server")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

/// Kills the server however the test ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn warns_it_is_not_for_production_then_serves() {
    let mut server = Server(
        Command::new(env!("CARGO_BIN_EXE_notes-dev"))
            .arg("127.0.0.1:0")
            .stderr(Stdio::piped())
            .spawn()
            .expect("notes-dev starts"),
    );
    let mut lines = BufReader::new(server.0.stderr.take().expect("stderr is piped")).lines();
    // The app's own lines (its database) come first, from its init.
    let warning = lines
        .by_ref()
        .take(10)
        .map(|line| line.expect("readable"))
        .find(|line| !line.starts_with("[info] gateway: "))
        .expect("a line after the app's");
    assert!(
        warning.starts_with("WARNING: this is a development server.")
            && warning.contains("Do not use it in a production deployment"),
        "first line: {warning}"
    );
    let serving = lines.next().expect("a second line").expect("readable");
    let address = serving
        .strip_prefix("Serving on http://")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("second line: {serving}"));

    let mut client = TcpStream::connect(address).expect("the server listens");
    client
        .write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .expect("request sent");
    let mut response = String::new();
    client.read_to_string(&mut response).expect("response read");
    assert!(
        response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200"),
        "{response}"
    );
    assert!(response.contains("<html"), "the notes page: {response}");
}
