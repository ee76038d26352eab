"""Throughput of nearest by distance with the production server (gunicorn, 2 workers).

The workers are threaded (4 threads each, as `geomap serve --workers 2` runs them).

Baseline, measured in the same run: Flask's development server (one process, threads)
under the same load. The load comes from 8 client threads on the same 2-core machine,
so both figures are lower bounds.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import threading
import time

import numpy as np

from bench._env import settings_for
from geomap import db

DURATION_S = 8.0
CLIENTS = 8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"server on port {port} did not come up")


def _load(port: int) -> float:
    """Requests per second sustained by CLIENTS threads for DURATION_S."""
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
                if response.status == 200:
                    done[i] += 1
                if response.getheader("Connection", "").lower() == "close" or \
                        response.version == 10:  # fmt: skip
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
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


def _serve(url: str, argv: list[str]) -> subprocess.Popen:
    env = {**os.environ, "GEOMAP_DATABASE_URL": url, "GEOMAP_LOG_LEVEL": "WARNING"}
    return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run(url: str) -> None:
    db.get_engine(settings_for(url))  # fail early if the database is not there
    results = {}
    for label, argv in (
        ("gunicorn, 2 workers", [sys.executable, "-m", "gunicorn", "-w", "2", "--threads",
                                 "4", "-b", "127.0.0.1:{port}", "geomap.wsgi:app"]),
        ("Flask dev server", [sys.executable, "-m", "geomap.cli", "serve", "--port", "{port}"]),
    ):  # fmt: skip
        port = _free_port()
        server = _serve(url, [a.replace("{port}", str(port)) for a in argv])
        try:
            _wait(port)
            results[label] = _load(port)
        finally:
            server.terminate()
            server.wait(timeout=10)
    ours, theirs = results["gunicorn, 2 workers"], results["Flask dev server"]
    if not ours or not theirs:
        raise RuntimeError(f"a server answered no request successfully: {results}")
    print(f"  nearest by=distance throughput, gunicorn 2 workers: {ours:,.0f} req/s  | "
          f"baseline Flask dev server: {theirs:,.0f} req/s → {ours / theirs:,.1f}× more")

