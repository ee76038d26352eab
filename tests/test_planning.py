"""Planning: location models (exact on known optima and brute force), suggestions on
Nanchang, scenarios against /api/coverage with the venues added for real, jobs."""

from __future__ import annotations

import csv
import io
import itertools
import time

import numpy as np
import pytest
import scipy.sparse as sp
import sqlalchemy as sa
from sqlalchemy.orm import Session

from geomap import auth, config, create_app, db
from geomap.analysis import covergrids
from geomap.ops import audit
from geomap.planning import demand, jobs, models, question, suggest
from geomap.routing import index
from tests import handmade


def _instance(sets: list[list[int]], weights: list[float]) -> models.Instance:
    rows = [u for j, units in enumerate(sets) for u in units]
    cols = [j for j, units in enumerate(sets) for _ in units]
    cover = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(weights), len(sets)))
    return models.Instance(cover, np.asarray(weights, dtype=float))


def _brute(inst: models.Instance, n: int) -> float:
    return max(inst.value(list(c)) for c in itertools.combinations(range(inst.n_sites), n))


# -- models --------------------------------------------------------------------------------
def test_hand_made_instance_has_its_known_optimum_where_greedy_falls_short(monkeypatch):
    # Site 0 covers the most alone (4), so greedy takes it and ends at 5; sites 1 and 2
    # together cover all 6 units: the optimum of n = 2 is 6, with sites {1, 2}.
    inst = _instance([[0, 1, 2, 3], [0, 1, 4], [2, 3, 5]], [1, 1, 1, 1, 1, 1])
    assert models.greedy(inst, 2).value == 5
    for cells in (models.SPOPT_MAX_CELLS, 0):  # spopt's MCLP, then the sparse HiGHS model
        monkeypatch.setattr(models, "SPOPT_MAX_CELLS", cells)
        best = models.maximal_coverage(inst, 2)
        assert best.status == "optimal" and best.gap == 0
        assert best.value == 6 and sorted(best.sites) == [1, 2]
        assert sum(best.gains) == 6
    fewest = models.set_covering(inst, 6)
    assert fewest.status == "optimal" and sorted(fewest.sites) == [1, 2]
    assert len(models.greedy(inst, 3, target=6).sites) == 3  # greedy needs one more
    assert models.set_covering(inst, 7).status == "infeasible"


@pytest.mark.parametrize("seed", range(6))
def test_maximal_coverage_equals_brute_force_on_random_instances(seed):
    rng = np.random.default_rng(seed)
    sites, units = 14, 120
    centres = rng.uniform(0, 10, size=(sites, 2))
    points = rng.uniform(0, 10, size=(units, 2))
    reach = rng.uniform(1.5, 3.0, size=sites)
    sets = [list(np.flatnonzero(np.hypot(*(points - c).T) <= r)) for c, r in zip(centres, reach,
                                                                               strict=True)]
    inst = _instance(sets, list(rng.integers(1, 50, size=units)))
    for n in (1, 2, 3):
        found = models.maximal_coverage(inst, n)
        assert found.status == "optimal"
        assert found.value == pytest.approx(_brute(inst, n))
        assert inst.value(found.sites) == pytest.approx(found.value)
        assert found.gains == sorted(found.gains, reverse=True)  # in order of marginal gain


def test_p_median_matches_a_brute_force():
    rng = np.random.default_rng(3)
    cost = rng.uniform(60, 900, size=(25, 6))
    weight = rng.integers(10, 100, size=25).astype(float)
    base = rng.uniform(300, 1200, size=25)
    found = models.p_median(cost, weight, base, 2)
    best = min(
        float((weight * np.minimum(base, cost[:, list(c)].min(axis=1))).sum())
        for c in itertools.combinations(range(6), 2)
    )
    assert found.status == "optimal"
    assert found.value == pytest.approx(best, rel=1e-6)


