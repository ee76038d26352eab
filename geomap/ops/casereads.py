"""Reading cases: one case or a filtered page of them, as the API and the CLI answer them.

A case is read with the names of its units, its dispatches (with their teams) and its
level now, computed from the clock (:func:`geomap.ops.escalation.level_of`), so a reader
sees a climb that fell due even before the escalation worker records it.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from geomap.errors import NotFound
from geomap.ops import escalation
from geomap.ops.casesteps import OPEN, USER_ACTIONS, allowed

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Session

CASES_SQL = """
    SELECT c.*, ST_X(c.geom) AS lon, ST_Y(c.geom) AS lat,
        (SELECT name FROM grids WHERE code = c.grid_code) AS grid_name,
        (SELECT name FROM regions WHERE code = c.community_code) AS community_name,
        (SELECT name FROM regions WHERE code = c.township_code) AS township_name,
        (SELECT name FROM regions WHERE code = c.district_code) AS district_name,
        coalesce((
            SELECT json_agg(json_build_object(
                'id', d.id, 'team_id', d.team_id, 'team_code', t.code, 'team_name', t.name,
                'team_kind', t.kind, 'status', d.status, 'assigned_at', d.assigned_at,
                'en_route_at', d.en_route_at, 'on_scene_at', d.on_scene_at,
                'released_at', d.released_at, 'eta_min', d.eta_min,
                'assigned_by', d.assigned_by, 'note', d.note) ORDER BY d.id)
            FROM dispatches d JOIN teams t ON t.id = d.team_id WHERE d.case_id = c.id
        ), '[]') AS dispatches
    FROM cases c
