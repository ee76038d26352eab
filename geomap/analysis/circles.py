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
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from geomap import network, vocab
from geomap.analysis import coverage, reach
from geomap.errors import InvalidInput, Unreachable
from geomap.params import check_choice, check_choices, check_positive, metric_srid

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
                         start_node, reached_edges, area_km2, geom, source)
    VALUES (:venue_table, :venue_id, :mode, :budget_s, :speed, :access_m, :start_node,
            :reached_edges,
            coalesce(ST_Area(ST_GeomFromWKB(:wkb, 4326)::geography) / 1e6, 0),
            ST_GeomFromWKB(:wkb, 4326), :source)
    ON CONFLICT (venue_table, venue_id, mode, budget_s, walk_speed_kmh, access_m) DO UPDATE
    SET start_node = EXCLUDED.start_node, reached_edges = EXCLUDED.reached_edges,
        area_km2 = EXCLUDED.area_km2, geom = EXCLUDED.geom, built_at = now()
    """
)

# The circles of the venues, with the residents inside each (grid population spread
# evenly over the grid's area, as in coverage).
CIRCLES_SQL = sa.text(
    f"""
    WITH venues AS ({VENUES_SQL.text})
    SELECT v.venue_table, v.venue_id, v.name, v.kind, ST_X(v.geom) AS lon, ST_Y(v.geom) AS lat,
           c.area_km2, c.reached_edges, ST_AsGeoJSON(c.geom, 6) AS geometry,
           coalesce(pop.population, 0) AS population
    FROM venues v
    JOIN circles c ON c.venue_table = v.venue_table AND c.venue_id = v.venue_id
    LEFT JOIN LATERAL (
        SELECT round(sum(g.population
                         * ST_Area(ST_Transform(ST_Intersection(g.geom, c.geom), :srid))
                         / nullif(ST_Area(ST_Transform(g.geom, :srid)), 0)))::bigint
               AS population
        FROM grids g
        WHERE c.geom IS NOT NULL AND ST_Intersects(g.geom, c.geom)
    ) AS pop ON true
    WHERE c.mode = :mode AND c.budget_s = :budget_s AND c.walk_speed_kmh = :speed
      AND c.access_m = :access_m
    ORDER BY v.venue_table, v.venue_id
    """
)

UNION_SQL = sa.text(
    f"""
    WITH venues AS ({VENUES_SQL.text})
    SELECT ST_AsBinary(ST_Multi(ST_CollectionExtract(ST_MakeValid(ST_Union(c.geom)), 3))),
           count(c.geom)
    FROM venues v
    JOIN circles c ON c.venue_table = v.venue_table AND c.venue_id = v.venue_id
    WHERE c.mode = :mode AND c.budget_s = :budget_s AND c.walk_speed_kmh = :speed
      AND c.access_m = :access_m AND c.geom IS NOT NULL
    """
)


@dataclass(frozen=True)
class Query:
    """Which venues, and the budget of their circles."""

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
        return {
            "of": self.of,
            "kinds": self.kinds,
            "mode": MODE,
            "budget_s": self.budget_s,
            "speed": self.walk_speed_kmh,
            "access_m": self.access_m,
        }

    def as_dict(self) -> dict[str, Any]:
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
    """Validate the inputs; minutes and distance_m exclude each other (default 15 minutes)."""
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


def build_circle(session: Session, query: Query, lon: float, lat: float) -> dict:
    """The circle of one venue at (lon, lat): start node, reached edge count, WKB polygon.

    The walk from the venue to its nearest street node is taken off the budget. The edges
    read are those within the distance walkable in the budget: no route can leave it.
    """
    try:
        start = network.snap(session, lon, lat, mode=MODE, max_distance_m=MAX_SNAP_M)
    except Unreachable:  # no walkable street near the venue: no circle, recorded as such
        return {"start_node": None, "reached_edges": 0, "wkb": None}
    speed_ms = query.walk_speed_kmh / 3.6
    budget_s = query.budget_s - start.distance_m / speed_ms
    if budget_s <= 0:
        return {"start_node": start.node_id, "reached_edges": 0, "wkb": None}
    bbox = network.bbox_around(lon, lat, query.budget_s * speed_ms + query.access_m)
    area = reach.reach_polygon(
        session,
        [start.node_id],
        budget_s,
        mode=MODE,
        walk_speed_kmh=query.walk_speed_kmh,
        access_m=query.access_m,
        srid=metric_srid(lon, lat),
        bbox=bbox,
    )
    return {"start_node": start.node_id, "reached_edges": area.edges, "wkb": area.wkb}


def _store_circle(conn: Any, query: Query, venue: Any) -> bool:
    """Build and store one venue's circle; False when the venue has no street nearby."""
    circle = build_circle(conn, query, venue["lon"], venue["lat"])
    conn.execute(
        INSERT_SQL,
        {
            **query.params(),
            "venue_table": venue["venue_table"],
            "venue_id": venue["venue_id"],
            "start_node": circle["start_node"],
            "reached_edges": circle["reached_edges"],
            "wkb": circle["wkb"],
            "source": SOURCE,
        },
    )
    return circle["wkb"] is not None


