"""The command loop on the default dataset: recommendations against pgRouting, coverage
loss against a brute-force recount, move-up, and the demo history's figures against SQL.

The Nanchang database is loaded once per session (with its demo history); each test
works in a rolled-back transaction.
"""

from __future__ import annotations

import datetime as dt
import statistics

import numpy as np
import pytest
import sqlalchemy as sa
from pyproj import Geod

from geomap import config, network, routing
from geomap.ops import audit, cases, cover, recommend, rules, stats
from geomap.routing import search
from geomap.seed import _teams

pytestmark = pytest.mark.slow

RULES = rules.rules(config.load(environ={}).dispatch_rules)
ACTOR = audit.Actor("test", "commander")
NOW = dt.datetime(2026, 11, 23, 1, 0, tzinfo=dt.UTC)  # the demo's snapshot (08:00 +08:00)
#: Points in the urban core (the old town, Honggutan across the river, Qingshanhu).
POINTS = [(115.905, 28.683), (115.855, 28.690), (115.955, 28.665)]


def _case(conn, lon, lat, kind="incident") -> int:
    new = cases.parse_new({"kind": kind, "title": "测试", "lon": lon, "lat": lat}, NOW)
    return cases.create(conn, new, actor=ACTOR, now=NOW, rules=RULES)


