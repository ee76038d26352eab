"""Serving in production: gunicorn with threaded workers that share the routing state.

``geomap serve`` runs ``gunicorn -c python:geomap.serving geomap.wsgi:app``. This module
is that configuration, read from the settings (``GEOMAP_HOST``, ``GEOMAP_PORT``,
``GEOMAP_WORKERS``, ``GEOMAP_THREADS``, ``GEOMAP_EVENT_STREAMS``):

* threaded workers (``gthread``) with keep-alive: a request spends much of its time
  waiting on PostgreSQL, and a client that keeps its connection saves a TCP handshake
  and a thread start per request;
* the app is loaded in the master (``preload_app``) and :func:`warm` builds the street
  graph, the grids' sample points, the team mirror and the documents of the battle
  map's first view there, before the workers fork:
  their arrays (~100 MB for Nanchang) are then shared copy-on-write by every worker
  instead of being built and held once per worker; the master's database connections
  are closed before the fork, and each worker starts from an empty pool and its own
  escalation loop (:func:`post_fork`), so no connection is shared between processes;
* each worker listens on its own socket of the port (``SO_REUSEPORT``), and the kernel
  spreads new connections over them. On one shared socket the workers raced to accept,
  and a few kept-alive clients (a proxy's pool, a load test's 16 connections) often all
  landed on one worker, whose GIL then held them to one core while the other idled
  (1,080-1,150 req/s with 15 of 16 connections on one worker, 1,720 with 8 and 8).
  Two things come with it: a port some other server already listens on is refused at
  start (:func:`on_starting`; with ``SO_REUSEPORT`` a second server would otherwise join
  the first and share its connections), and a stopping worker closes its socket as soon
  as it stops accepting (:class:`_Worker`), so no new connection waits in the queue of
  a socket nobody will accept from;
* a live event stream (``/api/events``) holds a worker thread for as long as its page is
  open (and no database connection): each worker gets ``GEOMAP_EVENT_STREAMS`` threads
  for them beside the ``GEOMAP_THREADS`` for requests, and its streams end when it is
  told to stop, so a restart is not held up by open pages (they reconnect and catch up);
* plan jobs run in one job process per node (``GEOMAP_JOB_RUNNERS`` runner threads, at
  nice 10), forked by the master after the warm-up so it shares the routing state too,
  and never in the workers: a runner thread in a worker holds that worker's GIL while it
  computes, and the requests beside it waited (p99 of a cheap request 3.9× idle with 50
  jobs queued, bench/jobs.py). The master starts another if it dies (:func:`_watch_jobs`)
  and stops it on exit (:func:`on_exit`).
"""

from __future__ import annotations

import contextlib as _contextlib
import gc as _gc
import logging as _logging
import os as _os
import signal as _signal
import socket as _socket
import threading as _threading
from typing import Any

from gunicorn.workers import gthread as _gthread

from geomap import config as _config

# Every module-level name gunicorn knows is a setting: helpers stay private (underscore).
_settings = _config.load()

bind = f"{_settings.host}:{_settings.port}"
workers = max(1, int(_settings.workers))
threads = max(1, int(_settings.threads)) + max(0, int(_settings.event_streams))
worker_class = "geomap.serving._Worker"
keepalive = 5
reuse_port = True  # a socket per worker: see the module docstring
preload_app = True
# One line per request would cost more than a nearest-teams answer; errors still log.
accesslog = None
errorlog = "-"
loglevel = _settings.log_level.lower()

_log = _logging.getLogger("geomap.serving")


class _Worker(_gthread.ThreadWorker):
    """gunicorn's threaded worker, closing its own listening socket once it stops.

    With a socket per worker, connections the kernel queued on a stopping worker's socket
    would wait there until the worker finished its last requests, then be reset: closed
    at once, the socket leaves the group and new connections go to the other workers.
    """

    def set_accept_enabled(self, enabled: bool) -> None:
        super().set_accept_enabled(enabled)
        if not enabled and not self.alive:  # stopping (not merely full)
            for listener in self.sockets:
                listener.close()


def on_starting(server: Any) -> None:
    """gunicorn hook, in the master before any worker binds: refuse a port in use.

    A plain bind (without ``SO_REUSEPORT``) fails on a port that any socket listens on,
    even one that would let our workers' sockets join it.
    """
    for address in server.cfg.address:
        if not isinstance(address, tuple):
            continue  # a Unix socket path: gunicorn checks it itself
        host, port = address[0], address[1]
        family = _socket.AF_INET6 if ":" in host else _socket.AF_INET
        with _socket.socket(family, _socket.SOCK_STREAM) as probe:
            probe.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                raise SystemExit(
                    f"geomap serve: {host}:{port} is already in use ({exc.strerror}); is "
                    "another server running? Stop it, or choose GEOMAP_PORT / --port"
                ) from exc


def warm(app: Any) -> None:
    """Build what every request path shares (graph, samples, mirror, the battle map's
    first-view documents) in this process.

    A database that is down or not loaded yet is not an error here: the first requests
    build what they need.
    """
    from geomap import db, routing

    settings = app.config["GEOMAP"]
    try:
        with db.session_scope(settings) as session:
            known = routing.versions(session)
            graph = routing.current_graph(session, known)
            routing.grid_samples(session, graph, settings.circle_access_m, known)
            teams, _ = routing.team_mirror(session)
            for mode in graph.modes:  # the snapping indexes, and every team's snap
                teams.snaps(graph, mode)
            routing.reach.incident_edges(graph, [0] if graph.n_nodes else [])
        _log.info("routing state ready: %d nodes, %d edges", graph.n_nodes, graph.n_edges)
    except Exception as exc:  # warming is an optimisation, never fatal
        _log.warning("routing state not warmed (%s); built on first use instead", exc)
    try:
        from geomap.maps.views import warm_battle_map

        _log.info("battle map documents kept: %s", ", ".join(warm_battle_map(app)))
    except Exception as exc:
        _log.warning("battle map documents not kept (%s); built on first use instead", exc)
    finally:
        db.close_connections()  # before the fork: no connection shared by two processes


