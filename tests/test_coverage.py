"""Coverage: exact numbers on a hand-built case, levels, formats, bad input."""

from __future__ import annotations

import csv
import io
import math

import numpy as np
import pytest
import shapely
import sqlalchemy as sa
from pyproj import Transformer
from shapely.geometry import Point, box, shape

from geomap.analysis import coverage
from geomap.errors import InvalidInput
from tests import handmade

UTM = Transformer.from_crs(4326, 32650, always_xy=True)
TO_WGS = Transformer.from_crs(32650, 4326, always_xy=True)
SOURCE = "synthetic: tests/test_coverage.py"


def transform(project, geom):
    """Apply a pyproj transform to every vertex of ``geom``."""
    return shapely.transform(geom, lambda xy: np.column_stack(project(xy[:, 0], xy[:, 1])))


def _square(x0: float, y0: float, side_m: float):
    """A square in UTM 50N metres, returned in WGS84."""
    return transform(TO_WGS.transform, box(x0, y0, x0 + side_m, y0 + side_m))


def _build_case(conn):
    """district D ⊃ township T ⊃ communities C1, C2; grids G1 (in C1), G2, G3 (in C2).

    G1 and G2 are 400 m squares; a station sits at G1's centre; G2 is 2 km east; G3 is a
    400 m square whose west half lies within 600 m of the station.
    """
    x0, y0 = UTM.transform(115.90, 28.66)
    grids = {
        "G1": (_square(x0, y0, 400), 1000),
        "G2": (_square(x0 + 2000, y0, 400), 3000),
        "G3": (_square(x0 + 600, y0, 400), 2000),
    }
    everything = box(
        *transform(TO_WGS.transform, box(x0 - 500, y0 - 500, x0 + 3000, y0 + 900)).bounds
    )
    regions = [
        ("360199", None, "city", "C"),
        ("360198", "360199", "district", "D"),
        ("360198001", "360198", "township", "T"),
        ("360198001001", "360198001", "community", "C1"),
        ("360198001002", "360198001", "community", "C2"),
    ]
    for code, parent, level, name in regions:
        conn.execute(
            sa.text(
                "INSERT INTO regions (code, parent_code, level, name, geom, source) VALUES "
                "(:code, :parent, :level, :name, ST_Multi(ST_GeomFromText(:wkt, 4326)), :src)"
            ),
            {"code": code, "parent": parent, "level": level, "name": name,
             "wkt": everything.wkt, "src": SOURCE},
        )  # fmt: skip
    for code, (polygon, population) in grids.items():
        community = "360198001001" if code == "G1" else "360198001002"
        conn.execute(
            sa.text(
                "INSERT INTO grids (code, name, community_code, population, households, geom, "
                "source) VALUES (:code, :code, :community, :pop, :pop / 3, "
                "ST_Multi(ST_GeomFromText(:wkt, 4326)), :src)"
            ),
            {"code": code, "community": community, "pop": population, "wkt": polygon.wkt,
             "src": SOURCE},
        )  # fmt: skip
    station = transform(TO_WGS.transform, Point(x0 + 200, y0 + 200))
    conn.execute(
        sa.text(
            "INSERT INTO stations (name, kind, geom, source) VALUES "
            "('S', 'red_station', ST_SetSRID(ST_MakePoint(:x, :y), 4326), :src)"
        ),
        {"x": station.x, "y": station.y, "src": SOURCE},
    )
    return grids, (x0 + 200, y0 + 200)


def test_distance_coverage_exact_on_a_hand_built_case(connection):
    _, (sx, sy) = _build_case(connection)
    answer = coverage.coverage(
        connection, coverage.make_query(of="stations", within_m=600, level="grid")
    )
    units = {u["code"]: u for u in answer["units"]}
    # G1 lies wholly within 600 m (its corners are 283 m away): fully covered.
    assert units["G1"]["covered_share_area"] == 1.0
    assert units["G1"]["covered_population"] == 1000
    # G2 is 1.8 km away: nothing.
    assert units["G2"]["covered_population"] == 0 and not units["G2"]["covered"]
    # G3: the disc of 600 m cut by the square [x0+600, x0+1000] × [y0, y0+400].
    disc = Point(sx, sy).buffer(600, quad_segs=8)
    g3 = box(sx + 400, sy - 200, sx + 800, sy + 200)
    share = disc.intersection(g3).area / g3.area
    assert math.isclose(units["G3"]["covered_share_area"], share, abs_tol=0.002)
    assert units["G3"]["covered_population"] == round(
        2000 * units["G3"]["covered_share_population"]
    )
    assert math.isclose(units["G1"]["nearest_m"], 0.0, abs_tol=1.0)
    assert math.isclose(units["G2"]["nearest_m"], 2000.0, rel_tol=0.003)
    summary = answer["summary"]
    assert summary["units"] == 3 and summary["population"] == 6000
    assert summary["covered_population"] == sum(u["covered_population"] for u in units.values())