def test_demand_units_group_points_with_the_same_sites_exactly():
    sets = [np.array([0, 1, 2, 5]), np.array([1, 2, 3]), np.array([2, 3, 4, 5])]
    weight = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    built = demand.build(demand.site_matrix(sets, 7), weight, base=np.array([4]))
    # Point 4 is already covered, point 6 by no site; {0}, {1}, {2}, {3}, {5}: sets
    # {0}, {0,1}, {0,1,2}, {1,2}, {0,2}: five units.
    assert sorted(built.points.tolist()) == [0, 1, 2, 3, 5]
    assert built.instance.n_units == 5
    assert built.instance.weight.sum() == 1 + 2 + 3 + 4 + 6


# -- on the hand-made network: the API, jobs, scenarios ------------------------------------
def _small_city(conn) -> None:
    """The hand-made network with a district, four grids, one red station (locked) and
    three other stations (candidates); labelled synthetic."""
    handmade.load(conn)
    conn.execute(sa.text(
        "INSERT INTO regions (code, parent_code, level, name, geom, source) VALUES "
        "('369900', NULL, 'city', '测试市', ST_Multi(ST_MakeEnvelope(115.89, 28.65, 115.92, "
        "28.68, 4326)), 'synthetic: t'), ('369901', '369900', 'district', '测试区', "
        "ST_Multi(ST_MakeEnvelope(115.89, 28.65, 115.92, 28.68, 4326)), 'synthetic: t'),"
        "('369901001', '369901', 'township', '测试街道', ST_Multi(ST_MakeEnvelope(115.89, "
        "28.65, 115.92, 28.68, 4326)), 'synthetic: t'), ('369901001001', '369901001', "
        "'community', '测试社区', ST_Multi(ST_MakeEnvelope(115.89, 28.65, 115.92, 28.68, "
        "4326)), 'synthetic: t')"))  # fmt: skip
    grids = [("G1", "东一网格", 0, 0), ("G2", "东二网格", 5, 0), ("G3", "西一网格", 0, 5),
             ("G4", "西二网格", 5, 5)]  # fmt: skip
    for code, name, col, row in grids:
        lon, lat = handmade.node_lonlat(col, row)
        conn.execute(sa.text(
            "INSERT INTO grids (code, name, community_code, population, households, geom, "
            "source) VALUES (:code, :name, '369901001001', 1000, 300, ST_Multi(ST_MakeEnvelope("
            ":lon, :lat, :lon + 0.004, :lat + 0.004, 4326)), 'synthetic: t')"),
            {"code": code, "name": name, "lon": lon, "lat": lat})  # fmt: skip
    places = [("红色驿站一", "red_station", 1, 1), ("社区中心", "centre_community", 7, 7),
              ("网格站", "grid_station", 2, 7), ("服务站", "grid_station", 7, 2)]  # fmt: skip
    for name, kind, col, row in places:
        lon, lat = handmade.node_lonlat(col, row)
        conn.execute(sa.text(
            "INSERT INTO stations (name, kind, geom, source) VALUES (:name, :kind, "
            "ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), 'synthetic: t')"),
            {"name": name, "kind": kind, "lon": lon, "lat": lat})  # fmt: skip


def _planner(app, conn) -> object:
    """A test client that sends a planner's key with every request (open reads never write)."""
    key = auth.create_key(conn, "planning test", "planner")[0]
    planner = app.test_client()
    planner.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    return planner


@pytest.fixture
def client(app, connection):
    """This module's client: a planner's, since its jobs and scenarios are writes."""
    return _planner(app, connection)


