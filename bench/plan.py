"""Planning: maximal coverage of Nanchang (~6,700 candidates × 4,418 grids, N = 20) solved
to optimality, against greedy in the same run; coverage warm and cold; a 10-site scenario.

Baselines measured in the same run: the greedy heuristic (time and residents covered) for
the model; for coverage, one search from every venue at once without kept sets
(``covergrids.search_rows``) and the database way (pgRouting + PostGIS,
``covergrids.database_rows``).
"""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session

from bench._env import ROOT, line, p50, settings_for, timings_ms
from geomap import db
from geomap.analysis import circles, coverage, covergrids
from geomap.planning import question, scenarios, suggest
from geomap.routing import index

COLD_SNIPPET = """
import sys, time
from sqlalchemy.orm import Session
from geomap import config, db
from geomap.analysis import circles, coverage
url, what = sys.argv[1], sys.argv[2]
engine = db.get_engine(config.load({"database_url": url}, environ={}))
with Session(engine) as session:
    started = time.perf_counter()
    if what == "circles":
        circles.circle_coverage(session, circles.make_query(minutes=15), level="district")
    else:
        query = coverage.make_query(of="stations", kinds=["centre_community"], by="walk",
                                    within_min=15, level="district")
        coverage.coverage(session, query)
    print((time.perf_counter() - started) * 1000)
    session.commit()
"""


def _cold_ms(url: str, what: str) -> float:
    """The first answer of a fresh process (imports excluded)."""
    out = subprocess.run([sys.executable, "-c", COLD_SNIPPET, url, what], cwd=ROOT,
                         capture_output=True, text=True, check=True)  # fmt: skip
    return float(out.stdout.strip().splitlines()[-1])


def run(url: str) -> None:
    engine = db.get_engine(settings_for(url))
    with engine.begin() as conn:  # start from nothing kept
        conn.execute(sa.text("DELETE FROM venue_reach"))
        conn.execute(sa.text("DELETE FROM coverage_samples"))
    index.clear()

    # -- the model -----------------------------------------------------------------------
    with Session(engine) as session:
        plan = question.make_plan(n=20)
        started = time.perf_counter()
        answer = suggest.run(session, plan)
        total_s = time.perf_counter() - started
        session.commit()
    phases, solver, greedy = answer["phases"], answer["solver"], answer["greedy"]
    print(f"  instance: {answer['candidates']:,} candidates × {len(answer['by_district'])} "
          f"districts / 4,418 grids; {answer['demand']['points']:,} sample points → "
          f"{answer['demand']['units']:,} demand units; core {solver['core_sites']} sites × "
          f"{solver['core_units']} units")  # fmt: skip
    line("maximal coverage N=20: matrix (6,665 bounded searches, cold)", phases["matrix_s"], "s")
    line("maximal coverage N=20: model (demand units)", phases["model_s"], "s")
    line(f"maximal coverage N=20: solve ({answer['status']}, gap {answer['gap']:.2%}; "
         f"Lagrangian {solver.get('bound_s', 0):.1f} s, "
         f"spopt core {solver.get('core_s', 0):.1f} s)",
         phases["solve_s"], "s", goal="optimal")  # fmt: skip
    line("maximal coverage N=20: whole run", total_s, "s", goal="≤ 60 s")
    line("greedy N=20 on the same instance", phases["greedy_s"] * 1000, "ms")
    print(f"  residents gained: optimal {answer['gained']:,} vs greedy {greedy['gained']:,} "
          f"(+{answer['gained'] - greedy['gained']:,}, "
          f"{(answer['gained'] / greedy['gained'] - 1):.2%}); coverage "
          f"{answer['before']['covered_share']:.1%} → {answer['after']['covered_share']:.1%}")
    with Session(engine) as session:
        started = time.perf_counter()
        suggest.run(session, plan)
        line("maximal coverage N=20: whole run again (reach sets kept)",
             time.perf_counter() - started, "s", goal="≤ 60 s")

    # -- coverage in a blink -------------------------------------------------------------
    query = circles.make_query(minutes=15)
    cov = coverage.make_query(of="stations", kinds=["centre_community"], by="walk",
                              within_min=15, level="district")  # fmt: skip
    with engine.begin() as conn:
        circles.build(conn, query)  # as `make run` does: the circle build fills the store
    cold_circles = _cold_ms(url, "circles")
    cold_any = _cold_ms(url, "coverage")
    with Session(engine) as session:
        warm = timings_ms(lambda: circles.circle_coverage(session, query, level="district"),
                          repeat=10)  # fmt: skip
        places = circles._venue_points(session, query)
        search = timings_ms(lambda: covergrids.search_rows(
            session, places, mode="walk", budget_s=900, walk_speed_kmh=4.5, access_m=50.0),
            repeat=5)  # fmt: skip
        any_warm = timings_ms(lambda: coverage.coverage(session, cov), repeat=10)
        started = time.perf_counter()
        covergrids.database_rows(session, dataclass_replace(cov))
        database_ms = (time.perf_counter() - started) * 1000
        session.commit()
    line("coverage of the 15-minute circles (374 venues), warm, by district", p50(warm), "ms",
         p50(search), "one search from every venue (no kept sets)", "≤ 300 ms")
    line("same, cold (a fresh process; sets kept in the database)", cold_circles, "ms",
         goal="≤ 3,000 ms")
    line("coverage of 1,900 community centres by a 15-min walk, warm", p50(any_warm), "ms",
         database_ms, "pgRouting + PostGIS (database_rows)", "≤ 300 ms")
    line("same, cold (a fresh process)", cold_any, "ms", goal="≤ 3,000 ms")

    # -- a scenario adding 10 sites never seen before ------------------------------------
    rng = np.random.default_rng(11)
    with Session(engine) as session:
        stations = np.asarray(session.execute(sa.text(
            "SELECT ST_X(geom), ST_Y(geom) FROM stations WHERE kind = 'grid_station'")).all())

        def scenario() -> None:
            picks = stations[rng.choice(len(stations), 10, replace=False)]
            # 30 m away from a station: a position no reach set is kept for.
            added = [{"name": f"+{i}", "lon": lon + 0.0003, "lat": lat}
                     for i, (lon, lat) in enumerate(picks)]  # fmt: skip
            sc = {"id": 0, "name": "bench", "venue_set": {"of": "red", "kind": None},
                  "added": added, "removed": []}  # fmt: skip
            scenarios.evaluate(session, sc, level="district")

        times = timings_ms(scenario, repeat=7, warmup=1)
        session.rollback()
    line("scenario: red venues + 10 new sites, coverage vs baseline by district", p50(times),
         "ms", goal="≤ 2,000 ms")


def dataclass_replace(query: covergrids.Query) -> covergrids.Query:
    import dataclasses

    return dataclasses.replace(query, level="grid")
