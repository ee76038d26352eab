"""Vector tiles of catalog layers, made by PostGIS (``ST_AsMVT``).

They are for layers too big for one document. A city ten times Nanchang has 44,000 grids
and 56,000 teams: one document each would be megabytes to send and seconds to draw. Above
a size (the ``map_tiles_above`` setting) the maps draw such a layer from Mapbox Vector
Tiles instead, in Web Mercator tiles ``z/x/y``: the browser asks only for the tiles in
view, each holding only the features that touch it, clipped and quantised to the tile's
4096-unit grid (which also simplifies polygons for the zoom).

A tile holds the layer's public map properties (no ``source``, never a personal field)
and, for layers whose id is not an integer, the id as a property. Values MVT cannot hold
(arrays, times) are written as text. Only identifiers from the checked catalog enter the
SQL; the tile's z/x/y are bound parameters.

The maps draw each tile :data:`TILE_PX` pixels wide, as Mapbox GL draws vector tiles
(a quarter of the requests of 256-pixel tiles): the tile of zoom z shows at map zoom
z + 1, so a layer drawn from map zoom ``min_zoom`` has tiles from ``min_zoom - 1``.

Point layers the catalog clusters (teams, stations) are clustered in the tiles too below
map zoom :data:`CLUSTER_BELOW_ZOOM`: the points of each cell of about
:data:`CLUSTER_CELL_PX` pixels become one point at their centroid, with ``cluster_count``
and the cell's most common kind (56,000 teams at a city-wide zoom are a few thousand).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from geomap import models
from geomap.errors import InvalidInput
from geomap.layers import Layer

#: Tile extent in MVT units (the common default).
EXTENT = 4096
#: Units drawn beyond each edge, so that strokes and markers at an edge are not cut.
BUFFER = 64
#: Deepest zoom a tile may be asked for.
MAX_ZOOM = 22
#: Media type of a tile.
MEDIA_TYPE = "application/vnd.mapbox-vector-tile"
#: Properties never put in tiles (provenance is the layer's, listed by the catalog).
OMITTED = frozenset({"source"})
#: Pixels a tile is drawn across on the maps...
TILE_PX = 512
#: ... so a tile of zoom z is drawn at map zoom z + ZOOM_OFFSET.
ZOOM_OFFSET = (TILE_PX // 256).bit_length() - 1
#: Clustered point layers are sent as clusters below this map zoom (as
#: Leaflet.markercluster stops clustering at 16 on the maps, with a smaller radius).
CLUSTER_BELOW_ZOOM = 14
#: Side of a cluster cell, in screen pixels.
CLUSTER_CELL_PX = 40
#: Web Mercator's width in metres.
_WORLD_M = 40_075_016.685578488


def check_tile(layer: Layer, z: int, x: int, y: int) -> None:
    """Refuse tiles that do not exist, or that the layer is not drawn at.

    Parameters
    ----------
    layer : Layer
        A catalog layer.
    z, x, y : int
        The tile (XYZ, Web Mercator).

    Raises
    ------
    InvalidInput
        For z outside 0..22, x or y outside 0..2^z-1, or z below the layer's ``min_zoom``
        (a tile of a whole province would hold every feature: the maps never ask for it).
    """
    if not 0 <= z <= MAX_ZOOM:
        raise InvalidInput(f"zoom {z} is outside 0..{MAX_ZOOM}", field="z")
    size = 2**z
    if not (0 <= x < size and 0 <= y < size):
        raise InvalidInput(f"tile {z}/{x}/{y} does not exist: x and y go from 0 to {size - 1}",
                           field="x" if not 0 <= x < size else "y")  # fmt: skip
    if z < first_zoom(layer):
        raise InvalidInput(
            f"layer {layer.id} is drawn from zoom {layer.min_zoom} (its min_zoom), with "
            f"{TILE_PX}-pixel tiles from zoom {first_zoom(layer)}: no tiles at zoom {z}",
            field="z",
        )


def first_zoom(layer: Layer) -> int:
    """The first tile zoom of a layer: its ``min_zoom``, one less for 512-pixel tiles.

    Parameters
    ----------
    layer : Layer
        A catalog layer.

    Returns
    -------
    int
        A tile zoom, at least 0.
    """
    return max(0, layer.min_zoom - ZOOM_OFFSET)


def tile_properties(layer: Layer) -> tuple[str, ...]:
    """The columns a tile of ``layer`` carries.

    Its public properties but ``source``, and its id column when the id cannot be the MVT
    feature id (not an integer).

    Parameters
    ----------
    layer : Layer
        A catalog layer.

    Returns
    -------
    tuple of str
        Column names.
    """
    columns = [c for c in layer.public_properties(False) if c not in OMITTED]
    if not _integer_id(layer) and layer.id_column not in columns:
        columns.insert(0, layer.id_column)
    return tuple(columns)


def _integer_id(layer: Layer) -> bool:
    column = models.metadata.tables[layer.table].columns[layer.id_column]
    return isinstance(column.type, sa.Integer)


def _select(layer: Layer, column: str) -> str:
    kind = models.metadata.tables[layer.table].columns[column].type
    if isinstance(kind, sa.ARRAY):
        return f"array_to_string({column}, ',') AS {column}"
    if isinstance(kind, sa.DateTime | sa.Date):
        return f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS {column}"
    return column


def tile_sql(layer: Layer) -> str:
    """The SQL of a tile of ``layer``.

    Parameters
    ----------
    layer : Layer
        A catalog layer.

    Returns
    -------
    str
        A statement with the parameters ``z``, ``x``, ``y`` (the tile), ``margin``, ``name``
        and the layer's fixed filters ``where_<i>``.
    """
    where = ["t.geom && b.lonlat"]
    for i, column in enumerate(sorted(layer.where)):
        where.append(layer.where_sql(i, column, "t."))
    columns = "".join(f", {_select(layer, c)}" for c in tile_properties(layer))
    feature_id = f", {layer.id_column} AS mvt_id" if _integer_id(layer) else ""
    id_argument = ", 'mvt_id'" if feature_id else ""
    return f"""
        WITH b AS (
            SELECT ST_TileEnvelope(:z, :x, :y) AS merc,
                   ST_Transform(ST_TileEnvelope(:z, :x, :y, margin => :margin), 4326) AS lonlat
        ),
        features AS (
            SELECT ST_AsMVTGeom(ST_Transform(t.geom, 3857), b.merc, {EXTENT}, {BUFFER}, true)
                       AS geom{feature_id}{columns}
            FROM {layer.table} t, b
            WHERE {" AND ".join(where)}
        )
        SELECT ST_AsMVT(features, :name, {EXTENT}, 'geom'{id_argument})
        FROM features WHERE geom IS NOT NULL
    """


def clustered(layer: Layer, z: int) -> bool:
    """Whether tiles of ``layer`` at tile zoom ``z`` hold clusters rather than points.

    Parameters
    ----------
    layer : Layer
        A catalog layer.
    z : int
        The tile zoom.

    Returns
    -------
    bool
        True for a clustered point layer below ``CLUSTER_BELOW_ZOOM`` (in 256-pixel zooms).
    """
    return layer.geometry == "point" and layer.cluster and z + ZOOM_OFFSET < CLUSTER_BELOW_ZOOM


def cluster_sql(layer: Layer) -> str:
    """The SQL of a clustered tile (parameters as :func:`tile_sql`, and ``cell``).

    Parameters
    ----------
    layer : Layer
        A clustered point layer.

    Returns
    -------
    str
        The statement; ``cell`` is the clustering cell's size in Web Mercator metres.
    """
    where = ["t.geom && b.lonlat"]
    for i, column in enumerate(sorted(layer.where)):
        where.append(layer.where_sql(i, column, "t."))
    kind = f"mode() WITHIN GROUP (ORDER BY {layer.kind_column})" if layer.kind_column else "NULL"
    kind_name = layer.kind_column or "kind"
    return f"""
        WITH b AS (
            SELECT ST_TileEnvelope(:z, :x, :y) AS merc,
                   ST_Transform(ST_TileEnvelope(:z, :x, :y, margin => :margin), 4326) AS lonlat
        ),
        cells AS (
            SELECT ST_Centroid(ST_Collect(p.g)) AS g, count(*) AS n, {kind} AS kind
            FROM (SELECT ST_Transform(t.geom, 3857) AS g, t.*
                  FROM {layer.table} t, b WHERE {" AND ".join(where)}) p
            GROUP BY ST_SnapToGrid(p.g, :cell)
        ),
        features AS (
            SELECT ST_AsMVTGeom(c.g, b.merc, {EXTENT}, {BUFFER}, true) AS geom,
                   row_number() OVER () AS cluster_id, c.n AS cluster_count,
                   c.kind AS {kind_name}
            FROM cells c, b
        )
        SELECT ST_AsMVT(features, :name, {EXTENT}, 'geom', 'cluster_id')
        FROM features WHERE geom IS NOT NULL
    """


def layer_tile(session: Session, layer: Layer, z: int, x: int, y: int) -> bytes:
    """One vector tile of a catalog layer (MVT bytes; empty when no feature touches it).

    Parameters
    ----------
    session : Session
        Its ``statement_timeout`` bounds the query.
    layer : Layer
        From the catalog; the tile's MVT layer has the same name.
    z, x, y : int
        The tile (XYZ, Web Mercator), checked by :func:`check_tile`.

    Returns
    -------
    bytes
        The tile, possibly empty.

    Raises
    ------
    InvalidInput
        As :func:`check_tile`.
    """
    check_tile(layer, z, x, y)
    params = {"z": z, "x": x, "y": y, "margin": BUFFER / EXTENT, "name": layer.id}
    for i, column in enumerate(sorted(layer.where)):
        params[f"where_{i}"] = layer.where[column]
    sql = tile_sql(layer)
    if clustered(layer, z):
        sql = cluster_sql(layer)
        params["cell"] = _WORLD_M / 2**z / TILE_PX * CLUSTER_CELL_PX
    data = session.execute(sa.text(sql), params).scalar()
    return bytes(data or b"")
