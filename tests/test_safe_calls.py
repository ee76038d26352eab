"""Issue 25: a call page that cannot be shut, idempotent writes, one row per fix, teams in the city.

Concurrent requests go through the real threaded server on a committed database. Each
simulated resident is its own peer address: a small WSGI wrapper sets ``REMOTE_ADDR`` from
a test header, as the peer a socket would show, so the test needs no proxy setting.
"""

from __future__ import annotations

import datetime as dt
import json

import sqlalchemy as sa

from geomap import config, create_app, db
from tests import casesworld
from tests.browser import at_once, launch_browser, open_page, requires_chromium, serve_app
from tests.test_call import HTML, PHONE, WEST, _add_stations, _query
from tests.test_call import call_client as call_client  # the fixture, for this module

PEER = "X-Test-Peer"


def _as_peer(app):
    """The app, with each request's peer address taken from ``X-Test-Peer`` when sent."""

    def wsgi(environ, start_response):
        if "HTTP_X_TEST_PEER" in environ:
            environ["REMOTE_ADDR"] = environ["HTTP_X_TEST_PEER"]
        return app(environ, start_response)

    return wsgi


def _committed(db_url: str) -> casesworld.World:
    settings = config.load({"database_url": db_url}, environ={})
    with db.get_engine(settings).begin() as conn:
        world = casesworld.build(conn)
        _add_stations(conn)
    return world


def _one(port: int, method: str, path: str, headers: dict, body: dict | None = None):
    return at_once(port, [(method, path, headers, body)])[0]


# -- a flood at one station ------------------------------------------------------------------
def test_a_hundred_residents_at_one_station_are_one_flagged_case(db_url):
    world = _committed(db_url)
    app = create_app({"database_url": db_url, "log_level": "WARNING"})
    with serve_app(_as_peer(app)) as url:
        port = int(url.rsplit(":", 1)[1])
        calls = [("POST", f"/call/{WEST}", {PEER: f"198.51.100.{i}"}, {"text": f"第{i}位"})
                 for i in range(100)]  # fmt: skip
        answers = at_once(port, calls)
        # Every resident's first call is accepted: one opened the case, 99 are counted on it.
        assert [a[0] for a in answers] == [201] * 100, [a[2] for a in answers if a[0] != 201][:2]
        bodies = [json.loads(a[2]) for a in answers]
        assert len({b["case_id"] for b in bodies}) == 1
        assert sorted(b["duplicate"] for b in bodies) == [False] + [True] * 99
        case_id = bodies[0]["case_id"]
        # The commander's queue shows one call case, flagged with its count.
        status, _, raw = _one(port, "GET", "/api/cases?open=true", world.headers())
        assert status == 200
        listed = [c for c in json.loads(raw)["cases"] if c["created_by"] == f"call:{WEST}"]
        assert [c["id"] for c in listed] == [case_id]
        flood = listed[0]["calls"]
        assert flood["count"] == 100 and flood["flood"] is True
        assert flood["flag"]["en"] == "possible flood: 100 calls in 1 min"
        assert flood["flag"]["zh"] == "疑似刷单：1 分钟内 100 次呼叫"
        status, _, raw = _one(port, "GET", f"/api/cases/{case_id}", world.headers())
        assert json.loads(raw)["calls"]["count"] == 100
        # One address beyond its limit (6 calls at one station an hour) is refused and
        # told to dial 110/120/119; a new address still gets in.
        repeat = {PEER: "198.51.100.7"}
        made = [_one(port, "POST", f"/call/{WEST}", repeat)[0] for _ in range(6)]
        assert made == [201] * 5 + [429]
        refused = _one(port, "POST", f"/call/{WEST}", repeat)
        assert refused[0] == 429 and int(refused[1]["Retry-After"]) > 60
        error = json.loads(refused[2])["error"]
        assert error["field"] == "client" and "110, 120 or 119" in error["message"]
        form = {**repeat, **HTML, "Content-Type": "application/x-www-form-urlencoded"}
        page = _one(port, "POST", f"/call/{WEST}", form)
        assert page[0] == 429 and "110、120 或 119" in page[2].decode()
        newcomer = _one(port, "POST", f"/call/{WEST}", {PEER: "203.0.113.9"})
        assert newcomer[0] == 201 and json.loads(newcomer[2])["case_id"] == case_id
    cases = _query(db_url, "SELECT id FROM cases WHERE created_by = :by", by=f"call:{WEST}")
    assert [r["id"] for r in cases] == [case_id]
    counted = _query(db_url, "SELECT count(*) AS n FROM call_attempts WHERE case_id = :id",
                     id=case_id)  # fmt: skip
    assert counted[0]["n"] == 106
    audit = _query(db_url, "SELECT count(*) AS n FROM audit_log WHERE action = 'case.call'")
    assert audit[0]["n"] == 105


