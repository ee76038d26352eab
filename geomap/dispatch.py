"""Commanders' writes: team status and position, incidents, dispatches.

Functions take a session and plain values (already validated where the API can do it)
and return plain data; they raise :class:`~geomap.errors.GeomapError` subclasses.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from geomap import vocab
from geomap.errors import InvalidInput, NotFound
from geomap.params import check_choice, check_datetime, check_lonlat

SOURCE = "real: entered by a commander through the geomap API"
#: The earliest position time accepted.
POSITIONS_SINCE = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)

UPDATE_TEAM_SQL = sa.text(
    """
    UPDATE teams SET
        status = coalesce(CAST(:status AS text), status),
        geom = CASE WHEN CAST(:lon AS float8) IS NULL THEN geom
                    ELSE ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) END,
        position_at = CASE WHEN CAST(:lon AS float8) IS NULL THEN position_at
                           ELSE CAST(:at AS timestamptz) END
    WHERE id = :id
    RETURNING id, code, name, kind, status, ST_X(geom) AS lon, ST_Y(geom) AS lat, position_at
    """
)
POSITION_SQL = sa.text(
    "INSERT INTO team_positions (team_id, recorded_at, geom, source) VALUES "
    "(:id, :at, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), :source)"
)
INCIDENT_SQL = sa.text(
    """
    INSERT INTO incidents (title, kind, grid_code, geom, source)
    SELECT :title, :kind,
           (SELECT code FROM grids
            WHERE ST_Intersects(geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)) LIMIT 1),
           ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), :source
    RETURNING id, title, kind, status, grid_code, reported_at,
              ST_X(geom) AS lon, ST_Y(geom) AS lat
    """
)
INCIDENTS_SQL = sa.text(
    """
    SELECT i.id, i.title, i.kind, i.status, i.grid_code, i.reported_at,
           ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat,
           coalesce(json_agg(json_build_object('team_id', d.team_id, 'status', d.status,
                                               'travel_min', d.travel_min))
                    FILTER (WHERE d.id IS NOT NULL), '[]') AS dispatches
    FROM incidents i LEFT JOIN dispatches d ON d.incident_id = i.id
    WHERE (CAST(:status AS text) IS NULL OR i.status = :status)
      AND (CAST(:id AS integer) IS NULL OR i.id = :id)
    GROUP BY i.id ORDER BY i.reported_at DESC, i.id DESC LIMIT :limit
    """
)


def _plain(row: Any) -> dict:
    out = dict(row)
    for key, value in out.items():
        if isinstance(value, dt.datetime):
            out[key] = value.isoformat()
    return out


def update_team(session: Session, team_id: int, body: dict[str, Any]) -> dict:
    """Change a team's status and/or last position (a position is also kept in history)."""
    unknown = set(body) - {"status", "lon", "lat", "position_at"}
    if unknown:
        raise InvalidInput(f"unknown field {sorted(unknown)[0]!r}", field=sorted(unknown)[0])
    status = body.get("status")
    if status is not None:
        check_choice(status, "status", vocab.TEAM_STATUSES)
    lon = lat = None
    if "lon" in body or "lat" in body:
        lon, lat = check_lonlat(body.get("lon"), body.get("lat"))
    if status is None and lon is None:
        raise InvalidInput("give a status, or lon and lat, to change", field="status")
    now = dt.datetime.now(dt.UTC)
    at = now
    if body.get("position_at") is not None:
        # A position from before GPS on phones, or from tomorrow, is a typing error.
        at = check_datetime(body["position_at"], "position_at", earliest=POSITIONS_SINCE,
                            latest=now + dt.timedelta(days=1))  # fmt: skip
    row = (
        session.execute(
            UPDATE_TEAM_SQL, {"id": team_id, "status": status, "lon": lon, "lat": lat, "at": at}
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"no team {team_id}")
    if lon is not None:
        session.execute(POSITION_SQL, {"id": team_id, "at": at, "lon": lon, "lat": lat,
                                       "source": SOURCE})  # fmt: skip
    return _plain(row)


def create_incident(session: Session, body: dict[str, Any]) -> dict:
    """Record an incident at a point (its grid is found from the point)."""
    unknown = set(body) - {"title", "kind", "lon", "lat"}
    if unknown:
        raise InvalidInput(f"unknown field {sorted(unknown)[0]!r}", field=sorted(unknown)[0])
    title = body.get("title")
    if not isinstance(title, str) or not title.strip():
        raise InvalidInput("title is required", field="title")
    kind = body.get("kind")
    if kind is not None and not isinstance(kind, str):
        raise InvalidInput("kind must be text", field="kind")
    lon, lat = check_lonlat(body.get("lon"), body.get("lat"))
    row = (
        session.execute(
            INCIDENT_SQL,
            {"title": title.strip(), "kind": kind, "lon": lon, "lat": lat, "source": SOURCE},
        )
        .mappings()
        .one()
    )
    return _plain(row)


def list_incidents(session: Session, status: str | None = None, limit: int = 100) -> list[dict]:
    """Latest incidents first, with their dispatches."""
    if status is not None:
        check_choice(status, "status", vocab.INCIDENT_STATUSES)
    rows = session.execute(INCIDENTS_SQL, {"status": status, "id": None, "limit": limit})
    return [_plain(row) for row in rows.mappings()]


def dispatch(session: Session, incident_id: int, body: dict[str, Any]) -> dict:
    """Send teams to an incident: dispatch rows, teams deployed, incident dispatched."""
    unknown = set(body) - {"team_ids", "travel_min"}
    if unknown:
        raise InvalidInput(f"unknown field {sorted(unknown)[0]!r}", field=sorted(unknown)[0])
    team_ids = body.get("team_ids")
    if (
        not isinstance(team_ids, list)
        or not team_ids
        or not all(isinstance(t, int) and not isinstance(t, bool) for t in team_ids)
    ):
        raise InvalidInput("team_ids must be a non-empty list of team ids", field="team_ids")
    travel = body.get("travel_min") or {}
    if not isinstance(travel, dict):
        raise InvalidInput("travel_min must map team id to minutes", field="travel_min")
    incident = session.execute(
        sa.text("SELECT id FROM incidents WHERE id = :id FOR UPDATE"), {"id": incident_id}
    ).first()
    if incident is None:
        raise NotFound(f"no incident {incident_id}")
    teams_sql = sa.text("SELECT id FROM teams WHERE id = ANY(:ids)")
    found = set(session.execute(teams_sql, {"ids": team_ids}).scalars())
    missing = sorted(set(team_ids) - found)
    if missing:
        raise InvalidInput(f"no team {missing[0]}", field="team_ids")
    for team_id in team_ids:
        minutes = travel.get(str(team_id))
        if minutes is not None and (not isinstance(minutes, int | float) or minutes < 0):
            raise InvalidInput("travel_min values must be minutes ≥ 0", field="travel_min")
        session.execute(
            sa.text("INSERT INTO dispatches (incident_id, team_id, travel_min, source) "
                    "VALUES (:i, :t, :m, :s)"),
            {"i": incident_id, "t": team_id, "m": minutes, "s": SOURCE},
        )  # fmt: skip
    session.execute(sa.text("UPDATE teams SET status = 'deployed' WHERE id = ANY(:ids)"),
                    {"ids": team_ids})  # fmt: skip
    session.execute(sa.text("UPDATE incidents SET status = 'dispatched' WHERE id = :id"),
                    {"id": incident_id})  # fmt: skip
    return get_incident(session, incident_id)


def get_incident(session: Session, incident_id: int) -> dict:
    """One incident with its dispatches."""
    row = session.execute(INCIDENTS_SQL, {"status": None, "id": incident_id, "limit": 1})
    found = row.mappings().first()
    if found is None:
        raise NotFound(f"no incident {incident_id}")
    return _plain(found)
