//! Reverse routing: the router's named routes, and building their URLs (Flask's `url_for`).

use std::collections::HashMap;
use std::fmt::{Display, Write};

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::error::Error;

/// What a path parameter value may hold literally: RFC 3986's unreserved characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// A catch-all parameter (`{*rest}`) and the mount point keep their slashes.
const PATH: &AsciiSet = &SEGMENT.remove(b'/');

/// The named routes of a router, nested routers' included: full name to full pattern.
#[derive(Debug, Default, Clone)]
pub(crate) struct RouteNames(HashMap<String, Pattern>);

/// A route's path pattern below the mount point, in parts.
#[derive(Debug, Clone)]
pub(crate) struct Pattern(Vec<Part>);

#[derive(Debug, Clone)]
enum Part {
    Literal(String),
    /// `{name}`: one segment.
    Param(String),
    /// `{*name}`: the rest of the path.
    CatchAll(String),
}

impl Pattern {
    /// Parses a matchit pattern (`/notes/{id}`, `/files/{*path}`, `{{` and `}}` for braces).
    pub(crate) fn parse(path: &str) -> Self {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = path;
        while let Some(at) = rest.find(['{', '}']) {
            literal.push_str(&rest[..at]);
            let (brace, after) = rest[at..].split_at(1);
            if after.starts_with(brace) {
                literal.push_str(brace);
                rest = &after[1..];
                continue;
            }
            // matchit refused unbalanced braces before the pattern got here.
            let (param, after) = after.split_once('}').unwrap_or((after, ""));
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            parts.push(match param.strip_prefix('*') {
                Some(name) => Part::CatchAll(name.to_string()),
                None => Part::Param(param.to_string()),
            });
            rest = after;
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Pattern(parts)
    }

    /// This pattern below `prefix` (a nest's, "/api").
    pub(crate) fn below(&self, prefix: &str) -> Self {
        let mut parts = vec![Part::Literal(prefix.to_string())];
        parts.extend(self.0.iter().cloned());
        Pattern(parts)
    }
}

impl RouteNames {
    /// Names `pattern`; a name used twice is a programming error, shown at the app's start.
    pub(crate) fn insert(&mut self, name: String, pattern: Pattern) {
        if self.0.contains_key(&name) {
            panic!("route name {name:?} is used twice");
        }
        self.0.insert(name, pattern);
    }

    /// Takes in the names of a nested router: `prefix` before their names and patterns.
    pub(crate) fn nest(&mut self, name_prefix: &str, path_prefix: &str, nested: RouteNames) {
        for (name, pattern) in nested.0 {
            self.insert(format!("{name_prefix}{name}"), pattern.below(path_prefix));
        }
    }

    /// The URL of route `name` for an app mounted at `script_name`: `params` fill the
    /// pattern's parameters, percent-encoded; those it does not name go to the query string.
    pub(crate) fn url_for(
        &self,
        script_name: &str,
        name: &str,
        params: &[(&str, &dyn Display)],
    ) -> Result<String, Error> {
        let Some(Pattern(parts)) = self.0.get(name) else {
            return Err(Error::internal(format!(
                "url_for: no route is named {name:?}"
            )));
        };
        let mut url = utf8_percent_encode(script_name, PATH).to_string();
        let mut used = vec![false; params.len()];
        for part in parts {
            let (param, set) = match part {
                Part::Literal(text) => {
                    url.push_str(text);
                    continue;
                }
                Part::Param(param) => (param, SEGMENT),
                Part::CatchAll(param) => (param, PATH),
            };
            let Some(at) = params.iter().position(|(key, _)| key == param) else {
                return Err(Error::internal(format!(
                    "url_for: route {name:?} needs parameter {param:?}"
                )));
            };
            used[at] = true;
            let value = params[at].1.to_string();
            // `write!` to a String cannot fail.
            let _ = write!(url, "{}", utf8_percent_encode(&value, set));
        }
        let extras: Vec<(&str, String)> = params
            .iter()
            .zip(used)
            .filter(|(_, used)| !used)
            .map(|((key, value), _)| (*key, value.to_string()))
            .collect();
        if !extras.is_empty() {
            let query = serde_urlencoded::to_string(extras).map_err(Error::internal)?;
            url.push('?');
            url.push_str(&query);
        }
        Ok(url)
    }
}

/// The URL of route `name` among `routes`, the named routes of the router that routed the
/// request, if one did; see [`Request::url_for`](crate::Request::url_for).
pub(crate) fn url_for(
    routes: Option<&RouteNames>,
    script_name: &str,
    name: &str,
    params: &[(&str, &dyn Display)],
) -> Result<String, Error> {
    match routes {
        Some(routes) => routes.url_for(script_name, name, params),
        None => Err(Error::internal(format!(
            "url_for({name:?}): the request was not routed by a Router"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_fill_and_encode_their_parameters() {
        let mut names = RouteNames::default();
        names.insert(
            "file".into(),
            Pattern::parse("/files/{*path}").below("/static"),
        );
        names.insert("brace".into(), Pattern::parse("/a{{b}}/{id}.json"));
        let file = names.url_for("/app", "file", &[("path", &"a b/c?.txt")]);
        assert_eq!(file.unwrap(), "/app/static/files/a%20b/c%3F.txt");
        let brace = names.url_for("", "brace", &[("id", &7), ("x", &"1&2")]);
        assert_eq!(brace.unwrap(), "/a{b}/7.json?x=1%262");
    }
}
