"""Dispatch: available teams sent to a case, followed until they are released.

A dispatch has its own states, a table like the case's (:data:`STEPS`)::

    assigned ─depart→ en_route ─arrive→ on_scene
        └──────────arrive──────────────↗
    release: from assigned, en_route or on_scene → released

One team is in at most one active dispatch, and the database holds that line whatever
the code above it does:

1. the case row is locked first, then the teams in id order (two requests naming the same
   teams queue instead of deadlocking);
2. a conditional update takes only teams that are ``available`` at that moment; under
   READ COMMITTED a request that waited on the lock re-reads the team after the first one
   commits, finds it ``deployed``, takes nothing, and answers 409;
3. the partial unique index ``dispatches_one_active_per_team`` refuses a second active
   dispatch row for a team even if a team's status was set by hand.

Releasing a team (or resolving, closing, cancelling its case) makes it available again;
when a case's last active team is released before it is resolved, the case goes back to
``accepted`` (it needs a team).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from geomap import events
from geomap.errors import Conflict, InvalidInput, NotFound
from geomap.ops import audit, casesteps, lifecycle
from geomap.params import check_fields, check_ids, check_typed_text

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Session

#: A dispatch's lifecycle: (status, action) → the status it leads to.
STEPS: dict[tuple[str, str], str] = {
    ("assigned", "depart"): "en_route",
    ("assigned", "arrive"): "on_scene",
    ("en_route", "arrive"): "on_scene",
    ("assigned", "release"): "released",
    ("en_route", "release"): "released",
    ("on_scene", "release"): "released",
}
ACTIONS = ("depart", "arrive", "release")
ACTIVE = ("assigned", "en_route", "on_scene")
#: The time column each state stamps.
STAMPS = {"en_route": "en_route_at", "on_scene": "on_scene_at", "released": "released_at"}
SOURCE = "real: dispatched through the geomap API"


def allowed(status: str) -> list[str]:
    """The actions :data:`STEPS` allows from ``status``.

    Parameters
    ----------
    status : str
        A dispatch's status.

    Returns
    -------
    list of str
        The allowed actions, in the order of :data:`ACTIONS`.
    """
    return lifecycle.allowed(STEPS, ACTIONS, status)


def next_status(status: str, action: str) -> str:
    """The status ``action`` leads to; a Conflict naming the allowed actions otherwise.

    Parameters
    ----------
    status : str
        The dispatch's status.
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
    return lifecycle.next_status(
        STEPS, ACTIONS, status, action,
        refusal="a dispatch that is {status} cannot take the step {action!r}",
        finished="none (it is over)",
    )  # fmt: skip


LOCK_TEAMS_SQL = sa.text(
    """
    SELECT t.id, t.code, t.name, t.kind, t.status,
           (SELECT d.id FROM dispatches d
            WHERE d.team_id = t.id AND d.status <> 'released') AS active_dispatch,
           (SELECT d.case_id FROM dispatches d
            WHERE d.team_id = t.id AND d.status <> 'released') AS active_case
    FROM teams t WHERE t.id = ANY(:ids) ORDER BY t.id FOR UPDATE OF t
    """
)
TAKE_TEAMS_SQL = sa.text(
    """
    UPDATE teams SET status = 'deployed'
    WHERE id = ANY(:ids) AND status = 'available'
    RETURNING id, ST_X(geom) AS lon, ST_Y(geom) AS lat
    """
)
INSERT_SQL = sa.text(
    """
    INSERT INTO dispatches (case_id, team_id, status, assigned_at, eta_min, origin,
                            assigned_by, note, source)
    VALUES (:case_id, :team_id, 'assigned', :now, :eta_min,
            ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), :assigned_by, :note, :source)
    RETURNING id
    """
)
FREE_TEAM_SQL = sa.text(
    "UPDATE teams SET status = 'available' WHERE id = :id AND status = 'deployed' RETURNING id"
)


def _busy_message(team: Any) -> str:
    if team.active_dispatch is not None:
        return (
            f"team {team.id} ({team.name}) is already on dispatch {team.active_dispatch} "
            f"of case {team.active_case}"
        )
    return f"team {team.id} ({team.name}) is {team.status}, not available"