def when_ready(server: Any) -> None:
    """gunicorn hook, in the master after the app is loaded, before the workers fork."""
    warm(server.app.wsgi())
    # Everything built so far (the app, the routing state) lives as long as the workers:
    # moved out of the collector's reach, it is neither scanned by every full collection
    # (a pause that grew with the team mirror's millions of objects) nor copied into each
    # worker by the collector touching it (Python's documented recipe for forking servers).
    _gc.freeze()
    if _settings.job_runners > 0:
        _JOBS["process"] = _start_jobs(server)
        _threading.Thread(target=_watch_jobs, args=(server,), daemon=True,
                          name="geomap-jobs-watch").start()  # fmt: skip


#: The master's job process id ("process") and whether the master is stopping ("stopping").
_JOBS: dict[str, Any] = {}
_JOBS_WATCH_S = 2.0


def _start_jobs(server: Any) -> int:
    # A plain fork: the child has the master's warmed state, as the workers do; not
    # multiprocessing, whose record of the child the workers would inherit and try to join.
    pid = _os.fork()
    if pid == 0:
        code = 1
        try:
            _jobs_main(server.app.wsgi(), list(server.LISTENERS))
            code = 0
        except BaseException:
            _log.exception("job process failed")
        finally:
            _os._exit(code)
    _log.info("job process %s started (%s runners)", pid, _settings.job_runners)
    return pid


def _running(pid: int) -> bool:
    # The master's SIGCHLD handler reaps every child, this one too, so multiprocessing's own
    # join never sees it end: ask the kernel whether the pid is still there instead.
    try:
        _os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _watch_jobs(server: Any) -> None:
    """In the master: start another job process whenever the last one has ended."""
    stop = _threading.Event()
    while not stop.wait(_JOBS_WATCH_S):
        if _JOBS.get("stopping"):
            return
        if not _running(_JOBS["process"]):
            _log.warning("job process %s ended; starting another", _JOBS["process"])
            _JOBS["process"] = _start_jobs(server)


def _jobs_main(app: Any, listeners: list) -> None:
    """The node's job process: its runners until SIGTERM or SIGINT (the master's stop)."""
    from geomap import db
    from geomap.api.plans import start_runners

    for listener in listeners:  # it serves no request: the service's port is not its own
        listener.close()
    stopped = _threading.Event()
    for sig in (_signal.SIGTERM, _signal.SIGINT):
        _signal.signal(sig, lambda *_: stopped.set())
    for sig in (_signal.SIGHUP, _signal.SIGCHLD, _signal.SIGUSR1, _signal.SIGUSR2,
                _signal.SIGTTIN, _signal.SIGTTOU, _signal.SIGWINCH, _signal.SIGQUIT):  # fmt: skip
        _signal.signal(sig, _signal.SIG_DFL)  # the master's handlers, inherited: not ours
    # Requests first, on every core: SCHED_IDLE runs the jobs only on time the workers leave
    # (at nice 10 a cheap request's p99 was still 2.2× idle with 50 jobs queued); the threads
    # started below inherit it. Where it is refused, nice 10.
    try:
        _os.sched_setscheduler(0, _os.SCHED_IDLE, _os.sched_param(0))
    except (AttributeError, OSError):
        with _contextlib.suppress(OSError):
            _os.setpriority(_os.PRIO_PROCESS, 0, 10)
    db.forget_connections()
    runners = start_runners(app)
    stopped.wait()
    if runners is not None:
        runners.stop()


def on_exit(server: Any) -> None:
    """gunicorn hook, in the master as it exits: stop the job process (its jobs' leases
    lapse and another node's sweep, or the next start, takes them up)."""
    _JOBS["stopping"] = True
    pid = _JOBS.get("process")
    if pid is None or not _running(pid):
        return
    _os.kill(pid, _signal.SIGTERM)
    for _ in range(100):
        with _contextlib.suppress(ChildProcessError):
            _os.waitpid(pid, _os.WNOHANG)  # the master's own reaping may be done by now
        if not _running(pid):
            return
        _threading.Event().wait(0.1)
    _os.kill(pid, _signal.SIGKILL)


def post_fork(server: Any, worker: Any) -> None:
    """gunicorn hook, in each worker just after the fork: its own database connections,
    its own escalation loop (each worker runs one; they never record a climb twice,
    see geomap.ops.escalation); plan jobs run in the node's job process, not here."""
    from geomap import db
    from geomap.api._ops import start_loop
    from geomap.api.plans import JOBS_ELSEWHERE

    db.forget_connections()
    app = server.app.wsgi()
    app.extensions["geomap_alive"] = lambda: worker.alive  # open streams end on shutdown
    app.extensions[JOBS_ELSEWHERE] = True
    start_loop(app)


def worker_exit(server: Any, worker: Any) -> None:
    """gunicorn hook, in a worker as it exits: stop listening for events."""
    from geomap.api.events import stop_hub

    stop_hub(server.app.wsgi())
