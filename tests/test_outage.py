"""With the database stopped, every endpoint that needs it answers 503 with a clear JSON
error and Retry-After; when the database returns, the same app recovers by itself."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
import sqlalchemy as sa

from geomap import auth, config, create_app, db, pg
from tests import handmade

#: Public endpoints that need no database: they answer the same during an outage.
#: (/api/session always answers: without a session cookie it reads nothing.)
PUBLIC_STATIC = {"/openapi.json", "/docs", "/api/session"}
#: Endpoints that read no table: open to anonymous local reads during an outage, but a
#: key cannot be checked then (the keys live in the database).
NO_TABLES = {"/api/layers", "/ogc", "/ogc/conformance"}
#: Endpoints for commanders only: anonymous local reads are refused (403) before anything
#: needs the database.
PERSONAL = {"/api/audit", "/api/teams/1/track"}


@pytest.fixture
def outage_cluster():
    state = Path(tempfile.mkdtemp(prefix="geomap-outage-"))
    state.chmod(0o755)
    cluster = pg.Cluster(state, port=5436, throwaway=True)
    cluster.up()
    url = cluster.url()
    db.migrate(config.load({"database_url": url}, environ={}))
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.begin() as conn:
        handmade.load(conn)
        conn.execute(
            sa.text(
                "INSERT INTO teams (code, name, kind, headcount, geom, source) VALUES "
                "('T1', '医护', 'medical', 10, ST_SetSRID(ST_MakePoint(115.903, 28.663), 4326), "
                "'synthetic: t')"
            )
        )
        key, _ = auth.create_key(conn, "outage test", "commander")
    engine.dispose()
    yield cluster, url, key
    db.dispose_engines()
    cluster.destroy()
    shutil.rmtree(state, ignore_errors=True)


def _urls(client) -> list[str]:
    """One valid request for every GET operation of the document."""
    paths = client.get("/openapi.json").get_json()["paths"]
    examples = {
        "/api/teams/nearest": "?lon=115.903&lat=28.663",
        "/api/coverage": "?within_m=500",
        "/api/circles": "?minutes=5",
        "/api/circles/union": "?minutes=5",
        "/api/circles/coverage": "?minutes=5",
    }
    urls = []
    for path, operations in paths.items():
        # /api/events is a stream that never ends: a buffered read would wait forever.
        if "get" not in operations or path == "/api/events":
            continue
        concrete = (
            path.replace("{layer_id}", "teams").replace("{featureId}", "1")
            .replace("{name}", "map").replace("{layer}", "teams")
            .replace("{scenario_id}", "1").replace("{job_id}", "nojob")
            .replace("{z}", "12").replace("{x}", "3366").replace("{y}", "1706")
            .replace("{case_id}", "1").replace("{team_id}", "1")
        )
        urls.append(concrete + examples.get(path, ""))
    return urls


def test_outage_answers_503_then_recovers(outage_cluster):
    cluster, url, key = outage_cluster
    app = create_app({"database_url": url, "open_read": True})  # anonymous local reads too
    client = app.test_client()
    urls = _urls(client)
    assert len(urls) >= 25
    headers = {"Authorization": f"Bearer {key}"}
    for target in urls:
        response = client.get(target, headers=headers, buffered=True)
        assert response.status_code < 500, (target, response.get_data(as_text=True)[:300])

    cluster.stop()
    for target in urls:
        for who in ({}, headers):  # anonymous local reads, and a key that needs the database
            response = client.get(target, headers=who, buffered=True)
            path = target.split("?")[0]
            if path in PUBLIC_STATIC or (path in NO_TABLES and not who):
                assert response.status_code == 200, target
                continue
            if path in PERSONAL and not who:  # open reads never reach personal data: a key
                assert response.status_code == 401, target
                continue
            assert response.status_code == 503, (target, response.status_code)
            assert int(response.headers["Retry-After"]) > 0, target
            body = response.get_json()
            error = body["error"]
            assert error["code"] == "database_unavailable", target
            assert "not reachable" in error["message"], target
    write = client.patch("/api/teams/1", json={"status": "deployed"}, headers=headers)
    assert write.status_code == 503

    cluster.start()
    for target in urls:
        response = client.get(target, headers=headers, buffered=True)
        assert response.status_code < 500, (target, response.status_code)
    assert client.get("/healthz").get_json()["status"] == "ok"
