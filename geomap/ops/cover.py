"""Who covers which grid, and what the city loses when a team leaves.

A grid is *covered* when some team of a set can drive to the grid's inner point (a point
inside it, ``ST_PointOnSurface``) within the reach threshold, access legs included (the
team's leg to its road, the grid point's leg from its road, both at the slow access speed
of :mod:`geomap.routing.search`).

:func:`cover` runs one multi-source Dijkstra from every team of the set at once, each team
its own virtual start node, so scipy reports for every node both the least time and
*which* team achieves it (``min_only`` with ``sources``). A grid's nearest team follows.

:func:`loss` answers "if team c leaves, which grids does nobody else reach in time?"
without searching the whole city again. Only grids whose nearest team is c can be lost,
and only the nodes c reaches first (its *cell*) change their time when c leaves. A node
outside the cell keeps its time (another team achieves it); a path from another team into
the cell enters it through an arc from outside, or starts inside it. So one small Dijkstra
over the cell's nodes, seeded with those entries, gives the exact times without c. The
tests compare it with a full search without c (and the search with pgRouting).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
import sqlalchemy as sa
from scipy.sparse import csgraph

from geomap import routing
from geomap.routing import search
from geomap.routing.graph import StreetGraph
from geomap.routing.snap import EdgePoints, snap_lonlat

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Session

MODE = "drive"
_MIN_COST = 1e-9

GRID_POINTS_SQL = sa.text(
    """
    SELECT code, name, population,
           ST_X(ST_PointOnSurface(geom)) AS lon, ST_Y(ST_PointOnSurface(geom)) AS lat
    FROM grids ORDER BY code
    """
)


@dataclass(frozen=True)
class GridPoints:
    """Every grid's inner point snapped to the drive network (arrays in code order).

    Parameters
    ----------
    codes, names : numpy.ndarray
        The grids' codes and names (objects).
    population : numpy.ndarray
        Residents per grid (int64).
    lon, lat : numpy.ndarray
        The inner points (``ST_PointOnSurface``), WGS 84 degrees.
    points : EdgePoints
        The inner points snapped to the drive network (``found`` False: no road near).
    access_s : numpy.ndarray
        Seconds of the access leg from the road to each point (``inf`` when not snapped).
    """

    codes: np.ndarray
    names: np.ndarray
    population: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    points: EdgePoints
    access_s: np.ndarray

    def describe(self, which: np.ndarray) -> dict[str, Any]:
        """The grids ``which`` (indices) as an answer: codes, names, residents.

        Parameters
        ----------
        which : numpy.ndarray
            Indices into the arrays.

        Returns
        -------
        dict
            ``grids`` (code, name, population; most residents first), ``grid_count`` and
            ``residents`` (their sum).
        """
        which = np.asarray(which, dtype=np.int64)
        order = which[np.argsort(-self.population[which], kind="stable")]
        return {
            "grids": [
                {
                    "code": str(self.codes[i]),
                    "name": str(self.names[i]),
                    "population": int(self.population[i]),
                }
                for i in order
            ],
            "grid_count": int(which.size),
            "residents": int(self.population[which].sum()),
        }


def grid_points(
    conn: Connection | Session, graph: StreetGraph, known: dict[str, Any] | None = None
) -> GridPoints:
    """The grids' inner points on ``graph`` (cached until the grids or the network change).

    Parameters
    ----------
    conn : Connection or Session
        The database, read in the caller's transaction when the cache misses.
    graph : StreetGraph
        The street graph the points are snapped to.
    known : dict, optional
        The table versions already read in this request (:func:`routing.cache.versions`),
        so the cache check costs no query.

    Returns
    -------
    GridPoints
        Every grid's inner point, snapped.
    """

    def build() -> GridPoints:
        rows = conn.execute(GRID_POINTS_SQL).all()
        lon = np.array([r.lon for r in rows], dtype=float)
        lat = np.array([r.lat for r in rows], dtype=float)
        points = snap_lonlat(graph, MODE, lon, lat)
        access_s = np.where(points.found, points.distance_m, np.inf) / search.access_speed_ms(MODE)
        return GridPoints(
            codes=np.array([r.code for r in rows], dtype=object),
            names=np.array([r.name for r in rows], dtype=object),
            population=np.array([r.population for r in rows], dtype=np.int64),
            lon=lon,
            lat=lat,
            points=points,
            access_s=access_s,
        )

    return routing.cache.derived(
        conn, f"grid_points:{graph.version}", ("grids", "network"), build, known
    )


@dataclass(frozen=True)
class Cover:
    """Times from a set of teams (``starts``) to every node and every grid.

    Parameters
    ----------
    graph : StreetGraph
        The street graph searched (drive mode).
    grids : GridPoints
        The grids' inner points.
    starts : EdgePoints
        The teams' positions, snapped.
    offsets_s : numpy.ndarray
        Each start's head start in seconds (its access leg).
    budget_s : float
        The reach threshold, seconds.
    arc_tail, arc_head, arc_cost : numpy.ndarray
        The virtual arcs from each start (its index) to its edge's ends (node, seconds).
    dist, src : numpy.ndarray
        Per node, the least time (seconds; ``inf`` beyond the budget) and the start achieving
        it (-1: none).
    grid_time, grid_team : numpy.ndarray
        The same per grid point, access legs included.
    """

    graph: StreetGraph
    grids: GridPoints
    starts: EdgePoints
    offsets_s: np.ndarray
    budget_s: float
    arc_tail: np.ndarray
    arc_head: np.ndarray
    arc_cost: np.ndarray
    dist: np.ndarray
    src: np.ndarray
    grid_time: np.ndarray
    grid_team: np.ndarray

    @property
    def covered(self) -> np.ndarray:
        """Which grids some start reaches within the budget (a boolean mask)."""
        return self.grid_time <= self.budget_s


def _start_arcs(
    graph: StreetGraph, starts: EdgePoints, offsets_s: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start index, head node, cost) of the arcs from each start to its edge's ends."""
    m = graph.mode(MODE)
    e, f = starts.edge, starts.fraction
    to_u = search._part(f, m.bw_s[e])  # leaving the point against the edge, towards u
    to_v = search._part(1 - f, m.fw_s[e])  # along the edge, towards v
    tail = np.repeat(np.arange(len(starts)), 2)
    head = np.column_stack([graph.edge_u[e], graph.edge_v[e]]).ravel()
    cost = (np.column_stack([to_u, to_v]) + offsets_s[:, None]).ravel()
    keep = np.isfinite(cost)
    return tail[keep], head[keep], cost[keep]


