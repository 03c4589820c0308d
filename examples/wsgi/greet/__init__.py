"""An HTML page rendered by Jinja2 from a template; the app is greet.app (`application`)."""
