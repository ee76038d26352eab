"""The schemas of the request and response bodies, as OpenAPI 3.0 describes them.

One table for two readers: :func:`geomap.web.spec.body` checks every JSON request body
against its declared schema (``geomap.params.check_schema``), and ``geomap.openapi``
writes them all under ``components/schemas``.
"""

from __future__ import annotations

from typing import Any

from geomap import vocab

_NULLABLE_NUMBER = {"type": "number", "nullable": True}
_NULLABLE_STRING = {"type": "string", "nullable": True}
_STRINGS = {"type": "array", "items": {"type": "string"}}
_POINT_CRS = ("EPSG:4326", "EPSG:4490", "GCJ02", "BD09")


def _positive(maximum: float) -> dict[str, Any]:
    """A number in (0, maximum] (OpenAPI 3.0: exclusiveMinimum is a flag)."""
    return {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": maximum}


def ref(name: str) -> dict[str, str]:
    """A reference to the schema ``name``."""
    return {"$ref": f"#/components/schemas/{name}"}


def _object(required: list[str], **properties: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:  # OpenAPI 3.0: a `required` list may not be empty
        schema["required"] = required
    return schema


SCHEMAS: dict[str, dict[str, Any]] = {
    "Error": _object(
        ["error"],
        error=_object(["code", "message"], code={"type": "string"},
                      message={"type": "string"}, field=_NULLABLE_STRING),
    ),
    "Health": _object(
        ["status"],
        status={"type": "string", "enum": ["ok", "unavailable"]},
        versions={"type": "object", "additionalProperties": _NULLABLE_STRING},
        counts={"type": "object", "additionalProperties": {"type": "integer"}},
        error={"type": "object"},
    ),
    "NearestTeam": _object(
        ["id", "name", "kind", "status", "headcount", "lon", "lat", "distance_m", "travel_min"],
        id={"type": "integer"},
        code={"type": "string"},
        name={"type": "string"},
        kind={"type": "string"},
        status={"type": "string"},
        headcount={"type": "integer"},
        unit=_NULLABLE_STRING,
        capabilities=_STRINGS,
        lon={"type": "number"},
        lat={"type": "number"},
        position_at=_NULLABLE_STRING,
        distance_m={"type": "number"},
        travel_min=_NULLABLE_NUMBER,
        route={"type": "object", "nullable": True},
    ),
    "Nearest": _object(
        ["query", "teams"],
        query={"type": "object"},
        teams={"type": "array", "items": ref("NearestTeam")},
        elapsed_ms={"type": "number"},
    ),
    "CoverageUnit": _object(
        ["code", "name", "level", "population", "covered_population",
         "covered_share_area", "covered_share_population", "covered"],
        code={"type": "string"},
        name={"type": "string"},
        level={"type": "string"},
        grids={"type": "integer"},
        population={"type": "integer"},
        covered_population={"type": "integer"},
        uncovered_population={"type": "integer"},
        covered_share_area={"type": "number"},
        covered_share_population={"type": "number"},
        nearest_m=_NULLABLE_NUMBER,
        covered={"type": "boolean"},
    ),
    "Coverage": _object(
        ["query", "summary", "units"],
        query={"type": "object"},
        summary=_object(
            ["units", "covered_units", "population", "covered_population", "covered_share"],
            level={"type": "string"},
            units={"type": "integer"},
            covered_units={"type": "integer"},
            population={"type": "integer"},
            covered_population={"type": "integer"},
            covered_share=_NULLABLE_NUMBER,
        ),
        units={"type": "array", "items": ref("CoverageUnit")},
        elapsed_ms={"type": "number"},
    ),
    "Feature": _object(
        ["type", "geometry", "properties"],
        type={"type": "string", "enum": ["Feature"]},
        id={"oneOf": [{"type": "string"}, {"type": "integer"}]},
        geometry={"type": "object", "nullable": True},
        properties={"type": "object", "nullable": True},
    ),
    "FeatureCollection": _object(
        ["type", "features"],
        type={"type": "string", "enum": ["FeatureCollection"]},
        features={"type": "array", "items": ref("Feature")},
        numberMatched={"type": "integer"},
        numberReturned={"type": "integer"},
        links={"type": "array", "items": {"type": "object"}},
    ),
    "Circle": _object(
        ["type", "id", "geometry", "properties"],
        type={"type": "string", "enum": ["Feature"]},
        id={"type": "string"},
        geometry={"type": "object", "nullable": True},
        properties=_object(
            ["name", "kind"],
            name={"type": "string"},
            kind={"type": "string"},
            venue_table={"type": "string"},
            site_id={"type": "integer"},
            lon={"type": "number"},
            lat={"type": "number"},
            minutes=_NULLABLE_NUMBER,
            distance_m=_NULLABLE_NUMBER,
            area_km2={"type": "number"},
            population={"type": "integer"},
            reached_edges={"type": "integer", "nullable": True},
        ),
    ),
    "Circles": _object(
        ["type", "features"],
        type={"type": "string", "enum": ["FeatureCollection"]},
        features={"type": "array", "items": ref("Circle")},
    ),
    "CirclesUnion": _object(
        ["type", "geometry", "properties"],
        type={"type": "string", "enum": ["Feature"]},
        geometry={"type": "object", "nullable": True},
        properties=_object(
            ["circles", "area_km2", "population", "covered_population", "covered_share"],
            circles={"type": "integer"},
            area_km2={"type": "number"},
            population={"type": "integer"},
            covered_population={"type": "integer"},
            covered_share=_NULLABLE_NUMBER,
        ),
    ),
    "Catalog": _object(
        ["layers"],
        layers={"type": "array", "items": _object(["id", "title", "geometry"],
                                                  id={"type": "string"},
                                                  title={"type": "object"},
                                                  geometry={"type": "string"})},
    ),
    "Team": _object(
        ["id", "code", "name", "kind", "status", "lon", "lat"],
        id={"type": "integer"},
        code={"type": "string"},
        name={"type": "string"},
        kind={"type": "string"},
        status={"type": "string"},
        lon={"type": "number"},
        lat={"type": "number"},
        position_at=_NULLABLE_STRING,
        standby_lon=_NULLABLE_NUMBER,
        standby_lat=_NULLABLE_NUMBER,
    ),
    "TeamUpdate": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "status": {"type": "string", "enum": list(vocab.TEAM_STATUSES)},
            "lon": {"type": "number", "minimum": -180, "maximum": 180},
            "lat": {"type": "number", "minimum": -90, "maximum": 90},
            "position_at": {"type": "string", "format": "date-time", "maxLength": 64},
            "crs": {"type": "string", "enum": list(_POINT_CRS)},
            "standby_lon": {"type": "number", "minimum": -180, "maximum": 180},
            "standby_lat": {"type": "number", "minimum": -90, "maximum": 90},
        },
    },
    "CaseUnit": {
        "type": "object",
        "nullable": True,
        "properties": {"code": {"type": "string"}, "name": _NULLABLE_STRING},
    },
    "Case": _object(
        ["id", "kind", "severity", "title", "status", "lon", "lat", "level", "units",
         "escalations", "dispatches", "actions", "reported_at"],
        id={"type": "integer"},
        kind={"type": "string", "enum": list(vocab.CASE_KINDS)},
        severity={"type": "string", "enum": list(vocab.CASE_SEVERITIES)},
        title={"type": "string"},
        description=_NULLABLE_STRING,
        address=_NULLABLE_STRING,
        status={"type": "string", "enum": list(vocab.CASE_STATUSES)},
        lon={"type": "number"},
        lat={"type": "number"},
        located={"type": "string"},
        units={"type": "object", "additionalProperties": ref("CaseUnit")},
        level={"type": "string", "enum": list(vocab.CASE_LEVELS)},
        level_unit=ref("CaseUnit"),
        level_since={"type": "string"},
        escalations={"type": "array", "items": _object(["level", "at"],
                                                        level={"type": "string"},
                                                        at={"type": "string"})},
        accept_by=_NULLABLE_STRING,
        resolve_by={"type": "string"},
        overdue={"type": "boolean"},
        reported_at={"type": "string"},
        accepted_at=_NULLABLE_STRING,
        resolved_at=_NULLABLE_STRING,
        closed_at=_NULLABLE_STRING,
        cancelled_at=_NULLABLE_STRING,
        updated_at={"type": "string"},
        resolved_by=_NULLABLE_STRING,
        created_by={"type": "string"},
        dispatches={"type": "array", "items": _object(
            ["id", "team_id", "status"], id={"type": "integer"}, team_id={"type": "integer"},
            status={"type": "string", "enum": list(vocab.DISPATCH_STATUSES)},
            eta_min=_NULLABLE_NUMBER)},
        actions={"type": "array", "items": {"type": "string"}},
        reporter=_object([], name=_NULLABLE_STRING, phone=_NULLABLE_STRING),
        source={"type": "string"},
        calls=_object(
            ["count", "flood"], count={"type": "integer"}, first_at={"type": "string"},
            last_at={"type": "string"}, flood={"type": "boolean"},
            flag={"type": "object", "nullable": True, "properties": {
                "en": {"type": "string"}, "zh": {"type": "string"}}},
        ),
    ),
    "CaseList": _object(
        ["total", "cases"], total={"type": "integer"},
        cases={"type": "array", "items": ref("Case")},
    ),
    "CaseCreated": _object(
        ["case"], case=ref("Case"), recommendation={"type": "object", "nullable": True},
    ),
    "CoverageLoss": _object(
        ["grids", "grid_count", "residents"],
        grids={"type": "array", "items": _object(["code"], code={"type": "string"},
                                                 name={"type": "string"},
                                                 population={"type": "integer"})},
        grid_count={"type": "integer"},
        residents={"type": "integer"},
    ),
    "Recommendation": _object(
        ["case_id", "teams", "reach_min"],
        case_id={"type": "integer"},
        kind={"type": "string"},
        fits={"type": "object"},
        reach_min={"type": "number"},
        available_fitting_teams={"type": "integer"},
        covered={"type": "object"},
        teams={"type": "array", "items": _object(
            ["id", "name", "kind", "eta_min", "coverage_loss"],
            id={"type": "integer"}, code={"type": "string"}, name={"type": "string"},
            kind={"type": "string"}, status={"type": "string"}, lon={"type": "number"},
            lat={"type": "number"}, distance_m={"type": "number"}, eta_min=_NULLABLE_NUMBER,
            travel_min=_NULLABLE_NUMBER, route={"type": "object", "nullable": True},
            coverage_loss=ref("CoverageLoss"))},
    ),
    "MoveUp": _object(
        ["case_id", "lost", "suggestions"],
        case_id={"type": "integer"},
        reach_min={"type": "number"},
        lost=ref("CoverageLoss"),
        suggestions={"type": "array", "items": _object(
            ["team", "to", "restores", "net_residents", "accept"],
            team={"type": "object"}, to={"type": "object"}, travel_min={"type": "number"},
            restores=ref("CoverageLoss"), leaves_uncovered=ref("CoverageLoss"),
            net_residents={"type": "integer"}, accept={"type": "object"})},
    ),
    "CaseFigures": _object(
        ["found", "closed", "cancelled", "closure_rate", "open", "overdue"],
        code=_NULLABLE_STRING,
        name=_NULLABLE_STRING,
        found={"type": "integer"},
        closed={"type": "integer"},
        cancelled={"type": "integer"},
        closure_rate=_NULLABLE_NUMBER,
        median_accept_min=_NULLABLE_NUMBER,
        median_close_min=_NULLABLE_NUMBER,
        open={"type": "integer"},
        overdue={"type": "integer"},
    ),
    "CaseStats": _object(
        ["query", "summary", "units"],
        query={"type": "object"},
        summary=ref("CaseFigures"),
        units={"type": "array", "items": ref("CaseFigures")},
    ),
    "DispatchCreated": _object(
        ["dispatches", "case"],
        dispatches={"type": "array", "items": {"type": "integer"}},
        case=ref("Case"),
        move_up={"type": "string"},
    ),
    "CaseNew": {
        "type": "object",
        "additionalProperties": False,
        "required": ["kind", "title", "lon", "lat"],
        "properties": {
            "kind": {"type": "string", "enum": list(vocab.CASE_KINDS)},
            "severity": {"type": "string", "enum": list(vocab.CASE_SEVERITIES)},
            "title": {"type": "string", "minLength": 1, "maxLength": 200},
            "description": {"type": "string", "maxLength": 4000},
            "address": {"type": "string", "maxLength": 500},
            "lon": {"type": "number", "minimum": -180, "maximum": 180},
            "lat": {"type": "number", "minimum": -90, "maximum": 90},
            "crs": {"type": "string", "enum": list(_POINT_CRS)},
            "reporter_name": {"type": "string", "maxLength": 100},
            "reporter_phone": {"type": "string", "pattern": "^[0-9+() -]{3,40}$"},
            "reported_at": {"type": "string", "format": "date-time"},
        },
    },
    "CallNew": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "text": {"type": "string", "maxLength": 200},
            "phone": {"type": "string", "pattern": "^[0-9+() -]{3,40}$"},
        },
    },
    "CallMade": _object(
        ["case_id", "number", "status", "station", "message", "reported_at"],
        case_id={"type": "integer"},
        number={"type": "string"},
        status={"type": "string"},
        duplicate={"type": "boolean"},
        station=_object(["code", "name"], code={"type": "string"}, name={"type": "string"}),
        message={"type": "string"},
        reported_at={"type": "string", "format": "date-time"},
    ),
    "CaseStep": {
        "type": "object",
        "additionalProperties": False,
        "required": ["action"],
        "properties": {
            "action": {"type": "string", "enum": ["accept", "resolve", "close", "reopen",
                                                  "cancel"]},
            "note": {"type": "string", "maxLength": 1000},
        },
    },
    "DispatchNew": {
        "type": "object",
        "additionalProperties": False,
        "required": ["team_ids"],
        "properties": {
            "team_ids": {"type": "array", "minItems": 1, "uniqueItems": True,
                         "items": {"type": "integer", "minimum": 1}},
            "note": {"type": "string", "maxLength": 1000},
        },
    },
    "DispatchStep": {
        "type": "object",
        "additionalProperties": False,
        "required": ["action"],
        "properties": {
            "action": {"type": "string", "enum": ["depart", "arrive", "release"]},
            "note": {"type": "string", "maxLength": 1000},
        },
    },
    "SessionNew": {
        "type": "object",
        "additionalProperties": False,
        "required": ["key"],
        "properties": {"key": {"type": "string", "minLength": 1, "maxLength": 200}},
    },
    "Session": _object(
        ["signed_in", "role", "permissions"],
        signed_in={"type": "boolean"},
        role={"type": "string"},
        name=_NULLABLE_STRING,
        permissions={"type": "array", "items": {"type": "string"}},
        csrf_token=_NULLABLE_STRING,
        expires_at={**_NULLABLE_STRING, "format": "date-time"},
    ),
    "PositionsBatch": {
        "type": "object",
        "additionalProperties": False,
        "required": ["fixes"],
        "properties": {
            "crs": {"type": "string", "enum": list(_POINT_CRS)},
            "fixes": {"type": "array", "minItems": 1, "items": {
                "type": "object", "additionalProperties": False,
                "required": ["lon", "lat", "recorded_at"],
                "properties": {
                    "lon": {"type": "number", "minimum": -180, "maximum": 180},
                    "lat": {"type": "number", "minimum": -90, "maximum": 90},
                    "recorded_at": {"type": "string", "format": "date-time"},
                    "accuracy_m": {"type": "number", "minimum": 0, "maximum": 10000},
                    "crs": {"type": "string", "enum": list(_POINT_CRS)},
                },
            }},
        },
    },
    "PositionsResult": _object(
        ["team_id", "accepted", "duplicates", "refused", "moved", "current"],
        team_id={"type": "integer"},
        accepted={"type": "integer"},
        duplicates={"type": "integer"},
        refused={"type": "array", "items": _object(
            ["index", "field", "code", "message"], index={"type": "integer"},
            field={"type": "string"}, code={"type": "string"}, message={"type": "string"})},
        moved={"type": "boolean"},
        current={"type": "object"},
        first_at=_NULLABLE_STRING,
        last_at=_NULLABLE_STRING,
    ),
    "Track": _object(
        ["type", "geometry", "properties"],
        type={"type": "string", "enum": ["Feature"]},
        geometry={"type": "object", "nullable": True},
        properties=_object(["team_id", "fixes", "times"], team_id={"type": "integer"},
                           fixes={"type": "integer"}, times=_STRINGS,
                           accuracy_m={"type": "array", "items": _NULLABLE_NUMBER}),
    ),
    "AuditEntries": _object(
        ["entries", "next_before"],
        entries={"type": "array", "items": _object(
            ["id", "at", "key", "action", "changes"], id={"type": "integer"},
            at={"type": "string"}, recorded_at={"type": "string"},
            key=_object(["name", "role"], id={"type": "integer", "nullable": True},
                        name={"type": "string"}, role={"type": "string"}),
            action={"type": "string"}, case_id={"type": "integer", "nullable": True},
            dispatch_id={"type": "integer", "nullable": True},
            team_id={"type": "integer", "nullable": True}, changes={"type": "object"})},
        next_before={"type": "integer", "nullable": True},
    ),
    "PlanNew": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "of": {"type": "string", "enum": ["red", "sites", "stations"]},
            "kind": {"type": "array", "items": {"type": "string"}},
            "candidates": {"type": "string", "enum": ["stations", "layer"]},
            "candidate_kind": {"type": "array", "items": {"type": "string"}},
            "layer": {"oneOf": [{"type": "object"}, {"type": "array",
                                                     "items": {"type": "object"}}]},
            "area": {"type": "string"},
            "mode": {"type": "string", "enum": ["walk", "drive"]},
            "minutes": _positive(120),
            "distance_m": _positive(10000),
            "model": {"type": "string", "enum": ["coverage", "covering", "median"]},
            "n": {"type": "integer", "minimum": 1, "maximum": 200},
            "target_share": _positive(1),
            "time_limit_s": _positive(600),
        },
    },
    "Job": _object(
        ["id", "status"],
        id={"type": "string"},
        kind={"type": "string"},
        status={"type": "string",
                "enum": ["queued", "running", "done", "failed", "cancelled", "deleted"]},
        progress={"type": "number"},
        message={"type": "string"},
        params={"type": "object"},
        result={"type": "object", "nullable": True},
        error={"type": "object", "nullable": True},
    ),
    "ScenarioNew": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 200},
            "description": {"type": "string", "maxLength": 2000},
            "of": {"type": "string", "enum": ["red", "sites", "stations"]},
            "kind": {"type": "array", "items": {"type": "string"}},
            "added": {"type": "array", "items": _object(
                ["lon", "lat"], name={"type": "string"},
                lon={"type": "number", "minimum": -180, "maximum": 180},
                lat={"type": "number", "minimum": -90, "maximum": 90})},
            "removed": {"type": "array", "items": _object(
                ["venue_table", "venue_id"],
                venue_table={"type": "string", "enum": ["sites", "stations"]},
                venue_id={"type": "integer"})},
            "from_job": {"type": "string"},
        },
    },
    "Scenario": _object(
        ["id", "name", "venue_set", "added", "removed"],
        id={"type": "integer"},
        name={"type": "string"},
        description={"type": "string"},
        venue_set={"type": "object"},
        added={"type": "array", "items": {"type": "object"}},
        removed={"type": "array", "items": {"type": "object"}},
        origin=_NULLABLE_STRING,
        created_at={"type": "string"},
        updated_at={"type": "string"},
    ),
    "Scenarios": _object(["scenarios"], scenarios={"type": "array",
                                                   "items": ref("Scenario")}),
    "OgcDocument": _object(["links"], links={"type": "array", "items": {"type": "object"}}),
    "OgcConformance": _object(["conformsTo"], conformsTo=_STRINGS),
    "OgcCollections": _object(
        ["links", "collections"],
        links={"type": "array", "items": {"type": "object"}},
        collections={"type": "array", "items": ref("OgcCollection")},
    ),
    "OgcCollection": _object(
        ["id", "links"],
        id={"type": "string"},
        title={"type": "string"},
        links={"type": "array", "items": {"type": "object"}},
    ),
}

