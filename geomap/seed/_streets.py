"""The real road network of central Nanchang, and synthetic lanes inside its blocks.

Real: ``real/roads_citybrain.geojson`` (see its README): 3,041 straight segments between
2,067 intersections, with the source's length (``length_m``) and speed limit
(``speed_mps``). It is a driving network: no footways, no alleys. Every segment is kept,
with its source length for travel costs (a straight segment stands for a road that may
bend), and no junction is added between two real segments that the source does not join
(a crossing without a shared intersection is an overpass).

Synthetic: walking needs the streets the file does not have, or a walking circle is a
strip along the arterials. The real network is polygonized into blocks; each block (its
land: the Gan River is cut out) gets a lattice of local lanes turned to the block's own
orientation, ``LANE_SPACING_M`` apart where people live and ``SPARSE_LANE_SPACING_M``
elsewhere. Where a lane meets a real road, the road is split there (its pieces share the
source length in proportion, so the sum is unchanged and every real intersection stays a
node). Lanes are walk only: cars keep the real network's times. Lanes do not meet roads
where walking is barred (limits of 80 km/h and more) and never cross a real segment.
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geomap.seed import _geo

#: Speed limits at or above this (m/s; 80 km/h) bar pedestrians: expressways, trunk roads.
NO_WALK_MPS = 22.0
#: Road class by speed limit (m/s, lower bound): the README's reading of the limits.
SPEED_CLASSES: tuple[tuple[float, str], ...] = (
    (NO_WALK_MPS, "trunk"),  # 22.2: expressway / trunk (80 km/h)
    (16.0, "primary"),  # 16.7: 60 km/h
    (13.0, "secondary"),  # 13.9: 50 km/h
    (10.0, "tertiary"),  # 11.1: 40 km/h
    (5.0, "residential"),  # 5.6: 20 km/h
    (0.0, "service"),  # 2.8: 10 km/h
)
LANE_SPACING_M = 150.0  # lanes in built-up blocks (the synthetic lattice used ~167 m)
SPARSE_LANE_SPACING_M = 400.0  # lanes in blocks of farmland, parks, industry
LANE_DENSITY = 1_500.0  # people/km² at a block's centre for the closer spacing
MIN_LANE_M = 5.0  # shorter lane pieces (slivers at block corners) are dropped
MERGE_M = 2.0  # split points closer than this on one road are one junction
ON_ROAD_M = 0.01  # a lane end this close to a real segment lies on it
ALONG_ROAD_M = 1.0  # a lane whose middle is this close to a real segment runs along it


@dataclass(frozen=True)
class RealNetwork:
    """The real segments, in metres and lon/lat.

    Attributes
    ----------
    node_ids : numpy.ndarray
        Source intersection ids (text), one per node.
    node_lon, node_lat, node_x, node_y : numpy.ndarray
        Node coordinates (WGS84 and EPSG:4548).
    src, dst : numpy.ndarray
        Node indices of each segment's ends (``frm``, ``to``).
    length_m, speed_mps : numpy.ndarray
        As given by the source.
    lines : numpy.ndarray
        The segments as straight LineStrings in metres.
    """

    node_ids: np.ndarray
    node_lon: np.ndarray
    node_lat: np.ndarray
    node_x: np.ndarray
    node_y: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    length_m: np.ndarray
    speed_mps: np.ndarray
    lines: np.ndarray

    @property
    def walkable(self) -> np.ndarray:
        """Whether pedestrians may use each segment (speed limit below 80 km/h)."""
        return self.speed_mps < NO_WALK_MPS

    @property
    def road_class(self) -> np.ndarray:
        """Road class of each segment, from its speed limit (see ``SPEED_CLASSES``)."""
        out = np.empty(len(self.speed_mps), dtype=object)
        done = np.zeros(len(self.speed_mps), dtype=bool)
        for low, name in SPEED_CLASSES:
            hit = ~done & (self.speed_mps >= low)
            out[hit] = name
            done |= hit
        return out


def read(roads: gpd.GeoDataFrame) -> RealNetwork:
    """The real segments of ``roads`` (``_inputs.RealData.roads``), nodes numbered by id.

    Raises
    ------
    ValueError
        When an intersection id has two positions, or a segment is a loop: the file would
        not be the one its README describes.
    """
    starts = shapely.get_point(roads.geometry.to_numpy(), 0)
    ends = shapely.get_point(roads.geometry.to_numpy(), -1)
    ends_frame = pd.DataFrame(
        {
            "id": np.concatenate([roads["frm"].to_numpy(), roads["to"].to_numpy()]),
            "lon": np.concatenate([shapely.get_x(starts), shapely.get_x(ends)]),
            "lat": np.concatenate([shapely.get_y(starts), shapely.get_y(ends)]),
        }
    )
    positions = ends_frame.drop_duplicates()
    if positions["id"].duplicated().any():
        raise ValueError("an intersection of the real road file has two positions")
    positions = positions.sort_values("id").reset_index(drop=True)
    index = pd.Series(np.arange(len(positions)), index=positions["id"].to_numpy())
    src = index.loc[roads["frm"].to_numpy()].to_numpy()
    dst = index.loc[roads["to"].to_numpy()].to_numpy()
    if (src == dst).any():
        raise ValueError("the real road file has a segment from an intersection to itself")
    lon, lat = positions["lon"].to_numpy(), positions["lat"].to_numpy()
    x, y = _geo.lonlat_to_xy(lon, lat)
    lines = shapely.linestrings(
        np.stack([np.column_stack([x[src], y[src]]), np.column_stack([x[dst], y[dst]])], axis=1)
    )
    return RealNetwork(
        node_ids=positions["id"].to_numpy(dtype=object),
        node_lon=lon,
        node_lat=lat,
        node_x=x,
        node_y=y,
        src=src,
        dst=dst,
        length_m=roads["length_m"].to_numpy(dtype=float),
        speed_mps=roads["speed_mps"].to_numpy(dtype=float),
        lines=lines,
    )


def osm_node_ids(node_ids: np.ndarray) -> np.ndarray:
    """OpenStreetMap node ids of the source's intersection ids (the one-digit prefix dropped).

    The README: intersection ids are OSM node ids behind a one-digit prefix.
    """
    return np.array([int(str(i)[1:]) for i in node_ids], dtype=np.int64)


def blocks(net: RealNetwork) -> tuple[np.ndarray, object]:
    """The blocks the real network encloses, and their union (its extent), in metres.

    The segments are noded first (crossings become corners) for polygonizing only: the
    routable network keeps its own junctions.
    """
    noded = shapely.node(shapely.multilinestrings(net.lines))
    faces = np.asarray(
        shapely.get_parts(shapely.polygonize(shapely.get_parts(noded))), dtype=object
    )
    # Sort for a stable order (polygonize does not promise one).
    centre = shapely.centroid(faces)
    order = np.lexsort((shapely.get_x(centre), shapely.get_y(centre)))
    faces = faces[order]
    return faces, shapely.union_all(faces)


@dataclass(frozen=True)
class Lanes:
    """Synthetic lanes inside the blocks, attached to the real segments they meet.

    Attributes
    ----------
    x0, y0, x1, y1 : numpy.ndarray
        Each lane piece's ends (metres).
    on0, on1 : numpy.ndarray
        For each end, the real segment it lies on (-1: none, a junction between lanes or
        an end at the water).
    t0, t1 : numpy.ndarray
        For ends on a real segment, the fraction along it (from its ``frm`` end).
    """

    x0: np.ndarray
    y0: np.ndarray
    x1: np.ndarray
    y1: np.ndarray
    on0: np.ndarray
    on1: np.ndarray
    t0: np.ndarray
    t1: np.ndarray


def _orientation(polygon) -> float:
    """Angle (radians) of the longest side of the polygon's minimum rotated rectangle."""
    ring = np.asarray(shapely.oriented_envelope(polygon).exterior.coords)
    sides = np.diff(ring[:3], axis=0)
    longest = sides[np.argmax(np.hypot(sides[:, 0], sides[:, 1]))]
    return float(np.arctan2(longest[1], longest[0]))


