"""Planning: site suggestions as jobs, jobs, scenarios.

* ``POST /api/plans``: start a suggestion run (a job); ``GET /api/jobs/<id>``: its state,
  progress and, when done, the answer; ``DELETE /api/jobs/<id>``: cancel it (or forget
  a finished one); ``GET /api/jobs/<id>/report``: the answer as CSV, GeoPackage or HTML.
* ``/api/scenarios``: planners' what-if venue sets (list, save, read, delete) and their
  coverage next to the baseline (``/api/scenarios/<id>/coverage``).

Jobs and scenarios belong to the caller: its API key, or ``local`` for open local reads.
"""

from __future__ import annotations

import io
import tempfile
import threading
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from geomap import db, reports
from geomap.api.coverage import render, response_format
from geomap.api.teams import json_body
from geomap.errors import InvalidInput
from geomap.ops import audit
from geomap.planning import jobs, question, runners, scenarios, suggest
from geomap.web import access, spec
from geomap.web.spec import FORMAT, LEVEL, Param, endpoint

bp = Blueprint("plans", __name__, url_prefix="/api")

PLAN_FIELDS = ("of", "kind", "candidates", "candidate_kind", "layer", "area", "mode",
               "minutes", "distance_m", "model", "n", "target_share", "time_limit_s")  # fmt: skip


def owner() -> str:
    """Who owns the jobs and scenarios of this request."""
    who = access.current()
    if who.key_id is not None:
        return f"key:{who.key_id}"
    return "local" if who.role == "open" else who.role


def actor() -> audit.Actor:
    """The caller, as the audit log names it."""
    return audit.Actor.of(access.current())


def plan_from(body: dict) -> question.Plan:
    unknown = sorted(set(body) - set(PLAN_FIELDS))
    if unknown:
        raise InvalidInput(f"unknown field {unknown[0]!r}; fields: {', '.join(PLAN_FIELDS)}",
                           field=unknown[0])  # fmt: skip
    settings = current_app.config["GEOMAP"]
    values = {k: body[k] for k in PLAN_FIELDS if k in body}
    for name in ("kind", "candidate_kind"):
        if isinstance(values.get(name), str):
            values[name] = [v for v in values[name].split(",") if v]
    return question.make_plan(**values, walk_speed_kmh=settings.walk_speed_kmh,
                             access_m=settings.circle_access_m)  # fmt: skip


@bp.post("/plans")
@endpoint(
    "Suggest where the next sites go (maximal coverage, set covering, p-median): a job",
    permission="analysis", tags=("planning",), body="PlanNew", response="Job",
)
def create_plan():
    """Queue a suggestion run; poll ``GET /api/jobs/<id>`` for progress and the answer.

    Only the queued row is written here (a runner thread runs it): at most
    ``GEOMAP_JOBS_PER_KEY`` queued or running per caller, beyond it 429 with Retry-After.
    """
    spec.args()
    plan = plan_from(json_body())
    settings = current_app.config["GEOMAP"]
    session = db.get_session()
    job_id = jobs.create(session, owner(), "plan", plan.as_dict(),
                         input=runners.plan_input(plan), actor=actor(),
                         cap=settings.jobs_per_key)  # fmt: skip
    session.commit()
    if current_app.extensions.get("geomap_jobs_inline"):
        # Sessions bound to one connection (tests): the job runs in the request.
        jobs.execute(session, job_id, lambda s, p: suggest.run(s, plan, p),
                     time_limit_s=settings.job_time_limit_s)  # fmt: skip
        session.commit()
    else:
        started = start_runners(current_app._get_current_object())
        if started is not None:
            started.wake()
    body = jobs.get(session, job_id, owner(), with_result=False)
    response = jsonify(body)
    response.status_code = 201
    response.headers["Location"] = f"{request.script_root}/api/jobs/{job_id}"
    return response


