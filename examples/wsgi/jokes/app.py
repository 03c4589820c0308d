"""A Flask JSON API of jokes: list them, get one by id, add one.

    GET  /jokes          every joke, oldest first
    GET  /jokes/<id>     one joke, or 404
    POST /jokes          {"setup": "...", "punchline": "..."} adds one: 201 with it and its
                         Location, or 400 saying what is missing

The jokes live in this process's memory, shared by the threads that serve it and guarded by
a lock: each nginx worker has its own list (SQLite, shared by every worker, is to come).
Run it under ngx-gateway with `gateway_app_param module jokes.app:app;` and `path` set to
this file's parent directory, or under any WSGI server (`gunicorn jokes.app:app`).
"""

import threading

from flask import Flask, abort, jsonify, request, url_for

app = Flask(__name__)

_lock = threading.Lock()
_jokes = [
    {"id": 1, "setup": "Why do programmers prefer dark mode?",
     "punchline": "Because light attracts bugs."},
    {"id": 2, "setup": "How many nginx workers does it take to change a light bulb?",
     "punchline": "One per core, and none of them blocks."},
]


@app.get("/jokes")
def list_jokes():
    with _lock:
        return jsonify(list(_jokes))


@app.get("/jokes/<int:joke_id>")
def get_joke(joke_id):
    with _lock:
        joke = next((joke for joke in _jokes if joke["id"] == joke_id), None)
    if joke is None:
        abort(404, description=f"no joke {joke_id}")
    return jsonify(joke)


@app.post("/jokes")
def add_joke():
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        return jsonify(error="send a JSON object with setup and punchline"), 400
    missing = [key for key in ("setup", "punchline")
               if not isinstance(data.get(key), str) or not data[key].strip()]
    if missing:
        return jsonify(error="missing or empty: " + ", ".join(missing)), 400
    with _lock:
        joke = {"id": max((j["id"] for j in _jokes), default=0) + 1,
                "setup": data["setup"].strip(), "punchline": data["punchline"].strip()}
        _jokes.append(joke)
    response = jsonify(joke)
    response.status_code = 201
    response.headers["Location"] = url_for("get_joke", joke_id=joke["id"])
    return response


@app.errorhandler(404)
def not_found(error):
    return jsonify(error=error.description), 404
