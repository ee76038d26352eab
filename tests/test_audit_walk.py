"""Every write leaves an audit row (issue 25): each write operation of ``/openapi.json`` and
each writing command of the ``geomap`` CLI, called once with a valid request, is found in
``audit_log`` by its action, written by the caller, after the call began.

Both tables below must stay complete: a new write operation (POST, PUT, PATCH, DELETE)
without an entry in :data:`API_WRITES`, or a new command not classified in
:data:`CLI_WRITES` or :data:`CLI_NOT_WRITES`, fails the test.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pyrosm
import sqlalchemy as sa

from geomap import config, db
from geomap.cli import main
from tests import casesworld

WRITE_METHODS = ("post", "put", "patch", "delete")
#: A red station with a code (the call page's and the circles' venue) and a candidate.
STATION_CODE = "WALK-1"
STATION_AT = casesworld.point(2, 5)
CANDIDATE_AT = casesworld.point(7, 2)


@dataclass
class Walk:
    """What the API walk has made so far (the ids later calls use), and its clients."""

    api: Any
    world: casesworld.World
    made: dict[str, Any]

    def headers(self, who: str = "commander") -> dict[str, str]:
        return self.world.headers(who)


@dataclass(frozen=True)
class Call:
    """One valid request of a write operation, and the audit row it must leave."""

    action: str
    send: Callable[[Walk], Any]
    #: The actor's role in the audit row (``public`` for the call page).
    role: str = "commander"
    #: Another action the same request may be recorded as, where the outcome decides it.
    or_action: str | None = None

    @property
    def actions(self) -> tuple[str, ...]:
        """The actions that count as this request's audit row."""
        return (self.action,) if self.or_action is None else (self.action, self.or_action)


def _case(walk: Walk) -> Any:
    lon, lat = casesworld.point(4.5, 4.2)
    body = {"kind": "incident", "title": "审计巡查", "lon": lon, "lat": lat}
    response = walk.api.post("/api/cases", json=body, headers=walk.headers())
    walk.made["case"] = response.get_json()["case"]["id"]
    return response


def _accept(walk: Walk) -> Any:
    return walk.api.post(f"/api/cases/{walk.made['case']}/steps", json={"action": "accept"},
                         headers=walk.headers())  # fmt: skip


def _dispatch(walk: Walk) -> Any:
    response = walk.api.post(f"/api/cases/{walk.made['case']}/dispatch",
                             json={"team_ids": [walk.world.teams["med1"]]},
                             headers=walk.headers())  # fmt: skip
    walk.made["dispatch"] = response.get_json()["dispatches"][0]
    return response


def _depart(walk: Walk) -> Any:
    return walk.api.post(f"/api/dispatches/{walk.made['dispatch']}/steps",
                         json={"action": "depart"}, headers=walk.headers())  # fmt: skip


def _patch_team(walk: Walk) -> Any:
    return walk.api.patch(f"/api/teams/{walk.world.teams['vet1']}", json={"status": "off_duty"},
                          headers=walk.headers())  # fmt: skip


def _positions(walk: Walk) -> Any:
    lon, lat = casesworld.point(3, 3)
    at = walk.world.clock() - dt.timedelta(minutes=1)
    fix = {"lon": lon, "lat": lat, "recorded_at": at.isoformat()}
    return walk.api.post(f"/api/teams/{walk.world.teams['yth1']}/positions",
                         json={"fixes": [fix]}, headers=walk.headers())  # fmt: skip


def _call(walk: Walk) -> Any:
    return walk.api.post(f"/call/{STATION_CODE}", json={"text": "需要帮助"})


def _plan(walk: Walk) -> Any:
    response = walk.api.post("/api/plans", json={"n": 1, "minutes": 5},
                             headers=walk.headers("planner"))  # fmt: skip
    walk.made["job"] = response.get_json()["id"]
    return response


def _delete_job(walk: Walk) -> Any:
    return walk.api.delete(f"/api/jobs/{walk.made['job']}", headers=walk.headers("planner"))


def _scenario(walk: Walk) -> Any:
    lon, lat = CANDIDATE_AT
    body = {"name": "审计情景", "of": "stations", "kind": ["red_station"],
            "added": [{"name": "新驿站", "lon": lon, "lat": lat}]}  # fmt: skip
    response = walk.api.post("/api/scenarios", json=body, headers=walk.headers("planner"))
    walk.made["scenario"] = response.get_json()["id"]
    return response


def _delete_scenario(walk: Walk) -> Any:
    return walk.api.delete(f"/api/scenarios/{walk.made['scenario']}",
                           headers=walk.headers("planner"))  # fmt: skip


def _sign_in(walk: Walk) -> Any:
    walk.made["browser"] = browser = walk.api.application.test_client()
    response = browser.post("/api/session", json={"key": walk.world.keys["commander"]})
    walk.made["csrf"] = response.get_json()["csrf_token"]
    return response


def _sign_out(walk: Walk) -> Any:
    return walk.made["browser"].delete("/api/session", headers={"X-CSRF-Token": walk.made["csrf"]})


