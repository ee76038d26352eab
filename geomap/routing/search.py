"""Shortest travel times on a :class:`StreetGraph`, from or to positions along edges.

A search starts at one or many :class:`EdgePoints` (each with an optional head start,
``offsets_s``: the walk from a venue to its street, say). scipy's Dijkstra takes start
*nodes*; so each search adds one virtual node with an arc to both ends of every start
edge, priced with the part of the edge between the point and that end (what
``pgr_withPoints`` does inside pgRouting). One run then gives every node's cost from the
nearest start (``min`` over starts), within a budget when one is given: scipy stops at
the budget, so a 15-minute walk settles ~100 nodes, not the city.

``reverse=True`` searches the graph with every arc turned around: the costs are then
*to* the starts (teams travelling to an incident: one search from the incident).

Walking costs are stored at :data:`geomap.modes.BASE_WALK_KMH`; a search at another
walking speed runs on the stored costs with the budget scaled, and scales the answers.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse import csgraph

from geomap.modes import BASE_WALK_KMH
from geomap.routing.graph import StreetGraph
from geomap.routing.snap import EdgePoints

#: scipy's marker for "no predecessor".
_NO_PRED = -9999


def _part(share: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Cost of travelling ``share`` of an edge whose full cost is ``cost``.

    ``cost`` is ``inf`` when the edge is barred: nothing for no distance, even against a
    one-way street.
    """
    with np.errstate(invalid="ignore"):
        return np.where(share > 0, share * cost, 0.0)


#: Spare arcs of the prebuilt search graph: a point on an edge reaches its two ends.
_SLOTS = 2
_MIN_COST = 1e-9


def _slotted(base: sp.csr_matrix, n: int) -> tuple[sp.csr_matrix, threading.Lock]:
    """``base`` with a virtual node ``n`` holding :data:`_SLOTS` arcs, and its lock."""
    data = np.concatenate([base.data, np.ones(_SLOTS)])
    indices = np.concatenate([base.indices, np.full(_SLOTS, n, dtype=np.int32)])
    indptr = np.concatenate([base.indptr, [base.indptr[-1] + _SLOTS]]).astype(np.int32)
    return sp.csr_matrix((data, indices, indptr), shape=(n + 1, n + 1)), threading.Lock()


#: Speed of the leg between a place and its snapped position when driving (km/h): the
#: slowest drivable class, so that travel times never flatter a team. Walking uses the
#: walking speed.
DRIVE_ACCESS_KMH = 15.0


def access_speed_ms(mode: str, walk_speed_kmh: float = BASE_WALK_KMH) -> float:
    """Speed (m/s) of the access legs between places and the network in ``mode``.

    Parameters
    ----------
    mode : str
        ``"walk"`` or ``"drive"``.
    walk_speed_kmh : float, default BASE_WALK_KMH
        The walking speed, km/h.

    Returns
    -------
    float
        Metres per second: the walking speed on foot, ``DRIVE_ACCESS_KMH`` by car.
    """
    return (walk_speed_kmh if mode == "walk" else DRIVE_ACCESS_KMH) / 3.6


def seconds_factor(mode: str, walk_speed_kmh: float = BASE_WALK_KMH) -> float:
    """Multiplier from stored costs to seconds at ``walk_speed_kmh`` (1 when driving).

    Parameters
    ----------
    mode : str
        ``"walk"`` or ``"drive"``.
    walk_speed_kmh : float, default BASE_WALK_KMH
        The walking speed, km/h; the stored walk costs are at ``BASE_WALK_KMH``.

    Returns
    -------
    float
        The factor.
    """
    if mode != "walk":
        return 1.0
    return BASE_WALK_KMH / float(walk_speed_kmh)


