"""Validation of user-given values, shared by every layer of the package: every error
names the parameter at fault."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from geomap.errors import InvalidInput

MODES = ("distance", "walk", "drive")


def check_finite(value: Any, name: str) -> float:
    """A finite number (a missing, non-numeric, NaN or infinite value names ``name``)."""
    if value is None:
        raise InvalidInput(f"{name} is required", field=name)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{name} must be a number, got {value!r}", field=name) from None
    if not math.isfinite(number):
        raise InvalidInput(f"{name} must be a finite number, got {value!r}", field=name)
    return number


def check_lonlat(lon: Any, lat: Any) -> tuple[float, float]:
    """Finite longitude in [-180, 180] and latitude in [-90, 90], as floats."""
    values = []
    for name, value, bound in (("lon", lon, 180.0), ("lat", lat, 90.0)):
        number = check_finite(value, name)
        if abs(number) > bound:
            raise InvalidInput(
                f"{name}={number} is out of range [-{bound:g}, {bound:g}]", field=name
            )
        values.append(number)
    return values[0], values[1]


def check_int(value: Any, name: str, lo: int, hi: int) -> int:
    """An integer within [lo, hi]."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{name} must be an integer, got {value!r}", field=name) from None
    if isinstance(value, float) and not value.is_integer():
        raise InvalidInput(f"{name} must be an integer, got {value!r}", field=name)
    if not lo <= number <= hi:
        raise InvalidInput(f"{name}={number} is out of range [{lo}, {hi}]", field=name)
    return number


def check_positive(value: Any, name: str, hi: float) -> float:
    """A finite number in (0, hi]."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{name} must be a number, got {value!r}", field=name) from None
    if not math.isfinite(number) or not 0 < number <= hi:
        raise InvalidInput(f"{name}={value} must be greater than 0 and at most {hi:g}", field=name)
    return number


def check_choice(value: str, name: str, allowed: Iterable[str]) -> str:
    """One value of a closed list."""
    allowed = list(allowed)
    if value not in allowed:
        raise InvalidInput(
            f"unknown {name} {value!r}; expected one of: {', '.join(allowed)}", field=name
        )
    return value


def check_choices(
    values: Iterable[str] | None, name: str, allowed: Mapping[str, Any] | Iterable[str]
) -> list[str] | None:
    """Zero or more values of a closed list (None or empty: no filter)."""
    if not values:
        return None
    allowed = list(allowed)
    return [check_choice(v, name, allowed) for v in values]


def metric_srid(lon: float, lat: float) -> int:
    """EPSG code of the UTM zone holding (lon, lat): a metric CRS for areas and buffers.

    Nanchang (115.4-116.6 E) falls in UTM zone 50N, EPSG:32650.
    """
    zone = min(60, max(1, int((lon + 180) // 6) + 1))
    return (32600 if lat >= 0 else 32700) + zone
