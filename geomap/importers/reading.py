"""Files → validated GeoDataFrames → PostGIS, all-or-nothing.

Two steps, usable apart:

* :func:`read_layer` reads a GeoJSON, GeoPackage, Shapefile (plain or zipped) or CSV
  file, maps its columns
  onto a table (``grids``, ``stations``, ``sites``, ``teams``, ``regions``), checks every
  value the schema would refuse (and a few it would accept but that are surely mistakes,
  such as swapped lat/lon), normalises the coordinates to EPSG:4326 and returns a frame
  ready for :func:`geomap.storage.copy_frame`, plus warnings for the user.
* :func:`write_layer` checks the frame against the database (codes already there, foreign
  keys) and writes it inside a SAVEPOINT of the caller's transaction.

:func:`import_file` does both. Every problem is an :class:`~geomap.errors.InvalidFile`
naming the file, the row (1-based feature number; for CSV the data row, header not
counted) and the column as the file spells it; nothing is written unless every row is good.

Encodings: GeoJSON and CSV files are decoded as UTF-8 when they are valid UTF-8, else as
GB18030 (a superset of GBK/GB2312, what Chinese Excel and older GIS tools write); a
Shapefile's .dbf the same way unless a .cpg file names its encoding. A file that is neither
is refused rather than loaded as mojibake; ``encoding=`` overrides the detection.

Zipped Shapefiles: a ``.zip`` holding exactly one layer (its ``.shp`` with the ``.shx`` and
``.dbf`` beside it, ``.prj``/``.cpg`` when there are) is read as that Shapefile. A zip
with no layer or several, a damaged zip or a layer missing its parts is refused, naming
what it holds; nothing in it is written anywhere but a private temporary folder.
"""

from __future__ import annotations

import codecs
import io
import math
import re
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import psycopg
import pyogrio
import shapely
import sqlalchemy as sa
from shapely.geometry import MultiPolygon, Polygon
from sqlalchemy.engine import Connection

from geomap import storage, vocab
from geomap.crs import WGS84, CRSSpec, parse_crs, to_wgs84
from geomap.errors import InvalidFile, InvalidInput
from geomap.vocab import Term

#: The tables a file can be imported into.
LAYERS = ("grids", "stations", "sites", "teams", "regions")

#: China's rough bounding box (lon 73..136, lat 3..54): imported features must fall inside.
#: Coordinates outside it are almost always a wrong CRS or swapped lat/lon.
CHINA_BOX = (73.0, 3.0, 136.0, 54.0)

#: File extensions by format.
FORMATS = {
    ".geojson": "GeoJSON",
    ".json": "GeoJSON",
    ".gpkg": "GeoPackage",
    ".shp": "Shapefile",
    ".zip": "zipped Shapefile",
    ".csv": "CSV",
    ".txt": "CSV",
}

_POINT_LAYERS = frozenset({"stations", "sites", "teams"})
_CODE_RE = re.compile(r"^[0-9]{6,12}$")  # regions.code CHECK in the initial migration

# Header aliases shared by several columns (compared lower-cased and stripped).
_CODE = ("code", "编码", "代码", "编号")
_NAME = ("name", "名称", "名字", "name_zh")
_KIND = ("kind", "type", "category", "类型", "类别", "种类")
_ADDRESS = ("address", "addr", "地址")
_REGION = ("region_code", "district_code", "adcode", "区划代码", "行政区划代码")

# CSV geometry columns.
_LON = ("lon", "lng", "long", "longitude", "x", "经度")
_LAT = ("lat", "latitude", "y", "纬度")
_WKT = ("wkt", "geom", "geometry", "the_geom")


@dataclass(frozen=True)
class _Col:
    """How one table column is read from a file."""

    name: str
    aliases: tuple[str, ...]
    convert: str  # "text" | "code" | "region_code" | "int" | "vocab" | "list"
    required: bool = False
    terms: Mapping[str, Term] | None = None
    minimum: int = 0
    references: str | None = None  # table whose ``code`` this column refers to


