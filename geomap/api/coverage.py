"""Coverage: ``GET /api/coverage``, the planner's "which grids have nothing in reach?"."""

from __future__ import annotations

import csv
import io

from flask import Blueprint, Response, current_app, jsonify, request

from geomap import db, tabular, vocab
from geomap.analysis import coverage
from geomap.errors import InvalidInput
from geomap.web import costs, guard, keep, queries, spec
from geomap.web.args import Args
from geomap.web.spec import FORMAT, LEVEL, ORDER, Param, endpoint

bp = Blueprint("coverage", __name__, url_prefix="/api")

FORMATS = ("json", "geojson", "csv")
CSV_COLUMNS = (
    "code", "name", "level", "grids", "population", "covered_population",
    "uncovered_population", "covered_share_area", "covered_share_population", "nearest_m",
    "covered",
)  # fmt: skip


def response_format(args: Args) -> str:
    """The ``format`` argument: json (default), geojson or csv."""
    fmt = args.str("format", "json")
    if fmt not in FORMATS:
        raise InvalidInput(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}",
                           field="format")  # fmt: skip
    return fmt


def render(answer: dict, fmt: str) -> Response:
    """The coverage answer as JSON, GeoJSON (one Feature per unit) or CSV."""
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(tabular.record(unit) for unit in answer["units"])
        return Response(out.getvalue(), mimetype="text/csv")  # werkzeug adds the charset
    if fmt == "geojson":
        features = [
            {
                "type": "Feature",
                "id": unit["code"],
                "geometry": unit.pop("geometry"),
                "properties": unit,
            }
            for unit in answer["units"]
        ]
        body = {
            "type": "FeatureCollection",
            "query": answer["query"],
            "summary": answer["summary"],
            "features": features,
        }
        return Response(
            current_app.json.dumps(body), mimetype="application/geo+json; charset=utf-8"
        )
    return jsonify(answer)


ALL_KINDS = tuple({**vocab.STATION_KINDS, **vocab.TEAM_KINDS, **vocab.SITE_KINDS})


def _data_sets() -> tuple[str, ...]:
    """What a coverage answer is built from: the units, the network, the providers."""
    return ("grids", "regions", "network", request.args.get("of", "stations"))


@bp.get("/coverage")
@endpoint(
    "Coverage of grids (or communities, townships, districts) by stations, teams or sites",
    permission="analysis",
    tags=("coverage",),
    response="Coverage",
    params=(
        Param("of", "string", "Providers.", enum=("stations", "teams", "sites"),
              default="stations"),
        Param("kind", "string", "Provider kinds (of the chosen table).", enum=ALL_KINDS,
              array=True),
        Param("within_m", "number", "Reach in metres (by=distance).", minimum=0,
              maximum=costs.MAX_COVERAGE_M),
        Param("within_min", "number", "Reach in minutes (by=walk|drive).", minimum=0,
              maximum=coverage.MAX_WITHIN_MIN),
        Param("by", "string", "Straight-line metres or network travel time.",
              enum=("distance", "walk", "drive"), default="distance"),
        LEVEL,
        ORDER,
        FORMAT,
    ),
)  # fmt: skip
@keep.answer(_data_sets)
def coverage_view():
    """Coverage of every unit at a level by stations, teams or sites."""
    args = spec.args()
    fmt = response_format(args)
    settings = current_app.config["GEOMAP"]
    session = db.get_session()
    query = queries.coverage_query(args, settings, session)
    with guard.heavy("coverage"):
        answer = coverage.coverage(
            session,
            query,
            walk_speed_kmh=settings.walk_speed_kmh,
            access_m=settings.circle_access_m,
            with_geometry=fmt == "geojson",
        )
    if len(answer["units"]) > settings.max_features:
        raise InvalidInput(
            f"{len(answer['units'])} units exceed the limit of {settings.max_features}; "
            "choose a coarser level",
            field="level",
        )
    return render(answer, fmt)
