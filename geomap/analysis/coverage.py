"""Coverage: which units (grids, communities, townships, districts) have a provider in reach.

``coverage(session, of="stations", kinds=["red_station"], within_m=1000)`` answers a
planner's question "which grids have no station within reach, and how many residents live
there?". Reach is either straight-line metres (``by="distance"``: a disc of ``within_m``
around each provider, measured in a metric CRS) or network travel time (``by="walk"`` /
``"drive"``: the area the road network reaches from the providers within ``within_min``,
counted on the grids' sample points, see :mod:`geomap.routing.sample`).

For each unit: population, covered population, covered share of area and of population,
and the distance to the nearest provider. Residents are assumed spread evenly over their
grid, so a grid's covered population is its population times its covered share of area.
A grid counts as covered when at least half its area is. Levels above the grid add up the
grids inside them (via the grid's community and the region chain): their area figures
are those of their grids, i.e. of the gridded (urban) part of the unit.

This module checks the question (:func:`make_query`) and rolls the per-grid rows of
:mod:`geomap.analysis.covergrids` up to the answer.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from geomap import vocab
from geomap.analysis import reach

# ``Query`` and these row functions are named here too: geomap.analysis.circles, the map
# pages, planning's scenarios and bench/ read them as ``coverage.X``.
from geomap.analysis.covergrids import (
    Query,
    grid_coverage,
)
from geomap.errors import InvalidInput
from geomap.params import MODES, check_choice, check_choices, check_positive

LEVELS = ("grid", "community", "township", "district")
PROVIDERS = {
    "stations": vocab.STATION_KINDS,
    "teams": vocab.TEAM_KINDS,
    "sites": vocab.SITE_KINDS,
}
COVERED_AREA_SHARE = 0.5
#: What the figures of every coverage answer, page and report mean (said with each).
DEFINITIONS = {
    "covered_share": "share of residents within reach (residents are spread evenly over "
    "their grid, so a grid's covered residents are its residents times its covered share "
    "of area)",
    "covered_share_population": "share of the unit's residents within reach",
    "covered_share_area": "share of the unit's area within reach (of its grids' area)",
    "covered": f"the unit has at least {COVERED_AREA_SHARE:.0%} of its area within reach",
    "covered_units": f"units with at least {COVERED_AREA_SHARE:.0%} of their area within "
    "reach; a count of units, not of residents",
    "why_figures_differ": "a share of residents and a share of area differ where residents "
    "are unevenly spread between grids; a count of covered units differs from both; and "
    "two venue sets differ: of=red (the 15-minute circles' venues: every red culture site "
    "and every red station) covers more than the red stations alone",
}
MAX_WITHIN_M = 50_000.0
MAX_WITHIN_MIN = 120.0

# Names and parents of the units above grids, for the roll-up.
REGIONS_SQL = sa.text("SELECT code, parent_code, level, name FROM regions WHERE level <> 'city'")
GEOMETRY_SQL = {
    "grid": sa.text(
        "SELECT code, ST_AsGeoJSON(ST_SimplifyPreserveTopology(geom, 0.0001), 6) "
        "FROM grids WHERE code = ANY(CAST(:codes AS text[]))"
    ),
    "region": sa.text(
        "SELECT code, ST_AsGeoJSON(ST_SimplifyPreserveTopology(geom, 0.0002), 6) "
        "FROM regions WHERE code = ANY(CAST(:codes AS text[]))"
    ),
}


def make_query(
    *,
    of: str = "stations",
    kinds: list[str] | None = None,
    by: str = "distance",
    within_m: Any = None,
    within_min: Any = None,
    level: str = "grid",
    order: str = "code",
) -> Query:
    """Validate and normalise coverage inputs; every error names its parameter.

    Parameters
    ----------
    of : str, default "stations"
        The providers (a key of ``PROVIDERS``).
    kinds : list of str, optional
        Provider kinds kept.
    by : str, default "distance"
        One of ``MODES``.
    within_m : object, optional
        The radius, metres, up to ``MAX_WITHIN_M``; required by ``by="distance"``.
    within_min : object, optional
        The travel time, minutes, up to ``MAX_WITHIN_MIN``; required by the travel modes.
    level : str, default "grid"
        One of ``LEVELS``.
    order : str, default "code"
        ``code`` or ``gaps``.

    Returns
    -------
    Query
        The checked query.

    Raises
    ------
    InvalidInput
        An unknown value, both or neither of ``within_m``/``within_min``, the wrong one
        for ``by``, or a value out of range.
    """
    of = check_choice(of, "of", PROVIDERS)
    by = check_choice(by, "by", MODES)
    if (within_m is None) == (within_min is None):
        raise InvalidInput("give exactly one of within_m and within_min", field="within_m")
    if by == "distance" and within_m is None:
        raise InvalidInput("by=distance needs within_m (metres)", field="within_m")
    if by != "distance" and within_min is None:
        raise InvalidInput(f"by={by} needs within_min (minutes)", field="within_min")
    return Query(
        of=of,
        kinds=check_choices(kinds, "kind", PROVIDERS[of]),
        by=by,
        within_m=None if within_m is None else check_positive(within_m, "within_m", MAX_WITHIN_M),
        within_min=(
            None if within_min is None else check_positive(within_min, "within_min", MAX_WITHIN_MIN)
        ),
        level=check_choice(level, "level", LEVELS),
        order=check_choice(order, "order", ("code", "gaps")),
    )


def coverage(
    session: Session,
    query: Query,
    *,
    walk_speed_kmh: float = 4.5,
    access_m: float = reach.DEFAULT_ACCESS_M,
    with_geometry: bool = False,
    grids: list[dict] | None = None,
) -> dict:
    """Coverage of every unit at ``query.level``, with a summary.

    Parameters
    ----------
    session : Session
        The database.
    query : Query
        The providers, the reach, the level and the order.
    walk_speed_kmh : float, default 4.5
        The walking speed, km/h.
    access_m : float, default reach.DEFAULT_ACCESS_M
        How far from a reached street a point counts as reached, metres.
    with_geometry : bool, default False
        Whether each unit carries its outline.
    grids : list of dict, optional
        The rows of :func:`grid_coverage` for the same query, when already computed
        (a report rolls one grid computation up to every level).

    Returns
    -------
    dict
        ``{"query", "summary": {"units", "covered_units", "population",
        "covered_population", "covered_share"}, "units": [{"code", "name", "level",
        "population", "covered_population", "covered_share_area",
        "covered_share_population", "nearest_m", "covered"}], "elapsed_ms"}``; with
        ``with_geometry`` each unit also has a GeoJSON ``geometry`` (simplified, WGS 84).
    """
    started = time.perf_counter()
    if grids is None:
        grids = grid_coverage(session, query, walk_speed_kmh=walk_speed_kmh, access_m=access_m)
    units = _roll_up(session, grids, query.level)
    if query.order == "gaps":
        units.sort(key=lambda u: (u["covered_share_population"], -u["uncovered_population"]))
    if with_geometry:
        _attach_geometry(session, units, query.level)
    population = sum(u["population"] for u in units)
    covered_population = sum(u["covered_population"] for u in units)
    return {
        "query": query.as_dict(),
        "summary": {
            "level": query.level,
            "units": len(units),
            "covered_units": sum(1 for u in units if u["covered"]),
            "population": population,
            "covered_population": covered_population,
            "covered_share": round(covered_population / population, 4) if population else None,
        },
        "units": units,
        "elapsed_ms": round((time.perf_counter() - started) * 1000, 1),
    }


def _unit(code: str, name: str, level: str, rows: list[dict]) -> dict:
    if len(rows) == 1:  # a grid (4,418 per city answer): no sums needed
        r = rows[0]
        area, covered = r["area_m2"], r["covered_m2"]
        return _summary(code, name, level, 1, r["population"], area, min(covered, area),
                        r["population"] * min(1.0, covered / area) if area else 0.0,
                        r["nearest_m"])  # fmt: skip
    nearest = [r["nearest_m"] for r in rows if r["nearest_m"] is not None]
    return _summary(
        code, name, level, len(rows),
        sum(r["population"] for r in rows),
        sum(r["area_m2"] for r in rows),
        sum(min(r["covered_m2"], r["area_m2"]) for r in rows),
        sum(r["population"] * min(1.0, r["covered_m2"] / r["area_m2"]) if r["area_m2"] else 0
            for r in rows),
        min(nearest) if nearest else None,
    )  # fmt: skip


def _summary(
    code: str, name: str, level: str, grids: int, population: int, area: float,
    covered_area: float, covered_pop: float, nearest_m: float | None,
) -> dict:  # fmt: skip
    share_area = covered_area / area if area else 0.0
    covered_population = round(covered_pop)
    return {
        "code": code,
        "name": name,
        "level": level,
        "grids": grids,
        "population": population,
        "covered_population": covered_population,
        "uncovered_population": population - covered_population,
        "covered_share_area": round(share_area, 4),
        "covered_share_population": round(covered_pop / population, 4) if population else 0.0,
        "nearest_m": round(nearest_m, 1) if nearest_m is not None else None,
        "covered": share_area >= COVERED_AREA_SHARE,
    }


def _roll_up(session: Session, grids: list[dict], level: str) -> list[dict]:
    if level == "grid":
        return [_unit(g["code"], g["name"], "grid", [g]) for g in grids]
    regions = {r.code: r for r in session.execute(REGIONS_SQL)}

    def ancestor(code: str | None) -> str | None:
        while code is not None and code in regions:
            if regions[code].level == level:
                return code
            code = regions[code].parent_code
        return None

    groups: dict[str, list[dict]] = {}
    for g in grids:
        key = ancestor(g["community_code"])
        if key is not None:
            groups.setdefault(key, []).append(g)
    return [_unit(code, regions[code].name, level, rows) for code, rows in sorted(groups.items())]


def _attach_geometry(session: Session, units: list[dict], level: str) -> None:
    import json

    sql = GEOMETRY_SQL["grid" if level == "grid" else "region"]
    shapes = dict(session.execute(sql, {"codes": [u["code"] for u in units]}).all())
    for unit in units:
        text = shapes.get(unit["code"])
        unit["geometry"] = json.loads(text) if text else None
