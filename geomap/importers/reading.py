"""Reading files: GeoJSON, GeoPackage, Shapefile (plain or zipped) and CSV into a :class:`Table`.

:class:`Reader` opens one file (a zipped Shapefile is unpacked into a private temporary
folder, its size checked first), decodes its text (:mod:`~geomap.importers.encoding`
guesses the encoding when none is given), finds the geometry (CSV: lon/lat or WKT
columns) and returns the attributes, the raw geometries and the CRS the file declares.
Nothing is checked against the layer's schema here.
"""

from __future__ import annotations

import codecs
import io
import math
import struct
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from geomap.crs import WGS84, CRSSpec
from geomap.errors import InvalidFile
from geomap.importers.encoding import dbf_text, decodes, detect_encoding

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

# CSV geometry columns.
_LON = ("lon", "lng", "long", "longitude", "x", "经度")
_LAT = ("lat", "latitude", "y", "纬度")
_WKT = ("wkt", "geom", "geometry", "the_geom")


@dataclass
class Table:
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


class Reader:
    """Reads one file for a layer; :meth:`read` returns its :class:`Table`.

    Parameters
    ----------
    path : Path
        The file (``.geojson``/``.json``, ``.gpkg``, ``.shp``, ``.zip``, ``.csv``/``.txt``).
    layer : str
        The table it is read for (a GeoPackage's layer is chosen by this name).
    encoding : str or None
        The text encoding; None to detect it.
    label : str, optional
        How messages name the file (a Shapefile inside a zip is named by the zip).

    Attributes
    ----------
    warnings : list of str
        What the user should know about the reading (e.g. the encoding chosen).
    """

    def __init__(self, path: Path, layer: str, encoding: str | None, label: str | None = None):
        self.path = path
        self.layer = layer
        self.encoding = encoding
        self.label = label or str(path)  # how messages name the file
        self.warnings: list[str] = []

    def fail(self, message: str, **kwargs: Any) -> InvalidFile:
        return InvalidFile(message, path=self.label, **kwargs)

    def read(self) -> Table:
        """The file as read: attributes, raw geometries, the CRS it declares.

        Raises
        ------
        InvalidFile
            Missing, unreadable, of an unknown format, or not decodable.
        """
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
    def _read_zip(self) -> Table:
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
                inner = Reader(
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
        detected = detect_encoding([data])
        if detected is None:
            raise self.fail(
                f"cannot tell the text encoding of the {what}: it is neither UTF-8 nor "
                "GB18030/GBK; pass --encoding"
            )
        if detected != "utf-8":
            self.warnings.append(f"{self.path.name}: read as {detected.upper()} (not UTF-8).")
        return data.decode("utf-8-sig" if detected == "utf-8" else detected)

    # CSV ----------------------------------------------------------------------------------
    def _read_csv(self) -> Table:
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
        return Table(
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
    def _read_vector(self, fmt: str) -> Table:
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
        return Table(
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
            chunks, cut = dbf_text(dbf.read_bytes())
        except (OSError, ValueError, struct.error) as exc:
            raise self.fail(f"cannot read the .dbf file: {exc}") from exc
        detected = detect_encoding(chunks, cut)
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
            chunks, cut = dbf_text(dbf.read_bytes())
        except (OSError, ValueError, struct.error) as exc:
            raise self.fail(f"cannot read the .dbf file: {exc}") from exc
        if not decodes(chunks, cut, encoding):
            raise self.fail(f"the .dbf text is not valid {encoding}; check --encoding")


def _sibling(path: Path, suffix: str) -> Path | None:
    for candidate in (path.with_suffix(suffix), path.with_suffix(suffix.upper())):
        if candidate.exists():
            return candidate
    return None
