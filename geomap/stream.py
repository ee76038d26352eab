"""The live event stream of a process: one LISTEN connection, fanned out in memory.

Writers announce events in their own transactions (:mod:`geomap.events`): a row of
``events`` and a ``NOTIFY geomap_events, '<id>'`` delivered at commit. Each service
process runs one :class:`Hub`: a thread holding one database connection (outside the
pool) that listens on that channel, reads the announced rows, keeps the latest ones in a
ring and wakes the streams waiting for them. An open page's stream (``GET /api/events``,
:mod:`geomap.api.events`) is a thread waiting on the hub's condition: it holds no database
connection, so hundreds of open pages cost hundreds of idle threads and nothing in
PostgreSQL. A write from any process (another worker, the CLI, ``psql``) reaches every
page, since every hub hears every commit.

Events are read by the ids their notifications name, so a transaction that commits after
a later-numbered one is not skipped. When the listening connection is lost the hub
reconnects and reads every event numbered after the last one it saw, so nothing committed
meanwhile is lost either (at worst delivered a little late).

A stream that reconnects names the last event it saw (``Last-Event-ID``): what came after
it is replayed from the ring, or from the table when the ring no longer reaches back that
far (:func:`replay`), and when more was missed than a page should replay one by one, the
page is told to reload (``reset``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from geomap.events import CHANNEL

log = logging.getLogger(__name__)

#: Events a hub keeps for streams that reconnect.
RING_SIZE = 5000
#: Most events replayed to a reconnecting stream; more missed: ``reset``.
MAX_REPLAY = 2000
#: Seconds between keep-alive comments on an idle stream.
HEARTBEAT_S = 15.0
#: What a browser waits before reconnecting (milliseconds, the ``retry:`` field).
RETRY_MS = 2000

EVENT_COLUMNS = "id, at, kind, audience, payload, personal, case_id, team_id"
BY_IDS_SQL = f"SELECT {EVENT_COLUMNS} FROM events WHERE id = ANY(%s) ORDER BY id"
AFTER_SQL = f"SELECT {EVENT_COLUMNS} FROM events WHERE id > %s ORDER BY id LIMIT %s"
REPLAY_SQL = sa.text(
    f"SELECT {EVENT_COLUMNS} FROM events WHERE id > :after ORDER BY id LIMIT :limit"
)
#: The layer an embed token must open to receive an event, by the event kind's subject.
EVENT_LAYERS = {"case": "cases", "dispatch": "cases", "team": "teams"}


@dataclass
class Event:
    """One announced event, with its stream messages rendered once for every reader."""

    id: int
    at: dt.datetime
    kind: str
    audience: str
    payload: dict[str, Any]
    personal: dict[str, Any] | None
    case_id: int | None
    team_id: int | None
    _messages: dict[bool, bytes] = field(default_factory=dict, repr=False)

    @classmethod
    def from_row(cls, row: Any) -> Event:
        return cls(*row[:8])

    def visible_to(self, who: Any) -> bool:
        """Whether ``who`` (a :class:`geomap.auth.Principal`) may receive this event."""
        if not who.may(self.audience):
            return False
        if who.layers is not None:  # an embed token: only what its layers show
            layer = EVENT_LAYERS.get(self.kind.split(".", 1)[0])
            return layer is not None and who.may_see_layer(layer)
        return True

    def message(self, personal: bool) -> bytes:
        """The Server-Sent Events message, with the personal fields or without."""
        personal = personal and bool(self.personal)
        text = self._messages.get(personal)
        if text is None:
            data = dict(self.payload)
            if personal:
                data.update(self.personal or {})
            body = {"id": self.id, "kind": self.kind, "at": self.at.isoformat(),
                    "case_id": self.case_id, "team_id": self.team_id, "data": data}  # fmt: skip
            encoded = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
            text = f"id: {self.id}\nevent: {self.kind}\ndata: {encoded}\n\n".encode()
            self._messages[personal] = text
        return text


def reset_message(last_id: int | None) -> bytes:
    """Tells a page it missed too much to catch up event by event: reload."""
    marker = f"id: {last_id}\n" if last_id else ""
    return f"{marker}event: reset\ndata: {{}}\n\n".encode()


class Hub:
    """Listens on the events channel with one connection and wakes the waiting streams.

    Parameters
    ----------
    connect : callable
        Opens a new psycopg connection (autocommit is set here).
    """

    def __init__(self, connect: Callable[[], Any]) -> None:
        self._connect = connect
        self._ring: deque[tuple[int, Event]] = deque(maxlen=RING_SIZE)  # (sequence, event)
        self._sequence = 0
        self._last_id: int | None = None  # the highest event id read
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = threading.Event()
        self.streams = 0
        self._streams_lock = threading.Lock()

    # -- the listening thread --------------------------------------------------------------
    def start(self) -> Hub:
        """Start listening (once); returns the hub."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="geomap-events", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and wake every stream (they end)."""
        self._stop.set()
        with self._changed:
            self._changed.notify_all()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def _run(self) -> None:
        delay = 0.5
        while not self._stop.is_set():
            try:
                with self._connect() as conn:
                    conn.autocommit = True
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._catch_up(conn)
                    self.connected.set()
                    delay = 0.5
                    self._listen(conn)
            except Exception as exc:  # the database went away: retry, then catch up
                self.connected.clear()
                if self._stop.is_set():
                    break
                # Said once per outage; the retries go on quietly until it is back.
                (log.warning if delay == 0.5 else log.debug)(
                    "event listener lost its connection (%s); retrying", exc
                )
                self._stop.wait(delay)
                delay = min(delay * 2, 10.0)
        self.connected.clear()

    def _catch_up(self, conn: Any) -> None:
        """On (re)connecting: read what was committed while nobody listened."""
        if self._last_id is None:  # a new hub starts from now; history is replayed on ask
            self._last_id = conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
            return
        while True:
            rows = conn.execute(AFTER_SQL, (self._last_id, MAX_REPLAY)).fetchall()
            self._publish([Event.from_row(r) for r in rows])
            if len(rows) < MAX_REPLAY:
                return

    def _listen(self, conn: Any) -> None:
        while not self._stop.is_set():
            ids = [int(n.payload) for n in conn.notifies(timeout=1.0, stop_after=1)]
            if not ids:
                continue
            # Whatever else is already waiting, in the same read.
            ids += [int(n.payload) for n in conn.notifies(timeout=0.002)]
            rows = conn.execute(BY_IDS_SQL, (ids,)).fetchall()
            self._publish([Event.from_row(r) for r in rows])

    def _publish(self, events: list[Event]) -> None:
        if not events:
            return
        with self._changed:
            for event in events:
                self._sequence += 1
                self._ring.append((self._sequence, event))
                self._last_id = max(self._last_id or 0, event.id)
            self._changed.notify_all()

    # -- what streams ask ------------------------------------------------------------------
    @property
    def sequence(self) -> int:
        """The position of the latest event in this hub (streams wait for later ones)."""
        with self._changed:
            return self._sequence

    def position(self) -> tuple[int, int | None]:
        """(sequence, the highest event id read), read together: a new stream waits after
        that sequence and may tell its page that id (nothing up to it is owed to it)."""
        with self._changed:
            return self._sequence, self._last_id

    def wait(self, after: int, timeout_s: float) -> tuple[list[Event], int]:
        """The events after position ``after``, waiting up to ``timeout_s`` for one.

        Returns
        -------
        (list of Event, int)
            The events (maybe none) and the position to wait after next time.
        """
        with self._changed:
            if self._sequence <= after and not self._stop.is_set():
                self._changed.wait(timeout_s)
            if self._sequence <= after:
                return [], after
            oldest = self._ring[0][0] if self._ring else self._sequence + 1
            start = max(after + 1, oldest)
            events = [e for _, e in list(self._ring)[start - oldest:]]
            return events, self._sequence

    def recent_after(self, last_id: int) -> list[Event] | None:
        """The ring's events numbered after ``last_id``, or None when the ring may not
        reach back that far (then read them from the table)."""
        with self._changed:
            if not self._ring:
                return None if self._last_id is None or last_id < self._last_id else []
            if min(e.id for _, e in self._ring) > last_id + 1:
                return None
            return [e for _, e in self._ring if e.id > last_id]

    def open_stream(self, limit: int) -> bool:
        """Count a new stream in, unless ``limit`` are open already."""
        with self._streams_lock:
            if self.streams >= limit:
                return False
            self.streams += 1
            return True

    def close_stream(self) -> None:
        with self._streams_lock:
            self.streams -= 1


