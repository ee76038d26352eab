"""Gzip, ETags and 304s on every GET (geomap.web.compression), and payloads kept until their
data changes (geomap.web.keep, geomap.analysis.versions), against a real PostGIS.

Writes that must be seen by other connections (as another worker or the CLI would make
them) are committed in a fresh database (``db_url``); the data is tiny and SYNTHETIC.
"""

from __future__ import annotations

import gzip
import html
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from geomap import config, create_app, db
from geomap.analysis import versions
from geomap.layers import load_catalog
from geomap.network import import_network
from geomap.web import compression
from tests.test_network import TEST_PBF

LEAFLET_JS = Path(compression.__file__).resolve().parent.parent / "static/vendor/leaflet/leaflet.js"


# ---------------------------------------------------------------------------------------
# HTTP: the app-wide hook


def test_json_answers_are_gzipped_with_a_strong_etag_and_revalidated(client) -> None:
    plain = client.get("/openapi.json")
    assert plain.status_code == 200 and "Content-Encoding" not in plain.headers
    etag = plain.headers["ETag"]
    assert etag.startswith('"') and not etag.startswith('W/')  # strong
    assert "Accept-Encoding" in plain.headers["Vary"]

    zipped = client.get("/openapi.json", headers={"Accept-Encoding": "gzip, deflate"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped.get_data()) == plain.get_data()
    assert len(zipped.get_data()) < len(plain.get_data()) / 3
    # Two encodings are two representations: each its own validator.
    assert zipped.headers["ETag"] != etag and zipped.headers["ETag"].endswith('-gz"')

    again = client.get(
        "/openapi.json",
        headers={"Accept-Encoding": "gzip", "If-None-Match": zipped.headers["ETag"]},
    )
    assert again.status_code == 304 and again.get_data() == b""
    assert again.headers["ETag"] == zipped.headers["ETag"]
    # A validator of the other encoding does not match this one.
    assert client.get("/openapi.json", headers={"If-None-Match": zipped.headers["ETag"]}
                      ).status_code == 200  # fmt: skip


def test_vary_is_added_to_not_replacing_the_answers_own(shared_url: str, connection) -> None:
    from sqlalchemy.orm import sessionmaker

    app = create_app({"database_url": shared_url, "cors_origins": ("https://portal.example",)})
    app.extensions["geomap_sessionmaker"] = sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint"
    )
    response = app.test_client().get(
        "/openapi.json", headers={"Origin": "https://portal.example", "Accept-Encoding": "gzip"}
    )
    vary = {v.strip() for v in response.headers["Vary"].split(",")}
    assert {"Origin", "Accept-Encoding"} <= vary


def test_small_errors_and_streamed_answers_are_left_as_they_are(client) -> None:
    error = client.get("/api/layers/nosuch", headers={"Accept-Encoding": "gzip"})
    assert error.status_code == 404
    assert "ETag" not in error.headers and "Content-Encoding" not in error.headers
    streamed = client.get("/api/layers/grids", headers={"Accept-Encoding": "gzip"})
    assert streamed.status_code == 200 and streamed.is_streamed
    assert "Content-Encoding" not in streamed.headers and "ETag" not in streamed.headers
    assert json.loads(streamed.get_data())["type"] == "FeatureCollection"
    head = client.head("/openapi.json", headers={"Accept-Encoding": "gzip"})
    assert head.status_code == 200 and head.headers["Content-Encoding"] == "gzip"


def test_static_files_are_compressed_once_and_versioned_urls_cached(client) -> None:
    url = "/static/vendor/leaflet/leaflet.js"
    zipped = client.get(url, headers={"Accept-Encoding": "gzip"})
    assert zipped.status_code == 200 and zipped.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped.get_data()) == LEAFLET_JS.read_bytes()
    assert zipped.mimetype == "text/javascript"
    assert zipped.headers["Cache-Control"] == "no-cache"  # unversioned: always revalidated
    assert client.get(url, headers={"Accept-Encoding": "gzip",
                                    "If-None-Match": zipped.headers["ETag"]}).status_code == 304
    versioned = client.get(url + "?v=abc", headers={"Accept-Encoding": "gzip"})
    assert versioned.headers["Cache-Control"] == compression.IMMUTABLE
    font = client.get("/static/vendor/fontawesome/webfonts/fa-solid-900.woff2",
                      headers={"Accept-Encoding": "gzip"})  # fmt: skip
    assert font.status_code == 200 and "Content-Encoding" not in font.headers  # compressed already
    assert client.get("/static/vendor/nosuch.js").status_code == 404
    assert client.get("/static/../config.py").status_code == 404


