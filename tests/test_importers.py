"""File importers against a real PostGIS: formats, CRSs, encodings, and every way to fail.

Files are generated in ``tmp_path`` from real Nanchang data (metro stations, district
outlines). Every rejection test checks the message, the row/field where it applies, and
that no table changed.
"""

from __future__ import annotations

import json
import re
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pyproj
import pytest
import shapely
import sqlalchemy as sa
from shapely.geometry import LineString, MultiPolygon, Point, Polygon

from geomap import config, crs, importers, storage
from geomap.errors import InvalidFile, InvalidInput
from geomap.models import LOAD_ORDER

DATA = config.PROJECT_DIR / "data" / "nanchang"
GEOD = pyproj.Geod(ellps="WGS84")


# -- helpers ---------------------------------------------------------------------------------
def counts(conn: sa.Connection) -> dict[str, int]:
    """Rows of every table in the schema (not only the importers' targets)."""
    tables = conn.execute(
        sa.text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
    ).scalars()
    found = {t: conn.execute(sa.text(f'SELECT count(*) FROM "{t}"')).scalar_one() for t in tables}
    assert set(LOAD_ORDER) <= set(found)
    return found


def rejected(
    conn: sa.Connection,
    call: Callable[[], object],
    pattern: str,
    *,
    row: int | None = None,
    field: str | None = None,
    kind: type[InvalidInput] = InvalidFile,
) -> InvalidInput:
    """Run ``call``, expect ``kind`` whose message matches ``pattern``; no table may change."""
    before = counts(conn)
    with pytest.raises(kind) as info:
        call()
    error = info.value
    assert re.search(pattern, error.message), error.message
    if row is not None:
        assert error.row == row, error.message
        assert f"row {row}" in error.message
    if field is not None:
        assert error.field == field, error.message
    assert counts(conn) == before
    return error


@pytest.fixture(scope="module")
def metro() -> pd.DataFrame:
    """The 94 real stations: name, WGS84 lon/lat, GCJ-02 lon/lat."""
    features = json.loads((DATA / "metro_stations.geojson").read_text("utf-8"))["features"]
    return pd.DataFrame(
        {
            "name": [f["properties"]["name"] for f in features],
            "lon": [f["geometry"]["coordinates"][0] for f in features],
            "lat": [f["geometry"]["coordinates"][1] for f in features],
            "gcj_lon": [f["properties"]["gcj02"][0] for f in features],
            "gcj_lat": [f["properties"]["gcj02"][1] for f in features],
        }
    )


def stations_frame(metro: pd.DataFrame, n: int = 8) -> gpd.GeoDataFrame:
    part = metro.iloc[:n]
    kinds = ["red_station", "党群连心岗", "grid_station", "红色小屋"]  # codes and Chinese labels
    return gpd.GeoDataFrame(
        {
            "code": [f"S{i:03d}" for i in range(n)],
            "name": list(part["name"]),
            "kind": [kinds[i % len(kinds)] for i in range(n)],
            "address": [f"{name}地铁站" for name in part["name"]],
        },
        geometry=gpd.points_from_xy(part["lon"], part["lat"]),
        crs=4326,
    )


def square(lon: float, lat: float, size: float = 0.004) -> Polygon:
    return Polygon(
        [(lon, lat), (lon + size, lat), (lon + size, lat + size), (lon, lat + size), (lon, lat)]
    )


def grids_frame(n: int = 4, community: str | None = None) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "code": [f"G{i:03d}" for i in range(n)],
            "name": [f"八一广场第{i + 1}网格" for i in range(n)],
            "population": [1000 + 10 * i for i in range(n)],
            "households": [400 + i for i in range(n)],
            "community_code": [community] * n,
        },
        geometry=[square(115.88 + 0.005 * i, 28.66) for i in range(n)],
        crs=4326,
    )


def write(frame: gpd.GeoDataFrame, directory: Path, fmt: str, name: str = "layer") -> Path:
    """Write ``frame`` as GeoJSON, GPKG, Shapefile (UTF-8 with .cpg) or CSV."""
    with warnings.catch_warnings():
        # Shapefile writers warn about cutting field names to 10 characters: intended here.
        warnings.simplefilter("ignore")
        return _write(frame, directory, fmt, name)


def _write(frame: gpd.GeoDataFrame, directory: Path, fmt: str, name: str) -> Path:
    if fmt == "geojson":
        path = directory / f"{name}.geojson"
        frame.to_file(path, driver="GeoJSON", engine="pyogrio")
    elif fmt == "gpkg":
        path = directory / f"{name}.gpkg"
        frame.to_file(path, driver="GPKG", layer=name, engine="pyogrio")
    elif fmt == "shp":
        path = directory / f"{name}.shp"
        frame.to_file(path, driver="ESRI Shapefile", engine="pyogrio", encoding="UTF-8")
    elif fmt == "csv":
        path = directory / f"{name}.csv"
        table = pd.DataFrame(frame.drop(columns=frame.geometry.name))
        if (frame.geom_type == "Point").all():
            table["lon"] = [repr(p.x) for p in frame.geometry]
            table["lat"] = [repr(p.y) for p in frame.geometry]
        else:
            table["wkt"] = shapely.to_wkt(frame.geometry.values, rounding_precision=-1)
        table.to_csv(path, index=False)
    else:  # pragma: no cover
        raise ValueError(fmt)
    return path


def feature_collection(path: Path, features: list[dict]) -> Path:
    path.write_text(
        json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False),
        encoding="utf-8",
    )
    return path


