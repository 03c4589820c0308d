"""The classic WSGI hello, as in wsgiref's documentation.

Served by ngx-gateway's WSGI bridge with `gateway_app_param module hello;` (the callable is
`application` by default), or by any WSGI server: `python3 -m wsgiref.simple_server` style,
Gunicorn (`gunicorn hello`), Waitress (`waitress-serve hello:application`).
"""


def application(environ, start_response):
    body = "Hola mundo\n".encode("utf-8")
    start_response("200 OK", [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
    ])
    return [body]


if __name__ == "__main__":
    from wsgiref.simple_server import make_server

    with make_server("127.0.0.1", 8000, application) as server:
        server.serve_forever()
