"""15-minute red culture circles (15分钟红色文化圈): walking isochrones of venues.

A circle is the area a resident can reach on foot from a venue within a budget (15 minutes
by default, or a walking distance such as the 800-1,000 m of GB 50180-2018), drawn from
the reached street segments (see :mod:`geomap.analysis.reach`), never as a disc.

Circles are cached in the ``circles`` table, keyed by venue, mode, budget, walking speed
and access width, and built in batch (``geomap circles build``) or on first use. Database
triggers drop a venue's circles when it moves or disappears, and every circle when the
road network changes, so the cache cannot go stale.

Which venues: ``of="red"`` (default) is every red culture site plus every red station;
``of="sites"`` / ``of="stations"`` with ``kinds`` picks any kind of either.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
import shapely.geometry
import sqlalchemy as sa
from pyproj import Geod
from sqlalchemy.orm import Session

from geomap import routing, vocab
from geomap.analysis import coverage, covergrids, reach
from geomap.errors import InvalidInput
from geomap.params import check_choice, check_choices, check_positive
from geomap.routing import index, search, snap

GEOD = Geod(ellps="WGS84")

MODE = "walk"
DEFAULT_MINUTES = 15.0
MAX_MINUTES = 120.0
MAX_DISTANCE_M = 10_000.0
#: A venue farther than this from any walkable street gets no circle (and says so). The
#: walk to the street is taken off the budget, so a remote village keeps a small circle.
MAX_SNAP_M = 1_000.0
VENUE_SETS = ("red", "sites", "stations")
SOURCE = "synthetic: derived by geomap from the road network and venue positions"

# Venues by set; kinds filter within the set. Table names come from this closed text.
VENUES_SQL = sa.text(
    """
    SELECT 'sites' AS venue_table, id AS venue_id, name, kind, geom
    FROM sites
    WHERE CAST(:of AS text) IN ('red', 'sites')
      AND (CAST(:kinds AS text[]) IS NULL OR kind = ANY(CAST(:kinds AS text[])))
    UNION ALL
    SELECT 'stations', id, name, kind, geom
    FROM stations
    WHERE (CAST(:of AS text) = 'red' AND kind = 'red_station')
       OR (CAST(:of AS text) = 'stations'
           AND (CAST(:kinds AS text[]) IS NULL OR kind = ANY(CAST(:kinds AS text[]))))
    """
)

MISSING_SQL = sa.text(
    f"""
    WITH venues AS ({VENUES_SQL.text})
    SELECT v.venue_table, v.venue_id, ST_X(v.geom) AS lon, ST_Y(v.geom) AS lat
    FROM venues v
    WHERE NOT EXISTS (
        SELECT 1 FROM circles c
        WHERE c.venue_table = v.venue_table AND c.venue_id = v.venue_id AND c.mode = :mode
          AND c.budget_s = :budget_s AND c.walk_speed_kmh = :speed AND c.access_m = :access_m)
    ORDER BY v.venue_table, v.venue_id
    """
)

INSERT_SQL = sa.text(
    """
    INSERT INTO circles (venue_table, venue_id, mode, budget_s, walk_speed_kmh, access_m,
                         start_edge, start_fraction, reached_edges, population, area_km2,
                         geom, source)
    VALUES (:venue_table, :venue_id, :mode, :budget_s, :speed, :access_m, :start_edge,
            :start_fraction, :reached_edges, :population,
            coalesce(ST_Area(ST_GeomFromWKB(:wkb, 4326)::geography) / 1e6, 0),
            ST_GeomFromWKB(:wkb, 4326), :source)
    ON CONFLICT (venue_table, venue_id, mode, budget_s, walk_speed_kmh, access_m) DO UPDATE
    SET start_edge = EXCLUDED.start_edge, start_fraction = EXCLUDED.start_fraction,
        reached_edges = EXCLUDED.reached_edges, population = EXCLUDED.population,
        area_km2 = EXCLUDED.area_km2, geom = EXCLUDED.geom, built_at = now()
    """
)

# The circles of the venues, with the residents counted when each was built.
CIRCLES_SQL = sa.text(
    f"""
    WITH venues AS ({VENUES_SQL.text})
    SELECT v.venue_table, v.venue_id, v.name, v.kind, ST_X(v.geom) AS lon, ST_Y(v.geom) AS lat,
           c.area_km2, c.reached_edges, ST_AsGeoJSON(c.geom, 6) AS geometry,
           coalesce(c.population, 0) AS population
    FROM venues v
    JOIN circles c ON c.venue_table = v.venue_table AND c.venue_id = v.venue_id
    WHERE c.mode = :mode AND c.budget_s = :budget_s AND c.walk_speed_kmh = :speed
      AND c.access_m = :access_m
    ORDER BY v.venue_table, v.venue_id
    """
)

WITH_CIRCLE_SQL = sa.text(
    f"""
    WITH venues AS ({VENUES_SQL.text})
    SELECT count(*) FROM venues v
    JOIN circles c ON c.venue_table = v.venue_table AND c.venue_id = v.venue_id
    WHERE c.mode = :mode AND c.budget_s = :budget_s AND c.walk_speed_kmh = :speed
      AND c.access_m = :access_m AND c.geom IS NOT NULL
    """
)
VENUE_POINTS_SQL = sa.text(
    f"WITH venues AS ({VENUES_SQL.text}) SELECT ST_X(geom), ST_Y(geom) FROM venues"
)


@dataclass(frozen=True)
class Query:
    """Which venues, and the budget of their circles.

    Parameters
    ----------
    of : {"red", "sites", "stations"}
        The venue set (``red``: red sites and red stations).
    kinds : list of str or None
        Only venues of these kinds; all when None.
    minutes : float or None
        The walking time, minutes (None when ``distance_m`` is given).
    distance_m : float or None
        The walking distance, metres, walked at ``walk_speed_kmh``.
    walk_speed_kmh : float
        The walking speed, km/h.
    access_m : float
        How far from a reached street a resident counts as inside, metres.
    """

    of: str
    kinds: list[str] | None
    minutes: float | None
    distance_m: float | None
    walk_speed_kmh: float
    access_m: float

    @property
    def budget_s(self) -> float:
        """The budget in seconds of walking (a distance is walked at the walking speed)."""
        if self.minutes is not None:
            return self.minutes * 60.0
        return self.distance_m / (self.walk_speed_kmh / 3.6)

    def params(self) -> dict[str, Any]:
        """The query as the circle cache's key columns (``circles`` rows).

        Returns
        -------
        dict
            of, kinds, mode, budget_s, speed, access_m.
        """
        return {
            "of": self.of,
            "kinds": self.kinds,
            "mode": MODE,
            "budget_s": self.budget_s,
            "speed": self.walk_speed_kmh,
            "access_m": self.access_m,
        }

    def as_dict(self) -> dict[str, Any]:
        """The query as an answer echoes it.

        Returns
        -------
        dict
            of, kind, minutes, distance_m, walk_speed_kmh, access_m.
        """
        return {
            "of": self.of,
            "kind": self.kinds,
            "minutes": self.minutes,
            "distance_m": self.distance_m,
            "walk_speed_kmh": self.walk_speed_kmh,
            "access_m": self.access_m,
        }


def make_query(
    *,
    of: str = "red",
    kinds: list[str] | None = None,
    minutes: Any = None,
    distance_m: Any = None,
    walk_speed_kmh: float = 4.5,
    access_m: float = reach.DEFAULT_ACCESS_M,
) -> Query:
    """Validate the inputs; minutes and distance_m exclude each other (default 15 minutes).

    Parameters
    ----------
    of : {"red", "sites", "stations"}, default "red"
        The venue set.
    kinds : list of str, optional
        Venue kinds allowed in that set.
    minutes : object, optional
        Walking time, minutes, up to ``MAX_MINUTES``.
    distance_m : object, optional
        Walking distance, metres, up to ``MAX_DISTANCE_M``.
    walk_speed_kmh : float, default 4.5
        The walking speed, km/h, up to 20.
    access_m : float, default reach.DEFAULT_ACCESS_M
        The width around reached streets, metres.

    Returns
    -------
    Query
        The checked query.

    Raises
    ------
    InvalidInput
        An unknown set or kind, both a time and a distance, or a value out of range.
    """
    of = check_choice(of, "of", VENUE_SETS)
    if minutes is not None and distance_m is not None:
        raise InvalidInput("give minutes or distance_m, not both", field="minutes")
    allowed = {
        "red": {**vocab.SITE_KINDS, "red_station": None},
        "sites": vocab.SITE_KINDS,
        "stations": vocab.STATION_KINDS,
    }[of]
    return Query(
        of=of,
        kinds=check_choices(kinds, "kind", allowed),
        minutes=(
            check_positive(minutes, "minutes", MAX_MINUTES)
            if minutes is not None
            else (None if distance_m is not None else DEFAULT_MINUTES)
        ),
        distance_m=(
            None if distance_m is None else check_positive(distance_m, "distance_m", MAX_DISTANCE_M)
        ),
        walk_speed_kmh=check_positive(walk_speed_kmh, "walk_speed_kmh", 20.0),
        access_m=float(access_m),
    )


def _engine(
    session: Session, query: Query
) -> tuple[routing.StreetGraph, routing.sample.GridSamples]:
    """The street graph and the grids' sample points the circles are built on."""
    known = routing.versions(session)
    graph = routing.current_graph(session, known)
    return graph, routing.grid_samples(session, graph, query.access_m, known)


