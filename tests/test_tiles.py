"""Vector tiles of catalog layers (geomap.analysis.tiles, /tiles/<layer>/{z}/{x}/{y}.pbf) on
the Nanchang dataset, decoded by an independent MVT decoder (mapbox-vector-tile), and the
zoom generalisation of the maps' documents (geomap.maps.compact).
"""

from __future__ import annotations

import gzip
import json
import math

import mapbox_vector_tile
import pytest
import sqlalchemy as sa

from geomap import db
from geomap.analysis import tiles
from geomap.layers import load_catalog
from geomap.maps import compact

CENTRE = (115.8925, 28.6765)  # Nanchang, Bayi Square


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    """The XYZ tile holding (lon, lat) at zoom z (Web Mercator)."""
    n = 2**z
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    return x, y


def _decoded(client, path: str) -> dict:
    response = client.get(path, headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200, response.get_data()[:300]
    assert response.mimetype == tiles.MEDIA_TYPE
    body = response.get_data()
    if response.headers.get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    return mapbox_vector_tile.decode(body)


def _in_tile(client, sql: str, z: int, x: int, y: int) -> list:
    """Rows whose geometry meets the tile with its buffer (what the tile must draw)."""
    with client.application.app_context():
        return list(
            db.get_session().execute(
                sa.text(
                    sql + " WHERE ST_Intersects(ST_Transform(geom, 3857),"
                    " ST_TileEnvelope(:z, :x, :y, margin => :margin))"
                ),
                {"z": z, "x": x, "y": y, "margin": tiles.BUFFER / tiles.EXTENT},
            )
        )


@pytest.mark.slow
def test_a_grids_tile_holds_the_grids_that_touch_it(nanchang_client) -> None:
    z = 14
    x, y = tile_of(*CENTRE, z)
    decoded = _decoded(nanchang_client, f"/tiles/grids/{z}/{x}/{y}.pbf")
    grids = decoded["grids"]
    assert grids["extent"] == tiles.EXTENT
    codes = {f["properties"]["code"] for f in grids["features"]}
    expected = {row[0] for row in _in_tile(nanchang_client, "SELECT code FROM grids", z, x, y)}
    assert codes == expected and len(codes) > 5
    feature = grids["features"][0]
    assert feature["geometry"]["type"] in ("Polygon", "MultiPolygon")
    assert set(feature["properties"]) == {"code", "name", "community_code", "population",
                                          "households"}  # fmt: skip


@pytest.mark.slow
def test_a_teams_tile_has_no_personal_field_and_clusters_city_wide(nanchang_client) -> None:
    z = 15
    x, y = tile_of(*CENTRE, z)
    response = nanchang_client.get(f"/tiles/teams/{z}/{x}/{y}.pbf")
    decoded = mapbox_vector_tile.decode(response.get_data())
    teams = decoded["teams"]["features"]
    rows = _in_tile(nanchang_client, "SELECT id, leader_phone FROM teams", z, x, y)
    assert {f["id"] for f in teams} == {r[0] for r in rows} and teams
    assert not {"leader_name", "leader_phone", "source"} & set(teams[0]["properties"])
    phones = [r[1] for r in rows if r[1]]
    assert phones and not any(p.encode() in response.get_data() for p in phones)
    assert teams[0]["properties"]["capabilities"] is not None  # an array, as text

    # City-wide, the teams come as clusters: every team counted once, in some cluster.
    z = 11
    x, y = tile_of(*CENTRE, z)
    clusters = _decoded(nanchang_client, f"/tiles/teams/{z}/{x}/{y}.pbf")["teams"]["features"]
    count = len(_in_tile(nanchang_client, "SELECT id FROM teams", z, x, y))
    assert sum(f["properties"]["cluster_count"] for f in clusters) >= count
    assert len(clusters) < count / 5
    assert all(f["geometry"]["type"] == "Point" for f in clusters)


@pytest.mark.slow
def test_tiles_are_kept_compressed_and_revalidated(nanchang_client) -> None:
    z = 13
    x, y = tile_of(*CENTRE, z)
    path = f"/tiles/stations/{z}/{x}/{y}.pbf"
    first = nanchang_client.get(path, headers={"Accept-Encoding": "gzip"})
    assert first.headers["Content-Encoding"] == "gzip" and first.headers["ETag"]
    again = nanchang_client.get(path, headers={"Accept-Encoding": "gzip",
                                               "If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304
    empty = nanchang_client.get("/tiles/stations/13/0/0.pbf")  # mid-Pacific: nothing there
    assert empty.status_code == 200 and empty.get_data() == b""


def test_tiles_that_do_not_exist_are_refused_by_name(client) -> None:
    assert client.get("/tiles/rivers/12/1/1.pbf").status_code == 404
    below = client.get("/tiles/teams/3/1/1.pbf")
    assert below.status_code == 400 and "min_zoom" in below.json["error"]["message"]
    outside = client.get("/tiles/teams/12/4096/1.pbf")
    assert outside.status_code == 400 and outside.json["error"]["field"] == "x"
    assert client.get("/tiles/teams/23/1/1.pbf").json["error"]["field"] == "z"
    assert client.get("/tiles/teams/12/1/1.pbf?color=red").status_code == 400


def test_tile_sql_names_only_catalog_identifiers() -> None:
    catalog = load_catalog()
    for layer in catalog.values():
        sql = tiles.tile_sql(layer)
        assert ":z" in sql and "ST_AsMVT" in sql
        for personal in layer.personal:
            assert personal not in sql
    assert "cluster_count" in tiles.cluster_sql(catalog["teams"])
    # Tile zoom 12 is drawn at map zoom 13 (512-pixel tiles): clusters; 13 at 14: points.
    assert tiles.ZOOM_OFFSET == 1 and tiles.first_zoom(catalog["grids"]) == 10
    assert tiles.clustered(catalog["teams"], 12) and not tiles.clustered(catalog["teams"], 13)
    assert not tiles.clustered(catalog["grids"], 11)


# ---------------------------------------------------------------------------------------
# Generalisation for a zoom (the maps' documents below a layer's detail_zoom)


def test_generalised_geometry_drops_small_holes_and_parts_but_never_a_feature() -> None:
    big = [[115.0, 28.0], [115.1, 28.0], [115.1, 28.1], [115.0, 28.1], [115.0, 28.0]]
    hole = [[115.05, 28.05], [115.0502, 28.05], [115.0502, 28.0502], [115.05, 28.05]]
    islet = [[115.2, 28.2], [115.2002, 28.2], [115.2002, 28.2002], [115.2, 28.2]]
    geometry = {"type": "MultiPolygon", "coordinates": [[big, hole], [islet]]}
    _, min_area = compact.generalisation(11)
    kept = compact.encode_geometry(geometry, "polygon", min_area=min_area)
    assert len(kept) == 1 and len(kept[0]) == 1  # the hole and the islet are gone
    full = compact.encode_geometry(geometry, "polygon")
    assert len(full) == 2 and len(full[0]) == 2
    # A feature that is only small keeps its largest part.
    alone = {"type": "Polygon", "coordinates": [islet]}
    assert compact.encode_geometry(alone, "polygon", min_area=min_area) is not None
    # Tolerance: half a pixel at the zoom, in metres; a zoom deeper is half of it.
    assert compact.generalisation(12)[0] == pytest.approx(compact.generalisation(11)[0] / 2)
    assert compact.generalisation(None) is None


@pytest.mark.slow
def test_circles_come_generalised_below_their_detail_zoom(nanchang_client) -> None:
    from geomap.analysis import circles

    with nanchang_client.application.app_context():
        session = db.get_session()
        circles.build(session, circles.make_query(of="sites", kinds=["memorial_hall"]))
        session.commit()
    full = json.loads(nanchang_client.get("/map/data/circles").get_data())
    coarse = json.loads(nanchang_client.get("/map/data/circles?zoom=11").get_data())
    assert "zoom" not in full and coarse["zoom"] == 11
    assert coarse["count"] == full["count"] > 0

    def vertices(document: dict) -> int:
        return sum(len(ring) // 2 for f in document["features"] if f[2]
                   for polygon in f[2] for ring in polygon)  # fmt: skip

    assert vertices(coarse) < vertices(full) / 2
    # At or past the layer's detail_zoom the document is the full one.
    detail = load_catalog()["circles"].detail_zoom
    same = json.loads(nanchang_client.get(f"/map/data/circles?zoom={detail}").get_data())
    assert "zoom" not in same and vertices(same) == vertices(full)
    assert nanchang_client.get("/map/data/circles?zoom=40").status_code == 400
