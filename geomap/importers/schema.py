"""What a file may be imported into: the layers, the columns each takes, how refusals name rows.

:data:`COLUMNS` says, per table, which headers a file may spell each column with and how
its values are read (:mod:`~geomap.importers.attributes` applies it). :func:`fail_rows`
and :func:`rows_text` word every refusal the same way, whichever check made it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from geomap import vocab
from geomap.errors import InvalidFile
from geomap.vocab import Term

#: The tables a file can be imported into.
LAYERS = ("grids", "stations", "sites", "teams", "regions")


# Header aliases shared by several columns (compared lower-cased and stripped).
_CODE = ("code", "编码", "代码", "编号")
_NAME = ("name", "名称", "名字", "name_zh")
_KIND = ("kind", "type", "category", "类型", "类别", "种类")
_ADDRESS = ("address", "addr", "地址")
_REGION = ("region_code", "district_code", "adcode", "区划代码", "行政区划代码")


@dataclass(frozen=True)
class Column:
    """How one table column is read from a file."""

    name: str
    aliases: tuple[str, ...]
    convert: str  # "text" | "code" | "region_code" | "int" | "vocab" | "list"
    required: bool = False
    terms: Mapping[str, Term] | None = None
    minimum: int = 0
    references: str | None = None  # table whose ``code`` this column refers to


COLUMNS: dict[str, tuple[Column, ...]] = {
    "grids": (
        Column("code", (*_CODE, "grid_code", "网格编码"), "code", required=True),
        Column("name", (*_NAME, "grid_name", "网格名称"), "text", required=True),
        Column(
            "community_code",
            ("community_code", "社区编码", "社区代码"),
            "region_code",
            references="regions",
        ),
        # Optional column (absent: 0 with a warning); when present every row needs a value.
        Column("population", ("population", "pop", "人口", "常住人口"), "int"),
        Column("households", ("households", "户数"), "int"),
    ),
    "stations": (
        Column("code", _CODE, "code"),
        Column("name", _NAME, "text", required=True),
        Column("kind", _KIND, "vocab", required=True, terms=vocab.STATION_KINDS),
        Column("region_code", _REGION, "region_code", references="regions"),
        Column("grid_code", ("grid_code", "网格编码"), "code", references="grids"),
        Column("address", _ADDRESS, "text"),
    ),
    "sites": (
        Column("code", _CODE, "code"),
        Column("name", _NAME, "text", required=True),
        Column("kind", _KIND, "vocab", required=True, terms=vocab.SITE_KINDS),
        Column("region_code", _REGION, "region_code", references="regions"),
        Column("address", _ADDRESS, "text"),
        Column(
            "coord_quality", ("coord_quality", "坐标质量"), "vocab", terms=vocab.COORD_QUALITIES
        ),
    ),
    "teams": (
        Column("code", (*_CODE, "team_code", "队伍编码"), "code", required=True),
        Column("name", (*_NAME, "team_name", "队伍名称"), "text", required=True),
        Column("kind", _KIND, "vocab", required=True, terms=vocab.TEAM_KINDS),
        Column("unit", ("unit", "单位", "所属单位"), "text"),
        Column("headcount", ("headcount", "members", "人数"), "int", required=True, minimum=1),
        Column("status", ("status", "状态"), "vocab", terms=vocab.TEAM_STATUSES),
        Column("capabilities", ("capabilities", "skills", "能力", "专长"), "list"),
        Column(
            "home_grid_code",
            ("home_grid_code", "grid_code", "网格编码"),
            "code",
            references="grids",
        ),
        Column("leader_name", ("leader_name", "leader", "队长", "负责人"), "text"),
        Column("leader_phone", ("leader_phone", "phone", "电话", "联系电话"), "text"),
    ),
    "regions": (
        Column(
            "code", (*_CODE, "adcode", "区划代码", "行政区划代码"), "region_code", required=True
        ),
        # Required except for the city; checked with the level below.
        Column(
            "parent_code",
            ("parent_code", "parent", "上级编码", "上级代码"),
            "region_code",
            references="regions",
        ),
        Column(
            "level",
            ("level", "级别", "层级"),
            "vocab",
            required=True,
            terms=vocab.REGION_LEVELS,
        ),
        Column("name", _NAME, "text", required=True),
        Column("name_en", ("name_en", "english_name", "英文名称"), "text"),
    ),
}


def rows_text(rows: Sequence[int], limit: int = 10) -> str:
    """Row numbers as a message lists them: the first ``limit``, then how many in all.

    Parameters
    ----------
    rows : sequence of int
        1-based row numbers.
    limit : int
        How many to name.

    Returns
    -------
    str
        E.g. ``"3, 7, 9"`` or ``"1, 2, ... (40 rows)"``.
    """
    shown = ", ".join(str(r) for r in rows[:limit])
    return shown + (f", ... ({len(rows)} rows)" if len(rows) > limit else "")


def fail_rows(
    path: str | Path | None, bad: np.ndarray, message: str, field_name: str | None
) -> InvalidFile:
    """An error at the first bad row, mentioning how many rows share the problem.

    Parameters
    ----------
    path : str, Path or None
        The file.
    bad : ndarray of bool
        One per row (in file order): True where the row has the problem.
    message : str
        What is wrong.
    field_name : str or None
        The column as the file spells it.

    Returns
    -------
    InvalidFile
        Naming the first bad row (1-based) and the others.
    """
    rows = [int(i) + 1 for i in np.flatnonzero(bad)]
    if len(rows) > 1:
        message = f"{message} (also rows {rows_text(rows[1:])})"
    where = str(path) if path is not None else None
    return InvalidFile(message, path=where, row=rows[0], field=field_name)


def is_null(value: Any) -> bool:
    """True for a missing value (None, NaN, NaT, pandas NA); a list or array never is.

    Parameters
    ----------
    value : object
        One cell of a file's attributes.

    Returns
    -------
    bool
    """
    if value is None:
        return True
    if isinstance(value, list | tuple | np.ndarray):
        return False
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False
