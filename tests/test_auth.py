"""Who may see and do what: the role matrix, embed tokens, keys, and safe defaults."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from geomap import auth, config
from geomap.cli import main
from geomap.errors import ConfigError
from tests import handmade

REMOTE = {"REMOTE_ADDR": "10.20.30.40"}
PORTAL = "https://portal.example"
PERSONAL = ("leader_name", "leader_phone")

#: (method, path, body) for each endpoint family, and the permission it needs.
ENDPOINTS = {
    "health": ("GET", "/healthz", None),
    "catalog": ("GET", "/api/layers", None),
    "teams layer": ("GET", "/api/layers/teams", None),
    "stations layer": ("GET", "/api/layers/stations", None),
    "ogc teams": ("GET", "/ogc/collections/teams/items", None),
    "nearest": ("GET", "/api/teams/nearest?lon=115.902&lat=28.662", None),
    "coverage": ("GET", "/api/coverage?within_m=500", None),
    "circles": ("GET", "/api/circles/union?minutes=3", None),
    "cases": ("GET", "/api/cases", None),
    "case stats": ("GET", "/api/cases/stats", None),
    "move team": ("PATCH", "/api/teams/{team}", {"status": "deployed"}),
    "new case": ("POST", "/api/cases?k=0",
                 {"kind": "incident", "title": "积水", "lon": 115.9, "lat": 28.66}),
    "positions": ("POST", "/api/teams/{team}/positions",
                  {"fixes": [{"lon": 115.9, "lat": 28.66, "recorded_at": "2026-11-01T08:00Z"}]}),
    "track": ("GET", "/api/teams/{team}/track", None),
    "audit": ("GET", "/api/audit", None),
}


Y, N = "allowed", "denied"
WRITES = {"move team": N, "new case": N, "positions": N}
PERSONAL_READS = {"track": N, "audit": N}
#: The role matrix: caller → endpoint → allowed or denied.
MATRIX = {
    "anonymous remote": dict.fromkeys(ENDPOINTS, N) | {"health": Y},
    # The default settings: no open reads, so this machine's keyless caller reads nothing.
    "anonymous local": dict.fromkeys(ENDPOINTS, N) | {"health": Y},
    # The demo's (GEOMAP_OPEN_READ=true): it reads, never writes nor sees personal fields.
    "open local": dict.fromkeys(ENDPOINTS, Y) | WRITES | PERSONAL_READS,
    "viewer": dict.fromkeys(ENDPOINTS, N)
    | {"health": Y, "catalog": Y, "teams layer": Y, "stations layer": Y, "ogc teams": Y,
       "cases": Y},  # the read-only battle map shows cases (no reporter fields)
    "planner": dict.fromkeys(ENDPOINTS, Y) | WRITES | PERSONAL_READS,
    "commander": dict.fromkeys(ENDPOINTS, Y),
    # An embed token reads the catalog (the map needs the styles) and its own layers.
    "embed (grids, teams)": dict.fromkeys(ENDPOINTS, N)
    | {"health": Y, "catalog": Y, "teams layer": Y, "ogc teams": Y},
    # Public endpoints look at no credentials, so even a revoked key reads /healthz.
    "revoked key": dict.fromkeys(ENDPOINTS, N) | {"health": Y},
}


@pytest.fixture
def world(connection):
    """Teams, a network and one key per role, inside the test's transaction."""
    handmade.load(connection)
    team = connection.execute(
        sa.text(
            "INSERT INTO teams (code, name, kind, headcount, leader_name, leader_phone, geom, "
            "source) VALUES ('T1', '医护一队', 'medical', 12, '张三', '10012345678', "
            "ST_SetSRID(ST_MakePoint(115.901, 28.661), 4326), 'synthetic: test') RETURNING id"
        )
    ).scalar()
    keys = {role: auth.create_key(connection, f"{role} test", role)[0]
            for role in auth.KEY_ROLES}  # fmt: skip
    revoked, prefix = auth.create_key(connection, "old", "commander")
    auth.revoke_key(connection, prefix)
    return {"team": team, "keys": keys, "revoked": revoked, "conn": connection}


