"""Cases: report with recommendation, dispatch, and position ingest, on the default data.

Figures and the baselines measured in the same run:

* case creation with recommendation (drive, top 5 of the fitting available teams among
  the dataset's 5,650, each with ETA, route and coverage loss), p50 over HTTP. Baseline:
  the same top 5 by pgRouting in the database (``pgr_withPointsCost`` from the case's
  point to every fitting available team), without routes or coverage loss.
* dispatch of one team (locks, conditional update, ETA, audit, events), p50 over HTTP and
  in process. Baseline: the dispatch this service had before (insert a dispatch row, set
  the team deployed, no lock, no check, no audit), in process.
* position ingest, fixes per second, gunicorn with 2 workers and 4 client threads posting
  batches of 30 fixes. Baseline: the same fixes one per request through
  ``PATCH /api/teams/<id>`` (one fix, one request), same server, same load.
* a team's track for one day out of the ingested history, p50 over HTTP.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import threading
import time

import numpy as np
import sqlalchemy as sa

from bench._env import line, p50, settings_for, timings_ms
from bench._http import serve
from bench._server import gunicorn
from geomap import auth, db, network, routing
from geomap.analysis import nearest
from geomap.ops import audit, dispatch, rules, utc_now
from geomap.routing import search

URBAN = (115.80, 28.60, 116.00, 28.76)
RNG_SEED = 99
BATCH = 30
CLIENTS = 4
DURATION_S = 8.0


def _key(url: str, name: str) -> str:
    with db.get_engine(settings_for(url)).begin() as conn:
        return auth.create_key(conn, name, "commander")[0]


def _call(port: int, method: str, path: str, key: str, body=None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, body=None if body is None else json.dumps(body),
                     headers={"Authorization": f"Bearer {key}",
                              "Content-Type": "application/json"})  # fmt: skip
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


def _points(n: int, url: str) -> list[tuple[float, float]]:
    """``n`` random places in the urban core that a car can reach: within the 1 km of a
    drivable road that a case's recommendation allows (a few fall in lakes and parks,
    which the service rightly answers with "unreachable")."""
    rng = np.random.default_rng(RNG_SEED)
    lon, lat = rng.uniform(URBAN[0], URBAN[2], 3 * n), rng.uniform(URBAN[1], URBAN[3], 3 * n)
    with db.get_engine(settings_for(url)).connect() as conn:
        graph = routing.current_graph(conn)
    near = routing.snap.snap_lonlat(graph, "drive", lon, lat,
                                    max_distance_m=nearest.MAX_POINT_SNAP_M).found  # fmt: skip
    return list(zip(lon[near][:n].tolist(), lat[near][:n].tolist(), strict=True))


def bench_create_and_dispatch(url: str) -> None:
    key = _key(url, "bench commander")
    engine = db.get_engine(settings_for(url))
    points = iter(_points(200, url))
    created: list[int] = []
    with serve(url) as port:

        def create() -> None:
            lon, lat = next(points)
            status, body = _call(port, "POST", "/api/cases?k=5", key,
                                 {"kind": "incident", "title": "压测事件", "lon": lon,
                                  "lat": lat})  # fmt: skip
            assert status == 201 and len(body["recommendation"]["teams"]) == 5, body
            created.append(body["case"]["id"])

        ours = timings_ms(create, repeat=60, warmup=3)
        # Dispatch the best available team of each case, then release it (not timed).
        plans, taken = [], set()
        for case_id in created[:40]:
            _, rec = _call(port, "GET", f"/api/cases/{case_id}/recommend?k=5", key)
            free = [t["id"] for t in rec["teams"] if t["id"] not in taken]
            if free:
                plans.append((case_id, free[0]))
                taken.add(free[0])
        queue = iter(plans)
        releases = []

        def send() -> None:
            case_id, team_id = next(queue)
            status, body = _call(port, "POST", f"/api/cases/{case_id}/dispatch", key,
                                 {"team_ids": [team_id]})  # fmt: skip
            assert status == 201, body
            releases.append(body["dispatches"][0])

        sent = timings_ms(send, repeat=len(plans) - 2, warmup=2)
        for dispatch_id in releases:
            _call(port, "POST", f"/api/dispatches/{dispatch_id}/steps", key,
                  {"action": "release"})  # fmt: skip

    # Baseline for creation: pgRouting's top 5 from the database, no routes, no coverage.
    policy = rules.rules(settings_for(url).dispatch_rules)
    fit = policy.fit("incident")
    with engine.connect() as conn:
        graph = routing.current_graph(conn)
        rows = conn.execute(sa.text(
            "SELECT id, ST_X(geom), ST_Y(geom) FROM teams WHERE status = 'available' "
            "AND kind = ANY(:kinds)"), {"kinds": list(fit.team_kinds)}).all()  # fmt: skip
        ids = [r[0] for r in rows]
        snaps = routing.snap.snap_lonlat(graph, "drive", [r[1] for r in rows], [r[2] for r in rows])
        access = search.access_speed_ms("drive")
        baseline_points = iter(_points(20, url))

        def pgrouting_top5() -> None:
            lon, lat = next(baseline_points)
            point = routing.snap.snap_lonlat(graph, "drive", lon, lat)
            pairs = [(int(graph.edge_id[point.edge[0]]), float(point.fraction[0]))] + [
                (int(graph.edge_id[e]), float(f)) for e, f in zip(snaps.edge, snaps.fraction,
                                                                    strict=True)]  # fmt: skip
            cost = network.costs_between_points(conn, "drive", pairs, 0, reverse=True)
            sorted((c + snaps.distance_m[i - 1] / access, ids[i - 1]) for i, c in cost.items())[:5]

        theirs = timings_ms(pgrouting_top5, repeat=8, warmup=1)
    line(f"case creation with recommendation, drive, top 5 of {len(ids)} fitting among 5,650 "
         "teams, p50 over HTTP", p50(ours), "ms", p50(theirs),
         "pgRouting top 5 in the database (no routes, no coverage loss)", "≤ 100 ms")  # fmt: skip

    # Dispatch in process against the naive dispatch this service had before; each
    # dispatch is undone after the timer stops.
    actor = audit.Actor("bench", "commander")
    with engine.connect() as conn:
        team_ids = conn.execute(sa.text(
            "SELECT id FROM teams WHERE status = 'available' AND kind = 'medical' "
            "ORDER BY id LIMIT 40")).scalars().all()  # fmt: skip
    work = list(zip(created[40:], team_ids, strict=False))
    ours_ms, naive_ms = [], []
    for case_id, team_id in work:
        started = time.perf_counter()
        with engine.begin() as conn:
            made = dispatch.dispatch(conn, case_id, {"team_ids": [team_id]}, actor=actor,
                                     now=utc_now(), max_teams=10)  # fmt: skip
        ours_ms.append((time.perf_counter() - started) * 1000)
        with engine.begin() as conn:
            dispatch.step(conn, made[0], {"action": "release"}, actor=actor, now=utc_now())
        started = time.perf_counter()
        with engine.begin() as conn:
            made = conn.execute(sa.text(
                "INSERT INTO dispatches (case_id, team_id, status, assigned_at, assigned_by, "
                "source) VALUES (:c, :t, 'assigned', now(), 'bench', 'synthetic: bench') "
                "RETURNING id"), {"c": case_id, "t": team_id}).scalar()  # fmt: skip
            conn.execute(sa.text("UPDATE teams SET status = 'deployed' WHERE id = :t"),
                         {"t": team_id})  # fmt: skip
            conn.execute(sa.text("UPDATE cases SET status = 'dispatched' WHERE id = :c"),
                         {"c": case_id})  # fmt: skip
        naive_ms.append((time.perf_counter() - started) * 1000)
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE dispatches SET status = 'released', released_at = now() "
                                 "WHERE id = :d"), {"d": made})  # fmt: skip
            conn.execute(sa.text("UPDATE teams SET status = 'available' WHERE id = :t"),
                         {"t": team_id})  # fmt: skip
    line("dispatch of one team, p50 over HTTP", p50(sent), "ms", goal="≤ 20 ms")
    line("dispatch of one team, in process", p50(ours_ms[2:]), "ms", p50(naive_ms[2:]),
         "the unchecked dispatch this service had before (no lock, audit, event)")  # fmt: skip


def _teams_for_ingest(url: str, n: int) -> list[tuple[int, float, float]]:
    with db.get_engine(settings_for(url)).connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT id, ST_X(geom), ST_Y(geom) FROM teams WHERE kind = 'steward' "
            "ORDER BY id LIMIT :n"), {"n": n}).all()  # fmt: skip
    return [(r[0], r[1], r[2]) for r in rows]


def _load(port: int, key: str, teams, start: dt.datetime, per_request: int) -> float:
    """Fixes per second accepted by CLIENTS threads for DURATION_S (each thread its teams)."""
    stop = time.monotonic() + DURATION_S
    done = [0] * CLIENTS

    def client(i: int) -> None:
        mine = teams[i::CLIENTS]
        clock = {t[0]: 0 for t in mine}
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        j = 0
        while time.monotonic() < stop:
            team_id, lon, lat = mine[j % len(mine)]
            j += 1
            fixes = []
            for _ in range(per_request):
                k = clock[team_id]
                clock[team_id] += 1
                fixes.append({"lon": lon + 1e-5 * (k % 50), "lat": lat,
                              "recorded_at": (start + dt.timedelta(seconds=30 * k)).isoformat(),
                              "accuracy_m": 10})  # fmt: skip
            if per_request == 1:
                f = fixes[0]
                path, method = f"/api/teams/{team_id}", "PATCH"
                body = {"lon": f["lon"], "lat": f["lat"], "position_at": f["recorded_at"]}
            else:
                path, method, body = f"/api/teams/{team_id}/positions", "POST", {"fixes": fixes}
            try:
                conn.request(method, path, body=json.dumps(body),
                             headers={"Authorization": f"Bearer {key}",
                                      "Content-Type": "application/json"})  # fmt: skip
                response = conn.getresponse()
                answer = response.read()
                if response.status == 200:
                    done[i] += json.loads(answer)["accepted"] if per_request > 1 else 1
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.monotonic() - started)


def bench_ingest(url: str) -> None:
    key = _key(url, "bench devices")
    teams = _teams_for_ingest(url, 400)
    now = utc_now()
    # `geomap serve` (gunicorn, 2 threaded workers), as `make run` serves; the per-key rate
    # limit raised above the load: this measures what the service ingests, not the limiter.
    with gunicorn(url, rate_limit_rps=100_000, rate_limit_burst=100_000) as port:
        # Batches first (history 10 days back onwards), then single fixes later in time.
        batched = _load(port, key, teams, now - dt.timedelta(days=10), BATCH)
        single = _load(port, key, teams, now - dt.timedelta(days=5), 1)
        team = teams[0][0]
        day = (now - dt.timedelta(days=10)).isoformat()
        until = (now - dt.timedelta(days=9)).isoformat()
        query = f"/api/teams/{team}/track?from={day.replace('+', '%2B')}&to=" + until.replace(
            "+", "%2B")

        def read_track() -> None:
            status, body = _call(port, "GET", query, key)
            assert status == 200 and body["properties"]["fixes"] > 0, body

        track = timings_ms(read_track, repeat=30, warmup=2)
    with db.get_engine(settings_for(url)).connect() as conn:
        stored = conn.execute(sa.text("SELECT count(*) FROM team_positions")).scalar()
    line(f"position ingest, batches of {BATCH}, gunicorn 2 workers, {CLIENTS} clients",
         batched, "fixes/s", goal="≥ 1,000 fixes/s")  # fmt: skip
    print(f"  | baseline one fix per request (PATCH /api/teams/<id>): {single:,.0f} fixes/s → "
          f"{batched / single:,.1f}× more; {stored:,} fixes stored in the history", flush=True)
    line("a team's track for one day of its history, p50 over HTTP", p50(track), "ms")


def run(url: str) -> None:
    db.get_engine(settings_for(url))
    bench_create_and_dispatch(url)
    bench_ingest(url)
