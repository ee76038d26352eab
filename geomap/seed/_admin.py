"""The admin chain (city, districts, townships, communities) and the grids, in metres.

Real: the city and district outlines, the township names and codes. Synthetic: every
polygon below the district, drawn as seeded Voronoi partitions. A population density field
drives them all: seeds come from density-weighted k-means, so units are small where people
are many (the old core around 115.89E 28.68N and the metro stations) and large in the
countryside. Each level tiles its parent exactly (Voronoi edges are shared, outer edges are
the parent's outline).

Urban area
----------
Grids cover the urban townships only: the 36 街道 plus the towns listed in ``URBAN_TOWNS``:
the towns of the central districts that are built up (桃花镇, 青云谱镇, 南昌昌南工业园,
湖坊镇, 塘山镇, 京东镇, 艾溪湖管理处) and the four county seats (长凌镇 of 新建区, 莲塘镇
of 南昌县, 龙津镇 of 安义县, 民和镇 of 进贤县). 扬子洲镇 (a farmed river island) and
罗家镇 stay rural, with the other 66 towns and townships.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely

from geomap.seed import _communities, _geo
from geomap.seed._inputs import (
    CITY_CODE,
    CREDIT_CENSUS,
    CREDIT_CODES_2023,
    SOURCE_BOUNDARIES,
    SOURCE_UNITS,
    RealData,
)

#: The old city core (八一广场 area), centre of the density field.
CORE_LONLAT = (115.89, 28.68)

#: Approximate centres of the county seats (WGS84), by township code. They anchor density
#: bumps, and the township cell that holds one is given the seat's name.
SEATS: dict[str, tuple[float, float]] = {
    "360112100": (115.815, 28.692),  # 长凌镇 (长堎), seat of 新建区
    "360121100": (115.944, 28.548),  # 莲塘镇, seat of 南昌县
    "360123100": (115.549, 28.846),  # 龙津镇, seat of 安义县
    "360124110": (116.241, 28.376),  # 民和镇, seat of 进贤县
}

#: Towns (not 街道) that are treated as urban and covered with grids (see module docstring).
URBAN_TOWNS = frozenset(
    {
        "360103100",  # 桃花镇
        "360104100",  # 青云谱镇
        "360104400",  # 南昌昌南工业园
        "360111103",  # 湖坊镇
        "360111104",  # 塘山镇
        "360111106",  # 京东镇
        "360111490",  # 艾溪湖管理处
        *SEATS,
    }
)

N_GRIDS = 4_418  # urban community grids with a party branch

RURAL_DENSITY = 150.0  # people per km² in the countryside (the floor of the density field)

COARSE_SPACING_M = 300.0  # samples for townships and rural communities
FINE_SPACING_M = 60.0  # samples for urban communities and grids


@dataclass(frozen=True)
class DensityField:
    """A smooth synthetic population density (people per km²) over the city, in metres.

    A rural floor, an exponential peak on the old core, bumps around metro stations (the
    built-up corridors) and around the county seats. Only its shape matters: grid
    populations are scaled to the census total.
    """

    core: tuple[float, float]
    metro: np.ndarray
    seats: np.ndarray

    def __call__(self, x, y) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        d_core = np.hypot(x - self.core[0], y - self.core[1]) / 1000.0
        rho = RURAL_DENSITY + 24_000.0 * np.exp(-d_core / 2.5)
        near = np.zeros_like(x)
        nearest = np.full_like(x, np.inf)
        for mx, my in self.metro:  # ~100 stations: loop over them, vectorised over points
            d = np.hypot(x - mx, y - my) / 1000.0
            near += np.exp(-((d / 0.8) ** 2))
            np.minimum(nearest, d, out=nearest)
        # Station areas (capped where stations are close) and the urban fabric along lines.
        rho += 8_000.0 * np.minimum(near, 1.5) + 5_000.0 * np.exp(-((nearest / 3.0) ** 2))
        for sx, sy in self.seats:
            d = np.hypot(x - sx, y - sy) / 1000.0
            rho += 7_000.0 * np.exp(-((d / 1.8) ** 2))
        return rho


@dataclass(frozen=True)
class Admin:
    """The admin chain and grids in metres, plus what later steps place points with.

    Attributes
    ----------
    regions : pandas.DataFrame
        Columns of the ``regions`` table, geometry in ``geom`` (metres).
    townships, communities : pandas.DataFrame
        Per unit: ``code``, ``name``, parent codes, ``urban`` (covered by grids), the seed
        point ``x``/``y`` (inside the unit), mean density ``rho`` and ``geom`` (metres).
        Communities also have ``village`` (村 rather than 社区), ``population`` (from the
        density field), their real 2023 township (``township_2023_code``,
        ``township_2023_name``) and the matching ``rule`` (``_communities.RULES``).
    grids : pandas.DataFrame
        Columns of the ``grids`` table plus seed ``x``/``y``, ``township_code``,
        ``district_code`` and ``geom`` in metres.
    density : DensityField
        The density field the units were drawn from.
    city, urban : shapely geometry
        The city outline and the union of the urban townships, in metres.
    fine_x, fine_y, fine_rho : numpy.ndarray
        The fine samples of the urban area and their density (for placing points).
    """

    regions: pd.DataFrame
    townships: pd.DataFrame
    communities: pd.DataFrame
    grids: pd.DataFrame
    density: DensityField
    city: object
    urban: object
    fine_x: np.ndarray
    fine_y: np.ndarray
    fine_rho: np.ndarray

    def dense_points(
        self, n: int, rng: np.random.Generator, power: float = 1.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """``n`` distinct points of the urban area, drawn with probability ~ density**power.

        Each point is a fine sample moved at random within its sample cell (so points do
        not line up on the lattice), unless that would take it out of the urban area.
        """
        p = self.fine_rho**power
        pick = rng.choice(len(p), size=n, replace=False, p=p / p.sum())
        half = 0.45 * FINE_SPACING_M
        x = self.fine_x[pick] + rng.uniform(-half, half, n)
        y = self.fine_y[pick] + rng.uniform(-half, half, n)
        shapely.prepare(self.urban)
        outside = ~shapely.contains_xy(self.urban, x, y)
        x[outside], y[outside] = self.fine_x[pick][outside], self.fine_y[pick][outside]
        return x, y


def largest_remainder(total: int, weights, minimum: int = 0) -> np.ndarray:
    """Split ``total`` into integers proportional to ``weights`` that sum exactly to it.

    Every share gets at least ``minimum``; the rest is split by the largest-remainder
    method (Hamilton), which is deterministic and never off by more than one.
    """
    weights = np.asarray(weights, dtype=float)
    base = np.full(len(weights), minimum, dtype=np.int64)
    rest = total - base.sum()
    if rest < 0:
        raise ValueError(f"cannot give {minimum} to each of {len(weights)} shares of {total}")
    quota = rest * weights / weights.sum()
    share = np.floor(quota).astype(np.int64)
    left = int(rest - share.sum())
    # Ties are broken by position (stable sort), so the result is deterministic.
    order = np.argsort(-(quota - share), kind="stable")
    share[order[:left]] += 1
    return base + share


def _name_en(pinyin: str) -> str:
    """``"dong jia yao"`` -> ``"Dongjiayao"`` (the usual spelling of Chinese place names)."""
    return "".join(pinyin.split()).capitalize()


def _mean_by_cell(px, py, values, sx, sy) -> np.ndarray:
    """Mean of ``values`` over the samples of each Voronoi cell (seeds ``sx``/``sy``)."""
    label = _geo.nearest_centre(px, py, sx, sy)
    total = np.bincount(label, values, minlength=len(sx))
    count = np.bincount(label, minlength=len(sx))
    return np.where(count > 0, total / np.maximum(count, 1), 0.0)


def build(real: RealData, seed: int, rng: np.random.Generator) -> Admin:
    """Build the regions and grids (in metres) from the real outlines and unit names.

    Parameters
    ----------
    real : RealData
        The reference files.
    seed : int
        The dataset seed, for the ``source`` label.
    rng : numpy.random.Generator
        The source of randomness of this step.

    Returns
    -------
    Admin
        The regions, grids and helpers for the next steps.
    """
    synthetic = f"synthetic: geomap seed nanchang (seed {seed})"
    density = _density(real)
    districts = real.units[real.units["level"] == "district"].reset_index(drop=True)
    townships, coarse = _township_polygons(real, density, rng)
    fine = _fine_samples(townships, density)
    units = _attach(real, townships)
    communities = _partition_communities(townships, coarse, fine, units, rng)
    grids = _grids(communities, fine, real.census, rng)

    city = real.outline(CITY_CODE)
    rows = [
        {
            "code": CITY_CODE,
            "parent_code": None,
            "level": "city",
            "name": real.boundaries.loc[CITY_CODE, "name"],
            "name_en": "Nanchang",
            "geom": city,
            "source": SOURCE_BOUNDARIES,
        }
    ]
    for d in districts.itertuples():
        rows.append(
            {
                "code": d.code,
                "parent_code": CITY_CODE,
                "level": "district",
                "name": d.name,
                "name_en": _name_en(d.pinyin),
                "geom": real.outline(d.code),
                "source": SOURCE_BOUNDARIES,
            }
        )
    township_source = f"{synthetic}; polygons synthetic, names and codes real: {SOURCE_UNITS}"
    for t in townships.itertuples():
        rows.append(
            {
                "code": t.code,
                "parent_code": t.district_code,
                "level": "township",
                "name": t.name,
                "name_en": _name_en(t.pinyin),
                "geom": t.geom,
                "source": township_source,
            }
        )
    community_source = f"{synthetic}; polygons synthetic, names and codes real: {CREDIT_CODES_2023}"
    for c in communities.itertuples():
        rows.append(
            {
                "code": c.code,
                "parent_code": c.township_code,
                "level": "community",
                "name": c.name,
                "name_en": None,
                "geom": c.geom,
                "source": community_source,
            }
        )
    grid_source = (
        f"{synthetic}; polygons synthetic, named after real communities ({CREDIT_CODES_2023}); "
        f"population and households: district totals real ({CREDIT_CENSUS}), spread synthetic"
    )
    urban = shapely.union_all(townships.loc[townships["urban"], "geom"].to_numpy())
    return Admin(
        regions=pd.DataFrame(rows),
        townships=townships,
        communities=communities,
        grids=grids.assign(source=grid_source),
        density=density,
        city=city,
        urban=urban,
        fine_x=fine["x"],
        fine_y=fine["y"],
        fine_rho=fine["rho"],
    )


def _density(real: RealData) -> DensityField:
    return DensityField(
        core=tuple(float(v[0]) for v in _geo.lonlat_to_xy([CORE_LONLAT[0]], [CORE_LONLAT[1]])),
        metro=real.metro_xy,
        seats=np.column_stack(_geo.lonlat_to_xy(*np.array(list(SEATS.values())).T)),
    )


def _township_polygons(real: RealData, density: DensityField, rng: np.random.Generator):
    units = real.units
    districts = units[units["level"] == "district"].reset_index(drop=True)
    township_units = units[units["level"] == "township"].reset_index(drop=True)
    return _townships(real, districts, township_units, density, rng)


def _attach(real: RealData, townships: pd.DataFrame) -> pd.DataFrame:
    area_km2 = shapely.area(townships["geom"].to_numpy()) / 1e6
    return _communities.attach(
        townships,
        real.townships_2023,
        real.communities,
        dict(zip(townships["code"], area_km2, strict=True)),
    )


def match_communities(real: RealData, rng: np.random.Generator) -> pd.DataFrame:
    """The real units attached to the township polygons, exactly as :func:`build` does.

    Parameters
    ----------
    real : RealData
    rng : numpy.random.Generator
        A generator in the state :func:`build` gets it in (the same seed's admin stream):
        the township polygons are drawn first, with the same draws.

    Returns
    -------
    pandas.DataFrame
        :func:`geomap.seed._communities.attach`'s rows, plus ``polygon_name``.
    """
    townships, _ = _township_polygons(real, _density(real), rng)
    units = _attach(real, townships)
    names = townships.set_index("code")["name"]
    return units.assign(polygon_name=units["township_code"].map(names).to_numpy())


def _townships(
    real: RealData,
    districts: pd.DataFrame,
    township_units: pd.DataFrame,
    density: DensityField,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Partition each district into its townships; return them and the coarse samples.

    Seeds: first the urban townships' by density-weighted k-means, then the rural ones by
    area around them, so 街道 cells are a few km² near the core and rural townships tens of
    km². Names: a seat town takes the urban cell that holds its seat; then the densest urban
    cells go to the 街道, the others to the urban towns.
    """
    seat_xy = {code: _geo.lonlat_to_xy([lon], [lat]) for code, (lon, lat) in SEATS.items()}
    rows = []
    cx, cy, crho, ctown = [], [], [], []
    for d in districts.itertuples():
        outline = real.outline(d.code)
        sx, sy = _geo.lattice_in(outline, COARSE_SPACING_M)
        rho = density(sx, sy)
        members = township_units[township_units["parent_code"] == d.code]
        is_street = members["name"].str.endswith("街道").to_numpy()
        is_urban = is_street | members["code"].isin(URBAN_TOWNS).to_numpy()
        n_urban = int(is_urban.sum())
        # Two passes: urban seeds where people are (weights ~ squared density above the
        # rural level, zero in farmland), then rural seeds where they are not (weights
        # ~ 1 / density), so urban cells stay small even in a mostly rural district.
        urban_weight = np.clip(rho - 2 * RURAL_DENSITY, 0.0, None) ** 2
        urban_seeds = (
            _geo.kmeans_seeds(sx, sy, urban_weight, n_urban, rng) if n_urban else np.zeros(0, int)
        )
        rural_seeds = (
            _geo.kmeans_seeds(sx, sy, 1.0 / rho, len(members) - n_urban, rng, fixed=urban_seeds)
            if n_urban < len(members)
            else np.zeros(0, int)
        )
        seeds = np.concatenate([urban_seeds, rural_seeds])
        cells = _geo.partition(outline, sx[seeds], sy[seeds])
        cell_rho = _mean_by_cell(sx, sy, rho, sx[seeds], sy[seeds])

        # Name the cells: urban seeds come first, so cells below n_urban are the urban ones.
        order = np.argsort(-cell_rho, kind="stable")
        free = {True: [c for c in order if c < n_urban], False: [c for c in order if c >= n_urban]}
        assigned: dict[str, int] = {}
        for code in members["code"]:  # a seat town takes the urban cell holding its seat
            if code in seat_xy:
                cell = int(_geo.locate(*seat_xy[code], cells)[0])
                if cell in free[True]:
                    assigned[code] = cell
                    free[True].remove(cell)
        # Then, densest first: the 街道 (listed first), the urban towns, the rural towns.
        by_kind = sorted(
            zip(members["code"], is_street, is_urban, strict=True), key=lambda r: not r[1]
        )
        for code, _, urban in by_kind:
            if code not in assigned:
                assigned[code] = int(free[bool(urban)].pop(0))

        for t, street, urban in zip(members.itertuples(), is_street, is_urban, strict=True):
            cell = assigned[t.code]
            rows.append(
                {
                    "code": t.code,
                    "name": t.name,
                    "pinyin": t.pinyin,
                    "district_code": d.code,
                    "street": bool(street),
                    "urban": bool(urban),
                    "x": sx[seeds[cell]],
                    "y": sy[seeds[cell]],
                    "rho": cell_rho[cell],
                    "geom": cells[cell],
                }
            )
        where = _geo.locate(sx, sy, cells)
        code_of_cell = {cell: code for code, cell in assigned.items()}
        cx.append(sx)
        cy.append(sy)
        crho.append(rho)
        ctown.append(np.array([code_of_cell.get(int(w), "") for w in where], dtype=object))
    coarse = {
        "x": np.concatenate(cx),
        "y": np.concatenate(cy),
        "rho": np.concatenate(crho),
        "township": np.concatenate(ctown),
    }
    return pd.DataFrame(rows), coarse


def _fine_samples(townships: pd.DataFrame, density: DensityField) -> dict[str, np.ndarray]:
    """The fine sample lattice of the urban townships, with density and township code."""
    xs, ys, codes = [], [], []
    for t in townships[townships["urban"]].itertuples():
        fx, fy = _geo.lattice_in(t.geom, FINE_SPACING_M)
        xs.append(fx)
        ys.append(fy)
        codes.append(np.full(len(fx), t.code, dtype=object))
    x, y = np.concatenate(xs), np.concatenate(ys)
    return {"x": x, "y": y, "rho": density(x, y), "township": np.concatenate(codes)}


def _partition_communities(
    townships: pd.DataFrame,
    coarse: dict[str, np.ndarray],
    fine: dict[str, np.ndarray],
    units: pd.DataFrame,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Partition each township polygon into the real units attached to it.

    Urban townships are split on the fine samples with density weights (communities of
    similar population); rural ones on the coarse samples, nearly by area. The cells are
    given out densest first: residents' communities (社区 and the like) before villages
    (村), each in code order.
    """
    rows = []
    by_polygon = {code: group for code, group in units.groupby("township_code", sort=False)}
    # Sample indices by township, found once (not one scan of every sample per township).
    where = {
        kind: pd.Series(np.arange(len(samples["township"]))).groupby(samples["township"]).indices
        for kind, samples in (("fine", fine), ("coarse", coarse))
    }
    for t in townships.itertuples():
        members = by_polygon[t.code]
        members = members.sort_values(["village", "code"], kind="stable")
        k = len(members)
        samples = fine if t.urban else coarse
        mask = where["fine" if t.urban else "coarse"].get(t.code, np.zeros(0, dtype=np.int64))
        sx, sy, rho = samples["x"][mask], samples["y"][mask], samples["rho"][mask]
        if len(sx) < k:  # a small polygon with many units: sample it more finely
            sx, sy = _geo.lattice_in(t.geom, FINE_SPACING_M / 2)
            rho = _geo_density(samples, sx, sy)
        weights = rho if t.urban else rho**0.3
        seeds = _geo.kmeans_seeds(sx, sy, weights, k, rng)
        cells = _geo.partition(t.geom, sx[seeds], sy[seeds])
        cell_rho = _mean_by_cell(sx, sy, rho, sx[seeds], sy[seeds])
        cell_pop = shapely.area(cells) / 1e6 * cell_rho
        for unit, cell in zip(
            members.itertuples(), np.argsort(-cell_rho, kind="stable"), strict=True
        ):
            rows.append(
                {
                    "code": unit.code,
                    "name": unit.name,
                    "township_code": t.code,
                    "district_code": t.district_code,
                    "township_2023_code": unit.township_2023_code,
                    "township_2023_name": unit.township_2023_name,
                    "rule": unit.rule,
                    "urban": t.urban,
                    "village": unit.village,
                    "x": sx[seeds[cell]],
                    "y": sy[seeds[cell]],
                    "rho": cell_rho[cell],
                    "population": cell_pop[cell],
                    "geom": cells[cell],
                }
            )
    return pd.DataFrame(rows)


def _geo_density(samples: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Density at new points: that of the nearest existing sample."""
    nearest = _geo.nearest_centre(x, y, samples["x"], samples["y"])
    return samples["rho"][nearest]


def _grids(
    communities: pd.DataFrame,
    fine: dict[str, np.ndarray],
    census: pd.DataFrame,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Partition every urban community into grids, exactly ``N_GRIDS`` in all.

    Residents: each district's grids hold exactly its 2020 census population (all of its
    residents: grids are the only unit that carries people, so a district's rural
    residents are counted in its gridded townships) and its census households; inside a
    district the spread follows the synthetic density field. Grids are shared between
    districts by census population and between a district's communities by their
    synthetic population, and drawn with density-weighted k-means, so a grid holds
    roughly the same number of residents everywhere (smaller grids in the core).
    """
    urban = communities[communities["urban"]].reset_index(drop=True)
    districts = sorted(urban["district_code"].unique())
    per_district = largest_remainder(
        N_GRIDS, census.loc[districts, "population"].to_numpy(), minimum=1
    )
    counts = np.zeros(len(urban), dtype=np.int64)
    for district, n in zip(districts, per_district, strict=True):
        members = np.flatnonzero(urban["district_code"].to_numpy() == district)
        counts[members] = largest_remainder(
            int(n), urban["population"].to_numpy()[members], minimum=1
        )
    by_township = {
        code: np.flatnonzero(fine["township"] == code) for code in urban["township_code"].unique()
    }
    rows = []
    raw_pop = []
    cell_area_km2 = (FINE_SPACING_M / 1000) ** 2
    for c, k in zip(urban.itertuples(), counts, strict=True):
        pool = by_township[c.township_code]
        shapely.prepare(c.geom)
        inside = pool[shapely.contains_xy(c.geom, fine["x"][pool], fine["y"][pool])]
        sx, sy, rho = fine["x"][inside], fine["y"][inside], fine["rho"][inside]
        if len(sx) < k:  # a small community: sample it more finely
            sx, sy = _geo.lattice_in(c.geom, FINE_SPACING_M / 4)
            rho = _geo_density(fine, sx, sy)
        if len(sx) < k:
            raise RuntimeError(f"community {c.code} has {len(sx)} samples for {k} grids")
        seeds = _geo.kmeans_seeds(sx, sy, rho**0.8, int(k), rng)
        cells = _geo.partition(c.geom, sx[seeds], sy[seeds])
        label = _geo.nearest_centre(sx, sy, sx[seeds], sy[seeds])
        pop = np.bincount(label, rho, minlength=len(cells)) * cell_area_km2
        # Number grids north to south, then west to east, as a reader scans a map.
        order = np.lexsort((sx[seeds], -sy[seeds]))
        for n, cell in enumerate(order, start=1):
            rows.append(
                {
                    "code": f"{c.code}{n:03d}",
                    "name": f"{c.name}第{n}网格",
                    "community_code": c.code,
                    "township_code": c.township_code,
                    "district_code": c.district_code,
                    "x": sx[seeds[cell]],
                    "y": sy[seeds[cell]],
                    "geom": cells[cell],
                }
            )
            raw_pop.append(pop[cell])
    grids = pd.DataFrame(rows)
    raw = np.asarray(raw_pop) + 1e-9
    population = np.zeros(len(grids), dtype=np.int64)
    households = np.zeros(len(grids), dtype=np.int64)
    district_of = grids["district_code"].to_numpy()
    for district in districts:
        members = np.flatnonzero(district_of == district)
        population[members] = largest_remainder(
            int(census.loc[district, "population"]), raw[members]
        )
        # Households follow residents, with some spread between grids.
        spread = population[members] * rng.uniform(0.9, 1.1, len(members)) + 1e-9
        households[members] = largest_remainder(int(census.loc[district, "households"]), spread)
    grids["population"] = population
    grids["households"] = np.minimum(households, population)
    grids.insert(0, "id", np.arange(1, len(grids) + 1))
    return grids
