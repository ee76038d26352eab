"""OGC API - Features under ``/ogc``: documents, paging, filters, errors, HTML, and GDAL.

Most tests run on a few rows inserted in a rolled-back transaction; the last ones serve
the whole Nanchang dataset on a real port and read it with GDAL's own ``ogrinfo`` and
``ogr2ogr`` (the OAPIF driver, as QGIS users and scripts do).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sqlite3
import subprocess
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from werkzeug.datastructures import MultiDict

from geomap import create_app, layers, storage
from geomap.errors import InvalidInput
from geomap.ogc import core
from tests import handmade
from tests.browser import serve_app

CONF = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/"
PHONE = "13800000000"


def _links(doc: dict, rel: str) -> list[dict]:
    return [link for link in doc["links"] if link["rel"] == rel]


def _link(doc: dict, rel: str, media: str | None = None) -> dict:
    found = [link for link in _links(doc, rel) if media is None or link["type"] == media]
    assert len(found) == 1, (rel, media, doc["links"])
    return found[0]


def _path(href: str) -> str:
    """An absolute link as the test client wants it (path and query)."""
    parts = urlsplit(href)
    assert parts.scheme == "http" and parts.netloc, href  # links are absolute
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _stations(conn, n: int) -> None:
    conn.execute(
        sa.text(
            "INSERT INTO stations (id, name, kind, geom, source) SELECT i, 'S' || i, "
            "CASE WHEN i % 2 = 0 THEN 'red_station' ELSE 'grid_station' END, "
            "ST_SetSRID(ST_MakePoint(115.8 + i * 0.001, 28.6), 4326), 'synthetic: test' "
            "FROM generate_series(1, :n) AS i"
        ),
        {"n": n},
    )


#: (id, code, name, kind, leader_name, leader_phone, capabilities, position_at, lon)
TEAMS = (
    (1, "T1", "医护一队", "medical", "张三", PHONE, ["first_aid"], "2026-11-22T08:00:00Z", 115.90),
    (2, "T2", "骑士二队", "rider", "李四", "13900000000", [], "2026-11-22T09:00:00Z", 115.91),
    (3, "T3", "红旗车三队", "red_flag_car", None, None, [], "2026-11-22T10:00:00Z", 115.92),
)


def _teams(conn) -> None:
    columns = ("id", "code", "name", "kind", "leader_name", "leader_phone", "capabilities",
               "position_at", "lon")  # fmt: skip
    conn.execute(
        sa.text(
            "INSERT INTO teams (id, code, name, kind, headcount, leader_name, leader_phone, "
            "capabilities, position_at, geom, source) VALUES (:id, :code, :name, :kind, 5, "
            ":leader_name, :leader_phone, :capabilities, CAST(:position_at AS timestamptz), "
            "ST_SetSRID(ST_MakePoint(:lon, 28.68), 4326), 'synthetic: test')"
        ),
        [dict(zip(columns, row, strict=True)) for row in TEAMS],
    )


def _regions(conn) -> None:
    square = "ST_Multi(ST_MakeEnvelope(115.8, 28.6, 115.9, 28.7, 4326))"
    conn.execute(
        sa.text(
            "INSERT INTO regions (code, parent_code, level, name, geom, source) VALUES "
            f"('360100', NULL, 'city', '南昌市', {square}, 'synthetic: t'),"
            f"('360102', '360100', 'district', '东湖区', {square}, 'synthetic: t'),"
            f"('360102014', '360102', 'township', '董家窑街道', {square}, 'synthetic: test')"
        )
    )


# -- documents --------------------------------------------------------------------------


def test_landing_page_links_to_everything(client):
    response = client.get("/ogc")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    doc = response.get_json()
    assert doc["title"] and doc["description"]
    assert _link(doc, "self")["type"] == "application/json"
    assert _link(doc, "alternate")["type"] == "text/html"
    service = _link(doc, "service-desc")
    assert service["href"].endswith("/openapi.json")
    assert service["type"] == core.MEDIA_OPENAPI
    conformance = _link(doc, "conformance", "application/json")
    data = _link(doc, "data", "application/json")
    assert client.get(_path(conformance["href"])).get_json()["conformsTo"]
    assert "collections" in client.get(_path(data["href"])).get_json()
    assert client.get("/ogc/").status_code == 200  # with the slash too


def test_conformance_declares_core_geojson_html_oas30(client):
    doc = client.get("/ogc/conformance").get_json()
    assert set(doc["conformsTo"]) == {CONF + c for c in ("core", "geojson", "html", "oas30")}
    assert _link(doc, "self")["href"].endswith("/ogc/conformance?f=json")


def test_collections_are_the_layer_catalog(client, connection):
    _teams(connection)
    doc = client.get("/ogc/collections").get_json()
    assert _link(doc, "self")["type"] == "application/json"
    assert _link(doc, "alternate")["type"] == "text/html"
    catalog = layers.load_catalog()
    assert [c["id"] for c in doc["collections"]] == list(catalog)
    for collection in doc["collections"]:
        layer = catalog[collection["id"]]
        assert collection["title"] == layer.title["zh"]
        assert collection["storageCrs"] == core.CRS84
        assert collection["crs"] == [core.CRS84]
        items = _link(collection, "items", "application/geo+json")
        assert _path(items["href"]).startswith(f"/ogc/collections/{layer.id}/items")
        _link(collection, "items", "text/html")
        _link(collection, "self", "application/json")
    teams = next(c for c in doc["collections"] if c["id"] == "teams")
    [bbox] = teams["extent"]["spatial"]["bbox"]
    assert bbox == pytest.approx([115.9, 28.68, 115.92, 28.68], abs=1e-5)
    assert teams["extent"]["temporal"]["interval"] == [
        ["2026-11-22T08:00:00Z", "2026-11-22T10:00:00Z"]
    ]
    grids = next(c for c in doc["collections"] if c["id"] == "grids")
    assert "extent" not in grids  # no grid in this database, no time column


def test_one_collection_and_an_unknown_one(client):
    response = client.get("/ogc/collections/stations")
    assert response.status_code == 200
    doc = response.get_json()
    assert doc["id"] == "stations"
    assert _link(doc, "self")["href"].endswith("/ogc/collections/stations?f=json")
    response = client.get("/ogc/collections/nope")
    assert response.status_code == 404
    assert response.get_json()["error"]["field"] == "collectionId"
    assert client.get("/ogc/collections/nope/items").status_code == 404


def test_collections_credit_their_sources(client, connection):
    """Licence and attribution follow the rows' source labels: an OpenStreetMap network
    makes the streets (and the circles drawn from it) credit OpenStreetMap, under ODbL."""
    nodes, edges = handmade.build()
    half = edges["id"] <= len(edges) // 2
    edges.loc[half, "source"] = "real: OpenStreetMap contributors (ODbL), test.osm"
    storage.copy_frame(connection, "road_nodes", nodes)
    storage.copy_frame(connection, "road_edges", edges)
    streets = client.get("/ogc/collections/streets?f=json").get_json()
    assert streets["attribution"] == "© OpenStreetMap contributors"
    assert streets["license"] == "ODbL-1.0"
    assert _link(streets, "license")["href"] == "https://www.openstreetmap.org/copyright"
    # The streets view merges edges (every real one, the synthetic main roads): its rows
    # are counted by their own source labels.
    merged = streets["geomap:provenance"]
    drawn = edges[half | edges["road_class"].isin(["primary", "secondary", "tertiary"])]
    assert merged["real"] > 0 and set(merged["sources"]) == set(drawn["source"])
    circles = client.get("/ogc/collections/circles?f=json").get_json()
    assert circles["attribution"] == "© OpenStreetMap contributors"  # no circle yet, still
    assert circles["geomap:provenance"]["real"] == 0
    assert circles["geomap:provenance"]["derivedFrom"] == {
        "tables": ["road_edges"],
        "sources": edges["source"].value_counts().to_dict(),
    }
    html = client.get("/ogc/collections/streets?f=html").get_data(as_text=True)
    assert "© OpenStreetMap contributors" in html and "openstreetmap.org/copyright" in html
    # Synthetic rows only: nothing to credit, and the document says how many rows are made up.
    stations = client.get("/ogc/collections/stations?f=json").get_json()
    assert "attribution" not in stations and "license" not in stations
    assert stations["geomap:provenance"]["real"] == 0


# -- items -----------------------------------------------------------------------------


def test_paging_gives_every_feature_once_in_order(client, connection):
    _stations(connection, 30)
    path, seen, pages = "/ogc/collections/stations/items?limit=7", [], 0
    while path:
        response = client.get(path)
        assert response.status_code == 200
        assert response.mimetype == "application/geo+json"
        page = response.get_json()
        assert page["type"] == "FeatureCollection"
        assert page["numberMatched"] == 30
        assert page["numberReturned"] == len(page["features"]) <= 7
        assert page["timeStamp"].endswith("Z")
        assert _link(page, "self")["type"] == "application/geo+json"
        assert _link(page, "alternate")["type"] == "text/html"
        assert bool(_links(page, "prev")) == (pages > 0)
        seen += [f["id"] for f in page["features"]]
        nxt = _links(page, "next")
        path = _path(nxt[0]["href"]) if nxt else None
        pages += 1
    assert seen == list(range(1, 31))
    assert pages == 5

    # prev goes back to exactly the features before the page, even mid-way.
    page = client.get("/ogc/collections/stations/items?limit=10&offset=4").get_json()
    prev = parse_qs(urlsplit(_link(page, "prev")["href"]).query)
    assert (prev["offset"], prev["limit"]) == (["0"], ["4"])
    assert _link(page, "collection")["type"] == "application/json"


def test_limit_default_and_maximum(app, client, connection):
    _stations(connection, 120)
    page = client.get("/ogc/collections/stations/items").get_json()
    assert page["numberReturned"] == core.DEFAULT_LIMIT == 100
    settings = app.config["GEOMAP"]
    app.config["GEOMAP"] = dataclasses.replace(
        settings, values={**settings.values, "max_features": 25}
    )
    # Over the maximum (the OpenAPI document's `maximum`): refused by name, not clamped.
    refused = client.get("/ogc/collections/stations/items?limit=26")
    assert refused.status_code == 400
    assert refused.get_json()["error"]["field"] == "limit"
    assert "at most 25" in refused.get_json()["error"]["message"]
    # At the maximum: a full page, and the next link asks for the same.
    page = client.get("/ogc/collections/stations/items?limit=25").get_json()
    assert page["numberReturned"] == 25
    assert "limit=25" in _link(page, "next")["href"]


def test_items_are_streamed(client, connection):
    _stations(connection, 3)
    response = client.get("/ogc/collections/stations/items")
    assert response.is_streamed
    assert response.get_json()["numberReturned"] == 3


def test_bbox(client, connection):
    _stations(connection, 30)

    def ids(query: str) -> list[int]:
        response = client.get("/ogc/collections/stations/items?" + query)
        assert response.status_code == 200, response.get_json()
        return [f["id"] for f in response.get_json()["features"]]

    assert ids("bbox=115.8005,28.5,115.8055,28.7") == [1, 2, 3, 4, 5]
    assert ids("bbox=115.8005,28.5,0,115.8055,28.7,100") == [1, 2, 3, 4, 5]  # 6 numbers
    assert ids(f"bbox=115.8005,28.5,115.8055,28.7&bbox-crs={core.CRS84}") == [1, 2, 3, 4, 5]
    assert ids("bbox=116,28,117,29") == []
    page = client.get("/ogc/collections/stations/items?bbox=115.8005,28.5,115.8105,28.7&limit=3")
    assert "bbox=115.8005,28.5,115.8105,28.7" in _link(page.get_json(), "next")["href"]


def test_property_filter(client, connection):
    _stations(connection, 30)
    page = client.get("/ogc/collections/stations/items?kind=red_station&limit=5").get_json()
    assert page["numberMatched"] == 15
    assert {f["properties"]["kind"] for f in page["features"]} == {"red_station"}
    assert "kind=red_station" in _link(page, "next")["href"]


def test_datetime_on_team_positions(client, connection):
    _teams(connection)

    def ids(value: str) -> list[int]:
        response = client.get("/ogc/collections/teams/items", query_string={"datetime": value})
        assert response.status_code == 200, response.get_json()
        return [f["id"] for f in response.get_json()["features"]]

    assert ids("2026-11-22T09:00:00Z") == [2]  # an instant
    assert ids("2026-11-22T08:30:00Z/2026-11-22T10:00:00Z") == [2, 3]
    assert ids("../2026-11-22T09:00:00Z") == [1, 2]
    assert ids("2026-11-22T09:30:00+00:00/..") == [3]
    assert ids("2026-11-22T17:00:00+08:00") == [2]  # 09:00 UTC, given in Beijing time


def test_item_by_id(client, connection):
    _stations(connection, 3)
    response = client.get("/ogc/collections/stations/items/2")
    assert response.status_code == 200
    assert response.mimetype == "application/geo+json"
    item = response.get_json()
    assert (item["type"], item["id"], item["properties"]["name"]) == ("Feature", 2, "S2")
    assert item["geometry"]["type"] == "Point"
    assert _link(item, "self")["href"].endswith("/ogc/collections/stations/items/2?f=json")
    assert _link(item, "collection")["href"].endswith("/ogc/collections/stations?f=json")
    for missing in ("/ogc/collections/stations/items/99", "/ogc/collections/stations/items/x"):
        response = client.get(missing)
        assert response.status_code == 404
        assert response.get_json()["error"]["field"] == "featureId"


def test_a_feature_outside_the_collection_is_not_found(client, connection):
    _regions(connection)
    assert client.get("/ogc/collections/districts/items/360102").status_code == 200
    # The township is in the same table, but not in the districts collection.
    response = client.get("/ogc/collections/districts/items/360102014")
    assert response.status_code == 404
    assert client.get("/ogc/collections/townships/items/360102014").status_code == 200
    page = client.get("/ogc/collections/districts/items").get_json()
    assert [f["id"] for f in page["features"]] == ["360102"]


def test_personal_fields_never_leave(client, connection):
    _teams(connection)
    for path in (
        "/ogc/collections/teams/items",
        "/ogc/collections/teams/items?f=html",
        "/ogc/collections/teams/items/1",
        "/ogc/collections/teams/items/1?f=html",
    ):
        response = client.get(path)
        assert response.status_code == 200
        text = response.get_data(as_text=True)
        assert PHONE not in text and "张三" not in text, path
        assert "leader_phone" not in text and "leader_name" not in text, path
    page = client.get("/ogc/collections/teams/items").get_json()
    assert page["features"][0]["properties"]["capabilities"] == ["first_aid"]


# -- representations -------------------------------------------------------------------


def test_html_pages(client, connection):
    _stations(connection, 12)
    catalog = layers.load_catalog()
    response = client.get("/ogc/collections?f=html")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    text = response.get_data(as_text=True)
    assert all(layer.title["zh"] in text for layer in catalog.values())
    assert "<script" not in text and "https://" not in text  # plain, offline HTML
    for path, expected in (
        ("/ogc?f=html", "作战图"),
        ("/ogc/conformance?f=html", CONF + "core"),
        ("/ogc/collections/stations?f=html", "服务阵地"),
        ("/ogc/collections/stations/items?f=html&limit=5", "S5"),
        ("/ogc/collections/stations/items/3?f=html", "S3"),
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.mimetype == "text/html", path
        assert expected in response.get_data(as_text=True), path
    page = client.get("/ogc/collections/stations/items?f=html&limit=5").get_data(as_text=True)
    assert 'rel="next"' in page and "offset=5" in page and "S6" not in page


def test_content_negotiation(client):
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    assert client.get("/ogc", headers={"Accept": browser}).mimetype == "text/html"
    assert client.get("/ogc", headers={"Accept": "*/*"}).mimetype == "application/json"
    assert client.get("/ogc", headers={"Accept": "application/json"}).mimetype == (
        "application/json"
    )
    items = "/ogc/collections/stations/items"
    assert client.get(items, headers={"Accept": "application/geo+json"}).mimetype == (
        "application/geo+json"
    )
    assert client.get(items, headers={"Accept": "text/html"}).mimetype == "text/html"
    # f wins over Accept.
    assert client.get(items + "?f=json", headers={"Accept": "text/html"}).mimetype == (
        "application/geo+json"
    )
    response = client.get("/ogc/collections", headers={"Accept-Language": "en-GB,en;q=0.8"})
    assert response.headers["Content-Language"] == "en"
    assert "Accept" in response.headers["Vary"]
    titles = [c["title"] for c in response.get_json()["collections"]]
    assert "Grids" in titles and "Teams" in titles


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/ogc/collections/stations/items?bbox=1,2,3", "bbox"),
        ("/ogc/collections/stations/items?bbox=116,29,115,28", "bbox"),
        ("/ogc/collections/stations/items?bbox-crs=EPSG:4326&bbox=1,2,3,4", "bbox-crs"),
        ("/ogc/collections/stations/items?limit=0", "limit"),
        ("/ogc/collections/stations/items?limit=ten", "limit"),
        ("/ogc/collections/stations/items?offset=-1", "offset"),
        ("/ogc/collections/teams/items?datetime=garbage", "datetime"),
        ("/ogc/collections/teams/items?datetime=2026-11-23/2026-11-22", "datetime"),
        ("/ogc/collections/stations/items?datetime=not-a-time", "datetime"),  # checked anyway
        ("/ogc/collections/stations/items?colour=red", "colour"),
        ("/ogc/collections/teams/items?leader_name=张三", "leader_name"),
        ("/ogc/collections/teams/items?leader_phone=" + PHONE, "leader_phone"),
        ("/ogc/collections/teams/items?capabilities=first_aid", "capabilities"),  # an array
        ("/ogc/collections/stations/items?kind=a&kind=b", "kind"),
        ("/ogc/collections/stations/items?f=xml", "f"),
        ("/ogc?f=pdf", "f"),
        ("/ogc/collections?limit=5", "limit"),
        ("/ogc/collections/stations/items/1?bbox=1,2,3,4", "bbox"),
    ],
)
def test_bad_parameters_are_400_naming_the_field(client, path, field):
    response = client.get(path)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    assert response.get_json()["error"]["field"] == field


def test_core_parses_without_flask():
    """The core takes plain arguments: any caller (CLI, tests, another framework)."""
    stations = layers.load_catalog()["stations"]
    query = core.parse_items_query(
        stations, MultiDict({"kind": "red_station", "limit": "500"}), max_features=500
    )
    assert (query.limit, query.offset) == (500, 0)
    assert query.selection.filters == {"kind": "red_station"}
    assert query.selection.simplify is False  # a feature service serves exact geometry
    for too_many in ("0", "501"):
        with pytest.raises(InvalidInput) as info:
            core.parse_items_query(stations, MultiDict({"limit": too_many}), max_features=500)
        assert info.value.field == "limit"


# -- GDAL/OGR, on a real server with the whole Nanchang dataset -------------------------

requires_gdal = pytest.mark.skipif(
    shutil.which("ogrinfo") is None or shutil.which("ogr2ogr") is None,
    reason="GDAL command-line tools not installed: apt-get install gdal-bin",
)
#: For GDAL's HTTP client: a bound on every request, no debug noise, and no proxy between
#: it and the loopback server even if the environment names one.
GDAL_ENV = {
    "GDAL_HTTP_TIMEOUT": "30",
    "CPL_DEBUG": "OFF",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}


def _gdal(*args: str) -> tuple[str, float]:
    started = time.monotonic()
    result = subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **GDAL_ENV},
        check=False,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    assert "ERROR" not in result.stderr, result.stderr
    return result.stdout, elapsed


@pytest.fixture(scope="module")
def nanchang_server(nanchang_url):
    """The app on the Nanchang database, on a free port of 127.0.0.1 (read-only use).

    The demo's configuration: GDAL on this machine reads without a key (open reads)."""
    demo = create_app({"database_url": nanchang_url, "log_level": "WARNING", "open_read": True})
    with serve_app(demo) as url:
        yield url + "/ogc"


