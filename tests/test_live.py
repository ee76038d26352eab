"""Sign-in sessions and the live event stream, against a real PostGIS and a real server.

The stream tests commit their writes (NOTIFY is delivered at commit, to the hub's own
listening connection) on a fresh database, and read ``/api/events`` over real HTTP from a
server thread, as a browser's EventSource does. The browser itself (Chromium signing in,
the map changing) is tested in ``tests/test_live_map.py``.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from geomap import auth, create_app
from tests import casesworld
from tests.browser import serve_app


# -- sessions ------------------------------------------------------------------------------
def _sign_in(client, key: str):
    return client.post("/api/session", json={"key": key})


def _cookie(response) -> str:
    return next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("geomap_"))


def test_a_key_signs_in_once_for_an_httponly_strict_session(ops_client, world):
    response = _sign_in(ops_client, world.keys["commander"])
    assert response.status_code == 200, response.get_json()
    answer = response.get_json()
    assert answer["signed_in"] and answer["role"] == "commander"
    assert "write" in answer["permissions"] and len(answer["csrf_token"]) >= 32
    cookie = _cookie(response)
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert "Max-Age=43200" in cookie  # GEOMAP_SESSION_HOURS: 12
    assert world.keys["commander"] not in cookie  # the cookie is a session token, not the key
    # The browser now is the commander, with no key in any request.
    me = ops_client.get("/api/session").get_json()
    assert me["signed_in"] and me["role"] == "commander"
    assert me["csrf_token"] == answer["csrf_token"]
    assert ops_client.get("/api/cases").status_code == 200


def test_a_signed_in_page_preloads_its_layers_and_an_anonymous_one_does_not(
    shared_url, connection, world
):
    """The map pages are public shells; the caller's session decides whether the browser
    may fetch the layers while the scripts load (a refused preload would be a cached 401)."""
    from tests.conftest import _app_on

    client = _app_on(shared_url, connection, open_read=False).test_client()
    anonymous = client.get("/map").get_data(as_text=True)
    assert 'rel="preload"' not in anonymous
    assert _sign_in(client, world.keys["viewer"]).status_code == 200
    signed_in = client.get("/map").get_data(as_text=True)
    assert 'rel="preload" as="fetch" crossorigin="anonymous" href="/map/data/grids' in signed_in
    assert client.get("/map/data/grids").status_code == 200  # what it preloads, it may read


def test_writes_with_a_session_need_its_csrf_token(ops_client, world):
    csrf = _sign_in(ops_client, world.keys["commander"]).get_json()["csrf_token"]
    case = {"kind": "incident", "title": "积水", "lon": casesworld.point(5, 5)[0],
            "lat": casesworld.point(5, 5)[1]}  # fmt: skip
    refused = ops_client.post("/api/cases", json=case)
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "csrf"
    wrong = ops_client.post("/api/cases", json=case, headers={"X-CSRF-Token": "x" * 43})
    assert wrong.status_code == 403
    done = ops_client.post("/api/cases", json=case, headers={"X-CSRF-Token": csrf})
    assert done.status_code == 201, done.get_json()
    assert done.get_json()["case"]["created_by"] == world.key_names["commander"]


def test_a_viewer_session_reads_but_does_not_write(ops_client, world):
    answer = _sign_in(ops_client, world.keys["viewer"]).get_json()
    assert answer["role"] == "viewer" and "write" not in answer["permissions"]
    assert ops_client.get("/api/cases?open=true").status_code == 200
    new = {"kind": "incident", "title": "x", "lon": 1, "lat": 1}
    csrf = {"X-CSRF-Token": answer["csrf_token"]}
    refused = ops_client.post("/api/cases", json=new, headers=csrf)
    assert refused.status_code == 403


def test_revoking_the_key_ends_its_sessions_and_sign_out_ends_one(ops_client, world, connection):
    _sign_in(ops_client, world.keys["planner"])
    assert ops_client.get("/api/session").get_json()["role"] == "planner"
    prefix = world.keys["planner"].split("_")[1]
    auth.revoke_key(connection, prefix)
    ended = ops_client.get("/api/cases")
    assert ended.status_code == 401 and "sign in again" in ended.get_json()["error"]["message"]
    assert ops_client.get("/api/session").get_json()["signed_in"] is False
    # Sign-out: the session ends in the database, the cookie is cleared.
    csrf = _sign_in(ops_client, world.keys["commander"]).get_json()["csrf_token"]
    assert ops_client.delete("/api/session").status_code == 403  # no CSRF token
    out = ops_client.delete("/api/session", headers={"X-CSRF-Token": csrf})
    assert out.status_code == 204 and "Max-Age=0" in _cookie(out)
    assert ops_client.get("/api/session").get_json()["signed_in"] is False
    assert connection.execute(sa.text("SELECT count(*) FROM sessions WHERE ended_at IS NOT NULL"
                                      )).scalar_one() == 1  # fmt: skip


def test_sessions_expire(shared_url, connection, world):
    from tests.conftest import _app_on

    hours = 0.001  # 3.6 s: room for the first request on a loaded machine
    app = _app_on(shared_url, connection, session_hours=hours)
    client = app.test_client()
    _sign_in(client, world.keys["commander"])
    signed_in = time.monotonic()  # the session began before this, so it ends before
    assert client.get("/api/cases").status_code == 200
    time.sleep(max(0.0, signed_in + hours * 3600 + 0.3 - time.monotonic()))
    assert client.get("/api/cases").status_code == 401


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"key": "gm_nope_nope"}, 401, None),
        ({"key": "em_x"}, 401, None),
        ({}, 400, "key"),
        ({"key": 5}, 400, "key"),
        ({"key": "gm_x", "role": "commander"}, 400, "role"),
        ({"key": "a\x00b"}, 400, "key"),
    ],
)
def test_bad_sign_ins_are_refused_naming_the_problem(ops_client, world, body, status, field):
    response = ops_client.post("/api/session", json=body)
    assert response.status_code == status, response.get_json()
    assert response.get_json()["error"]["field"] == field
    assert "Set-Cookie" not in response.headers


def test_keys_in_the_query_string_are_refused(ops_client, world):
    key = world.keys["commander"]
    for name in ("key", "api_key"):
        response = ops_client.get(f"/api/cases?{name}={key}")
        assert response.status_code in (400, 401), response.get_json()
        assert key not in json.dumps(response.get_json())
    response = ops_client.get(f"/api/cases?token={key}")
    assert response.status_code == 401 and "header" in response.get_json()["error"]["message"]


def test_map_pages_load_for_anyone_and_their_data_does_not(db_url):
    app = create_app({"database_url": db_url, "open_read": False})
    client = app.test_client()
    for page in ("/map", "/map/circles", "/map/coverage"):
        assert client.get(page).status_code == 200, page
    assert client.get("/map/data/teams").status_code == 401
    assert client.get("/api/session").get_json() == {
        "signed_in": False, "role": "anonymous", "name": None, "permissions": ["public"],
        "csrf_token": None, "expires_at": None,
    }  # fmt: skip


# -- the event stream ----------------------------------------------------------------------
@pytest.fixture
def live(db_url):
    """A committed small world, a server on it (escalation loop off: these tests write),
    and the engine to write with from outside the server, as another process would."""
    engine = sa.create_engine(db_url, poolclass=sa.NullPool)
    with engine.begin() as conn:
        world = casesworld.build(conn)
    app = create_app({"database_url": db_url, "escalation_interval_s": 0, "event_streams": 3,
                      "open_read": False})  # fmt: skip
    with serve_app(app) as url:
        yield world, url, engine, app
    from geomap.api.events import stop_hub

    stop_hub(app)
    engine.dispose()


def _listening(app) -> None:
    """Wait until the process's hub listens (it starts with the first stream): a write
    committed before that is not news to it. Polled with a bound for a loaded machine."""
    assert app.extensions["geomap_hub"][1].connected.wait(30), "the hub never listened"


class Stream:
    """An open ``/api/events`` stream read on a thread, its messages collected."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        self.conn.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""),
                          headers=headers)  # fmt: skip
        self.response = self.conn.getresponse()
        self.messages: list[dict] = []
        self.comments = 0
        self._changed = threading.Condition()
        if self.response.status == 200:
            threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        message: dict = {}
        try:
            for raw in self.response:
                line = raw.decode().rstrip("\n")
                if not line:
                    if message:
                        with self._changed:
                            self.messages.append(message)
                            self._changed.notify_all()
                    message = {}
                elif line.startswith(":"):
                    self.comments += 1
                else:
                    name, _, value = line.partition(": ")
                    message[name] = json.loads(value) if name == "data" else value
        except (OSError, ValueError):
            pass

    def events(self) -> list[dict]:
        return [m for m in self.messages if "event" in m]

    def wait_for(self, kind: str, timeout_s: float = 5.0) -> dict:
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                found = [m for m in self.events() if m["event"] == kind]
                if found:
                    return found[-1]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {kind} event in {timeout_s} s: {self.events()}")
                self._changed.wait(left)

    def close(self) -> None:
        self.conn.close()


