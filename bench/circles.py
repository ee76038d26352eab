"""15-minute walking circles: one circle, and every red venue in batch.

Baseline, measured in the same run: networkx doing the same work in memory (the walking
graph preloaded; per venue an ego graph within the budget, its edges buffered by the
same access width in UTM 50N, partial edges left out, which flatters the baseline).
"""

from __future__ import annotations

import time

import geopandas as gpd
import networkx as nx
import sqlalchemy as sa
from shapely.ops import unary_union

from bench._env import line, p50, settings_for, timings_ms
from geomap import db, network
from geomap.analysis import circles

VENUES_SQL = sa.text(
    "SELECT ST_X(geom), ST_Y(geom) FROM sites UNION ALL "
    "SELECT ST_X(geom), ST_Y(geom) FROM stations WHERE kind = 'red_station'"
)


def run(url: str) -> None:
    engine = db.get_engine(settings_for(url))
    query = circles.make_query(minutes=15)
    with engine.connect() as conn:
        venues = conn.execute(VENUES_SQL).all()
        cycle = iter(venues * 3)
        one = timings_ms(lambda: circles.build_circle(conn, query, *next(cycle)), repeat=60)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM circles"))
    with engine.begin() as conn:
        started = time.perf_counter()
        counts = circles.build(conn, query)
        batch_s = time.perf_counter() - started

    with engine.connect() as conn:
        nodes = gpd.read_postgis("SELECT id, osm_id, geom, source FROM road_nodes", conn,
                                 geom_col="geom")  # fmt: skip
        edges = gpd.read_postgis("SELECT * FROM road_edges", conn, geom_col="geom")
        starts = [network.snap(conn, lon, lat, mode="walk").node_id for lon, lat in venues]
    graph = network.to_networkx(nodes, edges, "walk")
    edge_geoms = {}
    for e in edges.to_crs(32650).itertuples():
        edge_geoms[(e.source_node, e.target_node)] = e.geom
        edge_geoms[(e.target_node, e.source_node)] = e.geom

    started = time.perf_counter()
    for node in starts:
        ego = nx.ego_graph(graph, node, radius=query.budget_s, distance="weight")
        unary_union([edge_geoms[uv] for uv in ego.edges]).buffer(query.access_m, quad_segs=4)
    baseline_s = time.perf_counter() - started
    line("one 15-minute circle (build, uncached, with its residents), p50", p50(one), "ms",
         goal="≤ 100 ms")  # fmt: skip
    line(f"all circles of {counts['venues']:,} red venues in batch (stored)", batch_s,
         "s", baseline_s, "networkx ego graphs + shapely buffers", "≤ 10 s, ≥ 10×")
