//! An HTML page rendered from a template: a title from nginx.conf, the visitor's name from the
//! query string (autoescaped, since the template is `.html`), and a loop over a list.
//!
//! ```nginx
//! location /greet {
//!     gateway_app /path/to/libgreet.so;
//!     gateway_app_param templates /path/to/examples/greet/templates;
//!     gateway_app_param title "Greetings";          # optional
//! }
//! ```
//!
//! `GET /greet?username=Ada` greets Ada; without a username it greets "stranger".

use gateway::{get, Config, ConfigError, Error, Html, Request, Router, Templates};
use serde::{Deserialize, Serialize};

/// Who is greeted when the query string names nobody.
pub const DEFAULT_USERNAME: &str = "stranger";

/// The page title when nginx.conf sets none.
pub const DEFAULT_TITLE: &str = "Greetings";

/// One way to say hello: an item of the list the template loops over.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Greeting {
    /// The word itself, e.g. "Bonjour".
    pub word: &'static str,
    /// The language's English name, shown next to the word.
    pub language: &'static str,
    /// The BCP 47 tag, for the `lang` attribute so screen readers pronounce the word right.
    pub lang: &'static str,
}

/// The greetings every page lists, in this order.
pub const GREETINGS: [Greeting; 5] = [
    Greeting {
        word: "Hello",
        language: "English",
        lang: "en",
    },
    Greeting {
        word: "Bonjour",
        language: "French",
        lang: "fr",
    },
    Greeting {
        word: "Hola",
        language: "Spanish",
        lang: "es",
    },
    Greeting {
        word: "Hallo",
        language: "German",
        lang: "de",
    },
    Greeting {
        word: "Ciao",
        language: "Italian",
        lang: "it",
    },
];

/// The app's state, built once per nginx worker: the compiled templates and the title.
pub struct Greeter {
    title: String,
    templates: Templates,
}

/// The query string the page understands; other parameters are ignored.
#[derive(Deserialize)]
struct Query {
    username: Option<String>,
}

/// What the template sees.
#[derive(Serialize)]
struct Page<'a> {
    title: &'a str,
    username: &'a str,
    greetings: &'a [Greeting],
    /// The mount point, so the form submits to this app wherever it is mounted.
    base: &'a str,
}

fn page(request: &Request, greeter: &Greeter) -> Result<Html<String>, Error> {
    let query: Query = request.query()?;
    // An empty `?username=` (the form submitted blank) reads as no name at all.
    let username = query
        .username
        .as_deref()
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .unwrap_or(DEFAULT_USERNAME);
    // The username goes to the template as is: the `.html` template escapes it.
    greeter.templates.render(
        "index.html",
        Page {
            title: &greeter.title,
            username,
            greetings: &GREETINGS,
            base: request.script_name(),
        },
    )
}

/// Builds the app from the location's settings: `templates` (required) and `title`.
pub fn app(config: &Config) -> Result<Router<Greeter>, ConfigError> {
    let greeter = Greeter {
        title: config.get("title").unwrap_or(DEFAULT_TITLE).to_string(),
        templates: Templates::from_config(config)?,
    };
    // "/" also answers the bare mount point: the router reads an empty path as "/".
    Ok(Router::with_state(greeter).route("/", get(page)))
}

gateway::app!(init = app);