def _block_lanes(part, spacing: float, rng: np.random.Generator) -> np.ndarray:
    """Straight lane pieces (2-point LineStrings) of one block, noded at their crossings."""
    angle = _orientation(part)
    cos, sin = np.cos(angle), np.sin(angle)
    cx, cy = shapely.get_coordinates(shapely.centroid(part))[0]

    def turn(coords: np.ndarray, sign: float) -> np.ndarray:
        dx, dy = coords[:, 0] - cx, coords[:, 1] - cy
        return np.column_stack([cx + cos * dx - sign * sin * dy, cy + sign * sin * dx + cos * dy])

    local = shapely.transform(part, lambda c: turn(c, -1.0))
    minx, miny, maxx, maxy = local.bounds
    lines = []
    for low, high, other_low, other_high, vertical in (
        (miny, maxy, minx, maxx, False),
        (minx, maxx, miny, maxy, True),
    ):
        offsets = np.arange(low + rng.uniform(0.3, 0.7) * spacing, high, spacing)
        for k in offsets:
            a, b = (k, other_low - 1.0), (k, other_high + 1.0)
            lines.append((a, b) if vertical else (a[::-1], b[::-1]))
    if not lines:
        return np.zeros(0, dtype=object)
    clipped = shapely.intersection(shapely.multilinestrings(shapely.linestrings(lines)), local)
    noded = shapely.get_parts(shapely.union_all(shapely.get_parts(clipped)))
    pieces = [p for p in noded if p.geom_type == "LineString"]
    if not pieces:
        return np.zeros(0, dtype=object)
    # Split lines with several vertices (union_all may merge) into 2-point pieces.
    segments = []
    for piece in pieces:
        coords = np.asarray(piece.coords)
        segments.append(np.stack([coords[:-1], coords[1:]], axis=1))
    local_ends = np.concatenate(segments)  # (n, 2, 2)
    back = turn(local_ends.reshape(-1, 2), 1.0).reshape(-1, 2, 2)
    return shapely.linestrings(back)


