"""Who may call now, and which case a call goes to: limits per client per station, floods.

Every accepted one-click call is a row of ``call_attempts`` (station, client address, the
case it opened or was counted on). The rules are counted from those rows over the last
hour, under two transaction-level advisory locks (the client's, then the station's, always
in that order), so they hold across workers and nodes and two calls at once are counted
one after the other:

* **per client** (``per_client``, an hour): one address may call one station at most
  ``per_client`` times, and at most ``per_client`` stations; beyond: refused (429).
* **a crowd or a flood is one case**: a call at a station whose open call case, made by
  another address, was opened in the last :data:`WINDOW` is counted on that case (a
  duplicate), never refused. A case with :data:`FLOOD_AT` calls or more is flagged to the
  commander ("possible flood: 58 calls in 10 min").
* **per station** (``per_station``, an hour): the cases calls may open at one station;
  beyond, a repeat from an address that already called it is refused (429), and a new
  address's call is counted on the station's latest open call case (a new case when the
  station has none open). A new resident's first call is thus always accepted.

Behind a proxy the address is the one :func:`geomap.web.guard.client_address` finds; a
proxy that is not declared (``GEOMAP_TRUSTED_PROXIES``) makes every caller one address.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from geomap.errors import RateLimited

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Session

HOUR = dt.timedelta(hours=1)
#: How recent a station's open call case must be for other callers to be counted on it.
WINDOW = dt.timedelta(minutes=10)
#: Calls on one case from which the commander sees "possible flood".
FLOOD_AT = 5
#: The case states a call may be counted on.
OPEN = ("reported", "accepted", "dispatched", "on_scene")

LOCK_SQL = sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:name, 0))")
COUNTS_SQL = sa.text(
    """
    SELECT
        count(*) FILTER (WHERE station_id = :sid AND opened) AS station_cases,
        count(*) FILTER (WHERE station_id = :sid AND client = :client) AS mine_here,
        count(DISTINCT station_id) FILTER (WHERE client = :client AND station_id <> :sid)
            AS other_stations
    FROM call_attempts
    WHERE called_at > :since AND (station_id = :sid OR client = :client)
    """
)
NTH_MINE_SQL = sa.text(
    "SELECT called_at FROM call_attempts WHERE station_id = :sid AND client = :client "
    "AND called_at > :since ORDER BY called_at OFFSET :n LIMIT 1"
)
NTH_STATION_SQL = sa.text(
    "SELECT max(called_at) AS at FROM call_attempts WHERE client = :client "
    "AND station_id <> :sid AND called_at > :since GROUP BY station_id ORDER BY at "
    "OFFSET :n LIMIT 1"
)
NTH_OPENED_SQL = sa.text(
    "SELECT called_at FROM call_attempts WHERE station_id = :sid AND opened "
    "AND called_at > :since ORDER BY called_at OFFSET :n LIMIT 1"
)
# The station's open call cases opened since :since, the oldest first (the one a crowd
# is counted on stays the same while it grows); :client excludes the caller's own.
_TARGET = """
    SELECT a.case_id FROM call_attempts a JOIN cases c ON c.id = a.case_id
    WHERE a.station_id = :sid AND a.opened AND a.called_at > :since
      AND c.status = ANY(CAST(:open AS text[]))
      AND (CAST(:client AS text) IS NULL OR a.client <> :client)
    ORDER BY a.called_at {order}, a.id {order} LIMIT 1