def replay(conn: Any, hub: Hub, last_id: int) -> list[Event] | None:
    """What a stream that last saw ``last_id`` missed, or None when it is too much (reset).

    Parameters
    ----------
    conn : Connection or Session
        For the events the hub's ring no longer holds; used only then.
    hub : Hub
    last_id : int
    """
    recent = hub.recent_after(last_id)
    if recent is not None:
        return recent if len(recent) <= MAX_REPLAY else None
    rows = conn.execute(REPLAY_SQL, {"after": last_id, "limit": MAX_REPLAY + 1}).all()
    if len(rows) > MAX_REPLAY:
        return None
    return [Event.from_row(r) for r in rows]


def messages(
    hub: Hub,
    who: Any,
    *,
    backlog: list[Event] | None,
    after: int,
    last_id: int | None,
    alive: Callable[[], bool] = lambda: True,
    heartbeat_s: float = HEARTBEAT_S,
    start_id: int | None = None,
) -> Iterator[bytes]:
    """The messages of one stream: the backlog, then live events as they come.

    Parameters
    ----------
    hub : Hub
    who : Principal
        The reader: events it may not see are skipped, personal fields only for those
        who may see them.
    backlog : list of Event, or None
        Replayed first (None: the stream missed too much, it is told to ``reset``).
    after : int
        The hub position the backlog was read at (live events come after it).
    last_id : int, optional
        The last event the reader saw (events up to it are not sent again).
    start_id : int, optional
        For a new reader (no ``last_id``): the latest event id at ``after``, told to it.
    alive : callable
        False when the server is shutting down: the stream ends (the page reconnects).
    """
    personal = who.may("personal")
    sent = last_id or 0
    yield f"retry: {RETRY_MS}\n\n".encode()
    if last_id is None and start_id is not None:
        # A new stream learns where "now" is, so even a page that saw no event before
        # losing its connection resumes by replay rather than reloading everything.
        yield f"id: {start_id}\nevent: ready\ndata: {{}}\n\n".encode()
    if backlog is None:
        yield reset_message(last_id)
    else:
        for event in backlog:
            if event.id > sent and event.visible_to(who):
                yield event.message(personal)
            sent = max(sent, event.id)
    seen = {e.id for e in backlog or ()}
    idle_since = time.monotonic()
    while alive() and not hub.stopped:
        events, after = hub.wait(after, timeout_s=1.0)
        if not events:
            if time.monotonic() - idle_since >= heartbeat_s:
                idle_since = time.monotonic()
                yield b": ping\n\n"
            continue
        for event in events:
            if event.id in seen:  # replayed already (it arrived while the backlog was read)
                continue
            if event.visible_to(who):
                idle_since = time.monotonic()
                yield event.message(personal)
        seen.clear()