def _credentials(caller: str, world: dict, app) -> tuple[dict, dict, str]:
    """(headers, environ, query suffix) for a caller of the matrix."""
    if caller == "anonymous remote":
        return {}, REMOTE, ""
    if caller in ("open local", "anonymous local"):
        return {}, {}, ""
    if caller == "revoked key":
        return {"Authorization": f"Bearer {world['revoked']}"}, REMOTE, ""
    if caller.startswith("embed"):
        secret = auth.secret_key(app.config["GEOMAP"])
        layers = ["grids", "teams"]
        token = auth.create_embed_token(world["conn"], secret, layers, PORTAL, days=1)[0]
        return {}, REMOTE, token
    return {"X-API-Key": world["keys"][caller]}, REMOTE, ""


def _call(client, endpoint: str, world: dict, headers: dict, environ: dict, token: str):
    method, path, body = ENDPOINTS[endpoint]
    path = path.format(team=world["team"])
    if token:
        path += ("&" if "?" in path else "?") + f"token={token}"
    return client.open(path, method=method, json=body, headers=headers, environ_base=environ,
                       buffered=True)  # fmt: skip


@pytest.mark.parametrize("caller", list(MATRIX))
def test_role_matrix(make_app, world, caller):
    app = make_app(open_read=caller == "open local")
    client = app.test_client()
    headers, environ, token = _credentials(caller, world, app)
    got = {}
    for endpoint in ENDPOINTS:
        response = _call(client, endpoint, world, headers, environ, token)
        assert response.status_code < 500, (endpoint, response.get_data(as_text=True))
        got[endpoint] = N if response.status_code in (401, 403) else Y
        if got[endpoint] == N:
            assert response.get_json()["error"]["code"] in ("unauthorized", "forbidden")
        else:
            assert response.status_code in (200, 201), (endpoint, response.get_json())
    assert got == MATRIX[caller]


def test_personal_fields_only_for_commanders(app, client, world):
    secret = auth.secret_key(app.config["GEOMAP"])
    token = auth.create_embed_token(world["conn"], secret, ["teams"], PORTAL, days=1)[0]
    readers = {
        "planner": {"headers": {"X-API-Key": world["keys"]["planner"]}},
        "viewer": {"headers": {"X-API-Key": world["keys"]["viewer"]}},
        "open": {},
        "embed": {"query_string": {"token": token}},
    }
    for name, kwargs in readers.items():
        for path in ("/api/layers/teams", "/ogc/collections/teams/items"):
            text = client.get(path, **kwargs).get_data(as_text=True)
            assert "10012345678" not in text and "张三" not in text, (name, path)
            assert not any(field in text for field in PERSONAL), (name, path)
    commander = client.get("/api/layers/teams", headers={"X-API-Key": world["keys"]["commander"]})
    assert commander.get_json()["features"][0]["properties"]["leader_phone"] == "10012345678"


def test_no_existence_leaks_through_404_versus_403(app, client, world):
    secret = auth.secret_key(app.config["GEOMAP"])
    token = auth.create_embed_token(world["conn"], secret, ["teams"], PORTAL, days=1)[0]
    for path in ("/api/layers/stations", "/api/layers/no-such-layer"):
        assert client.get(path, query_string={"token": token}).status_code == 403
        assert client.get(path, environ_base=REMOTE).status_code == 401
    viewer = {"X-API-Key": world["keys"]["viewer"]}
    for path in ("/api/teams/999999", f"/api/teams/{world['team']}"):
        assert client.patch(path, json={"status": "off_duty"}, headers=viewer).status_code == 403