"""
OLDEST_SQL = sa.text(_TARGET.format(order="ASC"))
LATEST_SQL = sa.text(_TARGET.format(order="DESC"))
INSERT_SQL = sa.text(
    """
    INSERT INTO call_attempts (station_id, client, case_id, opened, text, phone, called_at)
    VALUES (:sid, :client, :case_id, :opened, :text, :phone, :now)
    """
)
CALLS_SQL = sa.text(
    """
    SELECT case_id, count(*) AS calls, min(called_at) AS first_at, max(called_at) AS last_at
    FROM call_attempts WHERE case_id = ANY(CAST(:ids AS integer[])) GROUP BY case_id
    """
)


@dataclass(frozen=True)
class Admission:
    """Where an accepted call goes.

    Parameters
    ----------
    case_id : int or None
        The open case it is counted on; None: it opens a case of its own.
    """

    case_id: int | None


def _wait(conn: Connection | Session, sql: sa.TextClause, params: dict, n: int,
          now: dt.datetime) -> float:  # fmt: skip
    at = conn.execute(sql, {**params, "n": max(0, n)}).scalar()
    return max(1.0, ((at + HOUR) - now).total_seconds()) if at is not None else 60.0


def admit(
    conn: Connection | Session,
    station: dict[str, Any],
    client: str,
    *,
    now: dt.datetime,
    per_client: int,
    per_station: int,
) -> Admission:
    """Decide a call (see the module docstring); locks until the caller's transaction ends.

    Parameters
    ----------
    conn : Connection or Session
        The call's transaction (the caller records the call in it with :func:`record`).
    station : dict
        The station (``id``, ``code``), as :func:`geomap.ops.calls.station` gives it.
    client : str
        The caller's address.
    now : datetime.datetime
        The service's clock.
    per_client : int
        Calls an address may make at one station, and stations it may call, in an hour
        (0: no limit).
    per_station : int
        Cases calls may open at one station in an hour (0: no limit).

    Returns
    -------
    Admission
        The case to count the call on, or none (a new case).

    Raises
    ------
    RateLimited
        A repeat beyond the address's limits (``field`` ``client`` or ``station``).
    """
    client = client[:200]
    conn.execute(LOCK_SQL, {"name": f"geomap.call.client:{client}"})
    conn.execute(LOCK_SQL, {"name": f"geomap.call.station:{station['id']}"})
    since = now - HOUR
    params = {"sid": station["id"], "client": client, "since": since}
    counts = conn.execute(COUNTS_SQL, params).mappings().one()
    if per_client > 0 and counts["mine_here"] >= per_client:
        wait = _wait(conn, NTH_MINE_SQL, params, counts["mine_here"] - per_client, now)
        raise _limited(f"too many calls from this device (address) at this station: at most "
                       f"{per_client} an hour", wait, "client")  # fmt: skip
    if per_client > 0 and counts["other_stations"] >= per_client:
        wait = _wait(conn, NTH_STATION_SQL, params, counts["other_stations"] - per_client, now)
        raise _limited(f"too many stations called from this device (address): at most "
                       f"{per_client} an hour", wait, "client")  # fmt: skip
    crowd = _target(conn, OLDEST_SQL, station["id"], now - WINDOW, client)
    if crowd is not None:
        return Admission(crowd)
    if per_station > 0 and counts["station_cases"] >= per_station:
        if counts["mine_here"] > 0:
            wait = _wait(conn, NTH_OPENED_SQL, params,
                         counts["station_cases"] - per_station, now)  # fmt: skip
            raise _limited(
                f"too many calls from this station: at most {per_station} an hour; this "
                f"device (address) has called it already", wait, "station",
            )  # fmt: skip
        return Admission(_target(conn, LATEST_SQL, station["id"], since, None))
    return Admission(None)


def _target(conn: Connection | Session, sql: sa.TextClause, station_id: int,
            since: dt.datetime, client: str | None) -> int | None:  # fmt: skip
    found = conn.execute(
        sql, {"sid": station_id, "since": since, "open": list(OPEN), "client": client}
    ).scalar()
    return int(found) if found is not None else None


def _limited(what: str, wait: float, field: str) -> RateLimited:
    return RateLimited(
        f"{what}; retry in {max(1, round(wait / 60))} min (in an emergency dial 110, 120 or "
        f"119)",
        retry_after_s=wait,
        field=field,
    )


def record(
    conn: Connection | Session,
    station: dict[str, Any],
    client: str,
    case_id: int,
    *,
    opened: bool,
    call: dict[str, str | None],
    now: dt.datetime,
) -> int:
    """Record an accepted call on its case; returns the case's number of calls.

    Parameters
    ----------
    conn : Connection or Session
        The call's transaction.
    station : dict
        The station called.
    client : str
        The caller's address.
    case_id : int
        The case the call opened or is counted on.
    opened : bool
        Whether the call opened the case.
    call : dict
        The caller's ``text`` and ``phone``.
    now : datetime.datetime
        The time of the call.

    Returns
    -------
    int
        The calls the case has now.
    """
    conn.execute(
        INSERT_SQL,
        {"sid": station["id"], "client": client[:200], "case_id": case_id, "opened": opened,
         "text": call.get("text"), "phone": call.get("phone"), "now": now},
    )  # fmt: skip
    return calls_of(conn, [case_id]).get(case_id, {}).get("count", 1)


def calls_of(conn: Connection | Session, case_ids: list[int]) -> dict[int, dict[str, Any]]:
    """The one-click calls of these cases, and their flood flag, for the commander's queue.

    Parameters
    ----------
    conn : Connection or Session
        The database.
    case_ids : list of int
        The cases to look at.

    Returns
    -------
    dict
        For each case that calls made: ``count``, ``first_at``/``last_at`` (ISO text),
        ``flood`` (count at least :data:`FLOOD_AT`) and ``flag`` (``{"en", "zh"}`` words
        for the commander, or None).
    """
    if not case_ids:
        return {}
    found = {}
    for row in conn.execute(CALLS_SQL, {"ids": list(case_ids)}).mappings():
        found[int(row["case_id"])] = describe(row["calls"], row["first_at"], row["last_at"])
    return found


def describe(count: int, first_at: dt.datetime, last_at: dt.datetime) -> dict[str, Any]:
    """A case's calls as the API shows them (see :func:`calls_of`).

    Parameters
    ----------
    count : int
        The calls counted on the case.
    first_at, last_at : datetime.datetime
        The first and the latest.

    Returns
    -------
    dict
        ``count``, ``first_at``, ``last_at``, ``flood`` and ``flag``.
    """
    minutes = max(1, math.ceil((last_at - first_at).total_seconds() / 60))
    flood = count >= FLOOD_AT
    flag = None
    if flood:
        flag = {
            "en": f"possible flood: {count} calls in {minutes} min",
            "zh": f"疑似刷单：{minutes} 分钟内 {count} 次呼叫",
        }
    return {"count": int(count), "first_at": first_at.isoformat(),
            "last_at": last_at.isoformat(), "flood": flood, "flag": flag}  # fmt: skip
