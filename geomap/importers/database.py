"""Checks against the database and the write: codes already stored, references, COPY.

:func:`write_layer` refuses a frame whose codes are already in the table or whose
references point at no row, then COPYs it inside a SAVEPOINT, so a refusal leaves the
caller's transaction usable and the table unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from geomap import storage
from geomap.errors import InvalidFile, InvalidInput
from geomap.importers.schema import COLUMNS, LAYERS, fail_rows, is_null, rows_text


def check_existing_codes(
    conn: Connection,
    layer: str,
    frame: pd.DataFrame,
    where: str | None,
    headers: Mapping[str, str],
) -> None:
    """Refuse a frame holding codes already stored in ``layer``.

    Parameters
    ----------
    conn : Connection
    layer : str
        One of :data:`~geomap.importers.schema.LAYERS`.
    frame : DataFrame
        As :func:`~geomap.importers.pipeline.read_layer` returns.
    where : str or None
        The file, for messages.
    headers : mapping of str to str
        Table column → file header, for messages.

    Raises
    ------
    InvalidFile
        At the first row whose code exists.
    """
    if "code" not in frame:
        return
    codes = [c for c in frame["code"] if c is not None and not is_null(c)]
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
        raise fail_rows(
            where,
            bad,
            f"code {frame['code'].iloc[first]!r} already exists in {layer}; nothing was imported",
            headers.get("code", "code"),
        )


def check_references(
    conn: Connection,
    layer: str,
    frame: pd.DataFrame,
    where: str | None,
    headers: Mapping[str, str],
) -> None:
    """Refuse a frame whose references (region, grid, parent codes) point at no row.

    A reference may point at a row stored already or at one in the same frame.

    Parameters
    ----------
    conn, layer, frame, where, headers
        As for :func:`check_existing_codes`.

    Raises
    ------
    InvalidFile
        At the first row whose reference points nowhere.
    """
    for col in COLUMNS[layer]:
        if col.references is None or col.name not in frame:
            continue
        values = [v for v in frame[col.name] if v is not None and not is_null(v)]
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
            [v is not None and not is_null(v) and v not in known for v in frame[col.name]]
        )
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            value = frame[col.name].iloc[first]
            rows = [int(i) + 1 for i in np.flatnonzero(bad)]
            others = f" (also rows {rows_text(rows[1:])})" if len(rows) > 1 else ""
            raise InvalidFile(
                f"{col.name} {value!r} does not exist in {col.references}{others}; "
                f"import the {col.references} first",
                path=where,
                row=rows[0],
                field=headers.get(col.name, col.name),
            )


def database_refused(exc: BaseException, where: str | None) -> InvalidFile:
    """The error to raise when the database refused the COPY: its message and row.

    Parameters
    ----------
    exc : BaseException
        The SQLAlchemy or psycopg error.
    where : str or None
        The file, for messages.

    Returns
    -------
    InvalidFile
        Naming the row when the database's context gives one.
    """
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
    check_existing_codes(conn, layer, frame, where, headers)
    check_references(conn, layer, frame, where, headers)
    try:
        with conn.begin_nested():
            return storage.copy_frame(conn, layer, frame)
    # psycopg errors raised inside COPY arrive unwrapped (storage uses the raw cursor).
    except (sa.exc.SQLAlchemyError, psycopg.Error) as exc:
        raise database_refused(exc, where) from exc
