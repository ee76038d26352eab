"""CRS normalisation: everything that enters the database ends in EPSG:4326 (WGS84).

Inputs arrive in four families of coordinate systems:

* WGS84 (EPSG:4326) and CGCS2000 (EPSG:4490), China's official datum, which agrees with
  WGS84 to within centimetres; pyproj still does the (ballpark) transformation so that
  the code path is the same as for every other EPSG code.
* Projected CRSs in metres (CGCS2000 Gauss-Kruger zones such as EPSG:4548, UTM 50N
  EPSG:32650, ...): pyproj.
* GCJ-02, the obfuscated datum every web map in mainland China uses (Amap/Gaode, Tencent),
  and BD-09, Baidu's further offset of GCJ-02. They are not in the EPSG registry and pyproj
  cannot do them: the published forward formulas are implemented here and inverted
  iteratively (the forward function is smooth and close to the identity, so a fixed-point
  iteration converges to well under a millimetre in a few steps).

A file cannot say that it is in GCJ-02 (a GeoJSON from Amap claims WGS84 like every
GeoJSON), so the caller declares it (``--crs GCJ02``); :func:`parse_crs` turns what the
caller typed into a :class:`CRSSpec`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, TypeVar

import geopandas as gpd
import numpy as np
import pyproj
import shapely
from pyproj.exceptions import CRSError

from geomap.errors import InvalidInput

WGS84_EPSG = 4326
CGCS2000_EPSG = 4490

GCJ02 = "GCJ02"
BD09 = "BD09"

#: What :func:`parse_crs` accepts, for error messages and help texts.
ACCEPTED = (
    "EPSG:4326 (also 4326, WGS84), EPSG:4490 (CGCS2000), any EPSG code pyproj knows "
    "(e.g. projected EPSG:4548 or EPSG:32650), GCJ02 (GCJ-02, amap, gaode, tencent) "
    "and BD09 (BD-09, baidu)"
)

# Aliases are compared after upper-casing and dropping spaces, '-' and '_'.
_ALIASES: dict[str, str | int] = {
    "WGS84": WGS84_EPSG,
    "CRS84": WGS84_EPSG,
    "OGCCRS84": WGS84_EPSG,
    "OGC:CRS84": WGS84_EPSG,
    "CGCS2000": CGCS2000_EPSG,
    "GCJ02": GCJ02,
    "AMAP": GCJ02,
    "GAODE": GCJ02,
    "TENCENT": GCJ02,
    "BD09": BD09,
    "BD09LL": BD09,
    "BAIDU": BD09,
}

# "EPSG:4548", "epsg::4548", "urn:ogc:def:crs:EPSG::4548", ".../def/crs/EPSG/0/4548", "4548".
_EPSG_RE = re.compile(
    r"^(?:EPSG:{1,2}|URN:OGC:DEF:CRS:EPSG:[^:]*:|HTTPS?://WWW\.OPENGIS\.NET/DEF/CRS/EPSG/0/)?"
    r"(\d{4,6})$"
)


@dataclass(frozen=True)
class CRSSpec:
    """A coordinate system geomap can normalise from.

    Attributes
    ----------
    name : str
        Canonical name: ``"EPSG:<code>"``, ``"GCJ02"``, ``"BD09"``, or the CRS's own name
        when a file declares a CRS that has no EPSG code.
    epsg : int or None
        The EPSG code, when there is one.
    crs : pyproj.CRS or None
        The pyproj definition; None for GCJ-02 and BD-09 (pyproj has none).
    """

    name: str
    epsg: int | None = None
    crs: pyproj.CRS | None = field(default=None, compare=False, repr=False)

    @property
    def is_obfuscated(self) -> bool:
        """True for the Chinese web-map datums GCJ-02 and BD-09."""
        return self.name in (GCJ02, BD09)

    @property
    def is_geographic(self) -> bool:
        """True when coordinates are degrees of longitude/latitude (GCJ-02/BD-09 are)."""
        return self.is_obfuscated or bool(self.crs is not None and self.crs.is_geographic)

    @property
    def is_wgs84(self) -> bool:
        """True when no transformation at all is needed."""
        return self.epsg == WGS84_EPSG

    def __str__(self) -> str:
        return self.name

    @classmethod
    def from_pyproj(cls, crs: Any) -> CRSSpec:
        """The spec of a CRS a file declares (anything ``pyproj.CRS.from_user_input`` reads).

        Raises
        ------
        InvalidInput
            When pyproj cannot read it or it is not a horizontal (geographic or projected)
            CRS.
        """
        try:
            parsed = pyproj.CRS.from_user_input(crs)
        except CRSError as exc:
            raise InvalidInput(f"unknown CRS {crs!s:.200}: {exc}", field="crs") from exc
        _check_horizontal(parsed, str(crs))
        code = parsed.to_epsg()
        name = f"EPSG:{code}" if code is not None else parsed.name
        return cls(name=name, epsg=code, crs=parsed)


WGS84 = CRSSpec(name="EPSG:4326", epsg=WGS84_EPSG, crs=pyproj.CRS.from_epsg(WGS84_EPSG))


def _check_horizontal(parsed: pyproj.CRS, text: str) -> None:
    # A vertical or geocentric CRS has no lon/lat to give: refuse it with a clear message
    # instead of letting pyproj fail later with an obscure one.
    if not (parsed.is_geographic or parsed.is_projected):
        raise InvalidInput(
            f"CRS {text!r} ({parsed.name}) is not a geographic or projected CRS; "
            f"accepted are {ACCEPTED}",
            field="crs",
        )


def parse_crs(text: str | int | None) -> CRSSpec:
    """Turn what a user typed into a :class:`CRSSpec`.

    Parameters
    ----------
    text : str, int or None
        ``EPSG:4326``/``4326``/``WGS84``, ``EPSG:4490``/``CGCS2000``, any EPSG code pyproj
        knows (``EPSG:4548``, ``32650``, ``urn:ogc:def:crs:EPSG::4548``), ``GCJ02``
        (``GCJ-02``, ``amap``, ``gaode``, ``tencent``) or ``BD09`` (``BD-09``, ``baidu``),
        in any case. None or an empty string means WGS84.

    Returns
    -------
    CRSSpec

    Raises
    ------
    InvalidInput
        ``field="crs"``: the value is not one of the above; the message names the value and
        lists what is accepted.
    """
    if text is None or (isinstance(text, str) and not text.strip()):
        return WGS84
    raw = str(text).strip()
    key = re.sub(r"[\s_-]", "", raw.upper())
    alias = _ALIASES.get(key)
    if isinstance(alias, str):
        return CRSSpec(name=alias)
    if isinstance(alias, int):
        return _epsg_spec(alias)
    match = _EPSG_RE.match(key)
    if match is None:
        raise InvalidInput(f"unknown CRS {raw!r}; accepted are {ACCEPTED}", field="crs")
    try:
        spec = _epsg_spec(int(match.group(1)))
    except CRSError as exc:
        raise InvalidInput(
            f"unknown CRS {raw!r}: pyproj knows no EPSG:{match.group(1)}; accepted are {ACCEPTED}",
            field="crs",
        ) from exc
    assert spec.crs is not None
    _check_horizontal(spec.crs, raw)
    return spec


@lru_cache(maxsize=64)
def _epsg_spec(code: int) -> CRSSpec:
    parsed = pyproj.CRS.from_epsg(code)
    return CRSSpec(name=f"EPSG:{code}", epsg=code, crs=parsed)


def _as_spec(spec: CRSSpec | str | int | None) -> CRSSpec:
    return spec if isinstance(spec, CRSSpec) else parse_crs(spec)


# -- GCJ-02 and BD-09 ------------------------------------------------------------------------
# The published GCJ-02 formulas (as in every open implementation, e.g. eviltransform):
# Krasovsky 1940 ellipsoid constants and two polynomial-plus-sine offset functions.
_A = 6378245.0
_EE = 0.00669342162296594323
_X_PI = np.pi * 3000.0 / 180.0

# Iterative inversion: stop when the forward image of the estimate is this close (degrees;
# 1e-10 degree is about 0.01 mm), or after this many steps (3-5 are typical).
_TOLERANCE_DEG = 1e-10
_MAX_ITERATIONS = 30


def out_of_china(lon: Any, lat: Any) -> Any:
    """True where GCJ-02 leaves coordinates unchanged (the usual box rule).

    The obfuscation applies only inside mainland China's rough bounding box
    (lon 72.004..137.8347, lat 0.8293..55.8271); elsewhere GCJ-02 equals WGS84.

    Parameters
    ----------
    lon, lat : float or array-like
        Degrees.

    Returns
    -------
    bool or numpy.ndarray of bool
    """
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    return (lon < 72.004) | (lon > 137.8347) | (lat < 0.8293) | (lat > 55.8271)


def _offset_lat(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
    ret += (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    ret += (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
    ret += (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    return ret


def _offset_lon(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
    ret += (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    ret += (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
    ret += (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    return ret


def _scalar_or_array(
    lon: Any, lat: Any, out_lon: np.ndarray, out_lat: np.ndarray
) -> tuple[Any, Any]:
    if np.ndim(lon) == 0 and np.ndim(lat) == 0:
        return float(out_lon), float(out_lat)
    return out_lon, out_lat


def wgs84_to_gcj02(lon: Any, lat: Any) -> tuple[Any, Any]:
    """WGS84 → GCJ-02 (the published forward formula; identity outside China).

    Parameters
    ----------
    lon, lat : float or array-like
        WGS84 degrees.

    Returns
    -------
    tuple
        ``(lon, lat)`` in GCJ-02: floats for scalar input, arrays otherwise. Use it to
        shift features onto Amap/Tencent basemaps.
    """
    x = np.asarray(lon, dtype=float)
    y = np.asarray(lat, dtype=float)
    dlat = _offset_lat(x - 105.0, y - 35.0)
    dlon = _offset_lon(x - 105.0, y - 35.0)
    radlat = y / 180.0 * np.pi
    magic = 1.0 - _EE * np.sin(radlat) ** 2
    sqrtmagic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrtmagic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrtmagic * np.cos(radlat) * np.pi)
    outside = out_of_china(x, y)
    return _scalar_or_array(
        lon, lat, np.where(outside, x, x + dlon), np.where(outside, y, y + dlat)
    )


def gcj02_to_bd09(lon: Any, lat: Any) -> tuple[Any, Any]:
    """GCJ-02 → BD-09 (Baidu's published forward formula).

    Parameters
    ----------
    lon, lat : float or array-like
        GCJ-02 degrees.

    Returns
    -------
    tuple
        ``(lon, lat)`` in BD-09: floats for scalar input, arrays otherwise.
    """
    x = np.asarray(lon, dtype=float)
    y = np.asarray(lat, dtype=float)
    z = np.sqrt(x * x + y * y) + 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) + 0.000003 * np.cos(x * _X_PI)
    return _scalar_or_array(lon, lat, z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006)


def wgs84_to_bd09(lon: Any, lat: Any) -> tuple[Any, Any]:
    """WGS84 → BD-09 (through GCJ-02, as Baidu defines it).

    Parameters
    ----------
    lon, lat : float or array-like
        WGS84 degrees.

    Returns
    -------
    tuple
        ``(lon, lat)`` in BD-09: floats for scalar input, arrays otherwise.
    """
    glon, glat = wgs84_to_gcj02(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
    return _scalar_or_array(lon, lat, *gcj02_to_bd09(glon, glat))


def _invert(
    forward: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    lon: Any,
    lat: Any,
) -> tuple[Any, Any]:
    # Fixed-point iteration w <- w - (forward(w) - target). The offsets change by a few
    # metres per kilometre, so each step shrinks the error ~100-fold: 3-5 steps reach the
    # tolerance. The closed-form "minus the offset at the target" inverse found in many
    # snippets is off by up to ~1-2 m, which is why it is not used.
    target_lon = np.asarray(lon, dtype=float)
    target_lat = np.asarray(lat, dtype=float)
    wlon, wlat = target_lon.copy(), target_lat.copy()
    for _ in range(_MAX_ITERATIONS):
        flon, flat = forward(wlon, wlat)
        dlon, dlat = flon - target_lon, flat - target_lat
        wlon = wlon - dlon
        wlat = wlat - dlat
        error = np.abs(np.concatenate([np.ravel(dlon), np.ravel(dlat)]))
        error = error[np.isfinite(error)]  # NaN coordinates stay NaN; they must not stall
        if error.size == 0 or error.max() < _TOLERANCE_DEG:
            break
    return _scalar_or_array(lon, lat, wlon, wlat)


def gcj02_to_wgs84(lon: Any, lat: Any) -> tuple[Any, Any]:
    """GCJ-02 → WGS84, by iterative inversion of the forward formula (< 1 mm).

    Parameters
    ----------
    lon, lat : float or array-like
        GCJ-02 degrees (Amap/Gaode, Tencent).

    Returns
    -------
    tuple
        ``(lon, lat)`` in WGS84: floats for scalar input, arrays otherwise.
    """
    return _invert(wgs84_to_gcj02, lon, lat)


def bd09_to_wgs84(lon: Any, lat: Any) -> tuple[Any, Any]:
    """BD-09 → WGS84, by iterative inversion of :func:`wgs84_to_bd09` (< 1 mm).

    Parameters
    ----------
    lon, lat : float or array-like
        BD-09 degrees (Baidu).

    Returns
    -------
    tuple
        ``(lon, lat)`` in WGS84: floats for scalar input, arrays otherwise.
    """
    return _invert(wgs84_to_bd09, lon, lat)


# -- geometries ------------------------------------------------------------------------------
@lru_cache(maxsize=64)
def _transformer(source_wkt: str, target_epsg: int, inverse: bool) -> pyproj.Transformer:
    source = pyproj.CRS.from_wkt(source_wkt)
    target = pyproj.CRS.from_epsg(target_epsg)
    if inverse:
        source, target = target, source
    # always_xy: lon/lat (x/y) order whatever the CRS's official axis order says.
    return pyproj.Transformer.from_crs(source, target, always_xy=True)


def _coord_function(spec: CRSSpec, inverse: bool) -> Callable[[np.ndarray], np.ndarray] | None:
    """A function of an (N, 2) coordinate array: spec → WGS84, or WGS84 → spec if inverse."""
    if spec.is_wgs84:
        return None
    if spec.is_obfuscated:
        if spec.name == GCJ02:
            pair = wgs84_to_gcj02 if inverse else gcj02_to_wgs84
        else:
            pair = wgs84_to_bd09 if inverse else bd09_to_wgs84

        def obfuscation(coords: np.ndarray) -> np.ndarray:
            lon, lat = pair(coords[:, 0], coords[:, 1])
            return np.column_stack([lon, lat])

        return obfuscation
    assert spec.crs is not None
    transformer = _transformer(spec.crs.to_wkt(), WGS84_EPSG, inverse)

    def projection(coords: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return projection


G = TypeVar("G")


def _apply(geoms_or_gdf: G, spec: CRSSpec, inverse: bool, target_crs: Any) -> G:
    func = _coord_function(spec, inverse)
    if isinstance(geoms_or_gdf, gpd.GeoDataFrame):
        out = geoms_or_gdf.copy()
        name = out.geometry.name
        # Plain arrays: the input's own CRS must not survive (the caller's spec overrides it).
        values = _transform_array(out.geometry, func)
        out[name] = gpd.GeoSeries(values, index=out.index, crs=target_crs)
        return out.set_geometry(name, crs=target_crs)  # type: ignore[return-value]
    if isinstance(geoms_or_gdf, gpd.GeoSeries):
        values = _transform_array(geoms_or_gdf, func)
        return gpd.GeoSeries(values, index=geoms_or_gdf.index, crs=target_crs)  # type: ignore[return-value]
    if isinstance(geoms_or_gdf, shapely.Geometry):
        return geoms_or_gdf if func is None else shapely.transform(geoms_or_gdf, func)  # type: ignore[return-value]
    return _transform_array(geoms_or_gdf, func)  # type: ignore[return-value]


def _transform_array(geoms: Any, func: Callable | None) -> np.ndarray:
    array = np.asarray(geoms, dtype=object)
    if func is None:
        return array
    # shapely.transform hands every vertex of every geometry to ``func`` in one (N, 2) array,
    # so the whole layer is converted in one vectorised call. Z is dropped (the tables are
    # 2D).
    return shapely.transform(array, func, include_z=False)


def _spec_of(geoms_or_gdf: Any, spec: CRSSpec | str | int | None) -> CRSSpec:
    if (
        spec is None
        and isinstance(geoms_or_gdf, gpd.GeoDataFrame | gpd.GeoSeries)
        and geoms_or_gdf.crs is not None
    ):
        return CRSSpec.from_pyproj(geoms_or_gdf.crs)
    return _as_spec(spec)


def to_wgs84(geoms_or_gdf: G, spec: CRSSpec | str | int | None = None) -> G:
    """Normalise geometries to EPSG:4326, vertex by vertex.

    Parameters
    ----------
    geoms_or_gdf : GeoDataFrame, GeoSeries, shapely geometry or array-like of geometries
        The input; its own ``crs`` attribute is ignored when ``spec`` is given (the caller's
        word wins: a GeoJSON from Amap claims WGS84 but holds GCJ-02).
    spec : CRSSpec, str, int or None
        The CRS the coordinates are in (anything :func:`parse_crs` accepts). None: the
        frame's own CRS, or WGS84 for bare geometries.

    Returns
    -------
    Same kind as the input
        GeoDataFrames and GeoSeries come back with ``crs`` EPSG:4326; Z is dropped.
    """
    return _apply(geoms_or_gdf, _spec_of(geoms_or_gdf, spec), False, WGS84_EPSG)


def from_wgs84(geoms_or_gdf: G, spec: CRSSpec | str | int) -> G:
    """The reverse of :func:`to_wgs84`: WGS84 geometries into ``spec``.

    The maps use it to shift features onto GCJ-02 (Amap, Tencent) or BD-09 (Baidu)
    basemaps. GeoDataFrames/GeoSeries come back with ``crs`` None for GCJ-02 and BD-09
    (no pyproj definition exists) and the target CRS otherwise.
    """
    target = _as_spec(spec)
    return _apply(geoms_or_gdf, target, True, target.crs)


def lonlat_to_wgs84(
    lon: float, lat: float, spec: CRSSpec | str | int | None = None
) -> tuple[float, float]:
    """Normalise one point (x/y for a projected ``spec``) to WGS84 lon/lat.

    Parameters
    ----------
    lon, lat : float
        The coordinates in ``spec`` (easting/northing in metres for a projected CRS).
    spec : CRSSpec, str, int or None
        Anything :func:`parse_crs` accepts; None means WGS84.

    Returns
    -------
    tuple of float
        ``(lon, lat)`` in EPSG:4326.

    Raises
    ------
    InvalidInput
        Unknown CRS (``field="crs"``), or coordinates that are not finite numbers or fall
        outside -180..180 / -90..90 after normalisation (``field="lon"``/``"lat"``).
    """
    parsed = _as_spec(spec)
    try:
        x, y = float(lon), float(lat)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"coordinates must be numbers, got {lon!r}, {lat!r}") from exc
    for value, name in ((x, "lon"), (y, "lat")):
        if not np.isfinite(value):
            raise InvalidInput(f"{name} must be a finite number, got {value!r}", field=name)
    func = _coord_function(parsed, inverse=False)
    if func is not None:
        x, y = (float(v) for v in func(np.array([[x, y]]))[0])
    if not (np.isfinite(x) and -180.0 <= x <= 180.0):
        raise InvalidInput(f"longitude {x!r} is outside -180..180 (CRS {parsed})", field="lon")
    if not (np.isfinite(y) and -90.0 <= y <= 90.0):
        raise InvalidInput(f"latitude {y!r} is outside -90..90 (CRS {parsed})", field="lat")
    return x, y