def _circle(
    graph: routing.StreetGraph,
    samples: routing.sample.GridSamples,
    query: Query,
    start: routing.EdgePoints,
) -> dict:
    """The circle from one snapped venue (``start``: one point; not found: no circle)."""
    if not start.found[0]:  # no walkable street near the venue: no circle, recorded as such
        return {"start_edge": None, "start_fraction": None, "reached_edges": 0,
                "population": 0.0, "wkb": None}  # fmt: skip
    access_s = float(start.distance_m[0]) / (query.walk_speed_kmh / 3.6)
    found = search.search(graph, MODE, start, offsets_s=np.array([access_s]),
                          budget_s=query.budget_s, walk_speed_kmh=query.walk_speed_kmh)  # fmt: skip
    stretches = routing.reach.reached(found)
    a, b = routing.reach.segments(graph, stretches)
    shape = routing.reach.polygon(a, b, query.access_m)
    return {
        "start_edge": int(graph.edge_id[start.edge[0]]),
        "start_fraction": float(start.fraction[0]),
        "reached_edges": int(np.unique(stretches.edge).size),
        "population": samples.population_of(samples.covered(stretches)),
        "wkb": routing.reach.to_lonlat_wkb(graph, shape),
    }


def build_circle(session: Session, query: Query, lon: float, lat: float) -> dict:
    """The circle of one venue at (lon, lat), not stored.

    The venue starts at its position along the nearest walkable edge of the network's
    main component (none within :data:`MAX_SNAP_M`: no circle); the walk to it is taken
    off the budget.

    Parameters
    ----------
    session : Session
        The database (graph and sample points, through the routing cache).
    query : Query
        The budget.
    lon, lat : float
        The venue, WGS 84 degrees.

    Returns
    -------
    dict
        ``start_edge`` (``road_edges.id``) and ``start_fraction``, ``reached_edges``,
        ``population`` (residents inside) and ``wkb`` (MultiPolygon, EPSG:4326); None and 0
        when no street is near.
    """
    graph, samples = _engine(session, query)
    start = snap.snap_lonlat(graph, MODE, lon, lat, max_distance_m=MAX_SNAP_M)
    return _circle(graph, samples, query, start)