def test_plan_job_answers_and_locked_venues_are_never_suggested(client, connection):
    _small_city(connection)
    response = client.post("/api/plans", json={"n": 2, "minutes": 5})
    assert response.status_code == 201, response.get_json()
    job = client.get(response.headers["Location"]).get_json()
    assert job["status"] == "done", job
    answer = job["result"]
    assert answer["status"] == "optimal" and answer["gap"] == 0
    red = {r[0] for r in connection.execute(
        sa.text("SELECT id FROM stations WHERE kind = 'red_station'"))}  # fmt: skip
    assert len(answer["sites"]) == 2
    assert all(s["venue_id"] not in red and s["kind"] != "red_station" for s in answer["sites"])
    assert answer["after"]["covered_population"] >= answer["before"]["covered_population"]
    assert answer["gained"] == pytest.approx(sum(s["gain"] for s in answer["sites"]), abs=2)
    assert answer["greedy"]["gained"] <= round(answer["objective"]) + 1
    assert {"matrix_s", "model_s", "solve_s", "greedy_s"} <= set(answer["phases"])
    assert answer["by_district"][0]["name"] == "测试区"
    assert all(s["circle"]["type"] in ("Polygon", "MultiPolygon") for s in answer["sites"])

    # Downloads: CSV with a BOM (Excel reads the Chinese), GeoPackage, HTML zh and en.
    raw = client.get(f"/api/jobs/{job['id']}/report?format=csv").data
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert [r["name"] for r in rows] == [s["name"] for s in answer["sites"]]
    gpkg = client.get(f"/api/jobs/{job['id']}/report?format=gpkg")
    assert gpkg.status_code == 200 and gpkg.data[:15] == b"SQLite format 3"
    zh = client.get(f"/api/jobs/{job['id']}/report?format=html").get_data(as_text=True)
    en = client.get(f"/api/jobs/{job['id']}/report?format=html&lang=en").get_data(as_text=True)
    assert "选址建议报告" in zh and "口径说明" in zh and "<svg" in zh
    assert "Site suggestion report" in en and "share of residents" in en

    # A locked venue in an uploaded layer is dropped, never suggested.
    lon, lat = handmade.node_lonlat(1, 1)
    other = handmade.node_lonlat(5, 6)
    body = {"n": 1, "minutes": 5, "candidates": "layer",
            "layer": [{"name": "驿站原址", "lon": lon, "lat": lat},
                      {"name": "新点", "lon": other[0], "lat": other[1]}]}  # fmt: skip
    job = client.get(client.post("/api/plans", json=body).headers["Location"]).get_json()
    assert job["result"]["candidates_dropped_as_venues"] == 1
    assert [s["name"] for s in job["result"]["sites"]] == ["新点"]


def test_plan_input_errors_name_the_field(client, connection):
    for body, field in [({"n": 0}, "n"), ({"mode": "fly"}, "mode"), ({"bogus": 1}, "bogus"),
                        ({"minutes": 5, "distance_m": 300}, "minutes"),
                        ({"candidates": "layer"}, "layer"),
                        ({"candidates": "layer", "layer": [{"lon": 500, "lat": 1}]}, "layer"),
                        ({"model": "covering", "target_share": 2}, "target_share")]:  # fmt: skip
        response = client.post("/api/plans", json=body)
        assert response.status_code == 400, body
        assert response.get_json()["error"]["field"] == field
    assert client.get("/api/jobs/nope").status_code == 404


