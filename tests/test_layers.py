"""The layer catalog and the features behind it."""

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from geomap import layers
from geomap.analysis import features
from geomap.errors import ConfigError, InvalidInput


def test_catalog_loads_and_names_only_real_columns():
    catalog = layers.load_catalog()
    assert {"districts", "townships", "grids", "stations", "sites", "teams", "circles"} <= set(
        catalog
    )
    assert catalog["teams"].personal == ("leader_name", "leader_phone")
    assert "leader_phone" not in catalog["teams"].public_properties(personal=False)


def test_a_layer_with_an_unknown_column_is_refused(tmp_path):
    (tmp_path / "bad.toml").write_text(
        'id = "bad"\ntitle = {zh = "x", en = "x"}\ndescription = {zh = "x", en = "x"}\n'
        'table = "stations"\ngeometry = "point"\nid_column = "id"\n'
        'properties = ["name", "secret"]\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="secret"):
        layers.load_catalog(tmp_path)


def test_a_layer_derived_from_an_unknown_table_is_refused(tmp_path):
    (tmp_path / "bad.toml").write_text(
        'id = "bad"\ntitle = {zh = "x", en = "x"}\ndescription = {zh = "x", en = "x"}\n'
        'table = "circles"\ngeometry = "polygon"\nid_column = "id"\n'
        'properties = ["id"]\nderived_from = ["roads"]\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="derived_from names unknown tables"):
        layers.load_catalog(tmp_path)


def test_streets_and_circles_say_where_they_come_from():
    catalog = layers.load_catalog()
    assert catalog["circles"].derived_from == ("road_edges",)
    streets = catalog["streets"]
    assert streets.geometry == "line" and streets.kind_column == "provenance"
    assert not streets.visible and streets.min_zoom >= 10
    assert set(streets.style["kinds"]) == {"real", "synthetic"}


def test_layer_sources_count_rows_by_label(connection):
    _stations(connection, 4)
    connection.execute(sa.text("UPDATE stations SET source = 'real: register' WHERE name = 'S1'"))
    layer = layers.load_catalog()["stations"]
    with Session(bind=connection) as session:
        assert features.sources(session, layer) == {"real: register": 1, "synthetic: test": 3}
        assert features.derived_sources(session, layer) == {}


def _stations(conn, n):
    conn.execute(
        sa.text(
            "INSERT INTO stations (name, kind, geom, source) SELECT 'S' || i, "
            "CASE WHEN i % 2 = 0 THEN 'red_station' ELSE 'grid_station' END, "
            "ST_SetSRID(ST_MakePoint(115.8 + i * 0.001, 28.6), 4326), 'synthetic: test' "
            "FROM generate_series(1, :n) AS i"
        ),
        {"n": n},
    )


def test_features_page_filter_and_bbox(connection):
    _stations(connection, 30)
    layer = layers.load_catalog()["stations"]
    page = list(features.iter_features(connection, layer, features.Selection(limit=10, offset=5)))
    assert [f["properties"]["name"] for f in page] == [f"S{i}" for i in range(6, 16)]
    red = features.Selection(filters={"kind": "red_station"})
    assert features.count(connection, layer, red) == 15
    box = features.Selection(bbox=features.parse_bbox("115.8005,28.5,115.8055,28.7"))
    assert [f["properties"]["name"] for f in features.iter_features(connection, layer, box)] == [
        "S1", "S2", "S3", "S4", "S5",
    ]  # fmt: skip
    with pytest.raises(InvalidInput) as info:
        features.count(connection, layer, features.Selection(filters={"geom": "x"}))
    assert info.value.field == "geom"


def test_personal_fields_never_leave_without_permission(client, connection):
    connection.execute(
        sa.text(
            "INSERT INTO teams (code, name, kind, headcount, leader_name, leader_phone, geom, "
            "source) VALUES ('T1', '医护一队', 'medical', 12, '张三', '13800000000', "
            "ST_SetSRID(ST_MakePoint(115.9, 28.68), 4326), 'synthetic: test')"
        )
    )
    body = client.get("/api/layers/teams").get_json()
    assert body["numberMatched"] == 1
    [feature] = body["features"]
    assert feature["properties"]["name"] == "医护一队"
    assert "leader_phone" not in feature["properties"]
    assert "13800000000" not in client.get("/api/layers/teams").get_data(as_text=True)


@pytest.mark.parametrize(
    ("path", "status", "field"),
    [
        ("/api/layers/nope", 404, "layer"),
        ("/api/layers/stations?bbox=1,2,3", 400, "bbox"),
        ("/api/layers/stations?bbox=116,29,115,28", 400, "bbox"),
        ("/api/layers/stations?limit=0", 400, "limit"),
        ("/api/layers/stations?colour=red", 400, "colour"),
    ],
)
def test_bad_requests(client, path, status, field):
    response = client.get(path)
    assert response.status_code == status
    assert response.get_json()["error"]["field"] == field
