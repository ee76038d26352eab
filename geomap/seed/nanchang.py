"""The default Nanchang dataset: real where a real source exists, labelled synthetic elsewhere.

``generate`` builds one GeoDataFrame per table of ``geomap.models`` (EPSG:4326, the
table's exact columns, geometry column ``geom``), deterministically from a seed, in pure
Python (no database, no network). See ``data/nanchang/PROVENANCE.md`` for the real inputs.

Real: the city and its 9 districts (outlines), the 116 township names and codes, six red
culture sites, the metro stations (used as anchors, not stored). Synthetic, sized to the
reported Nanchang figures: township, community and grid polygons (4,418 grids over the
urban area, 6.26 million residents), 2,000+ party-mass service centres and the other
stations (274 red stations), red culture sites up to 100, the emergency, steward, rider
and car teams (12,000 emergency-team people, 60,000+ stewards, 1,200 couriers, 600 cars),
and a road network of 50,000+ edges in which the Gan River (赣江) is crossed on bridges
only. Every ``source`` value starts with ``real:`` or ``synthetic:``.

The urban area (the townships covered by grids) is the 36 街道 plus the built-up towns of
the central districts and the four county seats: ``_admin.URBAN_TOWNS`` lists them.

How the synthetic parts are drawn (details in the private modules):

* ``_admin``: a population density field (old core, metro stations, county seats) drives
  density-weighted Voronoi partitions: districts -> townships -> communities -> grids.
* ``_places``: stations and sites at unit seeds, near metro stations or where people are.
* ``_teams``: squads at stations, one steward team per grid, riders and cars in the city.
* ``_roads``: a two-level jittered lattice (167 m in built-up areas, 1 km elsewhere) cut
  by the river and rejoined by bridges at the real crossings.
* ``_cases``: a demo history, a month of hazards, incidents and requests, most closed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geomap import models
from geomap.seed import _admin, _cases, _geo, _inputs, _places, _roads, _teams

DEFAULT_SEED = 20261123

#: The steps of ``generate``, in load order: ``progress`` is called once after each.
STEPS = ("regions", "grids", "stations", "sites", "teams", "road_nodes", "road_edges", "cases",
         "case_escalations", "dispatches")

_MAX_EDGE_M = 200.0  # longest synthetic polygon edge before reprojection (see _polygon_frame)

# Independent random streams, one per part, so that one part does not shift the others.
_STREAMS = ("admin", "stations", "sites", "teams", "roads")


def gan_river(data_dir: Path) -> shapely.LineString | shapely.MultiLineString:
    """The Gan River (赣江) centre line in EPSG:4326, from the district outlines.

    The shared outline of the west-bank districts (红谷滩区 360113, 新建区 360112) and
    the east-bank ones (东湖区, 西湖区, 青云谱区, 青山湖区, 南昌县) follows the river
    through the city, from where it enters in the south (~28.40N) to Poyang Lake.

    Parameters
    ----------
    data_dir : pathlib.Path
        The folder of the reference files (``data/nanchang``).

    Returns
    -------
    shapely.LineString or shapely.MultiLineString
        The river line, lon/lat (one LineString for the bundled outlines).
    """
    return _roads.river_line(_inputs.read_boundaries(Path(data_dir)))


def _streams(seed: int) -> dict[str, np.random.Generator]:
    children = np.random.SeedSequence(seed).spawn(len(_STREAMS))
    return {name: np.random.default_rng(s) for name, s in zip(_STREAMS, children, strict=True)}


def generate(
    data_dir: Path,
    seed: int = DEFAULT_SEED,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, gpd.GeoDataFrame]:
    """Generate the Nanchang dataset, one GeoDataFrame per table.

    Parameters
    ----------
    data_dir : pathlib.Path
        The folder of the reference files (``data/nanchang``).
    seed : int
        The seed of every random choice: the same seed gives identical frames.
    progress : callable, optional
        Called as ``progress(step, n_rows)`` after each step of ``STEPS``.

    Returns
    -------
    dict of str to geopandas.GeoDataFrame
        Keyed by table name in load order (``STEPS``): ``regions``, ``grids``,
        ``stations``, ``sites``, ``teams``, ``road_nodes``, ``road_edges``, then the demo
        history (``_cases``): ``cases``, ``case_escalations``, ``dispatches``. Each has
        exactly the table's columns (``geomap.models``), CRS EPSG:4326 and ``geom`` as the
        active geometry (``dispatches``: ``origin``; ``case_escalations`` has none);
        ``teams`` also has ``base_geom`` as a second GeoSeries.
    """
    data_dir = Path(data_dir)
    report = progress or (lambda step, n: None)
    rng = _streams(seed)
    real = _inputs.load(data_dir)
    frames: dict[str, gpd.GeoDataFrame] = {}

    admin = _admin.build(real, seed, rng["admin"])
    real_level = admin.regions["level"].isin(["city", "district"]).to_numpy()
    regions = _polygon_frame(admin.regions, "regions", densify=~real_level)
    # The real outlines are stored exactly as read, not as a round trip through metres.
    regions.loc[real_level, "geom"] = real.boundaries.geometry.loc[
        regions.loc[real_level, "code"]
    ].to_numpy()
    frames["regions"] = regions
    report("regions", len(frames["regions"]))
    frames["grids"] = _polygon_frame(admin.grids, "grids", densify=np.True_)
    report("grids", len(frames["grids"]))

    stations = _places.build_stations(admin, real, seed, rng["stations"])
    frames["stations"] = _point_frame(stations, "stations")
    report("stations", len(frames["stations"]))
    sites = _places.build_sites(admin, real, seed, rng["sites"])
    frames["sites"] = _point_frame(sites, "sites")
    report("sites", len(frames["sites"]))

    teams = _teams.build(admin, stations, seed, rng["teams"])
    frames["teams"] = _teams_frame(teams)
    report("teams", len(frames["teams"]))

    network = _roads.build(admin, _roads.river_line(real.boundaries), real.roads, rng["roads"])
    labels = road_sources(seed)
    nodes = network.nodes.copy()
    nodes["geom"] = shapely.points(nodes["lon"], nodes["lat"])
    nodes["source"] = nodes["kind"].map(labels).to_numpy()
    frames["road_nodes"] = _frame(nodes, "road_nodes")
    report("road_nodes", len(frames["road_nodes"]))
    edges = network.edges.assign(osm_id=pd.array([None] * len(network.edges), dtype="Int64"))
    edges["geom"] = shapely.linestrings(
        np.stack(
            [edges[["s_lon", "s_lat"]].to_numpy(), edges[["t_lon", "t_lat"]].to_numpy()], axis=1
        )
    )
    edges["source"] = edges["kind"].map(labels).to_numpy()
    frames["road_edges"] = _frame(edges, "road_edges")
    report("road_edges", len(frames["road_edges"]))
    history = _cases.build(frames, seed, data_dir)  # a synthetic month
    frames["teams"] = _cases.team_states(frames["teams"], history["dispatches"])
    for table, frame in history.items():
        frames[table] = frame
        report(table, len(frame))
    return frames


def community_matching(data_dir: Path, seed: int = DEFAULT_SEED) -> pd.DataFrame:
    """How each of the real communities was attached to a township polygon.

    Parameters
    ----------
    data_dir : pathlib.Path
        The folder of the reference files (``data/nanchang``).
    seed : int
        The dataset seed (the township polygons, hence the ``district`` rule, depend on it).

    Returns
    -------
    pandas.DataFrame
        One row per unit, in code order: ``code``, ``official_name``, ``name``,
        ``village``, ``district_code``, ``township_2023_code``, ``township_2023_name``,
        ``township_code`` and ``polygon_name`` (the polygon it lies in) and ``rule`` (see
        ``geomap.seed._communities.RULES``).
    """
    real = _inputs.load(Path(data_dir))
    return _admin.match_communities(real, _streams(seed)["admin"])


def road_sources(seed: int) -> dict[str, str]:
    """The ``source`` label of each kind of road node and edge (see ``_roads.KINDS``)."""
    synthetic = f"synthetic: geomap seed nanchang (seed {seed})"
    return {
        "real": f"real: {_inputs.CREDIT_ROADS}",
        "junction": f"{synthetic}: where a synthetic lane meets a real road",
        "lane": f"{synthetic}: walk-only lanes inside the real network's blocks",
        "connector": f"{synthetic}: links from the real network to the synthetic roads",
        "lattice": f"{synthetic}: roads outside the real network's extent",
    }


def _columns(table: str) -> list[str]:
    """The columns a generator fills (not those the database sets itself)."""
    columns = models.metadata.tables[table].columns
    return [column.name for column in columns if not column.info.get("server_set")]


def _frame(rows: pd.DataFrame, table: str) -> gpd.GeoDataFrame:
    """The table's columns, in order, with ``geom`` (lon/lat) as the active geometry."""
    frame = rows[_columns(table)].reset_index(drop=True)
    return gpd.GeoDataFrame(frame, geometry="geom", crs=_geo.WGS84)


