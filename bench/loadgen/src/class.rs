//! A request class: `NAME=http://HOST:PORT/PATH@RATE[/CONNECTIONS]`.

use std::fmt;
use std::str::FromStr;

/// Connections of a class when its spec names none.
const DEFAULT_CONNECTIONS: usize = 8;

pub struct Class {
    pub name: String,
    /// `HOST:PORT`.
    pub address: String,
    /// The whole request, sent as is on each exchange.
    pub request: Vec<u8>,
    /// Requests per second, over all of the class's connections.
    pub rate: f64,
    pub connections: usize,
}

#[derive(Debug)]
pub struct SpecError(String);

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SpecError {}

impl FromStr for Class {
    type Err = SpecError;

    fn from_str(spec: &str) -> Result<Self, SpecError> {
        let bad = |why: &str| {
            SpecError(format!(
                "{spec:?}: {why} (NAME=http://HOST:PORT/PATH@RATE[/CONNECTIONS])"
            ))
        };
        let (name, rest) = spec.split_once('=').ok_or_else(|| bad("no NAME="))?;
        let (url, load) = rest.rsplit_once('@').ok_or_else(|| bad("no @RATE"))?;
        let (rate, connections) = match load.split_once('/') {
            Some((rate, connections)) => (rate, Some(connections)),
            None => (load, None),
        };
        let rate: f64 = rate.parse().map_err(|_| bad("RATE is not a number"))?;
        let connections = match connections {
            Some(count) => count
                .parse()
                .map_err(|_| bad("CONNECTIONS is not a number"))?,
            None => DEFAULT_CONNECTIONS,
        };
        if !rate.is_finite() || rate <= 0.0 || connections == 0 {
            return Err(bad("RATE and CONNECTIONS must be above 0"));
        }
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| bad("only http:// URLs"))?;
        let (address, path) = match rest.find('/') {
            Some(slash) => (&rest[..slash], &rest[slash..]),
            None => (rest, "/"),
        };
        if address.is_empty() || name.is_empty() {
            return Err(bad("empty NAME or HOST"));
        }
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nUser-Agent: bench-loadgen\r\n\r\n");
        Ok(Class {
            name: name.to_owned(),
            address: address.to_owned(),
            request: request.into_bytes(),
            rate,
            connections,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_class_and_builds_its_request() {
        let class: Class = "slow=http://127.0.0.1:8080/sleep?ms=50@12.5/4"
            .parse()
            .unwrap();
        assert_eq!(class.name, "slow");
        assert_eq!(class.address, "127.0.0.1:8080");
        assert_eq!(class.rate, 12.5);
        assert_eq!(class.connections, 4);
        assert!(class
            .request
            .starts_with(b"GET /sleep?ms=50 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"));
        let class: Class = "q=http://localhost:1@100".parse().unwrap();
        assert_eq!(class.connections, DEFAULT_CONNECTIONS);
        assert!(class.request.starts_with(b"GET / HTTP/1.1\r\n"));
    }

    #[test]
    fn refuses_what_it_cannot_send() {
        for spec in [
            "http://h:1/@1",
            "q=https://h:1/@1",
            "q=http://h:1/",
            "q=http://h:1/@0",
            "q=http://h:1/@x/2",
            "q=http://h:1/@5/0",
        ] {
            assert!(spec.parse::<Class>().is_err(), "{spec}");
        }
    }
}