@contextmanager
def streams(url: str, *headers: dict[str, str]) -> Iterator[list[Stream]]:
    opened = [Stream(url + "/api/events", h) for h in headers]
    try:
        yield opened
    finally:
        for s in opened:
            s.close()


def _create_case(url: str, world, **fields) -> dict:
    lon, lat = casesworld.point(5, 5)
    body = {"kind": "incident", "title": "积水", "lon": lon, "lat": lat, **fields}
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.request("POST", "/api/cases?k=0", body=json.dumps(body),
                 headers={**world.headers(), "Content-Type": "application/json"})  # fmt: skip
    answer = json.loads(conn.getresponse().read())
    conn.close()
    return answer["case"]


def test_a_write_reaches_every_stream_as_its_role_may_see_it(live):
    world, url, _, app = live
    with streams(url, world.headers("commander"), world.headers("viewer")) as (boss, viewer):
        assert boss.response.status == 200
        assert boss.response.getheader("Content-Type").startswith("text/event-stream")
        _listening(app)
        started = time.monotonic()
        case = _create_case(url, world, reporter_phone="13800000001", reporter_name="王")
        seen = boss.wait_for("case.created")
        latency_s = time.monotonic() - started
        assert seen["data"]["case_id"] == case["id"] and latency_s < 2
        assert seen["data"]["data"]["reporter_phone"] == "13800000001"  # commanders: personal
        other = viewer.wait_for("case.created")
        assert other["id"] == seen["id"] and other["data"]["data"]["title"] == "积水"
        assert "reporter_phone" not in other["data"]["data"]  # viewers: no personal fields