def dispatch(
    conn: Connection | Session,
    case_id: int,
    body: dict[str, Any],
    *,
    actor: audit.Actor,
    now: dt.datetime,
    max_teams: int,
    eta_min: Any = None,
) -> list[int]:
    """Send available teams to a case; returns the new dispatches' ids.

    The case is locked, then the teams in id order; each team taken becomes ``deployed``,
    each dispatch gets an audit row and an event, and the case takes its ``dispatch`` step,
    in the caller's transaction.

    Parameters
    ----------
    conn : Connection or Session
        The database.
    case_id : int
        The case's id.
    body : dict
        The decoded JSON body, ``{"team_ids": [...], "note": ...}``.
    actor : audit.Actor
        Who sends the teams.
    now : datetime.datetime
        The service's clock.
    max_teams : int
        The most teams one request may send.
    eta_min : callable, optional
        ``eta_min(conn, lon, lat, {team id: (lon, lat)}) -> {team id: minutes or None}``:
        the drive time of each team from where it is to the case, stored with its dispatch.

    Returns
    -------
    list of int
        The new dispatches' ids, in the order of ``team_ids``.

    Raises
    ------
    InvalidInput
        Malformed ids, a team listed twice, more than ``max_teams``, an unknown team.
    NotFound
        No such case.
    Conflict
        The case cannot take a dispatch now, or a team is not available (409).
    """
    check_fields(body, ("team_ids", "note"))
    team_ids = check_ids(body.get("team_ids"), "team_ids", max_teams)
    note = check_typed_text(body.get("note"), "note", 1000)
    row = casesteps.lock(conn, case_id, now)
    casesteps.next_status(row["status"], "dispatch")  # before touching any team
    teams = {t.id: t for t in conn.execute(LOCK_TEAMS_SQL, {"ids": sorted(team_ids)})}
    missing = [i for i in team_ids if i not in teams]
    if missing:
        raise InvalidInput(f"no team {missing[0]}", field="team_ids")
    taken = {r.id: r for r in conn.execute(TAKE_TEAMS_SQL, {"ids": team_ids})}
    busy = [teams[i] for i in team_ids if i not in taken]
    if busy:
        raise Conflict(
            "; ".join(_busy_message(t) for t in busy[:3])
            + "; only available teams can be dispatched",
            field="team_ids",
        )
    origins = {i: (taken[i].lon, taken[i].lat) for i in team_ids}
    etas = eta_min(conn, float(row["lon"]), float(row["lat"]), origins) if eta_min else {}
    made = []
    for team_id in team_ids:
        origin = taken[team_id]
        values = {
            "case_id": case_id, "team_id": team_id, "now": now, "eta_min": etas.get(team_id),
            "lon": origin.lon, "lat": origin.lat, "assigned_by": actor.name, "note": note,
            "source": SOURCE,
        }  # fmt: skip
        try:  # the index is the last line of defence: the update above already holds it
            dispatch_id = conn.execute(INSERT_SQL, values).scalar_one()
        except sa.exc.IntegrityError as exc:
            if "dispatches_one_active_per_team" not in str(exc.orig):
                raise
            raise Conflict(
                f"team {team_id} is already on an active dispatch", field="team_ids"
            ) from None
        made.append(dispatch_id)
        audit.record(
            conn,
            actor,
            "dispatch.create",
            at=now,
            case_id=case_id,
            dispatch_id=dispatch_id,
            team_id=team_id,
            changes={
                "status": [None, "assigned"],
                "eta_min": etas.get(team_id),
                "team_status": ["available", "deployed"],
                "note": note,
            },
        )
        events.announce(
            conn,
            "dispatch.created",
            {
                "id": dispatch_id,
                "case_id": case_id,
                "team_id": team_id,
                "status": "assigned",
                "eta_min": etas.get(team_id),
                "at": now,
            },
            audience="layers",
            at=now,
            case_id=case_id,
            team_id=team_id,
        )
        events.announce(
            conn,
            "team.changed",
            {"id": team_id, "status": "deployed", "case_id": case_id, "at": now},
            audience="layers",
            at=now,
            team_id=team_id,
        )
    casesteps.take_step(
        conn,
        row,
        "dispatch",
        actor=actor,
        now=now,
        note=note,
        changes={"teams": team_ids, "dispatches": made},
    )
    return made


def _release(
    conn: Connection | Session,
    drow: Any,
    *,
    actor: audit.Actor,
    now: dt.datetime,
    reason: str | None,
) -> None:
    """Release one locked dispatch row and free its team."""
    conn.execute(
        sa.text("UPDATE dispatches SET status = 'released', released_at = :now WHERE id = :id"),
        {"now": now, "id": drow["id"]},
    )
    freed = conn.execute(FREE_TEAM_SQL, {"id": drow["team_id"]}).first() is not None
    change: dict[str, Any] = {"status": [drow["status"], "released"]}
    if freed:
        change["team_status"] = ["deployed", "available"]
    if reason:
        change["reason"] = reason
    audit.record(
        conn,
        actor,
        "dispatch.release",
        at=now,
        case_id=drow["case_id"],
        dispatch_id=drow["id"],
        team_id=drow["team_id"],
        changes=change,
    )
    events.announce(
        conn,
        "dispatch.changed",
        {
            "id": drow["id"],
            "case_id": drow["case_id"],
            "team_id": drow["team_id"],
            "status": "released",
            "at": now,
        },
        audience="layers",
        at=now,
        case_id=drow["case_id"],
        team_id=drow["team_id"],
    )
    if freed:
        events.announce(
            conn,
            "team.changed",
            {"id": drow["team_id"], "status": "available", "at": now},
            audience="layers",
            at=now,
            team_id=drow["team_id"],
        )


