"""Nearest teams: exact against brute force (distance) and networkx (travel time)."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest
import sqlalchemy as sa
from pyproj import Geod

from geomap.analysis import nearest
from geomap.errors import InvalidInput, Unreachable
from tests import handmade

GEOD = Geod(ellps="WGS84")
# The real Nanchang frame (city bounding box, data/nanchang/admin_boundaries.geojson).
NANCHANG = (115.433, 28.161, 116.561, 29.125)
KINDS = ["medical", "organ_party", "youth", "veteran"]


def _insert_teams(conn, points, *, kinds=None, statuses=None, capabilities=None):
    rows = []
    for i, (lon, lat) in enumerate(points):
        rows.append(
            {
                "code": f"T{i:06d}",
                "name": f"team {i}",
                "kind": kinds[i] if kinds else "medical",
                "status": statuses[i] if statuses else "available",
                "caps": capabilities[i] if capabilities else [],
                "lon": float(lon),
                "lat": float(lat),
            }
        )
    conn.execute(
        sa.text(
            "INSERT INTO teams (code, name, kind, headcount, status, capabilities, geom, source) "
            "VALUES (:code, :name, :kind, 10, :status, :caps, "
            "ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), 'synthetic: test')"
        ),
        rows,
    )
    ids = dict(conn.execute(sa.text("SELECT code, id FROM teams")).all())
    return [ids[r["code"]] for r in rows]


def test_distance_ranking_matches_brute_force_geodesic(connection):
    rng = np.random.default_rng(7)
    n = 3000
    lons = rng.uniform(NANCHANG[0], NANCHANG[2], n)
    lats = rng.uniform(NANCHANG[1], NANCHANG[3], n)
    ids = np.array(_insert_teams(connection, zip(lons, lats, strict=True)))
    for _ in range(40):
        qlon, qlat = rng.uniform(NANCHANG[0], NANCHANG[2]), rng.uniform(NANCHANG[1], NANCHANG[3])
        _, _, dist = GEOD.inv(np.full(n, qlon), np.full(n, qlat), lons, lats)
        order = np.lexsort((ids, dist))[:5]
        answer = nearest.nearest_teams(connection, nearest.make_query(qlon, qlat, k=5))
        got = answer["teams"]
        assert [t["id"] for t in got] == ids[order].tolist()
        for team, expected in zip(got, dist[order], strict=True):
            assert abs(team["distance_m"] - expected) < 0.5
            assert team["travel_min"] is None


def test_distance_ranking_equals_the_databases_knn(connection):
    """The mirror's answer is PostGIS's: same teams, same order, same metres (the database
    path, KNN_SQL, is the reference), with and without filters and a distance limit."""
    rng = np.random.default_rng(8)
    n = 2000
    lons = rng.uniform(115.80, 115.98, n)
    lats = rng.uniform(28.60, 28.74, n)
    # Duplicated positions: ties broken by id on both sides.
    lons[1::97], lats[1::97] = lons[::97][: lons[1::97].size], lats[::97][: lats[1::97].size]
    kinds = rng.choice(KINDS, n).tolist()
    statuses = rng.choice(["available", "deployed", "off_duty"], n).tolist()
    caps = [["first_aid"] if rng.random() < 0.3 else [] for _ in range(n)]
    _insert_teams(connection, zip(lons, lats, strict=True), kinds=kinds, statuses=statuses,
                  capabilities=caps)  # fmt: skip
    for i in range(60):
        query = nearest.make_query(
            rng.uniform(115.80, 115.98), rng.uniform(28.60, 28.74), k=int(rng.choice([1, 5, 40])),
            kinds=[KINDS[i % 4]] if i % 3 == 0 else None,
            statuses=["available", "off_duty"] if i % 4 == 1 else None,
            capability="first_aid" if i % 5 == 2 else None,
            max_distance_m=[None, 800.0, 3000.0][i % 3],
        )  # fmt: skip
        rows = connection.execute(nearest.KNN_SQL, query.params()).mappings().all()
        expected = [(r["id"], float(r["distance_m"])) for r in rows if r["id"] is not None]
        got = [(t["id"], t["distance_m"]) for t in nearest.rank_by_distance(connection, query)]
        assert [t for t, _ in got] == [t for t, _ in expected], query
        for (_, mine), (_, theirs) in zip(got, expected, strict=True):
            assert abs(mine - theirs) < 0.01


def test_filters_kind_status_capability_and_max_distance(connection):
    base = (115.90, 28.68)
    points = [(base[0] + 0.001 * i, base[1]) for i in range(8)]
    kinds = ["medical", "youth", "medical", "veteran", "medical", "youth", "medical", "medical"]
    statuses = ["available", "available", "deployed", "available", "off_duty", "available",
                "available", "available"]  # fmt: skip
    caps = [["first_aid"], [], ["first_aid"], ["rescue"], [], [], [], ["first_aid", "triage"]]
    ids = _insert_teams(connection, points, kinds=kinds, statuses=statuses, capabilities=caps)

    def ask(**kw):
        answer = nearest.nearest_teams(connection, nearest.make_query(*base, k=10, **kw))
        return [t["id"] for t in answer["teams"]]

    assert ask() == [ids[i] for i in (0, 1, 3, 5, 6, 7)]  # available only by default
    assert ask(kinds=["medical"]) == [ids[i] for i in (0, 6, 7)]
    assert ask(kinds=["medical"], statuses=["deployed", "off_duty"]) == [ids[2], ids[4]]
    assert ask(capability="first_aid") == [ids[0], ids[7]]
    assert ask(max_distance_m=250) == [ids[0], ids[1]]  # 0 m and ~98 m; the next is ~293 m


@pytest.mark.parametrize("mode", ["walk", "drive"])
def test_network_ranking_matches_networkx(connection, mode):
    nodes, edges = handmade.load(connection)
    g = handmade.graph(edges, mode)
    rng = np.random.default_rng(11)
    coords = {int(i): (p.x, p.y) for i, p in zip(nodes["id"], nodes.geometry, strict=True)}
    lattice = [i for i in coords if i <= handmade.N * handmade.N]
    team_nodes = rng.choice(lattice, size=25, replace=False).tolist()
    ids = _insert_teams(connection, [coords[i] for i in team_nodes])
    team_of_node = dict(zip(team_nodes, ids, strict=True))
    for target in rng.choice(lattice, size=6, replace=False).tolist():
        # Teams travel to the target: costs on the reversed graph from the target.
        costs = nx.single_source_dijkstra_path_length(g.reverse(), target, weight="cost")
        expected = sorted((costs[n], team_of_node[n]) for n in team_nodes if n in costs)[:5]
        answer = nearest.nearest_teams(
            connection, nearest.make_query(*coords[target], k=5, by=mode)
        )
        got = [(t["travel_min"] * 60, t["id"]) for t in answer["teams"]]
        assert [tid for _, tid in got] == [tid for _, tid in expected], (got, expected)
        for (got_s, _), (exp_s, _) in zip(got, expected, strict=True):
            assert math.isclose(got_s, exp_s, rel_tol=0.01, abs_tol=1.0)


def test_one_way_street_changes_the_drive_ranking(connection):
    handmade.load(connection)
    row = handmade.ONE_WAY_ROW
    west, east = handmade.node_lonlat(1, row), handmade.node_lonlat(3, row)
    [team_west] = _insert_teams(connection, [west])
    # Driving from west to east follows the one-way street; back it must go around.
    to_east = nearest.nearest_teams(connection, nearest.make_query(*east, by="drive"))
    connection.execute(sa.text("UPDATE teams SET geom = ST_SetSRID(ST_MakePoint(:x, :y), 4326)"),
                       {"x": east[0], "y": east[1]})  # fmt: skip
    to_west = nearest.nearest_teams(connection, nearest.make_query(*west, by="drive"))
    assert to_east["teams"][0]["id"] == to_west["teams"][0]["id"] == team_west
    assert to_west["teams"][0]["travel_min"] > to_east["teams"][0]["travel_min"] * 1.5


def test_route_is_returned_as_geojson(connection):
    handmade.load(connection)
    _insert_teams(connection, [handmade.node_lonlat(0, 0)])
    target = handmade.node_lonlat(7, 7)
    answer = nearest.nearest_teams(connection, nearest.make_query(*target, by="walk", route=True))
    route = answer["teams"][0]["route"]
    assert route["type"] in {"LineString", "MultiLineString"}
    flat = route["coordinates"] if route["type"] == "LineString" else [
        xy for part in route["coordinates"] for xy in part]  # fmt: skip
    # The walk crosses the river on the bridge row.
    bridge_lat = handmade.node_lonlat(0, handmade.BRIDGE_ROW)[1]
    assert any(abs(lat - bridge_lat) < 1e-6 for _, lat in flat)


def test_point_far_from_any_road_is_unreachable(connection):
    handmade.load(connection)
    _insert_teams(connection, [handmade.node_lonlat(0, 0)])
    with pytest.raises(Unreachable, match="nearest"):
        nearest.nearest_teams(connection, nearest.make_query(116.3, 28.3, by="drive"))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"lon": None, "lat": 28.6}, "lon"),
        ({"lon": "abc", "lat": 28.6}, "lon"),
        ({"lon": float("nan"), "lat": 28.6}, "lon"),
        ({"lon": 115.9, "lat": 95}, "lat"),
        ({"lon": 181, "lat": 28.6}, "lon"),
        ({"lon": 115.9, "lat": 28.6, "k": 0}, "k"),
        ({"lon": 115.9, "lat": 28.6, "k": 100000}, "k"),
        ({"lon": 115.9, "lat": 28.6, "by": "fly"}, "by"),
        ({"lon": 115.9, "lat": 28.6, "kinds": ["pirates"]}, "kind"),
        ({"lon": 115.9, "lat": 28.6, "statuses": ["asleep"]}, "status"),
        ({"lon": 115.9, "lat": 28.6, "max_distance_m": -5}, "max_distance_m"),
    ],
)
def test_bad_inputs_name_their_field(kwargs, field):
    lon, lat = kwargs.pop("lon"), kwargs.pop("lat")
    with pytest.raises(InvalidInput) as info:
        nearest.make_query(lon, lat, **kwargs)
    assert info.value.field == field


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("lat=28.6", "lon"),
        ("lon=115.9&lat=NaN", "lat"),
        ("lon=115.9&lat=-91", "lat"),
        ("lon=115.9&lat=28.6&k=0", "k"),
        ("lon=115.9&lat=28.6&k=5000", "k"),
        ("lon=115.9&lat=28.6&kind=wizard", "kind"),
        ("lon=115.9&lat=28.6&crs=EPSG:999999", "crs"),
        ("lon=115.9&lat=28.6&colour=red", "colour"),
        ("lon=115.9&lat=28.6&route=maybe", "route"),
    ],
)
def test_http_bad_inputs_are_400_naming_the_field(client, query, field):
    response = client.get(f"/api/teams/nearest?{query}")
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"]["field"] == field


def test_http_answer_shape_and_gcj02_input(client, connection):
    [team] = _insert_teams(connection, [(115.8900, 28.6800)])
    # The same place as Amap (GCJ-02) shows it is ~500 m off in raw numbers.
    from geomap import crs

    gcj_lon, gcj_lat = crs.wgs84_to_gcj02(115.8900, 28.6800)
    response = client.get(f"/api/teams/nearest?lon={gcj_lon}&lat={gcj_lat}&crs=GCJ02&k=1")
    assert response.status_code == 200
    body = response.get_json()
    assert body["query"]["crs"] == "GCJ02"
    assert abs(body["query"]["lon"] - 115.89) < 1e-5 and abs(body["query"]["lat"] - 28.68) < 1e-5
    [answer] = body["teams"]
    assert answer["id"] == team and answer["distance_m"] < 1.0
    assert {"id", "name", "kind", "status", "headcount", "lon", "lat", "distance_m",
            "travel_min"} <= set(answer)  # fmt: skip
    assert "leader_phone" not in answer and "leader_name" not in answer


CITY_RACE = """
import threading
import numpy as np
import shapely
from geomap.analysis.city import City

