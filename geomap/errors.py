"""One exception family for everything geomap reports to a user.

Every error a user can cause or needs to act on is a :class:`GeomapError` carrying an HTTP
status, a stable machine-readable ``code`` and, where it applies, the ``field`` (query
parameter, file column, setting) at fault. The API turns them into JSON problems in one
place (``geomap.web.problems``); the CLI prints ``message`` and exits non-zero.
"""

from __future__ import annotations


class GeomapError(Exception):
    """Base class: an error with a message meant for the person who caused it."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code

    def to_dict(self) -> dict[str, str | None]:
        """The JSON body of the error: ``{"code", "message", "field"}``."""
        return {"code": self.code, "message": self.message, "field": self.field}


class InvalidInput(GeomapError):
    """A parameter, argument or value is missing, malformed or out of range (400)."""

    status = 400
    code = "invalid_input"


class InvalidFile(InvalidInput):
    """A file to import cannot be read or does not hold what the layer needs (400).

    The message names the file, and where known the row (1-based feature number) and field.
    """

    code = "invalid_file"

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        row: int | None = None,
        field: str | None = None,
    ):
        where = ", ".join(
            part
            for part in (
                str(path) if path else None,
                f"row {row}" if row is not None else None,
                f"field {field!r}" if field else None,
            )
            if part
        )
        super().__init__(f"{where}: {message}" if where else message, field=field)
        self.path = path
        self.row = row


class NotFound(GeomapError):
    """The thing asked for does not exist (404)."""

    status = 404
    code = "not_found"


class Conflict(GeomapError):
    """The thing is not in a state that allows this (409): an illegal step, a team already
    busy. The message says what is allowed instead."""

    status = 409
    code = "conflict"


class Unreachable(GeomapError):
    """A point lies outside the city or the road network's reach (422)."""

    status = 422
    code = "unreachable"


class ConfigError(GeomapError):
    """A setting is missing or wrong, or the environment lacks something (500, CLI exit 2)."""

    status = 500
    code = "config_error"


class DatabaseUnavailable(GeomapError):
    """The database cannot be reached right now (503); the service retries on the next call."""

    status = 503
    code = "database_unavailable"


class DatabaseError(GeomapError):
    """The database is reachable but not usable as is (no PostGIS, not migrated, ...)."""

    status = 503
    code = "database_not_ready"


class Unauthorized(GeomapError):
    """No valid credentials for something that needs them (401)."""

    status = 401
    code = "unauthorized"


class Forbidden(GeomapError):
    """Valid credentials that do not allow this (403)."""

    status = 403
    code = "forbidden"


class CsrfRefused(Forbidden):
    """A write with a session cookie but without the session's CSRF token (403)."""

    code = "csrf"


class PayloadTooLarge(GeomapError):
    """A request body larger than the service accepts (413)."""

    status = 413
    code = "payload_too_large"


class RateLimited(GeomapError):
    """A caller made more requests than its rate allows (429, with ``retry_after``)."""

    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: float, field: str | None = None):
        super().__init__(message, field=field)
        self.retry_after_s = retry_after_s


class Busy(GeomapError):
    """The service is at capacity right now: retry shortly (503, with ``retry_after``)."""

    status = 503
    code = "busy"

    def __init__(self, message: str, *, retry_after_s: float = 2, field: str | None = None):
        super().__init__(message, field=field)
        self.retry_after_s = retry_after_s