def test_the_refusal_page_keeps_the_emergency_numbers(call_client):
    # A refusal of any kind (here: another site's form) still shows 110/120/119.
    page = call_client.post(f"/call/{WEST}", data={"text": "x"},
                            headers={**HTML, "Origin": "https://evil.example"})  # fmt: skip
    assert page.status_code == 403 and "110、120 或 119" in page.get_data(as_text=True)


def test_a_call_sent_again_with_its_key_is_one_call(call_client, connection):
    headers = {"Idempotency-Key": "press-5f0c6a1e"}
    first = call_client.post(f"/call/{WEST}", json={"text": "有人晕倒"}, headers=headers)
    again = call_client.post(f"/call/{WEST}", json={"text": "有人晕倒"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.get_json() == first.get_json() and again.headers["Idempotent-Replayed"] == "true"
    calls = connection.execute(sa.text("SELECT count(*) FROM call_attempts")).scalar()
    assert calls == 1
    other = call_client.post(f"/call/{WEST}", json={"text": "另一件事"}, headers=headers)
    assert other.status_code == 422 and other.get_json()["error"]["field"] == "Idempotency-Key"
    bad = call_client.post(f"/call/{WEST}", json={}, headers={"Idempotency-Key": "a b"})
    assert bad.status_code == 400 and bad.get_json()["error"]["field"] == "Idempotency-Key"


# -- idempotent case creation ----------------------------------------------------------------
def test_ten_simultaneous_reports_with_one_key_make_one_case(db_url):
    world = _committed(db_url)
    app = create_app({"database_url": db_url, "log_level": "WARNING"})
    lon, lat = casesworld.point(4.5, 4.2)
    body = {"kind": "incident", "title": "井盖缺失", "lon": lon, "lat": lat}
    headers = {**world.headers(), "Idempotency-Key": "4a7d1c2e-report-1"}
    with serve_app(app) as url:
        port = int(url.rsplit(":", 1)[1])
        answers = at_once(port, [("POST", "/api/cases?k=1", headers, body)] * 10)
        assert [a[0] for a in answers] == [201] * 10
        assert len({a[2] for a in answers}) == 1  # byte for byte
        assert sum(a[1].get("Idempotent-Replayed") == "true" for a in answers) == 9
        # The same key with another report: refused, naming the header.
        other = _one(port, "POST", "/api/cases?k=1", headers, {**body, "title": "另一处"})
        assert other[0] == 422
        assert json.loads(other[2])["error"]["field"] == "Idempotency-Key"
        # Another caller's same key is its own.
        checker = {**world.headers("checker"), "Idempotency-Key": "4a7d1c2e-report-1"}
        mine = _one(port, "POST", "/api/cases?k=0", checker, body)
        assert mine[0] == 201
    made = _query(db_url, "SELECT id FROM cases WHERE title = '井盖缺失' ORDER BY id")
    assert len(made) == 2
    assert json.loads(answers[0][2])["case"]["id"] == made[0]["id"]


def test_a_key_is_remembered_for_a_day(ops_client, world, connection):
    lon, lat = casesworld.point(4.5, 4.2)
    body = {"kind": "incident", "title": "路灯不亮", "lon": lon, "lat": lat}
    headers = {**world.headers(), "Idempotency-Key": "day-old-key"}
    first = ops_client.post("/api/cases?k=0", json=body, headers=headers)
    assert first.status_code == 201
    # A day later the key is forgotten: the same request is a new report.
    connection.execute(sa.text("UPDATE idempotency_keys SET created_at = created_at - :d"),
                       {"d": dt.timedelta(hours=24, seconds=1)})  # fmt: skip
    later = ops_client.post("/api/cases?k=0", json=body, headers=headers)
    assert later.status_code == 201
    assert later.get_json()["case"]["id"] != first.get_json()["case"]["id"]
    assert "Idempotent-Replayed" not in later.headers


def test_the_header_is_declared(ops_client):
    spec = ops_client.get("/openapi.json").get_json()
    for path in ("/api/cases", "/call/{code}"):
        declared = spec["paths"][path]["post"]["parameters"]
        assert {"name": "Idempotency-Key", "in": "header"} in [
            {"name": p["name"], "in": p["in"]} for p in declared
        ], path


# -- positions -------------------------------------------------------------------------------
def test_ten_simultaneous_resends_of_one_fix_are_one_history_row(db_url):
    world = _committed(db_url)
    app = create_app({"database_url": db_url, "log_level": "WARNING"})
    team = world.teams["med1"]
    lon, lat = casesworld.point(3, 3)
    at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    fix = {"fixes": [{"lon": lon, "lat": lat, "recorded_at": at.isoformat()}]}
    with serve_app(app) as url:
        port = int(url.rsplit(":", 1)[1])
        answers = at_once(port, [("POST", f"/api/teams/{team}/positions", world.headers(),
                                   fix)] * 10)  # fmt: skip
    assert [a[0] for a in answers] == [200] * 10
    bodies = [json.loads(a[2]) for a in answers]
    assert sum(b["accepted"] for b in bodies) == 1
    assert sum(b["duplicates"] for b in bodies) == 9
    rows = _query(db_url, "SELECT count(*) AS n FROM team_positions WHERE team_id = :t "
                  "AND recorded_at = :at", t=team, at=at)  # fmt: skip
    assert rows[0]["n"] == 1


def test_a_team_cannot_be_placed_in_the_pacific(ops_client, world, connection):
    team = world.teams["med1"]
    before = connection.execute(
        sa.text("SELECT ST_AsText(geom), ST_AsText(base_geom) FROM teams WHERE id = :id"),
        {"id": team},
    ).one()
    for body, field in (
        ({"lon": -150.0, "lat": 0.0}, "lon"),
        ({"standby_lon": -150.0, "standby_lat": 0.0}, "standby_lon"),
    ):
        answer = ops_client.patch(f"/api/teams/{team}", json=body, headers=world.headers())
        assert answer.status_code == 422, answer.get_json()
        error = answer.get_json()["error"]
        assert error["field"] == field and "outside the city" in error["message"]
    # A device's fix there is refused too, by its index.
    fixes = {"fixes": [{"lon": -150.0, "lat": 0.0, "recorded_at": casesworld.START.isoformat()}]}
    refused = ops_client.post(f"/api/teams/{team}/positions", json=fixes, headers=world.headers())
    assert refused.status_code == 422
    assert refused.get_json()["error"]["field"] == "fixes[0].lon"
    after = connection.execute(
        sa.text("SELECT ST_AsText(geom), ST_AsText(base_geom) FROM teams WHERE id = :id"),
        {"id": team},
    ).one()
    assert tuple(after) == tuple(before)
    inside = ops_client.patch(f"/api/teams/{team}", headers=world.headers(),
                              json={"standby_lon": casesworld.point(2, 2)[0],
                                    "standby_lat": casesworld.point(2, 2)[1]})  # fmt: skip
    assert inside.status_code == 200


# -- in a real browser -----------------------------------------------------------------------
@requires_chromium
def test_the_commander_sees_the_flood_and_the_phone_keeps_the_emergency_line(db_url):
    from tests.test_live_map import _signed_in

    world = _committed(db_url)
    app = create_app({"database_url": db_url, "log_level": "WARNING",
                      "call_per_client_per_hour": 1})  # fmt: skip
    with serve_app(_as_peer(app)) as url, launch_browser() as browser:
        port = int(url.rsplit(":", 1)[1])
        flood = [("POST", f"/call/{WEST}", {PEER: f"192.0.2.{i}"}, {}) for i in range(6)]
        assert [a[0] for a in at_once(port, flood)] == [201] * 6
        with open_page(f"{url}/map", browser=browser, wait_for_map=True, timeout_s=60) as map_:
            _signed_in(map_, world.keys["commander"])
            tag = map_.page.locator(".gm-queue .gm-flood-tag")
            tag.first.wait_for(timeout=30_000)
            assert tag.count() == 1
            assert tag.first.inner_text() == "疑似刷单：1 分钟内 6 次呼叫"
            tagged = map_.page.locator(".gm-flood-tag")
            map_.page.locator(".gm-case-open").filter(has=tagged).click()
            assert "疑似刷单" in map_.page.locator(".gm-case-detail .gm-flood").inner_text()
        # This phone (127.0.0.1) calls once, is counted on the flood, then is refused:
        # the refusal still says to dial 110/120/119.
        for expected in ("call-number", "call-error"):
            with open_page(f"{url}/call/{WEST}", offline=True, browser=browser, viewport=PHONE,
                           wait_for_map=False) as phone:  # fmt: skip
                phone.page.click("#call-button")
                phone.page.locator(f"#{expected}").wait_for(timeout=10_000)
                emergency = phone.page.locator(".emergency")
                assert emergency.is_visible() and "110、120 或 119" in emergency.inner_text()
                if expected == "call-error":  # the 429 is the one console error
                    assert "呼叫过于频繁" in phone.page.locator("#call-error").inner_text()
                    phone.screenshot("call-phone-refused.png")
                    assert not phone.external_requests
                else:
                    phone.assert_clean()