def _fitting(conn, kind: str) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Ids and positions of the available teams that fit a case kind, straight from SQL."""
    rule = RULES.fit(kind)
    rows = conn.execute(
        sa.text(
            "SELECT id, ST_X(geom), ST_Y(geom), capabilities FROM teams "
            "WHERE status = 'available' AND kind = ANY(:kinds) ORDER BY id"
        ),
        {"kinds": list(rule.team_kinds)},
    ).all()
    if rule.capabilities:
        rows = [r for r in rows if set(r[3]) & set(rule.capabilities)]
    return [r[0] for r in rows], np.array([r[1] for r in rows]), np.array([r[2] for r in rows])


def test_recommended_teams_and_etas_agree_with_pgrouting(nanchang_connection):
    conn = nanchang_connection
    graph = routing.current_graph(conn)
    access_ms = search.access_speed_ms("drive")
    # No path is faster than the fastest edge: a team farther in a straight line than the
    # fifth ETA allows at that speed cannot be in the top five. Only the others are priced.
    fastest_ms = conn.execute(
        sa.text("SELECT max(length_m / drive_s) FROM road_edges WHERE drive_s > 0")
    ).scalar()
    geod = Geod(ellps="WGS84")
    for kind, (lon, lat) in zip(("incident", "hazard", "request"), POINTS, strict=True):
        case_id = _case(conn, lon, lat, kind)
        answer = recommend.recommend(conn, case_id, k=5, rules=RULES, reach_min=15)
        ids, tlon, tlat = _fitting(conn, kind)
        assert answer["available_fitting_teams"] == len(ids)
        _, _, straight = geod.inv(np.full(len(ids), lon), np.full(len(ids), lat), tlon, tlat)
        bound = answer["teams"][-1]["eta_min"] * 60 + 1
        near = np.flatnonzero(straight / fastest_ms <= bound)
        assert 5 <= near.size < len(ids)
        teams = routing.snap.snap_lonlat(graph, "drive", tlon[near], tlat[near])
        point = routing.snap.snap_lonlat(graph, "drive", lon, lat)
        pairs = [(int(graph.edge_id[point.edge[0]]), float(point.fraction[0]))] + [
            (int(graph.edge_id[e]), float(f))
            for e, f in zip(teams.edge, teams.fraction, strict=True)
        ]
        to_point = network.costs_between_points(conn, "drive", pairs, 0, reverse=True)
        expected = sorted(
            (
                round(to_point[i + 1] + (teams.distance_m[i] + point.distance_m[0]) / access_ms, 6),
                ids[near[i]],
            )
            for i in range(near.size)
            if (i + 1) in to_point
        )[:5]
        assert [t["id"] for t in answer["teams"]] == [tid for _, tid in expected], kind
        for team, (seconds, _) in zip(answer["teams"], expected, strict=True):
            assert team["eta_min"] == pytest.approx(seconds / 60, abs=0.006)


def _brute_force_loss(found: cover.Cover, c: int) -> np.ndarray:
    """Grids covered with every start and not without start ``c``: two whole searches."""
    graph, grids, budget = found.graph, found.grids, found.budget_s
    keep = np.ones(len(found.starts), dtype=bool)
    keep[c] = False

    def covered(which: np.ndarray) -> np.ndarray:
        full = search.search(
            graph,
            "drive",
            found.starts.take(which),
            offsets_s=found.offsets_s[which],
            budget_s=budget,
        )
        cost, _ = full.cost_at(grids.points)
        return cost + grids.access_s <= budget

    with_all = covered(np.ones(len(found.starts), dtype=bool))
    assert np.array_equal(with_all, found.covered)
    return np.flatnonzero(with_all & ~covered(keep))


@pytest.mark.parametrize("reach_min", [15.0, 4.0])
def test_coverage_loss_matches_a_brute_force_recount(nanchang_connection, reach_min):
    conn = nanchang_connection
    teams, known = routing.team_mirror(conn)
    graph = routing.current_graph(conn, known)
    rows, found = recommend._fitting_cover(
        conn, teams, graph, known, RULES.fit("incident"), reach_min * 60
    )
    # The teams recommended for the three cases, and the teams that lose the most.
    case_ids = [_case(conn, lon, lat) for lon, lat in POINTS]
    chosen = set()
    for case_id in case_ids:
        answer = recommend.recommend(conn, case_id, k=5, rules=RULES, reach_min=reach_min)
        for team in answer["teams"]:
            chosen.add(int(np.searchsorted(rows, np.searchsorted(teams["id"], team["id"]))))
            c = int(np.searchsorted(rows, np.searchsorted(teams["id"], team["id"])))
            lost = cover.loss(found, c)
            assert team["coverage_loss"]["grid_count"] == lost.size
            assert team["coverage_loss"]["residents"] == int(found.grids.population[lost].sum())
    sizes = {c: cover.loss(found, c).size for c in range(len(rows))}
    chosen |= set(sorted(sizes, key=sizes.get)[-4:])
    for c in sorted(chosen):
        assert np.array_equal(cover.loss(found, c), _brute_force_loss(found, c)), c
    if reach_min == 4.0:
        assert max(sizes.values()) > 0  # the small threshold does lose grids somewhere


def test_a_lost_grid_is_beyond_reach_of_every_other_team_by_pgrouting(nanchang_connection):
    """The independent check of one lost grid: pgRouting from the grid's point to every
    other fitting team is above the threshold."""
    conn = nanchang_connection
    reach_s = 4 * 60.0
    teams, known = routing.team_mirror(conn)
    graph = routing.current_graph(conn, known)
    rows, found = recommend._fitting_cover(
        conn, teams, graph, known, RULES.fit("incident"), reach_s
    )
    c = max(range(len(rows)), key=lambda i: cover.loss(found, i).size)
    lost = cover.loss(found, c)
    assert lost.size
    g = int(lost[0])
    others = np.delete(np.arange(len(rows)), c)
    starts = found.starts.take(others)
    grid = found.grids.points.take(np.array([g]))
    pairs = [(int(graph.edge_id[grid.edge[0]]), float(grid.fraction[0]))] + [
        (int(graph.edge_id[e]), float(f)) for e, f in zip(starts.edge, starts.fraction, strict=True)
    ]
    to_grid = network.costs_between_points(conn, "drive", pairs, 0, reverse=False)
    best = min(to_grid.get(i + 1, np.inf) + found.offsets_s[others][i] for i in range(len(others)))
    assert best + found.grids.access_s[g] > reach_s
    # ... and the team that leaves does reach it in time.
    pairs = [pairs[0], (int(graph.edge_id[found.starts.edge[c]]), float(found.starts.fraction[c]))]
    mine = network.costs_between_points(conn, "drive", pairs, 0, reverse=False)[1]
    assert mine + found.offsets_s[c] + found.grids.access_s[g] <= reach_s + 1e-6


def test_move_up_suggestions_restore_what_they_claim(nanchang_connection):
    conn = nanchang_connection
    reach_min = 4.0
    teams, known = routing.team_mirror(conn)
    graph = routing.current_graph(conn, known)
    rule = RULES.fit("incident")
    rows, found = recommend._fitting_cover(conn, teams, graph, known, rule, reach_min * 60)
    c = max(range(len(rows)), key=lambda i: found.grids.population[cover.loss(found, i)].sum())
    team_id = int(teams["id"][rows[c]])
    lon, lat = float(teams["lon"][rows[c]]), float(teams["lat"][rows[c]])
    case_id = _case(conn, lon + 0.002, lat + 0.002)
    from geomap.ops import dispatch

    dispatch.dispatch(conn, case_id, {"team_ids": [team_id]}, actor=ACTOR, now=NOW, max_teams=5)
    answer = recommend.move_up(conn, case_id, n=3, rules=RULES, reach_min=reach_min)
    lost = {g["code"] for g in answer["lost"]["grids"]}
    assert lost == {str(found.grids.codes[g]) for g in cover.loss(found, c)}
    assert answer["suggestions"], answer
    first = answer["suggestions"][0]
    assert first["restores"]["residents"] > 0 and first["net_residents"] > 0
    assert {g["code"] for g in first["restores"]["grids"]} <= lost
    # Move that team there for real: the grids it claims come back.
    mover = first["team"]["id"]
    conn.execute(
        sa.text(
            "UPDATE teams SET geom = ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) WHERE id = :id"
        ),
        {**first["to"], "id": mover},
    )
    teams, known = routing.team_mirror(conn)
    rows, after = recommend._fitting_cover(conn, teams, graph, known, rule, reach_min * 60)
    covered = {str(code) for code in after.grids.codes[after.covered]}
    assert {g["code"] for g in first["restores"]["grids"]} <= covered
    # Accepting it is setting the team's standby position.
    assert first["accept"]["body"] == {
        "standby_lon": first["to"]["lon"],
        "standby_lat": first["to"]["lat"],
    }


def test_demo_history_is_labelled_mostly_closed_and_consistent(nanchang_connection):
    conn = nanchang_connection
    counts = dict(conn.execute(sa.text("SELECT status, count(*) FROM cases GROUP BY status")).all())
    total = sum(counts.values())
    assert 3_500 <= total <= 4_500
    assert counts["closed"] / total > 0.85
    assert {"reported", "accepted", "on_scene", "resolved", "cancelled"} <= set(counts)
    assert (
        conn.execute(
            sa.text("SELECT count(*) FROM cases WHERE source NOT LIKE 'synthetic:%'")
        ).scalar()
        == 0
    )
    # Active dispatches hold deployed teams, each on one dispatch only.
    active = conn.execute(
        sa.text(
            "SELECT d.team_id, t.status FROM dispatches d JOIN teams t ON t.id = d.team_id "
            "WHERE d.status <> 'released'"
        )
    ).all()
    assert active and {s for _, s in active} == {"deployed"}
    assert len({t for t, _ in active}) == len(active)
    # Every recorded climb is at its deadline: report + the minutes of the levels below.
    climbs = conn.execute(
        sa.text(
            "SELECT c.reported_at, c.accept_minutes, e.level, e.at, c.accepted_at "
            "FROM case_escalations e JOIN cases c ON c.id = e.case_id"
        )
    ).all()
    assert climbs
    depth = {"community": 1, "township": 2, "district": 3}
    for reported, minutes, level, at, accepted in climbs:
        assert at == reported + dt.timedelta(minutes=sum(minutes[: depth[level]]))
        assert accepted is None or accepted >= at


def test_stats_equal_a_direct_sql_count_on_the_demo_history(nanchang_connection):
    conn = nanchang_connection
    until = _teams.SNAPSHOT.to_pydatetime()
    since = until - dt.timedelta(days=30)
    for level, column in (
        ("district", "district_code"),
        ("township", "township_code"),
        ("grid", "grid_code"),
    ):
        for kind in (None, "hazard"):
            answer = stats.stats(conn, level=level, kind=kind, since=since, until=until, now=NOW)
            direct = conn.execute(
                sa.text(f"""
                SELECT {column} AS code, count(*) AS found,
                       count(*) FILTER (WHERE status = 'closed') AS closed,
                       count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
                       count(*) FILTER (WHERE status NOT IN ('closed', 'cancelled')) AS open,
                       count(*) FILTER (WHERE status IN ('reported', 'accepted',
                                        'dispatched', 'on_scene')
                                        AND ((accepted_at IS NULL AND id IN
                                              (SELECT case_id FROM case_escalations))
                                             OR resolve_by <= :now)) AS overdue,
                       array_agg(extract(epoch FROM accepted_at - reported_at) / 60)
                           FILTER (WHERE accepted_at IS NOT NULL) AS accept,
                       array_agg(extract(epoch FROM closed_at - reported_at) / 60)
                           FILTER (WHERE closed_at IS NOT NULL) AS close
                FROM cases
                WHERE reported_at >= :since AND reported_at < :until
                  AND (CAST(:kind AS text) IS NULL OR kind = :kind)
                GROUP BY {column} ORDER BY {column}
            """),
                {"since": since, "until": until, "kind": kind, "now": NOW},
            ).all()
            units = {u["code"]: u for u in answer["units"]}
            assert set(units) == {r.code for r in direct}
            for row in direct:
                unit = units[row.code]
                for key in ("found", "closed", "cancelled", "open", "overdue"):
                    assert unit[key] == getattr(row, key), (level, kind, row.code, key)
                if row.found == row.cancelled:
                    assert unit["closure_rate"] is None
                else:
                    expected_rate = row.closed / (row.found - row.cancelled)
                    assert unit["closure_rate"] == pytest.approx(expected_rate, abs=1e-4)
                for key, values in (
                    ("median_accept_min", row.accept),
                    ("median_close_min", row.close),
                ):
                    expected = statistics.median(float(v) for v in values) if values else None
                    assert unit[key] == (
                        None if expected is None else pytest.approx(expected, abs=0.006)
                    )
            assert answer["summary"]["found"] == sum(r.found for r in direct)
            assert answer["summary"]["closed"] == sum(r.closed for r in direct)
    assert answer["summary"]["found"] > 2000


def test_stats_over_http_as_json_and_csv(nanchang_client):
    query = "level=district&from=2026-10-24&to=2026-11-23T08:00:00%2B08:00"
    answer = nanchang_client.get(f"/api/cases/stats?{query}").get_json()
    assert len(answer["units"]) == 9 and answer["summary"]["found"] > 3_000
    assert 0.85 < answer["summary"]["closure_rate"] <= 1
    text = nanchang_client.get(f"/api/cases/stats?{query}&format=csv")
    assert text.mimetype == "text/csv"
    lines = text.get_data(as_text=True).strip().splitlines()
    assert lines[0].startswith("level,code,name,found,closed") and len(lines) == 1 + 9 + 1
    assert lines[-1].split(",")[1] == "total"