RUNNERS = "geomap_job_runners"
#: Set in a process whose jobs another process runs (gunicorn's workers: the node's job
#: process, geomap.serving); it starts no runners of its own.
JOBS_ELSEWHERE = "geomap_jobs_elsewhere"
_runners_lock = threading.Lock()


def start_runners(app: Any) -> runners.Runners | None:
    """This process's job runners (``GEOMAP_JOB_RUNNERS``), started on first use.

    ``geomap serve`` starts them in the node's job process (``geomap.serving``), never in
    its workers; any other server starts them in its process at its first plan request.

    Parameters
    ----------
    app : Flask
        The app; its runners are kept in ``app.extensions``.

    Returns
    -------
    Runners or None
        None when this process runs no jobs (``GEOMAP_JOB_RUNNERS=0``, inline tests).
    """
    if app.extensions.get("geomap_jobs_inline") or app.extensions.get(JOBS_ELSEWHERE):
        return None
    with _runners_lock:
        if RUNNERS not in app.extensions:
            settings = app.config["GEOMAP"]
            app.extensions[RUNNERS] = runners.start(
                db.database_url(settings), settings.job_runners, settings.job_time_limit_s,
                settings.statement_timeout_ms,
            )  # fmt: skip
        return app.extensions[RUNNERS]


def stop_runners(app: Any) -> None:
    """Stop the app's job runners, if it started any (a server that stops serving it).

    Parameters
    ----------
    app : Flask
        The app whose runners :func:`start_runners` started.
    """
    with _runners_lock:
        started = app.extensions.pop(RUNNERS, None)
    if started is not None:
        started.stop()


@bp.get("/jobs/<job_id>")
@endpoint("A job: status, progress, message; its answer when done", permission="analysis",
          tags=("planning",), response="Job", statuses=(400, 404))  # fmt: skip
def get_job(job_id: str):
    """A job's state (and answer once done)."""
    spec.args()
    return jsonify(jobs.get(db.get_session(), job_id, owner()))


@bp.delete("/jobs/<job_id>")
@endpoint("Cancel a queued job, stop a running one (cancelling, then cancelled); forget a "
          "finished one", permission="analysis",
          tags=("planning",), response="Job", statuses=(400, 404))  # fmt: skip
def delete_job(job_id: str):
    """Cancel a queued job at once or ask a running one to stop (its state now), or
    delete a finished one."""
    spec.args()
    session = db.get_session()
    state = jobs.cancel(session, job_id, owner(), actor())
    session.commit()
    if state is None:
        return jsonify({"id": job_id, "status": "deleted"})
    return jsonify(state)


REPORT_FORMATS = ("csv", "gpkg", "html")


@bp.get("/jobs/<job_id>/report")
@endpoint(
    "A finished suggestion as a file: CSV (UTF-8 with BOM), GeoPackage or HTML report",
    permission="analysis", tags=("planning",), statuses=(400, 404), media_type="text/csv",
    params=(Param("format", "string", "File format.", enum=REPORT_FORMATS, default="csv"),
            Param("lang", "string", "Language of the report.", enum=("zh", "en"),
                  default="zh")),
)  # fmt: skip
def job_report(job_id: str):
    """A finished suggestion as CSV, GeoPackage or HTML."""
    args = spec.args()
    fmt = args.str("format", "csv")
    if fmt not in REPORT_FORMATS:
        raise InvalidInput(f"unknown format {fmt!r}; one of {', '.join(REPORT_FORMATS)}",
                           field="format")  # fmt: skip
    lang = args.str("lang", "zh")
    if lang not in ("zh", "en"):
        raise InvalidInput("lang must be zh or en", field="lang")
    session = db.get_session()
    job = jobs.get(session, job_id, owner())
    if job["status"] != "done":
        raise InvalidInput(f"job {job_id} is {job['status']}, not done", field="id")
    answer = job["result"]
    geometry = reports.grid_geometry(session, [g["code"] for g in answer["grids"]])
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"plan-{job_id}.{fmt}"
        reports.write_plan(path, answer, geometry=geometry, lang=lang)
        body = path.read_bytes()
    types = {"csv": "text/csv; charset=utf-8", "gpkg": "application/geopackage+sqlite3",
             "html": "text/html; charset=utf-8"}  # fmt: skip
    response = Response(io.BytesIO(body).getvalue(), mimetype=types[fmt])
    response.headers["Content-Disposition"] = f'attachment; filename="plan-{job_id}.{fmt}"'
    return response


