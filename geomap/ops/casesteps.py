"""A case's lifecycle: the table of steps and the one writer that takes them.

The lifecycle is a table, :data:`STEPS`: (status, action) → status. Nothing else moves a
case; an action the table does not hold for the current status is a
:class:`~geomap.errors.Conflict` (409) that names the actions allowed from there::

    reported ─accept→ accepted ─dispatch→ dispatched ─arrive→ on_scene ─resolve→ resolved
        │                 ↑  (withdraw: the last team released)          │  ↑     │ close
        └──dispatch──────────────────────────────────────────────────────┘  reopen  ↓
    cancel: from reported, accepted, dispatched, on_scene              ← ─ ─ ┘   closed

Every writer locks the case's row first (:func:`lock`, which given the clock records the
climbs already due) and moves it with :func:`take_step`, which stamps the step's times and
records its audit row and event. A person's steps come through :func:`geomap.ops.cases.step`;
``dispatch`` (from reported it also accepts), ``arrive`` and ``withdraw`` are taken by
:mod:`geomap.ops.dispatch` when teams are sent, arrive, or are all released. A hazard is
closed only by a different key than the one that resolved it: closing is the check step
of a closed loop.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from geomap import events
from geomap.errors import Conflict, NotFound
from geomap.ops import audit, escalation, lifecycle

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
