"""Compact layer data for the maps: the features of a catalog layer, small and quick to draw.

A map page draws thousands of features from a handful of layers. As GeoJSON straight from
the database (``/api/layers/<id>``) the Nanchang layers weigh about 13 MB, mostly
repeated property names, provenance strings and 6-decimal coordinates. This module writes
the same features in a compact form that ``map/core.js`` turns back into GeoJSON
Features in the browser:

* properties as one array per feature, in the order of ``fields`` (names written once);
  a field with few distinct values (kind, status, unit...) is written as an index into
  its list of values in ``dictionaries``; the id column is the feature id only;
* coordinates as integers at 5 decimals (about 1.1 m), each ring delta-encoded (the first
  point absolute, then differences), which also compresses well;
* polygons always as MultiPolygon (a list of polygons), lines as MultiLineString;
* no personal fields (the features come from the catalog's public properties only) and
  no ``source`` column (its distinct values are listed once, in ``sources``).

Format ``geomap-compact/1``::

    {"format": "geomap-compact/1", "layer": "teams", "geometry": "point", "precision": 5,
     "fields": ["code", "name", ...], "count": 5650, "matched": 5650,
     "dictionaries": {"kind": ["medical", ...], ...},
     "sources": ["synthetic: ..."], "attribution": ["© OpenStreetMap contributors"],
     "bbox": [minx, miny, maxx, maxy], "features": [[id, [value, ...], geometry], ...]}

``attribution`` holds the credit lines the layer's data calls for (``geomap.provenance``),
which the page shows in the map's attribution control while the layer is drawn.

plus, for geometry generalised for a zoom (:func:`generalisation`), ``"zoom": z``: the
page loads the layer again, finer, once it is zoomed in past it.

where ``geometry`` is ``[x, y]`` for a point, ``[[ring, ...], ...]`` for a polygon layer
(each ring ``[x0, y0, dx1, dy1, ...]``), ``[line, ...]`` for a line layer, or null.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from geomap import provenance
from geomap.layers import Layer

FORMAT = "geomap-compact/1"
#: Decimal places kept: 1e-5 degree is 1.1 m of latitude, finer than any map here shows.
PRECISION = 5
#: Columns never sent to a map: provenance is listed once per layer instead.
OMITTED_FIELDS = frozenset({"source"})
#: At most this many distinct provenance strings are listed per layer.
MAX_SOURCES = 5
#: A field becomes a dictionary when it has at most this share of distinct values...
DICTIONARY_SHARE = 0.25
#: ... and the layer at least this many features (small layers stay plain).
DICTIONARY_MIN_COUNT = 50
_FLOAT_DIGITS = 4
#: Generalised geometry (for a zoom) keeps detail to this fraction of a pixel...
DETAIL_PX = 0.5
#: ... and drops holes and extra parts smaller than this many pixels across.
MIN_PX = 2.0
#: Metres per degree of latitude (tolerances in metres become degrees).
M_PER_DEGREE = 111_320.0


def pixel_deg(zoom: float) -> float:
    """Degrees of longitude one pixel spans at ``zoom`` (Web Mercator, 256-pixel tiles).

    A pixel spans as many degrees of latitude times cos(latitude), i.e. fewer: a tolerance
    of one "pixel" in degrees is at most a pixel either way.
    """
    return 360.0 / (256.0 * 2.0**zoom)


def generalisation(zoom: int | None) -> tuple[float, float] | None:
    """Tolerance (metres) and smallest area kept (square degrees) for geometry drawn at ``zoom``.

    Parameters
    ----------
    zoom : int or None
        None: no generalisation (the catalog's ``simplify_m`` only).

    Returns
    -------
    (float, float) or None
        ``(simplify_m, min_area_deg2)``: simplify to :data:`DETAIL_PX` of a pixel, drop
        rings smaller than :data:`MIN_PX` pixels squared.
    """
    if zoom is None:
        return None
    pixel = pixel_deg(zoom)
    return DETAIL_PX * pixel * M_PER_DEGREE, (MIN_PX * pixel) ** 2


def map_fields(layer: Layer) -> tuple[str, ...]:
    """The properties a map shows for ``layer``: public ones, but ``source`` and the id.

    Parameters
    ----------
    layer : Layer
        A catalog layer.

    Returns
    -------
    tuple of str
        Property names, in catalog order (never a personal one). The id column is left
        out: it is the feature's id already.
    """
    return tuple(
        p
        for p in layer.public_properties(False)
        if p not in OMITTED_FIELDS and p != layer.id_column
    )


def _ints(coordinates: Sequence[Sequence[float]], scale: float) -> list[tuple[int, int]]:
    points = [(round(p[0] * scale), round(p[1] * scale)) for p in coordinates]
    # Rounding can merge neighbours: drop the repeats (the closing point of a ring is not
    # a neighbour of the first, so rings stay closed).
    return [p for i, p in enumerate(points) if i == 0 or p != points[i - 1]]


def _delta(points: list[tuple[int, int]]) -> list[int]:
    flat: list[int] = []
    px = py = 0
    for x, y in points:
        flat += (x - px, y - py)
        px, py = x, y
    return flat


class _Bounds:
    """The bounding box of everything encoded, in integer units."""

    def __init__(self) -> None:
        self.box: list[int] | None = None

    def add(self, points: list[tuple[int, int]]) -> None:
        if not points:
            return
        xs, ys = zip(*points, strict=True)
        box = [min(xs), min(ys), max(xs), max(ys)]
        if self.box is not None:
            box = [
                min(box[0], self.box[0]), min(box[1], self.box[1]),
                max(box[2], self.box[2]), max(box[3], self.box[3]),
            ]  # fmt: skip
        self.box = box


def _ring_area(points: list[tuple[int, int]]) -> float:
    """Area of a ring of integer points (shoelace), in integer units squared."""
    total = 0
    for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1], strict=True):
        total += x0 * y1 - x1 * y0
    return abs(total) / 2


def encode_geometry(
    geometry: dict[str, Any] | None, kind: str, *, precision: int = PRECISION,
    bounds: _Bounds | None = None, min_area: float = 0.0,
) -> Any:  # fmt: skip
    """One GeoJSON geometry in the compact form of a layer of geometry ``kind``.

    Parameters
    ----------
    geometry : dict or None
        A GeoJSON geometry (Point, MultiPoint, LineString, MultiLineString, Polygon,
        MultiPolygon) in WGS84.
    kind : {"point", "line", "polygon"}
        The layer's geometry kind (``Layer.geometry``).
    precision : int
        Decimal places kept.
    min_area : float
        Square degrees: holes smaller than this are dropped, and so are parts smaller
        than this when the feature keeps a larger one (generalisation for a zoom).

    Returns
    -------
    list or None
        ``[x, y]`` (point), a list of delta-encoded lines (line) or of polygons, each a
        list of delta-encoded rings (polygon); None for a missing or empty geometry.

    Raises
    ------
    ValueError
        When the geometry type does not fit ``kind``.
    """
    if not geometry or not geometry.get("coordinates"):
        return None
    scale = 10.0**precision
    gtype, coords = geometry["type"], geometry["coordinates"]
    if kind == "point":
        if gtype == "MultiPoint":  # a point layer shows one marker: the first point
            coords = coords[0]
        elif gtype != "Point":
            raise ValueError(f"a point layer cannot hold a {gtype}")
        (point,) = _ints([coords], scale)
        if bounds is not None:
            bounds.add([point])
        return [point[0], point[1]]
    if kind == "line":
        lines = {"LineString": [coords], "MultiLineString": coords}.get(gtype)
        if lines is None:
            raise ValueError(f"a line layer cannot hold a {gtype}")
        out = []
        for line in lines:
            points = _ints(line, scale)
            if bounds is not None:
                bounds.add(points)
            out.append(_delta(points))
        return out
    polygons = {"Polygon": [coords], "MultiPolygon": coords}.get(gtype)
    if polygons is None:
        raise ValueError(f"a polygon layer cannot hold a {gtype}")
    smallest = min_area * scale * scale
    kept: list[tuple[float, list[list[tuple[int, int]]]]] = []
    for polygon in polygons:
        rings: list[list[tuple[int, int]]] = []
        area = 0.0
        for i, ring in enumerate(polygon):
            points = _ints(ring, scale)
            if len(points) < 3:  # a ring that collapsed when rounded draws nothing
                if i == 0:
                    break  # no outer ring: no polygon
                continue
            if smallest:
                ring_area = _ring_area(points)
                if i == 0:
                    area = ring_area
                elif ring_area < smallest:
                    continue  # a hole too small to see at this zoom
            rings.append(points)
        if rings:
            kept.append((area, rings))
    if smallest and len(kept) > 1:
        largest = max(area for area, _ in kept)
        kept = [(a, rings) for a, rings in kept if a >= smallest or a == largest]
    encoded = []
    for _, rings in kept:
        if bounds is not None:
            for points in rings:
                bounds.add(points)
        encoded.append([_delta(points) for points in rings])
    return encoded or None


def _value(value: Any) -> Any:
    if value is None or type(value) in (str, int, bool):  # the common cases, first
        return value
    if isinstance(value, float):
        return round(value, _FLOAT_DIGITS)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_value(v) for v in value]
    return value


def encode_layer(
    layer: Layer,
    features: Iterable[dict[str, Any]],
    *,
    matched: int | None = None,
    precision: int = PRECISION,
    zoom: int | None = None,
    credited: Iterable[str] = (),
) -> dict[str, Any]:
    """A layer's features (GeoJSON Feature dicts) in the compact form.

    Parameters
    ----------
    layer : Layer
        The catalog layer the features belong to (fields, geometry kind).
    features : iterable of dict
        GeoJSON Features, e.g. from :func:`geomap.analysis.features.iter_features`.
        Properties outside :func:`map_fields` are dropped, personal ones included.
    matched : int, optional
        How many features matched before a limit (default: as many as given).
    precision : int
        Decimal places of the coordinates.
    zoom : int, optional
        The geometry is generalised for this zoom (already simplified; holes and parts
        too small to see there are dropped here, see :func:`generalisation`).
    credited : iterable of str
        More ``source`` labels to credit: every label of the layer's rows when the
        features are a page of them, and those of the tables it is computed from
        (:func:`geomap.analysis.features.sources`, ``derived_sources``).

    Returns
    -------
    dict
        The ``geomap-compact/1`` document (see the module docstring).
    """
    return encode_features(
        layer.id, layer.geometry, map_fields(layer), features,
        matched=matched, precision=precision, zoom=zoom, credited=credited,
    )  # fmt: skip


def encode_features(
    name: str,
    kind: str,
    fields: Sequence[str],
    features: Iterable[dict[str, Any]],
    *,
    matched: int | None = None,
    precision: int = PRECISION,
    zoom: int | None = None,
    credited: Iterable[str] = (),
) -> dict[str, Any]:
    """Features (GeoJSON Feature dicts) in the compact form, as a layer named ``name``.

    Parameters
    ----------
    name : str
        The document's ``layer``.
    kind : {"point", "line", "polygon"}
        The geometry kind.
    fields : sequence of str
        The properties kept, in order (a ``source`` property is listed once in
        ``sources`` whether kept or not).
    features, matched, precision, zoom, credited
        As :func:`encode_layer`.

    Returns
    -------
    dict
    """
    fields = tuple(fields)
    general = generalisation(zoom)
    min_area = general[1] if general else 0.0
    bounds = _Bounds()
    sources: list[str] = []
    seen: set[str] = set(credited)
    rows = []
    for feature in features:
        properties = feature.get("properties") or {}
        source = properties.get("source")
        if source:
            seen.add(source)
        if source and source not in sources and len(sources) < MAX_SOURCES:
            sources.append(source)
        rows.append(
            [
                feature.get("id"),
                [_value(properties.get(field)) for field in fields],
                encode_geometry(
                    feature.get("geometry"),
                    kind,
                    precision=precision,
                    bounds=bounds,
                    min_area=min_area,
                ),
            ]
        )
    scale = 10.0**precision
    document = {
        "format": FORMAT,
        "layer": name,
        "geometry": kind,
        "precision": precision,
        "fields": list(fields),
        "count": len(rows),
        "matched": len(rows) if matched is None else matched,
        "dictionaries": _dictionaries(fields, rows),
        "sources": sources,
        "attribution": provenance.attributions(seen),
        "bbox": None if bounds.box is None else [round(v / scale, precision) for v in bounds.box],
        "features": rows,
    }
    if zoom is not None:
        document["zoom"] = zoom
    return document


def simplify_geometries(
    geometries: Sequence[dict[str, Any] | None], simplify_m: float
) -> list[dict[str, Any] | None]:
    """GeoJSON geometries simplified to ``simplify_m`` metres, for drawing only.

    For geometry that does not come from a catalog layer (analysis answers: the circles of
    a query, coverage units); catalog layers are simplified by PostGIS as they are read.
    Douglas-Peucker on each ring, without topology checks: ten times faster on the
    circles (0.2 s against 2 s for 965,000 vertices), and a ring that comes to touch itself
    by less than the tolerance draws the same. A geometry that would vanish is kept as it
    is (a venue's circle never disappears from the map).

    Parameters
    ----------
    geometries : sequence of dict or None
        GeoJSON geometries in WGS84.
    simplify_m : float
        Tolerance in metres (taken as metres of latitude).

    Returns
    -------
    list of dict or None
    """
    import shapely
    import shapely.geometry

    if simplify_m <= 0:
        return list(geometries)
    present = [i for i, g in enumerate(geometries) if g]
    shapes = [shapely.geometry.shape(geometries[i]) for i in present]
    simpler = shapely.simplify(shapes, simplify_m / M_PER_DEGREE, preserve_topology=False)
    out: list[dict[str, Any] | None] = list(geometries)
    for i, shape in zip(present, simpler, strict=True):
        if not shape.is_empty:
            out[i] = shapely.geometry.mapping(shape)
    return out


def _key(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _dictionaries(fields: Sequence[str], rows: list[list[Any]]) -> dict[str, list[Any]]:
    """Replace, in place, the values of repetitive fields by indexes into a value list.

    Kinds, statuses, units, parent codes repeat across thousands of features; an index
    of one to four digits replaces each (gzip would catch most of it, but not every
    client asks for gzip, and the standalone file is not compressed).
    """
    if len(rows) < DICTIONARY_MIN_COUNT:
        return {}
    out = {}
    for i, name in enumerate(fields):
        distinct: dict[Any, int] = {}
        for row in rows:
            key = _key(row[1][i])
            if key not in distinct:
                distinct[key] = len(distinct)
                if len(distinct) > DICTIONARY_SHARE * len(rows):
                    break
        else:
            for row in rows:
                row[1][i] = distinct[_key(row[1][i])]
            out[name] = [list(v) if isinstance(v, tuple) else v for v in distinct]
    return out


def dumps(document: dict[str, Any]) -> str:
    """JSON text of a compact document: no spaces, Chinese kept as is.

    Parameters
    ----------
    document : dict

    Returns
    -------
    str
    """
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def decode_geometry(encoded: Any, kind: str, *, precision: int = PRECISION) -> dict | None:
    """The GeoJSON geometry of an encoded one (the inverse of :func:`encode_geometry`).

    The browser does the same in ``map/core.js``; this one serves tests and tools.

    Parameters
    ----------
    encoded : list or None
    kind : {"point", "line", "polygon"}
    precision : int

    Returns
    -------
    dict or None
        A Point, MultiLineString or MultiPolygon.
    """
    if encoded is None:
        return None
    scale = 10.0**precision

    def undelta(flat: list[int]) -> list[list[float]]:
        out, x, y = [], 0, 0
        for i in range(0, len(flat), 2):
            x += flat[i]
            y += flat[i + 1]
            out.append([x / scale, y / scale])
        return out

    if kind == "point":
        return {"type": "Point", "coordinates": [encoded[0] / scale, encoded[1] / scale]}
    if kind == "line":
        return {"type": "MultiLineString", "coordinates": [undelta(line) for line in encoded]}
    return {
        "type": "MultiPolygon",
        "coordinates": [[undelta(ring) for ring in polygon] for polygon in encoded],
    }


def iter_decoded(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """GeoJSON Features of a compact document (tests and tools).

    Parameters
    ----------
    document : dict
        A ``geomap-compact/1`` document.

    Yields
    ------
    dict
        Features with ``id``, ``geometry`` and ``properties``.
    """
    fields = document["fields"]
    dictionaries = document.get("dictionaries") or {}
    for feature_id, values, geometry in document["features"]:
        properties = {
            name: dictionaries[name][value] if name in dictionaries else value
            for name, value in zip(fields, values, strict=True)
        }
        yield {
            "type": "Feature",
            "id": feature_id,
            "geometry": decode_geometry(
                geometry, document["geometry"], precision=document["precision"]
            ),
            "properties": properties,
        }