ACTIVE_OF_CASE_SQL = sa.text(
    "SELECT * FROM dispatches WHERE case_id = :case_id AND status <> 'released' "
    "ORDER BY id FOR UPDATE"
)


def release_all(
    conn: Connection | Session, case_id: int, *, actor: audit.Actor, now: dt.datetime, reason: str
) -> int:
    """Release every active dispatch of a case (its row locked by the caller).

    Parameters
    ----------
    conn : Connection or Session
        The database, in the caller's transaction.
    case_id : int
        The case's id.
    actor : audit.Actor
        Who releases (the one closing or cancelling the case).
    now : datetime.datetime
        The service's clock.
    reason : str
        Why, recorded in each release's audit row.

    Returns
    -------
    int
        The number of dispatches released.
    """
    rows = conn.execute(ACTIVE_OF_CASE_SQL, {"case_id": case_id}).mappings().all()
    for drow in rows:
        _release(conn, drow, actor=actor, now=now, reason=reason)
    return len(rows)


def step(
    conn: Connection | Session,
    dispatch_id: int,
    body: dict[str, Any],
    *,
    actor: audit.Actor,
    now: dt.datetime,
) -> int:
    """A step of a dispatch: ``{"action": "depart|arrive|release", "note": ...}``.

    The case is locked first, as every writer does. A release frees the team and, when it
    was the case's last active team before resolution, returns the case to ``accepted``; an
    arrival moves the case on scene.

    Parameters
    ----------
    conn : Connection or Session
        The database, in the caller's transaction.
    dispatch_id : int
        The dispatch's id.
    body : dict
        The decoded JSON body.
    actor : audit.Actor
        Who takes the step.
    now : datetime.datetime
        The service's clock.

    Returns
    -------
    int
        The id of the dispatch's case.

    Raises
    ------
    InvalidInput
        A malformed body or an unknown action.
    NotFound
        No such dispatch.
    Conflict
        The dispatch's status does not allow the action.
    """
    check_fields(body, ("action", "note"))
    action = body.get("action")
    if not isinstance(action, str) or action not in ACTIONS:
        raise InvalidInput(f"action must be one of {', '.join(ACTIONS)}", field="action")
    note = check_typed_text(body.get("note"), "note", 1000)
    case_id = conn.execute(
        sa.text("SELECT case_id FROM dispatches WHERE id = :id"), {"id": dispatch_id}
    ).scalar()
    if case_id is None:
        raise NotFound(f"no dispatch {dispatch_id}")
    row = casesteps.lock(conn, case_id, now)  # the case first, as every writer does
    drow = (
        conn.execute(
            sa.text("SELECT * FROM dispatches WHERE id = :id FOR UPDATE"), {"id": dispatch_id}
        )
        .mappings()
        .one()
    )
    new = next_status(drow["status"], action)
    if action == "release":
        _release(conn, drow, actor=actor, now=now, reason=note)
        still = conn.execute(
            sa.text("SELECT count(*) FROM dispatches WHERE case_id = :c AND status <> 'released'"),
            {"c": case_id},
        ).scalar()
        if still == 0 and (row["status"], "withdraw") in casesteps.STEPS:
            casesteps.take_step(
                conn,
                row,
                "withdraw",
                actor=actor,
                now=now,
                changes={"reason": f"dispatch {dispatch_id} released"},
            )
        return case_id
    stamp = STAMPS[new]
    conn.execute(
        sa.text(f"UPDATE dispatches SET status = :status, {stamp} = :now WHERE id = :id"),
        {"status": new, "now": now, "id": dispatch_id},
    )
    change: dict[str, Any] = {"status": [drow["status"], new]}
    if note:
        change["note"] = note
    audit.record(
        conn,
        actor,
        f"dispatch.{action}",
        at=now,
        case_id=case_id,
        dispatch_id=dispatch_id,
        team_id=drow["team_id"],
        changes=change,
    )
    events.announce(
        conn,
        "dispatch.changed",
        {
            "id": dispatch_id,
            "case_id": case_id,
            "team_id": drow["team_id"],
            "status": new,
            "at": now,
        },
        audience="layers",
        at=now,
        case_id=case_id,
        team_id=drow["team_id"],
    )
    if action == "arrive" and (row["status"], "arrive") in casesteps.STEPS:
        casesteps.take_step(
            conn, row, "arrive", actor=actor, now=now, changes={"dispatch": dispatch_id}
        )
    return case_id
