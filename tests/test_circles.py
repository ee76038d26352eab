"""15-minute circles: exact against networkx, honest at rivers and in parks, cached."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest
import shapely
import sqlalchemy as sa
from pyproj import Transformer
from shapely import wkb as shapely_wkb
from shapely.geometry import LineString, Point, shape
from shapely.ops import substring, unary_union

from geomap.analysis import circles, reach
from geomap.errors import InvalidInput
from tests import handmade

UTM = Transformer.from_crs(4326, 32650, always_xy=True)
SPEED_MS = 4.5 / 3.6


def _utm(geom):
    return shapely.transform(geom, lambda xy: np.column_stack(UTM.transform(xy[:, 0], xy[:, 1])))


def _add_site(conn, lon, lat, name="venue", kind="memorial_hall") -> int:
    return conn.execute(
        sa.text(
            "INSERT INTO sites (name, kind, geom, source) VALUES "
            "(:name, :kind, ST_SetSRID(ST_MakePoint(:x, :y), 4326), 'synthetic: test') "
            "RETURNING id"
        ),
        {"name": name, "kind": kind, "x": lon, "y": lat},
    ).scalar()


def _circle(conn, site_id, query):
    [record] = [c for c in circles.circles(conn, query) if c["site_id"] == site_id]
    return record


def _networkx_reach(edges, start, budget_s):
    """Edge id → reached share, computed independently with networkx (walk, both ways)."""
    g = handmade.graph(edges, "walk")
    cost = nx.single_source_dijkstra_path_length(g, start, cutoff=budget_s, weight="cost")
    shares = {}
    for e in edges.itertuples():
        f_from = min(1.0, (budget_s - cost[e.source_node]) / e.walk_s) if (
            e.source_node in cost) else 0.0  # fmt: skip
        f_to = min(1.0, (budget_s - cost[e.target_node]) / e.walk_reverse_s) if (
            e.target_node in cost) else 0.0  # fmt: skip
        if f_from > 0 or f_to > 0:
            shares[e.id] = (max(f_from, 0.0), max(f_to, 0.0))
    return shares


def test_reached_edges_and_area_match_networkx(connection):
    _, edges = handmade.load(connection)
    start = handmade.node_id(2, 7)
    budget_s = 4 * 60.0
    expected = _networkx_reach(edges, start, budget_s)
    got = reach.reached_edges(connection, [start], budget_s)
    assert set(got) == set(expected)
    for edge_id, (f_from, f_to) in expected.items():
        assert math.isclose(got[edge_id], min(1.0, f_from + f_to), abs_tol=1e-6)
    # The polygon, rebuilt independently: substrings of the same edges, buffered 50 m.
    lines = []
    geoms = dict(zip(edges["id"], edges.geometry, strict=True))
    for edge_id, (f_from, f_to) in expected.items():
        line: LineString = _utm(geoms[edge_id])
        if f_from + f_to >= 1:
            lines.append(line)
            continue
        if f_from > 0:
            lines.append(substring(line, 0, f_from, normalized=True))
        if f_to > 0:
            lines.append(substring(line, 1 - f_to, 1, normalized=True))
    independent = unary_union(lines).buffer(50, quad_segs=4)
    lon, lat = handmade.node_lonlat(2, 7)
    site = _add_site(connection, lon, lat)
    record = _circle(connection, site, circles.make_query(minutes=4))
    area_m2 = record["area_km2"] * 1e6
    assert math.isclose(area_m2, independent.area, rel_tol=0.02)
    assert record["reached_edges"] == len(expected)


def test_circle_does_not_cross_the_river_except_by_the_bridge(connection):
    handmade.load(connection)
    lon, lat = handmade.node_lonlat(handmade.RIVER_COL, 8)  # on the west bank, far from bridge
    site = _add_site(connection, lon, lat)
    record = _circle(connection, site, circles.make_query(minutes=4))
    polygon = shape(record["geometry"])
    assert polygon.is_valid
    across = Point(handmade.node_lonlat(handmade.RIVER_COL + 1, 8))  # ~98 m away, other bank
    assert not polygon.contains(across)
    # Nothing of the circle lies beyond the west bank's access width (50 m) + 10 m.
    x_bank, _ = UTM.transform(lon, lat)
    assert _utm(polygon).bounds[2] < x_bank + 60
    # A straight-line disc of the same 300 m walk would have jumped the river.
    assert _utm(Point(lon, lat)).buffer(300).contains(_utm(across))


def test_circle_in_a_park_with_one_path_is_a_thin_shape(connection):
    handmade.load(connection)
    end = handmade.N * handmade.N + handmade.PARK_PATH_NODES
    lon, lat = handmade.build()[0].set_index("id").geometry[end].coords[0]
    site = _add_site(connection, lon, lat)
    record = _circle(connection, site, circles.make_query(minutes=2))  # 150 m of path
    polygon = _utm(shape(record["geometry"]))
    rectangle = polygon.minimum_rotated_rectangle
    x, y = rectangle.exterior.coords.xy
    sides = sorted(math.dist((x[i], y[i]), (x[i + 1], y[i + 1])) for i in range(2))
    assert sides[0] == pytest.approx(100, rel=0.1)  # two access widths across
    assert sides[1] == pytest.approx(150 + 2 * 50, rel=0.1)  # the walked path, plus caps
    disc = math.pi * 200**2
    assert polygon.area < 0.25 * disc


def test_cache_is_reused_and_invalidated(connection):
    handmade.load(connection)
    lon, lat = handmade.node_lonlat(2, 2)
    site = _add_site(connection, lon, lat)
    query = circles.make_query(minutes=3)
    assert circles.build(connection, query)["built"] == 1
    assert circles.build(connection, query)["built"] == 0  # cached
    count = "SELECT count(*) FROM circles"
    # The venue moves: its circle goes.
    connection.execute(
        sa.text("UPDATE sites SET geom = ST_SetSRID(ST_MakePoint(:x, :y), 4326) WHERE id = :i"),
        {"x": lon + 0.002, "y": lat, "i": site},
    )
    assert connection.execute(sa.text(count)).scalar() == 0
    assert circles.build(connection, query)["built"] == 1
    # The network changes: every circle goes.
    connection.execute(sa.text("DELETE FROM road_edges WHERE id = 1"))
    assert connection.execute(sa.text(count)).scalar() == 0


def test_distance_budget_equals_the_time_it_takes_to_walk(connection):
    handmade.load(connection)
    lon, lat = handmade.node_lonlat(6, 4)
    site = _add_site(connection, lon, lat)
    by_time = _circle(connection, site, circles.make_query(minutes=800 / 75.0))  # 4.5 km/h
    by_distance = _circle(connection, site, circles.make_query(distance_m=800))
    assert by_distance["reached_edges"] == by_time["reached_edges"]
    assert by_distance["area_km2"] == pytest.approx(by_time["area_km2"], rel=1e-6)


def test_venue_far_from_streets_gets_no_circle(connection):
    handmade.load(connection)
    site = _add_site(connection, 116.2, 28.9)
    assert _circle(connection, site, circles.make_query())["geometry"] is None


def test_http_circles_union_and_coverage(client, connection):
    handmade.load(connection)
    lon, lat = handmade.node_lonlat(2, 2)
    _add_site(connection, lon, lat, name="纪念馆")
    connection.execute(
        sa.text(
            "INSERT INTO stations (name, kind, geom, source) VALUES ('驿站', 'red_station', "
            "ST_SetSRID(ST_MakePoint(:x, :y), 4326), 'synthetic: test')"
        ),
        dict(zip("xy", handmade.node_lonlat(7, 7), strict=True)),
    )
    grid = shapely.box(lon - 0.006, lat - 0.006, lon + 0.006, lat + 0.006)
    connection.execute(
        sa.text(
            "INSERT INTO grids (code, name, population, households, geom, source) VALUES "
            "('G', 'G', 1200, 400, ST_Multi(ST_GeomFromText(:w, 4326)), 'synthetic: test')"
        ),
        {"w": grid.wkt},
    )
    features = client.get("/api/circles?minutes=5").get_json()["features"]
    assert {f["properties"]["kind"] for f in features} == {"memorial_hall", "red_station"}
    for feature in features:
        assert shape(feature["geometry"]).is_valid
        assert feature["properties"]["minutes"] == 5
        assert feature["properties"]["area_km2"] > 0
    site_feature = next(f for f in features if f["properties"]["kind"] == "memorial_hall")
    assert 0 < site_feature["properties"]["population"] <= 1200
    only_sites = client.get("/api/circles?minutes=5&of=sites").get_json()["features"]
    assert len(only_sites) == 1
    union = client.get("/api/circles/union?minutes=5").get_json()
    assert union["properties"]["circles"] == 2 and shape(union["geometry"]).is_valid
    answer = client.get("/api/circles/coverage?minutes=5&level=grid").get_json()
    [unit] = answer["units"]
    assert unit["population"] == 1200 and 0 < unit["covered_population"] < 1200
    assert answer["summary"]["covered_population"] == unit["covered_population"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("minutes=0", "minutes"),
        ("minutes=-3", "minutes"),
        ("minutes=100000", "minutes"),
        ("minutes=abc", "minutes"),
        ("minutes=15&distance_m=800", "minutes"),
        ("kind=castle", "kind"),
        ("of=everything", "of"),
        ("distance_m=0", "distance_m"),
        ("minutes=15&colour=red", "colour"),
    ],
)
def test_http_bad_inputs_are_400(client, query, field):
    response = client.get(f"/api/circles?{query}")
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"]["field"] == field


def test_bad_query_values():
    with pytest.raises(InvalidInput):
        circles.make_query(minutes=15, distance_m=900)


def test_reach_polygon_of_nothing_is_empty(connection):
    assert reach.reach_polygon(connection, [], 900).wkb is None
    handmade.load(connection)
    area = reach.reach_polygon(connection, [handmade.node_id(0, 0)], 60)
    assert shapely_wkb.loads(area.wkb).is_valid


def test_batch_build_stores_the_same_circles_as_one_by_one(db_url):
    from geomap import config, db

    engine = db.get_engine(config.load({"database_url": db_url}, environ={}))
    with engine.begin() as conn:
        handmade.load(conn)
        for col, row in ((1, 1), (2, 7), (6, 4), (8, 8)):
            _add_site(conn, *handmade.node_lonlat(col, row))
    query = circles.make_query(minutes=3)
    with engine.begin() as conn:
        counts = circles.build(conn, query)
        assert counts == {"built": 4, "without_street": 0, "venues": 4}
        batch = conn.execute(sa.text("SELECT venue_id, area_km2 FROM circles ORDER BY 1")).all()
        sites = conn.execute(sa.text("SELECT id, ST_X(geom), ST_Y(geom) FROM sites")).all()
    with engine.connect() as conn:
        one_by_one = sorted(
            (site, circles.build_circle(conn, query, lon, lat)) for site, lon, lat in sites
        )
        areas = [
            conn.execute(
                sa.text("SELECT ST_Area(ST_GeomFromWKB(:w, 4326)::geography) / 1e6"),
                {"w": circle["wkb"]},
            ).scalar()
            for _, circle in one_by_one
        ]
    assert [site for site, _ in one_by_one] == [venue for venue, _ in batch]
    assert areas == pytest.approx([area for _, area in batch], rel=1e-9)