def _to_grids(
    graph: StreetGraph,
    grids: GridPoints,
    starts: EdgePoints,
    offsets_s: np.ndarray,
    dist: np.ndarray,
    src: np.ndarray,
    which: np.ndarray,
    exclude: int = -1,
) -> tuple[np.ndarray, np.ndarray]:
    """Least time to the grid points ``which`` and the start achieving it."""
    m = graph.mode(MODE)
    pts = grids.points
    ok = pts.found[which]
    e = np.where(ok, pts.edge[which], 0)
    g = np.where(ok, pts.fraction[which], 0.0)
    u, v = graph.edge_u[e], graph.edge_v[e]
    via_u = dist[u] + search._part(g, m.fw_s[e])
    via_v = dist[v] + search._part(1 - g, m.bw_s[e])
    time = np.minimum(via_u, via_v)
    team = np.where(via_u <= via_v, src[u], src[v])
    # A start on the grid point's own edge may reach it along the edge: pair each point
    # with the starts on its edge (starts sorted by edge; one range per point).
    order = np.argsort(starts.edge, kind="stable")
    sorted_edges = starts.edge[order]
    lo = np.searchsorted(sorted_edges, e, side="left")
    hi = np.searchsorted(sorted_edges, e, side="right")
    counts = np.where(ok, hi - lo, 0)
    if counts.sum():
        k = np.repeat(np.arange(e.size), counts)
        j = order[np.repeat(lo - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())]
        keep = j != exclude
        k, j = k[keep], j[keep]
        f, ek, gk = starts.fraction[j], e[k], g[k]
        along = (
            np.where(
                gk >= f,
                search._part(np.abs(gk - f), m.fw_s[ek]),
                search._part(np.abs(gk - f), m.bw_s[ek]),
            )
            + offsets_s[j]
        )
        best = np.full(e.size, np.inf)
        np.minimum.at(best, k, along)
        # The start achieving each point's best, among its pairs.
        hit = along <= best[k]
        best_team = np.full(e.size, -1)
        best_team[k[hit]] = j[hit]
        better = best < time
        time = np.where(better, best, time)
        team = np.where(better, best_team, team)
    time = np.where(ok, time + grids.access_s[which], np.inf)
    team = np.where(np.isfinite(time), team, -1)
    return time, team


def cover(
    graph: StreetGraph,
    grids: GridPoints,
    starts: EdgePoints,
    offsets_s: np.ndarray,
    budget_s: float,
) -> Cover:
    """Times from the nearest of ``starts`` to every node and grid point, within ``budget_s``.

    One multi-source Dijkstra; see the module docstring.

    Parameters
    ----------
    graph : StreetGraph
        The street graph (drive mode).
    grids : GridPoints
        The grids' inner points.
    starts : EdgePoints
        The teams' positions, every one snapped.
    offsets_s : numpy.ndarray
        Each start's head start, seconds (its access leg).
    budget_s : float
        The reach threshold, seconds.

    Returns
    -------
    Cover
        Times and nearest starts per node and per grid.

    Raises
    ------
    ValueError
        A start is not snapped.
    """
    if not starts.found.all():
        raise ValueError("every start must be snapped (take starts.found first)")
    n = graph.n_nodes
    offsets_s = np.asarray(offsets_s, dtype=float)
    tail, head, cost = _start_arcs(graph, starts, offsets_s)
    base = graph.mode(MODE).forward
    counts = np.bincount(tail, minlength=len(starts))
    matrix = sp.csr_matrix(
        (
            np.concatenate([base.data, np.maximum(cost, _MIN_COST)]),
            np.concatenate([base.indices, head.astype(np.int32)]),
            np.concatenate([base.indptr, base.indptr[-1] + np.cumsum(counts)]).astype(np.int32),
        ),
        shape=(n + len(starts), n + len(starts)),
    )
    if len(starts):
        dist, _, sources = csgraph.dijkstra(
            matrix,
            directed=True,
            indices=np.arange(n, n + len(starts)),
            min_only=True,
            limit=budget_s,
            return_predecessors=True,
        )
        dist = dist[:n]
        src = np.where(np.isfinite(dist), sources[:n] - n, -1)
    else:
        dist, src = np.full(n, np.inf), np.full(n, -1)
    every = np.arange(grids.codes.size)
    grid_time, grid_team = _to_grids(graph, grids, starts, offsets_s, dist, src, every)
    return Cover(
        graph,
        grids,
        starts,
        offsets_s,
        float(budget_s),
        tail,
        head,
        cost,
        dist,
        src,
        grid_time,
        grid_team,
    )


