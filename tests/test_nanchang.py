"""The default dataset as `make run` loads it: counts, the river barrier, real queries.

The acceptance checks of the real data: drive times against the real road file itself,
the Gan River crossed on real bridges only, circles inside the disc of their reach, the
census totals by district.
"""

from __future__ import annotations

import itertools
import re

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import shapely
import sqlalchemy as sa
from pyproj import Geod
from shapely import wkt
from shapely.geometry import shape

from geomap import config, network, provenance
from geomap.layers import load_catalog
from geomap.seed import nanchang

pytestmark = pytest.mark.slow

REAL_DIR = config.PROJECT_DIR / "data" / "nanchang" / "real"
CITY_POPULATION = 6_255_007  # the 2020 census


def test_healthz_counts_meet_the_dataset_targets(nanchang_client):
    body = nanchang_client.get("/healthz").get_json()
    assert body["status"] == "ok"
    counts = body["counts"]
    assert counts["districts"] == 9
    assert counts["townships"] == 116
    assert counts["communities"] == 2263
    assert counts["grids"] == 4418
    assert counts["stations"] >= 2000
    assert counts["red_stations"] == 274
    assert counts["sites"] >= 90
    assert counts["team_members"] >= 12000
    assert counts["road_edges"] >= 50000
    assert counts["population"] == CITY_POPULATION


def test_each_district_holds_its_census_population(nanchang_connection):
    census = pd.read_csv(REAL_DIR / "census2020_districts.csv", dtype={"code": str})
    expected = dict(zip(census["code"], census["population"], strict=True))
    rows = nanchang_connection.execute(
        sa.text(
            """
            SELECT t.parent_code AS district, sum(g.population) AS population
            FROM grids g
            JOIN regions c ON c.code = g.community_code
            JOIN regions t ON t.code = c.parent_code
            GROUP BY t.parent_code
            """
        )
    ).all()
    assert {d: int(p) for d, p in rows} == {c: p for c, p in expected.items() if c != "360100"}
    assert sum(int(p) for _, p in rows) == expected["360100"] == CITY_POPULATION


def test_no_stored_edge_crosses_the_gan_river_except_real_bridges(nanchang_connection):
    river = nanchang.gan_river(config.PROJECT_DIR / "data" / "nanchang")
    crossing = nanchang_connection.execute(
        sa.text(
            "SELECT is_bridge, source LIKE 'real:%' AS real, count(*) FROM road_edges "
            "WHERE ST_Intersects(geom, ST_GeomFromText(:river, 4326)) GROUP BY 1, 2"
        ),
        {"river": river.wkt},
    ).all()
    # Only bridges, only real ones: the 13 segments of the real file that cross the river.
    roads = gpd.read_file(REAL_DIR / "roads_citybrain.geojson")
    assert {(bridge, real): n for bridge, real, n in crossing} == {
        (True, True): int(roads.geometry.intersects(river).sum())
    }


def test_every_source_is_labelled(nanchang_connection):
    for table in ("regions", "grids", "stations", "sites", "teams", "road_edges"):
        unlabelled = nanchang_connection.execute(
            sa.text(f"SELECT count(*) FROM {table} WHERE source !~ '^(real|synthetic):'")
        ).scalar()
        assert unlabelled == 0, table


def test_nearest_by_drive_on_the_city_network(nanchang_client):
    # 八一广场, the city centre.
    body = nanchang_client.get(
        "/api/teams/nearest?lon=115.8997&lat=28.6760&by=drive&k=5&kind=medical&route=1"
    ).get_json()
    teams = body["teams"]
    assert len(teams) == 5
    assert all(t["kind"] == "medical" and t["status"] == "available" for t in teams)
    minutes = [t["travel_min"] for t in teams]
    assert minutes == sorted(minutes) and 0 < minutes[0] < 30
    assert all(t["route"]["type"] in {"LineString", "MultiLineString"} for t in teams)


def test_point_outside_the_city_is_refused_clearly(nanchang_client):
    response = nanchang_client.get("/api/teams/nearest?lon=114.0&lat=30.5")  # Wuhan
    assert response.status_code == 422
    assert "outside the city" in response.get_json()["error"]["message"]


def test_coverage_of_grids_by_centres(nanchang_client):
    body = nanchang_client.get(
        "/api/coverage?of=stations&kind=centre_district,centre_township,centre_community"
        "&within_m=1000&level=district"
    ).get_json()
    assert body["summary"]["units"] >= 5
    assert body["summary"]["population"] == CITY_POPULATION
    assert 0 < body["summary"]["covered_share"] <= 1


