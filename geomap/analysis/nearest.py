"""Nearest teams to a point: by straight-line metres, or by travel time on the road network.

``nearest_teams(session, lon=..., lat=..., k=5, by="drive")`` answers a commander's
question "which available teams are closest, and how long until they arrive?".

* ``by="distance"``: an index-assisted KNN on ``geom::geography`` (metres, not degrees),
  then exact geodesic metres (WGS84 spheroid) for the short list.
* ``by="walk" | "drive"``: a straight-line short list, then travel times with pgRouting
  from each team's snapped road node to the point's snapped node, re-ranked. The short
  list is provably wide enough: see :func:`_network_rank`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from geomap import network, vocab
from geomap.errors import InvalidInput, Unreachable
from geomap.params import (
    MODES,
    check_choice,
    check_choices,
    check_int,
    check_lonlat,
    check_positive,
)

MAX_K = 100
MAX_DISTANCE_M = 200_000.0
#: Speed of the legs between a point and its snapped road node when driving (km/h):
#: the slowest drivable class, so that travel times never flatter a team.
DRIVE_ACCESS_KMH = 15.0

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

# Step 1: the k nearest by the index (``<->`` on geography ranks on the sphere);
# step 2: everything within the largest spheroid distance of that set, ranked exactly.
# Step 2 cannot miss a team: k teams lie within that radius, so the true k nearest do too.
KNN_SQL = sa.text(
    f"""
    WITH knn AS (
        SELECT ST_Distance(t.geom::geography, {_PT}) AS d
        FROM teams t
        WHERE {_TEAM_FILTERS}
        ORDER BY t.geom::geography <-> {_PT}
        LIMIT :k
    )
    SELECT {_TEAM_COLUMNS}, ST_Distance(t.geom::geography, {_PT}) AS distance_m
    FROM teams t
    WHERE {_TEAM_FILTERS}
      AND ST_DWithin(t.geom::geography, {_PT},
                     least((SELECT max(d) + 0.001 FROM knn), :max_m))
    ORDER BY distance_m, t.id
    LIMIT :k
    """
)

# Candidates for the network ranking: the n nearest (or all within :radius_m), each with
# its nearest road node usable in the mode and the distance to it.
CANDIDATES_SQL = """
    SELECT {columns}, ST_Distance(t.geom::geography, {pt}) AS distance_m,
           snap.node_id, snap.snap_m
    FROM teams t
    CROSS JOIN LATERAL (
        SELECT n.id AS node_id, ST_Distance(n.geom::geography, t.geom::geography) AS snap_m
        FROM road_nodes n
        WHERE EXISTS (
            SELECT 1 FROM road_edges e
            WHERE (e.source_node = n.id OR e.target_node = n.id)
              AND (e.{cost} >= 0 OR e.{reverse_cost} >= 0))
        ORDER BY n.geom::geography <-> t.geom::geography
        LIMIT 1
    ) AS snap
    WHERE {filters}
      AND ST_DWithin(t.geom::geography, {pt}, :max_m)
      {within}
    ORDER BY t.geom::geography <-> {pt}
    {limit}
