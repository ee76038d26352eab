"""Writes validated frames into the tables, fast, inside the caller's transaction.

Both the importers (user files) and the dataset generators (``geomap seed``) end here, so
every path into the database goes through the same COPY and the same constraints. Nothing
here validates: frames arrive checked (``geomap.importers``) or generated to the schema.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from geomap.models import LOAD_ORDER, SRID, metadata


def table_columns(table: str) -> list[str]:
    """Column names of ``table`` in schema order."""
    return [c.name for c in metadata.tables[table].columns]


def geometry_columns(table: str) -> list[str]:
    """Names of the geometry columns of ``table``."""
    from geoalchemy2 import Geometry

    return [c.name for c in metadata.tables[table].columns if isinstance(c.type, Geometry)]


def _hex_ewkb(values: Iterable[Any]) -> list[str | None]:
    geoms = np.asarray(list(values), dtype=object)
    missing = pd.isna(geoms)
    geoms = np.where(missing, None, geoms)
    with_srid = shapely.set_srid(geoms, SRID)
    out = shapely.to_wkb(with_srid, hex=True, include_srid=True)
    return [None if m else v for v, m in zip(out, missing, strict=True)]


def _clean(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value


def copy_frame(conn: Connection, table: str, frame: pd.DataFrame) -> int:
    """COPY the rows of ``frame`` into ``table``; columns the frame lacks get defaults.

    Geometry columns must hold shapely geometries in EPSG:4326. Returns the row count.
    """
    known = table_columns(table)
    unknown = [c for c in frame.columns if c not in known and c != frame_geometry_name(frame)]
    if unknown:
        raise ValueError(f"{table}: columns not in the table: {unknown}")
    columns = [c for c in known if c in frame.columns]
    if not columns or frame.empty:
        return 0
    data: dict[str, list[Any]] = {}
    geo_cols = set(geometry_columns(table))
    for col in columns:
        series = frame[col]
        data[col] = _hex_ewkb(series) if col in geo_cols else [_clean(v) for v in series]
    rows = zip(*(data[c] for c in columns), strict=True)
    raw = conn.connection.dbapi_connection
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    with raw.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)
    return len(frame)


def frame_geometry_name(frame: pd.DataFrame) -> str | None:
    """Name of the active geometry column of a GeoDataFrame (None for plain frames)."""
    return frame.geometry.name if isinstance(frame, gpd.GeoDataFrame) else None


def advance_sequences(conn: Connection, tables: Iterable[str]) -> None:
    """Move each serial ``id`` sequence past the largest id (after COPY with explicit ids).

    Tables without an ``id`` sequence are skipped (pg_get_serial_sequence gives NULL).
    """
    for table in tables:
        if "id" not in metadata.tables[table].columns:
            continue
        conn.execute(
            sa.text(
                "SELECT setval(sequence, coalesce((SELECT max(id) FROM "
                f"{table}), 0) + 1, false) FROM pg_get_serial_sequence(:table, 'id') AS sequence "
                "WHERE sequence IS NOT NULL"
            ),
            {"table": table},
        )


def replace_all(
    conn: Connection,
    frames: Mapping[str, pd.DataFrame],
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """Empty every table and load ``frames`` (by table name) in load order.

    Runs in the caller's transaction: on any error nothing is changed.
    """
    unknown = set(frames) - set(LOAD_ORDER)
    if unknown:
        raise ValueError(f"no such table(s): {sorted(unknown)}")
    conn.execute(sa.text(f"TRUNCATE {', '.join(reversed(LOAD_ORDER))} RESTART IDENTITY CASCADE"))
    written: dict[str, int] = {}
    for table in LOAD_ORDER:
        if table in frames:
            written[table] = copy_frame(conn, table, frames[table])
            if progress:
                progress(table, written[table])
    advance_sequences(conn, written)
    conn.execute(sa.text("SET CONSTRAINTS ALL IMMEDIATE"))  # check deferred FKs now
    return written