@dataclass(frozen=True)
class Search:
    """The result of :func:`search`: every node's cost (seconds) from/to the starts.

    Parameters
    ----------
    graph : StreetGraph
        The graph searched.
    mode : str
        ``"walk"`` or ``"drive"``.
    reverse : bool
        Whether the costs are *to* the starts.
    factor : float
        Stored costs to seconds (:func:`seconds_factor`).
    budget_s : float
        The budget, seconds.
    cost_s : numpy.ndarray
        Per node, seconds; ``inf`` for nodes not reached within the budget.
    pred : numpy.ndarray or None
        When asked for, scipy's predecessor array on the searched graph, where
        ``graph.n_nodes`` is the virtual start node.
    starts : EdgePoints
        The snapped starts.
    start_offset_s : numpy.ndarray
        Each start's head start, seconds.
    """

    graph: StreetGraph
    mode: str
    reverse: bool
    factor: float
    budget_s: float
    cost_s: np.ndarray
    pred: np.ndarray | None
    starts: EdgePoints
    start_offset_s: np.ndarray

    @property
    def reached_nodes(self) -> np.ndarray:
        """Indices of the nodes reached within the budget."""
        return np.flatnonzero(np.isfinite(self.cost_s))

    def cost_at(self, points: EdgePoints) -> tuple[np.ndarray, np.ndarray]:
        """Cost (seconds) between the starts and each point, and which way it was reached.

        For a forward search, the cost from the nearest start *to* each point; for a
        reverse search, the cost *from* each point to the nearest start. Points not
        snapped, or not reached, cost ``inf``.

        Parameters
        ----------
        points : EdgePoints
            The points, snapped on the same graph and mode.

        Returns
        -------
        cost_s : numpy.ndarray
            Seconds per point.
        via : numpy.ndarray of int
            0: through the edge's first node ``u``; 1: through its last node ``v``;
            2: along the edge itself, from (or to) a start on the same edge.
        """
        n = len(points)
        cost, via = np.full(n, np.inf), np.zeros(n, dtype=np.int64)
        e_all = np.where(points.found, points.edge, 0)
        u_all, v_all = self.graph.edge_u[e_all], self.graph.edge_v[e_all]
        # Only points on edges the search touched can be reached. A bounded search touches
        # a few hundred edges of a city, so the arithmetic below runs on those points.
        live = np.flatnonzero(points.found & self.touches(e_all, u_all, v_all))
        if live.size == 0:
            return cost, via
        mode = self.graph.mode(self.mode)
        e, g = e_all[live], points.fraction[live]
        u, v = u_all[live], v_all[live]
        fw, bw = mode.fw_s[e] * self.factor, mode.bw_s[e] * self.factor
        if self.reverse:  # from the point to a start: leave the edge by one of its ends
            via_u = _part(g, bw) + self.cost_s[u]
            via_v = _part(1 - g, fw) + self.cost_s[v]
        else:  # from a start to the point: enter the edge by one of its ends
            via_u = self.cost_s[u] + _part(g, fw)
            via_v = self.cost_s[v] + _part(1 - g, bw)
        best = np.minimum(via_u, via_v)
        way = np.where(via_u <= via_v, 0, 1)
        direct = self._same_edge(points.take(live), fw, bw)
        better = direct < best
        cost[live] = np.where(better, direct, best)
        via[live] = np.where(better, 2, way)
        return cost, via

    def touches(self, edge: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Which of these edges (with their end nodes ``u``, ``v``) the search touched.

        An edge is touched when an end settled within the budget or a start lies on it;
        points on the other edges cost more than the budget.

        Parameters
        ----------
        edge, u, v : numpy.ndarray
            Edge indices and their first and last nodes.

        Returns
        -------
        numpy.ndarray
            A boolean mask over ``edge``.
        """
        return (np.isfinite(self.cost_s[u]) | np.isfinite(self.cost_s[v])
                | np.isin(edge, self.starts.edge))  # fmt: skip

    def _same_edge(self, points: EdgePoints, fw: np.ndarray, bw: np.ndarray) -> np.ndarray:
        """Cost along a shared edge between a start and each point (``inf`` elsewhere).

        ``fw``/``bw`` are the points' edges' costs. Every (point, start) pair on one edge
        is priced at once: the pairs come from the starts sorted by edge.
        """
        direct = np.full(len(points), np.inf)
        order, first, count = _pairs_by_edge(self.starts.edge, points.edge)
        has = np.flatnonzero(points.found & (count > 0))
        if has.size == 0:
            return direct
        pi = np.repeat(has, count[has])  # the point of each pair
        step = np.arange(pi.size) - np.repeat(np.cumsum(count[has]) - count[has], count[has])
        sj = order[np.repeat(first[has], count[has]) + step]  # the start of each pair
        f, g = self.starts.fraction[sj], points.fraction[pi]
        # Forward search: start at f travels to g; reverse: the point at g to start f.
        ahead = g >= f if not self.reverse else f >= g
        along = np.where(ahead, _part(np.abs(g - f), fw[pi]), _part(np.abs(g - f), bw[pi]))
        np.minimum.at(direct, pi, along + self.start_offset_s[sj])
        return direct


def _pairs_by_edge(
    start_edges: np.ndarray, point_edges: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The starts sorted by edge (``order``), and where each point's edge is in that order.

    For each point: the first position in ``order`` of a start on its edge and how many
    there are.
    """
    order = np.argsort(start_edges, kind="stable")
    ranked = start_edges[order]
    first = np.searchsorted(ranked, point_edges, side="left")
    count = np.searchsorted(ranked, point_edges, side="right") - first
    return order, first, count


def _start_arcs(
    graph: StreetGraph, mode: str, starts: EdgePoints, offsets: np.ndarray, reverse: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Heads and costs (stored units) of the virtual node's arcs to the start edges' ends."""
    m = graph.mode(mode)
    e, f = starts.edge, starts.fraction
    u, v = graph.edge_u[e], graph.edge_v[e]
    if reverse:  # arriving at the point: from u along the edge, or from v against it
        to_u, to_v = _part(f, m.fw_s[e]), _part(1 - f, m.bw_s[e])
    else:  # leaving the point: towards v along the edge, or towards u against it
        to_u, to_v = _part(f, m.bw_s[e]), _part(1 - f, m.fw_s[e])
    heads = np.concatenate([u, v])
    cost = np.concatenate([to_u, to_v]) + np.tile(offsets, 2)
    keep = np.isfinite(cost)
    return heads[keep], cost[keep]


def search(
    graph: StreetGraph,
    mode: str,
    starts: EdgePoints,
    *,
    offsets_s: np.ndarray | None = None,
    budget_s: float = np.inf,
    reverse: bool = False,
    walk_speed_kmh: float = BASE_WALK_KMH,
    predecessors: bool = False,
) -> Search:
    """Least costs from (or, ``reverse``, to) the nearest of ``starts``, within a budget.

    Parameters
    ----------
    graph : StreetGraph
        The street graph.
    mode : {"walk", "drive"}
        The travel mode.
    starts : EdgePoints
        Snapped start positions; points that did not snap are ignored.
    offsets_s : numpy.ndarray, optional
        A head start per point, seconds (e.g. the access walk): a start begins at that cost.
    budget_s : float
        Stop at this cost (seconds); nodes beyond it are ``inf``.
    reverse : bool
        Costs *to* the starts instead of *from* them.
    walk_speed_kmh : float
        Walking speed for ``mode="walk"``, km/h.
    predecessors : bool
        Keep the search tree (for :func:`route_coords`).

    Returns
    -------
    Search
        Every node's cost.
    """
    factor = seconds_factor(mode, walk_speed_kmh)
    found = starts.found
    starts = starts.take(found)
    offsets = np.zeros(len(found)) if offsets_s is None else np.asarray(offsets_s, dtype=float)
    offsets = offsets[found]
    m = graph.mode(mode)
    base = m.backward if reverse else m.forward
    n = graph.n_nodes
    heads, cost = _start_arcs(graph, mode, starts, offsets / factor, reverse)
    limit = budget_s / factor if np.isfinite(budget_s) else np.inf
    if heads.size <= _SLOTS:
        # One point (the common case: nearest teams, one circle): the graph with the
        # virtual node is built once per graph and direction, with two spare arcs that
        # each search fills in under a lock; no copy of the network's arrays.
        matrix, lock = graph.lazy(f"search:{mode}:{reverse}", lambda: _slotted(base, n))
        with lock:
            matrix.indices[-_SLOTS:] = n  # unused slots: a harmless loop on the virtual node
            matrix.data[-_SLOTS:] = 1.0
            matrix.indices[-_SLOTS:][: heads.size] = heads
            matrix.data[-_SLOTS:][: heads.size] = np.maximum(cost, _MIN_COST)
            result = csgraph.dijkstra(
                matrix, directed=True, indices=n, limit=limit, return_predecessors=predecessors
            )
    else:
        # The searched graph: the network plus a virtual node n whose arcs reach the starts.
        matrix = sp.csr_matrix(
            (
                np.concatenate([base.data, np.maximum(cost, _MIN_COST)]),
                np.concatenate([base.indices, heads.astype(np.int32)]),
                np.concatenate([base.indptr, [base.indptr[-1] + heads.size]]).astype(np.int32),
            ),
            shape=(n + 1, n + 1),
        )
        result = csgraph.dijkstra(
            matrix, directed=True, indices=n, limit=limit, return_predecessors=predecessors
        )
    dist, pred = result if predecessors else (result, None)
    cost_s = dist[:n] * factor
    return Search(graph, mode, reverse, factor, float(budget_s), cost_s, pred, starts, offsets)


def edge_piece(graph: StreetGraph, edge: int, start: float, end: float) -> np.ndarray:
    """Metric coordinates of ``edge`` from fraction ``start`` to ``end``, ends interpolated.

    Parameters
    ----------
    graph : StreetGraph
        The street graph.
    edge : int
        The edge index.
    start, end : float
        Fractions of the edge's length from its first vertex; reversed when
        ``end < start``.

    Returns
    -------
    numpy.ndarray
        Shape (k, 2), the graph's metric CRS.
    """
    lo, hi = sorted((start, end))
    a, b = graph.offsets[edge], graph.offsets[edge + 1]
    xy, cum = graph.coords_xy[a:b], graph.cum_m[a:b]
    length = cum[-1] if cum.size else 0.0
    s, t = lo * length, hi * length
    inner = (cum > s) & (cum < t)
    ends = [np.array([np.interp(s, cum, xy[:, 0]), np.interp(s, cum, xy[:, 1])])]
    ends.append(np.array([np.interp(t, cum, xy[:, 0]), np.interp(t, cum, xy[:, 1])]))
    piece = np.vstack([ends[0], xy[inner], ends[1]])
    return piece[::-1] if end < start else piece


def _arc_edge(graph: StreetGraph, mode: str, a: int, b: int) -> int:
    """The edge of the cheapest arc a→b (in travel direction)."""
    m = graph.mode(mode)
    lo, hi = m.forward.indptr[a], m.forward.indptr[a + 1]
    row = np.flatnonzero(m.forward.indices[lo:hi] == b)
    best = row[np.argmin(m.forward.data[lo:hi][row])]
    return int(m.forward_edge[lo + best])


def route_coords(found: Search, point: EdgePoints, via: int) -> np.ndarray | None:
    """The route between a single-start search's start and ``point``, in travel direction.

    Parameters
    ----------
    found : Search
        A search from (or, reversed, to) one start, with ``predecessors=True``.
    point : EdgePoints
        One point.
    via : int
        What :meth:`Search.cost_at` said for the point.

    Returns
    -------
    numpy.ndarray or None
        Metric coordinates, shape (k, 2); None when the point was not reached.
    """
    if found.pred is None or len(found.starts) != 1:
        raise ValueError("route_coords needs a single-start search with predecessors")
    graph, n = found.graph, found.graph.n_nodes
    e, g = int(point.edge[0]), float(point.fraction[0])
    s_edge, s_frac = int(found.starts.edge[0]), float(found.starts.fraction[0])
    if via == 2:  # along the shared edge
        piece = edge_piece(graph, e, g, s_frac) if found.reverse else edge_piece(
            graph, e, s_frac, g
        )
        return piece
    end = int(graph.edge_u[e] if via == 0 else graph.edge_v[e])
    if not np.isfinite(found.cost_s[end]):
        return None
    chain = [end]
    while found.pred[chain[-1]] not in (n, _NO_PRED):
        chain.append(int(found.pred[chain[-1]]))
    first = chain[-1]  # the node the virtual start reached directly
    start_end = 0.0 if first == graph.edge_u[s_edge] else 1.0
    point_end = 0.0 if via == 0 else 1.0
    pieces = []
    if found.reverse:  # travel: point → end … first → start position
        pieces.append(edge_piece(graph, e, g, point_end))
        for a, b in itertools.pairwise(chain):
            pieces.append(_node_to_node(graph, found.mode, a, b))
        pieces.append(edge_piece(graph, s_edge, start_end, s_frac))
    else:  # travel: start position → first … end → point
        pieces.append(edge_piece(graph, s_edge, s_frac, start_end))
        walk = chain[::-1]
        for a, b in itertools.pairwise(walk):
            pieces.append(_node_to_node(graph, found.mode, a, b))
        pieces.append(edge_piece(graph, e, point_end, g))
    return np.vstack(pieces)


def _node_to_node(graph: StreetGraph, mode: str, a: int, b: int) -> np.ndarray:
    edge = _arc_edge(graph, mode, a, b)
    forward = graph.edge_u[edge] == a
    return edge_piece(graph, edge, 0.0, 1.0) if forward else edge_piece(graph, edge, 1.0, 0.0)
