"""Validation of user-given values, shared by every layer of the package: every error
names the parameter at fault."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from geomap.errors import InvalidInput

MODES = ("distance", "walk", "drive")


def check_finite(value: Any, name: str) -> float:
    """A finite number (a missing, non-numeric, NaN or infinite value names ``name``)."""
    if value is None:
        raise InvalidInput(f"{name} is required", field=name)
    if isinstance(value, bool):  # True is 1 to Python, but never a coordinate or an amount
        raise InvalidInput(f"{name} must be a number, got a boolean", field=name)
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
    if isinstance(value, bool):
        raise InvalidInput(f"{name} must be an integer, got a boolean", field=name)
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
    if isinstance(value, bool):
        raise InvalidInput(f"{name} must be a number, got a boolean", field=name)
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


# -- text, time and JSON bodies: the guards every request's input passes ------------------
#: Longest query parameter or path segment accepted, in characters.
MAX_PARAM_CHARS = 2_000
#: Longest string inside a JSON body (a field's own schema may ask for less).
MAX_BODY_TEXT_CHARS = 10_000
#: Deepest nesting of arrays and objects accepted in a JSON body.
MAX_JSON_DEPTH = 20


def check_text(value: Any, name: str, max_chars: int = MAX_PARAM_CHARS) -> str:
    """Text that PostgreSQL and UTF-8 can carry: no NUL, no lone surrogate, not too long.

    PostgreSQL refuses NUL in text and a lone surrogate cannot be encoded as UTF-8: let
    through, either would reach the database and come back as a 500.
    """
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be text, got {_json_type(value)}", field=name)
    if "\x00" in value:
        raise InvalidInput(f"{name} contains a NUL character (\\u0000)", field=name)
    if len(value) > max_chars:
        raise InvalidInput(
            f"{name} is {len(value)} characters long; at most {max_chars} are accepted",
            field=name,
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(
            f"{name} contains a lone surrogate (not valid Unicode text)", field=name
        ) from None
    return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _reject_constant(text: str) -> float:
    raise InvalidInput(f"the body holds {text}, which is not a JSON number", field="body")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise InvalidInput(f"the body holds {text}, which is too large a number", field="body")
    return number


def parse_json_body(raw: bytes, name: str = "body") -> Any:
    """A request body parsed as strict JSON, every value checked for what breaks later.

    Refused, with a 400 naming the body or the field: invalid UTF-8 or JSON, NaN and
    Infinity (not JSON, though Python writes them), numbers too large for a float,
    nesting deeper than :data:`MAX_JSON_DEPTH`, and strings that :func:`check_text`
    refuses (NUL, lone surrogates, longer than :data:`MAX_BODY_TEXT_CHARS`).
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"the {name} is not UTF-8 text ({exc.reason})", field=name) from None
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise InvalidInput(
            f"the {name} is nested too deeply (at most {MAX_JSON_DEPTH} levels)", field=name
        ) from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"the {name} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            field=name,
        ) from None
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise InvalidInput(f"the {name} is not usable JSON: {exc}", field=name) from None
    _check_json_values(value, name)
    return value


def _check_json_values(value: Any, name: str) -> None:
    # Iterative: a deep document must not exhaust the stack while it is being checked.
    stack: list[tuple[Any, str, int]] = [(value, name, 0)]
    while stack:
        item, path, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise InvalidInput(
                f"the {name} is nested too deeply (at most {MAX_JSON_DEPTH} levels)", field=name
            )
        if isinstance(item, str):
            check_text(item, path, MAX_BODY_TEXT_CHARS)
        elif isinstance(item, dict):
            for key, child in item.items():
                check_text(key, f"{path} key", MAX_PARAM_CHARS)
                stack.append((child, key if path == name else f"{path}.{key}", depth + 1))
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{i}]", depth + 1) for i, child in enumerate(item))


_JSON_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    # JSON booleans are not numbers, whatever Python's bool-is-int says.
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
}


