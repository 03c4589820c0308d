"""The WSGI app test-nginx/024-wsgi.t drives: each route shows one point of PEP 3333 as the
bridge serves it. `validated.py` serves the same routes through wsgiref.validate."""

import hashlib
import io
import json
import os
import tempfile
import sys
import threading
import time
from urllib.parse import parse_qs

# Closes of streamed bodies and of files given to wsgi.file_wrapper in this worker (the suite
# runs one worker): how many were started, how many close() calls they got, and how many got
# more than one; and how many chunks streamed bodies made.
_lock = threading.Lock()
_counts = {"started": 0, "closed": 0, "closed_twice": 0, "pulled": 0}


def _count(key, n=1):
    with _lock:
        _counts[key] += n


def _chunk(i):
    return b"chunk %d %s\n" % (i, b"x" * 1000)


class Counted:
    """A streamed body that counts its close() calls."""

    def __init__(self, chunks, pause, fail_at=None):
        self.chunks, self.pause, self.fail_at = chunks, pause, fail_at
        self.closes = 0
        _count("started")

    def __iter__(self):
        for i in range(self.chunks):
            if i == self.fail_at:
                raise RuntimeError("probe fails after the first byte")
            if i and self.pause:
                time.sleep(self.pause)
            _count("pulled")
            yield _chunk(i)

    def close(self):
        self.closes += 1
        _count("closed")
        if self.closes > 1:
            _count("closed_twice")


class CountedFile:
    """A file-like object over `raw` (a file or BytesIO) that counts its close() calls."""

    def __init__(self, raw):
        self.raw = raw
        self.closes = 0
        _count("started")

    def fileno(self):
        return self.raw.fileno()

    def tell(self):
        return self.raw.tell()

    def read(self, size=-1):
        return self.raw.read(size)

    def close(self):
        self.closes += 1
        _count("closed")
        if self.closes > 1:
            _count("closed_twice")
        self.raw.close()


def _open_for_wrapper(query):
    """The file-like object /file hands to wsgi.file_wrapper, by `how`."""
    path = query["path"]
    how = query.get("how", "file")
    if how == "bytesio":
        with open(path, "rb") as f:
            return io.BytesIO(f.read())
    if how == "deleted":
        # A copy whose name is gone: nginx could not open it, so it is read.
        copy = tempfile.TemporaryFile()
        with open(path, "rb") as f:
            copy.write(f.read())
        copy.seek(0)
        return copy
    f = open(path, "rb")
    if how == "seek":
        f.seek(int(query["offset"]))
    return f


def _json(start_response, data, status="200 OK"):
    body = json.dumps(data, sort_keys=True).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def _text(start_response, text, status="200 OK"):
    start_response(status, [("Content-Type", "text/plain")])
    return [text.encode()]


