"""Throughput of nearest by distance with the production server (`geomap serve`, gunicorn).

`geomap serve` runs 2 threaded workers with keep-alive (GEOMAP_WORKERS, GEOMAP_THREADS).
Baseline, measured in the same run: Flask's development server (one process, threads)
under the same load. The load comes from `wrk` (16 kept-alive connections, 2 threads)
when it is installed (Debian package `wrk`), else from 8 Python client threads; either
runs on the same 2 cores as the server and PostgreSQL, so the figures are lower bounds;
the median of three runs is reported, after a warm-up run.
"""

from __future__ import annotations

import http.client
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from bench._env import settings_for
from bench._server import gunicorn
from geomap import db

DURATION_S = 8.0
CLIENTS = 8
WRK_SCRIPT = """
math.randomseed(5)
request = function()
  local lon = 115.78 + math.random() * 0.24
  local lat = 28.58 + math.random() * 0.20
  return wrk.format("GET", string.format("/api/teams/nearest?lon=%.6f&lat=%.6f&k=5", lon, lat))
end
"""


def _wrk(port: int) -> float:
    script = Path(tempfile.mkdtemp()) / "nearest.lua"
    script.write_text(WRK_SCRIPT)
    done = subprocess.run(
        ["wrk", "-t2", "-c16", f"-d{int(DURATION_S)}s", "-s", str(script),
         f"http://127.0.0.1:{port}/"],
        capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    out = done.stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"the server answered errors under load:\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def _threads(port: int) -> float:
    """Requests per second sustained by CLIENTS kept-alive Python client threads."""
    rng = np.random.default_rng(5)
    points = list(zip(rng.uniform(115.78, 116.02, 2000), rng.uniform(28.58, 28.78, 2000),
                      strict=True))  # fmt: skip
    done = [0] * CLIENTS
    stop = time.monotonic() + DURATION_S

    def client(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        j = i
        while time.monotonic() < stop:
            lon, lat = points[j % len(points)]
            j += CLIENTS
            try:
                conn.request("GET", f"/api/teams/nearest?lon={lon}&lat={lat}&k=5")
                response = conn.getresponse()
                response.read()
                done[i] += response.status == 200
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


#: Measured runs per server, after one unmeasured warm-up run: the median is reported (on
#: a shared 2-core machine one run in five or so lands 20-50 % low).
ROUNDS = 3


def _load(port: int) -> list[float]:
    one = _wrk if shutil.which("wrk") else _threads
    one(port)  # warm-up: the workers' first requests build their per-thread state
    return sorted(one(port) for _ in range(ROUNDS))


def run(url: str) -> None:
    db.get_engine(settings_for(url))  # fail early if the database is not there
    with gunicorn(url) as port:
        ours = _load(port)
    with gunicorn(url, workers=0) as port:
        theirs = _load(port)
    client = "wrk, 16 kept-alive connections" if shutil.which("wrk") else "8 Python threads"
    median, baseline = ours[len(ours) // 2], theirs[len(theirs) // 2]
    print(f"  nearest by=distance throughput, geomap serve (gunicorn, 2 workers x 4 threads, "
          f"{client}), median of {ROUNDS} runs of {DURATION_S:g} s: {median:,.0f} req/s "
          f"(runs: {', '.join(f'{x:,.0f}' for x in ours)})  | baseline Flask dev server: "
          f"{baseline:,.0f} req/s → {median / baseline:,.1f}× more  [goal ≥ 1,000 req/s]")
