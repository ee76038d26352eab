"""Nearest teams: by distance at 100,000 teams over HTTP, by drive among 10,000 teams.

Baselines, measured in the same run:
* by distance: a geopandas brute force (read every available team, project to UTM 50N,
  distance to all, take the 5 smallest), as a service without a spatial index would do;
  also the in-memory part alone (pyproj.Geod over preloaded arrays).
* by drive: networkx Dijkstra on the whole network preloaded in memory (reversed graph,
  from the point's node), then the 5 teams with the smallest costs.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import sqlalchemy as sa
from pyproj import Geod, Transformer

from bench._env import line, p50, settings_for, timings_ms
from bench._http import get_json, serve
from geomap import db, network
from geomap.analysis import nearest

# The urban core of Nanchang, where the random queries and the extra teams go.
URBAN = (115.78, 28.58, 116.02, 28.78)
RNG_SEED = 2026

TOP_UP_SQL = sa.text(
    """
    INSERT INTO teams (code, name, kind, headcount, status, capabilities, geom, source)
    SELECT 'BENCH' || n, 'bench team ' || n,
           (ARRAY['medical','organ_party','youth','veteran'])[1 + n % 4], 10, 'available',
           '{}', ST_SetSRID(ST_MakePoint(:x0 + random() * (:x1 - :x0),
                                         :y0 + random() * (:y1 - :y0)), 4326),
           'synthetic: bench/nearest.py'
    FROM generate_series((SELECT count(*) FROM teams) + 1, :target) AS n
    """
)


POSITIONS_SQL = sa.text("SELECT ST_X(geom), ST_Y(geom) FROM teams WHERE status = 'available'")


def top_up_teams(url: str, target: int) -> int:
    """Add synthetic available teams in the urban core until there are ``target`` teams."""
    engine = db.get_engine(settings_for(url))
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT setseed(0.42)"))
        conn.execute(TOP_UP_SQL, {"target": target, "x0": URBAN[0], "y0": URBAN[1],
                                  "x1": URBAN[2], "y1": URBAN[3]})  # fmt: skip
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(sa.text("ANALYZE teams"))
        return conn.execute(sa.text("SELECT count(*) FROM teams")).scalar()


def _points(n: int) -> list[tuple[float, float]]:
    rng = np.random.default_rng(RNG_SEED)
    return list(zip(rng.uniform(URBAN[0], URBAN[2], n), rng.uniform(URBAN[1], URBAN[3], n),
                    strict=True))  # fmt: skip


def bench_drive(url: str) -> None:
    total = top_up_teams(url, 10_000)
    engine = db.get_engine(settings_for(url))
    points = iter(_points(60) * 2)
    with engine.connect() as conn:

        def ask() -> None:
            lon, lat = next(points)
            nearest.nearest_teams(conn, nearest.make_query(lon, lat, k=5, by="drive"))

        ours = timings_ms(ask, repeat=50)
        import geopandas as gpd

        nodes = gpd.read_postgis("SELECT id, osm_id, geom, source FROM road_nodes", conn,
                                 geom_col="geom")  # fmt: skip
        edges = gpd.read_postgis("SELECT * FROM road_edges", conn, geom_col="geom")
        teams = conn.execute(sa.text(
            "SELECT t.id, (SELECT n.id FROM road_nodes n ORDER BY n.geom <-> t.geom LIMIT 1) "
            "FROM teams t WHERE status = 'available'")).all()  # fmt: skip
    reverse = network.to_networkx(nodes, edges, "drive").reverse(copy=True)
    team_nodes = np.array([node for _, node in teams])
    queries = iter(_points(60) * 2)

    def baseline() -> None:
        lon, lat = next(queries)
        with engine.connect() as conn:
            start = network.snap(conn, lon, lat, mode="drive")
        cost = nx.single_source_dijkstra_path_length(reverse, start.node_id, weight="weight")
        costs = np.array([cost.get(n, np.inf) for n in team_nodes])
        np.argpartition(costs, 5)[:5]

    theirs = timings_ms(baseline, repeat=10, warmup=1)
    line(f"nearest by=drive, top 5 of {total:,} teams, p50", p50(ours), "ms",
         p50(theirs), "networkx Dijkstra in memory", "≤ 100 ms")  # fmt: skip


def bench_distance(url: str) -> None:
    total = top_up_teams(url, 100_000)
    points = _points(400)
    with serve(url) as port:
        queue = iter(points)

        def ask() -> None:
            lon, lat = next(queue)
            answer = get_json(port, f"/api/teams/nearest?lon={lon}&lat={lat}&k=5")
            assert len(answer["teams"]) == 5

        ours = timings_ms(ask, repeat=300, warmup=20)
    import geopandas as gpd

    engine = db.get_engine(settings_for(url))
    to_utm = Transformer.from_crs(4326, 32650, always_xy=True)
    brute_points = iter(points)

    def geopandas_brute_force() -> None:
        lon, lat = next(brute_points)
        with engine.connect() as conn:
            frame = gpd.read_postgis(
                "SELECT id, geom FROM teams WHERE status = 'available'", conn, geom_col="geom"
            )
        projected = frame.to_crs(32650)
        x, y = to_utm.transform(lon, lat)
        distances = projected.distance(gpd.points_from_xy([x], [y])[0])
        distances.nsmallest(5)

    theirs = timings_ms(geopandas_brute_force, repeat=5, warmup=1)
    with engine.connect() as conn:
        xy = np.array(conn.execute(POSITIONS_SQL).all())
    geod = Geod(ellps="WGS84")
    memory_points = iter(points)

    def in_memory() -> None:
        lon, lat = next(memory_points)
        _, _, dist = geod.inv(np.full(len(xy), lon), np.full(len(xy), lat), xy[:, 0], xy[:, 1])
        np.argpartition(dist, 5)[:5]

    memory = timings_ms(in_memory, repeat=50)
    line(f"nearest by=distance over HTTP, {total:,} teams, p50", p50(ours), "ms",
         p50(theirs), "geopandas brute force (read + distance)", "≤ 5 ms, ≥ 100×")  # fmt: skip
    line("  same, against the in-memory part alone", p50(ours), "ms", p50(memory),
         "pyproj.Geod over preloaded arrays")  # fmt: skip


def run(url: str) -> None:
    bench_drive(url)
    bench_distance(url)
