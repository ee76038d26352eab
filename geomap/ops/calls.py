"""One-click calls (一键呼叫): a resident at a service station asks for help with one press.

A call becomes a ``request`` case at the station's point through
:func:`geomap.ops.cases.create`, so it is placed on the grid chain, escalates when nobody
accepts it, is audited and is announced on the live stream (``case.created``) like any
other case. The station's code is in the case's title and in its audit actor
(``call:<code>``); the resident's optional text is its description and the optional
callback phone its reporter phone (a personal field: commanders only).

Nothing here knows about HTTP: ``geomap.api.call`` is the page and its rate limits.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import sqlalchemy as sa

from geomap.errors import InvalidInput, NotFound
from geomap.ops import audit, cases
from geomap.ops.rules import Rules
from geomap.params import check_fields, check_text, check_typed_text

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


def station(conn: Any, code: str) -> dict[str, Any]:
    """The station with this code: id, code, name, kind, address, grid_code, lon, lat.

    Raises
    ------
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
    """The resident's optional ``text`` and callback ``phone``; each error names its field."""
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
    """Who a call from this station is recorded as (nobody signs in to call)."""
    return audit.Actor(f"call:{code}", "public")


def source(code: str) -> str:
    """The case's provenance: a real person pressed the button at this station."""
    return f"real: one-click call (一键呼叫) at station {code}"


def new_case(found: dict[str, Any], call: dict[str, str | None], now: dt.datetime) -> dict:
    """The fields of the ``request`` case a call makes (as :func:`cases.parse_new` gives)."""
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
    conn: Any,
    found: dict[str, Any],
    call: dict[str, str | None],
    *,
    now: dt.datetime,
    rules: Rules,
) -> int:
    """Record the call as a ``request`` case at the station; returns the case id.

    The caller commits (the case, its audit row and its event go together).
    """
    return cases.create(
        conn,
        new_case(found, call, now),
        actor=actor(found["code"]),
        now=now,
        rules=rules,
        source=source(found["code"]),
    )