def build(
    session: Session,
    query: Query,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, int]:
    """Build the circles missing from the cache for the query's venues, and store them.

    Parameters
    ----------
    session : Session
        The database; the caller commits.
    query : Query
        Which venues and the budget.
    progress : callable, optional
        ``progress(done, total)``, called as circles are built.

    Returns
    -------
    dict
        ``built`` (new circles), ``without_street`` (venues with no walkable street
        within :data:`MAX_SNAP_M`), ``venues``.
    """
    missing = session.execute(MISSING_SQL, query.params()).mappings().all()
    total = len(session.execute(VENUES_SQL, query.params()).all())
    if not missing:
        return {"built": 0, "without_street": 0, "venues": total}
    graph, samples = _engine(session, query)
    lon = np.array([v["lon"] for v in missing])
    lat = np.array([v["lat"] for v in missing])
    starts = snap.snap_lonlat(graph, MODE, lon, lat, max_distance_m=MAX_SNAP_M)
    rows = []
    for i, venue in enumerate(missing):
        circle = _circle(graph, samples, query, starts.take(np.array([i])))
        rows.append({**query.params(), "venue_table": venue["venue_table"],
                     "venue_id": venue["venue_id"], "source": SOURCE, **circle})  # fmt: skip
        if progress:
            progress(i + 1, len(missing))
    session.execute(INSERT_SQL, rows)
    # Keep the venues' reach for coverage answers too (geomap.routing.index): the union
    # of circles, /api/coverage and scenarios then answer from the kept sets.
    reach_spec = index.Reach(MODE, query.budget_s, query.walk_speed_kmh, query.access_m)
    keeper = index.engine(session, query.access_m)
    keeper.sample_index(session)
    keeper.reach_sets(session, _venue_points(session, query), reach_spec)
    without = sum(1 for r in rows if r["wkb"] is None)
    return {"built": len(missing), "without_street": without, "venues": total}


