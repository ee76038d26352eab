"""Per-grid coverage: how much of each grid a set of providers reaches.

The rows every coverage answer is rolled up from (:func:`geomap.analysis.coverage.coverage`):
for each grid its population, area, area within reach and the distance from a point inside
it to the nearest provider. Reach is either straight-line metres (``by="distance"``: a
disc of ``within_m`` around each provider, cut exactly in a metric CRS) or network travel
time (``by="walk"`` / ``"drive"``: the streets reached from the providers within
``within_min``, counted on the grids' sample points, see :mod:`geomap.routing.sample`);
:func:`database_rows` computes the travel-time rows in PostGIS and pgRouting instead, the
reference for tests and benchmarks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
import sqlalchemy as sa
from sqlalchemy.orm import Session

from geomap import network, routing
from geomap.analysis import reach
from geomap.params import metric_srid
from geomap.routing import index

#: Network coverage keeps each place's reach (geomap.routing.index) for sets of at most
#: this many places walking at most this long; beyond, one search from all is cheaper
#: than a search and a stored set per place (6,939 stations: 7 s against 0.1 s). The
#: largest venue set planners ask about by kind, the community centres (one per
#: community: 2,263 in Nanchang), stays below it: a fresh process answers from the kept
#: sets instead of sampling the grids and loading the graph first (4.3 s).
KEPT_REACH_PLACES = 3_000
KEPT_REACH_S = 30 * 60.0
#: Providers farther than this from any usable road node cannot start on the network.
MAX_SNAP_M = 1_000.0

# Where providers come from, by name: a closed list, never user text. "red" is the red
# culture venues of the 15-minute circles: every red culture site and every red station.
PROVIDER_SOURCES = {
    "stations": "stations",
    "teams": "teams",
    "sites": "sites",
    "red": "(SELECT id, kind, geom FROM sites "
    "UNION ALL SELECT id, kind, geom FROM stations WHERE kind = 'red_station')",
}
#: An empty GEOMETRYCOLLECTION as WKB: the reach of no provider.
EMPTY_WKB = bytes.fromhex("010700000000000000")
_PROVIDER_FILTER = "(CAST(:kinds AS text[]) IS NULL OR p.kind = ANY(CAST(:kinds AS text[])))"

# Each grid's nearest provider, from the grid's inner point (a KNN on the provider
# table's geography index). Shared by both coverage queries below.
NEAREST_PROVIDER_SQL = """
LEFT JOIN LATERAL (
    SELECT ST_Distance(p.geom::geography, gm.inner_pt) AS distance_m
    FROM {table} p
    WHERE {filter}
    ORDER BY p.geom::geography <-> gm.inner_pt
    LIMIT 1
) AS near ON true"""

# By distance, the inputs: grids and providers in a metric CRS (the computation is done
# with shapely's vectorised operations, see _distance_rows).
GRIDS_METRIC_SQL = sa.text(
    """
    SELECT code, name, community_code, population,
           ST_AsBinary(ST_Transform(geom, :srid)) AS shape,
           ST_AsBinary(ST_Transform(ST_PointOnSurface(geom), :srid)) AS inner_point
    FROM grids ORDER BY code
    """
)
PROVIDER_POINTS_SQL = """
SELECT ST_X(p.geom), ST_Y(p.geom) FROM {table} p WHERE {filter}
"""
PROVIDERS_METRIC_SQL = """
SELECT ST_AsBinary(ST_Transform(p.geom, :srid)) FROM {table} p WHERE {filter}
"""

# Network: where each provider starts (its nearest road node usable in the mode).
PROVIDER_NODES_SQL = """
SELECT DISTINCT snap.node_id
FROM {table} p
CROSS JOIN LATERAL (
    SELECT n.id AS node_id, ST_Distance(n.geom::geography, p.geom::geography) AS snap_m
    FROM road_nodes n
    WHERE EXISTS (SELECT 1 FROM road_edges e
                  WHERE (e.source_node = n.id OR e.target_node = n.id)
                    AND (e.{cost} >= 0 OR e.{reverse_cost} >= 0))
    ORDER BY n.geom::geography <-> p.geom::geography
    LIMIT 1
) AS snap
WHERE {filter} AND snap.snap_m <= :max_snap_m
"""

# A reached area (network reach, or the union of circles): cut it into small pieces, then
# sum per grid the area of its intersection with the pieces (they do not overlap, so the
# sum is exact).
AREA_SQL = """
WITH pieces AS MATERIALIZED (
    SELECT ST_Subdivide(ST_GeomFromWKB(:reach_wkb, 4326), 128) AS g
)
SELECT g.code, g.name, g.community_code, g.population,
       ST_Area(gm.g) AS area_m2,
       -- Cut in EPSG:4326, where both sides are valid (reprojected pieces may not be),
       -- and measure the cut in metres.
       coalesce((SELECT sum(ST_Area(ST_Transform(ST_Intersection(g.geom, pc.g), :srid)))
                 FROM pieces pc WHERE ST_Intersects(g.geom, pc.g)), 0) AS covered_m2,
       near.distance_m AS nearest_m
