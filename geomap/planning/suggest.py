"""Site suggestions: where the next stations should go.

Asked by ``POST /api/plans`` and ``geomap plan sites``, with the question checked by
:mod:`geomap.planning.question`.

The venues of a set (red culture venues by default: every red culture site and red
station) are **locked**: they stay, and the residents they cover are covered whatever is
chosen. **Candidates** are the existing stations that are not venues of that set
(upgrading a community centre or a grid station into a red station is what cities do),
optionally of some kinds, or an uploaded candidate layer. **Demand** is the residents of
the grids, counted on the grids' sample points (see :mod:`geomap.planning.demand`).
**Reach** is a walking (or driving) time on the streets, or a walking distance, from
each site, by the rule of the 15-minute circles.

Phases (their times are part of the answer): *matrix* (each candidate's reach: one
bounded search per candidate, or the kept sets of :mod:`geomap.routing.index`), *model*
(demand units and the instance), *solve* (the model), *greedy* (the greedy heuristic on
the same instance, reported beside the model's answer).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely
import shapely.geometry
import sqlalchemy as sa

from geomap import routing
from geomap.analysis import circles, coverage, covergrids
from geomap.errors import InvalidInput
from geomap.planning import demand as demand_mod
from geomap.planning import models

# ``Plan`` and ``make_plan`` are named here too: geomap.api.plans, geomap.maps.views and
# bench/plan.py read them as ``suggest.Plan`` and ``suggest.make_plan``.
from geomap.planning.question import Plan
from geomap.routing import index

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

#: p-median: time beyond which a resident counts as this far (and no farther) from a site.
MEDIAN_CAP_FACTOR = 3.0
MEDIAN_MAX_CELLS = 400_000
#: Two places closer than this (metres) are the same place: an uploaded candidate at a
#: locked venue's position is that venue, and never suggested.
SAME_PLACE_M = 1.0

VENUES_SQL = sa.text(
    f"WITH v AS ({circles.VENUES_SQL.text}) "
    "SELECT venue_table, venue_id, name, kind, ST_X(geom) AS lon, ST_Y(geom) AS lat FROM v "
    "ORDER BY venue_table, venue_id"
)
CANDIDATES_SQL = sa.text(
    """
    SELECT 'stations' AS venue_table, s.id AS venue_id, s.name, s.kind,
           ST_X(s.geom) AS lon, ST_Y(s.geom) AS lat
    FROM stations s
    WHERE NOT (
        (CAST(:of AS text) = 'red' AND s.kind = 'red_station')
        OR (CAST(:of AS text) = 'stations'
            AND (CAST(:kinds AS text[]) IS NULL OR s.kind = ANY(CAST(:kinds AS text[])))))
      AND (CAST(:candidate_kinds AS text[]) IS NULL
           OR s.kind = ANY(CAST(:candidate_kinds AS text[])))
      AND (CAST(:area AS text) IS NULL OR EXISTS (
           SELECT 1 FROM regions r WHERE r.code = :area AND ST_Intersects(r.geom, s.geom)))
    ORDER BY s.id
    """
)
AREA_SQL = sa.text("SELECT code, level, name FROM regions WHERE code = :area")
AREA_GRIDS_SQL = sa.text(
    """
    SELECT g.code FROM grids g JOIN regions r ON r.code = :area
    WHERE ST_Intersects(r.geom, ST_PointOnSurface(g.geom))
    """
)


def venues(session: Session, of: str, kinds: list[str] | None) -> list[dict]:
    """The venues of a set (locked in every suggestion), with positions.

    Parameters
    ----------
    session : Session
        The database.
    of : str
        The venue set (one of ``circles.VENUE_SETS``).
    kinds : list of str or None
        Only venues of these kinds.

    Returns
    -------
    list of dict
        ``venue_table``, ``venue_id``, ``name``, ``kind``, ``lon``, ``lat`` (WGS 84).
    """
    rows = session.execute(VENUES_SQL, {"of": of, "kinds": kinds}).mappings()
    return [dict(r) for r in rows]


def _candidates(session: Session, plan: Plan, locked: list[dict]) -> tuple[list[dict], int]:
    """The candidate sites, and how many uploaded ones were dropped as locked venues."""
    if plan.candidates == "stations":
        rows = session.execute(CANDIDATES_SQL, {
            "of": plan.of, "kinds": plan.kinds, "candidate_kinds": plan.candidate_kinds,
            "area": plan.area,
        }).mappings()  # fmt: skip
        return [dict(r) for r in rows], 0
    layer = [{"venue_table": "layer", "venue_id": i + 1, **row} for i, row in
             enumerate(plan.layer or [])]  # fmt: skip
    if not locked or not layer:
        return layer, 0
    tree = shapely.STRtree(shapely.points([(v["lon"], v["lat"]) for v in locked]))
    pts = shapely.points([(c["lon"], c["lat"]) for c in layer])
    # ~1 m in degrees at these latitudes; checked in metres below.
    near = tree.query(pts, predicate="dwithin", distance=2e-5)
    from pyproj import Geod

    geod = Geod(ellps="WGS84")
    same = set()
    for c, v in zip(*near, strict=True):
        _, _, d = geod.inv(layer[c]["lon"], layer[c]["lat"], locked[v]["lon"], locked[v]["lat"])
        if d <= SAME_PLACE_M:
            same.add(int(c))
    kept = [c for i, c in enumerate(layer) if i not in same]
    return kept, len(same)


def _places(rows: list[dict]) -> np.ndarray:
    return np.array([(r["lon"], r["lat"]) for r in rows], dtype=float).reshape(-1, 2)


class Progress:
    """Reports a run's progress as (share done, message) and stops it when asked.

    Parameters
    ----------
    report : callable, optional
        ``report(share, message)``, the share clipped to 0..1.
    cancelled : callable, optional
        ``cancelled() -> bool``; when it says so, the next report raises
        :class:`geomap.routing.index.Cancelled`.
    """

    def __init__(self, report: Callable[[float, str], None] | None = None,
                 cancelled: Callable[[], bool] | None = None) -> None:  # fmt: skip
        self.report = report
        self.cancelled = cancelled

    def __call__(self, share: float, message: str) -> None:
        """Report ``share`` done with ``message``, unless the run was cancelled.

        Parameters
        ----------
        share : float
            The share of the run done, clipped to 0..1.
        message : str
            What the run is doing.

        Raises
        ------
        Cancelled
            ``cancelled()`` says so.
        """
        if self.cancelled is not None and self.cancelled():
            raise index.Cancelled()
        if self.report is not None:
            self.report(max(0.0, min(1.0, share)), message)


def _district_table(session: Session, plan: Plan, before: list[dict], after: list[dict]) -> list:
    query = covergrids.Query(of=plan.of, kinds=plan.kinds, by=plan.mode, within_m=None,
                             within_min=plan.minutes, level="district", order="code")  # fmt: skip
    b = coverage.coverage(session, query, grids=before)["units"]
    a = {u["code"]: u for u in coverage.coverage(session, query, grids=after)["units"]}
    return [
        {"code": u["code"], "name": u["name"], "population": u["population"],
         "covered_before": u["covered_population"],
         "covered_after": a[u["code"]]["covered_population"],
         "share_before": u["covered_share_population"],
         "share_after": a[u["code"]]["covered_share_population"],
         "gained": a[u["code"]]["covered_population"] - u["covered_population"]}
        for u in b
    ]  # fmt: skip


def _summary(samples: index.SampleIndex, points: np.ndarray, grids_mask: np.ndarray) -> dict:
    population = float(samples.population[grids_mask].sum())
    in_area = grids_mask[samples.point_grid[points]]
    covered = samples.population_of(points[in_area])
    return {"population": round(population), "covered_population": round(covered),
            "covered_share": round(covered / population, 4) if population else None}  # fmt: skip


def _circle(graph: Any, plan: Plan, lon: float, lat: float) -> dict | None:
    """A site's reach as a GeoJSON polygon (the circle the page draws)."""
    _, _, stretches = routing.reach.from_places(
        graph, plan.mode, np.array([lon]), np.array([lat]), plan.budget_s,
        walk_speed_kmh=plan.walk_speed_kmh, max_snap_m=index.MAX_SNAP_M,
    )  # fmt: skip
    a, b = routing.reach.segments(graph, stretches)
    wkb = routing.reach.to_lonlat_wkb(graph, routing.reach.polygon(a, b, plan.access_m))
    return shapely.geometry.mapping(shapely.from_wkb(wkb)) if wkb else None


