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
  told to stop, so a restart is not held up by open pages (they reconnect and catch up).
"""

from __future__ import annotations

import gc as _gc
import logging as _logging
import socket as _socket
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


def post_fork(server: Any, worker: Any) -> None:
    """gunicorn hook, in each worker just after the fork: its own database connections,
    its own escalation loop (each worker runs one; they never record a climb twice,
    see geomap.ops.escalation) and its job runners (geomap.planning.runners)."""
    from geomap import db
    from geomap.api._ops import start_loop
    from geomap.api.plans import start_runners

    db.forget_connections()
    app = server.app.wsgi()
    app.extensions["geomap_alive"] = lambda: worker.alive  # open streams end on shutdown
    start_loop(app)
    start_runners(app)  # GEOMAP_JOB_RUNNERS threads claiming plan jobs from the queue


def worker_exit(server: Any, worker: Any) -> None:
    """gunicorn hook, in a worker as it exits: stop listening for events."""
    from geomap.api.events import stop_hub

    stop_hub(server.app.wsgi())
