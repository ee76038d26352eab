"""Service stations (党群服务阵地) and red culture sites (红色文化资源), in metres.

Stations are synthetic, sized to the real counts: one party-mass service centre per district,
township and community (2,000+ centres), 144 service complexes, 274 red stations near metro
stations and in dense blocks (business districts, office towers, markets), one grid station
per grid, and the neighbourhood rooms with the counts reported for Yiyang Ziyang. Sites: the
six real ones of ``red_sites.csv`` plus synthetic ones up to ``N_SITES``.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import shapely

from geomap import vocab
from geomap.seed import _geo
from geomap.seed._admin import Admin
from geomap.seed._inputs import SOURCE_RED_SITES, RealData

N_SERVICE_COMPLEXES = 144
N_RED_STATIONS = 274
RED_STATIONS_NEAR_METRO = 110  # the others sit in the densest blocks
#: Neighbourhood kinds with the counts reported for one district (Yiyang Ziyang).
NEIGHBOURHOOD_COUNTS = {
    "red_cabin": 35,
    "love_station": 8,
    "discussion_pavilion": 19,
    "elderly_canteen": 10,
    "book_house": 6,
}
_CODE_PREFIX = {
    "service_complex": "SC",
    "red_station": "RS",
    "red_cabin": "RC",
    "love_station": "LS",
    "discussion_pavilion": "DP",
    "elderly_canteen": "EC",
    "book_house": "BH",
}
_RED_STATION_SETTINGS = ("商圈", "写字楼", "农贸市场", "商场", "景区", "地铁口")

N_SITES = 100
#: Synthetic site kinds and counts (with the 6 real sites: N_SITES in all).
SITE_COUNTS = {
    "revolutionary_site": 28,
    "memorial_hall": 20,
    "education_base": 26,
    "red_village": 20,
}
_SITE_SUFFIXES = {
    "revolutionary_site": ("革命旧址", "农民协会旧址", "红军驻地旧址", "党支部旧址"),
    "memorial_hall": ("革命纪念馆", "烈士纪念馆", "党史陈列馆"),
    "education_base": ("红色教育基地", "党性教育基地", "青少年红色教育基地"),
}


class _Lookup:
    """Names and containing units of the admin chain, for labels and addresses."""

    def __init__(self, admin: Admin) -> None:
        self._communities = admin.communities["geom"].to_numpy()
        self._grids = admin.grids["geom"].to_numpy()
        regions = admin.regions.set_index("code")["name"]
        comms = admin.communities
        # "南昌市东湖区董家窑街道民巷社区": the address prefix of each community row, with
        # the community's own (2023) township, which its polygon's name may predate.
        self._addresses = [
            f"南昌市{regions[d]}{t}{n}"
            for d, t, n in zip(
                comms["district_code"], comms["township_2023_name"], comms["name"], strict=True
            )
        ]

    def units_at(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row index of the community and of the grid holding each point (grid -1: none).

        Communities tile the city, so every point placed in the city has one.
        """
        communities = _geo.locate(x, y, self._communities)
        if (communities < 0).any():
            raise RuntimeError(f"{(communities < 0).sum()} points fell outside the city")
        return communities, _geo.locate(x, y, self._grids)

    def address(self, community_row: int) -> str:
        """A synthetic address: city, district, township and community names."""
        return self._addresses[community_row]


