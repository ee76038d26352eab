"""``GET /api/events``: the live battle map's Server-Sent Events.

A thin view over :mod:`geomap.stream`: the process's hub (one listening connection) is
started on first use; each stream replays what its page missed (``Last-Event-ID``, sent
by the browser's ``EventSource`` when it reconnects, or ``?after=``) and then waits on the
hub. A stream holds a thread and no database connection; at most ``event_streams`` are
open per process (more: 503 with ``Retry-After``, and ``EventSource`` retries).
"""

from __future__ import annotations

import os
import threading
from typing import Any

from flask import Blueprint, Response, current_app, request

from geomap import db, stream
from geomap.errors import Busy
from geomap.params import check_int
from geomap.web import access
from geomap.web.spec import Param, args, endpoint

bp = Blueprint("events", __name__, url_prefix="/api")

HUB = "geomap_hub"
_HUB_LOCK = threading.Lock()
MAX_EVENT_ID = 2**62


def hub(app: Any) -> stream.Hub:
    """The process's hub, started on first use (and again in a forked worker)."""
    with _HUB_LOCK:
        found = app.extensions.get(HUB)
        if found is None or found[0] != os.getpid():
            engine = db.get_engine(app.config["GEOMAP"])
            cargs, cparams = engine.dialect.create_connect_args(engine.url)

            def connect() -> Any:
                import psycopg

                return psycopg.connect(*cargs, **cparams)

            found = (os.getpid(), stream.Hub(connect).start())
            app.extensions[HUB] = found
        return found[1]


def stop_hub(app: Any) -> None:
    """End the process's streams (the server is shutting down; pages reconnect)."""
    found = app.extensions.get(HUB)
    if found is not None and found[0] == os.getpid():
        found[1].stop()


def _last_id() -> int | None:
    raw = request.headers.get("Last-Event-ID") or args().raw("after")
    if raw is None or raw == "":
        return None
    return check_int(raw, "Last-Event-ID", 0, MAX_EVENT_ID)


@bp.get("/events", endpoint="stream")
@endpoint(
    "Live events (Server-Sent Events): cases, dispatches, team status and positions, as "
    "the reader's role may see them; resumes after Last-Event-ID",
    permission="layers",
    tags=("cases",),
    media_type="text/event-stream",
    statuses=(400, 503),
    params=(
        Param(
            "after",
            "integer",
            "Resume after this event id (as the Last-Event-ID header does; the header wins).",
            minimum=0,
        ),
    ),
)
def stream_events() -> Response:
    """Open a live stream."""
    app = current_app._get_current_object()
    settings = app.config["GEOMAP"]
    last_id = _last_id()
    who = access.current()
    live = hub(app)
    if not live.open_stream(settings.event_streams):
        raise Busy(f"this process serves {settings.event_streams} live streams already; "
                   "retry shortly", retry_after_s=5)  # fmt: skip
    try:
        live.connected.wait(2.0)  # a new hub: its first read of where "now" is
        after, start_id = live.position()  # before the replay is read: nothing in between
        backlog: list[stream.Event] | None = []
        if last_id is not None:
            backlog = stream.replay(db.get_session(), live, last_id)  # closed at teardown
    except BaseException:
        live.close_stream()
        raise
    alive = app.extensions.get("geomap_alive", lambda: True)

    def body():
        try:
            yield from stream.messages(live, who, backlog=backlog, after=after,
                                       last_id=last_id, alive=alive, start_id=start_id)  # fmt: skip
        finally:
            live.close_stream()

    response = Response(body(), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return response