def circles(session: Session, query: Query) -> list[dict]:
    """One record per venue: venue, name, kind, area_km2, population, GeoJSON geometry.

    Builds missing circles first. A venue with no walkable street nearby has geometry None.

    Parameters
    ----------
    session : Session
        The database.
    query : Query
        Which venues and the budget.

    Returns
    -------
    list of dict
        One per venue; lon/lat and the geometry in WGS 84.
    """
    build(session, query)
    rows = session.execute(CIRCLES_SQL, query.params()).mappings()
    return [
        {
            "venue_table": row["venue_table"],
            "site_id": row["venue_id"],
            "name": row["name"],
            "kind": row["kind"],
            "lon": round(row["lon"], 7),
            "lat": round(row["lat"], 7),
            "minutes": query.minutes,
            "distance_m": query.distance_m,
            "area_km2": round(row["area_km2"], 4),
            "population": round(row["population"]),
            "reached_edges": row["reached_edges"],
            "geometry": json.loads(row["geometry"]) if row["geometry"] else None,
        }
        for row in rows
    ]


def _venue_points(session: Session, query: Query) -> np.ndarray:
    rows = session.execute(VENUE_POINTS_SQL, query.params()).all()
    return np.asarray(rows, dtype=float).reshape(-1, 2)


def union(session: Session, query: Query) -> dict:
    """The union of the query's circles, its area and the residents inside it.

    The union of every venue's circle is the reach of all venues at once (a place is
    within the budget of some venue exactly when its least cost from any venue is), so
    it is computed as one search from every venue, not as a union of polygons.

    Parameters
    ----------
    session : Session
        The database.
    query : Query
        Which venues and the budget.

    Returns
    -------
    dict
        ``query``, ``circles`` (venues with a circle), ``population``,
        ``covered_population``, ``covered_share``, ``geometry`` (GeoJSON, WGS 84) and
        ``elapsed_ms``.
    """
    started = time.perf_counter()
    build(session, query)
    graph, samples = _engine(session, query)
    places = _venue_points(session, query)
    with_circle = session.execute(WITH_CIRCLE_SQL, query.params()).scalar()
    if places.shape[0]:
        _, _, stretches = routing.reach.from_places(
            graph, MODE, places[:, 0], places[:, 1], query.budget_s,
            walk_speed_kmh=query.walk_speed_kmh, max_snap_m=MAX_SNAP_M,
        )  # fmt: skip
        a, b = routing.reach.segments(graph, stretches)
        wkb = routing.reach.to_lonlat_wkb(graph, routing.reach.polygon(a, b, query.access_m))
        covered = samples.covered(stretches)
    else:
        wkb, covered = None, np.zeros(0, dtype=np.int64)
    population = int(samples.population.sum())
    covered_population = samples.population_of(covered)
    shape = shapely.from_wkb(wkb) if wkb else None
    area_km2 = 0.0
    if shape is not None:
        area_km2 = float(abs(GEOD.geometry_area_perimeter(shape)[0])) / 1e6
    return {
        "query": query.as_dict(),
        "circles": int(with_circle or 0),
        "area_km2": round(area_km2, 3),
        "population": population,
        "covered_population": round(covered_population),
        "covered_share": round(covered_population / population, 4) if population else None,
        "geometry": shapely.geometry.mapping(shape) if shape is not None else None,
        "elapsed_ms": round((time.perf_counter() - started) * 1000, 1),
    }


