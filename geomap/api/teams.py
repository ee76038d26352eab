"""Teams: the commander's "who is closest?", and changing a team's status or position."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from geomap import crs, db, dispatch, vocab
from geomap.analysis import nearest
from geomap.api import costs, spec
from geomap.api._args import Args
from geomap.api.spec import LAT, LON, POINT_CRS, Param, endpoint
from geomap.errors import InvalidInput
from geomap.params import check_lonlat

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
    answer = nearest.nearest_teams(db.get_session(), query, walk_speed_kmh=settings.walk_speed_kmh)
    answer["query"]["crs"] = crs_name
    return jsonify(answer)


@bp.patch("/<int:team_id>")
@endpoint(
    "Change a team's status and/or last position (kept in its position history)",
    permission="write",
    tags=("teams",),
    body="TeamUpdate",
    response="Team",
    statuses=(400, 404),
)
def update_team(team_id: int):
    """Change a team's status or position."""
    spec.args()
    session = db.get_session()
    team = dispatch.update_team(session, team_id, json_body())
    session.commit()
    return jsonify(team)
