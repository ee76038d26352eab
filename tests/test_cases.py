"""Cases from report to closure, through the API on a small world (tests/casesworld.py).

Every test runs in a rolled-back transaction, on the world's own clock.
"""

from __future__ import annotations

import itertools
import json

import pytest
import sqlalchemy as sa

from geomap import vocab
from geomap.errors import Conflict, InvalidInput
from geomap.ops import cases, casesteps, dispatch
from tests import casesworld

INSIDE_EAST = casesworld.point(4.5, 4.2)
INSIDE_WEST = casesworld.point(1.5, 4.0)


def new_case(api, world, *, kind="incident", at=INSIDE_EAST, who="commander", k=0, **extra):
    body = {"kind": kind, "title": "测试事件", "lon": at[0], "lat": at[1], **extra}
    response = api.post(f"/api/cases?k={k}", json=body, headers=world.headers(who))
    assert response.status_code == 201, response.get_json()
    return response.get_json()["case"]


def step(api, world, case_id, action, who="commander", **extra):
    return api.post(
        f"/api/cases/{case_id}/steps", json={"action": action, **extra}, headers=world.headers(who)
    )


def send(api, world, case_id, *teams, who="commander"):
    ids = [world.teams[t] for t in teams]
    return api.post(
        f"/api/cases/{case_id}/dispatch", json={"team_ids": ids}, headers=world.headers(who)
    )


def case_in(api, world, status: str, team: str = "med1") -> dict:
    """A case brought to ``status`` through the API's own steps."""
    case = new_case(api, world)
    cid = case["id"]
    path = {
        "reported": [],
        "accepted": [("step", "accept")],
        "dispatched": [("send", team)],
        "on_scene": [("send", team), ("arrive", None)],
        "resolved": [("step", "accept"), ("step", "resolve")],
        "closed": [("step", "accept"), ("step", "resolve"), ("close", None)],
        "cancelled": [("step", "cancel")],
    }[status]
    for what, arg in path:
        if what == "step":
            assert step(api, world, cid, arg).status_code == 200
        elif what == "send":
            assert send(api, world, cid, arg).status_code == 201
        elif what == "arrive":
            did = api.get(f"/api/cases/{cid}", headers=world.headers()).get_json()
            did = did["dispatches"][0]["id"]
            r = api.post(
                f"/api/dispatches/{did}/steps", json={"action": "arrive"}, headers=world.headers()
            )
            assert r.status_code == 200
        elif what == "close":
            assert step(api, world, cid, "close", who="checker").status_code == 200
    case = api.get(f"/api/cases/{cid}", headers=world.headers()).get_json()
    assert case["status"] == status
    return case


# -- the state machines, as tables ---------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "action"), list(itertools.product(vocab.CASE_STATUSES, casesteps.ACTIONS))
)
def test_case_table_every_pair(status, action):
    expected = casesteps.STEPS.get((status, action))
    if expected is not None:
        assert casesteps.next_status(status, action) == expected
        assert expected in vocab.CASE_STATUSES
        return
    with pytest.raises(Conflict) as info:
        casesteps.next_status(status, action)
    assert info.value.field == "action"
    for allowed in casesteps.allowed(status):
        assert allowed in info.value.message


@pytest.mark.parametrize(
    ("status", "action"), list(itertools.product(vocab.DISPATCH_STATUSES, dispatch.ACTIONS))
)
def test_dispatch_table_every_pair(status, action):
    expected = dispatch.STEPS.get((status, action))
    if expected is not None:
        assert dispatch.next_status(status, action) == expected
        return
    with pytest.raises(Conflict) as info:
        dispatch.next_status(status, action)
    for allowed in dispatch.allowed(status):
        assert allowed in info.value.message


def test_unknown_actions_are_bad_input_not_conflicts():
    with pytest.raises(InvalidInput):
        casesteps.next_status("reported", "explode")
    with pytest.raises(InvalidInput):
        dispatch.next_status("assigned", "teleport")


