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


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except OSError:
                pass  # gone meanwhile
    return found


def _sockets(port: int, state: str) -> set[str]:
    """The inodes (as /proc/<pid>/fd links name them) of TCP sockets on ``port`` in ``state``
    (``01`` established, ``0A`` listening)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == state:
                    inodes.add(f"socket:[{fields[9]}]")
    return inodes


def _holding(pid: int, inodes: set[str]) -> int:
    fds = f"/proc/{pid}/fd"
    try:
        return sum(1 for fd in os.listdir(fds) if _readlink(os.path.join(fds, fd)) in inodes)
    except OSError:
        return 0  # gone meanwhile


def _workers(master: int, port: int) -> list[int]:
    """The master's children that listen on ``port`` (its workers, not its job process)."""
    listening = _sockets(port, "0A")
    return [child for child in _children(master) if _holding(child, listening)]


def _established_by_worker(master: int, port: int) -> dict[int, int]:
    """Established TCP connections on ``port``, counted per worker process (from /proc)."""
    established = _sockets(port, "01")
    return {worker: _holding(worker, established) for worker in _workers(master, port)}


def _job_processes(master: int, port: int) -> list[int]:
    workers = set(_workers(master, port))
    return [child for child in _children(master) if child not in workers]


def _runner_connections(url: str, wait_s: float = 30.0) -> int:
    """How many connections the job runners hold (application_name ``geomap-jobs``); waits
    up to ``wait_s`` for the first, as the runners connect once they start polling."""
    import sqlalchemy as sa

    engine = sa.create_engine(url, poolclass=sa.NullPool)
    deadline = time.monotonic() + wait_s
    try:
        while True:
            with engine.connect() as conn:
                count = conn.execute(sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'geomap-jobs' "
                    "AND datname = current_database()")).scalar()  # fmt: skip
            if count or time.monotonic() > deadline:
                return int(count)
            time.sleep(0.3)
    finally:
        engine.dispose()


def _readlink(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def _requests_through_a_reload(master: int, port: int) -> list[str]:
    """Requests on new and on kept-alive connections for ~8 s, a SIGHUP after 2 s; the
    failures (none expected)."""
    import threading

    stop = time.monotonic() + 8
    failures: list[str] = []

    def ask(conn: http.client.HTTPConnection) -> None:
        conn.request("GET", "/api/teams/nearest?lon=115.892&lat=28.676&k=3")
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            failures.append(f"status {response.status}")

    def fresh() -> None:  # a new connection per request
        while time.monotonic() < stop:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                ask(conn)
            except (OSError, http.client.HTTPException) as exc:
                failures.append(f"new connection: {exc!r}")
            finally:
                conn.close()

    def kept() -> None:  # one kept-alive connection, reopened when the server closes it
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while time.monotonic() < stop:
            try:
                ask(conn)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # The server may close an idle kept-alive connection (HTTP allows it;
                # clients retry an idempotent request on a new one, as this one does).
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                try:
                    ask(conn)
                except (OSError, http.client.HTTPException) as exc:
                    failures.append(f"kept-alive, retried: {exc!r}")
            time.sleep(0.2)
        conn.close()

    threads = [threading.Thread(target=fresh) for _ in range(3)]
    threads += [threading.Thread(target=kept) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(2)
    os.kill(master, signal.SIGHUP)
    for thread in threads:
        thread.join(timeout=60)
    return failures


@pytest.mark.slow
def test_geomap_serve_runs_gunicorn_workers_and_answers(nanchang_url):
    port = _free_port()
    # As `make run` serves: open reads on (this machine's keyless caller reads).
    env = {**os.environ, "GEOMAP_DATABASE_URL": nanchang_url, "GEOMAP_PORT": str(port),
           "GEOMAP_LOG_LEVEL": "INFO", "GEOMAP_OPEN_READ": "true"}  # fmt: skip
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
        # An answer sent before the body was read (here a 401: a write needs a key) closes
        # the connection and says so, rather than promising keep-alive and dropping it.
        unread = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        unread.putrequest("POST", "/api/cases")
        unread.putheader("Content-Type", "application/json")
        unread.putheader("Content-Length", "5000")
        unread.endheaders()
        refused = unread.getresponse()
        assert refused.status == 401 and refused.getheader("Connection") == "close"
        refused.read()
        unread.close()
        conn.request("GET", "/api/coverage?of=stations&kind=red_station&by=walk&within_min=15"
                            "&level=district")  # fmt: skip
        response = conn.getresponse()
        coverage = json.loads(response.read())
        assert response.status == 200
        assert 0 < coverage["summary"]["covered_share"] < 1
        assert coverage["summary"]["units"] == 9

        # A few kept-alive clients (a proxy's pool) are spread over both workers: each
        # worker listens on its own socket and the kernel shares connections out.
        pool = [http.client.HTTPConnection("127.0.0.1", port, timeout=30) for _ in range(16)]
        for client in pool:
            client.request("GET", "/healthz")
            assert client.getresponse().read()
        by_worker = _established_by_worker(server.pid, port)
        assert len(by_worker) == 2 and min(by_worker.values()) >= 1, by_worker
        for client in pool:
            client.close()

        # Plan jobs run in one job process beside the workers (it serves no request), with
        # its runners' own connections; the master starts another when it dies.
        jobs = _job_processes(server.pid, port)
        assert len(jobs) == 1, (jobs, _children(server.pid))
        assert _runner_connections(nanchang_url) >= 1
        os.kill(jobs[0], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while _job_processes(server.pid, port) in ([], jobs):
            assert time.monotonic() < deadline, "no job process came back"
            time.sleep(0.2)
        assert len(_job_processes(server.pid, port)) == 1

        # A second server on the same port is refused, not let in beside the first.
        second = subprocess.run([sys.executable, "-m", "geomap.cli", "serve", "--workers", "2"],
                                env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
        assert second.returncode != 0
        assert f"127.0.0.1:{port} is already in use" in second.stderr, second.stderr[-2000:]

        # A reload (SIGHUP: new workers, the old ones stop) loses no request, on new
        # connections or on kept-alive ones that the old workers still hold.
        failures = _requests_through_a_reload(server.pid, port)
        assert failures == [], failures[:5]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    output = server.stdout.read().decode()
    assert "geomap.serving._Worker" in output, output
    assert output.count("Booting worker") == 4, output  # 2, then 2 more at the reload
    # The master built the battle map's first view before it forked the workers.
    assert "battle map documents kept: /map/data/" in output and "/map/data/grids" in output
