"""The production server for the benchmarks: `geomap serve` (gunicorn) in a subprocess,
and a kept-alive HTTP client that times requests."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from bench._env import ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def gunicorn(
    url: str,
    workers: int = 2,
    *,
    app: str | None = None,
    env: dict[str, str] | None = None,
    **settings: object,
) -> Iterator[int]:
    """`geomap serve --workers N` on a free loopback port for database ``url`` (N = 0:
    Flask's development server); ``settings`` as ``GEOMAP_*`` variables.

    ``app``: another WSGI app for gunicorn with `geomap serve`'s configuration (e.g.
    ``"bench.maps:bench_app()"``), ``env``: more environment variables for it.
    """
    port = free_port()
    environ = {**os.environ, **(env or {}), "GEOMAP_DATABASE_URL": url,
               "GEOMAP_PORT": str(port), "GEOMAP_WORKERS": str(workers),
               "GEOMAP_LOG_LEVEL": "WARNING",
               **{f"GEOMAP_{k.upper()}": str(v) for k, v in settings.items()}}  # fmt: skip
    command = (
        [sys.executable, "-m", "gunicorn", "-c", "python:geomap.serving", app] if app
        else [sys.executable, "-m", "geomap.cli", "serve", "--workers", str(workers)]
    )  # fmt: skip
    server = subprocess.Popen(
        command, cwd=ROOT, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                raise RuntimeError("geomap serve exited before answering")
            try:
                probe = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                probe.request("GET", "/healthz")
                if probe.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.3)
            if time.monotonic() > deadline:
                raise RuntimeError("geomap serve never answered /healthz")
        yield port
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


class KeepAlive:
    """One kept-alive connection; :meth:`get` returns (milliseconds, status, body)."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def get(self, path: str) -> tuple[float, int, bytes]:
        started = time.perf_counter()
        self.conn.request("GET", path, headers={"Accept-Encoding": "gzip"})
        response = self.conn.getresponse()
        body = response.read()
        return (time.perf_counter() - started) * 1000, response.status, body

    def timings(self, paths: list[str], warmup: int = 3) -> list[float]:
        for path in paths[:warmup]:
            self.get(path)
        out = []
        for path in paths:
            ms, status, body = self.get(path)
            if status != 200:
                raise RuntimeError(f"GET {path} → {status}: {body[:200]!r}")
            out.append(ms)
        return out