def test_every_case_status_and_action_through_the_api(ops_client, world, connection):
    """Each (status, person's action) pair on a real case: legal steps land, the others
    are 409 naming the steps allowed from there."""
    api = ops_client
    for status in vocab.CASE_STATUSES:
        for action in (*casesteps.USER_ACTIONS, "dispatch"):
            savepoint = connection.begin_nested()
            try:
                case = case_in(api, world, status)
                if action == "dispatch":
                    response = send(api, world, case["id"], "med2")
                else:
                    response = step(
                        api,
                        world,
                        case["id"],
                        action,
                        who="checker" if action == "close" else "commander",
                    )
                expected = casesteps.STEPS.get((status, action))
                if expected is None:
                    assert response.status_code == 409, (status, action, response.get_json())
                    message = response.get_json()["error"]["message"]
                    assert f"allowed from {status}" in message
                    for allowed in casesteps.allowed(status):
                        assert allowed in message
                else:
                    assert response.status_code in (200, 201), (status, action)
                    body = response.get_json()
                    got = body["case"]["status"] if "case" in body else body["status"]
                    assert got == expected, (status, action)
                    who = "checker" if action == "close" else "commander"
                    logged = connection.execute(
                        sa.text(
                            "SELECT key_name FROM audit_log WHERE case_id = :id "
                            "AND action = :action ORDER BY id DESC LIMIT 1"
                        ),
                        {"id": case["id"], "action": f"case.{action}"},
                    ).scalar()
                    assert logged == world.key_names[who], (status, action)
            finally:
                savepoint.rollback()


def test_every_dispatch_status_and_action_through_the_api(ops_client, world, connection):
    api = ops_client
    reach = {
        "assigned": [],
        "en_route": ["depart"],
        "on_scene": ["arrive"],
        "released": ["release"],
    }
    for status, path in reach.items():
        for action in dispatch.ACTIONS:
            savepoint = connection.begin_nested()
            try:
                case = new_case(api, world)
                did = send(api, world, case["id"], "med1").get_json()["dispatches"][0]
                for move in path:
                    assert (
                        api.post(
                            f"/api/dispatches/{did}/steps",
                            json={"action": move},
                            headers=world.headers(),
                        ).status_code
                        == 200
                    )
                response = api.post(
                    f"/api/dispatches/{did}/steps", json={"action": action}, headers=world.headers()
                )
                expected = dispatch.STEPS.get((status, action))
                if expected is None:
                    assert response.status_code == 409, (status, action)
                    assert f"allowed from {status}" in response.get_json()["error"]["message"]
                else:
                    assert response.status_code == 200, (status, action, response.get_json())
                    row = connection.execute(
                        sa.text("SELECT status FROM dispatches WHERE id = :id"), {"id": did}
                    ).scalar()
                    assert row == expected
            finally:
                savepoint.rollback()


# -- the loop, step by step ----------------------------------------------------------------


def _team_status(connection, team_id):
    return connection.execute(
        sa.text("SELECT status FROM teams WHERE id = :id"), {"id": team_id}
    ).scalar()


def test_the_unit_chain_is_resolved_from_the_point(ops_client, world):
    east = new_case(ops_client, world, at=INSIDE_EAST)
    assert east["located"] == "grid"
    assert east["units"]["grid"]["code"] == "G-EAST"
    assert east["units"]["community"]["code"] == "360198001002"
    assert east["units"]["township"]["code"] == "360198001"
    assert east["units"]["district"]["code"] == "360198"
    west = new_case(ops_client, world, at=INSIDE_WEST)
    assert west["units"]["grid"]["code"] == "G-WEST"
    # In the city but in no grid: the smallest unit holding the point takes it.
    away = new_case(ops_client, world, at=casesworld.OUTSIDE_GRIDS)
    assert away["located"] == "township" and away["units"]["grid"] is None
    assert away["level"] == "township" and away["units"]["district"]["code"] == "360198"
    outside = ops_client.post(
        "/api/cases",
        json={
            "kind": "hazard",
            "title": "x",
            "lon": casesworld.OUTSIDE_CITY[0],
            "lat": casesworld.OUTSIDE_CITY[1],
        },
        headers=world.headers(),
    )
    assert outside.status_code == 422 and outside.get_json()["error"]["field"] == "lon"


