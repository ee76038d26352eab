"""The default dataset as `make run` loads it: counts, the river barrier, real queries."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from shapely import wkt
from shapely.geometry import shape

from geomap import config
from geomap.seed import nanchang

pytestmark = pytest.mark.slow


def test_healthz_counts_meet_the_dataset_targets(nanchang_client):
    body = nanchang_client.get("/healthz").get_json()
    assert body["status"] == "ok"
    counts = body["counts"]
    assert counts["districts"] == 9
    assert counts["townships"] == 116
    assert counts["communities"] > 1000
    assert counts["grids"] == 4418
    assert counts["stations"] >= 2000
    assert counts["red_stations"] == 274
    assert counts["sites"] >= 90
    assert counts["team_members"] >= 12000
    assert counts["road_edges"] >= 50000
    assert abs(counts["population"] - 6_260_000) <= 62_600


def test_no_stored_edge_crosses_the_gan_river_except_bridges(nanchang_connection):
    river = nanchang.gan_river(config.PROJECT_DIR / "data" / "nanchang")
    crossing = nanchang_connection.execute(
        sa.text(
            "SELECT is_bridge, count(*) FROM road_edges "
            "WHERE ST_Intersects(geom, ST_GeomFromText(:river, 4326)) GROUP BY is_bridge"
        ),
        {"river": river.wkt},
    ).all()
    assert dict(crossing).get(False, 0) == 0
    assert dict(crossing).get(True, 0) >= 4


def test_every_source_is_labelled(nanchang_connection):
    for table in ("regions", "grids", "stations", "sites", "teams", "road_edges"):
        unlabelled = nanchang_connection.execute(
            sa.text(f"SELECT count(*) FROM {table} WHERE source !~ '^(real|synthetic):'")
        ).scalar()
        assert unlabelled == 0, table


def test_nearest_by_drive_on_the_city_network(nanchang_client):
    # 八一广场, the city centre.
    body = nanchang_client.get(
        "/api/teams/nearest?lon=115.8997&lat=28.6760&by=drive&k=5&kind=medical&route=1"
    ).get_json()
    teams = body["teams"]
    assert len(teams) == 5
    assert all(t["kind"] == "medical" and t["status"] == "available" for t in teams)
    minutes = [t["travel_min"] for t in teams]
    assert minutes == sorted(minutes) and 0 < minutes[0] < 30
    assert all(t["route"]["type"] in {"LineString", "MultiLineString"} for t in teams)


def test_point_outside_the_city_is_refused_clearly(nanchang_client):
    response = nanchang_client.get("/api/teams/nearest?lon=114.0&lat=30.5")  # Wuhan
    assert response.status_code == 422
    assert "outside the city" in response.get_json()["error"]["message"]


def test_coverage_of_grids_by_centres(nanchang_client):
    body = nanchang_client.get(
        "/api/coverage?of=stations&kind=centre_district,centre_township,centre_community"
        "&within_m=1000&level=district"
    ).get_json()
    assert body["summary"]["units"] >= 5
    assert body["summary"]["population"] == 6_260_000
    assert 0 < body["summary"]["covered_share"] <= 1


def test_circles_of_every_red_venue_are_valid_and_respect_the_river(
    nanchang_client, nanchang_connection
):
    features = nanchang_client.get("/api/circles?minutes=15").get_json()["features"]
    assert len(features) == 274 + 100  # every red station and red culture site
    with_circle = [f for f in features if f["geometry"] is not None]
    assert len(with_circle) == len(features)  # rural villages too (1 km lattice there)
    for feature in with_circle:
        assert shape(feature["geometry"]).is_valid
    # Streets keep 200 m off the river and circles reach 50 m beyond them: a circle that
    # touches the river does so on a bridge, and nowhere else.
    river = nanchang.gan_river(config.PROJECT_DIR / "data" / "nanchang")
    bridges = wkt.loads(
        nanchang_connection.execute(
            sa.text("SELECT ST_AsText(ST_Collect(geom)) FROM road_edges WHERE is_bridge")
        ).scalar()
    )
    touching = [shape(f["geometry"]) for f in with_circle if shape(f["geometry"]).intersects(river)]
    for polygon in touching:
        assert polygon.intersects(bridges)
        off_bridge = polygon.intersection(river).difference(bridges.buffer(0.0006))
        assert off_bridge.length < 1e-9
    coverage = nanchang_client.get("/api/circles/coverage?minutes=15&level=district").get_json()
    assert 0 < coverage["summary"]["covered_share"] < 1
    assert coverage["summary"]["population"] == 6_260_000
