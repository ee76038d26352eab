"""Payloads kept between requests until the data they were built from changes.

A map layer's document takes 0.1-0.3 s to read and encode, an analysis answer up to a few
seconds; both are pure functions of their query, the settings and a few data sets. The
service keeps each one (per process, bounded in bytes) with the stamps of those data sets
(:func:`geomap.analysis.versions.stamps`) read *before* it was built, and hands it out again
while fresh stamps compare equal: a warm map or a second planner gets it in milliseconds,
and the first request after any committed change rebuilds it.

Usage in a view::

    payload = keep.kept(("layer", layer.id, zoom), ("grids",), build)
    return payload_response(payload, "application/json")

where ``build()`` returns a :class:`geomap.web.compression.Payload`; or, for a whole view
whose answer depends on its query arguments and the settings only, the decorator
:func:`answer`.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any

from flask import Response, current_app, request

from geomap import db
from geomap.analysis import versions
from geomap.web.compression import Payload, payload_response

#: Bytes of payloads (bodies and their gzip forms) one process keeps.
MAX_BYTES = 256 * 1024 * 1024


@dataclass
class _Entry:
    stamps: dict[str, Hashable]
    payload: Payload

    @property
    def size(self) -> int:
        # The body, and room for its gzip form (made on first need, about a third).
        return len(self.payload.body) * 4 // 3


class Store:
    """Kept payloads by key, least recently used dropped first, bounded in bytes."""

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.builds = 0

    def get(self, key: Hashable) -> _Entry | None:
        with self._lock:
            entry = self._items.get(key)
            if entry is not None:
                self._items.move_to_end(key)
            return entry

    def put(self, key: Hashable, entry: _Entry) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old.size
            self._items[key] = entry
            self._bytes += entry.size
            while len(self._items) > 1 and self._bytes > self.max_bytes:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= dropped.size

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0


def store() -> Store:
    """The app's store (made on first use)."""
    return current_app.extensions.setdefault("geomap_kept", Store())


def kept(key: Hashable, data_sets: Iterable[str], build: Callable[[], Payload]) -> Payload:
    """The payload kept under ``key`` if its data sets did not change, else a new one.

    Parameters
    ----------
    key : hashable
        Everything besides the data that the payload depends on (kind, query, settings).
    data_sets : iterable of str
        The data sets it is built from (:data:`geomap.analysis.versions.DATA_SETS`); none:
        the payload is built every time.
    build : callable
        Builds the payload (reading the data through the request's session).

    Returns
    -------
    Payload
    """
    names = tuple(sorted(set(data_sets)))
    if not names:
        return build()
    session = db.get_session()
    shelf = store()
    entry = shelf.get(key)
    if entry is not None and versions.stamps(session, names, since=entry.stamps) == entry.stamps:
        shelf.hits += 1
        return entry.payload
    # Read before the data: a change committed meanwhile makes the payload look older than
    # it is (rebuilt once more), never newer.
    stamps = versions.stamps(session, names)
    payload = build()
    shelf.builds += 1
    if stamps is not None:
        shelf.put(key, _Entry(stamps, payload))
    return payload


def request_key() -> tuple:
    """What identifies a GET answer besides the data: the view, its query arguments (as
    given, in order of name) and the settings that shape analyses."""
    settings = current_app.config["GEOMAP"]
    arguments = tuple(sorted(request.args.items(multi=True)))
    shaping = (settings.walk_speed_kmh, settings.circle_access_m, settings.max_features)
    return ("answer", request.endpoint, arguments, shaping)


def answer(data_sets: Iterable[str] | Callable[[], Iterable[str]]) -> Callable:
    """Keep a view's answers (200s only) until one of ``data_sets`` changes.

    For views whose answer is a function of the query arguments, the settings of
    :func:`request_key` and the data only (the analyses: no personal fields, nothing that
    depends on the caller). Errors are never kept: the view raises, nothing is stored.

    Parameters
    ----------
    data_sets : iterable of str, or a callable returning them
        The data sets the answer is built from; a callable is asked per request (e.g.
        ``of=teams`` depends on the teams). An unknown name from a callable means "do not
        keep": the view runs and answers (or refuses the argument) itself.
    """

    def wrap(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def kept_view(*args: Any, **kwargs: Any) -> Any:
            names = tuple(data_sets() if callable(data_sets) else data_sets)
            if any(name not in versions.DATA_SETS for name in names):
                return view(*args, **kwargs)
            refused: list[Response] = []

            def build() -> Payload:
                response = current_app.make_response(view(*args, **kwargs))
                if response.status_code != 200 or response.is_streamed:
                    refused.append(response)
                    raise _NotKept
                payload = Payload(response.get_data())
                payload.mimetype = response.mimetype
                return payload

            try:
                payload = kept(request_key(), names, build)
            except _NotKept:
                return refused[0]
            return payload_response(
                payload, payload.mimetype or "application/json", cache_control=None
            )

        return kept_view

    return wrap


class _NotKept(Exception):
    """The view answered something that is not kept (not a 200 with a body)."""
