"""Coverage in a blink: which residents' sample points each place reaches, kept and reused.

The coverage rule is the circles' (see :mod:`geomap.routing.sample`): a sample point of a
grid is covered when it lies within the access width of a street reached within the
budget. The union of several places' reaches is the reach of all of them at once (a point
is within the budget of *some* place exactly when its least cost from any place is), so
the coverage of any set of places is the union of their own covered point sets. This
module keeps those sets, per place and reach, at three levels:

* in the process (a dict per engine: a warm answer is a union and a ``bincount``);
* in the database (``venue_reach``, migration ``0009_planning``), with the sample
  lattice's grid of each point (``coverage_samples``): a fresh process answers without
  loading the street graph or sampling the grids (the cold path);
* computed on demand (one bounded search per place) and written to both.

Keys: a place is keyed by its position (lon, lat as stored), not by a venue id, so a venue
that moves is simply another place, a scenario's added site or an uploaded candidate
shares the same store, and nothing has to be forgotten by trigger. The sample lattice is
keyed by the ``grids`` and ``network`` data versions (``data_versions``, migration 0005)
and the access width: a change to either means new keys, and the old rows are deleted
when new ones are written. A transaction that changed the grids or the network itself
works privately and persists nothing.
"""

from __future__ import annotations

import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
import sqlalchemy as sa
from pyproj import Transformer
from sqlalchemy.orm import Session

from geomap import routing
from geomap.routing import sample as sample_mod

#: Places farther than this from a usable street reach nothing (as in coverage/circles).
MAX_SNAP_M = 1_000.0

GRIDS_SQL = sa.text("SELECT code, name, community_code, population FROM grids ORDER BY code")
SAMPLES_GET_SQL = sa.text(
    "SELECT srid, grid_codes, area_m2, inner_xy, point_grid FROM coverage_samples WHERE key = :key"
)
SAMPLES_PUT_SQL = sa.text(
    """
    INSERT INTO coverage_samples (key, srid, grid_codes, area_m2, inner_xy, point_grid)
    VALUES (:key, :srid, :grid_codes, :area_m2, :inner_xy, :point_grid)
    ON CONFLICT (key) DO NOTHING
    """
)
SAMPLES_PRUNE_SQL = sa.text("DELETE FROM coverage_samples WHERE key <> :key")
REACH_PRUNE_SQL = sa.text("DELETE FROM venue_reach WHERE key <> :key")
REACH_GET_SQL = sa.text(
    """
    SELECT r.lon, r.lat, r.points
    FROM venue_reach r
    JOIN unnest(CAST(:lons AS float8[]), CAST(:lats AS float8[])) AS p(lon, lat)
      ON r.lon = p.lon AND r.lat = p.lat
    WHERE r.key = :key AND r.mode = :mode AND r.budget_s = :budget_s
      AND r.walk_speed_kmh = :speed
    """
)
REACH_PUT_SQL = sa.text(
    """
    INSERT INTO venue_reach (key, mode, budget_s, walk_speed_kmh, lon, lat, points)
    VALUES (:key, :mode, :budget_s, :speed, :lon, :lat, :points)
    ON CONFLICT DO NOTHING
    """
)


@dataclass(frozen=True)
class Reach:
    """How far a place reaches.

    Parameters
    ----------
    mode : str
        ``"walk"`` or ``"drive"``.
    budget_s : float
        The travel budget, seconds.
    walk_speed_kmh : float
        The walking speed, km/h.
    access_m : float
        The access width around reached streets, metres.
    """

    mode: str
    budget_s: float
    walk_speed_kmh: float
    access_m: float


def _pack(points: np.ndarray) -> bytes:
    """Sorted point indices → compressed gaps (a circle's ~3,000 points in ~2-4 kB)."""
    gaps = np.diff(np.asarray(points, dtype=np.int64), prepend=0).astype("<i4")
    return zlib.compress(gaps.tobytes(), 1)


def _unpack(blob: bytes) -> np.ndarray:
    return np.cumsum(np.frombuffer(zlib.decompress(blob), dtype="<i4")).astype(np.int64)


@dataclass
class SampleIndex(sample_mod.GridPoints):
    """The grids' sample points as coverage needs them.

    Each point's grid, each grid's residents, area and inner point (all in grid code order);
    shares, residents and rows as :class:`geomap.routing.sample.GridPoints` reads them.
    """

    key: str
    srid: int
    codes: np.ndarray
    names: np.ndarray
    community_codes: np.ndarray
    population: np.ndarray
    area_m2: np.ndarray
    inner_xy: np.ndarray
    point_grid: np.ndarray
    _lazy: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def n_points(self) -> int:
        """How many sample points the lattice has."""
        return int(self.point_grid.size)

    @property
    def to_metric(self) -> Transformer:
        """Lon/lat (EPSG:4326) to the lattice's metric CRS (``srid``), made on first use."""
        if "to_metric" not in self._lazy:
            self._lazy["to_metric"] = Transformer.from_crs(4326, self.srid, always_xy=True)
        return self._lazy["to_metric"]

    def nearest_m(self, places: np.ndarray) -> np.ndarray:
        """Straight line (metres) from each grid's inner point to the nearest place."""
        if places.shape[0] == 0:
            return np.full(self.codes.size, np.nan)
        x, y = self.to_metric.transform(places[:, 0], places[:, 1])
        tree = shapely.STRtree(shapely.points(x, y))
        _, dist = tree.query_nearest(shapely.points(self.inner_xy), return_distance=True,
                                     all_matches=False)  # fmt: skip
        return dist


