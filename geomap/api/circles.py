"""15-minute red culture circles: ``/api/circles``, ``/api/circles/union``, ``/coverage``."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request

from geomap import db
from geomap.analysis import circles
from geomap.api._args import Args
from geomap.api.coverage import FORMATS, render
from geomap.errors import InvalidInput

bp = Blueprint("circles", __name__, url_prefix="/api/circles")

_QUERY_ARGS = {"of", "kind", "minutes", "distance_m"}


def _query(args: Args) -> circles.Query:
    settings = current_app.config["GEOMAP"]
    return circles.make_query(
        of=args.str("of", "red"),
        kinds=args.list("kind"),
        minutes=args.raw("minutes"),
        distance_m=args.raw("distance_m"),
        walk_speed_kmh=settings.walk_speed_kmh,
        access_m=settings.circle_access_m,
    )


def _commit(session) -> None:
    # Circles built on first use are a cache worth keeping: commit them.
    session.commit()


@bp.get("")
def circles_view():
    """One GeoJSON Feature per venue with its walking circle."""
    args = Args(request.args, _QUERY_ARGS | {"format"})
    if args.str("format", "geojson") != "geojson":
        raise InvalidInput("circles are served as geojson only", field="format")
    session = db.get_session()
    records = circles.circles(session, _query(args))
    _commit(session)
    limit = current_app.config["GEOMAP"].max_features
    if len(records) > limit:
        raise InvalidInput(f"{len(records)} circles exceed the limit of {limit}; filter by kind",
                           field="kind")  # fmt: skip
    features = [
        {
            "type": "Feature",
            "id": f"{r['venue_table']}/{r['site_id']}",
            "geometry": r.pop("geometry"),
            "properties": r,
        }
        for r in records
    ]
    body = {"type": "FeatureCollection", "features": features}
    return Response(current_app.json.dumps(body), mimetype="application/geo+json")


@bp.get("/union")
def union_view():
    """The union of the circles as one Feature, with area and residents inside."""
    args = Args(request.args, _QUERY_ARGS)
    session = db.get_session()
    answer = circles.union(session, _query(args))
    _commit(session)
    geometry = answer.pop("geometry")
    return Response(
        current_app.json.dumps({"type": "Feature", "geometry": geometry, "properties": answer}),
        mimetype="application/geo+json",
    )


@bp.get("/coverage")
def coverage_view():
    """Coverage by the union of circles, in the shape of ``/api/coverage``."""
    args = Args(request.args, _QUERY_ARGS | {"level", "order", "format"})
    fmt = args.str("format", "json")
    if fmt not in FORMATS:
        raise InvalidInput(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}",
                           field="format")  # fmt: skip
    session = db.get_session()
    answer = circles.circle_coverage(
        session,
        _query(args),
        level=args.str("level", "grid"),
        order=args.str("order", "gaps"),
        with_geometry=fmt == "geojson",
    )
    _commit(session)
    return render(answer, fmt)
