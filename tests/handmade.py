"""A small hand-built road network (labelled synthetic) for exact tests.

A lattice of ``n × n`` nodes about 100 m apart in the middle of Nanchang, with:

* a **river** between columns ``RIVER_COL`` and ``RIVER_COL + 1``: no edge crosses it except
  the **bridge** on row ``BRIDGE_ROW``;
* a **one-way** street: row ``ONE_WAY_ROW`` can be driven only eastwards;
* a **footway** column (``FOOT_COL``): walkable, not drivable;
* a **park path**: a dead-end chain of footway edges going north from the top-right
  corner, with nothing else around it.

Costs follow the schema's rules (seconds; negative = not traversable that way) and are
computed from the same geodesic lengths the database would measure.
"""

from __future__ import annotations

import geopandas as gpd
import networkx as nx
import pandas as pd
from pyproj import Geod
from shapely.geometry import LineString, Point

from geomap import storage

ORIGIN = (115.90, 28.66)
STEP_DEG = 0.001  # ~98 m east-west, ~111 m north-south at this latitude
N = 10
RIVER_COL = 4
BRIDGE_ROW = 2
ONE_WAY_ROW = 6
FOOT_COL = 8
PARK_PATH_NODES = 6
WALK_MS = 4.5 / 3.6
DRIVE_MS = {"residential": 20 / 3.6, "primary": 40 / 3.6}
SOURCE = "synthetic: tests/handmade.py"
_GEOD = Geod(ellps="WGS84")


def node_id(col: int, row: int) -> int:
    return 1 + row * N + col


def node_lonlat(col: int, row: int) -> tuple[float, float]:
    return ORIGIN[0] + col * STEP_DEG, ORIGIN[1] + row * STEP_DEG


def build() -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """(nodes, edges) frames shaped like ``road_nodes`` and ``road_edges``."""
    nodes = {node_id(c, r): node_lonlat(c, r) for r in range(N) for c in range(N)}
    edges = []

    def add(a: int, b: int, road_class: str, *, walk=True, drive=True, one_way=False,
            bridge=False) -> None:  # fmt: skip
        line = LineString([nodes[a], nodes[b]])
        length = _GEOD.geometry_length(line)
        walk_s = length / WALK_MS if walk else -1.0
        drive_s = length / DRIVE_MS[road_class] if drive else -1.0
        edges.append(
            {
                "id": len(edges) + 1,
                "source_node": a,
                "target_node": b,
                "road_class": road_class if drive else "footway",
                "name": None,
                "length_m": length,
                "walk_s": walk_s,
                "walk_reverse_s": walk_s,
                "drive_s": drive_s,
                "drive_reverse_s": -1.0 if (one_way or not drive) else drive_s,
                "is_bridge": bridge,
                "osm_id": None,
                "geom": line,
                "source": SOURCE,
            }
        )

    for r in range(N):
        for c in range(N):
            if c + 1 < N and (c != RIVER_COL or r == BRIDGE_ROW):
                road_class = "primary" if r == BRIDGE_ROW else "residential"
                add(node_id(c, r), node_id(c + 1, r), road_class, one_way=r == ONE_WAY_ROW,
                    bridge=c == RIVER_COL)  # fmt: skip
            if r + 1 < N:
                add(node_id(c, r), node_id(c, r + 1), "residential", drive=c != FOOT_COL)
    # The park path: a chain of footways north of the top-right corner.
    previous = node_id(N - 1, N - 1)
    for i in range(1, PARK_PATH_NODES + 1):
        new_id = N * N + i
        lon, lat = node_lonlat(N - 1, N - 1)
        nodes[new_id] = (lon, lat + i * STEP_DEG)
        add(previous, new_id, "residential", drive=False)
        previous = new_id
    node_frame = gpd.GeoDataFrame(
        {
            "id": list(nodes),
            "osm_id": [None] * len(nodes),
            "source": SOURCE,
        },
        geometry=[Point(xy) for xy in nodes.values()],
        crs="EPSG:4326",
    ).rename_geometry("geom")
    edge_frame = gpd.GeoDataFrame(pd.DataFrame(edges), geometry="geom", crs="EPSG:4326")
    return node_frame, edge_frame


def load(conn) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Write the network into the road tables of ``conn`` (in its transaction)."""
    nodes, edges = build()
    storage.copy_frame(conn, "road_nodes", nodes)
    storage.copy_frame(conn, "road_edges", edges)
    return nodes, edges


def graph(edges: pd.DataFrame, mode: str, walk_speed_kmh: float = 4.5) -> nx.DiGraph:
    """The same network as a networkx DiGraph with costs in seconds (independent check)."""
    forward, backward = ("walk_s", "walk_reverse_s") if mode == "walk" else (
        "drive_s", "drive_reverse_s")  # fmt: skip
    scale = 4.5 / walk_speed_kmh if mode == "walk" else 1.0
    g = nx.DiGraph()
    for e in edges.itertuples():
        if getattr(e, forward) >= 0:
            g.add_edge(e.source_node, e.target_node, cost=getattr(e, forward) * scale, id=e.id)
        if getattr(e, backward) >= 0:
            g.add_edge(e.target_node, e.source_node, cost=getattr(e, backward) * scale, id=e.id)
    return g