FROM grids g
CROSS JOIN LATERAL (SELECT ST_Transform(g.geom, :srid) AS g,
                           ST_PointOnSurface(g.geom)::geography AS inner_pt) AS gm
{nearest}
"""

CENTRE_SQL = sa.text(
    "SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_Centroid(ST_Extent(geom)) AS c FROM grids) s"
)


@dataclass(frozen=True)
class Query:
    """The normalised inputs of a coverage query (echoed in answers).

    Parameters
    ----------
    of : str
        The providers (a key of :data:`PROVIDER_SOURCES`).
    kinds : list of str or None
        Only providers of these kinds; all when None.
    by : {"distance", "walk", "drive"}
        The measure: a straight-line radius, or travel time on the network.
    within_m : float or None
        The radius, metres (``by="distance"``).
    within_min : float or None
        The travel time, minutes (the travel modes).
    level : {"grid", "community", "township", "district"}
        The units the answer rolls up to.
    order : {"code", "gaps"}
        The units' order (``gaps``: most residents outside first).
    extra : dict
        Not read by the computation; kept for callers.
    """

    of: str
    kinds: list[str] | None
    by: str
    within_m: float | None
    within_min: float | None
    level: str
    order: str
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The query as answers echo it.

        Returns
        -------
        dict
            of, kind, by, within_m, within_min, level, order.
        """
        return {
            "of": self.of,
            "kind": self.kinds,
            "by": self.by,
            "within_m": self.within_m,
            "within_min": self.within_min,
            "level": self.level,
            "order": self.order,
        }


def _provider_sql(providers: str) -> dict[str, str]:
    """The SQL fragments naming a provider source, for the queries' placeholders."""
    table, where = PROVIDER_SOURCES[providers], _PROVIDER_FILTER
    nearest = NEAREST_PROVIDER_SQL.format(table=table, filter=where)
    return {"table": table, "filter": where, "nearest": nearest}


def _distance_rows(
    session: Session, query: Query, srid: int, table_filter: dict[str, str]
) -> list[dict]:
    """Per-grid rows for straight-line reach, computed in metres in ``srid``.

    One disc per provider (buffered once, not once per grid); an STRtree pairs grids with
    the discs that touch them; a grid held whole by one disc is covered without a union;
    only the partly covered grids are cut by the union of their discs. The nearest
    provider comes from an STRtree of the provider points. Distances are planar in the
    UTM zone (within 0.1% of geodesic metres over a city).
    """
    grids = session.execute(GRIDS_METRIC_SQL, {"srid": srid}).mappings().all()
    providers = session.execute(
        sa.text(PROVIDERS_METRIC_SQL.format(**table_filter)),
        {"kinds": query.kinds, "srid": srid},
    ).scalars().all()
    shapes = shapely.from_wkb([bytes(g["shape"]) for g in grids])
    areas = shapely.area(shapes)
    covered = np.zeros(len(grids))
    nearest_m = np.full(len(grids), np.nan)
    if providers:
        points = shapely.from_wkb([bytes(p) for p in providers])
        discs = shapely.buffer(points, query.within_m, quad_segs=8)
        grid_idx, disc_idx = shapely.STRtree(discs).query(shapes, predicate="intersects")
        whole = shapely.contains(discs[disc_idx], shapes[grid_idx])
        held = np.zeros(len(grids), dtype=bool)
        held[grid_idx[whole]] = True
        covered[held] = areas[held]
        partial = ~held[grid_idx]
        order = np.argsort(grid_idx[partial], kind="stable")
        part_grids, part_discs = grid_idx[partial][order], disc_idx[partial][order]
        starts = np.flatnonzero(np.r_[True, part_grids[1:] != part_grids[:-1]])
        ends = np.r_[starts[1:], len(part_grids)]
        if not part_grids.size:  # no grid partly covered: all held whole, or none reached
            starts = ends = starts[:0]
        for first, last in zip(starts, ends, strict=True):
            i = part_grids[first]
            reach = shapely.union_all(discs[part_discs[first:last]])
            covered[i] = shapely.area(shapely.intersection(shapes[i], reach))
        inner = shapely.from_wkb([bytes(g["inner_point"]) for g in grids])
        _, nearest_m = shapely.STRtree(points).query_nearest(inner, return_distance=True,
                                                            all_matches=False)  # fmt: skip
    return [
        {
            "code": g["code"],
            "name": g["name"],
            "community_code": g["community_code"],
            "population": g["population"],
            "area_m2": float(areas[i]),
            "covered_m2": float(covered[i]),
            "nearest_m": None if np.isnan(nearest_m[i]) else float(nearest_m[i]),
        }
        for i, g in enumerate(grids)
    ]