def test_a_point_in_no_region_goes_to_the_nearest_grid(ops_client, world, connection):
    # Drop the regions' pieces: the point is in the city (its outline is cached per
    # regions version) but no region piece holds it any more.
    connection.execute(sa.text("DELETE FROM region_pieces"))
    case = new_case(ops_client, world, at=casesworld.OUTSIDE_GRIDS)
    assert case["located"] == "nearest_grid"
    assert case["units"]["grid"]["code"] in ("G-EAST", "G-WEST")
    assert case["units"]["community"] is not None


def test_creating_a_case_recommends_fitting_teams(ops_client, world):
    response = ops_client.post(
        "/api/cases?k=3",
        json={"kind": "hazard", "title": "井盖破损", "lon": INSIDE_EAST[0], "lat": INSIDE_EAST[1]},
        headers=world.headers(),
    )
    recommended = response.get_json()["recommendation"]["teams"]
    # Hazards go to stewards, veterans, youth, riders with a hazard capability.
    names = {t["name"] for t in recommended}
    assert names <= {"stw1", "stw2", "vet1", "yth1"} and len(recommended) == 3
    etas = [t["eta_min"] for t in recommended]
    assert etas == sorted(etas)
    assert all(t["route"]["type"] == "LineString" for t in recommended)
    assert all(t["coverage_loss"]["residents"] >= 0 for t in recommended)


def test_dispatch_resolve_close_and_the_teams_come_back(ops_client, world, connection):
    api = ops_client
    case = new_case(api, world, kind="hazard")
    sent = send(api, world, case["id"], "stw1", "vet1")
    assert sent.status_code == 201
    body = sent.get_json()
    assert body["case"]["status"] == "dispatched" and len(body["dispatches"]) == 2
    assert body["case"]["accepted_at"] is not None  # dispatching accepts
    assert all(d["eta_min"] is not None for d in body["case"]["dispatches"])
    assert _team_status(connection, world.teams["stw1"]) == "deployed"
    # A deployed team cannot go to another case...
    other = new_case(api, world)
    busy = send(api, world, other["id"], "stw1")
    assert busy.status_code == 409 and "already on dispatch" in busy.get_json()["error"]["message"]
    # ... nor be declared available or off duty while on a dispatch.
    patch = api.patch(
        f"/api/teams/{world.teams['stw1']}", json={"status": "available"}, headers=world.headers()
    )
    assert patch.status_code == 409 and patch.get_json()["error"]["field"] == "status"
    world.clock.advance(minutes=30)
    assert step(api, world, case["id"], "resolve").status_code == 200
    assert _team_status(connection, world.teams["stw1"]) == "available"
    assert _team_status(connection, world.teams["vet1"]) == "available"
    # The check step of a hazard: not by the key that resolved it.
    same = step(api, world, case["id"], "close")
    assert same.status_code == 409 and "different key" in same.get_json()["error"]["message"]
    closed = step(api, world, case["id"], "close", who="checker")
    assert closed.status_code == 200 and closed.get_json()["status"] == "closed"


def test_an_incident_may_be_closed_by_the_key_that_resolved_it(ops_client, world):
    case = case_in(ops_client, world, "resolved")
    assert step(ops_client, world, case["id"], "close").status_code == 200


