"""Escalation along the chain: a case nobody accepts in time climbs by itself.

A case starts at the lowest unit it was attached to (its grid, or its community when it
lies outside every grid) and has, per level, minutes to be accepted (the dispatch rules,
frozen on the case when it is reported). Each deadline counts from the previous one, so
with 10/20/30 minutes a case reported at 08:00 sits at the grid until 08:10, the
community until 08:30, the township until 09:00, and then at the district, the top.

No cron and no manual step:

* :func:`climbs` computes the climbs from the clock alone: every read shows the level a
  case has *now*, whether or not anything was written since.
* :func:`materialize_case` records the climbs that fell due (a ``case_escalations`` row,
  an audit row and an event each) exactly once: (case, level) is unique and the rows are
  written under the case's row lock. Writers call it before changing a case; reads and
  the serving process's loop (:class:`Loop`) call :func:`materialize_due`, which skips
  cases another transaction holds (``FOR UPDATE SKIP LOCKED``).

Tests drive all of this with a clock of their own (``now`` is always a parameter).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from geomap import events
from geomap.ops import audit

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine
    from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

LEVELS = ("grid", "community", "township", "district")
#: The level a case starts at, by how its unit was found (``cases.located``).
START_LEVEL = {
    "grid": "grid",
    "nearest_grid": "grid",
    "none": "grid",
    "community": "community",
    "township": "township",
    "district": "district",
}


@dataclass(frozen=True)
class Climb:
    """One step up the chain: the level reached and when.

    Parameters
    ----------
    level : str
        The level reached (one of ``LEVELS``).
    at : datetime.datetime
        When the acceptance deadline of the level below fell due.
    """

    level: str
    at: dt.datetime


def climbs(
    start_level: str, reported_at: dt.datetime, accept_minutes: list[int], until: dt.datetime
) -> tuple[list[Climb], dt.datetime | None]:
    """The climbs due at or before ``until``, and when the next one falls due.

    Parameters
    ----------
    start_level : str
        Where the case started (:data:`START_LEVEL`).
    reported_at : datetime.datetime
        When the case was reported; the first deadline counts from it.
    accept_minutes : list of int
        Minutes to accept at the grid, community and township levels.
    until : datetime.datetime
        Now, or the moment the case stopped climbing (accepted, cancelled).

    Returns
    -------
    climbs : list of Climb
        The climbs due, lowest first.
    next_at : datetime.datetime or None
        When the next climb falls due; None at the top of the chain.
    """
    level = LEVELS.index(start_level)
    deadline = reported_at
    done: list[Climb] = []
    while level < len(LEVELS) - 1:
        deadline = deadline + dt.timedelta(minutes=int(accept_minutes[level]))
        if deadline > until:
            return done, deadline
        level += 1
        done.append(Climb(LEVELS[level], deadline))
    return done, None


def stopped_at(row: Any, now: dt.datetime) -> dt.datetime:
    """Until when a case could climb: its acceptance, its cancellation, or now.

    Parameters
    ----------
    row : Mapping
        A case row with ``accepted_at`` and ``cancelled_at``.
    now : datetime.datetime
        The service's clock.

    Returns
    -------
    datetime.datetime
        The earlier of the moment it stopped and ``now``.
    """
    for moment in (row["accepted_at"], row["cancelled_at"]):
        if moment is not None:
            return min(moment, now)
    return now


@dataclass(frozen=True)
class Level:
    """Where a case stands in the chain at a moment.

    Parameters
    ----------
    level : str
        The level it stands at.
    since : datetime.datetime
        When it reached that level (its report, or its last climb).
    climbs : list of Climb
        The climbs so far.
    next_at : datetime.datetime or None
        The next climb, if nobody accepts before; None when it climbs no more.
    """

    level: str
    since: dt.datetime
    climbs: list[Climb]
    next_at: dt.datetime | None  # the next climb, if nobody accepts before

    @property
    def escalated(self) -> bool:
        """Whether the case has climbed at least once."""
        return bool(self.climbs)


def level_of(row: Any, now: dt.datetime) -> Level:
    """The level of a case row at ``now``, computed from the clock (no write needed).

    Parameters
    ----------
    row : Mapping
        A case row: ``located``, ``reported_at``, ``accept_minutes``, ``accepted_at``,
        ``cancelled_at``.
    now : datetime.datetime
        The service's clock.

    Returns
    -------
    Level
        Its level, since when, its climbs and the next one.
    """
    start = START_LEVEL[row["located"]]
    done, next_at = climbs(
        start, row["reported_at"], list(row["accept_minutes"]), stopped_at(row, now)
    )
    if row["accepted_at"] is not None or row["cancelled_at"] is not None:
        next_at = None
    if done:
        return Level(done[-1].level, done[-1].at, done, next_at)
    return Level(start, row["reported_at"], done, next_at)


RECORD_SQL = sa.text(
    """
    INSERT INTO case_escalations (case_id, level, at) VALUES (:case_id, :level, :at)
    ON CONFLICT (case_id, level) DO NOTHING
    RETURNING level
    """
)
UPDATE_SQL = sa.text(
    "UPDATE cases SET level = :level, level_since = :since, escalate_at = :next_at "
    "WHERE id = :id AND (level, level_since, escalate_at) "
    "IS DISTINCT FROM (:level, :since, :next_at)"
)
_COLUMNS = """
    c.id, c.kind, c.severity, c.title, c.status, c.located, c.level, c.reported_at,
    c.accepted_at, c.cancelled_at, c.accept_minutes, c.grid_code, c.community_code,
    c.township_code, c.district_code
