"""What the road network reaches from some start nodes within a time budget, as an area.

One function serves both the 15-minute circles (one start: a venue) and network coverage
(many starts: every provider; the union of their circles is the reach of all starts at
once, because a place is within the budget of some start exactly when its smallest cost
from any start is).

The area is built from the reached street segments, not from a hull or a circle:
pgRouting's ``pgr_drivingDistance`` gives the cost of every node reached within the budget;
an edge is kept whole when both ends together cover it, in part (``ST_LineSubstring``)
when the budget runs out along it; the kept segments are buffered by an access width
(people reach doors and courtyards some tens of metres off the street). So the area does
not leap a river between bridges nor spread where there are no streets.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from geomap import network

DEFAULT_ACCESS_M = 50.0

# :edges is the pgRouting edge SQL (a string argument, built by geomap.network from
# validated numbers only); :starts the start node ids; :budget the budget in the cost unit
# of the edge SQL (seconds). The same cost expressions price the partial edges.
REACH_SQL = """
WITH dd AS (
    SELECT node, agg_cost
    FROM pgr_drivingDistance(CAST(:edges AS text), CAST(:starts AS bigint[]),
                             CAST(:budget AS float8), directed := true, equicost := true)
),
reached AS (SELECT node, min(agg_cost) AS cost_s FROM dd GROUP BY node),
-- The edges at reached nodes, found through the node indexes (not a scan of the table):
-- those leaving a reached node, and those arriving at one whose start was not reached.
touching AS (
    SELECT e.* FROM reached r JOIN road_edges e ON e.source_node = r.node
    UNION ALL
    SELECT e.* FROM reached r JOIN road_edges e ON e.target_node = r.node
    WHERE NOT EXISTS (SELECT 1 FROM reached r2 WHERE r2.node = e.source_node)
),
edges AS (
    SELECT e.id, e.geom,
           {cost} AS cost_s, {reverse_cost} AS reverse_cost_s,
           rs.cost_s AS from_cost_s, rt.cost_s AS to_cost_s
    FROM touching e
    LEFT JOIN reached rs ON rs.node = e.source_node
    LEFT JOIN reached rt ON rt.node = e.target_node
),
fractions AS (
    -- Share of each edge walked from its source end, and from its target end.
    SELECT id, geom,
           CASE WHEN from_cost_s IS NULL OR cost_s < 0 THEN 0
                WHEN cost_s = 0 THEN 1
                ELSE least(1.0, (:budget - from_cost_s) / cost_s) END AS f_from,
           CASE WHEN to_cost_s IS NULL OR reverse_cost_s < 0 THEN 0
                WHEN reverse_cost_s = 0 THEN 1
                ELSE least(1.0, (:budget - to_cost_s) / reverse_cost_s) END AS f_to
    FROM edges
),
segments AS (
    SELECT id, geom AS g, 1.0 AS share FROM fractions WHERE f_from + f_to >= 1
    UNION ALL
    SELECT id, ST_LineSubstring(geom, 0, f_from), f_from
    FROM fractions WHERE f_from + f_to < 1 AND f_from > 0
    UNION ALL
    SELECT id, ST_LineSubstring(geom, 1 - f_to, 1), f_to
    FROM fractions WHERE f_from + f_to < 1 AND f_to > 0
)
"""

REACH_POLYGON_SQL = (
    REACH_SQL
    + """
-- Each segment buffered, then the union: the same polygon as one buffer of them all, but
-- 13-87x faster (GEOS nodes small pieces instead of one huge one). Reduced to a 1e-6
-- degree grid (~0.1 m), the precision GeoJSON carries, with a valid result guaranteed:
-- rounding at output time could otherwise make a polygon invalid.
SELECT ST_AsBinary(ST_Multi(ST_CollectionExtract(ST_ReducePrecision(ST_Transform(
           ST_Union(ST_Buffer(ST_Transform(g, CAST(:srid AS int)),
                              CAST(:access_m AS float8), 'quad_segs=8')),
           4326), 0.000001), 3))) AS geom,
       count(DISTINCT id) AS edges
