"""Hazard registers (隐患台账) and other case lists, from CSV or XLSX files, all-or-nothing.

A register is a table with one case per row. Headers are matched case-insensitively in
English or Chinese (``title``/``名称``/``隐患名称``, ``lon``/``经度``, ``lat``/``纬度``,
``reported_at``/``发现时间``, ...; see :data:`COLUMNS`). Kinds and severities may be
given as codes (``hazard``, ``high``) or Chinese labels (``安全隐患``, ``重大``); a
missing kind is the ``--kind`` of the import (``hazard`` by default). Coordinates are in
WGS84 unless the import says CGCS2000, GCJ-02 or BD-09; times without a zone are China
Standard Time (UTC+8), as registers are kept.

Every row is checked before anything is written; the error names each bad row (its
number among the data rows, the header not counted) and its column, up to ten of them.
Then every case is created as one created through the API would be: its unit chain, its
deadlines, an audit row and an event each.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import shapely

from geomap import crs, vocab
from geomap.analysis import city
from geomap.errors import InvalidFile, InvalidInput
from geomap.importers.encoding import detect_encoding
from geomap.ops import audit, cases
from geomap.ops.rules import Rules
from geomap.params import CST, check_datetime

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Session

ACCEPTED_CRS = ("EPSG:4326", "EPSG:4490", "GCJ02", "BD09")
MAX_ROWS = 50_000
MAX_REPORTED = 10

#: Case field → the headers that name it (compared lower-cased, without spaces).
COLUMNS: dict[str, tuple[str, ...]] = {
    "title": ("title", "name", "名称", "标题", "隐患名称", "事件名称", "事项", "诉求"),
    "kind": ("kind", "type", "类型", "事件类型", "类别"),
    "severity": ("severity", "level", "等级", "级别", "严重程度", "隐患等级"),
    "description": ("description", "描述", "内容", "详情", "隐患描述", "情况说明"),
    "address": ("address", "地址", "位置", "详细地址"),
    "lon": ("lon", "lng", "long", "longitude", "x", "经度"),
    "lat": ("lat", "latitude", "y", "纬度"),
    "reported_at": ("reported_at", "time", "date", "发现时间", "上报时间", "时间", "日期"),
    "reporter_name": ("reporter", "reporter_name", "上报人", "发现人", "报告人"),
    "reporter_phone": ("phone", "reporter_phone", "电话", "联系电话", "手机"),
}
_LABELS = {
    "kind": {t.zh: t.code for t in vocab.CASE_KINDS.values()},
    "severity": {t.zh: t.code for t in vocab.CASE_SEVERITIES.values()},
}


@dataclass(frozen=True)
class ImportReport:
    """What an import wrote.

    Parameters
    ----------
    rows : int
        The number of cases created.
    case_ids : list of int
        Their ids, in the file's row order.
    crs : str
        The CRS the coordinates were read in (one of ``ACCEPTED_CRS``).
    """

    rows: int
    case_ids: list[int]
    crs: str


def _fail(path: Path, message: str) -> InvalidFile:
    return InvalidFile(message, path=str(path))


def _read_csv(path: Path) -> pd.DataFrame:
    data = path.read_bytes()
    encoding = detect_encoding([data])
    if encoding is None:
        raise _fail(path, "cannot tell the text encoding: it is neither UTF-8 nor GB18030/GBK")
    text = data.decode("utf-8-sig" if encoding == "utf-8" else encoding)
    if not text.strip():
        raise _fail(path, "the file holds no rows (it is empty)")
    header = text.splitlines()[0]
    sep = max((",", "\t", ";", "|"), key=header.count)
    try:
        return pd.read_csv(
            io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, skipinitialspace=True
        )
    except (pd.errors.ParserError, ValueError) as exc:
        raise _fail(path, f"cannot read the CSV: {exc}") from exc


def _read_xlsx(path: Path) -> pd.DataFrame:
    import zipfile

    import openpyxl

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, OSError, KeyError, ValueError) as exc:
        raise _fail(path, f"cannot read the file as XLSX: {exc}") from exc
    try:
        rows = [
            row
            for row in book.worksheets[0].iter_rows(values_only=True)
            if any(v not in (None, "") for v in row)
        ]
    finally:
        book.close()
    if not rows:
        raise _fail(path, "the first sheet holds no rows")
    header = ["" if h is None else str(h).strip() for h in rows[0]]
    body = [list(r) + [None] * (len(header) - len(r)) for r in rows[1:]]
    return pd.DataFrame([r[: len(header)] for r in body], columns=header, dtype=object)


def read_table(path: Path) -> pd.DataFrame:
    """The file's rows as a frame of raw values (strings for CSV, cell values for XLSX).

    Parameters
    ----------
    path : pathlib.Path
        A ``.csv``/``.txt`` file (UTF-8 or GB18030/GBK, separated by ``,``, tab, ``;`` or
        ``|``) or an ``.xlsx`` file (its first sheet).

    Returns
    -------
    pandas.DataFrame
        One row per data row, columns named by the header row.

    Raises
    ------
    InvalidFile
        No such file, an unsupported type, an unreadable or empty file, or more than
        ``MAX_ROWS`` rows.
    """
    path = Path(path)
    if not path.exists() or path.is_dir():
        raise _fail(path, "no such file")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".txt"):
        frame = _read_csv(path)
    elif suffix == ".xlsx":
        frame = _read_xlsx(path)
    else:
        raise _fail(path, f"unsupported file type {suffix or '(none)'!r}; accepted: .csv, .xlsx")
    if len(frame) > MAX_ROWS:
        raise _fail(path, f"{len(frame):,} rows; import at most {MAX_ROWS:,} at once")
    if frame.empty:
        raise _fail(path, "the file holds a header but no rows")
    return frame


def _columns(frame: pd.DataFrame, path: Path) -> dict[str, str]:
    """Case field → the file's header for it."""
    lower = {str(c).strip().lower().replace(" ", ""): c for c in frame.columns}
    found = {}
    for field, aliases in COLUMNS.items():
        header = next((lower[a] for a in aliases if a in lower), None)
        if header is not None:
            found[field] = header
    for field in ("title", "lon", "lat"):
        if field not in found:
            raise _fail(path, f"no {field} column (accepted headers: {', '.join(COLUMNS[field])})")
    return found


