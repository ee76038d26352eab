"""Geometry tools of the generator: reprojection, sample lattices, seeded partitions.

Everything is computed in metres in CGCS2000 / 3-degree Gauss-Kruger CM 117E (EPSG:4548)
and converted to WGS84 (EPSG:4326) once, when the frames are assembled: Voronoi cells,
k-means and buffers are only meaningful in a metric CRS (a degree of longitude is ~98 km
in Nanchang, a degree of latitude ~111 km).
"""

from __future__ import annotations

import functools

import numpy as np
import shapely
from pyproj import Geod, Transformer

WGS84 = "EPSG:4326"
METRIC = "EPSG:4548"


@functools.cache
def _transformer(src: str, dst: str) -> Transformer:
    return Transformer.from_crs(src, dst, always_xy=True)


def _reproject(geoms, src: str, dst: str):
    transformer = _transformer(src, dst)

    def convert(coords: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geoms, convert)


def to_metric(geoms):
    """Reproject a geometry or an array of geometries from EPSG:4326 to EPSG:4548."""
    return _reproject(geoms, WGS84, METRIC)


def to_wgs84(geoms):
    """Reproject a geometry or an array of geometries from EPSG:4548 to EPSG:4326."""
    return _reproject(geoms, METRIC, WGS84)


def lonlat_to_xy(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    """Convert longitudes/latitudes (EPSG:4326) to metric x/y (EPSG:4548)."""
    x, y = _transformer(WGS84, METRIC).transform(np.asarray(lon), np.asarray(lat))
    return np.asarray(x, dtype=float), np.asarray(y, dtype=float)


def xy_to_lonlat(x, y) -> tuple[np.ndarray, np.ndarray]:
    """Convert metric x/y (EPSG:4548) to longitudes/latitudes (EPSG:4326)."""
    lon, lat = _transformer(METRIC, WGS84).transform(np.asarray(x), np.asarray(y))
    return np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)


def geodesic_lengths(lon1, lat1, lon2, lat2) -> np.ndarray:
    """Geodesic distances in metres on the WGS84 ellipsoid between point pairs."""
    _, _, dist = Geod(ellps="WGS84").inv(lon1, lat1, lon2, lat2)
    return np.asarray(dist, dtype=float)


def as_multipolygon(geom) -> shapely.MultiPolygon:
    """Return the polygonal parts of ``geom`` as one valid MultiPolygon.

    Overlay operations can return collections with stray lines or points where two
    outlines touch; those parts are dropped, and an invalid result is repaired.
    """
    if not shapely.is_valid(geom):
        geom = shapely.make_valid(geom)
    parts = [p for p in shapely.get_parts(geom) if p.geom_type in ("Polygon", "MultiPolygon")]
    polygons: list[shapely.Polygon] = []
    for part in parts:
        polygons.extend(shapely.get_parts(part))
    return shapely.MultiPolygon([p for p in polygons if not p.is_empty and p.area > 0])


def to_multipolygons(geoms: np.ndarray) -> np.ndarray:
    """Wrap the Polygons of an array into one-part MultiPolygons (others unchanged).

    Needed after ``shapely.segmentize``, which returns a one-part MultiPolygon as a Polygon.
    """
    geoms = np.array(geoms, dtype=object)
    single = shapely.get_type_id(geoms) == shapely.GeometryType.POLYGON
    if single.any():
        geoms[single] = shapely.multipolygons(geoms[single], indices=np.arange(single.sum()))
    return geoms


