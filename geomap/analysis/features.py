"""Features of a catalog layer: filtered, paged, streamed, as GeoJSON-ready dicts.

The maps' data endpoint and the feature service both read layers through here. Only
identifiers from the checked catalog (:mod:`geomap.layers`) enter the SQL text; every
value (bbox, filters, times, paging) is a bound parameter.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from geomap import models
from geomap.errors import InvalidInput, NotFound
from geomap.layers import Layer
from geomap.params import check_datetime, check_lonlat

#: Metres per degree of latitude: turns a layer's simplification in metres into degrees.
M_PER_DEGREE = 111_320.0
STREAM_BATCH = 500


@dataclass(frozen=True)
class Selection:
    """Which features of a layer: bbox, equality filters, time, paging.

    Parameters
    ----------
    bbox : tuple of float, optional
        ``(minlon, minlat, maxlon, maxlat)``, WGS 84 (see :func:`parse_bbox`).
    filters : mapping of str to str, optional
        Column → value, compared for equality (columns from :func:`filterable`).
    interval : tuple, optional
        ``(start, end)`` of the layer's time column, either end None for open.
    limit : int, optional
        The most features; all when None.
    offset : int, default 0
        Features skipped first (in id order).
    simplify : bool, default True
        Whether geometries are simplified for display.
    simplify_m : float, optional
        A tolerance coarser than the layer's ``simplify_m``, metres (geometry for a coarse
        zoom); the layer's own when None or finer.
    """

    bbox: tuple[float, float, float, float] | None = None
    filters: Mapping[str, str] | None = None
    interval: tuple[dt.datetime | None, dt.datetime | None] | None = None
    limit: int | None = None
    offset: int = 0
    simplify: bool = True
    #: Simplify more than the layer's ``simplify_m`` (metres): geometry for a coarse zoom.
    simplify_m: float | None = None


def parse_bbox(text: str | None) -> tuple[float, float, float, float] | None:
    """``minlon,minlat,maxlon,maxlat`` (WGS 84) → tuple; errors name the ``bbox`` field.

    A box whose minlon is greater than its maxlon crosses the antimeridian (as OGC API -
    Features defines it): it is kept as given and matched as two boxes.

    Parameters
    ----------
    text : str or None
        The query argument.

    Returns
    -------
    tuple of float or None
        The box; None when no text is given.

    Raises
    ------
    InvalidInput
        Not four numbers, or out of range.
    """
    if text is None or text == "":
        return None
    parts = text.split(",")
    if len(parts) != 4:
        raise InvalidInput("bbox needs 4 numbers: minlon,minlat,maxlon,maxlat", field="bbox")
    try:
        x0, y0 = check_lonlat(parts[0], parts[1])
        x1, y1 = check_lonlat(parts[2], parts[3])
    except InvalidInput as exc:
        raise InvalidInput(f"bbox: {exc.message}", field="bbox") from None
    if y0 > y1:
        raise InvalidInput("bbox: the minimum latitude must come first", field="bbox")
    return x0, y0, x1, y1


def bbox_boxes(
    bbox: tuple[float, float, float, float],
) -> list[tuple[float, float, float, float]]:
    """The box as one or, across the antimeridian (minlon > maxlon), two boxes.

    Parameters
    ----------
    bbox : tuple of float
        ``(minlon, minlat, maxlon, maxlat)``, WGS 84.

    Returns
    -------
    list of tuple of float
        One or two boxes, each with minlon ≤ maxlon.
    """
    x0, y0, x1, y1 = bbox
    if x0 <= x1:
        return [bbox]
    return [(x0, y0, 180.0, y1), (-180.0, y0, x1, y1)]


def _instant(text: str) -> dt.datetime | None:
    if text in ("", ".."):
        return None
    try:
        return check_datetime(text, "datetime", default_tz=dt.UTC, earliest=None, latest=None)
    except InvalidInput as exc:
        raise InvalidInput(
            f"{exc.message} (RFC 3339, e.g. 2026-11-23T08:00:00Z)", field="datetime"
        ) from None


def parse_datetime(text: str | None) -> tuple[dt.datetime | None, dt.datetime | None] | None:
    """An instant or an interval (``a/b``, ``../b``, ``a/..``) as (start, end).

    Parameters
    ----------
    text : str or None
        The ``datetime`` query argument (RFC 3339).

    Returns
    -------
    tuple or None
        ``(start, end)``, an open end as None, an instant as ``(t, t)``; None when no text.

    Raises
    ------
    InvalidInput
        An unreadable time, or an interval that ends before it starts.
    """
    if not text:
        return None
    if "/" in text:
        start_text, end_text = text.split("/", 1)
        start, end = _instant(start_text), _instant(end_text)
        if start and end and start > end:
            raise InvalidInput("datetime: the interval ends before it starts", field="datetime")
        return start, end
    instant = _instant(text)
    return instant, instant


def filterable(layer: Layer, personal: bool) -> tuple[str, ...]:
    """Columns that can be filtered by equality (scalar public properties).

    Parameters
    ----------
    layer : Layer
        A catalog layer.
    personal : bool
        Whether personal columns count.

    Returns
    -------
    tuple of str
        Column names.
    """
    table = models.metadata.tables[layer.table]
    return tuple(
        c
        for c in layer.public_properties(personal)
        if not isinstance(table.columns[c].type, sa.ARRAY)
    )


def _where(layer: Layer, selection: Selection, personal: bool) -> tuple[str, dict[str, Any]]:
    clauses, params = [], {}
    for i, (column, value) in enumerate(sorted(layer.where.items())):
        clauses.append(layer.where_sql(i, column))
        params[f"where_{i}"] = value
    if selection.bbox:
        # The geometry itself must meet the box (ST_Intersects: the index finds the
        # candidates, then the exact test), not merely its bounding box (&&).
        boxes = []
        for i, box in enumerate(bbox_boxes(selection.bbox)):
            names = [f"bbox{i}_{c}" for c in ("x0", "y0", "x1", "y1")]
            boxes.append("ST_Intersects(geom, ST_MakeEnvelope("
                         + ", ".join(f":{n}" for n in names) + ", 4326))")
            params.update(zip(names, box, strict=True))
        clauses.append("(" + " OR ".join(boxes) + ")")
    allowed = filterable(layer, personal)
    for i, (column, value) in enumerate(sorted((selection.filters or {}).items())):
        if column not in allowed:
            raise InvalidInput(
                f"cannot filter {layer.id} by {column!r}; filterable: {', '.join(allowed)}",
                field=column,
            )
        clauses.append(f"CAST({column} AS text) = :filter_{i}")
        params[f"filter_{i}"] = value
    if selection.interval:
        if not layer.time_column:
            raise InvalidInput(f"layer {layer.id} has no time; drop datetime", field="datetime")
        start, end = selection.interval
        if start:
            clauses.append(f"{layer.time_column} >= :t0")
            params["t0"] = start
        if end:
            clauses.append(f"{layer.time_column} <= :t1")
            params["t1"] = end
    return (" AND ".join(clauses) or "true"), params


def _geometry_sql(layer: Layer, selection: Selection) -> str:
    if layer.geometry == "point" or not selection.simplify:
        return "ST_AsGeoJSON(geom, 6)"
    if selection.simplify_m and selection.simplify_m > (layer.simplify_m or 0):
        # Generalised for a coarse zoom, to draw: Douglas-Peucker without topology checks
        # (several times faster), collapsed features kept.
        tolerance = float(selection.simplify_m) / M_PER_DEGREE  # a number, never text
        return f"ST_AsGeoJSON(ST_Simplify(geom, {tolerance:.10f}, true), 6)"
    if layer.simplify_m:
        tolerance = float(layer.simplify_m) / M_PER_DEGREE  # a number from the catalog
        return f"ST_AsGeoJSON(ST_SimplifyPreserveTopology(geom, {tolerance:.10f}), 6)"
    return "ST_AsGeoJSON(geom, 6)"


def count(session: Session, layer: Layer, selection: Selection, *, personal: bool = False) -> int:
    """How many features match the selection (paging aside).

    Parameters
    ----------
    session : Session
        The database.
    layer : Layer
        A catalog layer.
    selection : Selection
        Which features.
    personal : bool, default False
        Whether personal columns may be filtered on.

    Returns
    -------
    int
        The number of matching features.
    """
    where, params = _where(layer, selection, personal)
    return session.execute(
        sa.text(f"SELECT count(*) FROM {layer.table} WHERE {where}"), params
    ).scalar_one()


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def iter_features(
    session: Session, layer: Layer, selection: Selection, *, personal: bool = False
) -> Iterator[dict]:
    """GeoJSON Features of the selection, ordered by id, streamed in batches.

    Parameters
    ----------
    session : Session
        The database.
    layer : Layer
        A catalog layer.
    selection : Selection
        Which features, and the page.
    personal : bool
        Whether personal columns (``layer.personal``) may be included.

    Yields
    ------
    dict
        A Feature, geometry in WGS 84.
    """
    where, params = _where(layer, selection, personal)
    columns = layer.public_properties(personal)
    sql = (
        f"SELECT {layer.id_column} AS feature_id, {_geometry_sql(layer, selection)} AS geometry"
        + "".join(f", {c}" for c in columns)
        + f" FROM {layer.table} WHERE {where} ORDER BY {layer.id_column}"
    )
    if selection.limit is not None:
        sql += " LIMIT :limit"
        params["limit"] = selection.limit
    if selection.offset:
        sql += " OFFSET :offset"
        params["offset"] = selection.offset
    result = session.execute(
        sa.text(sql).execution_options(stream_results=True, yield_per=STREAM_BATCH), params
    )
    for row in result.mappings():
        yield {
            "type": "Feature",
            "id": row["feature_id"],
            "geometry": json.loads(row["geometry"]) if row["geometry"] else None,
            "properties": {c: _jsonable(row[c]) for c in columns},
        }


def feature(session: Session, layer: Layer, feature_id: str, *, personal: bool = False) -> dict:
    """One feature by id (its full geometry), or NotFound.

    Parameters
    ----------
    session : Session
        The database.
    layer : Layer
        A catalog layer.
    feature_id : str
        The id as given in the URL.
    personal : bool, default False
        Whether personal columns may be included.

    Returns
    -------
    dict
        A Feature, geometry in WGS 84, not simplified.

    Raises
    ------
    NotFound
        No feature has this id (or it is not of the id's type).
    """
    id_type = models.metadata.tables[layer.table].columns[layer.id_column].type
    try:
        key: Any = int(feature_id) if isinstance(id_type, sa.Integer) else str(feature_id)
    except ValueError:
        raise NotFound(f"no feature {feature_id!r} in {layer.id}") from None
    where, params = _where(layer, Selection(), personal)
    columns = layer.public_properties(personal)
    sql = (
        f"SELECT {layer.id_column} AS feature_id, ST_AsGeoJSON(geom, 6) AS geometry"
        + "".join(f", {c}" for c in columns)
        + f" FROM {layer.table} WHERE {where} AND {layer.id_column} = :feature_id"
    )
    row = session.execute(sa.text(sql), {**params, "feature_id": key}).mappings().first()
    if row is None:
        raise NotFound(f"no feature {feature_id!r} in {layer.id}")
    return {
        "type": "Feature",
        "id": row["feature_id"],
        "geometry": json.loads(row["geometry"]) if row["geometry"] else None,
        "properties": {c: _jsonable(row[c]) for c in columns},
    }


def extent(session: Session, layer: Layer) -> tuple[float, float, float, float] | None:
    """The layer's bounding box in WGS 84 (None when it is empty).

    Parameters
    ----------
    session : Session
        The database.
    layer : Layer
        A catalog layer.

    Returns
    -------
    tuple of float or None
        ``(minlon, minlat, maxlon, maxlat)``.
    """
    where, params = _where(layer, Selection(), False)
    row = session.execute(
        sa.text(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
            f"(SELECT ST_Extent(geom) AS e FROM {layer.table} WHERE {where}) s"
        ),
        params,
    ).one()
    return None if row[0] is None else tuple(float(v) for v in row)


def time_extent(session: Session, layer: Layer) -> tuple[dt.datetime, dt.datetime] | None:
    """The earliest and latest value of the layer's time column (None: no time, or empty).

    Parameters
    ----------
    session : Session
        The database.
    layer : Layer
        A catalog layer; one without ``time_column`` has no temporal extent.

    Returns
    -------
    (datetime, datetime) or None
        Timezone-aware bounds, as stored.
    """
    if not layer.time_column:
        return None
    where, params = _where(layer, Selection(), False)
    row = session.execute(
        sa.text(
            f"SELECT min({layer.time_column}), max({layer.time_column}) "
            f"FROM {layer.table} WHERE {where}"
        ),
        params,
    ).one()
    return None if row[0] is None else (row[0], row[1])


def sources(session: Session, layer: Layer) -> dict[str, int]:
    """The layer's rows by ``source`` label (with the layer's own filters).

    Parameters
    ----------
    session : Session
        The database.
    layer : Layer
        A catalog layer.

    Returns
    -------
    dict
        ``{source label: rows}``, in label order.
    """
    where, params = _where(layer, Selection(), False)
    rows = session.execute(
        sa.text(
            f"SELECT source, count(*) FROM {layer.table} WHERE {where} "
            "GROUP BY source ORDER BY source"
        ),
        params,
    )
    return {str(source): int(n) for source, n in rows}


def derived_sources(session: Session, layer: Layer) -> dict[str, int]:
    """Rows by ``source`` label of the tables the layer is computed from (``derived_from``).

    Parameters
    ----------
    session : Session
        The database.
    layer : Layer
        Its ``derived_from`` names tables checked against the models by the catalog.

    Returns
    -------
    dict
        ``{source label: rows}`` over those tables (empty when the layer has none).
    """
    out: dict[str, int] = {}
    for table in layer.derived_from:
        for source, n in session.execute(
            sa.text(f"SELECT source, count(*) FROM {table} GROUP BY source ORDER BY source")
        ):
            out[str(source)] = out.get(str(source), 0) + int(n)
    return out


def tiled_summary(
    session: Session, layer: Layer, *, classes: int = 5, max_sources: int = 5
) -> dict[str, Any]:
    """What a map needs to know of a layer it draws from tiles (without its features).

    Parameters
    ----------
    session : Session
        The database.
    layer : Layer
        A catalog layer.
    classes : int
        Classes of the choropleths: the breaks are the quantiles between them.
    max_sources : int
        Distinct provenance strings listed at most.

    Returns
    -------
    dict
        ``count``; ``sources`` (distinct ``source`` values); ``breaks``: for each of the
        layer's ``choropleth`` names that is a numeric column, its ``classes - 1``
        quantiles (distinct, ascending).
    """
    where, params = _where(layer, Selection(), False)
    table = models.metadata.tables[layer.table]
    count = session.execute(
        sa.text(f"SELECT count(*) FROM {layer.table} WHERE {where}"), params
    ).scalar_one()
    sources: list[str] = []
    if "source" in table.columns:
        sources = list(
            session.execute(
                sa.text(
                    f"SELECT DISTINCT source FROM {layer.table} WHERE {where} "
                    "ORDER BY source LIMIT :max_sources"
                ),
                {**params, "max_sources": max_sources},
            ).scalars()
        )
    fractions = [i / classes for i in range(1, classes)]
    breaks: dict[str, list[float]] = {}
    for name in layer.choropleth:
        column = table.columns.get(name)
        if column is None or not isinstance(column.type, sa.Integer | sa.Float | sa.Numeric):
            continue
        values = session.execute(
            sa.text(
                f"SELECT percentile_disc(CAST(:fractions AS float8[])) "
                f"WITHIN GROUP (ORDER BY {name}) FROM {layer.table} WHERE {where}"
            ),
            {**params, "fractions": fractions},
        ).scalar()
        breaks[name] = sorted({float(v) for v in values or [] if v is not None})
    return {"count": int(count), "sources": sources, "breaks": breaks}