# A fresh city per round (GEOS indexes a prepared polygon on its first tests), tested by
# 16 threads at once, as the first requests after a start or a boundary import do.
rng = np.random.default_rng(1)
t = np.linspace(0, 2 * np.pi, 3000, endpoint=False)
r = 1 + 0.05 * rng.standard_normal(t.size)
outline = shapely.Polygon(np.column_stack([115.9 + 0.1 * r * np.cos(t),
                                           28.68 + 0.1 * r * np.sin(t)])).buffer(0)
for _ in range(40):
    shape = shapely.from_wkb(shapely.to_wkb(outline))
    shapely.prepare(shape)
    city = City("test city", shape)
    gate = threading.Barrier(16)

    def test() -> None:
        gate.wait()
        for lon in np.random.default_rng().uniform(115.8, 116.0, 50):
            city.contains(float(lon), 28.68)

    threads = [threading.Thread(target=test) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
print("ok")
"""


def test_the_city_check_survives_concurrent_first_tests():
    """Request threads test the one kept city outline at once. GEOS prepares it lazily and
    not thread-safely, so unguarded this aborted the process (heap corruption) within a
    few rounds: run in a child process, the crash is a failure here, not of the suite."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", CITY_RACE], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip() == "ok", (done.returncode, done.stderr)
