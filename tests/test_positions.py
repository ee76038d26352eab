"""Position fixes: batches, out-of-order and refused fixes, monthly partitions, tracks."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from geomap import crs
from geomap.ops import escalation
from tests import casesworld

T0 = casesworld.START  # the world's clock; teams were last seen an hour before


def _fix(minutes: float, col: float, row: float, **extra) -> dict:
    lon, lat = casesworld.point(col, row)
    at = T0 + dt.timedelta(minutes=minutes)
    return {"lon": lon, "lat": lat, "recorded_at": at.isoformat(), **extra}


def _post(client, world, team: str, fixes, **body):
    return client.post(
        f"/api/teams/{world.teams[team]}/positions",
        json={"fixes": fixes, **body},
        headers=world.headers(),
    )


def _current(connection, team_id):
    return connection.execute(
        sa.text("SELECT ST_X(geom), ST_Y(geom), position_at FROM teams WHERE id = :id"),
        {"id": team_id},
    ).one()


def test_an_out_of_order_batch_leaves_the_newest_as_the_current_position(
    ops_client, world, connection
):
    team = world.teams["med1"]
    # Walking east along row 1, one fix a minute, sent newest first and shuffled.
    fixes = [_fix(-10 + m, 1 + 0.1 * m, 1) for m in range(6)]
    response = _post(
        ops_client, world, "med1", [fixes[3], fixes[5], fixes[0], fixes[4], fixes[1], fixes[2]]
    )
    body = response.get_json()
    assert response.status_code == 200 and body["accepted"] == 6 and body["moved"]
    lon, lat, at = _current(connection, team)
    assert (lon, lat) == pytest.approx(casesworld.point(1.5, 1))
    assert at == T0 - dt.timedelta(minutes=5)
    # A later batch of older fixes goes to the history only.
    old = _post(ops_client, world, "med1", [_fix(-20, 1, 1.1), _fix(-19, 1, 1.2)]).get_json()
    assert old["accepted"] == 2 and not old["moved"]
    assert _current(connection, team)[2] == T0 - dt.timedelta(minutes=5)
    history = connection.execute(
        sa.text("SELECT count(*) FROM team_positions WHERE team_id = :id"), {"id": team}
    ).scalar()
    assert history == 8
    # The same batch sent again (a retried upload) adds nothing.
    again = _post(ops_client, world, "med1", fixes).get_json()
    assert again["accepted"] == 0 and again["duplicates"] == 6


def test_future_and_too_fast_fixes_are_refused_with_a_reason(ops_client, world, connection):
    team = world.teams["med2"]
    good = _fix(-3, 7, 7.1)
    future = _fix(+30, 7, 7.2)
    # 0.9 km in 10 seconds is ~330 km/h.
    jump = {
        **_fix(-3, 7, 7.1),
        "recorded_at": (T0 - dt.timedelta(minutes=2, seconds=50)).isoformat(),
        "lon": casesworld.point(7, 7)[0] + 0.009,
    }
    response = _post(ops_client, world, "med2", [good, future, jump])
    body = response.get_json()
    assert response.status_code == 200 and body["accepted"] == 1
    refused = {r["index"]: r for r in body["refused"]}
    assert refused[1]["code"] == "future" and refused[1]["field"] == "fixes[1].recorded_at"
    assert refused[2]["code"] == "too_fast" and "km/h" in refused[2]["message"]
    assert _current(connection, team)[2] == T0 - dt.timedelta(minutes=3)
    # A batch of nothing but impossible fixes: 422 naming the first.
    year_9999 = {**good, "recorded_at": "9999-12-31T00:00:00Z"}
    bad = _post(ops_client, world, "med2", [year_9999])
    assert bad.status_code == 400 and bad.get_json()["error"]["field"] == "fixes[0].recorded_at"
    only_future = _post(ops_client, world, "med2", [future])
    assert only_future.status_code == 422
    assert only_future.get_json()["error"]["field"] == "fixes[0].recorded_at"


def test_accuracy_is_taken_off_jitter(ops_client, world):
    # 60 m apart within 1 s would be 216 km/h; with 40 m accuracy each, it is noise.
    a = _fix(-1, 2, 2, accuracy_m=40)
    b = {
        **_fix(-1, 2, 2, accuracy_m=40),
        "lat": casesworld.point(2, 2)[1] + 0.00054,
        "recorded_at": (T0 - dt.timedelta(seconds=59)).isoformat(),
    }
    body = _post(ops_client, world, "stw1", [a, b]).get_json()
    assert body["accepted"] == 2 and body["refused"] == []


def test_fixes_in_gcj02_are_stored_in_wgs84(ops_client, world, connection):
    lon, lat = casesworld.point(5, 5.5)
    g_lon, g_lat = crs.wgs84_to_gcj02(lon, lat)
    fix = {"lon": g_lon, "lat": g_lat, "recorded_at": (T0 - dt.timedelta(minutes=1)).isoformat()}
    assert _post(ops_client, world, "car1", [fix], crs="GCJ02").status_code == 200
    stored = _current(connection, world.teams["car1"])
    assert stored[0] == pytest.approx(lon, abs=1e-7) and stored[1] == pytest.approx(lat, abs=1e-7)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"fixes": []}, "fixes"),
        ({"fixes": "many"}, "fixes"),
        ({"fixes": [{"lon": 115.9, "lat": 28.66}]}, "fixes[0].recorded_at"),
        (
            {"fixes": [{"lon": "x", "lat": 28.66, "recorded_at": "2026-11-20T07:00:00Z"}]},
            "fixes[0].lon",
        ),
        (
            {"fixes": [{"lon": 115.9, "lat": 128, "recorded_at": "2026-11-20T07:00:00Z"}]},
            "fixes[0].lat",
        ),
        (
            {"fixes": [{"lon": 115.9, "lat": 28.6, "recorded_at": "2026-11-20T07:00:00"}]},
            "fixes[0].recorded_at",
        ),
        (
            {"fixes": [{"lon": 115.9, "lat": 28.6, "recorded_at": "1970-01-01T00:00:00Z"}]},
            "fixes[0].recorded_at",
        ),
        (
            {
                "fixes": [
                    {
                        "lon": 115.9,
                        "lat": 28.6,
                        "recorded_at": "2026-11-20T07:00:00Z",
                        "accuracy_m": -1,
                    }
                ]
            },
            "fixes[0].accuracy_m",
        ),
        (
            {
                "fixes": [
                    {"lon": 115.9, "lat": 28.6, "recorded_at": "2026-11-20T07:00:00Z", "speed": 3}
                ]
            },
            "fixes[0].speed",
        ),
        ({"fixes": [1]}, "fixes[0]"),
        (
            {
                "fixes": [{"lon": 115.9, "lat": 28.6, "recorded_at": "2026-11-20T07:00:00Z"}],
                "crs": "EPSG:3857",
            },
            "crs",  # the batch's crs is the wrong one
        ),
        (
            {"fixes": [{"lon": 115.9, "lat": 28.6, "recorded_at": "2026-11-20T07:00:00Z"}] * 1001},
            "fixes",
        ),
    ],
)
def test_malformed_batches_are_400_naming_the_field(ops_client, world, body, field):
    response = ops_client.post(
        f"/api/teams/{world.teams['med3']}/positions", json=body, headers=world.headers()
    )
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"]["field"] == field


def test_unknown_team_is_404(ops_client, world):
    fix = _fix(-1, 1, 1)
    for team in (999_999, 2**40):
        response = ops_client.post(
            f"/api/teams/{team}/positions", json={"fixes": [fix]}, headers=world.headers()
        )
        assert response.status_code == 404


def test_history_lives_in_monthly_partitions_and_the_track_reads_it(ops_client, world, connection):
    team = world.teams["yth1"]
    # The service's loop makes the months around its own clock; this world's clock is T0, so
    # its months are made here as the loop would at T0 (the migration made those around the
    # wall clock, which T0's month leaves behind as the calendar moves on).
    escalation.ensure_partitions(connection, T0)
    month_of_t0 = f"geomap_partitions.team_positions_{T0:%Y_%m}"
    hour = (T0 - dt.timedelta(minutes=60), T0)
    fixes = [_fix(-50 + 5 * i, 6, 2 + 0.2 * i) for i in range(10)]
    assert _post(ops_client, world, "yth1", fixes).status_code == 200
    # An old fix lands in the default partition; creating its month moves it out.
    connection.execute(
        sa.text(
            "INSERT INTO team_positions (team_id, recorded_at, geom, source) VALUES "
            "(:id, '2019-03-05T10:00:00Z', ST_SetSRID(ST_MakePoint(115.9, 28.66), 4326), "
            "'synthetic: test')"
        ),
        {"id": team},
    )
    where = sa.text(
        "SELECT tableoid::regclass::text FROM team_positions "
        "WHERE team_id = :id AND recorded_at < '2020-01-01'"
    )
    assert connection.execute(where, {"id": team}).scalar() == (
        "geomap_partitions.team_positions_default"
    )
    connection.execute(sa.text("SELECT team_positions_ensure('2019-03-01', '2019-03-31')"))
    assert connection.execute(where, {"id": team}).scalar() == (
        "geomap_partitions.team_positions_2019_03"
    )
    month = (
        connection.execute(
            sa.text(
                "SELECT DISTINCT tableoid::regclass::text FROM team_positions "
                "WHERE team_id = :id AND recorded_at >= :first"
            ),
            {"id": team, "first": T0.replace(day=1, hour=0, minute=0)},
        )
        .scalars()
        .all()
    )
    assert month == [month_of_t0]
    # A query for one team and one hour reads one partition (pruning) through the index.
    plan = "\n".join(
        connection.execute(
            sa.text(
                "EXPLAIN SELECT * FROM team_positions WHERE team_id = :id "
                "AND recorded_at >= :first AND recorded_at < :last"
            ),
            {"id": team, "first": hour[0], "last": hour[1]},
        ).scalars()
    )
    assert month_of_t0.split(".")[1] in plan and "team_positions_2019_03" not in plan
    track = ops_client.get(
        f"/api/teams/{team}/track",
        query_string={"from": hour[0].isoformat(), "to": hour[1].isoformat()},
        headers=world.headers(),
    ).get_json()
    assert track["geometry"]["type"] == "LineString"
    assert track["properties"]["fixes"] == 10
    assert track["properties"]["times"] == sorted(track["properties"]["times"])
    assert track["geometry"]["coordinates"][0] == pytest.approx(
        list(casesworld.point(6, 2)), abs=1e-7
    )
    for query, field in (
        ("from=2026-11-21T00:00:00Z&to=2026-11-20T00:00:00Z", "to"),
        ("from=2026-01-01&to=2026-11-20", "from"),
        ("from=noon", "from"),
    ):
        bad = ops_client.get(f"/api/teams/{team}/track?{query}", headers=world.headers())
        assert bad.status_code == 400 and bad.get_json()["error"]["field"] == field
    # Movements are personal: planners do not get them.
    planner = ops_client.get(f"/api/teams/{team}/track", headers=world.headers("planner"))
    assert planner.status_code == 403


def test_a_commanders_position_patch_is_kept_in_history(ops_client, world, connection):
    team = world.teams["vet1"]
    lon, lat = casesworld.point(3, 7.5)
    response = ops_client.patch(
        f"/api/teams/{team}", json={"lon": lon, "lat": lat}, headers=world.headers()
    )
    assert response.status_code == 200 and response.get_json()["lon"] == pytest.approx(lon)
    older = ops_client.patch(
        f"/api/teams/{team}",
        json={"lon": lon, "lat": lat + 0.001, "position_at": "2026-11-20T06:00:00Z"},
        headers=world.headers(),
    )
    assert older.get_json()["lat"] == pytest.approx(lat)  # an older fix moves no team
    count = connection.execute(
        sa.text("SELECT count(*) FROM team_positions WHERE team_id = :id"), {"id": team}
    ).scalar()
    assert count == 2