def test_circles_of_every_red_venue_are_valid_inside_their_reach_and_respect_the_river(
    nanchang_client, nanchang_connection
):
    """Acceptance: every 15-minute walking circle is a valid polygon no farther from its
    venue than 15 minutes at walking speed plus the access width (as the crow flies), and
    touches the Gan River only on a bridge."""
    features = nanchang_client.get("/api/circles?minutes=15").get_json()["features"]
    assert len(features) == 274 + 100  # every red station and red culture site
    with_circle = [f for f in features if f["geometry"] is not None]
    assert len(with_circle) == len(features)  # rural villages too (1 km lattice there)
    settings = nanchang_client.application.config["GEOMAP"]
    reach_m = 15 * 60 * settings.walk_speed_kmh / 3.6 + settings.circle_access_m
    geod = Geod(ellps="WGS84")
    farthest = []
    for feature in with_circle:
        polygon = shape(feature["geometry"])
        assert polygon.is_valid and not polygon.is_empty
        lon, lat = feature["properties"]["lon"], feature["properties"]["lat"]
        ring = shapely.get_coordinates(polygon.boundary)
        _, _, d = geod.inv(np.full(len(ring), lon), np.full(len(ring), lat), ring[:, 0], ring[:, 1])
        farthest.append(d.max())
    # 1 m for the 1e-6 degree grid the circles are stored on and the buffer's chords.
    assert max(farthest) <= reach_m + 1.0
    assert np.median(farthest) > 0.5 * reach_m  # and they do reach out along streets
    # Streets keep 200 m off the river and circles reach 50 m beyond them: a circle that
    # touches the river does so on a bridge, and nowhere else.
    river = nanchang.gan_river(config.PROJECT_DIR / "data" / "nanchang")
    bridges = wkt.loads(
        nanchang_connection.execute(
            sa.text("SELECT ST_AsText(ST_Collect(geom)) FROM road_edges WHERE is_bridge")
        ).scalar()
    )
    touching = [shape(f["geometry"]) for f in with_circle if shape(f["geometry"]).intersects(river)]
    for polygon in touching:
        assert polygon.intersects(bridges)
        off_bridge = polygon.intersection(river).difference(bridges.buffer(0.0006))
        assert off_bridge.length < 1e-9
    coverage = nanchang_client.get("/api/circles/coverage?minutes=15&level=district").get_json()
    assert 0 < coverage["summary"]["covered_share"] < 1
    assert coverage["summary"]["population"] == CITY_POPULATION


def _real_osm_id(source_id: str) -> int:
    return int(str(source_id)[1:])


def test_drive_times_between_real_intersections_match_the_real_road_file(nanchang_connection):
    """Acceptance: drive time and distance between real intersections on both sides of the
    Gan River, answered by pgRouting on the stored network, agree with a shortest path
    computed straight from the real road file (networkx, source lengths and limits)."""
    roads = gpd.read_file(REAL_DIR / "roads_citybrain.geojson")
    reference = nx.Graph()
    for frm, to, length, speed in zip(
        roads["frm"], roads["to"], roads["length_m"], roads["speed_mps"], strict=True
    ):
        reference.add_edge(frm, to, seconds=length / speed, length=length)
    # The banks: the two parts of the real network once its river crossings are removed.
    river = nanchang.gan_river(config.PROJECT_DIR / "data" / "nanchang")
    banks = reference.copy()
    crossing = roads[roads.geometry.intersects(river)]
    banks.remove_edges_from(zip(crossing["frm"], crossing["to"], strict=True))
    sides = sorted((sorted(c) for c in nx.connected_components(banks)), key=len)
    west_nodes, east_nodes = sides[-2:]
    assert len(west_nodes) > 300 and len(east_nodes) > 300
    rng = np.random.default_rng(2026)
    pairs = list(zip(rng.choice(west_nodes, 30, replace=False),
                     rng.choice(east_nodes, 30, replace=False), strict=True))  # fmt: skip

    ours = dict(
        nanchang_connection.execute(
            sa.text("SELECT osm_id, id FROM road_nodes WHERE osm_id IS NOT NULL")
        ).all()
    )
    edges = network.edges_sql("drive")
    for a, b in pairs:
        for start, end in ((a, b), (b, a)):
            seconds, path = nx.single_source_dijkstra(reference, start, end, weight="seconds")
            metres = sum(reference.edges[leg]["length"] for leg in itertools.pairwise(path))
            got = network.costs_from(
                nanchang_connection, edges, ours[_real_osm_id(start)], [ours[_real_osm_id(end)]]
            )[ours[_real_osm_id(end)]]
            distance = nanchang_connection.execute(
                sa.text(
                    "SELECT sum(e.length_m) FROM pgr_dijkstra(CAST(:edges AS text), "
                    "CAST(:a AS bigint), CAST(:b AS bigint), directed => true) p "
                    "JOIN road_edges e ON e.id = p.edge"
                ),
                {"edges": edges, "a": ours[_real_osm_id(start)], "b": ours[_real_osm_id(end)]},
            ).scalar()
            assert got == pytest.approx(seconds, rel=0.02), (start, end)
            assert distance == pytest.approx(metres, rel=0.02), (start, end)


