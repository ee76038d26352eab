"""The real communities and villages (2023 codes) attached to the 116 township polygons.

The township polygons (synthetic cells) carry the names and codes of an older edition of
the statistical division codes (``admin_units.csv``); the 2,263 village-level units come
from the 2023 edition (``real/communities_nbs2023.csv``), whose 139 township-level units
(``real/townships_nbs2023.csv``) were renamed, merged, split and renumbered since
(滕王阁街道 was 360102015 and is 360102002). Codes cannot be matched; a 2023 township is
matched to a polygon of the same district by name, and the units of the townships left
over are attached by the rules below, in this order (``RULES``; each unit's rule is kept
and listed in ``data/nanchang/community_matching.csv``):

``name``
    A polygon of the same district has the township's name.
``renamed``
    A polygon of the same district has its name once the level word is dropped
    (街道, 镇, 乡, ...) and variant characters are unified (``VARIANTS``): 桃花镇 became
    桃花街道, 长凌镇 (长堎镇) became 长堎街道.
``vacant``
    The district still has polygons that no 2023 township matched (older-edition
    townships merged away since): the units of the district's unmatched townships, in code
    order, are shared out over those polygons, in code order, in runs as equal as possible.
``district``
    Otherwise each unmatched township, in code order, goes whole to the polygon of its
    district that has the fewest units per km² so far, among the urban polygons for a
    街道 and among the rural ones for the other kinds (管理处, 垦殖场, 开发区...) when the
    district has any.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import pandas as pd

#: The matching rules, in the order they are tried, with the text PROVENANCE.md shows.
RULES: dict[str, str] = {
    "name": "a township polygon of the same district has the 2023 township's name",
    "renamed": "same name once the level word (街道/镇/乡...) is dropped and variant "
    "characters are unified (堎 = 凌): 桃花镇 → 桃花街道, 长凌镇 → 长堎街道",
    "vacant": "the 2023 township has no polygon; its units are shared out, in code order, "
    "over the district's polygons that no 2023 township matched (older-edition townships "
    "merged away since)",
    "district": "the 2023 township has no polygon and its district no vacant one; it goes "
    "whole to the district's polygon with the fewest units per km² so far (urban polygons "
    "for a 街道, rural ones for other kinds when the district has any)",
}

#: Variant characters unified before comparing names.
VARIANTS = str.maketrans({"堎": "凌"})
_LEVEL_WORD = re.compile(r"(街道|镇|乡|管理处)$")

#: Committee words dropped from a unit's official name: 民巷社区居委会 → 民巷社区.
_COMMITTEE = (
    (re.compile(r"社区居(?:民)?委(?:员)?会$"), "社区"),
    (re.compile(r"村(?:民)?委(?:员)?会$"), "村"),
)


def short_name(official: str) -> str:
    """A unit's name without its committee word (居委会/村委会); other names unchanged."""
    for pattern, replacement in _COMMITTEE:
        if pattern.search(official):
            return pattern.sub(replacement, official)
    return official


def _stem(name: str) -> str:
    return _LEVEL_WORD.sub("", name.translate(VARIANTS))


def match_townships(polygons: pd.DataFrame, townships_2023: pd.DataFrame) -> pd.DataFrame:
    """The 2023 townships matched to a polygon by the rules ``name`` and ``renamed``.

    Parameters
    ----------
    polygons : pandas.DataFrame
        The township polygons: ``code``, ``name``, ``district_code``.
    townships_2023 : pandas.DataFrame
        ``code``, ``name``, ``areaCode`` (``real/townships_nbs2023.csv``).

    Returns
    -------
    pandas.DataFrame
        One row per 2023 township: ``code``, ``name``, ``district_code``, ``polygon``
        (the polygon's code, or None) and ``rule`` (``name``, ``renamed`` or None).
    """
    out = townships_2023[["code", "name", "areaCode"]].rename(columns={"areaCode": "district_code"})
    out = out.sort_values("code").reset_index(drop=True)
    by_name = {(p.district_code, p.name): p.code for p in polygons.itertuples()}
    by_stem = {(p.district_code, _stem(p.name)): p.code for p in polygons.itertuples()}
    polygon, rule = [], []
    taken: set[str] = set()
    for t in out.itertuples():
        code = by_name.get((t.district_code, t.name))
        how = "name"
        if code is None or code in taken:
            code, how = by_stem.get((t.district_code, _stem(t.name))), "renamed"
        if code is None or code in taken:
            code, how = None, None
        if code is not None:
            taken.add(code)
        polygon.append(code)
        rule.append(how)
    return out.assign(polygon=polygon, rule=rule)


