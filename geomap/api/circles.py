"""15-minute red culture circles: ``/api/circles``, ``/api/circles/union``, ``/coverage``."""

from __future__ import annotations

from flask import Blueprint, Response, current_app

from geomap import db, vocab
from geomap.analysis import circles
from geomap.api.coverage import render, response_format
from geomap.errors import InvalidInput
from geomap.web import costs, guard, keep, queries, spec
from geomap.web.args import Args
from geomap.web.spec import FORMAT, LEVEL, ORDER, Param, endpoint

bp = Blueprint("circles", __name__, url_prefix="/api/circles")

VENUE_PARAMS = (
    Param("of", "string", "red: every red culture site and red station; or sites, stations.",
          enum=circles.VENUE_SETS, default="red"),
    Param("kind", "string", "Venue kinds.",
          enum=tuple({**vocab.SITE_KINDS, **vocab.STATION_KINDS}), array=True),
    Param("minutes", "number", "Walking time budget (default 15).", minimum=0,
          maximum=costs.MAX_CIRCLE_MINUTES),
    Param("distance_m", "number", "Walking distance budget instead of minutes.", minimum=0,
          maximum=costs.MAX_CIRCLE_M),
)  # fmt: skip


def _query(args: Args) -> circles.Query:
    return queries.circles_query(args, current_app.config["GEOMAP"])


#: What circles and their residents are built from: answers are kept until one changes.
DATA_SETS = ("circles", "sites", "stations", "grids", "network")


def _commit(session) -> None:
    # Circles built on first use are a cache worth keeping: commit them.
    session.commit()


@bp.get("")
@endpoint(
    "One GeoJSON Feature per venue: its walking circle, area and residents inside",
    permission="analysis",
    tags=("circles",),
    response="Circles",
    media_type="application/geo+json",
    params=VENUE_PARAMS,
)
@keep.answer(DATA_SETS)
def circles_view():
    """One GeoJSON Feature per venue with its walking circle."""
    args = spec.args()
    session = db.get_session()
    query = _query(args)
    with guard.heavy("circles"):
        records = circles.circles(session, query)
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
@endpoint(
    "The union of the circles: one Feature with its area and the residents inside",
    permission="analysis",
    tags=("circles",),
    response="CirclesUnion",
    media_type="application/geo+json",
    params=VENUE_PARAMS,
)
@keep.answer(DATA_SETS)
def union_view():
    """The union of the circles as one Feature, with area and residents inside."""
    args = spec.args()
    session = db.get_session()
    query = _query(args)
    with guard.heavy("circles union"):
        answer = circles.union(session, query)
    _commit(session)
    geometry = answer.pop("geometry")
    return Response(
        current_app.json.dumps({"type": "Feature", "geometry": geometry, "properties": answer}),
        mimetype="application/geo+json",
    )


@bp.get("/coverage")
@endpoint(
    "Residents inside the circles by unit (the shape of /api/coverage), gaps first",
    permission="analysis",
    tags=("circles",),
    response="Coverage",
    params=(*VENUE_PARAMS, LEVEL, ORDER, FORMAT),
)
@keep.answer((*DATA_SETS, "regions"))
def coverage_view():
    """Coverage by the union of circles, in the shape of ``/api/coverage``."""
    args = spec.args()
    fmt = response_format(args)
    session = db.get_session()
    query = _query(args)
    with guard.heavy("circles coverage"):
        answer = circles.circle_coverage(
            session,
            query,
            level=args.str("level", "grid"),
            order=args.str("order", "gaps"),
            with_geometry=fmt == "geojson",
        )
    _commit(session)
    return render(answer, fmt)
