"""Two commanders dispatch the same team to two cases at the same moment: exactly one wins.

Through the real HTTP server (werkzeug, threaded) and through the production setup
(`geomap serve --workers 2`: gunicorn, two processes), on a committed database. The two
requests carry two different commanders' keys, are sent on connections opened
beforehand, and leave together from a barrier.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from geomap import config, create_app, db
from tests import casesworld
from tests.browser import serve_app

ROUNDS = 20


@pytest.fixture
def committed_world(db_url):
    settings = config.load({"database_url": db_url}, environ={})
    with db.get_engine(settings).begin() as conn:
        world = casesworld.build(conn)
    return world


def _request(
    conn: http.client.HTTPConnection, method: str, path: str, key: str, body: dict | None = None
) -> tuple[int, dict]:
    conn.request(
        method,
        path,
        body=json.dumps(body) if body is not None else None,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    response = conn.getresponse()
    return response.status, json.loads(response.read() or b"{}")


def _fire(barrier, results, i, conn, case_id, key, team) -> None:
    barrier.wait()
    results[i] = _request(conn, "POST", f"/api/cases/{case_id}/dispatch", key, {"team_ids": [team]})


def _rounds(port: int, world: casesworld.World, db_url: str) -> None:
    keys = (world.keys["commander"], world.keys["checker"])
    teams = [world.teams[t] for t in ("med1", "med2", "med3", "vet1", "yth1")]
    setup = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    lon, lat = casesworld.point(4.5, 4.2)
    for n in range(ROUNDS):
        team = teams[n % len(teams)]
        case_ids = []
        for _ in range(2):
            status, body = _request(
                setup,
                "POST",
                "/api/cases?k=0",
                keys[0],
                {"kind": "incident", "title": f"第{n}轮", "lon": lon, "lat": lat},
            )
            assert status == 201, body
            case_ids.append(body["case"]["id"])
        connections = [http.client.HTTPConnection("127.0.0.1", port, timeout=30) for _ in range(2)]
        for c in connections:
            c.connect()
        barrier = threading.Barrier(2)
        results: list = [None, None]
        threads = [
            threading.Thread(
                target=_fire, args=(barrier, results, i, connections[i], case_ids[i], keys[i], team)
            )
            for i in range(2)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for c in connections:
            c.close()
        statuses = sorted(status for status, _ in results)
        assert statuses == [201, 409], (n, results)
        loser = next(body for status, body in results if status == 409)
        assert loser["error"]["field"] == "team_ids"
        winner = next(body for status, body in results if status == 201)
        # Free the team for the rounds to come.
        status, _ = _request(
            setup,
            "POST",
            f"/api/dispatches/{winner['dispatches'][0]}/steps",
            keys[0],
            {"action": "release"},
        )
        assert status == 200
    setup.close()
    engine = sa.create_engine(db_url, poolclass=sa.NullPool)
    with engine.connect() as conn:
        made = conn.execute(sa.text("SELECT count(*), count(DISTINCT case_id) FROM dispatches"))
        assert tuple(made.one()) == (ROUNDS, ROUNDS)
        audited = conn.execute(
            sa.text("SELECT count(*) FROM audit_log WHERE action = 'dispatch.create'")
        ).scalar()
        assert audited == ROUNDS
    engine.dispose()


def test_simultaneous_dispatches_of_one_team_on_the_threaded_server(db_url, committed_world):
    app = create_app({"database_url": db_url, "log_level": "WARNING"})
    with serve_app(app) as url:
        _rounds(int(url.rsplit(":", 1)[1]), committed_world, db_url)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _gunicorn(db_url: str) -> Iterator[int]:
    """`geomap serve --workers 2` on a free port, as production runs it."""
    port = _free_port()
    env = {**os.environ, "GEOMAP_DATABASE_URL": db_url, "GEOMAP_LOG_LEVEL": "WARNING"}
    server = subprocess.Popen(
        [sys.executable, "-m", "geomap.cli", "serve", "--workers", "2", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"gunicorn did not start: {server.stderr.read()!r}")
            time.sleep(0.2)
        yield port
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:  # pragma: no cover - a stuck worker
            server.kill()
            server.wait()


@pytest.mark.slow
def test_simultaneous_dispatches_of_one_team_under_gunicorn_with_two_workers(
    db_url, committed_world
):
    with _gunicorn(db_url) as port:
        _rounds(port, committed_world, db_url)


def test_the_database_itself_refuses_a_second_active_dispatch(connection, world):
    """Even written by hand, past the application: the partial unique index says no."""
    team = world.teams["med1"]
    insert = sa.text(
        "INSERT INTO cases (kind, severity, title, status, geom, located, level, level_since, "
        "accept_minutes, resolve_by, reported_at, created_by, updated_at, source) VALUES "
        "('incident', 'low', 't', 'dispatched', ST_SetSRID(ST_MakePoint(115.9, 28.66), 4326), "
        "'none', 'grid', now(), '{10,20,30}', now(), now(), 'psql', now(), 'synthetic: t') "
        "RETURNING id"
    )
    cases = [connection.execute(insert).scalar() for _ in range(2)]
    dispatch = sa.text(
        "INSERT INTO dispatches (case_id, team_id, status, assigned_at, assigned_by, source) "
        "VALUES (:case, :team, 'assigned', now(), 'psql', 'synthetic: t')"
    )
    connection.execute(dispatch, {"case": cases[0], "team": team})
    with (
        pytest.raises(sa.exc.IntegrityError, match="dispatches_one_active_per_team"),
        connection.begin_nested(),
    ):
        connection.execute(dispatch, {"case": cases[1], "team": team})
