"""``/openapi.json``: the API described from the same declarations that serve it.

* Endpoints declared with :func:`geomap.web.spec.endpoint` contribute their summary,
  parameters, permission (→ security and 401/403), request body and response schema.
* The OGC API paths are written per collection from the layer catalog (as pygeoapi does),
  with each collection's filterable properties as query parameters.
* Path parameters come from the URL rules (``<int:...>`` is an integer; a layer id is an
  enum of the catalog's ids).

Every operation documents the errors it can answer: its declared statuses, 401/403 when
it needs a permission, and 503 when the database is away.
"""

from __future__ import annotations

import re
from typing import Any

from geomap import layers
from geomap.analysis import features
from geomap.ogc.core import CRS84
from geomap.version import __version__
from geomap.web.catalog import catalog as load_catalog
from geomap.web.schemas import SCHEMAS, ref
from geomap.web.spec import Endpoint, declared

SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer",
               "description": "An API key (gm_...) or an embed token (em_...)."},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "embedToken": {"type": "apiKey", "in": "query", "name": "token"},
}  # fmt: skip

_ERROR_TEXT = {
    400: "The input is wrong; the error names the field.",
    401: "No valid credentials.",
    403: "The credentials do not allow this.",
    404: "No such thing.",
    409: "Not possible in the current state; the error says what is allowed.",
    413: "The request body is too large.",
    422: "Well-formed but impossible: a point outside the city or the road network's "
    "reach, or position fixes in the future or implying an impossible speed.",
    429: "Too many requests from this caller (see Retry-After).",
    503: "The database is unreachable or the service is busy right now (see Retry-After).",
}
_RULE_ARG = re.compile(r"<(?:(\w+):)?(\w+)>")


def _error(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": _ERROR_TEXT.get(status, "Error."),
        "content": {"application/json": {"schema": ref("Error")}},
    }
    if status in (429, 503):
        response["headers"] = {"Retry-After": {"schema": {"type": "integer"}}}
    return response


def _media(spec: Endpoint) -> dict[str, Any]:
    schema = ref(spec.response) if spec.response else {}
    content = {spec.media_type: {"schema": schema}}
    formats = {p.name: p for p in spec.params}.get("format")
    if formats and formats.enum:
        if "geojson" in formats.enum:
            content["application/geo+json"] = {"schema": ref("FeatureCollection")}
        if "csv" in formats.enum:
            content["text/csv"] = {"schema": {"type": "string"}}
    return content


def _security(permission: str, open_read: bool) -> list[dict[str, list]] | None:
    """Who may call: ``open_read`` says whether the open local reads of this app apply."""
    if permission == "public":
        return None
    schemes: list[dict[str, list]] = [{"bearer": []}, {"apiKey": []}]
    if permission == "layers":
        schemes.append({"embedToken": []})
    if open_read and permission in ("layers", "analysis"):
        schemes.append({})  # open local reads (GEOMAP_OPEN_READ, GET only) need none
    return schemes


def _path_params(rule: str, catalog: dict[str, layers.Layer]) -> list[dict[str, Any]]:
    params = []
    for converter, name in _RULE_ARG.findall(rule):
        schema: dict[str, Any] = {"type": "integer" if converter == "int" else "string"}
        if name == "layer_id":
            schema["enum"] = list(catalog)
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    return params


def _operation(
    spec: Endpoint, method: str, rule: str, catalog: dict, open_read: bool
) -> dict[str, Any]:
    success = str(spec.success or (201 if method == "post" else 200))
    operation: dict[str, Any] = {
        "summary": spec.summary,
        "tags": list(spec.tags),
        "parameters": _path_params(rule, catalog)
        + [
            {"name": p.name, "in": p.location, "required": p.required, "description": p.description,
             "schema": p.schema(), **({"style": "form", "explode": False} if p.array else {})}
            for p in spec.params
        ],
        "responses": {
            success: {"description": "No content"} if success == "204"
            else {"description": "OK", "content": _media(spec)},
            **{str(s): _error(s) for s in spec.statuses},
            "429": _error(429),
            "503": _error(503),
        },
    }  # fmt: skip
    if spec.permission != "public":
        operation["responses"].update({"401": _error(401), "403": _error(403)})
    security = _security(spec.permission, open_read and method == "get")
    if security is not None:
        operation["security"] = security
    if spec.body:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": ref(spec.body)}},
        }
        operation["responses"]["400"] = _error(400)
        operation["responses"]["413"] = _error(413)
    return operation


