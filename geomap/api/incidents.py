"""Incidents and dispatch: record an incident, send teams to it."""

from __future__ import annotations

from flask import Blueprint, jsonify

from geomap import db, dispatch, vocab
from geomap.api import spec
from geomap.api.spec import Param, endpoint
from geomap.api.teams import json_body
from geomap.params import check_int

bp = Blueprint("incidents", __name__, url_prefix="/api/incidents")


@bp.get("")
@endpoint(
    "Latest incidents with their dispatches",
    permission="analysis",
    tags=("dispatch",),
    response="Incidents",
    params=(
        Param("status", "string", "Only incidents in this state.",
              enum=tuple(vocab.INCIDENT_STATUSES)),
        Param("limit", "integer", "How many.", default=100, minimum=1, maximum=1000),
    ),
)  # fmt: skip
def list_incidents():
    """Latest incidents first."""
    args = spec.args()
    limit = check_int(args.raw("limit") or 100, "limit", 1, 1000)
    return jsonify({"incidents": dispatch.list_incidents(db.get_session(), args.str("status"),
                                                         limit)})  # fmt: skip


@bp.post("")
@endpoint(
    "Record an incident at a point (WGS84)",
    permission="write",
    tags=("dispatch",),
    body="IncidentNew",
    response="Incident",
)
def create_incident():
    """Record an incident."""
    spec.args()
    session = db.get_session()
    incident = dispatch.create_incident(session, json_body())
    session.commit()
    return jsonify(incident), 201


@bp.post("/<int:incident_id>/dispatch")
@endpoint(
    "Send teams to an incident: they become deployed, the incident dispatched",
    permission="write",
    tags=("dispatch",),
    body="Dispatch",
    response="Incident",
    statuses=(400, 404),
)
def dispatch_teams(incident_id: int):
    """Dispatch teams to an incident."""
    spec.args()
    session = db.get_session()
    incident = dispatch.dispatch(session, incident_id, json_body())
    session.commit()
    return jsonify(incident), 201