def _blank(value: Any) -> bool:
    return (
        value is None
        or (isinstance(value, float) and np.isnan(value))
        or (isinstance(value, str) and not value.strip())
    )


def _value(field: str, raw: Any) -> Any:
    """A cell as parse_new wants it."""
    if _blank(raw):
        return None
    if field in ("lon", "lat"):
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            return float(raw)
        try:
            return float(str(raw).strip())
        except ValueError:
            raise InvalidInput(f"{str(raw)[:40]!r} is not a number", field=field) from None
    if field == "reported_at":
        if isinstance(raw, dt.datetime):
            return raw if raw.tzinfo else raw.replace(tzinfo=CST)
        if isinstance(raw, dt.date):
            return dt.datetime(raw.year, raw.month, raw.day, tzinfo=CST)
        return check_datetime(str(raw).strip().replace("/", "-"), field, default_tz=CST)
    text = str(raw).strip()
    if field in _LABELS:
        text = _LABELS[field].get(text, text.lower())
    if field == "reporter_phone" and isinstance(raw, float) and raw.is_integer():
        text = str(int(raw))
    return text


def read(
    path: Path, *, crs_name: str | None, default_kind: str, now: dt.datetime
) -> tuple[list[tuple[int, dict[str, Any]]], str]:
    """Read and check every row; returns [(row number, case fields)] and the CRS used.

    Parameters
    ----------
    path : pathlib.Path
        The register (see :func:`read_table`).
    crs_name : str or None
        The CRS of its coordinates (one of ``ACCEPTED_CRS``); WGS 84 when None. Points are
        returned in WGS 84.
    default_kind : str
        The kind of rows that give none.
    now : datetime.datetime
        The import's time, the ``reported_at`` of rows that give none.

    Returns
    -------
    rows : list of (int, dict)
        The row number among the data rows (from 1) and the case's fields as
        :func:`cases.parse_new` gives them.
    crs : str
        The CRS name used.

    Raises
    ------
    InvalidInput
        ``crs_name`` is not accepted for registers.
    InvalidFile
        Naming the bad rows and columns (up to ten), or what is wrong with the file.
    """
    path = Path(path)
    spec = crs.parse_crs(crs_name or "EPSG:4326")
    if spec.name not in ACCEPTED_CRS:
        raise InvalidInput(
            f"crs {spec.name!r} is not accepted for registers; use WGS84, CGCS2000, GCJ02 or BD09",
            field="crs",
        )
    frame = read_table(path)
    headers = _columns(frame, path)
    problems: list[str] = []
    rows: list[tuple[int, dict[str, Any]]] = []
    for number, record in enumerate(frame.to_dict("records"), start=1):
        body: dict[str, Any] = {"kind": default_kind}
        try:
            for field, header in headers.items():
                try:
                    value = _value(field, record[header])
                except InvalidInput as exc:
                    raise InvalidInput(exc.message, field=field) from None
                if value is not None:
                    body[field] = value
            if spec.name != "EPSG:4326" and "lon" in body and "lat" in body:
                body["lon"], body["lat"] = crs.lonlat_to_wgs84(body["lon"], body["lat"], spec)
            rows.append((number, cases.parse_new(body, now)))
        except InvalidInput as exc:
            column = headers.get(exc.field or "", exc.field)
            problems.append(f"row {number}, column {column!r}: {exc.message}")
    if problems:
        more = f" (and {len(problems) - MAX_REPORTED} more)" if len(problems) > MAX_REPORTED else ""
        raise _fail(
            path,
            f"{len(problems)} bad row(s), nothing imported: "
            + "; ".join(problems[:MAX_REPORTED])
            + more,
        )
    return rows, spec.name


