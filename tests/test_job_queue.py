"""Plan jobs through the queue held in PostgreSQL, on a real server with real concurrency.

The app is served by a threaded server (tests/browser.py ``serve_app``) with its runner
threads; clients are threads with connections of their own. The plan question is small
(the hand-made network of tests/test_planning.py), so a job runs in about a second.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import sqlalchemy as sa
from sqlalchemy.orm import Session

from geomap import config, create_app, db
from geomap.auth.keys import create_key
from geomap.ops.audit import Actor
from geomap.planning import jobs, question, runners
from geomap.routing import index
from tests.browser import serve_app
from tests.test_planning import _small_city

#: Who makes the jobs these tests write directly (every job is made by somebody).
TESTER = Actor("job queue test", "planner")

PLAN = {"n": 2, "minutes": 5, "time_limit_s": 10}
TIME_LIMIT_S = 60.0


@pytest.fixture
def city(db_url: str) -> Iterator[dict]:
    """A fresh database with the small city and two planner keys."""
    engine = db.get_engine(config.load({"database_url": db_url}, environ={}))
    with engine.begin() as conn:
        _small_city(conn)
        keys = {name: create_key(conn, name, "planner")[0] for name in ("ann", "bo")}
    yield {"url": db_url, "engine": engine, "keys": keys}
    index.clear()


def _served(city: dict, **settings):
    return create_app({"database_url": city["url"], "log_level": "WARNING",
                       "job_time_limit_s": TIME_LIMIT_S, **settings})  # fmt: skip


@pytest.fixture
def stop_runners() -> Iterator[list]:
    """Apps whose runners are stopped after the test (no thread left polling)."""
    apps: list = []
    yield apps
    for app in apps:
        started = app.extensions.get("geomap_job_runners")
        if started is not None:
            started.stop()


def _wait(base: str, headers: dict, job_id: str, until: set[str], limit_s: float) -> dict:
    deadline = time.monotonic() + limit_s
    job = requests.get(f"{base}/api/jobs/{job_id}", headers=headers, timeout=10).json()
    while job["status"] not in until and time.monotonic() < deadline:
        time.sleep(0.1)
        job = requests.get(f"{base}/api/jobs/{job_id}", headers=headers, timeout=10).json()
    return job


def _p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def _probe(base: str, headers: dict, count: int) -> list[float]:
    """Cheap requests one after another on one kept-alive connection: their latencies."""
    out = []
    with requests.Session() as probe:
        for _ in range(count):
            t = time.perf_counter()
            assert probe.get(f"{base}/api/layers", headers=headers, timeout=10).status_code == 200
            out.append(time.perf_counter() - t)
    return out


def _audit(engine, action: str, job: str) -> list:
    with engine.connect() as conn:
        return conn.execute(sa.text(
            "SELECT key_name, key_role, changes FROM audit_log WHERE action = :action "
            "AND (changes->>'job' = :job OR changes->>'scenario' = :job) ORDER BY id"),
            {"action": action, "job": job}).all()  # fmt: skip


def test_fifty_plans_at_once_are_queued_or_refused_fast_and_none_is_stuck(city, stop_runners):
    app = _served(city)
    stop_runners.append(app)
    headers = {"X-API-Key": city["keys"]["ann"]}
    with serve_app(app) as base:
        _probe(base, headers, 20)  # warm: the first requests build what later ones share
        idle = _probe(base, headers, 200)
        barrier = threading.Barrier(50)

        def post(_: int) -> tuple[int, float, dict, dict]:
            with requests.Session() as s:
                barrier.wait()
                t = time.perf_counter()
                r = s.post(f"{base}/api/plans", json=PLAN, headers=headers, timeout=30)
                return r.status_code, time.perf_counter() - t, dict(r.headers), r.json()

        with ThreadPoolExecutor(50) as pool:
            answers = list(pool.map(post, range(50)))
        busy = _probe(base, headers, 200)  # while the accepted jobs are queued and run
        print(f"idle p99 {_p99(idle) * 1000:.1f} ms, busy p99 {_p99(busy) * 1000:.1f} ms, "
              f"slowest post {max(a[1] for a in answers) * 1000:.0f} ms")  # fmt: skip
        accepted = [a for a in answers if a[0] == 201]
        refused = [a for a in answers if a[0] == 429]
        assert len(accepted) + len(refused) == 50, sorted({a[0] for a in answers})
        assert max(a[1] for a in answers) < 1.0, sorted(a[1] for a in answers)[-5:]
        # GEOMAP_JOBS_PER_KEY: 4 at most queued or running at once (a job that finished
        # during the burst frees its place for a later request).
        assert 4 <= len(accepted) < 50
        for _, _, response_headers, body in refused:
            assert int(response_headers["Retry-After"]) >= 1
            assert "GEOMAP_JOBS_PER_KEY" in body["error"]["message"]
        for _, _, _, body in accepted:
            assert body["status"] in ("queued", "running")
        finished = [_wait(base, headers, body["id"], {"done", "failed"}, TIME_LIMIT_S)
                    for _, _, _, body in accepted]  # fmt: skip
        assert [j["status"] for j in finished] == ["done"] * len(accepted), [
            j["error"] for j in finished]
        assert all(len(j["result"]["sites"]) == 2 for j in finished)
        with city["engine"].connect() as conn:  # while it serves: its runners are connected
            workers = conn.execute(sa.text(
                "SELECT DISTINCT application_name FROM pg_stat_activity "
                "WHERE datname = current_database()")).scalars().all()  # fmt: skip
        # A finished job frees its place: the key may queue again.
        again = requests.post(f"{base}/api/plans", json=PLAN, headers=headers, timeout=10)
        assert again.status_code == 201
        _wait(base, headers, again.json()["id"], {"done", "failed"}, TIME_LIMIT_S)
    with city["engine"].connect() as conn:
        stuck = conn.execute(sa.text(
            "SELECT count(*) FROM plan_jobs WHERE status IN ('queued', 'running')")).scalar()
        spans = conn.execute(sa.text("SELECT created_at, finished_at FROM plan_jobs")).all()
    assert stuck == 0
    most = max(sum(1 for c, f in spans if c <= t and (f is None or f > t)) for t, _ in spans)
    assert most == 4
    assert "geomap-jobs" in workers  # the runners' own connections, not the requests' pool
    # Cheap requests while jobs are queued and run: within twice the idle p99, or idle + 50 ms:
    # the p99 of 200 probes is their second slowest, and on a machine whose cores other
    # processes share one descheduling (a few ms to tens of ms) moves it by more than the
    # idle p99 itself (runs here: idle 7-15 ms, busy 10-13 ms).
    assert _p99(busy) <= max(2 * _p99(idle), _p99(idle) + 0.05), (_p99(idle), _p99(busy))
    job = accepted[0][3]["id"]
    assert [r.key_name for r in _audit(city["engine"], "plan_job.create", job)] == ["ann"]
    assert [r.changes["status"] for r in _audit(city["engine"], "plan_job.finish", job)] == [
        ["running", "done"]]


def _slow(session: Session, job_input: dict, progress) -> dict:
    for i in range(100_000):
        progress(i / 100_000, f"step {i}")
        time.sleep(0.01)
    return {}


def test_delete_cancels_a_queued_job_at_once_and_a_running_one_at_its_next_step(
    city, stop_runners, monkeypatch
):
    monkeypatch.setitem(runners.KINDS, "slow", _slow)
    app = _served(city)
    stop_runners.append(app)
    headers = {"X-API-Key": city["keys"]["bo"]}
    with serve_app(app) as base:
        with Session(city["engine"]) as session:
            key_id = session.execute(sa.text("SELECT id FROM api_keys WHERE name = 'bo'")).scalar()
            # A kind no runner knows: it stays queued until cancelled.
            waiting = jobs.create(session, f"key:{key_id}", "never", {}, actor=TESTER)
            session.commit()
        cancelled = requests.delete(f"{base}/api/jobs/{waiting}", headers=headers, timeout=10)
        assert cancelled.json()["status"] == "cancelled"
        assert requests.get(f"{base}/api/jobs/{waiting}", headers=headers,
                            timeout=10).json()["status"] == "cancelled"  # fmt: skip

        from geomap.api.plans import start_runners

        start_runners(app)
        with Session(city["engine"]) as session:
            slow = jobs.create(session, f"key:{key_id}", "slow", {},
                               actor=Actor("bo", "planner", key_id))  # fmt: skip
            session.commit()
        running = _wait(base, headers, slow, {"running"}, 30)
        while running["status"] == "running" and running["progress"] == 0:
            running = _wait(base, headers, slow, {"running"}, 1)
        assert running["status"] == "running"
        asked = requests.delete(f"{base}/api/jobs/{slow}", headers=headers, timeout=10).json()
        assert asked["status"] in ("cancelling", "cancelled") and asked["cancel_requested"]
        assert _wait(base, headers, slow, {"cancelled"}, 30)["status"] == "cancelled"
    assert [r.changes["status"] for r in _audit(city["engine"], "plan_job.cancel", slow)] == [
        ["running", "cancelling"]]
    assert [r.changes["status"] for r in _audit(city["engine"], "plan_job.finish", slow)] == [
        ["running", "cancelled"]]


def test_a_job_past_its_time_limit_fails_naming_the_limit(city, stop_runners, monkeypatch):
    monkeypatch.setitem(runners.KINDS, "slow", _slow)
    app = _served(city, job_time_limit_s=1.0)
    stop_runners.append(app)
    from geomap.api.plans import start_runners

    start_runners(app)
    with Session(city["engine"]) as session:
        job_id = jobs.create(session, "local", "slow", {}, actor=TESTER)
        session.commit()
    deadline = time.monotonic() + 30
    with Session(city["engine"]) as session:
        job = jobs.get(session, job_id, None)
        while job["status"] in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.2)
            session.rollback()
            job = jobs.get(session, job_id, None)
    assert job["status"] == "failed"
    assert job["error"]["code"] == "time_limit"
    assert "GEOMAP_JOB_TIME_LIMIT_S" in job["error"]["message"]


def test_a_job_whose_runner_died_is_run_again_or_failed_within_the_bound(city, stop_runners):
    app = _served(city)
    stop_runners.append(app)
    plan_input = runners.plan_input(question.make_plan(**PLAN))
    ids = {}
    with Session(city["engine"]) as session:
        for runs in (1, 2):
            ids[runs] = jobs.create(session, "local", "plan", {}, input=plan_input,
                                        actor=TESTER)
            # As a runner leaves it when its process is killed mid-job: running, the lease
            # (renewed while it lived) now run out.
            session.execute(sa.text(
                "UPDATE plan_jobs SET status = 'running', worker = 'gone:1:0/dead', "
                "attempts = :runs, started_at = now(), lease_until = now() - interval '1 s' "
                "WHERE id = :id"), {"runs": runs, "id": ids[runs]})  # fmt: skip
        session.commit()
    from geomap.api.plans import start_runners

    t = time.monotonic()
    start_runners(app)
    bound = jobs.LEASE_S + jobs.SWEEP_EVERY_S  # the documented bound after the last renewal
    deadline = t + bound + TIME_LIMIT_S
    with Session(city["engine"]) as session:
        while time.monotonic() < deadline:
            states = {runs: jobs.get(session, job_id, None) for runs, job_id in ids.items()}
            session.rollback()
            if all(s["status"] in ("done", "failed") for s in states.values()):
                break
            time.sleep(0.2)
    assert states[2]["status"] == "failed" and states[2]["error"]["code"] == "worker_lost"
    assert states[1]["status"] == "done" and states[1]["attempts"] == 2
    assert time.monotonic() - t < bound + TIME_LIMIT_S
    requeued = _audit(city["engine"], "plan_job.requeue", ids[1])
    assert [r.key_role for r in requeued] == ["system"]


def test_scenario_writes_leave_audit_rows(city):
    app = create_app({"database_url": city["url"], "log_level": "WARNING"})
    client = app.test_client()
    headers = {"X-API-Key": city["keys"]["ann"]}
    body = {"name": "多一个站", "of": "red",
            "added": [{"name": "新站", "lon": 115.905, "lat": 28.665}]}  # fmt: skip
    saved = client.post("/api/scenarios", json=body, headers=headers)
    assert saved.status_code == 201, saved.get_json()
    scenario = str(saved.get_json()["id"])
    assert client.delete(f"/api/scenarios/{scenario}", headers=headers).status_code == 200
    created = _audit(city["engine"], "scenario.create", scenario)
    assert [(r.key_name, r.changes["name"]) for r in created] == [("ann", "多一个站")]
    assert [r.key_name for r in _audit(city["engine"], "scenario.delete", scenario)] == ["ann"]
