"""The real server, as `make run` starts it: `geomap serve` (gunicorn, 2 threaded workers).

One smoke test: start the command, poll it until it answers, ask what a commander and a
planner ask over one kept-alive connection, and stop it.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_geomap_serve_runs_gunicorn_workers_and_answers(nanchang_url):
    port = _free_port()
    env = {**os.environ, "GEOMAP_DATABASE_URL": nanchang_url, "GEOMAP_PORT": str(port),
           "GEOMAP_LOG_LEVEL": "INFO"}  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, "-m", "geomap.cli", "serve", "--workers", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, server.stdout.read().decode()
            try:
                probe = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                probe.request("GET", "/healthz")
                if probe.getresponse().status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the server never answered /healthz"
            time.sleep(0.5)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)  # kept alive
        answers = []
        for _ in range(6):
            conn.request("GET", "/api/teams/nearest?lon=115.892&lat=28.676&by=drive&k=3")
            response = conn.getresponse()
            body = response.read()
            assert response.status == 200, body
            assert response.getheader("Connection", "").lower() != "close"
            answers.append([t["id"] for t in json.loads(body)["teams"]])
        assert len(answers[0]) == 3 and all(a == answers[0] for a in answers)
        conn.request("GET", "/api/coverage?of=stations&kind=red_station&by=walk&within_min=15"
                            "&level=district")  # fmt: skip
        response = conn.getresponse()
        coverage = json.loads(response.read())
        assert response.status == 200
        assert 0 < coverage["summary"]["covered_share"] < 1
        assert coverage["summary"]["units"] == 9
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    output = server.stdout.read().decode()
    assert "gthread" in output and output.count("Booting worker") == 2, output
    # The master built the battle map's first view before it forked the workers.
    assert "battle map documents kept: /map/data/" in output and "/map/data/grids" in output
