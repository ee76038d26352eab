"""``/healthz``: is the service up; for its operators, which PostGIS/pgRouting and how much data.

Anyone (a load balancer, a monitor) gets the status alone. Versions and row counts are
for callers with an API key, and for the local demo's open reads
(``GEOMAP_OPEN_READ``: ``geomap.web.access``): they say what software runs and how much data it
holds, which is nobody else's business.
"""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from geomap import db
from geomap.analysis import inventory
from geomap.errors import DatabaseUnavailable
from geomap.web import access, spec
from geomap.web.spec import endpoint

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@endpoint("Service status (with a key or from this machine: PostGIS/pgRouting versions and "
          "row counts)", permission="public", tags=("service",), response="Health",
          statuses=(503,))  # fmt: skip
def healthz():
    """200 (versions and counts for operators); 503 with a clear message when the database
    is down."""
    spec.args()
    session = db.get_session()
    try:
        with db.translate_errors():
            versions = db.check_postgis(session.connection())
            details = _operator()
            counts = inventory.counts(session) if details else None
    except DatabaseUnavailable as exc:
        body = {"status": "unavailable", "error": exc.to_dict()}
        return jsonify(body), 503, {"Retry-After": "5"}
    if not details:
        return jsonify({"status": "ok"})
    return jsonify({"status": "ok", "versions": versions, "counts": counts})


def _operator() -> bool:
    """Whether the caller may see versions and counts: a key, or an open local read."""
    return access.optional(request).kind in ("key", "open")
