"""A module with a syntax error: the worker's init must log the traceback, and the location
answer 503."""

def application(environ, start_response)
    return []
