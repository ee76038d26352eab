"""Residents' sample points: coverage by travel time counted in milliseconds.

The coverage rule is the circles' rule: a place is covered when it lies within the access
width of a street reached within the budget (see :mod:`geomap.routing.reach`). Cutting
every grid with the union of those streets' buffers costs seconds for a city (a union of
~20,000 buffers, then 4,418 intersections). Instead, each grid is sampled once with a
lattice of points (residents spread evenly over the grid, as coverage has always
assumed), and each point remembers, for every street segment within the access width, the
stretch of that edge (fractions from its first vertex) that lies within reach of it. A
query then only asks, per pair, whether a reached stretch overlaps the remembered one:
array operations over a few hundred thousand pairs.

The share of a grid's points covered estimates the share of its area covered: within a
few percent for one grid (a lattice of :data:`SPACING_M`), well under one percent for a
district or the city (tests compare with the polygon rule computed by PostGIS).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import shapely
import sqlalchemy as sa

from geomap.routing.graph import StreetGraph
from geomap.routing.reach import Reached

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Session

#: Lattice step of the sample points (metres); coarser when the grids would need more
#: than :data:`MAX_POINTS` points.
SPACING_M = 25.0
MAX_POINTS = 1_500_000

GRIDS_SQL = sa.text(
    "SELECT code, name, community_code, population, ST_AsBinary(geom) AS geom "
    "FROM grids ORDER BY code"
)


class GridPoints:
    """What coverage reads off a grid's sample points, for any holder of the arrays.

    The holder has ``codes``, ``names``, ``community_codes``, ``population``, ``area_m2``
    (per grid, in code order) and ``point_grid`` (each point's grid): :class:`GridSamples`
    here, the kept reach sets (:class:`geomap.routing.index.SampleIndex`) there.

    ``covered`` points are a boolean mask over the points or their indices.
    """

    @functools.cached_property
    def points_per_grid(self) -> np.ndarray:
        """Sample points per grid (int, in code order)."""
        return np.bincount(self.point_grid, minlength=self.codes.size)

    @functools.cached_property
    def point_weight(self) -> np.ndarray:
        """Residents each point stands for (its grid's population shared evenly)."""
        return self.population[self.point_grid] / np.maximum(self.points_per_grid, 1)[
            self.point_grid
        ]

    def grid_shares(self, covered: np.ndarray) -> np.ndarray:
        """Share of each grid's sample points that are ``covered`` (of its area).

        Parameters
        ----------
        covered : numpy.ndarray
            A boolean mask over the points, or their indices.

        Returns
        -------
        numpy.ndarray
            One share per grid, 0 to 1 (0 for a grid without points).
        """
        hits = np.bincount(self.point_grid[covered], minlength=self.codes.size)
        return hits / np.maximum(self.points_per_grid, 1)

    def population_of(self, covered: np.ndarray) -> float:
        """Residents represented by the ``covered`` points.

        Parameters
        ----------
        covered : numpy.ndarray
            A boolean mask over the points, or their indices.

        Returns
        -------
        float
            The sum of their weights.
        """
        return float(self.point_weight[covered].sum())

    def rows(self, shares: np.ndarray, nearest_m: np.ndarray | None = None) -> list[dict]:
        """Per-grid rows in the shape coverage rolls up (``area_m2``, ``covered_m2``...).

        Parameters
        ----------
        shares : numpy.ndarray
            Covered share per grid, as :meth:`grid_shares` gives it.
        nearest_m : numpy.ndarray, optional
            Per grid, the distance to the nearest place, metres (NaN: unknown).

        Returns
        -------
        list of dict
            code, name, community_code, population, area_m2, covered_m2 and nearest_m per grid.
        """
        nearest = np.full(self.codes.size, np.nan) if nearest_m is None else nearest_m
        return [
            {
                "code": self.codes[i],
                "name": self.names[i],
                "community_code": self.community_codes[i],
                "population": int(self.population[i]),
                "area_m2": float(self.area_m2[i]),
                "covered_m2": float(shares[i] * self.area_m2[i]),
                "nearest_m": None if np.isnan(nearest[i]) else float(nearest[i]),
            }
            for i in range(self.codes.size)
        ]


@dataclass
class GridSamples(GridPoints):
    """Sample points of every grid and the reachable street stretches near each point.

    Metric arrays are in the graph's CRS.

    Parameters
    ----------
    access_m : float
        How far from a point a street counts, metres.
    spacing_m : float
        The lattice step of the sample points, metres.
    codes, names, community_codes, population, area_m2, inner_xy : numpy.ndarray
        Per grid, in code order (``inner_xy``: a point inside each grid).
    point_grid, point_xy : numpy.ndarray
        Per point: its grid index and position.
    pair_point, pair_edge, pair_lo, pair_hi : numpy.ndarray
        Per point and nearby edge, sorted by edge: the stretch of the edge within
        ``access_m`` of the point, as fractions.
    edge_ptr : numpy.ndarray
        ``edge_ptr[e]:edge_ptr[e + 1]`` are edge ``e``'s pairs.
    """

    access_m: float
    spacing_m: float
    codes: np.ndarray
    names: np.ndarray
    community_codes: np.ndarray
    population: np.ndarray
    area_m2: np.ndarray
    inner_xy: np.ndarray
    point_grid: np.ndarray
    point_xy: np.ndarray
    pair_point: np.ndarray
    pair_edge: np.ndarray
    pair_lo: np.ndarray
    pair_hi: np.ndarray
    edge_ptr: np.ndarray

    def covered(self, stretches: Reached) -> np.ndarray:
        """Which sample points lie within the access width of a reached stretch.

        Pairs are stored grouped by edge (``edge_ptr``), so only the pairs of reached
        edges are read: a circle touches a few thousand, the whole city's reach ~10⁶.

        Parameters
        ----------
        stretches : Reached
            What a search reached.

        Returns
        -------
        numpy.ndarray
            A boolean mask over the points.
        """
        mask = np.zeros(self.point_grid.size, dtype=bool)
        if stretches.edge.size == 0 or self.pair_edge.size == 0:
            return mask
        ptr = self.edge_ptr
        is_whole = stretches.whole
        # Whole edges: every pair of the edge. (An edge is whole in one stretch at most:
        # merged stretches do not overlap.)
        whole = stretches.edge[is_whole]
        counts = ptr[whole + 1] - ptr[whole]
        take = np.repeat(ptr[whole] - np.cumsum(counts) + counts, counts) + np.arange(
            counts.sum()
        )
        mask[self.pair_point[take]] = True
        # Partly reached edges: each of their stretches against each of their pairs.
        if not is_whole.all():
            part = ~is_whole
            edge, lo_s, hi_s = stretches.edge[part], stretches.start[part], stretches.end[part]
            counts = ptr[edge + 1] - ptr[edge]
            which = np.repeat(np.arange(edge.size), counts)
            pair = np.repeat(ptr[edge] - np.cumsum(counts) + counts, counts) + np.arange(
                counts.sum()
            )
            meets = (lo_s[which] <= self.pair_hi[pair]) & (hi_s[which] >= self.pair_lo[pair])
            mask[self.pair_point[pair[meets]]] = True
        return mask


def _lattice(shapes: np.ndarray, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Points of one square lattice (``spacing``) inside each shape: (grid index, xy).

    The lattice is shared (its nodes at multiples of ``spacing`` plus half a step), so
    neighbouring grids never sample the same spot. A shape too small to hold a lattice
    point gets one point inside it, so every grid is represented.
    """
    grid_index, xy = [], []
    bounds = shapely.bounds(shapes)
    shapely.prepare(shapes)
    for i, (xmin, ymin, xmax, ymax) in enumerate(bounds):
        xs = np.arange(np.floor(xmin / spacing), np.ceil(xmax / spacing)) * spacing + spacing / 2
        ys = np.arange(np.floor(ymin / spacing), np.ceil(ymax / spacing)) * spacing + spacing / 2
        gx, gy = np.meshgrid(xs, ys)
        inside = shapely.contains_xy(shapes[i], gx.ravel(), gy.ravel())
        if not inside.any():
            inner = shapely.get_coordinates(shapely.point_on_surface(shapes[i]))
            grid_index.append(np.array([i]))
            xy.append(inner)
            continue
        grid_index.append(np.full(int(inside.sum()), i))
        xy.append(np.column_stack([gx.ravel()[inside], gy.ravel()[inside]]))
    if not xy:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 2))
    return np.concatenate(grid_index).astype(np.int64), np.vstack(xy)


def _pairs(
    graph: StreetGraph, xy: np.ndarray, spacing: float, access_m: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(point, edge, lo, hi) for every point and segment within ``access_m`` of it.

    The points sit on a known lattice, so no spatial index is needed: each segment lists
    the lattice nodes of its box grown by ``access_m``, looks up which sample point (if
    any) sits on each in a dense table, and keeps those close enough. Points off the
    lattice (one per grid too small for a node) are measured against every segment near
    them through an R-tree.
    """
    offsets, coords, cum = graph.offsets, graph.coords_xy, graph.cum_m
    counts = np.maximum(np.diff(offsets) - 1, 0)
    seg_edge = np.repeat(np.arange(graph.n_edges), counts)
    first = np.repeat(offsets[:-1], counts)
    k = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    i0 = first + k
    a, b = coords[i0], coords[i0 + 1]

    node = np.rint(xy / spacing - 0.5).astype(np.int64)
    on_lattice = np.all(np.abs(xy - (node + 0.5) * spacing) < 1e-6, axis=1)
    lattice_points = np.flatnonzero(on_lattice)
    # Which point sits on each lattice node of the grids' box (-1: none): a dense table,
    # a few megabytes for a city, read by plain indexing.
    if lattice_points.size:
        base = node[lattice_points].min(axis=0)
        size = node[lattice_points].max(axis=0) - base + 1
    else:
        base, size = np.zeros(2, dtype=np.int64), np.ones(2, dtype=np.int64)
    table = np.full((int(size[1]), int(size[0])), -1, dtype=np.int32)
    table[node[lattice_points, 1] - base[1], node[lattice_points, 0] - base[0]] = lattice_points

    lo_xy = np.floor((np.minimum(a, b) - access_m) / spacing - 0.5).astype(np.int64) - base
    hi_xy = np.ceil((np.maximum(a, b) + access_m) / spacing - 0.5).astype(np.int64) - base
    lo_xy, hi_xy = np.maximum(lo_xy, 0), np.minimum(hi_xy, size - 1)
    span = np.maximum(hi_xy - lo_xy + 1, 0)
    cells = span[:, 0] * span[:, 1]
    seg = np.repeat(np.arange(a.shape[0], dtype=np.int32), cells)
    j = np.arange(cells.sum()) - np.repeat(np.cumsum(cells) - cells, cells)
    width = span[seg, 0]
    point = table[lo_xy[seg, 1] + j // width, lo_xy[seg, 0] + j % width]
    hit = point >= 0
    point, seg = point[hit].astype(np.int64), seg[hit]

    off = np.flatnonzero(~on_lattice)
    if off.size:  # the few points off the lattice: an R-tree of the segments
        tree = shapely.STRtree(shapely.linestrings(np.stack([a, b], axis=1)))
        which, extra = tree.query(shapely.points(xy[off]), predicate="dwithin", distance=access_m)
        point = np.concatenate([point, off[which]])
        seg = np.concatenate([seg, extra])

    p, sa_, sb = xy[point], a[seg], b[seg]
    d = sb - sa_
    length = np.hypot(d[:, 0], d[:, 1])
    unit = d / np.where(length > 0, length, 1.0)[:, None]
    rel = p - sa_
    along = rel[:, 0] * unit[:, 0] + rel[:, 1] * unit[:, 1]
    across = np.abs(rel[:, 0] * unit[:, 1] - rel[:, 1] * unit[:, 0])
    # Closest distance from the point to the segment (not its line): within reach or not.
    nearest = np.hypot(np.maximum(np.maximum(-along, along - length), 0.0), across)
    keep = nearest <= access_m
    point, seg = point[keep], seg[keep]
    along, across, length = along[keep], across[keep], length[keep]
    half = np.sqrt(np.maximum(access_m**2 - across**2, 0.0))
    lo_m = np.clip(along - half, 0.0, length)
    hi_m = np.clip(along + half, 0.0, length)
    edge = seg_edge[seg]
    edge_length = cum[offsets[edge + 1] - 1]
    scale = np.where(edge_length > 0, edge_length, 1.0)
    lo = (cum[i0[seg]] + lo_m) / scale
    hi = (cum[i0[seg]] + hi_m) / scale
    # Compact types: a city has ~1.5 million points and pairs, shared by the workers.
    return point.astype(np.int32), edge.astype(np.int32), lo.astype(np.float32), hi.astype(
        np.float32
    )


def build(conn: Connection | Session, graph: StreetGraph, access_m: float) -> GridSamples:
    """Sample the current grids (read through ``conn``) and pair the points with streets.

    Parameters
    ----------
    conn : Connection or Session
        The database; the grids as its transaction sees them.
    graph : StreetGraph
        The street graph the streets are taken from.
    access_m : float
        How far from a point a street counts, metres.

    Returns
    -------
    GridSamples
        The sample points and their pairs.
    """
    rows = conn.execute(GRIDS_SQL).all()
    codes = np.array([r.code for r in rows], dtype=object)
    names = np.array([r.name for r in rows], dtype=object)
    communities = np.array([r.community_code for r in rows], dtype=object)
    population = np.array([r.population for r in rows], dtype=np.int64)
    shapes = shapely.from_wkb([bytes(r.geom) for r in rows]) if rows else np.array([])
    if len(rows):
        coords = shapely.get_coordinates(shapes)
        x, y = graph.to_metric.transform(coords[:, 0], coords[:, 1])
        shapes = shapely.set_coordinates(shapes, np.column_stack([x, y]))
    area = shapely.area(shapes) if len(rows) else np.zeros(0)
    spacing = max(SPACING_M, float(np.sqrt(area.sum() / MAX_POINTS)) if len(rows) else SPACING_M)
    point_grid, point_xy = _lattice(shapes, spacing) if len(rows) else (
        np.zeros(0, dtype=np.int64), np.zeros((0, 2))
    )  # fmt: skip
    inner = shapely.get_coordinates(shapely.point_on_surface(shapes)) if len(rows) else np.zeros(
        (0, 2)
    )
    pair_point, pair_edge, lo, hi = _pairs(graph, point_xy, spacing, access_m)
    order = np.argsort(pair_edge, kind="stable")
    pair_point, pair_edge, lo, hi = pair_point[order], pair_edge[order], lo[order], hi[order]
    edge_ptr = np.zeros(graph.n_edges + 1, dtype=np.int64)
    np.cumsum(np.bincount(pair_edge, minlength=graph.n_edges), out=edge_ptr[1:])
    return GridSamples(
        access_m=float(access_m),
        spacing_m=spacing,
        codes=codes,
        names=names,
        community_codes=communities,
        population=population,
        area_m2=area,
        inner_xy=inner,
        point_grid=point_grid.astype(np.int32),
        point_xy=point_xy,
        pair_point=pair_point,
        pair_edge=pair_edge,
        pair_lo=lo,
        pair_hi=hi,
        edge_ptr=edge_ptr,
    )
