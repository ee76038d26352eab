"""Closure figures per unit: found, closed, closure rate, time to accept and to close.

For the cases reported in a window (``from`` ≤ reported_at < ``to``), grouped by the unit
of the chosen level that the case was attached to:

* ``found``: cases reported; ``closed``; ``cancelled``;
* ``closure_rate``: closed / (found - cancelled);
* ``median_accept_min``, ``median_close_min``: from report to acceptance, to closure;
* ``open``: not closed nor cancelled now (resolved cases await their check);
* ``overdue``: open, not yet resolved, and either escalated without being accepted or
  past its resolution deadline now.

The same query also gives the totals (``GROUPING SETS``).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from geomap import tabular, vocab
from geomap.errors import InvalidInput
from geomap.params import check_choice

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Session

LEVEL_COLUMNS = {
    "grid": "grid_code",
    "community": "community_code",
    "township": "township_code",
    "district": "district_code",
}
COLUMNS = (
    "code",
    "name",
    "found",
    "closed",
    "cancelled",
    "closure_rate",
    "median_accept_min",
    "median_close_min",
    "open",
    "overdue",
)

_STATS_SQL = """
    WITH c AS (
        SELECT c.{column} AS code, c.* FROM cases c
        WHERE (CAST(:kind AS text) IS NULL OR c.kind = :kind)
          AND c.reported_at >= :since AND c.reported_at < :until
    )
    SELECT grouping(code) = 1 AS total, code,
        coalesce((SELECT name FROM grids WHERE grids.code = c.code),
                 (SELECT name FROM regions WHERE regions.code = c.code)) AS name,
        count(*) AS found,
        count(*) FILTER (WHERE status = 'closed') AS closed,
        count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
        count(*) FILTER (WHERE status NOT IN ('closed', 'cancelled')) AS open,
        count(*) FILTER (
            WHERE status IN ('reported', 'accepted', 'dispatched', 'on_scene')
              AND ((accepted_at IS NULL
                    AND EXISTS (SELECT 1 FROM case_escalations e WHERE e.case_id = c.id))
                   OR resolve_by <= :now)
        ) AS overdue,
        percentile_cont(0.5) WITHIN GROUP (
            ORDER BY extract(epoch FROM accepted_at - reported_at) / 60
        ) FILTER (WHERE accepted_at IS NOT NULL) AS median_accept_min,
        percentile_cont(0.5) WITHIN GROUP (
            ORDER BY extract(epoch FROM closed_at - reported_at) / 60
        ) FILTER (WHERE closed_at IS NOT NULL) AS median_close_min
    FROM c
    GROUP BY GROUPING SETS ((code), ())
    ORDER BY grouping(code), code NULLS LAST
"""
STATS_SQL = {
    level: sa.text(_STATS_SQL.format(column=column)) for level, column in LEVEL_COLUMNS.items()
}


def _round(value: Any) -> float | None:
    return None if value is None else round(float(value), 2)


def _figures(row: Any) -> dict[str, Any]:
    counted = int(row.found) - int(row.cancelled)
    return {
        "found": int(row.found),
        "closed": int(row.closed),
        "cancelled": int(row.cancelled),
        "closure_rate": round(int(row.closed) / counted, 4) if counted else None,
        "median_accept_min": _round(row.median_accept_min),
        "median_close_min": _round(row.median_close_min),
        "open": int(row.open),
        "overdue": int(row.overdue),
    }


def stats(
    conn: Connection | Session,
    *,
    level: str = "district",
    kind: str | None = None,
    since: dt.datetime,
    until: dt.datetime,
    now: dt.datetime,
) -> dict[str, Any]:
    """The figures per unit of ``level`` for cases reported in [since, until).

    Parameters
    ----------
    conn : Connection or Session
        The database, read in the caller's transaction.
    level : {"grid", "community", "township", "district"}
        The unit the cases are grouped by (the unit each case was attached to).
    kind : str, optional
        Only cases of this kind (one of ``vocab.CASE_KINDS``); all kinds when None.
    since, until : datetime.datetime
        The window of ``reported_at``, ``since`` included, ``until`` excluded.
    now : datetime.datetime
        The time ``open`` and ``overdue`` are counted at.

    Returns
    -------
    dict
        ``query`` (the parameters, ISO times), ``summary`` (the totals) and ``units`` (one
        dict per unit: code, name and the figures of the module's docstring).

    Raises
    ------
    InvalidInput
        An unknown level or kind, or ``until`` not after ``since``.
    """
    check_choice(level, "level", LEVEL_COLUMNS)
    if kind is not None:
        check_choice(kind, "kind", vocab.CASE_KINDS)
    if until <= since:
        raise InvalidInput("to must be after from", field="to")
    rows = conn.execute(
        STATS_SQL[level], {"kind": kind, "since": since, "until": until, "now": now}
    ).all()
    units = [{"code": r.code, "name": r.name, **_figures(r)} for r in rows if not r.total]
    total = next((_figures(r) for r in rows if r.total), _figures_empty())
    return {
        "query": {
            "level": level,
            "kind": kind,
            "from": since.isoformat(),
            "to": until.isoformat(),
            "at": now.isoformat(),
        },
        "summary": total,
        "units": units,
    }


def _figures_empty() -> dict[str, Any]:
    return {
        "found": 0,
        "closed": 0,
        "cancelled": 0,
        "closure_rate": None,
        "median_accept_min": None,
        "median_close_min": None,
        "open": 0,
        "overdue": 0,
    }


def to_csv(answer: dict[str, Any]) -> str:
    """The units of :func:`stats` as CSV (one row per unit, then the total).

    Parameters
    ----------
    answer : dict
        What :func:`stats` returned.

    Returns
    -------
    str
        The CSV text: a header (``level`` and ``COLUMNS``), the units, then a ``total`` row;
        missing figures are empty cells.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["level", *COLUMNS])
    level = answer["query"]["level"]
    total = {"code": "total", "name": "", **answer["summary"]}
    for unit in [*answer["units"], total]:
        cells = ("" if unit[c] is None else unit[c] for c in COLUMNS)
        writer.writerow(tabular.row([level, *cells]))
    return out.getvalue()
