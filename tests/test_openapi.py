"""/openapi.json describes every endpoint, and the real answers keep to it (schemathesis)."""

from __future__ import annotations

import os
import re
from collections import Counter

import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from geomap import auth
from tests import handmade

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
#: Examples per operation: bounded in `make test`; `make fuzz` raises it.
EXAMPLES = int(os.environ.get("GEOMAP_FUZZ_EXAMPLES", "12"))
_RULE_ARG = re.compile(r"<(?:\w+:)?(\w+)>")


def test_every_route_is_in_the_document(client, app):
    paths = client.get("/openapi.json").get_json()["paths"]
    templates = {re.sub(r"\{\w+\}", "{}", p) for p in paths}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.rule.startswith("/static"):
            continue
        template = _RULE_ARG.sub("{}", rule.rule).rstrip("/") or "/"
        # OGC paths are written per collection: /ogc/collections/grids/items for {}/items.
        if "{}" in template and template.startswith("/ogc/collections/"):
            collection_paths = {t.replace("/ogc/collections/", "", 1) for t in templates}
            suffix = template.replace("/ogc/collections/{}", "", 1)
            assert any(p.endswith(suffix) for p in collection_paths), rule.rule
            continue
        assert template in templates, f"{rule.rule} is not in /openapi.json"


def test_docs_page_is_local(client):
    page = client.get("/docs").get_data(as_text=True)
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in page
    assert "http://" not in page and "https://" not in page


def _small_world(conn) -> str:
    """A hand-built network, a few of everything, and a commander key."""
    handmade.load(conn)
    lon, lat = handmade.node_lonlat(3, 3)
    statements = [
        "INSERT INTO regions (code, parent_code, level, name, geom, source) VALUES "
        "('360199', NULL, 'city', 'C', ST_Multi(ST_MakeEnvelope(115.85, 28.6, 116.0, 28.75, "
        "4326)), 'synthetic: t'), ('360198', '360199', 'district', 'D', "
        "ST_Multi(ST_MakeEnvelope(115.85, 28.6, 116.0, 28.75, 4326)), 'synthetic: t')",
        "INSERT INTO grids (code, name, population, households, geom, source) VALUES "
        "('G1', 'G1', 900, 300, ST_Multi(ST_MakeEnvelope(115.899, 28.659, 115.905, 28.665, "
        "4326)), 'synthetic: t')",
        "INSERT INTO stations (name, kind, geom, source) VALUES "
        "('驿站', 'red_station', ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), 'synthetic: t')",
        "INSERT INTO sites (name, kind, geom, source) VALUES "
        "('纪念馆', 'memorial_hall', ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), 'synthetic: t')",
        "INSERT INTO teams (code, name, kind, headcount, leader_phone, geom, position_at, "
        "source) VALUES ('T1', '医护', 'medical', 10, '10000000000', "
        "ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), now(), 'synthetic: t')",
    ]
    for statement in statements:
        conn.execute(sa.text(statement), {"lon": lon, "lat": lat})
    key, _ = auth.create_key(conn, "fuzz", "commander")
    return key


def test_fuzz_every_operation(app, connection):
    """Every operation of the document, fuzzed: no 5xx, documented statuses and media
    types, bodies that keep to their schema.

    Driven from a plain test (one hypothesis run per operation) rather than through
    schemathesis' pytest fixture integration, which does not run under pytest 9.
    """
    # identity: schemathesis' WSGI transport does not undo a Content-Encoding as an HTTP
    # client does (gzip is tested in tests/test_compression.py).
    headers = {
        "Authorization": f"Bearer {_small_world(connection)}",
        "Accept-Encoding": "identity",
    }
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    failures, operations, statuses = [], 0, Counter()
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        def run(case):
            response = case.call(headers=headers)
            statuses[response.status_code // 100] += 1
            case.validate_response(response, checks=CHECKS)

        try:
            run()
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.label}: {exc}")
    assert operations >= 30
    # The fuzz reached the operations' real work, not only their input checks.
    assert statuses[2] >= operations and statuses[4] > 0, statuses
    assert not failures, "\n\n".join(failures)
