"""Plan jobs: cheap-request latency with 50 plan jobs queued, against idle in the same run.

`geomap serve` (2 gunicorn workers, GEOMAP_JOB_RUNNERS=1 each: two jobs run at once on
the node) on the Nanchang dataset. Baseline, measured in the same run: GET /api/layers
one after another on one kept-alive connection for 8 s with nothing queued. Then 50
POST /api/plans at once from one planner key (GEOMAP_JOBS_PER_KEY=50 here, so all 50
are queued: the default of 4 would refuse 46 with 429), each a three-site suggestion in
one township; the same probes run for 8 s while the runners work through the queue (the rate
limit is off: the probes alone go faster than it allows). The
remaining jobs are cancelled at the end. The load average is printed: the client, the
server and PostgreSQL share the machine's cores.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import time

import numpy as np
import sqlalchemy as sa

from bench._env import line, settings_for
from bench._server import gunicorn
from geomap import db
from geomap.auth.keys import create_key

JOBS = 50
#: How long the probes run, idle and with the jobs queued (seconds).
PROBE_S = 8.0


class _Client:
    """One kept-alive connection with the key's header."""

    def __init__(self, port: int, key: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = {"X-API-Key": key, "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[float, int, dict]:
        started = time.perf_counter()
        data = None if body is None else json.dumps(body)
        self.conn.request(method, path, body=data, headers=self.headers)
        response = self.conn.getresponse()
        raw = response.read()
        ms = (time.perf_counter() - started) * 1000
        return ms, response.status, json.loads(raw) if raw else {}

    def probes(self, count: int = 0, seconds: float = 0.0) -> list[float]:
        out: list[float] = []
        until = time.monotonic() + seconds
        while len(out) < count or time.monotonic() < until:
            ms, status, _ = self.call("GET", "/api/layers")
            if status != 200:
                raise RuntimeError(f"GET /api/layers → {status}")
            out.append(ms)
        return out


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} cores"


def run(url: str) -> None:
    engine = db.get_engine(settings_for(url))
    with engine.begin() as conn:
        key, _ = create_key(conn, "bench jobs", "planner")
        township = conn.execute(sa.text(
            "SELECT code FROM regions WHERE level = 'township' ORDER BY code LIMIT 1")).scalar()
    question = {"n": 3, "minutes": 10, "area": township, "time_limit_s": 30}
    # The probes go as fast as they are answered: over GEOMAP_RATE_LIMIT_RPS, turned off.
    with gunicorn(url, workers=2, job_runners=1, jobs_per_key=JOBS, rate_limit_rps=0) as port:
        client = _Client(port, key)
        client.probes(30)  # warm both workers' routing state and caches
        print(f"  {_load()} (idle)")
        idle = client.probes(seconds=PROBE_S)
        barrier = threading.Barrier(JOBS)
        answers: list[tuple[float, int, dict]] = []
        lock = threading.Lock()

        def post() -> None:
            own = _Client(port, key)
            barrier.wait()
            answer = own.call("POST", "/api/plans", question)
            with lock:
                answers.append(answer)

        threads = [threading.Thread(target=post) for _ in range(JOBS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        statuses = sorted({a[1] for a in answers})
        ids = [a[2]["id"] for a in answers if a[1] == 201]
        print(f"  {JOBS} POST /api/plans at once: statuses {statuses}, slowest answer "
              f"{max(a[0] for a in answers):,.0f} ms, {len(ids)} queued")  # fmt: skip
        started = time.monotonic()
        busy = client.probes(seconds=PROBE_S)
        probing_s = time.monotonic() - started
        print(f"  {_load()} (with the jobs queued and running)")
        states = [client.call("GET", f"/api/jobs/{i}")[2]["status"] for i in ids]
        counts = {s: states.count(s) for s in sorted(set(states))}
        print(f"  {len(idle):,} probes idle, {len(busy):,} with the jobs; after "
              f"{probing_s:.1f} s of probes the jobs are: {counts}")  # fmt: skip
        idle_p50, idle_p99 = np.percentile(idle, 50), np.percentile(idle, 99)
        busy_p50, busy_p99 = np.percentile(busy, 50), np.percentile(busy, 99)
        line("GET /api/layers p50, 50 jobs queued", busy_p50, "ms", idle_p50, "idle")
        line("GET /api/layers p99, 50 jobs queued", busy_p99, "ms", idle_p99, "idle",
             goal="≤ 2× idle")  # fmt: skip
        line("GET /api/layers max, 50 jobs queued", max(busy), "ms", max(idle), "idle")
        unfinished = [i for i, s in zip(ids, states, strict=True) if s in ("queued", "running")]
        for job_id in unfinished:
            client.call("DELETE", f"/api/jobs/{job_id}")
        time.sleep(2)
        left = [client.call("GET", f"/api/jobs/{i}")[2].get("status") for i in unfinished]
        print(f"  the {len(unfinished)} unfinished, cancelled: "
              f"{({s: left.count(s) for s in sorted(set(left), key=str)})}")  # fmt: skip
