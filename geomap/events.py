"""Events for the live battle map: written in the writer's transaction, announced at commit.

Every write of the command loop (``geomap.ops``) calls :func:`announce` inside its own
transaction. The event is a row of ``events`` (so a client that reconnects can resume
after the last id it saw: ``Last-Event-ID``) and a ``NOTIFY geomap_events, '<id>'``, which
PostgreSQL delivers to listeners only when the transaction commits, and never when it
rolls back: no listener hears of a write that did not happen.

Who may see an event is part of it: ``audience`` is the permission a reader needs
(``layers``: whoever sees the teams layer; ``analysis``: planners and commanders;
``personal``: commanders), and fields about people (a reporter's phone, say) travel in
``personal``, apart from the ``payload`` everyone in the audience gets. The stream itself
(``GET /api/events``, Server-Sent Events) is served elsewhere; this module only writes.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import sqlalchemy as sa

#: The channel ``NOTIFY`` uses; listeners ``LISTEN geomap_events``.
CHANNEL = "geomap_events"
AUDIENCES = ("layers", "analysis", "personal")

ANNOUNCE_SQL = sa.text(
    """
    WITH event AS (
        INSERT INTO events (at, kind, audience, payload, personal, case_id, team_id)
        VALUES (:at, :kind, :audience, CAST(:payload AS jsonb), CAST(:personal AS jsonb),
                :case_id, :team_id)
        RETURNING id
    )
    SELECT id, pg_notify(:channel, id::text) FROM event
    """
)


def _json(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(value, ensure_ascii=False, default=_default, separators=(",", ":"))


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def announce(
    conn: Any,
    kind: str,
    payload: dict[str, Any],
    *,
    at: dt.datetime,
    audience: str = "analysis",
    personal: dict[str, Any] | None = None,
    case_id: int | None = None,
    team_id: int | None = None,
) -> int:
    """Record an event in the caller's transaction and notify listeners at commit.

    Parameters
    ----------
    conn : Connection or Session
        The writer's; the event commits (and is announced) with its write, or not at all.
    kind : str
        ``<subject>.<verb>``, e.g. ``case.created``, ``dispatch.changed``, ``team.moved``.
    payload : dict
        What every reader in the audience may see (JSON-serialisable; datetimes allowed).
    at : datetime
        When it happened (the service's clock).
    audience : {"layers", "analysis", "personal"}
        The permission a reader needs to receive the event.
    personal : dict, optional
        Fields only readers with the ``personal`` permission may see.
    case_id, team_id : int, optional
        What the event is about, for filtering.

    Returns
    -------
    int
        The event's id (the stream's ``id:``).
    """
    if audience not in AUDIENCES:
        raise ValueError(f"unknown audience {audience!r}")
    row = conn.execute(
        ANNOUNCE_SQL,
        {
            "at": at,
            "kind": kind,
            "audience": audience,
            "payload": _json(payload),
            "personal": _json(personal) if personal else None,
            "case_id": case_id,
            "team_id": team_id,
            "channel": CHANNEL,
        },
    ).one()
    return int(row[0])