def _short(name: str) -> str:
    """A community name without its 社区/村 suffix, to prefix other names with."""
    for suffix in ("社区", "村"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _unique(names: list[str]) -> list[str]:
    """Number repeated names (``XX红色驿站``, ``XX红色驿站2号``) so each one is distinct."""
    seen: Counter[str] = Counter()
    result = []
    for name in names:
        seen[name] += 1
        result.append(name if seen[name] == 1 else f"{name}{seen[name]}号")
    return result


def build_stations(admin: Admin, real: RealData, seed: int, rng: np.random.Generator):
    """Build the ``stations`` rows (metres) in a fixed kind order, ids 1..n.

    Parameters
    ----------
    admin : Admin
        The regions and grids.
    real : RealData
        The reference files (metro stations anchor the red stations).
    seed : int
        The dataset seed, for the ``source`` label.
    rng : numpy.random.Generator
        The source of randomness of this step.

    Returns
    -------
    pandas.DataFrame
        The ``stations`` columns with ``x``/``y`` in metres instead of ``geom``, plus
        ``home_grid_code``: the grid each point lies in (also for centres, whose
        ``grid_code`` stays empty because they serve a whole unit).
    """
    lookup = _Lookup(admin)
    parts: list[pd.DataFrame] = []

    # Party-mass service centres: one per district, township and community. A community's
    # centre stands at its seed (its densest part); a township's and a district's at a
    # random point of the seed's community, so that centres of different levels differ.
    towns = admin.townships
    comms = admin.communities
    district_regions = admin.regions[admin.regions["level"] == "district"]
    densest_town = towns.loc[towns.groupby("district_code")["rho"].idxmax()]
    densest_town = densest_town.set_index("district_code").loc[district_regions["code"]]
    dx, dy = _geo.random_points_in(
        np.array(
            [_community_at(admin, t.x, t.y)["geom"] for t in densest_town.itertuples()],
            dtype=object,
        ),
        rng,
    )
    parts.append(
        pd.DataFrame(
            {
                "code": "CD" + district_regions["code"].to_numpy(),
                "name": district_regions["name"].to_numpy() + "党群服务中心",
                "kind": "centre_district",
                "region_code": district_regions["code"].to_numpy(),
                "x": dx,
                "y": dy,
            }
        )
    )
    tx, ty = _geo.random_points_in(
        np.array(
            [_community_at(admin, t.x, t.y)["geom"] for t in towns.itertuples()], dtype=object
        ),
        rng,
    )
    parts.append(
        pd.DataFrame(
            {
                "code": "CT" + towns["code"],
                "name": towns["name"] + "党群服务中心",
                "kind": "centre_township",
                "region_code": towns["code"],
                "x": tx,
                "y": ty,
            }
        )
    )
    parts.append(
        pd.DataFrame(
            {
                "code": "CC" + comms["code"],
                "name": comms["name"] + "党群服务中心",
                "kind": "centre_community",
                "region_code": comms["code"],
                "x": comms["x"],
                "y": comms["y"],
            }
        )
    )

    # Service complexes: one each in urban communities drawn by population.
    urban = comms[comms["urban"]]
    weight = urban["population"].to_numpy()
    chosen = urban.iloc[
        np.sort(rng.choice(len(urban), N_SERVICE_COMPLEXES, replace=False, p=weight / weight.sum()))
    ]
    sx, sy = _geo.random_points_in(chosen["geom"].to_numpy(), rng)
    parts.append(
        _free_kind(
            "service_complex", sx, sy, [f"{_short(n)}党群服务综合体" for n in chosen["name"]]
        )
    )

    # Red stations: near metro stations (business districts, malls), the rest in the
    # densest blocks (office towers, markets).
    n_metro = RED_STATIONS_NEAR_METRO
    station = rng.integers(0, len(real.metro_xy), n_metro)
    angle = rng.uniform(0, 2 * np.pi, n_metro)
    radius = rng.uniform(60, 400, n_metro)
    mx = real.metro_xy[station, 0] + radius * np.cos(angle)
    my = real.metro_xy[station, 1] + radius * np.sin(angle)
    metro_names = [
        f"{real.metro['name'].iloc[s]}{_pick(_RED_STATION_SETTINGS[:2], rng)}" for s in station
    ]
    bx, by = admin.dense_points(N_RED_STATIONS - n_metro, rng, power=2.0)
    rows, _ = lookup.units_at(bx, by)
    block_names = [
        f"{_short(comms['name'].iloc[r])}{_pick(_RED_STATION_SETTINGS, rng)}" for r in rows
    ]
    parts.append(
        _free_kind(
            "red_station",
            np.concatenate([mx, bx]),
            np.concatenate([my, by]),
            [f"{n}红色驿站" for n in metro_names + block_names],
        )
    )

    # Grid stations: one per grid, anywhere in it.
    grids = admin.grids
    gx, gy = _geo.random_points_in(grids["geom"].to_numpy(), rng)
    parts.append(
        pd.DataFrame(
            {
                "code": "GS" + grids["code"],
                "name": grids["name"] + "党群服务站",
                "kind": "grid_station",
                "region_code": grids["community_code"],
                "grid_code": grids["code"],
                "x": gx,
                "y": gy,
            }
        )
    )

    # Neighbourhood rooms: in dense blocks, named after their community.
    for kind, count in NEIGHBOURHOOD_COUNTS.items():
        nx_, ny_ = admin.dense_points(count, rng)
        rows, _ = lookup.units_at(nx_, ny_)
        label = vocab.STATION_KINDS[kind].zh
        parts.append(
            _free_kind(kind, nx_, ny_, [f"{_short(comms['name'].iloc[r])}{label}" for r in rows])
        )

    stations = pd.concat(parts, ignore_index=True)
    stations["name"] = _unique(stations["name"].tolist())
    community_row, grid_row = lookup.units_at(stations["x"].to_numpy(), stations["y"].to_numpy())
    grid_codes = grids["code"].to_numpy()
    home_grid = np.where(grid_row >= 0, grid_codes[np.maximum(grid_row, 0)], None)
    # Points placed freely get their community (and grid) from where they fell.
    free = stations["region_code"].isna().to_numpy()
    stations.loc[free, "region_code"] = comms["code"].to_numpy()[community_row[free]]
    # Stations below the community level belong to the grid they stand in; centres serve
    # a whole unit and keep no grid.
    below_community = ~stations["kind"].str.startswith("centre_").to_numpy()
    stations["grid_code"] = np.where(below_community, home_grid, None)
    stations["home_grid_code"] = home_grid
    stations["address"] = [lookup.address(r) for r in community_row]
    stations["source"] = f"synthetic: geomap seed nanchang (seed {seed})"
    stations.insert(0, "id", np.arange(1, len(stations) + 1))
    return stations


def _community_at(admin: Admin, x: float, y: float) -> pd.Series:
    row = int(_geo.locate(np.array([x]), np.array([y]), admin.communities["geom"].to_numpy())[0])
    return admin.communities.iloc[row]


def _pick(options: tuple[str, ...], rng: np.random.Generator) -> str:
    return options[int(rng.integers(len(options)))]


def _free_kind(kind: str, x: np.ndarray, y: np.ndarray, names: list[str]) -> pd.DataFrame:
    """Rows of a kind placed freely (its region is found from the point later)."""
    prefix = _CODE_PREFIX[kind]
    return pd.DataFrame(
        {
            "code": [f"{prefix}{i:04d}" for i in range(1, len(x) + 1)],
            "name": names,
            "kind": kind,
            "region_code": None,
            "x": x,
            "y": y,
        }
    )


def build_sites(admin: Admin, real: RealData, seed: int, rng: np.random.Generator):
    """Build the ``sites`` rows (metres): the real red sites, then synthetic ones.

    Synthetic revolutionary sites cluster in the old core (as the real ones do), memorial
    halls and education bases follow population, red villages are rural villages.

    Returns
    -------
    pandas.DataFrame
        The ``sites`` columns with ``x``/``y`` in metres instead of ``geom``.
    """
    lookup = _Lookup(admin)
    comms = admin.communities
    red = real.red_sites
    real_rows = pd.DataFrame(
        {
            "name": red["name"],
            "kind": red["kind"],
            # The real district, not a synthetic community: the region a real site is
            # known to lie in.
            "region_code": red["district_code"],
            "address": red["address"],
            "coord_quality": red["coord_quality"],
            "x": red["x"],
            "y": red["y"],
            "source": SOURCE_RED_SITES,
        }
    )

    xs, ys, kinds, names = [], [], [], []
    # Revolutionary sites: around the old core, where the real ones are.
    n = SITE_COUNTS["revolutionary_site"]
    cx, cy = admin.density.core
    px, py = cx + rng.normal(0, 1500, 10 * n), cy + rng.normal(0, 1500, 10 * n)
    shapely.prepare(admin.urban)
    keep = np.flatnonzero(shapely.contains_xy(admin.urban, px, py))[:n]
    if len(keep) < n:
        raise RuntimeError("the old core is not urban: check the township partition")
    xs.append(px[keep])
    ys.append(py[keep])
    kinds += ["revolutionary_site"] * n
    for kind in ("memorial_hall", "education_base"):
        n = SITE_COUNTS[kind]
        px, py = admin.dense_points(n, rng, power=0.5)
        xs.append(px)
        ys.append(py)
        kinds += [kind] * n
    # Red villages: rural villages, at their seed.
    villages = comms[comms["village"] & ~comms["urban"]]
    pick = rng.choice(len(villages), SITE_COUNTS["red_village"], replace=False)
    xs.append(villages["x"].to_numpy()[pick])
    ys.append(villages["y"].to_numpy()[pick])
    kinds += ["red_village"] * len(pick)

    x, y = np.concatenate(xs), np.concatenate(ys)
    rows, _ = lookup.units_at(x, y)
    for kind, r in zip(kinds, rows, strict=True):
        community = comms["name"].iloc[r]
        if kind == "red_village":
            names.append(community)
        else:
            names.append(f"{_short(community)}{_pick(_SITE_SUFFIXES[kind], rng)}")
    synthetic_rows = pd.DataFrame(
        {
            "name": names,
            "kind": kinds,
            "region_code": comms["code"].to_numpy()[rows],
            "address": [lookup.address(r) for r in rows],
            "coord_quality": None,
            "x": x,
            "y": y,
            "source": f"synthetic: geomap seed nanchang (seed {seed})",
        }
    )
    sites = pd.concat([real_rows, synthetic_rows], ignore_index=True)
    sites["name"] = _unique(sites["name"].tolist())
    sites.insert(0, "code", [f"SITE{i:04d}" for i in range(1, len(sites) + 1)])
    sites.insert(0, "id", np.arange(1, len(sites) + 1))
    return sites