def grid_srid(session: Session) -> int | None:
    """A metric CRS (UTM zone) for the gridded area; None when there are no grids.

    Parameters
    ----------
    session : Session
        The database.

    Returns
    -------
    int or None
        The EPSG code of the UTM zone holding the grids' centre.
    """
    lon, lat = session.execute(CENTRE_SQL).one()
    return None if lon is None else metric_srid(lon, lat)


def area_coverage(
    session: Session, area_wkb: bytes | None, *, providers: str, kinds: list[str] | None,
    srid: int,
) -> list[dict]:  # fmt: skip
    """Per-grid rows for a reached area (WKB in EPSG:4326; None: nothing reached).

    Parameters
    ----------
    session : Session
        The database.
    area_wkb : bytes or None
        The reached area, a WKB (Multi)Polygon in EPSG:4326.
    providers : str
        A key of :data:`PROVIDER_SOURCES`: the venues whose nearest one is measured from
        each grid.
    kinds : list of str or None
        Only those providers' kinds.
    srid : int
        The metric CRS areas and distances are computed in.

    Returns
    -------
    list of dict
        code, name, community_code, population, area_m2, covered_m2, nearest_m per grid.
    """
    sql = AREA_SQL.format(**_provider_sql(providers))
    params = {"kinds": kinds, "srid": srid, "reach_wkb": area_wkb or EMPTY_WKB}
    return [dict(row) for row in session.execute(sa.text(sql), params).mappings()]


def grid_coverage(
    session: Session,
    query: Query,
    *,
    walk_speed_kmh: float = 4.5,
    access_m: float = reach.DEFAULT_ACCESS_M,
) -> list[dict]:
    """Per-grid rows: code, name, community_code, population, area_m2, covered_m2, nearest_m.

    By distance: exact discs in a metric CRS (:func:`_distance_rows`). By travel time: the
    in-memory street graph and the grids' sample points (:func:`network_rows`); the same
    rule computed by PostGIS and pgRouting is :func:`database_rows`.

    Parameters
    ----------
    session : Session
        The database.
    query : Query
        The providers and the reach.
    walk_speed_kmh : float, default 4.5
        The walking speed, km/h.
    access_m : float, default reach.DEFAULT_ACCESS_M
        How far from a reached street a point counts as reached, metres.

    Returns
    -------
    list of dict
        One row per grid (areas in m², distances in metres).
    """
    srid = grid_srid(session)
    if srid is None:
        return []
    table_filter = _provider_sql(query.of)
    if query.by == "distance":
        return _distance_rows(session, query, srid, table_filter)
    places = np.asarray(
        session.execute(
            sa.text(PROVIDER_POINTS_SQL.format(**table_filter)), {"kinds": query.kinds}
        ).all(),
        dtype=float,
    ).reshape(-1, 2)
    return network_rows(session, places, mode=query.by, budget_s=query.within_min * 60.0,
                        walk_speed_kmh=walk_speed_kmh, access_m=access_m)  # fmt: skip


