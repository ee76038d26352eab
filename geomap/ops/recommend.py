"""Which teams to send, what sending them costs the city, and how to win it back.

* :func:`recommend`: the top-k available teams that fit a case (team kinds and
  capabilities from the dispatch rules), ranked by drive time on the street graph
  (:func:`geomap.analysis.nearest.rank_by_time`), each with its ETA, its route, and its
  coverage loss: the grids no other fitting available team would reach within the reach
  threshold if it left, and the residents in them (:mod:`geomap.ops.cover`).
* :func:`move_up`: after a dispatch, the grids the case's teams covered alone are
  uncovered; up to N repositionings of available teams to the inner points of those
  grids, those that bring back the most residents (net of what each move uncovers).
  A commander accepts one by setting the team's standby position.
* :func:`etas`: the drive times of given teams to a point (stored with a dispatch).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import sqlalchemy as sa

from geomap import routing
from geomap.analysis import nearest
from geomap.errors import NotFound, Unreachable
from geomap.ops import cover
from geomap.ops.rules import KindRule, Rules
from geomap.routing import search
from geomap.routing.mirror import TeamTable
from geomap.routing.snap import snap_lonlat, snap_one

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Session

MODE = "drive"
CASE_SQL = sa.text(
    "SELECT id, kind, severity, status, ST_X(geom) AS lon, ST_Y(geom) AS lat "
    "FROM cases WHERE id = :id"
)


def fit_mask(
    teams: TeamTable, rule: KindRule, statuses: tuple[str, ...] = ("available",)
) -> np.ndarray:
    """Rows of the team mirror that fit a case kind (and have one of ``statuses``).

    Parameters
    ----------
    teams : TeamTable
        The team mirror.
    rule : KindRule
        The case kind's team kinds and capabilities (any one capability fits).
    statuses : tuple of str, default ("available",)
        The team statuses kept.

    Returns
    -------
    numpy.ndarray
        A boolean mask over the mirror's rows.
    """
    keep = teams.mask(kinds=list(rule.team_kinds), statuses=list(statuses))
    if rule.capabilities:
        keep = keep & np.logical_or.reduce([teams.mask(capability=c) for c in rule.capabilities])
    return keep


def _case(conn: Connection | Session, case_id: int) -> Any:
    row = conn.execute(CASE_SQL, {"id": case_id}).mappings().first()
    if row is None:
        raise NotFound(f"no case {case_id}")
    return row


def _fitting_cover(
    conn: Connection | Session,
    teams: TeamTable,
    graph: routing.StreetGraph,
    known: dict[str, Any],
    rule: KindRule,
    reach_s: float,
) -> tuple[np.ndarray, cover.Cover]:
    """The mirror rows of the fitting available teams, and what they cover."""
    snaps = teams.snaps(graph, MODE)
    rows = np.flatnonzero(fit_mask(teams, rule) & snaps.found)
    starts = snaps.take(rows)
    offsets = starts.distance_m / search.access_speed_ms(MODE)
    grids = cover.grid_points(conn, graph, known)
    return rows, cover.cover(graph, grids, starts, offsets, reach_s)


def recommend(
    conn: Connection | Session, case_id: int, *, k: int, rules: Rules, reach_min: float
) -> dict:
    """The k best teams for a case, with ETA, route and coverage loss (module docstring).

    Parameters
    ----------
    conn : Connection or Session
        The database, read in the caller's transaction.
    case_id : int
        The case's id.
    k : int
        How many teams to answer, at most.
    rules : Rules
        The dispatch rules (which teams fit the case's kind).
    reach_min : float
        The coverage threshold, drive minutes: a grid is covered when a fitting available
        team reaches its inner point within it.

    Returns
    -------
    dict
        ``case_id``, ``kind``, ``fits``, ``reach_min``, ``available_fitting_teams``,
        ``covered`` (grids and residents covered now) and ``teams``, nearest first, each
        with ``eta_min``, its route and its ``coverage_loss``.

    Raises
    ------
    NotFound
        No such case.
    Unreachable
        No road near the case.
    """
    case = _case(conn, case_id)
    rule = rules.fit(case["kind"])
    ranking = nearest.rank_by_time(
        conn,
        case["lon"],
        case["lat"],
        mode=MODE,
        k=k,
        route=True,
        keep=lambda teams: fit_mask(teams, rule),
    )
    reach_s = float(reach_min) * 60.0
    rows, found = _fitting_cover(conn, ranking.teams, ranking.graph, ranking.known, rule, reach_s)
    answer = []
    for team, i in zip(ranking.answer, ranking.chosen.tolist(), strict=True):
        c = int(np.searchsorted(rows, i))
        lost = cover.loss(found, c)
        team = {**team, "eta_min": team["travel_min"], "coverage_loss": found.grids.describe(lost)}
        answer.append(team)
    covered = np.flatnonzero(found.covered)
    return {
        "case_id": case["id"],
        "kind": case["kind"],
        "fits": {"team_kinds": list(rule.team_kinds), "capabilities": list(rule.capabilities)},
        "reach_min": float(reach_min),
        "available_fitting_teams": int(rows.size),
        "covered": {
            "grid_count": int(covered.size),
            "grids_total": int(found.grids.codes.size),
            "residents": int(found.grids.population[covered].sum()),
        },
        "teams": answer,
    }


def etas(
    conn: Connection | Session, lon: float, lat: float, positions: dict[int, tuple[float, float]]
) -> dict[int, float | None]:
    """Drive minutes from each team's position to (lon, lat), access legs included.

    Parameters
    ----------
    conn : Connection or Session
        The database (the street graph).
    lon, lat : float
        The case's point, WGS 84 degrees.
    positions : dict of int to (float, float)
        Each team's position, ``{team id: (lon, lat)}`` in WGS 84 degrees.

    Returns
    -------
    dict of int to float or None
        Minutes per team; None when no road is near the case or the team, or there is no
        way there.
    """
    if not positions:
        return {}
    graph = routing.current_graph(conn)
    ids = list(positions)
    tlon = np.array([positions[i][0] for i in ids])
    tlat = np.array([positions[i][1] for i in ids])
    try:
        point = snap_one(graph, MODE, lon, lat, max_distance_m=nearest.MAX_POINT_SNAP_M)
    except Unreachable:  # no road near the case: no ETA, the dispatch still goes
        return dict.fromkeys(ids)
    snaps = snap_lonlat(graph, MODE, tlon, tlat)
    access_ms = search.access_speed_ms(MODE)
    px, py = graph.to_metric.transform(lon, lat)
    tx, ty = graph.to_metric.transform(tlon, tlat)
    # A first budget from the farthest team in a straight line; doubled until all are priced.
    budget = max(120.0, 1.5 * float(np.hypot(tx - px, ty - py).max()) / (25 / 3.6))
    while True:
        found = search.search(graph, MODE, point, reverse=True, budget_s=budget)
        cost, _ = found.cost_at(snaps)
        total = cost + snaps.distance_m / access_ms + float(point.distance_m[0]) / access_ms
        if np.isfinite(total[snaps.found]).all() or not np.isfinite(budget):
            break
        budget = budget * 2 if budget < 6 * 3600 else np.inf
    return {
        team_id: (round(float(t) / 60.0, 2) if np.isfinite(t) else None)
        for team_id, t in zip(ids, total, strict=True)
    }


ORIGINS_SQL = sa.text(
    "SELECT team_id, ST_X(origin) AS lon, ST_Y(origin) AS lat FROM dispatches "
    "WHERE case_id = :id AND status <> 'released' AND origin IS NOT NULL ORDER BY id"
)
#: Positions considered per move-up question (the lost grids with most residents).
MAX_POSITIONS = 20
#: Teams considered per position (the nearest by drive time).
TEAMS_PER_POSITION = 5


def move_up(
    conn: Connection | Session, case_id: int, *, n: int, rules: Rules, reach_min: float
) -> dict:
    """Repositionings that restore the coverage the case's active dispatches took away.

    Coverage *before* counts the case's dispatched teams at the positions they left from;
    *after*, only the teams available now. For each lost grid (most residents first),
    the nearest available fitting teams are priced for a move to its inner point: the
    lost grids that point reaches within the threshold, minus what the team's leaving
    uncovers. The best moves are taken greedily (a team and a grid at most once).

    Parameters
    ----------
    conn : Connection or Session
        The database, read in the caller's transaction.
    case_id : int
        The case's id.
    n : int
        The most suggestions answered.
    rules : Rules
        The dispatch rules (which teams fit the case's kind).
    reach_min : float
        The coverage threshold, drive minutes.

    Returns
    -------
    dict
        ``case_id``, ``reach_min``, ``lost`` (the grids uncovered) and ``suggestions``: per
        move the team, where to (WGS 84 and the grid), ``travel_min``, ``restores``,
        ``leaves_uncovered``, ``net_residents`` and the ``accept`` request that makes it.

    Raises
    ------
    NotFound
        No such case.
    """
    case = _case(conn, case_id)
    rule = rules.fit(case["kind"])
    teams, known = routing.team_mirror(conn)
    graph = routing.current_graph(conn, known)
    reach_s = float(reach_min) * 60.0
    access_ms = search.access_speed_ms(MODE)
    rows, after = _fitting_cover(conn, teams, graph, known, rule, reach_s)
    grids = after.grids
    origins = conn.execute(ORIGINS_SQL, {"id": case_id}).all()
    gone = snap_lonlat(graph, MODE, [o.lon for o in origins], [o.lat for o in origins])
    gone = gone.take(gone.found)
    starts = _concat(after.starts, gone)
    offsets = np.concatenate([after.offsets_s, gone.distance_m / access_ms])
    before = cover.cover(graph, grids, starts, offsets, reach_s)
    lost = np.flatnonzero(before.covered & ~after.covered)
    result: dict[str, Any] = {
        "case_id": case["id"],
        "reach_min": float(reach_min),
        "lost": grids.describe(lost),
        "suggestions": [],
    }
    if lost.size == 0 or rows.size == 0:
        return result
    positions = lost[np.argsort(-grids.population[lost], kind="stable")][:MAX_POSITIONS]
    options = []
    for g in positions.tolist():
        p = grids.points.take(np.array([g]))
        p_access = float(p.distance_m[0]) / access_ms
        # What a team standing at the grid's inner point would reach.
        out = search.search(graph, MODE, p, budget_s=reach_s, offsets_s=np.array([p_access]))
        to_lost, _ = out.cost_at(grids.points.take(lost))
        restores = lost[to_lost + grids.access_s[lost] <= reach_s]
        # The nearest available fitting teams to that point.
        back = search.search(graph, MODE, p, reverse=True, budget_s=4 * reach_s)
        cost, _ = back.cost_at(after.starts)
        travel = cost + after.offsets_s + p_access
        nearest_teams = np.argsort(travel, kind="stable")[:TEAMS_PER_POSITION]
        for c in nearest_teams[np.isfinite(travel[nearest_teams])].tolist():
            own = np.setdiff1d(cover.loss(after, c), restores)
            options.append((g, c, restores, own, float(travel[c])))
    used_teams: set[int] = set()
    used_grids: set[int] = set()
    open_grids = set(lost.tolist())
    for _ in range(max(0, int(n))):
        best = None
        for g, c, restores, own, travel in options:
            if c in used_teams or g in used_grids:
                continue
            gained = np.array(sorted(open_grids.intersection(restores.tolist())), dtype=np.int64)
            net = int(grids.population[gained].sum()) - int(grids.population[own].sum())
            if gained.size == 0 or net <= 0:
                continue
            key = (net, -travel)
            if best is None or key > best[0]:
                best = (key, g, c, gained, own, travel)
        if best is None:
            break
        (net, _), g, c, gained, own, travel = best
        used_teams.add(c)
        used_grids.add(g)
        open_grids.difference_update(gained.tolist())
        team = teams.row(int(rows[c]))
        lon, lat = round(float(grids.lon[g]), 7), round(float(grids.lat[g]), 7)
        result["suggestions"].append(
            {
                "team": {k: team[k] for k in ("id", "code", "name", "kind", "lon", "lat")},
                "to": {
                    "lon": lon,
                    "lat": lat,
                    "grid_code": str(grids.codes[g]),
                    "grid_name": str(grids.names[g]),
                },
                "travel_min": round(travel / 60.0, 2),
                "restores": grids.describe(gained),
                "leaves_uncovered": grids.describe(own),
                "net_residents": int(net),
                "accept": {
                    "method": "PATCH",
                    "path": f"/api/teams/{team['id']}",
                    "body": {"standby_lon": lon, "standby_lat": lat},
                },
            }
        )
    return result


def _concat(a: routing.EdgePoints, b: routing.EdgePoints) -> routing.EdgePoints:
    return routing.EdgePoints(
        np.concatenate([a.edge, b.edge]),
        np.concatenate([a.fraction, b.fraction]),
        np.concatenate([a.distance_m, b.distance_m]),
        np.vstack([a.xy, b.xy]),
    )