_COLUMNS: dict[str, tuple[_Col, ...]] = {
    "grids": (
        _Col("code", (*_CODE, "grid_code", "网格编码"), "code", required=True),
        _Col("name", (*_NAME, "grid_name", "网格名称"), "text", required=True),
        _Col(
            "community_code",
            ("community_code", "社区编码", "社区代码"),
            "region_code",
            references="regions",
        ),
        # Optional column (absent: 0 with a warning); when present every row needs a value.
        _Col("population", ("population", "pop", "人口", "常住人口"), "int"),
        _Col("households", ("households", "户数"), "int"),
    ),
    "stations": (
        _Col("code", _CODE, "code"),
        _Col("name", _NAME, "text", required=True),
        _Col("kind", _KIND, "vocab", required=True, terms=vocab.STATION_KINDS),
        _Col("region_code", _REGION, "region_code", references="regions"),
        _Col("grid_code", ("grid_code", "网格编码"), "code", references="grids"),
        _Col("address", _ADDRESS, "text"),
    ),
    "sites": (
        _Col("code", _CODE, "code"),
        _Col("name", _NAME, "text", required=True),
        _Col("kind", _KIND, "vocab", required=True, terms=vocab.SITE_KINDS),
        _Col("region_code", _REGION, "region_code", references="regions"),
        _Col("address", _ADDRESS, "text"),
        _Col("coord_quality", ("coord_quality", "坐标质量"), "vocab", terms=vocab.COORD_QUALITIES),
    ),
    "teams": (
        _Col("code", (*_CODE, "team_code", "队伍编码"), "code", required=True),
        _Col("name", (*_NAME, "team_name", "队伍名称"), "text", required=True),
        _Col("kind", _KIND, "vocab", required=True, terms=vocab.TEAM_KINDS),
        _Col("unit", ("unit", "单位", "所属单位"), "text"),
        _Col("headcount", ("headcount", "members", "人数"), "int", required=True, minimum=1),
        _Col("status", ("status", "状态"), "vocab", terms=vocab.TEAM_STATUSES),
        _Col("capabilities", ("capabilities", "skills", "能力", "专长"), "list"),
        _Col(
            "home_grid_code",
            ("home_grid_code", "grid_code", "网格编码"),
            "code",
            references="grids",
        ),
        _Col("leader_name", ("leader_name", "leader", "队长", "负责人"), "text"),
        _Col("leader_phone", ("leader_phone", "phone", "电话", "联系电话"), "text"),
    ),
    "regions": (
        _Col("code", (*_CODE, "adcode", "区划代码", "行政区划代码"), "region_code", required=True),
        # Required except for the city; checked with the level below.
        _Col(
            "parent_code",
            ("parent_code", "parent", "上级编码", "上级代码"),
            "region_code",
            references="regions",
        ),
        _Col(
            "level",
            ("level", "级别", "层级"),
            "vocab",
            required=True,
            terms=vocab.REGION_LEVELS,
        ),
        _Col("name", _NAME, "text", required=True),
        _Col("name_en", ("name_en", "english_name", "英文名称"), "text"),
    ),
}

# Labels users write for region levels beyond the vocabulary's own.
_EXTRA_LABELS: dict[str, dict[str, str]] = {
    "level": {
        "镇": "township",
        "乡": "township",
        "street": "township",
        "county": "district",
        "village": "community",
    },
}


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


# -- public functions ------------------------------------------------------------------------
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
    reader = _Reader(path, layer, encoding)
    table = reader.read()
    warnings = reader.warnings
    if len(table.attributes) == 0:
        raise InvalidFile("the file holds no features (it is empty)", path=str(path))

    geoms, spec = _geometries(table, layer, declared, repair, path, warnings)
    frame = _attributes(table, layer, path, warnings)
    frame["source"] = source_value
    out = gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geoms, crs=WGS84.epsg), crs=WGS84.epsg)
    out = out.rename_geometry("geom")
    out.attrs["crs"] = str(spec)
    out.attrs["columns"] = dict(table.used)
    return out, warnings


def write_layer(
    conn: Connection, layer: str, frame: gpd.GeoDataFrame, *, path: str | Path | None = None
) -> int:
    """Check ``frame`` against the database and COPY it into ``layer``, all-or-nothing.

    Parameters
    ----------
    conn : Connection
        A connection; the rows are written in a SAVEPOINT of its current transaction, so a
        failure leaves the caller's transaction usable and this layer unchanged.
    layer : str
        One of :data:`LAYERS`.
    frame : GeoDataFrame
        As returned by :func:`read_layer`.
    path : str or Path, optional
        The file the frame came from, for messages.

    Returns
    -------
    int
        Rows written.

    Raises
    ------
    InvalidFile
        A code already exists in the table, a foreign key points nowhere, or the database
        refused a row; nothing is written.
    """
    if layer not in LAYERS:
        raise InvalidInput(
            f"unknown layer {layer!r}; choose one of {', '.join(LAYERS)}", field="layer"
        )
    where = str(path) if path is not None else None
    headers: Mapping[str, str] = frame.attrs.get("columns", {})
    _check_existing_codes(conn, layer, frame, where, headers)
    _check_references(conn, layer, frame, where, headers)
    try:
        with conn.begin_nested():
            return storage.copy_frame(conn, layer, frame)
    # psycopg errors raised inside COPY arrive unwrapped (storage uses the raw cursor).
    except (sa.exc.SQLAlchemyError, psycopg.Error) as exc:
        raise _database_refused(exc, where) from exc


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


# -- reading ---------------------------------------------------------------------------------
@dataclass
class _Table:
    """A file as read: attributes, raw geometries, the file's own CRS."""

    attributes: pd.DataFrame
    geoms: np.ndarray
    file_crs: Any
    format: str
    geom_field: str = "geometry"  # how to name the geometry in messages
    # False when the CRS is only a default: GDAL reports EPSG:4326 for every GeoJSON
    # without a "crs" member (RFC 7946), whatever its numbers are.
    crs_declared: bool = True
    used: dict[str, str] = field(default_factory=dict)  # table column -> file header
    consumed: set[str] = field(default_factory=set)  # file headers read as geometry


