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
from typing import Any

import sqlalchemy as sa

from geomap import events
from geomap.ops import audit

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
    """One step up the chain: the level reached and when."""

    level: str
    at: dt.datetime


def climbs(
    start_level: str, reported_at: dt.datetime, accept_minutes: list[int], until: dt.datetime
) -> tuple[list[Climb], dt.datetime | None]:
    """The climbs due at or before ``until``, and when the next one falls due (None at
    the top of the chain).

    Parameters
    ----------
    start_level : str
        Where the case started (:data:`START_LEVEL`).
    reported_at : datetime
    accept_minutes : list of int
        Minutes to accept at the grid, community and township levels.
    until : datetime
        Now, or the moment the case stopped climbing (accepted, cancelled).
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
    """Until when a case could climb: its acceptance, its cancellation, or now."""
    for moment in (row["accepted_at"], row["cancelled_at"]):
        if moment is not None:
            return min(moment, now)
    return now


@dataclass(frozen=True)
class Level:
    """Where a case stands in the chain at a moment."""

    level: str
    since: dt.datetime
    climbs: list[Climb]
    next_at: dt.datetime | None  # the next climb, if nobody accepts before

    @property
    def escalated(self) -> bool:
        return bool(self.climbs)


def level_of(row: Any, now: dt.datetime) -> Level:
    """The level of a case row at ``now``, computed from the clock (no write needed)."""
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


def materialize_case(conn: Any, row: Any, now: dt.datetime) -> list[Climb]:
    """Record the climbs of one case (its row locked by the caller) that fell due by
    ``now``; returns the ones recorded by this call."""
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
    """Whether a case row has a climb to record by ``now`` (its materialized deadline)."""
    return row["status"] == "reported" and row["escalate_at"] is not None and (
        row["escalate_at"] <= now
    )


def materialize_due(conn: Any, now: dt.datetime, limit: int = 500) -> int:
    """Record every climb due by ``now`` of the cases nobody else holds; returns how many."""
    rows = conn.execute(DUE_SQL, {"now": now, "limit": limit}).mappings().all()
    return sum(len(materialize_case(conn, row, now)) for row in rows)


def ensure_partitions(conn: Any, now: dt.datetime, months_ahead: int = 3) -> int:
    """Create the position history's monthly partitions from last month to
    ``months_ahead`` ahead (0011_cases); returns how many were made."""
    first = (now - dt.timedelta(days=31)).date()
    last = (now + dt.timedelta(days=31 * months_ahead)).date()
    # One maker at a time (each worker's loop starts by making them).
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('team_positions_ensure'))"))
    made = conn.execute(
        sa.text("SELECT team_positions_ensure(:first, :last)"), {"first": first, "last": last}
    ).scalar()
    return int(made or 0)


class Loop:
    """The serving process's background loop: escalations as they fall due, and the
    position history's partitions ahead of time.

    One daemon thread per process (each gunicorn worker has its own; they never record
    a climb twice). :meth:`tick` is one round, callable directly (tests).
    """

    PARTITIONS_EVERY_S = 3600.0

    def __init__(self, engine: Any, clock: Callable[[], dt.datetime], interval_s: float):
        self.engine = engine
        self.clock = clock
        self.interval_s = float(interval_s)
        self.ticks = 0
        self.ticked = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._partitions_at: dt.datetime | None = None

    def tick(self) -> int:
        """One round: record due climbs (and, hourly, create partitions); returns climbs."""
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
        if self._thread is None and self.interval_s > 0:
            self._thread = threading.Thread(target=self._run, name="geomap-escalation", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