def network_rows(
    session: Session,
    places: np.ndarray,
    *,
    mode: str,
    budget_s: float,
    walk_speed_kmh: float,
    access_m: float,
) -> list[dict]:
    """Per-grid rows for the reach of ``places`` within ``budget_s``.

    A place farther than :data:`MAX_SNAP_M` from a street usable in ``mode`` reaches
    nothing; the others start along their nearest edge with the access leg spent. A grid's
    covered share is the share of its sample points within ``access_m`` of a reached
    street (see :mod:`geomap.routing.sample`); ``nearest_m`` is the straight line from a
    point inside the grid to the nearest place.

    Parameters
    ----------
    session : Session
        The database (graph and samples, through the routing cache).
    places : numpy.ndarray
        The providers' points, shape (n, 2), lon/lat in WGS 84.
    mode : {"walk", "drive"}
        The travel mode.
    budget_s : float
        The travel time, seconds.
    walk_speed_kmh : float
        The walking speed, km/h.
    access_m : float
        The width around reached streets, metres.

    Returns
    -------
    list of dict
        One row per grid, as :func:`grid_coverage`.
    """
    if mode == "walk" and places.shape[0] <= KEPT_REACH_PLACES and budget_s <= KEPT_REACH_S:
        # Venue sets (red venues, station kinds): the reach sets kept per place (in the
        # process and in `venue_reach`) answer with a union and a count, even in a fresh
        # process; the same points as one search from every place (a test).
        return index.grid_rows(
            session, places, index.Reach(mode, budget_s, walk_speed_kmh, access_m)
        )
    # Thousands of places, or long reaches (a 15-minute drive covers a district): one
    # search from every place at once, whose cost does not grow with the places.
    return search_rows(session, places, mode=mode, budget_s=budget_s,
                       walk_speed_kmh=walk_speed_kmh, access_m=access_m)  # fmt: skip


def search_rows(
    session: Session,
    places: np.ndarray,
    *,
    mode: str,
    budget_s: float,
    walk_speed_kmh: float,
    access_m: float,
) -> list[dict]:
    """:func:`network_rows` by one search from every place at once (no kept sets).

    Parameters
    ----------
    session : Session
        The database.
    places : numpy.ndarray
        The providers' points, shape (n, 2), lon/lat in WGS 84.
    mode : {"walk", "drive"}
        The travel mode.
    budget_s : float
        The travel time, seconds.
    walk_speed_kmh : float
        The walking speed, km/h.
    access_m : float
        The width around reached streets, metres.

    Returns
    -------
    list of dict
        One row per grid, as :func:`grid_coverage`.
    """
    known = routing.versions(session)
    graph = routing.current_graph(session, known)
    samples = routing.grid_samples(session, graph, access_m, known)
    if places.shape[0] == 0:
        return samples.rows(np.zeros(samples.codes.size))
    _, _, stretches = routing.reach.from_places(
        graph, mode, places[:, 0], places[:, 1], budget_s,
        walk_speed_kmh=walk_speed_kmh, max_snap_m=MAX_SNAP_M,
    )  # fmt: skip
    shares = samples.grid_shares(samples.covered(stretches))
    x, y = graph.to_metric.transform(places[:, 0], places[:, 1])
    tree = shapely.STRtree(shapely.points(x, y))
    _, nearest_m = tree.query_nearest(shapely.points(samples.inner_xy), return_distance=True,
                                      all_matches=False)  # fmt: skip
    return samples.rows(shares, nearest_m)


def database_rows(
    session: Session, query: Query, *, walk_speed_kmh: float = 4.5
) -> list[dict]:
    """The travel-time rows computed in the database: pgRouting and PostGIS.

    pgRouting from each provider's nearest node, PostGIS buffers and intersections (the
    reference for tests and benchmarks; seconds on a city where :func:`network_rows` takes
    milliseconds).

    Parameters
    ----------
    session : Session
        The database.
    query : Query
        A travel-time query.
    walk_speed_kmh : float, default 4.5
        The walking speed, km/h.

    Returns
    -------
    list of dict
        One row per grid, as :func:`grid_coverage`.
    """
    srid = grid_srid(session)
    if srid is None:
        return []
    table_filter = _provider_sql(query.of)
    cost, reverse_cost = network.cost_columns(query.by)
    nodes = session.execute(
        sa.text(PROVIDER_NODES_SQL.format(cost=cost, reverse_cost=reverse_cost, **table_filter)),
        {"kinds": query.kinds, "max_snap_m": MAX_SNAP_M},
    ).scalars()
    area = reach.reach_polygon(
        session,
        list(nodes),
        query.within_min * 60.0,
        mode=query.by,
        walk_speed_kmh=walk_speed_kmh,
        srid=srid,
    )
    return area_coverage(session, area.wkb, providers=query.of, kinds=query.kinds, srid=srid)