def test_provenance_map_attribution_and_ogc_agree_with_the_source_columns(
    nanchang_client, nanchang_connection
):
    """Acceptance: PROVENANCE.md, the map's attribution and the /ogc collections say what
    the ``source`` column says, row by row (counts per label) and credit by credit."""
    text = (config.PROJECT_DIR / "data" / "nanchang" / "PROVENANCE.md").read_text("utf-8")

    def by_source(table: str, where: dict | None = None) -> dict[str, int]:
        # A catalog `where` value may be a list (layers/cases.toml: the open statuses).
        clause = " AND ".join(
            f"{column} = ANY(:{column})" if isinstance(value, list | tuple) else
            f"{column} = :{column}" for column, value in (where or {}).items()
        ) or "true"  # fmt: skip
        where = {k: list(v) if isinstance(v, tuple) else v for k, v in (where or {}).items()}
        rows = nanchang_connection.execute(
            sa.text(f"SELECT source, count(*) FROM {table} WHERE {clause} GROUP BY source"),
            where or {},
        ).all()
        return {source: int(n) for source, n in rows}

    # PROVENANCE.md: each table's section lists every label with its row count, and the
    # credits those labels call for (and no other).
    for table in ("regions", "grids", "stations", "sites", "teams", "road_nodes", "road_edges"):
        section = text.split(f"### `{table}`", 1)[1].split("\n#", 1)[0]
        counts = by_source(table)
        for source, n in counts.items():
            listed = [
                int(match.group(1).replace(",", ""))
                for match in re.finditer(r"^\| ([0-9,]+) \|.*\| `(.*)` \|$", section, re.M)
                if match.group(2) == source
            ]
            assert sum(listed) == n, (table, source)
        credited = provenance.credits(counts)
        for credit in provenance.CREDITS:
            assert (credit.attribution in section) == (credit in credited), (table, credit.key)

    # The map (the data the page draws, whose attribution lines the page shows while the
    # layer is drawn) and the OGC collection of every catalog layer.
    for layer in load_catalog().values():
        own = by_source(layer.table, dict(layer.where))
        derived: dict[str, int] = {}
        for table in layer.derived_from:
            derived.update(by_source(table))
        credited = provenance.credits([*own, *derived])
        lines = [c.attribution for c in credited]
        document = nanchang_client.get(f"/map/data/{layer.id}").get_json()
        assert document["attribution"] == lines, layer.id
        collection = nanchang_client.get(f"/ogc/collections/{layer.id}?f=json").get_json()
        meta = collection["geomap:provenance"]
        assert meta["sources"] == own, layer.id
        assert meta["real"] == sum(n for s, n in own.items() if s.startswith("real:"))
        assert meta["synthetic"] == sum(n for s, n in own.items() if s.startswith("synthetic:"))
        assert meta["derivedFrom"] == {"tables": list(layer.derived_from), "sources": derived}
        if lines:
            assert collection["attribution"] == "; ".join(lines), layer.id
            licences = [link["href"] for link in collection["links"] if link["rel"] == "license"]
            assert licences == [c.url for c in credited if c.url], layer.id
            assert collection["license"] == "; ".join(dict.fromkeys(c.license for c in credited))
        else:
            assert "attribution" not in collection, layer.id
    # Roads are OpenStreetMap-derived: the layers drawn from them credit it.
    for layer_id in ("streets", "circles"):
        lines = nanchang_client.get(f"/map/data/{layer_id}").get_json()["attribution"]
        assert "© OpenStreetMap contributors" in lines
    grids = nanchang_client.get("/ogc/collections/grids?f=json").get_json()
    assert "第七次全国人口普查" in grids["attribution"]