def test_embed_token_checks_origin_expiry_and_signature(app, client, world):
    secret = auth.secret_key(app.config["GEOMAP"])
    token = auth.create_embed_token(world["conn"], secret, ["teams"], PORTAL, days=1)[0]
    ok = client.get("/api/layers/teams", query_string={"token": token},
                    headers={"Origin": PORTAL})  # fmt: skip
    assert ok.status_code == 200
    assert ok.headers["Access-Control-Allow-Origin"] == PORTAL
    other = client.get("/api/layers/teams", query_string={"token": token},
                       headers={"Origin": "https://evil.example"})  # fmt: skip
    assert other.status_code == 403
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert client.get("/api/layers/teams", query_string={"token": forged}).status_code == 401
    with pytest.raises(Exception, match="days"):
        auth.create_embed_token(world["conn"], secret, ["teams"], PORTAL, days=0)


def test_writes_by_a_commander_land(client, world, connection):
    commander = {"Authorization": f"Bearer {world['keys']['commander']}"}
    moved = client.patch(
        f"/api/teams/{world['team']}", json={"lon": 115.905, "lat": 28.665, "status": "deployed"},
        headers=commander,
    )  # fmt: skip
    assert moved.status_code == 200 and moved.get_json()["status"] == "deployed"
    history = connection.execute(sa.text("SELECT count(*) FROM team_positions")).scalar()
    assert history == 1
    case = client.post("/api/cases?k=0", json={"kind": "incident", "title": "内涝",
                                               "lon": 115.9, "lat": 28.66},
                       headers=commander).get_json()["case"]  # fmt: skip
    moved_back = client.patch(f"/api/teams/{world['team']}", json={"status": "available"},
                              headers=commander)  # fmt: skip
    assert moved_back.status_code == 200
    sent = client.post(f"/api/cases/{case['id']}/dispatch",
                       json={"team_ids": [world["team"]]}, headers=commander)  # fmt: skip
    assert sent.status_code == 201
    assert sent.get_json()["case"]["status"] == "dispatched"
    assert sent.get_json()["case"]["dispatches"][0]["team_id"] == world["team"]
    bad = client.patch(f"/api/teams/{world['team']}", json={"status": "asleep"},
                       headers=commander)  # fmt: skip
    assert bad.status_code == 400 and bad.get_json()["error"]["field"] == "status"


def test_security_headers_on_every_answer(client):
    for path in ("/healthz", "/api/layers", "/no/such/path"):
        response = client.get(path)
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "frame-ancestors" in response.headers["Content-Security-Policy"]
        assert response.headers["Referrer-Policy"]


def test_every_view_declares_who_may_use_it(app):
    from geomap.web.spec import declared

    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        blueprint = rule.endpoint.split(".")[0]
        assert declared(view) or blueprint in auth.BLUEPRINT_DEFAULTS, rule.rule


def test_serving_beyond_loopback_needs_keys():
    settings = config.load(environ={})
    assert settings.open_read is False  # closed by default
    auth.check_bind("0.0.0.0", settings)
    demo = config.load(environ={"GEOMAP_OPEN_READ": "true"})
    auth.check_bind("127.0.0.1", demo)
    with pytest.raises(ConfigError, match="GEOMAP_OPEN_READ=false"):
        auth.check_bind("0.0.0.0", demo)


def test_keys_through_the_cli(runner):
    created = runner.invoke(main, ["keys", "create", "--role", "planner", "--name", "规划科"])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[0]
    assert key.startswith("gm_")
    prefix = key.split("_")[1]
    listed = runner.invoke(main, ["keys", "list"])
    assert prefix in listed.output and "planner" in listed.output and key not in listed.output
    assert runner.invoke(main, ["keys", "revoke", prefix]).exit_code == 0
    assert "revoked" in runner.invoke(main, ["keys", "list"]).output
    assert runner.invoke(main, ["keys", "revoke", prefix]).exit_code == 1
    # With open reads on (the demo), serving beyond the loopback is refused before it starts.
    refused = runner.invoke(main, ["serve", "--host", "0.0.0.0"], env={"GEOMAP_OPEN_READ": "true"})
    assert refused.exit_code == 2 and "GEOMAP_OPEN_READ=false" in refused.output


