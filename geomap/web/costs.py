"""What one HTTP request may ask of the analyses: per-request cost limits, in one place.

The analyses themselves accept more (``geomap circles build --minutes 60`` is fine from the
command line); a web request must finish well inside the statement timeout and leave the
database to others. A request over a bound gets a 400 that names the parameter and says
what to ask instead. Each bound comes from a measurement on the Nanchang dataset (2 cores,
PostGIS 3.3, pgRouting 3.4; 2026-11-25); raise them as the analyses get faster.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from geomap.errors import InvalidInput

#: Routes one nearest-teams answer may draw (``route=1``): about 0.08 s each by road
#: (k=10: 1.1 s; k=100: 8.4 s by drive, 10.9 s on foot).
MAX_ROUTES = 10
#: Straight-line coverage reach: 1 km 1.0 s, 2 km 2.6 s, 5 km 11 s (and a failure).
MAX_COVERAGE_M = 2_000.0
#: Network coverage needs no bound of its own: on the in-memory street graph
#: (geomap.routing) every provider set and reach costs at most one search of the whole
#: network and one pass over the grids' sample points (all 6,939 stations, 120 min:
#: well under a second). The analysis slots (guard.heavy) still share the cores.
#: Circles built on request (all 374 red venues at 15 minutes: 8 s; the building time
#: grows with the square of the budget).
MAX_CIRCLE_MINUTES = 30.0
MAX_CIRCLE_M = 2_250.0


def check_nearest(query: Any) -> None:
    """Refuse more routes than :data:`MAX_ROUTES` (field ``k``)."""
    if query.route and query.by != "distance" and query.k > MAX_ROUTES:
        raise InvalidInput(
            f"route=1 draws at most {MAX_ROUTES} routes: ask k≤{MAX_ROUTES}, or drop route "
            f"to rank up to {query.k} teams",
            field="k",
        )


def check_coverage(session: Session, query: Any, *, walk_speed_kmh: float) -> None:
    """Refuse a coverage question too costly for one request (field ``within_m``/``within_min``)."""
    if query.by == "distance" and query.within_m is not None and query.within_m > MAX_COVERAGE_M:
        raise InvalidInput(
            f"within_m={query.within_m:g} is more than one request may cover "
            f"(at most {MAX_COVERAGE_M:g} m by straight line)",
            field="within_m",
        )


def check_circles(query: Any) -> None:
    """Refuse circles larger than one request may build (field ``minutes``/``distance_m``)."""
    if query.distance_m is not None:
        if query.distance_m > MAX_CIRCLE_M:
            raise InvalidInput(
                f"distance_m={query.distance_m:g}: circles of at most {MAX_CIRCLE_M:g} m are "
                "built on request (`geomap circles build` builds larger ones)",
                field="distance_m",
            )
        return
    if query.minutes is not None and query.minutes > MAX_CIRCLE_MINUTES:
        raise InvalidInput(
            f"minutes={query.minutes:g}: circles of at most {MAX_CIRCLE_MINUTES:g} minutes are "
            "built on request (`geomap circles build` builds larger ones)",
            field="minutes",
        )