#: Largest total size of the files a zip may unpack to (a zip bomb is refused unread).
MAX_ZIP_BYTES = 2 * 1024**3
#: The parts of a Shapefile layer taken out of a zip (others, e.g. .xml metadata, stay in).
_SHAPEFILE_PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg", ".qix", ".sbn", ".sbx")


class _Reader:
    def __init__(self, path: Path, layer: str, encoding: str | None, label: str | None = None):
        self.path = path
        self.layer = layer
        self.encoding = encoding
        self.label = label or str(path)  # how messages name the file
        self.warnings: list[str] = []

    def fail(self, message: str, **kwargs: Any) -> InvalidFile:
        return InvalidFile(message, path=self.label, **kwargs)

    def read(self) -> _Table:
        if not self.path.exists():
            raise self.fail("no such file")
        if self.path.is_dir():
            raise self.fail("is a folder; name the file (.shp, .zip, .gpkg, .geojson or .csv)")
        fmt = FORMATS.get(self.path.suffix.lower())
        if fmt is None:
            raise self.fail(
                f"unsupported file type {self.path.suffix or '(no extension)'!r}; "
                "accepted: .geojson/.json, .gpkg, .shp, .zip (a zipped Shapefile), .csv"
            )
        if fmt == "CSV":
            return self._read_csv()
        if fmt == "zipped Shapefile":
            return self._read_zip()
        return self._read_vector(fmt)

    # Zipped Shapefile -----------------------------------------------------------------
    def _read_zip(self) -> _Table:
        try:
            archive = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise self.fail(f"not a readable zip file ({exc})") from exc
        with archive:
            members = [
                m for m in archive.infolist()
                if not m.is_dir() and not m.filename.startswith("__MACOSX/")
                and not Path(m.filename).name.startswith("._")  # macOS resource forks
            ]  # fmt: skip
            layers = sorted(m.filename for m in members if m.filename.lower().endswith(".shp"))
            if not layers:
                held = ", ".join(sorted(m.filename for m in members)[:10]) or "nothing"
                raise self.fail(
                    f"the zip holds no Shapefile (.shp); it holds: {held}. Zip one layer: "
                    "its .shp, .shx, .dbf (and .prj, .cpg)"
                )
            if len(layers) > 1:
                raise self.fail(
                    f"the zip holds {len(layers)} Shapefiles ({', '.join(layers)}); "
                    "import one layer at a time: one Shapefile per zip"
                )
            stem = layers[0][:-4]
            parts = {
                m.filename[len(stem):].lower(): m
                for m in members
                if m.filename[: len(stem)] == stem
                and m.filename[len(stem):].lower() in _SHAPEFILE_PARTS
            }  # fmt: skip
            missing = [ext for ext in (".shx", ".dbf") if ext not in parts]
            if missing:
                raise self.fail(
                    f"{layers[0]} in the zip has no {' or '.join(stem + e for e in missing)} "
                    "beside it: a Shapefile needs its .shp, .shx and .dbf"
                )
            if sum(m.file_size for m in parts.values()) > MAX_ZIP_BYTES:
                raise self.fail(
                    f"the layer in the zip unpacks to more than {MAX_ZIP_BYTES // 1024**3} GiB"
                )
            name = Path(stem).name or "layer"
            with tempfile.TemporaryDirectory(prefix="geomap-zip-") as folder:
                for ext, member in parts.items():
                    try:
                        data = archive.read(member)
                    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
                        raise self.fail(f"{member.filename} in the zip is damaged ({exc})") from exc
                    # Written under our own name: a member's path never leaves the folder.
                    (Path(folder) / f"{name}{ext}").write_bytes(data)
                inner = _Reader(
                    Path(folder) / f"{name}.shp", self.layer, self.encoding,
                    label=f"{self.label}!{layers[0]}",
                )  # fmt: skip
                table = inner._read_vector("Shapefile")
                self.warnings.extend(inner.warnings)
                return table

    # Text decoding ------------------------------------------------------------------------
    def _decode(self, data: bytes, what: str) -> str:
        if self.encoding is not None:
            # A BOM is not text: utf-8-sig drops it when present.
            utf8 = codecs.lookup(self.encoding).name == "utf-8"
            try:
                return data.decode("utf-8-sig" if utf8 else self.encoding)
            except UnicodeDecodeError as exc:
                raise self.fail(
                    f"{what} is not valid {self.encoding} (byte {exc.start}); check --encoding"
                ) from exc
        detected = _detect_encoding([data])
        if detected is None:
            raise self.fail(
                f"cannot tell the text encoding of the {what}: it is neither UTF-8 nor "
                "GB18030/GBK; pass --encoding"
            )
        if detected != "utf-8":
            self.warnings.append(f"{self.path.name}: read as {detected.upper()} (not UTF-8).")
        return data.decode("utf-8-sig" if detected == "utf-8" else detected)

    # CSV ----------------------------------------------------------------------------------
    def _read_csv(self) -> _Table:
        try:
            text = self._decode(self.path.read_bytes(), "CSV file")
        except OSError as exc:
            raise self.fail(f"cannot read the file: {exc}") from exc
        if not text.strip():
            raise self.fail("the file holds no features (it is empty)")
        header = text.splitlines()[0]
        # The delimiter most used in the header: Chinese Excel exports often use tabs.
        sep = max((",", "\t", ";", "|"), key=header.count)
        try:
            frame = pd.read_csv(
                io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, skipinitialspace=True
            )
        except (pd.errors.ParserError, ValueError) as exc:
            raise self.fail(f"cannot read the CSV: {exc}") from exc
        frame.columns = [str(c).strip() for c in frame.columns]
        frame = frame.reset_index(drop=True)
        lower = {c.lower(): c for c in frame.columns}
        lon_col = next((lower[a] for a in _LON if a in lower), None)
        lat_col = next((lower[a] for a in _LAT if a in lower), None)
        wkt_col = next((lower[a] for a in _WKT if a in lower), None)
        if lon_col and lat_col:
            geoms = self._csv_points(frame, lon_col, lat_col)
            consumed, geom_field = {lon_col, lat_col}, f"{lon_col}/{lat_col}"
        elif wkt_col:
            geoms = self._csv_wkt(frame, wkt_col)
            consumed, geom_field = {wkt_col}, wkt_col
        elif lon_col or lat_col:
            have, missing = ("longitude", "latitude") if lon_col else ("latitude", "longitude")
            raise self.fail(
                f"the CSV has a {have} column ({lon_col or lat_col!r}) but no {missing} "
                f"column (accepted headers: {', '.join(_LAT if lon_col else _LON)})"
            )
        else:
            raise self.fail(
                "the CSV has no geometry: it needs lon/lat columns "
                f"({'/'.join(_LON)} and {'/'.join(_LAT)}) or WKT in a "
                f"{'/'.join(_WKT)} column"
            )
        return _Table(
            attributes=frame,
            geoms=geoms,
            file_crs=None,  # CSV cannot declare a CRS
            format="CSV",
            geom_field=geom_field,
            consumed=consumed,
        )

    def _csv_points(self, frame: pd.DataFrame, lon_col: str, lat_col: str) -> np.ndarray:
        coords = np.full((len(frame), 2), np.nan)
        for j, col in enumerate((lon_col, lat_col)):
            for i, raw in enumerate(frame[col]):
                text = str(raw).strip()
                if not text:
                    continue  # missing geometry, reported with the other checks
                try:
                    value = float(text)
                except ValueError:
                    value = math.nan
                if not math.isfinite(value):  # "nan"/"inf" parse, but are no coordinate
                    raise self.fail(f"{col} {text!r} is not a number", row=i + 1, field=col)
                coords[i, j] = value
        present = ~np.isnan(coords).any(axis=1)
        half = np.isnan(coords).any(axis=1) & ~np.isnan(coords).all(axis=1)
        if half.any():
            i = int(np.flatnonzero(half)[0])
            col = lon_col if np.isnan(coords[i, 0]) else lat_col
            raise self.fail("missing coordinate", row=i + 1, field=col)
        geoms = np.full(len(frame), None, dtype=object)
        geoms[present] = shapely.points(coords[present])
        return geoms

    def _csv_wkt(self, frame: pd.DataFrame, wkt_col: str) -> np.ndarray:
        texts = [str(v).strip() or None for v in frame[wkt_col]]
        geoms = shapely.from_wkt(np.asarray(texts, dtype=object), on_invalid="ignore")
        for i, (text, geom) in enumerate(zip(texts, geoms, strict=True)):
            if text is not None and geom is None:
                raise self.fail(f"unreadable WKT {text[:60]!r}", row=i + 1, field=wkt_col)
        return np.asarray(geoms, dtype=object)

    # GeoJSON, GeoPackage, Shapefile -------------------------------------------------------
    def _read_vector(self, fmt: str) -> _Table:
        kwargs: dict[str, Any] = {}
        source: Any = str(self.path)
        crs_member = False
        if fmt == "GeoJSON":
            # RFC 7946 says UTF-8, but files saved by Chinese desktop tools are often GBK:
            # decode here (strictly) and hand GDAL UTF-8 bytes.
            try:
                data = self.path.read_bytes()
            except OSError as exc:
                raise self.fail(f"cannot read the file: {exc}") from exc
            if not data.strip():
                raise self.fail("the file holds no features (it is empty)")
            text = self._decode(data, "GeoJSON file")
            encoded = text.encode("utf-8")
            if encoded != data:  # GBK, another --encoding, or a BOM: hand GDAL clean UTF-8
                source = io.BytesIO(encoded)
            features_at = data.find(b'"features"')
            head = data[: features_at if features_at >= 0 else 4096]
            crs_member = b'"crs"' in head
        elif fmt == "Shapefile":
            kwargs["encoding"] = self._shapefile_encoding()
        elif fmt == "GeoPackage":
            kwargs["layer"] = self._gpkg_layer()
        try:
            frame = pyogrio.read_dataframe(source, **kwargs)
        except Exception as exc:  # pyogrio raises several unrelated types for broken files
            message = str(exc).strip() or type(exc).__name__
            raise self.fail(f"cannot read the file as {fmt}: {message}") from exc
        if not isinstance(frame, gpd.GeoDataFrame) or frame.geometry is None:
            raise self.fail(f"the {fmt} file has no geometry column")
        frame = frame.reset_index(drop=True)
        geom_name = frame.geometry.name
        geoms = np.asarray(frame.geometry.values, dtype=object)
        attributes = pd.DataFrame(frame.drop(columns=[geom_name]))
        declared = frame.crs is not None
        if fmt == "GeoJSON" and declared and CRSSpec.from_pyproj(frame.crs) == WGS84:
            declared = crs_member
        return _Table(
            attributes=attributes,
            geoms=geoms,
            file_crs=frame.crs,
            format=fmt,
            crs_declared=declared,
        )

    def _gpkg_layer(self) -> str:
        try:
            layers = [str(name) for name, _ in pyogrio.list_layers(str(self.path))]
        except Exception as exc:
            raise self.fail(f"cannot read the file as GeoPackage: {exc}") from exc
        if not layers:
            raise self.fail("the GeoPackage holds no layers")
        if len(layers) == 1:
            return layers[0]
        if self.layer in layers:
            return self.layer
        raise self.fail(
            f"the GeoPackage holds several layers ({', '.join(layers)}) and none is named "
            f"{self.layer!r}; rename the one to import"
        )

    def _shapefile_encoding(self) -> str | None:
        dbf = _sibling(self.path, ".dbf")
        if self.encoding is not None:
            if dbf is not None:
                self._check_dbf(dbf, self.encoding)
            return self.encoding
        if _sibling(self.path, ".cpg") is not None or dbf is None:
            return None  # GDAL reads the .cpg (or there is no text to decode)
        # No .cpg: GDAL would fall back to the .dbf's language byte or ISO-8859-1 and turn
        # GBK names into mojibake. Decide from the bytes themselves.
        try:
            chunks, cut = _dbf_text(dbf.read_bytes())
        except (OSError, ValueError, struct.error) as exc:
            raise self.fail(f"cannot read the .dbf file: {exc}") from exc
        detected = _detect_encoding(chunks, cut)
        if detected is None:
            raise self.fail(
                "cannot tell the text encoding of the .dbf file (no .cpg file, and the text "
                "is neither UTF-8 nor GB18030/GBK); pass --encoding"
            )
        if detected != "utf-8":
            self.warnings.append(
                f"{dbf.name}: no .cpg file; the text was read as {detected.upper()} "
                "(it is not UTF-8)."
            )
        return detected.upper()

    def _check_dbf(self, dbf: Path, encoding: str) -> None:
        try:
            chunks, cut = _dbf_text(dbf.read_bytes())
        except (OSError, ValueError, struct.error) as exc:
            raise self.fail(f"cannot read the .dbf file: {exc}") from exc
        if not _decodes(chunks, cut, encoding):
            raise self.fail(f"the .dbf text is not valid {encoding}; check --encoding")


