"""Errors as JSON problems: ``{"error": {"code", "message", "field"}}``, in one place.

* :class:`~geomap.errors.GeomapError` → its own status (4xx for user input, 503 when the
  database is away, with ``Retry-After``).
* Werkzeug's HTTP errors (404 for an unknown path, 405, ...) → the same JSON shape.
* Database connection loss, no free pooled connection within ``pool_timeout_s``, and
  analyses beyond ``heavy_requests`` → 503 with ``Retry-After``; a caller over its rate
  → 429 with ``Retry-After``; a body over ``max_body_bytes`` (werkzeug's
  ``RequestEntityTooLarge``, raised unread) → :class:`~geomap.errors.PayloadTooLarge`, 413
  naming the body.
* Anything else → 500 with no internals in the body (the traceback goes to the log).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import sqlalchemy as sa
from flask import jsonify
from werkzeug.exceptions import HTTPException

from geomap.errors import Busy, DatabaseUnavailable, GeomapError, PayloadTooLarge

log = logging.getLogger(__name__)
RETRY_AFTER_S = 5


def problem(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    retry_after_s: float | None = None,
):
    """A JSON error response (503 and 429 say when to retry: ``Retry-After``, seconds)."""
    response = jsonify({"error": {"code": code, "message": message, "field": field}})
    response.status_code = status
    if status in (429, 503):
        wait = RETRY_AFTER_S if retry_after_s is None else retry_after_s
        response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
    return response


def init_app(app: Any) -> None:
    """Install the handlers on ``app``."""

    @app.errorhandler(GeomapError)
    def _geomap_error(exc: GeomapError):
        if exc.status >= 500:
            log.warning("%s: %s", exc.code, exc.message)
        retry = getattr(exc, "retry_after_s", None)
        return problem(exc.status, exc.code, exc.message, exc.field, retry)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        if exc.code == 413:  # werkzeug refuses a body over MAX_CONTENT_LENGTH unread
            limit = app.config.get("MAX_CONTENT_LENGTH")
            return _geomap_error(PayloadTooLarge(f"the request body is larger than {limit} "
                                                 "bytes", field="body"))  # fmt: skip
        code = (exc.name or "error").lower().replace(" ", "_")
        response = problem(exc.code or 500, code, exc.description or exc.name)
        # A 405 says which methods the path takes (werkzeug's own header: RFC 9110 15.5.6).
        for name, value in exc.get_headers():
            if name.lower() == "allow":
                response.headers["Allow"] = value
        return response

    @app.errorhandler(sa.exc.TimeoutError)
    def _pool_exhausted(exc: sa.exc.TimeoutError):
        # Every pooled connection stayed busy for pool_timeout_s: the service is saturated.
        busy = Busy("the service is busy (every database connection is in use); retry shortly")
        log.warning("%s", busy.message)
        return problem(busy.status, busy.code, busy.message, None, busy.retry_after_s)

    @app.errorhandler(sa.exc.OperationalError)
    def _database_error(exc: sa.exc.OperationalError):
        from geomap.db import is_connect_error

        if exc.connection_invalidated or is_connect_error(exc):
            err = DatabaseUnavailable("the database is not reachable right now; try again shortly")
            return problem(err.status, err.code, err.message)
        # 57014 query_canceled: the statement timeout (pgRouting's functions report it as
        # "canceling statement due to user request").
        if getattr(exc.orig, "sqlstate", None) == "57014" or "statement timeout" in str(exc.orig):
            return problem(503, "timeout", "the query took longer than the configured bound")
        log.exception("database error")
        return problem(500, "internal_error", "internal error (logged)")

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error")
        return problem(500, "internal_error", "internal error (logged)")
