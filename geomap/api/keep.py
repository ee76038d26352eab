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

where ``build()`` returns a :class:`geomap.api.compression.Payload`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

from flask import current_app

from geomap import db
from geomap.analysis import versions
from geomap.api.compression import Payload

#: Bytes of payloads (bodies and their gzip forms) one process keeps.
MAX_BYTES = 256 * 1024 * 1024


@dataclass
class _Entry:
    stamps: dict[str, Hashable]
    payload: Payload


class Store:
    """Kept payloads by key, least recently used dropped first, bounded in bytes."""

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[Hashable, _Entry] = OrderedDict()
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
            self._items[key] = entry
            self._items.move_to_end(key)
            while len(self._items) > 1 and self._bytes() > self.max_bytes:
                self._items.popitem(last=False)

    def _bytes(self) -> int:
        return sum(e.payload.size for e in self._items.values())

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


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
