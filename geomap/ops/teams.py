"""A commander's changes to a team: its status, its position, its standby position.

* ``status``: a team on an active dispatch is released through its dispatch, not by
  setting it ``available`` or ``off_duty`` here (409 says which dispatch holds it).
* ``lon``/``lat`` (with ``position_at``, ``crs``): a position fix entered by hand, kept in
  the history; it becomes the current position only if it is the newest.
* ``standby_lon``/``standby_lat``: where the team waits when not deployed (its base);
  accepting a move-up suggestion is setting it.
* Both points must lie in the city, as a case's does (422 ``unreachable`` naming
  ``lon`` or ``standby_lon``).

One audit row and one event per change, in the same transaction.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from geomap import crs, events, vocab
from geomap.analysis import city
from geomap.errors import Conflict, InvalidInput, NotFound
from geomap.ops import audit, positions
from geomap.params import check_choice, check_datetime, check_fields, check_lonlat, check_typed_text

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Session

FIELDS = ("status", "lon", "lat", "position_at", "crs", "standby_lon", "standby_lat")
SOURCE = "real: entered by a commander through the geomap API"

TEAM_SQL = sa.text(
    """
    SELECT id, code, name, kind, status, ST_X(geom) AS lon, ST_Y(geom) AS lat, position_at,
           ST_X(base_geom) AS standby_lon, ST_Y(base_geom) AS standby_lat
    FROM teams WHERE id = :id
    """
)
ACTIVE_SQL = sa.text(
    "SELECT id, case_id FROM dispatches WHERE team_id = :id AND status <> 'released'"
)


def describe(conn: Connection | Session, team_id: int) -> dict[str, Any]:
    """A team as the API answers a change to it.

    Parameters
    ----------
    conn : Connection or Session
        The database, read in the caller's transaction.
    team_id : int
        The team's id.

    Returns
    -------
    dict
        id, code, name, kind, status, the position (``lon``/``lat``, WGS 84, and
        ``position_at`` as ISO text or None) and the standby position (``standby_lon``/
        ``standby_lat``).

    Raises
    ------
    NotFound
        No team has this id.
    """
    row = conn.execute(TEAM_SQL, {"id": team_id}).mappings().first()
    if row is None:
        raise NotFound(f"no team {team_id}")
    team = dict(row)
    team["position_at"] = row["position_at"].isoformat() if row["position_at"] else None
    return team


def _point(body: dict[str, Any], lon_key: str, lat_key: str) -> tuple[float, float] | None:
    if lon_key not in body and lat_key not in body:
        return None
    if body.get(lon_key) is None or body.get(lat_key) is None:
        missing = lat_key if body.get(lon_key) is not None else lon_key
        raise InvalidInput(f"{lon_key} and {lat_key} go together", field=missing)
    try:
        lon, lat = check_lonlat(body[lon_key], body[lat_key])
    except InvalidInput as exc:
        field = lon_key if exc.field == "lon" else lat_key
        raise InvalidInput(exc.message.replace(exc.field or "", field, 1), field=field) from None
    if isinstance(body[lon_key], bool) or isinstance(body[lat_key], bool):
        raise InvalidInput(f"{lon_key}/{lat_key} must be numbers", field=lon_key)
    name = check_typed_text(body.get("crs"), "crs", 40)
    if name is not None:
        spec = crs.parse_crs(name)
        if spec.name not in positions.POINT_CRS:
            raise InvalidInput(
                f"crs {spec.name!r} is not accepted; use one of {', '.join(positions.POINT_CRS)}",
                field="crs",
            )
        lon, lat = crs.lonlat_to_wgs84(lon, lat, spec)
    return lon, lat


def update(
    conn: Connection | Session,
    team_id: int,
    body: dict[str, Any],
    *,
    actor: audit.Actor,
    now: dt.datetime,
) -> dict[str, Any]:
    """Apply a commander's change to a team (see the module docstring).

    The team's row is locked; the change, its audit row (``team.update``) and its event
    (``team.changed``) are written in the caller's transaction, which the caller commits.

    Parameters
    ----------
    conn : Connection or Session
        The database.
    team_id : int
        The team's id.
    body : dict
        The decoded JSON body: any of ``FIELDS``. Points are in ``crs`` (one of
        ``positions.POINT_CRS``, WGS 84 when absent) and stored in WGS 84.
    actor : audit.Actor
        Who makes the change.
    now : datetime.datetime
        The service's clock; a hand-entered fix without ``position_at`` is dated now.

    Returns
    -------
    dict
        The team after the change, as :func:`describe` gives it.

    Raises
    ------
    InvalidInput
        An unknown field, a bad status, half a point, or nothing to change.
    NotFound
        No team has this id.
    Conflict
        A status other than ``deployed`` for a team on an active dispatch.
    Unreachable
        A position or standby position outside the city.
    """
    check_fields(body, FIELDS)
    status = body.get("status")
    if status is not None:
        if not isinstance(status, str):
            raise InvalidInput("status must be text", field="status")
        check_choice(status, "status", vocab.TEAM_STATUSES)
    position = _point(body, "lon", "lat")
    standby = _point(body, "standby_lon", "standby_lat")
    if status is None and position is None and standby is None:
        raise InvalidInput(
            "give a status, lon and lat, or standby_lon and standby_lat to change",
            field="status",
        )
    at = now
    if body.get("position_at") is not None:
        at = check_datetime(body["position_at"], "position_at")
    # A team's position and its standby position are in the city, as a case's point is.
    if position is not None:
        city.check_in_city(conn, *position, field="lon")
    if standby is not None:
        city.check_in_city(conn, *standby, field="standby_lon")
    row = conn.execute(
        sa.text("SELECT id, status FROM teams WHERE id = :id FOR UPDATE"), {"id": team_id}
    ).first()
    if row is None:
        raise NotFound(f"no team {team_id}")
    before = describe(conn, team_id)
    changes: dict[str, Any] = {}
    if status is not None and status != row.status:
        active = conn.execute(ACTIVE_SQL, {"id": team_id}).first()
        if active is not None and status != "deployed":
            raise Conflict(
                f"team {team_id} is on dispatch {active.id} of case {active.case_id}; release "
                f"it (POST /api/dispatches/{active.id}/steps, action release) to make the "
                f"team {status}",
                field="status",
            )
        conn.execute(
            sa.text("UPDATE teams SET status = :status WHERE id = :id"),
            {"status": status, "id": team_id},
        )
        changes["status"] = [row.status, status]
    if position is not None:
        fix = {
            "index": 0,
            "lon": position[0],
            "lat": position[1],
            "recorded_at": at,
            "accuracy_m": None,
        }
        result = positions.record(conn, team_id, [fix], now=now, max_speed_kmh=None, source=SOURCE)
        changes["position"] = {
            "lon": position[0],
            "lat": position[1],
            "at": at,
            "current": result["moved"],
            "duplicate": bool(result["duplicates"]),
        }
    if standby is not None:
        conn.execute(
            sa.text(
                "UPDATE teams SET base_geom = ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) "
                "WHERE id = :id"
            ),
            {"lon": standby[0], "lat": standby[1], "id": team_id},
        )
        changes["standby"] = [
            [before["standby_lon"], before["standby_lat"]],
            [standby[0], standby[1]],
        ]
    team = describe(conn, team_id)
    audit.record(conn, actor, "team.update", at=now, team_id=team_id, changes=changes)
    events.announce(
        conn,
        "team.changed",
        {
            k: team[k]
            for k in (
                "id",
                "code",
                "name",
                "kind",
                "status",
                "lon",
                "lat",
                "position_at",
                "standby_lon",
                "standby_lat",
            )
        },
        audience="layers",
        at=now,
        team_id=team_id,
    )
    return team
