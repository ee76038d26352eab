"""Teams: the commander's "who is closest?"; a team's status, positions and track."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, current_app, jsonify

from geomap import crs, db, vocab
from geomap.analysis import nearest
from geomap.api import _ops
from geomap.errors import InvalidInput, NotFound
from geomap.ops import positions
from geomap.ops import teams as ops_teams
from geomap.params import CST, MAX_ID, check_datetime, check_lonlat
from geomap.web import costs, spec
from geomap.web.args import Args
from geomap.web.spec import LAT, LON, POINT_CRS, Param, endpoint

bp = Blueprint("teams", __name__, url_prefix="/api/teams")

#: Coordinate systems a point may be given in (the ones users paste from maps).
POINT_CRS_NAMES = POINT_CRS.enum


def point_from_args(args: Args) -> tuple[float, float, str]:
    """(lon, lat) in WGS84 from ``lon``, ``lat`` and ``crs`` arguments, and the crs name."""
    lon, lat = check_lonlat(args.raw("lon"), args.raw("lat"))
    spec_crs = crs.parse_crs(args.str("crs") or "EPSG:4326")
    if spec_crs.name not in POINT_CRS_NAMES:
        raise InvalidInput(
            f"crs {spec_crs.name!r} is not accepted for points; "
            f"use one of {', '.join(POINT_CRS_NAMES)}",
            field="crs",
        )
    lon, lat = crs.lonlat_to_wgs84(lon, lat, spec_crs)
    return lon, lat, spec_crs.name


def json_body() -> dict:
    """The request's JSON object, checked against its declared schema (``spec.body``)."""
    body = spec.body()
    if not isinstance(body, dict):
        raise InvalidInput("the request body must be a JSON object", field="body")
    return body


@bp.get("/nearest")
@endpoint(
    "The k nearest teams to a point, by distance or by travel time on the road network",
    permission="analysis",
    tags=("teams",),
    response="Nearest",
    statuses=(400, 422),
    params=(
        LON,
        LAT,
        POINT_CRS,
        Param("k", "integer", "How many teams.", default=5, minimum=1, maximum=nearest.MAX_K),
        Param("by", "string", "Rank by straight-line metres or network travel time.",
              enum=("distance", "walk", "drive"), default="distance"),
        Param("kind", "string", "Team kinds to include.", enum=tuple(vocab.TEAM_KINDS),
              array=True),
        Param("status", "string", "Team statuses (default available).",
              enum=tuple(vocab.TEAM_STATUSES), array=True),
        Param("capability", "string", "Only teams with this capability."),
        Param("max_distance_m", "number", "Ignore teams farther than this (metres).",
              minimum=0, maximum=nearest.MAX_DISTANCE_M),
        Param("route", "boolean", "Include each team's route as GeoJSON (walk/drive)."),
    ),
)  # fmt: skip
def nearest_teams():
    """The k nearest teams to a point by distance, walking or driving time."""
    args = spec.args()
    lon, lat, crs_name = point_from_args(args)
    query = nearest.make_query(
        lon,
        lat,
        k=args.raw("k") or 5,
        by=args.str("by", "distance"),
        kinds=args.list("kind"),
        statuses=args.list("status"),
        capability=args.str("capability"),
        max_distance_m=args.raw("max_distance_m"),
        route=args.bool("route"),
    )
    costs.check_nearest(query)
    settings = current_app.config["GEOMAP"]
    # No analysis slot (guard.heavy): by road it is a bounded search on the in-memory
    # street graph, a millisecond or two, like the index lookup by distance.
    # By distance the answer reads one statement (the team mirror's "what changed", with
    # the data versions): no transaction needed.
    session = db.get_read_connection() if query.by == "distance" else db.get_session()
    answer = nearest.nearest_teams(session, query, walk_speed_kmh=settings.walk_speed_kmh)
    answer["query"]["crs"] = crs_name
    return jsonify(answer)


@bp.patch("/<int:team_id>")
@endpoint(
    "Change a team's status, position (kept in its history) or standby position",
    permission="write",
    tags=("teams",),
    body="TeamUpdate",
    response="Team",
    statuses=(400, 404, 409, 422),
)
def update_team(team_id: int):
    """Change a team's status, position or standby position (audited)."""
    spec.args()
    session = db.get_session()
    team = ops_teams.update(session, _team_id(team_id), json_body(), actor=_ops.actor(),
                            now=_ops.now())  # fmt: skip
    session.commit()
    return jsonify(team)


def _team_id(team_id: int) -> int:
    if team_id > MAX_ID:
        raise NotFound(f"no team {team_id}")
    return team_id


@bp.post("/<int:team_id>/positions")
@endpoint(
    "A batch of position fixes from a team's device: history always, current position "
    "only when newer; future or impossibly fast fixes refused",
    permission="write",
    tags=("teams",),
    body="PositionsBatch",
    response="PositionsResult",
    statuses=(400, 404, 422),
    success=200,
)
def team_positions(team_id: int):
    """Record a batch of fixes."""
    spec.args()
    session = db.get_session()
    settings = current_app.config["GEOMAP"]
    result = positions.ingest(
        session, _team_id(team_id), json_body(), actor=_ops.actor(), now=_ops.now(),
        max_speed_kmh=settings.max_speed_kmh, max_fixes=settings.max_fixes,
    )  # fmt: skip
    session.commit()
    return jsonify(result)


@bp.get("/<int:team_id>/track")
@endpoint(
    "A team's track between two times, as a GeoJSON Feature with each fix's time",
    permission="personal",
    tags=("teams",),
    response="Track",
    statuses=(400, 404),
    params=(
        Param("from", "string", "Start (ISO 8601; no zone: UTC+8). Default: 24 h before `to`."),
        Param("to", "string", "End (ISO 8601; no zone: UTC+8). Default: now."),
    ),
)  # fmt: skip
def team_track(team_id: int):
    """A team's movements."""
    args = spec.args()
    until = args.raw("to")
    until = check_datetime(until, "to", default_tz=CST) if until else _ops.now()
    since = args.raw("from")
    since = (check_datetime(since, "from", default_tz=CST) if since
             else until - dt.timedelta(hours=24))  # fmt: skip
    settings = current_app.config["GEOMAP"]
    return jsonify(positions.track(db.get_session(), _team_id(team_id), since=since,
                                   until=until, max_points=settings.max_features))  # fmt: skip