def run(session: Session, plan: Plan, progress: Progress | None = None) -> dict:
    """Run a suggestion: the model's answer and the greedy one, with coverage around it.

    Coverage before and after per grid and district. ``progress`` reports and may stop
    the run.

    Parameters
    ----------
    session : Session
        The database.
    plan : Plan
        The question, from :func:`make_plan`.
    progress : Progress, optional
        Reports the run's progress; may stop it.

    Returns
    -------
    dict
        ``query``, ``model``, ``status``, ``gap``, ``objective``, ``bound``, the candidate
        and demand counts, ``sites`` (rank, venue, lon/lat, gain, circle), coverage
        ``before``/``after``, ``gained``, ``greedy`` and the per-grid and per-district
        tables.

    Raises
    ------
    InvalidInput
        An unknown area, or no candidate.
    Cancelled
        The progress said the run was cancelled.
    """
    progress = progress or Progress()
    started = time.perf_counter()
    phases: dict[str, float] = {}
    if plan.area is not None and session.execute(AREA_SQL, {"area": plan.area}).first() is None:
        raise InvalidInput(f"no region with code {plan.area!r}", field="area")
    progress(0.01, "venues")
    locked = venues(session, plan.of, plan.kinds)
    cands, dropped = _candidates(session, plan, locked)
    if not cands:
        raise InvalidInput("there is no candidate site (all stations are venues of the set, "
                           "or none lies in the area)", field="candidates")  # fmt: skip
    eng = index.engine(session, plan.access_m)
    samples = eng.sample_index(session)
    grids_mask = np.ones(samples.codes.size, dtype=bool)
    if plan.area is not None:
        inside = {r[0] for r in session.execute(AREA_GRIDS_SQL, {"area": plan.area})}
        grids_mask = np.array([c in inside for c in samples.codes], dtype=bool)

    t = time.perf_counter()
    progress(0.02, "matrix")
    base_sets = eng.reach_sets(session, _places(locked), plan.reach)
    base = index.union(base_sets, samples.n_points)
    cand_sets = eng.reach_sets(
        session, _places(cands), plan.reach,
        progress=lambda i, total: progress(0.02 + 0.48 * i / total, f"matrix {i}/{total}"),
        cancelled=progress.cancelled,
    )  # fmt: skip
    phases["matrix_s"] = time.perf_counter() - t

    t = time.perf_counter()
    progress(0.5, "model")
    weight = samples.point_weight * grids_mask[samples.point_grid]
    site_points = demand_mod.site_matrix(cand_sets, samples.n_points)
    demand = demand_mod.build(site_points, weight, base)
    inst = demand.instance
    phases["model_s"] = time.perf_counter() - t

    def check(share: float) -> None:
        progress(0.55 + 0.4 * share, "solve")

    t = time.perf_counter()
    n = min(plan.n, len(cands))
    target = None
    if plan.model == "coverage":
        solution = models.maximal_coverage(inst, n, time_limit_s=plan.time_limit_s, check=check)
    elif plan.model == "covering":
        in_area = grids_mask[samples.point_grid[base]]
        already = float(weight[base[in_area]].sum())
        total = float(samples.population[grids_mask].sum())
        reachable = already + float(inst.weight.sum())
        # target_share of all residents, but never beyond what the candidates can reach.
        target = max(0.0, min(plan.target_share * total, reachable) - already)
        solution = models.set_covering(inst, target, time_limit_s=plan.time_limit_s,
                                       check=check)  # fmt: skip
    else:
        solution = _median(session, eng, samples, plan, locked, cands, grids_mask, n)
    phases["solve_s"] = time.perf_counter() - t
    progress(0.95, "greedy")
    t = time.perf_counter()
    greedy_n = len(solution.sites) if plan.model != "coverage" else n
    greedy = models.greedy(inst, max(greedy_n, 1))
    phases["greedy_s"] = time.perf_counter() - t

    progress(0.97, "answer")
    chosen_sets = [cand_sets[j] for j in solution.sites]
    after = index.union([base, *chosen_sets], samples.n_points)
    shares_before, shares_after = samples.grid_shares(base), samples.grid_shares(after)
    rows_before = samples.rows(shares_before)
    rows_after = samples.rows(shares_after)
    covered_b = shares_before >= coverage.COVERED_AREA_SHARE
    covered_a = shares_after >= coverage.COVERED_AREA_SHARE
    graph = eng.full(session)[0] if solution.sites else None
    sites = []
    running = np.zeros(samples.n_points, dtype=bool)
    running[base] = True
    in_area = grids_mask[samples.point_grid]
    for rank, j in enumerate(solution.sites, start=1):
        was = samples.grid_shares(np.flatnonzero(running)) >= coverage.COVERED_AREA_SHARE
        reach_j = cand_sets[j]
        gained_points = reach_j[~running[reach_j] & in_area[reach_j]]
        running[reach_j] = True
        now = samples.grid_shares(np.flatnonzero(running)) >= coverage.COVERED_AREA_SHARE
        c = cands[j]
        sites.append({
            "rank": rank, "venue_table": c["venue_table"], "venue_id": c["venue_id"],
            "name": c["name"], "kind": c.get("kind"), "lon": c["lon"], "lat": c["lat"],
            "gain": round(samples.population_of(gained_points)),
            "reach_population": round(samples.population_of(reach_j)),
            "newly_covered_grids": [str(x) for x in samples.codes[now & ~was & grids_mask]],
            "circle": _circle(graph, plan, c["lon"], c["lat"]) if graph is not None else None,
        })  # fmt: skip
    changed = np.flatnonzero((shares_after > shares_before) & grids_mask)
    grids = [
        {"code": str(samples.codes[i]), "name": str(samples.names[i]),
         "population": int(samples.population[i]),
         "share_before": round(float(shares_before[i]), 4),
         "share_after": round(float(shares_after[i]), 4),
         "gained": round(float(samples.population[i] * (shares_after[i] - shares_before[i]))),
         "newly_covered": bool(covered_a[i] and not covered_b[i])}
        for i in changed
    ]  # fmt: skip
    grids.sort(key=lambda g: (-g["gained"], g["code"]))
    greedy_after = index.union([base, *[cand_sets[j] for j in greedy.sites]], samples.n_points)
    before_s, after_s = _summary(samples, base, grids_mask), _summary(samples, after, grids_mask)
    answer = {
        "query": plan.as_dict(),
        "model": plan.model,
        "status": solution.status,
        "gap": round(solution.gap, 6),
        "objective": solution.value,
        "bound": None if not np.isfinite(solution.bound) else solution.bound,
        "candidates": len(cands),
        "candidates_dropped_as_venues": dropped,
        "locked_venues": len(locked),
        "demand": {"units": inst.n_units, "points": int(demand.points.size),
                   "residents": round(float(inst.weight.sum()))},
        "sites": sites,
        "before": before_s,
        "after": after_s,
        "gained": after_s["covered_population"] - before_s["covered_population"],
        "greedy": {
            "sites": [{"rank": r, "name": cands[j]["name"], "venue_table": cands[j]["venue_table"],
                       "venue_id": cands[j]["venue_id"], "lon": cands[j]["lon"],
                       "lat": cands[j]["lat"], "gain": round(g)}
                      for r, (j, g) in enumerate(zip(greedy.sites, greedy.gains, strict=True), 1)],
            "covered_population": _summary(samples, greedy_after, grids_mask)["covered_population"],
            "gained": round(greedy.value),
            "seconds": round(phases["greedy_s"], 3),
        },
        "by_district": _district_table(session, plan, rows_before, rows_after),
        "grids": grids,
        "newly_covered_grids": sum(1 for g in grids if g["newly_covered"]),
        "phases": {k: round(v, 3) for k, v in {**phases,
                                                 "total_s": time.perf_counter() - started}.items()},
        "solver": _solver_details(solution),
        "definitions": coverage.DEFINITIONS,
    }
    if target is not None:
        answer["target_residents"] = round(target)
    progress(1.0, "done")
    return json.loads(json.dumps(answer, default=_plain))


