//! A location's `gateway_app_param`s, checked the same way by `check` (in the nginx master,
//! without Python) and by `init` (in the worker).

use std::path::PathBuf;

use thiserror::Error;

/// Threads a location gets when it names none.
const DEFAULT_THREADS: usize = 4;
/// More would only queue on the GIL; the bound keeps a typo from starting a million threads.
const MAX_THREADS: usize = 256;

/// The settings of one location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// The module to import, dotted.
    pub module: String,
    /// The callable's name in the module (dotted for an attribute of an attribute).
    pub callable: String,
    /// A virtualenv (with `pyvenv.cfg`) or a Python prefix.
    pub home: Option<PathBuf>,
    /// Directories put first on `sys.path`, in order.
    pub paths: Vec<PathBuf>,
    /// How many bridge threads run the location's calls.
    pub threads: usize,
}

/// Why a location's params are refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ParamError {
    #[error(
        "gateway_app_param module is missing: name the WSGI app as \"package.module[:callable]\""
    )]
    NoModule,
    #[error("gateway_app_param {0} is given twice")]
    Repeated(&'static str),
    #[error("gateway_app_param module \"{0}\" is not of the form \"package.module[:callable]\"")]
    BadModule(String),
    #[error("gateway_app_param {name} \"{path}\" is not an existing directory")]
    NotADirectory { name: &'static str, path: String },
    #[error("gateway_app_param threads \"{0}\" is not a number from 1 to {MAX_THREADS}")]
    BadThreads(String),
    #[error("unknown gateway_app_param \"{0}\" (known: module, home, path, threads)")]
    Unknown(String),
    #[error("gateway_app_param {0} is not UTF-8")]
    NotUtf8(String),
}

impl Params {
    /// Parses `(name, value)` pairs, as the module passes them, in order.
    pub fn parse<'a>(
        pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    ) -> Result<Params, ParamError> {
        let mut module = None;
        let mut home = None;
        let mut threads = None;
        let mut paths = Vec::new();
        for (name, value) in pairs {
            let name = String::from_utf8_lossy(name);
            let value =
                std::str::from_utf8(value).map_err(|_| ParamError::NotUtf8(name.to_string()))?;
            match &*name {
                "module" => set_once(&mut module, "module", parse_module(value)?)?,
                "home" => set_once(&mut home, "home", existing_dir("home", value)?)?,
                "path" => paths.push(existing_dir("path", value)?),
                "threads" => set_once(&mut threads, "threads", parse_threads(value)?)?,
                _ => return Err(ParamError::Unknown(name.into_owned())),
            }
        }
        let (module, callable) = module.ok_or(ParamError::NoModule)?;
        Ok(Params {
            module,
            callable,
            home,
            paths,
            threads: threads.unwrap_or(DEFAULT_THREADS),
        })
    }
}

fn set_once<T>(slot: &mut Option<T>, name: &'static str, value: T) -> Result<(), ParamError> {
    if slot.replace(value).is_some() {
        return Err(ParamError::Repeated(name));
    }
    Ok(())
}

/// `pkg.mod[:callable]`, the callable defaulting to `application` as mod_wsgi's does.
fn parse_module(value: &str) -> Result<(String, String), ParamError> {
    let (module, callable) = value.split_once(':').unwrap_or((value, "application"));
    if !is_dotted_name(module) || !is_dotted_name(callable) {
        return Err(ParamError::BadModule(value.into()));
    }
    Ok((module.into(), callable.into()))
}

/// Python identifiers joined by dots; any non-ASCII character passes as a letter, as Python
/// accepts most of them and the import then tells.
fn is_dotted_name(name: &str) -> bool {
    name.split('.').all(|part| {
        let mut chars = part.chars();
        chars
            .next()
            .is_some_and(|first| first == '_' || first.is_alphabetic())
            && chars.all(|c| c == '_' || c.is_alphanumeric())
    })
}

fn existing_dir(name: &'static str, value: &str) -> Result<PathBuf, ParamError> {
    let path = PathBuf::from(value);
    if !path.is_dir() {
        return Err(ParamError::NotADirectory {
            name,
            path: value.into(),
        });
    }
    Ok(path)
}

fn parse_threads(value: &str) -> Result<usize, ParamError> {
    match value.parse() {
        Ok(threads) if (1..=MAX_THREADS).contains(&threads) => Ok(threads),
        _ => Err(ParamError::BadThreads(value.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<Params, ParamError> {
        Params::parse(pairs.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
    }

    #[test]
    fn module_and_callable() {
        let params = parse(&[("module", "jokes.app:app")]).unwrap();
        assert_eq!(
            (params.module.as_str(), params.callable.as_str()),
            ("jokes.app", "app")
        );
        assert_eq!(params.threads, DEFAULT_THREADS);
        let params = parse(&[("module", "hello")]).unwrap();
        assert_eq!(params.callable, "application");
        assert_eq!(parse(&[]), Err(ParamError::NoModule));
        for bad in [
            "",
            "a..b",
            "1pkg",
            "pkg:",
            "pkg:app:x",
            "pkg-mod",
            "pkg:a b",
        ] {
            assert_eq!(
                parse(&[("module", bad)]),
                Err(ParamError::BadModule(bad.into())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn directories_threads_and_unknowns() {
        let params = parse(&[
            ("module", "m"),
            ("path", "/tmp"),
            ("path", "/"),
            ("home", "/usr"),
            ("threads", "8"),
        ])
        .unwrap();
        assert_eq!(params.paths, [PathBuf::from("/tmp"), PathBuf::from("/")]);
        assert_eq!(params.home, Some(PathBuf::from("/usr")));
        assert_eq!(params.threads, 8);
        assert!(matches!(
            parse(&[("module", "m"), ("home", "/nonexistent")]),
            Err(ParamError::NotADirectory { name: "home", .. })
        ));
        assert!(matches!(
            parse(&[("module", "m"), ("path", "/etc/passwd")]),
            Err(ParamError::NotADirectory { name: "path", .. })
        ));
        for bad in ["0", "-1", "x", "257"] {
            assert_eq!(
                parse(&[("module", "m"), ("threads", bad)]),
                Err(ParamError::BadThreads(bad.into()))
            );
        }
        assert_eq!(
            parse(&[("module", "m"), ("module", "n")]),
            Err(ParamError::Repeated("module"))
        );
        assert_eq!(
            parse(&[("module", "m"), ("modul", "n")]),
            Err(ParamError::Unknown("modul".into()))
        );
    }
}