#: Every write operation of /openapi.json, in the order the walk calls them.
API_WRITES: dict[tuple[str, str], Call] = {
    ("POST", "/api/cases"): Call("case.create", _case),
    ("POST", "/api/cases/{case_id}/steps"): Call("case.accept", _accept),
    ("POST", "/api/cases/{case_id}/dispatch"): Call("dispatch.create", _dispatch),
    ("POST", "/api/dispatches/{dispatch_id}/steps"): Call("dispatch.depart", _depart),
    ("PATCH", "/api/teams/{team_id}"): Call("team.update", _patch_team),
    ("POST", "/api/teams/{team_id}/positions"): Call("team.positions", _positions),
    ("POST", "/call/{code}"): Call("case.create", _call, role="public"),
    ("POST", "/api/plans"): Call("plan_job.create", _plan, role="planner"),
    # A job still queued or running is cancelled; one that has already finished is deleted.
    ("DELETE", "/api/jobs/{job_id}"): Call(
        "plan_job.cancel", _delete_job, role="planner", or_action="plan_job.delete"
    ),
    ("POST", "/api/scenarios"): Call("scenario.create", _scenario, role="planner"),
    ("DELETE", "/api/scenarios/{scenario_id}"): Call(
        "scenario.delete", _delete_scenario, role="planner"
    ),
    ("POST", "/api/session"): Call("session.create", _sign_in),
    ("DELETE", "/api/session"): Call("session.end", _sign_out),
}


def _add_stations(conn) -> None:
    for code, kind, (lon, lat) in ((STATION_CODE, "red_station", STATION_AT),
                                   (None, "grid_station", CANDIDATE_AT)):  # fmt: skip
        conn.execute(
            sa.text(
                "INSERT INTO stations (code, name, kind, address, geom, source) VALUES "
                "(:code, '审计驿站', :kind, '测试路1号', ST_SetSRID(ST_MakePoint(:lon, :lat), "
                "4326), :source)"
            ),
            {"code": code, "kind": kind, "lon": lon, "lat": lat, "source": casesworld.SOURCE},
        )


def _audit_rows(conn, after: int) -> list[sa.Row]:
    return conn.execute(
        sa.text("SELECT id, action, key_name, key_role, changes FROM audit_log WHERE id > :after "
                "ORDER BY id"),
        {"after": after},
    ).all()  # fmt: skip


def _last_id(conn) -> int:
    return conn.execute(sa.text("SELECT coalesce(max(id), 0) FROM audit_log")).scalar_one()


def test_every_write_operation_of_the_api_leaves_its_audit_row(ops_client, world, connection):
    document = ops_client.get("/openapi.json").get_json()
    writes = {(method.upper(), path) for path, operations in document["paths"].items()
              for method in operations if method in WRITE_METHODS}  # fmt: skip
    assert writes - set(API_WRITES) == set(), "write operations without an example in API_WRITES"
    assert set(API_WRITES) - writes == set(), "API_WRITES names operations that do not exist"
    _add_stations(connection)
    walk = Walk(ops_client, world, {})
    missing = []
    for operation, call in API_WRITES.items():
        before = _last_id(connection)
        response = call.send(walk)
        assert response.status_code < 300, (operation, response.status_code,
                                            response.get_data(as_text=True)[:300])  # fmt: skip
        rows = [r for r in _audit_rows(connection, before) if r.action in call.actions]
        if not rows or rows[0].key_role != call.role:
            missing.append((operation, call.action, [(r.action, r.key_role) for r in rows]))
    assert missing == [], f"writes without their audit row: {missing}"
    # A sign-in and a sign-out are the key's own, named as the key is.
    sessions = connection.execute(sa.text(
        "SELECT action, key_name, changes->>'reason' FROM audit_log "
        "WHERE action LIKE 'session.%' ORDER BY id")).all()  # fmt: skip
    assert [tuple(r) for r in sessions] == [
        ("session.create", world.key_names["commander"], None),
        ("session.end", world.key_names["commander"], "sign-out"),
    ]


# -- the command line ----------------------------------------------------------------------


def _commands(group: click.Group, prefix: str = "") -> set[str]:
    names = set()
    for name, command in group.commands.items():
        full = f"{prefix}{name}"
        if isinstance(command, click.Group):
            names |= _commands(command, f"{full} ")
        else:
            names.add(full)
    return names


#: Commands that write nothing an audit should hold, and why.
CLI_NOT_WRITES = {
    "db up": "the cluster and the schema (alembic_version records the schema's revision)",
    "db down": "stops the embedded cluster; no data changes",
    "db status": "reads",
    "db check": "reads the roles' grants and says which are missing or excessive",
    "db migrate": "the schema (alembic_version records it; the audit table may not exist yet)",
    "provenance": "writes files of the repository, not the database",
    "nearest": "reads (route caches are derived data)",
    "report coverage": "reads; writes a report file (coverage samples are a derived cache)",
    "report circles": "reads; writes a report file",
    "keys list": "reads",
    "serve": "runs the service; its writes are the API's",
    "map battle": "reads; writes an HTML file",
    "cases list": "reads (escalations due are recorded by the system, audited)",
    "cases show": "reads (as cases list)",
    "cases stats": "reads (as cases list)",
    "stations qr": "reads; writes QR sheets",
    "settings": "prints the settings (or the README table)",
}