@bp.get("/scenarios")
@endpoint("Your scenarios", permission="analysis", tags=("planning",), response="Scenarios")
def list_scenarios():
    """The caller's scenarios."""
    spec.args()
    return jsonify({"scenarios": scenarios.list_scenarios(db.get_session(), owner())})


@bp.post("/scenarios")
@endpoint("Save a scenario: venues added to or removed from a venue set (or a suggestion's "
          "sites: from_job)", permission="analysis", tags=("planning",), body="ScenarioNew",
          response="Scenario", statuses=(400, 404))  # fmt: skip
def create_scenario():
    """Save a what-if scenario."""
    spec.args()
    body = json_body()
    session = db.get_session()
    origin = None
    if body.get("from_job") is not None:
        job = jobs.get(session, str(body["from_job"]), owner())
        if job["status"] != "done":
            raise InvalidInput(f"job {job['id']} is {job['status']}, not done", field="from_job")
        fields = scenarios.from_plan(job["result"], body.get("name") or f"plan {job['id']}")
        origin = f"job:{job['id']}"
    else:
        fields = scenarios.check(body)
    created = scenarios.create(session, owner(), fields, origin, actor=actor())
    session.commit()
    return jsonify(created), 201


@bp.get("/scenarios/<int:scenario_id>")
@endpoint("One of your scenarios", permission="analysis", tags=("planning",),
          response="Scenario", statuses=(400, 404))  # fmt: skip
def get_scenario(scenario_id: int):
    spec.args()
    return jsonify(scenarios.get(db.get_session(), scenario_id, owner()))


@bp.delete("/scenarios/<int:scenario_id>")
@endpoint("Delete one of your scenarios", permission="analysis", tags=("planning",),
          response="Scenario", statuses=(400, 404))  # fmt: skip
def delete_scenario(scenario_id: int):
    spec.args()
    session = db.get_session()
    found = scenarios.get(session, scenario_id, owner())
    scenarios.delete(session, scenario_id, owner(), actor=actor())
    session.commit()
    return jsonify(found)


@bp.get("/scenarios/<int:scenario_id>/coverage")
@endpoint(
    "A scenario's coverage per unit next to the baseline (the shape of /api/coverage)",
    permission="analysis", tags=("planning",), response="Coverage", statuses=(400, 404),
    params=(
        Param("mode", "string", "Walk or drive.", enum=("walk", "drive"), default="walk"),
        Param("minutes", "number", "Travel time budget (default 15).", minimum=0,
              maximum=120),
        Param("distance_m", "number", "Or a walking distance.", minimum=0, maximum=10_000),
        LEVEL, FORMAT,
    ),
)  # fmt: skip
def scenario_coverage(scenario_id: int):
    """Coverage of a scenario against the baseline, per grid/community/township/district."""
    args = spec.args()
    fmt = response_format(args)
    settings = current_app.config["GEOMAP"]
    session = db.get_session()
    scenario = scenarios.get(session, scenario_id, owner())
    answer = scenarios.evaluate(
        session, scenario, level=args.str("level", "grid"), mode=args.str("mode", "walk"),
        minutes=args.raw("minutes"), distance_m=args.raw("distance_m"),
        walk_speed_kmh=settings.walk_speed_kmh, access_m=settings.circle_access_m,
        with_geometry=fmt == "geojson",
    )  # fmt: skip
    session.commit()  # reach sets computed on the way are worth keeping
    if len(answer["units"]) > settings.max_features:
        raise InvalidInput("too many units; choose a coarser level", field="level")
    return render(answer, fmt)

