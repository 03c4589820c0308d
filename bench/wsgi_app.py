"""The uWSGI row of scripts/bench: the same four workloads, byte for byte, as the ngx-gateway
app in examples/bench, as a plain WSGI app with Jinja2 for the template.

    uwsgi --plugin python3 --socket 127.0.0.1:PORT --wsgi-file bench/wsgi_app.py \
        --processes 1 --threads 1 --master --disable-logging

The template directory is bench/templates beside this file (BENCH_TEMPLATES overrides it).
"""

import hashlib
import json
import os
from urllib.parse import parse_qs

import jinja2

TITLE = "ngx-gateway bench"
HELLO = b"Hello, World!\n"
TEMPLATES = os.environ.get(
    "BENCH_TEMPLATES", os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")
)

environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=jinja2.select_autoescape(["html", "xml"]),
)
page = environment.get_template("page.html")
ENTRIES = [{"id": i, "name": f"Item {i}", "count": i * 3} for i in range(1, 21)]


def items():
    return [
        {
            "id": i,
            "name": f"item {i}",
            "price": i + 0.25,
            "active": i % 2 == 0,
            "tags": ["fast", "small"],
        }
        for i in range(1, 11)
    ]


def answer(start_response, body, content_type, status="200 OK"):
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    method = environ.get("REQUEST_METHOD", "GET")
    if path == "/hello":
        return answer(start_response, HELLO, "text/plain; charset=utf-8")
    if path == "/json":
        body = json.dumps(items(), separators=(",", ":")).encode()
        return answer(start_response, body, "application/json")
    if path == "/template":
        name = parse_qs(environ.get("QUERY_STRING", "")).get("name", ["World"])[0]
        body = page.render(title=TITLE, name=name, items=ENTRIES).encode()
        return answer(start_response, body, "text/html; charset=utf-8")
    if path == "/echo":
        if method != "POST":
            return answer(start_response, b"method not allowed\n", "text/plain", "405 Method Not Allowed")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        data = environ["wsgi.input"].read(length)
        body = f"{len(data)} {hashlib.md5(data).hexdigest()}\n".encode()
        return answer(start_response, body, "text/plain; charset=utf-8")
    return answer(start_response, b"not found\n", "text/plain", "404 Not Found")
