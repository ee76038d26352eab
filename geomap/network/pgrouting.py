"""The road network: OpenStreetMap ways → a routable pgRouting graph, snapping, travel times.

* :func:`read_osm` turns an OSM extract (``.osm.pbf``, ``.osm``, ``.osm.gz``, ``.osm.bz2``)
  into two GeoDataFrames shaped like ``road_nodes`` and ``road_edges``: ways are split at
  every node shared by two or more ways (and at way ends), so edges meet only at nodes.
* :func:`import_network` replaces the stored network with an extract, all-or-nothing
  (:func:`load_network` does the writing, for frames already read or generated), and
  reports what lies outside the largest connected part per mode (:func:`islands`).
* :func:`snap` finds the nearest node that is usable in a mode (index-assisted, in metres).
* :func:`edges_sql` builds the edge query pgRouting reads (optionally in a box from
  :func:`bbox_around`/:func:`bbox_of`, optionally reversed); :func:`travel_times` and
  :func:`costs_from` run a one-to-many ``pgr_dijkstraCost`` with it; :func:`route_geojson`
  draws one route. :func:`cost_columns`/:func:`cost_expressions` give the analysis SQL the
  same cost columns and walking-speed scaling.
* :func:`to_networkx` builds the same graph in memory: an independent check for tests and
  the baseline of the benchmarks.

Costs are seconds. A negative cost means "not traversable in that direction" (pgRouting
drops such edges). Walking ignores one-way signs (they are for vehicles). Walking costs
are stored at :data:`BASE_WALK_KMH` and scaled in the edge query for another walking
speed, so one import serves every configured speed.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import networkx as nx
import numpy as np
import osmium
import pandas as pd
import shapely
import sqlalchemy as sa
from pyproj import Geod
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from geomap import storage
from geomap.errors import InvalidFile, InvalidInput, Unreachable
from geomap.models import SRID
from geomap.params import check_finite, check_lonlat
from geomap.vocab import NO_WALK_CLASSES, ROAD_CLASS_DRIVE_KMH

#: What runs the queries: a Core connection (imports, tests) or an ORM session (the API).
Executor = Connection | Session

#: Walking speed the stored ``walk_s``/``walk_reverse_s`` costs are computed with (km/h).
BASE_WALK_KMH = 4.5

#: Travel modes and the cost columns pgRouting reads for each. An unknown mode is an
#: InvalidInput on field ``by``: the name of the mode parameter in the API and the CLI.
MODES: dict[str, tuple[str, str]] = {
    "walk": ("walk_s", "walk_reverse_s"),
    "drive": ("drive_s", "drive_reverse_s"),
}

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


# --------------------------------------------------------------------------- reading OSM


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


def islands(nodes: pd.DataFrame, edges: pd.DataFrame) -> dict[str, dict[str, int]]:
    """How much of a network lies outside its largest connected part, mode by mode.

    An extract cut out of a city keeps pieces that reach the rest only outside it (a
    campus road behind the edge, a footway through a building), and one-way streets can
    trap cars: a point snapped there reaches almost nothing. This says how much there is,
    per mode, so an import can report it (snapping itself is not changed here).

    Parameters
    ----------
    nodes, edges : DataFrame
        As :func:`read_osm` returns.

    Returns
    -------
    dict
        For ``walk`` and ``drive``: ``nodes`` and ``edges`` usable in the mode (a node is
        usable when an edge traversable in the mode touches it), ``components`` (strongly
        connected, arcs as the mode may use them), and ``island_nodes`` /
        ``island_edges``: those outside the largest component (an edge is outside when
        one of its ends is).
    """
    from geomap.routing.graph import main_component  # (routing imports this module)

    report: dict[str, dict[str, int]] = {}
    ids, index = np.unique(
        np.concatenate([edges["source_node"].to_numpy(), edges["target_node"].to_numpy()]),
        return_inverse=True,
    )
    source, target = np.split(index, 2)
    for mode, (cost, reverse) in MODES.items():
        forward = edges[cost].to_numpy() >= 0
        backward = edges[reverse].to_numpy() >= 0
        usable = forward | backward
        tails = np.concatenate([source[forward], target[backward]])
        heads = np.concatenate([target[forward], source[backward]])
        main, components = main_component(ids.size, tails, heads)
        used = np.zeros(ids.size, dtype=bool)
        used[tails] = True
        used[heads] = True
        inside = main[source] & main[target]
        report[mode] = {
            "nodes": int(used.sum()),
            "edges": int(usable.sum()),
            "components": components,
            "island_nodes": int((used & ~main).sum()),
            "island_edges": int((usable & ~inside).sum()),
        }
    return report


# ------------------------------------------------------------------------------ storing


def load_network(
    conn: Connection,
    nodes: gpd.GeoDataFrame,
    edges: gpd.GeoDataFrame,
    *,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """Replace the stored network by ``nodes`` and ``edges`` (as :func:`read_osm` returns).

    Runs inside the caller's transaction, in a savepoint: on any error the tables are left
    as they were and the caller's transaction stays usable.

    Returns
    -------
    dict
        Rows written: ``{"road_nodes": n, "road_edges": m}``.
    """
    with conn.begin_nested():
        # DELETE, not TRUNCATE: TRUNCATE takes an exclusive lock that would block every
        # reader of a running service until commit, and fails when the transaction has
        # pending deferred FK checks on these tables; DELETE lets readers see the old
        # network until the new one commits.
        conn.execute(sa.text("DELETE FROM road_edges"))
        conn.execute(sa.text("DELETE FROM road_nodes"))
        written = {"road_nodes": storage.copy_frame(conn, "road_nodes", nodes)}
        if progress:
            progress("road_nodes", written["road_nodes"])
        written["road_edges"] = storage.copy_frame(conn, "road_edges", edges)
        if progress:
            progress("road_edges", written["road_edges"])
        # The node FKs are deferred: check them now, inside the savepoint, so a bad frame
        # fails here (and is rolled back) rather than at the caller's commit.
        fks = "road_edges_source_node_fkey, road_edges_target_node_fkey"
        conn.execute(sa.text(f"SET CONSTRAINTS {fks} IMMEDIATE"))
        conn.execute(sa.text(f"SET CONSTRAINTS {fks} DEFERRED"))
        # Fresh statistics, so the planner uses the spatial indexes on the new rows.
        conn.execute(sa.text("ANALYZE road_nodes, road_edges"))
    return written


def import_network(
    conn: Connection,
    path: Path,
    *,
    source: str | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """Replace the stored road network with the routable ways of an OSM extract.

    Parameters
    ----------
    conn : Connection
        A connection in a transaction; the caller commits. All-or-nothing (a savepoint).
    path : Path
        The OSM extract (see :func:`read_osm`).
    source : str, optional
        Provenance label (``real: ...`` or ``synthetic: ...``).
    progress : callable, optional
        Called as ``progress(table, rows_written)`` after each table.

    Returns
    -------
    dict
        Rows written, ``{"road_nodes": n, "road_edges": m}``, and what lies outside the
        largest connected part of the network, per mode (:func:`islands`):
        ``walk_island_nodes``, ``walk_island_edges``, ``drive_island_nodes``,
        ``drive_island_edges``.

    Raises
    ------
    InvalidFile
        The file is missing, unreadable, not OSM, or holds no routable way; nothing changed.
    """
    nodes, edges = read_osm(path, source=source)  # read fully before touching the tables
    written = load_network(conn, nodes, edges, progress=progress)
    for mode, counts in islands(nodes, edges).items():
        written[f"{mode}_island_nodes"] = counts["island_nodes"]
        written[f"{mode}_island_edges"] = counts["island_edges"]
    return written


# ----------------------------------------------------------------------------- snapping


@dataclass(frozen=True)
class Snap:
    """The network node a point snaps to, and how far it is (metres)."""

    node_id: int
    distance_m: float
    lon: float
    lat: float


def _check_mode(mode: str, field: str = "by") -> tuple[str, str]:
    try:
        return MODES[mode]
    except (KeyError, TypeError):
        raise InvalidInput(
            f"unknown travel mode {mode!r}; expected one of {', '.join(MODES)}", field=field
        ) from None


#: KNN candidates fetched before re-ranking by exact distance: the index orders by sphere
#: distance, ST_Distance on geography is spheroidal; the two can swap near-ties.
_SNAP_CANDIDATES = 8


def snap(
    conn: Executor,
    lon: float,
    lat: float,
    *,
    mode: str = "walk",
    max_distance_m: float = 1000,
) -> Snap:
    """The nearest network node usable in ``mode`` (at least one edge traversable in it).

    Parameters
    ----------
    conn : Connection or Session
    lon, lat : float
        The point, EPSG:4326.
    mode : {"walk", "drive"}
    max_distance_m : float
        Farthest acceptable node, metres.

    Returns
    -------
    Snap

    Raises
    ------
    InvalidInput
        Unknown mode (field ``by``), coordinates out of range, non-positive distance.
    Unreachable
        No usable node within ``max_distance_m`` (the message says how far the nearest is).
    """
    cost, reverse = _check_mode(mode)
    lon, lat = check_lonlat(lon, lat)
    limit = check_finite(max_distance_m, "max_distance_m")
    if limit <= 0:
        raise InvalidInput("max_distance_m must be positive", field="max_distance_m")
    # Column names come from MODES (a constant), never from the caller.
    usable = f"(e.{cost} >= 0 OR e.{reverse} >= 0)"
    # Two plan traps, both measured (90,000 nodes / 180,000 edges: 61 ms -> 0.15 ms):
    # * the point is written out twice rather than held in a CTE: the KNN index scan needs
    #   the right side of <-> to be a constant of the query, not a column of a relation;
    # * one EXISTS with an OR inside, not two EXISTS joined by OR: PostgreSQL turns the
    #   latter into hashed subplans that read every usable edge on each call, while this
    #   form probes the two node indexes for each KNN candidate only, nearest first.
    point = "ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography"
    rows = conn.execute(
        sa.text(
            f"""
            SELECT near.id, ST_Distance(near.geom::geography, {point}) AS d,
                   ST_X(near.geom) AS lon, ST_Y(near.geom) AS lat
            FROM (
                SELECT n.id, n.geom
                FROM road_nodes n
                WHERE EXISTS (SELECT 1 FROM road_edges e
                              WHERE (e.source_node = n.id OR e.target_node = n.id)
                                AND {usable})
                ORDER BY n.geom::geography <-> {point}
                LIMIT {_SNAP_CANDIDATES}
            ) AS near
            ORDER BY d, near.id
            LIMIT 1
            """
        ),
        {"lon": lon, "lat": lat},
    ).first()
    if rows is None:
        raise Unreachable(f"the road network has no node usable for mode {mode!r}")
    node_id, distance, node_lon, node_lat = rows
    if distance > limit:
        raise Unreachable(
            f"no road usable for mode {mode!r} within {limit:g} m of ({lon:.6f}, {lat:.6f}): "
            f"the nearest is {distance:,.0f} m away"
        )
    return Snap(int(node_id), float(distance), float(node_lon), float(node_lat))


# ------------------------------------------------------------------------------ routing


def _walk_factor(walk_speed_kmh: Any) -> float:
    speed = check_finite(walk_speed_kmh, "walk_speed_kmh")
    if not 0 < speed <= 30:
        raise InvalidInput(
            f"walking speed must be in (0, 30] km/h, got {speed:g}", field="walk_speed_kmh"
        )
    return BASE_WALK_KMH / speed


def _check_bbox(bbox: Sequence[Any]) -> tuple[float, float, float, float]:
    if bbox is None or isinstance(bbox, str) or len(bbox) != 4:
        raise InvalidInput("bbox must be (minx, miny, maxx, maxy)", field="bbox")
    minx, miny, maxx, maxy = (check_finite(v, "bbox") for v in bbox)
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise InvalidInput(
            f"bbox {bbox!r} is not (minx, miny, maxx, maxy) in lon/lat", field="bbox"
        )
    return minx, miny, maxx, maxy


def bbox_of(
    points: Iterable[tuple[float, float]], margin_m: float
) -> tuple[float, float, float, float]:
    """The lon/lat box holding ``points``, grown by ``margin_m`` metres on every side.

    A route between two points rarely strays far outside their box; the margin is the
    detour allowed (a route needing a longer one is not found in a box this size).

    Parameters
    ----------
    points : iterable of (lon, lat)
    margin_m : float

    Returns
    -------
    (minx, miny, maxx, maxy) : tuple of float
    """
    pts = [check_lonlat(lon, lat) for lon, lat in points]
    if not pts:
        raise InvalidInput("a box needs at least one point", field="points")
    margin = check_finite(margin_m, "margin_m")
    if margin < 0:
        raise InvalidInput("margin_m must be >= 0", field="margin_m")
    lons, lats = zip(*pts, strict=True)
    dlat = margin / 111_320.0
    # A degree of longitude shrinks with cos(latitude): use the box's widest latitude, so
    # the margin is at least margin_m everywhere in the box.
    widest = min(89.0, max(abs(min(lats)), abs(max(lats))) + dlat)
    dlon = margin / (111_320.0 * math.cos(math.radians(widest)))
    return (
        max(-180.0, min(lons) - dlon),
        max(-90.0, min(lats) - dlat),
        min(180.0, max(lons) + dlon),
        min(90.0, max(lats) + dlat),
    )


def bbox_around(lon: float, lat: float, radius_m: float) -> tuple[float, float, float, float]:
    """The lon/lat box holding every point within ``radius_m`` metres of (lon, lat).

    Every route whose cost is at most T stays within ``T * fastest speed`` of its start,
    so a box of that radius loses no such route. See :func:`bbox_of` for several points.
    """
    return bbox_of([(lon, lat)], radius_m)


def cost_columns(mode: str) -> tuple[str, str]:
    """The stored cost columns of ``mode``: ``("walk_s", "walk_reverse_s")`` or drive's.

    Raises
    ------
    InvalidInput
        Unknown mode (field ``by``, the name of the mode parameter in the API).
    """
    return _check_mode(mode)


def cost_expressions(mode: str, *, walk_speed_kmh: float = BASE_WALK_KMH) -> tuple[str, str]:
    """SQL expressions of the forward and reverse costs (seconds) of a road_edges row.

    Walking costs are scaled from the stored 4.5 km/h to ``walk_speed_kmh``; a negative
    (barred) cost stays negative. The text holds only constant column names and a float
    this function computed, so it may be formatted into SQL (see :func:`edges_sql`).

    Returns
    -------
    (cost, reverse_cost) : tuple of str
        E.g. ``("walk_s * 1.5", "walk_reverse_s * 1.5")``; unqualified column names.
    """
    cost, reverse = cost_columns(mode)
    if mode != "walk":
        return cost, reverse
    factor = _walk_factor(walk_speed_kmh)
    return f"{cost} * {factor!r}", f"{reverse} * {factor!r}"


def edges_sql(
    mode: str,
    bbox: Sequence[float] | None = None,
    walk_speed_kmh: float = BASE_WALK_KMH,
    *,
    reverse: bool = False,
) -> str:
    """The edge query pgRouting reads for ``mode``.

    pgRouting takes its edge query as SQL text and runs it itself, so the query cannot
    carry bound parameters. Only two kinds of value go into the text: column names from
    :data:`MODES` (a constant of this module) and numbers this function has converted with
    ``float()`` and checked to be finite. ``repr`` of a finite float is only digits, ``.``,
    ``e`` and signs, so nothing a caller passes can add SQL. The text itself is then given
    to pgRouting as a bound parameter (see :func:`costs_from`).

    Parameters
    ----------
    mode : {"walk", "drive"}
    bbox : (minx, miny, maxx, maxy), optional
        Read only edges whose box meets this lon/lat box (index-assisted): 9-16 ms instead
        of 90-160 ms on an 80,000-edge network. See :func:`bbox_around`, :func:`bbox_of`.
    walk_speed_kmh : float
        Walking speed; stored walking costs (at 4.5 km/h) are scaled by 4.5 / speed.
    reverse : bool
        The reversed graph (every arc turned around): one search from a node on it gives
        every node's cost *to* that node (many-to-one), e.g. teams travelling to a point.

    Returns
    -------
    str
        ``SELECT id, source, target, cost, reverse_cost FROM road_edges WHERE ...``

    Raises
    ------
    InvalidInput
        Unknown mode (field ``by``), bad bbox or walking speed.
    """
    cost_col, reverse_col = cost_columns(mode)
    cost, reverse_cost = cost_expressions(mode, walk_speed_kmh=walk_speed_kmh)
    # Swapping the ends while keeping both costs turns every arc around.
    ends = (
        "target_node AS source, source_node AS target"
        if reverse
        else "source_node AS source, target_node AS target"
    )
    # Edges unusable both ways are skipped here: pgRouting would ignore them anyway.
    where = f"({cost_col} >= 0 OR {reverse_col} >= 0)"
    if bbox is not None:
        box = ", ".join(repr(v) for v in _check_bbox(bbox))
        where += f" AND geom && ST_MakeEnvelope({box}, 4326)"
    return (
        f"SELECT id, {ends}, {cost} AS cost, {reverse_cost} AS reverse_cost "
        f"FROM road_edges WHERE {where}"
    )


def _node_id(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise InvalidInput(f"{field} must be a node id (integer), got {value!r}", field=field)
    return int(value)


def costs_from(
    conn: Executor, edges: str, from_node: int, to_nodes: Iterable[int]
) -> dict[int, float]:
    """Least costs from one node to many on the graph of ``edges`` (``pgr_dijkstraCost``).

    Parameters
    ----------
    conn : Connection or Session
    edges : str
        An edge query from :func:`edges_sql` (never text from a user: pgRouting runs it).
    from_node : int
    to_nodes : iterable of int

    Returns
    -------
    dict
        ``{node_id: cost}`` for every reachable target; unreachable targets (and ids not in
        the graph) are absent. ``from_node`` itself, when asked for, costs 0.
    """
    start = _node_id(from_node, "from_node")
    targets = sorted({_node_id(n, "to_nodes") for n in to_nodes})
    if not targets:
        return {}
    result = conn.execute(
        sa.text(
            "SELECT end_vid, agg_cost FROM pgr_dijkstraCost("
            "CAST(:edges AS text), CAST(:start AS bigint), CAST(:targets AS bigint[]), "
            "directed => true)"
        ),
        {"edges": edges, "start": start, "targets": targets},
    )
    costs = {int(node): float(cost) for node, cost in result}
    if start in targets:
        # pgRouting returns no row for start == end; the cost there is zero.
        costs[start] = 0.0
    return costs


def points_sql(points: Sequence[tuple[int, float]]) -> str:
    """The points query of ``pgr_withPoints*``: one row per (edge id, fraction), pid 1..n.

    Like :func:`edges_sql`, the text holds only integers and finite floats this function
    has converted itself, so nothing a caller passes can add SQL.
    """
    rows = []
    for pid, (edge, fraction) in enumerate(points, start=1):
        f = check_finite(fraction, "fraction")
        if not 0.0 <= f <= 1.0:
            raise InvalidInput(f"fraction {f!r} is not in [0, 1]", field="fraction")
        rows.append(f"({pid}, {_node_id(int(edge), 'edge_id')}, {f!r})")
    if not rows:
        raise InvalidInput("no points", field="points")
    return (
        "SELECT pid, edge_id, fraction FROM (VALUES "
        + ", ".join(rows)
        + ") AS p(pid, edge_id, fraction)"
    )


def costs_between_points(
    conn: Executor,
    mode: str,
    points: Sequence[tuple[int, float]],
    start: int,
    *,
    reverse: bool = False,
    walk_speed_kmh: float = BASE_WALK_KMH,
) -> dict[int, float]:
    """Least costs (seconds) from point ``start`` to every other point (``reverse``: from
    every point to ``start``), with ``pgr_withPointsCost``: positions along edges, as the
    in-memory engine (:mod:`geomap.routing`) takes them. The in-database reference.

    Parameters
    ----------
    points : sequence of (edge id, fraction)
        Positions along ``road_edges`` (fraction from the edge's first vertex).
    start : int
        Index into ``points``.

    Returns
    -------
    dict
        ``{point index: seconds}`` for every reachable other point.
    """
    edges = edges_sql(mode, walk_speed_kmh=walk_speed_kmh)
    others = [-(i + 1) for i in range(len(points)) if i != start]
    if not others:
        return {}
    if reverse:
        sql = (
            "SELECT start_pid AS pid, agg_cost FROM pgr_withPointsCost("
            "CAST(:edges AS text), CAST(:points AS text), CAST(:others AS bigint[]), "
            "CAST(:start AS bigint), directed => true, driving_side => 'b')"
        )
    else:
        sql = (
            "SELECT end_pid AS pid, agg_cost FROM pgr_withPointsCost("
            "CAST(:edges AS text), CAST(:points AS text), CAST(:start AS bigint), "
            "CAST(:others AS bigint[]), directed => true, driving_side => 'b')"
        )
    rows = conn.execute(
        sa.text(sql),
        {"edges": edges, "points": points_sql(points), "start": -(start + 1), "others": others},
    ).all()
    return {-int(pid) - 1: float(cost) for pid, cost in rows}


def travel_times(
    conn: Executor,
    from_node: int,
    to_nodes: Iterable[int],
    mode: str,
    *,
    bbox: Sequence[float] | None = None,
    walk_speed_kmh: float = BASE_WALK_KMH,
) -> dict[int, float]:
    """Shortest travel times (seconds) from one node to many, on the stored network.

    One ``pgr_dijkstraCost`` call (one-to-many, directed: one-way streets are respected).

    Parameters
    ----------
    conn : Connection or Session
    from_node : int
        A ``road_nodes.id`` (e.g. ``snap(...).node_id``).
    to_nodes : iterable of int
        Target node ids.
    mode : {"walk", "drive"}
    bbox : (minx, miny, maxx, maxy), optional
        Restrict the graph to this box (faster; routes leaving it are not found).
    walk_speed_kmh : float
        Walking speed for mode "walk".

    Returns
    -------
    dict
        ``{node_id: seconds}`` for every reachable target; unreachable targets (and ids not
        in the network) are absent. ``from_node`` itself, when asked for, is 0.
    """
    sql = edges_sql(mode, bbox=bbox, walk_speed_kmh=walk_speed_kmh)
    return costs_from(conn, sql, from_node, to_nodes)


def route_geojson(
    conn: Executor,
    from_node: int,
    to_node: int,
    mode: str,
    *,
    walk_speed_kmh: float = BASE_WALK_KMH,
    bbox: Sequence[float] | None = None,
) -> str | None:
    """The fastest route between two nodes as a GeoJSON LineString (lon/lat, 7 decimals).

    Edges are oriented in the direction of travel and joined in order, so the line runs
    from ``from_node`` to ``to_node``. None when there is no route (or the nodes are one).
    """
    sql = edges_sql(mode, bbox=bbox, walk_speed_kmh=walk_speed_kmh)
    return conn.execute(
        sa.text(
            """
            SELECT ST_AsGeoJSON(ST_MakeLine(
                       CASE WHEN p.node = e.source_node THEN e.geom ELSE ST_Reverse(e.geom) END
                       ORDER BY p.seq), 7)
            FROM pgr_dijkstra(CAST(:edges AS text), CAST(:a AS bigint), CAST(:b AS bigint),
                              directed => true) AS p
            JOIN road_edges e ON e.id = p.edge
            """
        ),
        {
            "edges": sql,
            "a": _node_id(from_node, "from_node"),
            "b": _node_id(to_node, "to_node"),
        },
    ).scalar()


def to_networkx(
    nodes: pd.DataFrame,
    edges: pd.DataFrame,
    mode: str,
    *,
    walk_speed_kmh: float = BASE_WALK_KMH,
) -> nx.DiGraph:
    """The network as a directed networkx graph, with travel seconds as ``weight``.

    The same rules as pgRouting's reading of :func:`edges_sql`: a negative cost is no arc,
    and of parallel arcs the cheapest is kept.

    Parameters
    ----------
    nodes, edges : DataFrame
        As :func:`read_osm` returns (or read back from the tables).
    mode : {"walk", "drive"}
    walk_speed_kmh : float

    Returns
    -------
    networkx.DiGraph
        Nodes are ``road_nodes.id``; every node is present, connected or not.
    """
    cost, reverse = _check_mode(mode)
    factor = _walk_factor(walk_speed_kmh) if mode == "walk" else 1.0
    graph = nx.DiGraph()
    graph.add_nodes_from(int(n) for n in nodes["id"])
    columns = zip(
        edges["source_node"], edges["target_node"], edges[cost], edges[reverse], strict=True
    )
    for u, v, forward, backward in columns:
        for a, b, seconds in ((u, v, forward), (v, u, backward)):
            if seconds < 0:
                continue
            weight = float(seconds) * factor
            data = graph.get_edge_data(int(a), int(b))
            if data is None or weight < data["weight"]:
                graph.add_edge(int(a), int(b), weight=weight)
    return graph