class Engine:
    """Reach sets of places for one sample lattice (one grids × network version)."""

    def __init__(self, key: str, access_m: float, private: bool) -> None:
        self.key = key
        self.access_m = access_m
        self.private = private
        self.samples: SampleIndex | None = None
        self.sets: dict[tuple, np.ndarray] = {}
        self.lock = threading.Lock()

    # -- the street graph and the full samples: only when a place must be computed
    def full(self, session: Session) -> tuple[Any, Any]:
        """The street graph and the full grid samples ``session`` sees (built on demand).

        Parameters
        ----------
        session : Session
            The caller's session; its transaction decides the data versions.

        Returns
        -------
        tuple
            ``(StreetGraph, GridSamples)``.
        """
        known = routing.versions(session)
        graph = routing.current_graph(session, known)
        return graph, routing.grid_samples(session, graph, self.access_m, known)

    def sample_index(self, session: Session) -> SampleIndex:
        """The kept sample lattice, loaded from the database once per engine.

        Parameters
        ----------
        session : Session
            Where the lattice is read (or built and written) from.

        Returns
        -------
        SampleIndex
            The lattice.
        """
        if self.samples is None:
            self.samples = _load_samples(session, self)
        return self.samples

    def reach_sets(
        self, session: Session, places: np.ndarray, reach: Reach, *,
        persist: bool = True,
        progress: Callable[[int, int], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> list[np.ndarray]:  # fmt: skip
        """The covered sample points of each place (lon/lat rows), in order."""
        spec = (reach.mode, float(reach.budget_s), float(reach.walk_speed_kmh))
        keys = [(*spec, float(lon), float(lat)) for lon, lat in places]
        missing = sorted({k for k in keys if k not in self.sets})
        if missing and not self.private:
            lons = [k[3] for k in missing]
            lats = [k[4] for k in missing]
            found = session.execute(REACH_GET_SQL, {
                "key": self.key, "mode": reach.mode, "budget_s": spec[1], "speed": spec[2],
                "lons": lons, "lats": lats,
            }).all()  # fmt: skip
            for lon, lat, blob in found:
                self.sets[(*spec, float(lon), float(lat))] = _unpack(blob)
            missing = [k for k in missing if k not in self.sets]
        if missing:
            computed = self._compute(session, missing, reach, progress, cancelled)
            self.sets.update(computed)
            if persist and not self.private:
                session.execute(REACH_PRUNE_SQL, {"key": self.key})
                session.execute(REACH_PUT_SQL, [
                    {"key": self.key, "mode": k[0], "budget_s": k[1], "speed": k[2],
                     "lon": k[3], "lat": k[4], "points": _pack(v)}
                    for k, v in computed.items()
                ])  # fmt: skip
        return [self.sets[k] for k in keys]

    def _compute(self, session, keys, reach, progress, cancelled) -> dict[tuple, np.ndarray]:
        from geomap.routing import search, snap

        graph, samples = self.full(session)
        lon = np.array([k[3] for k in keys])
        lat = np.array([k[4] for k in keys])
        starts = snap.snap_lonlat(graph, reach.mode, lon, lat, max_distance_m=MAX_SNAP_M)
        speed = search.access_speed_ms(reach.mode, reach.walk_speed_kmh)
        out: dict[tuple, np.ndarray] = {}
        empty = np.zeros(0, dtype=np.int64)
        for i, key in enumerate(keys):
            if cancelled is not None and i % 50 == 0 and cancelled():
                raise Cancelled()
            start = starts.take(np.array([i]))
            if not start.found[0]:
                out[key] = empty
            else:
                found = search.search(
                    graph, reach.mode, start,
                    offsets_s=np.array([float(start.distance_m[0]) / speed]),
                    budget_s=reach.budget_s, walk_speed_kmh=reach.walk_speed_kmh,
                )  # fmt: skip
                # Kept as the covered points' indices (samples.covered gives a mask).
                covered = samples.covered(routing.reach.reached(found))
                out[key] = np.flatnonzero(covered)
            if progress is not None and (i % 25 == 0 or i + 1 == len(keys)):
                progress(i + 1, len(keys))
        return out


class Cancelled(Exception):
    """A long computation was asked to stop (a job's cancel)."""


_engines: OrderedDict[tuple, Engine] = OrderedDict()
_engines_lock = threading.Lock()
MAX_ENGINES = 4


def samples_key(known: dict[str, Any], access_m: float) -> tuple[str, bool]:
    """The lattice's key from the data versions, and whether it is private.

    Private means this transaction changed the grids or the network, so what it builds is
    never kept for others.

    Parameters
    ----------
    known : dict
        ``routing.versions``: per data set, ``(version, changed by this transaction)``.
    access_m : float
        The access width around reached streets, metres.

    Returns
    -------
    tuple
        ``(key, private)``.
    """
    grids_v, grids_mine = known["grids"]
    net_v, net_mine = known["network"]
    key = f"g{grids_v}:n{net_v}:a{float(access_m):g}:s{sample_mod.SPACING_M:g}"
    return key, bool(grids_mine or net_mine)


def engine(session: Session, access_m: float) -> Engine:
    """The engine of the lattice ``session``'s transaction sees."""
    known = routing.versions(session)
    key, private = samples_key(known, access_m)
    if private:
        return Engine(key, access_m, private=True)
    cache_key = (known["db"][0], key)
    with _engines_lock:
        found = _engines.get(cache_key)
        if found is None:
            found = _engines[cache_key] = Engine(key, access_m, private=False)
            while len(_engines) > MAX_ENGINES:
                _engines.popitem(last=False)
        _engines.move_to_end(cache_key)
        return found


def clear() -> None:
    """Forget every engine (tests)."""
    with _engines_lock:
        _engines.clear()


def _load_samples(session: Session, eng: Engine) -> SampleIndex:
    grids = session.execute(GRIDS_SQL).all()
    codes = np.array([g.code for g in grids], dtype=object)
    stored = None if eng.private else session.execute(SAMPLES_GET_SQL, {"key": eng.key}).first()
    if stored is not None and list(stored.grid_codes) == list(codes):
        return SampleIndex(
            key=eng.key, srid=int(stored.srid), codes=codes,
            names=np.array([g.name for g in grids], dtype=object),
            community_codes=np.array([g.community_code for g in grids], dtype=object),
            population=np.array([g.population for g in grids], dtype=np.int64),
            area_m2=np.frombuffer(zlib.decompress(stored.area_m2), dtype="<f8").copy(),
            inner_xy=np.frombuffer(zlib.decompress(stored.inner_xy), dtype="<f8").reshape(-1, 2),
            point_grid=_unpack(stored.point_grid),
        )  # fmt: skip
    graph, full = eng.full(session)
    index = SampleIndex(
        key=eng.key, srid=int(graph.srid), codes=full.codes, names=full.names,
        community_codes=full.community_codes, population=full.population,
        area_m2=np.asarray(full.area_m2, dtype=float), inner_xy=np.asarray(full.inner_xy),
        point_grid=np.asarray(full.point_grid, dtype=np.int64),
    )  # fmt: skip
    if not eng.private and codes.size:
        session.execute(SAMPLES_PRUNE_SQL, {"key": eng.key})
        session.execute(SAMPLES_PUT_SQL, {
            "key": eng.key, "srid": index.srid, "grid_codes": list(index.codes),
            "area_m2": zlib.compress(index.area_m2.astype("<f8").tobytes(), 1),
            "inner_xy": zlib.compress(index.inner_xy.astype("<f8").tobytes(), 1),
            "point_grid": _pack(index.point_grid),
        })  # fmt: skip
    return index


def union(sets: list[np.ndarray], n_points: int) -> np.ndarray:
    """Sorted union of point index arrays (through a mask: no sort of 10⁶ values)."""
    mask = np.zeros(n_points, dtype=bool)
    for s in sets:
        mask[s] = True
    return np.flatnonzero(mask)


def covered_points(
    session: Session, places: np.ndarray, reach: Reach
) -> tuple[SampleIndex, np.ndarray]:
    """The sample index and the points covered by any of ``places`` (lon/lat rows)."""
    eng = engine(session, reach.access_m)
    samples = eng.sample_index(session)
    if places.shape[0] == 0:
        return samples, np.zeros(0, dtype=np.int64)
    return samples, union(eng.reach_sets(session, places, reach), samples.n_points)


def grid_rows(session: Session, places: np.ndarray, reach: Reach) -> list[dict]:
    """Per-grid coverage rows for the reach of ``places``, from the kept reach sets.

    The same answer as :func:`geomap.analysis.coverage.network_rows`.

    Parameters
    ----------
    session : Session
        The caller's session.
    places : numpy.ndarray
        ``(n, 2)`` lon/lat rows (EPSG:4326).
    reach : Reach
        How far each place reaches.

    Returns
    -------
    list of dict
        One row per grid, in grid code order.
    """
    samples, points = covered_points(session, places, reach)
    return samples.rows(samples.grid_shares(points), samples.nearest_m(places))
