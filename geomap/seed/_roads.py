"""A synthetic routable road network, with the Gan River (赣江) as a barrier.

No offline source has Nanchang's roads, so the network is a jittered lattice: 1 km apart
in the countryside, 1/6 km (~167 m) apart in built-up 1 km cells (density of at least
``FINE_ROAD_DENSITY``), both on one index lattice so the two meet without dangling ends.
Lines get road classes by their index (arterials every few lines), a few parks turn their
inner streets into footways, and some streets of the old core are one-way.

The river: the shared outline of the west-bank districts (红谷滩区, 新建区) and the
east-bank ones follows it, so its centre line is taken from there (``river_line``). Nodes
within ``RIVER_HALF_WIDTH_M`` of it are dropped with every edge that touches the water;
then bridges near the real crossings join the banks, and only the largest connected
component is kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import shapely

from geomap import vocab
from geomap.seed import _geo, _names
from geomap.seed._admin import Admin

#: Districts on each bank of the Gan River (see data/nanchang/PROVENANCE.md). The river
#: runs between 红谷滩区/新建区 and 东湖区/西湖区/青云谱区/青山湖区/南昌县; 安义县 (west of
#: 新建区) and 进贤县 (east of 南昌县) do not touch it but complete the banks.
WEST_BANK = ("360113", "360112", "360123")
EAST_BANK = ("360102", "360103", "360104", "360111", "360121", "360124")

#: Bridges, north to south: (name, latitude). Each crosses where the river line is nearest
#: to that latitude. The two marked 示意 stand for further crossings, not a named bridge.
BRIDGES: tuple[tuple[str, float], ...] = (
    ("赣江北过江通道(示意)", 28.77),
    ("英雄大桥", 28.72),
    ("八一大桥", 28.69),
    ("南昌大桥", 28.65),
    ("生米大桥", 28.60),
    ("赣江南过江通道(示意)", 28.50),
)

COARSE_M = 1000.0  # countryside lattice spacing
FINE_STEPS = 6  # fine lines per coarse cell: 1000 / 6 ~ 167 m
FINE_ROAD_DENSITY = 1_500.0  # people/km² at a 1 km cell's centre for a fine street lattice
RIVER_HALF_WIDTH_M = 200.0  # the Gan is ~0.5-1 km wide in the city; no node in the water
WALK_KMH = 4.5
N_PARKS = 24
ONE_WAY_RADIUS_M = 4_500.0  # one-way streets in the old core only
NOT_TRAVERSABLE = -1.0


def _banks(outlines) -> tuple[list, list]:
    """Polygon parts on the west and on the east bank, from outlines keyed by code.

    青山湖区's outline has a second part on the west bank (the 昌北 area): a part of an
    east-bank district that shares most of its outline with the west-bank districts is
    counted on the west bank, or the river would run around it.
    """
    west = shapely.union_all([outlines[c] for c in WEST_BANK])
    west_parts = list(shapely.get_parts(west))
    east_parts = []
    for code in EAST_BANK:
        for part in shapely.get_parts(outlines[code]):
            shared = shapely.length(shapely.intersection(part.boundary, west.boundary))
            if shared > 0.5 * part.boundary.length:
                west_parts.append(part)
            else:
                east_parts.append(part)
    return west_parts, east_parts


def river_line(boundaries: gpd.GeoDataFrame):
    """The Gan River centre line (EPSG:4326), from the district outlines.

    Parameters
    ----------
    boundaries : geopandas.GeoDataFrame
        District outlines indexed by code (``_inputs.read_boundaries``).

    Returns
    -------
    shapely.LineString or shapely.MultiLineString
        The shared outline of the west-bank and the east-bank districts, merged into one
        line where it is continuous (it is, for the bundled outlines).
    """
    west_parts, east_parts = _banks(boundaries.geometry)
    shared = shapely.intersection(
        shapely.union_all(west_parts).boundary, shapely.union_all(east_parts).boundary
    )
    lines = [g for g in shapely.get_parts(shared) if g.geom_type == "LineString"]
    return shapely.line_merge(shapely.union_all(lines))


def west_bank(outlines_m) -> object:
    """The west bank in metres (districts and parts counted with it), from outlines by code."""
    return shapely.union_all(_banks(outlines_m)[0])


@dataclass(frozen=True)
class Network:
    """The road network: node and edge rows with WGS84 coordinates."""

    nodes: pd.DataFrame  # id, lon, lat
    edges: pd.DataFrame  # table columns except geom/source, plus lon/lat of both ends


def build(admin: Admin, river_wgs84, west_m, rng: np.random.Generator) -> Network:
    """Build the road network.

    Parameters
    ----------
    admin : Admin
        The regions (city outline, density field) the lattice follows.
    river_wgs84 : shapely geometry
        The river centre line (``river_line``).
    west_m : shapely geometry
        The west bank in metres (``west_bank``), to tell the banks apart.
    rng : numpy.random.Generator
        The source of randomness of this step.

    Returns
    -------
    Network
        Nodes and edges with consecutive ids from 1, one connected component.
    """
    city = admin.city
    river_m = _geo.to_metric(shapely.segmentize(river_wgs84, 0.002))
    water = shapely.buffer(river_m, RIVER_HALF_WIDTH_M)

    i, j, x, y = _lattice_nodes(admin, rng)
    shapely.prepare(city)
    shapely.prepare(water)
    keep = shapely.contains_xy(city, x, y) & ~shapely.contains_xy(water, x, y)
    i, j, x, y = i[keep], j[keep], x[keep], y[keep]

    edges = _lattice_edges(i, j)
    src, dst, horizontal, gap = edges
    lines = shapely.linestrings(
        np.stack([np.column_stack([x[src], y[src]]), np.column_stack([x[dst], y[dst]])], axis=1)
    )
    mid_x, mid_y = (x[src] + x[dst]) / 2, (y[src] + y[dst]) / 2
    # Drop edges through the water and the few that leave a concave city outline.
    wet = np.zeros(len(src), dtype=bool)
    wet[shapely.STRtree(lines).query(water, predicate="intersects")] = True
    ok = ~wet & shapely.contains_xy(city, mid_x, mid_y)
    src, dst, horizontal, gap = src[ok], dst[ok], horizontal[ok], gap[ok]

    line_index = np.where(horizontal, j[src], i[src])
    road_class = _classes(line_index, gap == 1)
    road_class = _parks(admin, road_class, x, y, src, dst, rng)
    one_way, reverse = _one_way(admin, road_class, line_index, x, y, src, dst)
    # One-way edges point the allowed way: swap the ends of those driven "backwards".
    src, dst = np.where(reverse, dst, src), np.where(reverse, src, dst)
    names = _road_names(road_class, horizontal, line_index, rng)

    # Bridges across the river, then keep the largest connected component.
    b_src, b_dst, b_names = _bridges(river_wgs84, west_m, x, y, src, dst)
    n_bridge = len(b_src)
    src = np.concatenate([src, b_src])
    dst = np.concatenate([dst, b_dst])
    road_class = np.concatenate([road_class, np.full(n_bridge, "primary", dtype=object)])
    names = np.concatenate([names, np.array(b_names, dtype=object)])
    one_way = np.concatenate([one_way, np.zeros(n_bridge, dtype=bool)])
    is_bridge = np.r_[np.zeros(len(src) - n_bridge, dtype=bool), np.ones(n_bridge, dtype=bool)]

    graph = nx.Graph()
    graph.add_edges_from(zip(src.tolist(), dst.tolist(), strict=True))
    main = max(nx.connected_components(graph), key=len)
    node_ids = np.array(sorted(main))
    in_main = np.isin(src, node_ids)

    renumber = np.full(len(x), -1, dtype=np.int64)
    renumber[node_ids] = np.arange(1, len(node_ids) + 1)
    lon, lat = _geo.xy_to_lonlat(x[node_ids], y[node_ids])
    nodes = pd.DataFrame({"id": np.arange(1, len(node_ids) + 1), "lon": lon, "lat": lat})

    src, dst = src[in_main], dst[in_main]
    road_class, names = road_class[in_main], names[in_main]
    one_way, is_bridge = one_way[in_main], is_bridge[in_main]
    s_lon, s_lat = lon[renumber[src] - 1], lat[renumber[src] - 1]
    t_lon, t_lat = lon[renumber[dst] - 1], lat[renumber[dst] - 1]
    length = _geo.geodesic_lengths(s_lon, s_lat, t_lon, t_lat)
    walk, drive, drive_reverse = _costs(road_class, length, one_way)
    edges_frame = pd.DataFrame(
        {
            "id": np.arange(1, len(src) + 1),
            "source_node": renumber[src],
            "target_node": renumber[dst],
            "road_class": road_class,
            "name": names,
            "length_m": length,
            "walk_s": walk,
            "walk_reverse_s": walk,
            "drive_s": drive,
            "drive_reverse_s": drive_reverse,
            "is_bridge": is_bridge,
            "s_lon": s_lon,
            "s_lat": s_lat,
            "t_lon": t_lon,
            "t_lat": t_lat,
        }
    )
    return Network(nodes=nodes, edges=edges_frame)


def _lattice_nodes(admin: Admin, rng: np.random.Generator):
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


def _lattice_edges(i: np.ndarray, j: np.ndarray):
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


def _classes(line_index: np.ndarray, fine: np.ndarray) -> np.ndarray:
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


def _parks(admin: Admin, road_class, x, y, src, dst, rng: np.random.Generator) -> np.ndarray:
    """Turn the local streets inside a few parks (discs in the dense city) into footways."""
    px, py = admin.dense_points(N_PARKS, rng)
    radius = rng.uniform(250, 550, N_PARKS)
    inside = np.zeros(len(src), dtype=bool)
    for cx, cy, r in zip(px, py, radius, strict=True):
        near = np.hypot(x - cx, y - cy) < r  # nodes in this park
        inside |= near[src] & near[dst]
    local = np.isin(road_class, ["residential", "tertiary"])
    return np.where(inside & local, "footway", road_class).astype(object)


def _one_way(admin: Admin, road_class, line_index, x, y, src, dst):
    """One-way residential streets in the old core, alternating direction line by line.

    Returns
    -------
    one_way, reverse : numpy.ndarray
        Which edges are one-way, and which of those run against the lattice order (their
        ends are swapped so that source -> target is the allowed direction).
    """
    cx, cy = admin.density.core
    mid_x, mid_y = (x[src] + x[dst]) / 2, (y[src] + y[dst]) / 2
    near_core = np.hypot(mid_x - cx, mid_y - cy) < ONE_WAY_RADIUS_M
    # Only between crossings (both ends with 3+ drivable streets): a one-way street into
    # a dead end (at the river bank, at a park) would trap cars.
    drivable = road_class != "footway"
    degree = np.bincount(np.concatenate([src[drivable], dst[drivable]]), minlength=len(x))
    crossing = (degree[src] >= 3) & (degree[dst] >= 3)
    one_way = near_core & crossing & (road_class == "residential") & np.isin(line_index % 6, (1, 5))
    reverse = one_way & ((line_index // 6) % 2 == 1)
    return one_way, reverse


def _road_names(road_class, horizontal, line_index, rng: np.random.Generator) -> np.ndarray:
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


def _bridges(river_wgs84, west_m, x, y, src, dst):
    """One bridge per ``BRIDGES`` entry, between the nodes nearest the crossing point.

    Each end is taken from the largest connected piece of its bank, so a bridge never
    lands on a stray island of streets.
    """
    shapely.prepare(west_m)
    on_west = shapely.contains_xy(west_m, x, y)
    graph = nx.Graph()
    graph.add_nodes_from(range(len(x)))
    graph.add_edges_from(zip(src.tolist(), dst.tolist(), strict=True))
    main_piece = {}
    for side in (True, False):
        pieces = nx.connected_components(graph.subgraph(np.flatnonzero(on_west == side).tolist()))
        main_piece[side] = np.array(sorted(max(pieces, key=len)))

    coords = shapely.get_coordinates(shapely.segmentize(river_wgs84, 0.0005))
    b_src, b_dst, names = [], [], []
    for name, latitude in BRIDGES:
        k = int(np.argmin(np.abs(coords[:, 1] - latitude)))
        if abs(coords[k, 1] - latitude) > 0.005:  # the river does not reach that far
            continue
        px, py = _geo.lonlat_to_xy([coords[k, 0]], [coords[k, 1]])
        ends = []
        for side in (True, False):
            candidates = main_piece[side]
            d = np.hypot(x[candidates] - px[0], y[candidates] - py[0])
            ends.append(int(candidates[np.argmin(d)]))
        b_src.append(ends[0])
        b_dst.append(ends[1])
        names.append(name)
    return np.array(b_src, dtype=np.int64), np.array(b_dst, dtype=np.int64), names


def _costs(road_class, length, one_way):
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
