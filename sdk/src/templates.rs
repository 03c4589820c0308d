//! Jinja templates (minijinja), loaded from a directory: autoescaped for `.html` and `.xml`,
//! compiled once per app instance, optionally reloaded when they change (for development).

use std::path::{Path, PathBuf};

use minijinja::value::{merge_maps, Kwargs, Serde, Value};
use minijinja::Environment;
use serde::Serialize;

use crate::config::{Config, ConfigError};
use crate::error::Error;
use crate::request::Request;
use crate::response::Html;
use crate::session::Session;
use crate::url_for::url_for;

/// A directory of templates.
///
/// ```no_run
/// # fn demo(config: &gateway::Config) -> Result<(), Box<dyn std::error::Error>> {
/// let templates = gateway::Templates::from_config(config)?; // gateway_app_param templates /srv/app/templates;
/// let page = templates.render("index.html", gateway::minijinja::context! { title => "Hi" })?;
/// # Ok(()) }
/// ```
pub struct Templates {
    environment: Environment<'static>,
    directory: PathBuf,
}

impl Templates {
    /// Templates from `directory`, compiled on first use and then kept.
    pub fn new(directory: impl Into<PathBuf>) -> Result<Self, ConfigError> {
        let directory = directory.into();
        if !directory.is_dir() {
            return Err(ConfigError::Invalid {
                name: "templates".into(),
                value: directory.display().to_string(),
                reason: "not a directory".into(),
            });
        }
        let mut environment = Environment::new();
        environment.set_loader(minijinja::path_loader(&directory));
        environment.set_auto_reload(false);
        Ok(Templates {
            environment,
            directory,
        })
    }

    /// From the app's settings: `gateway_app_param templates DIR;` and, for development,
    /// `gateway_app_param templates_reload on;` to pick up edits without a reload of nginx.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let templates = Templates::new(config.require("templates")?)?;
        match config.get("templates_reload") {
            None | Some("off") => Ok(templates),
            Some("on") => Ok(templates.reloading(true)),
            Some(other) => Err(ConfigError::Invalid {
                name: "templates_reload".into(),
                value: other.into(),
                reason: "must be on or off".into(),
            }),
        }
    }

    /// Whether templates are checked for changes on disk at each use (a `stat` per render).
    pub fn reloading(mut self, reload: bool) -> Self {
        self.environment.set_auto_reload(reload);
        self
    }

    /// The directory templates are loaded from.
    pub fn directory(&self) -> &Path {
        &self.directory
    }

    /// The minijinja environment, to add filters, functions and globals at start.
    pub fn environment_mut(&mut self) -> &mut Environment<'static> {
        &mut self.environment
    }

    /// Renders template `name` (a path below the directory; `..` and absolute paths are
    /// refused) with `context`. A refused name or one that names no template is a 404; any
    /// other failure a 500 logged with the template's name and line.
    pub fn render(&self, name: &str, context: impl Serialize) -> Result<Html<String>, Error> {
        self.render_value(name, Value::from(Serde(context)))
    }

    /// Renders template `name` as [`Templates::render`] does, for `request`: the template may
    /// call `url_for(name, key=value, ...)`, the URL of a named route as
    /// [`Request::url_for`] builds it (the keys its path does not name go to the query
    /// string). A `url_for` that fails (an unknown name, a missing parameter) fails the
    /// render: a logged 500. For an app wrapped in [`Sessions`](crate::Sessions), it may also
    /// call `get_flashed_messages()`: the [`flash`](crate::Session::flash)ed messages, each with
    /// its `category` and `message`, taken from the session as they are shown (an empty list
    /// without sessions). A `url_for` or `get_flashed_messages` in `context` takes its place.
    ///
    /// ```no_run
    /// # use gateway::{Error, Html, Request, Templates};
    /// // index.html: <a href="{{ url_for('note', id=id) }}">{{ title }}</a>
    /// fn index(request: &Request, templates: &Templates) -> Result<Html<String>, Error> {
    ///     let context = gateway::minijinja::context! { id => 7, title => "Groceries" };
    ///     templates.render_for(request, "index.html", context)
    /// }
    /// ```
    pub fn render_for(
        &self,
        request: &Request<'_>,
        name: &str,
        context: impl Serialize,
    ) -> Result<Html<String>, Error> {
        let routes = request.route_names().cloned();
        let script_name = request.script_name().to_string();
        let url_for = move |route: &str, kwargs: Kwargs| {
            let values = kwargs
                .args()
                .map(|key| Ok((key, kwargs.get::<Value>(key)?)))
                .collect::<Result<Vec<_>, minijinja::Error>>()?;
            let params: Vec<(&str, &dyn std::fmt::Display)> = values
                .iter()
                .map(|(key, value)| (*key, value as &dyn std::fmt::Display))
                .collect();
            url_for(routes.as_deref(), &script_name, route, &params).map_err(|error| {
                minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, error.to_string())
            })
        };
        // Flask's get_flashed_messages, for an app wrapped in Sessions: the messages, each
        // `{category, message}`, taken from the session as they are shown.
        let has_sessions = request.extensions().get::<Session>().is_some();
        // Through `of`, which reads the cookie on first use.
        let session = if has_sessions {
            Some(Session::of(request)?)
        } else {
            None
        };
        let get_flashed_messages = move || match &session {
            Some(session) => session
                .take_flashes()
                .map(|flashes| Value::from(Serde(flashes)))
                .map_err(|error| {
                    minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, error.to_string())
                }),
            None => Ok(Value::from(Vec::<Value>::new())),
        };
        let context = merge_maps([
            Value::from(Serde(context)),
            minijinja::context! {
                url_for => Value::from_function(url_for),
                get_flashed_messages => Value::from_function(get_flashed_messages),
            },
        ]);
        self.render_value(name, context)
    }

    fn render_value(&self, name: &str, context: Value) -> Result<Html<String>, Error> {
        if !is_safe_name(name) {
            return Err(Error::status(http::StatusCode::NOT_FOUND, "no such page"));
        }
        // A name that is no template is a 404: names often come from the URL. A template that
        // fails to load or render (or includes a missing one) is the app's bug: a 500.
        let template = self
            .environment
            .get_template(name)
            .map_err(|error| match error.kind() {
                minijinja::ErrorKind::TemplateNotFound => {
                    Error::status(http::StatusCode::NOT_FOUND, "no such page")
                }
                _ => Error::from(error),
            })?;
        Ok(Html(template.render(context)?))
    }
}

/// A relative path of plain segments: no `..`, no hidden names, no absolute or Windows paths.
fn is_safe_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('/')
        && !name.contains(['\\', '\0'])
        && name
            .split('/')
            .all(|segment| !segment.is_empty() && !segment.starts_with('.'))
}