def attach(
    polygons: pd.DataFrame,
    townships_2023: pd.DataFrame,
    communities: pd.DataFrame,
    area_km2: Mapping[str, float],
) -> pd.DataFrame:
    """Every 2023 unit with the township polygon it lies in and the rule that put it there.

    Parameters
    ----------
    polygons : pandas.DataFrame
        The township polygons: ``code``, ``name``, ``district_code``, ``urban``.
    townships_2023 : pandas.DataFrame
        ``real/townships_nbs2023.csv``.
    communities : pandas.DataFrame
        ``real/communities_nbs2023.csv`` (``code``, ``name``, ``streetCode``,
        ``areaCode``).
    area_km2 : mapping
        Each polygon's area, by code (the ``district`` rule).

    Returns
    -------
    pandas.DataFrame
        One row per unit, in code order: ``code``, ``official_name``, ``name``
        (:func:`short_name`), ``village`` (a 村), ``district_code``,
        ``township_2023_code``, ``township_2023_name``, ``township_code`` (the polygon)
        and ``rule`` (a key of ``RULES``).

    Raises
    ------
    ValueError
        When a unit names a township the township file lacks, or a polygon is left
        without any unit (the generator needs at least one per polygon).
    """
    towns = match_townships(polygons, townships_2023)
    units = communities.sort_values("code").reset_index(drop=True)
    known = set(towns["code"])
    unknown = sorted(set(units["streetCode"]) - known)
    if unknown:
        raise ValueError(f"communities name townships not in the township file: {unknown}")
    town_of = towns.set_index("code")
    polygon = units["streetCode"].map(town_of["polygon"]).to_numpy(dtype=object)
    rule = units["streetCode"].map(town_of["rule"]).to_numpy(dtype=object)

    count = pd.Series(polygon).value_counts().to_dict()
    matched_polygons = set(towns["polygon"].dropna())
    for district, members in polygons.groupby("district_code", sort=True):
        open_towns = towns[(towns["district_code"] == district) & towns["polygon"].isna()]
        if open_towns.empty:
            continue
        vacant = sorted(set(members["code"]) - matched_polygons)
        rows = np.flatnonzero(units["streetCode"].isin(open_towns["code"]).to_numpy())
        if vacant:
            runs = np.array_split(rows, len(vacant))
            for code, run in zip(vacant, runs, strict=True):
                polygon[run] = code
                rule[run] = "vacant"
                count[code] = count.get(code, 0) + len(run)
            continue
        for town in open_towns.itertuples():
            urban = town.name.endswith("街道")
            pool = members[members["urban"] == urban]
            if pool.empty:
                pool = members
            load = [count.get(c, 0) / area_km2[c] for c in pool["code"]]
            target = pool["code"].iloc[int(np.argmin(load))]
            mine = rows[units["streetCode"].to_numpy()[rows] == town.code]
            polygon[mine] = target
            rule[mine] = "district"
            count[target] = count.get(target, 0) + len(mine)

    empty = sorted(set(polygons["code"]) - set(polygon))
    if empty:
        raise ValueError(f"township polygons without any 2023 unit: {empty}")
    names = units["name"].map(short_name)
    return pd.DataFrame(
        {
            "code": units["code"],
            "official_name": units["name"],
            "name": names,
            "village": names.str.endswith("村").to_numpy(),
            "district_code": units["areaCode"],
            "township_2023_code": units["streetCode"],
            "township_2023_name": units["streetCode"].map(town_of["name"]),
            "township_code": polygon,
            "rule": rule,
        }
    )