def test_releasing_the_last_team_returns_the_case_to_accepted(ops_client, world, connection):
    api = ops_client
    case = new_case(api, world)
    did = send(api, world, case["id"], "med1").get_json()["dispatches"][0]
    api.post(f"/api/dispatches/{did}/steps", json={"action": "depart"}, headers=world.headers())
    arrived = api.post(
        f"/api/dispatches/{did}/steps", json={"action": "arrive"}, headers=world.headers()
    )
    assert arrived.get_json()["status"] == "on_scene"
    released = api.post(
        f"/api/dispatches/{did}/steps",
        json={"action": "release", "note": "换队"},
        headers=world.headers(),
    )
    assert released.get_json()["status"] == "accepted"
    assert _team_status(connection, world.teams["med1"]) == "available"
    again = send(api, world, case["id"], "med1")
    assert again.status_code == 201


def test_reopen_and_cancel(ops_client, world, connection):
    api = ops_client
    case = case_in(api, world, "resolved")
    reopened = step(api, world, case["id"], "reopen", note="复查不合格")
    assert reopened.get_json()["status"] == "accepted"
    assert reopened.get_json()["resolved_at"] is None
    assert send(api, world, case["id"], "med3").status_code == 201
    cancelled = step(api, world, case["id"], "cancel")
    assert cancelled.get_json()["status"] == "cancelled"
    assert _team_status(connection, world.teams["med3"]) == "available"
    assert cancelled.get_json()["actions"] == []


def test_dispatch_refuses_bad_team_lists(ops_client, world):
    api = ops_client
    case = new_case(api, world)
    path = f"/api/cases/{case['id']}/dispatch"
    t = world.teams["med1"]
    for body, field in (
        ({"team_ids": [t, t]}, "team_ids"),
        ({"team_ids": []}, "team_ids"),
        ({"team_ids": [999_999]}, "team_ids"),
        ({"team_ids": [2**40]}, "team_ids[0]"),
        ({"team_ids": [True]}, "team_ids[0]"),
        ({"team_ids": ["1"]}, "team_ids[0]"),
        ({"team_ids": list(range(1, 12))}, "team_ids"),
        ({"team_ids": [t], "priority": 1}, "priority"),
        ({"team_ids": [t], "note": "x" * 1001}, "note"),
    ):
        response = api.post(path, json=body, headers=world.headers())
        assert response.status_code == 400, (body, response.get_json())
        assert response.get_json()["error"]["field"] == field
    off = world.teams["car1"]
    api.patch(f"/api/teams/{off}", json={"status": "off_duty"}, headers=world.headers())
    refused = api.post(path, json={"team_ids": [off]}, headers=world.headers())
    assert refused.status_code == 409 and "off_duty" in refused.get_json()["error"]["message"]
    assert (
        api.post(
            "/api/cases/999999/dispatch", json={"team_ids": [t]}, headers=world.headers()
        ).status_code
        == 404
    )


# -- bad input: 4xx naming the field, never 500 ---------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "incident", "title": "火\x00灾"}, "title"),
        ({"kind": "incident", "title": "x" * 201}, "title"),
        ({"kind": "incident", "title": "   "}, "title"),
        ({"kind": "incident", "title": "ok", "description": "y" * 4001}, "description"),
        ({"kind": "incident", "title": "\ud800"}, "title"),
        ({"kind": "fire", "title": "ok"}, "kind"),
        ({"title": "ok"}, "kind"),
        ({"kind": "incident", "title": "ok", "severity": "apocalyptic"}, "severity"),
        ({"kind": "incident", "title": "ok", "reported_at": "9999-01-01T00:00:00Z"}, "reported_at"),
        ({"kind": "incident", "title": "ok", "reported_at": "2030-01-01T00:00:00Z"}, "reported_at"),
        ({"kind": "incident", "title": "ok", "reported_at": "yesterday"}, "reported_at"),
        ({"kind": "incident", "title": "ok", "reported_at": "2026-11-20T08:00:00"}, "reported_at"),
        ({"kind": "incident", "title": "ok", "reporter_phone": "call me"}, "reporter_phone"),
        ({"kind": "incident", "title": "ok", "crs": "EPSG:3857"}, "crs"),
        ({"kind": "incident", "title": "ok", "colour": "red"}, "colour"),
        ({"kind": ["incident"], "title": "ok"}, "kind"),
        ({"kind": "incident", "title": 42}, "title"),
    ],
)
def test_bad_case_input_is_4xx_naming_the_field(ops_client, world, body, field):
    body = {"lon": INSIDE_EAST[0], "lat": INSIDE_EAST[1], **body}
    # json.dumps escapes a lone surrogate as \ud800, as a client's JSON would carry it.
    response = ops_client.post(
        "/api/cases",
        data=json.dumps(body),
        content_type="application/json",
        headers=world.headers(),
    )
    assert 400 <= response.status_code < 500, response.get_data(as_text=True)
    assert response.get_json()["error"]["field"] == field


