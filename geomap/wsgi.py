"""WSGI entry point for production servers: ``gunicorn geomap.wsgi:app``.

Each worker process imports this module (gunicorn forks before loading the app), so each
runs its own escalation loop; they never record a climb twice (see geomap.ops.escalation).
"""

from geomap import create_app
from geomap.api._ops import start_loop

app = create_app()
start_loop(app)
