"""``GET /api/audit``: the audit log, for commanders, filtered by case, team, key and time."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, jsonify

from geomap import db
from geomap.ops import audit
from geomap.params import CST, MAX_ID, check_datetime, check_id, check_int, check_typed_text
from geomap.web import spec
from geomap.web.spec import Param, endpoint

bp = Blueprint("audit", __name__, url_prefix="/api/audit")


@bp.get("")
@endpoint(
    "Who did what and when: the append-only audit log, newest first",
    permission="personal",
    tags=("audit",),
    response="AuditEntries",
    params=(
        Param("case", "integer", "Only rows about this case.", minimum=1, maximum=MAX_ID),
        Param("team", "integer", "Only rows about this team.", minimum=1, maximum=MAX_ID),
        Param("key", "string", "Only rows written with the key of this name."),
        Param("action", "string", "Only this action, e.g. case.accept or dispatch.create."),
        Param("from", "string", "At or after (ISO 8601; no zone: UTC+8)."),
        Param("to", "string", "Before (ISO 8601; no zone: UTC+8)."),
        Param("before", "integer", "Only rows older than this id (paging).", minimum=1),
        Param("limit", "integer", "How many.", default=100, minimum=1, maximum=audit.MAX_LIMIT),
    ),
)
def audit_log():
    """Audit rows, filtered; ``next_before`` pages back."""
    args = spec.args()

    def when(name: str) -> dt.datetime | None:
        raw = args.raw(name)
        return None if raw is None else check_datetime(raw, name, default_tz=CST)

    def number(name: str) -> int | None:
        raw = args.raw(name)
        return None if raw is None else check_id(raw, name)

    before = args.raw("before")
    answer = audit.query(
        db.get_session(),
        case_id=number("case"),
        team_id=number("team"),
        key=check_typed_text(args.str("key"), "key", 200),
        action=check_typed_text(args.str("action"), "action", 60),
        since=when("from"),
        until=when("to"),
        before=None if before is None else check_int(before, "before", 1, 2**62),
        limit=args.raw("limit") or 100,
    )
    return jsonify(answer)
