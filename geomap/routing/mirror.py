"""The teams in memory: attributes, positions and snaps, kept current row by row.

Ranking 10,000 teams by travel time takes microseconds on arrays and milliseconds to read
from the database, so each process keeps a copy of the ``teams`` table and, before each
use, fetches only what changed (migration 0005):

* every team row carries ``sync_xid``, the transaction that last wrote it;
* a look fetches the rows with ``sync_xid >= watermark`` and sets the watermark to its
  snapshot's ``xmin`` (the oldest transaction still running): whatever commits later was
  still running then, so its rows are fetched next time, and nothing is missed;
* rows written by the *caller's own* uncommitted transaction are used for that call only
  (an overlay), never shared with other threads: they may yet be rolled back;
* deletions bump the ``teams`` row of ``data_versions``: the next look reloads everything;
* callers outside a transaction (the nearest teams by distance) share looks: each takes
  the first look that started after it asked (:meth:`TeamMirror.shared_view`).

Snaps (a team's position along its nearest edge, per mode) are computed when a team's row
changes or the network does, never per query.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import sqlalchemy as sa
from scipy.spatial import cKDTree

from geomap import db
from geomap.routing.graph import StreetGraph
from geomap.routing.snap import EdgePoints, snap_lonlat

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Session

COLUMNS = (
    "id", "code", "name", "kind", "status", "headcount", "unit", "capabilities", "lon", "lat",
    "position_at",
)  # fmt: skip

SYNC_SQL = sa.text(
    """
    WITH state AS (
        SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin,
               pg_current_xact_id_if_assigned() AS me,
               v.version AS epoch, v.changed_xid AS epoch_xid
        FROM data_versions v WHERE v.name = 'teams'
    )
    SELECT s.xmin::text AS xmin, s.epoch, coalesce(s.epoch_xid = s.me, false) AS epoch_mine,
           (SELECT json_agg(json_build_array(name, version,
                                             coalesce(changed_xid = s.me, false)))
            FROM data_versions) AS versions,
           coalesce(t.sync_xid = s.me, false) AS mine,
           t.id, t.code, t.name, t.kind, t.status, t.headcount, t.unit, t.capabilities,
           ST_X(t.geom) AS lon, ST_Y(t.geom) AS lat, t.position_at
    FROM state s
    LEFT JOIN teams t
        ON t.sync_xid BETWEEN CAST(:watermark AS xid8) AND CAST('18446744073709551615' AS xid8)
    """
)
# The upper bound (xid8's largest value) excludes nothing: it is there for the planner.
# With an open-ended bound alone, a generic plan expects a third of the teams, so
# PostgreSQL planned this statement anew on every run (0.1-0.2 ms of planning for 0.03 ms
# of work, on every request); with a range it expects a few rows, keeps the index scan
# and reuses the generic plan.


@dataclass(frozen=True)
class Routable:
    """Teams ready for ranking by travel time (see :meth:`TeamTable.routable`).

    Parameters
    ----------
    rows : numpy.ndarray
        The mirror rows kept (indices).
    points : EdgePoints
        Their positions along their edges.
    edge_u, edge_v : numpy.ndarray
        The end nodes of those edges.
    tree : scipy.spatial.cKDTree or None
        A k-d tree of their metric positions (None when no row is kept).
    """

    #: Row indices into the table.
    rows: np.ndarray
    #: Their positions along their edges.
    points: EdgePoints
    #: The end nodes of those edges.
    edge_u: np.ndarray
    edge_v: np.ndarray
    #: Their positions (the graph's metric CRS) in a k-d tree; None when there are none.
    tree: cKDTree | None


#: Indexes of selections kept per table snapshot.
_SELECTIONS_KEPT = 8

T = TypeVar("T")


@dataclass(frozen=True)
class TeamTable:
    """An immutable snapshot of the teams: one array per column, rows in id order.

    Parameters
    ----------
    columns : dict of str to numpy.ndarray
        One array per name of ``COLUMNS`` (``lon``/``lat`` in WGS 84 degrees).
    """

    columns: dict[str, np.ndarray]
    #: (graph version, mode) → (the graph, every row's snap on it)
    _snaps: dict[tuple[int, str], tuple[StreetGraph, EdgePoints]] = field(
        default_factory=dict, repr=False
    )
    #: Masks, projected positions, unit vectors and the indexes of selections, computed
    #: on first use.
    _derived: dict[tuple, Any] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return int(self.columns["id"].size)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    def mask(
        self,
        *,
        kinds: list[str] | None = None,
        statuses: list[str] | None = None,
        capability: str | None = None,
    ) -> np.ndarray:
        """Rows matching the filters (None: no filter on that column); read-only.

        Parameters
        ----------
        kinds, statuses : list of str, optional
            Only teams of one of these kinds, in one of these statuses.
        capability : str, optional
            Only teams with this capability.

        Returns
        -------
        numpy.ndarray
            A boolean mask over the rows.
        """
        key = ("mask", tuple(kinds or ()), tuple(statuses or ()), capability)
        if key not in self._derived:
            self._derived[key] = self._mask(kinds, statuses, capability)
            self._derived[key].flags.writeable = False
        return self._derived[key]

    def xy(self, graph: StreetGraph) -> np.ndarray:
        """Positions in the graph's metric CRS.

        Parameters
        ----------
        graph : StreetGraph
            The graph whose CRS is wanted.

        Returns
        -------
        numpy.ndarray
            Shape (n, 2), metres.
        """
        key = ("xy", graph.srid)
        if key not in self._derived:
            x, y = graph.to_metric.transform(self.columns["lon"], self.columns["lat"])
            self._derived[key] = np.column_stack([x, y])
        return self._derived[key]

    def sphere(self) -> np.ndarray:
        """Positions as unit vectors (n × 3) on the sphere.

        The larger the dot product of two, the shorter the great circle between them.

        Returns
        -------
        numpy.ndarray
            Shape (n, 3).
        """
        if ("sphere",) not in self._derived:
            self._derived[("sphere",)] = unit_vectors(self.columns["lon"], self.columns["lat"])
        return self._derived[("sphere",)]

    def sphere_index(self, keep: np.ndarray) -> tuple[np.ndarray, cKDTree | None]:
        """The rows selected by ``keep`` and a k-d tree of their unit vectors.

        The tree is kept per selection (see :meth:`_selected`: ~1 ms to build for 5,000 teams,
        then nearest-k and within-radius queries in microseconds). Distances in the tree are
        chords: they grow with the great-circle distance.

        Parameters
        ----------
        keep : numpy.ndarray
            A boolean mask over the rows.

        Returns
        -------
        rows : numpy.ndarray
            The indices kept.
        tree : scipy.spatial.cKDTree or None
            Their unit vectors; None when none is kept.
        """

        def build(rows: np.ndarray) -> tuple[np.ndarray, cKDTree | None]:
            return rows, cKDTree(self.sphere()[rows]) if rows.size else None

        return self._selected(("sphere",), keep, build)

    def _mask(
        self, kinds: list[str] | None, statuses: list[str] | None, capability: str | None
    ) -> np.ndarray:
        keep = np.ones(len(self), dtype=bool)
        if kinds:
            keep &= np.isin(self.columns["kind"], kinds)
        if statuses:
            keep &= np.isin(self.columns["status"], statuses)
        if capability is not None:
            keep &= np.fromiter(
                (capability in caps for caps in self.columns["capabilities"]), bool, len(self)
            )
        return keep

    def snaps(self, graph: StreetGraph, mode: str) -> EdgePoints:
        """Every team's position along its nearest edge of ``mode`` (on ``graph``).

        Parameters
        ----------
        graph : StreetGraph
            The street graph.
        mode : str
            ``"walk"`` or ``"drive"``.

        Returns
        -------
        EdgePoints
            One position per row, kept with the snapshot per graph and mode.
        """
        key = (graph.version, mode)
        if key not in self._snaps:
            points = snap_lonlat(graph, mode, self.columns["lon"], self.columns["lat"])
            # Only the newest network's snaps are worth keeping.
            for old in [k for k in self._snaps if k[0] != graph.version]:
                self._snaps.pop(old, None)
            self._snaps[key] = (graph, points)
        return self._snaps[key][1]

    def routable(self, graph: StreetGraph, mode: str, keep: np.ndarray) -> Routable:
        """The rows selected by ``keep`` that snapped in ``mode``, ready for ranking.

        Their snaps, the end nodes of their edges and a k-d tree of their positions, kept per
        network version, mode and selection (see :meth:`_selected`).

        Parameters
        ----------
        graph : StreetGraph
            The street graph.
        mode : str
            ``"walk"`` or ``"drive"``.
        keep : numpy.ndarray
            A boolean mask over the rows.

        Returns
        -------
        Routable
            The teams ready for ranking.
        """
        snaps = self.snaps(graph, mode)

        def build(rows: np.ndarray) -> Routable:
            points = snaps.take(rows)
            xy = self.xy(graph)[rows]
            return Routable(rows, points, graph.edge_u[points.edge], graph.edge_v[points.edge],
                            cKDTree(xy) if rows.size else None)  # fmt: skip

        return self._selected(("routable", graph.version, mode), keep & snaps.found, build)

    def _selected(self, what: tuple, keep: np.ndarray, build: Callable[[np.ndarray], T]) -> T:
        """``build(rows)`` for the rows ``keep`` selects, kept for this snapshot of the table.

        Kept per ``what`` and selection; the oldest go beyond :data:`_SELECTIONS_KEPT` (a few
        are in use: the filters of the nearest panel, the cases' rules).
        """
        key = ("selected", *what, np.packbits(keep).tobytes())
        found = self._derived.get(key)
        if found is None:
            found = build(np.flatnonzero(keep))
            kept = [k for k in self._derived if k[0] == "selected"]
            for old in kept[: max(0, len(kept) - _SELECTIONS_KEPT + 1)]:
                self._derived.pop(old, None)
            self._derived[key] = found
        return found

    def row(self, i: int) -> dict[str, Any]:
        """Row ``i`` as a dict of plain Python values.

        Parameters
        ----------
        i : int
            The row index.

        Returns
        -------
        dict
            One value per column.
        """
        row = {name: values[i] for name, values in self.columns.items()}
        return {k: v.item() if isinstance(v, np.generic) else v for k, v in row.items()}


def unit_vectors(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Unit vectors (n × 3) of lon/lat degrees on the sphere.

    Parameters
    ----------
    lon, lat : numpy.ndarray
        WGS 84 degrees.

    Returns
    -------
    numpy.ndarray
        Shape (n, 3).
    """
    lam, phi = np.radians(lon), np.radians(lat)
    return np.column_stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)])