"""

MAX_SPEED_SQL = {
    "walk": None,  # walking costs are length / walking speed everywhere
    "drive": sa.text("SELECT max(length_m / drive_s) FROM road_edges WHERE drive_s > 0"),
}

# Whether the point lies in the city: against the indexed pieces of its outline
# (region_pieces), not the whole outline. NULL when no city is loaded.
IN_CITY_SQL = sa.text(
    """
    SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM regions WHERE level = 'city') THEN NULL
                ELSE EXISTS (SELECT 1 FROM region_pieces
                             WHERE level = 'city'
                               AND ST_Intersects(geom, ST_SetSRID(ST_MakePoint(:lon, :lat),
                                                                  4326)))
           END
    """
)
CITY_NAMES_SQL = sa.text("SELECT string_agg(name, ', ') FROM regions WHERE level = 'city'")


@dataclass(frozen=True)
class Query:
    """The normalised inputs of a nearest-teams query (echoed in answers)."""

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
    """Validate and normalise the inputs; every error names its parameter."""
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
        Built by :func:`make_query` (coordinates already in WGS84).
    walk_speed_kmh : float
        Walking speed for ``by="walk"``.

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
    _check_in_city(session, query)
    if query.by == "distance":
        rows = session.execute(KNN_SQL, query.params()).mappings().all()
        teams = [_team(row, travel_s=None) for row in rows]
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


def _check_in_city(session: Session, query: Query) -> None:
    inside = session.execute(IN_CITY_SQL, query.params()).scalar()
    if inside is False:  # None: no city boundary loaded, nothing to check against
        names = session.execute(CITY_NAMES_SQL).scalar()
        raise Unreachable(
            f"the point ({query.lon:.6f}, {query.lat:.6f}) lies outside the city ({names}); "
            "check the coordinates and their crs",
            field="lon",
        )


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


def _candidates(
    session: Session, query: Query, mode: str, *, limit: int | None, radius_m: float | None
) -> list[Any]:
    cost, reverse_cost = network.cost_columns(mode)
    sql = CANDIDATES_SQL.format(
        columns=_TEAM_COLUMNS,
        filters=_TEAM_FILTERS,
        cost=cost,
        reverse_cost=reverse_cost,
        pt=_PT,
        within=f"AND ST_DWithin(t.geom::geography, {_PT}, :radius_m)" if radius_m else "",
        limit="LIMIT :limit" if limit else "",
    )
    params = {**query.params(), "limit": limit, "radius_m": radius_m}
    return list(session.execute(sa.text(sql), params).mappings().all())


def _max_speed_ms(session: Session, mode: str, walk_speed_kmh: float) -> float:
    if mode == "walk":
        return walk_speed_kmh / 3.6
    fastest = session.execute(MAX_SPEED_SQL["drive"]).scalar()
    if not fastest:
        raise Unreachable("the road network has no drivable edge", field="by")
    return float(fastest)


def _network_rank(session: Session, query: Query, walk_speed_kmh: float) -> list[dict]:
    """Rank teams by network travel time, with a short list that cannot miss the best.

    Why the short list is wide enough: a team's travel time is at least its straight-line
    distance divided by the fastest speed on the network (``v_max``: the walking speed, or
    the fastest drivable edge), because the route is at least as long as the straight line
    and no part of it is faster than ``v_max``. Round 1 ranks the ``max(4k, 25)`` teams
    nearest in a straight line; with ``T_k`` the k-th best travel time found, any team
    farther than ``T_k * v_max`` cannot beat it. If some unranked team may be nearer than
    that, round 2 ranks every team within ``T_k * v_max``. The edges given to pgRouting are
    those in a box around the point with a margin of the same radius: every route of cost
    at most ``T_k`` stays within ``T_k * v_max`` of the point.
    """
    mode = query.by
    v_max = _max_speed_ms(session, mode, walk_speed_kmh)
    access_ms = (walk_speed_kmh if mode == "walk" else DRIVE_ACCESS_KMH) / 3.6
    start = network.snap(session, query.lon, query.lat, mode=mode)
    n_first = max(4 * query.k, 25)
    candidates = _candidates(session, query, mode, limit=n_first, radius_m=None)
    if not candidates:
        return []
    radius_m = 2.0 * max(c["distance_m"] for c in candidates) + 2_000.0
    ranked = _travel_times(session, query, start, candidates, mode, radius_m, access_ms,
                           walk_speed_kmh)  # fmt: skip
    if not ranked:
        raise Unreachable(
            "no team matching the filters can reach the point on the road network", field="lon"
        )
    t_k = ranked[min(query.k, len(ranked)) - 1][0]
    bound_m = t_k * v_max
    complete = len(candidates) < n_first or candidates[-1]["distance_m"] >= bound_m
    if not (complete and bound_m <= radius_m):
        candidates = _candidates(session, query, mode, limit=None, radius_m=bound_m)
        ranked = _travel_times(session, query, start, candidates, mode,
                               max(bound_m, radius_m), access_ms, walk_speed_kmh)  # fmt: skip
    best = ranked[: query.k]
    routes = (
        _routes(session, start, [row for _, row in best], mode, walk_speed_kmh)
        if (query.route and best)
        else {}
    )
    return [_team(row, travel_s, routes.get(row["id"])) for travel_s, row in best]


def _travel_times(
    session: Session,
    query: Query,
    start: network.Snap,
    candidates: list[Any],
    mode: str,
    radius_m: float,
    access_ms: float,
    walk_speed_kmh: float,
) -> list[tuple[float, Any]]:
    """(travel seconds, candidate row) for every candidate that can reach the point."""
    bbox = network.bbox_around(query.lon, query.lat, radius_m)
    # Teams travel to the point: on the reversed graph one search from the point's node
    # gives every team node's cost to it.
    edges = network.edges_sql(mode, bbox=bbox, walk_speed_kmh=walk_speed_kmh, reverse=True)
    nodes = sorted({c["node_id"] for c in candidates})
    cost_by_node = network.costs_from(session, edges, start.node_id, nodes)
    ranked = []
    for row in candidates:
        network_s = cost_by_node.get(row["node_id"])
        if network_s is None:
            continue
        access_s = (row["snap_m"] + start.distance_m) / access_ms
        ranked.append((network_s + access_s, row))
    ranked.sort(key=lambda pair: (pair[0], pair[1]["id"]))
    return ranked


def _routes(
    session: Session, start: network.Snap, rows: list[Any], mode: str, walk_speed_kmh: float
) -> dict[int, dict]:
    """Route of each team to the point as a GeoJSON geometry, keyed by team id."""
    routes = {}
    for row in rows:
        geometry = network.route_geojson(
            session, row["node_id"], start.node_id, mode, walk_speed_kmh=walk_speed_kmh
        )
        routes[row["id"]] = json.loads(geometry) if geometry else None
    return routes
