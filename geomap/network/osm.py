"""Reading OpenStreetMap: an extract's routable ways → frames shaped like the routing tables.

:func:`read_osm` keeps the ways :data:`HIGHWAY_CLASSES` names, reads access, one-way and
posted speeds (:func:`parse_maxspeed`), and splits ways at every node two or more ways
share (and at way ends), so edges meet only at nodes. Costs are seconds, walking at
:data:`~geomap.modes.BASE_WALK_KMH`; a negative cost bars that direction.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import osmium
import pandas as pd
import shapely
from pyproj import Geod

from geomap.errors import InvalidFile, InvalidInput
from geomap.models import SRID
from geomap.modes import BASE_WALK_KMH
from geomap.vocab import NO_WALK_CLASSES, ROAD_CLASS_DRIVE_KMH

#: OSM ``highway`` values kept, and the road class each becomes (see ``vocab``). Values not
#: listed are dropped: construction, proposed, abandoned, platforms, raceways, bus-only
#: guideways and non-standard values (e.g. ``trail``) are not part of the routable network.
HIGHWAY_CLASSES: dict[str, str] = {
    "motorway": "motorway",
    "motorway_link": "motorway",
    "trunk": "trunk",
    "trunk_link": "trunk",
    "primary": "primary",
    "primary_link": "primary",
    "secondary": "secondary",
    "secondary_link": "secondary",
    "tertiary": "tertiary",
    "tertiary_link": "tertiary",
    "residential": "residential",
    "living_street": "residential",
    "service": "service",
    "unclassified": "unclassified",
    "road": "unclassified",
    "track": "unclassified",
    "footway": "footway",
    "corridor": "footway",  # indoor walkways: they connect footways through buildings
    "path": "path",
    "bridleway": "path",
    "pedestrian": "pedestrian",
    "steps": "steps",
    "cycleway": "cycleway",
}

#: Plausible posted speeds (km/h); anything outside is a tagging error and is ignored.
_MAXSPEED_RANGE = (5.0, 150.0)
_MAXSPEED_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(km/h|kmh|kph|mph|knots)?\s*$")
_UNIT_KMH = {None: 1.0, "km/h": 1.0, "kmh": 1.0, "kph": 1.0, "mph": 1.609344, "knots": 1.852}

_NO_ACCESS = frozenset({"no", "private"})
_ALLOW = frozenset({"yes", "designated", "permissive", "destination", "official"})
_ONEWAY_FORWARD = frozenset({"yes", "true", "1"})
_ONEWAY_REVERSE = frozenset({"-1", "reverse"})
_ONEWAY_NONE = frozenset({"no", "false", "0"})

#: Tags read from each way (the rest is not needed, so it is not copied out of osmium).
_TAGS = (
    "highway", "area", "access", "foot", "motor_vehicle", "motorcar", "vehicle", "oneway",
    "junction", "maxspeed", "bridge", "name", "name:zh",
)  # fmt: skip

_GEOD = Geod(ellps="WGS84")


@dataclass
class _Way:
    """A kept OSM way, already interpreted: class, modes, speed and direction."""

    osm_id: int
    road_class: str
    name: str | None
    walk: bool
    drive_kmh: float | None  # None: no cars
    drive_dir: int  # 1: with the way, -1: against it, 0: both ways
    is_bridge: bool
    refs: list[int]
    lons: list[float]
    lats: list[float]  # NaN where the extract lacks the node (ways cut at its border)


def parse_maxspeed(value: str | None) -> float | None:
    """A ``maxspeed`` tag in km/h, or None when absent or not a plausible number.

    Parameters
    ----------
    value : str or None
        The tag: ``"50"``, ``"50 km/h"``, ``"30 mph"``, ``"50;30"`` (the lowest wins).
        Symbolic values (``"none"``, ``"signals"``, ``"CN:urban"``) give None.

    Returns
    -------
    float or None
    """
    if not value:
        return None
    speeds = []
    for part in value.split(";"):
        match = _MAXSPEED_RE.match(part.strip().lower())
        if match:
            speeds.append(float(match.group(1)) * _UNIT_KMH[match.group(2)])
    if not speeds:
        return None
    speed = min(speeds)
    low, high = _MAXSPEED_RANGE
    return speed if low <= speed <= high else None


def _interpret(tags: Mapping[str, str]) -> tuple[str, bool, float | None, int] | None:
    """(road class, walkable, driving km/h or None, drive direction), or None to drop."""
    road_class = HIGHWAY_CLASSES.get(tags.get("highway", ""))
    if road_class is None or tags.get("area") == "yes":
        return None
    foot = tags.get("foot")
    # An explicit foot=yes/designated/... lets pedestrians onto a class that bars them.
    walk = foot != "no" and (road_class not in NO_WALK_CLASSES or foot in _ALLOW)
    drive_kmh = ROAD_CLASS_DRIVE_KMH[road_class]
    motor = tags.get("motor_vehicle") or tags.get("motorcar")
    if drive_kmh is not None:
        barred = tags.get("access") in _NO_ACCESS and motor not in _ALLOW
        if barred or motor in _NO_ACCESS or tags.get("vehicle") in _NO_ACCESS:
            drive_kmh = None
        else:
            drive_kmh = parse_maxspeed(tags.get("maxspeed")) or drive_kmh
    if not walk and drive_kmh is None:
        return None
    oneway = (tags.get("oneway") or "").lower()
    # Roundabouts and motorways are one-way by OSM convention unless tagged oneway=no.
    implied = tags.get("junction") in {"roundabout", "circular"} or road_class == "motorway"
    if oneway in _ONEWAY_FORWARD or (implied and oneway not in _ONEWAY_NONE | _ONEWAY_REVERSE):
        drive_dir = 1
    elif oneway in _ONEWAY_REVERSE:
        drive_dir = -1
    else:
        drive_dir = 0
    return road_class, walk, drive_kmh, drive_dir


def _read_ways(path: Path) -> list[_Way]:
    """Every routable way of the file, with node coordinates (NaN where missing)."""
    processor = (
        osmium.FileProcessor(str(path))
        # Node locations are cached before the filters run, so ways get coordinates.
        .with_locations()
        .with_filter(osmium.filter.EntityFilter(osmium.osm.WAY))
        .with_filter(osmium.filter.KeyFilter("highway"))
    )
    ways: list[_Way] = []
    for way in processor:
        tags = {key: way.tags.get(key) for key in _TAGS if key in way.tags}
        meaning = _interpret(tags)
        if meaning is None:
            continue
        road_class, walk, drive_kmh, drive_dir = meaning
        refs, lons, lats = [], [], []
        for node in way.nodes:
            if refs and node.ref == refs[-1]:
                continue  # a node repeated in a row adds nothing but a zero-length segment
            refs.append(node.ref)
            if node.location.valid():
                lons.append(node.location.lon)
                lats.append(node.location.lat)
            else:
                lons.append(math.nan)
                lats.append(math.nan)
        bridge = tags.get("bridge")
        ways.append(
            _Way(
                osm_id=way.id,
                road_class=road_class,
                name=tags.get("name:zh") or tags.get("name"),
                walk=walk,
                drive_kmh=drive_kmh,
                drive_dir=drive_dir,
                is_bridge=bridge is not None and bridge != "no",
                refs=refs,
                lons=lons,
                lats=lats,
            )
        )
    return ways


def _runs(way: _Way) -> list[tuple[int, int]]:
    """Index ranges [start, end] of the way's stretches whose nodes all have coordinates.

    Extracts cut ways at their border and keep the node ids of the nodes outside: those
    have no location, so the way is split there and only the located stretches remain.
    """
    runs, start = [], None
    for i, lon in enumerate(way.lons):
        if math.isnan(lon):
            if start is not None and i - 1 > start:
                runs.append((start, i - 1))
            start = None
        elif start is None:
            start = i
    if start is not None and len(way.lons) - 1 > start:
        runs.append((start, len(way.lons) - 1))
    return runs


def _pieces(refs: Sequence[int], start: int, end: int, split: set[int]) -> list[tuple[int, int]]:
    """Cut refs[start..end] at split nodes; a closed piece is cut again at its middle vertex."""
    pieces, first = [], start
    for i in range(start + 1, end + 1):
        if refs[i] in split or i == end:
            if refs[first] == refs[i]:
                # A loop would be an edge from a node to itself: cut it at an interior vertex
                # (there is one: repeated neighbours were removed, so a loop has >= 3 refs).
                middle = (first + i) // 2
                pieces += [(first, middle), (middle, i)]
            else:
                pieces.append((first, i))
            first = i
    return pieces


def _source_label(path: Path, source: str | None) -> str:
    if source is None:
        return f"real: OpenStreetMap contributors (ODbL), {path.name}"
    if not source.startswith(("real:", "synthetic:")):
        raise InvalidInput(
            "source must start with 'real:' or 'synthetic:' (provenance)", field="source"
        )
    return source


def read_osm(path: Path, *, source: str | None = None) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Read the routable road network of an OpenStreetMap extract.

    Parameters
    ----------
    path : Path
        An ``.osm.pbf``, ``.osm``, ``.osm.gz`` or ``.osm.bz2`` file.
    source : str, optional
        Provenance stored with every row; by default
        ``real: OpenStreetMap contributors (ODbL), <file name>``.

    Returns
    -------
    nodes, edges : GeoDataFrame
        Shaped like ``road_nodes`` (id, osm_id, geom, source) and ``road_edges``
        (id, source_node, target_node, road_class, name, length_m, walk_s, walk_reverse_s,
        drive_s, drive_reverse_s, is_bridge, osm_id, geom, source), EPSG:4326, ids 1..n.
        Edges keep their way's direction and intermediate vertices; none starts and ends
        at the same node or has zero length.

    Raises
    ------
    InvalidFile
        The file is missing, unreadable, not OSM, or holds no routable way.
    """
    path = Path(path)
    label = _source_label(path, source)
    if not path.is_file():
        raise InvalidFile("no such file", path=str(path))
    try:
        ways = _read_ways(path)
    except (RuntimeError, OSError, ValueError) as exc:
        # osmium reports every unreadable input (unknown format, bad XML/PBF, I/O) this way.
        raise InvalidFile(f"not a readable OpenStreetMap file ({exc})", path=str(path)) from exc

    runs = [(way, run) for way in ways for run in _runs(way)]
    # A node is a graph node where a stretch ends or where it is used twice or more: by
    # two ways, or twice by one way (a closed way's ends, a way crossing itself).
    uses = Counter(ref for way, (a, b) in runs for ref in way.refs[a : b + 1])
    split = {ref for ref, count in uses.items() if count > 1}
    split.update(way.refs[end] for way, run in runs for end in run)

    edge_rows: list[tuple[_Way, int, int]] = []
    for way, (a, b) in runs:
        edge_rows += [(way, i, j) for i, j in _pieces(way.refs, a, b, split)]
    if not edge_rows:
        raise InvalidFile("holds no routable road (OSM way with a highway tag)", path=str(path))

    # Geodesic lengths, vectorised: one Geod.inv over every vertex pair of every way.
    seg_start: dict[int, int] = {}  # id(way) -> index of its first segment
    lon1: list[float] = []
    lat1: list[float] = []
    lon2: list[float] = []
    lat2: list[float] = []
    for way in ways:
        seg_start[id(way)] = len(lon1)
        lon1 += way.lons[:-1]
        lat1 += way.lats[:-1]
        lon2 += way.lons[1:]
        lat2 += way.lats[1:]
    _, _, seg_m = _GEOD.inv(lon1, lat1, lon2, lat2)
    seg_cum = np.concatenate([[0.0], np.nan_to_num(np.asarray(seg_m, dtype=float)).cumsum()])

    walk_mps = BASE_WALK_KMH / 3.6
    records: list[dict[str, Any]] = []
    coords: list[tuple[float, float]] = []
    offsets: list[int] = []
    for way, i, j in edge_rows:
        base = seg_start[id(way)]
        length = float(seg_cum[base + j] - seg_cum[base + i])
        if not length > 0:
            continue  # distinct OSM nodes at the same spot: a zero-length edge is no road
        walk_s = length / walk_mps if way.walk else -1.0
        drive_s = drive_rev = -1.0
        if way.drive_kmh is not None:
            seconds = length / (way.drive_kmh / 3.6)
            drive_s = seconds if way.drive_dir >= 0 else -1.0
            drive_rev = seconds if way.drive_dir <= 0 else -1.0
        records.append(
            {
                "source_node": way.refs[i],  # OSM ids for now, renumbered below
                "target_node": way.refs[j],
                "road_class": way.road_class,
                "name": way.name,
                "length_m": length,
                "walk_s": walk_s,
                "walk_reverse_s": walk_s,
                "drive_s": drive_s,
                "drive_reverse_s": drive_rev,
                "is_bridge": way.is_bridge,
                "osm_id": way.osm_id,
            }
        )
        offsets.append(j - i + 1)
        coords += zip(way.lons[i : j + 1], way.lats[i : j + 1], strict=True)
    if not records:
        raise InvalidFile("holds no routable road of non-zero length", path=str(path))

    edges = pd.DataFrame.from_records(records)
    lines = shapely.linestrings(
        np.asarray(coords), indices=np.repeat(np.arange(len(offsets)), offsets)
    )
    # Graph nodes: the ends of the kept edges, numbered 1..n in OSM id order.
    location = {
        ref: (lon, lat)
        for way in ways
        for ref, lon, lat in zip(way.refs, way.lons, way.lats, strict=True)
    }
    osm_ids = np.unique(np.concatenate([edges["source_node"], edges["target_node"]]))
    node_id = pd.Series(np.arange(1, len(osm_ids) + 1), index=osm_ids)
    nodes = gpd.GeoDataFrame(
        {
            "id": node_id.to_numpy(),
            "osm_id": osm_ids,
            "source": label,
        },
        geometry=shapely.points([location[ref] for ref in osm_ids]),
        crs=f"EPSG:{SRID}",
    ).rename_geometry("geom")
    edges["source_node"] = node_id.loc[edges["source_node"]].to_numpy()
    edges["target_node"] = node_id.loc[edges["target_node"]].to_numpy()
    edges.insert(0, "id", np.arange(1, len(edges) + 1))
    edges["source"] = label
    edges = gpd.GeoDataFrame(edges, geometry=lines, crs=f"EPSG:{SRID}").rename_geometry("geom")
    return nodes, edges
