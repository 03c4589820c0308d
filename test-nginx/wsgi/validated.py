"""Every WSGI app the suite serves, wrapped in wsgiref.validate.validator: a breach of PEP 3333
by the bridge (or an app) raises an AssertionError (a 500) or warns. Warnings are all shown,
on stderr, which nginx sends to its error log, where the suite looks for them.

Callables: `probe` (this directory's probe.py), `hello`, `greet` and `jokes` (examples/wsgi,
which must be on the location's `path` too)."""

import warnings
from wsgiref.validate import validator

import greet.app as _greet
import hello as _hello
import jokes.app as _jokes
import probe as _probe

warnings.simplefilter("always")

probe = validator(_probe.application)
hello = validator(_hello.application)
greet = validator(_greet.application)
jokes = validator(_jokes.app)
