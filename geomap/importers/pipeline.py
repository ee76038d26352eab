"""The importer's steps joined: :func:`read_layer` (reading → geometries → attributes) and
:func:`import_file` (:func:`read_layer` then :func:`~geomap.importers.database.write_layer`).
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
from sqlalchemy.engine import Connection

from geomap import vocab
from geomap.crs import WGS84, parse_crs
from geomap.errors import InvalidFile, InvalidInput
from geomap.importers.attributes import check_attributes
from geomap.importers.database import write_layer
from geomap.importers.geometries import check_geometries
from geomap.importers.reading import Reader
from geomap.importers.schema import LAYERS


@dataclass
class ImportReport:
    """What :func:`import_file` did.

    Attributes
    ----------
    layer : str
        The table written.
    rows : int
        Rows written.
    warnings : list of str
        Things the user should know (assumed CRS, repaired polygons, ignored columns...).
    crs : str
        The CRS the coordinates were read in (they are stored in EPSG:4326).
    source : str
        The value written to the ``source`` column.
    """

    layer: str
    rows: int
    warnings: list[str] = field(default_factory=list)
    crs: str = "EPSG:4326"
    source: str = ""


def read_layer(
    path: str | Path,
    layer: str,
    *,
    crs: str | None = None,
    encoding: str | None = None,
    repair: bool = True,
    source: str | None = None,
) -> tuple[gpd.GeoDataFrame, list[str]]:
    """Read and validate a file for ``layer``; nothing touches the database.

    Parameters
    ----------
    path : str or Path
        A ``.geojson``/``.json``, ``.gpkg``, ``.shp``, ``.zip`` (one zipped Shapefile) or
        ``.csv`` file. A CSV holds
        lon/lat columns (``lon``/``lng``/``longitude``/``x`` and ``lat``/``latitude``/``y``,
        any case) or WKT in a ``wkt``/``geom`` column. A GeoPackage with several layers must
        have one named like ``layer``.
    layer : str
        One of :data:`LAYERS`.
    crs : str, optional
        The CRS of the coordinates (anything :func:`geomap.crs.parse_crs` accepts); overrides
        what the file declares. Needed for GCJ-02/BD-09 data and for files without a CRS
        whose coordinates are not lon/lat degrees.
    encoding : str, optional
        Text encoding of a Shapefile's .dbf or of a CSV/GeoJSON; detected when not given.
    repair : bool
        Repair invalid polygons with ``shapely.make_valid`` (keeping the polygonal parts;
        a warning names them) instead of refusing the file.
    source : str, optional
        Provenance written to the ``source`` column; must start with ``real:`` or
        ``synthetic:``. Default ``real: <file name>``.

    Returns
    -------
    tuple of (GeoDataFrame, list of str)
        The frame (table columns except ``id``, geometry ``geom`` in EPSG:4326, rows in file
        order) and the warnings. ``frame.attrs`` holds ``crs`` (what the coordinates were
        read as) and ``columns`` (table column → file header) for later messages.

    Raises
    ------
    InvalidInput
        Bad arguments: unknown layer, CRS, encoding or source prefix.
    InvalidFile
        The file cannot be read or a row is wrong; the message names the row and column.
    """
    if layer not in LAYERS:
        raise InvalidInput(
            f"unknown layer {layer!r}; choose one of {', '.join(LAYERS)}", field="layer"
        )
    declared = parse_crs(crs) if crs is not None and str(crs).strip() else None
    if encoding is not None:
        _check_encoding_name(encoding)
    source_value = _source_value(source, Path(path).name)
    path = Path(path)
    reader = Reader(path, layer, encoding)
    table = reader.read()
    warnings = reader.warnings
    if len(table.attributes) == 0:
        raise InvalidFile("the file holds no features (it is empty)", path=str(path))

    geoms, spec = check_geometries(table, layer, declared, repair, path, warnings)
    frame = check_attributes(table, layer, path, warnings)
    frame["source"] = source_value
    out = gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geoms, crs=WGS84.epsg), crs=WGS84.epsg)
    out = out.rename_geometry("geom")
    out.attrs["crs"] = str(spec)
    out.attrs["columns"] = dict(table.used)
    return out, warnings


def import_file(
    conn: Connection,
    path: str | Path,
    layer: str,
    *,
    crs: str | None = None,
    encoding: str | None = None,
    repair: bool = True,
    source: str | None = None,
) -> ImportReport:
    """Read, validate and write a file into ``layer`` in one all-or-nothing step.

    Parameters
    ----------
    conn : Connection
        The caller's connection; the write happens in a SAVEPOINT of its transaction
        (the CLI wraps the import in one transaction and commits at the end).
    path, layer, crs, encoding, repair, source
        As for :func:`read_layer`.

    Returns
    -------
    ImportReport

    Raises
    ------
    InvalidInput, InvalidFile
        As for :func:`read_layer` and :func:`write_layer`; nothing is written.
    """
    frame, warnings = read_layer(
        path, layer, crs=crs, encoding=encoding, repair=repair, source=source
    )
    rows = write_layer(conn, layer, frame, path=path)
    return ImportReport(
        layer=layer,
        rows=rows,
        warnings=warnings,
        crs=frame.attrs.get("crs", str(WGS84)),
        source=str(frame["source"].iloc[0]),
    )


# -- arguments -------------------------------------------------------------------------------
def _check_encoding_name(encoding: str) -> None:
    try:
        codecs.lookup(encoding)
    except LookupError as exc:
        raise InvalidInput(
            f"unknown encoding {encoding!r} (try UTF-8, GB18030, GBK or latin1)",
            field="encoding",
        ) from exc


def _source_value(source: str | None, file_name: str) -> str:
    if source is None:
        return f"real: {file_name}"
    if not source.startswith(vocab.SOURCE_PREFIXES):
        raise InvalidInput(
            f"source {source!r} must start with 'real:' or 'synthetic:'", field="source"
        )
    return source
