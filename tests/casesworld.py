"""A small world for the command loop's tests (synthetic, labelled so).

The hand-built road network (``tests/handmade.py``, about 1 km square in Nanchang), an
admin chain over it (city → district → township → two communities), two grids splitting
the network east and west, teams of several kinds on the streets, one API key per role
plus a second commander, and a clock the tests move by hand.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import sqlalchemy as sa

from geomap import auth
from tests import handmade

SOURCE = "synthetic: tests/casesworld.py"
START = dt.datetime(2026, 11, 20, 8, 0, tzinfo=dt.UTC)
#: A point in the city but in no grid and no community: its township takes the case.
OUTSIDE_GRIDS = (115.95, 28.70)
#: A point outside the city.
OUTSIDE_CITY = (117.5, 30.0)

_REGIONS = [
    ("360199", None, "city", "测试市", (115.85, 28.60, 116.0, 28.75)),
    ("360198", "360199", "district", "测试区", (115.85, 28.60, 116.0, 28.75)),
    ("360198001", "360198", "township", "测试街道", (115.85, 28.60, 116.0, 28.75)),
    ("360198001001", "360198001", "community", "西社区", (115.899, 28.659, 115.9045, 28.670)),
    ("360198001002", "360198001", "community", "东社区", (115.9045, 28.659, 115.910, 28.670)),
]
_GRIDS = [
    ("G-WEST", "西网格", "360198001001", 900, (115.899, 28.659, 115.9045, 28.670)),
    ("G-EAST", "东网格", "360198001002", 1200, (115.9045, 28.659, 115.910, 28.670)),
]
#: name → (kind, capabilities, lattice column, row)
TEAMS = {
    "med1": ("medical", ["first_aid"], 1, 1),
    "med2": ("medical", ["first_aid"], 7, 7),
    "med3": ("medical", ["first_aid"], 3, 5),
    "vet1": ("veteran", ["rescue", "patrol"], 3, 8),
    "yth1": ("youth", ["patrol"], 6, 2),
    "stw1": ("steward", ["patrol", "hazard_report"], 2, 2),
    "stw2": ("steward", ["patrol", "hazard_report"], 8, 3),
    "car1": ("red_flag_car", ["transport"], 5, 5),
}


class Clock:
    """A clock the test moves: ``clock()`` is now; ``clock.advance(minutes=...)``."""

    def __init__(self, start: dt.datetime = START):
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> dt.datetime:
        self.now = self.now + dt.timedelta(**delta)
        return self.now


@dataclass
class World:
    teams: dict[str, int]
    keys: dict[str, str]
    key_names: dict[str, str]
    clock: Clock = field(default_factory=Clock)

    def headers(self, who: str = "commander") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}


def point(col: float, row: float) -> tuple[float, float]:
    """lon/lat of a lattice position of the hand-built network (fractions allowed)."""
    return handmade.ORIGIN[0] + col * handmade.STEP_DEG, handmade.ORIGIN[
        1
    ] + row * handmade.STEP_DEG


def build(conn, *, with_network: bool = True) -> World:
    """Write the world into ``conn``'s transaction."""
    if with_network:
        handmade.load(conn)
    for code, parent, level, name, box in _REGIONS:
        conn.execute(
            sa.text(
                "INSERT INTO regions (code, parent_code, level, name, geom, source) VALUES "
                "(:code, :parent, :level, :name, ST_Multi(ST_MakeEnvelope(:x0, :y0, :x1, :y1, "
                "4326)), :source)"
            ),
            {
                "code": code,
                "parent": parent,
                "level": level,
                "name": name,
                "x0": box[0],
                "y0": box[1],
                "x1": box[2],
                "y1": box[3],
                "source": SOURCE,
            },
        )
    for code, name, community, population, box in _GRIDS:
        conn.execute(
            sa.text(
                "INSERT INTO grids (code, name, community_code, population, households, geom, "
                "source) VALUES (:code, :name, :community, :population, 0, "
                "ST_Multi(ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)), :source)"
            ),
            {
                "code": code,
                "name": name,
                "community": community,
                "population": population,
                "x0": box[0],
                "y0": box[1],
                "x1": box[2],
                "y1": box[3],
                "source": SOURCE,
            },
        )
    teams = {}
    for name, (kind, caps, col, row) in TEAMS.items():
        lon, lat = point(col, row)
        teams[name] = conn.execute(
            sa.text(
                "INSERT INTO teams (code, name, kind, headcount, capabilities, leader_name, "
                "leader_phone, geom, position_at, source) VALUES (:code, :name, :kind, 10, "
                ":caps, '队长', '13800000000', ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), "
                ":at, :source) RETURNING id"
            ),
            {
                "code": name.upper(),
                "name": name,
                "kind": kind,
                "caps": caps,
                "lon": lon,
                "lat": lat,
                "at": START - dt.timedelta(hours=1),
                "source": SOURCE,
            },
        ).scalar_one()
    keys, names = {}, {}
    for who, role in (
        ("commander", "commander"),
        ("checker", "commander"),
        ("planner", "planner"),
        ("viewer", "viewer"),
    ):
        names[who] = f"{who} of the test"
        keys[who] = auth.create_key(conn, names[who], role)[0]
    return World(teams, keys, names)
