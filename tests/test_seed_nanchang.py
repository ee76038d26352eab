"""The synthetic Nanchang dataset generator: pure Python, no database.

The dataset is generated once per module (a few seconds) and every test reads it; the two
determinism tests generate it again (same seed, then another seed).
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import shapely

from geomap import models, vocab
from geomap.seed import nanchang

pytestmark = pytest.mark.slow  # generates the whole dataset (three times, ~5 s each)

DATA_DIR = Path(__file__).resolve().parents[1] / "data" / "nanchang"
CORE = shapely.Point(115.89, 28.68)


@pytest.fixture(scope="module")
def progress_calls() -> list[tuple[str, int]]:
    return []


@pytest.fixture(scope="module")
def frames(progress_calls) -> dict[str, gpd.GeoDataFrame]:
    return nanchang.generate(DATA_DIR, progress=lambda step, n: progress_calls.append((step, n)))


@pytest.fixture(scope="module")
def river():
    return nanchang.gan_river(DATA_DIR)


def _regions(frames, level: str) -> gpd.GeoDataFrame:
    regions = frames["regions"]
    return regions[regions["level"] == level]


def _comparable(frame: gpd.GeoDataFrame) -> pd.DataFrame:
    """A frame with geometries as WKB and lists as tuples, for exact comparison."""
    plain = pd.DataFrame(frame.to_wkb()) if isinstance(frame, gpd.GeoDataFrame) else frame
    for column in ("capabilities", "accept_minutes"):
        if column in plain:
            plain[column] = plain[column].map(tuple)
    return plain


# --- shape of the frames -----------------------------------------------------------------


def test_frames_have_the_tables_columns_crs_and_geometry(frames):
    assert list(frames) == list(nanchang.STEPS)
    for table, frame in frames.items():
        columns = models.metadata.tables[table].columns
        assert list(frame.columns) == [c.name for c in columns if not c.info.get("server_set")]
        if table == "case_escalations":  # the demo history's climbs have no geometry
            continue
        geometry = "origin" if table == "dispatches" else "geom"
        assert frame.crs.to_epsg() == 4326
        assert frame.geometry.name == geometry
        assert frame[geometry].notna().all() and not frame[geometry].is_empty.any()
        if "id" in frame:
            assert frame["id"].tolist() == list(range(1, len(frame) + 1))
    base = frames["teams"]["base_geom"]
    assert isinstance(base, gpd.GeoSeries) and base.crs.to_epsg() == 4326


def test_progress_is_reported_after_every_step(frames, progress_calls):
    assert progress_calls == [(step, len(frames[step])) for step in nanchang.STEPS]


def test_every_source_is_labelled(frames):
    for table, frame in frames.items():
        if "source" not in frame:  # case_escalations: rows of the labelled cases
            continue
        assert frame["source"].str.match(r"^(real|synthetic):").all(), table
    regions = frames["regions"]
    real_levels = regions.loc[regions["source"].str.startswith("real:"), "level"]
    assert set(real_levels) == {"city", "district"}
    assert (frames["sites"]["source"].str.startswith("real:")).sum() == 6


def test_vocabularies_are_respected(frames):
    assert set(frames["regions"]["level"]) <= set(vocab.REGION_LEVELS)
    assert set(frames["stations"]["kind"]) <= set(vocab.STATION_KINDS)
    assert set(frames["sites"]["kind"]) <= set(vocab.SITE_KINDS)
    assert set(frames["sites"]["coord_quality"].dropna()) <= set(vocab.COORD_QUALITIES)
    assert set(frames["teams"]["kind"]) <= set(vocab.TEAM_KINDS)
    assert set(frames["teams"]["status"]) <= set(vocab.TEAM_STATUSES)
    assert set(frames["road_edges"]["road_class"]) <= set(vocab.ROAD_CLASS_DRIVE_KMH)


# --- regions and grids -------------------------------------------------------------------


def test_admin_chain_counts_codes_and_parents(frames):
    regions = frames["regions"]
    assert regions["code"].is_unique
    assert regions["code"].str.fullmatch(r"[0-9]{6,12}").all()
    assert (regions["name"].str.strip() != "").all()
    city = _regions(frames, "city")
    assert city["code"].tolist() == ["360100"] and city["parent_code"].isna().all()
    assert regions.loc[regions["level"] != "city", "parent_code"].notna().all()

    districts = _regions(frames, "district")
    townships = _regions(frames, "township")
    communities = _regions(frames, "community")
    assert len(districts) == 9 and set(districts["parent_code"]) == {"360100"}
    assert len(townships) == 116
    assert townships["name"].str.endswith("街道").sum() == 36
    assert set(townships["parent_code"]) == set(districts["code"])
    # The real township codes and names, all of them.
    units = pd.read_csv(DATA_DIR / "admin_units.csv", dtype=str)
    real = units[units["level"] == "township"].set_index("code")["name"]
    assert townships.set_index("code")["name"].sort_index().equals(real.sort_index())

    assert 1_800 <= len(communities) <= 2_000
    assert communities["parent_code"].isin(townships["code"]).all()
    assert (communities["code"].str[:9] == communities["parent_code"]).all()
    assert communities["code"].str.len().eq(12).all()
    assert communities["name"].str.fullmatch(r".+(?:社区|村)").all()
    # 街道 hold 社区, never 村.
    street_codes = townships.loc[townships["name"].str.endswith("街道"), "code"]
    in_streets = communities[communities["parent_code"].isin(street_codes)]
    assert in_streets["name"].str.endswith("社区").all()


def test_districts_are_the_real_outlines(frames):
    real = gpd.read_file(DATA_DIR / "admin_boundaries.geojson").set_index("code")
    regions = frames["regions"].set_index("code")
    for code in real.index:
        ours, theirs = regions.loc[code, "geom"], real.loc[code, "geometry"]
        assert ours.symmetric_difference(theirs).area < 1e-9 * theirs.area


def test_grids_count_codes_population_households(frames):
    grids = frames["grids"]
    communities = _regions(frames, "community")
    assert len(grids) == 4_418
    assert grids["code"].is_unique
    assert grids["community_code"].isin(communities["code"]).all()
    assert (grids["code"].str[:12] == grids["community_code"]).all()
    assert grids["name"].str.fullmatch(r".+(?:社区|村)第[0-9]+网格").all()
    total = grids["population"].sum()
    assert abs(total - 6_260_000) <= 0.01 * 6_260_000
    assert (grids["population"] > 0).all()
    assert (grids["households"] <= grids["population"]).all()
    assert 2.4 < total / grids["households"].sum() < 2.8


def test_every_polygon_is_a_valid_multipolygon(frames):
    for table in ("regions", "grids"):
        geoms = frames[table]["geom"]
        assert (geoms.geom_type == "MultiPolygon").all(), table
        assert geoms.is_valid.all(), table
        assert (shapely.area(geoms.to_numpy()) > 0).all(), table


def _check_tiling(children: gpd.GeoDataFrame, key: str, parents: gpd.GeoDataFrame) -> None:
    """Children lie inside their parent and their areas add up to it (no gap, no overlap).

    Measured in the stored lon/lat (reprojecting again would bend long edges); the
    tolerance, 10 ppm of a unit's area, is float noise: under 1 m² for a grid.
    """
    parent_geom = parents.set_index("code")["geom"]
    child = children["geom"].to_numpy()
    child_area = shapely.area(child)
    outside = shapely.area(shapely.difference(child, parent_geom.loc[children[key]].to_numpy()))
    assert (outside <= 1e-5 * child_area).all()
    summed = pd.Series(child_area, index=children[key].to_numpy()).groupby(level=0).sum()
    expected = shapely.area(parent_geom.loc[summed.index].to_numpy())
    assert np.allclose(summed.to_numpy(), expected, rtol=1e-5, atol=0)


def test_each_level_tiles_its_parent(frames):
    districts = _regions(frames, "district")
    townships = _regions(frames, "township")
    communities = _regions(frames, "community")
    _check_tiling(districts, "parent_code", _regions(frames, "city"))
    _check_tiling(townships, "parent_code", districts)
    _check_tiling(communities, "parent_code", townships)
    gridded = communities[communities["code"].isin(frames["grids"]["community_code"])]
    _check_tiling(frames["grids"], "community_code", gridded)


def test_grids_cover_every_street_and_are_denser_near_the_core(frames):
    grids = frames["grids"]
    townships = _regions(frames, "township")
    streets = townships.loc[townships["name"].str.endswith("街道"), "code"]
    assert set(streets) <= set(grids["code"].str[:9])
    metric = grids.to_crs(4548)
    density = metric["population"] / (metric.area / 1e6)
    distance = metric.distance(gpd.GeoSeries([CORE], crs=4326).to_crs(4548).iloc[0])
    assert density[distance < 3_000].median() > 3 * density[distance > 15_000].median()
    assert metric.area[distance < 3_000].median() < metric.area[distance > 15_000].median()


# --- stations, sites, teams --------------------------------------------------------------


def test_station_counts(frames):
    stations = frames["stations"]
    counts = stations["kind"].value_counts()
    assert counts["centre_district"] == 9
    assert counts["centre_township"] == 116
    assert counts["centre_community"] == len(_regions(frames, "community"))
    assert counts[["centre_district", "centre_township", "centre_community"]].sum() >= 2_000
    assert counts["service_complex"] == 144
    assert counts["red_station"] == 274
    assert counts["grid_station"] == 4_418
    for kind, n in {
        "red_cabin": 35,
        "love_station": 8,
        "discussion_pavilion": 19,
        "elderly_canteen": 10,
        "book_house": 6,
    }.items():
        assert counts[kind] == n
    assert len(stations) >= 2_000
    assert stations["code"].is_unique


def test_stations_lie_in_their_units(frames):
    stations = frames["stations"]
    regions = frames["regions"].set_index("code")["geom"]
    grids = frames["grids"].set_index("code")["geom"]
    assert stations["region_code"].isin(regions.index).all()
    in_grid = stations["grid_code"].notna()
    assert stations.loc[in_grid, "grid_code"].isin(grids.index).all()
    assert shapely.covers(
        regions.loc[stations["region_code"]].to_numpy(), stations["geom"].to_numpy()
    ).all()
    assert shapely.covers(
        grids.loc[stations.loc[in_grid, "grid_code"]].to_numpy(),
        stations.loc[in_grid, "geom"].to_numpy(),
    ).all()
    grid_stations = stations[stations["kind"] == "grid_station"]
    assert set(grid_stations["grid_code"]) == set(frames["grids"]["code"])
    # Region levels fit the kinds.
    level = frames["regions"].set_index("code")["level"]
    expected = {"centre_district": "district", "centre_township": "township"}
    for kind, lvl in expected.items():
        codes = stations.loc[stations["kind"] == kind, "region_code"]
        assert (level.loc[codes] == lvl).all()
    others = stations.loc[~stations["kind"].isin(expected), "region_code"]
    assert (level.loc[others] == "community").all()


def test_points_lie_in_the_city(frames):
    city = _regions(frames, "city")["geom"].iloc[0]
    shapely.prepare(city)
    for table, column in (
        ("stations", "geom"),
        ("sites", "geom"),
        ("teams", "geom"),
        ("teams", "base_geom"),
        ("road_nodes", "geom"),
    ):
        points = frames[table][column].dropna().to_numpy()
        assert shapely.covers(city, points).all(), (table, column)


def test_red_stations_sit_near_metro_stations_and_in_dense_blocks(frames):
    stations = frames["stations"]
    red = stations[stations["kind"] == "red_station"].to_crs(4548)
    metro = gpd.read_file(DATA_DIR / "metro_stations.geojson").to_crs(4548)
    nearest = red["geom"].apply(lambda p: metro.distance(p).min())
    assert (nearest < 500).mean() > 0.35


def test_sites(frames):
    sites = frames["sites"]
    assert len(sites) == 100
    assert sites["code"].is_unique
    real = pd.read_csv(DATA_DIR / "red_sites.csv", dtype={"district_code": str})
    ours = sites[sites["source"].str.startswith("real:")].reset_index(drop=True)
    assert ours["name"].tolist() == real["name"].tolist()
    assert ours["kind"].tolist() == real["kind"].tolist()
    assert ours["coord_quality"].tolist() == real["coord_quality"].tolist()
    assert np.allclose(ours["geom"].x, real["lon"]) and np.allclose(ours["geom"].y, real["lat"])
    synthetic = sites[sites["source"].str.startswith("synthetic:")]
    assert synthetic["coord_quality"].isna().all()
    assert set(synthetic["kind"]) == {
        "memorial_hall",
        "revolutionary_site",
        "red_village",
        "education_base",
    }
    villages = synthetic[synthetic["kind"] == "red_village"]
    assert villages["name"].str.endswith("村").all()


def test_emergency_teams(frames):
    teams = frames["teams"]
    emergency = teams[teams["kind"].isin(vocab.EMERGENCY_TEAM_KINDS)]
    assert emergency["headcount"].sum() == 12_000
    assert set(emergency["kind"]) == set(vocab.EMERGENCY_TEAM_KINDS)
    units = emergency.groupby("kind")["unit"].unique()
    assert all(len(u) == 1 for u in units) and units["medical"][0] == "洪城红医护应急队"
    assert emergency["headcount"].between(10, 30).all()
    assert emergency["base_station_id"].notna().all()
    stations = frames["stations"].set_index("id")
    bases = stations.loc[emergency["base_station_id"].to_numpy()]
    assert shapely.equals(bases["geom"].to_numpy(), emergency["base_geom"].to_numpy()).all()
    # Last positions near the base: within 3 km (deployed), most within 150 m.
    metric = emergency.to_crs(4548)
    gap = metric["geom"].distance(metric["base_geom"].to_crs(4548))
    assert (gap <= 3_001).all() and (gap <= 151).mean() > 0.7


def test_steward_rider_and_car_teams(frames):
    teams = frames["teams"]
    stewards = teams[teams["kind"] == "steward"]
    assert sorted(stewards["home_grid_code"]) == sorted(frames["grids"]["code"])
    assert stewards["headcount"].sum() >= 60_000
    grid_stations = frames["stations"].set_index("id").loc[stewards["base_station_id"]]
    assert (grid_stations["grid_code"].to_numpy() == stewards["home_grid_code"].to_numpy()).all()
    riders = teams[teams["kind"] == "rider"]
    assert len(riders) == 32 and riders["headcount"].sum() == 1_200
    cars = teams[teams["kind"] == "red_flag_car"]
    assert len(cars) == 600 and set(cars["headcount"]) <= {1, 2}
    assert riders["base_geom"].isna().all() and cars["base_station_id"].isna().all()


def test_team_attributes(frames):
    teams = frames["teams"]
    assert teams["code"].is_unique
    assert (teams["headcount"] > 0).all()
    assert teams["status"].value_counts(normalize=True)["available"] > 0.6
    assert {"deployed", "off_duty"} <= set(teams["status"])
    assert teams["capabilities"].map(lambda c: isinstance(c, list) and len(c) > 0).all()
    assert teams["capabilities"].map(lambda c: all(isinstance(v, str) for v in c)).all()
    medical = teams.loc[teams["kind"] == "medical", "capabilities"]
    assert medical.map(lambda c: "first_aid" in c).all()
    assert teams["position_at"].dt.tz is not None
    assert (teams["position_at"] <= pd.Timestamp("2026-11-23 08:00", tz="Asia/Shanghai")).all()
    assert teams["leader_name"].str.len().between(2, 3).all()
    assert teams["leader_phone"].str.fullmatch(r"100[0-9]{8}").all()
    homes = teams["home_grid_code"].dropna()
    assert homes.isin(frames["grids"]["code"]).all()


# --- road network ------------------------------------------------------------------------


def test_road_network_shape_and_costs(frames):
    nodes, edges = frames["road_nodes"], frames["road_edges"]
    assert len(edges) >= 50_000
    assert edges["source_node"].isin(nodes["id"]).all()
    assert edges["target_node"].isin(nodes["id"]).all()
    assert (edges["source_node"] != edges["target_node"]).all()
    assert (edges["length_m"] > 0).all()
    # Geometry runs from the source node to the target node.
    xy = nodes.set_index("id")["geom"]
    start = shapely.get_point(edges["geom"].to_numpy(), 0)
    end = shapely.get_point(edges["geom"].to_numpy(), -1)
    assert shapely.equals(start, xy.loc[edges["source_node"]].to_numpy()).all()
    assert shapely.equals(end, xy.loc[edges["target_node"]].to_numpy()).all()
    # Lengths are geodesic metres: close to the lengths in a metric CRS.
    metric = edges["geom"].to_crs(4548).length
    assert np.allclose(edges["length_m"], metric, rtol=0.01)

    walkable = ~edges["road_class"].isin(vocab.NO_WALK_CLASSES)
    assert np.allclose(edges.loc[walkable, "walk_s"], edges.loc[walkable, "length_m"] / 1.25)
    assert (edges.loc[~walkable, ["walk_s", "walk_reverse_s"]] < 0).all().all()
    assert (~walkable).any()
    footway = edges["road_class"] == "footway"
    assert footway.any() and (edges.loc[footway, ["drive_s", "drive_reverse_s"]] < 0).all().all()
    primary = edges[(edges["road_class"] == "primary") & ~edges["is_bridge"]]
    assert np.allclose(primary["drive_s"], primary["length_m"] / (40 / 3.6))
    one_way = (edges["drive_s"] > 0) & (edges["drive_reverse_s"] < 0)
    assert one_way.sum() > 100
    assert (edges.loc[one_way, "walk_reverse_s"] > 0).all()  # pedestrians walk both ways
    assert {"primary", "secondary", "tertiary", "residential"} <= set(edges["road_class"])


def test_road_network_is_denser_in_the_core(frames):
    edges = frames["road_edges"].to_crs(4548)
    core = gpd.GeoSeries([CORE], crs=4326).to_crs(4548).iloc[0]
    near = edges[edges.distance(core) < 3_000]
    far = edges[edges.distance(core) > 30_000]
    assert near["length_m"].median() < 250 < far["length_m"].median()


def test_road_network_is_connected(frames):
    edges = frames["road_edges"]
    graph = nx.Graph()
    graph.add_nodes_from(frames["road_nodes"]["id"])
    graph.add_edges_from(zip(edges["source_node"], edges["target_node"], strict=True))
    assert nx.is_connected(graph)


def test_cars_can_drive_between_any_two_drivable_nodes(frames):
    """One-way streets never trap a car: the directed driving graph is strongly connected."""
    edges = frames["road_edges"]
    forward = edges[edges["drive_s"] > 0]
    backward = edges[edges["drive_reverse_s"] > 0]
    graph = nx.DiGraph()
    graph.add_edges_from(zip(forward["source_node"], forward["target_node"], strict=True))
    graph.add_edges_from(zip(backward["target_node"], backward["source_node"], strict=True))
    assert nx.is_strongly_connected(graph)
    assert graph.number_of_nodes() > 0.99 * len(frames["road_nodes"])  # all but park paths


def test_pedestrians_reach_nearly_every_node(frames):
    edges = frames["road_edges"]
    walk = edges[edges["walk_s"] > 0]
    graph = nx.Graph()
    graph.add_edges_from(zip(walk["source_node"], walk["target_node"], strict=True))
    largest = max(nx.connected_components(graph), key=len)
    assert len(largest) > 0.99 * len(frames["road_nodes"])  # trunk roads are car-only


def test_gan_river_line(river):
    assert river.geom_type == "LineString"
    _, miny, _, maxy = river.bounds
    assert miny < 28.45 and maxy > 28.80  # from the south of the city to Poyang Lake
    # It runs between 红谷滩 and the old city: ~115.87E at the latitude of 八一大桥.
    at_bayi = river.intersection(shapely.LineString([(115.7, 28.69), (116.0, 28.69)]))
    assert 115.85 < at_bayi.centroid.x < 115.89


def test_only_bridges_cross_the_gan_river(frames, river):
    edges = frames["road_edges"]
    crossing = edges["geom"].intersects(river)
    assert not (crossing & ~edges["is_bridge"]).any()
    nodes = frames["road_nodes"].to_crs(4548)
    river_m = gpd.GeoSeries([river], crs=4326).to_crs(4548).iloc[0]
    assert (nodes.distance(river_m) > 150).all()  # no node in the water

    bridges = edges[edges["is_bridge"]]
    assert len(bridges) >= 4 and crossing[bridges.index].all()
    assert (bridges["road_class"] == "primary").all()
    assert (bridges[["walk_s", "walk_reverse_s", "drive_s", "drive_reverse_s"]] > 0).all().all()
    latitudes = shapely.get_y(shapely.centroid(bridges["geom"].to_numpy()))
    for name, lat in (
        ("英雄大桥", 28.72),
        ("八一大桥", 28.69),
        ("南昌大桥", 28.65),
        ("生米大桥", 28.60),
    ):
        assert name in set(bridges["name"])
        assert (abs(latitudes[(bridges["name"] == name).to_numpy()] - lat) < 0.01).all()


def test_banks_are_joined_only_by_bridges(frames, river):
    """Removing the bridges splits the network at the river: the barrier is real."""
    edges = frames["road_edges"]
    graph = nx.Graph()
    plain = edges[~edges["is_bridge"]]
    graph.add_edges_from(zip(plain["source_node"], plain["target_node"], strict=True))
    bridges = edges[edges["is_bridge"]]
    for source, target in zip(bridges["source_node"], bridges["target_node"], strict=True):
        assert not nx.has_path(graph, source, target)


# --- determinism -------------------------------------------------------------------------


def test_same_seed_gives_identical_frames(frames):
    again = nanchang.generate(DATA_DIR)
    for table in nanchang.STEPS:
        pd.testing.assert_frame_equal(_comparable(frames[table]), _comparable(again[table]))


def test_another_seed_draws_another_dataset_with_the_same_figures(frames):
    other = nanchang.generate(DATA_DIR, seed=nanchang.DEFAULT_SEED + 1)
    assert len(other["grids"]) == 4_418
    assert other["grids"]["population"].sum() == frames["grids"]["population"].sum()
    emergency = other["teams"]["kind"].isin(vocab.EMERGENCY_TEAM_KINDS)
    assert other["teams"].loc[emergency, "headcount"].sum() == 12_000
    assert (other["stations"]["kind"] == "red_station").sum() == 274
    assert other["road_edges"]["is_bridge"].sum() >= 4
    assert not frames["grids"]["geom"].geom_equals(other["grids"]["geom"]).all()
    assert other["grids"]["source"].iloc[0].endswith("(seed 20261124)")