def grid_rows(session: Session, query: Query) -> list[dict]:
    """Per-grid coverage rows by the union of the query's circles.

    Parameters
    ----------
    session : Session
        The database.
    query : Query
        Which venues and the budget.

    Returns
    -------
    list of dict
        One row per grid, as :meth:`geomap.routing.sample.GridPoints.rows` gives them.
    """
    if covergrids.grid_srid(session) is None:
        return []
    return covergrids.network_rows(
        session, _venue_points(session, query), mode=MODE, budget_s=query.budget_s,
        walk_speed_kmh=query.walk_speed_kmh, access_m=query.access_m,
    )  # fmt: skip


def circle_coverage(
    session: Session,
    query: Query,
    *,
    level: str = "grid",
    order: str = "gaps",
    with_geometry: bool = False,
    grids: list[dict] | None = None,
) -> dict:
    """Coverage of every unit at ``level`` by the union of circles.

    Residents inside, the share covered, the units left outside (``order="gaps"``: most
    residents outside first). The answer has the shape of
    :func:`geomap.analysis.coverage.coverage`.

    Parameters
    ----------
    session : Session
        The database.
    query : Query
        Which venues and the budget.
    level : {"grid", "community", "township", "district"}, default "grid"
        The units rolled up to.
    order : {"gaps", "code"}, default "gaps"
        The units' order.
    with_geometry : bool, default False
        Whether each unit carries its outline (GeoJSON, WGS 84).
    grids : list of dict, optional
        The rows of :func:`grid_rows` for the same query, when already computed.

    Returns
    -------
    dict
        As :func:`geomap.analysis.coverage.coverage`.

    Raises
    ------
    InvalidInput
        An unknown level or order.
    """
    level = check_choice(level, "level", coverage.LEVELS)
    order = check_choice(order, "order", ("code", "gaps"))
    if grids is None:
        grids = grid_rows(session, query)
    cov_query = covergrids.Query(
        of=query.of, kinds=query.kinds, by=MODE, within_m=query.distance_m,
        within_min=query.minutes, level=level, order="code",  # sorted once, below
    )  # fmt: skip
    answer = coverage.coverage(session, cov_query, grids=grids, with_geometry=with_geometry)
    answer["query"] = {**query.as_dict(), "level": level, "order": order}
    if order == "gaps":  # the circles' gaps: most residents left outside first
        answer["units"].sort(key=lambda u: (-u["uncovered_population"], u["code"]))
    return answer
