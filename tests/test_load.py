"""Many requests at once: no lock held across a request, no 500 under overload.

* Two requests with one key run side by side (the key check holds no row lock).
* No free database connection within ``pool_timeout_s`` → 503 with Retry-After, not a 500
  after 30 s; analyses beyond ``heavy_requests`` → 503 at once; a caller over its rate → 429.
* A real server (gunicorn, 2 workers, as ``geomap serve --workers 2``) under a bounded
  overload on the Nanchang data: analyses saturate it, and a commander's cheap question
  (nearest teams by distance) still answers within a second.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from geomap import auth, create_app
from geomap.web.guard import TokenBuckets
from tests.browser import http_get, serve_app


def _get(url: str, headers: dict[str, str] | None = None, timeout: float = 60):
    """(status, headers, seconds) of a GET, sent as a browser sends it."""
    start = time.perf_counter()
    status, answer_headers, _ = http_get(url, headers, timeout)
    return status, answer_headers, time.perf_counter() - start


@pytest.fixture
def committed(db_url: str) -> Iterator[tuple[str, sa.Engine]]:
    """A fresh database whose rows are committed (a real server sees them)."""
    engine = sa.create_engine(db_url, poolclass=sa.NullPool)
    yield db_url, engine
    engine.dispose()


class Locked:
    """Hold an exclusive lock on a table from another connection: queries on it wait
    (a slow query, made to order)."""

    def __init__(self, engine: sa.Engine, table: str) -> None:
        self.conn = engine.connect()
        self.transaction = self.conn.begin()
        self.conn.execute(sa.text(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))

    def release(self) -> None:
        self.transaction.rollback()
        self.conn.close()


def _in_thread(target) -> tuple[threading.Thread, dict]:
    out: dict = {}

    def run() -> None:
        out["result"] = target()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def test_a_slow_request_with_a_key_does_not_delay_another_with_the_same_key(committed) -> None:
    url, engine = committed
    with engine.begin() as conn:
        key, _ = auth.create_key(conn, "commander's tablet", "commander")
    headers = {"Authorization": f"Bearer {key}"}
    app = create_app({"database_url": url, "log_level": "WARNING"})
    with serve_app(app) as base:
        lock = Locked(engine, "teams")
        try:
            slow, out = _in_thread(lambda: _get(base + "/api/layers/teams", headers))
            time.sleep(0.5)  # the slow request is now waiting on the teams table
            assert slow.is_alive()
            status, _, seconds = _get(base + "/api/layers/grids?limit=1", headers, timeout=10)
            assert status == 200
            assert seconds < 1.0, f"the fast request waited {seconds:.1f} s behind the slow one"
            assert slow.is_alive(), "the slow request should still be waiting"
        finally:
            lock.release()
        slow.join(timeout=30)
        assert out["result"][0] == 200
    # The key's last use is still written: in the background, in a transaction of its own.
    deadline = time.monotonic() + 10
    used = None
    while used is None and time.monotonic() < deadline:
        with engine.connect() as conn:
            used = conn.execute(sa.text("SELECT last_used_at FROM api_keys")).scalar()
        time.sleep(0.1)
    assert used is not None


def test_no_free_connection_is_a_503_with_retry_after(committed) -> None:
    url, engine = committed
    # Keyless, as the demo's browser reads (open reads on): the pool is what is tested.
    app = create_app({"database_url": url, "pool_size": 1, "pool_timeout_s": 0.5,
                      "log_level": "WARNING", "open_read": True})  # fmt: skip
    with serve_app(app) as base:
        lock = Locked(engine, "teams")
        try:
            holder, out = _in_thread(lambda: _get(base + "/api/layers/teams"))
            time.sleep(0.5)  # it holds the only connection, waiting on the lock
            status, headers, seconds = _get(base + "/api/layers/grids?limit=1", timeout=10)
            assert status == 503 and int(headers["Retry-After"]) >= 1
            assert seconds < 2.0
        finally:
            lock.release()
        holder.join(timeout=30)
        assert out["result"][0] == 200
        assert _get(base + "/api/layers/grids?limit=1")[0] == 200  # and it recovers


def test_analyses_beyond_the_slots_are_turned_away_at_once(committed) -> None:
    url, engine = committed
    app = create_app({"database_url": url, "heavy_requests": 1, "log_level": "WARNING",
                      "open_read": True})  # keyless, as the demo reads: the slots are tested
    with serve_app(app) as base:
        lock = Locked(engine, "grids")
        try:
            analysis, out = _in_thread(lambda: _get(base + "/api/coverage?within_m=500"))
            time.sleep(0.5)
            status, headers, seconds = _get(base + "/api/coverage?within_m=800", timeout=10)
            assert status == 503 and headers["Retry-After"] and seconds < 0.5
            # A cheap question is not an analysis: it is answered meanwhile.
            assert _get(base + "/api/teams/nearest?lon=115.9&lat=28.66", timeout=10)[0] == 200
            assert _get(base + "/api/layers/teams", timeout=10)[0] == 200
        finally:
            lock.release()
        analysis.join(timeout=30)
        assert out["result"][0] == 200


def test_token_buckets() -> None:
    buckets = TokenBuckets(rate=2, burst=3)
    assert [buckets.take("a", now=0.0) for _ in range(3)] == [0, 0, 0]
    assert buckets.take("a", now=0.0) == pytest.approx(0.5)  # the next token in 0.5 s
    assert buckets.take("b", now=0.0) == 0  # another caller has a bucket of its own
    assert buckets.take("a", now=0.6) == 0  # refilled at 2 a second
    assert buckets.take("a", now=0.6) > 0


def test_a_caller_over_its_rate_gets_429_others_do_not(app, shared_url, connection) -> None:
    from sqlalchemy.orm import sessionmaker

    limited = create_app({"database_url": shared_url, "rate_limit_rps": 0.5,
                          "rate_limit_burst": 3})  # fmt: skip
    limited.extensions["geomap_sessionmaker"] = sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint"
    )
    client = limited.test_client()
    key, _ = auth.create_key(connection, "busy", "viewer")
    other, _ = auth.create_key(connection, "calm", "viewer")
    statuses = [client.get("/api/layers", headers={"X-API-Key": key}).status_code
                for _ in range(4)]  # fmt: skip
    assert statuses == [200, 200, 200, 429]
    refused = client.get("/api/layers", headers={"X-API-Key": key})
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert refused.get_json()["error"]["code"] == "rate_limited"
    assert client.get("/api/layers", headers={"X-API-Key": other}).status_code == 200
    # The pages' files are not counted.
    assert client.get("/static/geomap/battlemap.js").status_code == 200


# ---------------------------------------------------------------------------------------
# A real server under a bounded overload


@pytest.mark.slow
def test_overload_on_two_cores_no_500_and_the_cheap_question_stays_fast(nanchang_url) -> None:
    engine = sa.create_engine(nanchang_url, poolclass=sa.NullPool)
    with engine.begin() as conn:
        planner, _ = auth.create_key(conn, "load test: planners", "planner")
        commander, _ = auth.create_key(conn, "load test: commander", "commander")
    port = _free_port()
    env = {**os.environ, "GEOMAP_DATABASE_URL": nanchang_url, "GEOMAP_LOG_LEVEL": "WARNING",
           "GEOMAP_RATE_LIMIT_RPS": "10", "GEOMAP_RATE_LIMIT_BURST": "20"}  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, "-m", "geomap.cli", "serve", "--port", str(port), "--workers", "2"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(base + "/healthz", server)
        expensive = [
            "/api/teams/nearest?lon=115.89&lat=28.68&k=10&by=drive&route=1",
            "/api/coverage?within_m=1000",
            "/api/coverage?by=walk&within_min=5&of=sites",
            "/api/teams/nearest?lon=115.85&lat=28.70&k=100&by=walk",
        ]
        cheap = "/api/teams/nearest?lon=115.89&lat=28.68&k=5"
        results: list[tuple[str, int, dict]] = []
        cheap_seconds: list[float] = []
        lock = threading.Lock()
        stop = time.monotonic() + 7.0

        def hammer(i: int) -> None:
            headers = {"Authorization": f"Bearer {planner}"}
            n = i
            while time.monotonic() < stop:
                status, got, _ = _get(base + expensive[n % len(expensive)], headers)
                n += 1
                with lock:
                    results.append(("expensive", status, got))
                if status in (429, 503):
                    time.sleep(0.05)  # a client that does not honour Retry-After, nearly

        def ask() -> None:
            headers = {"Authorization": f"Bearer {commander}"}
            while time.monotonic() < stop:
                status, got, seconds = _get(base + cheap, headers)
                with lock:
                    results.append(("cheap", status, got))
                    cheap_seconds.append(seconds)
                time.sleep(0.2)

        threads = [threading.Thread(target=hammer, args=(i,)) for i in range(12)]
        threads.append(threading.Thread(target=ask))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM api_keys WHERE name LIKE 'load test:%'"))
        engine.dispose()

    counts = Counter((kind, status) for kind, status, _ in results)
    assert not [s for _, s, _ in results if s >= 500 and s != 503], counts
    for _, status, got in results:
        if status in (429, 503):
            assert int(got["Retry-After"]) >= 1, (status, got)
    assert counts[("expensive", 503)] > 0 and counts[("expensive", 429)] > 0, counts
    assert counts[("expensive", 200)] > 0, counts
    assert {s for kind, s, _ in results if kind == "cheap"} == {200}, counts
    cheap_seconds.sort()
    p99 = cheap_seconds[min(len(cheap_seconds) - 1, int(len(cheap_seconds) * 0.99))]
    print(f"overload: {dict(counts)}; cheap p50 {cheap_seconds[len(cheap_seconds) // 2]:.3f} s, "
          f"p99 {p99:.3f} s over {len(cheap_seconds)} requests")  # fmt: skip
    assert len(cheap_seconds) >= 20
    assert p99 < 1.0, cheap_seconds[-5:]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, server: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(server.stderr.read().decode()[-2000:])
        try:
            if _get(url, timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the server did not answer")