"""
DUE_SQL = sa.text(
    f"""
    SELECT {_COLUMNS} FROM cases c
    WHERE c.status = 'reported' AND c.escalate_at <= :now
    ORDER BY c.escalate_at
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
    """
)


def materialize_case(conn: Connection | Session, row: Any, now: dt.datetime) -> list[Climb]:
    """Record the climbs of one case that fell due by ``now``.

    The case's row is locked by the caller. Each climb recorded gets an audit row
    (``case.escalate``, by the system clock) and an event (``case.escalated``); the case's
    level columns are brought up to date.

    Parameters
    ----------
    conn : Connection or Session
        The database, in the caller's transaction.
    row : Mapping
        The case row, with the columns of ``DUE_SQL``.
    now : datetime.datetime
        The service's clock.

    Returns
    -------
    list of Climb
        The climbs recorded by this call (ones already recorded are left out).
    """
    found = level_of(row, now)
    recorded = []
    for climb in found.climbs:
        new = conn.execute(
            RECORD_SQL, {"case_id": row["id"], "level": climb.level, "at": climb.at}
        ).first()
        if new is None:
            continue
        recorded.append(climb)
        unit = row[f"{climb.level}_code"]
        change = {
            "level": [LEVELS[LEVELS.index(climb.level) - 1], climb.level],
            "unit": unit,
            "due_at": climb.at,
        }
        audit.record(
            conn, audit.SYSTEM, "case.escalate", at=climb.at, changes=change, case_id=row["id"]
        )
        events.announce(
            conn,
            "case.escalated",
            {
                "id": row["id"],
                "kind": row["kind"],
                "severity": row["severity"],
                "title": row["title"],
                "level": climb.level,
                "unit": unit,
                "at": climb.at,
            },
            audience="layers",
            at=climb.at,
            case_id=row["id"],
        )
    conn.execute(
        UPDATE_SQL,
        {"id": row["id"], "level": found.level, "since": found.since, "next_at": found.next_at},
    )
    return recorded


def is_due(row: Any, now: dt.datetime) -> bool:
    """Whether a case row has a climb to record by ``now`` (its materialized deadline).

    Parameters
    ----------
    row : Mapping
        A case row with ``status`` and ``escalate_at``.
    now : datetime.datetime
        The service's clock.

    Returns
    -------
    bool
        True for a reported case whose ``escalate_at`` has passed.
    """
    return row["status"] == "reported" and row["escalate_at"] is not None and (
        row["escalate_at"] <= now
    )


def materialize_due(conn: Connection | Session, now: dt.datetime, limit: int = 500) -> int:
    """Record every climb due by ``now`` of the cases nobody else holds; returns how many.

    Parameters
    ----------
    conn : Connection or Session
        The database; the cases are locked with ``SKIP LOCKED`` in its transaction.
    now : datetime.datetime
        The service's clock.
    limit : int, default 500
        The most cases handled in one call.

    Returns
    -------
    int
        The number of climbs recorded.
    """
    rows = conn.execute(DUE_SQL, {"now": now, "limit": limit}).mappings().all()
    return sum(len(materialize_case(conn, row, now)) for row in rows)


def ensure_partitions(conn: Connection | Session, now: dt.datetime, months_ahead: int = 3) -> int:
    """Create the position history's monthly partitions around ``now``; returns how many.

    The partitions run from last month to ``months_ahead`` ahead (``team_positions_ensure``
    of migration 0011_cases), one maker at a time.

    Parameters
    ----------
    conn : Connection or Session
        The database, in the caller's transaction.
    now : datetime.datetime
        The service's clock.
    months_ahead : int, default 3
        How many months ahead of ``now`` to make.

    Returns
    -------
    int
        The number of partitions created.
    """
    first = (now - dt.timedelta(days=31)).date()
    last = (now + dt.timedelta(days=31 * months_ahead)).date()
    # One maker at a time (each worker's loop starts by making them).
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('team_positions_ensure'))"))
    made = conn.execute(
        sa.text("SELECT team_positions_ensure(:first, :last)"), {"first": first, "last": last}
    ).scalar()
    return int(made or 0)


class Loop:
    """The serving process's background loop: escalations, and partitions ahead of time.

    One daemon thread per process (each gunicorn worker has its own; they never record
    a climb twice). :meth:`tick` is one round, callable directly (tests).

    Parameters
    ----------
    engine : Engine
        The database; each round opens its own transactions.
    clock : callable
        The service's clock, ``clock() -> datetime`` (timezone-aware).
    interval_s : float
        Seconds between rounds; 0 or less never starts the thread.
    """

    PARTITIONS_EVERY_S = 3600.0

    def __init__(self, engine: Engine, clock: Callable[[], dt.datetime], interval_s: float):
        self.engine = engine
        self.clock = clock
        self.interval_s = float(interval_s)
        self.ticks = 0
        self.ticked = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._partitions_at: dt.datetime | None = None

    def tick(self) -> int:
        """One round: record due climbs (and, hourly, create partitions); returns climbs.

        Returns
        -------
        int
            The number of climbs recorded.
        """
        now = self.clock()
        with self.engine.begin() as conn:
            recorded = materialize_due(conn, now)
        if self._partitions_at is None or (
            (now - self._partitions_at).total_seconds() >= self.PARTITIONS_EVERY_S
        ):
            with self.engine.begin() as conn:
                ensure_partitions(conn, now)
            self._partitions_at = now
        self.ticks += 1
        self.ticked.set()
        return recorded

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as exc:  # keep going: the database may come back
                log.warning("escalation loop: %s", str(exc).splitlines()[0] if str(exc) else exc)
            self._stop.wait(self.interval_s)

    def start(self) -> Loop:
        """Start the thread (once, and only with a positive interval).

        Returns
        -------
        Loop
            This loop.
        """
        if self._thread is None and self.interval_s > 0:
            self._thread = threading.Thread(target=self._run, name="geomap-escalation", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread and wait for it (at most 5 s)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
