"""The Flask rows of scripts/bench: the json and template workloads, byte for byte as every
other row, as a Flask app would write them. The same file runs in-process (the WSGI bridge),
under uWSGI and under Gunicorn:

    gateway_app_param module flask_app:app;  gateway_app_param path bench;
    uwsgi --wsgi-file bench/flask_app.py --callable app ...
    gunicorn --chdir bench --worker-class sync --workers 1 flask_app:app

The template directory is bench/templates beside this file (BENCH_TEMPLATES overrides it).
"""

import os

from flask import Flask, render_template, request

TITLE = "ngx-gateway bench"
TEMPLATES = os.environ.get(
    "BENCH_TEMPLATES", os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")
)
ENTRIES = [{"id": i, "name": f"Item {i}", "count": i * 3} for i in range(1, 21)]

app = Flask(__name__, template_folder=TEMPLATES)
# Every row writes each object's keys in the order they are built.
app.json.sort_keys = False


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


@app.get("/json")
def json_items():
    # jsonify would add a newline the other rows do not send; the body is otherwise its own.
    body = app.json.dumps(items(), separators=(",", ":"))
    return app.response_class(body, mimetype="application/json")


@app.get("/template")
def template():
    name = request.args.get("name", "World")
    return render_template("page.html", title=TITLE, name=name, items=ENTRIES)
