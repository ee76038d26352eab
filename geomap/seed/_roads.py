"""The routable road network: the real one where it reaches, labelled synthetic elsewhere.

Three parts, each labelled by its ``kind`` (the loader turns it into the ``source``):

* ``real``: the real drivable network of central Nanchang (:mod:`geomap.seed._streets`),
  every segment with its source length and speed limit; ``lane``: synthetic walk-only
  lanes inside its blocks, joined to its roads (the real roads are split there);
* ``lattice``: outside the real network's extent, a synthetic jittered lattice: 1 km apart
  in the countryside, 1/6 km (~167 m) apart in built-up 1 km cells (density of at least
  ``FINE_ROAD_DENSITY``), both on one index lattice so the two meet without dangling
  ends. Lines get road classes by their index (arterials every few lines) and a few parks
  turn their inner streets into footways;
* ``connector``: synthetic links from the real network's outer intersections to the
  nearest lattice node outside, which never cross the water, a real segment or a lattice
  street.

The river: the shared outline of the west-bank districts (红谷滩区, 新建区) and the
east-bank ones follows it, so its centre line is taken from there (``river_line``).
Synthetic nodes stay ``RIVER_HALF_WIDTH_M`` off it and no synthetic edge touches the water:
the Gan River is crossed only where the real network crosses it (its bridges). Finally
only the largest connected component is kept (it holds the whole real network).
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import shapely
from scipy import sparse
from scipy.sparse import csgraph

from geomap import vocab
from geomap.seed import _geo, _lattice, _streets
from geomap.seed._admin import Admin
from geomap.seed._lattice import NOT_TRAVERSABLE, WALK_KMH

#: Districts on each bank of the Gan River (see data/nanchang/PROVENANCE.md). The river
#: runs between 红谷滩区/新建区 and 东湖区/西湖区/青云谱区/青山湖区/南昌县; 安义县 (west of
#: 新建区) and 进贤县 (east of 南昌县) do not touch it but complete the banks.
WEST_BANK = ("360113", "360112", "360123")
EAST_BANK = ("360102", "360103", "360104", "360111", "360121", "360124")

RIVER_HALF_WIDTH_M = 200.0  # the Gan is ~0.5-1 km wide in the city; no synthetic node in it
LATTICE_GAP_M = 100.0  # lattice nodes keep this far outside the real network's extent
CONNECTOR_MAX_M = 1_500.0  # farthest lattice node a real outer intersection is linked to
CONNECTOR_CANDIDATES = 8  # nearest lattice nodes tried per outer intersection
CONNECTOR_CLASS = "unclassified"
LANE_CLASS = "footway"  # lanes are walk only: cars keep the real network's times
#: Edge kinds, in the order their rows are numbered.
KINDS = ("real", "lane", "connector", "lattice")


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


@dataclass(frozen=True)
class Network:
    """The road network: node and edge rows with WGS84 coordinates.

    ``nodes``: id, lon, lat, osm_id (real intersections), kind (``real`` for the real
    intersections, else the kind of the part that made the node). ``edges``: the table
    columns except geom/source, plus ``kind`` (see ``KINDS``), ``segment`` (the index of
    the real segment a real edge is a piece of, else -1) and lon/lat of both ends.
    """

    nodes: pd.DataFrame
    edges: pd.DataFrame


#: Edge columns collected before numbering, with their defaults. ``length_m`` NaN: the
#: geodesic length; ``speed_mps`` NaN: the class's speed (only real segments have one).
_EDGE_DEFAULTS = {
    "u": -1, "v": -1, "road_class": "", "name": None, "kind": "", "segment": -1,
    "length_m": np.nan, "speed_mps": np.nan, "one_way": False, "is_bridge": False,
}  # fmt: skip


class _Parts:
    """Nodes (metric and lon/lat) and edges collected from the parts, before numbering."""

    def __init__(self) -> None:
        self.node_cols: dict[str, list[np.ndarray]] = {
            k: [] for k in ("x", "y", "lon", "lat", "osm_id", "kind")
        }
        self.edge_cols: dict[str, list[np.ndarray]] = {k: [] for k in _EDGE_DEFAULTS}
        self.n_nodes = 0

    def add_nodes(self, x, y, lon, lat, kind: str, osm_id=None) -> np.ndarray:
        n = len(x)
        self.node_cols["x"].append(np.asarray(x, dtype=float))
        self.node_cols["y"].append(np.asarray(y, dtype=float))
        self.node_cols["lon"].append(np.asarray(lon, dtype=float))
        self.node_cols["lat"].append(np.asarray(lat, dtype=float))
        ids = np.full(n, -1, dtype=np.int64) if osm_id is None else np.asarray(osm_id)
        self.node_cols["osm_id"].append(ids)
        self.node_cols["kind"].append(np.full(n, kind, dtype=object))
        first = self.n_nodes
        self.n_nodes += n
        return np.arange(first, first + n)

    def add_edges(self, **columns) -> None:
        n = len(columns["u"])
        for key, values in self.edge_cols.items():
            value = columns.get(key, _EDGE_DEFAULTS[key])
            if np.ndim(value) == 0:  # one value for every edge
                dtype = object if value is None else np.asarray(value).dtype
                value = np.full(n, value, dtype=dtype)
            values.append(np.asarray(value))

    def nodes(self) -> pd.DataFrame:
        return pd.DataFrame({k: np.concatenate(v) for k, v in self.node_cols.items()})

    def edges(self) -> pd.DataFrame:
        return pd.DataFrame({k: np.concatenate(v) for k, v in self.edge_cols.items()})


def build(admin: Admin, river_wgs84, real_roads: gpd.GeoDataFrame, rng: np.random.Generator):
    """Build the road network.

    Parameters
    ----------
    admin : Admin
        The regions (city outline, density field) the synthetic parts follow.
    river_wgs84 : shapely geometry
        The river centre line (``river_line``).
    real_roads : geopandas.GeoDataFrame
        The real segments (``_inputs.RealData.roads``).
    rng : numpy.random.Generator
        The source of randomness of this step.

    Returns
    -------
    Network
        Nodes and edges with consecutive ids from 1 (edges ordered by ``KINDS``), one
        connected component holding every real intersection and segment.
    """
    river_m = _geo.to_metric(shapely.segmentize(river_wgs84, 0.002))
    water = shapely.buffer(river_m, RIVER_HALF_WIDTH_M)
    shapely.prepare(water)
    net = _streets.read(real_roads)
    faces, extent = _streets.blocks(net)
    lanes = _streets.lanes(net, faces, river_m, water, admin.density, rng)

    parts = _Parts()
    real_nodes = parts.add_nodes(
        net.node_x, net.node_y, net.node_lon, net.node_lat, "real",
        osm_id=_streets.osm_node_ids(net.node_ids),
    )  # fmt: skip
    _add_real_and_lanes(parts, net, lanes, river_wgs84)
    lattice = _outer_lattice(admin, water, extent, net, rng)
    lattice_nodes = parts.add_nodes(
        lattice["x"], lattice["y"], *_geo.xy_to_lonlat(lattice["x"], lattice["y"]), "lattice"
    )
    _add_connectors(parts, net, real_nodes, extent, water, lattice, lattice_nodes)
    parts.add_edges(
        u=lattice_nodes[lattice["src"]],
        v=lattice_nodes[lattice["dst"]],
        road_class=lattice["road_class"],
        name=lattice["name"],
        one_way=lattice["one_way"],
        kind="lattice",
    )
    return _finish(parts, net)


def _add_real_and_lanes(parts: _Parts, net: _streets.RealNetwork, lanes: _streets.Lanes,
                        river_wgs84) -> None:  # fmt: skip
    """The real segments, split where lanes meet them, and the lanes (walk only).

    Node indices of the real intersections are 0..n-1 (added first by ``build``).
    """
    lengths_m = shapely.length(net.lines)
    # Lane ends on a real segment: at an intersection when within MERGE_M of it, else at
    # a junction on the segment (ends closer than MERGE_M along one segment share one).
    on = np.concatenate([lanes.on0, lanes.on1])
    t = np.concatenate([lanes.t0, lanes.t1])
    end_node = np.full(len(on), -1, dtype=np.int64)
    attached = np.flatnonzero(on >= 0)
    seg = on[attached]
    along = t[attached] * lengths_m[seg]
    at_start = along < _streets.MERGE_M
    at_end = lengths_m[seg] - along < _streets.MERGE_M
    end_node[attached[at_start]] = net.src[seg[at_start]]
    end_node[attached[at_end & ~at_start]] = net.dst[seg[at_end & ~at_start]]
    middle = attached[~at_start & ~at_end]
    order = middle[np.lexsort((t[middle], on[middle]))]
    seg_o, along_o = on[order], t[order] * lengths_m[on[order]]
    new = np.r_[True, (seg_o[1:] != seg_o[:-1]) | (np.diff(along_o) >= _streets.MERGE_M)]
    group = np.cumsum(new) - 1
    first = order[new]
    j_seg, j_t = on[first], t[first]
    sx, sy = net.node_x[net.src[j_seg]], net.node_y[net.src[j_seg]]
    tx, ty = net.node_x[net.dst[j_seg]], net.node_y[net.dst[j_seg]]
    slon, slat = net.node_lon[net.src[j_seg]], net.node_lat[net.src[j_seg]]
    tlon, tlat = net.node_lon[net.dst[j_seg]], net.node_lat[net.dst[j_seg]]
    junctions = parts.add_nodes(
        sx + j_t * (tx - sx), sy + j_t * (ty - sy),
        slon + j_t * (tlon - slon), slat + j_t * (tlat - slat), "junction",
    )  # fmt: skip
    end_node[order] = junctions[group]

    # The real segments, cut at their junctions; pieces share the source length.
    cut_seg = np.concatenate([np.arange(len(net.lines)), np.arange(len(net.lines)), j_seg])
    cut_t = np.concatenate([np.zeros(len(net.lines)), np.ones(len(net.lines)), j_t])
    cut_node = np.concatenate([net.src, net.dst, junctions])
    order = np.lexsort((cut_t, cut_seg))
    cut_seg, cut_t, cut_node = cut_seg[order], cut_t[order], cut_node[order]
    piece = cut_seg[1:] == cut_seg[:-1]
    seg = cut_seg[:-1][piece]
    share = (cut_t[1:] - cut_t[:-1])[piece]
    crossing = shapely.intersects(
        shapely.linestrings(
            np.stack(
                [np.column_stack([net.node_lon[net.src], net.node_lat[net.src]]),
                 np.column_stack([net.node_lon[net.dst], net.node_lat[net.dst]])], axis=1)
        ),
        river_wgs84,
    )  # fmt: skip
    parts.add_edges(
        u=cut_node[:-1][piece],
        v=cut_node[1:][piece],
        road_class=net.road_class[seg],
        length_m=net.length_m[seg] * share,
        speed_mps=net.speed_mps[seg],
        is_bridge=crossing[seg],
        kind="real",
        segment=seg,
    )

    # Lane ends off the real roads: lane junctions and ends at the water, by position.
    n = len(lanes.x0)
    ex = np.concatenate([lanes.x0, lanes.x1])
    ey = np.concatenate([lanes.y0, lanes.y1])
    free = np.flatnonzero(end_node < 0)
    keys = np.round(ex[free] * 1000).astype(np.int64), np.round(ey[free] * 1000).astype(np.int64)
    unique, first, inverse = np.unique(np.column_stack(keys), axis=0, return_index=True,
                                       return_inverse=True)  # fmt: skip
    del unique
    fx, fy = ex[free][first], ey[free][first]
    lane_nodes = parts.add_nodes(fx, fy, *_geo.xy_to_lonlat(fx, fy), "lane")
    end_node[free] = lane_nodes[inverse.ravel()]
    u, v = end_node[:n], end_node[n:]
    # Ends merged into one node, and a lane twice between the same nodes: keep one.
    pair = np.sort(np.column_stack([u, v]), axis=1)
    _, keep = np.unique(pair, axis=0, return_index=True)
    keep = np.sort(keep[pair[keep, 0] != pair[keep, 1]])
    parts.add_edges(u=u[keep], v=v[keep], road_class=LANE_CLASS, kind="lane")


def _outer_lattice(admin: Admin, water, extent, net: _streets.RealNetwork,
                   rng: np.random.Generator) -> dict[str, np.ndarray]:  # fmt: skip
    """The synthetic lattice outside the real network's extent (metres, local indices).

    Nodes in the water, outside the city or within ``LATTICE_GAP_M`` of the extent are
    dropped, with every edge through the water, the extent or across a real segment.
    """
    city = admin.city
    i, j, x, y = _lattice.lattice_nodes(admin, rng)
    near_real = shapely.buffer(extent, LATTICE_GAP_M)
    for area in (city, near_real):
        shapely.prepare(area)
    keep = (
        shapely.contains_xy(city, x, y)
        & ~shapely.contains_xy(water, x, y)
        & ~shapely.contains_xy(near_real, x, y)
    )
    i, j, x, y = i[keep], j[keep], x[keep], y[keep]

    src, dst, horizontal, gap = _lattice.lattice_edges(i, j)
    lines = shapely.linestrings(
        np.stack([np.column_stack([x[src], y[src]]), np.column_stack([x[dst], y[dst]])], axis=1)
    )
    mid_x, mid_y = (x[src] + x[dst]) / 2, (y[src] + y[dst]) / 2
    blocked = np.zeros(len(src), dtype=bool)
    tree = shapely.STRtree(lines)
    for barrier in (water, extent):
        blocked[tree.query(barrier, predicate="intersects")] = True
    blocked[tree.query(net.lines, predicate="intersects")[1]] = True
    ok = ~blocked & shapely.contains_xy(city, mid_x, mid_y)
    src, dst, horizontal, gap = src[ok], dst[ok], horizontal[ok], gap[ok]

    line_index = np.where(horizontal, j[src], i[src])
    road_class = _lattice.classes(line_index, gap == 1)
    road_class = _lattice.parks(admin, road_class, x, y, src, dst, rng)
    names = _lattice.road_names(road_class, horizontal, line_index, rng)
    return {
        "x": x, "y": y, "src": src, "dst": dst, "road_class": road_class, "name": names,
        "one_way": np.zeros(len(src), dtype=bool),
    }  # fmt: skip


def _add_connectors(parts: _Parts, net: _streets.RealNetwork, real_nodes: np.ndarray, extent,
                    water, lattice: dict, lattice_nodes: np.ndarray) -> None:  # fmt: skip
    """Link each outer real intersection to a nearby lattice node, where a link may run.

    Outer: on the extent's outline or beyond it (the end of a road leaving the blocks).
    A link goes to the nearest of the ``CONNECTOR_CANDIDATES`` lattice nodes within
    ``CONNECTOR_MAX_M`` whose straight link touches no water, crosses no real segment, no
    lattice street and no link made before, and does not run through the extent.
    """
    x, y = lattice["x"], lattice["y"]
    if len(x) == 0:
        return
    inner = shapely.buffer(extent, -1.0)
    shapely.prepare(inner)
    outer = np.flatnonzero(~shapely.contains_xy(inner, net.node_x, net.node_y))
    points = shapely.points(x, y)
    near = shapely.STRtree(points)
    streets = shapely.linestrings(
        np.stack(
            [np.column_stack([x[lattice["src"]], y[lattice["src"]]]),
             np.column_stack([x[lattice["dst"]], y[lattice["dst"]]])], axis=1)
    )  # fmt: skip
    street_tree = shapely.STRtree(streets)
    real_tree = shapely.STRtree(net.lines)
    made: list = []
    u, v = [], []
    for node in outer:
        origin = shapely.Point(net.node_x[node], net.node_y[node])
        candidates = near.query(origin.buffer(CONNECTOR_MAX_M))
        if len(candidates) == 0:
            continue
        d = np.hypot(x[candidates] - origin.x, y[candidates] - origin.y)
        for c in candidates[np.lexsort((candidates, d))][:CONNECTOR_CANDIDATES]:
            link = shapely.LineString([origin, points[c]])
            if (
                link.length > CONNECTOR_MAX_M
                or link.intersects(water)
                or link.intersects(inner)
                or len(real_tree.query(link, predicate="crosses"))
                or len(street_tree.query(link, predicate="crosses"))
                or any(link.crosses(other) for other in made)
            ):
                continue
            made.append(link)
            u.append(node)
            v.append(c)
            break
    u, v = np.asarray(u, dtype=np.int64), np.asarray(v, dtype=np.int64)
    keep = _no_shortcuts(net, lattice, u, v)
    parts.add_edges(u=real_nodes[u[keep]], v=lattice_nodes[v[keep]],
                    road_class=CONNECTOR_CLASS, kind="connector")  # fmt: skip


def _drive_seconds(road_class: np.ndarray, length_m: np.ndarray) -> np.ndarray:
    """Driving time by road class (inf where cars may not go)."""
    kmh = np.array([vocab.ROAD_CLASS_DRIVE_KMH[c] or 0.0 for c in road_class], dtype=float)
    with np.errstate(divide="ignore"):
        return np.where(kmh > 0, length_m / (kmh / 3.6), np.inf)


def _no_shortcuts(net: _streets.RealNetwork, lattice: dict, real: np.ndarray,
                  near: np.ndarray) -> np.ndarray:  # fmt: skip
    """Which links to keep so that no drive between real intersections gets faster.

    A route that leaves the real network on link i and comes back on link j must not beat
    the real network between the two real ends: ``link_i + synthetic(i, j) + link_j >=
    real(i, j)``. Routes leaving and returning several times are sums of such trips, so
    checking the pairs is enough. Links in a pair that breaks the rule are dropped, the
    one in most such pairs first, until none is left (each synthetic region keeps at least
    one link: the last of its links has no partner to break the rule with).

    Parameters
    ----------
    net : RealNetwork
    lattice : dict
        From ``_outer_lattice``.
    real, near : numpy.ndarray
        Each link's real node (index into ``net``) and lattice node (local index).

    Returns
    -------
    numpy.ndarray
        A boolean mask over the links.
    """
    if len(real) < 2:
        return np.ones(len(real), dtype=bool)
    lon, lat = _geo.xy_to_lonlat(lattice["x"], lattice["y"])
    src, dst = lattice["src"], lattice["dst"]
    seconds = _drive_seconds(
        lattice["road_class"], _geo.geodesic_lengths(lon[src], lat[src], lon[dst], lat[dst])
    )
    ok = np.isfinite(seconds)
    n = len(lon)
    graph = sparse.csr_matrix(
        (np.r_[seconds[ok], seconds[ok]], (np.r_[src[ok], dst[ok]], np.r_[dst[ok], src[ok]])),
        shape=(n, n),
    )
    ends, where = np.unique(near, return_inverse=True)
    synthetic = csgraph.dijkstra(graph, directed=True, indices=ends)[:, ends][where][:, where]

    real_s = net.length_m / net.speed_mps
    m = len(net.node_ids)
    real_graph = sparse.csr_matrix(
        (np.r_[real_s, real_s], (np.r_[net.src, net.dst], np.r_[net.dst, net.src])), shape=(m, m)
    )
    starts, where_real = np.unique(real, return_inverse=True)
    real_cost = csgraph.dijkstra(real_graph, directed=True, indices=starts)[:, starts]
    real_cost = real_cost[where_real][:, where_real]

    link_s = _drive_seconds(
        np.full(len(real), CONNECTOR_CLASS),
        _geo.geodesic_lengths(net.node_lon[real], net.node_lat[real], lon[near], lat[near]),
    )
    detour = link_s[:, None] + synthetic + link_s[None, :]
    breaks = detour < real_cost * (1 - 1e-9)
    np.fill_diagonal(breaks, False)
    keep = np.ones(len(real), dtype=bool)
    while breaks.any():
        worst = int(np.argmax(breaks.sum(axis=1)))
        keep[worst] = False
        breaks[worst, :] = breaks[:, worst] = False
    return keep


def _finish(parts: _Parts, net: _streets.RealNetwork) -> Network:
    """Keep the largest connected component, number nodes and edges, price the edges."""
    nodes = parts.nodes()
    edges = parts.edges()
    graph = nx.Graph()
    graph.add_edges_from(zip(edges["u"].tolist(), edges["v"].tolist(), strict=True))
    main = max(nx.connected_components(graph), key=len)
    edges = edges[edges["u"].isin(main)]
    # A lane only a pedestrian could use, cut off from the other walkable streets (it
    # meets only roads closed to walking), serves nobody: drop it.
    walkable = (edges["kind"] != "real") | (edges["speed_mps"] < _streets.NO_WALK_MPS)
    walk = nx.Graph()
    walk.add_edges_from(zip(edges.loc[walkable, "u"], edges.loc[walkable, "v"], strict=True))
    walk_main = max(nx.connected_components(walk), key=len)
    stray_lane = (edges["kind"] == "lane") & ~edges["u"].isin(walk_main)
    edges = edges[~stray_lane]
    used = np.unique(np.concatenate([edges["u"], edges["v"]]))
    real_count = int((nodes.loc[used, "kind"] == "real").sum())
    kept_segments = edges.loc[edges["kind"] == "real", "segment"].nunique()
    if real_count != len(net.node_ids) or kept_segments != len(net.lines):
        raise RuntimeError("the network lost part of the real road network")

    # Nodes: real intersections first (by source id), then the others in creation order.
    renumber = np.full(len(nodes), -1, dtype=np.int64)
    renumber[used] = np.arange(1, len(used) + 1)
    kept = nodes.loc[used].reset_index(drop=True)
    kept.insert(0, "id", np.arange(1, len(kept) + 1))
    osm = kept["osm_id"].to_numpy(dtype=np.int64)
    kept["osm_id"] = pd.array([int(v) if v >= 0 else None for v in osm], dtype="Int64")

    rank = edges["kind"].map({k: i for i, k in enumerate(KINDS)})
    edges = edges.assign(_rank=rank.to_numpy()).sort_values("_rank", kind="stable")
    edges = edges.drop(columns="_rank").reset_index(drop=True)
    src, dst = renumber[edges["u"].to_numpy()], renumber[edges["v"].to_numpy()]
    s_lon, s_lat = kept["lon"].to_numpy()[src - 1], kept["lat"].to_numpy()[src - 1]
    t_lon, t_lat = kept["lon"].to_numpy()[dst - 1], kept["lat"].to_numpy()[dst - 1]
    geodesic = _geo.geodesic_lengths(s_lon, s_lat, t_lon, t_lat)
    given = edges["length_m"].to_numpy(dtype=float)
    length = np.where(np.isnan(given), geodesic, given)
    walk_s, drive_s, drive_reverse_s = _lattice.costs(
        edges["road_class"].to_numpy(), length, edges["one_way"].to_numpy(dtype=bool)
    )
    real = (edges["kind"] == "real").to_numpy()
    speed = edges["speed_mps"].to_numpy(dtype=float)
    # Real roads: the source's speed limit; walking along the source length, or the
    # straight line when the source gives less (a road is never shorter than it), so a
    # walk never reaches farther than its time allows.
    walk_ms = WALK_KMH / 3.6
    walk_s = np.where(
        real,
        np.where(speed < _streets.NO_WALK_MPS, np.maximum(length, geodesic) / walk_ms,
                 NOT_TRAVERSABLE),
        walk_s,
    )  # fmt: skip
    drive_s = np.where(real, length / np.where(real, speed, 1.0), drive_s)
    drive_reverse_s = np.where(real, drive_s, drive_reverse_s)
    lane = (edges["kind"] == "lane").to_numpy()
    drive_s = np.where(lane, NOT_TRAVERSABLE, drive_s)
    drive_reverse_s = np.where(lane, NOT_TRAVERSABLE, drive_reverse_s)
    edges_frame = pd.DataFrame(
        {
            "id": np.arange(1, len(edges) + 1),
            "source_node": src,
            "target_node": dst,
            "road_class": edges["road_class"].to_numpy(),
            "name": edges["name"].to_numpy(),
            "length_m": length,
            "walk_s": walk_s,
            "walk_reverse_s": walk_s,
            "drive_s": drive_s,
            "drive_reverse_s": drive_reverse_s,
            "is_bridge": edges["is_bridge"].to_numpy(dtype=bool),
            "kind": edges["kind"].to_numpy(),
            "segment": edges["segment"].to_numpy(dtype=np.int64),
            "s_lon": s_lon,
            "s_lat": s_lat,
            "t_lon": t_lon,
            "t_lat": t_lat,
        }
    )
    return Network(nodes=kept[["id", "lon", "lat", "osm_id", "kind"]], edges=edges_frame)
