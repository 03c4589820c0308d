//! An app's settings from nginx.conf: the `gateway_app_param NAME VALUE;` lines of the
//! location that mounts it.

/// A setting the app needs is missing or unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The setting with this name is not given.
    #[error("missing setting: add `gateway_app_param {0} ...;` to the location")]
    Missing(String),
    /// A setting's value does not parse (see [`Config::parse`]).
    #[error("setting {name} = {value:?} is invalid: {reason}")]
    Invalid {
        /// The setting's name.
        name: String,
        /// The value as given.
        value: String,
        /// Why it does not parse: the parser's error message.
        reason: String,
    },
}

/// The app's settings, in the order nginx.conf gives them.
#[derive(Debug, Clone, Default)]
pub struct Config {
    params: Vec<(String, String)>,
}

impl Config {
    pub(crate) fn from_abi(params: &[crate::abi::Pair]) -> Self {
        let text = |bytes: crate::abi::Bytes| {
            // SAFETY: the module keeps setting bytes valid for the duration of init.
            String::from_utf8_lossy(unsafe { bytes.as_slice() }).into_owned()
        };
        Config {
            params: params
                .iter()
                .map(|pair| (text(pair.name), text(pair.value)))
                .collect(),
        }
    }

    /// Settings from name-value pairs, e.g. for tests.
    pub fn from_pairs<N: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Self {
        Config {
            params: pairs
                .into_iter()
                .map(|(name, value)| (name.into(), value.into()))
                .collect(),
        }
    }

    /// The last value given for `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The value of `name`, or an error saying how to set it.
    pub fn require(&self, name: &str) -> Result<&str, ConfigError> {
        self.get(name)
            .ok_or_else(|| ConfigError::Missing(name.to_string()))
    }

    /// The value of `name` parsed as `T`; `None` when absent.
    pub fn parse<T>(&self, name: &str) -> Result<Option<T>, ConfigError>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        self.get(name)
            .map(|value| {
                value.parse().map_err(|error: T::Err| ConfigError::Invalid {
                    name: name.to_string(),
                    value: value.to_string(),
                    reason: error.to_string(),
                })
            })
            .transpose()
    }

    /// Every setting as name and value, in nginx.conf order, repeated names included.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.params
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
    }
}
