"""Jobs: long runs (site suggestions) in a worker thread, their state in ``plan_jobs``.

A job is created by a request (``queued``), then run by a thread of the same process
with a database session of its own (``running``, with progress and a heartbeat), and
ends ``done`` (with its result), ``failed`` (with an error naming the problem) or
``cancelled``. Everything about it lives in the table, so every worker process of a
server answers ``GET /api/jobs/<id>`` for any job, and a cancel received by any of them
(``cancel_requested``) is seen by the thread running the job at its next progress step.

A job whose heartbeat is older than :data:`STALE_S` while it claims to run has lost its
process (a restart); it is reported as failed.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from geomap.errors import GeomapError, NotFound
from geomap.planning.suggest import Progress
from geomap.routing.index import Cancelled

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

STALE_S = 300.0
#: Progress is written at most this often (seconds); a cancel is seen as quickly.
REPORT_EVERY_S = 0.3

COLUMNS = ("id, owner, kind, status, progress, message, params, result, error, "
           "cancel_requested, worker, created_at, started_at, heartbeat_at, finished_at, "
           "extract(epoch FROM now() - heartbeat_at) AS silent_s")  # fmt: skip
INSERT_SQL = sa.text(
    "INSERT INTO plan_jobs (id, owner, kind, status, params, heartbeat_at) "
    "VALUES (:id, :owner, :kind, 'queued', CAST(:params AS jsonb), now())"
)
GET_SQL = sa.text(f"SELECT {COLUMNS} FROM plan_jobs WHERE id = :id")
LIST_SQL = sa.text(
    f"SELECT {COLUMNS} FROM plan_jobs WHERE owner = :owner ORDER BY created_at DESC LIMIT :limit"
)
START_SQL = sa.text(
    "UPDATE plan_jobs SET status = 'running', started_at = now(), heartbeat_at = now(), "
    "worker = :worker WHERE id = :id AND status = 'queued' RETURNING cancel_requested"
)
PROGRESS_SQL = sa.text(
    "UPDATE plan_jobs SET progress = :progress, message = :message, heartbeat_at = now() "
    "WHERE id = :id RETURNING cancel_requested"
)
FINISH_SQL = sa.text(
    "UPDATE plan_jobs SET status = :status, progress = CASE WHEN :status = 'done' THEN 1 "
    "ELSE progress END, message = :message, result = CAST(:result AS jsonb), "
    "error = CAST(:error AS jsonb), finished_at = now(), heartbeat_at = now() WHERE id = :id"
)
CANCEL_SQL = sa.text(
    "UPDATE plan_jobs SET cancel_requested = true, "
    "status = CASE WHEN status = 'queued' THEN 'cancelled' ELSE status END, "
    "finished_at = CASE WHEN status = 'queued' THEN now() ELSE finished_at END "
    "WHERE id = :id AND status IN ('queued', 'running')"
)
DELETE_SQL = sa.text("DELETE FROM plan_jobs WHERE id = :id")


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def _view(row: Any, *, with_result: bool = True) -> dict:
    job = dict(row._mapping)
    silent = job.pop("silent_s")
    if job["status"] in ("queued", "running") and silent is not None and silent > STALE_S:
        job["status"] = "failed"
        job["error"] = {"code": "worker_lost", "message": "the process running this job "
                        "stopped (a restart?); run it again", "field": None}  # fmt: skip
    for key in ("created_at", "started_at", "heartbeat_at", "finished_at"):
        if job[key] is not None:
            job[key] = job[key].isoformat()
    if not with_result:
        job.pop("result", None)
    return job


def create(session: Session, owner: str, kind: str, params: dict) -> str:
    """A new queued job; returns its id (random, unguessable).

    Parameters
    ----------
    session : Session
        The database; the caller commits.
    owner : str
        Who may see the job (``key:<id>``, ``local`` or a role).
    kind : str
        What the job runs (``plan``: a site suggestion).
    params : dict
        Its inputs, stored as JSON.

    Returns
    -------
    str
        The job's id.
    """
    job_id = secrets.token_urlsafe(12)
    session.execute(INSERT_SQL, {"id": job_id, "owner": owner, "kind": kind,
                                 "params": json.dumps(params, ensure_ascii=False)})  # fmt: skip
    return job_id


def get(session: Session, job_id: str, owner: str | None, *, with_result: bool = True) -> dict:
    """A job as its owner sees it (NotFound for anyone else's: no existence leak).

    A job that claims to run but whose heartbeat is older than :data:`STALE_S` is
    answered as failed (``worker_lost``).

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


def cancel(session: Session, job_id: str, owner: str | None) -> dict | None:
    """Ask a queued or running job to stop, or delete a finished one.

    Parameters
    ----------
    session : Session
        The database; the caller commits.
    job_id : str
        The job's id.
    owner : str or None
        Who asks; None for anyone.

    Returns
    -------
    dict or None
        The job's state now, when it was asked to stop; None when it was deleted.

    Raises
    ------
    NotFound
        No such job, or another owner's.
    """
    job = get(session, job_id, owner, with_result=False)
    if job["status"] in ("queued", "running"):
        session.execute(CANCEL_SQL, {"id": job_id})
        return get(session, job_id, owner, with_result=False)
    session.execute(DELETE_SQL, {"id": job_id})
    return None


Work = Callable[[Session, Progress], dict]


def execute(session: Session, job_id: str, work: Work, reporter: Session | None = None) -> None:
    """Run ``work`` for a job in ``session``; progress and the outcome go to ``reporter``.

    Parameters
    ----------
    session : Session
        The session the work runs in.
    job_id : str
        The job's id; only a queued job is run.
    work : Work
        ``work(session, progress) -> result``.
    reporter : Session, optional
        A session of its own that commits each write of progress and outcome; ``session``
        itself when the job runs inline.
    """
    reporter = reporter or session
    own = reporter is not session
    last = [0.0, False]

    def write(statement: sa.TextClause, params: dict) -> Any:
        result = reporter.execute(statement, params)
        value = result.scalar() if result.returns_rows else None
        if own:
            reporter.commit()
        return value

    started = write(START_SQL, {"id": job_id, "worker": _worker_name()})
    if started is None or started:  # cancelled while queued, or gone
        return

    def report(share: float, message: str) -> None:
        now = time.monotonic()
        if now - last[0] >= REPORT_EVERY_S or share >= 1.0:
            last[0] = now
            last[1] = bool(write(PROGRESS_SQL, {"id": job_id, "progress": share,
                                                "message": message}))  # fmt: skip

    try:
        result = work(session, Progress(report, lambda: last[1]))
        session.commit() if own else None
        outcome = ("done", "done", json.dumps(result, ensure_ascii=False), None)
    except Cancelled:
        session.rollback() if own else None
        outcome = ("cancelled", "cancelled", None, None)
    except GeomapError as exc:
        session.rollback() if own else None
        outcome = ("failed", exc.message, None, json.dumps(exc.to_dict(), ensure_ascii=False))
    except Exception as exc:  # a defect: logged with its trace, reported without it
        log.exception("job %s failed", job_id)
        session.rollback() if own else None
        error = {"code": "internal_error", "message": f"the run failed ({type(exc).__name__})",
                 "field": None}  # fmt: skip
        outcome = ("failed", error["message"], None, json.dumps(error))
    status, message, result_json, error_json = outcome
    write(FINISH_SQL, {"id": job_id, "status": status, "message": message,
                       "result": result_json, "error": error_json})  # fmt: skip


def start(bind: Engine, job_id: str, work: Work) -> threading.Thread:
    """Run a job in a daemon thread with two sessions of its own on ``bind``.

    One session for the work, one for progress.

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
            except Exception:  # the database went away: nothing more to record
                log.exception("job %s could not be recorded", job_id)

    thread = threading.Thread(target=main, name=f"geomap-job-{job_id}", daemon=True)
    thread.start()
    return thread
