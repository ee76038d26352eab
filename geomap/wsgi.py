"""WSGI entry point for production servers: ``gunicorn -c python:geomap.serving geomap.wsgi:app``.

The app is built here, once, in gunicorn's master (``preload_app``); its background work
(the escalation loop) is started in each worker after the fork by
:func:`geomap.serving.post_fork`, never here: a thread started before a fork does not
run in the children, and its database connections would be shared with them. Another
WSGI server that imports this module should call :func:`geomap.api._ops.start_loop`
in each of its worker processes.
"""

from geomap import create_app

app = create_app()
