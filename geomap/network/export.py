"""The network as a networkx graph: an independent check for tests, and the benchmarks' baseline.
"""

from __future__ import annotations

import networkx as nx
import pandas as pd

from geomap.modes import BASE_WALK_KMH, cost_columns, walk_factor


def to_networkx(
    nodes: pd.DataFrame,
    edges: pd.DataFrame,
    mode: str,
    *,
    walk_speed_kmh: float = BASE_WALK_KMH,
) -> nx.DiGraph:
    """The network as a directed networkx graph, with travel seconds as ``weight``.

    The same rules as pgRouting's reading of :func:`~geomap.network.pgrouting.edges_sql`:
    a negative cost is no arc, and of parallel arcs the cheapest is kept.

    Parameters
    ----------
    nodes, edges : DataFrame
        As :func:`~geomap.network.osm.read_osm` returns (or read back from the tables).
    mode : {"walk", "drive"}
    walk_speed_kmh : float

    Returns
    -------
    networkx.DiGraph
        Nodes are ``road_nodes.id``; every node is present, connected or not.
    """
    cost, reverse = cost_columns(mode)
    factor = walk_factor(walk_speed_kmh) if mode == "walk" else 1.0
    graph = nx.DiGraph()
    graph.add_nodes_from(int(n) for n in nodes["id"])
    columns = zip(
        edges["source_node"], edges["target_node"], edges[cost], edges[reverse], strict=True
    )
    for u, v, forward, backward in columns:
        for a, b, seconds in ((u, v, forward), (v, u, backward)):
            if seconds < 0:
                continue
            weight = float(seconds) * factor
            data = graph.get_edge_data(int(a), int(b))
            if data is None or weight < data["weight"]:
                graph.add_edge(int(a), int(b), weight=weight)
    return graph
