"""The audit log: who did what, when, and what changed; appended, never changed.

Every write of the command loop calls :func:`record` in its own transaction, so a write
and its audit row commit together or not at all. The table refuses UPDATE, DELETE and
TRUNCATE (triggers of migration 0011), so not even a bug here can rewrite history.

An :class:`Actor` is whoever wrote: an API key (its name, role and id), the command line
(the operating-system user), or the system itself (escalations that fell due).
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from geomap.errors import InvalidInput
from geomap.params import check_int

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Session


@dataclass(frozen=True)
class Actor:
    """Who makes a write, as the audit log names them.

    Parameters
    ----------
    name : str
        The name recorded (an API key's name, ``<user> (command line)``, ``call:<code>``...).
    role : str
        The role the write was made with (``commander``, ``cli``, ``system``, ``public``...).
    key_id : int, optional
        The API key's id, when the write came through a key.
    """

    name: str
    role: str
    key_id: int | None = None

    @staticmethod
    def of(principal: Any) -> Actor:
        """The actor of a request's principal (``geomap.auth.Principal``).

        Parameters
        ----------
        principal : Principal
            Who the request is from: its ``name``, ``role`` and ``key_id``.

        Returns
        -------
        Actor
            Named by the principal's name, or by its role when it has none.
        """
        return Actor(principal.name or principal.role, principal.role, principal.key_id)

    @staticmethod
    def cli() -> Actor:
        """The person at the command line.

        Returns
        -------
        Actor
            The operating-system user, with the role ``cli`` (``unknown user`` when the uid has
            no name, as in some containers).
        """
        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # no name for this uid (containers)
            user = "unknown user"
        return Actor(f"{user} (command line)", "cli")

    def same_as(self, name: str | None, key_id: int | None) -> bool:
        """Whether this actor is the one recorded as ``name``/``key_id``.

        Parameters
        ----------
        name : str or None
            The recorded name.
        key_id : int or None
            The recorded key id; when both sides have one, the ids decide, not the names.

        Returns
        -------
        bool
            True for the same actor.
        """
        if self.key_id is not None and key_id is not None:
            return self.key_id == key_id
        return self.name == name


#: The clock itself, when an escalation falls due.
SYSTEM = Actor("escalation (system clock)", "system")

RECORD_SQL = sa.text(
    """
    INSERT INTO audit_log (at, key_id, key_name, key_role, action, case_id, dispatch_id,
                           team_id, changes)
    VALUES (:at, :key_id, :key_name, :key_role, :action, :case_id, :dispatch_id, :team_id,
            CAST(:changes AS jsonb))
    RETURNING id
    """
)


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def record(
    conn: Connection | Session,
    actor: Actor,
    action: str,
    *,
    at: dt.datetime,
    changes: dict[str, Any] | None = None,
    case_id: int | None = None,
    dispatch_id: int | None = None,
    team_id: int | None = None,
) -> int:
    """Append an audit row in the caller's transaction; returns its id.

    Parameters
    ----------
    conn : Connection or Session
        The database; the row commits with the write it records.
    actor : Actor
        Who made the write.
    action : str
        ``<subject>.<verb>`` (``case.create``, ``case.accept``, ``dispatch.release``,
        ``team.update``, ``team.positions``, ``key.create``...).
    at : datetime.datetime
        When the write happened (the service's clock, timezone-aware).
    changes : dict, optional
        What changed (``{"status": [old, new]}``, the fields created...); datetimes are
        stored as ISO text.
    case_id, dispatch_id, team_id : int, optional
        What the write was about, for :func:`query`'s filters.

    Returns
    -------
    int
        The audit row's id.
    """
    row = conn.execute(
        RECORD_SQL,
        {
            "at": at,
            "key_id": actor.key_id,
            "key_name": actor.name,
            "key_role": actor.role,
            "action": action,
            "case_id": case_id,
            "dispatch_id": dispatch_id,
            "team_id": team_id,
            "changes": json.dumps(changes or {}, ensure_ascii=False, default=_default),
        },
    ).one()
    return int(row[0])


QUERY_SQL = sa.text(
    """
    SELECT id, at, recorded_at, key_id, key_name, key_role, action, case_id, dispatch_id,
           team_id, changes
    FROM audit_log
    WHERE (CAST(:case_id AS integer) IS NULL OR case_id = :case_id)
      AND (CAST(:team_id AS integer) IS NULL OR team_id = :team_id)
      AND (CAST(:key AS text) IS NULL OR key_name = :key)
      AND (CAST(:action AS text) IS NULL OR action = :action)
      AND (CAST(:since AS timestamptz) IS NULL OR at >= :since)
      AND (CAST(:until AS timestamptz) IS NULL OR at < :until)
      AND (CAST(:before AS bigint) IS NULL OR id < :before)
    ORDER BY id DESC
    LIMIT :limit
    """
)

MAX_LIMIT = 1000


def query(
    conn: Connection | Session,
    *,
    case_id: int | None = None,
    team_id: int | None = None,
    key: str | None = None,
    action: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    before: int | None = None,
    limit: int = 100,
) -> dict[str, Any]:
    """Audit rows, newest first, filtered; ``next_before`` pages further back.

    Parameters
    ----------
    conn : Connection or Session
        The database, read in the caller's transaction.
    case_id, team_id : int, optional
        Only rows about this case, this team.
    key : str, optional
        Only rows written by the actor of this name.
    action : str, optional
        Only rows of this action (``case.accept``...).
    since, until : datetime.datetime, optional
        Only rows with ``at`` in [since, until).
    before : int, optional
        Only rows with a smaller id (the previous page's ``next_before``).
    limit : int, default 100
        Most rows returned, 1 to ``MAX_LIMIT``.

    Returns
    -------
    dict
        ``entries`` (the rows, times as ISO text, the actor as ``key``: id, name, role) and
        ``next_before`` (the id to pass as ``before`` for the next page, or None at the end).

    Raises
    ------
    InvalidInput
        ``limit`` out of range, or ``until`` not after ``since``.
    """
    limit = check_int(limit, "limit", 1, MAX_LIMIT)
    if since is not None and until is not None and until <= since:
        raise InvalidInput("to must be after from", field="to")
    rows = (
        conn.execute(
            QUERY_SQL,
            {
                "case_id": case_id,
                "team_id": team_id,
                "key": key,
                "action": action,
                "since": since,
                "until": until,
                "before": before,
                "limit": limit,
            },
        )
        .mappings()
        .all()
    )
    entries = []
    for row in rows:
        entry = dict(row)
        entry["at"] = row["at"].isoformat()
        entry["recorded_at"] = row["recorded_at"].isoformat()
        entry["key"] = {
            "id": entry.pop("key_id"),
            "name": entry.pop("key_name"),
            "role": entry.pop("key_role"),
        }
        entries.append(entry)
    return {
        "entries": entries,
        "next_before": entries[-1]["id"] if len(entries) == limit else None,
    }