def lanes(
    net: RealNetwork, faces: np.ndarray, river, water, density, rng: np.random.Generator
) -> Lanes:
    """Lanes inside every block (on land), attached to the walkable real segments.

    A block the river runs through is the river itself between two bridges and the roads
    along its banks (there is no other kind in the real network): it gets no lanes.

    Parameters
    ----------
    net : RealNetwork
    faces : numpy.ndarray
        The blocks (:func:`blocks`).
    river : shapely geometry
        The Gan River's centre line (metres).
    water : shapely geometry
        The Gan River as an area (metres): no lane in it.
    density : callable
        People/km² at metric points: the lane spacing follows it.
    rng : numpy.random.Generator
        Lane offsets.

    Returns
    -------
    Lanes
    """
    faces = faces[~shapely.intersects(faces, river)]
    land = shapely.difference(faces, water)
    centre = shapely.point_on_surface(faces)
    dense = density(shapely.get_x(centre), shapely.get_y(centre)) >= LANE_DENSITY
    pieces = []
    for block, is_dense in zip(land, dense, strict=True):
        for part in shapely.get_parts(block):
            if part.geom_type != "Polygon" or part.is_empty:
                continue
            spacing = LANE_SPACING_M if is_dense else SPARSE_LANE_SPACING_M
            if part.area < 0.25 * spacing**2:
                continue  # a small block is walked around on its own roads
            pieces.append(_block_lanes(part, spacing, rng))
    lines = np.concatenate(pieces) if pieces else np.zeros(0, dtype=object)
    lines = lines[shapely.length(lines) >= MIN_LANE_M]

    # A lane never crosses a real segment (a dead end poking into the block, an overpass)
    # nor runs along one (in a sliver between two roads that nearly meet).
    tree = shapely.STRtree(net.lines)
    bad = np.zeros(len(lines), dtype=bool)
    bad[tree.query(lines, predicate="crosses")[0]] = True
    middle = shapely.line_interpolate_point(lines, 0.5, normalized=True)
    bad[tree.query(middle, predicate="dwithin", distance=ALONG_ROAD_M)[0]] = True
    lines = lines[~bad]

    coords = shapely.get_coordinates(lines).reshape(-1, 2, 2)
    ends = shapely.points(coords.reshape(-1, 2))
    hit, seg = tree.query_nearest(ends, max_distance=ON_ROAD_M, all_matches=False)
    on = np.full(len(ends), -1, dtype=np.int64)
    on[hit] = seg
    # Lanes do not lead onto roads where walking is barred: drop those pieces.
    barred = (on >= 0) & ~net.walkable[np.maximum(on, 0)]
    keep = ~barred.reshape(-1, 2).any(axis=1)
    coords, on = coords[keep], on.reshape(-1, 2)[keep]
    t = np.zeros(on.shape)
    attached = on >= 0
    t[attached] = shapely.line_locate_point(
        net.lines[on[attached]], shapely.points(coords[attached]), normalized=True
    )
    return Lanes(
        x0=coords[:, 0, 0],
        y0=coords[:, 0, 1],
        x1=coords[:, 1, 0],
        y1=coords[:, 1, 1],
        on0=on[:, 0],
        on1=on[:, 1],
        t0=t[:, 0],
        t1=t[:, 1],
    )