def test_non_json_and_odd_bodies_are_400(ops_client, world):
    headers = world.headers()
    for path in (
        "/api/cases",
        "/api/cases/1/steps",
        "/api/cases/1/dispatch",
        f"/api/teams/{world.teams['med1']}/positions",
    ):
        for data, ctype in (
            ("not json", "application/json"),
            ("[1, 2]", "application/json"),
            ("title=x", "application/x-www-form-urlencoded"),
        ):
            response = ops_client.post(path, data=data, content_type=ctype, headers=headers)
            assert response.status_code == 400, (path, data)
            assert response.get_json()["error"]["field"] == "body"
    step_bad = ops_client.post("/api/cases/1/steps", json={"action": "dispatch"}, headers=headers)
    assert step_bad.status_code in (400, 404)
    huge = ops_client.get(f"/api/cases/{2**40}", headers=headers)
    assert huge.status_code == 404


# -- audit: every write names its key -------------------------------------------------------


def test_every_write_path_leaves_an_audit_row_naming_the_key(ops_client, world, connection):
    api = ops_client
    commander = world.key_names["commander"]

    def rows_since(mark):
        return connection.execute(
            sa.text("SELECT action, key_name, key_role FROM audit_log WHERE id > :m ORDER BY id"),
            {"m": mark},
        ).all()

    def mark():
        return connection.execute(sa.text("SELECT coalesce(max(id), 0) FROM audit_log")).scalar()

    case = None
    did = None
    team = world.teams["med2"]
    fix = {"lon": INSIDE_EAST[0], "lat": INSIDE_EAST[1], "recorded_at": "2026-11-20T07:59:00Z"}
    writes = [
        ("case.create", lambda: new_case(api, world)),
        ("case.accept", lambda: step(api, world, case["id"], "accept")),
        ("dispatch.create", lambda: send(api, world, case["id"], "med2")),
        (
            "dispatch.depart",
            lambda: api.post(
                f"/api/dispatches/{did}/steps", json={"action": "depart"}, headers=world.headers()
            ),
        ),
        (
            "dispatch.release",
            lambda: api.post(
                f"/api/dispatches/{did}/steps", json={"action": "release"}, headers=world.headers()
            ),
        ),
        ("case.resolve", lambda: step(api, world, case["id"], "resolve")),
        (
            "team.update",
            lambda: api.patch(
                f"/api/teams/{team}", json={"status": "off_duty"}, headers=world.headers()
            ),
        ),
        (
            "team.positions",
            lambda: api.post(
                f"/api/teams/{team}/positions", json={"fixes": [fix]}, headers=world.headers()
            ),
        ),
    ]
    for action, write in writes:
        before = mark()
        result = write()
        if action == "case.create":
            case = result
        if action == "dispatch.create":
            did = result.get_json()["dispatches"][0]
        got = rows_since(before)
        assert (action, commander, "commander") in got, (action, got)
        assert all(name == commander for _, name, _ in got)
    audit = api.get(f"/api/audit?case={case['id']}", headers=world.headers()).get_json()
    actions = [e["action"] for e in audit["entries"]]
    assert actions[-1] == "case.create" and "dispatch.create" in actions
    assert audit["entries"][0]["key"]["name"] == commander
    by_team = api.get(f"/api/audit?team={team}&action=team.update", headers=world.headers())
    assert [e["changes"]["status"] for e in by_team.get_json()["entries"]] == [
        ["available", "off_duty"]
    ]
    # Planners may not read the audit log, and nobody may rewrite it.
    assert api.get("/api/audit", headers=world.headers("planner")).status_code == 403
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), connection.begin_nested():
        connection.execute(sa.text("UPDATE audit_log SET key_name = 'someone else'"))
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), connection.begin_nested():
        connection.execute(sa.text("DELETE FROM audit_log"))