def _solver_details(solution: models.Solution) -> dict:
    details = {**solution.details, **{f"{k}_s": v for k, v in solution.seconds.items()}}
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in details.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    raise TypeError(type(value))


def _median(session, eng, samples, plan, locked, cands, grids_mask, n) -> models.Solution:
    """p-median over the grids (their inner points) of the area."""
    from geomap.routing import search, snap

    units = np.flatnonzero(grids_mask & (samples.population > 0))
    if units.size * (len(cands) + 1) > MEDIAN_MAX_CELLS:
        raise InvalidInput(
            f"p-median over {units.size} grids × {len(cands)} candidates is too large "
            f"(at most {MEDIAN_MAX_CELLS:,} pairs): restrict it to an area", field="area")
    graph, _ = eng.full(session)
    cap = MEDIAN_CAP_FACTOR * plan.budget_s
    xy = samples.inner_xy[units]
    targets = snap.snap_xy(graph, plan.mode, xy, max_distance_m=index.MAX_SNAP_M)
    speed = search.access_speed_ms(plan.mode, plan.walk_speed_kmh)
    leg = np.nan_to_num(targets.distance_m / speed, nan=cap)

    def times(places: np.ndarray) -> np.ndarray:
        if places.shape[0] == 0:
            return np.full(units.size, cap)
        _, found, _ = routing.reach.from_places(
            graph, plan.mode, places[:, 0], places[:, 1], cap,
            walk_speed_kmh=plan.walk_speed_kmh, max_snap_m=index.MAX_SNAP_M)
        cost, _ = found.cost_at(targets)
        return np.minimum(cost + leg, cap)

    base_s = times(_places(locked))
    cost = np.column_stack([times(_places([c])) for c in cands])
    return models.p_median(cost, samples.population[units].astype(float), base_s, n,
                           time_limit_s=plan.time_limit_s)