def lattice_in(polygon, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Centres of a regular square lattice of ``spacing`` metres that fall inside ``polygon``.

    The lattice is aligned on multiples of ``spacing`` (not on the polygon), so the lattices
    of two neighbouring polygons interleave without duplicates. Each sample stands for an
    area of ``spacing**2`` square metres.
    """
    minx, miny, maxx, maxy = polygon.bounds
    xs = np.arange(np.floor(minx / spacing), np.ceil(maxx / spacing)) * spacing + spacing / 2
    ys = np.arange(np.floor(miny / spacing), np.ceil(maxy / spacing)) * spacing + spacing / 2
    gx, gy = np.meshgrid(xs, ys)
    gx, gy = gx.ravel(), gy.ravel()
    shapely.prepare(polygon)
    inside = shapely.contains_xy(polygon, gx, gy)
    return gx[inside], gy[inside]


def nearest_centre(x: np.ndarray, y: np.ndarray, cx: np.ndarray, cy: np.ndarray) -> np.ndarray:
    """Index of the nearest centre for every sample (brute force; k is small here).

    For Voronoi seeds this is the cell each sample falls in (up to the rare pieces that
    ``partition`` hands over to a neighbour).
    """
    labels = np.empty(len(x), dtype=np.int64)
    chunk = max(1, 2_000_000 // max(len(cx), 1))  # bound the (chunk x k) distance matrix
    for start in range(0, len(x), chunk):
        sl = slice(start, start + chunk)
        d2 = (x[sl, None] - cx[None, :]) ** 2 + (y[sl, None] - cy[None, :]) ** 2
        labels[sl] = np.argmin(d2, axis=1)
    return labels


def kmeans_seeds(
    x: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray,
    k: int,
    rng: np.random.Generator,
    iterations: int = 10,
    fixed: np.ndarray | None = None,
) -> np.ndarray:
    """Choose ``k`` seed samples that split the weighted samples into equal-weight clusters.

    Weighted k-means (k-means++ start, Lloyd iterations): clusters come out smaller where
    the weights are high, so Voronoi cells of the seeds are small in dense places. Each
    centre is finally snapped to its nearest member sample, so every seed lies inside the
    polygon the samples were drawn from (a centroid of a concave cluster may not).

    Parameters
    ----------
    x, y : numpy.ndarray
        Sample coordinates in metres.
    weights : numpy.ndarray
        Positive weight of each sample (e.g. population density).
    k : int
        Number of seeds, ``1 <= k <= len(x)``.
    rng : numpy.random.Generator
        The source of randomness (k-means++ start).
    iterations : int
        Lloyd iterations; a few are enough for plausible, not optimal, cells.
    fixed : numpy.ndarray, optional
        Indices of samples that are centres already and do not move (seeds placed by an
        earlier pass); the ``k`` new seeds fill the space they leave.

    Returns
    -------
    numpy.ndarray
        ``k`` distinct indices into the samples (never one of ``fixed``).
    """
    m = len(x)
    fixed = np.zeros(0, dtype=np.int64) if fixed is None else np.asarray(fixed, dtype=np.int64)
    if not 1 <= k <= m - len(fixed):
        raise ValueError(f"cannot choose {k} seeds among {m} samples")
    w = np.asarray(weights, dtype=float)
    # k-means++: each next centre is drawn with probability ~ weight x squared distance
    # to the nearest centre so far (the fixed ones included).
    d2 = np.full(m, np.inf)
    for f in fixed:
        d2 = np.minimum(d2, (x - x[f]) ** 2 + (y - y[f]) ** 2)
    chosen: list[int] = []
    for _ in range(k):
        p = w * d2 if np.isfinite(d2).all() else w.copy()
        total = p.sum()
        nxt = int(rng.choice(m, p=p / total)) if total > 0 else int(rng.integers(m))
        chosen.append(nxt)
        d2 = np.minimum(d2, (x - x[nxt]) ** 2 + (y - y[nxt]) ** 2)
    nf = len(fixed)
    cx = np.concatenate([x[fixed], x[chosen]]).astype(float)
    cy = np.concatenate([y[fixed], y[chosen]]).astype(float)
    for _ in range(iterations):
        labels = nearest_centre(x, y, cx, cy)
        sw = np.bincount(labels, w, minlength=nf + k)
        move = sw > 0
        move[:nf] = False  # fixed centres stay where they are
        cx[move] = np.bincount(labels, w * x, minlength=nf + k)[move] / sw[move]
        cy[move] = np.bincount(labels, w * y, minlength=nf + k)[move] / sw[move]
    labels = nearest_centre(x, y, cx, cy)
    # Snap: for each new cluster, the member sample nearest to its centre.
    dist = (x - cx[labels]) ** 2 + (y - cy[labels]) ** 2
    order = np.lexsort((dist, labels))
    first = np.r_[True, labels[order][1:] != labels[order][:-1]]
    seeds = order[first & (labels[order] >= nf)]
    if len(seeds) < k:  # empty clusters (rare): top up with unused samples
        unused = np.setdiff1d(np.arange(m), np.concatenate([seeds, fixed]))
        seeds = np.concatenate([seeds, rng.choice(unused, k - len(seeds), replace=False)])
    return seeds


def partition(parent, sx: np.ndarray, sy: np.ndarray) -> np.ndarray:
    """Split ``parent`` into the Voronoi cells of the seeds, clipped to it.

    The cells tile the parent exactly: neighbouring cells share the same Voronoi edge, and
    the outer edges are the parent's own outline. Where clipping to a concave parent cuts a
    cell in several pieces, the pieces without the seed are handed to the neighbour they
    share the longest border with, so units are (nearly always) one piece.

    Parameters
    ----------
    parent : shapely.Polygon or shapely.MultiPolygon
        The unit to split, in metres.
    sx, sy : numpy.ndarray
        Seed coordinates; every seed must lie inside ``parent`` and seeds must be distinct.

    Returns
    -------
    numpy.ndarray
        One valid MultiPolygon per seed, in the order of the seeds.
    """
    if len(sx) == 1:
        return np.array([as_multipolygon(parent)], dtype=object)
    seeds = shapely.points(sx, sy)
    cells = shapely.get_parts(
        shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=parent, ordered=True)
    )
    clipped = shapely.intersection(cells, parent)
    kept: list = []
    strays: list[tuple[int, shapely.Polygon]] = []
    for i, cell in enumerate(clipped):
        pieces = list(shapely.get_parts(as_multipolygon(cell)))
        if len(pieces) <= 1:
            kept.append(pieces[0] if pieces else shapely.Polygon())
            continue
        home = next(
            (p for p in pieces if p.intersects(seeds[i])), max(pieces, key=lambda p: p.area)
        )
        kept.append(home)
        strays.extend((i, p) for p in pieces if p is not home)
    for owner, piece in strays:
        shared = shapely.length(shapely.intersection(piece.boundary, shapely.boundary(kept)))
        shared[owner] = 0.0
        target = int(np.argmax(shared)) if shared.max() > 0 else owner
        kept[target] = shapely.union(kept[target], piece)
    return np.array([as_multipolygon(g) for g in kept], dtype=object)


def random_points_in(
    polygons: np.ndarray, rng: np.random.Generator, tries: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """One uniformly random point inside each polygon (rejection sampling in the bounds).

    Vectorised: ``tries`` candidates per polygon are drawn in its bounding box at once and
    the first one inside is kept; a polygon that gets none (a thin sliver) falls back to
    its representative point, which is always inside.
    """
    polygons = np.asarray(polygons, dtype=object)
    n = len(polygons)
    bounds = shapely.bounds(polygons)
    ux = rng.random((n, tries))
    uy = rng.random((n, tries))
    cx = bounds[:, [0]] + ux * (bounds[:, [2]] - bounds[:, [0]])
    cy = bounds[:, [1]] + uy * (bounds[:, [3]] - bounds[:, [1]])
    shapely.prepare(polygons)
    inside = shapely.contains_xy(np.repeat(polygons, tries).reshape(n, tries), cx, cy)
    first = np.argmax(inside, axis=1)
    found = inside[np.arange(n), first]
    px = cx[np.arange(n), first]
    py = cy[np.arange(n), first]
    if not found.all():
        fallback = shapely.point_on_surface(polygons[~found])
        px[~found] = shapely.get_x(fallback)
        py[~found] = shapely.get_y(fallback)
    return px, py


def locate(px: np.ndarray, py: np.ndarray, polygons: np.ndarray) -> np.ndarray:
    """Index of the polygon containing each point, or -1 (points on shared edges: lowest)."""
    tree = shapely.STRtree(polygons)
    hit_point, hit_poly = tree.query(shapely.points(px, py), predicate="intersects")
    missing = len(polygons)
    result = np.full(len(px), missing, dtype=np.int64)
    np.minimum.at(result, hit_point, hit_poly)
    result[result == missing] = -1
    return result