def test_scenario_coverage_equals_api_coverage_with_the_venues_added_for_real(client,
                                                                               connection):
    _small_city(connection)
    added = [handmade.node_lonlat(7, 7), handmade.node_lonlat(3, 8)]
    removed = connection.execute(sa.text(
        "SELECT id FROM stations WHERE kind = 'red_station'")).scalar()  # fmt: skip
    body = {"name": "两个新驿站", "of": "stations", "kind": ["red_station"],
            "added": [{"name": f"新{i}", "lon": lon, "lat": lat}
                      for i, (lon, lat) in enumerate(added)],
            "removed": [{"venue_table": "stations", "venue_id": removed}]}  # fmt: skip
    created = client.post("/api/scenarios", json=body)
    assert created.status_code == 201, created.get_json()
    sid = created.get_json()["id"]
    assert [s["name"] for s in client.get("/api/scenarios").get_json()["scenarios"]] == [
        "两个新驿站"]
    assert client.post("/api/scenarios", json=body).status_code == 400  # same name twice
    what_if = {}
    for level in ("grid", "district"):
        what_if[level] = client.get(f"/api/scenarios/{sid}/coverage?minutes=10&level={level}")
        assert what_if[level].status_code == 200, what_if[level].get_json()
    baseline = client.get("/api/coverage?of=stations&kind=red_station&by=walk&within_min=10"
                          "&level=grid").get_json()  # fmt: skip
    # Live tables untouched: the baseline is the venues as they are.
    assert what_if["grid"].get_json()["baseline"] == baseline["summary"]

    # Now for real, in this (rolled-back) transaction.
    connection.execute(sa.text("DELETE FROM stations WHERE id = :id"), {"id": removed})
    for lon, lat in added:
        connection.execute(sa.text(
            "INSERT INTO stations (name, kind, geom, source) VALUES ('新', 'red_station', "
            "ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), 'synthetic: t')"),
            {"lon": lon, "lat": lat})  # fmt: skip
    for level in ("grid", "district"):
        real = client.get("/api/coverage?of=stations&kind=red_station&by=walk&within_min=10"
                          f"&level={level}").get_json()  # fmt: skip
        scenario = what_if[level].get_json()
        assert scenario["summary"] == real["summary"]
        keys = ("code", "population", "covered_population", "covered_share_area",
                "covered_share_population", "nearest_m", "covered")  # fmt: skip
        assert [{k: u[k] for k in keys} for u in scenario["units"]] == [
            {k: u[k] for k in keys} for u in real["units"]]
    # The kept reach sets give what one search from every venue gives.
    places = np.array(connection.execute(sa.text(
        "SELECT ST_X(geom), ST_Y(geom) FROM stations WHERE kind = 'red_station'")).all())
    kept = covergrids.network_rows(connection, places, mode="walk", budget_s=600,
                                   walk_speed_kmh=4.5, access_m=50.0)  # fmt: skip
    searched = covergrids.search_rows(connection, places, mode="walk", budget_s=600,
                                      walk_speed_kmh=4.5, access_m=50.0)  # fmt: skip
    assert [r["covered_m2"] for r in kept] == pytest.approx([r["covered_m2"] for r in searched])
    assert client.delete(f"/api/scenarios/{sid}").status_code == 200
    assert client.get(f"/api/scenarios/{sid}").status_code == 404


def test_a_suggestion_saved_as_a_scenario(client, connection):
    _small_city(connection)
    job = client.get(client.post("/api/plans", json={"n": 2, "minutes": 5})
                     .headers["Location"]).get_json()  # fmt: skip
    saved = client.post("/api/scenarios", json={"from_job": job["id"], "name": "建议"})
    assert saved.status_code == 201
    assert [p["name"] for p in saved.get_json()["added"]] == [
        s["name"] for s in job["result"]["sites"]]
    what_if = client.get(f"/api/scenarios/{saved.get_json()['id']}/coverage?minutes=5"
                         "&level=district").get_json()  # fmt: skip
    assert what_if["summary"]["covered_population"] == job["result"]["after"]["covered_population"]


