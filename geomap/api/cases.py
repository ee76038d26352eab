"""Cases from report to closure: report, recommend, dispatch, step, escalate, count.

Thin views over :mod:`geomap.ops`: each parses its declared parameters, calls one
function with the request's session, its clock and its caller, and commits. Reads first
record the escalations that fell due (:func:`geomap.ops.escalation.materialize_due`), so
what they show is on record too.
"""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, Response, jsonify, request

from geomap import db, vocab
from geomap.api import _ops
from geomap.api.teams import json_body
from geomap.errors import GeomapError, InvalidInput, NotFound
from geomap.ops import (
    call_limits,
    casereads,
    cases,
    casesteps,
    dispatch,
    escalation,
    idempotency,
    recommend,
    stats,
)
from geomap.params import CST, MAX_ID, check_choice, check_choices, check_datetime, check_int
from geomap.web import access, guard, spec
from geomap.web.spec import Param, endpoint

bp = Blueprint("cases", __name__, url_prefix="/api")

MAX_K = 20

FROM = Param("from", "string", "Reported at or after (ISO 8601; no zone: UTC+8).")
TO = Param("to", "string", "Reported before (ISO 8601; no zone: UTC+8).")
IDEMPOTENCY_KEY = Param(
    idempotency.HEADER, "string",
    "A key of the client's choosing (a UUID) for this report; sent again with a retry, the "
    "same key from the same caller within 24 h answers the first answer (same status and "
    "body, `Idempotent-Replayed: true`) and makes no second case; with another body: 422.",
    location="header",
)  # fmt: skip


def _with_calls(session, found: list[dict]) -> list[dict]:
    # A case that one-click calls made shows their count and, for a flood, its flag.
    counted = call_limits.calls_of(session, [c["id"] for c in found])
    for case in found:
        if case["id"] in counted:
            case["calls"] = counted[case["id"]]
    return found


def _when(args: spec.Args, name: str) -> dt.datetime | None:
    raw = args.raw(name)
    return None if raw is None else check_datetime(raw, name, default_tz=CST)


def _case_id(case_id: int) -> int:
    if case_id > MAX_ID:
        raise NotFound(f"no case {case_id}")
    return case_id


def _materialize(session) -> None:
    escalation.materialize_due(session, _ops.now())
    session.commit()


@bp.get("/cases")
@endpoint(
    "Cases, latest reported first, with their level and dispatches",
    permission="layers",
    tags=("cases",),
    response="CaseList",
    params=(
        Param(
            "status",
            "string",
            "Only cases in these states.",
            enum=tuple(vocab.CASE_STATUSES),
            array=True,
        ),
        Param("open", "boolean", "Only cases not closed nor cancelled."),
        Param("kind", "string", "Only cases of this kind.", enum=tuple(vocab.CASE_KINDS)),
        Param(
            "level",
            "string",
            "Only cases at this level of the chain now.",
            enum=tuple(vocab.CASE_LEVELS),
        ),
        Param(
            "unit",
            "string",
            "Only cases attached to this grid, community, township or district code.",
        ),
        FROM,
        TO,
        Param("limit", "integer", "How many.", default=100, minimum=1, maximum=1000),
        Param("offset", "integer", "Skip this many.", default=0, minimum=0),
    ),
)
def list_cases():
    """Cases, filtered."""
    args = spec.args()
    statuses = check_choices(args.list("status"), "status", vocab.CASE_STATUSES)
    if args.bool("open"):
        statuses = [s for s in (statuses or casesteps.OPEN) if s in casesteps.OPEN]
    kind = args.str("kind")
    if kind:
        check_choice(kind, "kind", vocab.CASE_KINDS)
    level = args.str("level")
    if level:
        check_choice(level, "level", vocab.CASE_LEVELS)
    unit = args.str("unit")
    if unit is not None and (len(unit) > 40 or not unit.isprintable()):
        raise InvalidInput("unit must be a unit code", field="unit")
    session = db.get_session()
    _materialize(session)
    answer = casereads.list_cases(
        session,
        now=_ops.now(),
        personal=_ops.may_see_personal(),
        statuses=statuses,
        kind=kind or None,
        level=level or None,
        unit=unit or None,
        since=_when(args, "from"),
        until=_when(args, "to"),
        limit=check_int(args.raw("limit") or 100, "limit", 1, 1000),
        offset=check_int(args.raw("offset") or 0, "offset", 0, 10_000_000),
    )
    _with_calls(session, answer["cases"])
    return jsonify(answer)