def _scalar(nanchang_url: str, sql: str):
    engine = sa.create_engine(nanchang_url, poolclass=sa.NullPool)
    with engine.connect() as conn:
        return conn.execute(sa.text(sql)).scalar_one()


@pytest.mark.slow
@requires_gdal
def test_ogrinfo_lists_every_layer(nanchang_server, nanchang_url):
    out, _ = _gdal("ogrinfo", "-ro", "-al", "-so", f"OAPIF:{nanchang_server}")
    names = [line.split(":", 1)[1].strip() for line in out.splitlines()
             if line.startswith("Layer name:")]  # fmt: skip
    assert names == list(layers.load_catalog())
    grids = out.split("Layer name: grids", 1)[1].split("Layer name:", 1)[0]
    assert f"Feature Count: {_scalar(nanchang_url, 'SELECT count(*) FROM grids')}" in grids
    assert "Geometry: Multi Polygon" in grids
    assert "Extent: (115." in grids


@pytest.mark.slow
@requires_gdal
def test_ogr2ogr_copies_grids_completely(nanchang_server, nanchang_url, tmp_path):
    # GDAL 3.6 asks for 10 features a page unless told (its PAGE_SIZE open option; the
    # OAPIF_PAGE_SIZE config option does not exist there); 1000 a page crosses pages too.
    target = tmp_path / "grids.gpkg"
    _, elapsed = _gdal(
        "ogr2ogr", "-f", "GPKG", str(target), f"OAPIF:{nanchang_server}", "grids",
        "-oo", "PAGE_SIZE=1000",
    )  # fmt: skip
    expected = _scalar(nanchang_url, "SELECT count(*) FROM grids")
    with sqlite3.connect(target) as gpkg:
        copied, codes = gpkg.execute("SELECT count(*), count(DISTINCT code) FROM grids").fetchone()
    assert copied == codes == expected == 4418
    assert elapsed < 60


