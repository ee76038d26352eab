"""The synthetic street lattice outside the real network, and the edge costs of every part.

One index lattice: coarse nodes ``COARSE_M`` apart in the countryside, ``FINE_STEPS`` fine lines
per coarse cell where a 1 km cell's centre holds at least ``FINE_ROAD_DENSITY`` people/km², so
the two meet without dangling ends; lines get road classes by their index, parks turn their
inner streets into footways, and streets get synthetic names. :mod:`geomap.seed._roads` joins
it to the real network.
"""

from __future__ import annotations

import numpy as np

from geomap import vocab
from geomap.seed import _names
from geomap.seed._admin import Admin

COARSE_M = 1000.0  # countryside lattice spacing
FINE_STEPS = 6  # fine lines per coarse cell: 1000 / 6 ~ 167 m
FINE_ROAD_DENSITY = 1_500.0  # people/km² at a 1 km cell's centre for a fine street lattice
N_PARKS = 24
WALK_KMH = 4.5
NOT_TRAVERSABLE = -1.0


def lattice_nodes(admin: Admin, rng: np.random.Generator):
    """Nodes of the two-level lattice: fine index ``i``/``j`` and jittered x/y in metres.

    Coarse nodes sit on every ``FINE_STEPS``-th fine line; a built-up 1 km cell adds every
    fine node of its closed square (its border nodes are shared with its neighbours).
    """
    minx, miny, maxx, maxy = admin.city.bounds
    x0 = np.floor(minx / COARSE_M) * COARSE_M
    y0 = np.floor(miny / COARSE_M) * COARSE_M
    nx_ = int(np.ceil((maxx - x0) / COARSE_M))
    ny_ = int(np.ceil((maxy - y0) / COARSE_M))
    step = COARSE_M / FINE_STEPS
    rows = FINE_STEPS * ny_ + 1  # fine j values

    a, b = np.meshgrid(np.arange(nx_ + 1), np.arange(ny_ + 1), indexing="ij")
    coarse_keys = (a * FINE_STEPS * rows + b * FINE_STEPS).ravel()

    ca, cb = np.meshgrid(np.arange(nx_), np.arange(ny_), indexing="ij")
    ca, cb = ca.ravel(), cb.ravel()
    centre_density = admin.density(x0 + (ca + 0.5) * COARSE_M, y0 + (cb + 0.5) * COARSE_M)
    built = centre_density >= FINE_ROAD_DENSITY
    ca, cb = ca[built], cb[built]
    oi, oj = np.meshgrid(np.arange(FINE_STEPS + 1), np.arange(FINE_STEPS + 1), indexing="ij")
    fi = ca[:, None] * FINE_STEPS + oi.ravel()[None, :]
    fj = cb[:, None] * FINE_STEPS + oj.ravel()[None, :]
    fine_keys = np.unique((fi * rows + fj).ravel())

    keys = np.union1d(coarse_keys, fine_keys)
    fine = np.isin(keys, fine_keys)
    i, j = keys // rows, keys % rows
    # Jitter below a quarter of the local spacing keeps the lattice planar.
    amplitude = np.where(fine, 0.2 * step, 0.2 * COARSE_M)
    x = x0 + i * step + rng.uniform(-1, 1, len(keys)) * amplitude
    y = y0 + j * step + rng.uniform(-1, 1, len(keys)) * amplitude
    return i, j, x, y


def lattice_edges(i: np.ndarray, j: np.ndarray):
    """Edges between consecutive nodes along lattice lines.

    Two nodes next to each other on a line are joined when they are one fine step apart,
    or one coarse step apart on a coarse line (the countryside). A wider gap means nodes
    were dropped in between (water, outside the city): no edge.

    Returns
    -------
    tuple of numpy.ndarray
        Source and target node indices, whether the edge is horizontal, and its length
        in fine steps.
    """
    out = []
    for along, across, horizontal in ((i, j, True), (j, i, False)):
        order = np.lexsort((along, across))
        a, b = order[:-1], order[1:]
        same_line = across[a] == across[b]
        gap = along[b] - along[a]
        coarse_hop = (
            (gap == FINE_STEPS) & (across[a] % FINE_STEPS == 0) & (along[a] % FINE_STEPS == 0)
        )
        ok = same_line & ((gap == 1) | coarse_hop)
        out.append((a[ok], b[ok], np.full(ok.sum(), horizontal), gap[ok]))
    return tuple(np.concatenate(parts) for parts in zip(*out, strict=True))


def classes(line_index: np.ndarray, fine: np.ndarray) -> np.ndarray:
    """Road class by line: arterials every few lines, local streets in between.

    Fine (city) lines: primary every 2 km, secondary every 1 km, tertiary every 500 m,
    residential otherwise. Coarse (country) lines: a trunk road every 12 km, primary
    every 6 km, secondary every 3 km, unclassified roads otherwise.
    """
    k = line_index
    city = np.select(
        [k % 12 == 0, k % 6 == 0, k % 3 == 0], ["primary", "secondary", "tertiary"], "residential"
    )
    country = np.select(
        [k % 72 == 0, k % 36 == 0, k % 18 == 0], ["trunk", "primary", "secondary"], "unclassified"
    )
    return np.where(fine, city, country).astype(object)


def parks(admin: Admin, road_class, x, y, src, dst, rng: np.random.Generator) -> np.ndarray:
    """Turn the local streets inside a few parks (discs in the dense city) into footways."""
    px, py = admin.dense_points(N_PARKS, rng)
    radius = rng.uniform(250, 550, N_PARKS)
    inside = np.zeros(len(src), dtype=bool)
    for cx, cy, r in zip(px, py, radius, strict=True):
        near = np.hypot(x - cx, y - cy) < r  # nodes in this park
        inside |= near[src] & near[dst]
    local = np.isin(road_class, ["residential", "tertiary"])
    return np.where(inside & local, "footway", road_class).astype(object)


def road_names(road_class, horizontal, line_index, rng: np.random.Generator) -> np.ndarray:
    """Names for the arterial lines (大道/路/街), none for local streets and country roads."""
    suffix = {"trunk": "快速路", "primary": "大道", "secondary": "路", "tertiary": "街"}
    named = np.isin(road_class, list(suffix))
    lines = sorted(
        {(bool(h), int(k)) for h, k in zip(horizontal[named], line_index[named], strict=True)}
    )
    pool = dict(zip(lines, _names.place_names(len(lines), rng), strict=True))
    names = np.full(len(road_class), None, dtype=object)
    for e in np.flatnonzero(named):
        names[e] = pool[(bool(horizontal[e]), int(line_index[e]))] + suffix[road_class[e]]
    return names


def costs(road_class, length, one_way):
    """Walking and driving times in seconds; negative where the way is closed."""
    walk = np.where(
        np.isin(road_class, list(vocab.NO_WALK_CLASSES)),
        NOT_TRAVERSABLE,
        length / (WALK_KMH / 3.6),
    )
    kmh = np.array([vocab.ROAD_CLASS_DRIVE_KMH[c] or np.nan for c in road_class], dtype=float)
    drive = np.where(np.isnan(kmh), NOT_TRAVERSABLE, length / (kmh / 3.6))
    drive_reverse = np.where(one_way, NOT_TRAVERSABLE, drive)
    return walk, drive, drive_reverse
