"""Each endpoint declared once: summary, parameters, permission, response schema.

The :func:`endpoint` decorator attaches an :class:`Endpoint` to a view function. The same
declaration then serves three purposes:

* parsing: :func:`args` accepts only the declared query parameters (others are a 400
  naming them);
* access control: ``geomap.web.access`` reads the permission the endpoint needs;
* documentation: ``geomap.openapi`` writes ``/openapi.json`` from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import current_app, request

from geomap.auth.permissions import PERMISSIONS
from geomap.web.args import Args
from geomap.web.guard import json_body
from geomap.web.schemas import SCHEMAS


@dataclass(frozen=True)
class Param:
    """A query (or, with ``location="header"``, a header) parameter as OpenAPI describes it."""

    name: str
    type: str
    description: str
    required: bool = False
    enum: tuple[str, ...] | None = None
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    array: bool = False  # repeated or comma-separated values
    location: str = "query"

    def schema(self) -> dict[str, Any]:
        item: dict[str, Any] = {"type": self.type}
        if self.enum:
            item["enum"] = list(self.enum)
        if self.minimum is not None:
            item["minimum"] = self.minimum
        if self.maximum is not None:
            item["maximum"] = self.maximum
        if self.array:
            return {"type": "array", "items": item}
        if self.default is not None:
            item["default"] = self.default
        return item


@dataclass(frozen=True)
class Endpoint:
    """What a view declares about itself."""

    summary: str
    permission: str
    params: tuple[Param, ...] = ()
    response: str | None = None  # name of a schema in geomap.web.schemas.SCHEMAS
    media_type: str = "application/json"
    body: str | None = None  # name of a request-body schema
    tags: tuple[str, ...] = ()
    statuses: tuple[int, ...] = (400,)
    extra: dict[str, Any] = field(default_factory=dict)
    success: int | None = None  # the 2xx status; default 201 for POST, 200 otherwise


def endpoint(
    summary: str,
    *,
    permission: str,
    params: tuple[Param, ...] = (),
    response: str | None = None,
    media_type: str = "application/json",
    body: str | None = None,
    tags: tuple[str, ...] = (),
    statuses: tuple[int, ...] = (400,),
    success: int | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a view's summary, parameters, permission and response schema."""
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")

    def attach(view: Callable[..., Any]) -> Callable[..., Any]:
        view.geomap_endpoint = Endpoint(  # type: ignore[attr-defined]
            summary=summary,
            permission=permission,
            params=params,
            response=response,
            media_type=media_type,
            body=body,
            tags=tags,
            statuses=statuses,
            success=success,
        )
        return view

    return attach


def declared(view: Callable[..., Any] | None) -> Endpoint | None:
    """The declaration of a view function, if it has one."""
    return getattr(view, "geomap_endpoint", None)


def current() -> Endpoint | None:
    """The declaration of the view serving this request."""
    if request.endpoint is None:
        return None
    return declared(current_app.view_functions.get(request.endpoint))


def args() -> Args:
    """This request's query arguments, restricted to the ones its view declares."""
    spec = current()
    allowed = {p.name for p in spec.params if p.location == "query"} if spec else set()
    return Args(request.args, allowed | {"token"})  # embed tokens travel in the query


def body() -> Any:
    """This request's JSON body, checked against the schema its view declares (``body=``).

    One place for every JSON body, now and to come: strict JSON, hostile values refused
    (``geomap.params.parse_json_body``), then the declared schema
    (``geomap.params.check_schema``); each error names its field.
    """
    spec = current()
    return json_body(SCHEMAS[spec.body] if spec is not None and spec.body else None)


# Parameters used by several endpoints.
LON = Param("lon", "number", "Longitude of the point (in `crs`).", required=True,
            minimum=-180, maximum=180)  # fmt: skip
LAT = Param("lat", "number", "Latitude of the point (in `crs`).", required=True,
            minimum=-90, maximum=90)  # fmt: skip
POINT_CRS = Param(
    "crs", "string", "Coordinate system of lon/lat: what map the point was taken from.",
    enum=("EPSG:4326", "EPSG:4490", "GCJ02", "BD09"), default="EPSG:4326",
)  # fmt: skip
FORMAT = Param("format", "string", "Representation of the answer.",
               enum=("json", "geojson", "csv"), default="json")  # fmt: skip
LEVEL = Param("level", "string", "Units to report on.",
              enum=("grid", "community", "township", "district"), default="grid")  # fmt: skip
ORDER = Param("order", "string", "`gaps`: least covered first.", enum=("code", "gaps"))