@pytest.mark.slow
@requires_gdal
def test_ogr2ogr_copies_teams_without_personal_fields(nanchang_server, nanchang_url, tmp_path):
    # GDAL's default page size (10): some 565 next links followed.
    target = tmp_path / "teams.gpkg"
    _, elapsed = _gdal("ogr2ogr", "-f", "GPKG", str(target), f"OAPIF:{nanchang_server}", "teams")
    with sqlite3.connect(target) as gpkg:
        copied, ids = gpkg.execute("SELECT count(*), count(DISTINCT id) FROM teams").fetchone()
        columns = {row[1] for row in gpkg.execute("PRAGMA table_info(teams)")}
    assert copied == ids == _scalar(nanchang_url, "SELECT count(*) FROM teams")
    assert {"code", "name", "kind", "position_at"} <= columns
    assert not columns & {"leader_name", "leader_phone"}
    phone = _scalar(nanchang_url, "SELECT max(leader_phone) FROM teams")
    assert phone and phone.encode() not in target.read_bytes()
    assert elapsed < 60


def test_links_carry_the_embed_token():
    """A token given in the query (``geomap.auth`` embed tokens) stays in every link."""
    ctx = core.Context("http://h/ogc", "http://h/openapi.json", carry=(("token", "em_x"),))
    docs = [core.landing_page(ctx), core.conformance(ctx)]
    hrefs = [link["href"] for doc in docs for link in doc["links"] if "/ogc" in link["href"]]
    assert hrefs and all("token=em_x" in href for href in hrefs)
    assert ctx.page("/collections") == "http://h/ogc/collections?f=html&token=em_x"
    stations = layers.load_catalog()["stations"]
    query = core.parse_items_query(
        stations, MultiDict({"token": "em_x"}), max_features=10, extra=("token",)
    )
    assert "token" not in query.passthrough  # carried by the context, not as a filter