# -- jobs in a worker thread, state in the database ----------------------------------------
def test_jobs_run_in_a_thread_report_progress_and_cancel(db_url):
    settings = config.load({"database_url": db_url}, environ={})
    engine = db.get_engine(settings)
    with engine.begin() as conn:
        _small_city(conn)
        app = create_app({"database_url": db_url, "log_level": "WARNING"})
        client = _planner(app, conn)
    started = client.post("/api/plans", json={"n": 2, "minutes": 5})
    assert started.status_code == 201
    deadline = time.monotonic() + 60
    job = started.get_json()
    while job["status"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.1)
        job = client.get(started.headers["Location"]).get_json()
    assert job["status"] == "done", job
    assert job["progress"] == 1 and len(job["result"]["sites"]) == 2

    # A long job, cancelled from the API: the thread sees the flag at its next step.
    with Session(engine) as session:  # the planner's own job, so its client may see it
        key_id = session.execute(
            sa.text("SELECT id FROM api_keys WHERE name = 'planning test'")).scalar()  # fmt: skip
        job_id = jobs.create(session, f"key:{key_id}", "test", {},
                             actor=audit.Actor("planning test", "planner", key_id))
        session.commit()

    def work(session, progress):
        for i in range(10_000):
            progress(i / 10_000, f"step {i}")
            time.sleep(0.01)
        return {}

    thread = jobs.start(engine, job_id, work)
    # Polled, not slept: on a loaded machine the thread may take a while to report a step.
    deadline = time.monotonic() + 60
    running = client.get(f"/api/jobs/{job_id}").get_json()
    while not (running["status"] == "running" and running["progress"] > 0) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.05)
        running = client.get(f"/api/jobs/{job_id}").get_json()
    assert running["status"] == "running" and 0 < running["progress"] < 1
    assert client.delete(f"/api/jobs/{job_id}").get_json()["cancel_requested"] is True
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert client.get(f"/api/jobs/{job_id}").get_json()["status"] == "cancelled"
    assert client.delete(f"/api/jobs/{job_id}").get_json()["status"] == "deleted"
    assert client.get(f"/api/jobs/{job_id}").status_code == 404
    index.clear()


# -- Nanchang: one township, brute force over every combination ------------------------------
def busy_township(session, most_candidates: int) -> str:
    """A township with 25 to ``most_candidates`` candidate stations where three new sites
    each gain residents (many townships are covered already)."""
    rows = session.execute(sa.text(
        """
        SELECT r.code FROM regions r JOIN stations s ON ST_Intersects(r.geom, s.geom)
        WHERE r.level = 'township' AND s.kind <> 'red_station'
        GROUP BY r.code HAVING count(*) BETWEEN 25 AND :most ORDER BY r.code
        """), {"most": most_candidates}).scalars()  # fmt: skip
    for code in rows:
        answer = suggest.run(session, question.make_plan(n=3, area=code))
        if len(answer["sites"]) == 3 and answer["demand"]["units"] >= 100:
            return code
    raise AssertionError("no township where three sites gain residents")


@pytest.mark.slow
def test_maximal_coverage_equals_brute_force_on_a_township(nanchang_connection):
    conn = nanchang_connection
    with Session(bind=conn, join_transaction_mode="create_savepoint") as session:
        township = busy_township(session, most_candidates=60)
    with Session(bind=conn, join_transaction_mode="create_savepoint") as session:
        answers = {n: suggest.run(session, question.make_plan(n=n, area=township))
                   for n in (1, 2, 3)}  # fmt: skip
        # The brute force, on the sample points themselves (no demand units).
        plan = question.make_plan(area=township)
        eng = index.engine(session, plan.access_m)
        samples = eng.sample_index(session)
        locked = suggest.venues(session, "red", None)
        cands, _ = suggest._candidates(session, plan, locked)
        base = index.union(eng.reach_sets(session, suggest._places(locked), plan.reach),
                           samples.n_points)  # fmt: skip
        sets = eng.reach_sets(session, suggest._places(cands), plan.reach)
    inside = {r[0] for r in conn.execute(suggest.AREA_GRIDS_SQL, {"area": township})}
    weight = samples.point_weight * np.array([c in inside for c in samples.codes])[
        samples.point_grid]
    free = np.ones(samples.n_points, dtype=bool)
    free[base] = False
    masks = np.zeros((len(sets), samples.n_points), dtype=bool)
    for j, s in enumerate(sets):
        masks[j, s] = True
    useful = masks.any(axis=0) & free & (weight > 0)
    masks, w = masks[:, useful], weight[useful]
    for n, answer in answers.items():
        best = max(float(w[np.logical_or.reduce(masks[list(c)], axis=0)].sum())
                   for c in itertools.combinations(range(len(sets)), n))
        assert answer["status"] == "optimal"
        assert answer["objective"] == pytest.approx(best, rel=1e-9)
        assert answer["gained"] == pytest.approx(best, abs=1)