def _recommendation(session, case_id: int, k: int) -> dict:
    settings = _ops.settings()
    return recommend.recommend(
        session, case_id, k=k, rules=_ops.dispatch_rules(), reach_min=settings.reach_min
    )


@bp.post("/cases")
@endpoint(
    "Report a case; answers it with the recommended teams",
    permission="write",
    tags=("cases",),
    body="CaseNew",
    response="CaseCreated",
    statuses=(400, 422),
    params=(
        Param(
            "k",
            "integer",
            "How many teams to recommend (0: none).",
            default=5,
            minimum=0,
            maximum=MAX_K,
        ),
        IDEMPOTENCY_KEY,
    ),
)
def create_case():
    """Record a case, then recommend teams for it."""
    args = spec.args()
    k = check_int(args.raw("k") if args.raw("k") is not None else 5, "k", 0, MAX_K)
    key = idempotency.check_key(request.headers.get(idempotency.HEADER))
    session = db.get_session()
    now = _ops.now()
    body = json_body()
    scope = f"cases:{guard.caller_id(access.current(), request)}"
    if key is not None:
        sha = idempotency.digest("POST", request.full_path, body)
        first = idempotency.claim(session, scope, key, sha, now=now)
        if first is not None:
            session.rollback()
            return Response(first.body, status=first.status, mimetype="application/json",
                            headers={"Idempotent-Replayed": "true"})  # fmt: skip
    new = cases.parse_new(body, now)
    case_id = cases.create(session, new, actor=_ops.actor(), now=now, rules=_ops.dispatch_rules())
    if key is None:
        session.commit()
    answer = {"case": casereads.get(session, case_id, now=now, personal=_ops.may_see_personal())}
    if k:
        try:
            answer["recommendation"] = _recommendation(session, case_id, k)
        except GeomapError as exc:  # the case stands; say why no team is recommended
            answer["recommendation"] = {"error": exc.to_dict()}
    response = jsonify(answer)
    response.status_code = 201
    if key is not None:
        # The answer is kept with the case, in its transaction: a repeat waiting on the
        # key reads it as soon as the case is committed.
        idempotency.keep(session, scope, key, 201, response.get_data(as_text=True))
        session.commit()
    return response


@bp.get("/cases/<int:case_id>")
@endpoint(
    "One case: where it is, its level now, its dispatches and the steps allowed",
    permission="layers",
    tags=("cases",),
    response="Case",
    statuses=(400, 404),
)
def get_case(case_id: int):
    """One case."""
    spec.args()
    session = db.get_session()
    _materialize(session)
    found = casereads.get(session, _case_id(case_id), now=_ops.now(),
                          personal=_ops.may_see_personal())  # fmt: skip
    return jsonify(_with_calls(session, [found])[0])


@bp.get("/cases/<int:case_id>/recommend")
@endpoint(
    "The available teams that fit a case, by drive time, with ETA, route and coverage loss",
    permission="analysis",
    tags=("cases",),
    response="Recommendation",
    statuses=(400, 404, 422),
    params=(Param("k", "integer", "How many teams.", default=5, minimum=1, maximum=MAX_K),),
)
def recommend_teams(case_id: int):
    """Recommended teams for a case."""
    args = spec.args()
    k = check_int(args.raw("k") or 5, "k", 1, MAX_K)
    return jsonify(_recommendation(db.get_session(), _case_id(case_id), k))


@bp.post("/cases/<int:case_id>/steps")
@endpoint(
    "Take a step on a case: accept, resolve, close, reopen or cancel",
    permission="write",
    tags=("cases",),
    body="CaseStep",
    response="Case",
    statuses=(400, 404, 409),
    success=200,
)
def case_step(case_id: int):
    """A person's step on a case (409 names the steps allowed)."""
    spec.args()
    session = db.get_session()
    now = _ops.now()
    cases.step(session, _case_id(case_id), json_body(), actor=_ops.actor(), now=now)
    session.commit()
    return jsonify(casereads.get(session, case_id, now=now, personal=_ops.may_see_personal()))


