"""A Flask JSON API of jokes: list them, get one by id, add one.

    GET  /jokes          every joke, oldest first
    GET  /jokes/<id>     one joke, or 404
    POST /jokes          {"setup": "...", "punchline": "..."} adds one: 201 with it and its
                         Location, or 400 saying what is missing

The jokes live in SQLite (the standard library's sqlite3, in WAL mode), so every process
serving the app sees the same jokes: each nginx worker, each Gunicorn worker. The database
file is named by the WSGI environ key JOKES_DB, which nginx sets with
`gateway_param JOKES_DB /var/lib/jokes/jokes.sqlite3;`; without it (any other WSGI server)
it is jokes.sqlite3 in Flask's instance folder, `instance/` beside this package. The table
is made, with two jokes to start with, on first use.

Run it under ngx-gateway with `gateway_app_param module jokes.app:app;` and `path` set to
this package's parent directory, or under any WSGI server (`gunicorn jokes.app:app`).
"""

import os
import sqlite3
import threading

from flask import Flask, abort, g, jsonify, request, url_for

app = Flask(__name__)

#: The WSGI environ key naming the database file.
DATABASE_KEY = "JOKES_DB"

_SCHEMA = """
    CREATE TABLE IF NOT EXISTS jokes (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        setup TEXT NOT NULL,
        punchline TEXT NOT NULL
    )
"""
_FIRST_JOKES = [
    ("Why do programmers prefer dark mode?", "Because light attracts bugs."),
    ("How many nginx workers does it take to change a light bulb?",
     "One per core, and none of them blocks."),
]

# Databases this process has made sure of (schema and WAL), so that is done once each.
_prepared = set()
_prepared_lock = threading.Lock()


def _database_path():
    path = request.environ.get(DATABASE_KEY)
    if path:
        return path
    os.makedirs(app.instance_path, exist_ok=True)
    return os.path.join(app.instance_path, "jokes.sqlite3")


def _prepare(db):
    # WAL lets readers go on while one process writes; the mode stays with the file.
    db.execute("PRAGMA journal_mode=WAL")
    # One process at a time makes the table and its first jokes: the others find them.
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute(_SCHEMA)
        if db.execute("SELECT count(*) FROM jokes").fetchone()[0] == 0:
            db.executemany("INSERT INTO jokes (setup, punchline) VALUES (?, ?)", _FIRST_JOKES)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _db():
    """This request's connection (sqlite3 connections stay on the thread that made them)."""
    if "db" not in g:
        path = _database_path()
        # Autocommit: each statement is its own transaction; waits up to 10 s for a writer.
        db = sqlite3.connect(path, timeout=10, isolation_level=None)
        db.row_factory = sqlite3.Row
        # With WAL, NORMAL loses no commit when a process dies, only on a power cut.
        db.execute("PRAGMA synchronous=NORMAL")
        with _prepared_lock:
            if path not in _prepared:
                _prepare(db)
                _prepared.add(path)
        g.db = db
    return g.db


@app.teardown_appcontext
def _close_db(_error):
    db = g.pop("db", None)
    if db is not None:
        db.close()


@app.get("/jokes")
def list_jokes():
    rows = _db().execute("SELECT id, setup, punchline FROM jokes ORDER BY id").fetchall()
    return jsonify([dict(row) for row in rows])


@app.get("/jokes/<int:joke_id>")
def get_joke(joke_id):
    row = _db().execute("SELECT id, setup, punchline FROM jokes WHERE id = ?",
                        (joke_id,)).fetchone()
    if row is None:
        abort(404, description=f"no joke {joke_id}")
    return jsonify(dict(row))


@app.post("/jokes")
def add_joke():
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        return jsonify(error="send a JSON object with setup and punchline"), 400
    missing = [key for key in ("setup", "punchline")
               if not isinstance(data.get(key), str) or not data[key].strip()]
    if missing:
        return jsonify(error="missing or empty: " + ", ".join(missing)), 400
    joke = {"setup": data["setup"].strip(), "punchline": data["punchline"].strip()}
    cursor = _db().execute("INSERT INTO jokes (setup, punchline) VALUES (?, ?)",
                           (joke["setup"], joke["punchline"]))
    joke["id"] = cursor.lastrowid
    response = jsonify(joke)
    response.status_code = 201
    response.headers["Location"] = url_for("get_joke", joke_id=joke["id"])
    return response


@app.errorhandler(404)
def not_found(error):
    return jsonify(error=error.description), 404