def check_schema(value: Any, schema: Mapping[str, Any], name: str = "body") -> Any:
    """Check a parsed JSON value against its declared schema (the OpenAPI subset we use).

    Keywords: ``type``, ``enum``, ``required``, ``properties``, ``additionalProperties``,
    ``minimum``/``maximum``, ``minLength``/``maxLength``, ``minItems``/``maxItems``,
    ``items`` and ``format: date-time``. The error names the field (``title``, or
    ``travel_min.12`` inside an object).
    """
    kind = schema.get("type")
    if kind and not _JSON_TYPES[kind](value):
        raise InvalidInput(f"{name} must be {_TYPE_NAMES[kind]}, got {_json_type(value)}",
                           field=name)  # fmt: skip
    if "enum" in schema and value not in schema["enum"]:
        raise InvalidInput(
            f"unknown {name} {value!r}; expected one of: {', '.join(map(str, schema['enum']))}",
            field=name,
        )
    if kind in ("number", "integer"):
        if "minimum" in schema and value < schema["minimum"]:
            raise InvalidInput(f"{name}={value} is below {schema['minimum']}", field=name)
        if "maximum" in schema and value > schema["maximum"]:
            raise InvalidInput(f"{name}={value} is above {schema['maximum']}", field=name)
    if kind == "string":
        if len(value.strip()) < schema.get("minLength", 0):  # blanks are no title either
            raise InvalidInput(f"{name} is required (not empty)", field=name)
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            raise InvalidInput(
                f"{name} is {len(value)} characters long; at most {schema['maxLength']}",
                field=name,
            )
        if schema.get("format") == "date-time":
            check_datetime(value, name, default_tz=dt.UTC)
    if kind == "array":
        if len(value) < schema.get("minItems", 0):
            raise InvalidInput(f"{name} needs at least {schema['minItems']} item(s)", field=name)
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            raise InvalidInput(f"{name} holds more than {schema['maxItems']} items", field=name)
        for i, item in enumerate(value):
            check_schema(item, schema.get("items", {}), f"{name}[{i}]")
    if kind == "object":
        properties = schema.get("properties", {})
        for required in schema.get("required", ()):
            if required not in value:
                field = required if name == "body" else f"{name}.{required}"
                raise InvalidInput(f"{field} is required", field=field)
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            field = key if name == "body" else f"{name}.{key}"
            if key in properties:
                check_schema(item, properties[key], field)
            elif extra is False:
                raise InvalidInput(
                    f"unknown field {key!r}; fields: {', '.join(properties)}", field=field
                )
            elif isinstance(extra, Mapping):
                check_schema(item, extra, field)
    return value


_TYPE_NAMES = {
    "object": "an object",
    "array": "an array",
    "string": "text",
    "number": "a number",
    "integer": "an integer",
    "boolean": "true or false",
}
def check_typed_text(
    value: Any, name: str, max_length: int, *, required: bool = False
) -> str | None:
    """Text a person typed (a title, a note): stripped, at most ``max_length`` characters,
    no control characters (line breaks and tabs allowed), and what :func:`check_text`
    asks. Empty or missing is None (an error when ``required``)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidInput(f"{name} is required", field=name)
        return None
    text = check_text(value, name, max_length).strip()
    bad = next((c for c in text if (ord(c) < 32 and c not in "\n\t\r") or ord(c) == 127), None)
    if bad is not None:
        raise InvalidInput(f"{name} holds a control character (U+{ord(bad):04X})", field=name)
    return text


def check_datetime(
    value: Any,
    name: str,
    *,
    default_tz: dt.tzinfo | None = None,
    earliest: dt.datetime | None = EARLIEST,
    latest: dt.datetime | None = LATEST,
) -> dt.datetime:
    """An ISO 8601 / RFC 3339 date-time (or a datetime) as an aware UTC datetime.

    Parameters
    ----------
    default_tz : tzinfo, optional
        The zone of a time given without one; None (the default): such a time is refused
        (a device's fix must say its zone).
    earliest, latest : datetime, optional
        The range accepted (by default 2000 to 2100: anything else is a typo or a broken
        clock); None: no bound. Dates that exist only in one time zone (year 1 at +14:00
        is before year 1 in UTC) are refused rather than overflowing later.
    """
    if isinstance(value, dt.datetime):
        when, shown = value, value.isoformat()
    else:
        text = check_text(value, name, 64).strip()
        shown = text[:40]
        try:
            when = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise InvalidInput(
                f"{name} {shown!r} is not an ISO 8601 date-time (e.g. 2026-11-23T08:00:00+08:00)",
                field=name,
            ) from None
    if when.tzinfo is None:
        if default_tz is None:
            raise InvalidInput(f"{name} needs a time zone (e.g. +08:00 or Z): {shown}",
                               field=name)  # fmt: skip
        when = when.replace(tzinfo=default_tz)
    try:
        when = when.astimezone(dt.UTC)
    except OverflowError:
        raise InvalidInput(f"{name} {shown!r} is out of the range of dates", field=name) from None
    if earliest is not None and when < earliest:
        raise InvalidInput(f"{name} {shown!r} is before {earliest.isoformat()}", field=name)
    if latest is not None and when >= latest:
        raise InvalidInput(f"{name} {shown!r} is not before {latest.isoformat()}", field=name)
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
    for i, item in enumerate(value):
        where = f"{name}[{i}]"
        if isinstance(item, bool) or not isinstance(item, int):
            raise InvalidInput(f"{where} must be an integer id, got {item!r:.40}", field=where)
        ids.append(check_int(item, where, 1, MAX_ID))
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