@bp.post("/cases/<int:case_id>/dispatch")
@endpoint(
    "Send available teams to a case; exactly one of two simultaneous requests for a team "
    "wins, the other gets 409",
    permission="write",
    tags=("cases",),
    body="DispatchNew",
    response="DispatchCreated",
    statuses=(400, 404, 409),
)
def dispatch_teams(case_id: int):
    """Dispatch teams (the database keeps one active dispatch per team)."""
    spec.args()
    session = db.get_session()
    now = _ops.now()
    made = dispatch.dispatch(
        session,
        _case_id(case_id),
        json_body(),
        actor=_ops.actor(),
        now=now,
        max_teams=_ops.settings().max_dispatch_teams,
        eta_min=recommend.etas,
    )
    session.commit()
    return jsonify(
        {
            "dispatches": made,
            "case": casereads.get(session, case_id, now=now, personal=_ops.may_see_personal()),
            "move_up": f"/api/cases/{case_id}/moveup",
        }
    ), 201


@bp.get("/cases/<int:case_id>/moveup")
@endpoint(
    "Repositionings of available teams that restore the coverage a case's dispatch took",
    permission="analysis",
    tags=("cases",),
    response="MoveUp",
    statuses=(400, 404),
    params=(
        Param(
            "n",
            "integer",
            "Most suggestions (default GEOMAP_MOVE_UP_SUGGESTIONS).",
            minimum=1,
            maximum=10,
        ),
    ),
)
def move_up(case_id: int):
    """Move-up suggestions after a dispatch."""
    args = spec.args()
    settings = _ops.settings()
    n = check_int(args.raw("n") or settings.move_up_suggestions, "n", 1, 10)
    return jsonify(
        recommend.move_up(
            db.get_session(),
            _case_id(case_id),
            n=n,
            rules=_ops.dispatch_rules(),
            reach_min=settings.reach_min,
        )
    )


@bp.get("/cases/stats")
@endpoint(
    "Found, closed, closure rate, median minutes to accept and to close, open and overdue "
    "now, per unit",
    permission="analysis",
    tags=("cases",),
    response="CaseStats",
    media_type="application/json",
    params=(
        Param("kind", "string", "Only cases of this kind.", enum=tuple(vocab.CASE_KINDS)),
        Param(
            "level",
            "string",
            "Units to count by.",
            enum=tuple(vocab.CASE_LEVELS),
            default="district",
        ),
        Param("from", "string", "Reported at or after (default: 30 days before `to`)."),
        Param("to", "string", "Reported before (default: now)."),
        Param(
            "format",
            "string",
            "Representation of the answer.",
            enum=("json", "csv"),
            default="json",
        ),
    ),
)
def case_stats():
    """Closure figures per unit, as JSON or CSV."""
    args = spec.args()
    fmt = check_choice(args.str("format", "json") or "json", "format", ("json", "csv"))
    now = _ops.now()
    until = _when(args, "to") or now
    since = _when(args, "from") or until - dt.timedelta(days=30)
    session = db.get_session()
    _materialize(session)
    answer = stats.stats(
        session,
        level=args.str("level", "district") or "district",
        kind=args.str("kind") or None,
        since=since,
        until=until,
        now=now,
    )
    if fmt == "csv":
        return Response(
            stats.to_csv(answer),
            mimetype="text/csv",
            headers={"Content-Disposition": "inline; filename=case-stats.csv"},
        )
    return jsonify(answer)


@bp.post("/dispatches/<int:dispatch_id>/steps")
@endpoint(
    "Take a step on a dispatch: depart, arrive or release (the team becomes available)",
    permission="write",
    tags=("cases",),
    body="DispatchStep",
    response="Case",
    statuses=(400, 404, 409),
    success=200,
)
def dispatch_step(dispatch_id: int):
    """A dispatch's step; answers its case."""
    spec.args()
    if dispatch_id > MAX_ID:
        raise NotFound(f"no dispatch {dispatch_id}")
    session = db.get_session()
    now = _ops.now()
    case_id = dispatch.step(session, dispatch_id, json_body(), actor=_ops.actor(), now=now)
    session.commit()
    return jsonify(casereads.get(session, case_id, now=now, personal=_ops.may_see_personal()))