"""
ONE_SQL = sa.text(CASES_SQL + " WHERE c.id = :id")
LIST_SQL = sa.text(
    CASES_SQL
    + """
    WHERE (CAST(:statuses AS text[]) IS NULL OR c.status = ANY(CAST(:statuses AS text[])))
      AND (CAST(:kind AS text) IS NULL OR c.kind = :kind)
      AND (CAST(:level AS text) IS NULL OR c.level = :level)
      AND (CAST(:unit AS text) IS NULL OR :unit IN (c.grid_code, c.community_code,
                                                    c.township_code, c.district_code))
      AND (CAST(:since AS timestamptz) IS NULL OR c.reported_at >= :since)
      AND (CAST(:until AS timestamptz) IS NULL OR c.reported_at < :until)
    ORDER BY c.reported_at DESC, c.id DESC
    LIMIT :limit OFFSET :offset
    """
)
COUNT_SQL = sa.text(
    """
    SELECT count(*) FROM cases c
    WHERE (CAST(:statuses AS text[]) IS NULL OR c.status = ANY(CAST(:statuses AS text[])))
      AND (CAST(:kind AS text) IS NULL OR c.kind = :kind)
      AND (CAST(:level AS text) IS NULL OR c.level = :level)
      AND (CAST(:unit AS text) IS NULL OR :unit IN (c.grid_code, c.community_code,
                                                    c.township_code, c.district_code))
      AND (CAST(:since AS timestamptz) IS NULL OR c.reported_at >= :since)
      AND (CAST(:until AS timestamptz) IS NULL OR c.reported_at < :until)
    """
)


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def overdue(row: Any, level: escalation.Level, now: dt.datetime) -> bool:
    """Open and late: escalated without being accepted, or unresolved past its deadline.

    Parameters
    ----------
    row : Mapping
        A case row.
    level : escalation.Level
        Its level now (:func:`escalation.level_of`).
    now : datetime.datetime
        The service's clock.

    Returns
    -------
    bool
        True when the case is overdue.
    """
    if row["status"] not in OPEN or row["status"] == "resolved":
        return False
    late_to_accept = row["accepted_at"] is None and level.escalated
    return late_to_accept or row["resolve_by"] <= now


def render(row: Any, now: dt.datetime, *, personal: bool) -> dict[str, Any]:
    """A case row (from :data:`CASES_SQL`) as the API answers it, its level from the clock.

    Parameters
    ----------
    row : Mapping
        The row, with its units' names and its dispatches.
    now : datetime.datetime
        The service's clock.
    personal : bool
        Whether the reader may see the reporter's name and phone.

    Returns
    -------
    dict
        The case: its fields, units, level, escalations, deadlines, times (ISO text),
        dispatches and the actions it allows.
    """
    level = escalation.level_of(row, now)
    units = {
        unit: (
            {"code": row[f"{unit}_code"], "name": row[f"{unit}_name"]}
            if row[f"{unit}_code"]
            else None
        )
        for unit in escalation.LEVELS
    }
    answer = {
        "id": row["id"],
        "kind": row["kind"],
        "severity": row["severity"],
        "title": row["title"],
        "description": row["description"],
        "address": row["address"],
        "status": row["status"],
        "lon": round(row["lon"], 7),
        "lat": round(row["lat"], 7),
        "located": row["located"],
        "units": units,
        "level": level.level,
        "level_unit": units[level.level],
        "level_since": _iso(level.since),
        "escalations": [{"level": c.level, "at": _iso(c.at)} for c in level.climbs],
        "accept_by": _iso(level.next_at) if row["status"] == "reported" else None,
        "resolve_by": _iso(row["resolve_by"]),
        "overdue": overdue(row, level, now),
        "reported_at": _iso(row["reported_at"]),
        "accepted_at": _iso(row["accepted_at"]),
        "resolved_at": _iso(row["resolved_at"]),
        "closed_at": _iso(row["closed_at"]),
        "cancelled_at": _iso(row["cancelled_at"]),
        "updated_at": _iso(row["updated_at"]),
        "resolved_by": row["resolved_by"],
        "created_by": row["created_by"],
        "dispatches": row["dispatches"],
        "actions": allowed(row["status"], (*USER_ACTIONS, "dispatch")),
        "source": row["source"],
    }
    if personal:
        answer["reporter"] = {"name": row["reporter_name"], "phone": row["reporter_phone"]}
    return answer


def get(
    conn: Connection | Session, case_id: int, *, now: dt.datetime, personal: bool
) -> dict[str, Any]:
    """One case, with its dispatches and its level now.

    Parameters
    ----------
    conn : Connection or Session
        The database, read in the caller's transaction.
    case_id : int
        The case's id.
    now : datetime.datetime
        The service's clock.
    personal : bool
        Whether the reader may see the reporter.

    Returns
    -------
    dict
        As :func:`render`.

    Raises
    ------
    NotFound
        No such case.
    """
    row = conn.execute(ONE_SQL, {"id": case_id}).mappings().first()
    if row is None:
        raise NotFound(f"no case {case_id}")
    return render(row, now, personal=personal)


def list_cases(
    conn: Connection | Session,
    *,
    now: dt.datetime,
    personal: bool,
    statuses: list[str] | None = None,
    kind: str | None = None,
    level: str | None = None,
    unit: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> dict[str, Any]:
    """Cases, latest reported first, filtered; ``total`` counts every match.

    Parameters
    ----------
    conn : Connection or Session
        The database, read in the caller's transaction.
    now : datetime.datetime
        The service's clock.
    personal : bool
        Whether the reader may see the reporters.
    statuses : list of str, optional
        Only cases in one of these statuses.
    kind, level : str, optional
        Only cases of this kind, at this level now.
    unit : str, optional
        Only cases in this unit (a grid, community, township or district code).
    since, until : datetime.datetime, optional
        Only cases with ``reported_at`` in [since, until).
    limit, offset : int
        The page (checked by the caller).

    Returns
    -------
    dict
        ``total`` and ``cases`` (each as :func:`render`).
    """
    params = {
        "statuses": statuses,
        "kind": kind,
        "level": level,
        "unit": unit,
        "since": since,
        "until": until,
    }
    rows = conn.execute(LIST_SQL, {**params, "limit": limit, "offset": offset}).mappings()
    total = conn.execute(COUNT_SQL, params).scalar_one()
    return {"total": int(total), "cases": [render(r, now, personal=personal) for r in rows]}
