"""One-click calls (一键呼叫): a resident at a service station asks for help with one press.

A call becomes a ``request`` case at the station's point through
:func:`geomap.ops.cases.create`, so it is placed on the grid chain, escalates when nobody
accepts it, is audited and is announced on the live stream (``case.created``) like any
other case. The station's code is in the case's title and in its audit actor
(``call:<code>``); the resident's optional text is its description and the optional
callback phone its reporter phone (a personal field: commanders only).

Who may call now and which case a call goes to (limits per client per station, a crowd
or a flood counted on one case) is :mod:`geomap.ops.call_limits`; a call counted on an
open case is audited (``case.call``) and, while it is not yet a flood and then at every
tenth call, announced (``case.changed``) so the commander's queue shows its count.

Nothing here knows about HTTP: ``geomap.api.call`` is the page.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from geomap import events
from geomap.errors import InvalidInput, NotFound
from geomap.ops import audit, call_limits, cases
from geomap.ops.rules import Rules
from geomap.params import check_fields, check_text, check_typed_text

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Session

#: Most characters of the resident's text (a short note, typed on a phone).
TEXT_MAX = 200
#: Most characters of the callback phone.
PHONE_MAX = 40
_PHONE = re.compile(r"^[0-9+() -]{3,40}$")
#: Longest station code looked up (longer ones name no station).
CODE_MAX = 64

STATION_SQL = sa.text(
    """
    SELECT s.id, s.code, s.name, s.kind, s.address, s.grid_code,
           ST_X(s.geom) AS lon, ST_Y(s.geom) AS lat
    FROM stations s WHERE s.code = :code
    """
)


def station(conn: Connection | Session, code: str) -> dict[str, Any]:
    """The station with this code: id, code, name, kind, address, grid_code, lon, lat.

    Parameters
    ----------
    conn : Connection or Session
        The database, read in the caller's transaction.
    code : str
        The station's code, as printed on its call button (at most ``CODE_MAX`` characters
        name a station).

    Returns
    -------
    dict
        The station's row; ``lon``/``lat`` in WGS 84 degrees.

    Raises
    ------
    InvalidInput
        ``code`` is not text.
    NotFound
        No station has this code.
    """
    check_text(code, "code")
    row = None
    if len(code) <= CODE_MAX:
        row = conn.execute(STATION_SQL, {"code": code}).mappings().first()
    if row is None:
        raise NotFound(f"no station with the code {code!r}", field="code")
    return dict(row)


def parse_call(body: Any) -> dict[str, str | None]:
    """The resident's optional ``text`` and callback ``phone``; each error names its field.

    Parameters
    ----------
    body : object
        The decoded JSON body, or None for an empty one.

    Returns
    -------
    dict
        ``{"text": str or None, "phone": str or None}``, stripped.

    Raises
    ------
    InvalidInput
        The body is not an object, holds other keys, a value is too long (``TEXT_MAX``,
        ``PHONE_MAX``) or the phone holds other characters than digits, spaces and ``+-()``.
    """
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise InvalidInput("the call must be a JSON object: {\"text\": ..., \"phone\": ...}",
                           field="body")  # fmt: skip
    check_fields(body, ("text", "phone"))
    text = check_typed_text(body.get("text"), "text", TEXT_MAX)
    phone = check_typed_text(body.get("phone"), "phone", PHONE_MAX)
    if phone is not None and not _PHONE.match(phone):
        raise InvalidInput("phone may hold digits, spaces and + - ( ) only", field="phone")
    return {"text": text, "phone": phone}


def actor(code: str) -> audit.Actor:
    """Who a call from this station is recorded as (nobody signs in to call).

    Parameters
    ----------
    code : str
        The station's code.

    Returns
    -------
    audit.Actor
        ``call:<code>`` with the role ``public``.
    """
    return audit.Actor(f"call:{code}", "public")


def source(code: str) -> str:
    """The case's provenance: a real person pressed the button at this station.

    Parameters
    ----------
    code : str
        The station's code.

    Returns
    -------
    str
        The text stored in the case's ``source``.
    """
    return f"real: one-click call (一键呼叫) at station {code}"


def new_case(found: dict[str, Any], call: dict[str, str | None], now: dt.datetime) -> dict:
    """The fields of the ``request`` case a call makes (as :func:`cases.parse_new` gives).

    Parameters
    ----------
    found : dict
        The station, as :func:`station` gives it.
    call : dict
        The resident's text and phone, as :func:`parse_call` gives them.
    now : datetime.datetime
        The time of the call (timezone-aware), the case's ``reported_at``.

    Returns
    -------
    dict
        A ``request`` case of medium severity at the station's point (WGS 84).
    """
    title = f"一键呼叫：{found['name']}（{found['code']}）"
    return {
        "kind": "request",
        "severity": "medium",
        "title": title[:200],
        "description": call["text"],
        "address": (found["address"] or found["name"])[:500],
        "lon": float(found["lon"]),
        "lat": float(found["lat"]),
        "reporter_name": None,
        "reporter_phone": call["phone"],
        "reported_at": now,
    }


def place(
    conn: Session,
    found: dict[str, Any],
    call: dict[str, str | None],
    *,
    now: dt.datetime,
    rules: Rules,
    client: str,
    per_client: int = 0,
    per_station: int = 0,
) -> dict[str, Any]:
    """Record the call: a new ``request`` case at the station, or a count on its open one.

    The caller commits (the case or the count, the call's row, audit and event go
    together).

    Parameters
    ----------
    conn : Session
        The request's session; the call is written in its transaction.
    found : dict
        The station, as :func:`station` gives it.
    call : dict
        The resident's text and phone, as :func:`parse_call` gives them.
    now : datetime.datetime
        The time of the call (timezone-aware).
    rules : Rules
        The dispatch rules (escalation and resolution deadlines).
    client : str
        The caller's address (the limits count per address).
    per_client, per_station : int, default 0
        The limits of :func:`geomap.ops.call_limits.admit` (0: none).

    Returns
    -------
    dict
        ``case_id``, ``duplicate`` (counted on an open case rather than opening one) and
        ``calls`` (the case's calls now).

    Raises
    ------
    RateLimited
        A repeat from this address beyond its limits.
    """
    admitted = call_limits.admit(conn, found, client, now=now, per_client=per_client,
                                 per_station=per_station)  # fmt: skip
    case_id = admitted.case_id
    if case_id is None:
        case_id = cases.create(
            conn,
            new_case(found, call, now),
            actor=actor(found["code"]),
            now=now,
            rules=rules,
            source=source(found["code"]),
        )
    count = call_limits.record(conn, found, client, case_id, opened=admitted.case_id is None,
                               call=call, now=now)  # fmt: skip
    if admitted.case_id is not None:
        audit.record(conn, actor(found["code"]), "case.call", at=now, case_id=case_id,
                     changes={"calls": count})  # fmt: skip
        if count <= call_limits.FLOOD_AT or count % 10 == 0:
            events.announce(conn, "case.changed", {"id": case_id, "calls": count},
                            audience="layers", at=now, case_id=case_id)  # fmt: skip
    return {"case_id": case_id, "duplicate": admitted.case_id is not None, "calls": count}