def _sibling(path: Path, suffix: str) -> Path | None:
    for candidate in (path.with_suffix(suffix), path.with_suffix(suffix.upper())):
        if candidate.exists():
            return candidate
    return None


def _detect_encoding(chunks: Iterable[bytes], cut: Iterable[bytes] = ()) -> str | None:
    """'utf-8' if every chunk is strict UTF-8, else 'gb18030' if they all decode so, else None.

    UTF-8 first: GBK text is almost never valid UTF-8, while UTF-8 Chinese text often is
    valid GB18030 (as the wrong characters), so the other order would produce mojibake.
    """
    chunks, cut = list(chunks), list(cut)
    for candidate in ("utf-8", "gb18030"):
        if _decodes(chunks, cut, candidate):
            return candidate
    return None


def _decodes(chunks: list[bytes], cut: list[bytes], encoding: str) -> bool:
    """True if ``chunks`` decode strictly and ``cut`` too but for a cut last character.

    dBASE values and field names have fixed byte widths, and writers cut long text at the
    width, sometimes inside a multi-byte character: for values that fill their width
    (``cut``), an incomplete character at the end must not count as a wrong guess.
    """
    try:
        b"\n".join(chunks).decode(encoding)  # all at once: fast
        for chunk in cut:
            codecs.getincrementaldecoder(encoding)().decode(chunk, final=False)
    except UnicodeDecodeError:
        return False
    return True


