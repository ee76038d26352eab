"""Nearest teams to a point: by straight-line metres, or by travel time on the road network.

``nearest_teams(session, lon=..., lat=..., k=5, by="drive")`` answers a commander's
question "which available teams are closest, and how long until they arrive?".

* ``by="distance"``: exact geodesic metres (WGS84 spheroid, as PostGIS measures
  ``geography``) over the process's mirror of the teams: the k nearest on the sphere
  give a radius, and every team within it is measured exactly (:func:`rank_by_distance`).
  The database does the same with its GiST index (:data:`KNN_SQL`, the reference the
  tests compare against); the mirror answers with one small query to learn what changed
  instead of one that plans a spatial search per request.
* ``by="walk" | "drive"``: travel times on the in-memory street graph
  (:mod:`geomap.routing`): one Dijkstra from the point on the reversed graph, bounded by
  a budget that grows until it provably holds the k best (see :func:`_network_rank`),
  over the process's mirror of the teams. pgRouting (``geomap.network``) gives the same
  answers in the database; the tests compare the two.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa
from pyproj import Geod
from sqlalchemy.orm import Session

from geomap import routing, vocab
from geomap.analysis import city
from geomap.errors import InvalidInput, Unreachable
from geomap.params import (
    MODES,
    check_choice,
    check_choices,
    check_int,
    check_lonlat,
    check_positive,
)
from geomap.routing import search
from geomap.routing.snap import snap_one

GEOD = Geod(ellps="WGS84")
MAX_K = 100
MAX_DISTANCE_M = 200_000.0

_TEAM_COLUMNS = """
    t.id, t.code, t.name, t.kind, t.status, t.headcount, t.unit, t.capabilities,
    ST_X(t.geom) AS lon, ST_Y(t.geom) AS lat, t.position_at
"""

# The filters every query shares; NULL parameters switch a filter off.
_TEAM_FILTERS = """
    t.status = ANY(CAST(:statuses AS text[]))
    AND (CAST(:kinds AS text[]) IS NULL OR t.kind = ANY(CAST(:kinds AS text[])))
    AND (CAST(:capability AS text) IS NULL
         OR t.capabilities @> ARRAY[CAST(:capability AS text)])
