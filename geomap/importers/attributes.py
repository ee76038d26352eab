"""Attributes of an imported file: headers matched to table columns, values converted and checked.

:func:`check_attributes` maps the file's headers onto the layer's columns
(:data:`~geomap.importers.schema.COLUMNS`), converts every value (codes, numbers,
vocabulary terms in English or Chinese, lists) and refuses what the schema would refuse,
naming the row and the header as the file spells it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from geomap.errors import InvalidFile
from geomap.importers.reading import Table
from geomap.importers.schema import COLUMNS, Column, is_null

_CODE_RE = re.compile(r"^[0-9]{6,12}$")  # regions.code CHECK in the initial migration

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


def _text(value: Any) -> str | None:
    if is_null(value):
        return None
    if isinstance(value, float | np.floating) and float(value).is_integer():
        # Numeric codes in GeoJSON/GPKG/DBF come back as floats when a column has nulls.
        value = int(value)
    text = str(value).strip()
    return text or None


def _number(value: Any) -> float | None:
    if is_null(value):
        return None
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int | float | np.integer | np.floating):
        return float(value)
    text = str(value).strip().replace(",", "")  # "1,234" as Excel writes thousands
    return float(text) if text else None


def _vocab_index(col: Column) -> dict[str, str]:
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
        for col in COLUMNS[layer]:
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


def check_attributes(table: Table, layer: str, path: Path, warnings: list[str]) -> pd.DataFrame:
    """The table columns of ``layer`` read from a file's attributes, every value checked.

    Parameters
    ----------
    table : Table
        The file as read; its ``used`` is set to table column → file header.
    layer : str
        One of :data:`~geomap.importers.schema.LAYERS`.
    path : Path
        The file, for messages.
    warnings : list of str
        Appended to: ignored headers, defaulted columns.

    Returns
    -------
    DataFrame
        One column per table column (``source`` and ``geom`` aside), rows in file order.

    Raises
    ------
    InvalidFile
        A required column is missing or a value is wrong; names the row and the header.
    """
    frame = table.attributes
    used, ignored = _match_columns(frame, layer, table.consumed)
    table.used = used
    if ignored:
        warnings.append(f"ignored column(s) not in the {layer} table: {', '.join(ignored)}.")
    where = str(path)
    out: dict[str, list[Any]] = {}
    for col in COLUMNS[layer]:
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


def _default_column(layer: str, col: Column, n: int, warnings: list[str]) -> list[Any]:
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


def _convert_column(col: Column, values: list[Any], header: str, where: str) -> list[Any]:
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
        return [str(v).strip() for v in raw if not is_null(v) and str(v).strip()]
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