def test_embed_token_lists_only_its_own_layers(app, client, world):
    secret = auth.secret_key(app.config["GEOMAP"])
    token = auth.create_embed_token(world["conn"], secret, ["teams"], PORTAL, days=1)[0]
    catalog = client.get("/api/layers", query_string={"token": token}).get_json()
    assert [layer["id"] for layer in catalog["layers"]] == ["teams"]
    collections = client.get("/ogc/collections", query_string={"token": token, "f": "json"})
    assert [c["id"] for c in collections.get_json()["collections"]] == ["teams"]


def _fill(path: str, ids: dict[str, object]) -> str:
    """An OpenAPI path with its parameters filled (a real id where the test has one)."""
    import re

    return re.sub(r"\{(\w+)\}", lambda m: str(ids.get(m[1], 1)), path)


def test_open_reads_never_write(make_app, world):
    """With open reads on, every operation but GET (and the public ones) asks a key: 401."""
    app = make_app(open_read=True)
    client = app.test_client()
    document = client.get("/openapi.json").get_json()
    ids = {"team_id": world["team"], "layer_id": "teams", "collection_id": "teams"}
    writes = [(method, path) for path, operations in document["paths"].items()
              for method, operation in operations.items()
              if method != "get" and operation.get("security")]  # fmt: skip
    assert ("post", "/api/plans") in writes and ("post", "/api/scenarios") in writes
    served = {}
    for method, path in writes:
        response = client.open(_fill(path, ids), method=method.upper(), json={})
        if response.status_code != 401:
            served[(method, path)] = response.status_code
        else:
            assert "API key" in response.get_json()["error"]["message"]
    assert served == {}
    # The same caller reads (the demo works) but does not see personal fields.
    assert client.get("/api/layers/teams").status_code == 200
    assert client.get(f"/api/teams/{world['team']}/track").status_code == 401


def _request(app, path: str = "/healthz", headers: dict | None = None, **environ):
    """A request as the service would see it (environ: SERVER_PROTOCOL, REMOTE_ADDR...)."""
    from flask import Request
    from werkzeug.test import EnvironBuilder

    builder = EnvironBuilder(path=path, headers=headers or {})
    values = builder.get_environ()
    values.update(environ)
    return Request(values)


def test_a_local_caller_is_told_from_a_proxy_on_this_machine(app):
    from geomap.web.guard import direct_local

    browser = {"Host": "127.0.0.1:5000", "Connection": "keep-alive"}
    local = {"REMOTE_ADDR": "127.0.0.1", "SERVER_PROTOCOL": "HTTP/1.1"}
    assert direct_local(_request(app, headers=browser, **local))
    assert direct_local(_request(app, headers={"Host": "localhost:5000"}, **local))
    assert direct_local(_request(app, headers={"Host": "[::1]:5000"},
                                 **{**local, "REMOTE_ADDR": "::1"}))  # fmt: skip
    # nginx's bare proxy_pass: HTTP/1.0, Connection: close, Host 127.0.0.1:5000.
    nginx = {"Host": "127.0.0.1:5000", "Connection": "close"}
    assert not direct_local(_request(app, headers=nginx, **{**local,
                                                            "SERVER_PROTOCOL": "HTTP/1.0"}))
    # ...told to speak HTTP/1.1, it still sends Connection: close.
    assert not direct_local(_request(app, headers=nginx, **local))
    # A proxy passing its client's Host through (HAProxy, nginx `Host $host`).
    public = {"Host": "geomap.example.gov.cn", "Connection": "keep-alive"}
    assert not direct_local(_request(app, headers=public, **local))
    # Any forwarding header: Apache, Caddy, Traefik, Varnish, Squid.
    for header in ("X-Forwarded-For", "X-Forwarded-Server", "Via", "Forwarded", "X-Real-IP"):
        assert not direct_local(_request(app, headers={**browser, header: "x"}, **local))
    # Another machine, whatever it sends.
    assert not direct_local(_request(app, headers=browser, **{**local,
                                                              "REMOTE_ADDR": "10.0.0.7"}))
