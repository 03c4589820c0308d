"""An HTML page rendered by Jinja2 from templates/index.html: a title and the visitor's name,
both from the query string and both escaped by Jinja2's autoescape.

    GET /?username=Ada&title=Welcome   greets Ada under the title "Welcome"
    GET /                              greets "stranger" under the title "Greetings"

A bare WSGI callable, `application`, without a framework. Serve it under ngx-gateway with
`gateway_app_param module greet.app;` and `path` set to this package's parent directory, or
under any WSGI server (`gunicorn greet.app`, `waitress-serve greet.app:application`).
"""

from pathlib import Path
from urllib.parse import parse_qs

from jinja2 import Environment, FileSystemLoader, select_autoescape

# Built once per process (per nginx worker): templates are compiled on first use and cached.
_templates = Environment(
    loader=FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=select_autoescape(["html"]),
)


def _query(environ):
    """The query string's first values. PEP 3333 hands QUERY_STRING over as latin-1
    characters, one per byte; the percent-escapes in it are UTF-8."""
    raw = environ.get("QUERY_STRING", "").encode("latin-1").decode("utf-8", "replace")
    return {name: values[0] for name, values in parse_qs(raw).items()}


def application(environ, start_response):
    query = _query(environ)
    page = _templates.get_template("index.html").render(
        title=query.get("title", "").strip() or "Greetings",
        username=query.get("username", "").strip() or "stranger",
    )
    body = page.encode("utf-8")
    start_response("200 OK", [
        ("Content-Type", "text/html; charset=utf-8"),
        ("Content-Length", str(len(body))),
    ])
    return [body]


if __name__ == "__main__":
    from wsgiref.simple_server import make_server

    with make_server("127.0.0.1", 8000, application) as server:
        server.serve_forever()
