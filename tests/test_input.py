"""Hostile input gets a 400/413 that names the field, never a 500, and nothing loose is stored.

Each case is one a user (or an attacker) sent to the running service: NUL bytes, lone
surrogates, deeply nested JSON, booleans where numbers belong, NaN and Infinity,
timestamps that exist in no time zone, titles of millions of characters, bodies of
hundreds of megabytes. The checks live in one place (``geomap.params``, applied by
``geomap.web.guard`` and ``geomap.web.spec.body``), so any future JSON body gets them too.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import socket
import time

import pytest
import sqlalchemy as sa

from geomap import auth, params
from geomap.errors import InvalidInput
from tests import handmade
from tests.browser import serve_app


@pytest.fixture
def commander(connection) -> dict[str, str]:
    handmade.load(connection)
    connection.execute(
        sa.text(
            "INSERT INTO teams (code, name, kind, headcount, geom, source) VALUES "
            "('T1', '医护', 'medical', 10, ST_SetSRID(ST_MakePoint(115.901, 28.661), 4326), "
            "'synthetic: test')"
        )
    )
    key, _ = auth.create_key(connection, "input test", "commander")
    return {"Authorization": f"Bearer {key}"}


def _team(connection) -> int:
    return connection.execute(sa.text("SELECT id FROM teams WHERE code = 'T1'")).scalar_one()


def _error(response) -> dict:
    assert response.status_code in (400, 404, 413), (response.status_code,
                                                      response.get_data(as_text=True)[:300])
    return response.get_json()["error"]


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/teams/nearest?lon=115.9&lat=28.66&capability=a%00b", "capability"),
        ("/ogc/collections/stations/items?kind=red%00station", "kind"),
        ("/ogc/collections/stations/items?name=%00", "name"),
        ("/ogc/collections/grids/items/G%001", "feature_id"),
        ("/api/layers/teams?bbox=1%00,2,3,4", "bbox"),
        ("/api/teams/nearest?lon=115.9&lat=28.66&capability=" + "x" * 3000, "capability"),
        ("/api/teams/nearest?lon=115.9&lat=28.66&ca%00p=1", "a parameter name"),
        ("/ogc/collections/teams/items?datetime=0001-01-01T00:00:00%2B14:00", "datetime"),
        ("/ogc/collections/teams/items?datetime=9999-12-31T23:59:59-14:00", "datetime"),
        ("/api/teams/nearest?lon=115.9&lat=28.66&k=100&by=drive&route=1", "k"),
        ("/api/coverage?within_m=5000", "within_m"),
        ("/api/circles?minutes=90", "minutes"),
        ("/map/circles?distance_m=9000", "distance_m"),
    ],
)
def test_hostile_query_parameters_are_400_naming_the_field(client, commander, path, field):
    error = _error(client.get(path, headers=commander))
    assert error["field"] == field, error


def test_an_id_beyond_postgresql_integers_is_not_found(client, commander):
    response = client.patch("/api/teams/99999999999999999999", json={"status": "deployed"},
                            headers=commander)  # fmt: skip
    assert response.status_code == 404
    assert client.post("/api/cases/4294967296/dispatch", json={"team_ids": [1]},
                       headers=commander).status_code == 404  # fmt: skip


def _raw(client, method: str, path: str, text: str, headers: dict) -> dict:
    response = client.open(path, method=method, data=text.encode("utf-8", "surrogatepass"),
                           headers={**headers, "Content-Type": "application/json"})  # fmt: skip
    return _error(response)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"kind": "incident", "title": "积水\\u0000", "lon": 115.9, "lat": 28.66}', "title"),
        ('{"kind": "incident", "title": "\\ud800", "lon": 115.9, "lat": 28.66}', "title"),
        ('{"title": "积水", "kind": "\\udfff", "lon": 115.9, "lat": 28.66}', "kind"),
        ('{"kind": "incident", "title": "积水", "lon": true, "lat": 28.66}', "lon"),
        ('{"kind": "incident", "title": "积水", "lon": NaN, "lat": 28.66}', "body"),
        ('{"kind": "incident", "title": "积水", "lon": Infinity, "lat": 28.66}', "body"),
        ('{"kind": "incident", "title": "积水", "lon": 1e999, "lat": 28.66}', "body"),
        (
            '{"kind": "incident", "title": "' + "长" * 201 + '", "lon": 115.9, "lat": 28.66}',
            "title",
        ),
        ('{"kind": "incident", "title": "   ", "lon": 115.9, "lat": 28.66}', "title"),
        ('{"kind": "incident", "title": 7, "lon": 115.9, "lat": 28.66}', "title"),
        ('{"kind": "incident", "title": "积水", "lon": 115.9}', "lat"),
        ('{"kind": "incident", "title": "积水", "lon": 115.9, "lat": 28.66, "extra": 1}', "extra"),
        ("[" * 100_000 + "]" * 100_000, "body"),
        ('{"a":' * 50 + "1" + "}" * 50, "body"),
        ('{"kind": "incident", "title": "积水", "lon": 115.9, "lat": ' + "9" * 5000 + "}", "body"),
        ("not json", "body"),
        ("[1, 2]", "body"),
    ],
)
def test_hostile_case_bodies(client, commander, connection, body, field):
    before = connection.execute(sa.text("SELECT count(*) FROM cases")).scalar()
    error = _raw(client, "POST", "/api/cases", body, commander)
    assert error["field"] == field, error
    assert connection.execute(sa.text("SELECT count(*) FROM cases")).scalar() == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"position_at": "0001-01-01T00:00:00+14:00", "lon": 115.9, "lat": 28.66},
         "position_at"),
        ({"position_at": "9999-12-31T23:59:59-14:00", "lon": 115.9, "lat": 28.66},
         "position_at"),
        ({"position_at": "1999-12-31T23:59:59Z", "lon": 115.9, "lat": 28.66}, "position_at"),
        ({"position_at": "2026-13-40", "lon": 115.9, "lat": 28.66}, "position_at"),
        ({"lon": False, "lat": 28.66}, "lon"),
        ({"status": True}, "status"),
        ({"status": "deployed\u0000"}, "status"),
    ],
)  # fmt: skip
def test_hostile_team_updates(client, commander, connection, body, field):
    error = _error(client.patch(f"/api/teams/{_team(connection)}", json=body,
                                headers=commander))  # fmt: skip
    assert error["field"] == field, error
    assert connection.execute(sa.text("SELECT count(*) FROM team_positions")).scalar() == 0


def test_a_position_time_with_its_zone_is_stored_in_utc(client, commander, connection):
    team = _team(connection)
    response = client.patch(f"/api/teams/{team}", headers=commander, json={
        "lon": 115.902, "lat": 28.662, "position_at": "2026-11-23T08:00:00+08:00"})  # fmt: skip
    assert response.status_code == 200, response.get_json()
    stored = connection.execute(
        sa.text("SELECT recorded_at FROM team_positions WHERE team_id = :t"), {"t": team}
    ).scalar_one()
    assert stored == dt.datetime(2026, 11, 23, 0, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"team_ids": [True]}, "team_ids[0]"),
        ({"team_ids": [1], "travel_min": {"1": 3}}, "travel_min"),  # no such field
        ({"team_ids": [2**40]}, "team_ids[0]"),
        ({"team_ids": list(range(1, 200))}, "team_ids"),
        ({"team_ids": []}, "team_ids"),
    ],
)
def test_hostile_dispatches(client, commander, connection, body, field):
    new = {"kind": "incident", "title": "内涝", "lon": 115.9, "lat": 28.66}
    case = client.post("/api/cases", json=new, headers=commander).get_json()["case"]
    error = _error(client.post(f"/api/cases/{case['id']}/dispatch", json=body,
                               headers=commander))  # fmt: skip
    assert error["field"] == field, error
    assert connection.execute(sa.text("SELECT count(*) FROM dispatches")).scalar() == 0


def test_a_huge_title_is_413_and_a_body_must_be_json(client, commander):
    title = "长" * 5_000_000
    response = client.post("/api/cases", json={"kind": "incident", "title": title,
                                               "lon": 115.9, "lat": 28.66},
                           headers=commander)  # fmt: skip
    assert response.status_code == 413
    assert response.get_json()["error"] == {
        "code": "payload_too_large",
        "message": "the request body is larger than 1000000 bytes",
        "field": "body",
    }
    form = client.post("/api/cases", data={"title": "积水"}, headers=commander)
    assert _error(form)["field"] == "body"


def test_an_answer_before_the_body_was_read_closes_the_connection(client, commander):
    big = client.post("/api/cases", data=b"{" + b" " * 1_100_000 + b"}", headers={
        **commander, "Content-Type": "application/json"})  # fmt: skip
    assert big.status_code == 413 and big.headers["Connection"] == "close"
    keyless = client.post("/api/plans", json={"sites": []})  # refused from its headers
    assert keyless.status_code == 401 and keyless.headers["Connection"] == "close"
    read = client.post("/api/cases", json={"kind": "nope"}, headers=commander)
    assert read.status_code == 400 and "Connection" not in read.headers  # read, then refused


def test_gunicorn_is_told_to_close_after_an_unread_body():
    from geomap.web.guard import CloseUnread

    class Response:  # gunicorn's, as far as this goes: it writes its own Connection header
        closed = False

        def force_close(self):
            self.closed = True

        def start_response(self, status, headers, exc_info=None):
            self.headers = headers

    def refuse(environ, start_response):
        start_response("413 Payload Too Large", [("Content-Type", "application/json")])
        return [b"{}"]

    server = Response()
    environ = {"CONTENT_LENGTH": "10", "wsgi.input": io.BytesIO(b"0123456789"),
               "SERVER_SOFTWARE": "gunicorn/23"}  # fmt: skip
    CloseUnread(refuse)(environ, server.start_response)
    assert server.closed and ("Connection", "close") in server.headers


def test_a_405_says_which_methods_the_path_takes(client):
    response = client.put("/healthz")
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "HEAD"}
    assert response.get_json()["error"]["code"] == "method_not_allowed"


def test_a_150_mb_body_is_refused_without_being_read(app, commander):
    """Over a real socket: the headers announce 150 MB, the answer comes before any body."""
    with serve_app(app) as base:
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(
                b"POST /api/cases HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                + f"Authorization: {commander['Authorization']}\r\n".encode()
                + b"Content-Type: application/json\r\nContent-Length: 150000000\r\n"
                b"Connection: close\r\n\r\n"
            )
            chunks = []
            while chunk := sock.recv(65536):  # the server closes once it has answered
                chunks.append(chunk)
            answer = b"".join(chunks).decode("latin-1")
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    assert '"field": "body"' in answer or '"field":"body"' in answer


def test_the_validators_directly():
    with pytest.raises(InvalidInput, match="NUL"):
        params.check_text("a\x00", "x")
    with pytest.raises(InvalidInput, match="surrogate"):
        params.check_text("\ud800", "x")
    with pytest.raises(InvalidInput, match="boolean"):
        params.check_finite(True, "lon")
    with pytest.raises(InvalidInput, match="boolean"):
        params.check_int(False, "k", 1, 10)
    with pytest.raises(InvalidInput, match="out of the range"):
        params.check_datetime("0001-01-01T00:00:00+14:00", "t")
    assert params.check_datetime("2026-01-01T08:00:00+08:00", "t") == dt.datetime(
        2026, 1, 1, tzinfo=dt.UTC
    )
    schema = {"type": "object", "properties": {"n": {"type": "number"}}}
    assert params.check_schema(json.loads('{"n": 1}'), schema) == {"n": 1}
    with pytest.raises(InvalidInput) as info:
        params.check_schema({"n": True}, schema)
    assert info.value.field == "n"


@pytest.mark.slow
def test_network_coverage_of_every_station_fits_in_one_request(nanchang_client):
    """Refused with a 400 while pgRouting computed it (over 60 s); on the in-memory street
    graph it is an ordinary request."""
    started = time.monotonic()
    answer = nanchang_client.get("/api/coverage?by=walk&within_min=15&level=district")
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["summary"]["units"] == 9
    assert time.monotonic() - started < 10
