"""Runners: a fixed number of threads per process that run jobs from the queue.

:class:`Runners` starts ``count`` runner threads and one keeper thread, all on an engine
of their own (``2 × count + 1`` connections, named ``geomap-jobs`` in
``pg_stat_activity``), so jobs never take the connections requests are served with, and
however many jobs are queued, this process runs ``count`` at once. Each runner claims the
oldest queued job of a kind it knows (:func:`geomap.planning.jobs.claim`, ``SKIP
LOCKED``: runners of every process share one queue), runs it, and claims the next; with
nothing queued it waits :attr:`Runners.poll_s`, or less when :meth:`Runners.wake` says a
job was queued here. The keeper renews the leases of the jobs this process runs and
sweeps the queue (:func:`geomap.planning.jobs.sweep`): jobs of runners that died anywhere
are queued again or failed, overdue ones failed.

Runner threads lower their CPU priority (``nice`` 10): on a machine where every core is
busy, the kernel serves request threads first. Within the process, a runner computing
holds the GIL until Python's switch interval asks it to let go (5 ms by default): a
cheap request then waited up to 5 ms at each of its turns (p99 of GET /api/layers 1.9 →
7.1 ms with two jobs running, bench/jobs.py). A process with runners switches every
:data:`SWITCH_INTERVAL_S` instead, so requests get the interpreter back within a
millisecond; the runner loses a few per cent to the extra switches.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import secrets
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from geomap.planning import jobs, question, suggest

log = logging.getLogger(__name__)

#: The interpreter's switch interval in a process with runners (seconds).
SWITCH_INTERVAL_S = 0.001

#: How a kind of job runs: ``run(session, input, progress) -> result``.
KindWork = Callable[[Session, dict, suggest.Progress], dict]


def run_plan(session: Session, job_input: dict, progress: suggest.Progress) -> dict:
    """Run a ``plan`` job: a site suggestion from its stored question.

    Parameters
    ----------
    session : Session
        The runner's work session.
    job_input : dict
        The :class:`geomap.planning.suggest.Plan`'s fields (:func:`plan_input`).
    progress : Progress
        Reports the run and stops it when asked.

    Returns
    -------
    dict
        :func:`geomap.planning.suggest.run`'s answer.
    """
    return suggest.run(session, question.Plan(**job_input), progress)


def plan_input(plan: question.Plan) -> dict:
    """A plan as a runner rebuilds it (every field, an uploaded layer's points included).

    Parameters
    ----------
    plan : Plan
        The checked question.

    Returns
    -------
    dict
        The dataclass's fields.
    """
    return dataclasses.asdict(plan)


#: The kinds of job the runners know.
KINDS: Mapping[str, KindWork] = {"plan": run_plan}


def _bind_input(kind_work: KindWork, job_input: dict, session: Session,
                progress: suggest.Progress) -> dict:  # fmt: skip
    return kind_work(session, job_input, progress)


def _lower_priority() -> None:
    # Linux: a thread has its own nice value; elsewhere, or not allowed: normal priority.
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


class Runners:
    """A process's runner threads and their keeper.

    Parameters
    ----------
    url : str
        The database URL (the request engine's).
    count : int
        Runner threads (jobs run at once by this process).
    time_limit_s : float
        A job's time limit.
    statement_timeout_ms : int
        Upper bound of any one statement on the runners' connections.
    kinds : mapping, optional
        Kind → how it runs (:data:`KINDS`).
    poll_s : float, default 1.0
        How long an idle runner waits before looking at the queue again.
    sweep_every_s : float, default :data:`geomap.planning.jobs.SWEEP_EVERY_S`
        How often the keeper sweeps the queue.
    """

    def __init__(self, url: str, count: int, time_limit_s: float, statement_timeout_ms: int,
                 kinds: Mapping[str, KindWork] = KINDS, poll_s: float = 1.0,
                 sweep_every_s: float = jobs.SWEEP_EVERY_S) -> None:  # fmt: skip
        self.url = url
        self.count = max(1, int(count))
        self.time_limit_s = float(time_limit_s)
        self.statement_timeout_ms = int(statement_timeout_ms)
        self.kinds = dict(kinds)
        self.poll_s = poll_s
        self.sweep_every_s = sweep_every_s
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.held: dict[str, str] = {}  # job id → claim token, renewed by the keeper
        self._held_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self.engine: sa.engine.Engine | None = None

    def _create_engine(self) -> sa.engine.Engine:
        return sa.create_engine(
            self.url,
            pool_size=2 * self.count + 1,  # a work and a reporting session each, the keeper
            max_overflow=0,
            pool_timeout=30,
            pool_pre_ping=True,  # a checkout per job, not per request: the ping is cheap
            connect_args={
                "options": f"-c statement_timeout={self.statement_timeout_ms} -c jit=off",
                "connect_timeout": 5,
                "application_name": "geomap-jobs",
            },
        )

    def start(self) -> Runners:
        """Start the runner threads and the keeper.

        Returns
        -------
        Runners
            Itself.
        """
        self.engine = self._create_engine()
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
        targets = [(f"geomap-job-runner-{i}", self._run, (i,)) for i in range(self.count)]
        targets.append(("geomap-job-keeper", self._keep, ()))
        for name, target, args in targets:
            thread = threading.Thread(target=target, args=args, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def wake(self) -> None:
        """Tell idle runners a job was queued (they look at once)."""
        self._wake.set()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the threads (a running job stops at its next progress step) and close.

        Parameters
        ----------
        timeout_s : float, default 10.0
            How long to wait for each thread.
        """
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout=timeout_s)
        if self.engine is not None:
            self.engine.dispose()

    @property
    def alive(self) -> bool:
        """Whether every thread still runs."""
        return bool(self._threads) and all(t.is_alive() for t in self._threads)

    def _failed(self, what: str, failures: int) -> None:
        # The trace once; while the database stays away, one line now and then.
        if failures == 1:
            log.exception("%s: database error; retrying", what)
        elif failures % 12 == 0:
            log.warning("%s: the database is still away (%d attempts)", what, failures)

    def _run(self, number: int) -> None:
        _lower_priority()
        failures = 0
        while not self._stop.is_set():
            try:
                with Session(self.engine) as session, Session(self.engine) as reporter:
                    self._serve(number, session, reporter)
            except Exception:  # the database went away: try again shortly
                failures += 1
                self._failed(f"job runner {number}", failures)
                self._stop.wait(self.poll_s * 5)

    def _serve(self, number: int, session: Session, reporter: Session) -> None:
        while not self._stop.is_set():
            worker = f"{self.name}:{number}/{secrets.token_hex(4)}"
            row = jobs.claim(reporter, list(self.kinds), worker)
            if row is None:
                if self._wake.wait(self.poll_s):
                    self._wake.clear()
                continue
            work = functools.partial(_bind_input, self.kinds[row.kind], row.input or {})
            with self._held_lock:
                self.held[row.id] = worker
            try:
                jobs.execute(session, row.id, work, reporter, worker=worker,
                             time_limit_s=self.time_limit_s)  # fmt: skip
            finally:
                with self._held_lock:
                    self.held.pop(row.id, None)

    def _keep(self) -> None:
        tick = min(self.sweep_every_s, jobs.LEASE_S / 3)
        last_sweep = 0.0
        failures = 0
        while not self._stop.is_set():
            try:
                with Session(self.engine) as session:
                    while not self._stop.is_set():
                        with self._held_lock:
                            held = dict(self.held)
                        jobs.renew(session, held)
                        if time.monotonic() - last_sweep >= self.sweep_every_s:
                            last_sweep = time.monotonic()
                            done = jobs.sweep(session, self.time_limit_s)
                            if any(done.values()):
                                log.warning("job queue swept: %s", done)
                        failures = 0
                        self._stop.wait(tick)
            except Exception:
                failures += 1
                self._failed("job keeper", failures)
                self._stop.wait(tick)


def start(url: str, count: int, time_limit_s: float, statement_timeout_ms: int,
          **options: Any) -> Runners | None:  # fmt: skip
    """Start a process's runners, or none when ``count`` is 0.

    Parameters
    ----------
    url : str
        The database URL.
    count : int
        Runner threads (``GEOMAP_JOB_RUNNERS``); 0 runs none.
    time_limit_s : float
        A job's time limit (``GEOMAP_JOB_TIME_LIMIT_S``).
    statement_timeout_ms : int
        Upper bound of one statement.
    **options
        Passed to :class:`Runners` (``poll_s``, ``sweep_every_s``, ``kinds``).

    Returns
    -------
    Runners or None
        The started runners.
    """
    if count <= 0:
        return None
    return Runners(url, count, time_limit_s, statement_timeout_ms, **options).start()