FROM segments
"""
)

REACHED_EDGES_SQL = REACH_SQL + "SELECT id, share FROM segments ORDER BY id"


@dataclass(frozen=True)
class Reach:
    """The area reached (WKB MultiPolygon in EPSG:4326, None when nothing is reached).

    Parameters
    ----------
    wkb : bytes or None
        The polygon.
    edges : int
        How many edges were reached, wholly or in part.
    """

    wkb: bytes | None
    edges: int


def _sql(template: str, mode: str, walk_speed_kmh: float) -> sa.TextClause:
    cost, reverse_cost = network.cost_expressions(mode, walk_speed_kmh=walk_speed_kmh)
    return sa.text(template.format(cost=cost, reverse_cost=reverse_cost))


def reach_polygon(
    session: Session,
    start_nodes: list[int],
    budget_s: float,
    *,
    mode: str = "walk",
    walk_speed_kmh: float = 4.5,
    access_m: float = DEFAULT_ACCESS_M,
    srid: int = 32650,
    bbox: tuple[float, float, float, float] | None = None,
) -> Reach:
    """The area within ``budget_s`` seconds of any of ``start_nodes`` on the network.

    Parameters
    ----------
    session : Session
        The database (the routing tables, searched by pgRouting).
    start_nodes : list of int
        Road node ids to start from.
    budget_s : float
        Time budget in seconds.
    mode : {"walk", "drive"}
        The travel mode.
    walk_speed_kmh : float, default 4.5
        The walking speed, km/h.
    access_m : float
        Buffer around the reached segments, in metres.
    srid : int
        Metric CRS in which the buffer is drawn (e.g. UTM zone of the area).
    bbox : tuple, optional
        Limit the edges read to this box (lon/lat); must contain every route within the
        budget (see :func:`geomap.network.bbox_around`).

    Returns
    -------
    Reach
        The area and the number of edges reached.
    """
    if not start_nodes:
        return Reach(None, 0)
    edges = network.edges_sql(mode, bbox=bbox, walk_speed_kmh=walk_speed_kmh)
    row = session.execute(
        _sql(REACH_POLYGON_SQL, mode, walk_speed_kmh),
        {"edges": edges, "starts": list(start_nodes), "budget": float(budget_s),
         "srid": int(srid), "access_m": float(access_m)},
    ).one()  # fmt: skip
    return Reach(bytes(row.geom) if row.geom is not None else None, int(row.edges))


def reached_edges(
    session: Session,
    start_nodes: list[int],
    budget_s: float,
    *,
    mode: str = "walk",
    walk_speed_kmh: float = 4.5,
    bbox: tuple[float, float, float, float] | None = None,
) -> dict[int, float]:
    """Edge id → share of its length reached (1.0 whole, less when the budget ends on it).

    Parameters
    ----------
    session : Session
        The database (the routing tables, searched by pgRouting).
    start_nodes : list of int
        Road node ids to start from.
    budget_s : float
        Time budget in seconds.
    mode : {"walk", "drive"}
        The travel mode.
    walk_speed_kmh : float, default 4.5
        The walking speed, km/h.
    bbox : tuple, optional
        Limit the edges read to this box (lon/lat).

    Returns
    -------
    dict of int to float
        ``road_edges.id`` → share, 0 to 1.
    """
    if not start_nodes:
        return {}
    edges = network.edges_sql(mode, bbox=bbox, walk_speed_kmh=walk_speed_kmh)
    rows = session.execute(
        _sql(REACHED_EDGES_SQL, mode, walk_speed_kmh),
        {"edges": edges, "starts": list(start_nodes), "budget": float(budget_s)},
    ).all()
    shares: dict[int, float] = {}
    for edge_id, share in rows:
        shares[edge_id] = min(1.0, shares.get(edge_id, 0.0) + float(share))
    return shares