# ---------------------------------------------------------------------------------------
# OGC API - Features Part 1 Core: the points where it used to deviate (issue 13)


def _districts(conn) -> None:
    """Two L-shaped districts whose bounding boxes overlap, and one across the antimeridian."""
    shapes = {
        # An L: its bounding box covers (115.9-116.0, 28.6-28.7), its geometry leaves out
        # the north-east quarter.
        "360101": "MULTIPOLYGON(((115.9 28.6, 116.0 28.6, 116.0 28.65, 115.95 28.65, "
        "115.95 28.7, 115.9 28.7, 115.9 28.6)))",
        # A small square inside that north-east quarter.
        "360102": "MULTIPOLYGON(((115.96 28.66, 115.99 28.66, 115.99 28.69, 115.96 28.69, "
        "115.96 28.66)))",
        # Fiji's side of the antimeridian.
        "360103": "MULTIPOLYGON(((179.2 -17.0, 179.8 -17.0, 179.8 -16.5, 179.2 -16.5, "
        "179.2 -17.0)))",
        # And the other side.
        "360104": "MULTIPOLYGON(((-179.9 -17.0, -179.5 -17.0, -179.5 -16.5, -179.9 -16.5, "
        "-179.9 -17.0)))",
    }
    conn.execute(
        sa.text(
            "INSERT INTO regions (code, parent_code, level, name, geom, source) VALUES "
            "('360100', NULL, 'city', 'C', ST_Multi(ST_MakeEnvelope(-180, -60, 180, 60, 4326)), "
            "'synthetic: test')"
        )
    )
    for code, wkt in shapes.items():
        conn.execute(
            sa.text(
                "INSERT INTO regions (code, parent_code, level, name, geom, source) VALUES "
                "(:code, '360100', 'district', :code, ST_GeomFromText(:wkt, 4326), "
                "'synthetic: test')"
            ),
            {"code": code, "wkt": wkt},
        )


