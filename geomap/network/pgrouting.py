"""pgRouting SQL: the edge query for a mode, one-to-many costs and routes, in the database.

:func:`edges_sql` builds the edge query pgRouting reads (optionally in a box from
:func:`bbox_around`/:func:`bbox_of`, optionally reversed); :func:`travel_times`,
:func:`costs_from` and :func:`costs_between_points` run ``pgr_dijkstraCost`` /
``pgr_withPointsCost`` with it; :func:`route_geojson` draws one route.
:func:`cost_expressions` gives the analysis SQL the same costs and walking-speed scaling.
This is the reference the in-memory router (:mod:`geomap.routing`) is tested against.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from geomap.errors import InvalidInput
from geomap.modes import BASE_WALK_KMH, cost_columns, walk_factor
from geomap.params import check_finite, check_lonlat

#: What runs the queries: a Core connection (imports, tests) or an ORM session (the API).
Executor = Connection | Session


def _check_bbox(bbox: Sequence[Any]) -> tuple[float, float, float, float]:
    if bbox is None or isinstance(bbox, str) or len(bbox) != 4:
        raise InvalidInput("bbox must be (minx, miny, maxx, maxy)", field="bbox")
    minx, miny, maxx, maxy = (check_finite(v, "bbox") for v in bbox)
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise InvalidInput(
            f"bbox {bbox!r} is not (minx, miny, maxx, maxy) in lon/lat", field="bbox"
        )
    return minx, miny, maxx, maxy


def bbox_of(
    points: Iterable[tuple[float, float]], margin_m: float
) -> tuple[float, float, float, float]:
    """The lon/lat box holding ``points``, grown by ``margin_m`` metres on every side.

    A route between two points rarely strays far outside their box; the margin is the
    detour allowed (a route needing a longer one is not found in a box this size).

    Parameters
    ----------
    points : iterable of (lon, lat)
    margin_m : float

    Returns
    -------
    (minx, miny, maxx, maxy) : tuple of float
    """
    pts = [check_lonlat(lon, lat) for lon, lat in points]
    if not pts:
        raise InvalidInput("a box needs at least one point", field="points")
    margin = check_finite(margin_m, "margin_m")
    if margin < 0:
        raise InvalidInput("margin_m must be >= 0", field="margin_m")
    lons, lats = zip(*pts, strict=True)
    dlat = margin / 111_320.0
    # A degree of longitude shrinks with cos(latitude): use the box's widest latitude, so
    # the margin is at least margin_m everywhere in the box.
    widest = min(89.0, max(abs(min(lats)), abs(max(lats))) + dlat)
    dlon = margin / (111_320.0 * math.cos(math.radians(widest)))
    return (
        max(-180.0, min(lons) - dlon),
        max(-90.0, min(lats) - dlat),
        min(180.0, max(lons) + dlon),
        min(90.0, max(lats) + dlat),
    )


def bbox_around(lon: float, lat: float, radius_m: float) -> tuple[float, float, float, float]:
    """The lon/lat box holding every point within ``radius_m`` metres of (lon, lat).

    Every route whose cost is at most T stays within ``T * fastest speed`` of its start,
    so a box of that radius loses no such route. See :func:`bbox_of` for several points.
    """
    return bbox_of([(lon, lat)], radius_m)


def cost_expressions(mode: str, *, walk_speed_kmh: float = BASE_WALK_KMH) -> tuple[str, str]:
    """SQL expressions of the forward and reverse costs (seconds) of a road_edges row.

    Walking costs are scaled from the stored 4.5 km/h to ``walk_speed_kmh``; a negative
    (barred) cost stays negative. The text holds only constant column names and a float
    this function computed, so it may be formatted into SQL (see :func:`edges_sql`).

    Returns
    -------
    (cost, reverse_cost) : tuple of str
        E.g. ``("walk_s * 1.5", "walk_reverse_s * 1.5")``; unqualified column names.
    """
    cost, reverse = cost_columns(mode)
    if mode != "walk":
        return cost, reverse
    factor = walk_factor(walk_speed_kmh)
    return f"{cost} * {factor!r}", f"{reverse} * {factor!r}"


def edges_sql(
    mode: str,
    bbox: Sequence[float] | None = None,
    walk_speed_kmh: float = BASE_WALK_KMH,
    *,
    reverse: bool = False,
) -> str:
    """The edge query pgRouting reads for ``mode``.

    pgRouting takes its edge query as SQL text and runs it itself, so the query cannot
    carry bound parameters. Only two kinds of value go into the text: column names from
    :data:`~geomap.modes.MODES` (a constant) and numbers this function has converted with
    ``float()`` and checked to be finite. ``repr`` of a finite float is only digits, ``.``,
    ``e`` and signs, so nothing a caller passes can add SQL. The text itself is then given
    to pgRouting as a bound parameter (see :func:`costs_from`).

    Parameters
    ----------
    mode : {"walk", "drive"}
    bbox : (minx, miny, maxx, maxy), optional
        Read only edges whose box meets this lon/lat box (index-assisted): 9-16 ms instead
        of 90-160 ms on an 80,000-edge network. See :func:`bbox_around`, :func:`bbox_of`.
    walk_speed_kmh : float
        Walking speed; stored walking costs (at 4.5 km/h) are scaled by 4.5 / speed.
    reverse : bool
        The reversed graph (every arc turned around): one search from a node on it gives
        every node's cost *to* that node (many-to-one), e.g. teams travelling to a point.

    Returns
    -------
    str
        ``SELECT id, source, target, cost, reverse_cost FROM road_edges WHERE ...``

    Raises
    ------
    InvalidInput
        Unknown mode (field ``by``), bad bbox or walking speed.
    """
    cost_col, reverse_col = cost_columns(mode)
    cost, reverse_cost = cost_expressions(mode, walk_speed_kmh=walk_speed_kmh)
    # Swapping the ends while keeping both costs turns every arc around.
    ends = (
        "target_node AS source, source_node AS target"
        if reverse
        else "source_node AS source, target_node AS target"
    )
    # Edges unusable both ways are skipped here: pgRouting would ignore them anyway.
    where = f"({cost_col} >= 0 OR {reverse_col} >= 0)"
    if bbox is not None:
        box = ", ".join(repr(v) for v in _check_bbox(bbox))
        where += f" AND geom && ST_MakeEnvelope({box}, 4326)"
    return (
        f"SELECT id, {ends}, {cost} AS cost, {reverse_cost} AS reverse_cost "
        f"FROM road_edges WHERE {where}"
    )


def _node_id(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise InvalidInput(f"{field} must be a node id (integer), got {value!r}", field=field)
    return int(value)


def costs_from(
    conn: Executor, edges: str, from_node: int, to_nodes: Iterable[int]
) -> dict[int, float]:
    """Least costs from one node to many on the graph of ``edges`` (``pgr_dijkstraCost``).

    Parameters
    ----------
    conn : Connection or Session
    edges : str
        An edge query from :func:`edges_sql` (never text from a user: pgRouting runs it).
    from_node : int
    to_nodes : iterable of int

    Returns
    -------
    dict
        ``{node_id: cost}`` for every reachable target; unreachable targets (and ids not in
        the graph) are absent. ``from_node`` itself, when asked for, costs 0.
    """
    start = _node_id(from_node, "from_node")
    targets = sorted({_node_id(n, "to_nodes") for n in to_nodes})
    if not targets:
        return {}
    result = conn.execute(
        sa.text(
            "SELECT end_vid, agg_cost FROM pgr_dijkstraCost("
            "CAST(:edges AS text), CAST(:start AS bigint), CAST(:targets AS bigint[]), "
            "directed => true)"
        ),
        {"edges": edges, "start": start, "targets": targets},
    )
    costs = {int(node): float(cost) for node, cost in result}
    if start in targets:
        # pgRouting returns no row for start == end; the cost there is zero.
        costs[start] = 0.0
    return costs


def points_sql(points: Sequence[tuple[int, float]]) -> str:
    """The points query of ``pgr_withPoints*``: one row per (edge id, fraction), pid 1..n.

    Like :func:`edges_sql`, the text holds only integers and finite floats this function
    has converted itself, so nothing a caller passes can add SQL.
    """
    rows = []
    for pid, (edge, fraction) in enumerate(points, start=1):
        f = check_finite(fraction, "fraction")
        if not 0.0 <= f <= 1.0:
            raise InvalidInput(f"fraction {f!r} is not in [0, 1]", field="fraction")
        rows.append(f"({pid}, {_node_id(int(edge), 'edge_id')}, {f!r})")
    if not rows:
        raise InvalidInput("no points", field="points")
    return (
        "SELECT pid, edge_id, fraction FROM (VALUES "
        + ", ".join(rows)
        + ") AS p(pid, edge_id, fraction)"
    )


def costs_between_points(
    conn: Executor,
    mode: str,
    points: Sequence[tuple[int, float]],
    start: int,
    *,
    reverse: bool = False,
    walk_speed_kmh: float = BASE_WALK_KMH,
) -> dict[int, float]:
    """Least costs (seconds) from point ``start`` to every other point (``reverse``: from
    every point to ``start``), with ``pgr_withPointsCost``: positions along edges, as the
    in-memory engine (:mod:`geomap.routing`) takes them. The in-database reference.

    Parameters
    ----------
    points : sequence of (edge id, fraction)
        Positions along ``road_edges`` (fraction from the edge's first vertex).
    start : int
        Index into ``points``.

    Returns
    -------
    dict
        ``{point index: seconds}`` for every reachable other point.
    """
    edges = edges_sql(mode, walk_speed_kmh=walk_speed_kmh)
    others = [-(i + 1) for i in range(len(points)) if i != start]
    if not others:
        return {}
    if reverse:
        sql = (
            "SELECT start_pid AS pid, agg_cost FROM pgr_withPointsCost("
            "CAST(:edges AS text), CAST(:points AS text), CAST(:others AS bigint[]), "
            "CAST(:start AS bigint), directed => true, driving_side => 'b')"
        )
    else:
        sql = (
            "SELECT end_pid AS pid, agg_cost FROM pgr_withPointsCost("
            "CAST(:edges AS text), CAST(:points AS text), CAST(:start AS bigint), "
            "CAST(:others AS bigint[]), directed => true, driving_side => 'b')"
        )
    rows = conn.execute(
        sa.text(sql),
        {"edges": edges, "points": points_sql(points), "start": -(start + 1), "others": others},
    ).all()
    return {-int(pid) - 1: float(cost) for pid, cost in rows}


def travel_times(
    conn: Executor,
    from_node: int,
    to_nodes: Iterable[int],
    mode: str,
    *,
    bbox: Sequence[float] | None = None,
    walk_speed_kmh: float = BASE_WALK_KMH,
) -> dict[int, float]:
    """Shortest travel times (seconds) from one node to many, on the stored network.

    One ``pgr_dijkstraCost`` call (one-to-many, directed: one-way streets are respected).

    Parameters
    ----------
    conn : Connection or Session
    from_node : int
        A ``road_nodes.id`` (e.g. ``snap(...).node_id``).
    to_nodes : iterable of int
        Target node ids.
    mode : {"walk", "drive"}
    bbox : (minx, miny, maxx, maxy), optional
        Restrict the graph to this box (faster; routes leaving it are not found).
    walk_speed_kmh : float
        Walking speed for mode "walk".

    Returns
    -------
    dict
        ``{node_id: seconds}`` for every reachable target; unreachable targets (and ids not
        in the network) are absent. ``from_node`` itself, when asked for, is 0.
    """
    sql = edges_sql(mode, bbox=bbox, walk_speed_kmh=walk_speed_kmh)
    return costs_from(conn, sql, from_node, to_nodes)


def route_geojson(
    conn: Executor,
    from_node: int,
    to_node: int,
    mode: str,
    *,
    walk_speed_kmh: float = BASE_WALK_KMH,
    bbox: Sequence[float] | None = None,
) -> str | None:
    """The fastest route between two nodes as a GeoJSON LineString (lon/lat, 7 decimals).

    Edges are oriented in the direction of travel and joined in order, so the line runs
    from ``from_node`` to ``to_node``. None when there is no route (or the nodes are one).
    """
    sql = edges_sql(mode, bbox=bbox, walk_speed_kmh=walk_speed_kmh)
    return conn.execute(
        sa.text(
            """
            SELECT ST_AsGeoJSON(ST_MakeLine(
                       CASE WHEN p.node = e.source_node THEN e.geom ELSE ST_Reverse(e.geom) END
                       ORDER BY p.seq), 7)
            FROM pgr_dijkstra(CAST(:edges AS text), CAST(:a AS bigint), CAST(:b AS bigint),
                              directed => true) AS p
            JOIN road_edges e ON e.id = p.edge
            """
        ),
        {
            "edges": sql,
            "a": _node_id(from_node, "from_node"),
            "b": _node_id(to_node, "to_node"),
        },
    ).scalar()
