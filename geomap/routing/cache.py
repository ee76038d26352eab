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
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session

from geomap.routing.graph import StreetGraph, load_graph
from geomap.routing.mirror import TeamMirror, TeamTable

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from geomap.routing.sample import GridSamples

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


def database_key(conn: Connection | Session) -> str:
    """What identifies ``conn``'s database in the caches (its URL, without password).

    Parameters
    ----------
    conn : Connection or Session
        A handle on the database.

    Returns
    -------
    str
        The engine's URL with the password hidden.
    """
    bind = conn.get_bind() if isinstance(conn, Session) else conn
    return bind.engine.url.render_as_string(hide_password=True)


def versions(conn: Connection | Session) -> dict[str, tuple[int, bool]]:
    """``{name: (version, changed by this transaction)}`` plus ``"db"``: the database.

    Parameters
    ----------
    conn : Connection or Session
        The database; the versions are those its transaction sees.

    Returns
    -------
    dict
        One entry per row of ``data_versions`` (``network``, ``grids``...), and ``"db"``:
        ``(database_key(conn), None)``.
    """
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


def current_graph(conn: Connection | Session, known: dict[str, Any] | None = None) -> StreetGraph:
    """The street graph of the network ``conn``'s transaction sees.

    Shared between requests per network version; a transaction that changed the network
    itself gets a private graph.

    Parameters
    ----------
    conn : Connection or Session
        The database.
    known : dict, optional
        The result of :func:`versions` when the caller already has it.

    Returns
    -------
    StreetGraph
        The graph of the network version in force.
    """
    known = known or versions(conn)
    version, mine = known["network"]
    if mine:  # our own uncommitted network change: a private graph, never shared
        return load_graph(conn, version=version)
    return _cached(("graph", known["db"], version), lambda: load_graph(conn, version=version))


def team_mirror(conn: Connection | Session) -> tuple[TeamTable, dict[str, Any]]:
    """The teams as ``conn``'s transaction sees them, and the data versions.

    One round trip gives both (see :mod:`geomap.routing.mirror`).

    Parameters
    ----------
    conn : Connection or Session
        The database.

    Returns
    -------
    teams : TeamTable
        The teams, in arrays.
    known : dict
        The data versions, as :func:`versions` returns them.
    """
    database = database_key(conn)
    with _lock:
        mirror = _mirrors.get(database) or _mirrors.setdefault(database, TeamMirror())
    table, known = mirror.view(conn)
    known["db"] = (database, None)
    return table, known


def derived(conn: Connection | Session, name: str, depends_on: tuple[str, ...],
            build: Callable[[], T], known: dict[str, Any] | None = None) -> T:  # fmt: skip
    """A value derived from data sets, cached until one of them changes.

    Parameters
    ----------
    conn : Connection or Session
        The database.
    name : str
        What the value is, unique per kind of value and its inputs (``grid_points:<v>``).
    depends_on : tuple of str
        The names in ``data_versions`` the value is derived from.
    build : callable
        ``build() -> T``, called when the cache misses; built privately (never shared) when
        this transaction changed one of ``depends_on``.
    known : dict, optional
        The result of :func:`versions` when the caller already has it.

    Returns
    -------
    T
        What ``build`` returned, now or for an earlier request.
    """
    known = known or versions(conn)
    if any(known[d][1] for d in depends_on):
        return build()
    key = ("derived", name, known["db"], *(known[d][0] for d in depends_on))
    return _cached(key, build)


def grid_samples(conn: Connection | Session, graph: StreetGraph, access_m: float,
                 known: dict[str, Any] | None = None) -> GridSamples:  # fmt: skip
    """The residents' sample points of the current grids, with the streets near each.

    Parameters
    ----------
    conn : Connection or Session
        The database.
    graph : StreetGraph
        The street graph the streets are taken from.
    access_m : float
        How far from a sample point a street may be, metres.
    known : dict, optional
        The result of :func:`versions` when the caller already has it.

    Returns
    -------
    GridSamples
        As :func:`geomap.routing.sample.build` gives them, cached until the grids or the
        network change.
    """
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
