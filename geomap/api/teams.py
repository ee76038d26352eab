"""Teams: ``GET /api/teams/nearest``, the commander's "who is closest?"."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from geomap import crs, db
from geomap.analysis import nearest
from geomap.analysis._params import check_lonlat
from geomap.api._args import Args
from geomap.errors import InvalidInput

bp = Blueprint("teams", __name__, url_prefix="/api/teams")

#: Coordinate systems a point may be given in (the ones users paste from maps).
POINT_CRS = ("EPSG:4326", "EPSG:4490", "GCJ02", "BD09")


def point_from_args(args: Args) -> tuple[float, float, str]:
    """(lon, lat) in WGS84 from ``lon``, ``lat`` and ``crs`` arguments, and the crs name."""
    lon, lat = check_lonlat(args.raw("lon"), args.raw("lat"))
    spec = crs.parse_crs(args.str("crs") or "EPSG:4326")
    if spec.name not in POINT_CRS:
        raise InvalidInput(
            f"crs {spec.name!r} is not accepted for points; use one of {', '.join(POINT_CRS)}",
            field="crs",
        )
    lon, lat = crs.lonlat_to_wgs84(lon, lat, spec)
    return lon, lat, spec.name


@bp.get("/nearest")
def nearest_teams():
    """The k nearest teams to a point by distance, walking or driving time."""
    args = Args(
        request.args,
        {"lon", "lat", "crs", "k", "by", "kind", "status", "capability", "max_distance_m",
         "route"},
    )  # fmt: skip
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
    settings = current_app.config["GEOMAP"]
    answer = nearest.nearest_teams(db.get_session(), query, walk_speed_kmh=settings.walk_speed_kmh)
    answer["query"]["crs"] = crs_name
    return jsonify(answer)