def build(
    session: Session,
    query: Query,
    *,
    progress: Callable[[int, int], None] | None = None,
    engine: Engine | None = None,
    workers: int = 1,
) -> dict[str, int]:
    """Build the circles missing from the cache for the query's venues.

    Parameters
    ----------
    engine, workers : optional
        With an engine and ``workers > 1``, the venues are split among that many
        connections, each committing its own circles: the work (routing, buffering)
        runs in parallel PostgreSQL backends. Without, everything happens in ``session``.

    Returns
    -------
    dict
        ``built`` (new circles), ``without_street`` (venues with no walkable street
        within :data:`MAX_SNAP_M`), ``venues``.
    """
    missing = session.execute(MISSING_SQL, query.params()).mappings().all()
    done, lock = [0, 0], threading.Lock()  # circles built, venues without a street

    def record(with_street: bool) -> None:
        with lock:
            done[0] += 1
            done[1] += not with_street
            if progress:
                progress(done[0], len(missing))

    if engine is not None and workers > 1 and len(missing) > 1:

        def work(chunk: list[Any]) -> None:
            with engine.begin() as conn:
                for venue in chunk:
                    record(_store_circle(conn, query, venue))

        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(work, [missing[i::workers] for i in range(workers)]))
    else:
        for venue in missing:
            record(_store_circle(session, query, venue))
    total = len(session.execute(VENUES_SQL, query.params()).all())
    return {"built": len(missing), "without_street": done[1], "venues": total}


def circles(session: Session, query: Query) -> list[dict]:
    """One record per venue: venue, name, kind, area_km2, population, GeoJSON geometry.

    Builds missing circles first. A venue with no walkable street nearby has geometry None.
    """
    build(session, query)
    srid = coverage.grid_srid(session) or 32650
    rows = session.execute(CIRCLES_SQL, {**query.params(), "srid": srid}).mappings()
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
            "population": int(row["population"]),
            "reached_edges": row["reached_edges"],
            "geometry": json.loads(row["geometry"]) if row["geometry"] else None,
        }
        for row in rows
    ]


def union(session: Session, query: Query) -> dict:
    """The union of the query's circles, its area and the residents inside it."""
    started = time.perf_counter()
    build(session, query)
    wkb, count = session.execute(UNION_SQL, query.params()).one()
    grids = _grid_rows(session, query, wkb)
    population = sum(g["population"] for g in grids)
    covered = sum(_covered_population(g) for g in grids)
    area_km2 = session.execute(
        sa.text("SELECT coalesce(ST_Area(ST_GeomFromWKB(:wkb, 4326)::geography) / 1e6, 0)"),
        {"wkb": wkb},
    ).scalar()
    geometry = session.execute(
        sa.text("SELECT ST_AsGeoJSON(ST_GeomFromWKB(:wkb, 4326), 6)"), {"wkb": wkb}
    ).scalar()
    return {
        "query": query.as_dict(),
        "circles": int(count),
        "area_km2": round(float(area_km2), 3),
        "population": population,
        "covered_population": round(covered),
        "covered_share": round(covered / population, 4) if population else None,
        "geometry": json.loads(geometry) if geometry else None,
        "elapsed_ms": round((time.perf_counter() - started) * 1000, 1),
    }


def grid_rows(session: Session, query: Query) -> list[dict]:
    """Per-grid coverage rows by the union of the query's circles (built if missing)."""
    build(session, query)
    wkb, _ = session.execute(UNION_SQL, query.params()).one()
    return _grid_rows(session, query, wkb)


def _covered_population(grid: dict) -> float:
    if not grid["area_m2"]:
        return 0.0
    return grid["population"] * min(1.0, grid["covered_m2"] / grid["area_m2"])


def _grid_rows(session: Session, query: Query, union_wkb: bytes | None) -> list[dict]:
    srid = coverage.grid_srid(session)
    if srid is None:
        return []
    providers = "red" if query.of == "red" else query.of
    kinds = query.kinds if query.of != "red" else None
    return coverage.area_coverage(session, union_wkb, providers=providers, kinds=kinds, srid=srid)


def circle_coverage(
    session: Session,
    query: Query,
    *,
    level: str = "grid",
    order: str = "gaps",
    with_geometry: bool = False,
    grids: list[dict] | None = None,
) -> dict:
    """Coverage of every unit at ``level`` by the union of circles: residents inside, the
    share covered, the units left outside (``order="gaps"``: most residents outside first).

    The answer has the shape of :func:`geomap.analysis.coverage.coverage`. ``grids``: the
    rows of :func:`grid_rows` for the same query, when already computed.
    """
    level = check_choice(level, "level", coverage.LEVELS)
    order = check_choice(order, "order", ("code", "gaps"))
    if grids is None:
        grids = grid_rows(session, query)
    cov_query = coverage.Query(
        of=query.of, kinds=query.kinds, by=MODE, within_m=query.distance_m,
        within_min=query.minutes, level=level, order="code",  # sorted once, below
    )  # fmt: skip
    answer = coverage.coverage(session, cov_query, grids=grids, with_geometry=with_geometry)
    answer["query"] = {**query.as_dict(), "level": level, "order": order}
    if order == "gaps":  # the circles' gaps: most residents left outside first
        answer["units"].sort(key=lambda u: (-u["uncovered_population"], u["code"]))
    return answer
