"""Jobs: long runs (site suggestions) as a queue held in PostgreSQL (``plan_jobs``).

A request only inserts a ``queued`` row (:func:`create`, at most ``cap`` queued or running
per owner, counted under an advisory lock per owner so concurrent requests cannot both
pass). Runner threads (:mod:`geomap.planning.runners`) claim the oldest queued job with
``FOR UPDATE SKIP LOCKED`` (:func:`claim`), run it with connections of their own and end
it ``done`` (with its result), ``failed`` (with an error naming the problem) or
``cancelled``. Everything about a job lives in the table, so every process answers
``GET /api/jobs/<id>`` for any job, and a cancel received by any of them
(``cancel_requested``) is seen by the runner at its next progress step; until then the
job reads ``cancelling``.

Bounds, so that no job stays ``queued`` or ``running`` for ever:

* a runner holds its job under a lease of :data:`LEASE_S`, renewed at every progress
  report and by its process's keeper; a lease that ran out means the runner died, and
  :func:`sweep` (every :data:`SWEEP_EVERY_S` in every process with runners) queues the
  job again, or fails it (``worker_lost``) once it was run :data:`MAX_ATTEMPTS` times:
  within ``LEASE_S + SWEEP_EVERY_S`` (35 s) of the runner's death;
* a job running longer than its time limit (``GEOMAP_JOB_TIME_LIMIT_S``) fails
  (``time_limit``): the runner stops it at its next step, or the sweep fails it
  :data:`GRACE_S` later if the runner is stuck;
* a job queued longer than :data:`QUEUE_WAIT_S` fails (``queue_timeout``).

Every write of a job's life leaves an audit row (``plan_job.create``, ``.cancel``,
``.finish``, ``.requeue``) named by the job's creator, or by the runner for sweeps.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from geomap.errors import GeomapError, NotFound, RateLimited
from geomap.ops import audit, utc_now
from geomap.planning.suggest import Progress
from geomap.routing.index import Cancelled

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

#: A runner's hold on its job, seconds; renewed at each progress report and every third.
LEASE_S = 30.0
#: How often each process with runners looks for lost leases and overdue jobs, seconds.
SWEEP_EVERY_S = 5.0
#: Runs of one job at most: a job whose runner died is run once more, then failed.
MAX_ATTEMPTS = 2
#: A running job this long past its time limit is failed by the sweep (a stuck runner).
GRACE_S = 30.0
#: A job queued this long fails: the runners are overwhelmed (seconds).
QUEUE_WAIT_S = 3600.0
#: Retry-After of a refused job (the per-owner cap): about one small job's run.
RETRY_AFTER_S = 10.0
#: Progress is written at most this often (seconds); a cancel is seen as quickly.
REPORT_EVERY_S = 0.3
#: Who the audit names for what the queue does by itself (lost leases, overdue jobs).
RUNNER = audit.Actor("plan job runner (system)", "system")

COLUMNS = ("id, owner, kind, status, progress, message, params, result, error, "
           "cancel_requested, worker, attempts, created_at, started_at, heartbeat_at, "
           "finished_at, lease_until, extract(epoch FROM now() - lease_until) AS lapsed_s, "
           "extract(epoch FROM now() - created_at) AS waited_s")  # fmt: skip
# created_at is the clock once the owner's lock is held (not the transaction's start):
# jobs are queued, and counted against the cap, in the order they got the lock.
LOCK_SQL = sa.text("SELECT pg_advisory_xact_lock(hashtext('geomap.plan_jobs'), hashtext(:owner))")
ACTIVE_SQL = sa.text(
    "SELECT count(*) FROM plan_jobs WHERE owner = :owner AND status IN ('queued', 'running')"
)
INSERT_SQL = sa.text(
    "INSERT INTO plan_jobs (id, owner, kind, status, params, input, actor, created_at, "
    "heartbeat_at) VALUES (:id, :owner, :kind, 'queued', CAST(:params AS jsonb), "
    "CAST(:input AS jsonb), CAST(:actor AS jsonb), clock_timestamp(), now())"
)
GET_SQL = sa.text(f"SELECT {COLUMNS} FROM plan_jobs WHERE id = :id")
LIST_SQL = sa.text(
    f"SELECT {COLUMNS} FROM plan_jobs WHERE owner = :owner ORDER BY created_at DESC LIMIT :limit"
)
_RUNNING = ("status = 'running', started_at = now(), heartbeat_at = now(), "
            "worker = :worker, attempts = attempts + 1, "
            "lease_until = now() + make_interval(secs => :lease)")  # fmt: skip
START_SQL = sa.text(
    f"UPDATE plan_jobs SET {_RUNNING} WHERE id = :id AND status = 'queued' "
    "RETURNING cancel_requested"
)
CLAIM_SQL = sa.text(
    f"""
    UPDATE plan_jobs SET {_RUNNING}
    WHERE id = (SELECT id FROM plan_jobs WHERE status = 'queued' AND kind = ANY(:kinds)
                ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED)
    RETURNING id, kind, input, cancel_requested
    """
)
PROGRESS_SQL = sa.text(
    "UPDATE plan_jobs SET progress = :progress, message = :message, heartbeat_at = now(), "
    "lease_until = now() + make_interval(secs => :lease) "
    "WHERE id = :id AND worker = :worker AND status = 'running' RETURNING cancel_requested"
)
RENEW_SQL = sa.text(
    "UPDATE plan_jobs SET lease_until = now() + make_interval(secs => :lease) "
    "WHERE id = ANY(:ids) AND worker = ANY(:workers) AND status = 'running'"
)
FINISH_SQL = sa.text(
    "UPDATE plan_jobs SET status = :status, progress = CASE WHEN :status = 'done' THEN 1 "
    "ELSE progress END, message = :message, result = CAST(:result AS jsonb), "
    "error = CAST(:error AS jsonb), finished_at = now(), heartbeat_at = now(), "
    "lease_until = NULL WHERE id = :id AND worker = :worker AND status = 'running' "
    "RETURNING actor, owner"
)
CANCEL_SQL = sa.text(
    "UPDATE plan_jobs SET cancel_requested = true, "
    "status = CASE WHEN status = 'queued' THEN 'cancelled' ELSE status END, "
    "message = CASE WHEN status = 'queued' THEN 'cancelled' ELSE 'cancelling' END, "
    "finished_at = CASE WHEN status = 'queued' THEN now() ELSE finished_at END "
    "WHERE id = :id AND status IN ('queued', 'running') RETURNING status"
)
DELETE_SQL = sa.text("DELETE FROM plan_jobs WHERE id = :id")
REQUEUE_SQL = sa.text(
    "UPDATE plan_jobs SET status = 'queued', worker = NULL, lease_until = NULL, "
    "message = 'queued again: its runner stopped' "
    "WHERE status = 'running' AND lease_until < now() AND attempts < :attempts "
    "AND NOT cancel_requested RETURNING id, owner, attempts"
)
_FAIL = ("SET status = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'failed' END, "
         "message = :message, error = CASE WHEN cancel_requested THEN NULL "
         "ELSE CAST(:error AS jsonb) END, finished_at = now(), lease_until = NULL")  # fmt: skip
LOST_SQL = sa.text(
    f"UPDATE plan_jobs {_FAIL} WHERE status = 'running' AND lease_until < now() "
    "RETURNING id, owner, status"
)
OVERDUE_SQL = sa.text(
    f"UPDATE plan_jobs {_FAIL} WHERE status = 'running' "
    "AND started_at < now() - make_interval(secs => :limit) RETURNING id, owner, status"
)
STALE_QUEUED_SQL = sa.text(
    f"UPDATE plan_jobs {_FAIL} WHERE status = 'queued' "
    "AND created_at < now() - make_interval(secs => :wait) RETURNING id, owner, status"
)


def _problem(code: str, message: str) -> dict:
    return {"code": code, "message": message, "field": None}


WORKER_LOST = _problem("worker_lost", "the process running this job stopped (a restart?); "
                       "run it again")  # fmt: skip
QUEUE_TIMEOUT = _problem("queue_timeout", f"the job waited over {QUEUE_WAIT_S:.0f} s for a "
                         "runner (the service is overloaded); run it again later")  # fmt: skip


def time_limit_problem(limit_s: float) -> dict:
    """The error of a job that ran past its time limit.

    Parameters
    ----------
    limit_s : float
        The limit, seconds.

    Returns
    -------
    dict
        ``code`` ``time_limit``, a message naming the limit and its setting.
    """
    return _problem("time_limit", f"the job ran longer than its time limit of {limit_s:g} s "
                    "(GEOMAP_JOB_TIME_LIMIT_S); ask a smaller question")  # fmt: skip


def _view(row: Any, *, with_result: bool = True) -> dict:
    job = dict(row._mapping)
    lapsed, waited = job.pop("lapsed_s"), job.pop("waited_s")
    # With no runner left anywhere to sweep, a lost job still reads as what it is.
    if job["status"] == "running" and lapsed is not None and lapsed > LEASE_S + SWEEP_EVERY_S:
        job.update(status="failed", message=WORKER_LOST["message"], error=WORKER_LOST)
    elif job["status"] == "queued" and waited > QUEUE_WAIT_S + SWEEP_EVERY_S:
        job.update(status="failed", message=QUEUE_TIMEOUT["message"], error=QUEUE_TIMEOUT)
    elif job["status"] == "running" and job["cancel_requested"]:
        job["status"] = "cancelling"  # the runner stops at its next progress step
    for key in ("created_at", "started_at", "heartbeat_at", "finished_at", "lease_until"):
        if job[key] is not None:
            job[key] = job[key].isoformat()
    if not with_result:
        job.pop("result", None)
    return job


def _actor_json(actor: audit.Actor | None) -> str | None:
    if actor is None:
        return None
    return json.dumps({"name": actor.name, "role": actor.role, "key_id": actor.key_id},
                      ensure_ascii=False)  # fmt: skip


def _actor_of(stored: dict | None) -> audit.Actor:
    if not stored:
        return RUNNER
    return audit.Actor(stored["name"], stored["role"], stored.get("key_id"))


def create(session: Session, owner: str, kind: str, params: dict, *,
           input: dict | None = None, actor: audit.Actor,
           cap: int | None = None) -> str:  # fmt: skip
    """A new queued job; returns its id (random, unguessable).

    Parameters
    ----------
    session : Session
        The database; the caller commits (the advisory lock is held until then).
    owner : str
        Who may see the job (``key:<id>``, ``local`` or a role).
    kind : str
        What the job runs (``plan``: a site suggestion).
    params : dict
        Its inputs as answers echo them, stored as JSON.
    input : dict, optional
        Everything a runner needs to run it (``params`` when not given).
    actor : Actor
        Who creates it: named in its audit rows.
    cap : int, optional
        Most jobs the owner may have queued or running; None or 0 for no cap.

    Returns
    -------
    str
        The job's id.

    Raises
    ------
    RateLimited
        The owner already has ``cap`` jobs queued or running (429, with Retry-After).
    """
    if cap:
        session.execute(LOCK_SQL, {"owner": owner})  # concurrent creates count one by one
        active = session.execute(ACTIVE_SQL, {"owner": owner}).scalar_one()
        if active >= cap:
            raise RateLimited(
                f"you have {active} plan jobs queued or running; at most {cap} at once "
                "(GEOMAP_JOBS_PER_KEY): wait for one to finish, or cancel one",
                retry_after_s=RETRY_AFTER_S,
            )
    job_id = secrets.token_urlsafe(12)
    session.execute(INSERT_SQL, {
        "id": job_id, "owner": owner, "kind": kind,
        "params": json.dumps(params, ensure_ascii=False),
        "input": json.dumps(params if input is None else input, ensure_ascii=False),
        "actor": _actor_json(actor),
    })  # fmt: skip
    changes = {"job": job_id, "kind": kind, "owner": owner, "params": params}
    audit.record(session, actor, "plan_job.create", at=utc_now(), changes=changes)
    return job_id


def get(session: Session, job_id: str, owner: str | None, *, with_result: bool = True) -> dict:
    """A job as its owner sees it (NotFound for anyone else's: no existence leak).

    A running job asked to stop reads ``cancelling``; one whose lease ran out with no
    runner left to sweep it reads ``failed`` (``worker_lost``), as does one queued past
    :data:`QUEUE_WAIT_S` (``queue_timeout``).

    Parameters
    ----------
    session : Session
        The database.
    job_id : str
        The job's id.
    owner : str or None
        Who asks; None for anyone (the service itself).
    with_result : bool, default True
        Whether the answer carries the result.

    Returns
    -------
    dict
        The job's columns, times as ISO text.

    Raises
    ------
    NotFound
        No such job, or another owner's.
    """
    row = session.execute(GET_SQL, {"id": job_id}).first()
    if row is None or (owner is not None and row.owner != owner):
        raise NotFound(f"no job {job_id!r}", field="id")
    return _view(row, with_result=with_result)


def list_jobs(session: Session, owner: str, limit: int = 50) -> list[dict]:
    """The owner's jobs, newest first, without their results.

    Parameters
    ----------
    session : Session
        The database.
    owner : str
        Whose jobs.
    limit : int, default 50
        The most jobs listed.

    Returns
    -------
    list of dict
        As :func:`get` with ``with_result=False``.
    """
    return [_view(r, with_result=False)
            for r in session.execute(LIST_SQL, {"owner": owner, "limit": limit})]  # fmt: skip


def cancel(session: Session, job_id: str, owner: str | None,
           actor: audit.Actor) -> dict | None:  # fmt: skip
    """Cancel a queued job at once, ask a running one to stop, or delete a finished one.

    Parameters
    ----------
    session : Session
        The database; the caller commits.
    job_id : str
        The job's id.
    owner : str or None
        Who asks; None for anyone.
    actor : Actor
        Who asks, named in the audit row.

    Returns
    -------
    dict or None
        The job's state now (``cancelled``, or ``cancelling`` until its runner stops);
        None when it was deleted.

    Raises
    ------
    NotFound
        No such job, or another owner's.
    """
    job = get(session, job_id, owner, with_result=False)
    status = session.execute(CANCEL_SQL, {"id": job_id}).scalar()
    if status is None and job["status"] in ("queued", "running", "cancelling"):
        return get(session, job_id, owner, with_result=False)  # it ended meanwhile: kept
    if status is None:  # finished: forgotten
        session.execute(DELETE_SQL, {"id": job_id})
        verb, after = "delete", "deleted"
    else:
        verb, after = "cancel", "cancelled" if status == "cancelled" else "cancelling"
    audit.record(session, actor, f"plan_job.{verb}", at=utc_now(),
                 changes={"job": job_id, "status": [job["status"], after]})  # fmt: skip
    return None if status is None else get(session, job_id, owner, with_result=False)


Work = Callable[[Session, Progress], dict]


class LeaseLost(Exception):
    """The job was taken from this runner (its lease ran out): it stops, writing nothing."""


def claim(session: Session, kinds: list[str], worker: str) -> Any:
    """Take the oldest queued job of one of ``kinds`` (committed), or None.

    Parameters
    ----------
    session : Session
        The runner's reporting session; committed here.
    kinds : list of str
        The kinds this runner knows how to run.
    worker : str
        This claim's token (unique per claim: progress and the outcome are fenced by it).

    Returns
    -------
    Row or None
        ``id``, ``kind``, ``input``, ``cancel_requested`` of the job now running.
    """
    row = session.execute(CLAIM_SQL, {"kinds": list(kinds), "worker": worker,
                                      "lease": LEASE_S}).first()  # fmt: skip
    session.commit()
    return row


def execute(session: Session, job_id: str, work: Work, reporter: Session | None = None, *,
            worker: str | None = None, time_limit_s: float | None = None) -> None:  # fmt: skip
    """Run ``work`` for a job in ``session``; progress and the outcome go to ``reporter``.

    Parameters
    ----------
    session : Session
        The session the work runs in.
    job_id : str
        The job's id; a queued job is started here, unless ``worker`` says it was claimed.
    work : Work
        ``work(session, progress) -> result``.
    reporter : Session, optional
        A session of its own that commits each write of progress and outcome; ``session``
        itself when the job runs inline.
    worker : str, optional
        The claim's token, for a job :func:`claim` already started.
    time_limit_s : float, optional
        The job fails (``time_limit``) when it runs longer.
    """
    reporter = reporter or session
    own = reporter is not session
    deadline = None if not time_limit_s else time.monotonic() + time_limit_s
    state = {"last": 0.0, "cancel": False, "late": False}

    def write(statement: sa.TextClause, params: dict) -> Any:
        result = reporter.execute(statement, params)
        value = result.first() if result.returns_rows else None
        if own:
            reporter.commit()
        return value

    if worker is None:
        worker = f"{secrets.token_hex(4)}@inline"
        started = write(START_SQL, {"id": job_id, "worker": worker, "lease": LEASE_S})
        if started is None or started[0]:  # cancelled while queued, or gone
            return

    def stop() -> bool:
        if deadline is not None and time.monotonic() > deadline:
            state["late"] = True
        return state["cancel"] or state["late"]

    def report(share: float, message: str) -> None:
        now = time.monotonic()
        if now - state["last"] >= REPORT_EVERY_S or share >= 1.0:
            state["last"] = now
            row = write(PROGRESS_SQL, {"id": job_id, "progress": share, "message": message,
                                       "worker": worker, "lease": LEASE_S})  # fmt: skip
            if row is None:
                raise LeaseLost(job_id)
            state["cancel"] = bool(row[0])

    try:
        result = work(session, Progress(report, stop))
        session.commit() if own else None
        outcome = ("done", "done", json.dumps(result, ensure_ascii=False), None)
    except LeaseLost:
        session.rollback() if own else None
        log.warning("job %s was taken from this runner (lease ran out); stopped", job_id)
        return
    except Cancelled:
        session.rollback() if own else None
        if state["late"] and not state["cancel"]:
            error = time_limit_problem(time_limit_s or 0)
            outcome = ("failed", error["message"], None, json.dumps(error))
        else:
            outcome = ("cancelled", "cancelled", None, None)
    except GeomapError as exc:
        session.rollback() if own else None
        outcome = ("failed", exc.message, None, json.dumps(exc.to_dict(), ensure_ascii=False))
    except Exception as exc:  # a defect: logged with its trace, reported without it
        log.exception("job %s failed", job_id)
        session.rollback() if own else None
        error = _problem("internal_error", f"the run failed ({type(exc).__name__})")
        outcome = ("failed", error["message"], None, json.dumps(error))
    status, message, result_json, error_json = outcome
    result = reporter.execute(FINISH_SQL, {"id": job_id, "status": status, "message": message,
                                           "result": result_json, "error": error_json,
                                           "worker": worker})  # fmt: skip
    row = result.first()
    if row is not None and row.actor is not None:
        error = json.loads(error_json) if error_json else None
        audit.record(reporter, _actor_of(row.actor), "plan_job.finish", at=utc_now(),
                     changes={"job": job_id, "status": ["running", status],
                              "error": error and error["code"]})  # fmt: skip
    if own:
        reporter.commit()


def renew(session: Session, held: dict[str, str]) -> None:
    """Renew the leases of the jobs this process runs (committed).

    Parameters
    ----------
    session : Session
        The keeper's session.
    held : dict
        Job id → the claim's token.
    """
    if held:
        session.execute(RENEW_SQL, {"ids": list(held), "workers": list(held.values()),
                                    "lease": LEASE_S})  # fmt: skip
    session.commit()


def sweep(session: Session, time_limit_s: float) -> dict[str, int]:
    """Queue again or fail every job whose runner died, and fail overdue ones (committed).

    Any process may sweep at any time: each job changes once (row locks, and every
    statement re-checks its condition), and each change leaves an audit row.

    Parameters
    ----------
    session : Session
        The keeper's session.
    time_limit_s : float
        A job's time limit; a running job :data:`GRACE_S` past it is failed.

    Returns
    -------
    dict
        How many jobs were ``requeued``, ``lost``, ``overdue`` and ``stale`` (queued too
        long).
    """
    now = utc_now()
    counts: dict[str, int] = {}
    steps = (
        ("requeued", REQUEUE_SQL, {"attempts": MAX_ATTEMPTS}, None),
        ("lost", LOST_SQL, {"message": WORKER_LOST["message"]}, WORKER_LOST),
        ("overdue", OVERDUE_SQL, {"limit": time_limit_s + GRACE_S},
         time_limit_problem(time_limit_s)),
        ("stale", STALE_QUEUED_SQL, {"wait": QUEUE_WAIT_S}, QUEUE_TIMEOUT),
    )  # fmt: skip
    for name, statement, params, error in steps:
        if error is not None:
            params = {**params, "message": error["message"], "error": json.dumps(error)}
        rows = session.execute(statement, params).all()
        for row in rows:
            if name == "requeued":
                changes = {"job": row.id, "status": ["running", "queued"], "runs": row.attempts}
            else:
                before = "queued" if name == "stale" else "running"
                changes = {"job": row.id, "status": [before, row.status], "error": error["code"]}
            verb = "requeue" if name == "requeued" else "finish"
            audit.record(session, RUNNER, f"plan_job.{verb}", at=now, changes=changes)
        counts[name] = len(rows)
    session.commit()
    return counts


def start(bind: Engine, job_id: str, work: Work) -> threading.Thread:
    """Run one given job now in a daemon thread with two sessions of its own on ``bind``.

    One session for the work, one for progress; outside the runners' queue (a kind no
    runner knows, or a test).

    Parameters
    ----------
    bind : Engine
        The database engine.
    job_id : str
        The job's id.
    work : Work
        ``work(session, progress) -> result``.

    Returns
    -------
    threading.Thread
        The started thread.
    """

    def main() -> None:
        with Session(bind) as session, Session(bind) as reporter:
            try:
                execute(session, job_id, work, reporter)
            except Exception:  # the database went away: the sweep settles the job
                log.exception("job %s could not be recorded", job_id)

    thread = threading.Thread(target=main, name=f"geomap-job-{job_id}", daemon=True)
    thread.start()
    return thread