def _describe(value):
    if isinstance(value, (str, bool, int)) or value is None:
        return value
    if isinstance(value, tuple):
        return list(value)
    return None


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}

    if path == "/environ":
        return _json(start_response, {key: [type(value).__name__, _describe(value)]
                                      for key, value in environ.items()})

    if path == "/input":
        stream = environ["wsgi.input"]
        digest, size, pieces = hashlib.sha256(), 0, 0
        how = query.get("how", "read")
        if how == "read":
            while True:
                block = stream.read(65536)
                if not block:
                    break
                digest.update(block)
                size += len(block)
                pieces += 1
        elif how == "readline":
            while True:
                line = stream.readline()
                if not line:
                    break
                digest.update(line)
                size += len(line)
                pieces += 1
        elif how == "iter":
            for line in stream:
                digest.update(line)
                size += len(line)
                pieces += 1
        elif how == "readlines":
            for line in stream.readlines():
                digest.update(line)
                size += len(line)
                pieces += 1
        return _json(start_response, {"size": size, "sha256": digest.hexdigest(), "pieces": pieces,
                                      "content_length": environ.get("CONTENT_LENGTH")})

    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        fail_at = int(query["fail_at"]) if "fail_at" in query else None
        return Counted(int(query.get("n", "5")), float(query.get("pause", "0")), fail_at)

    if path == "/long":
        # n chunks with a Content-Length of `length` (PEP 3333: the server sends no more),
        # as a list, a stream (counting the chunks it made) or write() calls (stopping at
        # the first that raises, which goes to wsgi.errors).
        n, how = int(query.get("n", "10")), query.get("how", "list")
        write = start_response("200 OK", [("Content-Type", "text/plain"),
                                          ("Content-Length", query["length"])])
        if how == "stream":
            return Counted(n, 0)
        if how == "write":
            for i in range(n):
                try:
                    write(_chunk(i))
                except ValueError as error:
                    environ["wsgi.errors"].write("probe: write() raised ValueError: %s\n" % error)
                    break
            return []
        return [_chunk(i) for i in range(n)]

    if path == "/file":
        filelike = CountedFile(_open_for_wrapper(query))
        headers = [("Content-Type", "application/octet-stream")]
        if "length" in query:
            headers.append(("Content-Length", query["length"]))
        start_response("200 OK", headers)
        return environ["wsgi.file_wrapper"](filelike, int(query.get("blksize", "8192")))

    if path == "/closes":
        with _lock:
            return _json(start_response, dict(_counts))

    if path == "/error-before":
        raise ValueError("probe fails before the first byte")

    if path == "/exit":
        raise SystemExit(3)

    if path == "/bad-status":
        return _text(start_response, "never sent", status="20 OK")

    if path == "/bad-header":
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Split", "a\r\nInjected: yes")])
        return [b"never sent"]

    if path == "/hop-header":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Connection", "close")])
        return [b"never sent"]

    if path == "/sleep":
        time.sleep(float(query.get("s", "0.2")))
        return _text(start_response, "slept\n")

    if path == "/sched":
        # The scheduling policy of the bridge thread calling the app, and of a thread it starts.
        started = []
        thread = threading.Thread(target=lambda: started.append(os.sched_getscheduler(0)))
        thread.start()
        thread.join()
        return _json(start_response, {"bridge": os.sched_getscheduler(0), "started": started[0],
                                      "batch": os.SCHED_BATCH})

    if path == "/speedups":
        import markupsafe
        import markupsafe._speedups as speedups
        return _json(start_response, {"speedups": speedups.__file__,
                                      "escape": markupsafe.escape.__module__})

    if path == "/errors":
        errors = environ["wsgi.errors"]
        errors.write("probe says hello on wsgi.errors\n")
        errors.writelines(["probe line one\n", "probe line two\n"])
        errors.write("probe partial")
        errors.flush()
        return _text(start_response, "logged\n")

    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written first, ")
        return [b"then returned\n"]

    if path == "/exc-info":
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise KeyError("handled by the app")
        except KeyError:
            start_response("503 Busy Here", [("Content-Type", "text/plain")], sys.exc_info())
        return [b"the app's own error page\n"]

    if path == "/exc-info-late":
        def body():
            yield b"first chunk\n"
            try:
                raise KeyError("too late to change the status")
            except KeyError:
                # PEP 3333: headers are sent, so this re-raises the KeyError.
                start_response("500 Oops", [("Content-Type", "text/plain")], sys.exc_info())
            yield b"never sent\n"
        start_response("200 OK", [("Content-Type", "text/plain")])
        return body()

    if path == "/empty-generator":
        def body():
            start_response("204 No Content", [])
            return
            yield b""
        return body()

    if path == "/utf8":
        # PATH_INFO bytes arrive as latin-1 characters; the app re-encodes them.
        raw = environ.get("QUERY_STRING", "").encode("latin-1")
        return _text(start_response, raw.decode("utf-8", "replace") + "\n")

    return _text(start_response, "no such route: %s\n" % path, status="404 Not Found")