def test_a_static_file_changed_on_disk_is_read_again(tmp_path: Path) -> None:
    files = compression._StaticFiles(str(tmp_path))
    (tmp_path / "a.js").write_text("var a = 1;")
    first, mimetype = files.payload("a.js")
    assert mimetype == "text/javascript" and first.body == b"var a = 1;"
    assert files.payload("a.js")[0] is first  # read once
    (tmp_path / "a.js").write_text("var a = 22;")
    second = files.payload("a.js")[0]
    assert second.body == b"var a = 22;" and second.etag != first.etag


# ---------------------------------------------------------------------------------------
# Stamps: a change committed by another connection is never missed


def _engine(url: str) -> sa.Engine:
    return db.get_engine(config.load({"database_url": url}, environ={}))


_STATION = (
    "INSERT INTO stations (name, kind, geom, source) VALUES "
    "(:name, 'red_station', ST_SetSRID(ST_MakePoint(115.9, 28.7), 4326), 'synthetic: test')"
)
_TEAM = (
    "INSERT INTO teams (code, name, kind, headcount, status, capabilities, geom, source) "
    "VALUES (:code, :code, 'medical', 3, 'available', '{}', "
    "ST_SetSRID(ST_MakePoint(115.9, 28.7), 4326), 'synthetic: test')"
)


def test_stamps_follow_every_committed_write(db_url: str) -> None:
    engine = _engine(db_url)
    names = versions.DATA_SETS
    with engine.connect() as reader:
        before = versions.stamps(reader, names)
        reader.commit()
        assert versions.stamps(reader, names, since=before) == before  # nothing changed
        reader.commit()
        with engine.begin() as writer:
            writer.execute(sa.text(_STATION), {"name": "站"})
        after = versions.stamps(reader, names, since=before)
        reader.commit()
        assert after["stations"] != before["stations"]
        assert {k: v for k, v in after.items() if k != "stations"} == {
            k: v for k, v in before.items() if k != "stations"
        }


def test_a_team_written_by_an_older_transaction_committing_late_is_seen(db_url: str) -> None:
    engine = _engine(db_url)
    with engine.begin() as conn:
        for code in ("t1", "t2"):
            conn.execute(sa.text(_TEAM), {"code": code})
    with engine.connect() as reader, engine.connect() as old, engine.connect() as young:
        old.begin()
        old.execute(sa.text("UPDATE teams SET status = 'deployed' WHERE code = 't1'"))
        with young.begin():  # a younger transaction commits first
            young.execute(sa.text("UPDATE teams SET status = 'off_duty' WHERE code = 't2'"))
        stamp = versions.stamps(reader, ["teams"])
        reader.commit()
        assert versions.stamps(reader, ["teams"], since=stamp) == stamp
        reader.commit()
        old.commit()  # its xid is older than the newest sync_xid already seen
        assert versions.stamps(reader, ["teams"], since=stamp) != stamp
        reader.commit()


def test_the_callers_own_uncommitted_writes_are_never_shared(connection) -> None:
    assert versions.stamps(connection, ["stations", "teams"]) is not None
    connection.execute(sa.text(_STATION), {"name": "未提交"})
    assert versions.stamps(connection, ["stations"]) is None
    connection.execute(sa.text(_TEAM), {"code": "mine"})
    assert versions.stamps(connection, ["teams"]) is None
    with pytest.raises(ValueError, match="unknown data set"):
        versions.stamps(connection, ["rivers"])


# ---------------------------------------------------------------------------------------
# Kept payloads: a second load is served from memory, a committed change rebuilds


def test_layer_documents_are_kept_until_their_data_changes(db_url: str) -> None:
    engine = _engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text(_STATION), {"name": "一号站"})
    app = create_app({"database_url": db_url, "open_read": True})  # the demo: keyless reads
    client = app.test_client()
    first = client.get("/map/data/stations")
    second = client.get("/map/data/stations")
    shelf = app.extensions["geomap_kept"]
    assert (shelf.builds, shelf.hits) == (1, 1)
    assert second.headers["ETag"] == first.headers["ETag"]
    assert client.get("/map/data/stations", headers={"If-None-Match": first.headers["ETag"]}
                      ).status_code == 304  # fmt: skip
    with engine.begin() as conn:  # another worker, the CLI or psql writes
        conn.execute(sa.text(_STATION), {"name": "二号站"})
    third = client.get("/map/data/stations")
    assert shelf.builds == 2 and third.headers["ETag"] != first.headers["ETag"]
    assert json.loads(third.get_data())["count"] == 2
    # Another layer's writes do not touch it.
    with engine.begin() as conn:
        conn.execute(sa.text(_TEAM), {"code": "t9"})
    client.get("/map/data/stations")
    assert shelf.builds == 2


def test_every_map_layer_is_kept_but_the_cases() -> None:
    # A layer without a data set is rebuilt on every request: the streets were (160 ms a
    # load of the battle map) until their materialized view was named here.
    unkept = {layer.id for layer in load_catalog().values()
              if not versions.layer_data_sets(layer)}
    assert unkept == {"cases"}  # open cases carry personal fields and change by the minute


