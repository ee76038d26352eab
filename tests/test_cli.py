"""The CLI through click's runner, on a fresh database per test."""

import json

import geopandas as gpd
import sqlalchemy as sa
from shapely.geometry import Point

from geomap.cli import main


def _count(url: str, table: str) -> int:
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.connect() as conn:
        value = conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar()
    engine.dispose()
    return value


def test_load_commits_a_good_file_and_refuses_a_bad_one(runner, db_url, tmp_path):
    good = tmp_path / "stations.geojson"
    gpd.GeoDataFrame(
        {"name": ["红色驿站A", "红色驿站B"], "kind": ["red_station", "红色驿站"]},
        geometry=[Point(115.89, 28.68), Point(115.90, 28.69)],
        crs="EPSG:4326",
    ).to_file(good, driver="GeoJSON")
    result = runner.invoke(main, ["load", str(good), "--layer", "stations"])
    assert result.exit_code == 0, result.output
    assert "loaded 2 stations" in result.output
    assert _count(db_url, "stations") == 2

    bad = tmp_path / "bad.geojson"
    bad.write_text('{"type": "FeatureCollection", "features": [', encoding="utf-8")
    result = runner.invoke(main, ["load", str(bad), "--layer", "stations"])
    assert result.exit_code == 1
    assert "bad.geojson" in result.output and "error:" in result.output
    assert _count(db_url, "stations") == 2


def test_unknown_crs_is_a_cli_error(runner, tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("name,kind,lon,lat\nA,red_station,115.9,28.7\n", encoding="utf-8")
    result = runner.invoke(main, ["load", str(path), "--layer", "stations", "--crs", "EPSG:0"])
    assert result.exit_code == 1
    assert "crs" in result.output.lower()


def test_db_migrate_down_and_up(runner, db_url):
    result = runner.invoke(main, ["db", "migrate", "--down", "--revision", "base"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["db", "migrate"])
    assert result.exit_code == 0, result.output
    assert _count(db_url, "grids") == 0


def test_db_commands_refuse_to_manage_an_external_database(runner):
    result = runner.invoke(main, ["db", "status"])
    assert result.exit_code == 2
    assert "GEOMAP_DATABASE_URL is set" in result.output


def test_nearest_command_prints_json(runner, db_url):
    engine = sa.create_engine(db_url, poolclass=sa.NullPool)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO teams (code, name, kind, headcount, geom, source) VALUES "
                "('T1', '医护一队', 'medical', 12, ST_SetSRID(ST_MakePoint(115.9, 28.68), 4326),"
                " 'synthetic: test')"
            )
        )
    engine.dispose()
    result = runner.invoke(main, ["nearest", "--lon", "115.91", "--lat", "28.68"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer["teams"][0]["name"] == "医护一队"
    assert 900 < answer["teams"][0]["distance_m"] < 1000