def point_feature(lon: float, lat: float, **properties) -> dict:
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
        "properties": properties,
    }


def read_points(conn: sa.Connection, table: str, source: str) -> pd.DataFrame:
    rows = conn.execute(
        sa.text(
            f"SELECT code, name, kind, ST_X(geom) AS lon, ST_Y(geom) AS lat FROM {table} "
            "WHERE source = :source ORDER BY id"
        ),
        {"source": source},
    )
    return pd.DataFrame(rows.mappings().all())


@pytest.fixture
def regions(connection: sa.Connection) -> sa.Connection:
    """The connection with the real city and district outlines imported."""
    report = importers.import_file(connection, DATA / "admin_boundaries.geojson", "regions")
    assert report.rows == 10
    return connection


# -- formats ---------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["geojson", "gpkg", "shp", "csv"])
def test_points_round_trip(connection, metro, tmp_path, fmt):
    frame = stations_frame(metro)
    path = write(frame, tmp_path, fmt)
    report = importers.import_file(connection, path, "stations")
    assert report.layer == "stations" and report.rows == len(frame)
    stored = read_points(connection, "stations", f"real: {path.name}")
    assert list(stored["code"]) == list(frame["code"])
    assert list(stored["name"]) == list(frame["name"])  # Chinese names intact
    assert list(stored["kind"]) == ["red_station", "party_post", "grid_station", "red_cabin"] * 2
    assert np.abs(stored["lon"] - frame.geometry.x).max() < 1e-7
    assert np.abs(stored["lat"] - frame.geometry.y).max() < 1e-7


@pytest.mark.parametrize("fmt", ["geojson", "gpkg", "shp", "csv"])
def test_polygons_round_trip(regions, tmp_path, fmt):
    frame = grids_frame(community="360102")
    frame.loc[1, "geometry"] = MultiPolygon([square(115.9, 28.7), square(115.91, 28.7)])
    path = write(frame, tmp_path, fmt)
    report = importers.import_file(regions, path, "grids")
    assert report.rows == 4
    stored = regions.execute(
        sa.text(
            "SELECT code, name, population, households, community_code, ST_AsBinary(geom) AS g "
            "FROM grids WHERE source = :s ORDER BY id"
        ),
        {"s": f"real: {path.name}"},
    ).all()
    assert [r.code for r in stored] == list(frame["code"])
    assert [r.name for r in stored] == list(frame["name"])
    assert [r.population for r in stored] == list(frame["population"])
    assert [r.households for r in stored] == list(frame["households"])
    assert {r.community_code for r in stored} == {"360102"}
    for row, original in zip(stored, frame.geometry, strict=True):
        geom = shapely.from_wkb(bytes(row.g))
        assert geom.geom_type == "MultiPolygon"  # polygons promoted
        # Shapefile rings may start elsewhere or turn the other way: compare shapes.
        assert geom.symmetric_difference(original).area < 1e-12
        assert shapely.hausdorff_distance(geom, original) < 1e-7


def test_gbk_shapefile_without_cpg(connection, metro, tmp_path):
    frame = stations_frame(metro).rename(columns={"name": "名称", "kind": "类型", "code": "编码"})
    path = tmp_path / "gbk_stations.shp"
    frame.to_file(path, driver="ESRI Shapefile", engine="pyogrio", encoding="GBK")
    path.with_suffix(".cpg").unlink()
    dbf = path.with_suffix(".dbf")
    data = bytearray(dbf.read_bytes())
    data[29] = 0  # no language driver byte either, as in most files from Chinese desktops
    dbf.write_bytes(bytes(data))
    # The premise: read naively, GDAL turns the names into mojibake.
    naive = pyogrio.read_dataframe(path)
    assert "名称" not in naive.columns

    report = importers.import_file(connection, path, "stations")
    assert report.rows == len(frame)
    assert any("GB18030" in w for w in report.warnings)
    stored = read_points(connection, "stations", "real: gbk_stations.shp")
    assert list(stored["name"]) == list(frame["名称"])
    assert list(stored["code"]) == list(frame["编码"])
    assert np.abs(stored["lon"] - frame.geometry.x).max() < 1e-7


