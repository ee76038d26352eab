"""WSGI entry point for production servers: ``gunicorn geomap.wsgi:app``."""

from geomap import create_app

app = create_app()
