"""The process's routing state: one graph per network version, one team mirror per database.

Callers pass their connection or session and get what their transaction should see:

* :func:`current_graph` reads ``data_versions`` (one tiny query) and returns the cached
  :class:`StreetGraph` of that network version, building it on first use. Versions come
  from a sequence, so a number always means the same network. When the caller's own
  uncommitted transaction changed the network, it gets a private graph, never cached.
* :func:`team_mirror` returns the teams as the caller's transaction sees them.
* :func:`grid_samples` returns the residents' sample points of the current grids on a
  graph (see :mod:`geomap.routing.sample`).

Nothing is built at import time; :func:`clear` forgets everything (tests).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session

from geomap.routing.graph import StreetGraph, load_graph
from geomap.routing.mirror import TeamMirror, TeamTable

VERSIONS_SQL = sa.text(
    """
    SELECT name, version, coalesce(changed_xid = pg_current_xact_id_if_assigned(), false) AS mine
    FROM data_versions
    """
)

#: Graphs kept per process (a new network version's graph and the previous one, for
#: requests still running on it).
MAX_GRAPHS = 4

_lock = threading.Lock()
_graphs: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
_builders: dict[tuple[Any, ...], threading.Lock] = {}
_mirrors: dict[tuple[Any, ...], TeamMirror] = {}

T = TypeVar("T")


def database_key(conn: Any) -> str:
    """What identifies ``conn``'s database in the caches (its URL, without password)."""
    bind = conn.get_bind() if isinstance(conn, Session) else conn
    return bind.engine.url.render_as_string(hide_password=True)


def versions(conn: Any) -> dict[str, tuple[int, bool]]:
    """``{name: (version, changed by this transaction)}`` plus ``"db"``: the database."""
    rows = conn.execute(VERSIONS_SQL).all()
    found: dict[str, Any] = {name: (int(version), bool(mine)) for name, version, mine in rows}
    found["db"] = (database_key(conn), None)
    return found


def _cached(key: tuple[Any, ...], build: Callable[[], T]) -> T:
    """The value cached under ``key``, built once (other threads wait for the builder)."""
    with _lock:
        if key in _graphs:
            _graphs.move_to_end(key)
            return _graphs[key]
        builder = _builders.setdefault(key, threading.Lock())
    with builder:
        with _lock:
            if key in _graphs:
                return _graphs[key]
        value = build()
        with _lock:
            _graphs[key] = value
            _builders.pop(key, None)
            while len(_graphs) > MAX_GRAPHS * 3:
                _graphs.popitem(last=False)
        return value


def current_graph(conn: Any, known: dict[str, Any] | None = None) -> StreetGraph:
    """The street graph of the network ``conn``'s transaction sees.

    Parameters
    ----------
    conn : Connection or Session
    known : dict, optional
        The result of :func:`versions` when the caller already has it.
    """
    known = known or versions(conn)
    version, mine = known["network"]
    if mine:  # our own uncommitted network change: a private graph, never shared
        return load_graph(conn, version=version)
    return _cached(("graph", known["db"], version), lambda: load_graph(conn, version=version))


def team_mirror(conn: Any) -> tuple[TeamTable, dict[str, Any]]:
    """The teams as ``conn``'s transaction sees them (see :mod:`geomap.routing.mirror`),
    and the data versions (as :func:`versions` returns them), in one round trip."""
    database = database_key(conn)
    with _lock:
        mirror = _mirrors.get(database) or _mirrors.setdefault(database, TeamMirror())
    table, known = mirror.view(conn)
    known["db"] = (database, None)
    return table, known


def derived(conn: Any, name: str, depends_on: tuple[str, ...], build: Callable[[], T],
            known: dict[str, Any] | None = None) -> T:  # fmt: skip
    """A value derived from data sets (``depends_on``: names in ``data_versions``), cached
    until one of them changes; built privately when this transaction changed one."""
    known = known or versions(conn)
    if any(known[d][1] for d in depends_on):
        return build()
    key = ("derived", name, known["db"], *(known[d][0] for d in depends_on))
    return _cached(key, build)


def grid_samples(conn: Any, graph: StreetGraph, access_m: float,
                 known: dict[str, Any] | None = None) -> Any:  # fmt: skip
    """The residents' sample points of the current grids, with the streets near each."""
    from geomap.routing import sample

    known = known or versions(conn)
    return derived(
        conn,
        f"samples:{graph.version}:{float(access_m)!r}",
        ("grids", "network"),
        lambda: sample.build(conn, graph, access_m),
        known,
    )


def clear() -> None:
    """Forget every cached graph, mirror and derived value (tests, after a fork)."""
    with _lock:
        _graphs.clear()
        _builders.clear()
        _mirrors.clear()