def _gbk_shapefile(frame: gpd.GeoDataFrame, folder: Path, name: str) -> list[Path]:
    """A Shapefile written in GBK with no .cpg (and no language byte), as Chinese desktop
    GIS tools write them; returns its files."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.shp"
    frame.to_file(path, driver="ESRI Shapefile", engine="pyogrio", encoding="GBK")
    path.with_suffix(".cpg").unlink()
    dbf = path.with_suffix(".dbf")
    data = bytearray(dbf.read_bytes())
    data[29] = 0
    dbf.write_bytes(bytes(data))
    return sorted(folder.glob(f"{name}.*"))


def _zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def test_zipped_gbk_shapefile_without_cpg(connection, metro, tmp_path):
    """A zip with one layer inside (in a folder, as zips from other offices come): read as
    that Shapefile, its GBK text detected, its messages naming the zip."""
    frame = stations_frame(metro).rename(columns={"name": "名称", "kind": "类型", "code": "编码"})
    files = _gbk_shapefile(frame, tmp_path / "build", "红色驿站")
    archive = _zip(
        tmp_path / "stations.zip",
        {f"导出/{f.name}": f.read_bytes() for f in files} | {"导出/说明.txt": b"readme"},
    )
    report = importers.import_file(connection, archive, "stations")
    assert report.rows == len(frame)
    assert any("GB18030" in w for w in report.warnings), report.warnings
    stored = read_points(connection, "stations", "real: stations.zip")
    assert list(stored["name"]) == list(frame["名称"])
    assert list(stored["code"]) == list(frame["编码"])
    assert np.abs(stored["lon"] - frame.geometry.x).max() < 1e-7


def test_zipped_shapefile_errors_are_clear_and_write_nothing(connection, metro, tmp_path):
    frame = stations_frame(metro)
    one = {f.name: f.read_bytes() for f in _gbk_shapefile(frame, tmp_path / "a", "a")}
    two = {f.name: f.read_bytes() for f in _gbk_shapefile(frame, tmp_path / "b", "b")}
    cases = [
        (_zip(tmp_path / "empty.zip", {"readme.txt": b"x"}),
         r"the zip holds no Shapefile \(\.shp\); it holds: readme\.txt"),
        (_zip(tmp_path / "two.zip", one | two),
         r"the zip holds 2 Shapefiles \(a\.shp, b\.shp\); import one layer at a time"),
        (_zip(tmp_path / "nodbf.zip", {k: v for k, v in one.items() if k != "a.dbf"}),
         r"a\.shp in the zip has no a\.dbf beside it"),
    ]  # fmt: skip
    corrupt = tmp_path / "corrupt.zip"
    corrupt.write_bytes(b"PK\x03\x04 this is not a zip at all")
    cases.append((corrupt, r"not a readable zip file"))
    # A zip whose directory is fine but whose .dbf data is damaged (a broken download).
    damaged = _zip(tmp_path / "damaged.zip", one)
    data = bytearray(damaged.read_bytes())
    with zipfile.ZipFile(damaged) as archive:
        info = archive.getinfo("a.dbf")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    for i in range(start + 5, start + 25):
        data[i] ^= 0xFF
    damaged.write_bytes(bytes(data))
    cases.append((damaged, r"a\.dbf in the zip is damaged"))
    importers.import_file(connection, _zip(tmp_path / "ok.zip", one), "stations")
    for path, pattern in cases:
        error = rejected(
            connection, lambda path=path: importers.import_file(connection, path, "stations"),
            pattern,
        )  # fmt: skip
        assert path.name in error.message


def test_a_zip_member_cannot_write_outside_its_folder(connection, metro, tmp_path):
    frame = stations_frame(metro)
    files = _gbk_shapefile(frame, tmp_path / "src", "layer")
    archive = _zip(tmp_path / "sly.zip", {f"../../{f.name}": f.read_bytes() for f in files})
    assert importers.import_file(connection, archive, "stations").rows == len(frame)
    assert not (tmp_path.parent / "layer.shp").exists()


def test_shapefile_in_neither_utf8_nor_gbk_needs_encoding(connection, tmp_path):
    frame = gpd.GeoDataFrame(
        {"name": ["Café Rouge", "Gîte"], "kind": ["red_station"] * 2},
        geometry=[Point(115.9, 28.7), Point(115.91, 28.71)],
        crs=4326,
    )
    path = tmp_path / "latin.shp"
    frame.to_file(path, driver="ESRI Shapefile", engine="pyogrio", encoding="latin1")
    path.with_suffix(".cpg").unlink()
    rejected(
        connection,
        lambda: importers.import_file(connection, path, "stations"),
        r"cannot tell the text encoding of the \.dbf file .*pass --encoding",
    )
    rejected(
        connection,
        lambda: importers.import_file(connection, path, "stations", encoding="utf-8"),
        r"\.dbf text is not valid utf-8",
    )
    importers.import_file(connection, path, "stations", encoding="latin1")
    assert list(read_points(connection, "stations", "real: latin.shp")["name"]) == list(
        frame["name"]
    )


def test_gbk_csv_with_chinese_headers_and_tabs(connection, metro, tmp_path):
    part = metro.iloc[:5]
    lines = ["名称\t类型\t经度\t纬度\t备注"]
    lines += [f"{r.name}\t红色驿站\t{r.lon!r}\t{r.lat!r}\t无" for r in part.itertuples()]
    path = tmp_path / "驿站.csv"
    path.write_bytes("\r\n".join(lines).encode("gbk"))
    report = importers.import_file(connection, path, "stations", source="real: 区县台账 2024")
    assert report.rows == 5
    assert any("备注" in w for w in report.warnings)  # the extra column, ignored
    stored = read_points(connection, "stations", "real: 区县台账 2024")
    assert list(stored["name"]) == list(part["name"])
    assert set(stored["kind"]) == {"red_station"}
    assert np.abs(stored["lat"] - part["lat"].to_numpy()).max() < 1e-7


def test_gbk_geojson(connection, metro, tmp_path):
    part = metro.iloc[:3]
    features = [
        point_feature(r.lon, r.lat, 名称=r.name, 类型="爱心驿站") for r in part.itertuples()
    ]
    text = json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False)
    path = tmp_path / "gbk.geojson"
    path.write_bytes(text.encode("gbk"))
    report = importers.import_file(connection, path, "stations")
    assert any("GB18030" in w for w in report.warnings)
    stored = read_points(connection, "stations", "real: gbk.geojson")
    assert list(stored["name"]) == list(part["name"])
    assert set(stored["kind"]) == {"love_station"}


def test_explicit_encoding_overrides_detection(connection, metro, tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("name,kind,lon,lat\nCafé rouge,red_station,115.9,28.7\n".encode("latin1"))
    rejected(connection, lambda: importers.read_layer(path, "stations"), "encoding")
    frame, _ = importers.read_layer(path, "stations", encoding="latin1")
    assert frame["name"].iloc[0] == "Café rouge"


def test_csv_with_wkt_points(connection, metro, tmp_path):
    path = tmp_path / "sites.csv"
    path.write_text(
        "name,kind,WKT,coord_quality\n八一起义纪念馆,纪念馆,POINT (115.8845 28.6779),已核实\n",
        encoding="utf-8",
    )
    frame, notes = importers.read_layer(path, "sites")
    assert frame["kind"].iloc[0] == "memorial_hall"
    assert frame["coord_quality"].iloc[0] == "verified"
    assert frame.geometry.iloc[0].equals(Point(115.8845, 28.6779))
    assert any("no CRS" in w and "GCJ02" in w for w in notes)


def test_real_red_sites_csv(regions):
    # district_code is an alias of region_code; the districts come from the real outlines.
    report = importers.import_file(regions, DATA / "red_sites.csv", "sites")
    assert report.rows == 6
    assert any("no CRS" in w for w in report.warnings)
    rows = regions.execute(
        sa.text("SELECT region_code, coord_quality FROM sites ORDER BY id")
    ).all()
    assert {r.region_code for r in rows} <= {"360102", "360103"}
    assert {r.coord_quality for r in rows} == {"verified", "approximate"}


def test_sites_need_their_regions(connection):
    rejected(
        connection,
        lambda: importers.import_file(connection, DATA / "red_sites.csv", "sites"),
        "region_code '36010[23]' does not exist in regions",
        row=1,
        field="district_code",
    )


def test_geopackage_picks_the_layer_named_like_the_table(connection, metro, tmp_path):
    path = tmp_path / "many.gpkg"
    stations_frame(metro, 3).to_file(path, layer="stations", driver="GPKG", engine="pyogrio")
    grids_frame(2).to_file(path, layer="grids", driver="GPKG", engine="pyogrio")
    assert importers.import_file(connection, path, "stations").rows == 3
    rejected(
        connection,
        lambda: importers.import_file(connection, path, "sites"),
        r"several layers \(stations, grids\)",
    )


# -- CRSs ------------------------------------------------------------------------------------
def test_amap_geojson_in_gcj02_lands_on_the_real_points(connection, metro, tmp_path):
    part = metro.iloc[[0, 40, 90]]
    features = [
        point_feature(r.gcj_lon, r.gcj_lat, name=r.name, type="党群连心岗")
        for r in part.itertuples()
    ]
    path = feature_collection(tmp_path / "amap_export.geojson", features)
    report = importers.import_file(connection, path, "stations", crs="GCJ02")
    assert report.rows == 3 and report.crs == "GCJ02"
    assert not any("declares" in w for w in report.warnings)  # GeoJSON always "says" WGS84
    stored = read_points(connection, "stations", "real: amap_export.geojson")
    error = GEOD.inv(stored["lon"], stored["lat"], part["lon"], part["lat"])[2]
    assert np.max(error) < 1.0
    offset = GEOD.inv(part["gcj_lon"], part["gcj_lat"], part["lon"], part["lat"])[2]
    assert np.min(offset) > 300  # without the conversion they would be hundreds of metres off


def test_baidu_csv(connection, metro, tmp_path):
    part = metro.iloc[:4]
    blon, blat = crs.gcj02_to_bd09(part["gcj_lon"].to_numpy(), part["gcj_lat"].to_numpy())
    table = pd.DataFrame({"name": part["name"], "kind": "red_station", "lng": blon, "lat": blat})
    path = tmp_path / "baidu.csv"
    table.to_csv(path, index=False)
    importers.import_file(connection, path, "stations", crs="baidu")
    stored = read_points(connection, "stations", "real: baidu.csv")
    assert np.max(GEOD.inv(stored["lon"], stored["lat"], part["lon"], part["lat"])[2]) < 1.0


@pytest.mark.parametrize("fmt", ["gpkg", "geojson", "shp"])
@pytest.mark.parametrize("epsg", [4548, 32650, 4490])
def test_declared_file_crs_is_used(connection, metro, tmp_path, epsg, fmt):
    frame = stations_frame(metro, 5)
    path = write(frame.to_crs(epsg), tmp_path, fmt)
    report = importers.import_file(connection, path, "stations")
    assert report.crs == f"EPSG:{epsg}"
    assert not any("CRS" in w for w in report.warnings)
    stored = read_points(connection, "stations", f"real: {path.name}")
    assert np.abs(stored["lon"] - frame.geometry.x).max() < 1e-7
    assert np.abs(stored["lat"] - frame.geometry.y).max() < 1e-7


def test_projected_csv_with_crs_argument(connection, metro, tmp_path):
    frame = stations_frame(metro, 3).to_crs(4548)
    path = write(frame, tmp_path, "csv")
    importers.import_file(connection, path, "stations", crs="EPSG:4548")
    stored = read_points(connection, "stations", "real: layer.csv")
    assert np.abs(stored["lon"] - metro["lon"].iloc[:3].to_numpy()).max() < 1e-7


def test_geojson_in_metres_without_crs_member(connection, metro, tmp_path):
    x, y = pyproj.Transformer.from_crs(4326, 4548, always_xy=True).transform(115.9, 28.7)
    path = feature_collection(
        tmp_path / "metres.geojson", [point_feature(x, y, name="甲", kind="red_station")]
    )
    rejected(
        connection,
        lambda: importers.import_file(connection, path, "stations"),
        "file has no CRS; pass --crs",
        row=1,
        field="crs",
    )
    report = importers.import_file(connection, path, "stations", crs="EPSG:4548")
    assert report.rows == 1


def test_multipoints_of_one_point_and_z_are_accepted(connection, tmp_path):
    frame = gpd.GeoDataFrame(
        {"name": ["甲", "乙"], "kind": ["red_station", "red_cabin"]},
        geometry=[shapely.MultiPoint([(115.9, 28.7, 20.0)]), Point(115.91, 28.71, 25.0)],
        crs=4326,
    )
    path = write(frame, tmp_path, "gpkg")
    out, notes = importers.read_layer(path, "stations")
    assert list(out.geom_type) == ["Point", "Point"]
    assert not out.geometry.has_z.any()
    assert any("Z coordinates" in w for w in notes)
    two = frame.set_geometry([shapely.MultiPoint([(115.9, 28.7), (115.8, 28.6)])] * 2, crs=4326)
    path = write(two, tmp_path, "geojson")
    rejected(
        connection,
        lambda: importers.import_file(connection, path, "stations"),
        "needs points, found MultiPoint",
        row=1,
    )


def test_crs_argument_overrides_a_declared_crs_with_a_warning(connection, metro, tmp_path):
    frame = stations_frame(metro, 3)
    frame = frame.set_geometry(
        gpd.points_from_xy(metro["gcj_lon"].iloc[:3], metro["gcj_lat"].iloc[:3]), crs=4490
    )
    path = write(frame, tmp_path, "gpkg")
    report = importers.import_file(connection, path, "stations", crs="gcj-02")
    assert any("declares EPSG:4490" in w and "GCJ02" in w for w in report.warnings)


# -- the layers, their columns, their links ---------------------------------------------------
def test_regions_grids_stations_teams_chain(regions, metro, tmp_path):
    grids = grids_frame(3, community="360103")
    importers.import_file(regions, write(grids, tmp_path, "geojson", "grids"), "grids")
    stations = stations_frame(metro, 3)
    stations["grid_code"] = ["G000", None, "G002"]
    stations["region_code"] = "360102"
    importers.import_file(regions, write(stations, tmp_path, "gpkg", "stations"), "stations")
    teams = gpd.GeoDataFrame(
        {
            "编码": ["T1", "T2"],
            "队伍名称": ["洪城红医护队", "青年突击队"],
            "类型": ["医护人员", "youth"],
            "人数": ["3000", "2,500"],
            "状态": ["出勤", ""],
            "能力": ["急救、转运", "boats; sandbags"],
            "grid_code": ["G001", None],
        },
        geometry=[Point(115.90, 28.68), Point(115.87, 28.70)],
        crs=4326,
    )
    path = tmp_path / "teams.csv"
    table = pd.DataFrame(teams.drop(columns="geometry"))
    table["经度"], table["纬度"] = teams.geometry.x, teams.geometry.y
    table.to_csv(path, index=False, encoding="utf-8-sig")  # BOM, as Excel writes
    report = importers.import_file(regions, path, "teams")
    assert report.rows == 2
    rows = regions.execute(
        sa.text(
            "SELECT code, name, kind, headcount, status, capabilities, home_grid_code "
            "FROM teams ORDER BY code"
        )
    ).all()
    assert [tuple(r) for r in rows] == [
        ("T1", "洪城红医护队", "medical", 3000, "deployed", ["急救", "转运"], "G001"),
        ("T2", "青年突击队", "youth", 2500, "available", ["boats", "sandbags"], None),
    ]
    stored = regions.execute(sa.text("SELECT grid_code, region_code FROM stations ORDER BY id"))
    assert [tuple(r) for r in stored] == [
        ("G000", "360102"),
        (None, "360102"),
        ("G002", "360102"),
    ]


def test_real_admin_boundaries(regions):
    rows = regions.execute(
        sa.text("SELECT code, parent_code, level FROM regions ORDER BY code")
    ).all()
    assert rows[0] == ("360100", None, "city")  # the province code 360000 was dropped
    assert {r.parent_code for r in rows[1:]} == {"360100"}
    assert regions.execute(sa.text("SELECT bool_and(ST_IsValid(geom)) FROM regions")).scalar()


def test_grids_without_population_get_zero_and_a_warning(connection, tmp_path):
    frame = grids_frame(2).drop(columns=["population", "households", "community_code"])
    frame["colour"] = "red"
    frame_out, notes = importers.read_layer(write(frame, tmp_path, "geojson"), "grids")
    assert list(frame_out["population"]) == [0, 0]
    assert any("population 0" in w for w in notes)
    assert any("colour" in w for w in notes)


def test_repair_true_repairs_and_warns(connection, tmp_path):
    frame = grids_frame(3)
    bowtie = Polygon([(115.9, 28.7), (115.91, 28.71), (115.91, 28.7), (115.9, 28.71)])
    frame.loc[2, "geometry"] = bowtie
    path = write(frame, tmp_path, "geojson")
    report = importers.import_file(connection, path, "grids", repair=True)
    assert report.rows == 3
    warning = next(w for w in report.warnings if "repaired" in w)
    assert "row 3" in warning and "Self-intersection" in warning
    row = connection.execute(
        sa.text(
            "SELECT ST_IsValid(geom), GeometryType(geom), ST_Area(geom) FROM grids "
            "WHERE code = 'G002'"
        )
    ).one()
    assert row[0] is True and row[1] == "MULTIPOLYGON"
    assert row[2] == pytest.approx(0.5 * 0.01 * 0.01, rel=1e-6)  # both triangles kept


def test_custom_source_and_default_source(connection, metro, tmp_path):
    path = write(stations_frame(metro, 2), tmp_path, "geojson", "a")
    report = importers.import_file(connection, path, "stations", source="synthetic: test")
    assert report.source == "synthetic: test"
    frame, _ = importers.read_layer(path, "stations")
    assert set(frame["source"]) == {"real: a.geojson"}
    assert "id" not in frame.columns


def test_read_layer_frame_goes_straight_to_copy_frame(connection, metro, tmp_path):
    frame, _ = importers.read_layer(write(stations_frame(metro, 3), tmp_path, "gpkg"), "stations")
    assert frame.geometry.name == "geom" and frame.crs.to_epsg() == 4326
    assert storage.copy_frame(connection, "stations", frame) == 3
    ids = connection.execute(sa.text("SELECT id FROM stations ORDER BY id")).scalars().all()
    assert len(ids) == 3 and len(set(ids)) == 3  # serial ids from the database


# -- rejections: every one names the problem and changes nothing ------------------------------
def test_broken_geojson(connection, tmp_path):
    path = tmp_path / "broken.geojson"
    path.write_text('{"type": "FeatureCollection", "features": [{"type": "Feature", ')
    rejected(
        connection,
        lambda: importers.import_file(connection, path, "stations"),
        "cannot read the file as GeoJSON",
    )


@pytest.mark.parametrize(
    ("layer", "geometry", "found"),
    [
        ("stations", LineString([(115.9, 28.7), (115.91, 28.71)]), "LineString"),
        ("grids", Point(115.9, 28.7), "Point"),
    ],
)
def test_wrong_geometry_type(connection, tmp_path, layer, geometry, found):
    frame = gpd.GeoDataFrame(
        {"code": ["A", "B"], "name": ["甲", "乙"], "kind": ["red_station"] * 2},
        geometry=[square(115.9, 28.7) if layer == "grids" else Point(115.9, 28.7), geometry],
        crs=4326,
    )
    path = write(frame, tmp_path, "geojson")
    rejected(
        connection,
        lambda: importers.import_file(connection, path, layer),
        f"wrong geometry type: the {layer} layer needs .*found {found}",
        row=2,
        field="geometry",
    )


def test_lat_lon_swapped(connection, metro, tmp_path):
    part = metro.iloc[:3]
    table = pd.DataFrame(
        {"name": part["name"], "kind": "red_station", "lon": part["lat"], "lat": part["lon"]}
    )
    path = tmp_path / "swapped.csv"
    table.to_csv(path, index=False)
    error = rejected(
        connection,
        lambda: importers.import_file(connection, path, "stations"),
        "looks like lat/lon are swapped",
        row=1,
        field="lon/lat",
    )
    assert "also rows 2, 3" in error.message


def test_lat_lon_swapped_inside_the_degree_range(connection, tmp_path):
    # lon 40, lat 85 is a valid WGS84 point but far from China; (85, 40) is in Xinjiang.
    path = feature_collection(
        tmp_path / "swapped.geojson",
        [
            point_feature(115.9, 28.7, name="甲", kind="red_station"),
            point_feature(40.0, 85.0, name="乙", kind="red_station"),
        ],
    )
    rejected(
        connection,
        lambda: importers.import_file(connection, path, "stations"),
        "looks like lat/lon are swapped",
        row=2,
    )


def test_out_of_range_coordinates(connection, tmp_path):
    path = feature_collection(
        tmp_path / "range.geojson",
        [
            point_feature(115.9, 28.7, name="甲", kind="red_station"),
            point_feature(215.9, 28.7, name="乙", kind="red_station"),
        ],
    )
    rejected(
        connection,
        lambda: importers.import_file(connection, path, "stations"),
        "out-of-range coordinates",
        row=2,
        field="geometry",
    )


def test_outside_china(connection, tmp_path):
    path = feature_collection(
        tmp_path / "helsinki.geojson",
        [point_feature(24.94, 60.17, name="Helsinki", kind="red_station")],
    )
    rejected(
        connection,
        lambda: importers.import_file(connection, path, "stations"),
        "outside China",
        row=1,
    )


def test_projected_coordinates_without_crs(connection, metro, tmp_path):
    frame = stations_frame(metro, 3).to_crs(32650)
    path = write(frame, tmp_path, "csv")
    rejected(
        connection,
        lambda: importers.import_file(connection, path, "stations"),
        r"file has no CRS; pass --crs.*metres",
        row=1,
        field="crs",
    )
    # A shapefile without .prj: the same.
    shp = write(frame, tmp_path, "shp")
    shp.with_suffix(".prj").unlink()
    rejected(
        connection,
        lambda: importers.import_file(connection, shp, "stations"),
        "file has no CRS; pass --crs",
    )


@pytest.mark.parametrize("value", ["EPSG:99999", "WGS85"])
def test_unknown_crs(connection, metro, tmp_path, value):
    path = write(stations_frame(metro, 2), tmp_path, "geojson")
    error = rejected(
        connection,
        lambda: importers.import_file(connection, path, "stations", crs=value),
        f"unknown CRS '{value}'.*GCJ02",
        field="crs",
        kind=InvalidInput,
    )
    assert not isinstance(error, InvalidFile)


def test_self_intersecting_polygon_without_repair(connection, tmp_path):
    frame = grids_frame(3)
    frame.loc[1, "geometry"] = Polygon(
        [(115.9, 28.7), (115.91, 28.71), (115.91, 28.7), (115.9, 28.71)]
    )
    path = write(frame, tmp_path, "gpkg")
    rejected(
        connection,
        lambda: importers.import_file(connection, path, "grids", repair=False),
        r"invalid polygon: Self-intersection\[",
        row=2,
        field="geometry",
    )


def test_missing_column(connection, metro, tmp_path):
    path = write(stations_frame(metro, 2).drop(columns="kind"), tmp_path, "geojson")
    rejected(
        connection,
        lambda: importers.import_file(connection, path, "stations"),
        r"missing required column 'kind' \(accepted headers: kind, type, .*类型",
        field="kind",
    )


def test_duplicate_codes_in_the_file(connection, tmp_path):
    frame = grids_frame(4)
    frame.loc[3, "code"] = "G001"
    path = write(frame, tmp_path, "geojson")
    rejected(
        connection,
        lambda: importers.import_file(connection, path, "grids"),
        r"duplicate code 'G001' \(also in row 2\)",
        row=4,
        field="code",
    )


def test_code_already_in_the_table(connection, tmp_path):
    first = write(grids_frame(2), tmp_path, "geojson", "first")
    importers.import_file(connection, first, "grids")
    second = grids_frame(5)
    second["code"] = ["N1", "N2", "N3", "G001", "N5"]
    path = write(second, tmp_path, "geojson", "second")
    rejected(
        connection,
        lambda: importers.import_file(connection, path, "grids"),
        "code 'G001' already exists in grids",
        row=4,
        field="code",
    )


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("empty.geojson", '{"type": "FeatureCollection", "features": []}'),
        ("zero.geojson", ""),
        ("header_only.csv", "name,kind,lon,lat\n"),
        ("nothing.csv", ""),
    ],
)
def test_empty_file(connection, tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content)
    rejected(
        connection,
        lambda: importers.import_file(connection, path, "stations"),
        "no features",
    )


def test_unknown_kind(connection, metro, tmp_path):
    frame = stations_frame(metro, 3)
    frame.loc[2, "kind"] = "karaoke"
    path = write(frame, tmp_path, "csv")
    rejected(
        connection,
        lambda: importers.import_file(connection, path, "stations"),
        r"unknown kind 'karaoke'; accepted: centre_district, .*red_station.*Chinese labels",
        row=3,
        field="kind",
    )


@pytest.mark.parametrize(
    ("column", "value", "pattern"),
    [
        ("population", -5, r"population must be a whole number >= 0, got -5"),
        ("population", "many", r"population must be a whole number, got 'many'"),
        ("population", 12.5, r"population must be a whole number, got '12.5'"),
        ("households", 5000, r"households \(5000\) exceed population \(1010\)"),
    ],
)
def test_bad_numbers(connection, tmp_path, column, value, pattern):
    frame = grids_frame(3)
    frame[column] = frame[column].astype(object)
    frame.loc[1, column] = value
    path = write(frame, tmp_path, "csv")
    rejected(
        connection,
        lambda: importers.import_file(connection, path, "grids"),
        pattern,
        row=2,
        field=column,
    )


def test_zero_headcount_and_unknown_status(connection, tmp_path):
    def teams_file(headcount: str, status: str) -> Path:
        path = tmp_path / "teams.csv"
        path.write_text(
            "code,name,kind,headcount,status,lon,lat\n"
            "T1,甲,veteran,10,available,115.9,28.7\n"
            f"T2,乙,veteran,{headcount},{status},115.9,28.7\n",
            encoding="utf-8",
        )
        return path

    path = teams_file("0", "available")
    rejected(
        connection,
        lambda: importers.import_file(connection, path, "teams"),
        "headcount must be a whole number >= 1, got 0",
        row=2,
        field="headcount",
    )
    path = teams_file("5", "asleep")
    rejected(
        connection,
        lambda: importers.import_file(connection, path, "teams"),
        "unknown status 'asleep'; accepted: available, deployed, off_duty",
        row=2,
        field="status",
    )


def test_empty_required_value_and_missing_geometry(connection, tmp_path):
    path = tmp_path / "holes.csv"
    path.write_text("name,kind,lon,lat\n甲,red_station,115.9,28.7\n ,red_station,115.9,28.7\n")
    rejected(
        connection,
        lambda: importers.import_file(connection, path, "stations"),
        "empty required value: name",
        row=2,
        field="name",
    )
    path.write_text("name,kind,lon,lat\n甲,red_station,115.9,28.7\n乙,red_station,,\n")
    rejected(
        connection,
        lambda: importers.import_file(connection, path, "stations"),
        "missing geometry",
        row=2,
    )
    geojson = tmp_path / "null.geojson"
    geojson.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    point_feature(115.9, 28.7, name="甲", kind="red_station"),
                    {
                        "type": "Feature",
                        "geometry": None,
                        "properties": {"name": "乙", "kind": "red_station"},
                    },
                ],
            },
            ensure_ascii=False,
        )
    )
    rejected(
        connection,
        lambda: importers.import_file(connection, geojson, "stations"),
        "missing geometry",
        row=2,
        field="geometry",
    )


def test_bad_foreign_keys(regions, tmp_path):
    frame = grids_frame(3, community="360102")
    frame.loc[2, "community_code"] = "360199"
    path = write(frame, tmp_path, "geojson")
    rejected(
        regions,
        lambda: importers.import_file(regions, path, "grids"),
        r"community_code '360199' does not exist in regions",
        row=3,
        field="community_code",
    )
    teams = tmp_path / "teams.csv"
    teams.write_text(
        "code,name,kind,headcount,home_grid_code,lon,lat\nT1,甲,veteran,10,G404,115.9,28.7\n"
    )
    rejected(
        regions,
        lambda: importers.import_file(regions, teams, "teams"),
        r"home_grid_code 'G404' does not exist in grids; import the grids first",
        row=1,
        field="home_grid_code",
    )


def test_region_without_parent_and_bad_level(connection, tmp_path):
    frame = gpd.GeoDataFrame(
        {
            "code": ["360100", "360102"],
            "level": ["市", "district"],
            "name": ["南昌市", "东湖区"],
            "parent_code": [None, None],
        },
        geometry=[square(115.8, 28.6, 0.2), square(115.9, 28.65, 0.05)],
        crs=4326,
    )
    path = write(frame, tmp_path, "geojson")
    rejected(
        connection,
        lambda: importers.import_file(connection, path, "regions"),
        "empty parent_code: required for every level except city",
        row=2,
        field="parent_code",
    )
    frame["parent_code"] = [None, "360100"]
    frame.loc[1, "level"] = "province"
    path = write(frame, tmp_path, "geojson")
    rejected(
        connection,
        lambda: importers.import_file(connection, path, "regions"),
        "unknown level 'province'",
        row=2,
        field="level",
    )
    frame.loc[1, "level"] = "区"
    frame.loc[1, "code"] = "36-0102"
    path = write(frame, tmp_path, "geojson")
    rejected(
        connection,
        lambda: importers.import_file(connection, path, "regions"),
        "is not a region code",
        row=2,
        field="code",
    )


def test_failure_in_the_last_row_writes_nothing(connection, metro, tmp_path):
    frame = pd.DataFrame(
        {
            "code": [f"S{i:04d}" for i in range(2000)],
            "name": [f"站{i}" for i in range(2000)],
            "kind": "red_station",
            "lon": 115.8 + np.arange(2000) * 1e-4,
            "lat": 28.6,
        }
    )
    frame.loc[1999, "kind"] = "karaoke"
    path = tmp_path / "many.csv"
    frame.to_csv(path, index=False)
    rejected(
        connection,
        lambda: importers.import_file(connection, path, "stations"),
        "unknown kind 'karaoke'",
        row=2000,
        field="kind",
    )


def test_database_refusal_rolls_back_only_this_import(connection, metro, tmp_path):
    # A frame the database refuses in its last row (an invalid polygon slipped past read_layer):
    # the savepoint must undo the rows COPY already sent, and keep the caller's earlier work.
    importers.import_file(connection, write(stations_frame(metro, 2), tmp_path, "csv"), "stations")
    frame, _ = importers.read_layer(write(grids_frame(300), tmp_path, "geojson"), "grids")
    frame.loc[299, "geom"] = MultiPolygon(
        [Polygon([(115.9, 28.7), (115.91, 28.71), (115.91, 28.7), (115.9, 28.71)])]
    )
    rejected(
        connection,
        lambda: importers.write_layer(connection, "grids", frame, path="grids.geojson"),
        r"the database refused the rows .*nothing was imported",
        row=300,
    )
    assert counts(connection)["stations"] == 2  # the earlier import survives
    assert connection.execute(sa.text("SELECT 1")).scalar() == 1  # the transaction is usable


def test_committed_import_and_failed_one_in_the_same_database(db_url, metro, tmp_path):
    engine = sa.create_engine(db_url, poolclass=sa.NullPool)
    good = write(stations_frame(metro, 4), tmp_path, "geojson", "good")
    bad_frame = stations_frame(metro, 4)
    bad_frame["code"] = ["X1", "X2", "X3", "S000"]  # S000 comes from the good file
    bad = write(bad_frame, tmp_path, "geojson", "bad")
    with engine.begin() as conn:
        assert importers.import_file(conn, good, "stations").rows == 4
    with engine.begin() as conn, pytest.raises(InvalidFile, match="already exists"):
        importers.import_file(conn, bad, "stations")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM stations")).scalar() == 4
    engine.dispose()


@pytest.mark.parametrize(
    ("kwargs", "pattern", "field"),
    [
        ({"layer": "roads"}, "unknown layer 'roads'; choose one of grids, stations", "layer"),
        ({"source": "from amap"}, "must start with 'real:' or 'synthetic:'", "source"),
        ({"encoding": "klingon"}, "unknown encoding 'klingon'", "encoding"),
    ],
)
def test_bad_arguments(connection, metro, tmp_path, kwargs, pattern, field):
    path = write(stations_frame(metro, 2), tmp_path, "geojson")
    arguments = {"layer": "stations", **kwargs}
    rejected(
        connection,
        lambda: importers.import_file(connection, path, **arguments),
        pattern,
        field=field,
        kind=InvalidInput,
    )


def test_unreadable_paths(connection, tmp_path):
    rejected(
        connection,
        lambda: importers.import_file(connection, tmp_path / "nope.geojson", "stations"),
        "no such file",
    )
    other = tmp_path / "data.xlsx"
    other.write_bytes(b"PK")
    rejected(
        connection,
        lambda: importers.import_file(connection, other, "stations"),
        r"unsupported file type '\.xlsx'; accepted: .*\.zip \(a zipped Shapefile\)",
    )
    broken = tmp_path / "broken.csv"
    broken.write_text("name,kind,lon,lat\n甲,red_station,east,28.7\n")
    rejected(
        connection,
        lambda: importers.import_file(connection, broken, "stations"),
        "lon 'east' is not a number",
        row=1,
        field="lon",
    )
