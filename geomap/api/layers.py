"""The layer catalog over HTTP: ``/api/layers`` and ``/api/layers/<id>`` (GeoJSON).

The maps load their data from here, once per layer, instead of inlining it in the page.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from flask import Blueprint, Response, current_app, jsonify, stream_with_context

from geomap import db, layers
from geomap.analysis import features
from geomap.params import check_int
from geomap.web import spec
from geomap.web.catalog import catalog, may_see_personal, visible_catalog
from geomap.web.spec import Param, endpoint

bp = Blueprint("layers", __name__, url_prefix="/api/layers")


@bp.get("")
@endpoint("The layer catalog: titles, geometry, style and behaviour of every layer",
          permission="layers", tags=("layers",), response="Catalog")  # fmt: skip
def list_layers():
    """The catalog: every layer's title, geometry, style and behaviour."""
    spec.args()
    return jsonify({"layers": [layer.to_dict() for layer in visible_catalog().values()]})


def stream_collection(items: Iterator[dict], head: dict) -> Iterator[str]:
    """A FeatureCollection written feature by feature (big layers never sit in memory)."""
    yield json.dumps(head, ensure_ascii=False)[:-1] + ', "features": ['
    for i, item in enumerate(items):
        yield ("," if i else "") + json.dumps(item, ensure_ascii=False)
    yield "]}"


@bp.get("/<layer_id>")
@endpoint(
    "The features of one layer as GeoJSON (personal fields for commanders only)",
    permission="layers",
    tags=("layers",),
    response="FeatureCollection",
    media_type="application/geo+json",
    statuses=(400, 404),
    params=(
        Param("bbox", "string", "minlon,minlat,maxlon,maxlat (WGS84)."),
        Param("limit", "integer", "Most features.", minimum=1),
        Param("offset", "integer", "Features to skip.", minimum=0),
        Param("simplify", "boolean", "Simplify polygons as the layer says (default true)."),
    ),
)
def layer_geojson(layer_id: str):
    """The features of one layer as GeoJSON; ``bbox``, ``limit``, ``offset``."""
    layer = layers.get_layer(catalog(), layer_id)
    args = spec.args()
    settings = current_app.config["GEOMAP"]
    limit = check_int(args.raw("limit") or settings.max_features, "limit", 1,
                      settings.max_features)  # fmt: skip
    selection = features.Selection(
        bbox=features.parse_bbox(args.str("bbox")),
        limit=limit,
        offset=check_int(args.raw("offset") or 0, "offset", 0, 10**9),
        simplify=args.bool("simplify", True),
    )
    session = db.get_session()
    personal = may_see_personal()
    matched = features.count(session, layer, selection, personal=personal)
    head = {"type": "FeatureCollection", "layer": layer.id, "numberMatched": matched}
    items = features.iter_features(session, layer, selection, personal=personal)
    return Response(
        db.closing_after(session, stream_with_context(stream_collection(items, head))),
        mimetype="application/geo+json",
    )