def _codes(client, query: str) -> list[str]:
    response = client.get("/ogc/collections/districts/items?" + query)
    assert response.status_code == 200, response.get_json()
    return sorted(f["properties"]["code"] for f in response.get_json()["features"])


def test_bbox_matches_geometries_not_their_bounding_boxes(client, connection):
    _districts(connection)
    # A small box in the L's empty corner: it meets the L's bounding box only.
    assert _codes(client, "bbox=115.97,28.67,115.98,28.68") == ["360102"]
    assert _codes(client, "bbox=115.91,28.61,115.92,28.62") == ["360101"]
    # /api/layers reads the same selection.
    geojson = client.get("/api/layers/districts?bbox=115.97,28.67,115.98,28.68").get_json()
    assert [f["properties"]["code"] for f in geojson["features"]] == ["360102"]


def test_a_bbox_across_the_antimeridian(client, connection):
    _districts(connection)
    assert _codes(client, "bbox=179,-18,-179,-16") == ["360103", "360104"]
    assert _codes(client, "bbox=179.5,-18,-179.95,-16") == ["360103"]
    assert _codes(client, "bbox=-179,-18,179,-16") == []  # a box west of both, the normal way
    count = client.get("/ogc/collections/districts/items?bbox=179,-18,-179,-16").get_json()
    assert count["numberMatched"] == 2


