"""Errors as JSON problems: ``{"error": {"code", "message", "field"}}``, in one place.

* :class:`~geomap.errors.GeomapError` → its own status (4xx for user input, 503 when the
  database is away, with ``Retry-After``).
* Werkzeug's HTTP errors (404 for an unknown path, 405, ...) → the same JSON shape.
* Database connection loss → 503; anything else → 500 with no internals in the body
  (the traceback goes to the log).
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from flask import jsonify
from werkzeug.exceptions import HTTPException

from geomap.errors import DatabaseUnavailable, GeomapError

log = logging.getLogger(__name__)
RETRY_AFTER_S = 5


def problem(status: int, code: str, message: str, field: str | None = None):
    """A JSON error response."""
    response = jsonify({"error": {"code": code, "message": message, "field": field}})
    response.status_code = status
    if status == 503:
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response


def init_app(app: Any) -> None:
    """Install the handlers on ``app``."""

    @app.errorhandler(GeomapError)
    def _geomap_error(exc: GeomapError):
        if exc.status >= 500:
            log.warning("%s: %s", exc.code, exc.message)
        return problem(exc.status, exc.code, exc.message, exc.field)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        return problem(exc.code or 500, code, exc.description or exc.name)

    @app.errorhandler(sa.exc.OperationalError)
    def _database_error(exc: sa.exc.OperationalError):
        from geomap.db import _is_connect_error

        if exc.connection_invalidated or _is_connect_error(exc):
            err = DatabaseUnavailable("the database is not reachable right now; try again shortly")
            return problem(err.status, err.code, err.message)
        if "statement timeout" in str(exc.orig):
            return problem(503, "timeout", "the query took longer than the configured bound")
        log.exception("database error")
        return problem(500, "internal_error", "internal error (logged)")

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error")
        return problem(500, "internal_error", "internal error (logged)")
