"""The layer catalog over HTTP: ``/api/layers`` and ``/api/layers/<id>`` (GeoJSON).

The maps load their data from here, once per layer, instead of inlining it in the page.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator

from flask import Blueprint, Response, current_app, jsonify, request, stream_with_context

from geomap import db, layers
from geomap.analysis import features
from geomap.analysis._params import check_int
from geomap.api._args import Args

bp = Blueprint("layers", __name__, url_prefix="/api/layers")


@functools.cache
def _catalog_cached(folder: str) -> dict[str, layers.Layer]:
    from pathlib import Path

    return layers.load_catalog(Path(folder))


def catalog() -> dict[str, layers.Layer]:
    """The catalog, read once per process (the files do not change while serving)."""
    return _catalog_cached(str(layers.CATALOG_DIR))


def may_see_personal() -> bool:
    """Whether this request may see personal fields. None may, until roles exist."""
    return False


@bp.get("")
def list_layers():
    """The catalog: every layer's title, geometry, style and behaviour."""
    Args(request.args, set())
    return jsonify({"layers": [layer.to_dict() for layer in catalog().values()]})


def stream_collection(items: Iterator[dict], head: dict) -> Iterator[str]:
    """A FeatureCollection written feature by feature (big layers never sit in memory)."""
    yield json.dumps(head, ensure_ascii=False)[:-1] + ', "features": ['
    for i, item in enumerate(items):
        yield ("," if i else "") + json.dumps(item, ensure_ascii=False)
    yield "]}"


@bp.get("/<layer_id>")
def layer_geojson(layer_id: str):
    """The features of one layer as GeoJSON; ``bbox``, ``limit``, ``offset``, filters."""
    layer = layers.get_layer(catalog(), layer_id)
    args = Args(request.args, {"bbox", "limit", "offset", "simplify"})
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
        stream_with_context(stream_collection(items, head)),
        mimetype="application/geo+json",
    )
