"""Connectivity of a network read from a file: what lies outside its largest connected part.

:func:`islands` counts, per mode, the nodes and edges outside the largest strongly
connected component, with the component the in-memory router snaps to
(:func:`geomap.routing.graph.main_component`), so an import reports the islands routing
will leave out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from geomap.modes import MODES
from geomap.routing.graph import main_component


def islands(nodes: pd.DataFrame, edges: pd.DataFrame) -> dict[str, dict[str, int]]:
    """How much of a network lies outside its largest connected part, mode by mode.

    An extract cut out of a city keeps pieces that reach the rest only outside it (a
    campus road behind the edge, a footway through a building), and one-way streets can
    trap cars: a point snapped there reaches almost nothing. This says how much there is,
    per mode, so an import can report it (snapping itself is not changed here).

    Parameters
    ----------
    nodes, edges : DataFrame
        As :func:`~geomap.network.osm.read_osm` returns.

    Returns
    -------
    dict
        For ``walk`` and ``drive``: ``nodes`` and ``edges`` usable in the mode (a node is
        usable when an edge traversable in the mode touches it), ``components`` (strongly
        connected, arcs as the mode may use them), and ``island_nodes`` /
        ``island_edges``: those outside the largest component (an edge is outside when
        one of its ends is).
    """
    report: dict[str, dict[str, int]] = {}
    ids, index = np.unique(
        np.concatenate([edges["source_node"].to_numpy(), edges["target_node"].to_numpy()]),
        return_inverse=True,
    )
    source, target = np.split(index, 2)
    for mode, (cost, reverse) in MODES.items():
        forward = edges[cost].to_numpy() >= 0
        backward = edges[reverse].to_numpy() >= 0
        usable = forward | backward
        tails = np.concatenate([source[forward], target[backward]])
        heads = np.concatenate([target[forward], source[backward]])
        main, components = main_component(ids.size, tails, heads)
        used = np.zeros(ids.size, dtype=bool)
        used[tails] = True
        used[heads] = True
        inside = main[source] & main[target]
        report[mode] = {
            "nodes": int(used.sum()),
            "edges": int(usable.sum()),
            "components": components,
            "island_nodes": int((used & ~main).sum()),
            "island_edges": int((usable & ~inside).sum()),
        }
    return report
