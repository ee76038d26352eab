"""Cells for the CSV and XLSX files the project writes, safe to open in a spreadsheet.

A spreadsheet reads a cell starting with ``=``, ``+``, ``-`` or ``@`` (and, in some, a tab
or a carriage return) as a formula: a team or grid named ``=HYPERLINK("http://x","y")``
would become a live link, or worse, in the commander's Excel. OWASP's advice is followed:
such a text cell is written with a leading ``'``, which the spreadsheet shows as text.
Numbers are never touched, so ``-3`` stays the number -3.

Every CSV and XLSX writer of the project goes through :func:`cell` (or :func:`row`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

#: The first characters that make a spreadsheet read a text cell as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> Any:
    """One cell's value, with a text that a spreadsheet would run as a formula made inert.

    Parameters
    ----------
    value : Any
        The value to write; only ``str`` values are looked at.

    Returns
    -------
    Any
        ``value`` itself, or ``"'" + value`` for a text starting with one of
        :data:`FORMULA_STARTS`.
    """
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def row(values: Iterable[Any]) -> list[Any]:
    """A row's cells through :func:`cell` (for ``csv.writer``).

    Parameters
    ----------
    values : iterable
        The row's values, in column order.

    Returns
    -------
    list
        The same values, text cells made inert.
    """
    return [cell(value) for value in values]


def record(values: Mapping[str, Any]) -> dict[str, Any]:
    """A row as a mapping, its cells through :func:`cell` (for ``csv.DictWriter``).

    Parameters
    ----------
    values : Mapping
        Column name to value.

    Returns
    -------
    dict
        The same keys, text cells made inert.
    """
    return {key: cell(value) for key, value in values.items()}