def test_the_streets_document_is_kept_until_the_network_changes(db_url: str) -> None:
    engine = _engine(db_url)
    with engine.begin() as conn:
        import_network(conn, TEST_PBF)
    app = create_app({"database_url": db_url, "open_read": True})  # the demo: keyless reads
    client = app.test_client()
    first = client.get("/map/data/streets")
    assert client.get("/map/data/streets").headers["ETag"] == first.headers["ETag"]
    shelf = app.extensions["geomap_kept"]
    assert (shelf.builds, shelf.hits) == (1, 1)
    with engine.begin() as conn:  # a network import or an edit refreshes the view
        conn.execute(sa.text("DELETE FROM road_edges"))
    second = client.get("/map/data/streets")
    assert shelf.builds == 2 and second.headers["ETag"] != first.headers["ETag"]
    assert json.loads(first.get_data())["count"] > 0
    assert json.loads(second.get_data())["count"] == 0


def test_the_battle_maps_first_view_is_kept_before_any_request(nanchang_url: str) -> None:
    # What the gunicorn master does before it forks the workers (geomap.serving.warm).
    from geomap.maps.views import warm_battle_map

    app = create_app({"database_url": nanchang_url, "open_read": True})  # the demo
    warmed = warm_battle_map(app)
    assert {"/map/data/grids", "/map/data/teams", "/map/data/streets"} <= set(warmed)
    shelf = app.extensions["geomap_kept"]
    builds = shelf.builds
    client = app.test_client()
    page = client.get("/map").get_data(as_text=True)
    for url in warmed:
        # Exactly what the page preloads, and answered from what was kept.
        assert f'rel="preload" as="fetch" crossorigin="anonymous" href="{html.escape(url)}"' in page
        assert client.get(url).status_code == 200
    assert shelf.builds == builds and shelf.hits >= len(warmed)


def test_which_layers_a_page_draws_from_tiles_is_kept_until_their_data_changes(
    db_url: str,
) -> None:
    # Counting the layers (and summarising the tiled ones) was a page's own query work:
    # 0.1 s of every load for a city ten times Nanchang.
    engine = _engine(db_url)
    with engine.begin() as conn:
        for name in ("一号站", "二号站"):
            conn.execute(sa.text(_STATION), {"name": name})
    app = create_app({"database_url": db_url, "map_tiles_above": 2, "open_read": True})
    client = app.test_client()

    def stations_source() -> dict:
        page = client.get("/map?layers=stations").get_data(as_text=True)
        config = json.loads(page.split('id="geomap-config">', 1)[1].split("</script>", 1)[0])
        return next(layer for layer in config["layers"] if layer["id"] == "stations")

    assert "tiles" not in stations_source()["source"]  # 2 stations: one document
    shelf = app.extensions["geomap_kept"]
    builds = shelf.builds
    stations_source()
    assert shelf.builds == builds  # kept
    with engine.begin() as conn:  # a third station: above the threshold now
        conn.execute(sa.text(_STATION), {"name": "三号站"})
    tiled = stations_source()
    assert "tiles" in tiled["source"] and tiled["count"] == 3


def test_analysis_answers_are_kept_until_their_data_changes(db_url: str) -> None:
    engine = _engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO grids (code, name, population, households, geom, source) VALUES "
            "('g1', '格', 100, 40, ST_Multi(ST_MakeEnvelope(115.89, 28.69, 115.90, 28.70, 4326)),"
            " 'synthetic: test')"
        ))  # fmt: skip
    app = create_app({"database_url": db_url, "open_read": True})  # the demo: keyless reads
    client = app.test_client()
    path = "/api/coverage?of=stations&within_m=500&format=json"
    empty = client.get(path).get_json()
    assert empty["summary"]["covered_units"] == 0
    assert client.get(path).get_json() == empty
    shelf = app.extensions["geomap_kept"]
    assert (shelf.builds, shelf.hits) == (1, 1)
    with engine.begin() as conn:  # a station right in the grid
        conn.execute(sa.text(
            "INSERT INTO stations (name, kind, geom, source) VALUES ('站', 'red_station', "
            "ST_SetSRID(ST_MakePoint(115.895, 28.695), 4326), 'synthetic: test')"
        ))  # fmt: skip
    covered = client.get(path).get_json()
    assert covered["summary"]["covered_units"] == 1 and shelf.builds == 2
    # Coverage by sites does not depend on the stations: a team written changes nothing.
    client.get("/api/coverage?of=sites&within_m=500")
    builds = shelf.builds
    with engine.begin() as conn:
        conn.execute(sa.text(_TEAM), {"code": "t1"})
    client.get("/api/coverage?of=sites&within_m=500")
    assert shelf.builds == builds
    # A bad argument is still refused by the view, and nothing is kept for it.
    assert client.get("/api/coverage?of=rivers").status_code == 400