def test_datetime_on_a_collection_without_time_matches_everything(client, connection):
    _stations(connection, 3)
    every = client.get("/ogc/collections/stations/items").get_json()
    timed = client.get("/ogc/collections/stations/items?datetime=2026-11-22T08:00:00Z")
    assert timed.status_code == 200
    assert timed.get_json()["numberMatched"] == every["numberMatched"] == 3
    # It is still checked, and carried in the paging links.
    assert client.get("/ogc/collections/stations/items?datetime=garbage").status_code == 400
    page = client.get("/ogc/collections/stations/items?datetime=../2026-01-01T00:00:00Z&limit=1")
    assert "datetime=" in _link(page.get_json(), "next")["href"]


def test_openapi_declares_bbox_crs_and_form_style(client):
    paths = client.get("/openapi.json").get_json()["paths"]
    for collection in ("stations", "teams"):
        parameters = {p["name"]: p for p in paths[f"/ogc/collections/{collection}/items"]["get"]
                      ["parameters"]}  # fmt: skip
        assert parameters["bbox-crs"]["schema"]["enum"] == [core.CRS84]
        for name in ("bbox", "limit", "datetime"):
            assert (parameters[name]["style"], parameters[name]["explode"]) == ("form", False)


def test_openapi_document_is_valid_openapi_3_0_3(client):
    from openapi_spec_validator import validate

    document = client.get("/openapi.json").get_json()
    assert document["openapi"] == "3.0.3"
    validate(document)  # raises on any error, e.g. a $ref to a schema that does not exist
    circles = document["paths"]["/api/circles"]["get"]["responses"]["200"]["content"]
    assert circles["application/geo+json"]["schema"] == {"$ref": "#/components/schemas/Circles"}
