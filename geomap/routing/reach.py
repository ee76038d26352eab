"""What a search reaches within its budget: street segments, and the area around them.

The rule is the one the circles have always used (``geomap.analysis.reach`` holds it in
SQL, on pgRouting): an edge counts whole when the budget covers it from its two ends
together, in part when the budget runs out along it (from either end, and around a start
lying on it); the reached segments, widened by an access width (doors and courtyards off
the street), are the area. So the area never leaps a river between bridges nor spreads
where there are no streets.

The polygon is drawn from a distance field rather than by GEOS: the distance from each
point of a lattice (``cell_m``) to the nearest reached segment (through an exact distance
transform), contoured at the access width (marching squares, ``contourpy``), as routing
engines draw isochrones from a grid. Buffering each segment and taking the union gives the
same area (IoU ≥ 0.99 at the default cell, a test) 30-50× slower, a single buffer of all
segments slower still: see :func:`polygon` and ``bench/circles.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import contourpy
import numpy as np
import shapely
from scipy import ndimage
from scipy.spatial import cKDTree

from geomap.routing.graph import StreetGraph
from geomap.routing.search import Search, access_speed_ms, search
from geomap.routing.snap import EdgePoints, snap_lonlat

#: Lattice step of the distance field, as a share of the access width: a quarter (12.5 m
#: for 50 m) for small areas, up to a third (16.7 m) for large ones, whose lattice would
#: exceed LATTICE_POINTS. The contour's error is a share of a cell along the outline, so
#: a larger area keeps its IoU with the GEOS buffers of its streets at a coarser step
#: (≥ 0.99 in the tests; 15-minute walks on the Helsinki extract: 0.991 at worst), and a
#: 15-minute circle costs a quarter less.
CELL_SHARE = 0.25
MAX_CELL_SHARE = 1 / 3
LATTICE_POINTS = 8_000
#: Most lattice points one polygon may use; larger areas get a coarser lattice.
MAX_CELLS = 4_000_000


@dataclass(frozen=True)
class Reached:
    """Reached parts of edges: ``edge`` index, from fraction ``start`` to ``end``.

    An edge appears once per reached stretch (twice when reached from both ends without
    meeting, or around a start lying on it).

    Parameters
    ----------
    edge : numpy.ndarray
        Edge indices.
    start, end : numpy.ndarray
        Fractions of each edge's length from its first vertex, ``start <= end``.
    """

    edge: np.ndarray
    start: np.ndarray
    end: np.ndarray

    @property
    def whole(self) -> np.ndarray:
        """Which stretches cover their whole edge (a boolean mask)."""
        return (self.start <= 0.0) & (self.end >= 1.0)

    def shares(self) -> dict[int, float]:
        """Edge index → share of its length reached.

        Returns
        -------
        dict of int to float
            Shares from 0 to 1, stretches of one edge added up (at most 1).
        """
        out: dict[int, float] = {}
        for e, a, b in zip(self.edge.tolist(), self.start.tolist(), self.end.tolist(),
                           strict=True):  # fmt: skip
            out[e] = min(1.0, out.get(e, 0.0) + (b - a))
        return out


def from_places(
    graph: StreetGraph,
    mode: str,
    lon: np.ndarray,
    lat: np.ndarray,
    budget_s: float,
    *,
    walk_speed_kmh: float,
    max_snap_m: float,
) -> tuple[EdgePoints, Search, Reached]:
    """What is reached within ``budget_s`` from any of some places.

    Each place snaps to its nearest usable edge (none beyond ``max_snap_m``: such places
    reach nothing); the access leg to it is spent from its budget.

    Parameters
    ----------
    graph : StreetGraph
        The street graph.
    mode : str
        ``"walk"`` or ``"drive"``.
    lon, lat : numpy.ndarray
        The places, WGS 84 degrees.
    budget_s : float
        The travel time, seconds.
    walk_speed_kmh : float
        The walking speed, km/h (walk costs and every access leg).
    max_snap_m : float
        The farthest a place may be from the network, metres.

    Returns
    -------
    snaps : EdgePoints
        The places snapped.
    found : Search
        The search from all of them.
    stretches : Reached
        The reached stretches of edges.
    """
    snaps = snap_places(graph, mode, lon, lat, max_snap_m)
    offsets = snaps.distance_m / access_speed_ms(mode, walk_speed_kmh)
    found = search(graph, mode, snaps, offsets_s=np.nan_to_num(offsets), budget_s=budget_s,
                   walk_speed_kmh=walk_speed_kmh)  # fmt: skip
    return snaps, found, reached(found)


#: Place sets whose snaps a graph remembers (venue sets, provider sets: a handful).
_SNAPPED_SETS = 16


def snap_places(
    graph: StreetGraph, mode: str, lon: np.ndarray, lat: np.ndarray, max_snap_m: float
) -> EdgePoints:
    """:func:`~geomap.routing.snap.snap_lonlat`, remembered per graph for each set of places.

    Asking again about the same venues reuses their snaps; a venue that moved is a new set,
    snapped afresh.

    Parameters
    ----------
    graph : StreetGraph
        The street graph.
    mode : str
        ``"walk"`` or ``"drive"``.
    lon, lat : numpy.ndarray
        The places, WGS 84 degrees.
    max_snap_m : float
        The farthest a place may be from the network, metres.

    Returns
    -------
    EdgePoints
        One position per place.
    """
    lon, lat = np.ascontiguousarray(lon, dtype=float), np.ascontiguousarray(lat, dtype=float)
    key = (mode, float(max_snap_m), lon.tobytes(), lat.tobytes())
    known = graph.lazy("snapped_places", dict)
    if key not in known:
        if len(known) >= _SNAPPED_SETS:
            known.clear()
        known[key] = snap_lonlat(graph, mode, lon, lat, max_distance_m=max_snap_m)
    return known[key]


def to_lonlat_wkb(graph: StreetGraph, shape: shapely.Geometry | None) -> bytes | None:
    """A metric shape of ``graph`` as a WKB MultiPolygon in EPSG:4326 on the 1e-6° grid.

    The grid is the precision GeoJSON carries; reducing to it here, with validity kept,
    means no later rounding can make the polygon invalid.

    Parameters
    ----------
    graph : StreetGraph
        The graph whose metric CRS ``shape`` is in.
    shape : shapely.Geometry or None
        A polygon or multipolygon.

    Returns
    -------
    bytes or None
        The WKB; None for no shape, or an empty one.
    """
    if shape is None or shape.is_empty:
        return None
    coords = shapely.get_coordinates(shape)
    lon, lat = graph.to_lonlat.transform(coords[:, 0], coords[:, 1])
    lonlat = shapely.set_coordinates(shape, np.column_stack([lon, lat]))
    # Rounding each vertex is ten times cheaper than GEOS' topology-preserving reduction
    # and almost always stays valid; when it does not, the full reduction repairs it.
    shape = shapely.set_precision(lonlat, 1e-6, mode="pointwise")
    if not shape.is_valid:
        shape = shapely.set_precision(lonlat, 1e-6)
    polygons = shapely.get_parts(shapely.get_parts(shape))
    polygons = polygons[shapely.get_type_id(polygons) == 3]
    if polygons.size == 0:
        return None
    return shapely.to_wkb(shapely.multipolygons(polygons))


def incident_edges(graph: StreetGraph, nodes: np.ndarray) -> np.ndarray:
    """Indices of the edges with an end among ``nodes`` (node indices).

    Parameters
    ----------
    graph : StreetGraph
        The street graph.
    nodes : numpy.ndarray
        Node indices.

    Returns
    -------
    numpy.ndarray
        Edge indices, sorted, each once.
    """
    index = graph.lazy("incidence", lambda: _incidence(graph))
    ptr, edges = index
    nodes = np.asarray(nodes, dtype=np.int64)
    counts = ptr[nodes + 1] - ptr[nodes]
    if counts.sum() == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.repeat(ptr[nodes] - np.cumsum(counts) + counts, counts)
    return edge_set(graph, edges[starts + np.arange(counts.sum())])


def edge_set(graph: StreetGraph, *edges: np.ndarray) -> np.ndarray:
    """The distinct edge indices among ``edges``, sorted.

    A mark per edge of the graph: several times cheaper than sorting them when a search
    touched a few hundred.

    Parameters
    ----------
    graph : StreetGraph
        The street graph.
    *edges : numpy.ndarray
        Arrays of edge indices.

    Returns
    -------
    numpy.ndarray
        The distinct indices, ascending.
    """
    mark = np.zeros(graph.n_edges, dtype=bool)
    for some in edges:
        mark[some] = True
    return np.flatnonzero(mark)


def _incidence(graph: StreetGraph) -> tuple[np.ndarray, np.ndarray]:
    ends = np.concatenate([graph.edge_u, graph.edge_v])
    edge = np.concatenate([np.arange(graph.n_edges), np.arange(graph.n_edges)])
    order = np.argsort(ends, kind="stable")
    ptr = np.zeros(graph.n_nodes + 1, dtype=np.int64)
    np.cumsum(np.bincount(ends, minlength=graph.n_nodes), out=ptr[1:])
    return ptr, edge[order]


def reached(found: Search) -> Reached:
    """The stretches of edges reached within ``found``'s budget (a forward search).

    Parameters
    ----------
    found : Search
        A forward search.

    Returns
    -------
    Reached
        The reached stretches.
    """
    if found.reverse:
        raise ValueError("reached() needs a forward search (from the starts)")
    graph, budget = found.graph, found.budget_s
    mode = graph.mode(found.mode)
    edges = edge_set(graph, incident_edges(graph, found.reached_nodes), found.starts.edge)
    cost_u, cost_v = found.cost_s[graph.edge_u[edges]], found.cost_s[graph.edge_v[edges]]
    fw, bw = mode.fw_s[edges] * found.factor, mode.bw_s[edges] * found.factor
    with np.errstate(invalid="ignore", divide="ignore"):
        # Share walked from u along the edge, and from v against it (0 when not reached).
        from_u = np.where(np.isfinite(cost_u) & np.isfinite(fw),
                          np.clip((budget - cost_u) / fw, 0.0, 1.0), 0.0)  # fmt: skip
        from_v = np.where(np.isfinite(cost_v) & np.isfinite(bw),
                          np.clip((budget - cost_v) / bw, 0.0, 1.0), 0.0)  # fmt: skip
    whole = from_u + from_v >= 1.0
    parts = [
        (edges[whole], np.zeros(whole.sum()), np.ones(whole.sum())),
        (edges[~whole & (from_u > 0)], np.zeros((~whole & (from_u > 0)).sum()),
         from_u[~whole & (from_u > 0)]),
        (edges[~whole & (from_v > 0)], 1.0 - from_v[~whole & (from_v > 0)],
         np.ones((~whole & (from_v > 0)).sum())),
    ]  # fmt: skip
    # Around each start lying on an edge: as far as the rest of its budget goes each way.
    starts = found.starts
    with np.errstate(invalid="ignore", divide="ignore"):
        left_s = budget - found.start_offset_s
        ahead = np.nan_to_num(left_s / (mode.fw_s[starts.edge] * found.factor), nan=0.0)
        behind = np.nan_to_num(left_s / (mode.bw_s[starts.edge] * found.factor), nan=0.0)
    ok = left_s > 0
    parts.append((
        starts.edge[ok],
        np.clip(starts.fraction[ok] - np.maximum(behind[ok], 0), 0.0, 1.0),
        np.clip(starts.fraction[ok] + np.maximum(ahead[ok], 0), 0.0, 1.0),
    ))  # fmt: skip
    edge = np.concatenate([p[0] for p in parts]).astype(np.int64)
    start = np.concatenate([p[1] for p in parts])
    end = np.concatenate([p[2] for p in parts])
    keep = end > start
    return _merge(Reached(edge[keep], start[keep], end[keep]))


def _merge(stretches: Reached) -> Reached:
    """Overlapping stretches of one edge merged into one (sorted by edge, then start)."""
    if stretches.edge.size == 0:
        return stretches
    order = np.lexsort((stretches.start, stretches.edge))
    e, a, b = stretches.edge[order], stretches.start[order], stretches.end[order]
    # The furthest end so far on the same edge (fractions are in [0, 1], so 4 * edge keeps
    # edges apart in one running maximum); a stretch starting beyond it starts a group.
    running = np.maximum.accumulate(4.0 * e + b) - 4.0 * e
    new_edge = np.r_[True, e[1:] != e[:-1]]
    starts = np.flatnonzero(new_edge | (a > np.r_[-1.0, running[:-1]]))
    return Reached(e[starts], a[starts], np.maximum.reduceat(b, starts))


def segments(graph: StreetGraph, stretches: Reached) -> tuple[np.ndarray, np.ndarray]:
    """The straight pieces (metric) of the reached stretches: start points and end points.

    Each edge is a chain of vertex pairs; a pair is kept where it overlaps its stretch,
    clipped to it.

    Parameters
    ----------
    graph : StreetGraph
        The street graph.
    stretches : Reached
        The reached stretches.

    Returns
    -------
    a, b : numpy.ndarray
        The pieces' start and end points, shape (k, 2), the graph's metric CRS.
    """
    if stretches.edge.size == 0:
        return np.zeros((0, 2)), np.zeros((0, 2))
    e = stretches.edge
    first, last = graph.offsets[e], graph.offsets[e + 1]
    pairs = np.maximum(last - first - 1, 0)
    owner = np.repeat(np.arange(e.size), pairs)
    k = np.arange(pairs.sum()) - np.repeat(np.cumsum(pairs) - pairs, pairs)
    i0 = first[owner] + k
    cum, xy = graph.cum_m, graph.coords_xy
    length = cum[last - 1][owner]
    lo = stretches.start[owner] * length
    hi = stretches.end[owner] * length
    c0, c1 = cum[i0], cum[i0 + 1]
    a_m, b_m = np.maximum(c0, lo), np.minimum(c1, hi)
    keep = (b_m > a_m) | ((c1 == c0) & (c0 >= lo) & (c0 <= hi))
    i0, c0, c1, a_m, b_m = i0[keep], c0[keep], c1[keep], a_m[keep], b_m[keep]
    span = np.where(c1 > c0, c1 - c0, 1.0)
    p, q = xy[i0], xy[i0 + 1]
    ta, tb = ((a_m - c0) / span)[:, None], ((b_m - c0) / span)[:, None]
    return p + (q - p) * ta, p + (q - p) * tb


def _distance_field(
    a: np.ndarray, b: np.ndarray, reach_m: float, cell_m: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distance (m) from each lattice point to the nearest segment ``a[i]``-``b[i]``.

    Exact where it decides the contour at ``reach_m``.

    Marching squares places the contour between neighbouring lattice points from their
    values; points farther from it only need to be on the right side. So: mark the cells
    the segments pass through (samples every half cell along each segment), take scipy's
    exact Euclidean distance transform to the nearest marked cell (linear time; within
    about a cell of the truth), and measure exactly only the points within 1.75 cells of
    the contour: against the segment of their nearest sample, which is the nearest
    segment or within millimetres of it. Measuring every point against every segment
    near it costs ~25 segments per point on a dense network; this costs one.
    """
    lo = np.minimum(a, b).min(axis=0) - reach_m - 2 * cell_m
    hi = np.maximum(a, b).max(axis=0) + reach_m + 2 * cell_m
    x0, y0 = np.floor(lo / cell_m) * cell_m
    nx, ny = int((hi[0] - x0) // cell_m) + 2, int((hi[1] - y0) // cell_m) + 2
    # Samples every half cell along each segment: its start and inner points, and its end
    # only where the next segment does not start there (street polylines are chains of
    # short segments: sharing their joints halves the samples).
    step = b - a
    count = np.ceil(np.sqrt(np.einsum("ij,ij->i", step, step)) * (2.0 / cell_m))
    count = np.maximum(count.astype(np.int64), 1)
    seg = np.repeat(np.arange(a.shape[0]), count)
    t = np.arange(seg.size, dtype=float)  # the share of its segment each sample lies at
    t -= (np.cumsum(count) - count)[seg]
    t /= count[seg]
    chained = np.zeros(a.shape[0], dtype=bool)
    chained[:-1] = (b[:-1, 0] == a[1:, 0]) & (b[:-1, 1] == a[1:, 1])
    ends = np.flatnonzero(~chained)
    seg = np.concatenate([seg, ends])
    t = np.concatenate([t, np.ones(ends.size)])
    samples = a[seg] + step[seg] * t[:, None]
    ix = np.rint((samples[:, 0] - x0) / cell_m).astype(np.int64)
    iy = np.rint((samples[:, 1] - y0) / cell_m).astype(np.int64)
    unmarked = np.ones((ny, nx), dtype=bool)
    unmarked[iy, ix] = False
    field = ndimage.distance_transform_edt(unmarked) * cell_m
    # A point next to the contour is within one cell of it, and the transform is within
    # 1/sqrt(2) cell of the true distance: 1.75 cells hold every point the contour uses.
    band = np.abs(field - reach_m) <= 1.75 * cell_m
    by, bx = np.nonzero(band)
    px, py = x0 + bx * cell_m, y0 + by * cell_m
    # The segment of the nearest sample, among one sample per cell (every other one):
    # within sqrt(d² + cell²/4) - d of the nearest segment's distance d (0.4 m at 50 m
    # for 12.5 m cells), at half the cost of the tree over all of them.
    tree = cKDTree(samples[::2], balanced_tree=False, compact_nodes=False)
    _, nearest = tree.query(np.column_stack([px, py]))
    field[by, bx] = _to_segment(px, py, a, b, seg[::2][nearest])
    return x0 + np.arange(nx) * cell_m, y0 + np.arange(ny) * cell_m, field


def _to_segment(
    px: np.ndarray, py: np.ndarray, a: np.ndarray, b: np.ndarray, s: np.ndarray
) -> np.ndarray:
    """Distance from points (px, py) to segments ``a[s]``-``b[s]`` (broadcast)."""
    ax, ay = a[s, 0], a[s, 1]
    dx, dy = b[s, 0] - ax, b[s, 1] - ay
    norm = dx * dx + dy * dy
    t = np.clip(((px - ax) * dx + (py - ay) * dy) / np.where(norm > 0, norm, 1.0), 0.0, 1.0)
    return np.hypot(px - ax - t * dx, py - ay - t * dy)


def polygon(
    a: np.ndarray,
    b: np.ndarray,
    access_m: float,
    *,
    method: str = "field",
    cell_m: float | None = None,
) -> shapely.Geometry | None:
    """The area within ``access_m`` of the segments ``a[i]``-``b[i]`` (metric), or None.

    Parameters
    ----------
    a, b : numpy.ndarray
        The segments' ends, shape (k, 2), in a metric CRS.
    access_m : float
        The width around each segment, metres.
    method : {"field", "buffer"}
        ``"field"`` (default): contour of the exact distance field on a lattice;
        ``"buffer"``: GEOS, each segment buffered then the union (the reference).
    cell_m : float, optional
        Lattice step for ``"field"``; default from ``CELL_SHARE`` to ``MAX_CELL_SHARE``
        of ``access_m`` (see there), coarser when the area would need more than
        :data:`MAX_CELLS` lattice points.

    Returns
    -------
    shapely.Polygon or shapely.MultiPolygon or None
        Valid, in the segments' CRS; None when there is no segment.
    """
    if a.shape[0] == 0 or access_m <= 0:
        return None
    if method == "buffer":
        lines = shapely.linestrings(np.stack([a, b], axis=1))
        return shapely.union_all(shapely.buffer(lines, access_m, quad_segs=8))
    if method != "field":
        raise ValueError(f"unknown polygon method {method!r}")
    extent = (np.maximum(a, b).max(axis=0) - np.minimum(a, b).min(axis=0)) + 2 * access_m
    area_m2 = float(extent[0] * extent[1])
    cell = cell_m or min(max(CELL_SHARE * access_m, np.sqrt(area_m2 / LATTICE_POINTS)),
                         MAX_CELL_SHARE * access_m)  # fmt: skip
    cell = max(cell, float(np.sqrt(area_m2 / MAX_CELLS)))
    xs, ys, field = _distance_field(a, b, access_m, cell)
    generator = contourpy.contour_generator(
        xs, ys, field, fill_type=contourpy.FillType.OuterOffset, line_type=None
    )
    points, offsets = generator.filled(-1.0, access_m)
    polygons = []
    for pts, offs in zip(points, offsets, strict=True):
        rings = [pts[offs[i] : offs[i + 1]] for i in range(len(offs) - 1)]
        polygons.append(shapely.Polygon(rings[0], rings[1:]))
    if not polygons:
        return None
    shape = polygons[0] if len(polygons) == 1 else shapely.MultiPolygon(polygons)
    return shape if shape.is_valid else shapely.make_valid(shape)
