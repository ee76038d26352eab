"""Teams (units that move), sized to the reported Nanchang figures, in metres.

* The four "洪城红" emergency teams (medical staff, party members of government organs,
  youth, veterans): 12,000 people in all, in squads of 10-30 based at stations.
* One "洪城红管家" steward team per grid, 60,000+ people in all, based at the grid station.
* 32 "洪城红骑士团" courier rider teams (1,200 couriers) and 600 "党员红旗车" cars (one or two
  people each), positioned anywhere in the urban area.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import shapely

from geomap.seed import _names
from geomap.seed._admin import Admin, largest_remainder

#: kind -> (the parent team, which squads name as their ``unit``; people in the team).
EMERGENCY_TEAMS: dict[str, tuple[str, int]] = {
    "medical": ("洪城红医护应急队", 2_800),
    "organ_party": ("洪城红机关党员应急队", 3_600),
    "youth": ("洪城红青年应急队", 3_200),
    "veteran": ("洪城红退役军人应急队", 2_400),
}
SQUAD_SIZE = (10, 30)
#: Station kinds each emergency kind is based at.
EMERGENCY_BASES: dict[str, tuple[str, ...]] = {
    "medical": ("centre_community", "centre_township"),
    "organ_party": ("centre_district", "centre_township", "service_complex"),
    "youth": ("red_station", "service_complex", "centre_community"),
    "veteran": ("centre_community", "centre_township", "service_complex"),
}
STEWARD_UNIT = "洪城红管家"
STEWARD_TOTAL = 61_200
RIDER_UNIT = "洪城红骑士团"
N_RIDER_TEAMS = 32
N_RIDERS = 1_200
CAR_UNIT = "党员红旗车"
N_CARS = 600

#: Capabilities by kind: the first two always, each of the others for about half the teams.
CAPABILITIES: dict[str, tuple[str, ...]] = {
    "medical": ("first_aid", "triage", "medical_care", "epidemic_control"),
    "organ_party": ("coordination", "publicity", "logistics", "registration"),
    "youth": ("volunteer", "logistics", "patrol", "fire_patrol"),
    "veteran": ("rescue", "flood_control", "patrol", "drought_relief"),
    "steward": ("patrol", "hazard_report", "resident_service", "elderly_care"),
    "rider": ("delivery", "hazard_report", "patrol"),
    "red_flag_car": ("transport", "escort"),
}
_CODE_PREFIX = {
    "medical": "MED",
    "organ_party": "ORG",
    "youth": "YTH",
    "veteran": "VET",
    "steward": "STW",
    "rider": "RDR",
    "red_flag_car": "CAR",
}
STATUSES = ("available", "deployed", "off_duty")
STATUS_SHARES = (0.80, 0.12, 0.08)
#: The moment the positions describe; each team was last seen some minutes before it.
SNAPSHOT = pd.Timestamp("2026-11-23 08:00", tz="Asia/Shanghai")


def split_total(total: int, n: int, low: int, high: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random integers in ``[low, high]`` that sum exactly to ``total``."""
    if not n * low <= total <= n * high:
        raise ValueError(f"{total} cannot be split in {n} parts of {low}-{high}")
    parts = rng.integers(low, high + 1, n)
    # Move one unit at a time from/to random parts that still have room (a few hundred
    # steps at most), so the parts stay in bounds and look random.
    while (diff := total - int(parts.sum())) != 0:
        step = 1 if diff > 0 else -1
        room = np.flatnonzero(parts < high) if step > 0 else np.flatnonzero(parts > low)
        chosen = rng.choice(room, size=min(abs(diff), len(room)), replace=False)
        parts[chosen] += step
    return parts


def _capabilities(kind: str, n: int, rng: np.random.Generator) -> list[list[str]]:
    core, extra = CAPABILITIES[kind][:2], CAPABILITIES[kind][2:]
    has = rng.random((n, len(extra))) < 0.5
    return [list(core) + [e for e, h in zip(extra, row, strict=True) if h] for row in has]