def _dbf_text(data: bytes) -> tuple[list[bytes], list[bytes]]:
    """The raw bytes of a dBASE file's field names and character values.

    Returns the values shorter than their field and, apart, those that fill it (and may
    have been cut inside a character).
    """
    if len(data) < 32:
        raise ValueError("too short for a dBASE header")
    records, header_len, record_len = struct.unpack("<IHH", data[4:12])
    fields: list[tuple[str, int, int]] = []  # (type, offset in record, length)
    chunks: list[bytes] = []
    full: list[bytes] = []
    offset = 1  # byte 0 of every record is the deletion flag
    pos = 32
    while pos + 32 <= min(header_len, len(data)) and data[pos] != 0x0D:
        descriptor = data[pos : pos + 32]
        name = descriptor[:11].split(b"\x00", 1)[0]
        (full if len(name) >= 10 else chunks).append(name)
        ftype, flen = chr(descriptor[11]), descriptor[16]
        fields.append((ftype, offset, flen))
        offset += flen
        pos += 32
    text_fields = [(o, n) for t, o, n in fields if t in "CM"]
    for r in range(records):
        start = header_len + r * record_len
        record = data[start : start + record_len]
        if len(record) < record_len:
            break
        for o, n in text_fields:
            value = record[o : o + n].rstrip(b" \x00")
            if value:
                (full if len(value) == n else chunks).append(value)
    return chunks, full


