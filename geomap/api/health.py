"""``/healthz``: is the service up, which PostGIS/pgRouting, and how much data it holds."""

from __future__ import annotations

from flask import Blueprint, jsonify

from geomap import db
from geomap.analysis import inventory
from geomap.api import spec
from geomap.api.spec import endpoint
from geomap.errors import DatabaseUnavailable

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@endpoint("Service status, PostGIS/pgRouting versions and row counts", permission="public",
          tags=("service",), response="Health", statuses=(503,))  # fmt: skip
def healthz():
    """200 with versions and row counts; 503 with a clear message when the database is down."""
    spec.args()
    session = db.get_session()
    try:
        with db.translate_errors():
            versions = db.check_postgis(session.connection())
            counts = inventory.counts(session)
    except DatabaseUnavailable as exc:
        body = {"status": "unavailable", "error": exc.to_dict()}
        return jsonify(body), 503, {"Retry-After": "5"}
    return jsonify({"status": "ok", "versions": versions, "counts": counts})