def test_every_write_announces_an_event(ops_client, world, connection):
    case = new_case(ops_client, world, reporter_phone="13800000001")
    send(ops_client, world, case["id"], "med1")
    events = connection.execute(
        sa.text("SELECT kind, audience, payload, personal FROM events ORDER BY id")
    ).all()
    kinds = [e.kind for e in events]
    assert kinds[:4] == ["case.created", "dispatch.created", "team.changed", "case.changed"]
    created = events[0]
    assert created.audience == "layers"  # viewers see cases (issue 10), not the reporter
    assert "reporter_phone" not in created.payload
    assert created.personal == {"reporter_phone": "13800000001"}
    assert events[2].audience == "layers"


# -- escalation on a controllable clock -----------------------------------------------------


def test_an_overdue_case_reads_escalated_with_no_write_in_between(ops_client, world, connection):
    api = ops_client
    case = new_case(api, world)  # incident, medium: 10 / 20 / 30 minutes
    cid = case["id"]
    assert case["level"] == "grid" and case["accept_by"] == "2026-11-20T08:10:00+00:00"
    writes = connection.execute(sa.text("SELECT count(*) FROM audit_log")).scalar()
    world.clock.advance(minutes=11)
    # The level computed from the clock, before anything is recorded:
    from geomap.ops import escalation

    row = connection.execute(sa.text("SELECT * FROM cases WHERE id = :id"), {"id": cid})
    assert escalation.level_of(row.mappings().one(), world.clock()).level == "community"
    assert (
        connection.execute(sa.text("SELECT level FROM cases WHERE id = :id"), {"id": cid}).scalar()
        == "grid"
    )
    assert connection.execute(sa.text("SELECT count(*) FROM audit_log")).scalar() == writes
    seen = api.get(f"/api/cases/{cid}", headers=world.headers("planner")).get_json()
    assert seen["level"] == "community" and seen["level_unit"]["name"] == "东社区"
    assert seen["accept_by"] == "2026-11-20T08:30:00+00:00" and seen["overdue"]
    world.clock.advance(minutes=50)  # 08:61: township at 08:30, district at 09:00
    for _ in range(3):  # reading again records nothing twice
        seen = api.get(f"/api/cases/{cid}", headers=world.headers()).get_json()
    assert seen["level"] == "district" and seen["accept_by"] is None
    assert [e["level"] for e in seen["escalations"]] == ["community", "township", "district"]
    climbs = connection.execute(
        sa.text(
            "SELECT changes->'level'->>1, at, key_role FROM audit_log "
            "WHERE case_id = :id AND action = 'case.escalate' ORDER BY id"
        ),
        {"id": cid},
    ).all()
    assert [(c[0], c[1].strftime("%H:%M"), c[2]) for c in climbs] == [
        ("community", "08:10", "system"),
        ("township", "08:30", "system"),
        ("district", "09:00", "system"),
    ]
    escalated = connection.execute(
        sa.text("SELECT count(*) FROM events WHERE kind = 'case.escalated' AND case_id = :id"),
        {"id": cid},
    ).scalar()
    assert escalated == 3
    # Accepted at the district, it stays there.
    assert step(api, world, cid, "accept").status_code == 200
    world.clock.advance(hours=5)
    later = api.get(f"/api/cases/{cid}", headers=world.headers()).get_json()
    assert later["level"] == "district" and len(later["escalations"]) == 3