def _ogc_paths(
    catalog: dict[str, layers.Layer], max_features: int, open_read: bool
) -> dict[str, Any]:
    """The OGC API - Features paths, one set per collection (pygeoapi's way)."""
    fmt = {"name": "f", "in": "query", "required": False,
           "schema": {"type": "string", "enum": ["json", "html"]}}  # fmt: skip
    security = _security("layers", open_read)
    common = {"401": _error(401), "403": _error(403), "429": _error(429), "503": _error(503)}

    def document(summary: str, schema: str, extra: dict | None = None) -> dict[str, Any]:
        return {"get": {
            "summary": summary, "tags": ["ogc"], "parameters": [fmt], "security": security,
            "responses": {"200": {"description": "OK", "content": {
                "application/json": {"schema": ref(schema)},
                "text/html": {"schema": {"type": "string"}}}},
                "400": _error(400), **common, **(extra or {})},
        }}  # fmt: skip

    paths = {
        "/ogc": document("OGC API landing page", "OgcDocument"),
        "/ogc/conformance": document("Conformance classes", "OgcConformance"),
        "/ogc/collections": document("The collections (the layer catalog)", "OgcCollections"),
    }
    for layer in catalog.values():
        base = f"/ogc/collections/{layer.id}"
        title = layer.title.get("en", layer.id)
        paths[base] = document(f"Collection: {title}", "OgcCollection")
        filters = [
            {"name": column, "in": "query", "required": False, "schema": {"type": "string"},
             "description": f"Only features whose {column} equals this value."}
            for column in features.filterable(layer, personal=False)
        ]  # fmt: skip
        query = [
            fmt,
            {"name": "bbox", "in": "query", "required": False, "style": "form",
             "explode": False, "schema": {"type": "array", "minItems": 4, "maxItems": 6,
                                          "items": {"type": "number"}}},
            {"name": "bbox-crs", "in": "query", "required": False, "style": "form",
             "explode": False, "description": "The CRS of bbox: CRS84 (lon, lat) only.",
             "schema": {"type": "string", "format": "uri", "enum": [CRS84],
                        "default": CRS84}},
            # As OGC API - Features' own OpenAPI fragments declare them (style, explode).
            {"name": "limit", "in": "query", "required": False, "style": "form",
             "explode": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": max_features,
                        "default": 100}},
            {"name": "offset", "in": "query", "required": False, "style": "form",
             "explode": False, "schema": {"type": "integer", "minimum": 0}},
            {"name": "datetime", "in": "query", "required": False, "style": "form",
             "explode": False, "schema": {"type": "string"},
             "description": "An instant or interval (RFC 3339, `a/b`, `../b`, `a/..`)"
             + ("." if layer.time_column else "; this collection has no time: all "
                "features match.")},
            *filters,
        ]  # fmt: skip
        features_content = {
            "application/geo+json": {"schema": ref("FeatureCollection")},
            "text/html": {"schema": {"type": "string"}},
        }
        paths[f"{base}/items"] = {"get": {
            "summary": f"Features of {title}", "tags": ["ogc"], "parameters": query,
            "security": security,
            "responses": {"200": {"description": "OK", "content": features_content},
                          "400": _error(400), **common},
        }}  # fmt: skip
        paths[f"{base}/items/{{featureId}}"] = {"get": {
            "summary": f"One feature of {title}", "tags": ["ogc"], "security": security,
            "parameters": [fmt, {"name": "featureId", "in": "path", "required": True,
                                 "schema": {"type": "string"}}],
            "responses": {"200": {"description": "OK", "content": {
                "application/geo+json": {"schema": ref("Feature")},
                "text/html": {"schema": {"type": "string"}}}},
                "400": _error(400), "404": _error(404), **common},
        }}  # fmt: skip
    return paths


def _empty_is_absent(paths: dict[str, Any]) -> None:
    """Mark every optional query parameter ``allowEmptyValue``: ``?f=`` is read as no ``f``
    (``geomap.web.args``, the OGC query), so a client may send one empty."""
    for operations in paths.values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "query" and not parameter.get("required"):
                    parameter["allowEmptyValue"] = True


def build(app: Any) -> dict[str, Any]:
    """The OpenAPI 3.0 document of ``app``, from its declared views and the catalog."""
    catalog = load_catalog()
    settings = app.config["GEOMAP"]
    paths: dict[str, Any] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        spec = declared(app.view_functions[rule.endpoint])
        if spec is None:
            continue
        path = _RULE_ARG.sub(r"{\2}", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            paths.setdefault(path, {})[method.lower()] = _operation(
                spec, method.lower(), rule.rule, catalog, bool(settings.open_read)
            )
    paths.update(_ogc_paths(catalog, settings.max_features, bool(settings.open_read)))
    _empty_is_absent(paths)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "geomap",
            "version": __version__,
            "description": "Battle map (作战图) service for the emergency teams of urban grid "
            "governance: teams, coverage, 15-minute red culture circles, layers.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {"schemas": SCHEMAS, "securitySchemes": SECURITY_SCHEMES},
    }
