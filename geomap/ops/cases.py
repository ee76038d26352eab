"""Cases (事件): incidents, hazards and residents' requests, reported, located and stepped.

A new case's fields are checked (:func:`parse_new`), its place is found (:func:`locate`)
and it is recorded with its deadlines, audit row and event (:func:`create`). A person's
step (:func:`step`) moves it through the lifecycle of :mod:`geomap.ops.casesteps`;
resolving, closing and cancelling release the case's teams (:mod:`geomap.ops.dispatch`).
Cases are read through :mod:`geomap.ops.casereads`.

Where a case is, is resolved from its point when it is created: the grid holding it and
the grid's community, township and district; outside every grid, the smallest region
holding it (a village is a community); failing that, the nearest grid. A point outside
the city is refused (422).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from geomap import crs, events, vocab
from geomap.analysis import city
from geomap.errors import InvalidInput
from geomap.ops import audit, dispatch, escalation

# ``get``, ``list_cases`` and ``OPEN`` are named here too: geomap.api.cases reads them as
# ``cases.get``, ``cases.list_cases``, ``cases.OPEN``.
from geomap.ops.casesteps import ACTIONS, USER_ACTIONS, lock, take_step
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

#: Coordinate systems a case's point may be given in.
POINT_CRS = ("EPSG:4326", "EPSG:4490", "GCJ02", "BD09")
API_SOURCE = "real: reported through the geomap API"
_PHONE = re.compile(r"^[0-9+() -]{3,40}$")
#: How far a reported time may run ahead of the service's clock (devices' clocks drift).
CLOCK_SKEW = dt.timedelta(minutes=2)


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