def test_a_write_by_another_process_reaches_the_stream(live):
    """A commit from outside the service (the CLI, psql: here a raw connection)."""
    world, url, engine, app = live
    with streams(url, world.headers("viewer")) as (viewer,):
        _listening(app)
        team = world.teams["med1"]
        with engine.begin() as conn:  # what `geomap teams set-status` does, in its own process
            from geomap.ops import teams as team_ops
            from geomap.ops.audit import Actor

            team_ops.update(conn, team, {"status": "off_duty"}, actor=Actor.cli(),
                            now=casesworld.START)  # fmt: skip
        event = viewer.wait_for("team.changed")
        assert event["data"]["team_id"] == team and event["data"]["data"]["status"] == "off_duty"


def _titles(stream: Stream) -> list[str]:
    return [m["data"]["data"]["title"] for m in stream.events() if m["event"] == "case.created"]


def test_a_stream_resumes_after_the_last_event_it_saw(live):
    world, url, _, app = live
    with streams(url, world.headers()) as (first,):
        _listening(app)
        _create_case(url, world, title="一")
        seen = first.wait_for("case.created")
    # Missed while away: two cases.
    _create_case(url, world, title="二")
    _create_case(url, world, title="三")
    resumed = {**world.headers(), "Last-Event-ID": seen["id"]}
    with streams(url, resumed) as (second,):
        second.wait_for("case.created")
        time.sleep(0.5)
        assert _titles(second) == ["二", "三"]
    # A new hub (a restarted server) replays from the table.
    from geomap.api.events import stop_hub

    stop_hub(app)
    app.extensions.pop("geomap_hub")
    with streams(url, resumed) as (third,):
        third.wait_for("case.created")
        time.sleep(0.5)
        assert _titles(third) == ["二", "三"]


def test_streams_hold_no_database_connection_and_are_bounded(live):
    world, url, engine, _ = live

    def backends() -> int:
        with engine.connect() as conn:
            return conn.execute(sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()"
            )).scalar_one()  # fmt: skip

    with streams(url, world.headers()) as (one,):
        assert one.response.status == 200
        time.sleep(0.5)
        with_one = backends()
        with streams(url, world.headers(), world.headers()) as more:
            assert all(s.response.status == 200 for s in more)
            time.sleep(0.5)
            assert backends() <= with_one  # the listener and the pool, not one per stream
            with streams(url, world.headers()) as (refused,):  # event_streams = 3
                assert refused.response.status == 503
                assert refused.response.getheader("Retry-After")