"""

# The query point, written inline wherever it is used: a point from a CTE is a join, and
# an ORDER BY over a join cannot walk the GiST index (it sorts every team instead).
_PT = "ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography"

# The database's answer (the reference for rank_by_distance; tests compare the two).
# Step 1: the k nearest by the index (``<->`` on geography ranks on the sphere);
# step 2: everything within the largest spheroid distance of that set, ranked exactly.
# Step 2 cannot miss a team: k teams lie within that radius, so the true k nearest do too.
# One round trip: the k nearest teams, and the regions' version the city check needs.
KNN_SQL = sa.text(
    f"""
    WITH knn AS (
        SELECT ST_Distance(t.geom::geography, {_PT}) AS d
        FROM teams t
        WHERE {_TEAM_FILTERS}
        ORDER BY t.geom::geography <-> {_PT}
        LIMIT :k
    ),
    found AS (
        SELECT {_TEAM_COLUMNS}, ST_Distance(t.geom::geography, {_PT}) AS distance_m
        FROM teams t
        WHERE {_TEAM_FILTERS}
          AND ST_DWithin(t.geom::geography, {_PT},
                         least((SELECT max(d) + 0.001 FROM knn), :max_m))
        ORDER BY distance_m, t.id
        LIMIT :k
    )
    SELECT v.version AS regions_version,
           coalesce(v.changed_xid = pg_current_xact_id_if_assigned(), false) AS regions_mine,
           found.*
    FROM data_versions v
    LEFT JOIN found ON true
    WHERE v.name = 'regions'
    ORDER BY found.distance_m, found.id
    """
)

@dataclass(frozen=True)
class Query:
    """The normalised inputs of a nearest-teams query (echoed in answers).

    Parameters
    ----------
    lon, lat : float
        The point, WGS 84 degrees.
    k : int
        How many teams, 1 to ``MAX_K``.
    by : {"distance", "walk", "drive"}
        The measure: geodesic metres, or travel time on the network.
    kinds : list of str or None
        Only teams of these kinds; all when None.
    statuses : list of str
        Only teams in these statuses (``["available"]`` unless given).
    capability : str or None
        Only teams with this capability.
    max_distance_m : float
        The farthest a team may be, geodesic metres.
    route : bool
        Whether each team carries its route (travel modes only).
    """

    lon: float
    lat: float
    k: int
    by: str
    kinds: list[str] | None
    statuses: list[str]
    capability: str | None
    max_distance_m: float
    route: bool

    def params(self) -> dict[str, Any]:
        """The query's filters as the answer echoes them.

        Returns
        -------
        dict
            lon, lat, k, kinds, statuses, capability and ``max_m``.
        """
        return {
            "lon": self.lon,
            "lat": self.lat,
            "k": self.k,
            "kinds": self.kinds,
            "statuses": self.statuses,
            "capability": self.capability,
            "max_m": self.max_distance_m,
        }


def make_query(
    lon: Any,
    lat: Any,
    *,
    k: Any = 5,
    by: str = "distance",
    kinds: list[str] | None = None,
    statuses: list[str] | None = None,
    capability: str | None = None,
    max_distance_m: Any = None,
    route: bool = False,
) -> Query:
    """Validate and normalise the inputs; every error names its parameter.

    Parameters
    ----------
    lon, lat : object
        The point, WGS 84 degrees (numbers or numeric text).
    k : object, default 5
        How many teams, 1 to ``MAX_K``.
    by : str, default "distance"
        One of ``MODES``.
    kinds, statuses : list of str, optional
        Team kinds and statuses kept (statuses default to ``available``).
    capability : str, optional
        A capability every team kept has; not blank.
    max_distance_m : object, optional
        The farthest a team may be, metres; ``MAX_DISTANCE_M`` when None.
    route : bool, default False
        Whether to answer each team's route.

    Returns
    -------
    Query
        The checked query.

    Raises
    ------
    InvalidInput
        A bad value, naming its parameter.
    """
    lon_f, lat_f = check_lonlat(lon, lat)
    if capability is not None and not capability.strip():
        raise InvalidInput("capability must not be empty", field="capability")
    return Query(
        lon=lon_f,
        lat=lat_f,
        k=check_int(k, "k", 1, MAX_K),
        by=check_choice(by, "by", MODES),
        kinds=check_choices(kinds, "kind", vocab.TEAM_KINDS),
        statuses=check_choices(statuses, "status", vocab.TEAM_STATUSES) or ["available"],
        capability=capability.strip() if capability else None,
        max_distance_m=(
            MAX_DISTANCE_M
            if max_distance_m is None
            else check_positive(max_distance_m, "max_distance_m", MAX_DISTANCE_M)
        ),
        route=bool(route),
    )


def nearest_teams(session: Session, query: Query, *, walk_speed_kmh: float = 4.5) -> dict:
    """The k nearest teams matching the filters, by distance or travel time.

    Parameters
    ----------
    session : Session
        An open session (or connection) on a geomap database.
    query : Query
        Built by :func:`make_query` (coordinates already in WGS 84).
    walk_speed_kmh : float
        Walking speed for ``by="walk"``, km/h.

    Returns
    -------
    dict
        ``{"query": {...}, "teams": [{"id", "name", "kind", "status", "headcount", "lon",
        "lat", "distance_m", "travel_min", ...}], "elapsed_ms"}`` sorted by the measure
        (``travel_min`` is None for ``by="distance"``).

    Raises
    ------
    Unreachable
        When the point lies outside the city, or (network modes) no road is within reach.
    """
    started = time.perf_counter()
    if query.by == "distance":
        teams = rank_by_distance(session, query)
    else:
        teams = _network_rank(session, query, walk_speed_kmh)
    return {
        "query": {
            "lon": query.lon,
            "lat": query.lat,
            "k": query.k,
            "by": query.by,
            "kind": query.kinds,
            "status": query.statuses,
            "capability": query.capability,
            "max_distance_m": query.max_distance_m,
        },
        "teams": teams,
        "elapsed_ms": round((time.perf_counter() - started) * 1000, 1),
    }


#: Mean radius of the WGS84 ellipsoid (metres), for the sphere the first pass ranks on.
_SPHERE_R_M = 6_371_008.8
#: Geodesic metres on the ellipsoid over great-circle metres on that sphere stay within
#: about ±0.6 % (the radii of curvature run from 6,335 to 6,400 km): a radius this much
#: larger than the k-th geodesic distance, plus a metre for rounding, holds every team
#: that could beat it.
_SPHERE_SLACK = 1.01
_ROUNDING_M = 1.0


def rank_by_distance(session: Session, query: Query) -> list[dict]:
    """The k teams nearest to the query point in geodesic metres, from the team mirror.

    Two passes, exact like :data:`KNN_SQL`: any k matching teams, here the k nearest on
    the sphere (a k-d tree of unit vectors), bound the answer by their largest geodesic
    distance; every team within that bound on the sphere (widened for the sphere's
    error) is then measured on the WGS 84 ellipsoid (pyproj's geodesics, GeographicLib,
    as PostGIS's), and the k smallest win, ties by id.

    Parameters
    ----------
    session : Session
        The database (the team mirror).
    query : Query
        The point and the filters.

    Returns
    -------
    list of dict
        The teams, nearest first, each with ``distance_m``.
    """
    teams, known = routing.team_mirror(session)
    city.check_in_city(session, query.lon, query.lat, known=known)
    rows, tree = teams.sphere_index(teams.mask(kinds=query.kinds, statuses=query.statuses,
                                               capability=query.capability))  # fmt: skip
    if tree is None:
        return []
    here = routing.mirror.unit_vectors(np.array([query.lon]), np.array([query.lat]))[0]
    k = min(query.k, rows.size)
    _, first = tree.query(here, k)
    bound_m = min(float(_geodesic_m(teams, rows[np.atleast_1d(first)], query).max()),
                  query.max_distance_m)  # fmt: skip
    angle = min((bound_m * _SPHERE_SLACK + _ROUNDING_M) / _SPHERE_R_M, np.pi)
    near = rows[np.asarray(tree.query_ball_point(here, 2.0 * np.sin(angle / 2.0)), dtype=int)]
    distance_m = _geodesic_m(teams, near, query)
    inside = distance_m <= query.max_distance_m
    near, distance_m = near[inside], distance_m[inside]
    order = np.lexsort((teams["id"][near], distance_m))[:k]
    return [_team(_team_from(teams, int(near[j]), float(distance_m[j])), travel_s=None)
            for j in order]  # fmt: skip


def _geodesic_m(teams: routing.mirror.TeamTable, rows: np.ndarray, query: Query) -> np.ndarray:
    _, _, distance_m = GEOD.inv(np.full(rows.size, query.lon), np.full(rows.size, query.lat),
                                teams["lon"][rows], teams["lat"][rows])  # fmt: skip
    return np.asarray(distance_m, dtype=float)


def _team(row: Any, travel_s: float | None, route: Any = None) -> dict:
    team = {
        "id": row["id"],
        "code": row["code"],
        "name": row["name"],
        "kind": row["kind"],
        "status": row["status"],
        "headcount": row["headcount"],
        "unit": row["unit"],
        "capabilities": list(row["capabilities"] or []),
        "lon": round(row["lon"], 7),
        "lat": round(row["lat"], 7),
        "position_at": row["position_at"].isoformat() if row["position_at"] else None,
        "distance_m": round(float(row["distance_m"]), 2),
        "travel_min": None if travel_s is None else round(travel_s / 60.0, 2),
    }
    if route is not None:
        team["route"] = route
    return team


#: Farthest a query point may lie from a road usable in the mode (metres).
MAX_POINT_SNAP_M = 1_000.0
#: Speeds (km/h) that set a search's first budget from the k-th straight-line distance;
#: a wrong guess only costs another, larger search (the budget doubles).
_GUESS_KMH = {"drive": 25.0}
#: The first budget's floor (seconds). Every team on an edge the search touches is priced,
#: so a generous floor costs more than a second search: with 60 s, driving searches among
#: 10,000 teams priced ~1,650 of them for 5 (1.1 ms a query on Helsinki); with 15 s, ~160,
#: and 2 % of queries search again (0.87 ms).
_FIRST_BUDGET_MIN_S = 15.0


def _team_from(table: routing.mirror.TeamTable, i: int, distance_m: float) -> dict:
    row = table.row(i)
    row["distance_m"] = distance_m
    return row


def _network_rank(session: Session, query: Query, walk_speed_kmh: float) -> list[dict]:
    """Rank the teams matching the query's filters by travel time (see :func:`rank_by_time`)."""

    def keep(teams: routing.mirror.TeamTable) -> np.ndarray:
        return teams.mask(kinds=query.kinds, statuses=query.statuses, capability=query.capability)

    ranking = rank_by_time(session, query.lon, query.lat, mode=query.by, k=query.k, keep=keep,
                           max_distance_m=query.max_distance_m, route=query.route,
                           walk_speed_kmh=walk_speed_kmh)  # fmt: skip
    return ranking.answer


@dataclass(frozen=True)
class Ranking:
    """Teams ranked by travel time to a point: the answer rows, and what they came from.

    Parameters
    ----------
    teams : TeamTable
        The team mirror the ranking read.
    known : dict
        The data versions it saw.
    graph : StreetGraph
        The street graph searched.
    chosen : numpy.ndarray
        Row indices into ``teams``, best first.
    total_s : numpy.ndarray
        Their travel times, seconds, access legs included.
    answer : list of dict
        The answer rows, in the same order.
    """

    teams: routing.mirror.TeamTable
    known: dict[str, Any]
    graph: routing.StreetGraph
    chosen: np.ndarray
    total_s: np.ndarray
    answer: list[dict]


def rank_by_time(
    session: Session,
    lon: float,
    lat: float,
    *,
    mode: str,
    k: int,
    keep: Callable[[routing.mirror.TeamTable], np.ndarray],
    max_distance_m: float = MAX_DISTANCE_M,
    route: bool = False,
    walk_speed_kmh: float = 4.5,
) -> Ranking:
    """Rank teams by travel time to a point on the in-memory street graph.

    A team's time is: its walk (or slow drive, ``search.DRIVE_ACCESS_KMH``) to its position
    along its nearest edge, the network from there to the point's position along its
    edge, and the point's access leg. One Dijkstra on the reversed graph from the point,
    limited to a budget B, prices every team whose edge it reaches.

    Why the answer is exact: a team priced at network cost ≤ B is priced exactly (the
    search settled every node cheaper than B). A team left unpriced, or priced above B,
    needs more than B on the network, so more than ``B + point access`` in all. Once the
    k-th best total is at most ``B + point access``, nothing outside can beat it; until
    then B doubles (and finally becomes unlimited: teams that cannot reach the point at
    all are simply absent).

    Parameters
    ----------
    session : Session
        The database (the graph and the team mirror, through the routing cache).
    lon, lat : float
        The point, WGS 84 degrees.
    mode : {"walk", "drive"}
        The travel mode.
    k : int
        How many teams, at most.
    keep : callable
        ``keep(teams)``: which rows of the team mirror may be ranked (a boolean array).
    max_distance_m : float, default MAX_DISTANCE_M
        The farthest a team may be in a straight line, metres.
    route : bool, default False
        Whether each answer row carries its route (GeoJSON, WGS 84).
    walk_speed_kmh : float, default 4.5
        The walking speed, km/h.

    Returns
    -------
    Ranking
        The ranked teams.

    Raises
    ------
    Unreachable
        The point lies outside the city, or no road is within ``MAX_POINT_SNAP_M`` of it.
    """
    teams, known = routing.team_mirror(session)
    city.check_in_city(session, lon, lat, known=known)
    graph = routing.current_graph(session, known)
    point = snap_one(graph, mode, lon, lat, max_distance_m=MAX_POINT_SNAP_M)
    access_ms = search.access_speed_ms(mode, walk_speed_kmh)
    ready = teams.routable(graph, mode, keep(teams))
    here = np.array(graph.to_metric.transform(lon, lat))
    if ready.tree is None:
        return Ranking(teams, known, graph, np.zeros(0, dtype=np.int64), np.zeros(0), [])
    allowed = np.ones(ready.rows.size, dtype=bool)
    # The farthest any of them can be: from the point to the far corner of their box.
    corner_m = np.maximum(np.abs(ready.tree.maxes - here), np.abs(ready.tree.mins - here))
    if float(np.hypot(*corner_m)) > max_distance_m:  # some lie beyond the limit: drop them
        allowed[:] = False
        allowed[ready.tree.query_ball_point(here, max_distance_m)] = True
    count = int(np.count_nonzero(allowed))
    if count == 0:
        return Ranking(teams, known, graph, np.zeros(0, dtype=np.int64), np.zeros(0), [])
    point_access_s = float(point.distance_m[0]) / access_ms
    k = min(k, count)
    # The first budget: the k-th straight-line distance at a guessed speed (a guess only;
    # too small costs another search with twice the budget).
    straight_m, _ = ready.tree.query(here, k)
    guess_ms = (_GUESS_KMH.get(mode) or walk_speed_kmh) / 3.6
    budget_s = max(_FIRST_BUDGET_MIN_S, 1.5 * float(np.max(straight_m)) / guess_ms)
    while True:
        found = search.search(graph, mode, point, reverse=True, budget_s=budget_s,
                              walk_speed_kmh=walk_speed_kmh, predecessors=route)  # fmt: skip
        # Price only the teams on edges the search touched: the others cost more than the
        # budget, which the loop's test below already accounts for.
        touched = found.touches(ready.points.edge, ready.edge_u, ready.edge_v)
        which = np.flatnonzero(allowed & touched)
        candidates = ready.rows[which]
        points = ready.points.take(which)
        network_s, via = found.cost_at(points)
        total_s = network_s + points.distance_m / access_ms + point_access_s
        # Ties broken by id, equal to a microsecond (sums in another order differ by ulps).
        order = np.lexsort((teams["id"][candidates], np.round(total_s, 6)))[:k]
        order = order[np.isfinite(total_s[order])]
        if not np.isfinite(budget_s):
            break
        if order.size == k and total_s[order[-1]] <= budget_s + point_access_s:
            break
        budget_s = budget_s * 2.0 if budget_s < 6 * 3600 else np.inf
    if order.size == 0:
        raise Unreachable(
            "no team matching the filters can reach the point on the road network", field="lon"
        )
    chosen = candidates[order]
    _, _, geodesic_m = GEOD.inv(np.full(chosen.size, lon), np.full(chosen.size, lat),
                                teams["lon"][chosen], teams["lat"][chosen])  # fmt: skip
    answer = []
    for rank, (i, j) in enumerate(zip(chosen.tolist(), order.tolist(), strict=True)):
        line = None
        if route:
            line = _route(graph, found, points.take(np.array([j])), int(via[j]),
                          (teams["lon"][i], teams["lat"][i]), (lon, lat))  # fmt: skip
        row = _team_from(teams, i, float(geodesic_m[rank]))
        answer.append(_team(row, float(total_s[j]), line))
    return Ranking(teams, known, graph, chosen, total_s[order], answer)


def _route(
    graph: routing.StreetGraph,
    found: search.Search,
    team: routing.EdgePoints,
    via: int,
    team_lonlat: tuple[float, float],
    point_lonlat: tuple[float, float],
) -> dict | None:
    """The route from a team to the point as a GeoJSON LineString.

    The team's access leg, the streets, the point's access leg.
    """
    coords = search.route_coords(found, team, via)
    if coords is None:
        return None
    lon, lat = graph.to_lonlat.transform(coords[:, 0], coords[:, 1])
    line = [list(team_lonlat), *zip(lon.tolist(), lat.tolist(), strict=True), list(point_lonlat)]
    rounded = [[round(float(a), 7), round(float(b), 7)] for a, b in line]
    deduplicated = [xy for n, xy in enumerate(rounded) if n == 0 or xy != rounded[n - 1]]
    return {"type": "LineString", "coordinates": deduplicated}