def _table(rows: list[dict[str, Any]]) -> TeamTable:
    rows = sorted(rows, key=lambda r: r["id"])
    columns: dict[str, np.ndarray] = {}
    for name in COLUMNS:
        values = [r[name] for r in rows]
        if name == "id":
            columns[name] = np.asarray(values, dtype=np.int64)
        elif name in ("lon", "lat"):
            columns[name] = np.asarray(values, dtype=float)
        else:
            array = np.empty(len(values), dtype=object)
            array[:] = values
            columns[name] = array
    return TeamTable(columns)


def _merged(old: TeamTable, changed: list[dict[str, Any]]) -> TeamTable:
    """``old`` with ``changed`` rows replaced or added; snaps carried over for the rest."""
    if not changed:
        return old
    by_id = {int(r["id"]): r for r in changed}
    ids = old.columns["id"]
    position = {int(i): k for k, i in enumerate(ids)}
    fresh = [r for i, r in by_id.items() if i not in position]
    if fresh:  # new rows: rebuild (rare: teams are created by imports and seeds)
        rows = [old.row(k) for k in range(len(old)) if int(ids[k]) not in by_id]
        return _table(rows + list(by_id.values()))
    columns = {name: values.copy() for name, values in old.columns.items()}
    where = np.asarray([position[i] for i in by_id], dtype=np.int64)
    for name in COLUMNS:
        values = [r[name] for r in by_id.values()]
        if columns[name].dtype == object:
            holder = np.empty(len(values), dtype=object)
            holder[:] = values
            columns[name][where] = holder
        else:
            columns[name][where] = values
    table = TeamTable(columns)
    moved = where[
        (old.columns["lon"][where] != columns["lon"][where])
        | (old.columns["lat"][where] != columns["lat"][where])
    ]
    sphere = old._derived.get(("sphere",))
    if sphere is not None:  # unit vectors: only the rows that moved are computed again
        if moved.size:
            sphere = sphere.copy()
            sphere[moved] = unit_vectors(columns["lon"][moved], columns["lat"][moved])
        table._derived[("sphere",)] = sphere
    for key, (graph, points) in list(old._snaps.items()):
        if moved.size:  # re-snap only the rows that moved, on the graph of these snaps
            lon, lat = columns["lon"][moved], columns["lat"][moved]
            points = _replace(points, moved, snap_lonlat(graph, key[1], lon, lat))
            xy = old._derived.get(("xy", graph.srid))
            if xy is not None:  # and project only them
                xy = xy.copy()
                xy[moved] = np.column_stack(graph.to_metric.transform(lon, lat))
                table._derived[("xy", graph.srid)] = xy
        elif ("xy", graph.srid) in old._derived:
            table._derived[("xy", graph.srid)] = old._derived[("xy", graph.srid)]
        table._snaps[key] = (graph, points)
    return table