def _near(
    x: np.ndarray,
    y: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    city,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Points at a random distance in ``[low, high]`` metres from each point, in the city."""
    angle = rng.uniform(0, 2 * np.pi, len(x))
    radius = rng.uniform(low, high)
    px, py = x + radius * np.cos(angle), y + radius * np.sin(angle)
    shapely.prepare(city)
    outside = ~shapely.contains_xy(city, px, py)
    px[outside], py[outside] = x[outside], y[outside]
    return px, py


def build(admin: Admin, stations: pd.DataFrame, seed: int, rng: np.random.Generator):
    """Build the ``teams`` rows (metres), ids 1..n: emergency squads, stewards, riders, cars.

    Parameters
    ----------
    admin : Admin
        The regions and grids.
    stations : pandas.DataFrame
        The stations (bases), as built by ``_places.build_stations``.
    seed : int
        The dataset seed, for the ``source`` label.
    rng : numpy.random.Generator
        The source of randomness of this step.

    Returns
    -------
    pandas.DataFrame
        The ``teams`` columns with ``x``/``y`` (last position) and ``base_x``/``base_y``
        in metres instead of ``geom``/``base_geom``.
    """
    parts = [_emergency(admin, stations, rng), _stewards(admin, stations, rng)]
    parts.append(_mobile(admin, "rider", split_total(N_RIDERS, N_RIDER_TEAMS, 30, 45, rng), rng))
    cars = np.where(rng.random(N_CARS) < 0.7, 1, 2)
    parts.append(_mobile(admin, "red_flag_car", cars, rng))
    teams = pd.concat(parts, ignore_index=True)

    n = len(teams)
    teams["status"] = rng.choice(STATUSES, size=n, p=STATUS_SHARES)
    capabilities: list[list[str]] = [[] for _ in range(n)]
    for kind in teams["kind"].unique():
        rows = np.flatnonzero(teams["kind"].to_numpy() == kind)
        for row, values in zip(rows, _capabilities(kind, len(rows), rng), strict=True):
            capabilities[row] = values
    teams["capabilities"] = pd.Series(capabilities, dtype=object)
    # Last positions: near the base, farther for deployed teams; mobile teams move all
    # day, so their position is recent and already spread (no base).
    has_base = teams["base_x"].notna().to_numpy()
    deployed = teams["status"].to_numpy() == "deployed"
    low = np.where(deployed, 500.0, 0.0)
    high = np.where(deployed, 3_000.0, 150.0)
    bx = teams["base_x"].to_numpy(dtype=float)
    by = teams["base_y"].to_numpy(dtype=float)
    px, py = _near(bx[has_base], by[has_base], low[has_base], high[has_base], admin.city, rng)
    teams.loc[has_base, "x"] = px
    teams.loc[has_base, "y"] = py
    minutes = np.where(has_base, rng.uniform(0, 720, n), rng.uniform(0, 15, n))
    teams["position_at"] = SNAPSHOT - pd.to_timedelta(np.round(minutes, 1), unit="min")
    teams["leader_name"] = _names.person_names(n, rng)
    teams["leader_phone"] = _names.phone_numbers(n, rng)
    teams["source"] = f"synthetic: geomap seed nanchang (seed {seed})"
    teams.insert(0, "id", np.arange(1, n + 1))
    return teams


def _emergency(admin: Admin, stations: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Squads of the four emergency teams, each based at a station of a fitting kind."""
    region_name = admin.regions.set_index("code")["name"]
    community_town = admin.communities.set_index("code")["township_code"]
    taken: set[int] = set()
    parts = []
    for kind, (unit, total) in EMERGENCY_TEAMS.items():
        n = round(total / np.mean(SQUAD_SIZE))
        heads = split_total(total, n, *SQUAD_SIZE, rng)
        candidates = stations[
            stations["kind"].isin(EMERGENCY_BASES[kind]) & ~stations["id"].isin(taken)
        ]
        # Most squads sit in the urban area (where people are), some in the countryside
        # for drought relief and flood control.
        weight = np.where(candidates["home_grid_code"].notna(), 3.0, 1.0)
        base = candidates.iloc[
            rng.choice(len(candidates), n, replace=False, p=weight / weight.sum())
        ]
        taken.update(base["id"].tolist())
        counter: Counter[str] = Counter()
        names = []
        for code in base["region_code"]:
            # Squads are named after the township they are based in (the district for a
            # district centre): region codes have 6, 9 or 12 digits.
            label = region_name[code if len(code) <= 9 else community_town[code]]
            counter[label] += 1
            names.append(f"{unit}{label}第{counter[label]}分队")
        parts.append(
            pd.DataFrame(
                {
                    "name": names,
                    "kind": kind,
                    "unit": unit,
                    "headcount": heads,
                    "home_grid_code": base["home_grid_code"].to_numpy(),
                    "base_station_id": base["id"].to_numpy(),
                    "base_x": base["x"].to_numpy(),
                    "base_y": base["y"].to_numpy(),
                }
            )
        )
    frame = pd.concat(parts, ignore_index=True)
    return _with_codes(frame)


def _stewards(admin: Admin, stations: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """One steward team per grid, sized by the grid's population, at its grid station."""
    grids = admin.grids
    heads = largest_remainder(STEWARD_TOTAL, grids["population"].to_numpy(), minimum=3)
    base = stations[stations["kind"] == "grid_station"].set_index("grid_code").loc[grids["code"]]
    frame = pd.DataFrame(
        {
            "name": (grids["name"] + STEWARD_UNIT + "队").to_numpy(),
            "kind": "steward",
            "unit": STEWARD_UNIT,
            "headcount": heads,
            "home_grid_code": grids["code"].to_numpy(),
            "base_station_id": base["id"].to_numpy(),
            "base_x": base["x"].to_numpy(),
            "base_y": base["y"].to_numpy(),
        }
    )
    return _with_codes(frame)


def _mobile(admin: Admin, kind: str, heads: np.ndarray, rng: np.random.Generator):
    """Teams with no base (riders, cars): somewhere in the urban area, where people are."""
    n = len(heads)
    x, y = admin.dense_points(n, rng)
    if kind == "rider":
        names = [f"{RIDER_UNIT}第{i}分团" for i in range(1, n + 1)]
        unit = RIDER_UNIT
    else:
        names = [f"{CAR_UNIT}{i:03d}号" for i in range(1, n + 1)]
        unit = CAR_UNIT
    frame = pd.DataFrame(
        {
            "name": names,
            "kind": kind,
            "unit": unit,
            "headcount": heads,
            "home_grid_code": None,
            "base_station_id": None,
            "base_x": np.nan,
            "base_y": np.nan,
            "x": x,
            "y": y,
        }
    )
    return _with_codes(frame)


def _with_codes(frame: pd.DataFrame) -> pd.DataFrame:
    prefix = frame["kind"].map(_CODE_PREFIX)
    number = frame.groupby("kind").cumcount() + 1
    frame.insert(0, "code", prefix + number.map("{:05d}".format))
    return frame