def test_roll_up_to_community_township_district(connection):
    _build_case(connection)
    q = dict(of="stations", within_m=600)
    by_level = {
        level: coverage.coverage(connection, coverage.make_query(level=level, **q))
        for level in coverage.LEVELS
    }
    grid_units = {u["code"]: u for u in by_level["grid"]["units"]}
    community = {u["name"]: u for u in by_level["community"]["units"]}
    assert community["C1"]["population"] == 1000
    assert community["C1"]["covered_population"] == grid_units["G1"]["covered_population"]
    assert community["C2"]["population"] == 5000
    [township] = by_level["township"]["units"]
    [district] = by_level["district"]["units"]
    assert township["population"] == district["population"] == 6000
    assert district["covered_population"] == by_level["grid"]["summary"]["covered_population"]


def test_gaps_order_puts_uncovered_first(connection):
    _build_case(connection)
    answer = coverage.coverage(connection, coverage.make_query(within_m=600, order="gaps"))
    assert answer["units"][0]["code"] == "G2"


def test_network_coverage_on_the_handmade_network(connection):
    handmade.load(connection)
    lon, lat = handmade.node_lonlat(1, 1)
    connection.execute(
        sa.text(
            "INSERT INTO stations (name, kind, geom, source) VALUES "
            "('S', 'red_station', ST_SetSRID(ST_MakePoint(:x, :y), 4326), :src)"
        ),
        {"x": lon, "y": lat, "src": SOURCE},
    )
    # Two grids: one around the station's corner of the lattice, one beyond the river
    # far from the bridge; a 3-minute walk (~225 m) reaches the first only.
    near = box(lon - 0.0015, lat - 0.0015, lon + 0.0015, lat + 0.0015)
    far_lon, far_lat = handmade.node_lonlat(8, 8)
    far = box(far_lon - 0.0015, far_lat - 0.0015, far_lon + 0.0015, far_lat + 0.0015)
    for code, polygon in (("NEAR", near), ("FAR", far)):
        connection.execute(
            sa.text(
                "INSERT INTO grids (code, name, population, households, geom, source) VALUES "
                "(:code, :code, 900, 300, ST_Multi(ST_GeomFromText(:wkt, 4326)), :src)"
            ),
            {"code": code, "wkt": polygon.wkt, "src": SOURCE},
        )
    answer = coverage.coverage(
        connection, coverage.make_query(by="walk", within_min=3, level="grid")
    )
    units = {u["code"]: u for u in answer["units"]}
    assert units["NEAR"]["covered_share_area"] > 0.3
    assert units["FAR"]["covered_share_area"] == 0.0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"within_m": 500, "within_min": 5}, "within_m"),
        ({}, "within_m"),
        ({"within_min": 5}, "within_m"),  # by=distance needs metres
        ({"by": "walk", "within_m": 500}, "within_min"),
        ({"within_m": -1}, "within_m"),
        ({"within_m": 500, "level": "planet"}, "level"),
        ({"within_m": 500, "of": "dragons"}, "of"),
        ({"within_m": 500, "kinds": ["castle"]}, "kind"),
        ({"within_m": 500, "by": "teleport"}, "by"),
    ],
)
def test_bad_inputs_name_their_field(kwargs, field):
    with pytest.raises(InvalidInput) as info:
        coverage.make_query(**kwargs)
    assert info.value.field == field


def test_http_formats(client, connection):
    _build_case(connection)
    base = "/api/coverage?of=stations&kind=red_station&within_m=600"
    as_json = client.get(base).get_json()
    assert as_json["summary"]["units"] == 3
    geojson = client.get(base + "&format=geojson").get_json()
    assert geojson["type"] == "FeatureCollection" and len(geojson["features"]) == 3
    polygon = shape(geojson["features"][0]["geometry"])
    assert polygon.is_valid and polygon.area > 0
    text = client.get(base + "&format=csv&level=district").get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[0]["name"] == "D" and int(rows[0]["population"]) == 6000


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("within_m=500&within_min=5", "within_m"),
        ("of=stations", "within_m"),
        ("within_m=500&level=galaxy", "level"),
        ("within_m=500&format=xml", "format"),
        ("within_m=abc", "within_m"),
        ("within_m=500&radius=3", "radius"),
    ],
)
def test_http_bad_inputs_are_400(client, query, field):
    response = client.get(f"/api/coverage?{query}")
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == field


def test_distance_coverage_when_no_grid_is_partly_covered(connection):
    """Every grid held whole by a disc, or out of reach: nothing to cut (was an IndexError)."""
    connection.execute(sa.text(
        "INSERT INTO grids (code, name, population, households, geom, source) VALUES "
        "('g-in', '内', 100, 40, ST_Multi(ST_MakeEnvelope(115.890, 28.690, 115.891, 28.691, 4326)),"
        " 'synthetic: test'), "
        "('g-far', '远', 50, 20, ST_Multi(ST_MakeEnvelope(116.190, 28.690, 116.191, 28.691, 4326)),"
        " 'synthetic: test')"
    ))  # fmt: skip
    connection.execute(sa.text(
        "INSERT INTO stations (name, kind, geom, source) VALUES ('站', 'red_station', "
        "ST_SetSRID(ST_MakePoint(115.8905, 28.6905), 4326), 'synthetic: test')"
    ))  # fmt: skip
    from sqlalchemy.orm import Session

    with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
        answer = coverage.coverage(session, coverage.make_query(of="stations", within_m=1000))
    shares = {u["code"]: u["covered_share_area"] for u in answer["units"]}
    assert shares == {"g-in": 1.0, "g-far": 0.0}