@pytest.mark.parametrize("last", ["abc", "-1", "1e3", "9" * 30, "1\x00"])
def test_a_bad_last_event_id_is_a_400_naming_it(ops_client, world, last):
    response = ops_client.get("/api/events", headers={**world.headers(), "Last-Event-ID": last})
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "Last-Event-ID"
    response = ops_client.get(f"/api/events?after={last[:5]}&x=1", headers=world.headers())
    assert response.status_code == 400


def test_an_embed_token_gets_only_the_events_of_its_layers(live):
    world, url, engine, app = live
    with engine.begin() as conn:
        teams_only, _ = auth.create_embed_token(conn, auth.secret_key(app.config["GEOMAP"]),
                                                ["teams"], "https://portal.example", 1)  # fmt: skip
    with streams(url, {}) as (anonymous,):
        assert anonymous.response.status == 401
    with (
        token_stream(f"{url}/api/events?token={teams_only}") as embed,
        streams(url, world.headers()) as (boss,),
    ):
        _listening(app)
        _create_case(url, world)
        boss.wait_for("case.created")
        with engine.begin() as conn:
            from geomap.ops import teams as team_ops
            from geomap.ops.audit import Actor

            team_ops.update(conn, world.teams["med1"], {"status": "off_duty"}, actor=Actor.cli(),
                            now=casesworld.START)  # fmt: skip
        embed.wait_for("team.changed")
        assert [m["event"] for m in embed.events()] == ["ready", "team.changed"]


@contextmanager
def token_stream(full_url: str) -> Iterator[Stream]:
    stream = Stream(full_url, {})
    try:
        assert stream.response.status == 200, stream.response.read()
        yield stream
    finally:
        stream.close()


def test_request_lines_of_the_development_server_never_show_a_token(db_url, caplog):
    app = create_app({"database_url": db_url, "open_read": False})
    secret = "em_not.a.real.token.but.secret"
    with caplog.at_level("INFO", logger="werkzeug"), serve_app(app) as url:
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        conn.request("GET", f"/embed/map?token={secret}&lang=zh")
        assert conn.getresponse().status == 401
        conn.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "werkzeug"]
    assert any("/embed/map?token=[redacted]&lang=zh" in line for line in lines), lines
    assert not any(secret in line for line in lines)


def test_an_escalation_reaches_the_stream_with_no_write(db_url):
    """Nobody writes: the deadline passes (on the service's clock) and the serving
    process's loop records the climb and announces it."""
    from geomap.api._ops import LOOP, start_loop

    engine = sa.create_engine(db_url, poolclass=sa.NullPool)
    with engine.begin() as conn:
        world = casesworld.build(conn)
    app = create_app({"database_url": db_url, "escalation_interval_s": 1.0, "open_read": False})
    app.extensions["geomap_clock"] = world.clock
    with serve_app(app) as url:
        case = _create_case(url, world)  # an incident of medium severity: 10 min to accept
        loop = start_loop(app)
        try:
            with streams(url, world.headers("viewer")) as (viewer,):
                _listening(app)
                world.clock.advance(minutes=11)  # time passes; nobody writes
                started = time.monotonic()
                event = viewer.wait_for("case.escalated", timeout_s=5.0)
                assert time.monotonic() - started < 5.0
                assert event["data"]["case_id"] == case["id"]
                assert event["data"]["data"]["level"] == "community"
        finally:
            loop.stop()
            app.extensions.pop(LOOP, None)
            from geomap.api.events import stop_hub

            stop_hub(app)
    engine.dispose()


def test_a_new_stream_is_told_where_now_is_so_a_quiet_page_resumes_by_replay(live):
    world, url, _, _ = live
    _create_case(url, world, title="before")  # history the page does not want replayed
    time.sleep(0.5)
    with streams(url, world.headers()) as (quiet,):
        deadline = time.monotonic() + 5
        while not any("id" in m for m in quiet.messages) and time.monotonic() < deadline:
            time.sleep(0.05)
        now_id = next(m["id"] for m in quiet.messages if "id" in m)
        assert [m["event"] for m in quiet.events()] == ["ready"]  # where now is; nothing old
    _create_case(url, world, title="missed")  # while the quiet page was away
    with streams(url, {**world.headers(), "Last-Event-ID": now_id}) as (back,):
        back.wait_for("case.created")
        time.sleep(0.3)
        assert _titles(back) == ["missed"]