def import_file(
    conn: Connection | Session,
    path: Path,
    *,
    actor: audit.Actor,
    now: dt.datetime,
    rules: Rules,
    crs_name: str | None = None,
    default_kind: str = "hazard",
    source: str | None = None,
) -> ImportReport:
    """Import a register into ``cases`` in one all-or-nothing step (a savepoint).

    Every point must lie in the city. Each case is created as through the API (its unit
    chain, deadlines, audit row and event), then one ``cases.import`` audit row names the
    file; the caller commits.

    Parameters
    ----------
    conn : Connection or Session
        The database; the import is a savepoint of the caller's transaction.
    path : pathlib.Path
        The register (see :func:`read_table`).
    actor : audit.Actor
        Who imports.
    now : datetime.datetime
        The import's time (timezone-aware).
    rules : Rules
        The dispatch rules (deadlines of the cases).
    crs_name : str, optional
        The CRS of the coordinates (one of ``ACCEPTED_CRS``); WGS 84 when None.
    default_kind : str, default "hazard"
        The kind of rows that give none.
    source : str, optional
        The cases' provenance, starting ``real:`` or ``synthetic:``; ``real: <file name>``
        when None.

    Returns
    -------
    ImportReport
        The number of cases, their ids and the CRS used.

    Raises
    ------
    InvalidInput
        An unknown ``default_kind``, a bad ``source`` or ``crs_name``.
    InvalidFile
        A bad file or bad rows (see :func:`read`), or points outside the city; nothing is
        written.
    """
    path = Path(path)
    if default_kind not in vocab.CASE_KINDS:
        raise InvalidInput(f"unknown kind {default_kind!r}", field="kind")
    source = source or f"real: {path.name}"
    if not source.startswith(vocab.SOURCE_PREFIXES):
        raise InvalidInput("source must start with 'real:' or 'synthetic:'", field="source")
    rows, used = read(path, crs_name=crs_name, default_kind=default_kind, now=now)
    outside = []
    lons = np.array([r[1]["lon"] for r in rows])
    lats = np.array([r[1]["lat"] for r in rows])
    shape = city.city(conn).shape
    if shape is not None:
        inside = shapely.intersects_xy(shape, lons, lats)
        outside = [
            f"row {rows[i][0]}: ({lons[i]:.6f}, {lats[i]:.6f}) lies outside the city"
            for i in np.flatnonzero(~inside)
        ]
    if outside:
        raise _fail(
            path,
            f"{len(outside)} row(s) outside the city (check the coordinates and "
            f"--crs), nothing imported: " + "; ".join(outside[:MAX_REPORTED]),
        )
    ids = []
    with conn.begin_nested():
        for _, new in rows:
            ids.append(cases.create(conn, new, actor=actor, now=now, rules=rules, source=source))
        audit.record(
            conn,
            actor,
            "cases.import",
            at=now,
            changes={
                "file": path.name,
                "rows": len(ids),
                "crs": used,
                "first_id": ids[0],
                "last_id": ids[-1],
            },
        )
    return ImportReport(rows=len(ids), case_ids=ids, crs=used)
