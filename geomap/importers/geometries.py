"""Geometries of an imported file: types, CRS choice, conversion to EPSG:4326, validity.

:func:`check_geometries` refuses missing or wrong-typed geometries, chooses the CRS (the
caller's, the file's, or lon/lat when the numbers say so), converts to EPSG:4326, refuses
coordinates outside China (:data:`CHINA_BOX`: a wrong CRS or swapped lat/lon) and
repairs or refuses invalid polygons.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import shapely
from shapely.geometry import MultiPolygon, Polygon

from geomap.crs import WGS84, CRSSpec, to_wgs84
from geomap.errors import InvalidFile, InvalidInput
from geomap.importers.reading import Table
from geomap.importers.schema import fail_rows, rows_text

#: China's rough bounding box (lon 73..136, lat 3..54): imported features must fall inside.
#: Coordinates outside it are almost always a wrong CRS or swapped lat/lon.
CHINA_BOX = (73.0, 3.0, 136.0, 54.0)

_POINT_LAYERS = frozenset({"stations", "sites", "teams"})


def check_geometries(
    table: Table,
    layer: str,
    declared: CRSSpec | None,
    repair: bool,
    path: Path,
    warnings: list[str],
) -> tuple[np.ndarray, CRSSpec]:
    """Check a file's geometries for ``layer`` and convert them to EPSG:4326.

    Parameters
    ----------
    table : Table
        The file as read.
    layer : str
        One of :data:`~geomap.importers.schema.LAYERS`.
    declared : CRSSpec or None
        The caller's CRS; None to take the file's (or lon/lat when its numbers say so).
    repair : bool
        Repair invalid polygons (with a warning) instead of refusing them.
    path : Path
        The file, for messages.
    warnings : list of str
        Appended to: what the user should know (assumed CRS, dropped Z, repairs).

    Returns
    -------
    tuple of (ndarray, CRSSpec)
        The geometries in EPSG:4326 (points, or multipolygons for area layers) and the
        CRS they were read in.

    Raises
    ------
    InvalidFile
        A geometry is missing, of the wrong type, outside its CRS or China, or invalid.
    """
    geoms = np.asarray(table.geoms, dtype=object)
    gfield = table.geom_field
    missing = pd.isna(geoms) | shapely.is_empty(np.where(pd.isna(geoms), None, geoms))
    if missing.any():
        raise fail_rows(path, missing, "missing geometry", gfield)
    if shapely.has_z(geoms).any():
        warnings.append("Z coordinates were dropped (the tables are 2D).")
        geoms = shapely.force_2d(geoms)
    geoms = _check_types(geoms, layer, path, gfield)

    spec = _choose_crs(table, declared, geoms, path, warnings)
    if spec.is_geographic:
        _check_degrees(geoms, spec, path, gfield, assumed=False)
    try:
        geoms = np.asarray(to_wgs84(geoms, spec), dtype=object)
    except Exception as exc:  # pyproj errors for coordinates outside a CRS's domain
        raise InvalidFile(
            f"cannot convert the coordinates from {spec} to EPSG:4326: {exc}", path=str(path)
        ) from exc
    _check_lonlat_range(geoms, spec, path, gfield)
    _check_china(geoms, spec, path, gfield)
    if layer not in _POINT_LAYERS:
        geoms = _check_validity(geoms, repair, path, gfield, warnings)
    return geoms, spec


def _check_types(geoms: np.ndarray, layer: str, path: Path, gfield: str) -> np.ndarray:
    types = shapely.get_type_id(geoms)
    point, multipoint = shapely.GeometryType.POINT, shapely.GeometryType.MULTIPOINT
    polygon, multipolygon = shapely.GeometryType.POLYGON, shapely.GeometryType.MULTIPOLYGON
    if layer in _POINT_LAYERS:
        # Shapefile and GeoPackage writers often store points as one-part multipoints.
        single = (types == multipoint) & (shapely.get_num_geometries(geoms) == 1)
        geoms = np.where(single, shapely.get_geometry(geoms, 0), geoms)
        bad = ~((types == point) | single)
        needs = "points"
    else:
        bad = ~np.isin(types, [polygon, multipolygon])
        needs = "polygons or multipolygons"
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise fail_rows(
            path,
            bad,
            f"wrong geometry type: the {layer} layer needs {needs}, found {geoms[first].geom_type}",
            gfield,
        )
    if layer not in _POINT_LAYERS:
        # The tables hold MultiPolygon: promote single polygons.
        is_poly = shapely.get_type_id(geoms) == polygon
        geoms = geoms.copy()
        geoms[is_poly] = [MultiPolygon([g]) for g in geoms[is_poly]]
    return geoms


def _choose_crs(
    table: Table,
    declared: CRSSpec | None,
    geoms: np.ndarray,
    path: Path,
    warnings: list[str],
) -> CRSSpec:
    file_spec: CRSSpec | None = None
    if table.file_crs is not None:
        try:
            file_spec = CRSSpec.from_pyproj(table.file_crs)
        except InvalidInput as exc:
            if declared is None:
                raise InvalidFile(
                    f"the file's CRS is not usable ({exc.message}); pass --crs",
                    path=str(path),
                    field="crs",
                ) from exc
    if declared is not None:
        # GeoJSON cannot declare anything but WGS84 (RFC 7946), so overriding that is the
        # normal case for Amap/Baidu exports and needs no warning.
        silent = file_spec is None or file_spec == declared
        silent = silent or (table.format == "GeoJSON" and file_spec == WGS84)
        if not silent:
            warnings.append(
                f"the file declares {file_spec}; its coordinates were read as {declared} as told."
            )
        return declared
    if file_spec is not None and table.crs_declared:
        return file_spec
    # No CRS at all: WGS84 if the numbers are degrees, else the user must say.
    _check_degrees(geoms, None, path, table.geom_field, assumed=True)
    if table.format == "GeoJSON":
        return WGS84  # RFC 7946: GeoJSON is WGS84 unless it says otherwise; no news
    warnings.append(
        "the file declares no CRS: its coordinates were taken as EPSG:4326 (WGS84). "
        "Pass --crs GCJ02 for coordinates from Amap/Tencent, --crs BD09 for Baidu."
    )
    return WGS84


def _check_degrees(
    geoms: np.ndarray, spec: CRSSpec | None, path: Path, gfield: str, *, assumed: bool
) -> None:
    """Refuse coordinates that cannot be lon/lat degrees, naming the likely cause."""
    bounds = shapely.bounds(geoms)
    minx, miny, maxx, maxy = bounds.T
    bad = (minx < -180) | (maxx > 180) | (miny < -90) | (maxy > 90)
    if not bad.any():
        return
    first = int(np.flatnonzero(bad)[0])
    x, y = float(minx[first]), float(miny[first])
    swapped = bad & (minx >= -90) & (maxx <= 90) & (miny >= -180) & (maxy <= 180)
    metres = bad & (np.maximum(np.abs(bounds[:, :2]), np.abs(bounds[:, 2:])).max(axis=1) > 360)
    if swapped[first]:
        raise fail_rows(
            path,
            swapped,
            f"looks like lat/lon are swapped: ({x:g}, {y:g}) has a latitude beyond 90; "
            "put longitude first",
            gfield,
        )
    if metres[first]:
        if assumed:
            raise fail_rows(
                path,
                metres,
                f"file has no CRS; pass --crs: coordinates such as ({x:.1f}, {y:.1f}) are "
                "not degrees but look like metres of a projected CRS "
                "(e.g. EPSG:4548 or EPSG:32650 around Nanchang)",
                "crs",
            )
        raise fail_rows(
            path,
            metres,
            f"coordinates such as ({x:.1f}, {y:.1f}) look like metres of a projected CRS, "
            f"but the coordinates are read as {spec} (degrees); pass the projected CRS "
            "with --crs",
            "crs",
        )
    raise fail_rows(
        path,
        bad,
        f"out-of-range coordinates ({x:g}, {y:g}): longitude must be within -180..180 and "
        "latitude within -90..90",
        gfield,
    )


def _check_lonlat_range(geoms: np.ndarray, spec: CRSSpec, path: Path, gfield: str) -> None:
    bounds = shapely.bounds(geoms)
    minx, miny, maxx, maxy = bounds.T
    bad = ~np.isfinite(bounds).all(axis=1)
    bad |= (minx < -180) | (maxx > 180) | (miny < -90) | (maxy > 90)
    if bad.any():
        raise fail_rows(
            path,
            bad,
            f"out-of-range coordinates after conversion from {spec} to EPSG:4326 "
            "(longitude must be within -180..180, latitude within -90..90): wrong --crs?",
            gfield,
        )


def _check_china(geoms: np.ndarray, spec: CRSSpec, path: Path, gfield: str) -> None:
    west, south, east, north = CHINA_BOX
    minx, miny, maxx, maxy = shapely.bounds(geoms).T
    outside = (minx < west) | (maxx > east) | (miny < south) | (maxy > north)
    if not outside.any():
        return
    swapped_inside = outside & (miny >= west) & (maxy <= east) & (minx >= south) & (maxx <= north)
    first = int(np.flatnonzero(outside)[0])
    x, y = float(minx[first]), float(miny[first])
    if swapped_inside[first]:
        raise fail_rows(
            path,
            swapped_inside,
            f"looks like lat/lon are swapped: ({x:g}, {y:g}) lies outside China, "
            f"({y:g}, {x:g}) inside; put longitude first",
            gfield,
        )
    raise fail_rows(
        path,
        outside,
        f"coordinates land outside China (lon {west:g}..{east:g}, lat {south:g}..{north:g}) "
        f"at ({x:.4f}, {y:.4f}) once read as {spec}: wrong --crs or coordinates?",
        gfield,
    )


def _polygonal(geom: shapely.Geometry) -> list[Polygon]:
    if isinstance(geom, Polygon):
        return [] if geom.is_empty else [geom]
    if hasattr(geom, "geoms"):  # MultiPolygon, GeometryCollection
        return [p for part in geom.geoms for p in _polygonal(part)]
    return []  # lines and points left over from collapsed rings


def _check_validity(
    geoms: np.ndarray, repair: bool, path: Path, gfield: str, warnings: list[str]
) -> np.ndarray:
    invalid = ~shapely.is_valid(geoms)
    if not invalid.any():
        return geoms
    rows = [int(i) + 1 for i in np.flatnonzero(invalid)]
    reasons = [str(r) for r in shapely.is_valid_reason(geoms[invalid])]
    if not repair:
        others = f" (also rows {rows_text(rows[1:])})" if len(rows) > 1 else ""
        raise InvalidFile(
            f"invalid polygon: {reasons[0]}{others}; fix it, or import with repair "
            "(shapely.make_valid) enabled",
            path=str(path),
            row=rows[0],
            field=gfield,
        )
    geoms = geoms.copy()
    for i, row in zip(np.flatnonzero(invalid), rows, strict=True):
        parts = _polygonal(shapely.make_valid(geoms[i]))
        fixed = MultiPolygon(parts) if parts else None
        if fixed is None or fixed.is_empty or not fixed.is_valid:
            raise InvalidFile(
                f"invalid polygon that cannot be repaired: {shapely.is_valid_reason(geoms[i])}",
                path=str(path),
                row=row,
                field=gfield,
            )
        geoms[i] = fixed
    listed = "; ".join(f"row {r}: {why}" for r, why in list(zip(rows, reasons, strict=True))[:20])
    more = f"; ... ({len(rows)} rows)" if len(rows) > 20 else ""
    warnings.append(f"repaired {len(rows)} invalid polygon(s) with make_valid ({listed}{more}).")
    return geoms