@dataclass(frozen=True)
class Command:
    """A writing command's arguments (from a scratch folder) and the audit row it leaves."""

    args: Callable[[Path, dict[str, str]], list[str]]
    action: str


def _stations_csv(tmp: Path, _made: dict[str, str]) -> list[str]:
    path = tmp / "stations.csv"
    path.write_text("name,kind,lon,lat\n审计驿站,red_station,115.9,28.66\n", encoding="utf-8")
    return ["load", str(path), "--layer", "stations"]


def _register(tmp: Path, _made: dict[str, str]) -> list[str]:
    lon, lat = casesworld.point(1.5, 4.0)
    path = tmp / "台账.csv"
    path.write_text(f"隐患名称,经度,纬度\n井盖破损,{lon},{lat}\n", encoding="utf-8")
    return ["cases", "import", str(path)]


def _revoke(_tmp: Path, made: dict[str, str]) -> list[str]:
    return ["keys", "revoke", made["key"]]


def _fixed(*args: str) -> Callable[[Path, dict[str, str]], list[str]]:
    return lambda _tmp, _made: list(args)


PBF = str(Path(pyrosm.__file__).parent / "data" / "test.osm.pbf")

#: Every command that writes the database, in the order the walk runs them.
CLI_WRITES: dict[str, Command] = {
    "load": Command(_stations_csv, "layer.load"),
    "circles build": Command(_fixed("circles", "build", "--minutes", "5"), "circles.build"),
    "cases import": Command(_register, "cases.import"),
    "plan sites": Command(
        _fixed("plan", "sites", "-n", "1", "--minutes", "5", "--save-scenario", "审计"),
        "scenario.create",
    ),
    "keys create": Command(
        _fixed("keys", "create", "--role", "viewer", "--name", "审计"), "key.create"
    ),
    "keys embed": Command(
        _fixed("keys", "embed", "--layers", "grids", "--origin", "https://portal.example"),
        "embed_token.create",
    ),
    "keys revoke": Command(_revoke, "key.revoke"),
    "network import": Command(_fixed("network", "import", PBF), "network.import"),
    "seed": Command(_fixed("seed", "nanchang"), "dataset.replace"),
}


def test_every_command_is_classified():
    commands = _commands(main)
    assert set(CLI_WRITES) & set(CLI_NOT_WRITES) == set()
    unclassified = commands - set(CLI_WRITES) - set(CLI_NOT_WRITES)
    assert unclassified == set(), "classify these commands in CLI_WRITES or CLI_NOT_WRITES"
    assert set(CLI_WRITES) | set(CLI_NOT_WRITES) == commands, "classified commands that are gone"


def test_every_writing_command_leaves_its_audit_row(runner, db_url, tmp_path, monkeypatch):
    from geomap.seed import nanchang

    settings = config.load({"database_url": db_url}, environ={})
    engine = db.get_engine(settings)
    with engine.begin() as conn:
        world = casesworld.build(conn)
        _add_stations(conn)
    del world
    # The seed's own figures are tested with the real dataset (tests/test_nanchang.py);
    # here only its audit row matters, so it replaces the dataset by an empty one.
    monkeypatch.setattr(nanchang, "generate", lambda *args, **kwargs: {})
    made: dict[str, str] = {}
    missing = []
    for name, command in CLI_WRITES.items():
        with engine.connect() as conn:
            before = _last_id(conn)
        result = runner.invoke(main, command.args(tmp_path, made))
        assert result.exit_code == 0, (name, result.output)
        if name == "keys create":
            made["key"] = result.stdout.split("_")[1]
        with engine.connect() as conn:
            rows = [r for r in _audit_rows(conn, before) if r.action == command.action]
        if not rows or rows[0].key_role != "cli" or "(command line)" not in rows[0].key_name:
            missing.append((name, command.action))
    assert missing == [], f"commands without their audit row: {missing}"


def test_revoking_a_key_closes_its_sessions_and_the_audit_says_which(runner, db_url):
    settings = config.load({"database_url": db_url}, environ={})
    engine = db.get_engine(settings)
    with engine.begin() as conn:
        world = casesworld.build(conn, with_network=False)
    from geomap import create_app

    browser = create_app({"database_url": db_url}).test_client()
    signed_in = browser.post("/api/session", json={"key": world.keys["viewer"]})
    assert signed_in.status_code == 200 and browser.get("/api/session").get_json()["signed_in"]
    prefix = world.keys["viewer"].split("_")[1]
    result = runner.invoke(main, ["keys", "revoke", prefix])
    assert result.exit_code == 0, result.output
    assert browser.get("/api/session").get_json()["signed_in"] is False
    with engine.connect() as conn:
        session_id = conn.execute(sa.text("SELECT id FROM sessions")).scalar_one()
        row = conn.execute(sa.text("SELECT changes FROM audit_log WHERE action = 'key.revoke'"
                                   )).scalar_one()  # fmt: skip
    assert row == {"prefix": prefix, "sessions_closed": [session_id]}