def test_a_case_accepted_in_time_never_climbs(ops_client, world, connection):
    case = new_case(ops_client, world, severity="critical")  # incident critical: 2 / 5 / 10
    world.clock.advance(minutes=1, seconds=59)
    assert step(ops_client, world, case["id"], "accept").status_code == 200
    world.clock.advance(hours=3)
    seen = ops_client.get(f"/api/cases/{case['id']}", headers=world.headers()).get_json()
    assert seen["level"] == "grid" and seen["escalations"] == []
    assert seen["overdue"]  # accepted in time, but not resolved within 2 hours


def test_a_late_acceptance_records_the_climbs_it_missed(ops_client, world, connection):
    case = new_case(ops_client, world, severity="critical")
    world.clock.advance(minutes=8)  # the grid (2) and community (5 more) deadlines passed
    assert step(ops_client, world, case["id"], "accept").status_code == 200
    levels = (
        connection.execute(
            sa.text("SELECT level FROM case_escalations WHERE case_id = :id ORDER BY at"),
            {"id": case["id"]},
        )
        .scalars()
        .all()
    )
    assert levels == ["community", "township"]


def test_the_background_loop_records_climbs_with_no_read(db_url):
    """On a committed database: the loop's tick records what fell due; so does its thread."""
    import datetime as dt

    from geomap import config, db
    from geomap.ops import audit, escalation, rules

    settings = config.load({"database_url": db_url}, environ={})
    engine = db.get_engine(settings)
    clock = casesworld.Clock()
    policy = rules.rules(settings.dispatch_rules)
    with engine.begin() as conn:
        casesworld.build(conn, with_network=False)
        new = cases.parse_new(
            {"kind": "request", "title": "助餐", "lon": INSIDE_EAST[0], "lat": INSIDE_EAST[1]},
            clock(),
        )
        cid = cases.create(
            conn, new, actor=audit.Actor("test", "commander"), now=clock(), rules=policy
        )
    loop = escalation.Loop(engine, clock, interval_s=0.05)
    assert loop.tick() == 0
    clock.advance(minutes=16)  # request: 15 minutes at the grid
    assert loop.tick() == 1
    assert loop.tick() == 0  # once only
    clock.advance(minutes=30)
    loop.start()
    try:
        loop.ticked.clear()
        assert loop.ticked.wait(timeout=10)
        assert loop.ticked.wait(timeout=10)
    finally:
        loop.stop()
    with engine.connect() as conn:
        levels = (
            conn.execute(
                sa.text(
                    "SELECT changes->'level'->>1 FROM audit_log WHERE case_id = :id "
                    "AND action = 'case.escalate' ORDER BY id"
                ),
                {"id": cid},
            )
            .scalars()
            .all()
        )
        assert levels == ["community", "township"]
        partitions = conn.execute(
            sa.text("SELECT count(*) FROM pg_inherits WHERE inhparent = 'team_positions'::regclass")
        ).scalar()
        assert partitions >= 4  # last month to three ahead, plus the default
    assert dt.timedelta(minutes=46) == clock() - casesworld.START


def test_two_materializers_record_each_climb_once(db_url):
    """Two transactions materializing the same due case at once: one records, one skips."""
    import threading

    from geomap import config, db
    from geomap.ops import audit, escalation, rules

    settings = config.load({"database_url": db_url}, environ={})
    engine = db.get_engine(settings)
    clock = casesworld.Clock()
    with engine.begin() as conn:
        casesworld.build(conn, with_network=False)
        for _ in range(20):
            new = cases.parse_new(
                {"kind": "hazard", "title": "隐患", "lon": INSIDE_WEST[0], "lat": INSIDE_WEST[1]},
                clock(),
            )
            cases.create(
                conn,
                new,
                actor=audit.Actor("t", "commander"),
                now=clock(),
                rules=rules.rules(settings.dispatch_rules),
            )
    clock.advance(hours=2)
    barrier = threading.Barrier(2)
    counts = []

    def run():
        with engine.begin() as conn:
            barrier.wait()
            counts.append(escalation.materialize_due(conn, clock()))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with engine.connect() as conn:
        recorded = conn.execute(
            sa.text("SELECT count(*) FROM audit_log WHERE action = 'case.escalate'")
        ).scalar()
        rows = conn.execute(sa.text("SELECT count(*) FROM case_escalations")).scalar()
    assert sum(counts) == recorded == rows == 20 * 3  # hazard medium: climbs to district