def _arcs_of(matrix: sp.csr_matrix, nodes: np.ndarray) -> tuple[np.ndarray, ...]:
    """(position in ``nodes``, column, cost) of every stored entry in the rows ``nodes``."""
    counts = matrix.indptr[nodes + 1] - matrix.indptr[nodes]
    rows = np.repeat(np.arange(nodes.size), counts)
    at = np.repeat(matrix.indptr[nodes] - np.cumsum(counts) + counts, counts) + np.arange(
        counts.sum()
    )
    return rows, matrix.indices[at].astype(np.int64), matrix.data[at]


def _csr_min(rows: np.ndarray, cols: np.ndarray, cost: np.ndarray, size: int) -> sp.csr_matrix:
    """A CSR graph with the cheapest of any parallel arcs (scipy would add them up)."""
    order = np.lexsort((cost, cols, rows))
    rows, cols, cost = rows[order], cols[order], cost[order]
    first = np.ones(rows.size, dtype=bool)
    first[1:] = (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])
    rows, cols, cost = rows[first], cols[first], np.maximum(cost[first], _MIN_COST)
    indptr = np.zeros(size + 1, dtype=np.int32)
    np.cumsum(np.bincount(rows, minlength=size), out=indptr[1:])
    return sp.csr_matrix((cost, cols.astype(np.int32), indptr), shape=(size, size))


def times_without(found: Cover, c: int, which: np.ndarray) -> np.ndarray:
    """Least times to the grid points ``which`` when start ``c`` is taken away.

    Parameters
    ----------
    found : Cover
        The cover with every start.
    c : int
        The start taken away (an index into ``found.starts``).
    which : numpy.ndarray
        Indices of the grids asked about.

    Returns
    -------
    numpy.ndarray
        Seconds per grid of ``which``, access legs included (``inf`` beyond the budget).
    """
    graph = found.graph
    cell = np.flatnonzero(found.src == c)
    dist = found.dist
    if cell.size:
        m = graph.mode(MODE)
        dist = found.dist.copy()
        in_cell = np.zeros(graph.n_nodes, dtype=bool)
        in_cell[cell] = True
        local = np.full(graph.n_nodes, -1, dtype=np.int64)
        local[cell] = np.arange(cell.size)
        seed = np.full(cell.size, np.inf)
        # Arcs x → y entering the cell from a node x that another team reaches first.
        rows, x, w = _arcs_of(m.backward, cell)
        outside = ~in_cell[x]
        np.minimum.at(seed, rows[outside], found.dist[x[outside]] + w[outside])
        # Other teams whose own arcs start inside the cell.
        mine = in_cell[found.arc_head] & (found.arc_tail != c)
        np.minimum.at(seed, local[found.arc_head[mine]], found.arc_cost[mine])
        # The cell's own arcs, and a virtual start (local node cell.size) to the seeds.
        rows, y, w = _arcs_of(m.forward, cell)
        inside = in_cell[y]
        seeded = np.flatnonzero(np.isfinite(seed))
        matrix = _csr_min(
            np.concatenate([rows[inside], np.full(seeded.size, cell.size)]),
            np.concatenate([local[y[inside]], seeded]),
            np.concatenate([w[inside], seed[seeded]]),
            cell.size + 1,
        )
        inner = csgraph.dijkstra(matrix, directed=True, indices=cell.size, limit=found.budget_s)
        dist[cell] = inner[: cell.size]
    src = np.where(found.src == c, -1, found.src)
    time, _ = _to_grids(
        graph, found.grids, found.starts, found.offsets_s, dist, src, which, exclude=c
    )
    return time


def loss(found: Cover, c: int) -> np.ndarray:
    """Indices of the grids covered now that no other start covers without start ``c``.

    Parameters
    ----------
    found : Cover
        The cover with every start.
    c : int
        The start taken away.

    Returns
    -------
    numpy.ndarray
        Grid indices (int64), possibly empty.
    """
    mine = np.flatnonzero((found.grid_team == c) & found.covered)
    if mine.size == 0:
        return mine
    time = times_without(found, c, mine)
    return mine[time > found.budget_s]
