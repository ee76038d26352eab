"""The ``/items`` query of OGC API - Features, checked from plain values.

The web adapter (``geomap.ogc.views``) hands over one value per parameter; this module
refuses unknown and malformed ones by name, ``limit`` above the maximum too (see
``geomap.ogc.core`` for the choices where the standard leaves room). No web framework here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from geomap.analysis import features
from geomap.errors import InvalidInput
from geomap.layers import Layer

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
#: Features per page when the client does not say (the standard's example default is 10;
#: GDAL asks for its own page size and QGIS for the maximum, so this serves browsers).
DEFAULT_LIMIT = 100
#: Representations, by the value of ``f``; the first is the default.
FORMATS = ("json", "html")
#: Languages of titles and descriptions (``Accept-Language``); the first is the default.
LANGUAGES = ("zh", "en")
#: Query parameters of ``/items`` defined by the standard (and ``offset``, for paging).
ITEMS_PARAMETERS = ("f", "bbox", "bbox-crs", "datetime", "limit", "offset")
#: The values ``bbox-crs`` may take: CRS84 (longitude first) is the only CRS served.
BBOX_CRS = (CRS84, "OGC:CRS84", "[OGC:CRS84]")


def parse_format(value: str | None) -> str | None:
    """The ``f`` parameter: ``json``, ``html`` or absent (None: negotiate by ``Accept``).

    Raises
    ------
    InvalidInput
        Any other value (field ``f``).
    """
    if value is None or value == "":
        return None
    if value.lower() not in FORMATS:
        raise InvalidInput(
            f"f={value!r} is not offered; use one of: {', '.join(FORMATS)}", field="f"
        )
    return value.lower()


@dataclass(frozen=True)
class ItemsQuery:
    """A checked ``/items`` request.

    Attributes
    ----------
    selection : features.Selection
        What to read (full geometries: a feature service never simplifies).
    limit, offset : int
        The page (``limit`` within the server's maximum).
    passthrough : dict
        The selecting parameters as given (filters, ``bbox``, ``bbox-crs``, ``datetime``),
        repeated in the ``self``/``next``/``prev`` links.
    """

    selection: features.Selection
    limit: int
    offset: int
    passthrough: dict[str, str] = field(default_factory=dict)


#: Largest offset accepted (PostgreSQL's OFFSET is a bigint; no layer comes near this).
MAX_OFFSET = 10**12
_INTEGER = re.compile(r"[+-]?[0-9]+")


def _integer(
    value: str | None, name: str, default: int, minimum: int, maximum: int | None = None
) -> int:
    if value is None:
        return default
    if not _INTEGER.fullmatch(value):  # int() alone would also take "1_000" and "١٠"
        raise InvalidInput(f"{name} must be an integer, got {value!r}", field=name)
    number = int(value)
    if number < minimum:
        raise InvalidInput(f"{name}={number} must be at least {minimum}", field=name)
    if maximum is not None and number > maximum:
        raise InvalidInput(f"{name}={number} must be at most {maximum}", field=name)
    return number


def _bbox(text: str | None) -> tuple[float, float, float, float] | None:
    if not text:
        return None
    parts = text.split(",")
    if len(parts) == 6:  # minlon,minlat,minz,maxlon,maxlat,maxz: the layers are 2D
        parts = [parts[0], parts[1], parts[3], parts[4]]
    elif len(parts) != 4:
        raise InvalidInput(
            f"bbox needs 4 numbers (minlon,minlat,maxlon,maxlat) or 6 with heights, "
            f"got {len(parts)}",
            field="bbox",
        )
    return features.parse_bbox(",".join(parts))


class _Arguments:
    """Query arguments restricted to the names a document knows (others are a 400)."""

    def __init__(self, args: Mapping[str, str], allowed: Iterable[str]) -> None:
        allowed = set(allowed)
        unknown = sorted(set(args) - allowed)
        if unknown:
            raise InvalidInput(
                f"unknown parameter {unknown[0]!r}; this endpoint accepts: "
                f"{', '.join(sorted(allowed))}",
                field=unknown[0],
            )
        self._args = args

    def str(self, name: str) -> str | None:
        value = self._args.get(name)
        return None if value is None else value.strip()

    def raw(self, name: str) -> str | None:
        value = self.str(name)
        return None if value == "" else value


def parse_items_query(
    layer: Layer,
    args: Mapping[str, str],
    *,
    max_features: int,
    personal: bool = False,
    extra: Iterable[str] = (),
) -> ItemsQuery:
    """Check the query arguments of ``/collections/{id}/items``.

    Parameters
    ----------
    layer : Layer
        The collection's layer: its filterable properties are the only other parameters.
    args : mapping of str to str
        The query arguments, one value each (the web adapter refuses a repeated one).
    max_features : int
        The server's largest page; a larger ``limit`` is a 400 naming ``limit``.
    personal : bool
        Whether personal properties may be read (and so filtered on).
    extra : iterable of str
        Other parameters the caller handles itself (the embed ``token``), accepted here.

    Returns
    -------
    ItemsQuery

    Raises
    ------
    InvalidInput
        An unknown parameter, a personal property, or a malformed value; the error names
        the parameter (``field``).
    """
    if not personal:
        for name in args:
            if name in layer.personal and name not in ITEMS_PARAMETERS:
                raise InvalidInput(
                    f"{name!r} is a personal property of {layer.id}: it cannot be filtered on",
                    field=name,
                )
    filterable = [c for c in features.filterable(layer, personal) if c not in ITEMS_PARAMETERS]
    checked = _Arguments(args, (*ITEMS_PARAMETERS, *filterable, *extra))
    parse_format(checked.str("f"))

    passthrough: dict[str, str] = {}
    filters = {}
    for name in filterable:
        value = checked.str(name)
        if value is not None:
            filters[name] = passthrough[name] = value

    bbox_text = checked.str("bbox")
    bbox = _bbox(bbox_text)
    if bbox is not None:
        passthrough["bbox"] = bbox_text
    bbox_crs = checked.str("bbox-crs")
    if bbox_crs:
        if bbox_crs not in BBOX_CRS:
            raise InvalidInput(
                f"bbox-crs {bbox_crs!r} is not supported; bboxes are in {CRS84} only",
                field="bbox-crs",
            )
        passthrough["bbox-crs"] = bbox_crs

    datetime_text = checked.str("datetime")
    interval = features.parse_datetime(datetime_text)  # checked even where it selects nothing
    if interval is not None:
        passthrough["datetime"] = datetime_text
        if not layer.time_column:
            interval = None  # features without time are not filtered by time: all match

    # A limit above the maximum is refused by name, as the OpenAPI document declares it
    # (``maximum``): a client that asked for more learns it at once (see the docstring).
    limit = _integer(checked.raw("limit"), "limit", DEFAULT_LIMIT, 1, max_features)
    offset = _integer(checked.raw("offset"), "offset", 0, 0, MAX_OFFSET)
    selection = features.Selection(
        bbox=bbox,
        filters=filters or None,
        interval=interval,
        limit=limit,
        offset=offset,
        simplify=False,
    )
    return ItemsQuery(selection=selection, limit=limit, offset=offset, passthrough=passthrough)
