"""The Nanchang dataset generator (real where real data exists): pure Python, no database.

The dataset is generated once per module (a few seconds) and every test reads it; the two
determinism tests generate it again (same seed, then another seed). The real inputs are
read here independently of the generator (the files of ``data/nanchang/real``).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Geod
from scipy import sparse
from scipy.sparse import csgraph

from geomap import models, provenance, vocab
from geomap.seed import _communities, nanchang
from geomap.seed import provenance as seed_provenance

pytestmark = pytest.mark.slow  # generates the whole dataset (three times, ~5 s each)

DATA_DIR = Path(__file__).resolve().parents[1] / "data" / "nanchang"
REAL_DIR = DATA_DIR / "real"
CORE = shapely.Point(115.89, 28.68)
CITY_POPULATION = 6_255_007  # 2020 census


@pytest.fixture(scope="module")
def progress_calls() -> list[tuple[str, int]]:
    return []


@pytest.fixture(scope="module")
def frames(progress_calls) -> dict[str, gpd.GeoDataFrame]:
    return nanchang.generate(DATA_DIR, progress=lambda step, n: progress_calls.append((step, n)))


@pytest.fixture(scope="module")
def river():
    return nanchang.gan_river(DATA_DIR)


@pytest.fixture(scope="module")
def real_roads() -> gpd.GeoDataFrame:
    return gpd.read_file(REAL_DIR / "roads_citybrain.geojson")


@pytest.fixture(scope="module")
def census() -> pd.DataFrame:
    return pd.read_csv(REAL_DIR / "census2020_districts.csv", dtype={"code": str}).set_index("code")


@pytest.fixture(scope="module")
def matching() -> pd.DataFrame:
    return nanchang.community_matching(DATA_DIR)


def _real_osm_id(source_id: str) -> int:
    """The OSM node id of a source intersection id (its one-digit prefix dropped)."""
    return int(str(source_id)[1:])


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
    # Real roads and intersections are labelled real, with the OpenStreetMap credit.
    real_nodes = frames["road_nodes"]["source"].str.startswith("real:")
    assert real_nodes.sum() == 2_067
    real_edges = frames["road_edges"]["source"].str.startswith("real:")
    assert real_edges.sum() >= 3_041
    for label in frames["road_edges"].loc[real_edges, "source"].unique():
        assert [c.key for c in provenance.credits([label])] == ["osm"]
    # Every synthetic road says which synthetic part it is.
    synthetic = frames["road_edges"].loc[~real_edges, "source"].unique()
    assert len(synthetic) == 3 and all(": " in label.split(")", 1)[1] for label in synthetic)


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
    # The real township codes and names (the older edition of the polygons), all of them.
    units = pd.read_csv(DATA_DIR / "admin_units.csv", dtype=str)
    real = units[units["level"] == "township"].set_index("code")["name"]
    assert townships.set_index("code")["name"].sort_index().equals(real.sort_index())

    # The 2,263 real communities and villages: their codes, their names without the
    # committee word, each in a township polygon of its own district.
    official = pd.read_csv(REAL_DIR / "communities_nbs2023.csv", dtype=str).set_index("code")
    assert len(communities) == 2_263
    ours = communities.set_index("code")
    assert set(ours.index) == set(official.index)
    expected = official["name"].str.replace(r"(社区)居(民)?委(员)?会$", r"\1", regex=True)
    expected = expected.str.replace(r"村(民)?委(员)?会$", "村", regex=True)
    assert (ours["name"] == expected.loc[ours.index]).all()
    assert ours["parent_code"].isin(townships["code"]).all()
    assert (ours["parent_code"].str[:6] == official.loc[ours.index, "areaCode"]).all()
    assert set(ours["parent_code"]) == set(townships["code"])  # no township left empty


def test_districts_are_the_real_outlines(frames):
    real = gpd.read_file(DATA_DIR / "admin_boundaries.geojson").set_index("code")
    regions = frames["regions"].set_index("code")
    for code in real.index:
        ours, theirs = regions.loc[code, "geom"], real.loc[code, "geometry"]
        assert ours.symmetric_difference(theirs).area < 1e-9 * theirs.area


def test_grids_count_codes_population_households(frames, census):
    grids = frames["grids"]
    communities = _regions(frames, "community")
    assert len(grids) == 4_418
    assert grids["code"].is_unique
    assert grids["community_code"].isin(communities["code"]).all()
    assert (grids["code"].str[:12] == grids["community_code"]).all()
    names = communities.set_index("code")["name"].loc[grids["community_code"]].to_numpy()
    assert (grids["name"] == [f"{n}第{g[12:].lstrip('0')}网格" for n, g in
                              zip(names, grids["code"], strict=True)]).all()  # fmt: skip
    # Each district's grids hold exactly its 2020 census residents and households.
    assert grids["population"].sum() == CITY_POPULATION == census.loc["360100", "population"]
    by_district = grids.groupby(grids["community_code"].str[:6])[["population", "households"]]
    sums = by_district.sum()
    districts = census.drop(index="360100")
    assert sums["population"].sort_index().tolist() == districts["population"].sort_index().tolist()
    assert sums["households"].sort_index().tolist() == districts["households"].sort_index().tolist()
    assert (grids["population"] > 0).all()
    assert (grids["households"] <= grids["population"]).all()
    assert grids["source"].str.contains("第七次全国人口普查").all()


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
    parent = _regions(frames, "community").set_index("code")["parent_code"]
    streets = townships.loc[townships["name"].str.endswith("街道"), "code"]
    assert set(streets) <= set(parent.loc[grids["community_code"]])
    metric = grids.to_crs(4548)
    density = metric["population"] / (metric.area / 1e6)
    distance = metric.distance(gpd.GeoSeries([CORE], crs=4326).to_crs(4548).iloc[0])
    # Far from the core, grids are those of the county seats, which hold their whole
    # county's census residents: denser than farmland, still less dense than the core.
    assert density[distance < 3_000].median() > 1.2 * density[distance > 15_000].median()
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


def _kind(edges: pd.DataFrame, text: str) -> pd.Series:
    return edges["source"].str.contains(text, regex=False)


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
    # Synthetic lengths are geodesic metres: close to the lengths in a metric CRS.
    real = _kind(edges, "real:")
    metric = edges["geom"].to_crs(4548).length
    assert np.allclose(edges.loc[~real, "length_m"], metric[~real], rtol=0.01)

    synthetic = edges[~real]
    walkable = ~synthetic["road_class"].isin(vocab.NO_WALK_CLASSES)
    on_foot = synthetic[walkable]
    assert np.allclose(on_foot["walk_s"], on_foot["length_m"] / 1.25)
    assert (synthetic.loc[~walkable, ["walk_s", "walk_reverse_s"]] < 0).all().all()
    lanes = _kind(edges, "walk-only lanes")
    assert lanes.sum() > 10_000 and (edges.loc[lanes, "road_class"] == "footway").all()
    assert (edges.loc[lanes, ["drive_s", "drive_reverse_s"]] < 0).all().all()
    assert (edges.loc[lanes, ["walk_s", "walk_reverse_s"]] > 0).all().all()
    primary = synthetic[synthetic["road_class"] == "primary"]
    assert np.allclose(primary["drive_s"], primary["length_m"] / (40 / 3.6))
    # No one-way street: the real network gives none (every segment has both directions)
    # and the synthetic roads have none (the old core, where they were, is real now).
    drivable = edges["drive_s"] > 0
    assert (edges.loc[drivable, "drive_reverse_s"] == edges.loc[drivable, "drive_s"]).all()
    assert {"primary", "secondary", "tertiary", "residential"} <= set(edges["road_class"])


def test_real_roads_keep_their_source_lengths_and_speeds(frames, real_roads):
    """Every real segment is there, cut only where lanes meet it, with its source figures."""
    nodes, edges = frames["road_nodes"], frames["road_edges"]
    real_nodes = nodes[_kind(nodes, "real:")]
    expected = {_real_osm_id(i) for i in pd.concat([real_roads["frm"], real_roads["to"]])}
    assert set(real_nodes["osm_id"].astype(int)) == expected
    assert nodes.loc[~_kind(nodes, "real:"), "osm_id"].isna().all()
    position = real_nodes.set_index(real_nodes["osm_id"].astype(int))["geom"]
    for column, end in (("frm", 0), ("to", -1)):
        ours = position.loc[[_real_osm_id(i) for i in real_roads[column]]].to_numpy()
        theirs = shapely.get_point(real_roads.geometry.to_numpy(), end)
        assert shapely.equals(ours, theirs).all()

    # Walk the pieces of each segment from its frm end: their lengths add up to the
    # source length and their drive times to length / speed limit.
    real = edges[_kind(edges, "real:")]
    graph = nx.Graph()
    graph.add_edges_from(
        (u, v, {"length": length, "drive": drive})
        for u, v, length, drive in zip(real["source_node"], real["target_node"],
                                        real["length_m"], real["drive_s"], strict=True)
    )  # fmt: skip
    by_osm = dict(zip(real_nodes["osm_id"].astype(int), real_nodes["id"], strict=True))
    junctions = nodes[_kind(nodes, "meets a real road")]
    junction_tree = shapely.STRtree(junctions["geom"].to_numpy())
    for row in real_roads.itertuples():
        a, b = by_osm[_real_osm_id(row.frm)], by_osm[_real_osm_id(row.to)]
        # The segment's own cut points: junctions on its line (to float precision).
        on_line = junction_tree.query(row.geometry, predicate="dwithin", distance=1e-9)
        piece = graph.subgraph([a, b, *junctions["id"].to_numpy()[on_line]])
        path = nx.shortest_path(piece, a, b)
        legs = list(itertools.pairwise(path))
        length = sum(graph.edges[leg]["length"] for leg in legs)
        drive = sum(graph.edges[leg]["drive"] for leg in legs)
        assert length == pytest.approx(row.length_m, rel=1e-9)
        assert drive == pytest.approx(row.length_m / row.speed_mps, rel=1e-9)
    # Pedestrians keep off roads of 80 km/h and more, and nowhere else on real roads.
    speed = real["length_m"] / real["drive_s"]
    assert ((real["walk_s"] < 0) == (speed >= 80 / 3.6 - 0.1)).all()
    geodesic = Geod(ellps="WGS84").geometry_length
    walk = real[real["walk_s"] > 0].head(500)
    straight = np.array([geodesic(g) for g in walk["geom"]])
    assert np.allclose(walk["walk_s"], np.maximum(walk["length_m"], straight) / 1.25)


def _drive_matrix(frames) -> tuple[sparse.csr_matrix, dict[int, int]]:
    edges = frames["road_edges"]
    n = len(frames["road_nodes"])
    forward, backward = edges[edges["drive_s"] > 0], edges[edges["drive_reverse_s"] > 0]
    rows = np.r_[forward["source_node"], backward["target_node"]] - 1
    cols = np.r_[forward["target_node"], backward["source_node"]] - 1
    cost = np.r_[forward["drive_s"], backward["drive_reverse_s"]]
    nodes = frames["road_nodes"].dropna(subset=["osm_id"])
    index = dict(zip(nodes["osm_id"].astype(int), nodes["id"] - 1, strict=True))
    return sparse.csr_matrix((cost, (rows, cols)), shape=(n, n)), index


def test_synthetic_roads_never_speed_up_a_drive_between_real_intersections(frames, real_roads):
    """Lanes are walk only and the links to the synthetic roads are chosen so that no
    detour outside the real network beats it: drive times between real intersections are
    exactly those of the source file (here from 200 intersections to all 2,067)."""
    ours, index = _drive_matrix(frames)
    ids = sorted(set(real_roads["frm"]) | set(real_roads["to"]))
    position = {i: k for k, i in enumerate(ids)}
    u = np.array([position[i] for i in real_roads["frm"]])
    v = np.array([position[i] for i in real_roads["to"]])
    seconds = (real_roads["length_m"] / real_roads["speed_mps"]).to_numpy()
    reference = sparse.csr_matrix(
        (np.r_[seconds, seconds], (np.r_[u, v], np.r_[v, u])), shape=(len(ids), len(ids))
    )
    sample = np.random.default_rng(12).choice(len(ids), 200, replace=False)
    expected = csgraph.dijkstra(reference, indices=sample)
    mapped = np.array([index[_real_osm_id(i)] for i in ids])
    got = csgraph.dijkstra(ours, indices=mapped[sample])[:, mapped]
    assert np.isfinite(expected).all()
    assert np.allclose(got, expected, rtol=1e-9, atol=1e-6)


def test_lanes_stay_inside_the_blocks(frames, real_roads):
    edges = frames["road_edges"]
    lanes = edges[_kind(edges, "walk-only lanes")]
    real_lines = np.asarray(real_roads.geometry.array)
    tree = shapely.STRtree(real_lines)
    # A lane never crosses nor runs along a real road (it meets one at a junction, or not
    # at all): the inside of every lane, its ends left out, touches no real road.
    ends = [
        shapely.get_coordinates(shapely.line_interpolate_point(lanes["geom"], f, normalized=True))
        for f in (0.001, 0.999)
    ]
    inner = shapely.linestrings(np.stack(ends, axis=1))
    assert len(tree.query(inner, predicate="intersects")[0]) == 0
    # Its junctions with real roads lie on walkable real segments.
    junctions = frames["road_nodes"]
    junctions = junctions[_kind(junctions, "meets a real road")]["geom"].to_numpy()
    _, near = tree.query_nearest(junctions, all_matches=False)
    assert (real_roads["speed_mps"].to_numpy()[near] < 80 / 3.6 - 0.1).all()
    assert (shapely.distance(real_lines[near], junctions) < 1e-6).all()


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
    """The directed driving graph is strongly connected over every node a car can reach."""
    edges = frames["road_edges"]
    forward = edges[edges["drive_s"] > 0]
    backward = edges[edges["drive_reverse_s"] > 0]
    graph = nx.DiGraph()
    graph.add_edges_from(zip(forward["source_node"], forward["target_node"], strict=True))
    graph.add_edges_from(zip(backward["target_node"], backward["source_node"], strict=True))
    assert nx.is_strongly_connected(graph)
    lanes_only = set(frames["road_nodes"]["id"]) - set(graph.nodes)
    lane_ends = frames["road_nodes"].set_index("id").loc[sorted(lanes_only), "source"]
    assert lane_ends.str.contains("walk-only lanes|outside the real network").all()


def test_pedestrians_reach_nearly_every_node(frames):
    edges = frames["road_edges"]
    walk = edges[edges["walk_s"] > 0]
    graph = nx.Graph()
    graph.add_edges_from(zip(walk["source_node"], walk["target_node"], strict=True))
    largest = max(nx.connected_components(graph), key=len)
    # Nodes on expressways only (80 km/h, no pedestrians) are the rest.
    assert len(largest) > 0.98 * len(frames["road_nodes"])
    lanes = edges[_kind(edges, "walk-only lanes")]
    assert set(lanes["source_node"]) | set(lanes["target_node"]) <= largest


def test_gan_river_line(river):
    assert river.geom_type == "LineString"
    _, miny, _, maxy = river.bounds
    assert miny < 28.45 and maxy > 28.80  # from the south of the city to Poyang Lake
    # It runs between 红谷滩 and the old city: ~115.87E at the latitude of 八一大桥.
    at_bayi = river.intersection(shapely.LineString([(115.7, 28.69), (116.0, 28.69)]))
    assert 115.85 < at_bayi.centroid.x < 115.89


def test_only_real_bridges_cross_the_gan_river(frames, river, real_roads):
    """The river is crossed only where the real network crosses it: its own bridges."""
    edges = frames["road_edges"]
    crossing = edges["geom"].intersects(river)
    assert not (crossing & ~edges["is_bridge"]).any()
    bridges = edges[edges["is_bridge"]]
    assert _kind(bridges, "real:").all()
    # The bridges are the pieces of exactly the source segments that cross the river.
    crossing_segments = real_roads[real_roads.geometry.intersects(river)]
    assert len(crossing_segments) == 13
    ends = {
        frozenset((_real_osm_id(a), _real_osm_id(b)))
        for a, b in zip(crossing_segments["frm"], crossing_segments["to"], strict=True)
    }
    osm = frames["road_nodes"].set_index("id")["osm_id"]
    bridge_ends = {
        frozenset((int(osm[a]), int(osm[b])))
        for a, b in zip(bridges["source_node"], bridges["target_node"], strict=True)
        if pd.notna(osm[a]) and pd.notna(osm[b])
    }
    assert bridge_ends == ends
    assert crossing[bridges.index].sum() >= 13
    # Synthetic nodes keep off the water; real ones are where the source puts them.
    nodes = frames["road_nodes"]
    synthetic = nodes[~_kind(nodes, "real:")].to_crs(4548)
    river_m = gpd.GeoSeries([river], crs=4326).to_crs(4548).iloc[0]
    assert (synthetic.distance(river_m) > 150).all()


def test_banks_are_joined_only_by_bridges(frames, river):
    """Removing the bridges splits the network at the river: the barrier is real."""
    edges = frames["road_edges"]
    graph = nx.Graph()
    plain = edges[~edges["is_bridge"]]
    graph.add_edges_from(zip(plain["source_node"], plain["target_node"], strict=True))
    bridges = edges[edges["is_bridge"]]
    crossing = bridges[bridges["geom"].intersects(river)]
    for source, target in zip(crossing["source_node"], crossing["target_node"], strict=True):
        assert not nx.has_path(graph, source, target)


# --- communities and provenance -----------------------------------------------------------


def test_every_real_community_is_matched_or_listed_with_its_rule(frames, matching):
    communities = _regions(frames, "community").set_index("code")
    townships = _regions(frames, "township").set_index("code")
    assert len(matching) == 2_263 and matching["code"].is_unique
    assert set(matching["rule"]) <= set(_communities.RULES)
    assert (communities.loc[matching["code"], "parent_code"].to_numpy()
            == matching["township_code"].to_numpy()).all()  # fmt: skip
    assert (townships.loc[matching["township_code"], "name"].to_numpy()
            == matching["polygon_name"].to_numpy()).all()  # fmt: skip
    # Every unit stays in its own district.
    assert (matching["township_code"].str[:6] == matching["district_code"]).all()
    by_rule = {rule: matching[matching["rule"] == rule] for rule in _communities.RULES}
    # Matched by name: the polygon has the 2023 township's name (codes were renumbered).
    named = by_rule["name"]
    assert (named["polygon_name"] == named["township_2023_name"]).all()
    assert (named["township_code"] != named["township_2023_code"]).sum() > 500
    teng = named[named["township_2023_name"] == "滕王阁街道"]
    assert set(teng["township_code"]) == {"360102015"}
    assert set(teng["township_2023_code"]) == {"360102002"}
    renamed = by_rule["renamed"].groupby("township_2023_name")["polygon_name"].unique()
    assert {k: list(v) for k, v in renamed.items()} == {
        "桃花街道": ["桃花镇"], "长堎街道": ["长凌镇"],
    }  # fmt: skip
    # Attached: the units of the 2023 townships without a polygon, each listed.
    vacant = by_rule["vacant"]
    assert set(vacant["polygon_name"]) == {
        "公园街道", "八一桥街道", "系马桩街道", "西湖街道", "十字街街道", "南昌昌南工业园",
    }  # fmt: skip
    assert not set(vacant["polygon_name"]) & set(named["polygon_name"])
    attached = pd.concat([vacant, by_rule["district"]])
    assert not set(attached["township_2023_code"]) & set(named["township_2023_code"])
    counts = matching["rule"].value_counts().to_dict()
    assert counts == {"name": 1_947, "renamed": 59, "vacant": 47, "district": 210}


def test_provenance_files_are_up_to_date(frames, matching):
    """data/nanchang/PROVENANCE.md and community_matching.csv are what the code writes
    (regenerate them with `geomap provenance`)."""
    census = pd.read_csv(REAL_DIR / "census2020_districts.csv", dtype={"code": str})
    text = seed_provenance.render(frames, matching, census.set_index("code"), nanchang.DEFAULT_SEED)
    assert (DATA_DIR / seed_provenance.PROVENANCE_FILE).read_text(encoding="utf-8") == text
    csv = (DATA_DIR / seed_provenance.MATCHING_FILE).read_text(encoding="utf-8")
    assert csv == seed_provenance.matching_csv(matching)
    # Every (table, source label, rows) of the dataset is a row of the page.
    for table, frame in frames.items():
        if "source" not in frame:  # (escalation steps carry their case's provenance)
            continue
        for source, _, n in seed_provenance.source_counts(frame, table):
            assert f"| {n:,} |" in text and f"`{source}`" in text, (table, source)


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
    assert other["road_edges"]["is_bridge"].sum() >= 13
    assert not frames["grids"]["geom"].geom_equals(other["grids"]["geom"]).all()
    label = other["grids"]["source"].iloc[0]
    assert label.startswith("synthetic: geomap seed nanchang (seed 20261124)")


def test_team_states_agree_with_the_active_dispatches(frames):
    """A team is ``deployed`` exactly when it holds an active dispatch (one at most), as
    the service keeps it (issue 25: 665 teams were deployed with nothing to do)."""
    teams, dispatches = frames["teams"], frames["dispatches"]
    active = dispatches.loc[dispatches["status"] != "released", "team_id"]
    assert len(active) > 0 and active.is_unique
    status = teams.set_index("id")["status"]
    assert set(status.loc[active.to_numpy()]) == {"deployed"}
    deployed = set(status.index[status == "deployed"])
    assert deployed == set(active), (len(deployed - set(active)), len(set(active) - deployed))
    assert {"available", "off_duty"} <= set(status)
