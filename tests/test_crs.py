"""CRS normalisation: parsing, GCJ-02/BD-09 against real pairs, pyproj CRSs, single points."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pyproj
import pytest
import shapely
from shapely.geometry import Point, Polygon

from geomap import config, crs
from geomap.errors import InvalidInput

GEOD = pyproj.Geod(ellps="WGS84")
STATIONS_FILE = config.PROJECT_DIR / "data" / "nanchang" / "metro_stations.geojson"


def _metres(lon1, lat1, lon2, lat2) -> np.ndarray:
    return np.asarray(GEOD.inv(lon1, lat1, lon2, lat2)[2])


@pytest.fixture(scope="module")
def stations() -> tuple[np.ndarray, np.ndarray]:
    """The 94 real Nanchang metro stations: (WGS84 lon/lat, original GCJ-02 lon/lat)."""
    features = json.loads(STATIONS_FILE.read_text(encoding="utf-8"))["features"]
    wgs = np.array([f["geometry"]["coordinates"] for f in features], dtype=float)
    gcj = np.array([f["properties"]["gcj02"] for f in features], dtype=float)
    return wgs, gcj


# -- parse_crs -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "name", "epsg"),
    [
        ("EPSG:4326", "EPSG:4326", 4326),
        ("4326", "EPSG:4326", 4326),
        (4326, "EPSG:4326", 4326),
        ("WGS84", "EPSG:4326", 4326),
        ("wgs 84", "EPSG:4326", 4326),
        (None, "EPSG:4326", 4326),
        ("EPSG:4490", "EPSG:4490", 4490),
        ("CGCS2000", "EPSG:4490", 4490),
        ("epsg:4548", "EPSG:4548", 4548),
        ("EPSG:32650", "EPSG:32650", 32650),
        ("urn:ogc:def:crs:EPSG::4548", "EPSG:4548", 4548),
        ("GCJ02", "GCJ02", None),
        ("GCJ-02", "GCJ02", None),
        ("gcj02", "GCJ02", None),
        ("amap", "GCJ02", None),
        ("Gaode", "GCJ02", None),
        ("tencent", "GCJ02", None),
        ("BD09", "BD09", None),
        ("BD-09", "BD09", None),
        ("baidu", "BD09", None),
    ],
)
def test_parse_crs_accepts(text, name, epsg):
    spec = crs.parse_crs(text)
    assert spec.name == name
    assert spec.epsg == epsg
    assert spec.is_geographic == (epsg != 4548 and epsg != 32650)
    if epsg is None:
        assert spec.is_obfuscated and spec.crs is None
    else:
        assert spec.crs is not None and spec.crs.to_epsg() == epsg


@pytest.mark.parametrize("text", ["EPSG:99999", "foo", "GCJ03", "5773", "EPSG:"])
def test_parse_crs_rejects_naming_value_and_accepted(text):
    with pytest.raises(InvalidInput) as info:
        crs.parse_crs(text)
    assert info.value.field == "crs"
    assert repr(text) in info.value.message
    for accepted in ("EPSG:4326", "CGCS2000", "GCJ02", "BD09", "baidu", "amap"):
        assert accepted in info.value.message


def test_from_pyproj_keeps_epsg_and_names_crs_without_code():
    assert crs.CRSSpec.from_pyproj("EPSG:4548") == crs.parse_crs("EPSG:4548")
    custom = crs.CRSSpec.from_pyproj("+proj=tmerc +lon_0=115.5 +ellps=GRS80 +units=m")
    assert custom.epsg is None and not custom.is_geographic and custom.crs is not None


# -- GCJ-02 and BD-09 ------------------------------------------------------------------------
def test_gcj02_to_wgs84_matches_all_real_stations(stations):
    wgs, gcj = stations
    assert len(wgs) == 94
    lon, lat = crs.gcj02_to_wgs84(gcj[:, 0], gcj[:, 1])
    error = _metres(lon, lat, wgs[:, 0], wgs[:, 1])
    # The stored values are rounded to 6 decimals (~0.1 m): 1 m leaves room for that only.
    assert error.max() < 1.0, error.max()
    # And the GCJ-02 offset itself is hundreds of metres, so the test is not trivially met.
    assert _metres(gcj[:, 0], gcj[:, 1], wgs[:, 0], wgs[:, 1]).min() > 300


def test_wgs84_to_gcj02_matches_all_real_stations(stations):
    wgs, gcj = stations
    lon, lat = crs.wgs84_to_gcj02(wgs[:, 0], wgs[:, 1])
    assert _metres(lon, lat, gcj[:, 0], gcj[:, 1]).max() < 1.0


def test_bd09_to_wgs84_on_real_stations(stations):
    wgs, gcj = stations
    # BD-09 from GCJ-02 by Baidu's published formula, then back to WGS84 by our inversion.
    blon, blat = crs.gcj02_to_bd09(gcj[:, 0], gcj[:, 1])
    lon, lat = crs.bd09_to_wgs84(blon, blat)
    assert _metres(lon, lat, wgs[:, 0], wgs[:, 1]).max() < 1.0
    assert _metres(blon, blat, wgs[:, 0], wgs[:, 1]).min() > 300


@pytest.mark.parametrize(
    ("forward", "inverse"),
    [(crs.wgs84_to_gcj02, crs.gcj02_to_wgs84), (crs.wgs84_to_bd09, crs.bd09_to_wgs84)],
)
def test_round_trip_over_china_is_below_half_a_metre(forward, inverse):
    lon, lat = np.meshgrid(np.linspace(74, 135, 62), np.linspace(4, 53, 50))
    lon, lat = lon.ravel(), lat.ravel()
    back = inverse(*forward(lon, lat))
    error = _metres(back[0], back[1], lon, lat)
    assert error.max() < 0.5
    assert error.max() < 0.001  # the iteration actually reaches sub-millimetre


def test_scalars_in_scalars_out():
    lon, lat = crs.wgs84_to_gcj02(115.8858, 28.6766)
    assert isinstance(lon, float) and isinstance(lat, float)
    back = crs.gcj02_to_wgs84(lon, lat)
    assert abs(back[0] - 115.8858) < 1e-8 and abs(back[1] - 28.6766) < 1e-8


def test_outside_china_gcj02_is_wgs84():
    for lon, lat in [(24.94, 60.17), (-0.12, 51.5), (151.2, -33.9), (139.69, 35.69)]:
        assert crs.out_of_china(lon, lat)
        assert crs.wgs84_to_gcj02(lon, lat) == (lon, lat)
        assert crs.gcj02_to_wgs84(lon, lat) == pytest.approx((lon, lat), abs=1e-12)
    assert not crs.out_of_china(115.89, 28.68)


# -- geometries ------------------------------------------------------------------------------
def test_to_wgs84_gcj02_transforms_every_vertex(stations):
    wgs, gcj = stations
    frame = gpd.GeoDataFrame(
        {"n": range(len(gcj))}, geometry=gpd.points_from_xy(gcj[:, 0], gcj[:, 1]), crs=4326
    )
    # The frame claims EPSG:4326 (as an Amap GeoJSON does); the spec wins.
    out = crs.to_wgs84(frame, "GCJ02")
    assert out.crs.to_epsg() == 4326
    assert list(out["n"]) == list(range(len(gcj)))
    assert _metres(out.geometry.x, out.geometry.y, wgs[:, 0], wgs[:, 1]).max() < 1.0
    ring = Polygon(gcj[:5])
    moved = crs.to_wgs84(ring, crs.parse_crs("amap"))
    expected = np.column_stack(crs.gcj02_to_wgs84(*np.asarray(ring.exterior.coords).T))
    assert np.allclose(np.asarray(moved.exterior.coords), expected, atol=1e-12)


@pytest.mark.parametrize("epsg", [4548, 32650])
def test_to_wgs84_projected(epsg):
    lon = np.array([115.85, 115.90, 116.10])
    lat = np.array([28.60, 28.70, 28.75])
    x, y = pyproj.Transformer.from_crs(4326, epsg, always_xy=True).transform(lon, lat)
    assert np.all(np.abs(x) > 1000)  # metres, not degrees
    series = gpd.GeoSeries(gpd.points_from_xy(x, y), crs=epsg)
    out = crs.to_wgs84(series)  # the series' own CRS
    assert out.crs.to_epsg() == 4326
    assert np.allclose(out.x, lon, atol=1e-9) and np.allclose(out.y, lat, atol=1e-9)


def test_cgcs2000_is_wgs84_within_centimetres():
    points = shapely.points([[115.85, 28.6], [73.5, 39.4], [135.0, 48.0]])
    out = crs.to_wgs84(points, "CGCS2000")
    before = shapely.get_coordinates(points)
    after = shapely.get_coordinates(out)
    assert _metres(before[:, 0], before[:, 1], after[:, 0], after[:, 1]).max() < 0.05


def test_from_wgs84_is_the_inverse(stations):
    wgs, gcj = stations
    series = gpd.GeoSeries(gpd.points_from_xy(wgs[:, 0], wgs[:, 1]), crs=4326)
    shifted = crs.from_wgs84(series, "GCJ02")
    assert _metres(shifted.x, shifted.y, gcj[:, 0], gcj[:, 1]).max() < 1.0
    projected = crs.from_wgs84(series, "EPSG:4548")
    assert projected.crs.to_epsg() == 4548
    back = crs.to_wgs84(projected)
    assert np.allclose(back.x, wgs[:, 0], atol=1e-9)


# -- single points ---------------------------------------------------------------------------
def test_lonlat_to_wgs84_every_family(stations):
    wgs, gcj = stations
    assert crs.lonlat_to_wgs84(115.9, 28.7) == (115.9, 28.7)
    lon, lat = crs.lonlat_to_wgs84(gcj[0, 0], gcj[0, 1], "gcj02")
    assert _metres(lon, lat, wgs[0, 0], wgs[0, 1]) < 1.0
    blon, blat = crs.gcj02_to_bd09(gcj[0, 0], gcj[0, 1])
    lon, lat = crs.lonlat_to_wgs84(blon, blat, crs.parse_crs("baidu"))
    assert _metres(lon, lat, wgs[0, 0], wgs[0, 1]) < 1.0
    x, y = pyproj.Transformer.from_crs(4326, 32650, always_xy=True).transform(115.9, 28.7)
    assert crs.lonlat_to_wgs84(x, y, "EPSG:32650") == pytest.approx((115.9, 28.7), abs=1e-9)


@pytest.mark.parametrize(
    ("lon", "lat", "spec", "field"),
    [
        (200.0, 28.0, None, "lon"),
        (115.0, 95.0, None, "lat"),
        (float("nan"), 28.0, None, "lon"),
        (115.0, 28.0, "EPSG:99999", "crs"),
    ],
)
def test_lonlat_to_wgs84_rejects(lon, lat, spec, field):
    with pytest.raises(InvalidInput) as info:
        crs.lonlat_to_wgs84(lon, lat, spec)
    assert info.value.field == field


def test_point_geometry_passthrough_for_wgs84():
    point = Point(115.9, 28.7)
    assert crs.to_wgs84(point, "EPSG:4326") is point
