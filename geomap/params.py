"""Validation of user-given values, shared by every layer of the package: every error
names the parameter at fault."""

from __future__ import annotations

import datetime as dt
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


# -- values of the command loop (cases, dispatches, positions) -------------------------------
#: Largest id a table's ``integer`` key can hold; larger ids name nothing.
MAX_ID = 2**31 - 1
#: China Standard Time (UTC+8): the city's clock, for dates given without a zone (query
#: strings, registers), never for devices' fixes (those must say their zone).
CST = dt.timezone(dt.timedelta(hours=8), "CST")
#: Times the service accepts: anything earlier or later is a typo or a broken clock.
EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)


def check_text(
    value: Any, name: str, max_length: int, *, required: bool = False
) -> str | None:
    """Text a person typed: stripped, at most ``max_length`` characters, no NUL or other
    control characters (line breaks and tabs allowed), no unpaired surrogates. Empty or
    missing is None (an error when ``required``)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidInput(f"{name} is required", field=name)
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be text, got {type(value).__name__}", field=name)
    text = value.strip()
    if len(text) > max_length:
        raise InvalidInput(
            f"{name} is {len(text):,} characters long; at most {max_length:,} are allowed",
            field=name,
        )
    bad = next((c for c in text if (ord(c) < 32 and c not in "\n\t\r") or ord(c) == 127), None)
    if bad is not None:
        raise InvalidInput(f"{name} holds a control character (U+{ord(bad):04X})", field=name)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{name} is not valid Unicode text (a lone surrogate)",
                           field=name) from None  # fmt: skip
    return text


def check_datetime(
    value: Any, name: str, *, default_tz: dt.tzinfo | None = None
) -> dt.datetime:
    """An ISO 8601 date-time with a time zone (or ``default_tz`` when it has none),
    between 2000 and 2100, as an aware datetime."""
    if isinstance(value, dt.datetime):
        when = value
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            when = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise InvalidInput(
                f"{name} {text[:40]!r} is not an ISO 8601 date-time "
                "(e.g. 2026-11-23T08:00:00+08:00)",
                field=name,
            ) from None
    else:
        raise InvalidInput(f"{name} must be an ISO 8601 date-time", field=name)
    if when.tzinfo is None:
        if default_tz is None:
            raise InvalidInput(
                f"{name} needs a time zone (e.g. +08:00 or Z): {value!s:.40}", field=name
            )
        when = when.replace(tzinfo=default_tz)
    if not EARLIEST <= when < LATEST:
        raise InvalidInput(f"{name} {when.isoformat()} is out of range (2000 to 2100)",
                           field=name)  # fmt: skip
    return when


def check_id(value: Any, name: str) -> int:
    """A positive integer id (not a boolean, not a float with a fraction)."""
    if isinstance(value, bool) or not isinstance(value, int | str | float):
        raise InvalidInput(f"{name} must be an integer id, got {value!r:.40}", field=name)
    return check_int(value, name, 1, MAX_ID)


def check_ids(value: Any, name: str, max_count: int) -> list[int]:
    """A non-empty list of distinct ids, at most ``max_count``."""
    if not isinstance(value, list) or not value:
        raise InvalidInput(f"{name} must be a non-empty list of ids", field=name)
    if len(value) > max_count:
        raise InvalidInput(f"{name} lists {len(value)} ids; at most {max_count} at once",
                           field=name)  # fmt: skip
    ids = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int):
            raise InvalidInput(f"{name} must hold integer ids, got {item!r:.40}", field=name)
        ids.append(check_int(item, name, 1, MAX_ID))
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise InvalidInput(f"{name} lists id {repeated[0]} more than once", field=name)
    return ids


def check_fields(body: dict[str, Any], allowed: Iterable[str], where: str = "") -> None:
    """Refuse fields a body may not hold, naming the first."""
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        field = f"{where}{unknown[0]}"
        raise InvalidInput(
            f"unknown field {field!r}; allowed: {', '.join(sorted(allowed))}", field=field
        )
