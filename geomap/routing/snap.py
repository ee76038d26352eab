"""Snapping like a routing engine: a point lands at a position along the nearest edge.

The nearest *node* is the wrong target: it may lie on an island (a car park, a gated
compound's paths) that the rest of the network cannot reach, and it moves the point to a
corner up to half a block away. So points snap to the nearest edge of the mode's largest
strongly connected component, at a ``fraction`` of the way from the edge's first vertex,
as pgRouting's ``pgr_withPoints`` takes them; the walk (or drive) from the point to that
position is the ``distance_m`` the callers price as an access leg.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from geomap.errors import Unreachable
from geomap.routing.graph import StreetGraph


@dataclass(frozen=True)
class EdgePoints:
    """Positions along edges (arrays of one length, one entry per point).

    Parameters
    ----------
    edge : numpy.ndarray
        An edge index per point (``-1``: the point found no edge within reach).
    fraction : numpy.ndarray
        The share of the edge's length from its first vertex, 0 to 1.
    distance_m : numpy.ndarray
        The straight line from the original point to the position, metres.
    xy : numpy.ndarray
        The position, shape (n, 2), in the graph's metric CRS.
    """

    edge: np.ndarray
    fraction: np.ndarray
    distance_m: np.ndarray
    xy: np.ndarray

    def __len__(self) -> int:
        return int(self.edge.size)

    @property
    def found(self) -> np.ndarray:
        """Which points snapped to an edge (a boolean mask)."""
        return self.edge >= 0

    def take(self, which: np.ndarray) -> EdgePoints:
        """The points selected by an index array or boolean mask.

        Parameters
        ----------
        which : numpy.ndarray
            Indices or a mask over the points.

        Returns
        -------
        EdgePoints
            The selected points, in that order.
        """
        return EdgePoints(
            self.edge[which], self.fraction[which], self.distance_m[which], self.xy[which]
        )

    @staticmethod
    def empty() -> EdgePoints:
        """No points at all.

        Returns
        -------
        EdgePoints
            Arrays of length 0.
        """
        return EdgePoints(
            np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0), np.zeros((0, 2))
        )


def _tree(graph: StreetGraph, mode: str) -> tuple[shapely.STRtree, np.ndarray]:
    """The index of the mode's snappable edges, and their edge indices."""

    def build() -> tuple[shapely.STRtree, np.ndarray]:
        usable = np.flatnonzero(graph.mode(mode).main_edge)
        return shapely.STRtree(graph.edge_lines(usable)), usable

    return graph.lazy(f"snap_tree:{mode}", build)


def snap_xy(
    graph: StreetGraph, mode: str, xy: np.ndarray, *, max_distance_m: float = np.inf
) -> EdgePoints:
    """Snap metric points (the graph's CRS) to the mode's main component.

    Parameters
    ----------
    graph : StreetGraph
        The street graph.
    mode : str
        ``"walk"`` or ``"drive"``.
    xy : numpy.ndarray
        Points, shape (n, 2), in the graph's metric CRS.
    max_distance_m : float, default inf
        The farthest an edge may be, metres.

    Returns
    -------
    EdgePoints
        One position per point; points with no edge within ``max_distance_m`` get
        ``edge == -1`` and NaN fields.
    """
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    n = len(xy)
    edge = np.full(n, -1, dtype=np.int64)
    fraction = np.full(n, np.nan)
    distance = np.full(n, np.nan)
    snapped = np.full((n, 2), np.nan)
    tree, usable = _tree(graph, mode)
    if n == 0 or usable.size == 0:
        return EdgePoints(edge, fraction, distance, snapped)
    points = shapely.points(xy)
    limit = None if not np.isfinite(max_distance_m) else float(max_distance_m)
    (which, hit), dist = tree.query_nearest(
        points, max_distance=limit, return_distance=True, all_matches=False
    )
    lines = graph.edge_lines(usable[hit])
    edge[which] = usable[hit]
    distance[which] = dist
    fraction[which] = shapely.line_locate_point(lines, points[which], normalized=True)
    snapped[which] = shapely.get_coordinates(
        shapely.line_interpolate_point(lines, fraction[which], normalized=True)
    )
    # A zero-length line gives NaN; its start is as good a position as any.
    fraction[which] = np.nan_to_num(fraction[which], nan=0.0)
    return EdgePoints(edge, fraction, distance, snapped)


def snap_lonlat(
    graph: StreetGraph,
    mode: str,
    lon: np.ndarray | float,
    lat: np.ndarray | float,
    *,
    max_distance_m: float = np.inf,
) -> EdgePoints:
    """Snap lon/lat points (EPSG:4326); see :func:`snap_xy`.

    Parameters
    ----------
    graph : StreetGraph
        The street graph.
    mode : str
        ``"walk"`` or ``"drive"``.
    lon, lat : numpy.ndarray or float
        The points, WGS 84 degrees.
    max_distance_m : float, default inf
        The farthest an edge may be, metres.

    Returns
    -------
    EdgePoints
        One position per point (``edge == -1``: none within reach).
    """
    x, y = graph.to_metric.transform(np.atleast_1d(lon), np.atleast_1d(lat))
    return snap_xy(graph, mode, np.column_stack([x, y]), max_distance_m=max_distance_m)


def snap_one(
    graph: StreetGraph, mode: str, lon: float, lat: float, *, max_distance_m: float
) -> EdgePoints:
    """Snap one point, or raise :class:`Unreachable` saying how far the network is.

    Parameters
    ----------
    graph : StreetGraph
        The street graph.
    mode : str
        ``"walk"`` or ``"drive"``.
    lon, lat : float
        The point, WGS 84 degrees.
    max_distance_m : float
        The farthest an edge may be, metres.

    Returns
    -------
    EdgePoints
        One position.

    Raises
    ------
    Unreachable
        No edge of the mode's main component within ``max_distance_m``.
    """
    point = snap_lonlat(graph, mode, lon, lat, max_distance_m=max_distance_m)
    if point.edge[0] < 0:
        nearest = snap_lonlat(graph, mode, lon, lat)
        if nearest.edge[0] < 0:
            raise Unreachable(f"the road network has no edge usable for mode {mode!r}")
        raise Unreachable(
            f"no road usable for mode {mode!r} within {max_distance_m:g} m of "
            f"({lon:.6f}, {lat:.6f}): the nearest is {nearest.distance_m[0]:,.0f} m away",
            field="lon",
        )
    return point
