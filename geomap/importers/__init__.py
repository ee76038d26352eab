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

The package by job: :mod:`~geomap.importers.pipeline` (the steps joined),
:mod:`~geomap.importers.reading` (files → a table of attributes and raw geometries),
:mod:`~geomap.importers.encoding` (encoding detection, the dBASE text parser),
:mod:`~geomap.importers.geometries` (types, CRS, EPSG:4326, validity),
:mod:`~geomap.importers.attributes` (headers → columns, values checked),
:mod:`~geomap.importers.database` (checks against stored rows, the write) and
:mod:`~geomap.importers.schema` (the layers and their columns).
"""

from geomap.importers.database import write_layer
from geomap.importers.encoding import detect_encoding
from geomap.importers.geometries import CHINA_BOX
from geomap.importers.pipeline import ImportReport, import_file, read_layer
from geomap.importers.reading import FORMATS, MAX_ZIP_BYTES
from geomap.importers.schema import LAYERS

__all__ = [
    "CHINA_BOX", "FORMATS", "LAYERS", "MAX_ZIP_BYTES", "ImportReport", "detect_encoding",
    "import_file", "read_layer", "write_layer",
]  # fmt: skip