def _polygon_frame(rows: pd.DataFrame, table: str, densify: np.ndarray) -> gpd.GeoDataFrame:
    """Reproject metric (Multi)Polygons to lon/lat, repairing any that it made invalid.

    A straight edge in metres is slightly curved in lon/lat (metres over 10 km), so a
    child's vertex on its parent's long Voronoi edge would fall off the parent's
    reprojected edge. Synthetic edges (``densify``) are cut into pieces of at most
    ``_MAX_EDGE_M`` first, which keeps children inside their parents to a few mm; the real
    outlines are left exactly as they are.
    """
    geoms = np.asarray(rows["geom"].to_numpy(), dtype=object)
    geoms = np.where(densify, shapely.segmentize(geoms, _MAX_EDGE_M), geoms)
    geoms = _geo.to_multipolygons(_geo.to_wgs84(geoms))
    invalid = ~shapely.is_valid(geoms)
    geoms[invalid] = [_geo.as_multipolygon(g) for g in geoms[invalid]]
    return _frame(rows.assign(geom=geoms), table)


def _point_frame(rows: pd.DataFrame, table: str) -> gpd.GeoDataFrame:
    lon, lat = _geo.xy_to_lonlat(rows["x"].to_numpy(), rows["y"].to_numpy())
    return _frame(rows.assign(geom=shapely.points(lon, lat)), table)


def _teams_frame(rows: pd.DataFrame) -> gpd.GeoDataFrame:
    lon, lat = _geo.xy_to_lonlat(rows["x"].to_numpy(), rows["y"].to_numpy())
    base_lon, base_lat = _geo.xy_to_lonlat(
        rows["base_x"].to_numpy(dtype=float), rows["base_y"].to_numpy(dtype=float)
    )
    has_base = rows["base_x"].notna().to_numpy()
    base = np.full(len(rows), None, dtype=object)
    base[has_base] = shapely.points(base_lon[has_base], base_lat[has_base])
    rows = rows.assign(
        geom=shapely.points(lon, lat),
        base_station_id=pd.array(rows["base_station_id"].tolist(), dtype="Int64"),
    )
    frame = _frame(rows.assign(base_geom=base), "teams")
    frame["base_geom"] = gpd.GeoSeries(base, index=frame.index, crs=_geo.WGS84)
    return frame
