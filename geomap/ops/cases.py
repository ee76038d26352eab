"""Cases (事件): incidents, hazards and residents' requests, from report to closure.

The lifecycle is a table, :data:`STEPS`: (status, action) → status. Nothing else moves a
case; an action the table does not hold for the current status is a
:class:`~geomap.errors.Conflict` (409) that names the actions allowed from there::

    reported ─accept→ accepted ─dispatch→ dispatched ─arrive→ on_scene ─resolve→ resolved
        │                 ↑  (withdraw: the last team released)          │  ↑     │ close
        └──dispatch──────────────────────────────────────────────────────┘  reopen  ↓
    cancel: from reported, accepted, dispatched, on_scene              ← ─ ─ ┘   closed

``dispatch`` (from reported it also accepts), ``arrive`` and ``withdraw`` are taken by
:mod:`geomap.ops.dispatch` when teams are sent, arrive, or are all released. A hazard is
closed only by a different key than the one that resolved it: closing is the check step
of a closed loop. Resolving, closing and cancelling release the case's teams.

Where a case is, is resolved from its point when it is created: the grid holding it and
the grid's community, township and district; outside every grid, the smallest region
holding it (a village is a community); failing that, the nearest grid. A point outside
the city is refused (422).

Longer than 600 lines: the lifecycle table, the writers that follow it and the readers
that render a case are read together, and a third of the file is their numpy docstrings.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from geomap import crs, events, vocab
from geomap.analysis import city
from geomap.errors import Conflict, InvalidInput, NotFound
from geomap.ops import audit, escalation, lifecycle
from geomap.ops.rules import Rules
from geomap.params import (
    check_choice,
    check_datetime,
    check_fields,
    check_lonlat,
    check_typed_text,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Session

#: The lifecycle: (status, action) → the status it leads to.
STEPS: dict[tuple[str, str], str] = {
    ("reported", "accept"): "accepted",
    ("reported", "dispatch"): "dispatched",
    ("accepted", "dispatch"): "dispatched",
    ("dispatched", "dispatch"): "dispatched",
    ("on_scene", "dispatch"): "on_scene",
    ("dispatched", "arrive"): "on_scene",
    ("dispatched", "withdraw"): "accepted",
    ("on_scene", "withdraw"): "accepted",
    ("accepted", "resolve"): "resolved",
    ("dispatched", "resolve"): "resolved",
    ("on_scene", "resolve"): "resolved",
    ("resolved", "close"): "closed",
    ("resolved", "reopen"): "accepted",
    ("reported", "cancel"): "cancelled",
    ("accepted", "cancel"): "cancelled",
    ("dispatched", "cancel"): "cancelled",
    ("on_scene", "cancel"): "cancelled",
}
ACTIONS = ("accept", "dispatch", "arrive", "withdraw", "resolve", "close", "reopen", "cancel")
#: Actions a person takes through ``POST /api/cases/<id>/steps`` (dispatch has its own
#: endpoint; arrive and withdraw follow the dispatches).
USER_ACTIONS = ("accept", "resolve", "close", "reopen", "cancel")
#: Statuses of a case still being worked on (resolved awaits its check).
OPEN = ("reported", "accepted", "dispatched", "on_scene", "resolved")
#: Coordinate systems a case's point may be given in.
POINT_CRS = ("EPSG:4326", "EPSG:4490", "GCJ02", "BD09")
API_SOURCE = "real: reported through the geomap API"
_PHONE = re.compile(r"^[0-9+() -]{3,40}$")
#: How far a reported time may run ahead of the service's clock (devices' clocks drift).
CLOCK_SKEW = dt.timedelta(minutes=2)


def allowed(status: str, actions: tuple[str, ...] = ACTIONS) -> list[str]:
    """The actions :data:`STEPS` allows from ``status``.

    Parameters
    ----------
    status : str
        A case's status.
    actions : tuple of str, default ACTIONS
        The actions considered (``USER_ACTIONS`` and ``dispatch`` for what a page offers).

    Returns
    -------
    list of str
        The allowed ones, in their order.
    """
    return lifecycle.allowed(STEPS, actions, status)


def next_status(status: str, action: str) -> str:
    """The status ``action`` leads to from ``status``; a Conflict naming what is allowed.

    Parameters
    ----------
    status : str
        The case's status.
    action : str
        The action asked for.

    Returns
    -------
    str
        The next status.

    Raises
    ------
    InvalidInput
        An unknown action.
    Conflict
        ``status`` does not allow ``action``.
    """
    return lifecycle.next_status(STEPS, ACTIONS, status, action,
                                 refusal="a {status} case cannot take the step {action!r}",
                                 finished="none (the case is finished)")  # fmt: skip


# -- reading a new case ----------------------------------------------------------------------
NEW_FIELDS = (
    "kind",
    "severity",
    "title",
    "description",
    "address",
    "lon",
    "lat",
    "crs",
    "reporter_name",
    "reporter_phone",
    "reported_at",
)


def parse_new(body: dict[str, Any], now: dt.datetime) -> dict[str, Any]:
    """Check a new case's fields; every error names its field.

    Parameters
    ----------
    body : dict
        The decoded JSON body: ``NEW_FIELDS``. The point is in ``crs`` (one of
        ``POINT_CRS``, WGS 84 when absent); ``severity`` defaults to medium, ``reported_at``
        to ``now``.
    now : datetime.datetime
        The service's clock; a ``reported_at`` later than it by ``CLOCK_SKEW`` is refused.

    Returns
    -------
    dict
        The case's fields, the point in WGS 84 and ``reported_at`` timezone-aware.

    Raises
    ------
    InvalidInput
        An unknown field, kind, severity or CRS, a bad point, phone or time.
    """
    check_fields(body, NEW_FIELDS)
    kind = body.get("kind")
    if not isinstance(kind, str):
        raise InvalidInput(f"kind is required: one of {', '.join(vocab.CASE_KINDS)}", field="kind")
    check_choice(kind, "kind", vocab.CASE_KINDS)
    severity = body.get("severity", "medium")
    if not isinstance(severity, str):
        raise InvalidInput("severity must be text", field="severity")
    check_choice(severity, "severity", vocab.CASE_SEVERITIES)
    lon, lat = check_lonlat(body.get("lon"), body.get("lat"))
    given_crs = check_typed_text(body.get("crs"), "crs", 40)
    if given_crs is not None:
        spec = crs.parse_crs(given_crs)
        if spec.name not in POINT_CRS:
            raise InvalidInput(
                f"crs {spec.name!r} is not accepted for points; use one of {', '.join(POINT_CRS)}",
                field="crs",
            )
        lon, lat = crs.lonlat_to_wgs84(lon, lat, spec)
    phone = check_typed_text(body.get("reporter_phone"), "reporter_phone", 40)
    if phone is not None and not _PHONE.match(phone):
        raise InvalidInput(
            "reporter_phone may hold digits, spaces and + - ( ) only", field="reporter_phone"
        )
    reported_at = now
    if body.get("reported_at") is not None:
        reported_at = check_datetime(body["reported_at"], "reported_at")
        if reported_at > now + CLOCK_SKEW:
            raise InvalidInput(
                f"reported_at {reported_at.isoformat()} is in the future", field="reported_at"
            )
    return {
        "kind": kind,
        "severity": severity,
        "title": check_typed_text(body.get("title"), "title", 200, required=True),
        "description": check_typed_text(body.get("description"), "description", 4000),
        "address": check_typed_text(body.get("address"), "address", 500),
        "lon": lon,
        "lat": lat,
        "reporter_name": check_typed_text(body.get("reporter_name"), "reporter_name", 100),
        "reporter_phone": phone,
        "reported_at": reported_at,
    }


# -- where a case is -------------------------------------------------------------------------
_PT = "ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)"
GRID_AT_SQL = sa.text(
    f"SELECT code, community_code FROM grids WHERE ST_Intersects(geom, {_PT}) ORDER BY code LIMIT 1"
)
REGION_AT_SQL = sa.text(
    f"""
    SELECT r.code, r.level FROM region_pieces p JOIN regions r ON r.code = p.code
    WHERE ST_Intersects(p.geom, {_PT}) AND r.level IN ('community', 'township', 'district')
    ORDER BY CASE r.level WHEN 'community' THEN 0 WHEN 'township' THEN 1 ELSE 2 END, r.code
    LIMIT 1
    """
)
NEAREST_GRID_SQL = sa.text(
    f"SELECT code, community_code FROM grids ORDER BY geom::geography <-> {_PT}::geography LIMIT 1"
)
CHAIN_SQL = sa.text(
    """
    WITH RECURSIVE up AS (
        SELECT code, parent_code, level, 0 AS depth FROM regions WHERE code = :code
        UNION ALL
        SELECT r.code, r.parent_code, r.level, up.depth + 1
        FROM regions r JOIN up ON r.code = up.parent_code
        WHERE up.depth < 8
    )
    SELECT code, level FROM up
    """
)


def locate(conn: Connection | Session, lon: float, lat: float) -> dict[str, str | None]:
    """The unit chain of a point (see the module docstring).

    Parameters
    ----------
    conn : Connection or Session
        The database, read in the caller's transaction.
    lon, lat : float
        The point, WGS 84 degrees.

    Returns
    -------
    dict
        ``located`` (``grid``, a region level, ``nearest_grid`` or ``none``) and the
        ``grid_code``, ``community_code``, ``township_code`` and ``district_code`` (None
        where unknown).
    """
    units: dict[str, str | None] = {f"{level}_code": None for level in escalation.LEVELS}
    point = {"lon": lon, "lat": lat}
    grid = conn.execute(GRID_AT_SQL, point).first()
    region_code = None
    if grid is not None:
        located, units["grid_code"], region_code = "grid", grid.code, grid.community_code
    else:
        region = conn.execute(REGION_AT_SQL, point).first()
        if region is not None:
            located, region_code = region.level, region.code
        else:
            nearest = conn.execute(NEAREST_GRID_SQL, point).first()
            if nearest is None:
                return {"located": "none", **units}
            located, units["grid_code"] = "nearest_grid", nearest.code
            region_code = nearest.community_code
    if region_code is not None:
        for code, level in conn.execute(CHAIN_SQL, {"code": region_code}).all():
            if f"{level}_code" in units:
                units[f"{level}_code"] = code
    return {"located": located, **units}


# -- writing ---------------------------------------------------------------------------------
INSERT_SQL = sa.text(
    f"""
    INSERT INTO cases (kind, severity, title, description, address, status, geom, located,
                       grid_code, community_code, township_code, district_code, level,
                       level_since, escalate_at, accept_minutes, resolve_by, reporter_name,
                       reporter_phone, reported_at, created_by, updated_at, source)
    VALUES (:kind, :severity, :title, :description, :address, 'reported', {_PT}, :located,
            :grid_code, :community_code, :township_code, :district_code, :level,
            :reported_at, :escalate_at, :accept_minutes, :resolve_by, :reporter_name,
            :reporter_phone, :reported_at, :created_by, :now, :source)
    RETURNING id
    """
)
LOCK_SQL = sa.text(
    "SELECT *, ST_X(geom) AS lon, ST_Y(geom) AS lat FROM cases WHERE id = :id FOR UPDATE"
)


def _public(row: Any) -> dict[str, Any]:
    """The fields of a case row an event may carry to every reader of its audience."""
    return {
        key: row[key]
        for key in (
            "id",
            "kind",
            "severity",
            "title",
            "status",
            "level",
            "grid_code",
            "community_code",
            "township_code",
            "district_code",
        )
    }


def create(
    conn: Connection | Session,
    new: dict[str, Any],
    *,
    actor: audit.Actor,
    now: dt.datetime,
    rules: Rules,
    source: str = API_SOURCE,
) -> int:
    """Record a case (fields from :func:`parse_new`); returns its id.

    The case, its audit row (``case.create``) and its event (``case.created``) are written
    in the caller's transaction; a case reported earlier gets the climbs already due.

    Parameters
    ----------
    conn : Connection or Session
        The database.
    new : dict
        The case's fields, as :func:`parse_new` gives them.
    actor : audit.Actor
        Who reports it.
    now : datetime.datetime
        The service's clock.
    rules : Rules
        The dispatch rules (the case's deadlines).
    source : str, default API_SOURCE
        The case's provenance.

    Returns
    -------
    int
        The new case's id.

    Raises
    ------
    Unreachable
        The point lies outside the city (422).
    """
    city.check_in_city(conn, new["lon"], new["lat"])
    units = locate(conn, new["lon"], new["lat"])
    minutes = rules.accept_minutes(new["kind"], new["severity"])
    start = escalation.START_LEVEL[units["located"]]
    _, next_at = escalation.climbs(start, new["reported_at"], minutes, new["reported_at"])
    values = {
        **new,
        **units,
        "level": start,
        "escalate_at": next_at,
        "accept_minutes": minutes,
        "resolve_by": rules.resolve_by(new["kind"], new["severity"], new["reported_at"]),
        "created_by": actor.name,
        "now": now,
        "source": source,
    }
    case_id = int(conn.execute(INSERT_SQL, values).scalar_one())
    created = {k: v for k, v in values.items() if k not in ("now", "escalate_at")}
    personal = {
        "reporter_name": created.pop("reporter_name"),
        "reporter_phone": created.pop("reporter_phone"),
    }
    audit.record(
        conn,
        actor,
        "case.create",
        at=now,
        case_id=case_id,
        changes={**created, **{k: v for k, v in personal.items() if v}},
    )
    events.announce(
        conn,
        "case.created",
        {
            "id": case_id,
            "lon": new["lon"],
            "lat": new["lat"],
            "status": "reported",
            **{
                k: created[k]
                for k in (
                    "kind",
                    "severity",
                    "title",
                    "level",
                    "grid_code",
                    "community_code",
                    "township_code",
                    "district_code",
                    "reported_at",
                )
            },
        },
        audience="layers",
        at=now,
        case_id=case_id,
        personal={k: v for k, v in personal.items() if v} or None,
    )
    if new["reported_at"] < now:  # reported earlier: its climbs may already be due
        escalation.materialize_case(conn, lock(conn, case_id), now)
    return case_id


def lock(conn: Connection | Session, case_id: int, now: dt.datetime | None = None) -> Any:
    """The case's row, locked until the transaction ends.

    With ``now``, the climbs that fell due by then are recorded first (every writer does
    this before changing a case), and the row returned is the updated one.

    Parameters
    ----------
    conn : Connection or Session
        The database, in the caller's transaction.
    case_id : int
        The case's id.
    now : datetime.datetime, optional
        The service's clock.

    Returns
    -------
    RowMapping
        Every column of ``cases``, with ``lon``/``lat`` (WGS 84).

    Raises
    ------
    NotFound
        No such case.
    """
    row = conn.execute(LOCK_SQL, {"id": case_id}).mappings().first()
    if row is None:
        raise NotFound(f"no case {case_id}")
    if now is not None and escalation.is_due(row, now):
        escalation.materialize_case(conn, row, now)
        row = conn.execute(LOCK_SQL, {"id": case_id}).mappings().one()
    return row


def take_step(
    conn: Connection | Session,
    row: Any,
    action: str,
    *,
    actor: audit.Actor,
    now: dt.datetime,
    note: str | None = None,
    changes: dict[str, Any] | None = None,
) -> str:
    """Move a locked case row by ``action`` (the table decides); returns the new status.

    Stamps the times the step sets and records its audit row and event.

    Parameters
    ----------
    conn : Connection or Session
        The database, in the caller's transaction.
    row : Mapping
        The case's row, as :func:`lock` gives it.
    action : str
        One of ``ACTIONS``.
    actor : audit.Actor
        Who takes the step.
    now : datetime.datetime
        The service's clock.
    note : str, optional
        The actor's note, kept in the audit row.
    changes : dict, optional
        More to record in the audit row.

    Returns
    -------
    str
        The case's new status.

    Raises
    ------
    Conflict
        The status does not allow ``action``, or a hazard would be closed by the key that
        resolved it.
    """
    new = next_status(row["status"], action)
    if (
        action == "close"
        and row["kind"] == "hazard"
        and actor.same_as(row["resolved_by"], row["resolved_key_id"])
    ):
        raise Conflict(
            f"a hazard is closed (checked) by a different key than the one that resolved "
            f"it; {row['resolved_by']!r} resolved it",
            field="action",
        )
    stamps: dict[str, Any] = {}
    if action in ("accept", "dispatch") and row["accepted_at"] is None:
        stamps["accepted_at"] = now
    if action == "resolve":
        stamps.update(resolved_at=now, resolved_by=actor.name, resolved_key_id=actor.key_id)
    if action == "reopen":
        stamps.update(resolved_at=None, resolved_by=None, resolved_key_id=None)
    if action == "close":
        stamps["closed_at"] = now
    if action == "cancel":
        stamps["cancelled_at"] = now
    if action in ("accept", "dispatch", "cancel"):
        stamps["escalate_at"] = None
    assignments = ", ".join(f"{column} = :{column}" for column in stamps)
    conn.execute(
        sa.text(
            f"UPDATE cases SET status = :status, updated_at = :now"
            f"{', ' + assignments if assignments else ''} WHERE id = :id"
        ),
        {"status": new, "now": now, "id": row["id"], **stamps},
    )
    change = {"status": [row["status"], new], **(changes or {})}
    if note:
        change["note"] = note
    audit.record(conn, actor, f"case.{action}", at=now, case_id=row["id"], changes=change)
    events.announce(
        conn,
        "case.changed",
        {**_public(row), "status": new, "action": action, "at": now},
        audience="layers",
        at=now,
        case_id=row["id"],
    )
    return new


def step(
    conn: Connection | Session,
    case_id: int,
    body: dict[str, Any],
    *,
    actor: audit.Actor,
    now: dt.datetime,
) -> None:
    """A person's step on a case: ``{"action": "accept|resolve|close|reopen|cancel", ...}``.

    Resolving, closing or cancelling releases the case's active dispatches.

    Parameters
    ----------
    conn : Connection or Session
        The database, in the caller's transaction.
    case_id : int
        The case's id.
    body : dict
        The decoded JSON body: ``action`` (one of ``USER_ACTIONS``) and ``note``.
    actor : audit.Actor
        Who takes the step.
    now : datetime.datetime
        The service's clock.

    Raises
    ------
    InvalidInput
        A malformed body or an action not taken here.
    NotFound
        No such case.
    Conflict
        The case's status does not allow the action.
    """
    from geomap.ops import dispatch

    check_fields(body, ("action", "note"))
    action = body.get("action")
    if not isinstance(action, str) or action not in USER_ACTIONS:
        hint = " (teams are sent with POST /api/cases/<id>/dispatch)" if action in ACTIONS else ""
        raise InvalidInput(f"action must be one of {', '.join(USER_ACTIONS)}{hint}", field="action")
    note = check_typed_text(body.get("note"), "note", 1000)
    row = lock(conn, case_id, now)
    take_step(conn, row, action, actor=actor, now=now, note=note)
    if action in ("resolve", "close", "cancel"):
        dispatch.release_all(conn, case_id, actor=actor, now=now, reason=f"case {action}")


# -- reading ---------------------------------------------------------------------------------
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