def test_listeners_hear_an_event_only_when_its_write_commits(db_url):
    import psycopg

    from geomap import config, create_app
    from tests.casesworld import Clock

    settings = config.load({"database_url": db_url}, environ={})
    with __import__("geomap").db.get_engine(settings).begin() as conn:
        world = casesworld.build(conn)
    raw = db_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(raw, autocommit=True) as listener:
        listener.execute("LISTEN geomap_events")
        app = create_app({"database_url": db_url})
        app.extensions["geomap_clock"] = Clock()
        client = app.test_client()
        bad = client.post(
            "/api/cases", json={"kind": "incident", "title": "\x00"}, headers=world.headers()
        )
        assert bad.status_code == 400
        made = client.post(
            "/api/cases?k=0",
            json={
                "kind": "incident",
                "title": "起火",
                "lon": INSIDE_EAST[0],
                "lat": INSIDE_EAST[1],
            },
            headers=world.headers(),
        )
        assert made.status_code == 201
        heard = [int(n.payload) for n in listener.notifies(timeout=5, stop_after=1)]
    with __import__("geomap").db.get_engine(settings).connect() as conn:
        event = conn.execute(sa.text("SELECT id, kind, case_id FROM events")).one()
    assert heard == [event.id] and event.kind == "case.created"
    assert event.case_id == made.get_json()["case"]["id"]


# -- reading --------------------------------------------------------------------------------


def test_lists_filter_by_status_kind_level_and_unit(ops_client, world):
    api = ops_client
    a = new_case(api, world, kind="hazard", at=INSIDE_WEST)
    b = case_in(api, world, "closed")
    listed = api.get("/api/cases?open=1", headers=world.headers("planner")).get_json()
    assert [c["id"] for c in listed["cases"]] == [a["id"]] and listed["total"] == 1
    assert "reporter" not in listed["cases"][0]  # planners see no personal fields
    assert (
        api.get("/api/cases?status=closed", headers=world.headers()).get_json()["cases"][0]["id"]
        == b["id"]
    )
    assert api.get("/api/cases?unit=G-WEST", headers=world.headers()).get_json()["total"] == 1
    assert (
        api.get("/api/cases?kind=hazard&level=grid", headers=world.headers()).get_json()["total"]
        == 1
    )
    for query, field in (
        ("status=lost", "status"),
        ("level=city", "level"),
        ("from=someday", "from"),
        ("limit=0", "limit"),
        ("colour=1", "colour"),
    ):
        response = api.get(f"/api/cases?{query}", headers=world.headers())
        assert response.status_code == 400 and response.get_json()["error"]["field"] == field
    # Viewers see the cases (the read-only battle map), never a reporter's name or phone.
    seen = api.get("/api/cases", headers=world.headers("viewer"))
    assert seen.status_code == 200 and seen.get_json()["cases"]
    assert all(c.get("reporter_phone") is None for c in seen.get_json()["cases"])
    assert api.get("/api/cases/stats", headers=world.headers("viewer")).status_code == 403


def test_teams_standby_position_is_set_by_patch(ops_client, world, connection):
    team = world.teams["med1"]
    lon, lat = casesworld.point(6, 6)
    response = ops_client.patch(
        f"/api/teams/{team}", json={"standby_lon": lon, "standby_lat": lat}, headers=world.headers()
    )
    assert response.status_code == 200
    assert response.get_json()["standby_lon"] == pytest.approx(lon)
    half = ops_client.patch(
        f"/api/teams/{team}", json={"standby_lon": lon}, headers=world.headers()
    )
    assert half.status_code == 400 and half.get_json()["error"]["field"] == "standby_lat"