# -- geometries ------------------------------------------------------------------------------
def _rows_text(rows: Sequence[int], limit: int = 10) -> str:
    shown = ", ".join(str(r) for r in rows[:limit])
    return shown + (f", ... ({len(rows)} rows)" if len(rows) > limit else "")


def _fail_rows(
    path: str | Path | None, bad: np.ndarray, message: str, field_name: str | None
) -> InvalidFile:
    """An error at the first bad row, mentioning how many rows share the problem."""
    rows = [int(i) + 1 for i in np.flatnonzero(bad)]
    if len(rows) > 1:
        message = f"{message} (also rows {_rows_text(rows[1:])})"
    where = str(path) if path is not None else None
    return InvalidFile(message, path=where, row=rows[0], field=field_name)


def _geometries(
    table: _Table,
    layer: str,
    declared: CRSSpec | None,
    repair: bool,
    path: Path,
    warnings: list[str],
) -> tuple[np.ndarray, CRSSpec]:
    geoms = np.asarray(table.geoms, dtype=object)
    gfield = table.geom_field
    missing = pd.isna(geoms) | shapely.is_empty(np.where(pd.isna(geoms), None, geoms))
    if missing.any():
        raise _fail_rows(path, missing, "missing geometry", gfield)
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
        raise _fail_rows(
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
    table: _Table,
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
        raise _fail_rows(
            path,
            swapped,
            f"looks like lat/lon are swapped: ({x:g}, {y:g}) has a latitude beyond 90; "
            "put longitude first",
            gfield,
        )
    if metres[first]:
        if assumed:
            raise _fail_rows(
                path,
                metres,
                f"file has no CRS; pass --crs: coordinates such as ({x:.1f}, {y:.1f}) are "
                "not degrees but look like metres of a projected CRS "
                "(e.g. EPSG:4548 or EPSG:32650 around Nanchang)",
                "crs",
            )
        raise _fail_rows(
            path,
            metres,
            f"coordinates such as ({x:.1f}, {y:.1f}) look like metres of a projected CRS, "
            f"but the coordinates are read as {spec} (degrees); pass the projected CRS "
            "with --crs",
            "crs",
        )
    raise _fail_rows(
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
        raise _fail_rows(
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
        raise _fail_rows(
            path,
            swapped_inside,
            f"looks like lat/lon are swapped: ({x:g}, {y:g}) lies outside China, "
            f"({y:g}, {x:g}) inside; put longitude first",
            gfield,
        )
    raise _fail_rows(
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
        others = f" (also rows {_rows_text(rows[1:])})" if len(rows) > 1 else ""
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


# -- attributes ------------------------------------------------------------------------------
def _is_null(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, list | tuple | np.ndarray):
        return False
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _text(value: Any) -> str | None:
    if _is_null(value):
        return None
    if isinstance(value, float | np.floating) and float(value).is_integer():
        # Numeric codes in GeoJSON/GPKG/DBF come back as floats when a column has nulls.
        value = int(value)
    text = str(value).strip()
    return text or None


def _number(value: Any) -> float | None:
    if _is_null(value):
        return None
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int | float | np.integer | np.floating):
        return float(value)
    text = str(value).strip().replace(",", "")  # "1,234" as Excel writes thousands
    return float(text) if text else None


def _vocab_index(col: _Col) -> dict[str, str]:
    assert col.terms is not None
    index: dict[str, str] = {}
    for term in col.terms.values():
        index[term.code.lower()] = term.code
        index[term.en.lower()] = term.code
        index[term.zh] = term.code
        for part in re.split(r"[/()（）]", term.zh):
            if part:
                index.setdefault(part, term.code)
    for label, code in _EXTRA_LABELS.get(col.name, {}).items():
        index.setdefault(label, code)
    return index


def _match_columns(
    frame: pd.DataFrame, layer: str, consumed: set[str]
) -> tuple[dict[str, str], list[str]]:
    """Table column → file header, and the file headers nobody reads."""
    by_lower: dict[str, list[str]] = {}
    for header in frame.columns:
        if header not in consumed:
            by_lower.setdefault(str(header).strip().lower(), []).append(str(header))
    used: dict[str, str] = {}
    taken: set[str] = set()
    # Exact names first, so that "grid_code" is stations.grid_code and not an alias elsewhere.
    for exact_pass in (True, False):
        for col in _COLUMNS[layer]:
            if col.name in used:
                continue
            candidates = (col.name,) if exact_pass else col.aliases
            # Shapefiles cut field names to 10 characters ("community_code" ->
            # "community_"): accept the cut form of every name too.
            candidates = tuple(dict.fromkeys(c for name in candidates for c in (name, name[:10])))
            for alias in candidates:
                headers = [h for h in by_lower.get(alias.lower(), []) if h not in taken]
                if headers:
                    used[col.name] = headers[0]
                    taken.add(headers[0])
                    break
    ignored = [str(h) for h in frame.columns if h not in taken and h not in consumed]
    return used, ignored


def _attributes(table: _Table, layer: str, path: Path, warnings: list[str]) -> pd.DataFrame:
    frame = table.attributes
    used, ignored = _match_columns(frame, layer, table.consumed)
    table.used = used
    if ignored:
        warnings.append(f"ignored column(s) not in the {layer} table: {', '.join(ignored)}.")
    where = str(path)
    out: dict[str, list[Any]] = {}
    for col in _COLUMNS[layer]:
        header = used.get(col.name)
        if header is None:
            if col.required:
                accepted = ", ".join(dict.fromkeys((col.name, *col.aliases)))
                raise InvalidFile(
                    f"missing required column {col.name!r} (accepted headers: {accepted})",
                    path=where,
                    field=col.name,
                )
            out[col.name] = _default_column(layer, col, len(frame), warnings)
            continue
        out[col.name] = _convert_column(col, list(frame[header]), header, where)
    _check_rows(layer, out, used, where, warnings)
    result = pd.DataFrame(out, index=pd.RangeIndex(len(frame)))
    for name in ("population", "households", "headcount"):
        if name in result:
            result[name] = result[name].astype("int64")
    return result


def _default_column(layer: str, col: _Col, n: int, warnings: list[str]) -> list[Any]:
    if col.name == "population":
        warnings.append(
            "no population column: every grid gets population 0, so coverage of residents "
            "will count none of them."
        )
        return [0] * n
    if col.name == "households":
        return [0] * n
    if col.name == "status":
        return ["available"] * n
    if col.name == "capabilities":
        return [[] for _ in range(n)]
    return [None] * n


def _convert_column(col: _Col, values: list[Any], header: str, where: str) -> list[Any]:
    label = col.name if header == col.name else f"{col.name} (column {header!r})"

    def fail(i: int, message: str) -> InvalidFile:
        return InvalidFile(message, path=where, row=i + 1, field=header)

    out: list[Any] = []
    index = _vocab_index(col) if col.convert == "vocab" else {}
    for i, raw in enumerate(values):
        if col.convert == "int":
            try:
                number = _number(raw)
            except (TypeError, ValueError):
                raise fail(i, f"{label} must be a whole number, got {_text(raw)!r}") from None
            if number is None:
                if col.name == "households":
                    out.append(0)  # an empty cell means none recorded
                    continue
                raise fail(i, f"empty required value: {label} needs a number")
            if not math.isfinite(number) or not number.is_integer():
                raise fail(i, f"{label} must be a whole number, got {_text(raw)!r}")
            if number < col.minimum:
                raise fail(i, f"{label} must be a whole number >= {col.minimum}, got {int(number)}")
            out.append(int(number))
            continue
        if col.convert == "list":
            out.append(_list_value(raw))
            continue
        text = _text(raw)
        if text is None:
            if col.required:
                raise fail(i, f"empty required value: {label} has no value")
            out.append(None if col.name != "status" else "available")
            continue
        if col.convert == "vocab":
            code = index.get(text) or index.get(text.lower())
            if code is None:
                terms = list((col.terms or {}).values())
                accepted = ", ".join(t.code for t in terms)
                raise fail(
                    i,
                    f"unknown {col.name} {text!r}; accepted: {accepted} "
                    f"(or the Chinese labels, e.g. {terms[0].zh})",
                )
            out.append(code)
        elif col.convert == "region_code":
            if not _CODE_RE.match(text):
                raise fail(
                    i, f"{label} {text!r} is not a region code (6 to 12 digits, e.g. 360102)"
                )
            out.append(text)
        else:
            out.append(text)
    return out


def _list_value(raw: Any) -> list[str]:
    if isinstance(raw, list | tuple | np.ndarray):
        return [str(v).strip() for v in raw if not _is_null(v) and str(v).strip()]
    text = _text(raw)
    if text is None:
        return []
    # Separators people type in spreadsheets, including the Chinese comma and 顿号.
    return [part.strip() for part in re.split(r"[,;|，；、]", text) if part.strip()]


def _check_rows(
    layer: str,
    out: dict[str, list[Any]],
    used: Mapping[str, str],
    where: str,
    warnings: list[str],
) -> None:
    """Checks across columns and rows: duplicates, households, the region chain."""
    codes = out.get("code", [])
    first_row: dict[str, int] = {}
    for i, code in enumerate(codes):
        if code is None:
            continue
        if code in first_row:
            raise InvalidFile(
                f"duplicate code {code!r} (also in row {first_row[code] + 1})",
                path=where,
                row=i + 1,
                field=used.get("code", "code"),
            )
        first_row[code] = i
    if layer == "grids":
        for i, (pop, hh) in enumerate(zip(out["population"], out["households"], strict=True)):
            if hh > pop:
                raise InvalidFile(
                    f"households ({hh}) exceed population ({pop})",
                    path=where,
                    row=i + 1,
                    field=used.get("households", "households"),
                )
    if layer == "regions":
        parent_field = used.get("parent_code", "parent_code")
        dropped: list[str] = []
        for i, (code, level, parent) in enumerate(
            zip(out["code"], out["level"], out["parent_code"], strict=True)
        ):
            if level == "city" and parent is not None:
                # The chain starts at the city (the schema wants its parent_code NULL);
                # real files carry the province code (e.g. 360000), which is dropped.
                out["parent_code"][i] = None
                dropped.append(f"row {i + 1}: {parent}")
                continue
            if level != "city" and parent is None:
                what = "empty" if "parent_code" in used else "missing column"
                raise InvalidFile(
                    f"{what} parent_code: required for every level except city "
                    f"(this row is a {level})",
                    path=where,
                    row=i + 1,
                    field=parent_field,
                )
            if parent == code:
                raise InvalidFile(
                    f"region {code!r} is its own parent", path=where, row=i + 1, field=parent_field
                )
        if dropped:
            warnings.append(
                "the parent_code of the city was dropped (the admin chain starts at the city): "
                + ", ".join(dropped)
                + "."
            )


# -- database checks -------------------------------------------------------------------------
def _check_existing_codes(
    conn: Connection,
    layer: str,
    frame: pd.DataFrame,
    where: str | None,
    headers: Mapping[str, str],
) -> None:
    if "code" not in frame:
        return
    codes = [c for c in frame["code"] if c is not None and not _is_null(c)]
    if not codes:
        return
    # ``layer`` is one of LAYERS (checked by the caller), never user text.
    existing = set(
        conn.execute(
            sa.text(f"SELECT code FROM {layer} WHERE code = ANY(:codes)"), {"codes": codes}
        ).scalars()
    )
    if existing:
        bad = frame["code"].isin(existing).to_numpy()
        first = int(np.flatnonzero(bad)[0])
        raise _fail_rows(
            where,
            bad,
            f"code {frame['code'].iloc[first]!r} already exists in {layer}; nothing was imported",
            headers.get("code", "code"),
        )


def _check_references(
    conn: Connection,
    layer: str,
    frame: pd.DataFrame,
    where: str | None,
    headers: Mapping[str, str],
) -> None:
    for col in _COLUMNS[layer]:
        if col.references is None or col.name not in frame:
            continue
        values = [v for v in frame[col.name] if v is not None and not _is_null(v)]
        if not values:
            continue
        known = set(
            conn.execute(
                sa.text(f"SELECT code FROM {col.references} WHERE code = ANY(:codes)"),
                {"codes": sorted(set(values))},
            ).scalars()
        )
        if col.references == layer:  # regions.parent_code may point into the same file
            known |= set(frame["code"])
        bad = np.array(
            [v is not None and not _is_null(v) and v not in known for v in frame[col.name]]
        )
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            value = frame[col.name].iloc[first]
            rows = [int(i) + 1 for i in np.flatnonzero(bad)]
            others = f" (also rows {_rows_text(rows[1:])})" if len(rows) > 1 else ""
            raise InvalidFile(
                f"{col.name} {value!r} does not exist in {col.references}{others}; "
                f"import the {col.references} first",
                path=where,
                row=rows[0],
                field=headers.get(col.name, col.name),
            )


def _database_refused(exc: BaseException, where: str | None) -> InvalidFile:
    original = getattr(exc, "orig", None) or exc
    diag = getattr(original, "diag", None)
    message = getattr(diag, "message_primary", None) or str(original).splitlines()[0]
    context = getattr(diag, "context", None) or ""
    match = re.search(r"line (\d+)", context)
    return InvalidFile(
        f"the database refused the rows ({message}); nothing was imported",
        path=where,
        row=int(match.group(1)) if match else None,
    )