def _replace(points: EdgePoints, where: np.ndarray, new: EdgePoints) -> EdgePoints:
    edge, fraction = points.edge.copy(), points.fraction.copy()
    distance, xy = points.distance_m.copy(), points.xy.copy()
    edge[where], fraction[where], distance[where], xy[where] = (
        new.edge, new.fraction, new.distance_m, new.xy,
    )  # fmt: skip
    return EdgePoints(edge, fraction, distance, xy)


Versions = dict[str, tuple[int, bool]]


class TeamMirror:
    """One database's teams, shared by the threads of a process (see the module doc)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._table = _table([])
        self._watermark = "0"
        self._epoch: int | None = None
        # Looks on behalf of callers outside a transaction (see shared_view).
        self._looks = threading.Condition()
        self._looks_started = 0
        self._looking = False
        self._last_look: tuple[int, TeamTable, Versions] | None = None

    def view(self, conn: Connection | Session) -> tuple[TeamTable, Versions]:
        """The teams as ``conn``'s transaction sees them, and the data versions it sees.

        Only what changed since the last look is fetched; the versions are as
        :func:`geomap.routing.cache.versions` reads them.

        Parameters
        ----------
        conn : Connection or Session
            The database.

        Returns
        -------
        teams : TeamTable
            The snapshot.
        known : Versions
            The data versions.
        """
        if _outside_transaction(conn):
            return self.shared_view(conn)
        return self.look(conn)

    def shared_view(self, conn: Connection | Session) -> tuple[TeamTable, Versions]:
        """:meth:`look` for a caller outside any transaction: one look serves many callers.

        One look serves every caller that asked before it started. Such a caller has nothing
        uncommitted and needs only to see every commit made before it asked, so any look whose
        snapshot is taken after that will do. A caller takes the result of the first look
        *started* after it arrived, running that look itself when none is running; callers
        arriving meanwhile wait for it or for the next one. Under load the threads of a process
        share the round trip instead of making one each (a round trip costs a busy worker
        ~0.3 ms of CPU, in psycopg and in handing the GIL between threads; the look itself
        0.03 ms).

        Parameters
        ----------
        conn : Connection or Session
            The database, outside any transaction.

        Returns
        -------
        teams : TeamTable
            The snapshot.
        known : Versions
            The data versions.
        """
        with self._looks:
            wanted = self._looks_started + 1  # the first look that starts after now
            while True:
                if self._last_look is not None and self._last_look[0] >= wanted:
                    _, table, versions = self._last_look
                    return table, dict(versions)
                if not self._looking:
                    self._looking = True
                    self._looks_started += 1
                    number = self._looks_started
                    break
                self._looks.wait()
        found = None
        try:
            found = self.look(conn)
            return found[0], dict(found[1])
        finally:  # on failure, a waiting caller runs the next look itself
            with self._looks:
                self._looking = False
                if found is not None:
                    self._last_look = (number, *found)
                self._looks.notify_all()

    def look(self, conn: Connection | Session) -> tuple[TeamTable, Versions]:
        """The teams and versions as ``conn``'s transaction sees them, by a query of its own.

        The query runs outside the lock, so the threads of a busy process do not queue
        behind one another's round trips: each reads from the (table, watermark) pair it
        started from, and publishes its result only if no other thread published since;
        otherwise its view is its own (the next call starts from the newer pair).

        Parameters
        ----------
        conn : Connection or Session
            The database.

        Returns
        -------
        teams : TeamTable
            The snapshot.
        known : Versions
            The data versions.
        """
        with self._lock:
            table, watermark, epoch = self._table, self._watermark, self._epoch
        rows = db.driver_rows(conn, SYNC_SQL, {"watermark": watermark})
        head = rows[0]
        versions = {name: (int(v), bool(mine)) for name, v, mine in head["versions"]}
        changed = [r for r in rows if r["id"] is not None]
        if head["epoch_mine"]:  # our own uncommitted deletion: a private full view
            everything = db.driver_rows(conn, SYNC_SQL, {"watermark": "0"})
            return _table([r for r in everything if r["id"] is not None]), versions
        if head["epoch"] != epoch:  # first use, or someone deleted teams: start over
            if watermark != "0":
                rows = db.driver_rows(conn, SYNC_SQL, {"watermark": "0"})
                changed = [r for r in rows if r["id"] is not None]
            fresh = _table([r for r in changed if not r["mine"]])
        else:
            fresh = _merged(table, [r for r in changed if not r["mine"]])
        with self._lock:
            if self._watermark == watermark and self._epoch == epoch:
                self._table, self._watermark, self._epoch = fresh, head["xmin"], head["epoch"]
        mine = [r for r in changed if r["mine"]]
        return (_merged(fresh, mine) if mine else fresh), versions


def _outside_transaction(conn: Connection | Session) -> bool:
    """Whether ``conn`` runs each statement on its own (a connection in autocommit).

    Then there is no transaction whose snapshot or uncommitted rows a shared look could miss.
    """
    if not isinstance(conn, sa.Connection):
        return False  # an ORM session always works in a transaction
    return bool(getattr(conn.connection.driver_connection, "autocommit", False))
